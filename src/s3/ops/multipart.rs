//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload and AbortMultipartUpload. (The listings are in `multipart_list`.)
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
use hansa_backends::{naming, BackendError, CompletedPart, PhysicalName, Stamp};
use http::StatusCode;
use md5::{Digest, Md5};

use super::bucket::check_canned_acl;
use super::copy::parse_copy_source;
use super::object::{attributes_from_headers, check_key, check_put_conditions};
use super::support::{existing_bucket, read_small_body};
use super::write::{begin_write, commit_write, flow, Commit, Content, UploadIntent};
use crate::gateway::Gateway;
use crate::meta::{PartRecord, PartSummary, UploadRecord, UploadTarget};
use crate::replication::{
    fan_out_with, open_replicas, KeyGuard, PutOutcome, ReplicationError, Target,
};
use crate::s3::body::{verified_body, BodyRules};
use crate::s3::checksum::{Checksum, ChecksumAlgorithm};
use crate::s3::composite::{self, ChecksumType};
use crate::s3::conditions::{Conditions, Verdict};
use crate::s3::error::{S3Error, S3Result};
use crate::s3::handler::Ctx;
use crate::s3::response::{self, iso8601, now_ms, S3Response};
use crate::s3::xml::{self, S3_NS};

pub const MAX_PART_NUMBER: u32 = 10_000;
/// Every part but the last must be at least this large.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// Completion answers at once when it is this quick; otherwise the 200 goes out and
/// whitespace keeps the connection alive until the result document follows, as S3 does.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(2);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);

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
    let mut targets = Vec::new();
    for t in upload.targets.iter().filter(|t| !t.handle.is_empty()) {
        let (Some(backend), Ok(name)) = (gw.backends.get(&t.backend), PhysicalName::parse(&t.name))
        else {
            continue;
        };
        targets.push(Target {
            backend: backend.clone(),
            name,
        });
    }
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
    let content = content().filter(|_| confirmed >= write_quorum);
    let Some(content) = content else {
        let errors: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                o.result
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", o.target.backend.id()))
            })
            .collect();
        if outcomes
            .iter()
            .any(|o| matches!(o.result, Err(BackendError::Throttled { .. })))
        {
            return Err(ReplicationError::Throttled.into());
        }
        return Err(ReplicationError::QuorumNotMet {
            confirmed,
            needed: write_quorum,
            errors: errors.join("; "),
        }
        .into());
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
        return Err(S3Error::new(
            "EntityTooLarge",
            StatusCode::BAD_REQUEST,
            "Your proposed upload exceeds the maximum allowed object size.",
        ));
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
    match Conditions::from_headers(&ctx.headers, "x-amz-copy-source-")
        .evaluate(&src.etag, src.modified_ms)
    {
        Verdict::Proceed => {}
        Verdict::NotModified => {
            return Err(S3Error::precondition_failed(
                "x-amz-copy-source-If-None-Match",
            ))
        }
        Verdict::PreconditionFailed(which) => {
            return Err(S3Error::precondition_failed(&format!(
                "x-amz-copy-source-{which}"
            )))
        }
    }
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
    let replicas = gw
        .placement
        .read_order(&src_bucket, &src.replicas)
        .into_iter()
        .cloned()
        .collect();
    let body = if size == 0 {
        futures::stream::empty().boxed()
    } else {
        open_replicas(&gw.backends, replicas, span).await?.body
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

/// The parts a completion names, checked against what was uploaded.
struct ChosenParts {
    numbers: Vec<u32>,
    records: Vec<PartRecord>,
}

fn choose_parts(
    gw: &Gateway,
    upload: &UploadRecord,
    requested: &[xml::CompletedPartEntry],
) -> S3Result<ChosenParts> {
    if requested.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let uploaded: std::collections::HashMap<u32, PartRecord> = gw
        .meta
        .parts(&upload.upload_id, 0, MAX_PART_NUMBER as usize + 1)?
        .into_iter()
        .collect();
    let invalid_part = || {
        S3Error::new(
            "InvalidPart",
            StatusCode::BAD_REQUEST,
            "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        )
    };
    let mut chosen = ChosenParts {
        numbers: Vec::with_capacity(requested.len()),
        records: Vec::with_capacity(requested.len()),
    };
    for (i, entry) in requested.iter().enumerate() {
        if i > 0 && entry.part_number <= requested[i - 1].part_number {
            return Err(S3Error::new(
                "InvalidPartOrder",
                StatusCode::BAD_REQUEST,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ));
        }
        let Some(part) = uploaded.get(&entry.part_number) else {
            return Err(invalid_part()
                .with("UploadId", &upload.upload_id)
                .with("PartNumber", entry.part_number.to_string()));
        };
        let sent = entry.etag.trim().trim_matches('"');
        if !sent.eq_ignore_ascii_case(&part.etag) {
            return Err(invalid_part()
                .with("UploadId", &upload.upload_id)
                .with("PartNumber", entry.part_number.to_string())
                .with("ETag", &entry.etag));
        }
        if upload.checksum_type == Some(ChecksumType::Composite) && entry.checksum().is_none() {
            let name = upload
                .checksum_algorithm
                .map(|a| a.name().to_ascii_lowercase())
                .unwrap_or_default();
            return Err(S3Error::invalid_request(format!(
                "The upload was created using a {name} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                entry.part_number
            )));
        }
        if let Some((algorithm, value)) = entry.checksum() {
            let matches = part
                .checksum
                .as_ref()
                .is_some_and(|c| c.algorithm.name() == algorithm && c.value == value);
            if !matches {
                return Err(invalid_part()
                    .with("UploadId", &upload.upload_id)
                    .with("PartNumber", entry.part_number.to_string()));
            }
        }
        chosen.numbers.push(entry.part_number);
        chosen.records.push(part.clone());
    }
    let last = chosen.records.len() - 1;
    for (i, part) in chosen.records.iter().enumerate() {
        if i < last && part.size < MIN_PART_SIZE {
            return Err(S3Error::new(
                "EntityTooSmall",
                StatusCode::BAD_REQUEST,
                "Your proposed upload is smaller than the minimum allowed object size.",
            )
            .with("ProposedSize", part.size.to_string())
            .with("MinSizeAllowed", MIN_PART_SIZE.to_string())
            .with("PartNumber", chosen.numbers[i].to_string())
            .with("ETag", &part.etag));
        }
    }
    Ok(chosen)
}

/// The object's checksum from its parts', as the upload asked for it.
fn object_checksum(upload: &UploadRecord, parts: &[PartRecord]) -> S3Result<Option<Checksum>> {
    let (Some(algorithm), Some(kind)) = (upload.checksum_algorithm, upload.checksum_type) else {
        return Ok(None);
    };
    let mut sums = Vec::with_capacity(parts.len());
    for p in parts {
        match &p.checksum {
            Some(c) if c.algorithm == algorithm => sums.push((c.clone(), p.size)),
            _ => {
                return Err(S3Error::invalid_request(format!(
                    "The upload was created using a {} checksum. The complete request must include the checksum for each part.",
                    algorithm.name().to_ascii_lowercase()
                )))
            }
        }
    }
    let combined = match kind {
        ChecksumType::FullObject => composite::full_object_checksum(algorithm, &sums),
        ChecksumType::Composite => {
            let list: Vec<Checksum> = sums.into_iter().map(|(c, _)| c).collect();
            composite::composite_checksum(algorithm, &list)
                .map(|value| Checksum { algorithm, value })
        }
    };
    combined
        .map(Some)
        .ok_or_else(|| S3Error::internal("could not combine the part checksums"))
}

pub async fn complete_multipart_upload(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let upload_id = upload_id_param(ctx)?;
    existing_bucket(ctx, &bucket)?;
    // On this request `x-amz-checksum-*` is the whole object's checksum, not the XML body's:
    // set aside before the body is read and verified.
    let object_checksum_header = ChecksumAlgorithm::ALL.into_iter().find_map(|a| {
        ctx.headers
            .remove(a.header_name())
            .and_then(|v| v.to_str().ok().map(|v| (a, v.trim().to_string())))
    });
    let body = read_small_body(ctx).await?;
    let doc: xml::CompleteMultipartUpload = xml::from_xml("CompleteMultipartUpload", &body)?;
    let gw = ctx.gw.clone();
    let key_guard = gw.locks.lock(&bucket, &key).await;
    let upload_guard = gw.upload_locks.lock_bucket(&upload_id).await;
    existing_bucket(ctx, &bucket)?;
    let upload = load_upload(&gw, &bucket, &key, &upload_id)?;
    let previous = gw.meta.object(&bucket, &key)?;
    check_put_conditions(&ctx.headers, previous.as_ref(), &key)?;
    let chosen = choose_parts(&gw, &upload, &doc.parts)?;
    let size: u64 = chosen.records.iter().map(|p| p.size).sum();
    if let Some(declared) = ctx.header("x-amz-mp-object-size") {
        if declared.trim().parse::<u64>().ok() != Some(size) {
            return Err(S3Error::invalid_request(format!(
                "The provided 'x-amz-mp-object-size' header value {declared} does not match what was computed: {size}"
            )));
        }
    }
    let md5s: Vec<[u8; 16]> = chosen
        .records
        .iter()
        .map(|p| composite::parse_etag_md5(&p.etag))
        .collect::<Option<_>>()
        .ok_or_else(|| S3Error::internal("a part's ETag in the index is not an MD5"))?;
    let etag = composite::multipart_etag(&md5s);
    let checksum = object_checksum(&upload, &chosen.records)?;
    if let Some((algorithm, sent)) = &object_checksum_header {
        // The checksum the client computed for the whole object must match ours.
        let Some(c) = checksum.as_ref().filter(|c| c.algorithm == *algorithm) else {
            return Err(S3Error::invalid_request(format!(
                "The upload was not created with a {} checksum.",
                algorithm.name().to_ascii_lowercase()
            )));
        };
        let ours_plain = c.value.split('-').next().unwrap_or("");
        if sent != &c.value && sent != ours_plain {
            return Err(S3Error::new(
                "BadDigest",
                StatusCode::BAD_REQUEST,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    c.algorithm.name().to_ascii_lowercase()
                ),
            ));
        }
    }
    let owner = ctx.credential.access_key_id.clone();
    let location = object_location(ctx, &bucket, &key);
    let work = complete_upload(
        gw.clone(),
        upload,
        chosen,
        previous,
        etag,
        checksum,
        size,
        owner,
        (key_guard, upload_guard),
    );
    // Spawned: a client that hangs up must not cut a completion off halfway.
    let mut task = tokio::spawn(work);
    let result = match tokio::time::timeout(KEEPALIVE_AFTER, &mut task).await {
        Ok(joined) => joined.map_err(|e| S3Error::internal(format!("completion task: {e}")))?,
        Err(_) => {
            return Ok(keepalive_response(task, bucket, key, location));
        }
    };
    let record = result?;
    completion_response(&record, &bucket, &key, &location)
}

fn object_location(ctx: &Ctx, bucket: &str, key: &str) -> String {
    let host = ctx.header("host").unwrap_or("localhost");
    let encoded: String = key
        .split('/')
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/");
    format!("http://{host}/{bucket}/{encoded}")
}

fn completion_document(
    record: &crate::meta::ObjectRecord,
    bucket: &str,
    key: &str,
    location: &str,
) -> S3Result<String> {
    let mut checksum = Vec::new();
    if let Some(c) = &record.checksum {
        checksum.push(xml::ChecksumElement::value(c, c.value.clone()));
        if let Some(t) = record.checksum_type {
            checksum.push(xml::ChecksumElement::Type(t.name()));
        }
    }
    let doc = xml::CompleteMultipartUploadResult {
        xmlns: S3_NS,
        location: location.to_string(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: format!("\"{}\"", record.etag),
        checksum,
    };
    xml::to_xml("CompleteMultipartUploadResult", &doc)
}

fn completion_response(
    record: &crate::meta::ObjectRecord,
    bucket: &str,
    key: &str,
    location: &str,
) -> S3Result<S3Response> {
    let mut r = response::xml(
        StatusCode::OK,
        completion_document(record, bucket, key, location)?,
    );
    response::set_header(&mut r, "x-amz-version-id", "null");
    Ok(r)
}

/// A 200 sent before the result is known: the XML declaration, a space every few seconds,
/// then the result or an `<Error>` document. SDKs read both from a 200 to this request.
fn keepalive_response(
    task: tokio::task::JoinHandle<S3Result<crate::meta::ObjectRecord>>,
    bucket: String,
    key: String,
    location: String,
) -> S3Response {
    let declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    let stream = futures::stream::unfold((Some(task), false), move |(task, started)| {
        let (bucket, key, location) = (bucket.clone(), key.clone(), location.clone());
        async move {
            if !started {
                return Some((Ok(Bytes::from_static(declaration.as_bytes())), (task, true)));
            }
            let mut task = task?;
            match tokio::time::timeout(KEEPALIVE_EVERY, &mut task).await {
                Err(_) => Some((Ok(Bytes::from_static(b" ")), (Some(task), true))),
                Ok(joined) => {
                    let doc = match joined {
                        Ok(Ok(record)) => completion_document(&record, &bucket, &key, &location),
                        Ok(Err(e)) => Ok(e.to_xml(&format!("/{bucket}/{key}"), "")),
                        Err(e) => Ok(S3Error::internal(format!("completion task: {e}"))
                            .to_xml(&format!("/{bucket}/{key}"), "")),
                    };
                    let doc = doc.unwrap_or_default();
                    // The declaration went out first; the document follows without one.
                    let body = doc
                        .strip_prefix(declaration)
                        .or_else(|| doc.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"))
                        .unwrap_or(&doc)
                        .to_string();
                    Some((Ok(Bytes::from(body)), (None, true)))
                }
            }
        }
    });
    let mut r = http::Response::new(response::stream_body(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

/// The long part of a completion: compose on every backend, commit, clean up.
#[allow(clippy::too_many_arguments)]
async fn complete_upload(
    gw: Arc<Gateway>,
    upload: UploadRecord,
    chosen: ChosenParts,
    previous: Option<crate::meta::ObjectRecord>,
    etag: String,
    checksum: Option<Checksum>,
    size: u64,
    owner: String,
    _guards: (KeyGuard, crate::replication::BucketGuard),
) -> S3Result<crate::meta::ObjectRecord> {
    let parts_summary: Vec<PartSummary> = chosen
        .records
        .iter()
        .map(|p| PartSummary {
            size: p.size,
            checksum: p.checksum.clone(),
        })
        .collect();
    let mut targets = Vec::new();
    let mut target_slots = Vec::new();
    for (i, t) in upload.targets.iter().enumerate() {
        let (Some(backend), Ok(name)) = (gw.backends.get(&t.backend), PhysicalName::parse(&t.name))
        else {
            continue;
        };
        targets.push(Target {
            backend: backend.clone(),
            name,
        });
        target_slots.push(i);
    }
    let version_id = begin_write(
        &gw,
        &upload.bucket,
        &upload.key,
        &targets,
        &owner,
        previous.is_some(),
        Some(UploadIntent {
            upload_id: upload.upload_id.clone(),
            parts: parts_summary.clone(),
            checksum_type: checksum.as_ref().and(upload.checksum_type),
        }),
    )
    .await?;
    let stamp = Stamp {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        version_id: version_id.clone(),
        etag: etag.clone(),
        size,
        checksum: checksum
            .as_ref()
            .map(|c| format!("{}:{}", c.algorithm.name(), c.value)),
        late: None,
    };
    let completions = targets.into_iter().zip(target_slots).map(|(target, slot)| {
        let t = &upload.targets[slot];
        let parts: Option<Vec<CompletedPart>> = chosen
            .numbers
            .iter()
            .zip(&chosen.records)
            .map(|(&number, record)| {
                record
                    .receipts
                    .get(slot)
                    .cloned()
                    .flatten()
                    .map(|receipt| CompletedPart {
                        part_number: number,
                        receipt,
                        size: record.size,
                    })
            })
            .collect();
        let (stamp, attrs, handle) = (&stamp, &upload.attributes, t.handle.clone());
        async move {
            let result = match parts {
                Some(parts) if !handle.is_empty() => {
                    target
                        .backend
                        .complete_upload(&target.name, &handle, &parts, attrs, stamp)
                        .await
                }
                _ => Err(BackendError::Unavailable {
                    message: "the backend is missing parts of this upload".into(),
                }),
            };
            PutOutcome { target, result }
        }
    });
    let outcomes = futures::future::join_all(completions).await;
    for o in outcomes.iter().filter(|o| o.result.is_err()) {
        if let Some(t) = upload
            .targets
            .iter()
            .find(|t| t.backend == o.target.backend.id() && !t.handle.is_empty())
        {
            if let Err(e) = o
                .target
                .backend
                .abort_upload(&o.target.name, &t.handle)
                .await
            {
                tracing::warn!(backend = %t.backend, error = %e, "could not remove the staged parts of a failed completion");
            }
        }
    }
    let write_quorum = gw
        .placement
        .write_plan(&upload.bucket, &upload.key)
        .write_quorum;
    let commit = Commit {
        bucket: &upload.bucket,
        key: &upload.key,
        attributes: upload.attributes.clone(),
        previous,
        version_id,
        owner: &owner,
        write_quorum,
        parts: parts_summary,
        checksum_type: checksum.as_ref().and(upload.checksum_type),
    };
    let record = commit_write(
        &gw,
        commit,
        outcomes,
        Some(Content {
            size,
            etag,
            checksum,
        }),
    )
    .await?;
    gw.meta
        .delete_upload(&upload.bucket, &upload.key, &upload.upload_id)?;
    Ok(record)
}

/// Removes an upload's staged parts from every backend (best effort; logged).
pub async fn abort_on_backends(gw: &Gateway, upload: &UploadRecord) {
    for t in &upload.targets {
        if t.handle.is_empty() {
            continue;
        }
        let (Some(backend), Ok(name)) = (gw.backends.get(&t.backend), PhysicalName::parse(&t.name))
        else {
            continue;
        };
        if let Err(e) = backend.abort_upload(&name, &t.handle).await {
            tracing::warn!(backend = %t.backend, upload = %upload.upload_id, error = %e, "could not remove an upload's staged parts");
        }
    }
}

/// Aborts an upload: the index forgets it (durably) and every backend drops its parts.
pub async fn abort_upload(gw: &Gateway, upload: &UploadRecord) -> S3Result<()> {
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
    Ok(())
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
