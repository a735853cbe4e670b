//! Bucket CORS: Put/Get/DeleteBucketCors with aws-sdk-s3 and their errors, preflights
//! (`OPTIONS`, unauthenticated) answered from the rules, CORS headers on cross-origin answers,
//! and a real browser (headless Chromium) uploading and reading across origins.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use hansa_conformance::browser::Browser;
use hansa_conformance::raw::{self, send_reqwest, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    assert_s3_err, create_bucket, get, md5_b64, put, xml_text, TestGateway, ADMIN, BASE_DOMAIN,
    LIMITED, READER,
};

const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    b
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .expect("cors configuration")
}

/// The rules most tests use: the app's origin may read and upload with its own headers and
/// read the ETag; everyone may read.
fn app_rules() -> CorsConfiguration {
    config(vec![
        rule(&["http://app.test"], &["GET", "PUT"])
            .id("app")
            .allowed_headers("x-app-*")
            .allowed_headers("Content-Type")
            .expose_headers("ETag")
            .max_age_seconds(600)
            .build()
            .expect("rule"),
        rule(&["*"], &["GET"]).build().expect("rule"),
    ])
}

async fn put_cors(s3: &aws_sdk_s3::Client, bucket: &str, cors: CorsConfiguration) {
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(cors)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put bucket cors on {bucket}: {e:?}"));
}

/// A PutBucketCors with a hand-made body, signed by `key` (or not at all), with Content-MD5
/// when `md5`.
async fn raw_put_cors(
    gw: &TestGateway,
    key: Option<hansa_conformance::Key>,
    bucket: &str,
    body: &str,
    md5: bool,
) -> Response {
    let mut req = raw::request("PUT", &gw.url(&format!("{bucket}?cors")));
    if md5 {
        req.headers_mut()
            .insert("content-md5", md5_b64(body.as_bytes()).parse().unwrap());
    }
    if let Some(key) = key {
        Signer::new(key).sign(&mut req, &Payload::Bytes(body.as_bytes().to_vec()));
    }
    send_reqwest(req, body.as_bytes().to_vec()).await
}

/// A request sent as bytes, with `headers` (a `host` among them overrides the default).
async fn raw_request(
    gw: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut req = raw::request(method, &gw.url(path));
    for (name, value) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    raw::send(gw.addr, &raw::head_bytes(&req), Duration::from_secs(10)).await
}

async fn preflight(
    gw: &TestGateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Response {
    let mut h = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(v) = headers {
        h.push(("access-control-request-headers", v));
    }
    raw_request(gw, "OPTIONS", path, &h).await
}

fn assert_forbidden(r: &Response, message: &str, method: &str, resource_type: &str) {
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("AccessForbidden"), "{}", r.text());
    let text = r.text();
    assert_eq!(xml_text(&text, "Message").as_deref(), Some(message));
    assert_eq!(xml_text(&text, "Method").as_deref(), Some(method));
    assert_eq!(
        xml_text(&text, "ResourceType").as_deref(),
        Some(resource_type)
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_cors_round_trip_and_errors() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "site").await;

    let e = assert_s3_err!(
        s3.get_bucket_cors().bucket("site").send().await,
        404,
        "NoSuchCORSConfiguration"
    );
    assert_eq!(
        e.message.as_deref(),
        Some("The CORS configuration does not exist")
    );

    put_cors(&s3, "site", app_rules()).await;
    let got = s3.get_bucket_cors().bucket("site").send().await.unwrap();
    assert_eq!(got.cors_rules(), app_rules().cors_rules());

    // Refused documents leave the configuration as it was.
    let bad_method = config(vec![rule(&["*"], &["GET", "PATCH"]).build().unwrap()]);
    let e = assert_s3_err!(
        s3.put_bucket_cors()
            .bucket("site")
            .cors_configuration(bad_method)
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    assert_eq!(
        e.message.as_deref(),
        Some("Found unsupported HTTP method in CORS config. Unsupported method is PATCH")
    );
    let two_wildcards = config(vec![rule(&["https://*.example.*"], &["GET"])
        .build()
        .unwrap()]);
    let e = assert_s3_err!(
        s3.put_bucket_cors()
            .bucket("site")
            .cors_configuration(two_wildcards)
            .send()
            .await,
        400,
        "InvalidRequest"
    );
    assert_eq!(
        e.message.as_deref(),
        Some("AllowedOrigin \"https://*.example.*\" can not have more than one wildcard.")
    );
    let too_many = config(
        (0..101)
            .map(|_| rule(&["*"], &["GET"]).build().unwrap())
            .collect(),
    );
    assert_s3_err!(
        s3.put_bucket_cors()
            .bucket("site")
            .cors_configuration(too_many)
            .send()
            .await,
        400,
        "MalformedXML"
    );
    let hundred = config(
        (0..100)
            .map(|_| rule(&["*"], &["GET"]).build().unwrap())
            .collect(),
    );
    put_cors(&s3, "site", hundred).await;
    assert_eq!(
        s3.get_bucket_cors()
            .bucket("site")
            .send()
            .await
            .unwrap()
            .cors_rules()
            .len(),
        100
    );
    put_cors(&s3, "site", app_rules()).await;

    // By hand: a document that is not the schema, one without Content-MD5, one unsigned,
    // one from a read-only key.
    let r = raw_put_cors(&gw, Some(ADMIN), "site", "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>", true).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("MalformedXML")),
        "{}",
        r.text()
    );
    let r = raw_put_cors(
        &gw,
        Some(ADMIN),
        "site",
        "<CORSConfiguration><CORSRule>",
        true,
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (400, Some("MalformedXML")));
    let open = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>DELETE</AllowedMethod></CORSRule></CORSConfiguration>";
    let r = raw_put_cors(&gw, Some(ADMIN), "site", open, false).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("InvalidRequest")),
        "{}",
        r.text()
    );
    assert!(r.text().contains("Content-MD5"), "{}", r.text());
    let r = raw_put_cors(&gw, None, "site", open, true).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (403, Some("AccessDenied")),
        "{}",
        r.text()
    );
    let r = raw_put_cors(&gw, Some(READER), "site", open, true).await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    assert_s3_err!(
        gw.client_for(READER)
            .delete_bucket_cors()
            .bucket("site")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // A key scoped to other buckets may not touch this one's rules.
    assert_s3_err!(
        gw.client_for(LIMITED)
            .put_bucket_cors()
            .bucket("site")
            .cors_configuration(app_rules())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // Nothing unsigned changes a request: an x-amz-* header outside the signature.
    let mut req = raw::request("PUT", &gw.url("site?cors"));
    req.headers_mut()
        .insert("content-md5", md5_b64(open.as_bytes()).parse().unwrap());
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(open.as_bytes().to_vec()));
    req.headers_mut()
        .insert("x-amz-meta-evil", "1".parse().unwrap());
    let r = send_reqwest(req, open.as_bytes().to_vec()).await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    assert_eq!(
        xml_text(&r.text(), "HeadersNotSigned").as_deref(),
        Some("x-amz-meta-evil")
    );
    let got = s3.get_bucket_cors().bucket("site").send().await.unwrap();
    assert_eq!(got.cors_rules(), app_rules().cors_rules());
    // The same document signed and with its digest is taken.
    let r = raw_put_cors(&gw, Some(ADMIN), "site", open, true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s3.get_bucket_cors().bucket("site").send().await.unwrap();
    assert_eq!(got.cors_rules()[0].allowed_methods(), ["DELETE"]);

    // Missing buckets.
    assert_s3_err!(
        s3.get_bucket_cors().bucket("nope").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.put_bucket_cors()
            .bucket("nope")
            .cors_configuration(app_rules())
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.delete_bucket_cors().bucket("nope").send().await,
        404,
        "NoSuchBucket"
    );

    s3.delete_bucket_cors().bucket("site").send().await.unwrap();
    assert_s3_err!(
        s3.get_bucket_cors().bucket("site").send().await,
        404,
        "NoSuchCORSConfiguration"
    );
    // Deleting what is not there is no error, as in S3.
    s3.delete_bucket_cors().bucket("site").send().await.unwrap();

    // The setting survives a restart (it is in the index and the bucket markers).
    put_cors(&s3, "site", app_rules()).await;
    let mut gw = gw;
    gw.restart().await;
    let got = gw
        .client()
        .get_bucket_cors()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(got.cors_rules(), app_rules().cors_rules());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_answer_from_the_rules_without_credentials() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "web").await;
    create_bucket(&s3, "plain").await;
    put_cors(&s3, "web", app_rules()).await;

    // The first rule: the origin, the methods, the requested headers (lower case), ETag
    // exposed, the max age, credentials for a named origin.
    let r = preflight(
        &gw,
        "web/dir/photo.jpg",
        "http://app.test",
        "PUT",
        Some("X-App-Trace, content-type"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-app-trace, content-type")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some(VARY));

    // Any other origin falls to the `*` rule: `*`, and no credentials.
    let r = preflight(&gw, "web/k", "https://elsewhere.example", "GET", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("access-control-expose-headers"), None);

    // A header no rule allows, a method no rule allows for the origin, a bucket without rules.
    let r = preflight(
        &gw,
        "web/k",
        "http://app.test",
        "PUT",
        Some("authorization"),
    )
    .await;
    assert_forbidden(&r, NOT_ALLOWED, "PUT", "OBJECT");
    let r = preflight(&gw, "web/k", "https://elsewhere.example", "PUT", None).await;
    assert_forbidden(&r, NOT_ALLOWED, "PUT", "OBJECT");
    let r = preflight(&gw, "web", "http://app.test", "DELETE", None).await;
    assert_forbidden(&r, NOT_ALLOWED, "DELETE", "BUCKET");
    let r = preflight(&gw, "plain/k", "http://app.test", "GET", None).await;
    assert_forbidden(
        &r,
        "CORSResponse: CORS is not enabled for this bucket.",
        "GET",
        "OBJECT",
    );

    // Incomplete preflights.
    let r = raw_request(
        &gw,
        "OPTIONS",
        "web/k",
        &[("access-control-request-method", "GET")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code().as_deref(), Some("BadRequest"));
    assert_eq!(
        xml_text(&r.text(), "Message").as_deref(),
        Some("Insufficient information. Origin request header needed.")
    );
    let r = raw_request(&gw, "OPTIONS", "web/k", &[("origin", "http://app.test")]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        xml_text(&r.text(), "Message").as_deref(),
        Some("Invalid Access-Control-Request-Method: null")
    );
    let r = preflight(&gw, "web/k", "http://app.test", "PATCH", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        xml_text(&r.text(), "Message").as_deref(),
        Some("Invalid Access-Control-Request-Method: PATCH")
    );

    // Virtual-host addressing: the bucket from the Host header.
    let host = format!("web.{BASE_DOMAIN}:{}", gw.addr.port());
    let r = raw_request(
        &gw,
        "OPTIONS",
        "dir/photo.jpg",
        &[
            ("host", &host),
            ("origin", "http://app.test"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-app-trace"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("x-app-trace")
    );
    let host = format!("plain.{BASE_DOMAIN}:{}", gw.addr.port());
    let r = raw_request(
        &gw,
        "OPTIONS",
        "k",
        &[
            ("host", &host),
            ("origin", "http://app.test"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_answers_carry_cors_headers() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "web").await;
    create_bucket(&s3, "plain").await;
    put_cors(&s3, "web", app_rules()).await;
    put(&s3, "web", "hello.txt", b"hello").await;
    put(&s3, "plain", "hello.txt", b"hello").await;

    let signed = |method: &str, path: &str, origin: Option<&str>| {
        let mut req = raw::request(method, &gw.url(path));
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
        req
    };

    let r = send_reqwest(
        signed("GET", "web/hello.txt", Some("http://app.test")),
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("vary"), Some(VARY));

    // Errors too: a missing key, and an unsigned request refused.
    let r = send_reqwest(
        signed("GET", "web/missing", Some("http://app.test")),
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (404, Some("NoSuchKey")));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("ETag"));
    let mut anonymous = raw::request("GET", &gw.url("web/hello.txt"));
    anonymous
        .headers_mut()
        .insert("origin", "https://elsewhere.example".parse().unwrap());
    let r = send_reqwest(anonymous, vec![]).await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("AccessDenied")));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // No headers: without an Origin, for a method the origin may not use, on a bucket
    // without rules.
    let r = send_reqwest(signed("GET", "web/hello.txt", None), vec![]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), None);
    let r = send_reqwest(
        signed("DELETE", "web/hello.txt", Some("http://app.test")),
        vec![],
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = send_reqwest(
        signed("GET", "plain/hello.txt", Some("http://app.test")),
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    gw.shutdown().await;
}

/// A web app on http://app.test uploads with a presigned PUT (a custom header, so the browser
/// sends a real preflight first) and reads the object back with its ETag, from buckets whose
/// rules allow it; the same page is blocked where the rules do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_uploads_and_reads_across_origins() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let open = config(vec![rule(&["http://app.test"], &["GET", "PUT"])
        .allowed_headers("*")
        .expose_headers("ETag")
        .build()
        .unwrap()]);
    // Allows the origin and the methods but not the custom header: only the preflight stops
    // the upload.
    let no_headers = config(vec![rule(&["http://app.test"], &["GET", "PUT"])
        .build()
        .unwrap()]);
    let other_origin = config(vec![rule(&["http://other.test"], &["GET", "PUT"])
        .allowed_headers("*")
        .expose_headers("ETag")
        .build()
        .unwrap()]);
    let buckets = [
        ("open", Some(open)),
        ("no-headers", Some(no_headers)),
        ("other-origin", Some(other_origin)),
        ("no-cors", None),
    ];
    let key = "from-browser.txt";
    let presign = || PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let mut cases = Vec::new();
    for (bucket, rules) in &buckets {
        create_bucket(&s3, bucket).await;
        if let Some(rules) = rules {
            put_cors(&s3, bucket, rules.clone()).await;
        }
        let put_url = s3
            .put_object()
            .bucket(*bucket)
            .key(key)
            .presigned(presign())
            .await
            .unwrap();
        let get_url = s3
            .get_object()
            .bucket(*bucket)
            .key(key)
            .presigned(presign())
            .await
            .unwrap();
        cases.push(serde_json::json!({
            "name": bucket,
            "put": put_url.uri(),
            "get": get_url.uri(),
            "body": format!("written by the browser into {bucket}"),
        }));
    }
    let report = browser
        .run(
            "cors.cjs",
            &[("CASES", serde_json::Value::Array(cases).to_string())],
            Duration::from_secs(90),
        )
        .await;

    // Allowed: the object landed with the page's bytes, the page read them and the ETag.
    let open = &report["open"];
    assert_eq!(open["put"]["ok"], true, "{report:#}");
    assert_eq!(open["put"]["status"], 200, "{report:#}");
    assert_eq!(
        get(&s3, "open", key).await,
        b"written by the browser into open"
    );
    let etag = s3
        .head_object()
        .bucket("open")
        .key(key)
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_eq!(open["put"]["etag"], etag.as_str(), "{report:#}");
    assert_eq!(open["get"]["ok"], true, "{report:#}");
    assert_eq!(open["get"]["status"], 200, "{report:#}");
    assert_eq!(
        open["get"]["body"], "written by the browser into open",
        "{report:#}"
    );
    assert_eq!(open["get"]["etag"], etag.as_str(), "{report:#}");

    // The preflight refused the custom header: nothing was uploaded; the read of the missing
    // object is still allowed, so the page sees the 404.
    let no_headers = &report["no-headers"];
    assert_eq!(no_headers["put"]["ok"], false, "{report:#}");
    assert_eq!(no_headers["get"]["ok"], true, "{report:#}");
    assert_eq!(no_headers["get"]["status"], 404, "{report:#}");

    // Another origin's rules, or none: the page can neither upload nor read.
    for bucket in ["other-origin", "no-cors", "no-headers"] {
        let case = &report[bucket];
        assert_eq!(case["put"]["ok"], false, "{bucket}: {report:#}");
        assert!(
            s3.head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .is_err(),
            "{bucket}: the blocked upload landed"
        );
        if bucket != "no-headers" {
            assert_eq!(case["get"]["ok"], false, "{bucket}: {report:#}");
        }
    }
    gw.shutdown().await;
}
