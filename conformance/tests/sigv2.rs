//! AWS Signature Version 2 (issue 15): requests signed V2 by hand ([`SignerV2`], built from
//! the S3 documentation apart from the gateway's code), header and query forms, path-style and
//! virtual-host, with S3's error answers; and `server.signature_v2 = false`.

use std::time::{Duration, SystemTime};

use hansa_conformance::raw::{self, send_reqwest, Response};
use hansa_conformance::sign::{http_date, SignerV2};
use hansa_conformance::{
    create_bucket, get, md5_b64, put, xml_text, Options, TestGateway, ADMIN, BASE_DOMAIN, LIMITED,
    READER,
};

fn request(url: &str, method: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut req = raw::request(method, url);
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    req
}

/// Signs `method path` (no leading slash) V2 as `signer` now and sends it with `body`.
async fn v2(
    gw: &TestGateway,
    signer: &SignerV2,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = request(&gw.url(path), method, headers);
    signer.sign(&mut req, SystemTime::now());
    send_reqwest(req, body.to_vec()).await
}

fn assert_error(resp: &Response, status: u16, code: &str) {
    assert_eq!(
        (resp.status, resp.code().as_deref()),
        (status, Some(code)),
        "{}",
        resp.text()
    );
}

#[tokio::test]
async fn object_cycle_path_style() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-cycle").await;
    let admin = SignerV2::new(ADMIN);
    let body = b"signed the old way".to_vec();
    let md5 = md5_b64(&body);

    // PUT with the positional headers and x-amz-meta values, all signed; a repeated header is
    // signed with its values comma-joined (what the gateway then stores of it is the object
    // path's business, not the signature's).
    let resp = v2(
        &gw,
        &admin,
        "PUT",
        "v2-cycle/dir/a%20b.txt",
        &[
            ("content-type", "text/plain"),
            ("content-md5", &md5),
            ("x-amz-meta-reviewer", "joe"),
            ("x-amz-meta-reviewer", "jane"),
            ("x-amz-meta-color", "  blue "),
        ],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // What the SDK (SigV4) reads back is what V2 stored.
    let head = s3
        .head_object()
        .bucket("v2-cycle")
        .key("dir/a b.txt")
        .send()
        .await
        .expect("head via SDK");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );

    let resp = v2(&gw, &admin, "GET", "v2-cycle/dir/a%20b.txt", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, body);

    let resp = v2(&gw, &admin, "HEAD", "v2-cycle/dir/a%20b.txt", &[], b"").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("18"));

    // ListObjects: prefix and max-keys are not signed in V2, and may be anything.
    let resp = v2(
        &gw,
        &admin,
        "GET",
        "v2-cycle?prefix=dir%2F&max-keys=10",
        &[],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        xml_text(&resp.text(), "Key").as_deref(),
        Some("dir/a b.txt")
    );

    // ListBuckets: the resource is `/`.
    let resp = v2(&gw, &admin, "GET", "", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<Name>v2-cycle</Name>"),
        "{}",
        resp.text()
    );

    // A body that does not match its signed Content-MD5 is refused and not stored.
    let resp = v2(
        &gw,
        &admin,
        "PUT",
        "v2-cycle/bad-md5",
        &[("content-md5", &md5)],
        b"other bytes",
    )
    .await;
    assert_error(&resp, 400, "BadDigest");

    let resp = v2(&gw, &admin, "DELETE", "v2-cycle/dir/a%20b.txt", &[], b"").await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let resp = v2(&gw, &admin, "GET", "v2-cycle/dir/a%20b.txt", &[], b"").await;
    assert_error(&resp, 404, "NoSuchKey");
    let resp = v2(&gw, &admin, "GET", "v2-cycle/bad-md5", &[], b"").await;
    assert_error(&resp, 404, "NoSuchKey");
    gw.shutdown().await;
}

#[tokio::test]
async fn sub_resources_and_virtual_host() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-host").await;
    let admin = SignerV2::new(ADMIN);
    let host = format!("v2-host.{BASE_DOMAIN}:{}", gw.addr.port());
    let host = host.as_str();

    // GET ?acl by virtual host: the resource is `/v2-host/?acl`.
    let resp = v2(&gw, &admin, "GET", "?acl", &[("host", host)], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("AccessControlPolicy"),
        "{}",
        resp.text()
    );

    // A multipart upload: ?uploads, ?partNumber&uploadId, ?uploadId.
    let resp = v2(&gw, &admin, "POST", "big?uploads", &[("host", host)], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let upload_id = xml_text(&resp.text(), "UploadId").expect("upload id");
    let part = vec![7u8; 1000];
    let resp = v2(
        &gw,
        &admin,
        "PUT",
        &format!("big?partNumber=1&uploadId={upload_id}"),
        &[("host", host)],
        &part,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let etag = resp.header("etag").expect("part etag").to_string();
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let resp = v2(
        &gw,
        &admin,
        "POST",
        &format!("big?uploadId={upload_id}"),
        &[("host", host)],
        complete.as_bytes(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&s3, "v2-host", "big").await, part);

    // A signed response override changes the answer; path style this time.
    let resp = v2(
        &gw,
        &admin,
        "GET",
        "v2-host/big?response-content-type=application%2Fx-test",
        &[],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/x-test"));

    // Signed path style but sent by virtual host: another resource, refused.
    let mut req = request(&gw.url("big"), "GET", &[]);
    let string = SignerV2::string_to_sign(&req, "x");
    assert!(string.ends_with("\n/big"), "{string}");
    admin.sign(&mut req, SystemTime::now());
    req.headers_mut()
        .insert("host", host.parse().expect("host"));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    gw.shutdown().await;
}

#[tokio::test]
async fn presigned_get_and_put() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-presigned").await;
    let admin = SignerV2::new(ADMIN);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);

    // PUT by URL alone, with the Content-Type it was signed for.
    let mut req = request(
        &gw.url("v2-presigned/up%2Bload.bin"),
        "PUT",
        &[("content-type", "application/octet-stream")],
    );
    admin.presign(&mut req, in_an_hour);
    assert!(req.uri().query().unwrap().contains("AWSAccessKeyId="));
    let resp = send_reqwest(req, b"uploaded by URL".to_vec()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        get(&s3, "v2-presigned", "up+load.bin").await,
        b"uploaded by URL"
    );

    // GET by URL, and the same URL once more (it stays valid until Expires).
    put(&s3, "v2-presigned", "photo.jpg", b"jpeg bytes").await;
    let mut req = request(&gw.url("v2-presigned/photo.jpg"), "GET", &[]);
    admin.presign(&mut req, in_an_hour);
    let url = req.uri().to_string();
    for _ in 0..2 {
        let resp = send_reqwest(request(&url, "GET", &[]), Vec::new()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.body, b"jpeg bytes");
    }
    // The URL is for GET and for this key only.
    let resp = send_reqwest(request(&url, "DELETE", &[]), Vec::new()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    let resp = send_reqwest(
        request(&url.replace("photo.jpg", "up%2Bload.bin"), "GET", &[]),
        Vec::new(),
    )
    .await;
    assert_error(&resp, 403, "SignatureDoesNotMatch");

    // Expired.
    let mut req = request(&gw.url("v2-presigned/photo.jpg"), "GET", &[]);
    admin.presign(&mut req, SystemTime::now() - Duration::from_secs(5));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(
        xml_text(&resp.text(), "Message").as_deref(),
        Some("Request has expired")
    );

    // A header and a query signature at once.
    let mut req = request(&gw.url("v2-presigned/photo.jpg"), "GET", &[]);
    admin.presign(&mut req, in_an_hour);
    admin.sign(&mut req, SystemTime::now());
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 400, "InvalidArgument");
    gw.shutdown().await;
}

#[tokio::test]
async fn signature_and_key_errors() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-errors").await;
    put(&s3, "v2-errors", "k", b"value").await;

    // Wrong secret: 403 with S3's V2 error elements; the StringToSign is the client's.
    let wrong = SignerV2::new(ADMIN).secret("not-the-secret");
    let mut req = request(
        &gw.url("v2-errors/k"),
        "GET",
        &[("x-amz-meta-note", " spaced ")],
    );
    let string = wrong.sign(&mut req, SystemTime::now());
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    assert_eq!(
        resp.header("content-type"),
        Some("application/xml"),
        "an XML error document"
    );
    let text = resp.text();
    assert_eq!(
        xml_text(&text, "StringToSign").as_deref(),
        Some(string.as_str())
    );
    assert_eq!(
        xml_text(&text, "AWSAccessKeyId").as_deref(),
        Some(ADMIN.access_key_id)
    );
    assert!(xml_text(&text, "StringToSignBytes").is_some(), "{text}");

    // Unknown key.
    let unknown = SignerV2::new(ADMIN).access_key("NOSUCHKEY");
    let resp = v2(&gw, &unknown, "GET", "v2-errors/k", &[], b"").await;
    assert_error(&resp, 403, "InvalidAccessKeyId");

    // A Date 20 minutes off.
    let mut req = request(&gw.url("v2-errors/k"), "GET", &[]);
    SignerV2::new(ADMIN).sign(&mut req, SystemTime::now() - Duration::from_secs(20 * 60));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 403, "RequestTimeTooSkewed");

    // x-amz-date stands in for Date (which it overrides, skewed or not): the Date position
    // is empty and x-amz-date is signed among the x-amz-* headers.
    let now = http_date(SystemTime::now());
    let stale = http_date(SystemTime::now() - Duration::from_secs(3600));
    let mut req = request(
        &gw.url("v2-errors/k"),
        "GET",
        &[("x-amz-date", &now), ("date", &stale)],
    );
    let string = SignerV2::string_to_sign(&req, "");
    let authorization = format!(
        "AWS {}:{}",
        ADMIN.access_key_id,
        SignerV2::new(ADMIN).signature(&string)
    );
    req.headers_mut()
        .insert("authorization", authorization.parse().expect("header"));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // No date at all.
    let mut req = request(&gw.url("v2-errors/k"), "GET", &[]);
    SignerV2::new(ADMIN).sign(&mut req, SystemTime::now());
    req.headers_mut().remove("date");
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 403, "AccessDenied");

    // Not `AWS key:signature`.
    for malformed in ["AWS HAHAHA", "AWS  HANSATESTADMIN:abc="] {
        let req = request(
            &gw.url("v2-errors/k"),
            "GET",
            &[("authorization", malformed), ("date", &now)],
        );
        let resp = send_reqwest(req, Vec::new()).await;
        assert_error(&resp, 400, "InvalidArgument");
    }

    // Tampering after signing: a changed x-amz-* header.
    let mut req = request(
        &gw.url("v2-errors/k2"),
        "PUT",
        &[("x-amz-meta-owner", "alice")],
    );
    SignerV2::new(ADMIN).sign(&mut req, SystemTime::now());
    req.headers_mut()
        .insert("x-amz-meta-owner", "mallory".parse().expect("value"));
    let resp = send_reqwest(req, b"x".to_vec()).await;
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    let resp = v2(&gw, &SignerV2::new(ADMIN), "GET", "v2-errors/k2", &[], b"").await;
    assert_error(&resp, 404, "NoSuchKey");
    gw.shutdown().await;
}

#[tokio::test]
async fn scoped_keys_apply_to_v2() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-scoped").await;
    put(&s3, "v2-scoped", "k", b"readable").await;
    let reader = SignerV2::new(READER);

    let resp = v2(&gw, &reader, "GET", "v2-scoped/k", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"readable");
    let resp = v2(&gw, &reader, "PUT", "v2-scoped/new", &[], b"nope").await;
    assert_error(&resp, 403, "AccessDenied");
    let resp = v2(&gw, &reader, "DELETE", "v2-scoped/k", &[], b"").await;
    assert_error(&resp, 403, "AccessDenied");
    // A read-only key's presigned PUT is refused too.
    let mut req = request(&gw.url("v2-scoped/new"), "PUT", &[]);
    reader.presign(&mut req, SystemTime::now() + Duration::from_secs(60));
    let resp = send_reqwest(req, b"nope".to_vec()).await;
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(get(&s3, "v2-scoped", "k").await, b"readable");

    // A key limited to another bucket.
    let resp = v2(&gw, &SignerV2::new(LIMITED), "GET", "v2-scoped/k", &[], b"").await;
    assert_error(&resp, 403, "AccessDenied");
    gw.shutdown().await;
}

#[tokio::test]
async fn switched_off() {
    let gw = TestGateway::start_with(Options {
        server_toml: "signature_v2 = false".into(),
        ..Default::default()
    })
    .await;
    let s3 = gw.client();
    create_bucket(&s3, "v2-off").await;
    put(&s3, "v2-off", "k", b"v4 only").await;
    let admin = SignerV2::new(ADMIN);

    let resp = v2(&gw, &admin, "GET", "v2-off/k", &[], b"").await;
    assert_error(&resp, 400, "InvalidRequest");
    assert!(resp.text().contains("AWS4-HMAC-SHA256"), "{}", resp.text());
    let mut req = request(&gw.url("v2-off/k"), "GET", &[]);
    admin.presign(&mut req, SystemTime::now() + Duration::from_secs(60));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_error(&resp, 400, "InvalidRequest");
    // SigV4 is untouched.
    assert_eq!(get(&s3, "v2-off", "k").await, b"v4 only");
    gw.shutdown().await;
}
