//! ListObjects (v1) and ListObjectsV2, answered from the index alone.

use std::ops::Bound;

use base64::Engine;
use http::StatusCode;

use super::support::existing_bucket;
use crate::meta::ObjectRecord;
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, S3Response};
use crate::s3::xml::owner;
use crate::s3::xml::{self, S3_NS};
use crate::store;

const MAX_KEYS: usize = 1000;
/// Index entries read per scan while assembling a page.
const SCAN_BATCH: usize = 1000;

/// One page of a listing: objects and common prefixes, interleaved in key order.
struct Listing {
    contents: Vec<(String, ObjectRecord)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix returned: where the next page starts (exclusive).
    last: Option<String>,
}

fn list(
    ctx: &Ctx,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<String>,
    max_keys: usize,
) -> S3Result<Listing> {
    let mut listing = Listing {
        contents: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    if max_keys == 0 {
        return Ok(listing);
    }
    let mut start = match after {
        // Resuming after a common prefix (our NextMarker / continuation token): skip every
        // key under it, as it was listed once already.
        Some(a) if common_prefix(&a, prefix, delimiter).as_deref() == Some(a.as_str()) => {
            listing.last = Some(a.clone());
            Bound::Excluded(format!("{a}\u{10FFFF}"))
        }
        Some(a) => Bound::Excluded(a),
        None => Bound::Unbounded,
    };
    loop {
        let page = store::list_objects(&ctx.gw.store, bucket, prefix, start, SCAN_BATCH)?;
        let more = page.truncated;
        let mut jump = None;
        let mut last_key = None;
        for (key, record) in page.entries {
            let common = common_prefix(&key, prefix, delimiter);
            if common.is_some() && common == listing.last {
                continue;
            }
            if listing.contents.len() + listing.prefixes.len() == max_keys {
                listing.truncated = true;
                return Ok(listing);
            }
            match common {
                Some(cp) => {
                    // Skip every other key under this prefix with one seek: no key that
                    // starts with `cp` sorts after `cp` followed by the highest code point.
                    jump = Some(format!("{cp}\u{10FFFF}"));
                    listing.last = Some(cp.clone());
                    listing.prefixes.push(cp);
                    break;
                }
                None => {
                    listing.last = Some(key.clone());
                    last_key = Some(key.clone());
                    listing.contents.push((key, record));
                }
            }
        }
        start = match (jump, last_key) {
            (Some(j), _) => Bound::Excluded(j),
            (None, Some(k)) if more => Bound::Excluded(k),
            _ => return Ok(listing),
        };
    }
}

/// The common prefix `key` rolls up into: `prefix` up to and including the first delimiter
/// after it.
fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    rest.find(d)
        .map(|i| key[..prefix.len() + i + d.len()].to_string())
}

fn max_keys(ctx: &Ctx) -> S3Result<usize> {
    match ctx.route.query("max-keys") {
        None => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(MAX_KEYS))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Provided max-keys not an integer or within integer range",
                )
            }),
    }
}

pub(super) fn url_encoded(ctx: &Ctx) -> S3Result<bool> {
    match ctx.route.query("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(S3Error::invalid_argument(
            "Invalid Encoding Method specified in Request",
        )),
    }
}

/// `encoding-type=url`: everything but unreserved characters and `/` percent-encoded.
pub(super) fn encode(s: &str, on: bool) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    if on {
        percent_encoding::utf8_percent_encode(s, SET).to_string()
    } else {
        s.to_string()
    }
}

fn entries(
    listing: &Listing,
    url: bool,
    with_owner: bool,
) -> (Vec<xml::ListObjectEntry>, Vec<xml::CommonPrefix>) {
    let contents = listing
        .contents
        .iter()
        .map(|(key, r)| xml::ListObjectEntry {
            key: encode(key, url),
            last_modified: iso8601(r.modified_ms),
            etag: format!("\"{}\"", r.etag),
            checksum_algorithm: r.checksum.as_ref().map(|c| c.algorithm.name().to_string()),
            size: r.size,
            owner: with_owner.then(|| owner(&r.owner)),
            storage_class: "STANDARD",
        })
        .collect();
    let prefixes = listing
        .prefixes
        .iter()
        .map(|p| xml::CommonPrefix {
            prefix: encode(p, url),
        })
        .collect();
    (contents, prefixes)
}

pub async fn list_objects_v1(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let prefix = ctx.route.query("prefix").unwrap_or("");
    let delimiter = ctx.route.query("delimiter").filter(|d| !d.is_empty());
    let marker = ctx.route.query("marker").unwrap_or("");
    let url = url_encoded(ctx)?;
    let max = max_keys(ctx)?;
    let after = (!marker.is_empty()).then(|| marker.to_string());
    let listing = list(ctx, bucket, prefix, delimiter, after, max)?;
    let (contents, common_prefixes) = entries(&listing, url, true);
    let doc = xml::ListBucketResultV1 {
        xmlns: S3_NS,
        name: bucket.to_string(),
        prefix: encode(prefix, url),
        marker: encode(marker, url),
        // S3 returns NextMarker only with a delimiter; without one clients use the last key.
        next_marker: (listing.truncated && delimiter.is_some())
            .then(|| listing.last.as_deref().map(|l| encode(l, url)))
            .flatten(),
        max_keys: max,
        delimiter: delimiter.map(|d| encode(d, url)),
        is_truncated: listing.truncated,
        encoding_type: url.then(|| "url".to_string()),
        contents,
        common_prefixes,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListBucketResult", &doc)?,
    ))
}

pub async fn list_objects_v2(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let prefix = ctx.route.query("prefix").unwrap_or("");
    let delimiter = ctx.route.query("delimiter").filter(|d| !d.is_empty());
    let url = url_encoded(ctx)?;
    let max = max_keys(ctx)?;
    let token = ctx.route.query("continuation-token");
    let start_after = ctx.route.query("start-after").filter(|s| !s.is_empty());
    let after = match token {
        Some(t) => Some(decode_token(t)?),
        None => start_after.map(str::to_string),
    };
    let fetch_owner = ctx.route.query("fetch-owner") == Some("true");
    let listing = list(ctx, bucket, prefix, delimiter, after, max)?;
    let (contents, common_prefixes) = entries(&listing, url, fetch_owner);
    let doc = xml::ListBucketResultV2 {
        xmlns: S3_NS,
        name: bucket.to_string(),
        prefix: encode(prefix, url),
        delimiter: delimiter.map(|d| encode(d, url)),
        max_keys: max,
        key_count: contents.len() + common_prefixes.len(),
        is_truncated: listing.truncated,
        encoding_type: url.then(|| "url".to_string()),
        continuation_token: token.map(str::to_string),
        next_continuation_token: listing
            .truncated
            .then(|| listing.last.as_deref().map(encode_token))
            .flatten(),
        start_after: start_after.map(|s| encode(s, url)),
        contents,
        common_prefixes,
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListBucketResult", &doc)?,
    ))
}

/// Continuation tokens are opaque to clients; ours carry the last key returned.
fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| S3Error::invalid_argument("The continuation token provided is incorrect"))
}
