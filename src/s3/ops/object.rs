//! Single-object operations: PutObject, GetObject, HeadObject, DeleteObject.

use std::collections::BTreeMap;

use futures::StreamExt;
use hansa_backends::ObjectAttributes;
use http::{HeaderMap, StatusCode};

use super::bucket::check_canned_acl;
use super::multipart::part_number_param;
use super::support::{existing_bucket, read_object};
use super::write::{delete_replica, store_object, Content, WriteRequest};
use crate::meta::ObjectRecord;
use crate::replication::ReplicationError;
use crate::s3::body::verified_body;
use crate::s3::body::BodyRules;
use crate::s3::conditions::{etag_matches, Conditions, Verdict};
use crate::s3::error::{S3Error, S3Result};
use crate::s3::handler::Ctx;
use crate::s3::range::{self, RangeRequest};
use crate::s3::response::{self, http_date, S3Response};

/// S3's limit for a single PUT.
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// S3's limit on user metadata (names and values of all x-amz-meta-* headers).
const MAX_METADATA_BYTES: usize = 2048;
const MAX_KEY_BYTES: usize = 1024;

pub async fn put_object(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    existing_bucket(ctx, &bucket)?;
    check_key(&key)?;
    check_canned_acl(ctx)?;
    let attributes = attributes_from_headers(&ctx.headers)?;
    let payload = ctx.verified.payload.clone();
    let rules = BodyRules::from_headers(&ctx.headers, &payload)?;
    if rules.declared_len > MAX_PUT_SIZE {
        return Err(S3Error::entity_too_large());
    }
    let known_etag = rules.content_md5.map(hex::encode);
    let size = rules.declared_len;

    let _guard = ctx.gw.locks.lock(&bucket, &key).await;
    // The bucket may have been deleted while this request waited for the lock.
    existing_bucket(ctx, &bucket)?;
    let previous = ctx.gw.meta.object(&bucket, &key)?;
    check_put_conditions(&ctx.headers, previous.as_ref(), &key)?;

    let raw = ctx.take_body()?;
    let (body, outcome) = verified_body(raw, payload, rules, &ctx.gw.auth);
    let body = body.map(|item| item.map_err(ReplicationError::from));
    let request = WriteRequest {
        bucket: &bucket,
        key: &key,
        attributes,
        size,
        known_etag,
        previous,
    };
    let record = store_object(ctx, request, body, || {
        outcome.get().map(|s| Content {
            size: s.len,
            etag: hex::encode(s.md5),
            checksum: s.checksum,
        })
    })
    .await?;
    let mut r = response::empty(StatusCode::OK);
    response::set_header(&mut r, "etag", &format!("\"{}\"", record.etag));
    if let Some(c) = &record.checksum {
        response::set_header(&mut r, c.algorithm.header_name(), &c.value);
    }
    Ok(r)
}

pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::new(
            "KeyTooLongError",
            StatusCode::BAD_REQUEST,
            "Your key is too long",
        ));
    }
    Ok(())
}

/// Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag>`.
pub fn check_put_conditions(
    headers: &HeaderMap,
    current: Option<&ObjectRecord>,
    key: &str,
) -> S3Result<()> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(v) = get("if-none-match") {
        if v.trim() != "*" {
            return Err(S3Error::not_implemented(
                "If-None-Match other than * on PUT",
            ));
        }
        if current.is_some() {
            return Err(S3Error::precondition_failed("If-None-Match"));
        }
    }
    if let Some(v) = get("if-match") {
        match current {
            None => return Err(S3Error::no_such_key(key)),
            Some(c) if !etag_matches(v, &c.etag) => {
                return Err(S3Error::precondition_failed("If-Match"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The attributes S3 stores with an object, from the request headers. `aws-chunked` is a
/// transfer detail, never the object's Content-Encoding.
pub fn attributes_from_headers(headers: &HeaderMap) -> S3Result<ObjectAttributes> {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_encoding = get("content-encoding").and_then(|v| {
        let kept: Vec<&str> = v
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    let mut user_metadata = BTreeMap::new();
    let mut meta_bytes = 0;
    for (name, value) in headers {
        if let Some(meta) = name.as_str().strip_prefix("x-amz-meta-") {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            meta_bytes += meta.len() + value.len();
            user_metadata.insert(meta.to_string(), value);
        }
    }
    if meta_bytes > MAX_METADATA_BYTES {
        return Err(S3Error::new(
            "MetadataTooLarge",
            StatusCode::BAD_REQUEST,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(ObjectAttributes {
        content_type: Some(get("content-type").unwrap_or_else(|| "binary/octet-stream".into())),
        content_encoding,
        content_disposition: get("content-disposition"),
        content_language: get("content-language"),
        cache_control: get("cache-control"),
        expires: get("expires"),
        user_metadata,
    })
}

pub async fn get_object(ctx: &Ctx, head: bool) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    let part_number = match ctx.route.query("partNumber") {
        None => None,
        Some(_) => Some(part_number_param(ctx)?),
    };
    if part_number.is_some() && ctx.header("range").is_some() {
        return Err(S3Error::invalid_request(
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    existing_bucket(ctx, bucket)?;
    let record = ctx
        .gw
        .meta
        .object(bucket, key)?
        .ok_or_else(|| S3Error::no_such_key(key))?;
    match Conditions::from_headers(&ctx.headers, "").evaluate(&record.etag, record.modified_ms) {
        Verdict::Proceed => {}
        Verdict::NotModified => {
            let mut r = response::empty(StatusCode::NOT_MODIFIED);
            response::set_header(&mut r, "etag", &format!("\"{}\"", record.etag));
            response::set_header(&mut r, "last-modified", &http_date(record.modified_ms));
            return Ok(r);
        }
        Verdict::PreconditionFailed(which) => return Err(S3Error::precondition_failed(which)),
    }
    let (status, span) = match part_number {
        Some(n) => part_span(&record, n)?,
        None => match range::parse(ctx.header("range"), record.size) {
            RangeRequest::Whole => (StatusCode::OK, 0..record.size),
            RangeRequest::Part(span) => (StatusCode::PARTIAL_CONTENT, span),
            RangeRequest::Unsatisfiable => {
                return Err(S3Error::new(
                    "InvalidRange",
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "The requested range is not satisfiable",
                )
                .with("RangeRequested", ctx.header("range").unwrap_or(""))
                .with("ActualObjectSize", record.size.to_string()))
            }
        },
    };
    let mut r = if head {
        response::empty(status)
    } else {
        let read = read_object(&ctx.gw, bucket, &record, span.clone()).await?;
        let mut r = http::Response::new(response::stream_body(read.body));
        *r.status_mut() = status;
        r
    };
    object_headers(&mut r, &record, ctx);
    response::set_header(
        &mut r,
        "content-length",
        &(span.end - span.start).to_string(),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        response::set_header(
            &mut r,
            "content-range",
            &format!(
                "bytes {}-{}/{}",
                span.start,
                span.end.saturating_sub(1),
                record.size
            ),
        );
    }
    if !record.parts.is_empty() && part_number.is_some() {
        response::set_header(
            &mut r,
            "x-amz-mp-parts-count",
            &record.parts.len().to_string(),
        );
    }
    let checksum_mode = ctx
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"));
    if checksum_mode {
        // The whole object's checksum, or the part's when one part was asked for; a plain
        // range has none.
        let shown = match part_number {
            Some(n) if !record.parts.is_empty() => record
                .parts
                .get(n as usize - 1)
                .and_then(|p| p.checksum.as_ref())
                .map(|c| (c, "FULL_OBJECT")),
            _ if status == StatusCode::OK || part_number.is_some() => {
                record.checksum.as_ref().map(|c| {
                    let kind = record.checksum_type.map_or("FULL_OBJECT", |t| t.name());
                    (c, kind)
                })
            }
            _ => None,
        };
        if let Some((c, kind)) = shown {
            response::set_header(&mut r, c.algorithm.header_name(), &c.value);
            response::set_header(&mut r, "x-amz-checksum-type", kind);
        }
    }
    Ok(r)
}

/// The bytes of part `n`. An object written in one piece is its own single part 1.
fn part_span(record: &ObjectRecord, n: u32) -> S3Result<(StatusCode, std::ops::Range<u64>)> {
    let invalid = || {
        S3Error::new(
            "InvalidPartNumber",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested partnumber is not satisfiable",
        )
        .with("PartNumberRequested", n.to_string())
        .with("ActualPartCount", record.parts.len().max(1).to_string())
    };
    if record.parts.is_empty() {
        return if n == 1 {
            Ok((StatusCode::OK, 0..record.size))
        } else {
            Err(invalid())
        };
    }
    let index = n as usize - 1;
    let part = record.parts.get(index).ok_or_else(invalid)?;
    let start: u64 = record.parts[..index].iter().map(|p| p.size).sum();
    // An empty part has no byte range to show.
    let status = if part.size == 0 {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    Ok((status, start..start + part.size))
}

/// Headers every GET/HEAD of an object carries, with response-* query overrides applied.
fn object_headers(r: &mut S3Response, record: &ObjectRecord, ctx: &Ctx) {
    let a = &record.attributes;
    response::set_header(r, "etag", &format!("\"{}\"", record.etag));
    response::set_header(r, "last-modified", &http_date(record.modified_ms));
    response::set_header(r, "accept-ranges", "bytes");
    let pairs = [
        ("content-type", &a.content_type, "response-content-type"),
        (
            "content-encoding",
            &a.content_encoding,
            "response-content-encoding",
        ),
        (
            "content-disposition",
            &a.content_disposition,
            "response-content-disposition",
        ),
        (
            "content-language",
            &a.content_language,
            "response-content-language",
        ),
        ("cache-control", &a.cache_control, "response-cache-control"),
        ("expires", &a.expires, "response-expires"),
    ];
    for (header, stored, override_param) in pairs {
        if let Some(v) = ctx.route.query(override_param).or(stored.as_deref()) {
            response::set_header(r, header, v);
        }
    }
    for (name, value) in &a.user_metadata {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            r.headers_mut().insert(n, v);
        }
    }
}

pub async fn delete_object(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    existing_bucket(ctx, bucket)?;
    delete_key(ctx, bucket, key).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// Removes a key from the index (durably), then its replicas. Deleting a missing key is fine.
pub async fn delete_key(ctx: &Ctx, bucket: &str, key: &str) -> S3Result<()> {
    let _guard = ctx.gw.locks.lock(bucket, key).await;
    existing_bucket(ctx, bucket)?;
    let Some(record) = ctx.gw.meta.delete_object(bucket, key)? else {
        return Ok(());
    };
    ctx.gw.meta.sync().await?;
    for replica in &record.replicas {
        delete_replica(&ctx.gw, replica).await;
    }
    Ok(())
}
