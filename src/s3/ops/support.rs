//! Small pieces several operations share: reading XML bodies, bucket lookups.

use std::ops::Range;

use crate::gateway::Gateway;
use crate::meta::{BucketRecord, ObjectRecord};
use crate::replication::{open_replicas, ReplicaRead};
use crate::s3::body::{verified_body, BodyRules};
use crate::s3::conditions::{Conditions, Verdict};
use crate::s3::error::{S3Error, S3Result};
use crate::s3::handler::Ctx;
use futures::StreamExt;

/// The bucket's index record, or NoSuchBucket.
pub fn existing_bucket(ctx: &Ctx, bucket: &str) -> S3Result<BucketRecord> {
    ctx.gw
        .meta
        .bucket(bucket)?
        .ok_or_else(|| S3Error::no_such_bucket(bucket))
}

/// Opens `span` of an object, from its replicas in the bucket policy's read order.
pub async fn read_object(
    gw: &Gateway,
    bucket: &str,
    record: &ObjectRecord,
    span: Range<u64>,
) -> S3Result<ReplicaRead> {
    let replicas = gw
        .placement
        .read_order(bucket, &record.replicas)
        .into_iter()
        .cloned()
        .collect();
    Ok(open_replicas(&gw.backends, replicas, span).await?)
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

/// Reads a small request document (XML), verified like any body, bounded in size.
pub async fn read_small_body(ctx: &mut Ctx) -> S3Result<Vec<u8>> {
    let limit = ctx.gw.config.limits.max_xml_bytes;
    let payload = ctx.verified.payload.clone();
    let headers = ctx.headers.clone();
    let raw = ctx.take_body()?;
    // A document request may legitimately come without Content-Length (empty body).
    let rules = match BodyRules::from_headers(&headers, &payload) {
        Ok(r) => r,
        Err(_) if !has_body(&headers) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if rules.declared_len > limit as u64 {
        return Err(too_large(limit));
    }
    let (mut stream, _) = verified_body(raw, payload, rules, &ctx.gw.auth);
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
