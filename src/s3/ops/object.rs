//! Single-object operations: PutObject, GetObject, HeadObject, DeleteObject.

use std::collections::BTreeMap;

use hansa_backends::ObjectAttributes;
use http::{HeaderMap, StatusCode};

use super::support::{
    existing_bucket, part_number_param, read_current, store_body, version_header, version_param,
};
use crate::meta::ObjectRecord;
use crate::s3::access_log;
use crate::s3::body::verified_body;
use crate::s3::body::BodyRules;
use crate::s3::conditions::{Conditions, Verdict};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::range::{self, RangeRequest};
use crate::s3::response::{self, http_date, now_ms, S3Response};
use crate::store::{self, BodyFacts, NewObject, WriteCondition};

/// S3's limit for a single PUT.
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// S3's limit on user metadata (names and values of all x-amz-meta-* headers).
const MAX_METADATA_BYTES: usize = 2048;
const MAX_KEY_BYTES: usize = 1024;

pub async fn put_object(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let bucket_record = existing_bucket(ctx, &bucket)?;
    check_key(&key)?;
    let access = super::acl::new_object_acl(ctx, &bucket_record)?;
    let attributes = attributes_from_headers(&ctx.headers)?;
    let tags = super::tagging::tags_from_headers(&ctx.headers)?;
    let payload = ctx.verified.payload.clone();
    let rules = BodyRules::from_headers(&ctx.headers, &payload)?.limit(MAX_PUT_SIZE)?;
    let known_etag = rules.content_md5.map(hex::encode);
    let condition = write_condition(&ctx.headers)?;
    check_condition_early(ctx, &condition, &bucket, &key)?;
    let lock = super::lock::new_object_lock(ctx, &bucket, true)?;
    refuse_locked_overwrite(ctx, &bucket, &key)?;

    let raw = ctx.take_body()?;
    let size = rules.declared_len;
    let (body, outcome) = verified_body(raw, payload, rules, &ctx.live.auth);
    let object = NewObject {
        bucket: bucket.clone(),
        key: key.clone(),
        attributes,
        size,
        known_etag,
        owner: access.owner,
        condition,
        acl: access.acl,
        tags,
        lock,
    };
    let record = store::put_object(&ctx.gw.store, object, store_body(body), move || {
        outcome.get().map(|s| BodyFacts {
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
    version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    access_log::note_written(&mut r, &record);
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

/// Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag list>`.
pub fn write_condition(headers: &HeaderMap) -> S3Result<WriteCondition> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(v) = get("if-none-match") {
        if v.trim() != "*" {
            return Err(S3Error::not_implemented(
                "If-None-Match other than * on PUT",
            ));
        }
        return Ok(WriteCondition::IfAbsent);
    }
    Ok(match get("if-match") {
        Some(list) => WriteCondition::IfMatch(
            list.split(',')
                .map(|e| {
                    e.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .to_string()
                })
                .collect(),
        ),
        None => WriteCondition::Always,
    })
}

/// An overwrite of a version object lock protects, refused before the body is read (the store
/// refuses it again when the write commits).
pub fn refuse_locked_overwrite(ctx: &Ctx, bucket: &str, key: &str) -> S3Result<()> {
    let versioning = store::versioning(&ctx.gw.store, bucket)?;
    match store::object(&ctx.gw.store, bucket, key)? {
        // With versioning enabled (as object lock requires) the version is kept, not replaced;
        // a suspended bucket keeps a version that has its own id.
        Some(current)
            if versioning == store::VersioningState::Enabled
                || (versioning.keeps_versions() && current.versioned) =>
        {
            Ok(())
        }
        Some(current) => {
            store::lock::may_remove(&current.lock, false, now_ms()).map_err(|_| S3Error::locked())
        }
        None => Ok(()),
    }
}

/// A write's condition checked before its body is read, for an early answer (the store checks
/// it again when the write commits).
pub fn check_condition_early(
    ctx: &Ctx,
    condition: &WriteCondition,
    bucket: &str,
    key: &str,
) -> S3Result<()> {
    if *condition == WriteCondition::Always {
        return Ok(());
    }
    let current = store::object(&ctx.gw.store, bucket, key)?;
    Ok(condition.check(current.as_ref(), key)?)
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
    let version = version_param(ctx)?;
    let range_header = ctx.header("range");
    let (record, answer, body) = read_current(ctx, bucket, key, version, |record| {
        let answer = plan_read(ctx, record, part_number, range_header)?;
        let span = match &answer {
            ReadAnswer::Content { span, .. } if !head => Some(span.clone()),
            _ => None,
        };
        Ok((answer, span))
    })
    .await?;
    let (status, span) = match answer {
        ReadAnswer::NotModified => {
            let mut r = response::empty(StatusCode::NOT_MODIFIED);
            response::set_header(&mut r, "etag", &format!("\"{}\"", record.etag));
            response::set_header(&mut r, "last-modified", &http_date(record.modified_ms));
            version_header(ctx, &mut r, bucket, record.shown_version_id())?;
            return Ok(r);
        }
        ReadAnswer::Content { status, span } => (status, span),
    };
    let mut r = match body {
        Some(body) => {
            let mut r = http::Response::new(response::stream_body(body.body));
            *r.status_mut() = status;
            access_log::note_served(&mut r, body.served_by.as_deref());
            r
        }
        None => response::empty(status),
    };
    object_headers(&mut r, &record, ctx);
    super::lock::lock_headers(&mut r, &record);
    if version.is_some() {
        response::set_header(&mut r, "x-amz-version-id", record.shown_version_id());
    } else {
        version_header(ctx, &mut r, bucket, record.shown_version_id())?;
    }
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

/// What a GET or HEAD answers, decided from the record alone.
enum ReadAnswer {
    NotModified,
    Content {
        status: StatusCode,
        span: std::ops::Range<u64>,
    },
}

/// Conditions, then the part or range asked for.
fn plan_read(
    ctx: &Ctx,
    record: &ObjectRecord,
    part_number: Option<u32>,
    range_header: Option<&str>,
) -> S3Result<ReadAnswer> {
    match Conditions::from_headers(&ctx.headers, "").evaluate(&record.etag, record.modified_ms) {
        Verdict::Proceed => {}
        Verdict::NotModified => return Ok(ReadAnswer::NotModified),
        Verdict::PreconditionFailed(which) => return Err(S3Error::precondition_failed(which)),
    }
    let (status, span) = match part_number {
        Some(n) => part_span(record, n)?,
        None => match range::parse(range_header, record.size) {
            RangeRequest::Whole => (StatusCode::OK, 0..record.size),
            RangeRequest::Part(span) => (StatusCode::PARTIAL_CONTENT, span),
            RangeRequest::Unsatisfiable => {
                return Err(S3Error::new(
                    "InvalidRange",
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "The requested range is not satisfiable",
                )
                .with("RangeRequested", range_header.unwrap_or(""))
                .with("ActualObjectSize", record.size.to_string()))
            }
        },
    };
    Ok(ReadAnswer::Content { status, span })
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
    super::tagging::set_count_header(r, record);
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
    let version = version_param(ctx)?;
    let outcome = delete_key(ctx, bucket, key, version).await?;
    let mut r = response::empty(StatusCode::NO_CONTENT);
    if outcome.delete_marker {
        response::set_header(&mut r, "x-amz-delete-marker", "true");
    }
    if let Some(v) = &outcome.version_id {
        response::set_header(&mut r, "x-amz-version-id", v);
    }
    Ok(r)
}

/// Removes a key from the index (durably), then its replicas; in a bucket with versioning,
/// makes a delete marker, or with `version`, removes that version for good. Deleting a
/// missing key or version is fine; a version object lock protects is refused.
pub async fn delete_key(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<store::DeleteOutcome> {
    let bypass = super::lock::bypass_governance(ctx, bucket, key)?;
    let store = &ctx.gw.store;
    Ok(match version {
        Some(v) => store::delete_version(store, bucket, key, v, bypass).await?,
        None => {
            store::delete_object_by(store, bucket, key, &ctx.credential.access_key_id, bypass)
                .await?
        }
    })
}
