//! Object and bucket tagging (issue 14): Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging,
//! `x-amz-tagging` on PutObject, CopyObject (with the tagging directive), CreateMultipartUpload
//! and form uploads, `x-amz-tagging-count`, S3's limits and errors (each changing nothing),
//! the s3:PutObjectTagging permission, and a tag change racing an overwrite.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective};
use hansa_conformance::post_form::v4_fields;
use hansa_conformance::raw::{self, send_reqwest, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    assert_s3_err, assert_s3_status, create_bucket, get, hansa_binary, md5_b64, put, xml_all,
    xml_text, TestGateway, ADMIN, LIMITED,
};
use serde_json::json;

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().expect("tag")
}

fn tagging(tags: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
        .expect("tagging")
}

/// The object's tags, as (key, value) pairs in the order they are answered.
async fn object_tags(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    s3.get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get tagging {bucket}/{key}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A request signed by the admin key, with `headers` and `body`.
async fn signed(
    gw: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = raw::request(method, &gw.url(path));
    for (name, value) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Signer::new(ADMIN).sign(&mut req, &Payload::Bytes(body.to_vec()));
    send_reqwest(req, body.to_vec()).await
}

fn assert_error(r: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(
        (r.status, r.code().as_deref()),
        (status, Some(code)),
        "{what}: {}",
        r.text()
    );
}

#[tokio::test]
async fn object_tags_round_trip_without_touching_the_bytes() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "tags").await;
    put(&s3, "tags", "obj", b"the object's bytes").await;
    let before = s3
        .head_object()
        .bucket("tags")
        .key("obj")
        .send()
        .await
        .unwrap();

    // Untagged: an empty tag set, and no count.
    assert!(object_tags(&s3, "tags", "obj").await.is_empty());
    let got = s3
        .get_object()
        .bucket("tags")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);

    let set = [
        ("project", "hansa"),
        ("Größe", "groß 1"),
        ("a b", "x+y=z:/@_.-"),
        ("empty", ""),
    ];
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&set))
        .send()
        .await
        .expect("put tagging");
    // Answered in the order given.
    assert_eq!(object_tags(&s3, "tags", "obj").await, pairs(&set));
    let got = s3
        .get_object()
        .bucket("tags")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(4));
    assert_eq!(got.e_tag(), before.e_tag());
    assert_eq!(got.last_modified(), before.last_modified());
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"the object's bytes"
    );
    let head = signed(&gw, "HEAD", "tags/obj", &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-amz-tagging-count"), Some("4"));

    // A new set replaces the old one whole.
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&[("only", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "tags", "obj").await,
        pairs(&[("only", "one")])
    );

    // The document as S3 answers it: namespaced, every tag with Key and Value.
    let doc = signed(&gw, "GET", "tags/obj?tagging", &[], b"").await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.text()
            .contains("<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"),
        "{}",
        doc.text()
    );
    assert_eq!(xml_all(&doc.text(), "Key"), vec!["only"]);

    // DeleteObjectTagging: 204 and no tags; so does an empty set.
    let deleted = signed(&gw, "DELETE", "tags/obj?tagging", &[], b"").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(object_tags(&s3, "tags", "obj").await.is_empty());
    let head = signed(&gw, "HEAD", "tags/obj", &[], b"").await;
    assert_eq!(head.header("x-amz-tagging-count"), None);
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&[("k", "v")]))
        .send()
        .await
        .unwrap();
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&[]))
        .send()
        .await
        .unwrap();
    assert!(object_tags(&s3, "tags", "obj").await.is_empty());
    let after = s3
        .head_object()
        .bucket("tags")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(after.e_tag(), before.e_tag());
    gw.shutdown().await;
}

#[tokio::test]
async fn writes_tag_what_they_create() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "writes").await;

    // PutObject with x-amz-tagging (query form: `+` and %20 are spaces).
    s3.put_object()
        .bucket("writes")
        .key("src")
        .body(b"source".to_vec().into())
        .tagging("team=storage+ops&tier=gold%2Fsilver&flag")
        .send()
        .await
        .expect("put with tags");
    let src_tags = pairs(&[
        ("team", "storage ops"),
        ("tier", "gold/silver"),
        ("flag", ""),
    ]);
    assert_eq!(object_tags(&s3, "writes", "src").await, src_tags);
    let got = s3
        .get_object()
        .bucket("writes")
        .key("src")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(3));

    // CopyObject: COPY (the default, and named) keeps the source's tags ...
    for (dest, directive) in [
        ("copy-default", None),
        ("copy-copy", Some(TaggingDirective::Copy)),
    ] {
        s3.copy_object()
            .bucket("writes")
            .key(dest)
            .copy_source("writes/src")
            .set_tagging_directive(directive)
            .tagging("ignored=yes")
            .send()
            .await
            .expect("copy");
        assert_eq!(object_tags(&s3, "writes", dest).await, src_tags, "{dest}");
    }
    // ... REPLACE takes the request's, or none.
    s3.copy_object()
        .bucket("writes")
        .key("copy-replace")
        .copy_source("writes/src")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("new=1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "writes", "copy-replace").await,
        pairs(&[("new", "1")])
    );
    s3.copy_object()
        .bucket("writes")
        .key("copy-none")
        .copy_source("writes/src")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();
    assert!(object_tags(&s3, "writes", "copy-none").await.is_empty());
    let bad = signed(
        &gw,
        "PUT",
        "writes/copy-bad",
        &[
            ("x-amz-copy-source", "/writes/src"),
            ("x-amz-tagging-directive", "MERGE"),
        ],
        b"",
    )
    .await;
    assert_error(&bad, 400, "InvalidArgument", "unknown tagging directive");
    assert_s3_status!(
        s3.head_object()
            .bucket("writes")
            .key("copy-bad")
            .send()
            .await,
        404
    );

    // CreateMultipartUpload's tags go to the completed object.
    let upload = s3
        .create_multipart_upload()
        .bucket("writes")
        .key("mp")
        .tagging("from=upload")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("writes")
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .body(b"one part".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("writes")
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "writes", "mp").await,
        pairs(&[("from", "upload")])
    );

    // Tags do not survive an overwrite: a new PUT without tags has none, as on S3.
    put(&s3, "writes", "src", b"overwritten").await;
    assert!(object_tags(&s3, "writes", "src").await.is_empty());
    let head = signed(&gw, "HEAD", "writes/src", &[], b"").await;
    assert_eq!(head.header("x-amz-tagging-count"), None);
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_tag_sets_are_refused_with_s3s_errors_and_change_nothing() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "lim").await;
    s3.put_object()
        .bucket("lim")
        .key("obj")
        .body(b"kept".to_vec().into())
        .tagging("keep=me")
        .send()
        .await
        .unwrap();
    let kept = pairs(&[("keep", "me")]);

    // At the limits: 10 tags, keys of 128 and values of 256 characters.
    let k = |i: usize| format!("{i:0>128}");
    let v = "v".repeat(256);
    let ten: Vec<(String, String)> = (0..10).map(|i| (k(i), v.clone())).collect();
    let ten_refs: Vec<(&str, &str)> = ten.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    s3.put_object_tagging()
        .bucket("lim")
        .key("edge")
        .tagging(tagging(&ten_refs))
        .send()
        .await
        .expect_err("no such key yet");
    put(&s3, "lim", "edge", b"edge").await;
    s3.put_object_tagging()
        .bucket("lim")
        .key("edge")
        .tagging(tagging(&ten_refs))
        .send()
        .await
        .expect("10 tags at the length limits");
    assert_eq!(object_tags(&s3, "lim", "edge").await, ten);

    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven_refs: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let cases: Vec<RefusedSet> = vec![
        ("11 tags", eleven_refs.clone(), "BadRequest"),
        (
            "129-character key",
            vec![(long_key.as_str(), "v")],
            "InvalidTag",
        ),
        (
            "257-character value",
            vec![("k", long_value.as_str())],
            "InvalidTag",
        ),
        ("duplicate keys", vec![("k", "1"), ("k", "2")], "InvalidTag"),
        ("aws: prefix", vec![("aws:created", "v")], "InvalidTag"),
        ("character in key", vec![("semi;colon", "v")], "InvalidTag"),
        ("character in value", vec![("k", "a*b")], "InvalidTag"),
        ("empty key", vec![("", "v")], "InvalidTag"),
    ];
    for (what, set, code) in cases.iter().map(|(w, s, c)| (*w, s, *c)) {
        assert_s3_err!(
            s3.put_object_tagging()
                .bucket("lim")
                .key("obj")
                .tagging(tagging(set))
                .send()
                .await,
            400,
            code
        );
        assert_eq!(object_tags(&s3, "lim", "obj").await, kept, "{what}");
        // The same set on PutObject's header: refused, and no object written.
        let header = set
            .iter()
            .map(|(k, v)| format!("{}={}", urlencoding(k), urlencoding(v)))
            .collect::<Vec<_>>()
            .join("&");
        let expected = if what == "duplicate keys" {
            "InvalidArgument"
        } else {
            code
        };
        assert_s3_err!(
            s3.put_object()
                .bucket("lim")
                .key("new")
                .body(b"x".to_vec().into())
                .tagging(&header)
                .send()
                .await,
            400,
            expected
        );
        assert_s3_status!(s3.head_object().bucket("lim").key("new").send().await, 404);
        assert_s3_err!(
            s3.create_multipart_upload()
                .bucket("lim")
                .key("new")
                .tagging(&header)
                .send()
                .await,
            400,
            expected
        );
    }
    // No upload was started by the refused creations.
    let uploads = s3
        .list_multipart_uploads()
        .bucket("lim")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());

    // A header that is not URL query parameters.
    for header in ["a=b=c", "TagSet=[{Key=string,Value=string}]", "k=%ff"] {
        let r = signed(
            &gw,
            "PUT",
            "lim/obj",
            &[("x-amz-tagging", header)],
            b"new bytes",
        )
        .await;
        assert_error(&r, 400, "InvalidArgument", header);
        assert_eq!(get(&s3, "lim", "obj").await, b"kept");
    }

    // Documents that are not a Tagging document.
    for doc in [
        "<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        "<Tagging></Tagging>",
        "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>",
        "not xml",
        "<Tags><TagSet/></Tags>",
    ] {
        let r = signed(
            &gw,
            "PUT",
            "lim/obj?tagging",
            &[("content-md5", &md5_b64(doc.as_bytes()))],
            doc.as_bytes(),
        )
        .await;
        assert_error(&r, 400, "MalformedXML", doc);
        let r = signed(
            &gw,
            "PUT",
            "lim?tagging",
            &[("content-md5", &md5_b64(doc.as_bytes()))],
            doc.as_bytes(),
        )
        .await;
        assert_error(&r, 400, "MalformedXML", doc);
    }
    assert_eq!(object_tags(&s3, "lim", "obj").await, kept);
    assert_eq!(get(&s3, "lim", "obj").await, b"kept");
    assert_s3_err!(
        s3.get_bucket_tagging().bucket("lim").send().await,
        404,
        "NoSuchTagSet"
    );
    gw.shutdown().await;
}

/// A tag set that breaks a rule: what it breaks, its tags, and the error code S3 answers.
type RefusedSet<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

/// Percent-encodes everything but unreserved characters, as a query value.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn missing_objects_buckets_and_versions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "miss").await;
    assert_s3_err!(
        s3.get_object_tagging()
            .bucket("miss")
            .key("nope")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    assert_s3_err!(
        s3.put_object_tagging()
            .bucket("miss")
            .key("nope")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    assert_s3_err!(
        s3.delete_object_tagging()
            .bucket("miss")
            .key("nope")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    assert_s3_err!(
        s3.get_object_tagging().bucket("gone").key("k").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.get_bucket_tagging().bucket("gone").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.put_bucket_tagging()
            .bucket("gone")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await,
        404,
        "NoSuchBucket"
    );

    // Until buckets are versioned, `null` names the current version; another id of the
    // gateway's form is NoSuchVersion, anything else InvalidArgument.
    put(&s3, "miss", "obj", b"x").await;
    s3.put_object_tagging()
        .bucket("miss")
        .key("obj")
        .version_id("null")
        .tagging(tagging(&[("v", "null")]))
        .send()
        .await
        .expect("versionId=null");
    assert_eq!(
        s3.get_object_tagging()
            .bucket("miss")
            .key("obj")
            .version_id("null")
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        1
    );
    assert_s3_err!(
        s3.put_object_tagging()
            .bucket("miss")
            .key("obj")
            .version_id("0190a1b2c3d4e5f60718293a4b5c6d7e")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await,
        404,
        "NoSuchVersion"
    );
    assert_s3_err!(
        s3.delete_object_tagging()
            .bucket("miss")
            .key("obj")
            .version_id("not-a-version")
            .send()
            .await,
        400,
        "InvalidArgument"
    );
    assert_eq!(
        object_tags(&s3, "miss", "obj").await,
        pairs(&[("v", "null")])
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn bucket_tags_round_trip() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "btags").await;
    assert_s3_err!(
        s3.get_bucket_tagging().bucket("btags").send().await,
        404,
        "NoSuchTagSet"
    );
    let fifty: Vec<(String, String)> = (0..50)
        .map(|i| (format!("key {i}"), format!("v{i}")))
        .collect();
    let fifty_refs: Vec<(&str, &str)> = fifty
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(&fifty_refs))
        .send()
        .await
        .expect("50 bucket tags");
    let got: Vec<(String, String)> = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(got, fifty);

    let mut fifty_one = fifty_refs.clone();
    fifty_one.push(("one more", "x"));
    for (set, what) in [
        (fifty_one, "51 tags"),
        (vec![("aws:cloudformation:stack", "x")], "aws: prefix"),
        (vec![("k", "1"), ("k", "2")], "duplicate keys"),
        (vec![("k", "with#hash")], "character"),
    ] {
        let e = assert_s3_err!(
            s3.put_bucket_tagging()
                .bucket("btags")
                .tagging(tagging(&set))
                .send()
                .await,
            400,
            "InvalidTag"
        );
        assert!(e.message.is_some(), "{what}");
    }
    assert_eq!(
        s3.get_bucket_tagging()
            .bucket("btags")
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        50
    );

    // S3 wants the document's integrity proven.
    let doc = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";
    let r = signed(&gw, "PUT", "btags?tagging", &[], doc.as_bytes()).await;
    assert_error(&r, 400, "InvalidRequest", "no Content-MD5");
    let r = signed(
        &gw,
        "PUT",
        "btags?tagging",
        &[("content-md5", &md5_b64(doc.as_bytes()))],
        doc.as_bytes(),
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    let r = signed(&gw, "GET", "btags?tagging", &[], b"").await;
    assert_eq!(xml_text(&r.text(), "Key").as_deref(), Some("k"));

    let r = signed(&gw, "DELETE", "btags?tagging", &[], b"").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_s3_err!(
        s3.get_bucket_tagging().bucket("btags").send().await,
        404,
        "NoSuchTagSet"
    );
    // Bucket tags are not object tags.
    put(&s3, "btags", "obj", b"x").await;
    assert!(object_tags(&s3, "btags", "obj").await.is_empty());
    gw.shutdown().await;
}

/// PutObjectTagging racing overwrites of the same key, end to end: every overwrite that was
/// answered stays the current version, and the tags are the overwrite's or the tag change's.
/// The window in which a tag change could put back the version it read is narrow over HTTP
/// (a reverted lock order passes here); `store::tests::a_tag_change_waits_for_the_key_and_
/// keeps_the_overwrite` holds the key's lock to prove the order deterministically.
#[tokio::test]
async fn a_tag_change_racing_an_overwrite_does_not_undo_it() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "race").await;
    put(&s3, "race", "k", b"generation 0").await;
    for round in 1..=25 {
        let body = format!("generation {round}");
        let overwrite = s3
            .put_object()
            .bucket("race")
            .key("k")
            .body(body.clone().into_bytes().into())
            .tagging(format!("gen={round}"))
            .send();
        // Started a little later each round, to land at different points of the overwrite.
        let delay = Duration::from_micros(round * 400);
        let retag = async {
            tokio::time::sleep(delay).await;
            s3.put_object_tagging()
                .bucket("race")
                .key("k")
                .tagging(tagging(&[("retag", &round.to_string())]))
                .send()
                .await
        };
        let (written, retagged) = tokio::join!(overwrite, retag);
        written.expect("overwrite");
        retagged.expect("retag");
        assert_eq!(
            get(&s3, "race", "k").await,
            body.as_bytes(),
            "round {round}"
        );
        let tags = object_tags(&s3, "race", "k").await;
        let gen = pairs(&[("gen", &round.to_string())]);
        let retag = pairs(&[("retag", &round.to_string())]);
        assert!(tags == gen || tags == retag, "round {round}: {tags:?}");
    }
    gw.shutdown().await;
}

/// Tagging is the owner's, or whom a bucket policy allows: no ACL grants it, and a write that
/// tags what it creates also needs s3:PutObjectTagging.
#[tokio::test]
async fn tagging_needs_its_own_permission() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let limited = gw.client_for(LIMITED);
    create_bucket(&s3, "perm").await;
    put(&s3, "perm", "obj", b"x").await;
    // Outside its scope, with a public-read-write bucket ACL: still no tagging.
    s3.put_bucket_acl()
        .bucket("perm")
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .expect("acl");
    assert_s3_err!(
        limited
            .get_object_tagging()
            .bucket("perm")
            .key("obj")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited
            .put_object_tagging()
            .bucket("perm")
            .key("obj")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited.get_bucket_tagging().bucket("perm").send().await,
        403,
        "AccessDenied"
    );
    // The ACL lets it write, but not tag what it writes.
    put(&limited, "perm", "acl-write", b"y").await;
    assert_s3_err!(
        limited
            .put_object()
            .bucket("perm")
            .key("acl-tagged")
            .body(b"y".to_vec().into())
            .tagging("k=v")
            .send()
            .await,
        403,
        "AccessDenied"
    );

    // A policy denying s3:PutObjectTagging refuses tagged writes and PutObjectTagging, even
    // to a key whose scope covers the bucket.
    let deny = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObjectTagging",
            "Resource": "arn:aws:s3:::perm/*"
        }, {
            "Effect": "Allow",
            "Principal": {"AWS": LIMITED.access_key_id},
            "Action": ["s3:GetObjectTagging"],
            "Resource": "arn:aws:s3:::perm/*"
        }]
    })
    .to_string();
    s3.put_bucket_policy()
        .bucket("perm")
        .policy(deny)
        .send()
        .await
        .expect("policy");
    assert_s3_err!(
        s3.put_object()
            .bucket("perm")
            .key("denied")
            .body(b"z".to_vec().into())
            .tagging("k=v")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_status!(
        s3.head_object().bucket("perm").key("denied").send().await,
        404
    );
    assert_s3_err!(
        s3.put_object_tagging()
            .bucket("perm")
            .key("obj")
            .tagging(tagging(&[("k", "v")]))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    put(&s3, "perm", "untagged", b"fine").await;
    // The policy's Allow lets the other key read tags.
    assert!(object_tags(&limited, "perm", "obj").await.is_empty());
    gw.shutdown().await;
}

/// A form upload's `tagging` field (a Tagging document) tags the object it stores.
#[tokio::test]
async fn form_uploads_take_a_tagging_document() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "form").await;
    let doc =
        "<Tagging><TagSet><Tag><Key>source</Key><Value>web form</Value></Tag></TagSet></Tagging>";
    let post = |tagging: &str| {
        let conditions = vec![
            json!({ "bucket": "form" }),
            json!({ "key": "up" }),
            json!({ "tagging": tagging }),
        ];
        let mut fields = vec![
            ("key".to_string(), "up".to_string()),
            ("tagging".to_string(), tagging.to_string()),
        ];
        fields.extend(v4_fields(
            ADMIN,
            SystemTime::now(),
            SystemTime::now() + Duration::from_secs(600),
            &conditions,
        ));
        form_request(&gw, fields, b"form bytes")
    };
    let r = post(doc).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        object_tags(&s3, "form", "up").await,
        pairs(&[("source", "web form")])
    );

    let eleven: String = (0..11)
        .map(|i| format!("<Tag><Key>k{i}</Key><Value>v</Value></Tag>"))
        .collect();
    let r = post(&format!("<Tagging><TagSet>{eleven}</TagSet></Tagging>")).await;
    assert_error(&r, 400, "BadRequest", "11 tags in a form");
    let r = post("<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>").await;
    assert_error(&r, 400, "MalformedXML", "malformed form tagging");
    assert_eq!(get(&s3, "form", "up").await, b"form bytes");
    assert_eq!(
        object_tags(&s3, "form", "up").await,
        pairs(&[("source", "web form")])
    );
    gw.shutdown().await;
}

/// A multipart/form-data POST of `fields` and then the file.
async fn form_request(gw: &TestGateway, fields: Vec<(String, String)>, file: &[u8]) -> Response {
    let boundary = "----hansa-tagging-form";
    let mut body = Vec::new();
    for (name, value) in &fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = raw::request("POST", &gw.url("form"));
    req.headers_mut().insert(
        "content-type",
        format!("multipart/form-data; boundary={boundary}")
            .parse()
            .unwrap(),
    );
    send_reqwest(req, body).await
}

/// Where tags live, as docs/LAYOUT.md says: an object's in its index record only, so an index
/// rebuilt from the backends brings the object back untagged; a bucket's in its settings, which
/// the bucket markers carry through the rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_index_keeps_bucket_tags_and_loses_object_tags() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "rebuilt").await;
    s3.put_object()
        .bucket("rebuilt")
        .key("obj")
        .body(b"bytes".to_vec().into())
        .tagging("k=v")
        .send()
        .await
        .unwrap();
    s3.put_bucket_tagging()
        .bucket("rebuilt")
        .tagging(tagging(&[("cost-center", "42")]))
        .send()
        .await
        .unwrap();

    if let Some(running) = gw.running.take() {
        running.shutdown(Duration::from_secs(5)).await;
    }
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    let config = gw.dir.path().join("rebuild.toml");
    std::fs::write(&config, gw.config_toml()).expect("write configuration");
    let out = std::process::Command::new(hansa_binary())
        .args(["rebuild-index", "--json", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hansa rebuild-index");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.restart().await;
    let s3 = gw.client();
    assert_eq!(get(&s3, "rebuilt", "obj").await, b"bytes");
    assert!(object_tags(&s3, "rebuilt", "obj").await.is_empty());
    let bucket_tags = s3
        .get_bucket_tagging()
        .bucket("rebuilt")
        .send()
        .await
        .expect("bucket tags after the rebuild");
    assert_eq!(bucket_tags.tag_set().len(), 1);
    assert_eq!(bucket_tags.tag_set()[0].value(), "42");
    gw.shutdown().await;
}
