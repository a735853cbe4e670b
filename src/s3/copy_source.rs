//! The `x-amz-copy-source` header and S3 version ids, as requests name them: read by the
//! copy operations and by authorization (which judges the source before anything runs).

use crate::s3::error::{S3Error, S3Result};

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, the key URL-encoded.
pub fn parse_copy_source(value: &str) -> S3Result<(String, String)> {
    parse_copy_source_version(value).map(|(b, k, _)| (b, k))
}

/// [`parse_copy_source`] with the source's version id, if one was named.
pub fn parse_copy_source_version(value: &str) -> S3Result<(String, String, Option<String>)> {
    let invalid = || {
        S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    };
    let (path, query) = value.split_once('?').unwrap_or((value, ""));
    let mut version = None;
    if let Some(v) = query.strip_prefix("versionId=") {
        if check_version_id(v).is_err() {
            return Err(S3Error::invalid_argument("Invalid version id specified"));
        }
        version = Some(v.to_string());
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => {
            Ok((b.to_string(), k.to_string(), version))
        }
        _ => Err(invalid()),
    }
}

/// A version id as a request names it: `null`, or one of Hansa's ids (32 hex digits); anything
/// else is S3's InvalidArgument.
pub fn check_version_id(v: &str) -> S3Result<&str> {
    let ours = v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit());
    if v == "null" || ours {
        Ok(v)
    } else {
        Err(S3Error::invalid_argument("Invalid version id specified")
            .with("ArgumentName", "versionId")
            .with("ArgumentValue", v))
    }
}
