//! DeleteObject and DeleteObjects (quiet and verbose, mixed existing and missing keys, the
//! 1000-key limit, the required integrity header).

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use hansa_conformance::raw::send_reqwest;
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    assert_s3_err, create_bucket, list_all_keys, md5_b64, put, xml_all, TestGateway, ADMIN, READER,
};

fn delete_doc(keys: &[&str], quiet: bool) -> Delete {
    Delete::builder()
        .set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                .collect(),
        ))
        .quiet(quiet)
        .build()
        .expect("delete doc")
}

#[tokio::test]
async fn delete_objects_verbose_mixed() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "del").await;
    for k in ["a", "b", "c/d", "x&y<z>", "keep"] {
        put(&s3, "del", k, b"x").await;
    }
    let out = s3
        .delete_objects()
        .bucket("del")
        .delete(delete_doc(&["a", "c/d", "missing", "x&y<z>"], false))
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    // S3 reports a missing key as deleted (deleting nothing is a success).
    assert_eq!(deleted, vec!["a", "c/d", "missing", "x&y<z>"]);
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(list_all_keys(&s3, "del").await, vec!["b", "keep"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_objects_quiet() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "del").await;
    for k in ["a", "b", "c"] {
        put(&s3, "del", k, b"x").await;
    }
    let out = s3
        .delete_objects()
        .bucket("del")
        .delete(delete_doc(&["a", "b", "nope"], true))
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty(), "quiet mode lists no successes");
    assert!(out.errors().is_empty());
    assert_eq!(list_all_keys(&s3, "del").await, vec!["c"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_objects_limits() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "del").await;
    put(&s3, "del", "k-0", b"x").await;
    let names: Vec<String> = (0..1001).map(|i| format!("k-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_s3_err!(
        s3.delete_objects()
            .bucket("del")
            .delete(delete_doc(&refs, true))
            .send()
            .await,
        400,
        "MalformedXML"
    );
    assert_eq!(
        list_all_keys(&s3, "del").await,
        vec!["k-0"],
        "nothing deleted"
    );
    // Exactly 1000 is fine.
    s3.delete_objects()
        .bucket("del")
        .delete(delete_doc(&refs[..1000], true))
        .send()
        .await
        .expect("1000 keys");
    assert!(list_all_keys(&s3, "del").await.is_empty());
    // An empty list is malformed too.
    assert_s3_err!(
        s3.delete_objects()
            .bucket("del")
            .delete(
                Delete::builder()
                    .set_objects(Some(vec![]))
                    .build()
                    .expect("doc")
            )
            .send()
            .await,
        400,
        "MalformedXML"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_objects_errors() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    assert_s3_err!(
        s3.delete_objects()
            .bucket("no-such-bucket")
            .delete(delete_doc(&["a"], false))
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    create_bucket(&s3, "del").await;
    put(&s3, "del", "a", b"x").await;
    assert_s3_err!(
        gw.client_for(READER)
            .delete_objects()
            .bucket("del")
            .delete(delete_doc(&["a"], false))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_eq!(list_all_keys(&s3, "del").await, vec!["a"]);
    gw.shutdown().await;
}

fn delete_xml(keys: &[&str]) -> Vec<u8> {
    let mut s = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for k in keys {
        s.push_str(&format!("<Object><Key>{k}</Key></Object>"));
    }
    s.push_str("</Delete>");
    s.into_bytes()
}

#[tokio::test]
async fn delete_objects_integrity_header() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "del").await;
    put(&s3, "del", "a", b"x").await;
    put(&s3, "del", "b", b"x").await;
    let body = delete_xml(&["a"]);

    // Neither Content-MD5 nor x-amz-checksum-*: S3 refuses (InvalidRequest).
    let mut req = hansa_conformance::raw::request("POST", &gw.url("del?delete"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
    let resp = send_reqwest(req, body.clone()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.code().as_deref(),
        Some("InvalidRequest"),
        "{}",
        resp.text()
    );

    // A wrong Content-MD5: BadDigest.
    let mut req = hansa_conformance::raw::request("POST", &gw.url("del?delete"));
    req.headers_mut()
        .insert("content-md5", md5_b64(b"other").parse().expect("hdr"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
    let resp = send_reqwest(req, body.clone()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("BadDigest"), "{}", resp.text());
    assert_eq!(list_all_keys(&s3, "del").await, vec!["a", "b"]);

    // The right Content-MD5 (what older SDKs send).
    let mut req = hansa_conformance::raw::request("POST", &gw.url("del?delete"));
    req.headers_mut()
        .insert("content-md5", md5_b64(&body).parse().expect("hdr"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
    let resp = send_reqwest(req, body.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(xml_all(&resp.text(), "Key"), vec!["a"]);

    // x-amz-checksum-crc32 instead (what current SDKs send).
    let body = delete_xml(&["b"]);
    let mut req = hansa_conformance::raw::request("POST", &gw.url("del?delete"));
    req.headers_mut().insert(
        "x-amz-checksum-crc32",
        hansa_conformance::sign::crc32_b64(&body)
            .parse()
            .expect("hdr"),
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
    let resp = send_reqwest(req, body.clone()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(list_all_keys(&s3, "del").await.is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_object_removes_from_listing_and_backends() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "del").await;
    put(&s3, "del", "dir/file", b"to be removed").await;
    for dir in gw.backend_dirs() {
        assert!(
            dir.join("del/dir/file").is_file(),
            "replica in {}",
            dir.display()
        );
    }
    s3.delete_object()
        .bucket("del")
        .key("dir/file")
        .send()
        .await
        .expect("delete");
    assert!(list_all_keys(&s3, "del").await.is_empty());
    assert_s3_err!(
        s3.get_object().bucket("del").key("dir/file").send().await,
        404,
        "NoSuchKey"
    );
    for dir in gw.backend_dirs() {
        assert!(
            !dir.join("del/dir/file").exists(),
            "replica removed from {}",
            dir.display()
        );
    }
    assert_s3_err!(
        gw.client_for(READER)
            .delete_object()
            .bucket("del")
            .key("dir/file")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    gw.shutdown().await;
}
