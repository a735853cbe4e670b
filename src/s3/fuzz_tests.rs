//! Property tests for everything in the S3 front end that parses client input: the router,
//! SigV4 (header and presigned), SigV2 (header and query), Range, conditional headers, request XML, aws-chunked framing
//! and `x-amz-copy-source`. Each must stay total on hostile input (no panic, an error where the
//! input is invalid), and a few round trips pin down what valid input must produce.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignatureLocation};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::s3::auth::chunked::tests::{doc_signing, DOC_SEED};
use crate::s3::auth::chunked::ChunkedDecoder;
use crate::s3::auth::sigv4::tests::{
    doc_settings, doc_store, doc_time, sdk_settings, sdk_sign, DOC_HOST, DOC_SECRET,
};
use crate::s3::auth::{authenticate, AuthError, PayloadCheck, Verified};
use crate::s3::body::BodyError;
use crate::s3::conditions::{Conditions, Verdict};
use crate::s3::ops::copy::parse_copy_source;
use crate::s3::range::{self, RangeRequest};
use crate::s3::router::{route, Operation};
use crate::s3::xml;

const BASE_DOMAINS: [&str; 2] = ["s3.localhost", "s3.example.test"];

fn base_domains() -> Vec<String> {
    BASE_DOMAINS.iter().map(|d| d.to_string()).collect()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking hostile inputs can take long; a failure is reported with its seed anyway.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Fragments that trip percent-decoders, query splitters and path splitters.
const NASTY: &[&str] = &[
    "%",
    "%%",
    "%Z",
    "%ZZ",
    "%ff",
    "%FF",
    "%fe%ff",
    "%C0%AF",
    "%c0%ae",
    "%e2%82",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%00",
    "%0A",
    "%0d%0a",
    "%2F",
    "%2f",
    "%2e%2e",
    "+",
    "++",
    "%2B",
    "%20",
    "",
    "/",
    "//",
    ".",
    "..",
    "../..",
    "&",
    "=",
    "==",
    "&&",
    ";",
    "~",
    "%u0041",
    "%1",
    "%%41",
];

/// Bytes percent-encoded the way a client might: unreserved characters raw, the rest `%XX` in
/// upper or lower case.
fn encode_bytes(bytes: &[u8], lower: bool) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encoded_bytes(max: usize) -> impl Strategy<Value = String> {
    (vec(any::<u8>(), 0..max), any::<bool>()).prop_map(|(b, lower)| encode_bytes(&b, lower))
}

/// One path segment or query component: encoded arbitrary bytes, a nasty fragment, printable
/// ASCII, or (rarely) something very long.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => encoded_bytes(24),
        3 => select(NASTY).prop_map(str::to_string),
        2 => "[a-zA-Z0-9._~+%-]{0,24}",
        1 => (vec(select(NASTY), 1..6), encoded_bytes(8))
            .prop_map(|(n, e)| format!("{}{e}", n.concat())),
        1 => (encoded_bytes(8), 1000usize..9000).prop_map(|(e, n)| format!("{e}{}", "x".repeat(n))),
    ]
}

fn path() -> impl Strategy<Value = String> {
    vec(component(), 0..6).prop_map(|segments| format!("/{}", segments.join("/")))
}

const QUERY_NAMES: &[&str] = &[
    "acl",
    "delete",
    "uploads",
    "uploadId",
    "partNumber",
    "list-type",
    "location",
    "versioning",
    "tagging",
    "versionId",
    "prefix",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "AWSAccessKeyId",
    "Signature",
];

fn query() -> impl Strategy<Value = Option<String>> {
    let name = prop_oneof![select(QUERY_NAMES).prop_map(str::to_string), component()];
    let pair = (name, proptest::option::of(component())).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n,
    });
    proptest::option::of(vec(pair, 0..8).prop_map(|pairs| pairs.join("&")))
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        select(&["GET", "PUT", "POST", "HEAD", "DELETE", "OPTIONS", "PATCH", "TRACE"][..])
            .prop_map(|m| Method::from_bytes(m.as_bytes()).expect("standard method")),
        "[A-Z!#$%&'*+.^_`|~-]{1,16}"
            .prop_filter_map("token", |m| Method::from_bytes(m.as_bytes()).ok()),
    ]
}

fn host() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        "[a-z0-9.-]{0,30}\\.s3\\.(localhost|example\\.test)(:[0-9]{0,7})?".prop_map(String::into_bytes),
        "(s3\\.localhost|\\.s3\\.localhost|S3\\.LOCALHOST\\.|\\[::1\\]|127\\.0\\.0\\.1)(:[0-9a-z]{0,6})?"
            .prop_map(String::into_bytes),
        vec(any::<u8>(), 0..40),
    ])
}

// ---------------------------------------------------------------------------------------------
// Router

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn router_is_total(method in method(), path in path(), query in query(), host in host()) {
        let target = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        // Only what hyper can hand us reaches the router.
        let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
        let mut headers = HeaderMap::new();
        if let Some(value) = host.and_then(|h| HeaderValue::from_bytes(&h).ok()) {
            headers.insert(http::header::HOST, value);
        }
        for domains in [base_domains(), Vec::new()] {
            match route(&method, &uri, &headers, &domains) {
                Ok(r) => {
                    prop_assert!(!r.operation.name().is_empty());
                    prop_assert!(r.bucket.as_deref() != Some(""), "empty bucket");
                    prop_assert!(r.key.as_deref() != Some(""), "empty key");
                    if r.bucket.is_none() {
                        prop_assert!(
                            matches!(r.operation, Operation::ListBuckets | Operation::NotImplemented(_)),
                            "{:?} without a bucket", r.operation
                        );
                    }
                    let _ = r.resource();
                }
                Err(e) => {
                    prop_assert_eq!(e.code, "InvalidURI");
                    prop_assert_eq!(e.status.as_u16(), 400);
                }
            }
        }
    }

    /// Any UTF-8 key under a valid bucket, fully encoded, routes back to exactly that key.
    #[test]
    fn router_round_trips_encoded_keys(
        bucket in "[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]",
        key in any::<String>().prop_filter("non-empty", |k| !k.is_empty()),
        lower in any::<bool>(),
    ) {
        let uri: Uri = format!("/{bucket}/{}", encode_bytes(key.as_bytes(), lower))
            .parse()
            .expect("an encoded path is a valid URI");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
        let r = route(&Method::GET, &uri, &headers, &base_domains()).expect("routes");
        prop_assert_eq!(r.operation, Operation::GetObject);
        prop_assert_eq!(r.bucket.as_deref(), Some(bucket.as_str()));
        prop_assert_eq!(r.key.as_deref(), Some(key.as_str()));
    }

    /// Invalid UTF-8 anywhere in a key is InvalidURI, never a lossy key.
    #[test]
    fn router_rejects_invalid_utf8(
        prefix in "[a-z]{0,5}",
        bad in prop_oneof![
            Just(vec![0xffu8]),
            Just(vec![0xc0, 0xaf]),
            Just(vec![0xed, 0xa0, 0x80]),
            Just(vec![0xe2, 0x82]),
            vec(0x80u8..=0xbf, 1..3),
        ],
        in_query in any::<bool>(),
    ) {
        let encoded = encode_bytes(&bad, false);
        let target = if in_query {
            format!("/bucket/key?prefix={prefix}{encoded}")
        } else {
            format!("/bucket/{prefix}{encoded}")
        };
        let uri: Uri = target.parse().expect("uri");
        let e = route(&Method::GET, &uri, &HeaderMap::new(), &[]).expect_err("invalid UTF-8");
        prop_assert_eq!(e.code, "InvalidURI");
    }
}

// ---------------------------------------------------------------------------------------------
// SigV4: Authorization header

fn parts_with(uri: &str, headers: &[(&str, &[u8])]) -> Option<http::request::Parts> {
    let mut builder = http::Request::builder().method("GET").uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).ok()?);
    }
    Some(builder.body(()).ok()?.into_parts().0)
}

fn auth(parts: &http::request::Parts) -> Result<Verified, AuthError> {
    authenticate(parts, &doc_store(), &doc_settings(), doc_time())
}

/// Every authentication failure maps to an S3 code and a 400/403.
fn check_error(e: &AuthError) -> Result<(), TestCaseError> {
    prop_assert!(!e.s3_code().is_empty());
    prop_assert!(matches!(e.http_status(), 400 | 403), "{e:?}");
    let s3: crate::s3::error::S3Error = e.clone().into();
    prop_assert!(matches!(s3.status.as_u16(), 400 | 403));
    Ok(())
}

const DOC_URI: &str = "https://examplebucket.s3.amazonaws.com/test.txt";

/// A GET signed like aws-sdk-s3 at the documentation's time, valid at that time.
fn signed_get() -> http::request::Parts {
    sdk_sign(
        "GET",
        DOC_URI,
        &[("host", DOC_HOST)],
        SignableBody::UnsignedPayload,
        sdk_settings(SignatureLocation::Headers, None),
        doc_time(),
    )
}

fn header_text(parts: &http::request::Parts, name: &str) -> String {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .expect("signed header")
        .to_string()
}

#[test]
fn signed_get_is_accepted() {
    // The mutation properties below are only meaningful if the unmutated request verifies.
    let parts = signed_get();
    let verified = auth(&parts).expect("a request signed like the SDK verifies");
    assert_eq!(verified.payload, PayloadCheck::Unsigned);
}

#[derive(Clone, Debug)]
enum AuthMutation {
    Truncate(usize),
    Delete(usize),
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    RemoveComma(usize),
    Duplicate(usize),
    Huge(usize, usize),
    Prefix(String),
}

fn auth_mutation() -> impl Strategy<Value = AuthMutation> {
    prop_oneof![
        any::<usize>().prop_map(AuthMutation::Truncate),
        any::<usize>().prop_map(AuthMutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| AuthMutation::Replace(i, b)),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| AuthMutation::Insert(i, b)),
        any::<usize>().prop_map(AuthMutation::RemoveComma),
        any::<usize>().prop_map(AuthMutation::Duplicate),
        (0usize..3, 1usize..120_000).prop_map(|(c, n)| AuthMutation::Huge(c, n)),
        select(
            &[
                "AWS ",
                "AWS4-HMAC-SHA256",
                "Bearer ",
                "aws4-hmac-sha256 ",
                "AWS4-ECDSA-P256-SHA256 ",
                ""
            ][..]
        )
        .prop_map(str::to_string)
        .prop_map(AuthMutation::Prefix),
    ]
}

/// Applies `m` to the Authorization value; `None` when the mutation cannot change anything
/// that matters (whitespace, hex case) and so proves nothing either way.
fn mutate_authorization(original: &str, m: &AuthMutation) -> (Vec<u8>, bool) {
    let bytes = original.as_bytes();
    let len = bytes.len();
    let mut out = bytes.to_vec();
    // Whether the mutated header could still carry a valid signature.
    let mut maybe_valid = false;
    match m {
        AuthMutation::Truncate(i) => out.truncate(i % len),
        AuthMutation::Delete(i) => {
            let removed = out.remove(i % len);
            maybe_valid = removed.is_ascii_whitespace();
        }
        AuthMutation::Replace(i, b) => {
            let old = out[i % len];
            out[i % len] = *b;
            maybe_valid = old.eq_ignore_ascii_case(b)
                || (old.is_ascii_whitespace() && b.is_ascii_whitespace());
        }
        AuthMutation::Insert(i, ins) => {
            let at = i % (len + 1);
            out.splice(at..at, ins.iter().copied());
            maybe_valid = ins.iter().all(u8::is_ascii_whitespace);
        }
        AuthMutation::RemoveComma(i) => {
            let commas: Vec<usize> = (0..len).filter(|&j| bytes[j] == b',').collect();
            out.remove(commas[i % commas.len()]);
        }
        AuthMutation::Duplicate(i) => {
            let rest = original.split_once(' ').map(|(_, r)| r).unwrap_or("");
            let components: Vec<&str> = rest.split(',').map(str::trim).collect();
            let dup = components[i % components.len()];
            out.extend_from_slice(format!(", {dup}").as_bytes());
        }
        AuthMutation::Huge(component, n) => {
            let name = ["Credential=", "SignedHeaders=", "Signature="][*component];
            let text = original.replace(name, &format!("{name}{}", "a".repeat(*n)));
            out = text.into_bytes();
        }
        AuthMutation::Prefix(p) => {
            let rest = original.split_once(' ').map(|(_, r)| r).unwrap_or("");
            out = format!("{p}{rest}").into_bytes();
            maybe_valid = p == "AWS4-HMAC-SHA256 ";
        }
    }
    (out, maybe_valid)
}

proptest! {
    #![proptest_config(config(1500))]

    /// Random Authorization values: never a panic, never a success.
    #[test]
    fn authorization_garbage_is_rejected(
        value in prop_oneof![
            vec(any::<u8>(), 0..300),
            "AWS4-HMAC-SHA256 [ -~]{0,200}".prop_map(String::into_bytes),
            "AWS4-HMAC-SHA256 (Credential|SignedHeaders|Signature)=[^,]{0,80}(, ?(Credential|SignedHeaders|Signature)=[^,]{0,80}){0,4}"
                .prop_map(String::into_bytes),
        ],
    ) {
        let Some(parts) = parts_with(
            DOC_URI,
            &[
                ("host", DOC_HOST.as_bytes()),
                ("x-amz-date", b"20130524T000000Z"),
                ("x-amz-content-sha256", b"UNSIGNED-PAYLOAD"),
                ("authorization", &value),
            ],
        ) else { return Ok(()) };
        let e = auth(&parts).expect_err("garbage authenticated");
        check_error(&e)?;
    }

    /// A real SDK signature with one part of its Authorization header mutated.
    #[test]
    fn mutated_authorization_is_rejected(m in auth_mutation()) {
        let mut parts = signed_get();
        let original = header_text(&parts, "authorization");
        let (mutated, maybe_valid) = mutate_authorization(&original, &m);
        let Ok(value) = HeaderValue::from_bytes(&mutated) else { return Ok(()) };
        parts.headers.insert(http::header::AUTHORIZATION, value);
        match auth(&parts) {
            Ok(_) => prop_assert!(
                maybe_valid || mutated == original.as_bytes(),
                "accepted {:?}", String::from_utf8_lossy(&mutated)
            ),
            Err(e) => check_error(&e)?,
        }
    }

    /// x-amz-date and x-amz-content-sha256 are signed: any other value fails.
    #[test]
    fn mutated_date_and_payload_hash_are_rejected(
        date in prop_oneof![
            vec(any::<u8>(), 0..40),
            "[0-9]{8}T[0-9]{6}Z".prop_map(String::into_bytes),
            "(0000|9999|2013|1969)(0101|1231|0524|1332|0230)T(000000|235959|246060)Z".prop_map(String::into_bytes),
        ],
        hash in prop_oneof![
            vec(any::<u8>(), 0..80),
            "[0-9a-fA-F]{63,65}".prop_map(String::into_bytes),
            select(&["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "unsigned-payload", ""][..])
                .prop_map(|s| s.as_bytes().to_vec()),
        ],
        which in 0u8..3,
        now_offset in -100_000i64..100_000,
    ) {
        let mut parts = signed_get();
        let original_date = header_text(&parts, "x-amz-date");
        let original_hash = header_text(&parts, "x-amz-content-sha256");
        let mut changed = false;
        if which != 1 {
            let Ok(v) = HeaderValue::from_bytes(&date) else { return Ok(()) };
            changed |= date != original_date.as_bytes();
            parts.headers.insert("x-amz-date", v);
        }
        if which != 0 {
            let Ok(v) = HeaderValue::from_bytes(&hash) else { return Ok(()) };
            changed |= hash.trim_ascii() != original_hash.as_bytes();
            parts.headers.insert("x-amz-content-sha256", v);
        }
        let now = if now_offset >= 0 {
            doc_time() + Duration::from_secs(now_offset as u64)
        } else {
            doc_time() - Duration::from_secs(now_offset.unsigned_abs())
        };
        match authenticate(&parts, &doc_store(), &doc_settings(), now) {
            Ok(_) => prop_assert!(!changed, "accepted a changed date or payload hash"),
            Err(e) => check_error(&e)?,
        }
    }

    /// Extreme clocks on our side never panic the skew arithmetic.
    #[test]
    fn extreme_now_is_total(secs in any::<u64>(), before in any::<bool>()) {
        let parts = signed_get();
        let d = Duration::from_secs(secs);
        let now = if before {
            SystemTime::UNIX_EPOCH.checked_sub(d)
        } else {
            SystemTime::UNIX_EPOCH.checked_add(d)
        };
        if let Some(now) = now {
            if let Err(e) = authenticate(&parts, &doc_store(), &doc_settings(), now) {
                check_error(&e)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SigV4: presigned query

fn presigned_get() -> http::request::Parts {
    sdk_sign(
        "GET",
        DOC_URI,
        &[("host", DOC_HOST)],
        SignableBody::UnsignedPayload,
        sdk_settings(
            SignatureLocation::QueryParams,
            Some(Duration::from_secs(86_400)),
        ),
        doc_time(),
    )
}

const PRESIGNED_NAMES: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Content-Sha256",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

fn presigned_value() -> impl Strategy<Value = String> {
    prop_oneof![
        component(),
        Just("AWS4-HMAC-SHA256".to_string()),
        Just("AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request".to_string()),
        Just("20130524T000000Z".to_string()),
        "[0-9]{1,25}",
        Just("-1".to_string()),
        Just("18446744073709551615".to_string()),
        Just("host".to_string()),
        "[0-9a-f]{64}",
    ]
}

#[test]
fn presigned_get_is_accepted() {
    let parts = presigned_get();
    auth(&parts).expect("a URL presigned like the SDK verifies");
}

proptest! {
    #![proptest_config(config(1500))]

    /// Random presigned-looking queries: never a panic, never a success.
    #[test]
    fn presigned_garbage_is_rejected(
        pairs in vec((select(PRESIGNED_NAMES), presigned_value()), 1..10),
        now_offset in 0u64..2_000_000,
    ) {
        let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let uri = format!("{DOC_URI}?{}", query.join("&"));
        let Ok(uri) = uri.parse::<Uri>() else { return Ok(()) };
        let mut parts = signed_get();
        parts.headers.remove(http::header::AUTHORIZATION);
        parts.uri = uri;
        let now = doc_time() + Duration::from_secs(now_offset);
        let e = authenticate(&parts, &doc_store(), &doc_settings(), now)
            .expect_err("random presigned query authenticated");
        check_error(&e)?;
    }

    /// A real presigned URL with one parameter replaced, removed or repeated.
    #[test]
    fn mutated_presigned_is_rejected(
        index in any::<usize>(),
        action in 0u8..3,
        value in presigned_value(),
    ) {
        let mut parts = presigned_get();
        let query = parts.uri.query().expect("presigned query").to_string();
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.to_string(), v.to_string())
            })
            .collect();
        let i = index % pairs.len();
        let unchanged = match action {
            0 => {
                let same = pairs[i].1 == value;
                pairs[i].1 = value;
                same
            }
            1 => {
                pairs.remove(i);
                false
            }
            _ => {
                let dup = pairs[i].clone();
                pairs.push(dup);
                false
            }
        };
        let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let Ok(uri) = format!("{DOC_URI}?{}", query.join("&")).parse::<Uri>() else { return Ok(()) };
        parts.uri = uri;
        match auth(&parts) {
            Ok(_) => prop_assert!(unchanged, "accepted a mutated presigned URL: {}", parts.uri),
            Err(e) => check_error(&e)?,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SigV2: Authorization header and query

const V2_DATE: &str = "Tue, 27 Mar 2007 19:36:42 +0000";
const V2_HOST: &str = "bucket.s3.localhost";

fn v2_settings() -> crate::s3::auth::AuthSettings {
    crate::s3::auth::AuthSettings {
        base_domains: base_domains(),
        ..doc_settings()
    }
}

fn v2_now() -> SystemTime {
    crate::s3::auth::sigv2::parse_date(V2_DATE).expect("doc date")
}

fn v2_auth(parts: &http::request::Parts, now: SystemTime) -> Result<Verified, AuthError> {
    authenticate(parts, &doc_store(), &v2_settings(), now)
}

/// A virtual-host GET with a sub-resource, signed V2 with the documentation's key.
fn v2_signed_get() -> http::request::Parts {
    let string = format!("GET\n\n\n{V2_DATE}\n/bucket/photos/puppy.jpg?acl");
    let signature = crate::s3::auth::sigv2::sign(DOC_SECRET, string.as_bytes());
    parts_with(
        "/photos/puppy.jpg?acl",
        &[
            ("host", V2_HOST.as_bytes()),
            ("date", V2_DATE.as_bytes()),
            (
                "authorization",
                format!("AWS AKIAIOSFODNN7EXAMPLE:{signature}").as_bytes(),
            ),
        ],
    )
    .expect("valid request")
}

#[test]
fn v2_signed_get_is_accepted() {
    v2_auth(&v2_signed_get(), v2_now()).expect("a V2 signature verifies");
}

proptest! {
    #![proptest_config(config(1500))]

    /// Random `AWS …` Authorization values and dates: never a panic, never a success.
    #[test]
    fn v2_authorization_garbage_is_rejected(
        value in prop_oneof![
            "AWS [ -~]{0,120}".prop_map(String::into_bytes),
            "AWS (AKIAIOSFODNN7EXAMPLE)?:?[A-Za-z0-9+/=: ]{0,40}".prop_map(String::into_bytes),
            vec(any::<u8>(), 0..80).prop_map(|b| [b"AWS ".to_vec(), b].concat()),
        ],
        date in prop_oneof![Just(V2_DATE.to_string()), "[ -~]{0,40}"],
        amz_date in proptest::option::of("[ -~]{0,40}"),
        path in path(),
        query in query(),
    ) {
        let uri = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("host", V2_HOST.as_bytes()),
            ("date", date.as_bytes()),
            ("authorization", &value),
        ];
        if let Some(amz_date) = &amz_date {
            headers.push(("x-amz-date", amz_date.as_bytes()));
        }
        let Some(parts) = parts_with(&uri, &headers) else { return Ok(()) };
        let e = v2_auth(&parts, v2_now()).expect_err("garbage authenticated");
        check_error(&e)?;
    }

    /// A valid V2 request with one byte of its signature, resource or date changed.
    #[test]
    fn mutated_v2_is_rejected(
        target in 0u8..4,
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut parts = v2_signed_get();
        let name = match target {
            0 => "authorization",
            1 => "date",
            2 => "host",
            _ => "uri",
        };
        let original = if name == "uri" {
            parts.uri.to_string()
        } else {
            header_text(&parts, name)
        };
        let mut mutated = original.clone().into_bytes();
        let i = index % mutated.len();
        if mutated[i] == byte {
            return Ok(());
        }
        mutated[i] = byte;
        if name == "uri" {
            let Ok(text) = String::from_utf8(mutated) else { return Ok(()) };
            let Ok(uri) = text.parse::<Uri>() else { return Ok(()) };
            parts.uri = uri;
        } else {
            let Ok(value) = HeaderValue::from_bytes(&mutated) else { return Ok(()) };
            parts.headers.insert(name, value);
        }
        match v2_auth(&parts, v2_now()) {
            // Only the case of the host may change (DNS names are case-insensitive, and the
            // bucket is read from it lower-cased).
            Ok(_) => prop_assert!(
                name == "host" && original.eq_ignore_ascii_case(&header_text(&parts, name)),
                "accepted a mutated {name}: {original:?}"
            ),
            Err(e) => check_error(&e)?,
        }
    }

    /// Random V2 query parameters, with any clock: never a panic, never a success.
    #[test]
    fn v2_query_garbage_is_rejected(
        pairs in vec((select(&["AWSAccessKeyId", "Signature", "Expires", "acl", "versionId"][..]), presigned_value()), 1..8),
        now_secs in any::<u64>(),
    ) {
        let query: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let Some(parts) = parts_with(
            &format!("/photos/puppy.jpg?{}", query.join("&")),
            &[("host", V2_HOST.as_bytes())],
        ) else { return Ok(()) };
        let now = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(now_secs))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let e = v2_auth(&parts, now).expect_err("random V2 query authenticated");
        check_error(&e)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Range

fn range_header() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just(String::new()),
        "[0-9]{1,3}",
        "[0-9]{1,25}",
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("+5".to_string()),
        Just(" 7 ".to_string()),
        "[ -~]{0,6}",
    ];
    prop_oneof![
        (number.clone(), number).prop_map(|(a, b)| format!("bytes={a}-{b}")),
        "[ -~]{0,40}",
        "bytes=[0-9,-]{0,30}",
        "(bytes|BYTES|items) ?=[ -~]{0,20}",
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn range_is_total_and_in_bounds(
        header in proptest::option::of(range_header()),
        size in prop_oneof![0u64..200, any::<u64>(), Just(u64::MAX)],
    ) {
        match range::parse(header.as_deref(), size) {
            RangeRequest::Part(r) => {
                prop_assert!(r.start < r.end, "empty range {r:?}");
                prop_assert!(r.end <= size, "range {r:?} beyond size {size}");
            }
            RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conditional headers

fn condition_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "[ -~]{0,40}",
        Just("*".to_string()),
        Just("W/\"x\"".to_string()),
        Just("\"".to_string()),
        Just(",,,".to_string()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_string()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_string()),
        Just("Sunday, 06-Nov-94 08:49:37 GMT".to_string()),
        Just("Sun Nov  6 08:49:37 1994".to_string()),
        Just("Mon, 30 Feb 2023 25:61:61 GMT".to_string()),
        any::<String>(),
    ])
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn conditions_are_total(
        if_match in condition_value(),
        if_none_match in condition_value(),
        if_modified_since in condition_value(),
        if_unmodified_since in condition_value(),
        etag in prop_oneof!["[0-9a-f]{32}", "[0-9a-f]{32}-[0-9]{1,5}", any::<String>()],
        modified_ms in any::<u64>(),
    ) {
        let c = Conditions {
            if_match: if_match.as_deref(),
            if_none_match: if_none_match.as_deref(),
            if_modified_since: if_modified_since.as_deref(),
            if_unmodified_since: if_unmodified_since.as_deref(),
        };
        let verdict = c.evaluate(&etag, modified_ms);
        if c.is_empty() {
            prop_assert_eq!(verdict, Verdict::Proceed);
        }
    }

    /// The object's own quoted ETag always satisfies If-Match, whatever the date headers say.
    #[test]
    fn own_etag_satisfies_if_match(
        etag in "[0-9a-f]{32}",
        if_unmodified_since in condition_value(),
        modified_ms in any::<u64>(),
    ) {
        let quoted = format!("\"{etag}\"");
        let c = Conditions {
            if_match: Some(&quoted),
            if_unmodified_since: if_unmodified_since.as_deref(),
            ..Conditions::default()
        };
        prop_assert_eq!(c.evaluate(&etag, modified_ms), Verdict::Proceed);
    }
}

// ---------------------------------------------------------------------------------------------
// Request XML

const XML_TOKENS: &[&str] = &[
    "<Delete>",
    "</Delete>",
    "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    "<s3:Delete xmlns:s3=\"x\">",
    "</s3:Delete>",
    "<Object>",
    "</Object>",
    "<Object/>",
    "<Key>",
    "</Key>",
    "<Key/>",
    "<VersionId>",
    "</VersionId>",
    "<Quiet>",
    "</Quiet>",
    "true",
    "false",
    "<CreateBucketConfiguration>",
    "</CreateBucketConfiguration>",
    "<LocationConstraint>",
    "</LocationConstraint>",
    "<LocationConstraint/>",
    "us-east-1",
    "&amp;",
    "&lt;",
    "&lol;",
    "&#0;",
    "&#x0;",
    "&#xD800;",
    "&#x110000;",
    "&#99999999999;",
    "&#65;",
    "&",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<!DOCTYPE d [<!ENTITY e \"eeeeeeeeee\"><!ENTITY f \"&e;&e;&e;&e;&e;\">]>",
    "&e;",
    "&f;",
    "<!ENTITY",
    "<",
    ">",
    "/>",
    "</",
    " ",
    "\n",
    "\u{feff}",
    "\u{0}",
    "k",
    "a/b",
    "\u{10ffff}",
];

fn xml_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(select(XML_TOKENS), 0..40).prop_map(|t| t.concat().into_bytes()),
        1 => vec(any::<u8>(), 0..400),
        1 => (vec(select(XML_TOKENS), 0..20), vec(any::<u8>(), 0..20), vec(select(XML_TOKENS), 0..20))
            .prop_map(|(a, b, c)| {
                let mut out = a.concat().into_bytes();
                out.extend(b);
                out.extend(c.concat().into_bytes());
                out
            }),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn delete_document_is_total(body in xml_like()) {
        match xml::Delete::parse(&body) {
            Ok(doc) => {
                prop_assert!(std::str::from_utf8(&body).is_ok());
                prop_assert!(doc.objects.iter().all(|o| !o.key.is_empty()), "empty key accepted");
                // Keys come from the document: no entity expansion beyond the input's size.
                let total: usize = doc.objects.iter().map(|o| o.key.len()).sum();
                prop_assert!(total <= body.len(), "keys longer than the document");
            }
            Err(e) => {
                prop_assert_eq!(e.code, "MalformedXML");
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }
    }

    #[test]
    fn create_bucket_configuration_is_total(body in xml_like()) {
        match xml::from_xml::<xml::CreateBucketConfiguration>("CreateBucketConfiguration", &body) {
            Ok(conf) => {
                let len = conf.location_constraint.map_or(0, |c| c.len());
                prop_assert!(len <= body.len(), "constraint longer than the document");
            }
            Err(e) => {
                prop_assert_eq!(e.code, "MalformedXML");
                prop_assert_eq!(e.status.as_u16(), 400);
            }
        }
    }
}

fn billion_laughs(root_open: &str, inner: &str, root_close: &str) -> Vec<u8> {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    doc.push_str(" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let prev = format!("&lol{};", i - 1);
        doc.push_str(&format!(" <!ENTITY lol{i} \"{}\">\n", prev.repeat(10)));
    }
    doc.push_str("]>\n");
    doc.push_str(root_open);
    doc.push_str(&inner.replace("ENTITY", "&lol9;"));
    doc.push_str(root_close);
    doc.into_bytes()
}

#[test]
fn billion_laughs_is_never_expanded() {
    let doc = billion_laughs(
        "<Delete>",
        "<Object><Key>ENTITY</Key></Object>",
        "</Delete>",
    );
    match xml::Delete::parse(&doc) {
        Err(e) => assert_eq!(e.code, "MalformedXML"),
        Ok(d) => assert!(d.objects.iter().all(|o| o.key.len() <= doc.len())),
    }
    let doc = billion_laughs(
        "<CreateBucketConfiguration>",
        "<LocationConstraint>ENTITY</LocationConstraint>",
        "</CreateBucketConfiguration>",
    );
    match xml::from_xml::<xml::CreateBucketConfiguration>("CreateBucketConfiguration", &doc) {
        Err(e) => assert_eq!(e.code, "MalformedXML"),
        Ok(c) => assert!(c.location_constraint.unwrap_or_default().len() <= doc.len()),
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // 2 MiB (the XML size limit) of nesting, on a thread with the default 2 MiB stack.
    let depth = 250_000;
    let run = move || {
        for (open, close) in [
            (
                "<CreateBucketConfiguration>",
                "</CreateBucketConfiguration>",
            ),
            (
                "<CreateBucketConfiguration><LocationConstraint>",
                "</LocationConstraint></CreateBucketConfiguration>",
            ),
            ("<Delete><Object><Key>", "</Key></Object></Delete>"),
            ("<Delete>", "</Delete>"),
        ] {
            let mut doc = String::from(open);
            doc.push_str(&"<a>".repeat(depth));
            doc.push_str(&"</a>".repeat(depth));
            doc.push_str(close);
            let _ = xml::from_xml::<xml::CreateBucketConfiguration>(
                "CreateBucketConfiguration",
                doc.as_bytes(),
            );
            let _ = xml::Delete::parse(doc.as_bytes());
            // Unclosed nesting too.
            let _ = xml::Delete::parse(&doc.as_bytes()[..doc.len() / 2]);
        }
    };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(run)
        .expect("spawn")
        .join()
        .expect("no panic");
}

// ---------------------------------------------------------------------------------------------
// aws-chunked

fn decoder(mode: u8, max_chunk: usize) -> ChunkedDecoder {
    let payload = match mode {
        0 => PayloadCheck::StreamingUnsignedTrailer,
        1 => PayloadCheck::StreamingSigned(doc_signing(DOC_SEED)),
        _ => PayloadCheck::StreamingSignedTrailer(doc_signing(DOC_SEED)),
    };
    ChunkedDecoder::for_payload(&payload, max_chunk).expect("a streaming payload")
}

/// Feeds `wire` in pieces cut at `cuts`, then finishes; returns the decoded bytes and the
/// first error.
fn run_decoder(
    decoder: &mut ChunkedDecoder,
    wire: &[u8],
    cuts: &[usize],
) -> (usize, Result<(), BodyError>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    let mut emitted = 0usize;
    for window in points.windows(2) {
        let piece = Bytes::copy_from_slice(&wire[window[0]..window[1]]);
        let fed = decoder.feed(piece, &mut |data| {
            emitted += data.len();
            Ok(())
        });
        if let Err(e) = fed {
            return (emitted, Err(e));
        }
    }
    (emitted, decoder.finish())
}

const CHUNK_SIZES: &[&str] = &[
    "0",
    "1",
    "5",
    "a",
    "A",
    "400",
    "10000",
    "ffffffffffffffff",
    "FFFFFFFFFFFFFFFF",
    "10000000000000000",
    "7fffffffffffffff",
    "-1",
    "-0",
    "0x10",
    "+5",
    " 5",
    "5 ",
    "",
    "g",
    "5;",
    "00000000000000000005",
];

fn chunked_wire() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        select(CHUNK_SIZES),
        prop_oneof![
            Just(String::new()),
            Just(";chunk-signature=".to_string()),
            "[0-9a-f]{64}".prop_map(|s| format!(";chunk-signature={s}")),
            "[ -~]{0,80}".prop_map(|s| format!(";{s}")),
        ],
        vec(any::<u8>(), 0..40),
        select(&["\r\n", "\n", "", "\r", "\r\n\r\n"][..]),
    )
        .prop_map(|(size, ext, data, end)| {
            let mut out = format!("{size}{ext}\r\n").into_bytes();
            out.extend(data);
            out.extend_from_slice(end.as_bytes());
            out
        });
    prop_oneof![
        2 => vec(chunk, 0..6).prop_map(|c| c.concat()),
        1 => vec(any::<u8>(), 0..300),
        1 => (vec(chunk_trailer(), 0..4), any::<bool>()).prop_map(|(t, blank)| {
            let mut out = b"0\r\n".to_vec();
            if blank {
                out.extend_from_slice(b"\r\n");
            }
            out.extend(t.concat());
            out.extend_from_slice(b"\r\n");
            out
        }),
        1 => "[0-9a-f]{4097,4200}".prop_map(String::into_bytes),
    ]
}

fn chunk_trailer() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "x-amz-checksum-(crc32|crc32c|sha1|sha256|crc64nvme):[A-Za-z0-9+/=]{0,50}\r\n",
        "x-amz-trailer-signature:[0-9a-f]{0,70}\r\n",
        "[ -~]{0,60}\r\n",
        Just(":\r\n".to_string()),
    ]
    .prop_map(String::into_bytes)
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn chunked_decoder_is_total(
        wire in chunked_wire(),
        cuts in vec(any::<usize>(), 0..6),
        mode in 0u8..3,
        max_chunk in prop_oneof![Just(16usize), Just(1024), Just(16 << 20), Just(usize::MAX)],
    ) {
        let mut d = decoder(mode, max_chunk);
        let (emitted, result) = run_decoder(&mut d, &wire, &cuts);
        prop_assert!(emitted <= wire.len(), "emitted more than was fed");
        if mode != 0 {
            // Nothing random carries valid chunk signatures.
            prop_assert!(result.is_err(), "signed body accepted: {:?}", String::from_utf8_lossy(&wire));
        }
        if let Err(e) = result {
            let s3: crate::s3::error::S3Error = e.into();
            prop_assert!(matches!(s3.status.as_u16(), 400 | 403));
        }
    }

    /// A declared size above the cap fails at the chunk header, before any data is read.
    #[test]
    fn oversized_chunks_are_refused_up_front(
        size in prop_oneof![Just(u64::MAX), 1025u64..u64::MAX],
        mode in 0u8..3,
    ) {
        let mut d = decoder(mode, 1024);
        let wire = format!("{size:x};chunk-signature={}\r\nabc", "0".repeat(64));
        let wire = if mode == 0 { format!("{size:x}\r\nabc") } else { wire };
        let (emitted, result) = run_decoder(&mut d, wire.as_bytes(), &[]);
        prop_assert_eq!(emitted, 0);
        prop_assert!(matches!(result, Err(BodyError::ChunkTooLarge { .. })), "{result:?}");
    }

    /// Well-formed unsigned bodies decode to their data wherever the transport cuts them.
    #[test]
    fn chunked_round_trip(
        chunks in vec(vec(any::<u8>(), 1..100), 0..6),
        cuts in vec(any::<usize>(), 0..8),
        trailer in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n");
        if trailer {
            wire.extend_from_slice(b"x-amz-checksum-crc32:AAAAAA==\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        let mut d = decoder(0, 1024);
        let (emitted, result) = run_decoder(&mut d, &wire, &cuts);
        prop_assert!(result.is_ok(), "{result:?}");
        prop_assert_eq!(emitted, chunks.iter().map(Vec::len).sum::<usize>());
    }
}

// ---------------------------------------------------------------------------------------------
// x-amz-copy-source

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn copy_source_is_total(
        value in prop_oneof![
            any::<String>(),
            "[ -~]{0,60}",
            (component(), component(), proptest::option::of("versionId=[ -~]{0,10}|[ -~]{0,10}"))
                .prop_map(|(b, k, q)| match q {
                    Some(q) => format!("{b}/{k}?{q}"),
                    None => format!("/{b}/{k}"),
                }),
        ],
    ) {
        match parse_copy_source(&value) {
            Ok((bucket, key)) => {
                prop_assert!(!bucket.is_empty() && !key.is_empty());
            }
            Err(e) => {
                prop_assert_eq!(e.status.as_u16(), 400);
                prop_assert_eq!(e.code, "InvalidArgument");
            }
        }
    }

    /// An encoded bucket/key pair, with or without the leading slash, parses back exactly.
    #[test]
    fn copy_source_round_trips(
        bucket in "[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]",
        key in any::<String>().prop_filter("non-empty", |k| !k.is_empty()),
        slash in any::<bool>(),
        lower in any::<bool>(),
    ) {
        let value = format!(
            "{}{bucket}/{}",
            if slash { "/" } else { "" },
            encode_bytes(key.as_bytes(), lower)
        );
        let (b, k) = parse_copy_source(&value).expect("valid copy source");
        prop_assert_eq!(b, bucket);
        prop_assert_eq!(k, key);
    }
}

#[test]
fn copy_source_edge_cases() {
    for bad in [
        "",
        "/",
        "//",
        "bucket",
        "bucket/",
        "/bucket/",
        "%ff/key",
        "bucket/%C0%AF",
        "/%",
    ] {
        let e = parse_copy_source(bad).expect_err(bad);
        assert_eq!(e.code, "InvalidArgument", "{bad}");
    }
    // A relative-looking source is just a bucket named ".." (which cannot exist) and a key.
    assert_eq!(
        parse_copy_source("../../etc/passwd").expect("parses"),
        ("..".to_string(), "../etc/passwd".to_string())
    );
    assert_eq!(
        parse_copy_source("b/k?versionId=v1")
            .expect_err("versions")
            .code,
        "InvalidArgument"
    );
}
