//! POST object: browser form uploads (`POST /bucket`, multipart/form-data), sent by curl as a
//! browser would and by headless Chromium submitting a real HTML form. The form's policy is
//! made and signed here as a web application's server would (SigV4 and SigV2).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::types::{BucketCannedAcl, CorsConfiguration, CorsRule};
use hansa_conformance::browser::Browser;
use hansa_conformance::post_form::{v2_fields, v4_fields, v4_fields_with_secret};
use hansa_conformance::sign::crc32_b64;
use hansa_conformance::{
    create_bucket, get, md5_hex, xml_text, TestGateway, ADMIN, BASE_DOMAIN, LIMITED, READER,
};
use serde_json::{json, Value};

struct Posted {
    status: u16,
    /// Response headers, names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Posted {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> String {
        xml_text(&self.body, "Code").unwrap_or_default()
    }

    fn message(&self) -> String {
        xml_text(&self.body, "Message").unwrap_or_default()
    }
}

/// Posts the form with curl: `fields` in order as plain form fields, then the file (if any).
async fn curl_post(url: &str, fields: &[(String, String)], file: Option<(&str, &[u8])>) -> Posted {
    curl_post_then(url, fields, file, &[], &[]).await
}

/// As [`curl_post`], with `after` sent after the file and extra request `headers`.
async fn curl_post_then(
    url: &str,
    fields: &[(String, String)],
    file: Option<(&str, &[u8])>,
    after: &[(String, String)],
    headers: &[String],
) -> Posted {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let mut cmd = tokio::process::Command::new("curl");
    cmd.arg("-sS")
        .arg("-o")
        .arg(&body)
        .arg("-D")
        .arg(&head)
        .arg("-w")
        .arg("%{http_code}");
    for (name, value) in fields {
        cmd.arg("--form-string").arg(format!("{name}={value}"));
    }
    if let Some((filename, bytes)) = file {
        let path = dir.path().join("upload");
        std::fs::write(&path, bytes).unwrap();
        cmd.arg("-F").arg(format!(
            "file=@{};filename={filename};type=application/octet-stream",
            path.display()
        ));
    }
    for (name, value) in after {
        cmd.arg("--form-string").arg(format!("{name}={value}"));
    }
    for header in headers {
        cmd.arg("-H").arg(header);
    }
    cmd.arg(url).kill_on_drop(true);
    let out = cmd.output().await.expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let headers = std::fs::read_to_string(&head)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Posted {
        status,
        headers,
        body: std::fs::read_to_string(&body).unwrap_or_default(),
    }
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

fn field(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// A V4-signed form: `plain` fields first (each covered by an exact condition), then the
/// signature fields, with `extra` conditions.
fn signed_form(bucket: &str, plain: &[(&str, &str)], extra: &[Value]) -> Vec<(String, String)> {
    let mut conditions = vec![json!({ "bucket": bucket })];
    conditions.extend(plain.iter().map(|(n, v)| json!({ *n: *v })));
    conditions.extend(extra.iter().cloned());
    let mut fields: Vec<_> = plain.iter().map(|(n, v)| field(n, v)).collect();
    fields.extend(v4_fields(ADMIN, SystemTime::now(), later(), &conditions));
    fields
}

async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn signed_forms_store_the_file_with_its_fields_and_answer_as_asked() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let b = "forms";
    create_bucket(&s3, b).await;
    let url = gw.url(b);
    let data = b"hello from a form\n".to_vec();

    // 201: the PostResponse document; the key's ${filename} is the file's name.
    let mut form = signed_form(
        b,
        &[
            ("Content-Type", "text/plain"),
            ("x-amz-meta-color", "blue"),
            ("Cache-Control", "no-cache"),
            ("success_action_status", "201"),
        ],
        &[
            json!(["starts-with", "$key", "uploads/"]),
            json!(["content-length-range", 1, 1024]),
        ],
    );
    form.insert(0, field("key", "uploads/${filename}"));
    let r = curl_post(&url, &form, Some(("hello.txt", &data))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let etag = format!("\"{}\"", md5_hex(&data));
    assert_eq!(xml_text(&r.body, "Bucket").as_deref(), Some(b));
    assert_eq!(
        xml_text(&r.body, "Key").as_deref(),
        Some("uploads/hello.txt")
    );
    assert_eq!(
        xml_text(&r.body, "ETag").map(|e| e.replace("&quot;", "\"")),
        Some(etag.clone())
    );
    assert_eq!(
        xml_text(&r.body, "Location"),
        Some(gw.url("forms/uploads/hello.txt"))
    );
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let got = s3
        .get_object()
        .bucket(b)
        .key("uploads/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.cache_control(), Some("no-cache"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &data[..]
    );

    // A redirect: 303 to the page with bucket, key and ETag in its query.
    let mut form = signed_form(
        b,
        &[
            ("key", "redirected.bin"),
            ("success_action_redirect", "http://app.test/done?from=form"),
        ],
        &[],
    );
    form.push(field("x-ignore-note", "not in the policy"));
    let r = curl_post(&url, &form, Some(("r.bin", b"abc"))).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "http://app.test/done?from=form&bucket=forms&key=redirected.bin&etag=%22{}%22",
                md5_hex(b"abc")
            )
            .as_str()
        )
    );
    assert_eq!(get(&s3, b, "redirected.bin").await, b"abc");

    // No success_action_status: 204; field names in any case; fields after the file ignored.
    let form = signed_form(b, &[("Key", "default.bin")], &[]);
    let after = [field("not-in-policy", "ignored after the file")];
    let r = curl_post_then(&url, &form, Some(("d.bin", b"12345")), &after, &[]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(&s3, b, "default.bin").await, b"12345");

    // An x-amz-checksum-* field is checked against the file and answered, as on PutObject.
    let sum = crc32_b64(b"checked");
    let form = signed_form(b, &[("key", "summed"), ("x-amz-checksum-crc32", &sum)], &[]);
    let r = curl_post(&url, &form, Some(("s", b"checked"))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.header("x-amz-checksum-crc32"), Some(sum.as_str()));
    let form = signed_form(
        b,
        &[("key", "missummed"), ("x-amz-checksum-crc32", &sum)],
        &[],
    );
    let r = curl_post(&url, &form, Some(("s", b"other bytes"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "BadDigest"),
        "{}",
        r.body
    );
    assert!(!exists(&s3, b, "missummed").await);

    // A repeated field counts with the value the policy checked, its first.
    let mut form = signed_form(
        b,
        &[("key", "repeated"), ("Content-Type", "text/plain")],
        &[],
    );
    form.insert(2, field("content-type", "text/html"));
    let r = curl_post(&url, &form, Some(("x", b"<p>"))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = s3
        .head_object()
        .bucket(b)
        .key("repeated")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));

    // Virtual-host style: POST / on the bucket's host name.
    let form = signed_form(b, &[("key", "virtual.bin")], &[]);
    let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let host = format!("Host: {b}.{BASE_DOMAIN}:{port}");
    let r = curl_post_then(&gw.url(""), &form, Some(("v", b"vh")), &[], &[host]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{b}.{BASE_DOMAIN}:{port}/virtual.bin").as_str())
    );
    assert_eq!(get(&s3, b, "virtual.bin").await, b"vh");

    // A cross-origin answer carries the bucket's CORS headers, as every answer does.
    s3.put_bucket_cors()
        .bucket(b)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(
                    CorsRule::builder()
                        .allowed_origins("http://app.test")
                        .allowed_methods("POST")
                        .expose_headers("ETag")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let form = signed_form(b, &[("key", "cors.bin")], &[]);
    let origin = ["Origin: http://app.test".to_string()];
    let r = curl_post_then(&url, &form, Some(("c", b"c")), &[], &origin).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));

    // SigV2: AWSAccessKeyId and a base64 HMAC-SHA1 of the policy.
    let mut form = vec![field("key", "v2.bin")];
    form.extend(v2_fields(
        ADMIN,
        later(),
        &[json!({ "bucket": b }), json!(["eq", "$key", "v2.bin"])],
    ));
    let r = curl_post(&url, &form, Some(("v2.bin", b"signed v2"))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(&s3, b, "v2.bin").await, b"signed v2");
    gw.shutdown().await;
}

#[tokio::test]
async fn forms_the_policy_or_signature_refuse_store_nothing() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let b = "refusals";
    create_bucket(&s3, b).await;
    let url = gw.url(b);
    let key_field = |k: &str| field("key", k);

    // Expired policy.
    let mut form = vec![key_field("expired")];
    form.extend(v4_fields(
        ADMIN,
        SystemTime::now(),
        SystemTime::now() - Duration::from_secs(60),
        &[json!({ "bucket": b }), json!({ "key": "expired" })],
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert_eq!(r.message(), "Invalid according to Policy: Policy expired.");

    // A starts-with condition the key fails.
    let mut form = vec![key_field("elsewhere/k")];
    form.extend(signed_form(
        b,
        &[],
        &[json!(["starts-with", "$key", "user/"])],
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert_eq!(
        r.message(),
        r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/"]"#
    );

    // A field no condition names.
    let mut form = signed_form(b, &[("key", "extra")], &[]);
    form.insert(1, field("x-amz-meta-sneaky", "1"));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert_eq!(
        r.message(),
        "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"
    );

    // A policy for another bucket, even with a form field claiming that bucket.
    let mut form = vec![key_field("other-bucket"), field("bucket", "elsewhere")];
    form.extend(v4_fields(
        ADMIN,
        SystemTime::now(),
        later(),
        &[
            json!({ "bucket": "elsewhere" }),
            json!({ "key": "other-bucket" }),
        ],
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert!(
        r.message().contains(r#"["eq", "$bucket", "elsewhere"]"#),
        "{}",
        r.body
    );

    // Fields before the file beyond S3's 20 KB.
    let mut form = signed_form(b, &[("key", "padded")], &[]);
    form.insert(0, field("x-ignore-pad", &"p".repeat(21 * 1024)));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MaxPostPreDataLengthExceededError"),
        "{}",
        r.body
    );

    // Over the content-length-range: EntityTooLarge, nothing stored; under it: EntityTooSmall.
    let form = signed_form(
        b,
        &[("key", "big")],
        &[json!(["content-length-range", 1, 10])],
    );
    let r = curl_post(&url, &form, Some(("f", &[7u8; 100]))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "EntityTooLarge"),
        "{}",
        r.body
    );
    let form = signed_form(
        b,
        &[("key", "small")],
        &[json!(["content-length-range", 10, 20])],
    );
    let r = curl_post(&url, &form, Some(("f", b"tiny"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "EntityTooSmall"),
        "{}",
        r.body
    );

    // A signature made with the wrong secret; an access key the gateway does not know.
    let conditions = [json!({ "bucket": b }), json!({ "key": "forged" })];
    let mut form = vec![key_field("forged")];
    form.extend(v4_fields_with_secret(
        ADMIN.access_key_id,
        "not-the-secret",
        SystemTime::now(),
        later(),
        &conditions,
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "SignatureDoesNotMatch"),
        "{}",
        r.body
    );
    let mut form = vec![key_field("forged")];
    form.extend(v4_fields_with_secret(
        "NOSUCHKEY",
        "x",
        SystemTime::now(),
        later(),
        &conditions,
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "InvalidAccessKeyId"),
        "{}",
        r.body
    );

    // A valid signature by a read-only key: refused as its PutObject would be.
    let mut form = vec![key_field("reader")];
    form.extend(v4_fields(
        READER,
        SystemTime::now(),
        later(),
        &[json!({ "bucket": b }), json!({ "key": "reader" })],
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );

    // A key scoped to another bucket: refused as its PutObject would be.
    let mut form = vec![key_field("limited")];
    form.extend(v4_fields(
        LIMITED,
        SystemTime::now(),
        later(),
        &[json!({ "bucket": b }), json!({ "key": "limited" })],
    ));
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );

    // A signature without its policy; a form without a file; a body that is not a form.
    let form = vec![
        key_field("nopolicy"),
        field("AWSAccessKeyId", ADMIN.access_key_id),
        field("signature", "c2ln"),
    ];
    let r = curl_post(&url, &form, Some(("f", b"x"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "InvalidArgument"),
        "{}",
        r.body
    );
    let form = signed_form(b, &[("key", "nofile")], &[]);
    let r = curl_post(&url, &form, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "InvalidArgument"),
        "{}",
        r.body
    );
    assert_eq!(
        r.message(),
        "POST requires exactly one file upload per request."
    );
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "text/plain")
        .body("key=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 412);
    assert!(r.text().await.unwrap().contains("multipart/form-data"));

    for key in [
        "expired",
        "elsewhere/k",
        "extra",
        "big",
        "small",
        "forged",
        "reader",
        "nopolicy",
        "nofile",
        "other-bucket",
        "padded",
        "limited",
    ] {
        assert!(!exists(&s3, b, key).await, "{key} was stored");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn anonymous_forms_need_a_bucket_acl_or_policy_that_grants_write() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "private-forms").await;
    create_bucket(&s3, "open-forms").await;
    s3.put_bucket_acl()
        .bucket("open-forms")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap();
    let form = vec![
        field("key", "anon.txt"),
        field("Content-Type", "text/plain"),
    ];

    let r = curl_post(&gw.url("private-forms"), &form, Some(("a", b"anon"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert!(!exists(&s3, "private-forms", "anon.txt").await);

    // A bucket policy that lets anyone put under public/: the form's key decides.
    create_bucket(&s3, "policy-forms").await;
    let doc = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::policy-forms/public/*"
        }]
    });
    s3.put_bucket_policy()
        .bucket("policy-forms")
        .policy(doc.to_string())
        .send()
        .await
        .unwrap();
    let url = gw.url("policy-forms");
    let r = curl_post(
        &url,
        &[field("key", "public/${filename}")],
        Some(("p.txt", b"p")),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(&s3, "policy-forms", "public/p.txt").await, b"p");
    let r = curl_post(
        &url,
        &[field("key", "private/p.txt")],
        Some(("p.txt", b"p")),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        r.body
    );
    assert!(!exists(&s3, "policy-forms", "private/p.txt").await);

    let r = curl_post(&gw.url("open-forms"), &form, Some(("a", b"anon"))).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = s3
        .get_object()
        .bucket("open-forms")
        .key("anon.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"anon"
    );

    // The acl field sets the object's ACL: public-read lets anyone read it, private not.
    for (key, acl, status) in [
        ("shared.txt", "public-read", 200),
        ("mine.txt", "private", 403),
    ] {
        let form = [field("key", key), field("acl", acl)];
        let r = curl_post(&gw.url("open-forms"), &form, Some(("a", b"acl"))).await;
        assert_eq!(r.status, 204, "{}", r.body);
        let read = reqwest::get(gw.url(&format!("open-forms/{key}")))
            .await
            .unwrap();
        assert_eq!(read.status().as_u16(), status, "{acl}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_browser_submits_an_html_form_upload() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let b = "browser-forms";
    create_bucket(&s3, b).await;
    let redirect = "http://app.test/uploaded";
    // The policy's conditions see the key with ${filename} replaced, as it is stored.
    let mut good = vec![field("key", "pages/${filename}")];
    good.extend(signed_form(
        b,
        &[
            ("Content-Type", "text/plain"),
            ("success_action_redirect", redirect),
        ],
        &[json!(["starts-with", "$key", "pages/"])],
    ));
    // The policy wants keys under user/: the form's key fails it.
    let mut bad = vec![field("key", "pages/${filename}")];
    bad.extend(signed_form(
        b,
        &[],
        &[json!(["starts-with", "$key", "user/"])],
    ));
    let as_json = |f: &[(String, String)]| {
        Value::Array(f.iter().map(|(n, v)| json!([n, v])).collect()).to_string()
    };
    let report = browser
        .run(
            "post_form.cjs",
            &[
                ("ACTION", gw.url(b)),
                ("GOOD", as_json(&good)),
                ("BAD", as_json(&bad)),
                ("FILE", "page upload\n".to_string()),
            ],
            Duration::from_secs(90),
        )
        .await;

    let good = &report["good"];
    assert_eq!(good["bucket"], b, "{report:#}");
    assert_eq!(good["key"], "pages/note.txt", "{report:#}");
    assert_eq!(
        good["etag"],
        format!("\"{}\"", md5_hex(b"page upload\n")),
        "{report:#}"
    );
    assert_eq!(get(&s3, b, "pages/note.txt").await, b"page upload\n");
    let bad = &report["bad"];
    assert_eq!(bad["status"], 403, "{report:#}");
    let text = bad["text"].as_str().unwrap_or_default();
    assert!(text.contains("AccessDenied"), "{report:#}");
    assert!(text.contains("Policy Condition failed"), "{report:#}");
    assert_eq!(
        s3.list_objects_v2()
            .bucket(b)
            .send()
            .await
            .unwrap()
            .key_count(),
        Some(1)
    );
    gw.shutdown().await;
}
