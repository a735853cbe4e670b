//! Router: method + path + query + headers → operation, bucket, key.
//!
//! Input: a request head as text (see `hansa_fuzz::parse_head`), routed with and without
//! virtual-host base domains.
//!
//! Invariants: routing is deterministic; a bucket or key, when present, is non-empty and is
//! exactly what the request named (the decoded path segment, or the Host label under a base
//! domain); safe methods (GET, HEAD) never reach an operation that writes; copies only happen
//! with a copy-source header; XML bodies are only read from PUT and POST.

#![no_main]

use hansa::s3::router::{route, Operation, Route};
use http::Method;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

const BASE_DOMAINS: [&str; 2] = ["s3.localhost", "s3.example.test"];

fn decoded(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn check(parts: &http::request::Parts, domains: &[String]) {
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let Ok(routed) = route(method, uri, headers, domains) else {
        return;
    };
    let again: Route = route(method, uri, headers, domains).unwrap();
    assert_eq!(
        (
            &routed.operation,
            &routed.bucket,
            &routed.key,
            &routed.query
        ),
        (&again.operation, &again.bucket, &again.key, &again.query)
    );
    let _ = routed.resource();

    assert!(routed.bucket.as_deref() != Some(""));
    assert!(routed.key.as_deref() != Some(""));
    if routed.key.is_some() {
        assert!(routed.bucket.is_some(), "key without bucket: {routed:?}");
    }

    let path = uri.path();
    let rest = path.strip_prefix('/').unwrap_or(path);
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .map(str::to_ascii_lowercase);
    // The Host is `<bucket>.<base domain>[:port]`.
    let from_host = |bucket: &str| {
        !domains.is_empty()
            && host.as_deref().is_some_and(|host| {
                domains.iter().any(|domain| {
                    host.strip_prefix(bucket)
                        .and_then(|h| h.strip_prefix('.'))
                        .and_then(|h| h.strip_prefix(domain.as_str()))
                        .is_some_and(|port| {
                            // As the router: no port is split off a bracketed (IPv6) host.
                            port.is_empty()
                                || (!host.starts_with('[')
                                    && port
                                        .strip_prefix(':')
                                        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
                        })
                })
            })
    };
    match &routed.bucket {
        Some(bucket) if from_host(bucket) => {
            assert_eq!(routed.key, decoded(rest).filter(|k| !k.is_empty()));
        }
        Some(bucket) => {
            let (raw_bucket, raw_key) = rest.split_once('/').unwrap_or((rest, ""));
            assert_eq!(Some(bucket.clone()), decoded(raw_bucket), "{uri}");
            assert_eq!(routed.key, decoded(raw_key).filter(|k| !k.is_empty()));
        }
        None => assert!(matches!(
            routed.operation,
            Operation::ListBuckets | Operation::NotImplemented(_)
        )),
    }

    if method == Method::GET || method == Method::HEAD {
        assert!(
            !routed.operation.is_write(),
            "{method} {uri} routed to {:?}",
            routed.operation
        );
    }
    if matches!(
        routed.operation,
        Operation::CopyObject | Operation::UploadPartCopy
    ) {
        assert!(headers.contains_key("x-amz-copy-source"));
    }
    if routed.operation.takes_xml_body() {
        assert!(method == Method::PUT || method == Method::POST);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(parts) = hansa_fuzz::parse_head(data).and_then(|head| head.parts()) else {
        return;
    };
    check(&parts, &[]);
    let domains: Vec<String> = BASE_DOMAINS.iter().map(|d| d.to_string()).collect();
    check(&parts, &domains);
});
