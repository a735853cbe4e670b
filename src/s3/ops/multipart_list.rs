//! ListParts and ListMultipartUploads, answered from the index alone.

use http::StatusCode;

use super::list::{encode, url_encoded};
use super::multipart::{load_upload, upload_id_param, MAX_PART_NUMBER};
use super::support::existing_bucket;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, S3Response};
use crate::s3::xml::owner;
use crate::s3::xml::{self, S3_NS};
use crate::store;

const MAX_PAGE: usize = 1000;

/// A non-negative integer query parameter, capped at `cap`; `default` when absent.
fn count_param(ctx: &Ctx, name: &'static str, default: usize, cap: usize) -> S3Result<usize> {
    match ctx.route.query(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as u64).min(cap as u64) as usize)
            .ok_or_else(|| {
                S3Error::invalid_argument(format!(
                    "Provided {name} not an integer or within integer range"
                ))
                .with("ArgumentName", name)
                .with("ArgumentValue", v)
            }),
    }
}

pub async fn list_parts(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    let upload_id = upload_id_param(ctx)?;
    existing_bucket(ctx, bucket)?;
    let max_parts = count_param(ctx, "max-parts", MAX_PAGE, MAX_PAGE)?;
    let marker = match ctx.route.query("part-number-marker") {
        None => 0,
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            S3Error::invalid_argument(
                "Provided part-number-marker not an integer or within integer range",
            )
            .with("ArgumentName", "part-number-marker")
            .with("ArgumentValue", v)
        })?,
    };
    let upload = load_upload(&ctx.gw.store, bucket, key, &upload_id)?;
    let mut parts = if max_parts == 0 {
        Vec::new()
    } else {
        store::list_parts(
            &ctx.gw.store,
            &upload_id,
            marker.min(MAX_PART_NUMBER),
            max_parts + 1,
        )?
    };
    let is_truncated = parts.len() > max_parts;
    parts.truncate(max_parts);
    let next_part_number_marker = parts.last().map(|(n, _)| *n).or(Some(marker));
    let doc = xml::ListPartsResult {
        xmlns: S3_NS,
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: upload_id.clone(),
        part_number_marker: marker,
        next_part_number_marker,
        max_parts,
        is_truncated,
        parts: parts
            .into_iter()
            .map(|(n, p)| xml::PartEntry {
                part_number: n,
                last_modified: iso8601(p.modified_ms),
                etag: format!("\"{}\"", p.etag),
                size: p.size,
                checksums: xml::ChecksumElements::of(p.checksum.as_ref()),
            })
            .collect(),
        initiator: owner(&upload.owner),
        owner: owner(&upload.owner),
        storage_class: "STANDARD",
        checksum_algorithm: upload.checksum_algorithm.map(|a| a.name()),
        checksum_type: upload.checksum_type.map(|t| t.name()),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListPartsResult", &doc)?,
    ))
}

pub async fn list_multipart_uploads(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let url = url_encoded(ctx)?;
    let prefix = ctx.route.query("prefix").unwrap_or("");
    let delimiter = ctx.route.query("delimiter").filter(|d| !d.is_empty());
    let key_marker = ctx.route.query("key-marker").unwrap_or("");
    // S3 ignores the upload-id marker without a key marker.
    let upload_id_marker = ctx
        .route
        .query("upload-id-marker")
        .filter(|_| !key_marker.is_empty())
        .unwrap_or("");
    let max_uploads = count_param(ctx, "max-uploads", MAX_PAGE, MAX_PAGE)?;

    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    // Where the page ended: (key, upload id) of the last entry, or a common prefix.
    let mut last: Option<(String, String)> = None;
    let marker_is_prefix = delimiter.is_some_and(|d| {
        key_marker
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.find(d).map(|i| i + d.len()) == Some(rest.len()))
    });
    let mut after: Option<(String, Option<String>)> = if key_marker.is_empty() {
        None
    } else if marker_is_prefix {
        // Resuming after a common prefix: everything under it was listed once already.
        Some((format!("{key_marker}\u{10FFFF}"), None))
    } else {
        Some((
            key_marker.to_string(),
            (!upload_id_marker.is_empty()).then(|| upload_id_marker.to_string()),
        ))
    };
    'scan: loop {
        if max_uploads == 0 {
            break;
        }
        let batch = store::list_uploads(
            &ctx.gw.store,
            bucket,
            prefix,
            after.as_ref().map(|(k, u)| (k.as_str(), u.as_deref())),
            MAX_PAGE,
        )?;
        if batch.is_empty() {
            break;
        }
        for upload in batch {
            let rolled = delimiter.and_then(|d| {
                upload.key[prefix.len()..]
                    .find(d)
                    .map(|i| upload.key[..prefix.len() + i + d.len()].to_string())
            });
            if uploads.len() + prefixes.len() == max_uploads {
                // One more entry exists (unless it falls under the last common prefix).
                if rolled.is_none() || rolled.as_ref() != prefixes.last() {
                    truncated = true;
                    break 'scan;
                }
            }
            after = Some((upload.key.clone(), Some(upload.upload_id.clone())));
            match rolled {
                Some(p) => {
                    if prefixes.last() != Some(&p) {
                        last = Some((p.clone(), String::new()));
                        prefixes.push(p);
                    }
                }
                None => {
                    last = Some((upload.key.clone(), upload.upload_id.clone()));
                    uploads.push(upload);
                }
            }
        }
    }
    let (next_key_marker, next_upload_id_marker) = match (&last, truncated) {
        (Some((k, u)), true) => (Some(encode(k, url)), Some(u.clone())),
        _ => (None, None),
    };
    let doc = xml::ListMultipartUploadsResult {
        xmlns: S3_NS,
        bucket: bucket.to_string(),
        key_marker: encode(key_marker, url),
        upload_id_marker: upload_id_marker.to_string(),
        next_key_marker,
        next_upload_id_marker,
        delimiter: delimiter.map(|d| encode(d, url)),
        prefix: encode(prefix, url),
        max_uploads,
        is_truncated: truncated,
        encoding_type: url.then(|| "url".to_string()),
        uploads: uploads
            .into_iter()
            .map(|u| xml::UploadEntry {
                key: encode(&u.key, url),
                upload_id: u.upload_id,
                initiator: owner(&u.owner),
                owner: owner(&u.owner),
                storage_class: "STANDARD",
                initiated: iso8601(u.initiated_ms),
                checksum_algorithm: u.checksum_algorithm.map(|a| a.name()),
                checksum_type: u.checksum_type.map(|t| t.name()),
            })
            .collect(),
        common_prefixes: prefixes
            .into_iter()
            .map(|p| xml::CommonPrefix {
                prefix: encode(&p, url),
            })
            .collect(),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListMultipartUploadsResult", &doc)?,
    ))
}
