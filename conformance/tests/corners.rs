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

// ---------------------------------------------------------------------------------------------
// 2. ListBuckets paging

/// `max-buckets` pages in name order with a ContinuationToken while more follow; the SDK's
/// paginator walks every page; `prefix` filters and is echoed; `bucket-region` filters;
/// invalid values are InvalidArgument.
#[tokio::test]
async fn list_buckets_pages() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let names = ["pg-a", "pg-b", "pg-c", "pg-d", "pg-e", "zz-other"];
    for name in names {
        create_bucket(&s3, name).await;
    }

    let first = s3
        .list_buckets()
        .max_buckets(2)
        .send()
        .await
        .expect("page 1");
    let listed: Vec<&str> = first.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, ["pg-a", "pg-b"]);
    assert_eq!(first.buckets()[0].bucket_region(), Some("us-east-1"));
    let token = first
        .continuation_token()
        .expect("a token while more follow");
    let second = s3
        .list_buckets()
        .max_buckets(3)
        .continuation_token(token)
        .send()
        .await
        .expect("page 2");
    let listed: Vec<&str> = second.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, ["pg-c", "pg-d", "pg-e"]);

    let pages: Vec<_> = s3
        .list_buckets()
        .max_buckets(2)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pages.len(), 3, "6 buckets in pages of 2");
    let mut walked = Vec::new();
    for page in pages {
        let page = page.expect("page");
        walked.extend(
            page.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
    }
    assert_eq!(walked, names);

    let all = s3.list_buckets().send().await.expect("all");
    assert_eq!(all.buckets().len(), 6);
    assert_eq!(all.continuation_token(), None, "the last page has no token");
    assert_eq!(all.prefix(), None);

    let prefixed = s3
        .list_buckets()
        .prefix("pg-")
        .max_buckets(4)
        .send()
        .await
        .expect("prefix");
    assert_eq!(prefixed.prefix(), Some("pg-"));
    assert_eq!(prefixed.buckets().len(), 4);
    let rest = s3
        .list_buckets()
        .prefix("pg-")
        .continuation_token(prefixed.continuation_token().expect("token"))
        .send()
        .await
        .expect("prefix page 2");
    let listed: Vec<&str> = rest.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, ["pg-e"]);
    assert_eq!(rest.continuation_token(), None);

    let here = s3
        .list_buckets()
        .bucket_region("us-east-1")
        .send()
        .await
        .expect("region");
    assert_eq!(here.buckets().len(), 6);
    let elsewhere = s3
        .list_buckets()
        .bucket_region("eu-west-1")
        .send()
        .await
        .expect("other region");
    assert!(elsewhere.buckets().is_empty());

    for query in [
        "?max-buckets=0",
        "?max-buckets=10001",
        "?max-buckets=ten",
        "?continuation-token=%25%25",
    ] {
        let resp = signed_raw(&gw, "GET", query, &[], b"").await;
        assert_error(&resp, 400, "InvalidArgument", query);
    }
    let resp = signed_raw(&gw, "GET", "?max-buckets=10000&prefix=zz", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<Prefix>zz</Prefix>"),
        "{}",
        resp.text()
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Signature dates

/// With both `Date` and `x-amz-date`, SigV4 takes the request's time from `x-amz-date`: a
/// stale `Date` next to a current `x-amz-date` is accepted, a current `Date` does not save a
/// stale `x-amz-date` (RequestTimeTooSkewed).
#[tokio::test]
async fn x_amz_date_wins_over_date() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "dates").await;
    let http_date = |t: SystemTime| httpdate(t);
    let now = SystemTime::now();
    let hour_ago = now - Duration::from_secs(3600);

    for (what, signed_at, date_header, expected) in [
        (
            "stale Date, current x-amz-date",
            now,
            http_date(hour_ago),
            200,
        ),
        (
            "current Date, stale x-amz-date",
            hour_ago,
            http_date(now),
            403,
        ),
        (
            "ancient Date, current x-amz-date",
            now,
            "Fri, 24 May 2013 00:00:00 GMT".to_string(),
            200,
        ),
    ] {
        let signer = Signer::new(ADMIN).time(signed_at);
        let req = signed(
            &gw,
            &signer,
            "GET",
            "dates?list-type=2",
            &[("date", &date_header)],
            &Payload::Unsigned,
        );
        assert!(req.headers().contains_key("x-amz-date"));
        let resp = send(gw.addr, &head_bytes(&req), LIMIT).await;
        if expected == 200 {
            assert_eq!(resp.status, 200, "{what}: {}", resp.text());
        } else {
            assert_error(&resp, 403, "RequestTimeTooSkewed", what);
        }
    }
    gw.shutdown().await;
}

fn httpdate(t: SystemTime) -> String {
    // RFC 7231 IMF-fixdate, as HTTP clients write Date.
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from(t)
        .format(&format)
        .expect("format date")
}

// ---------------------------------------------------------------------------------------------
// 4. Missing parts, unprintable keys

/// GET and HEAD with a `partNumber` the object does not have: 416 InvalidPartNumber (HEAD
/// without a body); part 1 of a single-part object is the whole object.
#[tokio::test]
async fn reads_of_missing_parts() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "parts").await;
    put(&s3, "parts", "plain", b"single piece").await;

    let whole = s3
        .get_object()
        .bucket("parts")
        .key("plain")
        .part_number(1)
        .send()
        .await
        .expect("part 1 of a plain object");
    assert_eq!(
        whole
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"single piece"
    );
    assert_s3_err!(
        s3.get_object()
            .bucket("parts")
            .key("plain")
            .part_number(2)
            .send()
            .await,
        416,
        "InvalidPartNumber"
    );
    hansa_conformance::assert_s3_status!(
        s3.head_object()
            .bucket("parts")
            .key("plain")
            .part_number(2)
            .send()
            .await,
        416
    );
    let resp = signed_raw(&gw, "GET", "parts/plain?partNumber=2", &[], b"").await;
    assert_error(&resp, 416, "InvalidPartNumber", "raw GET part 2");
    assert!(
        resp.text()
            .contains("The requested partnumber is not satisfiable"),
        "{}",
        resp.text()
    );
    let resp = signed_raw(&gw, "GET", "parts/plain?partNumber=0", &[], b"").await;
    assert_error(&resp, 400, "InvalidArgument", "part 0");

    // A two-part object: part 3 does not exist.
    let first = vec![b'a'; 5 << 20];
    let upload = s3
        .create_multipart_upload()
        .bucket("parts")
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = upload.upload_id().expect("id");
    let mut done = Vec::new();
    for (n, body) in [(1, first.clone()), (2, b"tail".to_vec())] {
        let part = s3
            .upload_part()
            .bucket("parts")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(body.into())
            .send()
            .await
            .expect("part");
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("parts")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let second = s3
        .get_object()
        .bucket("parts")
        .key("mp")
        .part_number(2)
        .send()
        .await
        .expect("part 2");
    assert_eq!(second.parts_count(), Some(2));
    assert_eq!(
        second
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"tail"
    );
    assert_s3_err!(
        s3.get_object()
            .bucket("parts")
            .key("mp")
            .part_number(3)
            .send()
            .await,
        416,
        "InvalidPartNumber"
    );
    hansa_conformance::assert_s3_status!(
        s3.head_object()
            .bucket("parts")
            .key("mp")
            .part_number(3)
            .send()
            .await,
        416
    );
    gw.shutdown().await;
}

/// Keys holding control characters (U+0001, U+001F, DEL, a carriage return, NUL sent as
/// `%00`) are keys like any other: stored, read, listed and deleted. Listings write the
/// control characters as character references (`&#x1;`) as S3 does, or percent-encode them
/// with `encoding-type=url`.
#[tokio::test]
async fn unprintable_keys_round_trip() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "ctl").await;
    let keys = ["a\u{1}b", "c\u{1f}d", "e\u{7f}f", "g\rh", "i\0j"];
    for key in keys {
        put(&s3, "ctl", key, key.as_bytes()).await;
        assert_eq!(get(&s3, "ctl", key).await, key.as_bytes(), "{key:?}");
    }
    // NUL on the wire, percent-encoded in the path.
    let resp = signed_raw(&gw, "GET", "ctl/i%00j", &[], b"").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"i\0j");

    let resp = signed_raw(&gw, "GET", "ctl?list-type=2", &[], b"").await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    for escaped in ["a&#x1;b", "c&#x1F;d", "e\u{7f}f", "g&#xD;h", "i&#x0;j"] {
        assert!(
            text.contains(&format!("<Key>{escaped}</Key>")),
            "{escaped:?} in {text}"
        );
    }
    assert!(!text.contains('\u{1}') && !text.contains('\r'), "{text:?}");

    let resp = signed_raw(&gw, "GET", "ctl?list-type=2&encoding-type=url", &[], b"").await;
    let text = resp.text();
    for encoded in ["a%01b", "c%1Fd", "e%7Ff", "g%0Dh", "i%00j"] {
        assert!(
            text.contains(&format!("<Key>{encoded}</Key>")),
            "{encoded} in {text}"
        );
    }
    let listed = s3
        .list_objects_v2()
        .bucket("ctl")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(5));

    for key in keys {
        s3.delete_object()
            .bucket("ctl")
            .key(key)
            .send()
            .await
            .expect("delete");
        assert_absent(&s3, "ctl", key).await;
    }
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 5. GetObjectAttributes

/// GetObjectAttributes answers only the attributes asked for, pages an object's parts with
/// `x-amz-max-parts` / `x-amz-part-number-marker`, carries Last-Modified, and refuses what S3
/// refuses.
#[tokio::test]
async fn get_object_attributes() {
    use aws_sdk_s3::types::ObjectAttributes as A;
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "attrs").await;
    let data = b"attribute test body";
    s3.put_object()
        .bucket("attrs")
        .key("plain")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .body(data.to_vec().into())
        .send()
        .await
        .expect("put");

    let all = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("plain")
        .object_attributes(A::Etag)
        .object_attributes(A::Checksum)
        .object_attributes(A::ObjectParts)
        .object_attributes(A::StorageClass)
        .object_attributes(A::ObjectSize)
        .send()
        .await
        .expect("attributes");
    assert_eq!(all.e_tag(), Some(hansa_conformance::md5_hex(data).as_str()));
    assert_eq!(all.object_size(), Some(data.len() as i64));
    assert_eq!(
        all.storage_class(),
        Some(&aws_sdk_s3::types::StorageClass::Standard)
    );
    let checksum = all.checksum().expect("checksum");
    assert_eq!(
        checksum.checksum_crc32(),
        Some(hansa_conformance::sign::crc32_b64(data).as_str())
    );
    assert!(
        all.object_parts().is_none(),
        "a single-part object has no parts"
    );
    assert!(all.last_modified().is_some());

    // Only what was asked for.
    let resp = signed_raw(
        &gw,
        "GET",
        "attrs/plain?attributes",
        &[("x-amz-object-attributes", "ObjectSize")],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("last-modified").is_some());
    let text = resp.text();
    assert!(text.contains("<GetObjectAttributesResponse"), "{text}");
    assert!(
        text.contains(&format!("<ObjectSize>{}</ObjectSize>", data.len())),
        "{text}"
    );
    for absent in ["ETag", "Checksum", "StorageClass", "ObjectParts"] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }

    // A two-part object, paged one part at a time.
    let first = vec![b'p'; 5 << 20];
    let upload = s3
        .create_multipart_upload()
        .bucket("attrs")
        .key("mp")
        .send()
        .await
        .expect("create");
    let id = upload.upload_id().expect("id");
    let mut done = Vec::new();
    for (n, body) in [(1, first.clone()), (2, b"end".to_vec())] {
        let part = s3
            .upload_part()
            .bucket("attrs")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(body.into())
            .send()
            .await
            .expect("part");
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("attrs")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let page = |marker: Option<&str>| {
        s3.get_object_attributes()
            .bucket("attrs")
            .key("mp")
            .object_attributes(A::ObjectParts)
            .max_parts(1)
            .set_part_number_marker(marker.map(str::to_string))
            .send()
    };
    let one = page(None).await.expect("page 1");
    let parts = one.object_parts().expect("parts");
    assert_eq!(parts.total_parts_count(), Some(2));
    assert_eq!(parts.max_parts(), Some(1));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.next_part_number_marker(), Some("1"));
    let listed: Vec<(Option<i32>, Option<i64>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(listed, [(Some(1), Some(5 << 20))]);
    assert!(one.e_tag().is_none(), "only ObjectParts was asked for");
    let two = page(Some("1")).await.expect("page 2");
    let parts = two.object_parts().expect("parts");
    assert_eq!(parts.is_truncated(), Some(false));
    let listed: Vec<(Option<i32>, Option<i64>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(listed, [(Some(2), Some(3))]);

    // versionId "null" is the object's only version; conditions are not for this operation.
    let resp = signed_raw(
        &gw,
        "GET",
        "attrs/plain?attributes&versionId=null",
        &[
            ("x-amz-object-attributes", "ETag"),
            ("if-match", "\"nope\""),
        ],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let attrs = ("x-amz-object-attributes", "ETag");
    for (what, path, headers, status, code) in [
        (
            "no attributes header",
            "attrs/plain?attributes",
            vec![],
            400,
            "InvalidArgument",
        ),
        (
            "unknown attribute",
            "attrs/plain?attributes",
            vec![("x-amz-object-attributes", "ETag,Colour")],
            400,
            "InvalidArgument",
        ),
        (
            "missing key",
            "attrs/nothing?attributes",
            vec![attrs],
            404,
            "NoSuchKey",
        ),
        (
            "missing bucket",
            "nobucket/k?attributes",
            vec![attrs],
            404,
            "NoSuchBucket",
        ),
        (
            "unknown version",
            "attrs/plain?attributes&versionId=3HL4kqtJlcpXroDTDmJ",
            vec![attrs],
            400,
            "InvalidArgument",
        ),
        (
            "bad max-parts",
            "attrs/mp?attributes",
            vec![
                ("x-amz-object-attributes", "ObjectParts"),
                ("x-amz-max-parts", "-1"),
            ],
            400,
            "InvalidArgument",
        ),
        (
            "SSE-C key for an object without one",
            "attrs/plain?attributes",
            vec![
                attrs,
                ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ],
            400,
            "InvalidRequest",
        ),
    ] {
        let resp = signed_raw(&gw, "GET", path, &headers, b"").await;
        assert_error(&resp, status, code, what);
    }
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Digest errors

/// Each way a body's digest can be wrong gets S3's own code, and stores nothing.
#[tokio::test]
async fn digest_errors_use_s3_codes() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "digests").await;
    let body = b"digest body";
    let other_md5 = hansa_conformance::md5_b64(b"something else");
    let other_crc = hansa_conformance::sign::crc32_b64(b"something else");
    for (key, headers, code, message) in [
        (
            "md5-malformed",
            vec![("content-md5", "not base64!")],
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        ),
        (
            "md5-short",
            vec![("content-md5", "AAAA")],
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        ),
        (
            "md5-mismatch",
            vec![("content-md5", other_md5.as_str())],
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        ),
        (
            "crc-mismatch",
            vec![("x-amz-checksum-crc32", other_crc.as_str())],
            "BadDigest",
            "The CRC32 you specified did not match the calculated checksum.",
        ),
        (
            "crc-malformed",
            vec![("x-amz-checksum-crc32", "!!")],
            "InvalidRequest",
            "Value for x-amz-checksum-crc32 header is invalid.",
        ),
    ] {
        let resp = signed_raw(&gw, "PUT", &format!("digests/{key}"), &headers, body).await;
        assert_error(&resp, 400, code, key);
        assert!(resp.text().contains(message), "{key}: {}", resp.text());
        assert_absent(&s3, "digests", key).await;
    }

    let length = body.len().to_string();
    let req = signed(
        &gw,
        &Signer::new(ADMIN),
        "PUT",
        "digests/sha-mismatch",
        &[("content-length", &length)],
        &Payload::Bytes(b"not the body".to_vec()),
    );
    let mut bytes = head_bytes(&req);
    bytes.extend_from_slice(body);
    let resp = send(gw.addr, &bytes, LIMIT).await;
    assert_error(&resp, 400, "XAmzContentSHA256Mismatch", "sha mismatch");
    assert_absent(&s3, "digests", "sha-mismatch").await;

    // The SDK's own checksum errors come back with the same code.
    assert_s3_err!(
        s3.put_object()
            .bucket("digests")
            .key("sdk-md5")
            .content_md5(other_md5.as_str())
            .body(body.to_vec().into())
            .send()
            .await,
        400,
        "BadDigest"
    );
    gw.shutdown().await;
}
