//! Staged writes on Azure Blob Storage.
//!
//! Azure drops every uncommitted block of a blob when anything commits that blob, so a
//! write's blocks never go to the destination, where a concurrent write of the same name
//! would take them. A large write stages its blocks on a blob of its own,
//! `.hansa/staging/<token>`: `prepare` creates it (empty, so that `discard` and
//! `collect_staged` can find it: a blob with uncommitted blocks only is not listed, and
//! deleting the blob deletes its blocks), `stage` sends part-sized blocks (at most two at
//! once) and commits them there with Put Block List carrying the attributes and stamp,
//! `publish` copies the blob to the name (Copy Blob, on the server) and deletes it.
//!
//! A client upload's completion commits the chosen blocks on the upload's own staging blob
//! `.hansa/uploads/<upload id>` (see `native`), and `publish` copies that blob to the name;
//! the upload's blob stays until `abort_upload`.

use super::handle::Handle;
use super::native::{
    attribute_headers, azure_error_code, azure_receipt_blocks, azure_staging_name, azure_standard,
    chunks_body, header, header_text, send, AzureNative,
};
use super::xml::{self, BlockList};
use super::{pump, ObjectStoreBackend};
use crate::backend::{ByteStream, CompletedPart, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::{is_safe_token, PhysicalName};
use base64::Engine as _;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{Attributes, ObjectStore, PutPayload};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use reqwest::{Method, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// The most blocks a blob can have.
const MAX_BLOCKS: usize = 50_000;
/// How long a publication waits for a pending copy.
const COPY_LIMIT: Duration = Duration::from_secs(3600);

/// The id of a staged write's block `number` (1-based). Every id on a blob must have the same
/// length; a staging blob only ever holds its own write's blocks.
fn staging_block_id(number: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("hansa-{number:010}"))
}

impl ObjectStoreBackend {
    /// Creates the empty staging blob a large write's blocks go to.
    pub(super) async fn azure_create_staging(&self, token: &str) -> Result<()> {
        let (path, rel) = self.staging_path(token)?;
        self.store
            .put(&path, PutPayload::new())
            .await
            .map_err(|e| self.map_err(e, &rel))?;
        Ok(())
    }

    /// Sends `body` as blocks of the staging blob and commits them there, with the
    /// attributes and the stamp as it is once the body has ended.
    pub(super) async fn azure_stage(
        &self,
        az: &Arc<AzureNative>,
        name: &PhysicalName,
        token: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        let (blob, rel) = self.staging_path(token)?;
        let block_size = usize::try_from(az.max_block_bytes)
            .unwrap_or(usize::MAX)
            .min(self.part_size);
        let (this, az_for_blocks, blob_for_blocks) = (self.clone(), az.clone(), blob.clone());
        let sent = pump::send_parts(
            self.detach(body),
            block_size,
            MAX_BLOCKS,
            move |number, chunks, len| {
                let (this, az, blob) =
                    (this.clone(), az_for_blocks.clone(), blob_for_blocks.clone());
                let rel = rel.clone();
                async move {
                    // An empty body is no block at all (Azure refuses empty blocks).
                    if len == 0 {
                        return Ok(None);
                    }
                    let id = staging_block_id(number);
                    this.azure_send_block(&az, &blob, &id, chunks, len, &rel)
                        .await?;
                    Ok(Some(id))
                }
            },
        )
        .await?;
        let blocks = sent.parts.into_iter().flatten().collect();
        let attributes = super::encode_attributes(name, attrs, &stamp.resolved());
        self.azure_commit(az, &blob, blocks, attributes, name.as_str())
            .await?;
        Ok(Staged {
            handle: Handle::Object {
                token: token.to_string(),
                size: Some(sent.size),
            }
            .to_string(),
            size: sent.size,
            durable: true,
        })
    }

    /// Put Block of a block held in memory (so a failed attempt is sent again).
    async fn azure_send_block(
        &self,
        az: &AzureNative,
        blob: &Path,
        id: &str,
        chunks: Vec<Bytes>,
        len: usize,
        name: &str,
    ) -> Result<()> {
        let what = "stage a block of";
        let mut url = az.blob_url(blob);
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", id);
        let length = header(CONTENT_LENGTH.as_str(), &len.to_string())?;
        let reply = self
            .native_small(&az.retry, name, what, || {
                let (url, length, chunks) = (&url, length.clone(), chunks.clone());
                async move {
                    let req = az
                        .sign(Method::PUT, url, vec![length], Bytes::new())
                        .await?;
                    Ok(send(&az.client, req, Some(chunks_body(chunks)), None).await)
                }
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(name, what, &reply));
        }
        Ok(())
    }

    /// Put Block List: `blocks` become the content of `blob`, with `attributes`. A block the
    /// blob does not hold → `PreconditionFailed`.
    async fn azure_commit(
        &self,
        az: &AzureNative,
        blob: &Path,
        blocks: Vec<String>,
        attributes: Attributes,
        name: &str,
    ) -> Result<()> {
        let what = "commit blocks of";
        let body = Bytes::from(xml::to_document(&BlockList { latest: blocks })?);
        let mut headers = attribute_headers(
            &self.meta_names.encode(attributes),
            "x-ms-meta-",
            azure_standard,
        )?;
        headers.push(header(CONTENT_LENGTH.as_str(), &body.len().to_string())?);
        let mut url = az.blob_url(blob);
        url.query_pairs_mut().append_pair("comp", "blocklist");
        let reply = self
            .native_small(&az.retry, name, what, || {
                az.signed(Method::PUT, &url, headers.clone(), body.clone())
            })
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        if reply.status == StatusCode::BAD_REQUEST
            && azure_error_code(&reply).as_deref() == Some("InvalidBlockList")
        {
            return Err(BackendError::PreconditionFailed {
                name: name.to_string(),
            });
        }
        Err(self.native_status_error(name, what, &reply))
    }

    /// Copies the staging blob to `name`, then deletes it. A staging blob that is gone was
    /// published before (or discarded): the object at the name tells which.
    pub(super) async fn azure_publish_object(
        &self,
        az: &AzureNative,
        name: &PhysicalName,
        token: &str,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        let (source, _) = self.staging_path(token)?;
        let dest = self.path_of(name)?;
        match self
            .azure_copy(az, &source, &dest, name.as_str(), Vec::new())
            .await
        {
            Ok(()) => {}
            Err(BackendError::NotFound { .. }) => return self.published_as(name, stamp).await,
            Err(e) => return Err(e),
        }
        let published = self.published_as(name, stamp).await?;
        self.remove_staging(token).await;
        Ok(published)
    }

    /// Commits the chosen blocks on the upload's staging blob, with the attributes and stamp.
    pub(super) async fn azure_stage_upload(
        &self,
        az: &AzureNative,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged> {
        let precondition = || BackendError::PreconditionFailed {
            name: name.to_string(),
        };
        if !is_safe_token(upload) {
            return Err(precondition());
        }
        let rel = azure_staging_name(upload);
        let staging = self.join(&rel)?;
        // An aborted upload has no staging blob.
        match self.store.head(&staging).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Err(precondition()),
            Err(e) => return Err(self.map_err(e, &rel)),
        }
        let mut blocks = Vec::new();
        for p in parts {
            blocks.extend(
                azure_receipt_blocks(upload, p.part_number, &p.receipt).ok_or_else(precondition)?,
            );
        }
        let attributes = super::encode_attributes(name, attrs, &stamp.resolved());
        self.azure_commit(az, &staging, blocks, attributes, name.as_str())
            .await?;
        let size = parts.iter().map(|p| p.size).sum();
        Ok(Staged {
            handle: Handle::AzureCompletion {
                upload_id: upload.to_string(),
            }
            .to_string(),
            size,
            durable: true,
        })
    }

    /// Copies the upload's committed staging blob to `name`. The blob stays (until
    /// `abort_upload`), so a publication done before is recognised first, by the version at
    /// the name: copying again would give the name another ETag.
    pub(super) async fn azure_publish_upload(
        &self,
        az: &AzureNative,
        name: &PhysicalName,
        upload: &str,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        match self.published_as(name, stamp).await {
            Ok(done) => return Ok(done),
            Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let source = self.join(&azure_staging_name(upload))?;
        let dest = self.path_of(name)?;
        self.azure_copy(az, &source, &dest, name.as_str(), Vec::new())
            .await?;
        self.published_as(name, stamp).await
    }

    /// Copy Blob from `source` to `dest` in the same container, waiting until the copy is no
    /// longer pending (a copy inside one account is usually done when the call returns).
    /// `extra`: more request headers (metadata that replaces the source's, conditions).
    pub(super) async fn azure_copy(
        &self,
        az: &AzureNative,
        source: &Path,
        dest: &Path,
        name: &str,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<()> {
        let what = "copy a blob to";
        let mut source_url = az.blob_url(source);
        if let Some(pairs) = az.sas_pairs().await? {
            source_url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut headers = extra;
        headers.push(header("x-ms-copy-source", source_url.as_str())?);
        headers.push(header(CONTENT_LENGTH.as_str(), "0")?);
        let dest_url = az.blob_url(dest);
        let reply = self
            .native_small(&az.retry, name, what, || {
                az.signed(Method::PUT, &dest_url, headers.clone(), Bytes::new())
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(name, what, &reply));
        }
        let copy_id = header_text(&reply.headers, "x-ms-copy-id");
        let mut status = header_text(&reply.headers, "x-ms-copy-status");
        let mut attempt = 0usize;
        let started = std::time::Instant::now();
        while status.as_deref() == Some("pending") {
            if started.elapsed() > COPY_LIMIT {
                return Err(BackendError::unavailable(format!(
                    "backend {}: {what} {name}: copy still pending after {COPY_LIMIT:?}",
                    self.id
                )));
            }
            tokio::time::sleep(
                Duration::from_millis(100)
                    .saturating_mul(2u32.saturating_pow(attempt.min(5) as u32)),
            )
            .await;
            attempt += 1;
            let reply = self
                .native_small(&az.retry, name, what, || {
                    az.signed(Method::HEAD, &dest_url, Vec::new(), Bytes::new())
                })
                .await?;
            if !reply.status.is_success() {
                return Err(self.native_status_error(name, what, &reply));
            }
            if header_text(&reply.headers, "x-ms-copy-id") != copy_id {
                // Another write replaced the blob while our copy ran.
                return Err(BackendError::PreconditionFailed {
                    name: name.to_string(),
                });
            }
            status = header_text(&reply.headers, "x-ms-copy-status");
        }
        match status.as_deref() {
            None | Some("success") => Ok(()),
            Some(other) => Err(BackendError::unavailable(format!(
                "backend {}: {what} {name}: copy status {other}",
                self.id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_block_ids_have_one_length() {
        let ids: Vec<String> = [1, 9, 10, 50_000, u32::MAX]
            .into_iter()
            .map(staging_block_id)
            .collect();
        assert!(ids.iter().all(|id| id.len() == ids[0].len()), "{ids:?}");
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
