//! Credentials and errors: read-only and bucket-limited keys, wrong secrets, unknown keys,
//! the S3 error document.

use hansa_conformance::{
    assert_s3_err, assert_s3_status, create_bucket, get, list_all_keys, put, TestGateway, ADMIN,
    LIMITED, LIMITED_BUCKET, READER,
};

#[tokio::test]
async fn read_only_key() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "shared").await;
    put(&s3, "shared", "doc", b"readable").await;
    let reader = gw.client_for(READER);

    assert_eq!(get(&reader, "shared", "doc").await, b"readable");
    reader
        .head_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .expect("head");
    assert_eq!(list_all_keys(&reader, "shared").await, vec!["doc"]);
    reader.list_buckets().send().await.expect("list buckets");

    assert_s3_err!(
        reader
            .put_object()
            .bucket("shared")
            .key("new")
            .body(b"x".to_vec().into())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        reader
            .put_object()
            .bucket("shared")
            .key("doc")
            .body(b"overwrite".to_vec().into())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        reader
            .delete_object()
            .bucket("shared")
            .key("doc")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        reader.create_bucket().bucket("reader-bucket").send().await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        reader.delete_bucket().bucket("shared").send().await,
        403,
        "AccessDenied"
    );
    assert_eq!(get(&s3, "shared", "doc").await, b"readable");
    assert_eq!(list_all_keys(&s3, "shared").await, vec!["doc"]);
    assert_s3_status!(s3.head_bucket().bucket("reader-bucket").send().await, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn bucket_limited_key() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, LIMITED_BUCKET).await;
    create_bucket(&s3, "someone-else").await;
    put(&s3, "someone-else", "private", b"not yours").await;
    let limited = gw.client_for(LIMITED);

    // Its own bucket works fully.
    put(&limited, LIMITED_BUCKET, "mine", b"my data").await;
    assert_eq!(get(&limited, LIMITED_BUCKET, "mine").await, b"my data");
    assert_eq!(list_all_keys(&limited, LIMITED_BUCKET).await, vec!["mine"]);

    // Other buckets: nothing.
    assert_s3_err!(
        limited
            .list_objects_v2()
            .bucket("someone-else")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited.list_objects().bucket("someone-else").send().await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited
            .get_object()
            .bucket("someone-else")
            .key("private")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_status!(
        limited
            .head_object()
            .bucket("someone-else")
            .key("private")
            .send()
            .await,
        403
    );
    assert_s3_status!(
        limited.head_bucket().bucket("someone-else").send().await,
        403
    );
    assert_s3_err!(
        limited
            .put_object()
            .bucket("someone-else")
            .key("planted")
            .body(b"x".to_vec().into())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited
            .delete_object()
            .bucket("someone-else")
            .key("private")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited.create_bucket().bucket("limited-new").send().await,
        403,
        "AccessDenied"
    );
    // ListBuckets does not reveal other buckets to it.
    let listed = limited.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(!names.contains(&"someone-else"), "{names:?}");

    assert_eq!(list_all_keys(&s3, "someone-else").await, vec!["private"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_and_unknown_key() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "auth").await;
    put(&s3, "auth", "k", b"x").await;

    let wrong = gw.client_with_secret(ADMIN.access_key_id, "not-the-secret");
    assert_s3_err!(
        wrong.list_buckets().send().await,
        403,
        "SignatureDoesNotMatch"
    );
    assert_s3_err!(
        wrong.get_object().bucket("auth").key("k").send().await,
        403,
        "SignatureDoesNotMatch"
    );
    assert_s3_err!(
        wrong
            .put_object()
            .bucket("auth")
            .key("wrong-secret")
            .body(b"x".to_vec().into())
            .send()
            .await,
        403,
        "SignatureDoesNotMatch"
    );

    let unknown = gw.client_with_secret("UNKNOWNKEY123", ADMIN.secret_access_key);
    assert_s3_err!(
        unknown.list_buckets().send().await,
        403,
        "InvalidAccessKeyId"
    );
    assert_s3_err!(
        unknown
            .put_object()
            .bucket("auth")
            .key("unknown-key")
            .body(b"x".to_vec().into())
            .send()
            .await,
        403,
        "InvalidAccessKeyId"
    );
    // Another configured key's id with the admin secret is a wrong signature, not access.
    let mixed = gw.client_with_secret(READER.access_key_id, ADMIN.secret_access_key);
    assert_s3_err!(
        mixed.list_buckets().send().await,
        403,
        "SignatureDoesNotMatch"
    );
    assert_eq!(list_all_keys(&s3, "auth").await, vec!["k"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn error_xml_shape() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "errs").await;
    let mut req = hansa_conformance::raw::request("DELETE", &gw.url("no-such-bucket"));
    hansa_conformance::sign::Signer::new(ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 404);
    let xml = resp.text();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(resp.code().as_deref(), Some("NoSuchBucket"));
    assert_eq!(
        hansa_conformance::xml_text(&xml, "BucketName").as_deref(),
        Some("no-such-bucket"),
        "{xml}"
    );
    assert_eq!(
        hansa_conformance::xml_text(&xml, "Resource").as_deref(),
        Some("/no-such-bucket"),
        "{xml}"
    );
    let request_id = hansa_conformance::xml_text(&xml, "RequestId").expect("RequestId");
    assert_eq!(resp.header("x-amz-request-id"), Some(request_id.as_str()));

    // HEAD errors carry no body but the status and request id.
    let mut req = hansa_conformance::raw::request("HEAD", &gw.url("errs/missing"));
    hansa_conformance::sign::Signer::new(ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty());
    assert!(resp.header("x-amz-request-id").is_some());
    gw.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_clients() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "busy").await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("obj-{i:02}");
            let data = hansa_conformance::random_bytes(256 * 1024 + i);
            put(&s3, "busy", &key, &data).await;
            assert_eq!(get(&s3, "busy", &key).await, data, "{key}");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(list_all_keys(&s3, "busy").await.len(), 32);
    // Concurrent writers of one key: the last acknowledged write wins, never a mix.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            put(&s3, "busy", "contended", &vec![i; 100_000]).await;
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let got = get(&s3, "busy", "contended").await;
    assert_eq!(got.len(), 100_000);
    assert!(got.iter().all(|b| *b == got[0]), "a mix of writes");
    for dir in gw.backend_dirs() {
        let replica = std::fs::read(dir.join("busy/contended")).expect("replica");
        assert_eq!(replica, got, "replicas agree with the index");
    }
    gw.shutdown().await;
}
