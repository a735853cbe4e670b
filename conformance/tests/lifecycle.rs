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
