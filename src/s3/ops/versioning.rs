//! Get/PutBucketVersioning and ListObjectVersions.

use http::StatusCode;

use super::list::{encode, url_encoded};
use super::support::{existing_bucket, read_small_body};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, S3Response};
use crate::s3::xml::{self, owner, S3_NS};
use crate::store::{self, VersionView, VersioningState, VersionsFrom};

const MAX_KEYS: usize = 1000;

pub async fn get_versioning(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let doc = xml::VersioningConfiguration {
        xmlns: S3_NS,
        status: store::versioning(&ctx.gw.store, bucket)?.name(),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("VersioningConfiguration", &doc)?,
    ))
}

fn illegal_configuration(message: &str) -> S3Error {
    S3Error::new(
        "IllegalVersioningConfigurationException",
        StatusCode::BAD_REQUEST,
        message,
    )
}

pub async fn put_versioning(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    let body = read_small_body(ctx).await?;
    let doc: xml::VersioningRequest = xml::from_xml("VersioningConfiguration", &body)?;
    match doc.mfa_delete.as_deref().map(str::trim) {
        None | Some("Disabled") => {}
        // MFA delete needs an MFA device's code with every versioned delete; Hansa has no MFA.
        Some("Enabled") => {
            return Err(S3Error::new(
                "AccessDenied",
                StatusCode::FORBIDDEN,
                "Mfa Authentication must be used for this request",
            ))
        }
        Some(_) => {
            return Err(illegal_configuration(
                "The MfaDelete element must be Enabled or Disabled",
            ))
        }
    }
    let state = match doc.status.as_deref().map(str::trim) {
        Some("Enabled") => VersioningState::Enabled,
        Some("Suspended") => VersioningState::Suspended,
        None if doc.mfa_delete.is_some() => return Ok(response::empty(StatusCode::OK)),
        _ => {
            return Err(illegal_configuration(
                "The Versioning element must be specified",
            ))
        }
    };
    // Object lock protects versions only while new writes keep the old ones (AWS refuses the
    // same way).
    if state == VersioningState::Suspended
        && super::lock::bucket_lock(&ctx.gw.store, &bucket)?.is_some()
    {
        return Err(S3Error::new(
            "InvalidBucketState",
            http::StatusCode::CONFLICT,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
        ));
    }
    store::set_versioning(&ctx.gw.store, &bucket, state).await?;
    Ok(response::empty(StatusCode::OK))
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

pub async fn list_object_versions(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let prefix = ctx.route.query("prefix").unwrap_or("");
    let delimiter = ctx.route.query("delimiter").filter(|d| !d.is_empty());
    let key_marker = ctx.route.query("key-marker").unwrap_or("");
    let version_marker = ctx.route.query("version-id-marker").unwrap_or("");
    let url = url_encoded(ctx)?;
    let max = max_keys(ctx)?;
    if !version_marker.is_empty() {
        if key_marker.is_empty() {
            return Err(S3Error::invalid_argument(
                "A version-id marker cannot be specified without a key marker.",
            )
            .with("ArgumentName", "version-id-marker")
            .with("ArgumentValue", version_marker));
        }
        super::support::check_version_id(version_marker)?;
    }
    let from = match (key_marker.is_empty(), version_marker.is_empty()) {
        (true, _) => VersionsFrom::Start,
        (false, true) => VersionsFrom::AfterKey(key_marker.to_string()),
        (false, false) => {
            VersionsFrom::AfterVersion(key_marker.to_string(), version_marker.to_string())
        }
    };
    let listing = if max == 0 {
        store::VersionListing::default()
    } else {
        store::list_versions(&ctx.gw.store, bucket, prefix, delimiter, from, max)?
    };
    let entries = listing
        .versions
        .iter()
        .map(|(key, view)| match view {
            VersionView::Object { record, latest } => {
                xml::VersionElement::Version(xml::ListedVersion {
                    key: encode(key, url),
                    version_id: record.shown_version_id().to_string(),
                    is_latest: *latest,
                    last_modified: iso8601(record.modified_ms),
                    etag: format!("\"{}\"", record.etag),
                    checksum_algorithm: record
                        .checksum
                        .as_ref()
                        .map(|c| c.algorithm.name().to_string()),
                    size: record.size,
                    storage_class: "STANDARD",
                    owner: owner(&record.owner),
                })
            }
            VersionView::DeleteMarker { marker, latest } => {
                xml::VersionElement::DeleteMarker(xml::ListedDeleteMarker {
                    key: encode(key, url),
                    version_id: view.shown_version_id().to_string(),
                    is_latest: *latest,
                    last_modified: iso8601(marker.modified_ms),
                    owner: owner(&marker.owner),
                })
            }
        })
        .collect();
    let (next_key, next_version) = match (&listing.next, listing.truncated) {
        (Some((k, v)), true) => (Some(encode(k, url)), v.clone()),
        _ => (None, None),
    };
    let doc = xml::ListVersionsResult {
        xmlns: S3_NS,
        name: bucket.to_string(),
        prefix: encode(prefix, url),
        key_marker: encode(key_marker, url),
        version_id_marker: version_marker.to_string(),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        max_keys: max,
        delimiter: delimiter.map(|d| encode(d, url)),
        is_truncated: listing.truncated,
        encoding_type: url.then(|| "url".to_string()),
        entries,
        common_prefixes: listing
            .common_prefixes
            .iter()
            .map(|p| xml::CommonPrefix {
                prefix: encode(p, url),
            })
            .collect(),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ListVersionsResult", &doc)?,
    ))
}

#[cfg(test)]
mod tests {
    use crate::s3::xml;

    #[test]
    fn versions_and_markers_keep_their_order() {
        let owner = || xml::owner("o");
        let doc = xml::ListVersionsResult {
            xmlns: xml::S3_NS,
            name: "b".into(),
            prefix: String::new(),
            key_marker: String::new(),
            version_id_marker: String::new(),
            next_key_marker: None,
            next_version_id_marker: None,
            max_keys: 1000,
            delimiter: None,
            is_truncated: false,
            encoding_type: None,
            entries: vec![
                xml::VersionElement::DeleteMarker(xml::ListedDeleteMarker {
                    key: "a".into(),
                    version_id: "v3".into(),
                    is_latest: true,
                    last_modified: "t".into(),
                    owner: owner(),
                }),
                xml::VersionElement::Version(xml::ListedVersion {
                    key: "a".into(),
                    version_id: "v2".into(),
                    is_latest: false,
                    last_modified: "t".into(),
                    etag: "\"e\"".into(),
                    checksum_algorithm: None,
                    size: 3,
                    storage_class: "STANDARD",
                    owner: owner(),
                }),
            ],
            common_prefixes: vec![xml::CommonPrefix {
                prefix: "p/".into(),
            }],
        };
        let text = xml::to_xml("ListVersionsResult", &doc).unwrap();
        let marker = text
            .find("<DeleteMarker><Key>a</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>")
            .expect(&text);
        let version = text
            .find("<Version><Key>a</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest>")
            .expect(&text);
        let prefixes = text
            .find("<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>")
            .expect(&text);
        assert!(marker < version && version < prefixes, "{text}");
        assert!(
            text.contains("<IsTruncated>false</IsTruncated><DeleteMarker>"),
            "{text}"
        );
    }
}
