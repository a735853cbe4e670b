//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration through aws-sdk-s3 and signed
//! raw requests (S3's validation errors, nothing stored on refusal), and the worker driven
//! through the admin API with a clock the tests set (`now`): expiry exactly when due and not
//! before, disabled rules, the dry run, AbortIncompleteMultipartUpload, and the cursor that
//! lets a capped pass resume.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, Tag,
};
use hansa_conformance::admin::call;
use hansa_conformance::raw::{self, send_reqwest};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    assert_s3_err, create_bucket, md5_b64, put, xml_text, Options, TestGateway, ADMIN, LIMITED,
    READER,
};
use serde_json::Value;

const DAY_MS: u64 = 86_400_000;

async fn gateway() -> TestGateway {
    TestGateway::start_with(Options {
        admin: true,
        // Only the passes a test asks for run.
        extra_toml: "\n[lifecycle]\ninterval_secs = 0\n".to_string(),
        ..Default::default()
    })
    .await
}

/// The first midnight UTC at or after `from + days`, as S3 counts.
fn due_after(from_ms: u64, days: u64) -> u64 {
    (from_ms + days * DAY_MS).div_ceil(DAY_MS) * DAY_MS
}

fn modified_ms(gw: &TestGateway, bucket: &str, key: &str) -> u64 {
    hansa::store::object(gw.store(), bucket, key)
        .expect("index")
        .expect("object")
        .modified_ms
}

/// One pass through the admin API at `now`; returns the report.
async fn run(gw: &TestGateway, now: u64, extra: &str) -> Value {
    let answer = call(
        gw,
        "POST",
        &format!("/admin/v1/lifecycle/run?now={now}{extra}"),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// The (action, key) pairs of a report.
fn acted(report: &Value) -> Vec<(String, String)> {
    report["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            assert!(a.get("error").is_none(), "action failed: {a}");
            (
                a["action"].as_str().unwrap_or_default().to_string(),
                a["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn keys(gw: &TestGateway, bucket: &str) -> Vec<String> {
    hansa_conformance::list_all_keys(&gw.client(), bucket).await
}

/// A signed `PUT ?lifecycle` with `doc`, Content-MD5 when `md5`.
async fn put_raw(gw: &TestGateway, bucket: &str, doc: &str, md5: bool) -> raw::Response {
    let mut req = raw::request("PUT", &format!("{}/{bucket}?lifecycle", gw.endpoint));
    if md5 {
        req.headers_mut()
            .insert("content-md5", md5_b64(doc.as_bytes()).parse().unwrap());
    }
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(doc.as_bytes().to_vec()));
    send_reqwest(req, doc.as_bytes().to_vec()).await
}

fn rule(
    id: &str,
    filter: LifecycleRuleFilter,
) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .filter(filter)
        .status(ExpirationStatus::Enabled)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

#[tokio::test]
async fn every_filter_kind_round_trips() {
    let gw = gateway().await;
    let s3 = gw.client();
    create_bucket(&s3, "life-round").await;
    let days = |n| LifecycleExpiration::builder().days(n).build();
    let rules = vec![
        rule(
            "prefix",
            LifecycleRuleFilter::builder().prefix("logs/").build(),
        )
        .expiration(days(7))
        .build()
        .unwrap(),
        rule(
            "tag",
            LifecycleRuleFilter::builder().tag(tag("team", "a")).build(),
        )
        .expiration(
            LifecycleExpiration::builder()
                .date(aws_sdk_s3::primitives::DateTime::from_secs(1_798_761_600))
                .build(),
        )
        .build()
        .unwrap(),
        rule(
            "bigger",
            LifecycleRuleFilter::builder()
                .object_size_greater_than(1024)
                .build(),
        )
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(3)
                .newer_noncurrent_versions(2)
                .build(),
        )
        .build()
        .unwrap(),
        rule(
            "smaller",
            LifecycleRuleFilter::builder()
                .object_size_less_than(10)
                .build(),
        )
        .status(ExpirationStatus::Disabled)
        .expiration(
            LifecycleExpiration::builder()
                .expired_object_delete_marker(true)
                .build(),
        )
        .build()
        .unwrap(),
        rule(
            "and",
            LifecycleRuleFilter::builder()
                .and(
                    LifecycleRuleAndOperator::builder()
                        .prefix("p/")
                        .tags(tag("a", "1"))
                        .tags(tag("b", "2"))
                        .object_size_greater_than(1)
                        .object_size_less_than(100)
                        .build(),
                )
                .build(),
        )
        .expiration(days(1))
        .build()
        .unwrap(),
        rule("all", LifecycleRuleFilter::builder().build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(2)
                    .build(),
            )
            .build()
            .unwrap(),
    ];
    s3.put_bucket_lifecycle_configuration()
        .bucket("life-round")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules.clone()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put lifecycle");
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("life-round")
        .send()
        .await
        .expect("get lifecycle");
    assert_eq!(got.rules(), rules.as_slice());

    // The first API's rule-level Prefix comes back as it was sent, and a rule without an ID
    // gets one.
    let legacy = "<LifecycleConfiguration><Rule><Prefix>old/</Prefix><Status>Enabled</Status>\
                  <Expiration><Days>2</Days></Expiration></Rule></LifecycleConfiguration>";
    let answer = put_raw(&gw, "life-round", legacy, true).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("life-round")
        .send()
        .await
        .expect("get lifecycle");
    assert_eq!(got.rules().len(), 1);
    #[allow(deprecated)]
    let prefix = got.rules()[0].prefix();
    assert_eq!(prefix, Some("old/"));
    assert!(got.rules()[0].id().is_some_and(|id| !id.is_empty()));
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_configuration_and_delete() {
    let gw = gateway().await;
    let s3 = gw.client();
    create_bucket(&s3, "life-none").await;
    assert_s3_err!(
        s3.get_bucket_lifecycle_configuration()
            .bucket("life-none")
            .send()
            .await,
        404,
        "NoSuchLifecycleConfiguration"
    );
    assert_s3_err!(
        s3.get_bucket_lifecycle_configuration()
            .bucket("life-no-such-bucket")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    let doc = "<LifecycleConfiguration><Rule><ID>r</ID><Filter/><Status>Enabled</Status>\
               <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, "life-none", doc, true).await.status, 200);
    assert!(s3
        .get_bucket_lifecycle_configuration()
        .bucket("life-none")
        .send()
        .await
        .is_ok());
    // A read-only key reads it but neither replaces nor deletes it; a key scoped to another
    // bucket does not even read it (only the owner may, whatever an ACL grants).
    let reader = gw.client_for(READER);
    assert!(reader
        .get_bucket_lifecycle_configuration()
        .bucket("life-none")
        .send()
        .await
        .is_ok());
    assert_s3_err!(
        reader
            .delete_bucket_lifecycle()
            .bucket("life-none")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        gw.client_for(LIMITED)
            .get_bucket_lifecycle_configuration()
            .bucket("life-none")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    s3.delete_bucket_lifecycle()
        .bucket("life-none")
        .send()
        .await
        .expect("delete lifecycle");
    assert_s3_err!(
        s3.get_bucket_lifecycle_configuration()
            .bucket("life-none")
            .send()
            .await,
        404,
        "NoSuchLifecycleConfiguration"
    );
    // Deleting what is not there succeeds, as on S3.
    s3.delete_bucket_lifecycle()
        .bucket("life-none")
        .send()
        .await
        .expect("delete again");
    gw.shutdown().await;
}

#[tokio::test]
async fn validation_errors_store_nothing() {
    let gw = gateway().await;
    let s3 = gw.client();
    create_bucket(&s3, "life-bad").await;
    let doc = |rules: &str| format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>");
    let days = |n: i64| {
        format!("<Rule><Filter/><Status>Enabled</Status><Expiration><Days>{n}</Days></Expiration></Rule>")
    };
    let cases: Vec<(String, bool, u16, &str)> = vec![
        (doc(&days(1)), false, 400, "InvalidRequest"),
        ("<LifecycleConfiguration><Rule>".to_string(), true, 400, "MalformedXML"),
        (doc(""), true, 400, "MalformedXML"),
        (
            doc("<Rule><Filter/><Status>Maybe</Status><Expiration><Days>1</Days></Expiration></Rule>"),
            true,
            400,
            "MalformedXML",
        ),
        (doc(&days(0)), true, 400, "InvalidArgument"),
        (doc(&days(-3)), true, 400, "InvalidArgument"),
        (
            doc("<Rule><Filter/><Status>Enabled</Status><Expiration><Date>2027-01-01T10:00:00Z</Date></Expiration></Rule>"),
            true,
            400,
            "InvalidArgument",
        ),
        (
            doc("<Rule><Filter/><Status>Enabled</Status></Rule>"),
            true,
            400,
            "InvalidRequest",
        ),
        (
            doc(&format!(
                "<Rule><ID>{}</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
                "i".repeat(256)
            )),
            true,
            400,
            "InvalidArgument",
        ),
        (
            doc(&"<Rule><ID>same</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>".repeat(2)),
            true,
            400,
            "InvalidArgument",
        ),
        (doc(&days(1).repeat(1001)), true, 400, "InvalidArgument"),
        (
            doc("<Rule><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"),
            true,
            400,
            "InvalidRequest",
        ),
        (
            doc("<Rule><Filter/><Status>Enabled</Status><Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>"),
            true,
            501,
            "NotImplemented",
        ),
    ];
    for (body, md5, status, code) in &cases {
        let answer = put_raw(&gw, "life-bad", body, *md5).await;
        let what = &body[..body.len().min(120)];
        assert_eq!(answer.status, *status, "{what}: {}", answer.text());
        assert_eq!(answer.code().as_deref(), Some(*code), "{what}");
        assert!(xml_text(&answer.text(), "Message").is_some_and(|m| !m.is_empty()));
        assert_s3_err!(
            s3.get_bucket_lifecycle_configuration()
                .bucket("life-bad")
                .send()
                .await,
            404,
            "NoSuchLifecycleConfiguration"
        );
    }
    // A refused document leaves the configuration that was there.
    assert_eq!(
        put_raw(&gw, "life-bad", &doc(&days(5)), true).await.status,
        200
    );
    assert_eq!(
        put_raw(&gw, "life-bad", &doc(&days(0)), true).await.status,
        400
    );
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("life-bad")
        .send()
        .await
        .expect("get");
    assert_eq!(got.rules()[0].expiration().and_then(|e| e.days()), Some(5));
    gw.shutdown().await;
}

#[tokio::test]
async fn objects_expire_exactly_when_due() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-expire";
    create_bucket(&s3, b).await;
    put(&s3, b, "logs/small", b"tiny").await;
    put(&s3, b, "logs/big", &[7u8; 200]).await;
    put(&s3, b, "data/x", b"tiny").await;
    put(&s3, b, "tagged/x", b"tiny").await;
    let doc = "<LifecycleConfiguration>\
        <Rule><ID>small-logs</ID><Filter><And><Prefix>logs/</Prefix><ObjectSizeLessThan>100</ObjectSizeLessThan></And></Filter>\
        <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>\
        <Rule><ID>off</ID><Filter><Prefix>data/</Prefix></Filter><Status>Disabled</Status>\
        <Expiration><Days>1</Days></Expiration></Rule>\
        <Rule><ID>by-tag</ID><Filter><Tag><Key>expire</Key><Value>yes</Value></Tag></Filter>\
        <Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>\
        </LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    let due = due_after(modified_ms(&gw, b, "logs/small"), 1);

    // A millisecond before its midnight nothing is due.
    let report = run(&gw, due - 1, "").await;
    assert_eq!(acted(&report), vec![]);
    assert_eq!(keys(&gw, b).await.len(), 4);

    // The dry run lists what is due and removes nothing.
    let report = run(&gw, due, "&dry_run=true").await;
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        acted(&report),
        vec![("expire".to_string(), "logs/small".to_string())]
    );
    assert_eq!(report["actions"][0]["rule"], "small-logs");
    assert_eq!(keys(&gw, b).await.len(), 4, "a dry run removes nothing");

    let report = run(&gw, due, "").await;
    assert_eq!(
        acted(&report),
        vec![("expire".to_string(), "logs/small".to_string())]
    );
    assert_s3_err!(
        s3.get_object().bucket(b).key("logs/small").send().await,
        404,
        "NoSuchKey"
    );
    // Too big for the rule, under a disabled rule, and without the rule's tag: all stay,
    // however late it gets.
    let report = run(&gw, due + 400 * DAY_MS, "").await;
    assert_eq!(acted(&report), vec![]);
    assert_eq!(keys(&gw, b).await, vec!["data/x", "logs/big", "tagged/x"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn old_uploads_are_aborted_young_ones_kept() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-uploads";
    create_bucket(&s3, b).await;
    let start = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            s3.create_multipart_upload()
                .bucket(b)
                .key(key)
                .send()
                .await
                .expect("create upload")
                .upload_id()
                .expect("upload id")
                .to_string()
        }
    };
    let old = start("tmp/old").await;
    let young = start("tmp/young").await;
    let other = start("keep/old").await;
    // The old uploads were started three days before the young one: their index records say
    // so (the clock the requests ran at cannot be set).
    for (key, id) in [("tmp/old", &old), ("keep/old", &other)] {
        let mut record = gw
            .store()
            .meta
            .upload(b, key, id)
            .expect("index")
            .expect("upload");
        record.initiated_ms -= 3 * DAY_MS;
        gw.store().meta.create_upload(&record).expect("age upload");
    }
    let young_ms = gw
        .store()
        .meta
        .upload(b, "tmp/young", &young)
        .unwrap()
        .unwrap()
        .initiated_ms;
    let doc = "<LifecycleConfiguration><Rule><ID>mp</ID><Filter><Prefix>tmp/</Prefix></Filter>\
               <Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>2\
               </DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    // Now the young upload is less than a day old; the old one four days.
    let now = young_ms + 1;
    let dry = run(&gw, now, "&dry_run=true").await;
    assert_eq!(
        acted(&dry),
        vec![("abort_upload".to_string(), "tmp/old".to_string())]
    );
    let report = run(&gw, now, "").await;
    assert_eq!(
        acted(&report),
        vec![("abort_upload".to_string(), "tmp/old".to_string())]
    );
    assert_eq!(report["actions"][0]["upload_id"], old.as_str());
    let listed = s3
        .list_multipart_uploads()
        .bucket(b)
        .send()
        .await
        .expect("list uploads");
    let mut left: Vec<&str> = listed.uploads().iter().filter_map(|u| u.key()).collect();
    left.sort();
    assert_eq!(left, vec!["keep/old", "tmp/young"]);
    assert_s3_err!(
        s3.list_parts()
            .bucket(b)
            .key("tmp/old")
            .upload_id(&old)
            .send()
            .await,
        404,
        "NoSuchUpload"
    );
    // The young one goes at the second midnight after it started, not before.
    let due = due_after(young_ms, 2);
    assert_eq!(acted(&run(&gw, due - 1, "").await), vec![]);
    assert_eq!(
        acted(&run(&gw, due, "").await),
        vec![("abort_upload".to_string(), "tmp/young".to_string())]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_capped_pass_resumes_where_it_stopped() {
    let gw = gateway().await;
    let s3 = gw.client();
    for b in ["life-cap-a", "life-cap-b"] {
        create_bucket(&s3, b).await;
        for k in ["k1", "k2", "k3"] {
            put(&s3, b, k, b"x").await;
        }
        let doc = "<LifecycleConfiguration><Rule><ID>all</ID><Filter/><Status>Enabled</Status>\
                   <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
        assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    }
    let now = due_after(modified_ms(&gw, "life-cap-b", "k3"), 1);
    let first = run(&gw, now, "&max_actions=4").await;
    assert_eq!(acted(&first).len(), 4);
    assert_eq!(first["resumed_after"], Value::Null);
    assert_eq!(
        first["cursor"],
        serde_json::json!({"bucket": "life-cap-b", "key": "k1"})
    );
    assert_eq!(keys(&gw, "life-cap-a").await, Vec::<String>::new());
    assert_eq!(keys(&gw, "life-cap-b").await, vec!["k2", "k3"]);

    // The cursor is in the index: a restarted gateway resumes after it.
    let mut gw = gw;
    gw.restart().await;
    let second = run(&gw, now, "&max_actions=4").await;
    assert_eq!(second["resumed_after"], first["cursor"]);
    assert_eq!(
        acted(&second),
        vec![
            ("expire".to_string(), "k2".to_string()),
            ("expire".to_string(), "k3".to_string())
        ]
    );
    assert_eq!(second["cursor"], Value::Null, "the walk reached the end");
    assert_eq!(keys(&gw, "life-cap-b").await, Vec::<String>::new());
    gw.shutdown().await;
}

#[tokio::test]
async fn the_admin_run_refuses_bad_parameters() {
    let gw = gateway().await;
    for query in [
        "now=yesterday",
        "max_actions=0",
        "dry_run=perhaps",
        "clock=1",
    ] {
        let answer = call(
            &gw,
            "POST",
            &format!("/admin/v1/lifecycle/run?{query}"),
            None,
        )
        .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert_eq!(answer.error_code(), "InvalidParameter");
    }
    let answer = call(&gw, "GET", "/admin/v1/lifecycle/run", None).await;
    assert_eq!(answer.status, 405);
    // RFC 3339 works as well as milliseconds.
    let answer = call(
        &gw,
        "POST",
        "/admin/v1/lifecycle/run?dry_run=true&now=2030-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["now_ms"], 1_893_456_000_000u64);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_worker_runs_on_its_own() {
    let gw = TestGateway::start_with(Options {
        admin: true,
        extra_toml: "\n[lifecycle]\ninterval_secs = 1\n".to_string(),
        ..Default::default()
    })
    .await;
    let s3 = gw.client();
    let b = "life-worker";
    create_bucket(&s3, b).await;
    put(&s3, b, "old", b"x").await;
    put(&s3, b, "new", b"x").await;
    // "old" was written three days ago, as far as the index knows (the clock the write ran
    // at cannot be set; the worker's clock is the real one).
    let meta = &gw.store().meta;
    let mut record = meta.object(b, "old").expect("index").expect("object");
    record.modified_ms -= 3 * DAY_MS;
    meta.put_object(b, "old", &record).expect("age object");
    let doc = "<LifecycleConfiguration><Rule><ID>two-days</ID><Filter/><Status>Enabled</Status>\
               <Expiration><Days>2</Days></Expiration></Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while keys(&gw, b).await.contains(&"old".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not expire the old object"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(keys(&gw, b).await, vec!["new"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn tag_filters_expire_tagged_objects_only() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-tags";
    create_bucket(&s3, b).await;
    for (key, tagging) in [
        ("both", "expire=yes&team=a"),
        ("one", "expire=yes"),
        ("other-value", "expire=no&team=a"),
        ("none", ""),
    ] {
        s3.put_object()
            .bucket(b)
            .key(key)
            .tagging(tagging)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put tagged");
    }
    let doc = "<LifecycleConfiguration><Rule><ID>tagged</ID><Filter><And>\
               <Tag><Key>expire</Key><Value>yes</Value></Tag><Tag><Key>team</Key><Value>a</Value></Tag>\
               </And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>\
               </Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    let due = due_after(modified_ms(&gw, b, "none"), 1);
    assert_eq!(acted(&run(&gw, due - 1, "").await), vec![]);
    assert_eq!(
        acted(&run(&gw, due, "").await),
        vec![("expire".to_string(), "both".to_string())]
    );
    assert_eq!(keys(&gw, b).await, vec!["none", "one", "other-value"]);
    gw.shutdown().await;
}

// Versioned buckets: NoncurrentVersionExpiration and expired object delete markers.

async fn versioned_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_bucket(s3, bucket).await;
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

/// One version of a key as the index holds it: (shown id, delete marker, modified ms).
type Version = (String, bool, u64);

/// Every version of `key`, newest first (the current one first).
fn versions(gw: &TestGateway, bucket: &str, key: &str) -> Vec<Version> {
    use hansa::store::{VersionView, VersionsFrom};
    hansa::store::list_versions(gw.store(), bucket, key, None, VersionsFrom::Start, 1000)
        .expect("versions")
        .versions
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| {
            let id = v.shown_version_id().to_string();
            match v {
                VersionView::Object { record, .. } => (id, false, record.modified_ms),
                VersionView::DeleteMarker { marker, .. } => (id, true, marker.modified_ms),
            }
        })
        .collect()
}

fn ids(versions: &[Version]) -> Vec<String> {
    versions.iter().map(|v| v.0.clone()).collect()
}

/// The (action, key, version id) triples of a report, none failed.
fn acted_versions(report: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = acted(report)
        .into_iter()
        .zip(report["actions"].as_array().expect("actions"))
        .map(|((action, key), a)| {
            (
                action,
                key,
                a["version_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Writes `key` `n` times; the versions newest first.
async fn versions_of_writes(
    gw: &TestGateway,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    n: usize,
) -> Vec<Version> {
    for i in 0..n {
        put(s3, bucket, key, format!("v{i}").as_bytes()).await;
    }
    let all = versions(gw, bucket, key);
    assert_eq!(all.len(), n);
    all
}

fn noncurrent_doc(days: u32, keep: Option<u32>) -> String {
    let keep = keep
        .map(|n| format!("<NewerNoncurrentVersions>{n}</NewerNoncurrentVersions>"))
        .unwrap_or_default();
    format!(
        "<LifecycleConfiguration><Rule><ID>nc</ID><Filter/><Status>Enabled</Status>\
         <NoncurrentVersionExpiration><NoncurrentDays>{days}</NoncurrentDays>{keep}\
         </NoncurrentVersionExpiration></Rule></LifecycleConfiguration>"
    )
}

#[tokio::test]
async fn noncurrent_versions_expire_when_due_not_before() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-nc";
    versioned_bucket(&s3, b).await;
    let all = versions_of_writes(&gw, &s3, b, "k", 3).await;
    let (v3, v2, v1) = (&all[0], &all[1], &all[2]);
    assert_eq!(
        put_raw(&gw, b, &noncurrent_doc(2, None), true).await.status,
        200
    );
    // Each counts from the write that made it noncurrent: v1 from v2's, v2 from v3's.
    let due_v1 = due_after(v2.2, 2);
    let due_v2 = due_after(v3.2, 2);

    let report = run(&gw, due_v1.min(due_v2) - 1, "").await;
    assert_eq!(acted(&report), vec![]);
    assert_eq!(versions(&gw, b, "k").len(), 3);

    // The dry run lists both once both are due, and removes nothing.
    let late = due_v1.max(due_v2);
    let report = run(&gw, late, "&dry_run=true").await;
    let expected = vec![
        (
            "expire_noncurrent".to_string(),
            "k".to_string(),
            v1.0.clone(),
        ),
        (
            "expire_noncurrent".to_string(),
            "k".to_string(),
            v2.0.clone(),
        ),
    ];
    let mut want = expected.clone();
    want.sort();
    assert_eq!(acted_versions(&report), want);
    assert_eq!(report["actions"][0]["rule"], "nc");
    assert_eq!(versions(&gw, b, "k").len(), 3, "a dry run removes nothing");

    let report = run(&gw, late, "").await;
    assert_eq!(acted_versions(&report), want);
    assert_eq!(ids(&versions(&gw, b, "k")), vec![v3.0.clone()]);
    // The current version is untouched and still readable.
    let body = s3.get_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(body.version_id(), Some(v3.0.as_str()));
    let bytes = body.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], b"v2");
    // The removed versions are gone for S3 clients too.
    assert_s3_err!(
        s3.get_object()
            .bucket(b)
            .key("k")
            .version_id(&v1.0)
            .send()
            .await,
        404,
        "NoSuchVersion"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn newer_noncurrent_versions_keeps_the_newest_and_a_capped_pass_resumes() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-keep";
    versioned_bucket(&s3, b).await;
    // The current version and five noncurrent ones.
    let all = versions_of_writes(&gw, &s3, b, "k", 6).await;
    assert_eq!(
        put_raw(&gw, b, &noncurrent_doc(1, Some(2)), true)
            .await
            .status,
        200
    );
    let now = due_after(all[0].2, 1) + 30 * DAY_MS;
    // Two of the three beyond the newest two noncurrent versions, then the third: the capped
    // pass stops within the key and the next one looks at it again.
    let first = run(&gw, now, "&max_actions=2").await;
    assert_eq!(acted(&first).len(), 2);
    assert_eq!(versions(&gw, b, "k").len(), 4);
    assert_eq!(
        first["cursor"],
        Value::Null,
        "the key the cap stopped in is looked at again"
    );
    let second = run(&gw, now, "&max_actions=2").await;
    assert_eq!(acted(&second).len(), 1);
    assert_eq!(second["cursor"], Value::Null);
    let mut removed = acted_versions(&first);
    removed.extend(acted_versions(&second));
    removed.sort();
    let mut want: Vec<_> = all[3..]
        .iter()
        .map(|v| {
            (
                "expire_noncurrent".to_string(),
                "k".to_string(),
                v.0.clone(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(removed, want);
    // The current version and the newest two noncurrent ones stay.
    assert_eq!(ids(&versions(&gw, b, "k")), ids(&all[..3]));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_lone_expired_delete_marker_goes_one_over_versions_stays() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-marker";
    versioned_bucket(&s3, b).await;
    // "lone": a delete of a key that never existed leaves only a marker; "covered": a marker
    // over a version.
    s3.delete_object()
        .bucket(b)
        .key("lone")
        .send()
        .await
        .unwrap();
    put(&s3, b, "covered", b"x").await;
    s3.delete_object()
        .bucket(b)
        .key("covered")
        .send()
        .await
        .unwrap();
    let lone = versions(&gw, b, "lone");
    assert_eq!(lone.len(), 1);
    assert!(lone[0].1, "a delete marker");
    let covered = versions(&gw, b, "covered");
    assert_eq!(covered.len(), 2);
    let doc = "<LifecycleConfiguration><Rule><ID>eodm</ID><Filter/><Status>Enabled</Status>\
               <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>\
               </Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    let now = lone[0].2 + 1;
    let want = vec![(
        "remove_delete_marker".to_string(),
        "lone".to_string(),
        lone[0].0.clone(),
    )];
    let report = run(&gw, now, "&dry_run=true").await;
    assert_eq!(acted_versions(&report), want);
    assert_eq!(
        versions(&gw, b, "lone").len(),
        1,
        "a dry run removes nothing"
    );

    let report = run(&gw, now, "").await;
    assert_eq!(acted_versions(&report), want);
    assert_eq!(report["actions"][0]["rule"], "eodm");
    assert_eq!(versions(&gw, b, "lone"), vec![]);
    assert_eq!(versions(&gw, b, "covered"), covered);
    let listed = s3.list_object_versions().bucket(b).send().await.unwrap();
    assert!(listed
        .delete_markers()
        .iter()
        .all(|m| m.key() == Some("covered")));
    // Nothing more to do, however late.
    let report = run(&gw, now + 400 * DAY_MS, "").await;
    assert_eq!(acted(&report), vec![]);

    // Once a noncurrent rule has removed the version under it, the marker is alone too.
    let doc = "<LifecycleConfiguration><Rule><ID>both</ID><Filter/><Status>Enabled</Status>\
               <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>\
               <NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>\
               </Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    let report = run(&gw, now + 400 * DAY_MS, "").await;
    assert_eq!(
        acted_versions(&report),
        vec![
            (
                "expire_noncurrent".to_string(),
                "covered".to_string(),
                covered[1].0.clone()
            ),
            (
                "remove_delete_marker".to_string(),
                "covered".to_string(),
                covered[0].0.clone()
            ),
        ]
    );
    assert_eq!(versions(&gw, b, "covered"), vec![]);
    gw.shutdown().await;
}

#[tokio::test]
async fn locked_noncurrent_versions_are_not_removed() {
    use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-locked";
    s3.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create a bucket with object lock");
    let until = aws_sdk_s3::primitives::DateTime::from(
        std::time::SystemTime::now() + std::time::Duration::from_secs(86_400),
    );
    for (key, mode) in [
        ("gov", Some(ObjectLockRetentionMode::Governance)),
        ("comp", Some(ObjectLockRetentionMode::Compliance)),
        ("free", None),
    ] {
        put(&s3, b, key, b"old").await;
        if let Some(mode) = mode {
            s3.put_object_retention()
                .bucket(b)
                .key(key)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(mode)
                        .retain_until_date(until)
                        .build(),
                )
                .send()
                .await
                .expect("retention");
        }
        put(&s3, b, key, b"new").await;
    }
    assert_eq!(
        put_raw(&gw, b, &noncurrent_doc(1, None), true).await.status,
        200
    );
    let before: Vec<_> = ["gov", "comp", "free"]
        .iter()
        .map(|k| versions(&gw, b, k))
        .collect();
    // Far past NoncurrentDays on the lifecycle clock; the retention (real time) still holds.
    let report = run(&gw, before[0][0].2 + 30 * DAY_MS, "").await;
    let actions = report["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 3, "{report}");
    for a in actions {
        let key = a["key"].as_str().unwrap_or_default();
        assert_eq!(a["action"], "expire_noncurrent");
        match key {
            "free" => assert!(a.get("error").is_none(), "{a}"),
            "gov" | "comp" => {
                let error = a["error"].as_str().unwrap_or_default();
                assert!(!error.is_empty(), "a locked version's removal fails: {a}");
            }
            other => panic!("unexpected key {other}"),
        }
    }
    assert_eq!(versions(&gw, b, "gov"), before[0]);
    assert_eq!(versions(&gw, b, "comp"), before[1]);
    assert_eq!(ids(&versions(&gw, b, "free")), ids(&before[2][..1]));
    // The locked versions are still readable.
    for (i, key) in ["gov", "comp"].iter().enumerate() {
        let old = s3
            .get_object()
            .bucket(b)
            .key(*key)
            .version_id(&before[i][1].0)
            .send()
            .await
            .unwrap();
        assert_eq!(&old.body.collect().await.unwrap().into_bytes()[..], b"old");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn expiration_days_in_a_versioned_bucket_leaves_markers_and_removes_lone_old_ones() {
    let gw = gateway().await;
    let s3 = gw.client();
    let b = "life-vdays";
    versioned_bucket(&s3, b).await;
    put(&s3, b, "x", b"x").await;
    s3.delete_object()
        .bucket(b)
        .key("gone")
        .send()
        .await
        .unwrap();
    let x = versions(&gw, b, "x");
    let gone = versions(&gw, b, "gone");
    let doc = "<LifecycleConfiguration><Rule><ID>days</ID><Filter/><Status>Enabled</Status>\
               <Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>";
    assert_eq!(put_raw(&gw, b, doc, true).await.status, 200);
    // Both written within moments; a test run across midnight UTC gets two due times.
    let first_due = due_after(x[0].2.min(gone[0].2), 1);
    let due = due_after(x[0].2.max(gone[0].2), 1);

    let report = run(&gw, first_due - 1, "").await;
    assert_eq!(acted(&report), vec![]);

    // S3 ("Expiring objects"): the current version gets a delete marker and stays as a
    // noncurrent version; a delete marker alone, old enough for the rule, is removed.
    let report = run(&gw, due, "").await;
    assert_eq!(
        acted_versions(&report),
        vec![
            ("expire".to_string(), "x".to_string(), String::new()),
            (
                "remove_delete_marker".to_string(),
                "gone".to_string(),
                gone[0].0.clone()
            ),
        ]
    );
    assert_eq!(versions(&gw, b, "gone"), vec![]);
    let now_x = versions(&gw, b, "x");
    assert_eq!(now_x.len(), 2);
    assert!(now_x[0].1, "a delete marker over the expired version");
    assert_eq!(now_x[1], x[0]);
    // That marker has a version under it: it stays, however late.
    let report = run(&gw, due + 400 * DAY_MS, "").await;
    assert_eq!(acted(&report), vec![]);
    gw.shutdown().await;
}
