//! Collecting abandoned multipart uploads on S3's protocol: a crashed write's staged copy is
//! an upload at its key, billed by the provider until aborted and invisible to listings of
//! objects. ListMultipartUploads under the backend's prefix finds them; an upload is aborted
//! when it is old enough and no handle the gateway holds names it (neither a write's nor a
//! client upload's).
//!
//! Only uploads at names Hansa writes are considered, so a bucket shared with other writers
//! keeps their uploads.

use super::handle::Live;
use super::native::S3Native;
use super::xml::{self, ListMultipartUploadsResult, ListedUpload};
use super::ObjectStoreBackend;
use crate::error::Result;
use crate::naming::PhysicalName;
use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use std::time::{Duration, SystemTime};

/// When an upload was started, from its `Initiated` (RFC 3339).
fn initiated_at(upload: &ListedUpload) -> Option<SystemTime> {
    let parsed = time::OffsetDateTime::parse(
        upload.initiated.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(SystemTime::from(parsed))
}

fn marker(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl ObjectStoreBackend {
    /// Aborts uploads under the prefix at least `older_than` old that no live handle names.
    pub(super) async fn s3_collect(
        &self,
        s3: &S3Native,
        older_than: Duration,
        live: &Live,
    ) -> Result<usize> {
        let prefix = match self.prefix.as_ref() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut removed = 0;
        let mut from: Option<(String, String)> = None;
        loop {
            let page = self.s3_list_uploads(s3, &prefix, from.as_ref()).await?;
            let now = SystemTime::now();
            for upload in &page.uploads {
                if live.has_provider_upload(&upload.upload_id) {
                    continue;
                }
                let Some(rel) = self.relative_key(&upload.key) else {
                    continue;
                };
                if PhysicalName::parse(&rel).is_err() {
                    continue;
                }
                let Some(started) = initiated_at(upload) else {
                    tracing::warn!(backend = %self.id, key = %upload.key, initiated = %upload.initiated,
                        "an upload's start time is unreadable; left alone");
                    continue;
                };
                if now.duration_since(started).unwrap_or_default() < older_than {
                    continue;
                }
                self.s3_abort(s3, &upload.key, &upload.upload_id, &rel)
                    .await?;
                removed += 1;
            }
            let next = match (
                marker(page.next_key_marker),
                marker(page.next_upload_id_marker),
            ) {
                (Some(key), upload) => Some((key, upload.unwrap_or_default())),
                _ => None,
            };
            // A truncated page without a way on (or one that would repeat) ends the walk
            // rather than looping.
            match next {
                Some(next) if page.is_truncated && from.as_ref() != Some(&next) => {
                    from = Some(next)
                }
                _ => break,
            }
        }
        if removed > 0 {
            tracing::info!(backend = %self.id, removed, "aborted multipart uploads no write holds");
        }
        Ok(removed)
    }

    /// One page of ListMultipartUploads under `prefix`, after the markers `from`.
    async fn s3_list_uploads(
        &self,
        s3: &S3Native,
        prefix: &str,
        from: Option<&(String, String)>,
    ) -> Result<ListMultipartUploadsResult> {
        let what = "list uploads";
        let enc = |v: &str| utf8_percent_encode(v, &super::native::STRICT_ENCODE_SET).to_string();
        let mut url = format!("{}?uploads&prefix={}", s3.bucket_url(), enc(prefix));
        if let Some((key, upload)) = from {
            url.push_str(&format!("&key-marker={}", enc(key)));
            if !upload.is_empty() {
                url.push_str(&format!("&upload-id-marker={}", enc(upload)));
            }
        }
        let reply = self
            .native_small(&s3.retry, prefix, what, || {
                s3.signed(Method::GET, &url, Vec::new(), Bytes::new(), true)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(prefix, what, &reply));
        }
        xml::from_document(&reply.body, &format!("backend {}: {what}", self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(initiated: &str) -> ListedUpload {
        ListedUpload {
            key: "k".into(),
            upload_id: "u".into(),
            initiated: initiated.into(),
        }
    }

    #[test]
    fn start_times_are_read_as_rfc3339() {
        let at = initiated_at(&upload("2024-05-01T12:00:00.000Z")).expect("parse");
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs();
        assert_eq!(secs, 1_714_564_800);
        assert!(initiated_at(&upload("2024-05-01T12:00:00Z")).is_some());
        assert!(initiated_at(&upload("")).is_none());
        assert!(initiated_at(&upload("yesterday")).is_none());
    }
}
