//! CompleteMultipartUpload: the part list checked against the index, the object's ETag and
//! checksum derived from the parts, composition on every backend, and the commit, with S3's
//! keep-alive for completions that take a while.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;

use super::multipart::{load_upload, upload_id_param, MAX_PART_NUMBER, MIN_PART_SIZE};
use super::object::{check_condition_early, write_condition};
use super::support::{existing_bucket, read_small_body};
use crate::checksum::composite::{self, ChecksumType};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::meta::{ObjectRecord, PartRecord, UploadRecord};
use crate::s3::access_log;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::{self, ChosenPart, Completion, Store};

/// Completion answers at once when it is this quick; otherwise the 200 goes out and
/// whitespace keeps the connection alive until the result document follows, as S3 does.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(2);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(5);
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The parts a completion names, checked against what was uploaded.
struct ChosenParts {
    numbers: Vec<u32>,
    records: Vec<PartRecord>,
}

fn choose_parts(
    store: &Store,
    upload: &UploadRecord,
    requested: &[xml::CompletedPartEntry],
) -> S3Result<ChosenParts> {
    if requested.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let uploaded: std::collections::HashMap<u32, PartRecord> =
        store::list_parts(store, &upload.upload_id, 0, MAX_PART_NUMBER as usize + 1)?
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
    let store = ctx.gw.store.clone();
    // Held until the completion ends, in its own task: parts, aborts and other completions
    // of this upload wait.
    let upload_guard = store.upload_locks.lock_bucket(&upload_id).await;
    existing_bucket(ctx, &bucket)?;
    let upload = match load_upload(&store, &bucket, &key, &upload_id) {
        Ok(upload) => upload,
        Err(e) if e.code == "NoSuchUpload" => {
            // Checked under the upload's lock: a completion of this upload still running has
            // finished, and an aborted upload never named an object.
            let made =
                completed_before(&store, &bucket, &key, &upload_id, doc.parts.len())?.ok_or(e)?;
            let location = object_location(ctx, &bucket, &key);
            let mut r = completion_response(&made, &bucket, &key, &location)?;
            super::support::version_header(ctx, &mut r, &bucket, made.shown_version_id())?;
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    let condition = write_condition(&ctx.headers)?;
    check_condition_early(ctx, &condition, &bucket, &key)?;
    let chosen = choose_parts(&store, &upload, &doc.parts)?;
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
    let location = object_location(ctx, &bucket, &key);
    // The object's owner was decided when the upload started (ownership controls, ACL).
    let owner = upload.owner.clone();
    let completion = Completion {
        upload,
        parts: chosen
            .numbers
            .into_iter()
            .zip(chosen.records)
            .map(|(number, record)| ChosenPart { number, record })
            .collect(),
        etag,
        checksum,
        condition,
        owner,
    };
    // A completion's version is its upload id; in keepalive mode the header goes out before the
    // commit, so it is named from the bucket's versioning state now.
    let shown_version = match store::versioning(&store, &bucket)? {
        store::VersioningState::Enabled => Some(upload_id.clone()),
        store::VersioningState::Suspended => Some("null".to_string()),
        store::VersioningState::Unversioned => None,
    };
    // Spawned: a client that hangs up must not cut a completion off halfway.
    let mut task = tokio::spawn(async move {
        let result = store::complete_upload(&store, completion).await;
        drop(upload_guard);
        result.map_err(S3Error::from)
    });
    let result = match tokio::time::timeout(KEEPALIVE_AFTER, &mut task).await {
        Ok(joined) => joined.map_err(|e| S3Error::internal(format!("completion task: {e}")))?,
        Err(_) => {
            let mut r = keepalive_response(task, bucket, key, location);
            if let Some(version) = shown_version {
                response::set_header(&mut r, "x-amz-version-id", &version);
            }
            return Ok(r);
        }
    };
    let record = result?;
    let mut r = completion_response(&record, &bucket, &key, &location)?;
    super::support::version_header(ctx, &mut r, &bucket, record.shown_version_id())?;
    access_log::note_written(&mut r, &record);
    Ok(r)
}

/// The key's current object if `upload_id` made it (a completion's version is its upload id)
/// and the request names as many parts: then this Complete is a retry of one whose answer the
/// client missed, and S3 repeats that answer. Nothing is written, and conditions are not
/// checked again: they held when the object was made, and a retried `If-None-Match: *` would
/// now fail against the upload's own object.
fn completed_before(
    store: &Store,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_count: usize,
) -> S3Result<Option<ObjectRecord>> {
    Ok(store::object(store, bucket, key)?
        .filter(|r| r.version_id == upload_id && r.parts.len() == part_count))
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
    record: &ObjectRecord,
    bucket: &str,
    key: &str,
    location: &str,
) -> S3Result<String> {
    let doc = xml::CompleteMultipartUploadResult {
        xmlns: S3_NS,
        location: location.to_string(),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: format!("\"{}\"", record.etag),
        checksums: xml::ChecksumElements::of(record.checksum.as_ref()),
        checksum_type: record
            .checksum
            .as_ref()
            .and(record.checksum_type)
            .map(|t| t.name()),
    };
    xml::to_xml("CompleteMultipartUploadResult", &doc)
}

fn completion_response(
    record: &ObjectRecord,
    bucket: &str,
    key: &str,
    location: &str,
) -> S3Result<S3Response> {
    Ok(response::xml(
        StatusCode::OK,
        completion_document(record, bucket, key, location)?,
    ))
}

/// A 200 sent before the result is known: the XML declaration, a space every few seconds,
/// then the result or an `<Error>` document. SDKs read both from a 200 to this request.
fn keepalive_response(
    task: tokio::task::JoinHandle<S3Result<ObjectRecord>>,
    bucket: String,
    key: String,
    location: String,
) -> S3Response {
    let resource = format!("/{bucket}/{key}");
    let waiting = futures::stream::unfold(Some(task), move |task| {
        let (bucket, key, location, resource) = (
            bucket.clone(),
            key.clone(),
            location.clone(),
            resource.clone(),
        );
        async move {
            let mut task = task?;
            match tokio::time::timeout(KEEPALIVE_EVERY, &mut task).await {
                Err(_) => Some((Ok(Bytes::from_static(b" ")), Some(task))),
                Ok(joined) => {
                    let doc = match joined {
                        Ok(Ok(record)) => completion_document(&record, &bucket, &key, &location),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(S3Error::internal(format!("completion task: {e}"))),
                    };
                    let doc = doc.unwrap_or_else(|e| e.to_xml(&resource, ""));
                    // The declaration went out first; the document follows without one.
                    let body = doc.trim_start_matches(DECLARATION).trim_start().to_string();
                    Some((Ok(Bytes::from(body)), None))
                }
            }
        }
    });
    let stream =
        futures::stream::once(async { Ok(Bytes::from(format!("{DECLARATION}\n"))) }).chain(waiting);
    let mut r = http::Response::new(response::stream_body(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: S3Response) -> String {
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    /// A slow completion: the declaration at once, spaces while waiting, then the document,
    /// which together parse as one XML document.
    #[tokio::test]
    async fn slow_completions_keep_the_connection_alive() {
        let slow = |result: S3Result<ObjectRecord>| {
            tokio::spawn(async move {
                tokio::time::sleep(KEEPALIVE_EVERY + Duration::from_millis(500)).await;
                result
            })
        };
        let record = ObjectRecord {
            size: 3,
            etag: "abc-2".into(),
            checksum: None,
            attributes: Default::default(),
            modified_ms: 0,
            version_id: "v".into(),
            owner: "o".into(),
            replicas: vec![],
            parts: vec![],
            checksum_type: None,
            integrity: None,
            acl: None,
            tags: vec![],
            lock: Default::default(),
            versioned: false,
        };
        let ok = keepalive_response(
            slow(Ok(record)),
            "b".into(),
            "k".into(),
            "http://h/b/k".into(),
        );
        let failed = keepalive_response(
            slow(Err(S3Error::service_unavailable("quorum"))),
            "b".into(),
            "k".into(),
            "http://h/b/k".into(),
        );
        assert_eq!(ok.status(), StatusCode::OK);
        let (ok, failed) = tokio::join!(body_of(ok), body_of(failed));
        for (text, root) in [(&ok, "CompleteMultipartUploadResult"), (&failed, "Error")] {
            assert!(text.starts_with(&format!("{DECLARATION}\n ")), "{text}");
            assert_eq!(text.matches(DECLARATION).count(), 1, "{text}");
            let mut reader = quick_xml::Reader::from_str(text);
            let mut first = None;
            loop {
                match reader.read_event().expect("well-formed XML") {
                    quick_xml::events::Event::Start(e) if first.is_none() => {
                        first = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
                    }
                    quick_xml::events::Event::Eof => break,
                    _ => {}
                }
            }
            assert_eq!(first.as_deref(), Some(root), "{text}");
        }
        assert!(
            ok.contains("<ETag>&quot;abc-2&quot;</ETag>") || ok.contains("<ETag>\"abc-2\"</ETag>"),
            "{ok}"
        );
        assert!(
            failed.contains("<Code>ServiceUnavailable</Code>"),
            "{failed}"
        );
    }
}
