//! Bodies staged as objects `.hansa/staging/<token>`, invisible to listings (everything under
//! `.hansa/` but fallback names is internal) and to reads of the name: large writes to stores
//! without a native multipart API Hansa speaks (memory; S3 providers configured with
//! `native_multipart = false`), and compositions of their staged multipart uploads.
//!
//! Publishing copies the staged object to the name on the server (S3 CopyObject: atomic, no
//! bytes through Hansa) and deletes it. CopyObject takes at most 5 GiB; a larger staged
//! object is streamed into the name instead (a multipart upload at the name, itself invisible
//! until it completes).
//!
//! The same names serve Azure's staged blobs (`azure_stage`), which are published with Copy
//! Blob; listing and collecting them is shared here.

use super::handle::{Handle, Live};
use super::ObjectStoreBackend;
use crate::backend::{ByteStream, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::{is_safe_token, PhysicalName, STAGING_PREFIX};
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::GetOptions;
use std::time::{Duration, SystemTime};

/// The largest object S3's CopyObject copies.
pub(super) const MAX_COPY_BYTES: u64 = 5 << 30;

impl ObjectStoreBackend {
    /// `.hansa/staging/<token>`: its store path and its name relative to the prefix.
    pub(super) fn staging_path(&self, token: &str) -> Result<(Path, String)> {
        if !is_safe_token(token) {
            return Err(BackendError::other(format!(
                "invalid staging token {token:?}"
            )));
        }
        let rel = format!("{STAGING_PREFIX}{token}");
        Ok((self.join(&rel)?, rel))
    }

    /// Writes `body` to the staging object with the object's attributes.
    pub(super) async fn stage_object(
        &self,
        name: &PhysicalName,
        token: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        let (path, rel) = self.staging_path(token)?;
        let size = self
            .put_at(
                &path,
                &rel,
                || super::encode_attributes(name, attrs, &stamp.resolved()),
                body,
            )
            .await?;
        Ok(Staged {
            handle: Handle::Object {
                token: token.to_string(),
                size: Some(size),
            }
            .to_string(),
            size,
            durable: true,
        })
    }

    /// Copies the staging object to `name` and deletes it. A staging object that is gone was
    /// published before (or discarded): the object at the name tells which.
    pub(super) async fn publish_object(
        &self,
        name: &PhysicalName,
        token: &str,
        size: u64,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        let (source, _) = self.staging_path(token)?;
        let dest = self.path_of(name)?;
        let copied = if size > self.max_copy_bytes {
            self.stream_copy(&source, &dest, name).await
        } else {
            self.store
                .copy(&source, &dest)
                .await
                .map_err(|e| self.map_err(e, name.as_str()))
        };
        match copied {
            Ok(()) => {}
            Err(BackendError::NotFound { .. }) => return self.published_as(name, stamp).await,
            Err(e) => return Err(e),
        }
        let published = self.published_as(name, stamp).await?;
        self.remove_staging(token).await;
        Ok(published)
    }

    /// A copy through Hansa, for objects above [`MAX_COPY_BYTES`]: streamed with bounded
    /// memory (a multipart upload at `dest`), with the staged object's attributes.
    pub(super) async fn stream_copy(
        &self,
        source: &Path,
        dest: &Path,
        name: &PhysicalName,
    ) -> Result<()> {
        let got = self
            .store
            .get_opts(source, GetOptions::default())
            .await
            .map_err(|e| self.map_err(e, name.as_str()))?;
        // `put_at` encodes metadata names for the store again.
        let attributes = self.meta_names.decode(&got.attributes).into_owned();
        let shown = name.to_string();
        let this = self.clone();
        let body = got
            .into_stream()
            .map_err(move |e| this.map_err(e, &shown))
            .boxed();
        self.put_at(dest, name.as_str(), || attributes, body)
            .await
            .map(|_| ())
    }

    /// Deletes a staging object; one that is gone is fine. A failure after a publication only
    /// leaves garbage for `collect_staged`, so it is logged, not returned.
    pub(super) async fn remove_staging(&self, token: &str) {
        if let Err(e) = self.delete_staging(token).await {
            tracing::warn!(backend = %self.id, token, error = %e, "could not delete a published staging object");
        }
    }

    pub(super) async fn delete_staging(&self, token: &str) -> Result<()> {
        let (path, rel) = self.staging_path(token)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(e, &rel)),
        }
    }

    /// Deletes staging objects at least `older_than` old that no live handle names.
    pub(super) async fn collect_staging_objects(
        &self,
        older_than: Duration,
        live: &Live,
    ) -> Result<usize> {
        let dir = self.join(STAGING_PREFIX.trim_end_matches('/'))?;
        let found: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .map_err(|e| self.map_err(e, "list staged copies"))
            .try_collect()
            .await?;
        let now = SystemTime::now();
        let mut removed = 0;
        for meta in found {
            let Some(token) = meta.location.filename() else {
                continue;
            };
            let age = now
                .duration_since(SystemTime::from(meta.last_modified))
                .unwrap_or_default();
            if live.has_token(token) || age < older_than || !is_safe_token(token) {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.map_err(e, meta.location.as_ref())),
            }
        }
        Ok(removed)
    }
}
