//! Conditional requests: If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since
//! on GET and HEAD (RFC 7232 as S3 applies it), and conditional PUT.

use std::time::Duration;

use aws_sdk_s3::primitives::DateTime;
use hansa_conformance::{assert_s3_err, assert_s3_status, create_bucket, get, put, TestGateway};

struct Fixture {
    gw: TestGateway,
    s3: aws_sdk_s3::Client,
    etag: String,
    modified: DateTime,
}

async fn fixture() -> Fixture {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "cond").await;
    put(&s3, "cond", "k", b"conditional body").await;
    let head = s3
        .head_object()
        .bucket("cond")
        .key("k")
        .send()
        .await
        .expect("head");
    Fixture {
        etag: head.e_tag().expect("etag").to_string(),
        modified: *head.last_modified().expect("last modified"),
        gw,
        s3,
    }
}

fn shift(t: &DateTime, secs: i64) -> DateTime {
    DateTime::from_secs(t.secs() + secs)
}

#[tokio::test]
async fn get_if_match() {
    let f = fixture().await;
    let ok =
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_match(&f.etag)
            .send()
            .await
            .expect("If-Match with the current ETag");
    assert_eq!(ok.e_tag(), Some(f.etag.as_str()));
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_match("*")
        .send()
        .await
        .expect("If-Match: * matches any existing object");
    assert_s3_err!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_s3_status!(
        f.s3.head_object()
            .bucket("cond")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412
    );
    f.gw.shutdown().await;
}

#[tokio::test]
async fn get_if_none_match() {
    let f = fixture().await;
    // Matching ETag: 304 Not Modified.
    assert_s3_status!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_none_match(&f.etag)
            .send()
            .await,
        304
    );
    assert_s3_status!(
        f.s3.head_object()
            .bucket("cond")
            .key("k")
            .if_none_match(&f.etag)
            .send()
            .await,
        304
    );
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_none_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect("If-None-Match with another ETag");
    f.gw.shutdown().await;
}

#[tokio::test]
async fn get_if_modified_since() {
    let f = fixture().await;
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(shift(&f.modified, -3600))
        .send()
        .await
        .expect("modified since an hour before");
    assert_s3_status!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_modified_since(shift(&f.modified, 3600))
            .send()
            .await,
        304
    );
    // Equal to Last-Modified: not modified since.
    assert_s3_status!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_modified_since(f.modified)
            .send()
            .await,
        304
    );
    f.gw.shutdown().await;
}

#[tokio::test]
async fn get_if_unmodified_since() {
    let f = fixture().await;
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(shift(&f.modified, 3600))
        .send()
        .await
        .expect("unmodified since an hour later");
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_unmodified_since(f.modified)
        .send()
        .await
        .expect("unmodified since its own Last-Modified");
    assert_s3_err!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_unmodified_since(shift(&f.modified, -3600))
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    f.gw.shutdown().await;
}

#[tokio::test]
async fn combined_conditions_follow_s3_precedence() {
    let f = fixture().await;
    // If-Match true and If-Unmodified-Since false: 200 (If-Match wins).
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_match(&f.etag)
        .if_unmodified_since(shift(&f.modified, -3600))
        .send()
        .await
        .expect("If-Match true overrides If-Unmodified-Since false");
    // If-None-Match false and If-Modified-Since true: 304.
    assert_s3_status!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_none_match(&f.etag)
            .if_modified_since(shift(&f.modified, -3600))
            .send()
            .await,
        304
    );
    // If-None-Match true and If-Modified-Since false: 200 (If-None-Match wins).
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_none_match("\"0123456789abcdef0123456789abcdef\"")
        .if_modified_since(shift(&f.modified, 3600))
        .send()
        .await
        .expect("If-None-Match true overrides If-Modified-Since false");
    // If-Match false and If-None-Match true: 412.
    assert_s3_err!(
        f.s3.get_object()
            .bucket("cond")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .if_none_match("\"fedcba9876543210fedcba9876543210\"")
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    f.gw.shutdown().await;
}

#[tokio::test]
async fn not_modified_carries_etag_and_no_body() {
    let f = fixture().await;
    let mut req = hansa_conformance::raw::request("GET", &f.gw.url("cond/k"));
    req.headers_mut()
        .insert("if-none-match", f.etag.parse().expect("header"));
    hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("etag"), Some(f.etag.as_str()));
    f.gw.shutdown().await;
}

#[tokio::test]
async fn conditional_put_if_none_match_star() {
    let f = fixture().await;
    assert_s3_err!(
        f.s3.put_object()
            .bucket("cond")
            .key("k")
            .if_none_match("*")
            .body(b"must not overwrite".to_vec().into())
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_eq!(get(&f.s3, "cond", "k").await, b"conditional body");
    f.s3.put_object()
        .bucket("cond")
        .key("new-key")
        .if_none_match("*")
        .body(b"created".to_vec().into())
        .send()
        .await
        .expect("If-None-Match: * on a new key");
    assert_eq!(get(&f.s3, "cond", "new-key").await, b"created");
    f.gw.shutdown().await;
}

#[tokio::test]
async fn conditional_put_if_match() {
    let f = fixture().await;
    assert_s3_err!(
        f.s3.put_object()
            .bucket("cond")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .body(b"must not overwrite".to_vec().into())
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_eq!(get(&f.s3, "cond", "k").await, b"conditional body");
    let out =
        f.s3.put_object()
            .bucket("cond")
            .key("k")
            .if_match(&f.etag)
            .body(b"replaced".to_vec().into())
            .send()
            .await
            .expect("If-Match with the current ETag");
    assert_eq!(get(&f.s3, "cond", "k").await, b"replaced");
    // The old ETag no longer matches.
    assert_s3_err!(
        f.s3.put_object()
            .bucket("cond")
            .key("k")
            .if_match(&f.etag)
            .body(b"stale".to_vec().into())
            .send()
            .await,
        412,
        "PreconditionFailed"
    );
    assert_ne!(out.e_tag(), Some(f.etag.as_str()));
    // If-Match on a key that does not exist: 404 NoSuchKey.
    assert_s3_err!(
        f.s3.put_object()
            .bucket("cond")
            .key("absent")
            .if_match(&f.etag)
            .body(b"x".to_vec().into())
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    f.gw.shutdown().await;
}

#[tokio::test]
async fn last_modified_advances_on_overwrite() {
    let f = fixture().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&f.s3, "cond", "k", b"newer").await;
    let head =
        f.s3.head_object()
            .bucket("cond")
            .key("k")
            .send()
            .await
            .expect("head");
    assert!(head.last_modified().expect("lm").secs() > f.modified.secs());
    // Modified since the old time now.
    f.s3.get_object()
        .bucket("cond")
        .key("k")
        .if_modified_since(f.modified)
        .send()
        .await
        .expect("modified since the first version");
    f.gw.shutdown().await;
}
