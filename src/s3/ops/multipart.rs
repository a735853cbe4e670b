//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy and
//! AbortMultipartUpload. (Completion is in `multipart_complete`, the listings in
//! `multipart_list`.)
//!
//! An upload is an index record naming its targets, chosen at creation, each with the
//! backend's handle for the upload. Every part streams to every target as it arrives and is
//! recorded with one receipt per target; completion stages the composed object on each
//! target and commits it like any write (see `store::multipart`).

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use http::StatusCode;
use md5::{Digest, Md5};

use super::copy::{parse_copy_source_version, source_error};
use super::object::{attributes_from_headers, check_key};
use super::support::{check_copy_source_conditions, existing_bucket, read_current, store_body};
use crate::checksum::composite::{self, ChecksumType};
use crate::checksum::{ChecksumAlgorithm, ChecksumHasher};
use crate::meta::UploadRecord;
use crate::replication::KeyGuard;
use crate::s3::access_log;
use crate::s3::body::{verified_body, BodyRules};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, BodyFacts, NewUpload, PartSource, Store};

pub use super::support::{part_number_param, MAX_PART_NUMBER};
/// Every part but the last must be at least this large.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;

pub fn upload_id_param(ctx: &Ctx) -> S3Result<String> {
    ctx.route
        .query("uploadId")
        .map(str::to_string)
        .ok_or_else(|| S3Error::invalid_request("missing uploadId"))
}

/// The upload, if it exists for this bucket and key.
pub fn load_upload(
    store: &Store,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<UploadRecord> {
    store::upload(store, bucket, key, upload_id)?.ok_or_else(|| S3Error::no_such_upload(upload_id))
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
    let bucket_record = existing_bucket(ctx, &bucket)?;
    check_key(&key)?;
    let access = super::acl::new_object_acl(ctx, &bucket_record)?;
    let attributes = attributes_from_headers(&ctx.headers)?;
    let (checksum_algorithm, checksum_type) = checksum_headers(ctx)?;
    let tags = super::tagging::tags_from_headers(&ctx.headers)?;
    let lock = super::lock::new_object_lock(ctx, &bucket, false)?;
    let upload = store::create_upload(
        &ctx.gw.store,
        NewUpload {
            bucket: bucket.clone(),
            key: key.clone(),
            attributes,
            checksum_algorithm,
            checksum_type,
            owner: access.owner,
            acl: access.acl,
            tags,
            lock,
        },
    )
    .await?;
    let doc = xml::InitiateMultipartUploadResult {
        xmlns: S3_NS,
        bucket,
        key,
        upload_id: upload.upload_id,
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

/// Locks for one part: the upload shared (completion and abort wait for parts in flight),
/// then the part exclusively (a part sent twice at once lands in order) with the bucket
/// shared. Upload first, as a completion takes its locks.
async fn lock_part(
    store: &Store,
    bucket: &str,
    upload_id: &str,
    part_number: u32,
) -> (KeyGuard, KeyGuard) {
    let upload_guard = store
        .upload_locks
        .lock(upload_id, &part_number.to_string())
        .await;
    let bucket_guard = store
        .locks
        .lock(bucket, &format!("\u{0}upload/{upload_id}/{part_number}"))
        .await;
    (upload_guard, bucket_guard)
}

pub async fn upload_part(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    let upload_id = upload_id_param(ctx)?;
    let part_number = part_number_param(ctx)?;
    existing_bucket(ctx, &bucket)?;
    let payload = ctx.verified.payload.clone();
    let mut rules = BodyRules::from_headers(&ctx.headers, &payload)?.limit(MAX_PART_SIZE)?;
    // A part's length goes to the backends before its bytes (an S3 backend's UploadPart needs
    // it), so a part of unknown length cannot be streamed through.
    let size = rules
        .declared_len
        .ok_or(crate::s3::body::BodyError::MissingContentLength)?;
    let gw = ctx.gw.clone();
    let tenant = ctx.credential.access_key_id.clone();
    let _guards = lock_part(&gw.store, &bucket, &upload_id, part_number).await;
    let upload = load_upload(&gw.store, &bucket, &key, &upload_id)?;
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
    let raw = ctx.take_body()?;
    let (body, outcome) = verified_body(raw, payload, rules, &ctx.live.auth);
    let source = PartSource::Body {
        body: store_body(body),
        facts: Box::new(move || {
            outcome.get().map(|s| BodyFacts {
                etag: hex::encode(s.md5),
                checksum: s.checksum,
            })
        }),
    };
    let part = store::store_part(&gw.store, &upload, &tenant, part_number, size, source).await?;
    let mut r = response::empty(StatusCode::OK);
    response::set_header(&mut r, "etag", &format!("\"{}\"", part.etag));
    if let Some(c) = &part.checksum {
        response::set_header(&mut r, c.algorithm.header_name(), &c.value);
    }
    access_log::note_part_written(&mut r, &part);
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
    // Reading the source was authorized with the request (crate::s3::authorize).
    let (src_bucket, src_key, src_version) =
        parse_copy_source_version(ctx.header("x-amz-copy-source").unwrap_or(""))?;
    existing_bucket(ctx, &src_bucket)?;
    let gw = ctx.gw.clone();
    let tenant = ctx.credential.access_key_id.clone();
    let _guards = lock_part(&gw.store, &bucket, &upload_id, part_number).await;
    let upload = load_upload(&gw.store, &bucket, &key, &upload_id)?;
    let range_header = ctx.header("x-amz-copy-source-range");
    // A copy of the whole source is verified as it streams; a range cannot be.
    let (_, span, source) = read_current(ctx, &src_bucket, &src_key, src_version.as_deref(), |src| {
        check_copy_source_conditions(&ctx.headers, src)?;
        let span = match range_header {
            Some(v) => parse_copy_range(v, src.size)?,
            None => 0..src.size,
        };
        if span.end - span.start > MAX_PART_SIZE {
            return Err(S3Error::invalid_request(format!(
                "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_PART_SIZE}"
            )));
        }
        Ok((span.clone(), Some(span)))
    })
    .await
    .map_err(source_error)?;
    let size = span.end - span.start;
    let body = match source {
        Some(source) => source.body,
        None => futures::stream::empty().boxed(),
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
        Err(e) => Err(Box::new(e) as store::BodyFailure),
    });
    let source = PartSource::Body {
        body,
        facts: Box::new(move || digest.lock().ok().and_then(|d| d.summary(size))),
    };
    let part = store::store_part(&gw.store, &upload, &tenant, part_number, size, source)
        .await
        .map_err(|e| match e {
            store::StoreError::Body(failure) => {
                store::StoreError::SourceUnreadable(failure.to_string())
            }
            other => other,
        })?;
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
    checksum: Option<ChecksumHasher>,
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
    fn summary(&self, expected: u64) -> Option<BodyFacts> {
        (self.len == expected).then(|| BodyFacts {
            etag: hex::encode(self.md5.clone().finalize()),
            checksum: self.checksum.clone().map(|h| h.finish_checksum()),
        })
    }
}

pub async fn abort_multipart_upload(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    let upload_id = upload_id_param(ctx)?;
    existing_bucket(ctx, bucket)?;
    let upload = load_upload(&ctx.gw.store, bucket, key, &upload_id)?;
    store::abort_upload(&ctx.gw.store, &upload).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
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
