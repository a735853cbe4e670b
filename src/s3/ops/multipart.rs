//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy and
//! AbortMultipartUpload. (Completion is in `multipart_complete`, the listings in
//! `multipart_list`.)
//!
//! An upload is an index record naming its targets, chosen at creation, each with the
//! backend's handle for the upload. Every part streams to every target as it arrives (the
//! fan-out shares each buffer between targets) and is recorded with one receipt per target.
//! Completion composes the chosen parts on each backend and commits the object like any write:
//! intent first, the 200 only after the quorum holds the object and the index is flushed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use hansa_backends::{naming, PhysicalName, Stamp};
use http::StatusCode;
use md5::{Digest, Md5};

use super::bucket::check_canned_acl;
use super::copy::parse_copy_source;
use super::object::{attributes_from_headers, check_key};
use super::support::{check_copy_source_conditions, existing_bucket, read_object};
use super::write::flow;
use crate::gateway::Gateway;
use crate::meta::{PartRecord, UploadRecord, UploadTarget};
use crate::replication::{fan_out_with, KeyGuard, PutOutcome, ReplicationError, Target};
use crate::s3::body::{verified_body, BodyRules};
use crate::s3::checksum::{Checksum, ChecksumAlgorithm};
use crate::s3::composite::{self, ChecksumType};
use crate::s3::error::{S3Error, S3Result};
use crate::s3::handler::Ctx;
use crate::s3::response::{self, iso8601, now_ms, S3Response};
use crate::s3::xml::{self, S3_NS};

pub const MAX_PART_NUMBER: u32 = 10_000;
/// Every part but the last must be at least this large.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;

pub fn no_such_upload(upload_id: &str) -> S3Error {
    S3Error::new(
        "NoSuchUpload",
        StatusCode::NOT_FOUND,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
    .with("UploadId", upload_id)
}

pub fn upload_id_param(ctx: &Ctx) -> S3Result<String> {
    ctx.route
        .query("uploadId")
        .map(str::to_string)
        .ok_or_else(|| S3Error::invalid_request("missing uploadId"))
}

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

/// The upload, if it exists for this bucket and key.
pub fn load_upload(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<UploadRecord> {
    if !naming::is_safe_token(upload_id) {
        return Err(no_such_upload(upload_id));
    }
    gw.meta
        .upload(bucket, key, upload_id)?
        .ok_or_else(|| no_such_upload(upload_id))
}

fn checksum_headers(ctx: &Ctx) -> S3Result<(Option<ChecksumAlgorithm>, Option<ChecksumType>)> {
    let algorithm = match ctx.header("x-amz-checksum-algorithm") {
        None => None,
        Some(name) => Some(ChecksumAlgorithm::from_name(name).ok_or_else(|| {
            S3Error::invalid_request(format!(
                "Checksum algorithm provided is unsupported: {name}"
            ))
        })?),
    };
    let kind = match ctx.header("x-amz-checksum-type") {
        None => None,
        Some(name) => Some(ChecksumType::from_name(name).ok_or_else(|| {
            S3Error::invalid_request(format!("Value for x-amz-checksum-type is invalid: {name}"))
        })?),
    };
    match (algorithm, kind) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(S3Error::invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(a), kind) => {
            let kind = kind.unwrap_or_else(|| ChecksumType::default_for(a));
            if !composite::allowed(a, kind) {
                return Err(S3Error::invalid_request(format!(
                    "The {} checksum type cannot be used with the {} checksum algorithm.",
                    kind.name(),
                    a.name().to_ascii_lowercase()
                )));
            }
            Ok((Some(a), Some(kind)))
        }
    }
}

pub async fn create_multipart_upload(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    existing_bucket(ctx, &bucket)?;
    check_key(&key)?;
    check_canned_acl(ctx)?;
    let attributes = attributes_from_headers(&ctx.headers)?;
    let (checksum_algorithm, checksum_type) = checksum_headers(ctx)?;
    let gw = ctx.gw.clone();
    // Time-ordered ids: a key's uploads list in the order they were started.
    let upload_id = uuid::Uuid::now_v7().simple().to_string();
    let plan = gw.placement.write_plan(&bucket, &key);
    let targets = super::write::choose_targets(&gw, &bucket, &key, &plan.targets).await?;
    let stamp = Stamp {
        bucket: bucket.clone(),
        key: key.clone(),
        version_id: upload_id.clone(),
        etag: String::new(),
        size: 0,
        checksum: None,
        late: None,
    };
    let created = futures::future::join_all(targets.iter().map(|t| {
        t.backend
            .create_upload(&t.name, &upload_id, &attributes, &stamp)
    }))
    .await;
    let mut upload_targets = Vec::with_capacity(targets.len());
    let mut started = 0;
    for (t, result) in targets.iter().zip(created) {
        let handle = match result {
            Ok(handle) => {
                started += 1;
                handle
            }
            Err(e) => {
                tracing::warn!(backend = t.backend.id(), error = %e, "could not start the upload on a backend; its replica will be pending");
                String::new()
            }
        };
        upload_targets.push(UploadTarget {
            backend: t.backend.id().to_string(),
            name: t.name.as_str().to_string(),
            handle,
        });
    }
    let record = UploadRecord {
        bucket: bucket.clone(),
        key: key.clone(),
        upload_id: upload_id.clone(),
        initiated_ms: now_ms(),
        owner: ctx.credential.access_key_id.clone(),
        attributes,
        checksum_algorithm,
        checksum_type,
        targets: upload_targets,
    };
    if started < plan.write_quorum {
        abort_on_backends(&gw, &record).await;
        return Err(ReplicationError::QuorumNotMet {
            confirmed: started,
            needed: plan.write_quorum,
            errors: "starting the upload failed".into(),
        }
        .into());
    }
    gw.meta.create_upload(&record)?;
    gw.meta.sync().await?;
    let doc = xml::InitiateMultipartUploadResult {
        xmlns: S3_NS,
        bucket,
        key,
        upload_id,
    };
    let mut r = response::xml(
        StatusCode::OK,
        xml::to_xml("InitiateMultipartUploadResult", &doc)?,
    );
    if let (Some(a), Some(t)) = (checksum_algorithm, checksum_type) {
        response::set_header(&mut r, "x-amz-checksum-algorithm", a.name());
        response::set_header(&mut r, "x-amz-checksum-type", t.name());
    }
    Ok(r)
}

/// Locks for one part: the part exclusively (a part sent twice at once lands in order), the
/// upload shared (completion and abort wait for parts in flight), the bucket shared.
async fn lock_part(
    gw: &Gateway,
    bucket: &str,
    upload_id: &str,
    part_number: u32,
) -> (KeyGuard, KeyGuard) {
    let bucket_guard = gw
        .locks
        .lock(bucket, &format!("\u{0}upload/{upload_id}/{part_number}"))
        .await;
    let upload_guard = gw
        .upload_locks
        .lock(upload_id, &part_number.to_string())
        .await;
    (bucket_guard, upload_guard)
}

/// What a part's body turned out to be.
struct PartContent {
    size: u64,
    md5: [u8; 16],
    checksum: Option<Checksum>,
}

/// Streams one part to every target of the upload and records it.
async fn store_part<S>(
    gw: &Gateway,
    upload: &UploadRecord,
    part_number: u32,
    size: u64,
    body: S,
    content: impl Fn() -> Option<PartContent>,
) -> S3Result<PartRecord>
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
{
    let targets: Vec<Target> = upload
        .targets
        .iter()
        .filter(|t| !t.handle.is_empty())
        .filter_map(|t| upload_target(gw, t))
        .collect();
    let handle_of = |backend: &str| {
        upload
            .targets
            .iter()
            .find(|t| t.backend == backend)
            .map(|t| t.handle.clone())
            .unwrap_or_default()
    };
    let (outcomes, read_result) = fan_out_with(
        body,
        Some(size),
        targets,
        &flow(gw),
        || {},
        |target, stream| {
            let handle = handle_of(target.backend.id());
            async move {
                let result = target
                    .backend
                    .put_part(&target.name, &handle, part_number, size, stream)
                    .await;
                PutOutcome { target, result }
            }
            .boxed()
        },
    )
    .await;
    read_result?;
    let write_quorum = gw
        .placement
        .write_plan(&upload.bucket, &upload.key)
        .write_quorum;
    let confirmed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let Some(content) = content().filter(|_| confirmed >= write_quorum) else {
        return Err(super::write::quorum_not_met(&outcomes, write_quorum));
    };
    let mut receipts = vec![None; upload.targets.len()];
    for o in &outcomes {
        let Some(slot) = upload
            .targets
            .iter()
            .position(|t| t.backend == o.target.backend.id())
        else {
            continue;
        };
        match &o.result {
            Ok(put) => receipts[slot] = Some(put.etag.clone()),
            Err(e) => {
                tracing::warn!(backend = o.target.backend.id(), part_number, error = %e, "part upload failed on a backend; its replica will be pending")
            }
        }
    }
    let part = PartRecord {
        size: content.size,
        etag: hex::encode(content.md5),
        checksum: content.checksum,
        modified_ms: now_ms(),
        receipts,
    };
    gw.meta.put_part(&upload.upload_id, part_number, &part)?;
    gw.meta.sync().await?;
    Ok(part)
}

pub async fn upload_part(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let upload_id = upload_id_param(ctx)?;
    let part_number = part_number_param(ctx)?;
    existing_bucket(ctx, &bucket)?;
    let payload = ctx.verified.payload.clone();
    let mut rules = BodyRules::from_headers(&ctx.headers, &payload)?;
    if rules.declared_len > MAX_PART_SIZE {
        return Err(S3Error::entity_too_large());
    }
    let gw = ctx.gw.clone();
    let _guards = lock_part(&gw, &bucket, &upload_id, part_number).await;
    let upload = load_upload(&gw, &bucket, &key, &upload_id)?;
    if let Some(expected) = upload.checksum_algorithm {
        let sent = rules
            .checksum
            .as_ref()
            .map(|c| c.algorithm)
            .or(rules.trailer_checksum)
            .or(rules.compute_checksum);
        match sent {
            Some(a) if a != expected => {
                return Err(S3Error::invalid_request(format!(
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    expected.name().to_ascii_lowercase(),
                    a.name().to_ascii_lowercase()
                )))
            }
            Some(_) => {}
            // The upload's checksum needs every part's; compute it when the client sent none.
            None => rules.compute_checksum = Some(expected),
        }
    }
    let size = rules.declared_len;
    let raw = ctx.take_body()?;
    let (body, outcome) = verified_body(raw, payload, rules, &gw.auth);
    let body = body.map(|item| item.map_err(ReplicationError::from));
    let part = store_part(&gw, &upload, part_number, size, body, || {
        outcome.get().map(|s| PartContent {
            size: s.len,
            md5: s.md5,
            checksum: s.checksum,
        })
    })
    .await?;
    let mut r = response::empty(StatusCode::OK);
    response::set_header(&mut r, "etag", &format!("\"{}\"", part.etag));
    if let Some(c) = &part.checksum {
        response::set_header(&mut r, c.algorithm.header_name(), &c.value);
    }
    Ok(r)
}

/// `x-amz-copy-source-range: bytes=first-last`, both inclusive and inside the source.
fn parse_copy_range(value: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        )
        .with("RangeRequested", value)
        .with("ActualObjectSize", size.to_string()));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let upload_id = upload_id_param(ctx)?;
    let part_number = part_number_param(ctx)?;
    existing_bucket(ctx, &bucket)?;
    let (src_bucket, src_key) = parse_copy_source(ctx.header("x-amz-copy-source").unwrap_or(""))?;
    if !ctx.credential.may_access(&src_bucket) {
        return Err(S3Error::access_denied());
    }
    existing_bucket(ctx, &src_bucket)?;
    let gw = ctx.gw.clone();
    let _guards = lock_part(&gw, &bucket, &upload_id, part_number).await;
    let upload = load_upload(&gw, &bucket, &key, &upload_id)?;
    let src = gw
        .meta
        .object(&src_bucket, &src_key)?
        .ok_or_else(|| S3Error::no_such_key(&src_key))?;
    check_copy_source_conditions(&ctx.headers, &src)?;
    let span = match ctx.header("x-amz-copy-source-range") {
        Some(v) => parse_copy_range(v, src.size)?,
        None => 0..src.size,
    };
    let size = span.end - span.start;
    if size > MAX_PART_SIZE {
        return Err(S3Error::invalid_request(format!(
            "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PART_SIZE}"
        )));
    }
    let body = if size == 0 {
        futures::stream::empty().boxed()
    } else {
        read_object(&gw, &src_bucket, &src, span).await?.body
    };
    let digest = Arc::new(Mutex::new(PartDigest::new(upload.checksum_algorithm)));
    let hashing = digest.clone();
    let body = body.map(move |item| match item {
        Ok(chunk) => {
            if let Ok(mut d) = hashing.lock() {
                d.update(&chunk);
            }
            Ok(chunk)
        }
        Err(e) => Err(ReplicationError::NoReplica {
            errors: e.to_string(),
        }),
    });
    let part = store_part(&gw, &upload, part_number, size, body, || {
        digest.lock().ok().and_then(|d| d.summary(size))
    })
    .await?;
    let doc = xml::CopyPartResult {
        xmlns: S3_NS,
        last_modified: iso8601(part.modified_ms),
        etag: format!("\"{}\"", part.etag),
        checksums: xml::ChecksumElements::of(part.checksum.as_ref()),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("CopyPartResult", &doc)?,
    ))
}

/// MD5 and the upload's checksum over a copied range, as it streams.
struct PartDigest {
    md5: Md5,
    checksum: Option<crate::s3::checksum::ChecksumHasher>,
    len: u64,
}

impl PartDigest {
    fn new(algorithm: Option<ChecksumAlgorithm>) -> Self {
        PartDigest {
            md5: Md5::new(),
            checksum: algorithm.map(|a| a.hasher()),
            len: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = self.checksum.as_mut() {
            h.update(data);
        }
        self.len += data.len() as u64;
    }

    /// The part's content, once every expected byte went through.
    fn summary(&self, expected: u64) -> Option<PartContent> {
        (self.len == expected).then(|| PartContent {
            size: self.len,
            md5: self.md5.clone().finalize().into(),
            checksum: self.checksum.clone().map(|h| h.finish_checksum()),
        })
    }
}

/// The backend and physical name of one of an upload's targets, if still configured.
pub(super) fn upload_target(gw: &Gateway, t: &UploadTarget) -> Option<Target> {
    let backend = gw.backends.get(&t.backend)?;
    let name = PhysicalName::parse(&t.name).ok()?;
    Some(Target {
        backend: backend.clone(),
        name,
    })
}

/// Removes an upload's staged parts from every backend (best effort; logged).
pub async fn abort_on_backends(gw: &Gateway, upload: &UploadRecord) {
    let aborts = upload
        .targets
        .iter()
        .filter(|t| !t.handle.is_empty())
        .filter_map(|t| upload_target(gw, t).map(|target| (t, target)))
        .map(|(t, target)| async move {
            if let Err(e) = target.backend.abort_upload(&target.name, &t.handle).await {
                tracing::warn!(backend = %t.backend, upload = %upload.upload_id, error = %e, "could not remove an upload's staged parts");
            }
        });
    futures::future::join_all(aborts).await;
}

/// Removes the copies a completion of `upload` left when it missed its quorum: objects
/// stamped with the upload's version that the index does not hold.
async fn remove_failed_completions(gw: &Gateway, upload: &UploadRecord) -> S3Result<()> {
    let indexed = gw.meta.object(&upload.bucket, &upload.key)?;
    if indexed.is_some_and(|r| r.version_id == upload.upload_id) {
        return Ok(());
    }
    for t in &upload.targets {
        let Some(target) = upload_target(gw, t) else {
            continue;
        };
        let ours = match target.backend.head(&target.name).await {
            Ok(info) => info.stamp.is_some_and(|s| s.version_id == upload.upload_id),
            Err(_) => false,
        };
        if ours {
            if let Err(e) = target.backend.delete(&target.name).await {
                tracing::warn!(backend = %t.backend, upload = %upload.upload_id, error = %e, "could not remove the copy of a failed completion");
            }
        }
    }
    Ok(())
}

/// Aborts an upload: the index forgets it (durably) and every backend drops its parts, and
/// any copy a failed completion left.
pub async fn abort_upload(gw: &Gateway, upload: &UploadRecord) -> S3Result<()> {
    // The key's lock, taken before the upload's as a completion does: no write of the key
    // runs while copies stamped with this upload are looked for and removed.
    let _key = gw.locks.lock(&upload.bucket, &upload.key).await;
    abort_upload_holding_key(gw, upload).await
}

/// [`abort_upload`] for a caller that already keeps writes away from the key (DeleteBucket
/// holds the whole bucket).
pub async fn abort_upload_holding_key(gw: &Gateway, upload: &UploadRecord) -> S3Result<()> {
    let _guard = gw.upload_locks.lock_bucket(&upload.upload_id).await;
    // It may have been completed or aborted while this waited.
    if gw
        .meta
        .upload(&upload.bucket, &upload.key, &upload.upload_id)?
        .is_none()
    {
        return Ok(());
    }
    gw.meta
        .delete_upload(&upload.bucket, &upload.key, &upload.upload_id)?;
    gw.meta.sync().await?;
    abort_on_backends(gw, upload).await;
    remove_failed_completions(gw, upload).await
}

pub async fn abort_multipart_upload(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    let upload_id = upload_id_param(ctx)?;
    existing_bucket(ctx, bucket)?;
    let upload = load_upload(&ctx.gw, bucket, key, &upload_id)?;
    abort_upload(&ctx.gw, &upload).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// Aborts uploads started more than `max_age` ago; returns how many.
pub async fn abort_stale_uploads(gw: &Gateway, max_age: Duration) -> S3Result<usize> {
    let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
    let mut aborted = 0;
    for upload in gw.meta.all_uploads()? {
        if upload.initiated_ms > cutoff {
            continue;
        }
        abort_upload(gw, &upload).await?;
        tracing::info!(bucket = %upload.bucket, key = %upload.key, upload = %upload.upload_id, "aborted an abandoned multipart upload");
        aborted += 1;
    }
    Ok(aborted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), 0..10);
        assert_eq!(parse_copy_range("bytes=99-99", 100).unwrap(), 99..100);
        assert_eq!(
            parse_copy_range("bytes=10-100", 100).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            parse_copy_range("bytes=5-4", 100).unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            parse_copy_range("bytes=-4", 100).unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            parse_copy_range("0-4", 100).unwrap_err().code,
            "InvalidArgument"
        );
    }
}
