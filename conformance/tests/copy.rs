//! CopyObject: within and across buckets, metadata directive COPY / REPLACE, copy onto itself,
//! x-amz-copy-source-if-* conditions, URL-encoded source keys, access to the source checked.

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::MetadataDirective;
use hansa_conformance::{
    assert_s3_err, create_bucket, encode_key, get, md5_hex, put, random_bytes, TestGateway,
    LIMITED, LIMITED_BUCKET, READER,
};

async fn put_with_meta(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/x-source")
        .cache_control("max-age=60")
        .metadata("origin", "source")
        .body(body.to_vec().into())
        .send()
        .await
        .expect("put source");
}

#[tokio::test]
async fn copy_within_and_across_buckets_keeps_metadata() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "src").await;
    create_bucket(&s3, "dst").await;
    let data = random_bytes(9 * 1024 * 1024 + 7);
    put_with_meta(&s3, "src", "orig", &data).await;
    let etag = format!("\"{}\"", md5_hex(&data));

    for (bucket, key) in [("src", "copy-same-bucket"), ("dst", "copy/other-bucket")] {
        let out = s3
            .copy_object()
            .copy_source("src/orig")
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy to {bucket}/{key}: {e:?}"));
        let result = out.copy_object_result().expect("CopyObjectResult");
        assert_eq!(result.e_tag(), Some(etag.as_str()));
        assert!(result.last_modified().is_some());
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_type(), Some("text/x-source"));
        assert_eq!(head.cache_control(), Some("max-age=60"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("source"),
            "COPY is the default directive"
        );
        assert_eq!(head.e_tag(), Some(etag.as_str()));
        assert_eq!(get(&s3, bucket, key).await, data);
    }
    // The source is untouched.
    assert_eq!(get(&s3, "src", "orig").await, data);
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_with_replace_directive() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    put_with_meta(&s3, "bkt", "orig", b"payload").await;
    s3.copy_object()
        .copy_source("bkt/orig")
        .bucket("bkt")
        .key("replaced")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("fresh", "yes")
        .send()
        .await
        .expect("copy with REPLACE");
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("replaced")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("application/json"));
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("fresh").map(String::as_str), Some("yes"));
    assert!(
        !md.contains_key("origin"),
        "REPLACE drops the source's metadata: {md:?}"
    );
    assert_eq!(
        head.cache_control(),
        None,
        "REPLACE drops the source's headers"
    );

    // COPY ignores metadata given with the request.
    s3.copy_object()
        .copy_source("bkt/orig")
        .bucket("bkt")
        .key("copied")
        .metadata_directive(MetadataDirective::Copy)
        .metadata("ignored", "yes")
        .send()
        .await
        .expect("copy with COPY");
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("copied")
        .send()
        .await
        .expect("head");
    let md = head.metadata().cloned().unwrap_or_default();
    assert_eq!(md.get("origin").map(String::as_str), Some("source"));
    assert!(!md.contains_key("ignored"), "{md:?}");
    assert_eq!(get(&s3, "bkt", "copied").await, b"payload");
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_onto_itself() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    put_with_meta(&s3, "bkt", "self", b"same").await;
    assert_s3_err!(
        s3.copy_object()
            .copy_source("bkt/self")
            .bucket("bkt")
            .key("self")
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    // With REPLACE it is how metadata gets changed in place.
    s3.copy_object()
        .copy_source("bkt/self")
        .bucket("bkt")
        .key("self")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("updated", "1")
        .send()
        .await
        .expect("self-copy with REPLACE");
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("self")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("updated"))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(get(&s3, "bkt", "self").await, b"same");
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_source_conditions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "src", b"conditional source").await;
    let head = s3
        .head_object()
        .bucket("bkt")
        .key("src")
        .send()
        .await
        .expect("head");
    let etag = head.e_tag().expect("etag").to_string();
    let modified = *head.last_modified().expect("lm");
    let other = "\"0123456789abcdef0123456789abcdef\"";
    let past = DateTime::from_secs(modified.secs() - 3600);
    let future = DateTime::from_secs(modified.secs() + 3600);

    let copy = |key: &str| {
        s3.copy_object()
            .copy_source("bkt/src")
            .bucket("bkt")
            .key(key)
    };
    copy("ok-if-match")
        .copy_source_if_match(&etag)
        .send()
        .await
        .expect("if-match current");
    copy("ok-if-none-match")
        .copy_source_if_none_match(other)
        .send()
        .await
        .expect("if-none-match other");
    copy("ok-modified-since")
        .copy_source_if_modified_since(past)
        .send()
        .await
        .expect("modified since the past");
    copy("ok-unmodified-since")
        .copy_source_if_unmodified_since(future)
        .send()
        .await
        .expect("unmodified since the future");

    for (key, r) in [
        ("x1", copy("x1").copy_source_if_match(other).send().await),
        (
            "x2",
            copy("x2").copy_source_if_none_match(&etag).send().await,
        ),
        (
            "x3",
            copy("x3")
                .copy_source_if_unmodified_since(past)
                .send()
                .await,
        ),
        (
            "x4",
            copy("x4")
                .copy_source_if_modified_since(future)
                .send()
                .await,
        ),
    ] {
        assert_s3_err!(r, 412, "PreconditionFailed");
        assert_s3_err!(
            s3.get_object().bucket("bkt").key(key).send().await,
            404,
            "NoSuchKey"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_source_with_encoded_keys() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    for (i, key) in [
        "with space/and+plus.txt",
        "ünïcödé/日本語 €.bin",
        "percent%20literal",
        "question?hash#amp&equals=",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("body of {key}");
        put(&s3, "bkt", key, body.as_bytes()).await;
        let dest = format!("copies/{i}/{key}");
        s3.copy_object()
            .copy_source(format!("bkt/{}", encode_key(key)))
            .bucket("bkt")
            .key(&dest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {key:?}: {e:?}"));
        assert_eq!(get(&s3, "bkt", &dest).await, body.as_bytes(), "{key:?}");
        // A leading slash in x-amz-copy-source is accepted as well.
        let dest2 = format!("copies-slash/{i}");
        s3.copy_object()
            .copy_source(format!("/bkt/{}", encode_key(key)))
            .bucket("bkt")
            .key(&dest2)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy /{key:?}: {e:?}"));
        assert_eq!(get(&s3, "bkt", &dest2).await, body.as_bytes());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_missing_source() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    assert_s3_err!(
        s3.copy_object()
            .copy_source("bkt/absent")
            .bucket("bkt")
            .key("dest")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    assert_s3_err!(
        s3.copy_object()
            .copy_source("absent-bucket/k")
            .bucket("bkt")
            .key("dest")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    put(&s3, "bkt", "src", b"x").await;
    assert_s3_err!(
        s3.copy_object()
            .copy_source("bkt/src")
            .bucket("absent-bucket")
            .key("dest")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn copy_checks_access_to_the_source() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "private-src").await;
    create_bucket(&s3, LIMITED_BUCKET).await;
    put(&s3, "private-src", "secret", b"not for the limited key").await;
    put(&s3, LIMITED_BUCKET, "mine", b"limited key's own").await;

    let limited = gw.client_for(LIMITED);
    assert_s3_err!(
        limited
            .copy_object()
            .copy_source("private-src/secret")
            .bucket(LIMITED_BUCKET)
            .key("stolen")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        s3.get_object()
            .bucket(LIMITED_BUCKET)
            .key("stolen")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    // Within its own bucket the limited key may copy.
    limited
        .copy_object()
        .copy_source(format!("{LIMITED_BUCKET}/mine"))
        .bucket(LIMITED_BUCKET)
        .key("mine-copy")
        .send()
        .await
        .expect("copy inside the allowed bucket");
    // Nor may it copy out of its bucket into another.
    assert_s3_err!(
        limited
            .copy_object()
            .copy_source(format!("{LIMITED_BUCKET}/mine"))
            .bucket("private-src")
            .key("pushed")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // A read-only key cannot copy at all (it writes the destination).
    assert_s3_err!(
        gw.client_for(READER)
            .copy_object()
            .copy_source("private-src/secret")
            .bucket("private-src")
            .key("reader-copy")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_copy_source() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "bkt").await;
    // A copy source without a key names no object.
    let r = s3
        .copy_object()
        .copy_source("bkt")
        .bucket("bkt")
        .key("dest")
        .send()
        .await;
    let e = match r {
        Ok(v) => panic!("copy source without key accepted: {v:?}"),
        Err(e) => hansa_conformance::s3_err(&e),
    };
    assert_eq!(e.status, 400, "{e:?}");
    assert!(
        matches!(
            e.code.as_deref(),
            Some("InvalidArgument") | Some("InvalidRequest")
        ),
        "{e:?}"
    );
    gw.shutdown().await;
}
