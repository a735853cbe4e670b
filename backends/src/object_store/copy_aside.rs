//! A plain-named replica copied to a hidden name (a version moved aside), server-side, with
//! its metadata replaced so the copy carries a stamp naming its key (a plain name's own stamp
//! leaves the key out: the name says it), and no byte of the body passes through the gateway.
//! On S3, CopyObject with `x-amz-metadata-directive: REPLACE`; on Azure, Copy Blob with
//! `x-ms-meta-*` headers (given any, the copy gets exactly those; its properties, such as
//! content type and cache-control, come from the source either way).

use super::native::{attribute_headers, header, s3_standard, S3Native, S3ProtocolAuth};
use super::NativeMultipart;
use super::ObjectStoreBackend;
use crate::backend::{ObjectInfo, PutResult};
use crate::error::{BackendError, Result};
use crate::naming::PhysicalName;
use bytes::Bytes;
use object_store::path::Path;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::CONTENT_LENGTH;
use reqwest::Method;

/// `x-amz-copy-source` is `<bucket>/<key>` URL-encoded, with the key's `/` kept.
const COPY_SOURCE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'!')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl ObjectStoreBackend {
    /// Copies `from` (whose head is `source_info`) to `to` server-side with the source's
    /// attributes and a stamp that names the key. `Ok(None)`: no server-side copy here (GCS's
    /// XML API, or no native API, is left to the streamed copy).
    pub(super) async fn copy_restamped(
        &self,
        from: &PhysicalName,
        source: &Path,
        to: &PhysicalName,
        dest: &Path,
        source_info: &ObjectInfo,
    ) -> Result<Option<PutResult>> {
        let stamp = source_info.stamp.clone().ok_or_else(|| {
            BackendError::other(format!("{}: {from} has no stamp to copy", self.id))
        })?;
        let attributes = self.meta_names.encode(super::encode_attributes(
            to,
            &source_info.attributes,
            &stamp,
        ));
        let what = "copy aside";
        match &self.native {
            Some(NativeMultipart::S3(s3))
                if matches!(s3.auth, S3ProtocolAuth::Aws { .. }) && !s3.bucket.is_empty() =>
            {
                let mut headers =
                    attribute_headers(&attributes, s3.auth.meta_prefix(), s3_standard)?;
                headers.push(header("x-amz-copy-source", &copy_source(s3, source))?);
                headers.push(header("x-amz-metadata-directive", "REPLACE")?);
                if !source_info.etag.is_empty() {
                    // The version read above, not one written since.
                    headers.push(header("x-amz-copy-source-if-match", &source_info.etag)?);
                }
                headers.push(header(CONTENT_LENGTH.as_str(), "0")?);
                let url = s3.object_url(dest);
                let reply = self
                    .native_small(&s3.retry, to.as_str(), what, || {
                        s3.signed(Method::PUT, &url, headers.clone(), Bytes::new(), true)
                    })
                    .await?;
                // CopyObject may answer 200 with an error document.
                if !reply.status.is_success() || super::xml::error_code(&reply.body).is_some() {
                    return Err(self.native_status_error(to.as_str(), what, &reply));
                }
            }
            Some(NativeMultipart::Azure(az)) => {
                // Metadata only: Copy Blob takes no content properties, it keeps the source's.
                let mut headers = attribute_headers(&attributes, "x-ms-meta-", |_| None)?;
                if !source_info.etag.is_empty() {
                    headers.push(header("x-ms-source-if-match", &source_info.etag)?);
                }
                // Waits while the copy is pending (one account: done when the call returns).
                self.azure_copy(az, source, dest, to.as_str(), headers)
                    .await?;
            }
            _ => return Ok(None),
        }
        let copied = self.head_path(dest, to.as_str()).await?;
        let same = copied.size == source_info.size
            && copied.stamp.as_ref().is_some_and(|s| {
                s.key == stamp.key && s.bucket == stamp.bucket && s.version_id == stamp.version_id
            })
            && copied.attributes == source_info.attributes;
        if !same {
            return Err(BackendError::other(format!(
                "backend {}: {what} {to}: the copy does not carry {from}'s stamp and attributes",
                self.id
            )));
        }
        self.server_side_copies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(PutResult {
            etag: copied.etag,
            size: copied.size,
        }))
    }
}

fn copy_source(s3: &S3Native, source: &Path) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(&s3.bucket, COPY_SOURCE),
        utf8_percent_encode(source.as_ref(), COPY_SOURCE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_keep_slashes_and_encode_the_rest() {
        let set = |s: &str| utf8_percent_encode(s, COPY_SOURCE).to_string();
        assert_eq!(set("pre/b/dir/a b+c.txt"), "pre/b/dir/a%20b%2Bc.txt");
        assert_eq!(set("k/ünï?x"), "k/%C3%BCn%C3%AF%3Fx");
    }
}
