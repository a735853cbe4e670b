//! S3 Object Lock through aws-sdk-s3: the bucket's configuration (and its errors), a version's
//! retention and legal hold, the bucket's default retention, the lock headers of PUT, copy and
//! multipart uploads, and what a lock refuses: deleting or overwriting a locked object
//! (403 AccessDenied, bytes unchanged), compliance retention being weakened, governance
//! retention being weakened or bypassed by a key without `s3:BypassGovernanceRetention`.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete, ObjectIdentifier,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
};
use aws_sdk_s3::Client;
use hansa_conformance::raw::{self, send_reqwest, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    assert_s3_err, create_bucket, get, md5_b64, put, TestGateway, ADMIN, LIMITED, LIMITED_BUCKET,
};

async fn create_locked_bucket(s3: &Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create locked bucket {bucket}: {e:?}"));
}

fn in_secs(secs: u64) -> DateTime {
    DateTime::from(SystemTime::now() + Duration::from_secs(secs))
}

fn ago(secs: u64) -> DateTime {
    DateTime::from(SystemTime::now() - Duration::from_secs(secs))
}

fn retention(mode: ObjectLockRetentionMode, until: DateTime) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(until)
        .build()
}

fn default_rule(
    mode: ObjectLockRetentionMode,
    days: Option<i32>,
    years: Option<i32>,
) -> ObjectLockConfiguration {
    let mut d = DefaultRetention::builder().mode(mode);
    if let Some(days) = days {
        d = d.days(days);
    }
    if let Some(years) = years {
        d = d.years(years);
    }
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(d.build())
                .build(),
        )
        .build()
}

async fn set_retention(
    s3: &Client,
    bucket: &str,
    key: &str,
    r: ObjectLockRetention,
    bypass: bool,
) -> Result<
    (),
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::put_object_retention::PutObjectRetentionError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
> {
    let mut req = s3
        .put_object_retention()
        .bucket(bucket)
        .key(key)
        .retention(r);
    if bypass {
        req = req.bypass_governance_retention(true);
    }
    req.send().await.map(|_| ())
}

async fn set_hold(s3: &Client, bucket: &str, key: &str, on: bool) {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    s3.put_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .legal_hold(ObjectLockLegalHold::builder().status(status).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("legal hold {key}: {e:?}"));
}

/// The version id of the key's current version.
async fn current_version(s3: &Client, bucket: &str, key: &str) -> String {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {bucket}/{key}: {e:?}"))
        .version_id
        .unwrap_or_else(|| panic!("{bucket}/{key} has no version id"))
}

async fn put_locked(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    mode: ObjectLockMode,
    until: DateTime,
) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .object_lock_mode(mode)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap_or_else(|e| panic!("locked put {key}: {e:?}"));
}

#[tokio::test]
async fn configuration_round_trip_and_errors() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "plain").await;
    assert_s3_err!(
        s3.get_object_lock_configuration()
            .bucket("plain")
            .send()
            .await,
        404,
        "ObjectLockConfigurationNotFoundError"
    );
    // Object lock needs versioning, which a plain bucket does not have.
    assert_s3_err!(
        s3.put_object_lock_configuration()
            .bucket("plain")
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .build()
            )
            .send()
            .await,
        409,
        "InvalidBucketState"
    );
    assert_s3_err!(
        s3.get_object_lock_configuration()
            .bucket("nope")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );

    create_locked_bucket(&s3, "locked").await;
    let got = s3
        .get_object_lock_configuration()
        .bucket("locked")
        .send()
        .await
        .expect("get configuration")
        .object_lock_configuration
        .expect("configuration");
    assert_eq!(got.object_lock_enabled, Some(ObjectLockEnabled::Enabled));
    assert!(got.rule.is_none(), "{got:?}");

    for (mode, days, years) in [
        (ObjectLockRetentionMode::Governance, Some(3), None),
        (ObjectLockRetentionMode::Compliance, None, Some(2)),
    ] {
        s3.put_object_lock_configuration()
            .bucket("locked")
            .object_lock_configuration(default_rule(mode.clone(), days, years))
            .send()
            .await
            .expect("put configuration");
        let d = s3
            .get_object_lock_configuration()
            .bucket("locked")
            .send()
            .await
            .expect("get configuration")
            .object_lock_configuration
            .and_then(|c| c.rule)
            .and_then(|r| r.default_retention)
            .expect("default retention");
        assert_eq!((d.mode, d.days, d.years), (Some(mode), days, years));
    }
    let refused = |days, years| {
        s3.put_object_lock_configuration()
            .bucket("locked")
            .object_lock_configuration(default_rule(
                ObjectLockRetentionMode::Governance,
                days,
                years,
            ))
            .send()
    };
    assert_s3_err!(refused(Some(0), None).await, 400, "InvalidArgument");
    assert_s3_err!(refused(Some(-1), None).await, 400, "InvalidArgument");
    assert_s3_err!(refused(Some(1), Some(1)).await, 400, "MalformedXML");
    assert_s3_err!(refused(None, None).await, 400, "MalformedXML");
    // A refused document changed nothing.
    let d = s3
        .get_object_lock_configuration()
        .bucket("locked")
        .send()
        .await
        .expect("get configuration")
        .object_lock_configuration
        .and_then(|c| c.rule)
        .and_then(|r| r.default_retention)
        .expect("default retention");
    assert_eq!(d.years, Some(2));

    // A version in a bucket without object lock has none to read or set.
    put(&s3, "plain", "k", b"x").await;
    assert_s3_err!(
        s3.get_object_retention()
            .bucket("plain")
            .key("k")
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    assert_s3_err!(
        set_retention(
            &s3,
            "plain",
            "k",
            retention(ObjectLockRetentionMode::Governance, in_secs(3600)),
            false
        )
        .await,
        400,
        "InvalidRequest"
    );
    assert_s3_err!(
        s3.get_object_legal_hold()
            .bucket("plain")
            .key("k")
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn retention_and_legal_hold_round_trip() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "rlh").await;
    put(&s3, "rlh", "k", b"data").await;
    assert_s3_err!(
        s3.get_object_retention()
            .bucket("rlh")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchObjectLockConfiguration"
    );
    let hold = s3
        .get_object_legal_hold()
        .bucket("rlh")
        .key("k")
        .send()
        .await
        .expect("get legal hold");
    assert_eq!(
        hold.legal_hold.and_then(|h| h.status),
        Some(ObjectLockLegalHoldStatus::Off)
    );
    let until = DateTime::from_secs(in_secs(3600).secs());
    set_retention(
        &s3,
        "rlh",
        "k",
        retention(ObjectLockRetentionMode::Governance, until),
        false,
    )
    .await
    .expect("put retention");
    let got = s3
        .get_object_retention()
        .bucket("rlh")
        .key("k")
        .send()
        .await
        .expect("get retention")
        .retention
        .expect("retention");
    assert_eq!(got.mode, Some(ObjectLockRetentionMode::Governance));
    assert_eq!(got.retain_until_date, Some(until));
    set_hold(&s3, "rlh", "k", true).await;
    let head = s3
        .head_object()
        .bucket("rlh")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));
    assert_eq!(head.object_lock_retain_until_date, Some(until));
    assert_eq!(
        head.object_lock_legal_hold_status,
        Some(ObjectLockLegalHoldStatus::On)
    );
    let got = s3
        .get_object()
        .bucket("rlh")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(got.object_lock_mode, Some(ObjectLockMode::Governance));
    assert_eq!(
        got.object_lock_legal_hold_status,
        Some(ObjectLockLegalHoldStatus::On)
    );
    // Only the current version exists; any other id is not found.
    assert_s3_err!(
        s3.get_object_retention()
            .bucket("rlh")
            .key("k")
            .version_id("0190a1b2c3d4e5f60718293a4b5c6d7e")
            .send()
            .await,
        404,
        "NoSuchVersion"
    );
    assert_s3_err!(
        s3.get_object_retention()
            .bucket("rlh")
            .key("missing")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    // A date in the past is refused.
    assert_s3_err!(
        set_retention(
            &s3,
            "rlh",
            "k",
            retention(ObjectLockRetentionMode::Governance, ago(60)),
            true
        )
        .await,
        400,
        "InvalidArgument"
    );
    set_hold(&s3, "rlh", "k", false).await;
    set_retention(
        &s3,
        "rlh",
        "k",
        ObjectLockRetention::builder().build(),
        true,
    )
    .await
    .expect("remove governance retention with the bypass");
    let head = s3
        .head_object()
        .bucket("rlh")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, None);
    assert_eq!(head.object_lock_legal_hold_status, None);
    gw.shutdown().await;
}

#[tokio::test]
async fn default_retention_applies_to_new_objects() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "dflt").await;
    put(&s3, "dflt", "before", b"1").await;
    s3.put_object_lock_configuration()
        .bucket("dflt")
        .object_lock_configuration(default_rule(
            ObjectLockRetentionMode::Governance,
            Some(2),
            None,
        ))
        .send()
        .await
        .expect("put configuration");
    let start = SystemTime::now();
    put(&s3, "dflt", "after", b"2").await;
    let head = s3
        .head_object()
        .bucket("dflt")
        .key("after")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));
    let until = head
        .object_lock_retain_until_date
        .expect("retain until")
        .secs();
    let expected = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 2 * 86_400;
    assert!((until - expected).abs() <= 5, "{until} vs {expected}");
    // Existing versions keep what they had.
    let head = s3
        .head_object()
        .bucket("dflt")
        .key("before")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, None);
    // Explicit headers win over the default.
    let explicit = DateTime::from_secs(in_secs(600).secs());
    put_locked(
        &s3,
        "dflt",
        "explicit",
        b"3",
        ObjectLockMode::Compliance,
        explicit,
    )
    .await;
    let head = s3
        .head_object()
        .bucket("dflt")
        .key("explicit")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Compliance));
    assert_eq!(head.object_lock_retain_until_date, Some(explicit));
    // A multipart upload gets the default too.
    let up = s3
        .create_multipart_upload()
        .bucket("dflt")
        .key("mp")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id.expect("upload id");
    let part = s3
        .upload_part()
        .bucket("dflt")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(b"part".to_vec().into())
        .send()
        .await
        .expect("part");
    s3.complete_multipart_upload()
        .bucket("dflt")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let head = s3
        .head_object()
        .bucket("dflt")
        .key("mp")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));
    gw.shutdown().await;
}

#[tokio::test]
async fn compliance_is_never_weakened_governance_only_with_bypass() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "modes").await;
    let until = DateTime::from_secs(in_secs(3600).secs());
    let later = DateTime::from_secs(in_secs(7200).secs());
    let sooner = DateTime::from_secs(in_secs(1800).secs());

    put_locked(&s3, "modes", "c", b"c", ObjectLockMode::Compliance, until).await;
    for (mode, date) in [
        (ObjectLockRetentionMode::Compliance, sooner),
        (ObjectLockRetentionMode::Governance, later),
    ] {
        assert_s3_err!(
            set_retention(&s3, "modes", "c", retention(mode, date), true).await,
            403,
            "AccessDenied"
        );
    }
    assert_s3_err!(
        set_retention(
            &s3,
            "modes",
            "c",
            ObjectLockRetention::builder().build(),
            true
        )
        .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        s3.delete_object()
            .bucket("modes")
            .key("c")
            .version_id(current_version(&s3, "modes", "c").await)
            .bypass_governance_retention(true)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    set_retention(
        &s3,
        "modes",
        "c",
        retention(ObjectLockRetentionMode::Compliance, later),
        false,
    )
    .await
    .expect("extend compliance");
    let head = s3
        .head_object()
        .bucket("modes")
        .key("c")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_retain_until_date, Some(later));

    put_locked(&s3, "modes", "g", b"g", ObjectLockMode::Governance, until).await;
    assert_s3_err!(
        set_retention(
            &s3,
            "modes",
            "g",
            retention(ObjectLockRetentionMode::Governance, sooner),
            false
        )
        .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        s3.delete_object()
            .bucket("modes")
            .key("g")
            .version_id(current_version(&s3, "modes", "g").await)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    set_retention(
        &s3,
        "modes",
        "g",
        retention(ObjectLockRetentionMode::Governance, sooner),
        true,
    )
    .await
    .expect("shorten governance with the bypass");
    s3.delete_object()
        .bucket("modes")
        .key("g")
        .version_id(current_version(&s3, "modes", "g").await)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete with the bypass");
    assert_s3_err!(
        s3.head_object().bucket("modes").key("g").send().await,
        404,
        "NotFound"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_key_without_the_permission_cannot_bypass_governance() {
    let gw = TestGateway::start().await;
    let admin = gw.client();
    let limited = gw.client_for(LIMITED);
    create_locked_bucket(&admin, LIMITED_BUCKET).await;
    let until = in_secs(3600);
    put_locked(
        &limited,
        LIMITED_BUCKET,
        "g",
        b"kept",
        ObjectLockMode::Governance,
        until,
    )
    .await;
    assert_s3_err!(
        limited
            .delete_object()
            .bucket(LIMITED_BUCKET)
            .key("g")
            .version_id(current_version(&limited, LIMITED_BUCKET, "g").await)
            .bypass_governance_retention(true)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        set_retention(
            &limited,
            LIMITED_BUCKET,
            "g",
            ObjectLockRetention::builder().build(),
            true
        )
        .await,
        403,
        "AccessDenied"
    );
    assert_eq!(get(&limited, LIMITED_BUCKET, "g").await, b"kept");
    // The bucket policy can grant the permission to the scoped key.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:BypassGovernanceRetention","Resource":"arn:aws:s3:::{LIMITED_BUCKET}/*"}}]}}"#,
        LIMITED.access_key_id
    );
    admin
        .put_bucket_policy()
        .bucket(LIMITED_BUCKET)
        .policy(policy)
        .send()
        .await
        .expect("put policy");
    limited
        .delete_object()
        .bucket(LIMITED_BUCKET)
        .key("g")
        .version_id(current_version(&limited, LIMITED_BUCKET, "g").await)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete with the granted bypass");
    gw.shutdown().await;
}

#[tokio::test]
async fn lock_headers_on_put_copy_and_multipart() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "hdrs").await;
    create_bucket(&s3, "nolock").await;
    let until = DateTime::from_secs(in_secs(900).secs());
    s3.put_object()
        .bucket("hdrs")
        .key("src")
        .body(b"source".to_vec().into())
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect("locked put");
    let head = s3
        .head_object()
        .bucket("hdrs")
        .key("src")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));
    assert_eq!(head.object_lock_retain_until_date, Some(until));
    assert_eq!(
        head.object_lock_legal_hold_status,
        Some(ObjectLockLegalHoldStatus::On)
    );
    // A copy gets the lock its own headers ask for, never the source's.
    s3.copy_object()
        .bucket("hdrs")
        .key("plain-copy")
        .copy_source("hdrs/src")
        .send()
        .await
        .expect("copy");
    let head = s3
        .head_object()
        .bucket("hdrs")
        .key("plain-copy")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, None);
    assert_eq!(head.object_lock_legal_hold_status, None);
    s3.copy_object()
        .bucket("hdrs")
        .key("locked-copy")
        .copy_source("hdrs/src")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .expect("locked copy");
    let head = s3
        .head_object()
        .bucket("hdrs")
        .key("locked-copy")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Compliance));
    assert_eq!(head.object_lock_retain_until_date, Some(until));
    // Multipart: the headers given at creation, carried to completion.
    let up = s3
        .create_multipart_upload()
        .bucket("hdrs")
        .key("mp")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id.expect("upload id");
    let part = s3
        .upload_part()
        .bucket("hdrs")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(b"part".to_vec().into())
        .send()
        .await
        .expect("part");
    s3.complete_multipart_upload()
        .bucket("hdrs")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let head = s3
        .head_object()
        .bucket("hdrs")
        .key("mp")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));
    assert_eq!(head.object_lock_retain_until_date, Some(until));
    assert_eq!(
        head.object_lock_legal_hold_status,
        Some(ObjectLockLegalHoldStatus::On)
    );
    // Refusals: a mode without a date, a date in the past, any lock header on a bucket
    // without object lock.
    assert_s3_err!(
        s3.put_object()
            .bucket("hdrs")
            .key("half")
            .body(b"x".to_vec().into())
            .object_lock_mode(ObjectLockMode::Governance)
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert_s3_err!(
        s3.put_object()
            .bucket("hdrs")
            .key("past")
            .body(b"x".to_vec().into())
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(ago(60))
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert_s3_err!(
        s3.put_object()
            .bucket("nolock")
            .key("k")
            .body(b"x".to_vec().into())
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    assert_s3_err!(
        s3.create_multipart_upload()
            .bucket("nolock")
            .key("k")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    for key in ["half", "past"] {
        assert_s3_err!(
            s3.head_object().bucket("hdrs").key(key).send().await,
            404,
            "NotFound"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_locked_version_outlives_overwrites_and_deletes() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "wall").await;
    put_locked(
        &s3,
        "wall",
        "k",
        b"original",
        ObjectLockMode::Compliance,
        in_secs(3600),
    )
    .await;
    let locked = current_version(&s3, "wall", "k").await;
    put(&s3, "wall", "other", b"other").await;
    // Object lock needs versioning: overwrites, copies, completions and deletes without a
    // version id all keep the locked version, as noncurrent.
    put(&s3, "wall", "k", b"replaced").await;
    s3.copy_object()
        .bucket("wall")
        .key("k")
        .copy_source("wall/other")
        .send()
        .await
        .expect("copy over a locked version");
    let up = s3
        .create_multipart_upload()
        .bucket("wall")
        .key("k")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id.expect("upload id");
    let part = s3
        .upload_part()
        .bucket("wall")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .body(b"multipart".to_vec().into())
        .send()
        .await
        .expect("part");
    s3.complete_multipart_upload()
        .bucket("wall")
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete over a locked version");
    let marker = s3
        .delete_object()
        .bucket("wall")
        .key("k")
        .send()
        .await
        .expect("a delete marker over a locked version");
    assert_eq!(marker.delete_marker, Some(true));
    // The locked version itself cannot go.
    assert_s3_err!(
        s3.delete_object()
            .bucket("wall")
            .key("k")
            .version_id(&locked)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    let other = current_version(&s3, "wall", "other").await;
    let out = s3
        .delete_objects()
        .bucket("wall")
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&locked)
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("other")
                        .version_id(&other)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("delete objects");
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, [("k", "AccessDenied")]);
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["other"]);
    let kept = s3
        .get_object()
        .bucket("wall")
        .key("k")
        .version_id(&locked)
        .send()
        .await
        .expect("the locked version");
    assert_eq!(
        kept.body.collect().await.unwrap().into_bytes().as_ref(),
        b"original"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn legal_hold_blocks_delete_until_removed() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "hold").await;
    put(&s3, "hold", "k", b"held").await;
    set_hold(&s3, "hold", "k", true).await;
    assert_s3_err!(
        s3.delete_object()
            .bucket("hold")
            .key("k")
            .version_id(current_version(&s3, "hold", "k").await)
            .bypass_governance_retention(true)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_eq!(get(&s3, "hold", "k").await, b"held");
    set_hold(&s3, "hold", "k", false).await;
    s3.delete_object()
        .bucket("hold")
        .key("k")
        .version_id(current_version(&s3, "hold", "k").await)
        .send()
        .await
        .expect("delete once the hold is off");
    assert_s3_err!(
        s3.get_object().bucket("hold").key("k").send().await,
        404,
        "NoSuchKey"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn retention_ends_at_its_date() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "expiry").await;
    let until = SystemTime::now() + Duration::from_secs(2);
    put_locked(
        &s3,
        "expiry",
        "k",
        b"short",
        ObjectLockMode::Compliance,
        DateTime::from(until),
    )
    .await;
    assert_s3_err!(
        s3.delete_object()
            .bucket("expiry")
            .key("k")
            .version_id(current_version(&s3, "expiry", "k").await)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    if let Ok(left) = until.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
    s3.delete_object()
        .bucket("expiry")
        .key("k")
        .version_id(current_version(&s3, "expiry", "k").await)
        .send()
        .await
        .expect("delete after the retention date");
    gw.shutdown().await;
}

/// A signed request with `headers`, and Content-MD5 only when `md5`.
async fn raw_signed(
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    md5: bool,
) -> Response {
    let mut req = raw::request("PUT", &gw.url(path));
    for (name, value) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    if md5 {
        req.headers_mut()
            .insert("content-md5", md5_b64(body).parse().unwrap());
    }
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.to_vec()));
    send_reqwest(req, body.to_vec()).await
}

#[tokio::test]
async fn lock_requests_must_prove_their_body() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "digest").await;
    let until = hansa_conformance::hansa::s3::response::iso8601(
        (SystemTime::now() + Duration::from_secs(600))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let lock_headers = [
        ("x-amz-object-lock-mode", "GOVERNANCE"),
        ("x-amz-object-lock-retain-until-date", until.as_str()),
    ];
    let r = raw_signed(&gw, "digest/k", &lock_headers, b"body", false).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("InvalidRequest")),
        "{}",
        r.text()
    );
    assert_s3_err!(
        s3.head_object().bucket("digest").key("k").send().await,
        404,
        "NotFound"
    );
    let r = raw_signed(&gw, "digest/k", &lock_headers, b"body", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let head = s3
        .head_object()
        .bucket("digest")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Governance));

    let doc = b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
    let r = raw_signed(&gw, "digest?object-lock", &[], doc, false).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("InvalidRequest")),
        "{}",
        r.text()
    );
    let r = raw_signed(&gw, "digest?object-lock", &[], doc, true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn a_locked_version_is_refused_delete_by_version_id() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "versions").await;
    let first = s3
        .put_object()
        .bucket("versions")
        .key("k")
        .body(b"first".to_vec().into())
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(3600))
        .send()
        .await
        .expect("locked put");
    let first_id = first.version_id.expect("version id");
    // In a versioned bucket an overwrite keeps the locked version as a noncurrent one.
    put(&s3, "versions", "k", b"second").await;
    assert_s3_err!(
        s3.delete_object()
            .bucket("versions")
            .key("k")
            .version_id(&first_id)
            .bypass_governance_retention(true)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    let out = s3
        .delete_objects()
        .bucket("versions")
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&first_id)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("delete objects");
    assert_eq!(
        out.errors().first().and_then(|e| e.code()),
        Some("AccessDenied")
    );
    let kept = s3
        .get_object()
        .bucket("versions")
        .key("k")
        .version_id(&first_id)
        .send()
        .await
        .expect("get the locked version");
    assert_eq!(
        kept.body.collect().await.unwrap().into_bytes().as_ref(),
        b"first"
    );
    gw.shutdown().await;
}

/// Retention, legal hold and tags name versions: a noncurrent version is locked and tagged by
/// its id without touching the current one; a delete marker has no object to lock or tag; a
/// bucket with object lock cannot be suspended.
#[tokio::test]
async fn retention_and_tags_follow_version_ids() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_locked_bucket(&s3, "byid").await;
    put(&s3, "byid", "k", b"first").await;
    let first = current_version(&s3, "byid", "k").await;
    put(&s3, "byid", "k", b"second").await;
    let second = current_version(&s3, "byid", "k").await;
    assert_ne!(first, second);
    s3.put_object_retention()
        .bucket("byid")
        .key("k")
        .version_id(&first)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(in_secs(3600))
                .build(),
        )
        .send()
        .await
        .expect("retention on a noncurrent version");
    let got = s3
        .get_object_retention()
        .bucket("byid")
        .key("k")
        .version_id(&first)
        .send()
        .await
        .expect("retention of the noncurrent version");
    assert_eq!(
        got.retention.and_then(|r| r.mode),
        Some(ObjectLockRetentionMode::Governance)
    );
    assert_s3_err!(
        s3.get_object_retention()
            .bucket("byid")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchObjectLockConfiguration"
    );
    assert_s3_err!(
        s3.delete_object()
            .bucket("byid")
            .key("k")
            .version_id(&first)
            .send()
            .await,
        403,
        "AccessDenied"
    );
    let tag = aws_sdk_s3::types::Tag::builder()
        .key("era")
        .value("first")
        .build()
        .unwrap();
    let put_tags = s3
        .put_object_tagging()
        .bucket("byid")
        .key("k")
        .version_id(&first)
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(tag)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("tags on a noncurrent version");
    assert_eq!(put_tags.version_id.as_deref(), Some(first.as_str()));
    let old_tags = s3
        .get_object_tagging()
        .bucket("byid")
        .key("k")
        .version_id(&first)
        .send()
        .await
        .expect("tags of the noncurrent version");
    assert_eq!(old_tags.tag_set().len(), 1);
    assert_eq!(old_tags.version_id.as_deref(), Some(first.as_str()));
    let current_tags = s3
        .get_object_tagging()
        .bucket("byid")
        .key("k")
        .send()
        .await
        .expect("tags of the current version");
    assert!(current_tags.tag_set().is_empty());
    assert_eq!(current_tags.version_id.as_deref(), Some(second.as_str()));
    let marker = s3
        .delete_object()
        .bucket("byid")
        .key("k")
        .send()
        .await
        .expect("delete marker")
        .version_id
        .expect("marker version id");
    assert_s3_err!(
        s3.get_object_tagging()
            .bucket("byid")
            .key("k")
            .version_id(&marker)
            .send()
            .await,
        405,
        "MethodNotAllowed"
    );
    assert_s3_err!(
        s3.put_bucket_versioning()
            .bucket("byid")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await,
        409,
        "InvalidBucketState"
    );
    gw.shutdown().await;
}
