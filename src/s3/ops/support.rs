//! Small pieces several operations share: reading XML bodies, bucket lookups, reading the
//! current version of an object, turning a verified body into the store's body.

use std::ops::Range;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::meta::{BucketRecord, ObjectRecord};
use crate::s3::body::{verified_body, BodyRules, BodyStream};
use crate::s3::conditions::{Conditions, Verdict};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::store::{self, BodyFailure, ObjectBody, ReadOutcome, VersionView};

/// S3's largest part number.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// `partNumber`: an integer from 1 to 10,000.
pub fn part_number_param(ctx: &Ctx) -> S3Result<u32> {
    ctx.route
        .query("partNumber")
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
            .with("ArgumentName", "partNumber")
            .with("ArgumentValue", ctx.route.query("partNumber").unwrap_or(""))
        })
}

/// The bucket's index record, or NoSuchBucket.
pub fn existing_bucket(ctx: &Ctx, bucket: &str) -> S3Result<BucketRecord> {
    Ok(store::bucket(&ctx.gw.store, bucket)?)
}

/// How often a read starts over because the key changed under it before giving up.
const READ_ATTEMPTS: usize = 4;

/// Reads the current version of `bucket/key`: `plan` answers from the record (conditions,
/// range) with what to send, and the span to read, if any; when the key is overwritten before
/// its bytes could be opened, all again with the new record, so the answer always belongs to
/// one version.
///
/// With `version` (as S3 shows it: `null` too), that version is read instead.
pub async fn read_current<T>(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    mut plan: impl FnMut(&ObjectRecord) -> S3Result<(T, Option<Range<u64>>)>,
) -> S3Result<(ObjectRecord, T, Option<ObjectBody>)> {
    let store = &ctx.gw.store;
    for _ in 0..READ_ATTEMPTS {
        let record = match store::object_version(store, bucket, key, version)? {
            VersionView::Object { record, .. } => *record,
            marker @ VersionView::DeleteMarker { .. } => {
                return Err(delete_marker_error(key, version.is_some(), &marker))
            }
        };
        let (answer, span) = plan(&record)?;
        let Some(span) = span else {
            return Ok((record, answer, None));
        };
        match store::read_version(store, bucket, key, &record, span).await? {
            ReadOutcome::Opened(body) => return Ok((record, answer, Some(body))),
            ReadOutcome::Changed => continue,
        }
    }
    Err(S3Error::service_unavailable(
        "The object changed too often while it was being read",
    ))
}

/// A verified request body as the store takes it: its failures passed through for the error
/// mapping.
pub fn store_body(
    body: BodyStream,
) -> impl Stream<Item = Result<Bytes, BodyFailure>> + Send + 'static {
    body.map(|item| item.map_err(|e| Box::new(e) as BodyFailure))
}

/// The `x-amz-copy-source-if-*` conditions of CopyObject and UploadPartCopy.
pub fn check_copy_source_conditions(headers: &http::HeaderMap, src: &ObjectRecord) -> S3Result<()> {
    match Conditions::from_headers(headers, "x-amz-copy-source-")
        .evaluate(&src.etag, src.modified_ms)
    {
        Verdict::Proceed => Ok(()),
        Verdict::NotModified => Err(S3Error::precondition_failed(
            "x-amz-copy-source-If-None-Match",
        )),
        Verdict::PreconditionFailed(which) => Err(S3Error::precondition_failed(&format!(
            "x-amz-copy-source-{which}"
        ))),
    }
}

/// Whether the request proves its body's integrity, as S3 wants of some configuration
/// documents: Content-MD5 or a flexible checksum (header or trailer), which the body reader
/// then verifies.
pub fn has_body_digest(headers: &http::HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.contains_key("x-amz-sdk-checksum-algorithm")
        || headers.contains_key("x-amz-trailer")
        || headers
            .keys()
            .any(|h| h.as_str().starts_with("x-amz-checksum-"))
}

/// Reads a small request document (XML), verified like any body, bounded in size.
pub async fn read_small_body(ctx: &mut Ctx) -> S3Result<Vec<u8>> {
    let limit = ctx.live.config.limits.max_xml_bytes;
    let payload = ctx.verified.payload.clone();
    let headers = ctx.headers.clone();
    let raw = ctx.take_body()?;
    // A document request may legitimately come without Content-Length (empty body).
    let rules = match BodyRules::from_headers(&headers, &payload) {
        Ok(r) => r,
        Err(_) if !has_body(&headers) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if rules.declared_len.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let (mut stream, _) = verified_body(raw, payload, rules, &ctx.live.auth);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
}

fn too_large(limit: usize) -> S3Error {
    S3Error::new(
        "MaxMessageLengthExceeded",
        http::StatusCode::BAD_REQUEST,
        format!("Your request was too big (at most {limit} bytes)."),
    )
}

/// A GET or HEAD that meets a delete marker: 404 NoSuchKey when it is the latest version,
/// 405 MethodNotAllowed when asked for by its version id; both say it is a marker.
pub fn delete_marker_error(key: &str, by_version: bool, marker: &VersionView) -> S3Error {
    let error = if by_version {
        S3Error::new(
            "MethodNotAllowed",
            http::StatusCode::METHOD_NOT_ALLOWED,
            "The specified method is not allowed against this resource.",
        )
        .with("Method", "GET")
        .with("ResourceType", "DeleteMarker")
    } else {
        S3Error::no_such_key(key)
    };
    error
        .with_header("x-amz-delete-marker", "true")
        .with_header("x-amz-version-id", marker.shown_version_id())
}

/// The object version a request's `versionId` names (the latest without one), and that id; a
/// delete marker there is S3's error for it (see [`delete_marker_error`]).
pub fn named_version<'c>(
    ctx: &'c Ctx,
    bucket: &str,
    key: &str,
) -> S3Result<(ObjectRecord, Option<&'c str>)> {
    let asked = version_param(ctx)?;
    match store::object_version(&ctx.gw.store, bucket, key, asked)? {
        VersionView::Object { record, .. } => Ok((*record, asked)),
        marker @ VersionView::DeleteMarker { .. } => {
            Err(delete_marker_error(key, asked.is_some(), &marker))
        }
    }
}

/// The `versionId` query parameter: `null` or one of Hansa's ids (32 hex digits); anything
/// else is S3's InvalidArgument.
pub fn version_param(ctx: &Ctx) -> S3Result<Option<&str>> {
    match ctx.route.query("versionId") {
        None => Ok(None),
        Some(v) => check_version_id(v).map(Some),
    }
}

pub use crate::s3::copy_source::check_version_id;

/// `x-amz-version-id` on an answer about `version_id` (as S3 shows it), in a bucket that has
/// (or had) versioning; a bucket that never had it shows none.
pub fn version_header(
    ctx: &Ctx,
    r: &mut crate::s3::response::S3Response,
    bucket: &str,
    version_id: &str,
) -> S3Result<()> {
    if store::versioning(&ctx.gw.store, bucket)?.keeps_versions() {
        crate::s3::response::set_header(r, "x-amz-version-id", version_id);
    }
    Ok(())
}
