//! ListObjects (v1) and ListObjectsV2: pagination, prefixes, delimiters, start-after,
//! fetch-owner, max-keys, encoding-type=url. Full listings are compared with the expected keys.

use std::collections::BTreeSet;

use aws_sdk_s3::types::EncodingType;
use hansa_conformance::raw::{send_reqwest, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{assert_s3_err, create_bucket, put, xml_all, xml_text, TestGateway, ADMIN};

fn key_set() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a.txt",
        "b/1",
        "b/2",
        "b/c/3",
        "c",
        "d/",
        "e/f/g",
        "photos/2024/feb/y.jpg",
        "photos/2024/jan/x.jpg",
        "photos/2025/z.jpg",
        "zz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..25 {
        keys.push(format!("n/{i:03}"));
    }
    keys.sort();
    keys
}

async fn setup() -> (TestGateway, aws_sdk_s3::Client, Vec<String>) {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "list").await;
    let keys = key_set();
    let mut puts = Vec::new();
    for k in &keys {
        let s3 = s3.clone();
        let k = k.clone();
        puts.push(async move { put(&s3, "list", &k, k.as_bytes()).await });
    }
    futures::future::join_all(puts).await;
    (gw, s3, keys)
}

async fn signed_get(gw: &TestGateway, path_and_query: &str) -> Response {
    let mut req = hansa_conformance::raw::request("GET", &gw.url(path_and_query));
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(Vec::new()));
    send_reqwest(req, Vec::new()).await
}

#[tokio::test]
async fn v2_paginates_the_full_listing() {
    let (gw, s3, keys) = setup().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list page");
        pages += 1;
        assert!(out.contents().len() <= 7);
        assert_eq!(out.key_count(), Some(out.contents().len() as i32));
        assert_eq!(out.max_keys(), Some(7));
        assert_eq!(out.name(), Some("list"));
        assert_eq!(out.continuation_token(), token.as_deref());
        for o in out.contents() {
            seen.push(o.key().expect("key").to_string());
            assert_eq!(o.size(), Some(o.key().expect("key").len() as i64));
            assert!(o.e_tag().is_some_and(|e| e.starts_with('"')));
            assert!(o.last_modified().is_some());
            assert!(
                o.owner().is_none(),
                "V2 returns no Owner without fetch-owner"
            );
        }
        if out.is_truncated() == Some(true) {
            token = Some(out.next_continuation_token().expect("token").to_string());
        } else {
            assert!(out.next_continuation_token().is_none());
            break;
        }
        assert!(pages < 100);
    }
    assert_eq!(pages, keys.len().div_ceil(7));
    assert_eq!(seen, keys, "every key exactly once, in order");
    gw.shutdown().await;
}

#[tokio::test]
async fn v2_start_after_prefix_and_fetch_owner() {
    let (gw, s3, keys) = setup().await;
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .start_after("n/010")
        .send()
        .await
        .expect("start-after");
    let got: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let expected: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k > "n/010")
        .collect();
    assert_eq!(got, expected);
    assert_eq!(out.start_after(), Some("n/010"));

    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("photos/2024/")
        .fetch_owner(true)
        .send()
        .await
        .expect("prefix");
    let got: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, vec!["photos/2024/feb/y.jpg", "photos/2024/jan/x.jpg"]);
    assert_eq!(out.prefix(), Some("photos/2024/"));
    for o in out.contents() {
        assert!(
            o.owner().and_then(|w| w.id()).is_some(),
            "fetch-owner returns Owner"
        );
    }

    let none = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("no-such-prefix/")
        .send()
        .await
        .expect("empty prefix");
    assert!(none.contents().is_empty());
    assert_eq!(none.key_count(), Some(0));
    assert_eq!(none.is_truncated(), Some(false));
    gw.shutdown().await;
}

#[tokio::test]
async fn v2_delimiter_common_prefixes() {
    let (gw, s3, _) = setup().await;
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .delimiter("/")
        .send()
        .await
        .expect("delimiter");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, vec!["a.txt", "c", "zz"]);
    assert_eq!(prefixes, vec!["b/", "d/", "e/", "n/", "photos/"]);
    assert_eq!(
        out.key_count(),
        Some(8),
        "KeyCount counts keys and common prefixes"
    );
    assert_eq!(out.delimiter(), Some("/"));

    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("photos/")
        .delimiter("/")
        .send()
        .await
        .expect("prefix + delimiter");
    assert!(out.contents().is_empty());
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["photos/2024/", "photos/2025/"]);

    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .expect("b/");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, vec!["b/1", "b/2"]);
    assert_eq!(prefixes, vec!["b/c/"]);

    // "d/" itself is a key equal to the prefix: listed as a key under prefix "d/".
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("d/")
        .delimiter("/")
        .send()
        .await
        .expect("d/");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["d/"]);
    assert!(out.common_prefixes().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn v2_delimiter_paginates_prefixes_and_keys() {
    let (gw, s3, _) = setup().await;
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        let n = out.contents().len() + out.common_prefixes().len();
        assert!(n <= 2, "max-keys bounds keys + prefixes, got {n}");
        entries.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        entries.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_string);
        } else {
            token = None;
            break;
        }
    }
    assert!(token.is_none(), "listing ended");
    entries.sort();
    assert_eq!(
        entries,
        vec!["a.txt", "b/", "c", "d/", "e/", "n/", "photos/", "zz"],
        "each key and prefix exactly once"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn v2_max_keys_zero() {
    let (gw, s3, _) = setup().await;
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .max_keys(0)
        .send()
        .await
        .expect("max-keys=0");
    assert!(out.contents().is_empty());
    assert!(out.common_prefixes().is_empty());
    assert_eq!(out.key_count(), Some(0));
    assert_eq!(out.max_keys(), Some(0));
    gw.shutdown().await;
}

#[tokio::test]
async fn v2_max_keys_above_1000_is_capped() {
    let (gw, s3, keys) = setup().await;
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .max_keys(5000)
        .send()
        .await
        .expect("max-keys=5000");
    assert_eq!(out.contents().len(), keys.len());
    assert!(out.max_keys().is_some_and(|m| m <= 1000 || m == 5000));
    gw.shutdown().await;
}

#[tokio::test]
async fn v1_marker_pagination() {
    let (gw, s3, keys) = setup().await;
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..50 {
        let out = s3
            .list_objects()
            .bucket("list")
            .max_keys(4)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("v1 page");
        assert!(out.contents().len() <= 4);
        assert_eq!(out.max_keys(), Some(4));
        assert_eq!(out.marker().filter(|m| !m.is_empty()), marker.as_deref());
        for o in out.contents() {
            seen.push(o.key().expect("key").to_string());
            // V1 always returns the owner.
            assert!(o.owner().and_then(|w| w.id()).is_some());
        }
        if out.is_truncated() == Some(true) {
            // Without a delimiter S3 may omit NextMarker: the last key is the marker.
            marker = Some(
                out.next_marker()
                    .map(str::to_string)
                    .unwrap_or_else(|| seen.last().expect("a key").clone()),
            );
        } else {
            marker = None;
            break;
        }
    }
    assert!(marker.is_none(), "listing ended");
    assert_eq!(seen, keys);
    gw.shutdown().await;
}

#[tokio::test]
async fn v1_prefix_delimiter_and_next_marker() {
    let (gw, s3, _) = setup().await;
    let out = s3
        .list_objects()
        .bucket("list")
        .delimiter("/")
        .send()
        .await
        .expect("v1 delimiter");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, vec!["a.txt", "c", "zz"]);
    assert_eq!(prefixes, vec!["b/", "d/", "e/", "n/", "photos/"]);
    assert_eq!(out.is_truncated(), Some(false));

    // With a delimiter and truncation, NextMarker is returned and resumes the listing.
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..20 {
        let out = s3
            .list_objects()
            .bucket("list")
            .delimiter("/")
            .max_keys(3)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("page");
        all.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        all.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        if out.is_truncated() == Some(true) {
            marker = Some(
                out.next_marker()
                    .expect("NextMarker with a delimiter")
                    .to_string(),
            );
        } else {
            marker = None;
            break;
        }
    }
    assert!(marker.is_none());
    all.sort();
    assert_eq!(
        all,
        vec!["a.txt", "b/", "c", "d/", "e/", "n/", "photos/", "zz"]
    );

    let out = s3
        .list_objects()
        .bucket("list")
        .prefix("n/01")
        .send()
        .await
        .expect("prefix");
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let expected: Vec<String> = (10..20).map(|i| format!("n/{i:03}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(out.prefix(), Some("n/01"));
    gw.shutdown().await;
}

/// Decodes an `encoding-type=url` value (S3 may encode a space as `+` or `%20`).
fn url_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .expect("utf-8")
        .into_owned()
}

#[tokio::test]
async fn encoding_type_url() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "enc").await;
    let keys = [
        "dir one/file two.txt",
        "dir one/plus+sign",
        "dir one/percent%41",
        "dir one/ünïcödé €",
        "dir one/amp&lt<gt>",
        "other",
    ];
    for k in keys {
        put(&s3, "enc", k, b"x").await;
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();

    for query in ["enc?list-type=2&encoding-type=url", "enc?encoding-type=url"] {
        let resp = signed_get(&gw, query).await;
        assert_eq!(resp.status, 200, "{query}: {}", resp.text());
        let xml = resp.text();
        assert_eq!(
            xml_text(&xml, "EncodingType").as_deref(),
            Some("url"),
            "{xml}"
        );
        let raw_keys = xml_all(&xml, "Key");
        for k in &raw_keys {
            assert!(
                k.bytes().all(|b| b.is_ascii_graphic()),
                "{query}: key not URL-encoded: {k:?}"
            );
        }
        let decoded: Vec<String> = raw_keys.iter().map(|k| url_decode(k)).collect();
        assert_eq!(decoded, expected, "{query}");
    }

    // With a delimiter, prefixes are encoded too.
    let resp = signed_get(
        &gw,
        "enc?list-type=2&encoding-type=url&delimiter=%2F&prefix=dir%20one",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let xml = resp.text();
    let prefixes: Vec<String> = {
        // CommonPrefixes/Prefix: take every <Prefix> after the first (the request's prefix).
        let all = xml_all(&xml, "Prefix");
        all.into_iter().skip(1).map(|p| url_decode(&p)).collect()
    };
    assert_eq!(prefixes, vec!["dir one/"], "{xml}");

    // The SDK with EncodingType::Url gets the same encoded keys.
    let out = s3
        .list_objects_v2()
        .bucket("enc")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("sdk encoding-type=url");
    let got: BTreeSet<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(url_decode)
        .collect();
    assert_eq!(got, expected.iter().cloned().collect());

    // Without encoding-type the keys come back verbatim.
    let got = hansa_conformance::list_all_keys(&s3, "enc").await;
    assert_eq!(got, expected);
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_list_arguments() {
    let (gw, s3, _) = setup().await;
    let resp = signed_get(&gw, "list?list-type=2&max-keys=-1").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("InvalidArgument"));
    let resp = signed_get(&gw, "list?list-type=2&max-keys=abc").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("InvalidArgument"));
    assert_s3_err!(
        s3.list_objects_v2()
            .bucket("list")
            .continuation_token("not-a-token-this-gateway-issued")
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    let resp = signed_get(&gw, "list?encoding-type=base64").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("InvalidArgument"));
    gw.shutdown().await;
}
