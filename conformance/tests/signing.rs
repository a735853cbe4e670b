//! Requests signed by hand (aws-sigv4 primitives) or sent byte by byte, for the cases SDKs do
//! not produce: bad and missing signatures, skewed clocks, wrong scopes, presigned URLs,
//! unsigned and streaming payloads, trailers, short bodies, missing lengths, 100-continue,
//! slow headers, oversized bodies, malformed XML, unsupported operations, virtual hosts.

use std::time::{Duration, SystemTime};

use hansa_conformance::raw::{
    self, head_bytes, read_response, read_until, send, send_reqwest, Response,
};
use hansa_conformance::sign::{
    crc32_b64, signed_chunked_body, signed_trailer_body, unsigned_trailer_body, Payload, Signer,
    STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
};
use hansa_conformance::{
    assert_s3_err, create_bucket, get, md5_b64, put, sha256_hex, Options, TestGateway, ADMIN,
    BASE_DOMAIN,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

fn with_headers(mut req: http::Request<()>, headers: &[(&str, String)]) -> http::Request<()> {
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    req
}

/// Signs `method url` with `headers` and `payload`, sends it over raw TCP with `body`.
async fn signed_raw(
    gw: &TestGateway,
    signer: &Signer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: Payload,
    body: &[u8],
) -> Response {
    let mut req = with_headers(raw::request(method, &gw.url(path)), headers);
    if !req.headers().contains_key("content-length") && (method == "PUT" || method == "POST") {
        req.headers_mut().insert(
            "content-length",
            body.len().to_string().parse().expect("len"),
        );
    }
    signer.sign(&mut req, &payload);
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(body);
    send(gw.addr, &bytes, LIMIT).await
}

async fn assert_missing(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    assert_s3_err!(
        s3.get_object().bucket(bucket).key(key).send().await,
        404,
        "NoSuchKey"
    );
}

async fn gateway_with_bucket() -> (TestGateway, aws_sdk_s3::Client) {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "sig").await;
    put(&s3, "sig", "existing", b"existing object").await;
    (gw, s3)
}

#[tokio::test]
async fn anonymous_requests_are_denied() {
    let (gw, s3) = gateway_with_bucket().await;
    for (method, path) in [
        ("GET", ""),
        ("GET", "sig"),
        ("GET", "sig/existing"),
        ("HEAD", "sig/existing"),
        ("PUT", "sig/anon"),
        ("DELETE", "sig/existing"),
    ] {
        let resp = send_reqwest(raw::request(method, &gw.url(path)), Vec::new()).await;
        assert_eq!(resp.status, 403, "{method} /{path}");
        if method != "HEAD" {
            assert_eq!(
                resp.code().as_deref(),
                Some("AccessDenied"),
                "{method} /{path}"
            );
        }
    }
    assert_missing(&s3, "sig", "anon").await;
    assert_eq!(get(&s3, "sig", "existing").await, b"existing object");
    gw.shutdown().await;
}

#[tokio::test]
async fn tampered_signature() {
    let (gw, s3) = gateway_with_bucket().await;
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    let sig = Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    let auth = req.headers()["authorization"]
        .to_str()
        .expect("auth")
        .to_string();
    let flipped = {
        let last = sig.chars().last().expect("sig");
        let repl = if last == '0' { '1' } else { '0' };
        format!("{}{}", &sig[..sig.len() - 1], repl)
    };
    req.headers_mut().insert(
        "authorization",
        auth.replace(&sig, &flipped).parse().expect("hdr"),
    );
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("SignatureDoesNotMatch"));

    // A signed header changed after signing.
    let mut req = raw::request("PUT", &gw.url("sig/tampered"));
    req.headers_mut()
        .insert("x-amz-meta-note", "original".parse().expect("hdr"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(b"body".to_vec()));
    req.headers_mut()
        .insert("x-amz-meta-note", "changed".parse().expect("hdr"));
    let resp = send_reqwest(req, b"body".to_vec()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("SignatureDoesNotMatch"));
    assert_missing(&s3, "sig", "tampered").await;

    // The path changed after signing.
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    *req.uri_mut() = gw.url("sig/other").parse().expect("uri");
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.code().as_deref(), Some("SignatureDoesNotMatch"));
    gw.shutdown().await;
}

#[tokio::test]
async fn clock_skew() {
    let (gw, _s3) = gateway_with_bucket().await;
    for offset in [20 * 60i64, -20 * 60] {
        let time = if offset > 0 {
            SystemTime::now() + Duration::from_secs(offset as u64)
        } else {
            SystemTime::now() - Duration::from_secs((-offset) as u64)
        };
        let mut req = raw::request("GET", &gw.url("sig/existing"));
        Signer::new(ADMIN)
            .time(time)
            .sign(&mut req, &Payload::Bytes(Vec::new()));
        let resp = send_reqwest(req, Vec::new()).await;
        assert_eq!(resp.status, 403, "offset {offset}: {}", resp.text());
        assert_eq!(resp.code().as_deref(), Some("RequestTimeTooSkewed"));
    }
    // Within 15 minutes is fine.
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN)
        .time(SystemTime::now() - Duration::from_secs(10 * 60))
        .sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"existing object");
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_region_in_scope() {
    let (gw, _s3) = gateway_with_bucket().await;
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN)
        .region("eu-central-1")
        .sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("AuthorizationHeaderMalformed"));
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_region_error_names_the_expected_region() {
    let (gw, _s3) = gateway_with_bucket().await;
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN)
        .region("eu-central-1")
        .sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send_reqwest(req, Vec::new()).await;
    assert_eq!(resp.code().as_deref(), Some("AuthorizationHeaderMalformed"));
    // S3 names the region it expected in <Region> (botocore's region redirector reads it).
    assert_eq!(
        hansa_conformance::xml_text(&resp.text(), "Region").as_deref(),
        Some("us-east-1"),
        "{}",
        resp.text()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_authorization_header() {
    let (gw, _s3) = gateway_with_bucket().await;
    for auth in [
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=HANSATESTADMIN/20240101/us-east-1/s3/aws4_request",
    ] {
        let mut req = raw::request("GET", &gw.url("sig/existing"));
        req.headers_mut()
            .insert("authorization", auth.parse().expect("hdr"));
        req.headers_mut().insert(
            "x-amz-content-sha256",
            sha256_hex(b"").parse().expect("hdr"),
        );
        req.headers_mut().insert(
            "x-amz-date",
            hansa_conformance::sign::amz_date(SystemTime::now())
                .parse()
                .expect("hdr"),
        );
        let resp = send_reqwest(req, Vec::new()).await;
        assert_eq!(resp.status, 400, "{auth}: {}", resp.text());
        assert_eq!(
            resp.code().as_deref(),
            Some("AuthorizationHeaderMalformed"),
            "{auth}: {}",
            resp.text()
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn presigned_urls() {
    let (gw, _s3) = gateway_with_bucket().await;
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN).presign(&mut req, Duration::from_secs(300));
    let url = req.uri().to_string();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let resp = send_reqwest(raw::request("GET", &url), Vec::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"existing object");

    // Tampered presigned signature.
    let bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let resp = send_reqwest(raw::request("GET", &bad), Vec::new()).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.code().as_deref(), Some("SignatureDoesNotMatch"));

    // Expired: signed 5 s ago for 1 s.
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN)
        .time(SystemTime::now() - Duration::from_secs(5))
        .presign(&mut req, Duration::from_secs(1));
    let resp = send_reqwest(raw::request("GET", &req.uri().to_string()), Vec::new()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("AccessDenied"));

    // Expires after use-time (X-Amz-Expires=1, wait 2 s).
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN).presign(&mut req, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = send_reqwest(raw::request("GET", &req.uri().to_string()), Vec::new()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("AccessDenied"));

    // More than 7 days.
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN).presign(&mut req, Duration::from_secs(604_801));
    let resp = send_reqwest(raw::request("GET", &req.uri().to_string()), Vec::new()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.code().as_deref(),
        Some("AuthorizationQueryParametersError"),
        "{}",
        resp.text()
    );
    // Exactly 7 days is allowed.
    let mut req = raw::request("GET", &gw.url("sig/existing"));
    Signer::new(ADMIN).presign(&mut req, Duration::from_secs(604_800));
    let resp = send_reqwest(raw::request("GET", &req.uri().to_string()), Vec::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    gw.shutdown().await;
}

#[tokio::test]
async fn presigned_put() {
    let (gw, s3) = gateway_with_bucket().await;
    let mut req = raw::request("PUT", &gw.url("sig/presigned-put"));
    Signer::new(ADMIN).presign(&mut req, Duration::from_secs(300));
    let resp = send_reqwest(
        raw::request("PUT", &req.uri().to_string()),
        b"uploaded via presigned URL".to_vec(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        get(&s3, "sig", "presigned-put").await,
        b"uploaded via presigned URL"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn unsigned_payload_put() {
    let (gw, s3) = gateway_with_bucket().await;
    let body = b"unsigned payload body".to_vec();
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/unsigned",
        &[],
        Payload::Unsigned,
        &body,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&s3, "sig", "unsigned").await, body);
    gw.shutdown().await;
}

#[tokio::test]
async fn payload_hash_mismatch() {
    let (gw, s3) = gateway_with_bucket().await;
    let body = b"the body actually sent".to_vec();
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/mismatch",
        &[],
        Payload::Literal(sha256_hex(b"a different body")),
        &body,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("XAmzContentSHA256Mismatch"));
    assert_missing(&s3, "sig", "mismatch").await;

    // The same over an existing key keeps the old content.
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/existing",
        &[],
        Payload::Literal(sha256_hex(b"a different body")),
        &body,
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(get(&s3, "sig", "existing").await, b"existing object");

    // A signed hash that is not a hash at all.
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/mismatch",
        &[],
        Payload::Literal("not-a-sha256".into()),
        &body,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_missing(&s3, "sig", "mismatch").await;
    gw.shutdown().await;
}

async fn streaming_put(
    gw: &TestGateway,
    key: &str,
    data: &[u8],
    chunk: usize,
    tamper: Option<usize>,
) -> Response {
    let signer = Signer::new(ADMIN);
    // First pass to learn the encoded length (signatures have a fixed width).
    let probe = signed_chunked_body(&signer, &"0".repeat(64), data, chunk);
    let mut req = with_headers(
        raw::request("PUT", &gw.url(&format!("sig/{key}"))),
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
            ("content-length", probe.len().to_string()),
            ("content-type", "application/x-streamed".into()),
        ],
    );
    let seed = signer.sign(&mut req, &Payload::Literal(STREAMING_SIGNED.into()));
    let mut body = signed_chunked_body(&signer, &seed, data, chunk);
    assert_eq!(body.len(), probe.len());
    if let Some(n) = tamper {
        // Flip one hex digit of the n-th chunk signature.
        let marker = b"chunk-signature=";
        let mut found = 0;
        let mut i = 0;
        while i + marker.len() < body.len() {
            if &body[i..i + marker.len()] == marker {
                if found == n {
                    let p = i + marker.len();
                    body[p] = if body[p] == b'0' { b'1' } else { b'0' };
                    break;
                }
                found += 1;
            }
            i += 1;
        }
    }
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(&body);
    send(gw.addr, &bytes, LIMIT).await
}

#[tokio::test]
async fn streaming_signed_chunks() {
    let (gw, s3) = gateway_with_bucket().await;
    let data = hansa_conformance::random_bytes(200_000);
    let resp = streaming_put(&gw, "streamed", &data, 64 * 1024, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let out = s3
        .get_object()
        .bucket("sig")
        .key("streamed")
        .send()
        .await
        .expect("get");
    assert_eq!(out.content_encoding(), None, "aws-chunked is not stored");
    assert_eq!(out.content_type(), Some("application/x-streamed"));
    assert_eq!(out.content_length(), Some(data.len() as i64));
    let bytes = out.body.collect().await.expect("body").into_bytes();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&data));
    // Listing reports the decoded size.
    let listed = s3
        .list_objects_v2()
        .bucket("sig")
        .prefix("streamed")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.contents()[0].size(), Some(data.len() as i64));

    // An empty streamed body.
    let resp = streaming_put(&gw, "streamed-empty", b"", 64 * 1024, None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&s3, "sig", "streamed-empty").await, b"");
    gw.shutdown().await;
}

#[tokio::test]
async fn streaming_tampered_chunk_signature() {
    let (gw, s3) = gateway_with_bucket().await;
    let data = hansa_conformance::random_bytes(200_000);
    for (n, key) in [
        (0, "tampered-first"),
        (2, "tampered-middle"),
        (4, "tampered-final"),
    ] {
        // 200_000 bytes in 64 KiB chunks: 4 data chunks (0..=3), the final empty chunk is 4.
        let resp = streaming_put(&gw, key, &data, 64 * 1024, Some(n)).await;
        assert_eq!(resp.status, 403, "{key}: {}", resp.text());
        assert_eq!(
            resp.code().as_deref(),
            Some("SignatureDoesNotMatch"),
            "{key}"
        );
        assert_missing(&s3, "sig", key).await;
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn streaming_decoded_length_mismatch() {
    let (gw, s3) = gateway_with_bucket().await;
    let data = b"0123456789".repeat(100);
    let signer = Signer::new(ADMIN);
    let probe = signed_chunked_body(&signer, &"0".repeat(64), &data, 256);
    let mut req = with_headers(
        raw::request("PUT", &gw.url("sig/wrong-decoded")),
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", (data.len() + 5).to_string()),
            ("content-length", probe.len().to_string()),
        ],
    );
    let seed = signer.sign(&mut req, &Payload::Literal(STREAMING_SIGNED.into()));
    let body = signed_chunked_body(&signer, &seed, &data, 256);
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(&body);
    let resp = send(gw.addr, &bytes, LIMIT).await;
    assert_eq!(resp.status / 100, 4, "{}", resp.text());
    assert_missing(&s3, "sig", "wrong-decoded").await;
    gw.shutdown().await;
}

async fn trailer_put(gw: &TestGateway, key: &str, data: &[u8], checksum: &str) -> Response {
    let body = unsigned_trailer_body(data, 8192, &[("x-amz-checksum-crc32", checksum)]);
    signed_raw(
        gw,
        &Signer::new(ADMIN),
        "PUT",
        &format!("sig/{key}"),
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
            ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ("content-length", body.len().to_string()),
        ],
        Payload::Literal(STREAMING_UNSIGNED_TRAILER.into()),
        &body,
    )
    .await
}

#[tokio::test]
async fn streaming_unsigned_trailer() {
    let (gw, s3) = gateway_with_bucket().await;
    let data = hansa_conformance::random_bytes(50_000);
    let good = crc32_b64(&data);
    let resp = trailer_put(&gw, "trailer-good", &data, &good).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-amz-checksum-crc32"), Some(good.as_str()));
    let out = s3
        .get_object()
        .bucket("sig")
        .key("trailer-good")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(out.checksum_crc32(), Some(good.as_str()));
    assert_eq!(out.content_encoding(), None);
    let bytes = out.body.collect().await.expect("body").into_bytes();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&data));

    let wrong = crc32_b64(b"other data");
    let resp = trailer_put(&gw, "trailer-bad", &data, &wrong).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("BadDigest"), "{}", resp.text());
    assert_missing(&s3, "sig", "trailer-bad").await;

    // A trailer announced but missing.
    let body = unsigned_trailer_body(&data, 8192, &[]);
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/trailer-missing",
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
            ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ("content-length", body.len().to_string()),
        ],
        Payload::Literal(STREAMING_UNSIGNED_TRAILER.into()),
        &body,
    )
    .await;
    assert_eq!(resp.status / 100, 4, "{}", resp.text());
    assert_missing(&s3, "sig", "trailer-missing").await;
    gw.shutdown().await;
}

async fn signed_trailer_put(
    gw: &TestGateway,
    key: &str,
    data: &[u8],
    checksum: &str,
    tamper_trailer: bool,
) -> Response {
    let signer = Signer::new(ADMIN);
    let trailers = [("x-amz-checksum-crc32", checksum)];
    let probe = signed_trailer_body(&signer, &"0".repeat(64), data, 16 * 1024, &trailers, false);
    let mut req = with_headers(
        raw::request("PUT", &gw.url(&format!("sig/{key}"))),
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", data.len().to_string()),
            ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ("content-length", probe.len().to_string()),
        ],
    );
    let seed = signer.sign(&mut req, &Payload::Literal(STREAMING_SIGNED_TRAILER.into()));
    let body = signed_trailer_body(&signer, &seed, data, 16 * 1024, &trailers, tamper_trailer);
    assert_eq!(body.len(), probe.len());
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(&body);
    send(gw.addr, &bytes, LIMIT).await
}

#[tokio::test]
async fn streaming_signed_trailer() {
    let (gw, s3) = gateway_with_bucket().await;
    let data = hansa_conformance::random_bytes(40_000);
    let good = crc32_b64(&data);
    let resp = signed_trailer_put(&gw, "signed-trailer", &data, &good, false).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let out = s3
        .get_object()
        .bucket("sig")
        .key("signed-trailer")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(out.checksum_crc32(), Some(good.as_str()));
    assert_eq!(out.content_encoding(), None);
    let bytes = out.body.collect().await.expect("body").into_bytes();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&data));

    // Wrong checksum in a correctly signed trailer.
    let resp = signed_trailer_put(
        &gw,
        "signed-trailer-bad-sum",
        &data,
        &crc32_b64(b"x"),
        false,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("BadDigest"), "{}", resp.text());
    assert_missing(&s3, "sig", "signed-trailer-bad-sum").await;

    // Right checksum, tampered trailer signature.
    let resp = signed_trailer_put(&gw, "signed-trailer-bad-sig", &data, &good, true).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(
        resp.code().as_deref(),
        Some("SignatureDoesNotMatch"),
        "{}",
        resp.text()
    );
    assert_missing(&s3, "sig", "signed-trailer-bad-sig").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn body_shorter_than_content_length() {
    let (gw, s3) = gateway_with_bucket().await;
    let mut req = with_headers(
        raw::request("PUT", &gw.url("sig/short")),
        &[("content-length", "1000".into())],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    stream.write_all(&head_bytes(&req)).await.expect("head");
    stream.write_all(&[7u8; 500]).await.expect("half body");
    stream.shutdown().await.expect("close write side");
    // Whatever the gateway answers (an error or just closing), it must not store anything.
    let answer = read_response(&mut stream, Duration::from_secs(10)).await;
    if let Some(r) = &answer {
        assert_ne!(r.status, 200, "a truncated body was acknowledged");
    }
    drop(stream);
    assert_missing(&s3, "sig", "short").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_missing(&s3, "sig", "short").await;
    assert!(
        hansa_conformance::list_all_keys(&s3, "sig").await == vec!["existing"],
        "nothing listed"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn missing_content_length() {
    let (gw, s3) = gateway_with_bucket().await;
    // Neither Content-Length nor Transfer-Encoding (a plain chunked body is accepted:
    // tests/corners.rs).
    let mut req = raw::request("PUT", &gw.url("sig/no-length"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
    let bytes = head_bytes(&req);
    let resp = send(gw.addr, &bytes, LIMIT).await;
    assert_eq!(resp.status, 411, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("MissingContentLength"));
    assert_missing(&s3, "sig", "no-length").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue() {
    let (gw, s3) = gateway_with_bucket().await;
    for (key, body) in [
        ("continued", b"0123456789".to_vec()),
        ("continued-empty", Vec::new()),
    ] {
        let mut req = with_headers(
            raw::request("PUT", &gw.url(&format!("sig/{key}"))),
            &[
                ("content-length", body.len().to_string()),
                ("expect", "100-continue".into()),
            ],
        );
        Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
        let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
        stream.write_all(&head_bytes(&req)).await.expect("head");
        // Either a 100 Continue or (for an empty body) the final answer, within 2 s.
        let first = read_until(&mut stream, b"\r\n", Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("{key}: no answer to Expect: 100-continue within 2 s"));
        let line = String::from_utf8_lossy(&first).into_owned();
        if line.starts_with("HTTP/1.1 100") {
            stream.write_all(&body).await.expect("body");
            let resp = read_response(&mut stream, LIMIT)
                .await
                .expect("final response");
            assert_eq!(resp.status, 200, "{key}: {}", resp.text());
        } else {
            assert!(
                body.is_empty(),
                "{key}: final answer without 100 for a non-empty body: {line}"
            );
            assert!(line.starts_with("HTTP/1.1 200"), "{key}: {line}");
        }
        assert_eq!(get(&s3, "sig", key).await, body, "{key}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let gw = TestGateway::start_with(Options {
        header_timeout_secs: Some(1),
        ..Options::default()
    })
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    stream
        .write_all(b"GET /sig/existing HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .await
        .expect("partial head");
    let started = std::time::Instant::now();
    // The gateway closes the connection (maybe after a 408): read until EOF.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        use tokio::io::AsyncReadExt;
        loop {
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "connection still open after 6 s with a 1 s header timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        buf.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
        "unexpected answer: {text}"
    );
    // The gateway still serves others.
    let s3 = gw.client();
    s3.list_buckets().send().await.expect("still serving");
    gw.shutdown().await;
}

#[tokio::test]
async fn entity_too_large_without_the_body() {
    let (gw, s3) = gateway_with_bucket().await;
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "sig/huge",
        &[(
            "content-length",
            (5u64 * 1024 * 1024 * 1024 + 1).to_string(),
        )],
        Payload::Unsigned,
        b"",
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("EntityTooLarge"));
    assert_missing(&s3, "sig", "huge").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_xml_bodies() {
    let (gw, s3) = gateway_with_bucket().await;
    for body in [
        &b"<Delete><Object><Key>existing</Key></Object>"[..],
        b"not xml at all",
        b"<Delete></Delete>",
    ] {
        let resp = signed_raw(
            &gw,
            &Signer::new(ADMIN),
            "POST",
            "sig?delete",
            &[("content-md5", md5_b64(body))],
            Payload::Bytes(body.to_vec()),
            body,
        )
        .await;
        assert_eq!(
            resp.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            resp.text()
        );
        assert_eq!(
            resp.code().as_deref(),
            Some("MalformedXML"),
            "{}",
            resp.text()
        );
    }
    assert_eq!(get(&s3, "sig", "existing").await, b"existing object");
    // CreateBucket with a malformed configuration.
    let body = b"<CreateBucketConfiguration><LocationConstraint>us-east-1";
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "new-bucket-xml",
        &[],
        Payload::Bytes(body.to_vec()),
        body,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.code().as_deref(),
        Some("MalformedXML"),
        "{}",
        resp.text()
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn unsupported_operations_are_not_implemented() {
    let (gw, s3) = gateway_with_bucket().await;
    for (method, path, body) in [
        ("GET", "sig?website", &b""[..]),
        (
            "PUT",
            "sig?notification",
            b"<NotificationConfiguration></NotificationConfiguration>",
        ),
        ("GET", "sig?logging", b""),
        ("GET", "sig?replication", b""),
        (
            "PUT",
            "sig?encryption",
            b"<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>",
        ),
        ("POST", "sig/mpu?restore", b""),
    ] {
        let resp = signed_raw(
            &gw,
            &Signer::new(ADMIN),
            method,
            path,
            &[("content-md5", md5_b64(body))],
            Payload::Bytes(body.to_vec()),
            body,
        )
        .await;
        assert_eq!(resp.status, 501, "{method} {path}: {}", resp.text());
        assert_eq!(
            resp.code().as_deref(),
            Some("NotImplemented"),
            "{method} {path}"
        );
        assert!(hansa_conformance::xml_text(&resp.text(), "RequestId").is_some());
    }
    // Nothing changed: versioning still off, object untouched.
    let v = s3
        .get_bucket_versioning()
        .bucket("sig")
        .send()
        .await
        .expect("versioning");
    assert_eq!(v.status(), None);
    assert_eq!(get(&s3, "sig", "existing").await, b"existing object");
    // The SDK sees the same error.
    assert_s3_err!(
        s3.get_bucket_website().bucket("sig").send().await,
        501,
        "NotImplemented"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn virtual_host_addressing() {
    let (gw, s3) = gateway_with_bucket().await;
    let host = format!("sig.{BASE_DOMAIN}:{}", gw.addr.port());
    // GET an object.
    let mut req = with_headers(
        raw::request("GET", &format!("http://{}/existing", gw.addr)),
        &[("host", host.clone())],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send(gw.addr, &head_bytes(&req), LIMIT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"existing object");

    // PUT an object with a nested key.
    let body = b"via virtual host".to_vec();
    let mut req = with_headers(
        raw::request("PUT", &format!("http://{}/vhost/nested%20key", gw.addr)),
        &[
            ("host", host.clone()),
            ("content-length", body.len().to_string()),
        ],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.clone()));
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(&body);
    let resp = send(gw.addr, &bytes, LIMIT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&s3, "sig", "vhost/nested key").await, body);

    // List the bucket.
    let mut req = with_headers(
        raw::request("GET", &format!("http://{}/?list-type=2", gw.addr)),
        &[("host", host.clone())],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send(gw.addr, &head_bytes(&req), LIMIT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let keys = hansa_conformance::xml_all(&resp.text(), "Key");
    assert_eq!(keys, vec!["existing", "vhost/nested key"]);

    // A missing bucket by virtual host.
    let mut req = with_headers(
        raw::request("GET", &format!("http://{}/k", gw.addr)),
        &[("host", format!("nobucket.{BASE_DOMAIN}:{}", gw.addr.port()))],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send(gw.addr, &head_bytes(&req), LIMIT).await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("NoSuchBucket"));
    gw.shutdown().await;
}

#[tokio::test]
async fn path_style_on_the_base_domain() {
    // A Host that is the bare base domain names no bucket: the path does.
    let (gw, _s3) = gateway_with_bucket().await;
    let mut req = with_headers(
        raw::request("GET", &format!("http://{}/sig/existing", gw.addr)),
        &[("host", format!("{BASE_DOMAIN}:{}", gw.addr.port()))],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    let resp = send(gw.addr, &head_bytes(&req), LIMIT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"existing object");
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_objects_with_a_foreign_root_element() {
    let (gw, s3) = gateway_with_bucket().await;
    let body = b"<Other><Object><Key>existing</Key></Object></Other>";
    let resp = signed_raw(
        &gw,
        &Signer::new(ADMIN),
        "POST",
        "sig?delete",
        &[("content-md5", md5_b64(body))],
        Payload::Bytes(body.to_vec()),
        body,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        resp.code().as_deref(),
        Some("MalformedXML"),
        "{}",
        resp.text()
    );
    assert_eq!(get(&s3, "sig", "existing").await, b"existing object");
    gw.shutdown().await;
}
