//! S3's behaviour in the corners: plain HTTP chunked uploads, ListBuckets paging, the
//! signature's date rules, reads of missing parts and unprintable keys, GetObjectAttributes,
//! and the error codes of digest failures.

use std::time::{Duration, SystemTime};

use hansa_conformance::raw::{self, head_bytes, send, send_chunked, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{assert_s3_err, create_bucket, get, put, TestGateway, ADMIN};

const LIMIT: Duration = Duration::from_secs(20);

/// A signed request for `path` with `headers`, ready to be sent raw.
fn signed(
    gw: &TestGateway,
    signer: &Signer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &Payload,
) -> http::Request<()> {
    let mut req = raw::request(method, &gw.url(path));
    for (name, value) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    signer.sign(&mut req, payload);
    req
}

async fn signed_raw(
    gw: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if method == "PUT" || method == "POST" {
        all.push(("content-length", &length));
    }
    let req = signed(
        gw,
        &Signer::new(ADMIN),
        method,
        path,
        &all,
        &Payload::Unsigned,
    );
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(body);
    send(gw.addr, &bytes, LIMIT).await
}

fn assert_error(resp: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(
        (resp.status, resp.code().as_deref()),
        (status, Some(code)),
        "{what}: {}",
        resp.text()
    );
}

async fn assert_absent(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    assert_s3_err!(
        s3.get_object().bucket(bucket).key(key).send().await,
        404,
        "NoSuchKey"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Plain HTTP chunked uploads

/// A PUT with `Transfer-Encoding: chunked` and no Content-Length (what Go's and Java's SDKs
/// send for a body of unknown length), streamed chunk by chunk, is stored whole, with an
/// unsigned payload and with a signed SHA-256; a wrong SHA-256 stores nothing. UploadPart of
/// unknown length is refused (MissingContentLength, 411).
#[tokio::test]
async fn plain_chunked_put_is_stored_whole() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "chunky").await;
    let data = hansa_conformance::random_bytes(300 * 1024 + 7);
    let pieces: Vec<&[u8]> = data.chunks(64 * 1024 + 3).collect();
    let te = [("transfer-encoding", "chunked")];

    for (key, payload) in [
        ("unsigned", Payload::Unsigned),
        ("sha256", Payload::Bytes(data.clone())),
    ] {
        let req = signed(
            &gw,
            &Signer::new(ADMIN),
            "PUT",
            &format!("chunky/{key}"),
            &te,
            &payload,
        );
        assert!(req.headers().get("content-length").is_none());
        let resp = send_chunked(gw.addr, &head_bytes(&req), &pieces, LIMIT).await;
        assert_eq!(resp.status, 200, "{key}: {}", resp.text());
        let etag = hansa_conformance::md5_hex(&data);
        assert_eq!(resp.header("etag"), Some(format!("\"{etag}\"").as_str()));
        assert_eq!(get(&s3, "chunky", key).await, data, "{key}");
        let head = s3
            .head_object()
            .bucket("chunky")
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(data.len() as i64));
    }

    // An empty chunked body is an empty object.
    let req = signed(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "chunky/empty",
        &te,
        &Payload::Unsigned,
    );
    let resp = send_chunked(gw.addr, &head_bytes(&req), &[], LIMIT).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(get(&s3, "chunky", "empty").await, b"");

    // The signed hash of other bytes: XAmzContentSHA256Mismatch, nothing stored.
    let req = signed(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "chunky/wrong-hash",
        &te,
        &Payload::Bytes(b"other bytes".to_vec()),
    );
    let resp = send_chunked(gw.addr, &head_bytes(&req), &pieces, LIMIT).await;
    assert_error(&resp, 400, "XAmzContentSHA256Mismatch", "wrong hash");
    assert_absent(&s3, "chunky", "wrong-hash").await;

    // A chunked Content-MD5 mismatch: BadDigest, nothing stored.
    let wrong_md5 = hansa_conformance::md5_b64(b"not the body");
    let req = signed(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "chunky/wrong-md5",
        &[
            ("transfer-encoding", "chunked"),
            ("content-md5", &wrong_md5),
        ],
        &Payload::Unsigned,
    );
    let resp = send_chunked(gw.addr, &head_bytes(&req), &pieces, LIMIT).await;
    assert_error(&resp, 400, "BadDigest", "wrong md5");
    assert_absent(&s3, "chunky", "wrong-md5").await;

    // UploadPart of unknown length: refused before any byte is stored.
    let upload = s3
        .create_multipart_upload()
        .bucket("chunky")
        .key("mp")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let req = signed(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        &format!("chunky/mp?partNumber=1&uploadId={upload_id}"),
        &te,
        &Payload::Unsigned,
    );
    let resp = send_chunked(gw.addr, &head_bytes(&req), &pieces, LIMIT).await;
    assert_error(&resp, 411, "MissingContentLength", "chunked part");
    let parts = s3
        .list_parts()
        .bucket("chunky")
        .key("mp")
        .upload_id(upload_id)
        .send()
        .await
        .expect("list parts");
    assert!(parts.parts().is_empty());
    gw.shutdown().await;
}
