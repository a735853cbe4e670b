//! S3 versioning: bucket state, versions kept on overwrite and delete, delete markers, the null
//! version of suspended buckets, ListObjectVersions and its paging, versions through copies,
//! multipart uploads and DeleteObjects, the plain layout on the disks, and the move aside
//! failing.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, MfaDelete,
    ObjectIdentifier, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::{assert_s3_err, create_bucket, Options, TestGateway};

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put bucket versioning");
}

async fn versioned_bucket(s3: &Client, bucket: &str) {
    create_bucket(s3, bucket).await;
    set_versioning(s3, bucket, BucketVersioningStatus::Enabled).await;
}

/// Puts `body`; returns the version id S3 answered with.
async fn put_v(s3: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put")
        .version_id()
        .expect("a version id")
        .to_string()
}

async fn get_v(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}@{version}: {e:?}"));
    assert_eq!(out.version_id(), Some(version));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// (key, version id, is delete marker, is latest) of every version, in listing order.
type Row = (String, String, bool, bool);

/// Every version of the bucket, following the pages `max_keys` at a time; also how many pages.
async fn list_versions(s3: &Client, bucket: &str, max_keys: i32) -> (Vec<Row>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let out = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(max_keys)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list object versions");
        pages += 1;
        assert!(pages < 100, "the paging does not end");
        let page = page_rows(&out);
        assert!(page.len() <= max_keys as usize);
        rows.extend(page);
        if !out.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
        assert!(key_marker.is_some());
    }
    (rows, pages)
}

fn page_rows(
    out: &aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput,
) -> Vec<Row> {
    // The SDK separates versions and markers; S3's order is keys ascending, newest first, which
    // the rows get back by sorting on (key, position in the answer).
    let mut rows: Vec<(Row, i64)> = Vec::new();
    for v in out.versions() {
        rows.push((
            (
                v.key().unwrap_or_default().to_string(),
                v.version_id().unwrap_or_default().to_string(),
                false,
                v.is_latest().unwrap_or(false),
            ),
            v.last_modified()
                .map(|t| t.to_millis().unwrap_or(0))
                .unwrap_or(0),
        ));
    }
    for m in out.delete_markers() {
        rows.push((
            (
                m.key().unwrap_or_default().to_string(),
                m.version_id().unwrap_or_default().to_string(),
                true,
                m.is_latest().unwrap_or(false),
            ),
            m.last_modified()
                .map(|t| t.to_millis().unwrap_or(0))
                .unwrap_or(0),
        ));
    }
    // Within a key, newest first: by time, then by id (Hansa's ids are time-ordered).
    // The latest first, then by time and id.
    rows.sort_by(|(a, ta), (b, tb)| {
        a.0.cmp(&b.0)
            .then(b.3.cmp(&a.3))
            .then(tb.cmp(ta))
            .then_with(|| b.1.cmp(&a.1))
    });
    rows.into_iter().map(|(r, _)| r).collect()
}

#[tokio::test]
async fn enable_suspend_round_trip_and_errors() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "vstate").await;
    let got = s3
        .get_bucket_versioning()
        .bucket("vstate")
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), None, "never enabled: an empty document");
    set_versioning(&s3, "vstate", BucketVersioningStatus::Enabled).await;
    let got = s3
        .get_bucket_versioning()
        .bucket("vstate")
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled));
    set_versioning(&s3, "vstate", BucketVersioningStatus::Suspended).await;
    let got = s3
        .get_bucket_versioning()
        .bucket("vstate")
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Suspended));
    // MFA delete needs an MFA device Hansa does not have.
    let mfa = s3
        .put_bucket_versioning()
        .bucket("vstate")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .mfa_delete(MfaDelete::Enabled)
                .build(),
        )
        .send()
        .await;
    assert_s3_err!(mfa, 403, "AccessDenied");
    let bad = s3
        .put_bucket_versioning()
        .bucket("vstate")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::from("Disabled"))
                .build(),
        )
        .send()
        .await;
    assert_s3_err!(bad, 400, "IllegalVersioningConfigurationException");
    let got = s3
        .get_bucket_versioning()
        .bucket("vstate")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.status(),
        Some(&BucketVersioningStatus::Suspended),
        "unchanged"
    );
    let missing = s3.get_bucket_versioning().bucket("nope-nope").send().await;
    assert_s3_err!(missing, 404, "NoSuchBucket");
    gw.shutdown().await;
}

#[tokio::test]
async fn overwrites_keep_every_version_and_the_disks_hold_them() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "keep").await;
    let bodies: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("body number {i}").into_bytes())
        .collect();
    let mut ids = Vec::new();
    let mut inodes = Vec::new();
    for b in &bodies {
        ids.push(put_v(&s3, "keep", "dir/k", b).await);
        let plain = gw.backend_dirs()[0].join("keep/dir/k");
        inodes.push(std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(plain).expect("plain name"),
        ));
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "{ids:?}");
    for (id, body) in ids.iter().zip(&bodies) {
        assert_eq!(&get_v(&s3, "keep", "dir/k", id).await, body);
    }
    let latest = s3
        .get_object()
        .bucket("keep")
        .key("dir/k")
        .send()
        .await
        .expect("get");
    assert_eq!(latest.version_id(), Some(ids[3].as_str()));
    let head = s3
        .head_object()
        .bucket("keep")
        .key("dir/k")
        .version_id(&ids[1])
        .send()
        .await
        .expect("head old");
    assert_eq!(head.content_length(), Some(bodies[1].len() as i64));
    assert_eq!(head.version_id(), Some(ids[1].as_str()));
    // The layout: the plain name holds the current version; each noncurrent one is at its
    // hidden name, readable without Hansa.
    let key_hash = hansa_conformance::sha256_hex(b"dir/k");
    // Moved aside without copying a byte: each hidden version is the very file (inode) that
    // was at the plain name.
    for (i, id) in ids.iter().enumerate().take(3) {
        let hidden = gw.backend_dirs()[0].join(format!(".hansa/v/keep/{key_hash}/{id}"));
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(hidden).expect("hidden"));
        assert_eq!(ino, inodes[i], "version {i} was copied, not linked");
    }
    for dir in gw.backend_dirs() {
        assert_eq!(
            std::fs::read(dir.join("keep/dir/k")).expect("plain"),
            bodies[3]
        );
        for (id, body) in ids.iter().zip(&bodies).take(3) {
            let hidden = dir.join(format!(".hansa/v/keep/{key_hash}/{id}"));
            assert_eq!(&std::fs::read(&hidden).expect("hidden version"), body);
        }
    }
    // Unknown and malformed version ids.
    let unknown = s3
        .get_object()
        .bucket("keep")
        .key("dir/k")
        .version_id("0123456789abcdef0123456789abcdef")
        .send()
        .await;
    assert_s3_err!(unknown, 404, "NoSuchVersion");
    let malformed = s3
        .get_object()
        .bucket("keep")
        .key("dir/k")
        .version_id("not-a-version")
        .send()
        .await;
    assert_s3_err!(malformed, 400, "InvalidArgument");
    // ListObjects shows the current version only.
    let listed = hansa_conformance::list_all_keys(&s3, "keep").await;
    assert_eq!(listed, vec!["dir/k"]);
    // A bucket with versions left is not empty.
    s3.delete_object()
        .bucket("keep")
        .key("dir/k")
        .send()
        .await
        .expect("delete");
    let refused = s3.delete_bucket().bucket("keep").send().await;
    assert_s3_err!(refused, 409, "BucketNotEmpty");
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_markers_hide_and_removing_them_restores() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "marks").await;
    let v1 = put_v(&s3, "marks", "k", b"one").await;
    let del = s3
        .delete_object()
        .bucket("marks")
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().expect("marker id").to_string();
    assert_ne!(marker, v1);
    // GET and HEAD: 404, saying it is a delete marker.
    let got = s3.get_object().bucket("marks").key("k").send().await;
    let err = assert_s3_err!(got, 404, "NoSuchKey");
    drop(err);
    let got = s3.get_object().bucket("marks").key("k").send().await;
    let raw = got.unwrap_err().raw_response().map(|r| {
        (
            r.headers().get("x-amz-delete-marker").map(str::to_string),
            r.headers().get("x-amz-version-id").map(str::to_string),
        )
    });
    assert_eq!(raw, Some((Some("true".into()), Some(marker.clone()))));
    let head = s3.head_object().bucket("marks").key("k").send().await;
    let raw = head.unwrap_err().raw_response().map(|r| {
        (
            r.status().as_u16(),
            r.headers().get("x-amz-delete-marker").map(str::to_string),
        )
    });
    assert_eq!(raw, Some((404, Some("true".into()))));
    // Asked for by its id: 405.
    let by_id = s3
        .get_object()
        .bucket("marks")
        .key("k")
        .version_id(&marker)
        .send()
        .await;
    assert_s3_err!(by_id, 405, "MethodNotAllowed");
    // The old version is still there by id; the listing shows the marker as latest.
    assert_eq!(get_v(&s3, "marks", "k", &v1).await, b"one");
    assert!(hansa_conformance::list_all_keys(&s3, "marks")
        .await
        .is_empty());
    let (rows, _) = list_versions(&s3, "marks", 1000).await;
    assert_eq!(
        rows,
        vec![
            ("k".to_string(), marker.clone(), true, true),
            ("k".to_string(), v1.clone(), false, false),
        ]
    );
    // The plain name is gone from the disks; the hidden copy stays.
    for dir in gw.backend_dirs() {
        assert!(!dir.join("marks/k").exists());
    }
    // Deleting the marker makes the version under it current again, at its plain name.
    let undo = s3
        .delete_object()
        .bucket("marks")
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect("delete the marker");
    assert_eq!(undo.delete_marker(), Some(true));
    assert_eq!(undo.version_id(), Some(marker.as_str()));
    assert_eq!(hansa_conformance::get(&s3, "marks", "k").await, b"one");
    for dir in gw.backend_dirs() {
        assert_eq!(
            std::fs::read(dir.join("marks/k")).expect("plain again"),
            b"one"
        );
    }
    let (rows, _) = list_versions(&s3, "marks", 1000).await;
    assert_eq!(rows, vec![("k".to_string(), v1, false, true)]);
    gw.shutdown().await;
}

#[tokio::test]
async fn deleting_the_current_version_promotes_the_previous() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "promo").await;
    let v1 = put_v(&s3, "promo", "k", b"first").await;
    let v2 = put_v(&s3, "promo", "k", b"second").await;
    let v3 = put_v(&s3, "promo", "k", b"third").await;
    // A noncurrent version goes without touching the current one.
    let out = s3
        .delete_object()
        .bucket("promo")
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .expect("delete v2");
    assert_eq!(out.version_id(), Some(v2.as_str()));
    assert_eq!(out.delete_marker(), None);
    assert_eq!(hansa_conformance::get(&s3, "promo", "k").await, b"third");
    let gone = s3
        .get_object()
        .bucket("promo")
        .key("k")
        .version_id(&v2)
        .send()
        .await;
    assert_s3_err!(gone, 404, "NoSuchVersion");
    // The current one: v1 becomes current, at the plain name on the disks.
    s3.delete_object()
        .bucket("promo")
        .key("k")
        .version_id(&v3)
        .send()
        .await
        .expect("delete v3");
    let got = s3
        .get_object()
        .bucket("promo")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(got.version_id(), Some(v1.as_str()));
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"first"
    );
    let key_hash = hansa_conformance::sha256_hex(b"k");
    for dir in gw.backend_dirs() {
        assert_eq!(std::fs::read(dir.join("promo/k")).expect("plain"), b"first");
        for v in [&v1, &v2, &v3] {
            let hidden = dir.join(format!(".hansa/v/promo/{key_hash}/{v}"));
            assert!(!hidden.exists(), "{} left behind", hidden.display());
        }
    }
    // The last one: the key is gone, no marker.
    s3.delete_object()
        .bucket("promo")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .expect("delete v1");
    let (rows, _) = list_versions(&s3, "promo", 1000).await;
    assert!(rows.is_empty(), "{rows:?}");
    s3.delete_bucket()
        .bucket("promo")
        .send()
        .await
        .expect("empty bucket goes");
    gw.shutdown().await;
}

#[tokio::test]
async fn list_object_versions_pages_in_order() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "pages").await;
    let mut expected: Vec<Row> = Vec::new();
    for key in ["a", "b/c", "d"] {
        let mut rows = Vec::new();
        for i in 0..5 {
            let id = put_v(&s3, "pages", key, format!("{key}{i}").as_bytes()).await;
            rows.push((key.to_string(), id, false, false));
        }
        if key != "d" {
            let del = s3
                .delete_object()
                .bucket("pages")
                .key(key)
                .send()
                .await
                .expect("delete");
            rows.push((
                key.to_string(),
                del.version_id().expect("id").to_string(),
                true,
                false,
            ));
        }
        rows.reverse();
        rows[0].3 = true;
        expected.extend(rows);
    }
    let (all, pages) = list_versions(&s3, "pages", 1000).await;
    assert_eq!(all, expected);
    assert_eq!(pages, 1);
    let (paged, pages) = list_versions(&s3, "pages", 2).await;
    assert_eq!(paged, expected);
    assert_eq!(pages, expected.len().div_ceil(2));
    // Prefix and delimiter: `b/` rolls up into one common prefix.
    let out = s3
        .list_object_versions()
        .bucket("pages")
        .delimiter("/")
        .send()
        .await
        .expect("list with delimiter");
    let prefixes: Vec<&str> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["b/"]);
    let keys: std::collections::BTreeSet<&str> = out
        .versions()
        .iter()
        .filter_map(|v| v.key())
        .chain(out.delete_markers().iter().filter_map(|m| m.key()))
        .collect();
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), vec!["a", "d"]);
    let out = s3
        .list_object_versions()
        .bucket("pages")
        .prefix("b/")
        .send()
        .await
        .expect("list with prefix");
    assert_eq!(out.versions().len(), 5);
    assert_eq!(out.delete_markers().len(), 1);
    assert!(out.versions().iter().all(|v| v.key() == Some("b/c")));
    // A version-id marker needs a key marker.
    let bad = s3
        .list_object_versions()
        .bucket("pages")
        .version_id_marker(&expected[0].1)
        .send()
        .await;
    assert_s3_err!(bad, 400, "InvalidArgument");
    gw.shutdown().await;
}

#[tokio::test]
async fn suspended_bucket_replaces_the_null_version() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "nulls").await;
    // Written before versioning: the null version, kept once versioning is enabled.
    hansa_conformance::put(&s3, "nulls", "k", b"before").await;
    set_versioning(&s3, "nulls", BucketVersioningStatus::Enabled).await;
    let v1 = put_v(&s3, "nulls", "k", b"enabled").await;
    assert_eq!(get_v(&s3, "nulls", "k", "null").await, b"before");
    set_versioning(&s3, "nulls", BucketVersioningStatus::Suspended).await;
    // Suspended: the write is the null version and replaces the old null one; v1 stays.
    let id = put_v(&s3, "nulls", "k", b"suspended 1").await;
    assert_eq!(id, "null");
    let id = put_v(&s3, "nulls", "k", b"suspended 2").await;
    assert_eq!(id, "null");
    assert_eq!(get_v(&s3, "nulls", "k", "null").await, b"suspended 2");
    assert_eq!(get_v(&s3, "nulls", "k", &v1).await, b"enabled");
    let (rows, _) = list_versions(&s3, "nulls", 1000).await;
    assert_eq!(
        rows,
        vec![
            ("k".to_string(), "null".to_string(), false, true),
            ("k".to_string(), v1.clone(), false, false),
        ]
    );
    // DELETE makes a null delete marker in place of the null version.
    let del = s3
        .delete_object()
        .bucket("nulls")
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(del.delete_marker(), Some(true));
    assert_eq!(del.version_id(), Some("null"));
    let (rows, _) = list_versions(&s3, "nulls", 1000).await;
    assert_eq!(
        rows,
        vec![
            ("k".to_string(), "null".to_string(), true, true),
            ("k".to_string(), v1.clone(), false, false),
        ]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_objects_with_versions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "multi").await;
    let a1 = put_v(&s3, "multi", "a", b"a1").await;
    let a2 = put_v(&s3, "multi", "a", b"a2").await;
    put_v(&s3, "multi", "b", b"b1").await;
    let id = |key: &str, version: Option<&str>| {
        ObjectIdentifier::builder()
            .key(key)
            .set_version_id(version.map(str::to_string))
            .build()
            .expect("id")
    };
    let out = s3
        .delete_objects()
        .bucket("multi")
        .delete(
            Delete::builder()
                .objects(id("a", Some(&a1)))
                .objects(id("b", None))
                .objects(id("a", Some("bad id")))
                .build()
                .expect("doc"),
        )
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<_> = out
        .deleted()
        .iter()
        .map(|d| {
            (
                d.key().unwrap_or_default().to_string(),
                d.version_id().map(str::to_string),
                d.delete_marker(),
                d.delete_marker_version_id().is_some(),
            )
        })
        .collect();
    assert!(
        deleted.contains(&("a".into(), Some(a1.clone()), None, false)),
        "{deleted:?}"
    );
    assert!(
        deleted.contains(&("b".into(), None, Some(true), true)),
        "{deleted:?}"
    );
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(out.errors()[0].version_id(), Some("bad id"));
    let gone = s3
        .get_object()
        .bucket("multi")
        .key("a")
        .version_id(&a1)
        .send()
        .await;
    assert_s3_err!(gone, 404, "NoSuchVersion");
    assert_eq!(get_v(&s3, "multi", "a", &a2).await, b"a2");
    let b = s3.get_object().bucket("multi").key("b").send().await;
    assert_s3_err!(b, 404, "NoSuchKey");
    gw.shutdown().await;
}

#[tokio::test]
async fn copies_and_multipart_uploads_make_versions() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "cpv").await;
    let v1 = put_v(&s3, "cpv", "src", b"old source").await;
    put_v(&s3, "cpv", "src", b"new source").await;
    let out = s3
        .copy_object()
        .bucket("cpv")
        .key("dst")
        .copy_source(format!("cpv/src?versionId={v1}"))
        .send()
        .await
        .expect("copy an old version");
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()));
    let copy_version = out.version_id().expect("the copy's version").to_string();
    assert_eq!(get_v(&s3, "cpv", "dst", &copy_version).await, b"old source");
    // Restoring an old version over its own key is allowed.
    let restored = s3
        .copy_object()
        .bucket("cpv")
        .key("src")
        .copy_source(format!("cpv/src?versionId={v1}"))
        .send()
        .await
        .expect("restore");
    assert_eq!(
        hansa_conformance::get(&s3, "cpv", "src").await,
        b"old source"
    );
    assert_ne!(restored.version_id(), Some(v1.as_str()));
    // A multipart completion makes a version too; the one before it stays.
    let before = put_v(&s3, "cpv", "mp", b"small").await;
    let up = s3
        .create_multipart_upload()
        .bucket("cpv")
        .key("mp")
        .send()
        .await
        .expect("create");
    let upload_id = up.upload_id().expect("id").to_string();
    let part = s3
        .upload_part()
        .bucket("cpv")
        .key("mp")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart body"))
        .send()
        .await
        .expect("part");
    let done = s3
        .complete_multipart_upload()
        .bucket("cpv")
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mp_version = done.version_id().expect("a version").to_string();
    assert_ne!(mp_version, "null");
    assert_eq!(
        get_v(&s3, "cpv", "mp", &mp_version).await,
        b"multipart body"
    );
    assert_eq!(get_v(&s3, "cpv", "mp", &before).await, b"small");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failed_move_aside_refuses_the_write() {
    let gw = TestGateway::start_with(Options {
        faults: true,
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    versioned_bucket(&s3, "faulty").await;
    let v1 = put_v(&s3, "faulty", "k", b"precious").await;
    // Writes fail on one disk: the copy aside there (a write) cannot be made.
    gw.faults("disk-a").set(FaultPlan {
        writes: Fault::Fail,
        ..FaultPlan::default()
    });
    let refused = s3
        .put_object()
        .bucket("faulty")
        .key("k")
        .body(ByteStream::from_static(b"newer"))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = s3.delete_object().bucket("faulty").key("k").send().await;
    assert_s3_err!(refused, 503, "ServiceUnavailable");
    gw.faults("disk-a").clear();
    let got = s3
        .get_object()
        .bucket("faulty")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.version_id(),
        Some(v1.as_str()),
        "the old version stays current"
    );
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"precious"
    );
    let (rows, _) = list_versions(&s3, "faulty", 1000).await;
    assert_eq!(rows, vec![("k".to_string(), v1, false, true)]);
    gw.shutdown().await;
}

#[tokio::test]
async fn rebuild_index_restores_versions_and_markers() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    versioned_bucket(&s3, "rebuilt").await;
    let v1 = put_v(&s3, "rebuilt", "k", b"one").await;
    let v2 = put_v(&s3, "rebuilt", "k", b"two").await;
    put_v(&s3, "rebuilt", "gone", b"deleted later").await;
    s3.delete_object()
        .bucket("rebuilt")
        .key("gone")
        .send()
        .await
        .expect("marker");
    put_v(&s3, "rebuilt", "a//fallback", b"fallback one").await;
    put_v(&s3, "rebuilt", "a//fallback", b"fallback two").await;
    let (before, _) = list_versions(&s3, "rebuilt", 1000).await;
    assert_eq!(before.len(), 6, "{before:?}");

    // The index is lost; it is rebuilt from the disks alone.
    if let Some(r) = gw.running.take() {
        r.shutdown(std::time::Duration::from_secs(5)).await;
    }
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    {
        let config = hansa::config::Config::from_toml("rebuild.toml", gw.config_toml())
            .expect("configuration");
        let store = std::sync::Arc::new(hansa::store::Store::open(&config).await.expect("open"));
        let report = hansa::store::rebuild::rebuild_index(
            &store,
            "HANSATESTADMIN",
            "us-east-1",
            hansa::store::rebuild::RebuildOptions::default(),
        )
        .await
        .expect("rebuild");
        assert_eq!(report.objects, 2, "{report:?}");
        assert_eq!(report.versions, 4, "{report:?}");
    }
    gw.restart().await;
    let s3 = gw.client();
    let (after, _) = list_versions(&s3, "rebuilt", 1000).await;
    assert_eq!(after, before);
    assert_eq!(get_v(&s3, "rebuilt", "k", &v1).await, b"one");
    assert_eq!(get_v(&s3, "rebuilt", "k", &v2).await, b"two");
    let gone = s3.get_object().bucket("rebuilt").key("gone").send().await;
    assert_s3_err!(gone, 404, "NoSuchKey");
    let versioning = s3
        .get_bucket_versioning()
        .bucket("rebuilt")
        .send()
        .await
        .expect("get");
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    gw.shutdown().await;
}

/// The rebuild over an object store (moto, from `scripts/test-servers.sh`): noncurrent
/// versions of a plain-named key, moved aside there by a server-side copy, come back with
/// their ids and bytes, and so does a delete marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_over_an_object_store_restores_versions_and_markers() {
    let prefix = format!("rebuild-v/{:016x}", rand::random::<u64>());
    let Some(backends) = hansa_conformance::cloud_backends_toml(&prefix, &prefix) else {
        return;
    };
    // moto only: the Azure entry is dropped.
    let moto = backends
        .split("\n[[backend]]\nid = \"azurite\"")
        .next()
        .unwrap_or("");
    let mut gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{moto}\n[policy.default]\nbackends = [\"moto\"]\nreplicas = 1\nwrite_quorum = 1\n"
        ),
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    versioned_bucket(&s3, "rebuilt-cloud").await;
    let v1 = put_v(&s3, "rebuilt-cloud", "dir/k", b"one").await;
    let v2 = put_v(&s3, "rebuilt-cloud", "dir/k", b"two").await;
    let v3 = put_v(&s3, "rebuilt-cloud", "dir/k", b"three").await;
    put_v(&s3, "rebuilt-cloud", "gone", b"deleted later").await;
    s3.delete_object()
        .bucket("rebuilt-cloud")
        .key("gone")
        .send()
        .await
        .expect("marker");
    let (before, _) = list_versions(&s3, "rebuilt-cloud", 1000).await;
    assert_eq!(before.len(), 5, "{before:?}");

    if let Some(r) = gw.running.take() {
        r.shutdown(std::time::Duration::from_secs(5)).await;
    }
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    {
        let config = hansa::config::Config::from_toml("rebuild.toml", gw.config_toml())
            .expect("configuration");
        let store = std::sync::Arc::new(hansa::store::Store::open(&config).await.expect("open"));
        let report = hansa::store::rebuild::rebuild_index(
            &store,
            "HANSATESTADMIN",
            "us-east-1",
            hansa::store::rebuild::RebuildOptions::default(),
        )
        .await
        .expect("rebuild");
        assert_eq!(report.objects, 1, "{report:?}");
        assert_eq!(report.versions, 4, "{report:?}");
    }
    gw.restart().await;
    let s3 = gw.client();
    let (after, _) = list_versions(&s3, "rebuilt-cloud", 1000).await;
    assert_eq!(after, before);
    assert_eq!(get_v(&s3, "rebuilt-cloud", "dir/k", &v1).await, b"one");
    assert_eq!(get_v(&s3, "rebuilt-cloud", "dir/k", &v2).await, b"two");
    assert_eq!(get_v(&s3, "rebuilt-cloud", "dir/k", &v3).await, b"three");
    let gone = s3
        .get_object()
        .bucket("rebuilt-cloud")
        .key("gone")
        .send()
        .await;
    assert_s3_err!(gone, 404, "NoSuchKey");
    gw.shutdown().await;
}

/// kill -9 during versioned overwrites: every acknowledged version reads back by its id with
/// its bytes, and the listing names each of them once. Rounds alternate slow publishes on a
/// disk (kills after the move aside and the commit, before the publishes) with no faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versioned_overwrites_survive_kill_9() {
    use hansa_conformance::process::{free_port, spawn, write_config, TestDir};
    use rand::{Rng, SeedableRng};
    use std::sync::{Arc, Mutex};

    const ROUNDS: usize = 6;
    const PLANS: [&[(&str, &str)]; 2] = [
        &[],
        &[("disk-a", "faults = { publishes = { slow_ms = 30 } }")],
    ];
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = TestDir::new("vcrash-");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    let log = dir.path().join("hansa.log");
    let client = hansa_conformance::client_at(&format!("http://{addr}"));
    write_config(&config, dir.path(), addr, "", PLANS[0], "");
    let mut child = spawn(&config, &log, addr);
    versioned_bucket(&client, "vcrash").await;
    // (key, version id) → body hash, for every acknowledged write.
    let acked: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    for round in 0..ROUNDS {
        let mut writers = Vec::new();
        for w in 0..3 {
            let (client, acked) = (client.clone(), acked.clone());
            writers.push(tokio::spawn(async move {
                let key = format!("key-{w}");
                for i in 0.. {
                    let body = hansa_conformance::random_bytes(1000 + (i * 37 + w * 101) % 5000);
                    let hash = hansa_conformance::sha256_hex(&body);
                    let sent = client
                        .put_object()
                        .bucket("vcrash")
                        .key(&key)
                        .body(ByteStream::from(body))
                        .send()
                        .await;
                    match sent {
                        Ok(out) => acked.lock().unwrap().push((
                            key.clone(),
                            out.version_id().expect("version id").to_string(),
                            hash,
                        )),
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(150..500))).await;
        child.kill_9();
        for w in writers {
            let _ = w.await;
        }
        write_config(
            &config,
            dir.path(),
            addr,
            "",
            PLANS[(round + 1) % PLANS.len()],
            "",
        );
        child = spawn(&config, &log, addr);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "too few writes acknowledged: {}",
        acked.len()
    );
    for (key, version, hash) in &acked {
        let body = get_v(&client, "vcrash", key, version).await;
        assert_eq!(
            &hansa_conformance::sha256_hex(&body),
            hash,
            "{key}@{version}"
        );
    }
    let (rows, _) = list_versions(&client, "vcrash", 1000).await;
    for (key, version, _) in &acked {
        let n = rows
            .iter()
            .filter(|r| &r.0 == key && &r.1 == version)
            .count();
        assert_eq!(n, 1, "{key}@{version} listed {n} times");
    }
    for key in ["key-0", "key-1", "key-2"] {
        let latest = rows.iter().filter(|r| r.0 == key && r.3).count();
        assert!(latest <= 1, "{key}: {latest} latest versions");
    }
    assert!(child.terminate(std::time::Duration::from_secs(10)));
}

/// The cost of keeping versions: 64 MiB overwrites in a versioned and an unversioned bucket,
/// timed, on the two local disks and, when `HANSA_TEST_S3_ENDPOINT` names a moto server (see
/// scripts/test-servers.sh), on moto alone (`cargo test -p hansa-conformance --test versioning
/// overwrite_cost -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn overwrite_cost_versioned_against_unversioned() {
    let gw = TestGateway::start().await;
    time_overwrites(&gw.client(), "local disks").await;
    gw.shutdown().await;
    if std::env::var("HANSA_TEST_S3_ENDPOINT").is_ok() {
        let prefix = format!("bench/{:016x}", rand::random::<u64>());
        let backends =
            hansa_conformance::cloud_backends_toml(&prefix, &prefix).expect("moto's variables");
        // moto only: the Azure entry is dropped.
        let moto = backends
            .split("\n[[backend]]\nid = \"azurite\"")
            .next()
            .unwrap_or("");
        let gw = TestGateway::start_with(Options {
            extra_toml: format!(
                "{moto}\n[policy.default]\nbackends = [\"moto\"]\nreplicas = 1\nwrite_quorum = 1\n"
            ),
            ..Options::default()
        })
        .await;
        time_overwrites(&gw.client(), "moto").await;
        gw.shutdown().await;
    }
}

async fn time_overwrites(s3: &Client, place: &str) {
    create_bucket(s3, "plain").await;
    versioned_bucket(s3, "kept").await;
    let body = hansa_conformance::random_bytes(64 << 20);
    let mut times: Vec<(&str, Vec<f64>)> =
        vec![("unversioned", Vec::new()), ("versioned", Vec::new())];
    for round in 0..6 {
        for (bucket, samples) in [("plain", 0usize), ("kept", 1)] {
            let started = std::time::Instant::now();
            s3.put_object()
                .bucket(bucket)
                .key("big")
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("put");
            // The first write of each bucket replaces nothing.
            if round > 0 {
                times[samples]
                    .1
                    .push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    for (name, mut t) in times {
        t.sort_by(|a, b| a.total_cmp(b));
        eprintln!(
            "{place}: 64 MiB overwrite, {name}: median {:.0} ms (min {:.0}, max {:.0}, n {})",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1],
            t.len()
        );
    }
}
