//! PutObject / GetObject / HeadObject / DeleteObject: bodies, metadata, headers, Content-MD5,
//! checksums, ranges, response overrides, missing keys and buckets.

use std::collections::HashMap;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use hansa_conformance::{
    assert_s3_err, assert_s3_status, create_bucket, get, md5_b64, md5_hex, put, random_bytes,
    sha256_hex, TestGateway,
};

async fn body_of(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test]
async fn put_get_head_delete_various_sizes() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sizes").await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("small", b"hello, hansa".to_vec()),
        ("large", random_bytes(20 * 1024 * 1024 + 123)),
    ];
    for (key, data) in &cases {
        let out = s3
            .put_object()
            .bucket("sizes")
            .key(*key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        // A single-part upload's ETag is the quoted hex MD5 of the body.
        let etag = format!("\"{}\"", md5_hex(data));
        assert_eq!(out.e_tag(), Some(etag.as_str()), "{key}");

        let head = s3
            .head_object()
            .bucket("sizes")
            .key(*key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(data.len() as i64), "{key}");
        assert_eq!(head.e_tag(), Some(etag.as_str()));
        assert!(head.last_modified().is_some());

        let got = s3
            .get_object()
            .bucket("sizes")
            .key(*key)
            .send()
            .await
            .expect("get");
        assert_eq!(got.content_length(), Some(data.len() as i64));
        assert_eq!(got.e_tag(), Some(etag.as_str()));
        let bytes = body_of(got).await;
        assert_eq!(bytes.len(), data.len(), "{key}");
        assert_eq!(sha256_hex(&bytes), sha256_hex(data), "{key}");
    }
    for (key, _) in &cases {
        s3.delete_object()
            .bucket("sizes")
            .key(*key)
            .send()
            .await
            .expect("delete");
        assert_s3_err!(
            s3.get_object().bucket("sizes").key(*key).send().await,
            404,
            "NoSuchKey"
        );
        assert_s3_status!(s3.head_object().bucket("sizes").key(*key).send().await, 404);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn overwrite_replaces_content() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "over").await;
    put(&s3, "over", "k", b"first version, longer").await;
    put(&s3, "over", "k", b"second").await;
    assert_eq!(get(&s3, "over", "k").await, b"second");
    let head = s3
        .head_object()
        .bucket("over")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(6));
    gw.shutdown().await;
}

#[tokio::test]
async fn metadata_and_content_headers_round_trip() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "meta").await;
    let expires = DateTime::from_secs(1_893_456_000); // 2030-01-01T00:00:00Z
    s3.put_object()
        .bucket("meta")
        .key("doc.txt")
        .body(b"<html></html>".to_vec().into())
        .content_type("text/html; charset=utf-8")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"report.html\"")
        .content_language("de-CH")
        .cache_control("max-age=3600, must-revalidate")
        .expires(expires)
        .metadata("color", "blue")
        .metadata("owner-name", "Ada Lovelace")
        .metadata("empty", "")
        .send()
        .await
        .expect("put with headers");

    let expected_meta: HashMap<String, String> = [
        ("color", "blue"),
        ("owner-name", "Ada Lovelace"),
        ("empty", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let head = s3
        .head_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .expect("head");
    let got = s3
        .get_object()
        .bucket("meta")
        .key("doc.txt")
        .send()
        .await
        .expect("get");
    for (what, ct, ce, cd, cl, cc, ex, md) in [
        (
            "HEAD",
            head.content_type(),
            head.content_encoding(),
            head.content_disposition(),
            head.content_language(),
            head.cache_control(),
            head.expires_string(),
            head.metadata(),
        ),
        (
            "GET",
            got.content_type(),
            got.content_encoding(),
            got.content_disposition(),
            got.content_language(),
            got.cache_control(),
            got.expires_string(),
            got.metadata(),
        ),
    ] {
        assert_eq!(ct, Some("text/html; charset=utf-8"), "{what}");
        assert_eq!(ce, Some("identity"), "{what}");
        assert_eq!(cd, Some("attachment; filename=\"report.html\""), "{what}");
        assert_eq!(cl, Some("de-CH"), "{what}");
        assert_eq!(cc, Some("max-age=3600, must-revalidate"), "{what}");
        assert_eq!(ex, Some("Tue, 01 Jan 2030 00:00:00 GMT"), "{what}");
        assert_eq!(md, Some(&expected_meta), "{what}");
    }
    assert_eq!(body_of(got).await, b"<html></html>");
    gw.shutdown().await;
}

#[tokio::test]
async fn default_content_type_and_metadata_key_case() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "defaults").await;
    // Metadata names are case-insensitive HTTP headers; S3 returns them lower-cased.
    s3.put_object()
        .bucket("defaults")
        .key("k")
        .metadata("MixedCase", "Value Kept")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("put");
    let head = s3
        .head_object()
        .bucket("defaults")
        .key("k")
        .send()
        .await
        .expect("head");
    let md = head.metadata().expect("metadata");
    assert_eq!(md.get("mixedcase").map(String::as_str), Some("Value Kept"));
    assert!(
        head.content_type().is_some(),
        "S3 always returns a Content-Type"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn aws_chunked_is_never_a_content_encoding() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "enc").await;
    let data = random_bytes(300_000);
    // With a checksum and a streaming body the SDK may send aws-chunked with trailers.
    s3.put_object()
        .bucket("enc")
        .key("plain")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    s3.put_object()
        .bucket("enc")
        .key("gz")
        .content_encoding("gzip")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put gzip");
    let plain = s3
        .head_object()
        .bucket("enc")
        .key("plain")
        .send()
        .await
        .expect("head");
    assert_eq!(
        plain.content_encoding(),
        None,
        "no Content-Encoding was given"
    );
    let gz = s3
        .get_object()
        .bucket("enc")
        .key("gz")
        .send()
        .await
        .expect("get");
    assert_eq!(gz.content_encoding(), Some("gzip"));
    assert_eq!(body_of(gz).await, data);
    gw.shutdown().await;
}

#[tokio::test]
async fn content_md5_verified() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "md5").await;
    let data = b"content to be verified".to_vec();
    s3.put_object()
        .bucket("md5")
        .key("good")
        .content_md5(md5_b64(&data))
        .body(data.clone().into())
        .send()
        .await
        .expect("correct Content-MD5");
    assert_eq!(get(&s3, "md5", "good").await, data);

    // A well-formed MD5 of other bytes: BadDigest, nothing stored.
    assert_s3_err!(
        s3.put_object()
            .bucket("md5")
            .key("bad")
            .content_md5(md5_b64(b"something else"))
            .body(data.clone().into())
            .send()
            .await,
        400,
        "BadDigest"
    );
    assert_s3_err!(
        s3.get_object().bucket("md5").key("bad").send().await,
        404,
        "NoSuchKey"
    );
    // A wrong MD5 on an existing key leaves the old content in place.
    assert_s3_err!(
        s3.put_object()
            .bucket("md5")
            .key("good")
            .content_md5(md5_b64(b"something else"))
            .body(b"replacement".to_vec().into())
            .send()
            .await,
        400,
        "BadDigest"
    );
    assert_eq!(get(&s3, "md5", "good").await, data);

    // Not an MD5 at all: InvalidDigest.
    assert_s3_err!(
        s3.put_object()
            .bucket("md5")
            .key("invalid")
            .content_md5("bm90LWFuLW1kNQ==")
            .body(data.clone().into())
            .send()
            .await,
        400,
        "InvalidDigest"
    );
    gw.shutdown().await;
}

fn reference_checksum(algo: &str, data: &[u8]) -> String {
    use base64::Engine;
    let mut c = algo
        .parse::<aws_smithy_checksums::ChecksumAlgorithm>()
        .expect("algorithm")
        .into_impl();
    c.update(data);
    base64::engine::general_purpose::STANDARD.encode(c.finalize())
}

#[tokio::test]
async fn checksums_stored_and_returned() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sums").await;
    let data = random_bytes(1_000_003);
    for (algo, name) in [
        (ChecksumAlgorithm::Crc32, "crc32"),
        (ChecksumAlgorithm::Crc32C, "crc32c"),
        (ChecksumAlgorithm::Sha1, "sha1"),
        (ChecksumAlgorithm::Sha256, "sha256"),
        (ChecksumAlgorithm::Crc64Nvme, "crc64nvme"),
    ] {
        let expected = reference_checksum(name, &data);
        let put_out = s3
            .put_object()
            .bucket("sums")
            .key(name)
            .checksum_algorithm(algo.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
        let put_sum = match name {
            "crc32" => put_out.checksum_crc32(),
            "crc32c" => put_out.checksum_crc32_c(),
            "sha1" => put_out.checksum_sha1(),
            "sha256" => put_out.checksum_sha256(),
            _ => put_out.checksum_crc64_nvme(),
        };
        assert_eq!(
            put_sum,
            Some(expected.as_str()),
            "PutObject returns the {name}"
        );

        let head = s3
            .head_object()
            .bucket("sums")
            .key(name)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("head");
        let got = s3
            .get_object()
            .bucket("sums")
            .key(name)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        let (h, g) = match name {
            "crc32" => (head.checksum_crc32(), got.checksum_crc32()),
            "crc32c" => (head.checksum_crc32_c(), got.checksum_crc32_c()),
            "sha1" => (head.checksum_sha1(), got.checksum_sha1()),
            "sha256" => (head.checksum_sha256(), got.checksum_sha256()),
            _ => (head.checksum_crc64_nvme(), got.checksum_crc64_nvme()),
        };
        assert_eq!(h, Some(expected.as_str()), "HEAD returns the {name}");
        assert_eq!(
            g.map(str::to_string),
            Some(expected.clone()),
            "GET returns the {name}"
        );
        assert_eq!(body_of(got).await, data);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn checksum_not_returned_without_checksum_mode() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sums").await;
    s3.put_object()
        .bucket("sums")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(b"abc".to_vec().into())
        .send()
        .await
        .expect("put");
    let head = s3
        .head_object()
        .bucket("sums")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.checksum_sha256(),
        None,
        "only with x-amz-checksum-mode: ENABLED"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_explicit_checksum_is_rejected() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sums").await;
    let data = b"the quick brown fox".to_vec();
    let other = b"another body".to_vec();
    let cases: Vec<(
        &str,
        aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    )> = vec![
        (
            "crc32",
            s3.put_object()
                .checksum_crc32(reference_checksum("crc32", &other)),
        ),
        (
            "crc32c",
            s3.put_object()
                .checksum_crc32_c(reference_checksum("crc32c", &other)),
        ),
        (
            "sha1",
            s3.put_object()
                .checksum_sha1(reference_checksum("sha1", &other)),
        ),
        (
            "sha256",
            s3.put_object()
                .checksum_sha256(reference_checksum("sha256", &other)),
        ),
        (
            "crc64nvme",
            s3.put_object()
                .checksum_crc64_nvme(reference_checksum("crc64nvme", &other)),
        ),
    ];
    for (name, builder) in cases {
        let key = format!("bad-{name}");
        let r = builder
            .bucket("sums")
            .key(&key)
            .body(data.clone().into())
            .send()
            .await;
        assert_s3_err!(r, 400, "BadDigest");
        assert_s3_err!(
            s3.get_object().bucket("sums").key(&key).send().await,
            404,
            "NoSuchKey"
        );
    }
    // The right explicit value is accepted.
    s3.put_object()
        .bucket("sums")
        .key("good-sha256")
        .checksum_sha256(reference_checksum("sha256", &data))
        .body(data.clone().into())
        .send()
        .await
        .expect("correct explicit checksum");
    gw.shutdown().await;
}

#[tokio::test]
async fn ranges() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "ranges").await;
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    put(&s3, "ranges", "k", &data).await;
    let n = data.len();
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, n - 1),
        ("bytes=-5", n - 5, n - 1),
        ("bytes=990-5000", 990, n - 1),
        ("bytes=999-999", 999, 999),
        ("bytes=-5000", 0, n - 1),
    ] {
        let r = s3
            .get_object()
            .bucket("ranges")
            .key("k")
            .range(range)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{range}: {e:?}"));
        let expected_cr = format!("bytes {start}-{end}/{n}");
        assert_eq!(r.content_range(), Some(expected_cr.as_str()), "{range}");
        assert_eq!(
            r.content_length(),
            Some((end - start + 1) as i64),
            "{range}"
        );
        assert_eq!(r.accept_ranges(), Some("bytes"));
        assert_eq!(body_of(r).await, &data[start..=end], "{range}");
    }
    // The status is 206 Partial Content.
    let mut req = hansa_conformance::raw::request("GET", &gw.url("ranges/k"));
    req.headers_mut()
        .insert("range", http::HeaderValue::from_static("bytes=0-0"));
    hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 0-0/1000"));

    for range in ["bytes=1000-", "bytes=5000-6000"] {
        let e = assert_s3_err!(
            s3.get_object()
                .bucket("ranges")
                .key("k")
                .range(range)
                .send()
                .await,
            416,
            "InvalidRange"
        );
        let _ = e;
    }
    // HEAD honours Range as well.
    let head = s3
        .head_object()
        .bucket("ranges")
        .key("k")
        .range("bytes=100-199")
        .send()
        .await
        .expect("ranged head");
    assert_eq!(head.content_length(), Some(100));
    assert_eq!(head.content_range(), Some("bytes 100-199/1000"));
    gw.shutdown().await;
}

#[tokio::test]
async fn range_on_empty_object_is_unsatisfiable() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "ranges").await;
    put(&s3, "ranges", "empty", b"").await;
    assert_s3_err!(
        s3.get_object()
            .bucket("ranges")
            .key("empty")
            .range("bytes=0-0")
            .send()
            .await,
        416,
        "InvalidRange"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn response_header_overrides() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "over").await;
    s3.put_object()
        .bucket("over")
        .key("k")
        .content_type("text/plain")
        .body(b"data".to_vec().into())
        .send()
        .await
        .expect("put");
    let r = s3
        .get_object()
        .bucket("over")
        .key("k")
        .response_content_type("application/x-custom")
        .response_content_language("fr")
        .response_expires(DateTime::from_secs(1_893_456_000))
        .response_cache_control("no-cache")
        .response_content_disposition("attachment; filename=\"x.bin\"")
        .response_content_encoding("br")
        .send()
        .await
        .expect("get with overrides");
    assert_eq!(r.content_type(), Some("application/x-custom"));
    assert_eq!(r.content_language(), Some("fr"));
    assert_eq!(r.expires_string(), Some("Tue, 01 Jan 2030 00:00:00 GMT"));
    assert_eq!(r.cache_control(), Some("no-cache"));
    assert_eq!(
        r.content_disposition(),
        Some("attachment; filename=\"x.bin\"")
    );
    assert_eq!(r.content_encoding(), Some("br"));
    assert_eq!(body_of(r).await, b"data");
    // The stored object is unchanged.
    let head = s3
        .head_object()
        .bucket("over")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_key_and_bucket() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "present").await;
    let e = assert_s3_err!(
        s3.get_object().bucket("present").key("absent").send().await,
        404,
        "NoSuchKey"
    );
    assert!(e.message.is_some());
    assert_s3_err!(
        s3.get_object()
            .bucket("absent-bucket")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    assert_s3_status!(
        s3.head_object()
            .bucket("absent-bucket")
            .key("k")
            .send()
            .await,
        404
    );
    assert_s3_err!(
        s3.put_object()
            .bucket("absent-bucket")
            .key("k")
            .body(b"x".to_vec().into())
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    // DeleteObject of a missing key succeeds (204) in an existing bucket...
    s3.delete_object()
        .bucket("present")
        .key("absent")
        .send()
        .await
        .expect("delete of a missing key is a success");
    // ...but not in a missing bucket.
    assert_s3_err!(
        s3.delete_object()
            .bucket("absent-bucket")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn error_document_has_s3_fields() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "docs").await;
    let mut req = hansa_conformance::raw::request("GET", &gw.url("docs/no/such/key"));
    hansa_conformance::sign::Signer::new(hansa_conformance::ADMIN).sign(
        &mut req,
        &hansa_conformance::sign::Payload::Bytes(Vec::new()),
    );
    let resp = hansa_conformance::raw::send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 404);
    let xml = resp.text();
    assert!(xml.contains("<Error>"), "{xml}");
    assert_eq!(resp.code().as_deref(), Some("NoSuchKey"));
    assert!(
        hansa_conformance::xml_text(&xml, "Message").is_some(),
        "{xml}"
    );
    assert!(
        hansa_conformance::xml_text(&xml, "RequestId").is_some(),
        "{xml}"
    );
    assert_eq!(
        hansa_conformance::xml_text(&xml, "Key").as_deref(),
        Some("no/such/key"),
        "NoSuchKey names the key: {xml}"
    );
    assert!(resp.header("x-amz-request-id").is_some());
    assert!(resp
        .header("content-type")
        .is_some_and(|c| c.contains("xml")));
    gw.shutdown().await;
}
