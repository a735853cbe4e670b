//! CopyObject: within and across buckets, with the metadata directive and the copy-source
//! conditions. The source is streamed from its replicas into the ordinary write path.

use http::StatusCode;

use super::object::{attributes_from_headers, check_key, MAX_PUT_SIZE};
use super::support::{check_copy_source_conditions, existing_bucket, read_current};
use super::tagging::tags_from_headers;
use crate::s3::access_log;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, NewObject, WriteCondition};

pub use crate::s3::copy_source::{parse_copy_source, parse_copy_source_version};

/// A copy source that is a delete marker: named by its version id, S3 refuses the request
/// (400); as the latest version, the key does not exist (404).
pub fn source_error(e: S3Error) -> S3Error {
    if e.code == "MethodNotAllowed" {
        return S3Error::invalid_request(
            "The source of a copy request may not specifically refer to a delete marker by version id.",
        );
    }
    S3Error {
        headers: Vec::new(),
        ..e
    }
}

pub async fn copy_object(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let bucket_record = existing_bucket(ctx, &bucket)?;
    check_key(&key)?;
    let access = super::acl::new_object_acl(ctx, &bucket_record)?;
    let lock = super::lock::new_object_lock(ctx, &bucket, false)?;
    super::object::refuse_locked_overwrite(ctx, &bucket, &key)?;
    let source = ctx.header("x-amz-copy-source").unwrap_or("");
    // Reading the source was authorized with the request (crate::s3::authorize).
    let (src_bucket, src_key, src_version) = parse_copy_source_version(source)?;
    existing_bucket(ctx, &src_bucket)?;
    let replace = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => return Err(S3Error::invalid_argument("Unknown metadata directive.")),
    };
    // The tags: the source's (COPY, the default) or the request's `x-amz-tagging` (REPLACE).
    let new_tags = match ctx.header("x-amz-tagging-directive") {
        None | Some("COPY") => None,
        Some("REPLACE") => Some(tags_from_headers(&ctx.headers)?),
        Some(other) => {
            return Err(S3Error::invalid_argument("Unknown tagging directive.")
                .with("ArgumentName", "x-amz-tagging-directive")
                .with("ArgumentValue", other))
        }
    };
    if src_bucket == bucket && src_key == key && !replace && src_version.is_none() {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    // The source is read whole and verified against its record as it streams: a damaged
    // source fails the copy instead of spreading.
    let (src, (), source) = read_current(ctx, &src_bucket, &src_key, src_version.as_deref(), |src| {
        check_copy_source_conditions(&ctx.headers, src)?;
        if src.size > MAX_PUT_SIZE {
            return Err(S3Error::invalid_request(format!(
                "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PUT_SIZE}"
            )));
        }
        Ok(((), Some(0..src.size)))
    })
    .await
    .map_err(source_error)?;
    let attributes = if replace {
        attributes_from_headers(&ctx.headers)?
    } else {
        src.attributes.clone()
    };
    let object = NewObject {
        bucket: bucket.clone(),
        key: key.clone(),
        attributes,
        size: Some(src.size),
        known_etag: Some(src.etag.clone()),
        owner: access.owner,
        condition: WriteCondition::Always,
        acl: access.acl,
        tags: new_tags.unwrap_or_else(|| src.tags.clone()),
        lock,
    };
    let source = match source {
        Some(body) => body.body,
        None => Box::pin(futures::stream::empty()),
    };
    let record = store::copy_object(&ctx.gw.store, object, &src, source).await?;
    let doc = xml::CopyObjectResult {
        xmlns: S3_NS,
        last_modified: iso8601(record.modified_ms),
        etag: format!("\"{}\"", record.etag),
        checksums: xml::ChecksumElements::of(record.checksum.as_ref()),
    };
    let mut r = response::xml(StatusCode::OK, xml::to_xml("CopyObjectResult", &doc)?);
    super::support::version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    if src_version.is_some() || store::versioning(&ctx.gw.store, &src_bucket)?.keeps_versions() {
        response::set_header(
            &mut r,
            "x-amz-copy-source-version-id",
            src.shown_version_id(),
        );
    }
    access_log::note_written(&mut r, &record);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_forms() {
        assert_eq!(
            parse_copy_source("/b1/a%20b/c").unwrap(),
            ("b1".into(), "a b/c".into())
        );
        assert_eq!(
            parse_copy_source("b1/k?versionId=null").unwrap(),
            ("b1".into(), "k".into())
        );
        assert_eq!(
            parse_copy_source("b1/%E2%9C%93").unwrap(),
            ("b1".into(), "✓".into())
        );
        assert_eq!(
            parse_copy_source("b1/a//b").unwrap(),
            ("b1".into(), "a//b".into())
        );
        assert!(parse_copy_source("b1").is_err());
        assert!(parse_copy_source("/b1/").is_err());
        assert!(parse_copy_source("b1/k?versionId=abc").is_err());
        assert!(parse_copy_source("b1/%ff").is_err());
    }
}
