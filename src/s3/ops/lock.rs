//! Object lock: the bucket's configuration (`?object-lock`), a version's retention
//! (`?retention`) and legal hold (`?legal-hold`), the lock headers of writes and reads, and the
//! bypass of governance retention. The decisions themselves are `store::lock`'s.

use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::support::{existing_bucket, named_version, read_small_body};
use crate::meta::{BucketSetting, ObjectLock, ObjectRecord, Retention, RetentionMode};
use crate::s3::ctx::Ctx;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::response::{self, iso8601, now_ms, S3Response};
use crate::s3::xml::{self, S3_NS};
use crate::store::lock::{
    may_change_retention, DefaultRetention, LockConfiguration, Period, Refusal,
};
use crate::store::{self, Store, StoreError};

const MODE_HEADER: &str = "x-amz-object-lock-mode";
const UNTIL_HEADER: &str = "x-amz-object-lock-retain-until-date";
const HOLD_HEADER: &str = "x-amz-object-lock-legal-hold";
const BYPASS_HEADER: &str = "x-amz-bypass-governance-retention";

// ---- documents ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationIn {
    object_lock_enabled: Option<String>,
    rule: Option<RuleIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuleIn {
    default_retention: Option<DefaultRetentionIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultRetentionIn {
    mode: Option<String>,
    days: Option<String>,
    years: Option<String>,
}

#[derive(Debug, Serialize)]
struct ConfigurationOut {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "ObjectLockEnabled")]
    enabled: &'static str,
    #[serde(rename = "Rule", skip_serializing_if = "Option::is_none")]
    rule: Option<RuleOut>,
}

#[derive(Debug, Serialize)]
struct RuleOut {
    #[serde(rename = "DefaultRetention")]
    default_retention: DefaultRetentionOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DefaultRetentionOut {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    years: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionIn {
    mode: Option<String>,
    retain_until_date: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionOut {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    mode: &'static str,
    retain_until_date: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegalHoldIn {
    status: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LegalHoldOut {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    status: &'static str,
}

// ---- names and values ----

fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Governance => "GOVERNANCE",
        RetentionMode::Compliance => "COMPLIANCE",
    }
}

fn parse_mode(text: &str) -> Option<RetentionMode> {
    match text {
        "GOVERNANCE" => Some(RetentionMode::Governance),
        "COMPLIANCE" => Some(RetentionMode::Compliance),
        _ => None,
    }
}

/// `2030-01-01T00:00:00.000Z` and the other RFC 3339 forms; milliseconds since the epoch.
fn parse_date(text: &str) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn no_lock_configuration() -> S3Error {
    S3Error::invalid_request("Bucket is missing Object Lock Configuration")
}

fn no_object_lock() -> S3Error {
    S3Error::new(
        "NoSuchObjectLockConfiguration",
        StatusCode::NOT_FOUND,
        "The specified object does not have a ObjectLock configuration",
    )
}

fn refusal_error(_: Refusal) -> S3Error {
    S3Error::locked()
}

/// Content-MD5 or a flexible checksum (header or trailer): S3 requires one on these requests.
fn has_digest(headers: &HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.contains_key("x-amz-sdk-checksum-algorithm")
        || headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("x-amz-checksum-"))
        || headers.keys().any(|h| {
            h.as_str().starts_with("x-amz-checksum-") && h.as_str() != "x-amz-checksum-mode"
        })
}

fn require_digest(ctx: &Ctx) -> S3Result<()> {
    if has_digest(&ctx.headers) {
        Ok(())
    } else {
        Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ))
    }
}

// ---- the bucket's configuration ----

/// The bucket's lock configuration; `None` when object lock is not enabled on it.
pub fn bucket_lock(store: &Store, bucket: &str) -> S3Result<Option<LockConfiguration>> {
    Ok(
        store::bucket_setting(store, bucket, BucketSetting::ObjectLock)?
            .map(|text| LockConfiguration::from_json(&text).unwrap_or_default()),
    )
}

/// Object lock needs versioning: S3 turns it on with the lock and never lets it be
/// suspended afterwards.
pub async fn enable_versioning_for_lock(store: &Store, bucket: &str) -> S3Result<()> {
    Ok(store::set_versioning(store, bucket, store::VersioningState::Enabled).await?)
}

/// CreateBucket's `x-amz-bucket-object-lock-enabled`: `Some(true)` to enable, checked before
/// the bucket is created.
pub fn lock_requested_at_creation(ctx: &Ctx) -> S3Result<bool> {
    match ctx.header("x-amz-bucket-object-lock-enabled") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(S3Error::invalid_argument(
            "Invalid x-amz-bucket-object-lock-enabled header",
        )
        .with("ArgumentName", "x-amz-bucket-object-lock-enabled")
        .with("ArgumentValue", v)),
    }
}

/// Enables object lock (and versioning) on a bucket just created with the header.
pub async fn enable_at_creation(ctx: &Ctx, bucket: &str) -> S3Result<()> {
    enable_versioning_for_lock(&ctx.gw.store, bucket).await?;
    store::set_bucket_setting(
        &ctx.gw.store,
        bucket,
        BucketSetting::ObjectLock,
        Some(&LockConfiguration::default().to_json()),
    )
    .await?;
    Ok(())
}

fn parse_configuration(body: &[u8]) -> S3Result<LockConfiguration> {
    let doc: ConfigurationIn = xml::from_xml("ObjectLockConfiguration", body)?;
    if doc.object_lock_enabled.as_deref().map(str::trim) != Some("Enabled") {
        return Err(S3Error::malformed_xml());
    }
    let Some(rule) = doc.rule else {
        return Ok(LockConfiguration::default());
    };
    let d = rule.default_retention.ok_or_else(S3Error::malformed_xml)?;
    let mode = d
        .mode
        .as_deref()
        .map(str::trim)
        .and_then(parse_mode)
        .ok_or_else(S3Error::malformed_xml)?;
    let positive = |text: &str| -> S3Result<u32> {
        text.trim()
            .parse::<i64>()
            .map_err(|_| S3Error::malformed_xml())
            .and_then(|n| {
                u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    S3Error::invalid_argument(
                        "Default retention period must be a positive integer value",
                    )
                })
            })
    };
    let period = match (d.days.as_deref(), d.years.as_deref()) {
        (Some(days), None) => Period::Days(positive(days)?),
        (None, Some(years)) => Period::Years(positive(years)?),
        _ => return Err(S3Error::malformed_xml()),
    };
    Ok(LockConfiguration {
        default_retention: Some(DefaultRetention { mode, period }),
    })
}

pub async fn put_object_lock_configuration(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    existing_bucket(ctx, &bucket)?;
    require_digest(ctx)?;
    let body = read_small_body(ctx).await?;
    let config = parse_configuration(&body)?;
    let store = &ctx.gw.store;
    if bucket_lock(store, &bucket)?.is_none()
        && store::versioning(store, &bucket)? != store::VersioningState::Enabled
    {
        return Err(S3Error::new(
            "InvalidBucketState",
            StatusCode::CONFLICT,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
        ));
    }
    store::set_bucket_setting(
        store,
        &bucket,
        BucketSetting::ObjectLock,
        Some(&config.to_json()),
    )
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_object_lock_configuration(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    existing_bucket(ctx, bucket)?;
    let config = bucket_lock(&ctx.gw.store, bucket)?.ok_or_else(|| {
        S3Error::new(
            "ObjectLockConfigurationNotFoundError",
            StatusCode::NOT_FOUND,
            "Object Lock configuration does not exist for this bucket",
        )
        .with("BucketName", bucket)
    })?;
    let doc = ConfigurationOut {
        xmlns: S3_NS,
        enabled: "Enabled",
        rule: config.default_retention.map(|d| RuleOut {
            default_retention: DefaultRetentionOut {
                mode: mode_name(d.mode),
                days: match d.period {
                    Period::Days(n) => Some(n),
                    Period::Years(_) => None,
                },
                years: match d.period {
                    Period::Years(n) => Some(n),
                    Period::Days(_) => None,
                },
            },
        }),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("ObjectLockConfiguration", &doc)?,
    ))
}

// ---- a version's retention and legal hold ----

/// Changes the target version's lock under the key's lock, with `change` deciding from the
/// version as it is then.
async fn change_lock(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    change: impl FnOnce(&ObjectRecord) -> Result<ObjectLock, Refusal>,
) -> S3Result<()> {
    named_version(ctx, bucket, key)?;
    let version = ctx.route.query("versionId");
    store::update_object_lock(&ctx.gw.store, bucket, key, version, |record| {
        change(record).map_err(StoreError::Locked)
    })
    .await
    .map_err(|e| match e {
        StoreError::Locked(refusal) => refusal_error(refusal),
        other => other.into(),
    })?;
    Ok(())
}

/// The bucket must have object lock for any version in it to be locked.
fn locked_bucket(ctx: &Ctx, bucket: &str) -> S3Result<()> {
    existing_bucket(ctx, bucket)?;
    bucket_lock(&ctx.gw.store, bucket)?
        .map(|_| ())
        .ok_or_else(no_lock_configuration)
}

pub async fn put_object_retention(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    locked_bucket(ctx, &bucket)?;
    require_digest(ctx)?;
    let body = read_small_body(ctx).await?;
    let doc: RetentionIn = xml::from_xml("Retention", &body)?;
    let now = now_ms();
    let new = match (doc.mode.as_deref(), doc.retain_until_date.as_deref()) {
        (None, None) => None,
        (Some(mode), Some(date)) => {
            let mode = parse_mode(mode.trim()).ok_or_else(S3Error::malformed_xml)?;
            let until = parse_date(date).ok_or_else(S3Error::malformed_xml)?;
            if until <= now {
                return Err(S3Error::invalid_argument(
                    "The retain until date must be in the future!",
                ));
            }
            Some(Retention {
                mode,
                retain_until_ms: until,
            })
        }
        _ => return Err(S3Error::malformed_xml()),
    };
    let bypass = bypass_governance(ctx, &bucket, &key)?;
    change_lock(ctx, &bucket, &key, |record| {
        may_change_retention(record.lock.retention.as_ref(), new.as_ref(), bypass, now)?;
        Ok(ObjectLock {
            retention: new,
            ..record.lock
        })
    })
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_object_retention(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    locked_bucket(ctx, bucket)?;
    let (record, _) = named_version(ctx, bucket, key)?;
    let retention = record.lock.retention.ok_or_else(no_object_lock)?;
    let doc = RetentionOut {
        xmlns: S3_NS,
        mode: mode_name(retention.mode),
        retain_until_date: iso8601(retention.retain_until_ms),
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("Retention", &doc)?,
    ))
}

pub async fn put_object_legal_hold(ctx: &mut Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?.to_string();
    let key = ctx.key()?.to_string();
    locked_bucket(ctx, &bucket)?;
    require_digest(ctx)?;
    let body = read_small_body(ctx).await?;
    let doc: LegalHoldIn = xml::from_xml("LegalHold", &body)?;
    let on = match doc.status.as_deref().map(str::trim) {
        Some("ON") => true,
        Some("OFF") => false,
        _ => return Err(S3Error::malformed_xml()),
    };
    change_lock(ctx, &bucket, &key, |record| {
        Ok(ObjectLock {
            legal_hold: on,
            ..record.lock
        })
    })
    .await?;
    Ok(response::empty(StatusCode::OK))
}

pub async fn get_object_legal_hold(ctx: &Ctx) -> S3Result<S3Response> {
    let bucket = ctx.bucket()?;
    let key = ctx.key()?;
    locked_bucket(ctx, bucket)?;
    let (record, _) = named_version(ctx, bucket, key)?;
    let doc = LegalHoldOut {
        xmlns: S3_NS,
        status: if record.lock.legal_hold { "ON" } else { "OFF" },
    };
    Ok(response::xml(
        StatusCode::OK,
        xml::to_xml("LegalHold", &doc)?,
    ))
}

// ---- writes, reads and deletes ----

/// The lock a new version gets: what the request's lock headers ask for, else the bucket's
/// default retention. Lock headers on a bucket without object lock are refused; a PUT
/// (`body_write`) with them must prove its body's integrity, as S3 requires.
pub fn new_object_lock(ctx: &Ctx, bucket: &str, body_write: bool) -> S3Result<ObjectLock> {
    let mode = ctx.header(MODE_HEADER);
    let until = ctx.header(UNTIL_HEADER);
    let hold = ctx.header(HOLD_HEADER);
    let asked = mode.is_some() || until.is_some() || hold.is_some();
    let config = bucket_lock(&ctx.gw.store, bucket)?;
    let Some(config) = config else {
        return if asked {
            Err(no_lock_configuration())
        } else {
            Ok(ObjectLock::default())
        };
    };
    if asked && body_write && !has_digest(&ctx.headers) {
        return Err(S3Error::invalid_request(
            "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
        ));
    }
    let now = now_ms();
    let retention = match (mode, until) {
        (None, None) => config.default_retention.map(|d| d.applied_at(now)),
        (Some(mode), Some(until)) => {
            let mode = parse_mode(mode).ok_or_else(|| {
                S3Error::invalid_argument("Unknown wormMode directive.")
                    .with("ArgumentName", MODE_HEADER)
                    .with("ArgumentValue", mode)
            })?;
            let until = parse_date(until).ok_or_else(|| {
                S3Error::invalid_argument(
                    "The retain until date must be provided in ISO 8601 format",
                )
                .with("ArgumentName", UNTIL_HEADER)
                .with("ArgumentValue", until)
            })?;
            if until <= now {
                return Err(S3Error::invalid_argument(
                    "The retain until date must be in the future!",
                ));
            }
            Some(Retention {
                mode,
                retain_until_ms: until,
            })
        }
        _ => return Err(S3Error::invalid_argument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )),
    };
    let legal_hold = match hold {
        None => false,
        Some("ON") => true,
        Some("OFF") => false,
        Some(other) => {
            return Err(
                S3Error::invalid_argument("Legal Hold must be either of 'ON' or 'OFF'")
                    .with("ArgumentName", HOLD_HEADER)
                    .with("ArgumentValue", other),
            )
        }
    };
    Ok(ObjectLock {
        retention,
        legal_hold,
    })
}

/// The lock headers a GET or HEAD of a locked version answers with.
pub fn lock_headers(r: &mut S3Response, record: &ObjectRecord) {
    if let Some(retention) = &record.lock.retention {
        response::set_header(r, MODE_HEADER, mode_name(retention.mode));
        response::set_header(r, UNTIL_HEADER, &iso8601(retention.retain_until_ms));
    }
    if record.lock.legal_hold {
        response::set_header(r, HOLD_HEADER, "ON");
    }
}

/// Whether the request asks to bypass governance retention (`x-amz-bypass-governance-retention:
/// true`) and holds `s3:BypassGovernanceRetention`; asking without it is refused.
pub fn bypass_governance(ctx: &Ctx, bucket: &str, key: &str) -> S3Result<bool> {
    let asked = ctx
        .header(BYPASS_HEADER)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !asked {
        return Ok(false);
    }
    crate::s3::authorize::may_bypass_governance(
        &ctx.gw.store,
        &ctx.principal,
        &ctx.credential,
        ctx.connection,
        bucket,
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_documents() {
        let ok = |text: &str| parse_configuration(text.as_bytes()).unwrap();
        let code = |text: &str| parse_configuration(text.as_bytes()).unwrap_err().code;
        assert_eq!(
            ok("<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>"),
            LockConfiguration::default()
        );
        assert_eq!(
            ok(
                r#"<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>2</Years></DefaultRetention></Rule></ObjectLockConfiguration>"#
            ),
            LockConfiguration {
                default_retention: Some(DefaultRetention {
                    mode: RetentionMode::Compliance,
                    period: Period::Years(2)
                })
            }
        );
        let rule = |inner: &str| {
            format!("<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>{inner}</DefaultRetention></Rule></ObjectLockConfiguration>")
        };
        assert_eq!(
            code(&rule(
                "<Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>"
            )),
            "MalformedXML"
        );
        assert_eq!(code(&rule("<Mode>GOVERNANCE</Mode>")), "MalformedXML");
        assert_eq!(
            code(&rule("<Mode>SOFT</Mode><Days>1</Days>")),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule("<Mode>GOVERNANCE</Mode><Days>0</Days>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<Mode>GOVERNANCE</Mode><Days>-3</Days>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<Mode>GOVERNANCE</Mode><Days>x</Days>")),
            "MalformedXML"
        );
        assert_eq!(
            code("<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>"),
            "MalformedXML"
        );
        assert_eq!(code("<Nope/>"), "MalformedXML");
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(
            parse_date("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_date("tomorrow"), None);
        assert_eq!(parse_date("1969-12-31T00:00:00Z"), None);
    }
}
