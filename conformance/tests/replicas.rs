//! Replication and durability: every backend holds a plain copy, reads fail over when a copy
//! disappears, and acknowledged writes survive a restart.

use hansa_conformance::{
    assert_s3_err, create_bucket, get, list_all_keys, put, random_bytes, sha256_hex, TestGateway,
};

#[tokio::test]
async fn every_backend_holds_a_plain_copy() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rep").await;
    let data = random_bytes(5 * 1024 * 1024 + 11);
    let keys = ["top", "nested/dir/file.bin", "with space/ünïcödé.txt"];
    for k in keys {
        s3.put_object()
            .bucket("rep")
            .key(k)
            .content_type("application/x-test")
            .body(data.clone().into())
            .send()
            .await
            .expect("put");
    }
    for dir in gw.backend_dirs() {
        for k in keys {
            let path = dir.join("rep").join(k);
            let on_disk =
                std::fs::read(&path).unwrap_or_else(|e| panic!("replica {}: {e}", path.display()));
            assert_eq!(
                sha256_hex(&on_disk),
                sha256_hex(&data),
                "{}",
                path.display()
            );
        }
    }
    // Overwrites reach every replica too.
    put(&s3, "rep", "top", b"second version").await;
    for dir in gw.backend_dirs() {
        assert_eq!(
            std::fs::read(dir.join("rep/top")).expect("replica"),
            b"second version"
        );
    }
    gw.shutdown().await;
}

/// Every replica carries the stamp of its write: version, S3 ETag and checksum, even when
/// they were only known after the body had been read (no Content-MD5; a trailer checksum).
#[tokio::test]
async fn replicas_carry_a_complete_stamp() {
    use hansa_backends::{physical_name, Backend, LocalBackend};
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "stamped").await;
    let data = random_bytes(300_000);
    let put = s3
        .put_object()
        .bucket("stamped")
        .key("doc.bin")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .body(data.clone().into())
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").trim_matches('"').to_string();
    let crc = put.checksum_crc32().expect("crc32").to_string();
    for (i, dir) in gw.backend_dirs().into_iter().enumerate() {
        let backend = LocalBackend::new(format!("check-{i}"), dir).expect("open backend dir");
        let info = backend
            .head(&physical_name("stamped", "doc.bin"))
            .await
            .expect("replica");
        let stamp = info.stamp.expect("stamp");
        assert_eq!(stamp.key, "doc.bin");
        assert_eq!(stamp.size, data.len() as u64);
        assert_eq!(stamp.etag, etag, "S3 ETag in the stamp");
        assert_eq!(
            stamp.checksum.as_deref(),
            Some(format!("CRC32:{crc}").as_str())
        );
        assert!(!stamp.version_id.is_empty());
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn read_fails_over_when_a_replica_is_gone() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rep").await;
    let data = random_bytes(3 * 1024 * 1024 + 5);
    put(&s3, "rep", "k1", &data).await;
    put(&s3, "rep", "k2", &data).await;
    let [a, b] = gw.backend_dirs();

    // Remove the first backend's copy of k1, the second's copy of k2.
    std::fs::remove_file(a.join("rep/k1")).expect("remove replica a/k1");
    std::fs::remove_file(b.join("rep/k2")).expect("remove replica b/k2");
    for k in ["k1", "k2"] {
        let got = get(&s3, "rep", k).await;
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&data),
            "{k} read from the other replica"
        );
        let head = s3
            .head_object()
            .bucket("rep")
            .key(k)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(data.len() as i64));
        let ranged = s3
            .get_object()
            .bucket("rep")
            .key(k)
            .range("bytes=100-199")
            .send()
            .await
            .expect("ranged get");
        let bytes = ranged.body.collect().await.expect("body").into_bytes();
        assert_eq!(bytes.as_ref(), &data[100..200]);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_replica_changed_behind_the_gateway_is_not_served() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rep").await;
    let data = random_bytes(100_000);
    put(&s3, "rep", "shorter", &data).await;
    put(&s3, "rep", "same-size", &data).await;
    let [a, _] = gw.backend_dirs();
    std::fs::write(a.join("rep/shorter"), b"changed by someone else").expect("overwrite");
    let mut same = data.clone();
    same[500] ^= 0xff;
    std::fs::write(a.join("rep/same-size"), &same).expect("overwrite");
    let mut wrong = Vec::new();
    for k in ["shorter", "same-size"] {
        let out = s3
            .get_object()
            .bucket("rep")
            .key(k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{k}: {e:?}"));
        match out.body.collect().await.map(|b| b.into_bytes()) {
            Ok(b) if sha256_hex(&b) == sha256_hex(&data) => {}
            Ok(b) => wrong.push(format!("{k}: served {} other bytes", b.len())),
            Err(e) => wrong.push(format!("{k}: body failed: {e}")),
        }
    }
    assert!(wrong.is_empty(), "changed replicas served: {wrong:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn only_replica_changed_is_an_s3_error() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rep").await;
    put(&s3, "rep", "k", &random_bytes(10_000)).await;
    let [a, b] = gw.backend_dirs();
    std::fs::remove_file(b.join("rep/k")).expect("remove");
    std::fs::write(a.join("rep/k"), b"changed by someone else").expect("overwrite");
    // The gateway has no good copy: the client must get an HTTP error response (5xx with S3
    // error XML), not a dropped connection.
    let mut req = hansa_conformance::raw::request("GET", &gw.url("rep/k"));
    hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let bytes = hansa_conformance::raw::head_bytes(&req);
    let mut stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bytes)
        .await
        .expect("write");
    let resp =
        hansa_conformance::raw::read_response(&mut stream, std::time::Duration::from_secs(10))
            .await
            .expect("an HTTP response, not a closed connection");
    assert!(resp.status >= 500, "status {} {}", resp.status, resp.text());
    assert!(resp.code().is_some(), "S3 error XML: {}", resp.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn all_replicas_gone_is_an_error_not_wrong_data() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rep").await;
    put(&s3, "rep", "k", b"data").await;
    for dir in gw.backend_dirs() {
        std::fs::remove_file(dir.join("rep/k")).expect("remove replica");
    }
    let r = s3.get_object().bucket("rep").key("k").send().await;
    match r {
        Ok(out) => {
            // If headers were sent, the body must not complete as if it were the object.
            let body = out.body.collect().await;
            assert!(body.is_err(), "body of a lost object read as complete");
        }
        Err(e) => {
            let got = hansa_conformance::s3_err(&e);
            assert!(
                got.status >= 500,
                "lost replicas are a server error: {got:?}"
            );
        }
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn writes_survive_a_restart() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "durable").await;
    let big = random_bytes(12 * 1024 * 1024 + 1);
    put(&s3, "durable", "big", &big).await;
    put(&s3, "durable", "small", b"small body").await;
    put(&s3, "durable", "gone", b"deleted before the restart").await;
    s3.put_object()
        .bucket("durable")
        .key("meta")
        .content_type("image/png")
        .metadata("kept", "across restarts")
        .body(b"png".to_vec().into())
        .send()
        .await
        .expect("put meta");
    s3.delete_object()
        .bucket("durable")
        .key("gone")
        .send()
        .await
        .expect("delete");
    let old_endpoint = gw.endpoint.clone();

    gw.restart().await;
    assert_ne!(gw.endpoint, "", "restarted");
    let _ = old_endpoint;
    let s3 = gw.client();
    let buckets = s3.list_buckets().send().await.expect("list buckets");
    assert_eq!(
        buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        vec!["durable"]
    );
    assert_eq!(
        sha256_hex(&get(&s3, "durable", "big").await),
        sha256_hex(&big)
    );
    assert_eq!(get(&s3, "durable", "small").await, b"small body");
    let head = s3
        .head_object()
        .bucket("durable")
        .key("meta")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("kept"))
            .map(String::as_str),
        Some("across restarts")
    );
    assert_s3_err!(
        s3.get_object().bucket("durable").key("gone").send().await,
        404,
        "NoSuchKey"
    );
    assert_eq!(
        list_all_keys(&s3, "durable").await,
        vec!["big", "meta", "small"]
    );
    gw.shutdown().await;
}
