//! Staged writes on S3's multipart protocol (S3 and S3-compatible providers; GCS's XML API):
//! the staged copy is an open multipart upload at the object's own key, which readers do not
//! see until CompleteMultipartUpload, and publishing is that completion.
//!
//! * A large write: `prepare` creates the upload (with the attributes and stamp, since the
//!   protocol fixes them then), `stage` streams the body into parts 1..N, `publish`
//!   completes with exactly those parts, `discard` aborts the upload.
//! * A client upload's completion: `stage_upload` only records the chosen parts (no request;
//!   a receipt the provider no longer holds shows at publication as `PreconditionFailed`),
//!   `publish` completes, which consumes the client's upload; `discard` leaves it to
//!   `abort_upload`.
//!
//! A completion is idempotent: when the upload is gone (completed before, by this call's
//! earlier attempt or an earlier publication), the object at the key is accepted only if it
//! is this write's (version, size and, where the provider makes them so, the multipart ETag
//! these parts give).

use super::handle::{split_s3_handle, Handle, S3Parts};
use super::native::{
    attribute_headers, chunks_body, creation_attributes, header, header_text, reply_etag,
    s3_receipt_etag, s3_standard, send, Reply, S3Native,
};
use super::xml::{self, CompleteMultipartUpload, CompletePart, InitiateMultipartUploadResult};
use super::{is_throttle_text, pump, ObjectStoreBackend};
use crate::backend::{ByteStream, CompletedPart, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::PhysicalName;
use bytes::Bytes;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::Attributes;
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Method, StatusCode};
use std::sync::Arc;

/// S3's largest part number.
const MAX_PARTS: usize = 10_000;

/// The ETag S3 gives an object completed from parts with these ETags: the MD5 of the parts'
/// binary MD5s, then `-<count>`; `None` when a part's ETag is not an MD5 (providers that make
/// ETags otherwise).
fn multipart_etag(parts: &[(u32, String)]) -> Option<String> {
    let mut md5s = Vec::with_capacity(parts.len() * 16);
    for (_, etag) in parts {
        let raw = hex::decode(etag).ok().filter(|raw| raw.len() == 16)?;
        md5s.extend_from_slice(&raw);
    }
    let digest = Md5::digest(&md5s);
    Some(format!("{}-{}", hex::encode(digest), parts.len()))
}

impl ObjectStoreBackend {
    /// CreateMultipartUpload at `name`'s key; returns the provider's upload id.
    pub(super) async fn s3_create(
        &self,
        s3: &S3Native,
        name: &PhysicalName,
        attributes: &Attributes,
    ) -> Result<String> {
        let what = "create upload";
        let path = self.path_of(name)?;
        let url = format!("{}?uploads", s3.object_url(&path));
        let headers = attribute_headers(attributes, s3.auth.meta_prefix(), s3_standard)?;
        let reply = self
            .native_small(&s3.retry, name.as_str(), what, || {
                s3.signed(Method::POST, &url, headers.clone(), Bytes::new(), true)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(name.as_str(), what, &reply));
        }
        let shown = format!("backend {}: {what} {name}", self.id);
        let doc: InitiateMultipartUploadResult = xml::from_document(&reply.body, &shown)?;
        if doc.upload_id.is_empty() {
            return Err(BackendError::unavailable(format!(
                "{shown}: no UploadId in the answer"
            )));
        }
        Ok(doc.upload_id)
    }

    /// A large write's upload, created at its key with the write's attributes; returns the
    /// provider's upload id.
    pub(super) async fn s3_prepare(
        &self,
        s3: &S3Native,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        known_size: bool,
    ) -> Result<String> {
        let attributes = creation_attributes(name, attrs, stamp, known_size);
        self.s3_create(s3, name, &attributes).await
    }

    /// Streams `body` into parts 1..N of the upload, at most two at once.
    pub(super) async fn s3_stage(
        &self,
        s3: &Arc<S3Native>,
        name: &PhysicalName,
        upload: &str,
        body: ByteStream,
    ) -> Result<Staged> {
        let path = self.path_of(name)?;
        let (this, s3_for_parts) = (self.clone(), s3.clone());
        let (upload_id, shown) = (upload.to_string(), name.to_string());
        let sent = pump::send_parts(
            self.detach(body),
            self.part_size,
            MAX_PARTS,
            move |number, chunks, len| {
                let (this, s3) = (this.clone(), s3_for_parts.clone());
                let (path, upload, shown) = (path.clone(), upload_id.clone(), shown.clone());
                async move {
                    this.s3_send_part(&s3, &path, &upload, number, chunks, len, &shown)
                        .await
                }
            },
        )
        .await?;
        let parts = (1u32..).zip(sent.parts).collect();
        Ok(Staged {
            handle: Handle::S3Put {
                upload: upload.to_string(),
                staged: Some(S3Parts {
                    size: sent.size,
                    parts,
                }),
            }
            .to_string(),
            size: sent.size,
            durable: true,
        })
    }

    /// UploadPart of a part held in memory (so a failed attempt is sent again); returns the
    /// part's ETag.
    #[allow(clippy::too_many_arguments)]
    async fn s3_send_part(
        &self,
        s3: &S3Native,
        path: &Path,
        upload: &str,
        number: u32,
        chunks: Vec<Bytes>,
        len: usize,
        name: &str,
    ) -> Result<String> {
        let what = format!("part {number} of");
        let url = s3.part_url(path, upload, number);
        let length = header(CONTENT_LENGTH.as_str(), &len.to_string())?;
        let reply = self
            .native_small(&s3.retry, name, &what, || {
                let (url, length, chunks) = (&url, length.clone(), chunks.clone());
                async move {
                    let req = s3
                        .sign(Method::PUT, url, vec![length], Bytes::new(), false)
                        .await?;
                    Ok(send(&s3.client, req, Some(chunks_body(chunks)), None).await)
                }
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(name, &what, &reply));
        }
        reply_etag(&reply).ok_or_else(|| {
            BackendError::unavailable(format!(
                "backend {}: {what} {name}: no ETag in the answer",
                self.id
            ))
        })
    }

    /// A client upload's completion, staged: the chosen parts, no request.
    pub(super) fn s3_stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
    ) -> Result<Staged> {
        let (upload_id, provider) = split_s3_handle(upload)?;
        let mut chosen = Vec::with_capacity(parts.len());
        for p in parts {
            let etag =
                s3_receipt_etag(&p.receipt).ok_or_else(|| BackendError::PreconditionFailed {
                    name: name.to_string(),
                })?;
            chosen.push((p.part_number, etag.to_string()));
        }
        let size = parts.iter().map(|p| p.size).sum();
        Ok(Staged {
            handle: Handle::S3Completion {
                upload_id: upload_id.to_string(),
                upload: provider.to_string(),
                parts: S3Parts {
                    size,
                    parts: chosen,
                },
            }
            .to_string(),
            size,
            durable: true,
        })
    }

    /// CompleteMultipartUpload with exactly `staged`'s parts, then HEAD (with the same
    /// protocol, GCS's XML API included) for the ETag as the store reports it.
    pub(super) async fn s3_complete(
        &self,
        s3: &S3Native,
        name: &PhysicalName,
        upload: &str,
        staged: &S3Parts,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        let what = "complete upload";
        let path = self.path_of(name)?;
        let precondition = || BackendError::PreconditionFailed {
            name: name.to_string(),
        };
        let doc = CompleteMultipartUpload {
            parts: staged
                .parts
                .iter()
                .map(|(number, etag)| CompletePart {
                    part_number: *number,
                    etag: format!("\"{etag}\""),
                })
                .collect(),
        };
        let body = Bytes::from(xml::to_document(&doc)?);
        let url = s3.upload_url(path.as_ref(), upload);
        let length = header(CONTENT_LENGTH.as_str(), &body.len().to_string())?;
        let reply = self
            .native_small(&s3.retry, name.as_str(), what, || {
                s3.signed(Method::POST, &url, vec![length.clone()], body.clone(), true)
            })
            .await?;
        // A 200 may still carry an <Error> (the answer starts before the work ends).
        let error_code = if reply.status.is_success() {
            xml::error_code(&reply.body)
        } else {
            Some(xml::error_code(&reply.body).unwrap_or_default())
        };
        if let Some(code) = &error_code {
            tracing::debug!(backend = %self.id, %name, status = %reply.status, %code, "completion refused");
            match code.as_str() {
                // The upload is gone: an earlier completion may have made the object (checked
                // below); otherwise it was aborted or never existed.
                "NoSuchUpload" => {}
                "InvalidPart" | "InvalidPartOrder" => return Err(precondition()),
                _ if reply.status.is_success() => {
                    let status = if is_throttle_text(code) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    let as_error = Reply { status, ..reply };
                    return Err(self.native_status_error(name.as_str(), what, &as_error));
                }
                _ => return Err(self.native_status_error(name.as_str(), what, &reply)),
            }
        }
        let head_url = s3.object_url(&path);
        let head = self
            .native_small(&s3.retry, name.as_str(), what, || {
                s3.signed(Method::HEAD, &head_url, Vec::new(), Bytes::new(), true)
            })
            .await?;
        let gone = error_code.is_some();
        if gone && head.status == StatusCode::NOT_FOUND {
            return Err(BackendError::NotFound {
                name: name.to_string(),
            });
        }
        if !head.status.is_success() {
            return Err(self.native_status_error(name.as_str(), what, &head));
        }
        let etag = header_text(&head.headers, reqwest::header::ETAG.as_str());
        let size =
            header_text(&head.headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        let (Some(etag), Some(size)) = (etag, size) else {
            return Err(BackendError::unavailable(format!(
                "backend {}: {what} {name}: no ETag or length in the answer to HEAD",
                self.id
            )));
        };
        if gone && !self.s3_is_completion_of(s3, &head, &etag, size, staged, stamp) {
            return Err(BackendError::NotFound {
                name: name.to_string(),
            });
        }
        Ok(PutResult { etag, size })
    }

    /// Whether the object a HEAD shows is the one completing `staged` under `stamp`'s
    /// version made.
    fn s3_is_completion_of(
        &self,
        s3: &S3Native,
        head: &Reply,
        etag: &str,
        size: u64,
        staged: &S3Parts,
        stamp: &Stamp,
    ) -> bool {
        let version = header_text(
            &head.headers,
            &format!("{}{}", s3.auth.meta_prefix(), super::META_VERSION),
        )
        .map(|v| super::decode_meta_value(&v));
        // An ETag of S3's multipart form must be the one these parts give; servers that
        // report another kind (rclone: the MD5 of the whole) are judged by version and size.
        let provider_etag = etag.trim_matches('"');
        let etag_fits = match multipart_etag(&staged.parts) {
            Some(expected) if provider_etag.contains('-') => provider_etag == expected,
            _ => true,
        };
        version.as_deref() == Some(stamp.version_id.as_str()) && size == staged.size && etag_fits
    }

    /// AbortMultipartUpload of `upload` of the object `key` (full key); an upload that is gone
    /// is fine.
    pub(super) async fn s3_abort(
        &self,
        s3: &S3Native,
        key: &str,
        upload: &str,
        name: &str,
    ) -> Result<()> {
        let what = "abort upload";
        let url = s3.upload_url(key, upload);
        let reply = self
            .native_small(&s3.retry, name, what, || {
                s3.signed(Method::DELETE, &url, Vec::new(), Bytes::new(), true)
            })
            .await?;
        if !reply.status.is_success() && reply.status != StatusCode::NOT_FOUND {
            return Err(self.native_status_error(name, what, &reply));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::physical_name;
    use crate::testsuite::stamp;

    #[test]
    fn multipart_etags_are_the_md5_of_the_part_md5s() {
        // MD5("a") and MD5("b"); the object's ETag as S3 computes it for those two parts.
        let parts = [
            (1, "0cc175b9c0f1b6a831c399e269772661".to_string()),
            (2, "92eb5ffee6ae2fec3ad71c777531578f".to_string()),
        ];
        let mut joined = hex::decode(&parts[0].1).expect("hex");
        joined.extend(hex::decode(&parts[1].1).expect("hex"));
        let expected = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(multipart_etag(&parts), Some(expected));
        assert_eq!(multipart_etag(&[(1, "not-an-md5".to_string())]), None);
    }

    fn metadata(attributes: &Attributes) -> Vec<String> {
        use object_store::Attribute;
        attributes
            .iter()
            .filter_map(|(k, _)| match k {
                Attribute::Metadata(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn uploads_are_created_without_the_facts_not_known_yet() {
        let name = physical_name("b", "k");
        let mut st = stamp("b", "k", "v1", 100);
        let upload = metadata(&creation_attributes(
            &name,
            &ObjectAttributes::default(),
            &st,
            false,
        ));
        assert!(upload.iter().any(|n| n == super::super::META_VERSION));
        assert!(!upload.iter().any(|n| n == super::super::META_SIZE));
        assert!(!upload.iter().any(|n| n == super::super::META_ETAG));
        let write = metadata(&creation_attributes(
            &name,
            &ObjectAttributes::default(),
            &st,
            true,
        ));
        assert!(write.iter().any(|n| n == super::super::META_SIZE));
        assert!(write.iter().any(|n| n == super::super::META_ETAG));
        st.etag.clear();
        let unknown_etag = metadata(&creation_attributes(
            &name,
            &ObjectAttributes::default(),
            &st,
            true,
        ));
        assert!(!unknown_etag.iter().any(|n| n == super::super::META_ETAG));
    }
}
