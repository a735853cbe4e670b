//! Behaviour every [`Backend`] must show. Each function panics on a violation, so it can be
//! called from any crate's tests: `testsuite::put_get_roundtrip(&backend).await`.
//!
//! Every function works in its own bucket, so they may share one backend and run in any order.

use crate::backend::{
    Backend, ByteStream, CompletedPart, ObjectAttributes, PutResult, Staged, Stamp,
};
use crate::error::BackendError;
use crate::naming::{physical_name, PhysicalName};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

/// A stamp for a test write.
pub fn stamp(bucket: &str, key: &str, version_id: &str, size: u64) -> Stamp {
    Stamp {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.to_string(),
        etag: format!("etag-{version_id}"),
        size,
        checksum: None,
        late: None,
    }
}

/// A body yielding `data` in chunks of `chunk` bytes.
pub fn body(data: &[u8], chunk: usize) -> ByteStream {
    let bytes = Bytes::copy_from_slice(data);
    let chunks: Vec<_> = (0..data.len())
        .step_by(chunk.max(1))
        .map(|i| Ok(bytes.slice(i..(i + chunk).min(data.len()))))
        .collect();
    stream::iter(chunks).boxed()
}

/// Reads a body to its end.
pub async fn collect(body: ByteStream) -> Result<Vec<u8>, BackendError> {
    body.try_fold(Vec::new(), |mut acc, chunk| async move {
        acc.extend_from_slice(&chunk);
        Ok(acc)
    })
    .await
}

/// Puts `data` as (`bucket`, `key`) under its physical name.
pub async fn put_bytes(
    b: &dyn Backend,
    bucket: &str,
    key: &str,
    version: &str,
    data: &[u8],
) -> (PhysicalName, PutResult) {
    let name = physical_name(bucket, key);
    let result = b
        .put(
            &name,
            &ObjectAttributes::default(),
            &stamp(bucket, key, version, data.len() as u64),
            body(data, 7),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: put {name}: {e}", b.id()));
    (name, result)
}

/// Completes a multipart upload as the gateway does: stage the composition, then publish it.
pub async fn complete(
    b: &dyn Backend,
    name: &PhysicalName,
    upload: &str,
    parts: &[CompletedPart],
    attrs: &ObjectAttributes,
    stamp: &Stamp,
) -> Result<PutResult, BackendError> {
    let staged = b.stage_upload(name, upload, parts, attrs, stamp).await?;
    b.publish(name, &staged.handle, stamp).await
}

/// Prepares and stages `data` as version `version` of (`bucket`, `key`), unpublished.
pub async fn stage_bytes(
    b: &dyn Backend,
    bucket: &str,
    key: &str,
    version: &str,
    data: &[u8],
) -> (PhysicalName, Staged) {
    let name = physical_name(bucket, key);
    let (attrs, st) = (
        ObjectAttributes::default(),
        stamp(bucket, key, version, data.len() as u64),
    );
    let prepared = b
        .prepare(&name, &attrs, &st)
        .await
        .unwrap_or_else(|e| panic!("{}: prepare {name}: {e}", b.id()));
    let staged = b
        .stage(&name, &prepared, &attrs, &st, body(data, 7))
        .await
        .unwrap_or_else(|e| panic!("{}: stage {name}: {e}", b.id()));
    assert_eq!(staged.size, data.len() as u64, "{}: staged size", b.id());
    (name, staged)
}

pub(crate) async fn read(b: &dyn Backend, name: &PhysicalName) -> Vec<u8> {
    let got = b
        .get(name, None, None)
        .await
        .unwrap_or_else(|e| panic!("{}: get {name}: {e}", b.id()));
    collect(got.body)
        .await
        .unwrap_or_else(|e| panic!("{}: read {name}: {e}", b.id()))
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

pub async fn put_get_roundtrip(b: &dyn Backend) {
    let data = b"hello, hansa";
    let (name, put) = put_bytes(b, "suite-roundtrip", "greeting.txt", "v1", data).await;
    assert_eq!(put.size, data.len() as u64);
    assert!(!put.etag.is_empty());
    let got = b.get(&name, None, Some(&put.etag)).await.expect("get");
    assert_eq!(got.range, 0..data.len() as u64);
    assert_eq!(got.info.size, data.len() as u64);
    assert_eq!(got.info.etag, put.etag);
    assert_eq!(got.info.name, name.as_str());
    assert_eq!(collect(got.body).await.expect("body"), data);
}

pub async fn empty_object(b: &dyn Backend) {
    let (name, put) = put_bytes(b, "suite-empty", "empty", "v1", b"").await;
    assert_eq!(put.size, 0);
    let got = b.get(&name, None, None).await.expect("get empty");
    assert_eq!(got.range, 0..0);
    assert!(collect(got.body).await.expect("body").is_empty());
    assert_eq!(b.head(&name).await.expect("head").size, 0);
    // A body that yields no chunks at all, not even an empty one.
    let none: ByteStream = stream::empty().boxed();
    b.put(
        &name,
        &ObjectAttributes::default(),
        &stamp("suite-empty", "empty", "v2", 0),
        none,
    )
    .await
    .expect("put without chunks");
    assert!(read(b, &name).await.is_empty());
}

/// 20 MiB in 64 KiB chunks: crosses the object_store multipart threshold.
pub async fn large_object(b: &dyn Backend) {
    let data = pattern(20 << 20, 7);
    let name = physical_name("suite-large", "big.bin");
    let put = b
        .put(
            &name,
            &ObjectAttributes::default(),
            &stamp("suite-large", "big.bin", "v1", data.len() as u64),
            body(&data, 64 << 10),
        )
        .await
        .expect("put large");
    assert_eq!(put.size, data.len() as u64);
    let got = b
        .get(&name, None, Some(&put.etag))
        .await
        .expect("get large");
    let mut hasher = Sha256::new();
    let mut len = 0usize;
    let mut chunks = got.body;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        len += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(len, data.len());
    assert_eq!(
        hasher.finalize().as_slice(),
        Sha256::digest(&data).as_slice()
    );
    // A range across the first part boundary.
    let start = (8 << 20) - 10;
    let got = b
        .get(&name, Some(start..start + 20), None)
        .await
        .expect("range");
    assert_eq!(
        collect(got.body).await.expect("range body"),
        &data[start as usize..start as usize + 20]
    );
}

pub async fn ranges(b: &dyn Backend) {
    let data: Vec<u8> = (0..100u8).collect();
    let (name, put) = put_bytes(b, "suite-ranges", "r", "v1", &data).await;
    let cases: [(std::ops::Range<u64>, std::ops::Range<u64>); 5] = [
        (0..10, 0..10),
        (90..100, 90..100),
        (50..1000, 50..100),
        (5..6, 5..6),
        (0..100, 0..100),
    ];
    for (asked, expected) in cases {
        let got = b
            .get(&name, Some(asked.clone()), Some(&put.etag))
            .await
            .unwrap_or_else(|e| panic!("range {asked:?}: {e}"));
        assert_eq!(got.range, expected, "range {asked:?}");
        assert_eq!(got.info.size, 100);
        let bytes = collect(got.body).await.expect("body");
        assert_eq!(
            bytes,
            &data[expected.start as usize..expected.end as usize],
            "range {asked:?}"
        );
    }
    for bad in [100..101, 200..300, 10..10] {
        match b.get(&name, Some(bad.clone()), None).await {
            Err(BackendError::RangeNotSatisfiable { size, .. }) => assert_eq!(size, 100),
            other => panic!(
                "range {bad:?}: expected RangeNotSatisfiable, got {:?}",
                other.map(|g| g.range)
            ),
        }
    }
}

pub async fn head_attributes(b: &dyn Backend) {
    let mut attrs = ObjectAttributes {
        content_type: Some("text/plain; charset=utf-8".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("attachment; filename=\"a b.txt\"".into()),
        content_language: Some("de-DE".into()),
        cache_control: Some("max-age=3600".into()),
        expires: Some("Thu, 01 Dec 2044 16:00:00 GMT".into()),
        ..Default::default()
    };
    for (k, v) in [
        ("color", "blue"),
        ("multi-word-name", "a value with spaces"),
        ("hansa-stamp", "user data, not ours"),
        ("hansa-version", "also user data"),
        ("unicode", "grüße 😀"),
        ("looks-encoded", "=?UTF-8?B?Zm9v?="),
        ("empty", ""),
    ] {
        attrs.user_metadata.insert(k.into(), v.into());
    }
    for key in ["doc.txt", "odd//key/", "../escape"] {
        let name = physical_name("suite-head", key);
        let st = stamp("suite-head", key, "0123456789abcdef", 3);
        let put = b
            .put(&name, &attrs, &st, body(b"abc", 1))
            .await
            .expect("put");
        let info = b.head(&name).await.expect("head");
        assert_eq!(info.name, name.as_str());
        assert_eq!(info.size, 3);
        assert_eq!(info.etag, put.etag);
        assert_eq!(info.attributes, attrs, "attributes of {key:?}");
        assert_eq!(info.stamp.as_ref(), Some(&st), "stamp of {key:?}");
        let got = b.get(&name, None, None).await.expect("get");
        assert_eq!(got.info.attributes, attrs);
        assert_eq!(got.info.stamp.as_ref(), Some(&st));
        assert!(info.last_modified > std::time::SystemTime::UNIX_EPOCH);
    }
    // No attributes at all.
    let (name, _) = put_bytes(b, "suite-head", "bare", "v1", b"x").await;
    let info = b.head(&name).await.expect("head bare");
    assert_eq!(info.attributes, ObjectAttributes::default());
    assert_eq!(info.stamp, Some(stamp("suite-head", "bare", "v1", 1)));
}

pub async fn overwrite(b: &dyn Backend) {
    let (name, first) = put_bytes(b, "suite-overwrite", "k", "v1", b"first version").await;
    let (_, second) = put_bytes(b, "suite-overwrite", "k", "v2", b"second").await;
    assert_ne!(
        first.etag, second.etag,
        "a new write gets a new backend etag"
    );
    assert_eq!(read(b, &name).await, b"second");
    let info = b.head(&name).await.expect("head");
    assert_eq!(info.size, 6);
    assert_eq!(info.stamp.map(|s| s.version_id), Some("v2".to_string()));
    // The replica changed behind an index that still holds `first.etag`.
    assert!(matches!(
        b.get(&name, None, Some(&first.etag)).await,
        Err(BackendError::PreconditionFailed { .. })
    ));
}

/// A version moved aside: the copy keeps bytes and stamp, survives an overwrite and a delete
/// of its source, is listed only under the versions prefix, and a missing source is NotFound.
pub async fn copy_moves_a_version_aside(b: &dyn Backend) {
    let name = physical_name("suite-copy", "dir/k");
    let mut attrs = ObjectAttributes {
        content_type: Some("text/plain".into()),
        ..ObjectAttributes::default()
    };
    attrs.user_metadata.insert("colour".into(), "blue".into());
    let st = stamp("suite-copy", "dir/k", "v1", 13);
    b.put(&name, &attrs, &st, body(b"first version", 7))
        .await
        .expect("put");
    let aside = crate::naming::version_name("suite-copy", "dir/k", "v1").expect("version name");
    let copied = b.copy(&name, &aside).await.expect("copy");
    assert_eq!(copied.size, 13);
    // However it is copied (hard link, server-side, streamed), the copy keeps the version's
    // attributes and whole stamp.
    let info = b.head(&aside).await.expect("head the copy");
    assert_eq!(info.attributes, attrs, "{}", b.id());
    assert_eq!(info.stamp.map(|s| (s.etag, s.size)), Some((st.etag, 13)));
    // Again (a retried move aside) replaces the copy.
    b.copy(&name, &aside).await.expect("copy again");
    put_bytes(b, "suite-copy", "dir/k", "v2", b"second").await;
    assert_eq!(read(b, &aside).await, b"first version");
    assert_eq!(read(b, &name).await, b"second");
    let info = b.head(&aside).await.expect("head the copy");
    assert_eq!(
        info.stamp.map(|s| (s.key, s.version_id)),
        Some(("dir/k".into(), "v1".into()))
    );
    b.delete(&name).await.expect("delete the source");
    assert_eq!(read(b, &aside).await, b"first version");
    assert!(!names_in(b, "suite-copy/").await.contains(aside.as_str()));
    assert!(names_in(b, crate::naming::VERSIONS_PREFIX)
        .await
        .contains(aside.as_str()));
    assert!(!names_in(b, "").await.contains(aside.as_str()));
    assert!(matches!(
        b.copy(&name, &aside).await,
        Err(BackendError::NotFound { .. })
    ));
    b.delete(&aside).await.expect("delete the copy");
}

pub async fn delete(b: &dyn Backend) {
    let (name, _) = put_bytes(b, "suite-delete", "dir/k", "v1", b"bye").await;
    b.delete(&name).await.expect("delete");
    assert!(matches!(
        b.head(&name).await,
        Err(BackendError::NotFound { .. })
    ));
    b.delete(&name).await.expect("deleting a deleted object");
    b.delete(&physical_name("suite-delete", "never/existed"))
        .await
        .expect("deleting a missing object");
    // The name is usable again.
    put_bytes(b, "suite-delete", "dir/k", "v2", b"again").await;
    assert_eq!(read(b, &name).await, b"again");
}

pub async fn missing_not_found(b: &dyn Backend) {
    let name = physical_name("suite-missing", "nope");
    assert!(matches!(
        b.head(&name).await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        b.get(&name, None, None).await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        b.get(&name, Some(0..1), Some("x")).await,
        Err(BackendError::NotFound { .. })
    ));
    // A "directory" of existing objects is not an object.
    put_bytes(b, "suite-missing", "dir/child", "v1", b"x").await;
    let dir = physical_name("suite-missing", "dir");
    assert!(matches!(
        b.head(&dir).await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        b.get(&dir, None, None).await,
        Err(BackendError::NotFound { .. })
    ));
}

pub async fn if_match(b: &dyn Backend) {
    let (name, put) = put_bytes(b, "suite-ifmatch", "k", "v1", b"data").await;
    assert!(b.get(&name, None, Some(&put.etag)).await.is_ok());
    for wrong in ["not-the-etag", "\"v1x\"", ""] {
        assert!(
            matches!(
                b.get(&name, None, Some(wrong)).await,
                Err(BackendError::PreconditionFailed { .. })
            ),
            "if_match {wrong:?}"
        );
        assert!(matches!(
            b.get(&name, Some(0..2), Some(wrong)).await,
            Err(BackendError::PreconditionFailed { .. })
        ));
    }
}

fn failing_body(data: &[u8], chunk: usize) -> ByteStream {
    body(data, chunk)
        .chain(stream::once(async { Err(BackendError::Aborted) }))
        .boxed()
}

async fn names_in(b: &dyn Backend, prefix: &str) -> BTreeSet<String> {
    b.list(prefix)
        .map_ok(|info| info.name)
        .try_collect()
        .await
        .expect("list")
}

/// An Err item (small body, and one past the multipart threshold) or a dropped put leaves the
/// old object as it was and nothing new visible.
pub async fn aborted_stream_keeps_old(b: &dyn Backend) {
    let bucket = "suite-abort";
    let (name, old) = put_bytes(b, bucket, "k", "v1", b"old contents").await;
    let before = names_in(b, &format!("{bucket}/")).await;
    for size in [5usize, 10 << 20] {
        let data = pattern(size, 3);
        let result = b
            .put(
                &name,
                &ObjectAttributes::default(),
                &stamp(bucket, "k", "v2", size as u64),
                failing_body(&data, 64 << 10),
            )
            .await;
        assert!(
            matches!(result, Err(BackendError::Aborted)),
            "size {size}: {result:?}"
        );
        let got = b
            .get(&name, None, Some(&old.etag))
            .await
            .expect("old object still there");
        assert_eq!(collect(got.body).await.expect("body"), b"old contents");
        // A new name aborted: nothing appears.
        let fresh = physical_name(bucket, "fresh");
        let result = b
            .put(
                &fresh,
                &ObjectAttributes::default(),
                &stamp(bucket, "fresh", "v1", size as u64),
                failing_body(&data, 64 << 10),
            )
            .await;
        assert!(matches!(result, Err(BackendError::Aborted)));
        assert!(matches!(
            b.head(&fresh).await,
            Err(BackendError::NotFound { .. })
        ));
    }
    // The caller gives up mid-body (client disconnect): the put future is dropped.
    for size in [5usize, 10 << 20] {
        let data = pattern(size, 4);
        let stalled = body(&data, 64 << 10).chain(stream::pending()).boxed();
        let (attrs, st) = (ObjectAttributes::default(), stamp(bucket, "k", "v3", 0));
        let put = b.put(&name, &attrs, &st, stalled);
        assert!(tokio::time::timeout(Duration::from_millis(300), put)
            .await
            .is_err());
        assert_eq!(read(b, &name).await, b"old contents");
    }
    assert_eq!(names_in(b, &format!("{bucket}/")).await, before);
    assert!(names_in(b, &format!(".hansa/k/{bucket}/")).await.is_empty());
}

pub async fn list_prefixes(b: &dyn Backend) {
    let bucket = "suite-list";
    let keys = [
        "a", "ab", "ac/b", "ac/d/e", "b/x", "über/ß", "odd//key", "../up",
    ];
    let mut names = BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        let (name, _) = put_bytes(b, bucket, key, &format!("v{i}"), key.as_bytes()).await;
        names.insert(name.into_string());
    }
    let plain = |ks: &[&str]| {
        ks.iter()
            .map(|k| format!("{bucket}/{k}"))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names_in(b, &format!("{bucket}/")).await,
        plain(&["a", "ab", "ac/b", "ac/d/e", "b/x", "über/ß"])
    );
    assert_eq!(
        names_in(b, &format!("{bucket}/a")).await,
        plain(&["a", "ab", "ac/b", "ac/d/e"])
    );
    assert_eq!(
        names_in(b, &format!("{bucket}/ac/")).await,
        plain(&["ac/b", "ac/d/e"])
    );
    assert_eq!(
        names_in(b, &format!("{bucket}/ac/d")).await,
        plain(&["ac/d/e"])
    );
    assert_eq!(
        names_in(b, &format!("{bucket}/ü")).await,
        plain(&["über/ß"])
    );
    assert!(names_in(b, &format!("{bucket}/zzz")).await.is_empty());
    assert!(names_in(b, &format!("{bucket}-other/")).await.is_empty());
    // Fallback names are listed too, with their real keys in the stamps.
    let fallback_prefix = format!(".hansa/k/{bucket}/");
    let infos: Vec<_> = b
        .list(&fallback_prefix)
        .try_collect()
        .await
        .expect("list fallback");
    let keys_back: BTreeSet<_> = infos
        .iter()
        .filter_map(|i| i.stamp.as_ref().map(|s| s.key.clone()))
        .collect();
    assert_eq!(
        keys_back,
        ["odd//key".to_string(), "../up".to_string()].into()
    );
    // Everything, from the root: all of ours present, no scratch files.
    let all = names_in(b, "").await;
    assert!(names.is_subset(&all), "{names:?} ⊄ {all:?}");
    for n in &all {
        assert!(
            PhysicalName::parse(n).is_ok() || !n.starts_with(".hansa/"),
            "scratch file listed: {n}"
        );
    }
    // Listed infos carry stamps and sizes.
    for info in b
        .list(&format!("{bucket}/ac/d"))
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
    {
        assert_eq!(info.size, 6);
        assert_eq!(info.stamp.map(|s| s.key), Some("ac/d/e".to_string()));
    }
}

/// Keys that cannot be plain (traversal, empty segments, escapes) and unicode keys that can.
pub async fn unusual_keys(b: &dyn Backend) {
    let bucket = "suite-keys";
    let keys = [
        "../../etc/passwd",
        "..",
        "./x",
        "a//b",
        "a/b",
        "dir/",
        "dir",
        "/leading",
        "日本語/ファイル.txt",
        "emoji 😀",
        "100%",
        "tilde~",
        "new\nline",
        "x".repeat(1024).as_str(),
    ]
    .map(str::to_string);
    let mut seen = BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        let data = format!("data of {key}");
        let (name, put) = put_bytes(b, bucket, key, &format!("v{i}"), data.as_bytes()).await;
        assert!(seen.insert(name.clone()), "{key:?} shares a name");
        let info = b.head(&name).await.expect("head");
        assert_eq!(info.stamp.map(|s| s.key), Some(key.clone()));
        let got = b.get(&name, None, Some(&put.etag)).await.expect("get");
        assert_eq!(
            collect(got.body).await.expect("body"),
            data.as_bytes(),
            "{key:?}"
        );
    }
    for key in &keys {
        let data = format!("data of {key}");
        assert_eq!(
            read(b, &physical_name(bucket, key)).await,
            data.as_bytes(),
            "{key:?} after all writes"
        );
    }
}

pub async fn check(b: &dyn Backend) {
    b.check().await.expect("check");
    b.check().await.expect("check twice");
    let leftovers: Vec<_> = names_in(b, ".hansa/").await.into_iter().collect();
    assert!(
        leftovers.iter().all(|n| !n.contains("probe")),
        "{leftovers:?}"
    );
}

/// Smallest part S3 accepts for all parts but the last: real stores enforce it.
const PART: usize = 5 << 20;

pub(crate) async fn upload_part(
    b: &dyn Backend,
    name: &PhysicalName,
    upload: &str,
    number: u32,
    data: &[u8],
) -> CompletedPart {
    let put = b
        .put_part(
            name,
            upload,
            number,
            data.len() as u64,
            body(data, 64 << 10),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: put part {number} of {name}: {e}", b.id()));
    assert_eq!(put.size, data.len() as u64);
    CompletedPart {
        part_number: number,
        receipt: put.etag,
        size: data.len() as u64,
    }
}

pub(crate) async fn start_upload(
    b: &dyn Backend,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> (PhysicalName, String) {
    start_upload_with(b, bucket, key, upload_id, &ObjectAttributes::default()).await
}

/// A staged body is invisible (reads, heads and listings show the previous object) until it
/// is published; publishing makes it the object, with its stamp, at once.
pub async fn staged_is_invisible_until_published(b: &dyn Backend) {
    let bucket = "suite-stage";
    for (key, size) in [("small", 1000), ("large", 2 * PART + 17)] {
        let (name, _) = put_bytes(b, bucket, key, "v1", b"before").await;
        let data = pattern(size, 31);
        let (_, staged) = stage_bytes(b, bucket, key, "v2", &data).await;
        assert_eq!(
            read(b, &name).await,
            b"before",
            "{}: staged {key} visible",
            b.id()
        );
        let head = b.head(&name).await.expect("head");
        assert_eq!(head.stamp.expect("stamp").version_id, "v1");
        let listed: Vec<String> = b
            .list(bucket)
            .map(|r| r.expect("list").name)
            .collect()
            .await;
        assert_eq!(
            listed.iter().filter(|n| n.ends_with(key)).count(),
            1,
            "{}: staged copies are listed: {listed:?}",
            b.id()
        );
        let published = b
            .publish(
                &name,
                &staged.handle,
                &stamp(bucket, key, "v2", size as u64),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: publish {key}: {e}", b.id()));
        assert_eq!(published.size, size as u64);
        assert!(read(b, &name).await == data, "{}: published bytes", b.id());
        let head = b.head(&name).await.expect("head");
        assert_eq!(head.etag, published.etag, "{}: etag", b.id());
        assert_eq!(head.stamp.expect("stamp").version_id, "v2");
    }
}

/// Publishing is idempotent while the name holds that version, and never brings an older
/// version back over a newer one.
pub async fn publish_is_idempotent(b: &dyn Backend) {
    let (bucket, key) = ("suite-publish-twice", "k");
    for size in [10, 2 * PART + 3] {
        let data = pattern(size, 32);
        let (name, first) = stage_bytes(b, bucket, key, "v1", &data).await;
        let st1 = stamp(bucket, key, "v1", size as u64);
        let once = b
            .publish(&name, &first.handle, &st1)
            .await
            .expect("publish");
        let twice = b
            .publish(&name, &first.handle, &st1)
            .await
            .unwrap_or_else(|e| panic!("{}: publish again: {e}", b.id()));
        assert_eq!(once, twice, "{}: a second publish differs", b.id());
        let (_, second) = stage_bytes(b, bucket, key, "v2", b"newer").await;
        b.publish(&name, &second.handle, &stamp(bucket, key, "v2", 5))
            .await
            .expect("publish v2");
        let late = b.publish(&name, &first.handle, &st1).await;
        assert!(
            matches!(late, Err(BackendError::NotFound { .. })),
            "{}: an old handle published again: {late:?}",
            b.id()
        );
        assert_eq!(read(b, &name).await, b"newer", "{}: v1 came back", b.id());
    }
}

/// Discarding a staged (or only prepared) copy leaves the object alone; the handle is gone.
pub async fn discard_keeps_the_object(b: &dyn Backend) {
    let (bucket, key) = ("suite-discard", "k");
    let (name, _) = put_bytes(b, bucket, key, "v1", b"kept").await;
    for size in [100, 2 * PART + 1] {
        let (_, staged) = stage_bytes(b, bucket, key, "v2", &pattern(size, 33)).await;
        b.discard(&name, &staged.handle).await.expect("discard");
        b.discard(&name, &staged.handle)
            .await
            .expect("discard twice");
        let publish = b
            .publish(
                &name,
                &staged.handle,
                &stamp(bucket, key, "v2", size as u64),
            )
            .await;
        assert!(
            publish.is_err(),
            "{}: a discarded copy was published",
            b.id()
        );
        assert_eq!(read(b, &name).await, b"kept");
    }
    let st = stamp(bucket, key, "v3", 4);
    let prepared = b
        .prepare(&name, &ObjectAttributes::default(), &st)
        .await
        .expect("prepare");
    b.discard(&name, &prepared)
        .await
        .expect("discard a prepared handle");
    assert_eq!(read(b, &name).await, b"kept");
}

/// A stream that fails mid-stage stages nothing visible; discarding the prepared handle
/// leaves nothing behind for a collection to find.
pub async fn aborted_stage_leaves_nothing(b: &dyn Backend) {
    let (bucket, key) = ("suite-aborted-stage", "k");
    let (name, _) = put_bytes(b, bucket, key, "v1", b"old").await;
    for size in [100, 2 * PART] {
        let st = stamp(bucket, key, "v2", size as u64);
        let attrs = ObjectAttributes::default();
        let prepared = b.prepare(&name, &attrs, &st).await.expect("prepare");
        let failing = body(&pattern(size / 2, 34), 4096)
            .chain(stream::once(async { Err(BackendError::Aborted) }))
            .boxed();
        let staged = b.stage(&name, &prepared, &attrs, &st, failing).await;
        assert!(
            matches!(staged, Err(BackendError::Aborted)),
            "{}: {staged:?}",
            b.id()
        );
        b.discard(&name, &prepared).await.expect("discard");
        assert_eq!(read(b, &name).await, b"old");
    }
    let left = b
        .collect_staged(Duration::ZERO, &Default::default())
        .await
        .expect("collect");
    assert_eq!(left, 0, "{}: a cut stage left {left} staged copies", b.id());
}

/// Collection removes staged copies no write holds, and spares those it is told are live
/// and those younger than the limit.
pub async fn collect_spares_live_staging(b: &dyn Backend) {
    let (bucket, key) = ("suite-collect", "k");
    let (name, live) = stage_bytes(b, bucket, key, "v1", &pattern(2 * PART + 5, 35)).await;
    let (_, dead) = stage_bytes(b, bucket, key, "v2", b"leftover").await;
    let young = b
        .collect_staged(Duration::from_secs(3600), &Default::default())
        .await
        .expect("collect");
    assert_eq!(young, 0, "{}: young staged copies were collected", b.id());
    let live_set = [live.handle.clone()].into_iter().collect();
    let removed = b
        .collect_staged(Duration::ZERO, &live_set)
        .await
        .expect("collect");
    assert_eq!(removed, 1, "{}: collected {removed}", b.id());
    let gone = b
        .publish(&name, &dead.handle, &stamp(bucket, key, "v2", 8))
        .await;
    assert!(gone.is_err(), "{}: a collected copy was published", b.id());
    b.publish(
        &name,
        &live.handle,
        &stamp(bucket, key, "v1", 2 * PART as u64 + 5),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: a live staged copy was collected: {e}", b.id()));
    assert!(read(b, &name).await == pattern(2 * PART + 5, 35));
}

/// A staged copy made durable stays invisible and publishes the same bytes; a copy that was
/// durable already is returned as it is.
pub async fn persist_makes_a_staged_copy_durable(b: &dyn Backend) {
    let (bucket, key) = ("suite-persist", "k");
    let (name, _) = put_bytes(b, bucket, key, "v1", b"before").await;
    for size in [300, 2 * PART + 9] {
        let data = pattern(size, 36);
        let (_, staged) = stage_bytes(b, bucket, key, "v2", &data).await;
        let persisted = b
            .persist(&name, &staged)
            .await
            .unwrap_or_else(|e| panic!("{}: persist: {e}", b.id()));
        assert!(persisted.durable, "{}: persisted copy not durable", b.id());
        assert_eq!(persisted.size, size as u64);
        if staged.durable {
            assert_eq!(persisted, staged, "{}: a durable copy changed", b.id());
        }
        assert_eq!(read(b, &name).await, b"before", "{}: visible", b.id());
        b.publish(
            &name,
            &persisted.handle,
            &stamp(bucket, key, "v2", size as u64),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: publish a persisted copy: {e}", b.id()));
        assert!(read(b, &name).await == data, "{}: bytes", b.id());
        put_bytes(b, bucket, key, "v1", b"before").await;
    }
}

async fn start_upload_with(
    b: &dyn Backend,
    bucket: &str,
    key: &str,
    upload_id: &str,
    attrs: &ObjectAttributes,
) -> (PhysicalName, String) {
    let name = physical_name(bucket, key);
    let handle = b
        .create_upload(&name, upload_id, attrs, &stamp(bucket, key, upload_id, 0))
        .await
        .unwrap_or_else(|e| panic!("{}: create upload {name}: {e}", b.id()));
    (name, handle)
}

/// Parts sent out of order and concurrently compose in part-number order, with the
/// upload's attributes and its version.
pub async fn multipart_roundtrip(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu", "dir/big object.bin");
    let mut attrs = ObjectAttributes {
        content_type: Some("application/x-test".into()),
        ..Default::default()
    };
    attrs.user_metadata.insert("colour".into(), "blau".into());
    let (name, upload) = start_upload_with(b, bucket, key, "up1", &attrs).await;
    let p1 = pattern(PART + 1, 1);
    let p2 = pattern(PART + 2, 2);
    let p3 = pattern(1000, 3);
    let (c3, c1, c2) = tokio::join!(
        upload_part(b, &name, &upload, 3, &p3),
        upload_part(b, &name, &upload, 1, &p1),
        upload_part(b, &name, &upload, 2, &p2),
    );
    let size = (p1.len() + p2.len() + p3.len()) as u64;
    let staged = b
        .stage_upload(
            &name,
            &upload,
            &[c1, c2, c3],
            &attrs,
            &stamp(bucket, key, "up1", size),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: stage the completion of {name}: {e}", b.id()));
    assert!(
        b.head(&name).await.is_err(),
        "{}: a staged completion is visible before it is published",
        b.id()
    );
    let done = b
        .publish(&name, &staged.handle, &stamp(bucket, key, "up1", size))
        .await
        .unwrap_or_else(|e| panic!("{}: publish {name}: {e}", b.id()));
    assert_eq!(done.size, size);
    let expected = [p1, p2, p3].concat();
    let got = read(b, &name).await;
    assert!(got == expected, "{}: composed bytes differ", b.id());
    let info = b.head(&name).await.expect("head");
    assert_eq!(info.size, size);
    assert_eq!(info.etag, done.etag);
    assert_eq!(info.attributes, attrs);
    let stamp = info.stamp.expect("stamp");
    assert_eq!((stamp.bucket.as_str(), stamp.key.as_str()), (bucket, key));
    assert_eq!(stamp.version_id, "up1");
    let mid = b
        .get(
            &name,
            Some(PART as u64 - 10..PART as u64 + 10),
            Some(&done.etag),
        )
        .await
        .expect("range across the part boundary");
    assert_eq!(
        collect(mid.body).await.expect("range"),
        expected[PART - 10..PART + 10]
    );
    // The caller removes what the upload staged once the version is committed; the object
    // stays.
    b.abort_upload(&name, &upload)
        .await
        .expect("abort after complete");
    assert_eq!(read(b, &name).await.len() as u64, size);
}

/// A completion can be sent again with the same parts (the gateway does when a completion
/// missed its quorum): the second gives the same object, and a later abort leaves it alone.
pub async fn multipart_complete_again(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-twice", "k");
    let (name, upload) = start_upload(b, bucket, key, "up9").await;
    let (p1, p2) = (pattern(PART, 20), pattern(1234, 21));
    let parts = vec![
        upload_part(b, &name, &upload, 1, &p1).await,
        upload_part(b, &name, &upload, 2, &p2).await,
    ];
    let size = (p1.len() + p2.len()) as u64;
    let (attrs, final_stamp) = (ObjectAttributes::default(), stamp(bucket, key, "up9", size));
    let finish = || complete(b, &name, &upload, &parts, &attrs, &final_stamp);
    let first = finish()
        .await
        .unwrap_or_else(|e| panic!("{}: complete: {e}", b.id()));
    let second = finish()
        .await
        .unwrap_or_else(|e| panic!("{}: complete again: {e}", b.id()));
    assert_eq!((second.size, first.size), (size, size));
    let expected = [p1, p2].concat();
    assert!(read(b, &name).await == expected, "{}: bytes", b.id());
    b.abort_upload(&name, &upload).await.expect("abort");
    assert!(
        read(b, &name).await == expected,
        "{}: abort took the object",
        b.id()
    );
    let info = b.head(&name).await.expect("head");
    assert_eq!(info.stamp.expect("stamp").version_id, "up9");
}

/// A part uploaded again replaces the earlier one when its new receipt is used.
pub async fn multipart_reupload(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-again", "k");
    let (name, upload) = start_upload(b, bucket, key, "up2").await;
    let first = upload_part(b, &name, &upload, 1, &pattern(PART, 4)).await;
    let again = upload_part(b, &name, &upload, 1, &pattern(PART, 5)).await;
    assert_ne!(first.receipt, again.receipt);
    let last = upload_part(b, &name, &upload, 2, b"tail").await;
    complete(
        b,
        &name,
        &upload,
        &[again, last],
        &ObjectAttributes::default(),
        &stamp(bucket, key, "up2", PART as u64 + 4),
    )
    .await
    .expect("complete");
    assert!(read(b, &name).await == [pattern(PART, 5), b"tail".to_vec()].concat());
}

/// Sparse part numbers, completed with a subset of the uploaded parts.
pub async fn multipart_sparse_subset(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-sparse", "k");
    let (name, upload) = start_upload(b, bucket, key, "up3").await;
    let a = upload_part(b, &name, &upload, 2, &pattern(PART, 6)).await;
    let _unused = upload_part(b, &name, &upload, 5, &pattern(PART, 7)).await;
    let c = upload_part(b, &name, &upload, 9, b"end").await;
    complete(
        b,
        &name,
        &upload,
        &[a, c],
        &ObjectAttributes::default(),
        &stamp(bucket, key, "up3", PART as u64 + 3),
    )
    .await
    .expect("complete");
    assert!(read(b, &name).await == [pattern(PART, 6), b"end".to_vec()].concat());
}

/// Abort leaves the object under the name as it was, and the upload unusable.
pub async fn multipart_abort(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-abort", "k");
    let (name, _) = put_bytes(b, bucket, key, "v1", b"old").await;
    let (_, upload) = start_upload(b, bucket, key, "up4").await;
    let part = upload_part(b, &name, &upload, 1, &pattern(1000, 8)).await;
    b.abort_upload(&name, &upload).await.expect("abort");
    b.abort_upload(&name, &upload).await.expect("abort twice");
    let after = complete(
        b,
        &name,
        &upload,
        &[part],
        &ObjectAttributes::default(),
        &stamp(bucket, key, "up4", 1000),
    )
    .await;
    assert!(after.is_err(), "{}: completed an aborted upload", b.id());
    assert_eq!(read(b, &name).await, b"old");
}

/// A receipt that names no stored part fails the completion and changes nothing.
pub async fn multipart_unknown_receipt(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-receipt", "k");
    let (name, _) = put_bytes(b, bucket, key, "v1", b"old").await;
    let (_, upload) = start_upload(b, bucket, key, "up5").await;
    let mut part = upload_part(b, &name, &upload, 1, b"data").await;
    part.receipt = "0123456789abcdef0123456789abcdef".into();
    let result = complete(
        b,
        &name,
        &upload,
        &[part],
        &ObjectAttributes::default(),
        &stamp(bucket, key, "up5", 4),
    )
    .await;
    assert!(
        result.is_err(),
        "{}: completed with an unknown receipt",
        b.id()
    );
    assert_eq!(read(b, &name).await, b"old");
    b.abort_upload(&name, &upload).await.expect("abort");
}

/// Uploads to the same name do not disturb each other: completing one, or a plain PUT of the
/// name, leaves the other's parts intact, and it completes afterwards with its own bytes.
pub async fn multipart_concurrent_same_name(b: &dyn Backend) {
    let (bucket, key) = ("suite-mpu-same-name", "shared/key");
    let (name, first) = start_upload(b, bucket, key, "up6").await;
    let (_, second) = start_upload(b, bucket, key, "up7").await;
    let (_, third) = start_upload(b, bucket, key, "up8").await;
    let (p1, p2, p3) = (pattern(PART, 10), pattern(PART, 11), pattern(PART, 12));
    let (a1, b1, c1) = tokio::join!(
        upload_part(b, &name, &first, 1, &p1),
        upload_part(b, &name, &second, 1, &p2),
        upload_part(b, &name, &third, 1, &p3),
    );
    let a2 = upload_part(b, &name, &first, 2, b"first").await;
    let b2 = upload_part(b, &name, &second, 2, b"second").await;
    let size = |tail: &[u8]| (PART + tail.len()) as u64;
    let finish = |upload: &str, parts: Vec<CompletedPart>, version: &str, size: u64| {
        let (upload, version) = (upload.to_string(), version.to_string());
        let name = name.clone();
        async move {
            complete(
                b,
                &name,
                &upload,
                &parts,
                &ObjectAttributes::default(),
                &stamp(bucket, key, &version, size),
            )
            .await
        }
    };
    finish(&first, vec![a1, a2], "up6", size(b"first"))
        .await
        .unwrap_or_else(|e| panic!("{}: complete the first upload: {e}", b.id()));
    assert!(read(b, &name).await == [p1, b"first".to_vec()].concat());
    // A plain PUT in between: it too commits the name.
    put_bytes(b, bucket, key, "v-put", b"plain").await;
    let c2 = upload_part(b, &name, &third, 2, b"third").await;
    finish(&second, vec![b1, b2], "up7", size(b"second"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: the second upload lost its parts to the first: {e}",
                b.id()
            )
        });
    assert!(read(b, &name).await == [p2, b"second".to_vec()].concat());
    let stamp_seen = b.head(&name).await.expect("head").stamp.expect("stamp");
    assert_eq!(stamp_seen.version_id, "up7");
    finish(&third, vec![c1, c2], "up8", size(b"third"))
        .await
        .unwrap_or_else(|e| panic!("{}: complete the third upload: {e}", b.id()));
    assert!(read(b, &name).await == [p3, b"third".to_vec()].concat());
}

/// Bucket markers and tombstones (`.hansa/b/`, `.hansa/t/`) are stored and read like objects,
/// but listed only when asked for by their own prefix: a listing of objects never shows them.
pub async fn records_listed_only_by_prefix(b: &dyn Backend) {
    use crate::naming::{bucket_marker_name, tombstone_name};
    let marker = bucket_marker_name("recs").expect("valid bucket");
    let tomb = tombstone_name("recs", "gone/key").expect("valid bucket");
    let (object, _) = put_bytes(b, "recs", "kept", "v1", b"object").await;
    for (name, data) in [(&marker, &b"{\"m\":1}"[..]), (&tomb, &b"{\"t\":1}"[..])] {
        b.put(
            name,
            &ObjectAttributes::default(),
            &stamp("recs", "", "r1", data.len() as u64),
            body(data, 4),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: put {name}: {e}", b.id()));
        assert_eq!(read(b, name).await, data, "{}: {name}", b.id());
    }
    let everything = names_in(b, "").await;
    assert!(
        everything.contains(object.as_str()),
        "{}: {everything:?}",
        b.id()
    );
    assert!(
        !everything.iter().any(|n| crate::naming::is_record_name(n)),
        "{}: records in an object listing: {everything:?}",
        b.id()
    );
    assert!(names_in(b, ".hansa/")
        .await
        .iter()
        .all(|n| !crate::naming::is_record_name(n)));
    let markers = names_in(b, crate::naming::BUCKET_MARKER_PREFIX).await;
    assert_eq!(markers, BTreeSet::from([marker.to_string()]), "{}", b.id());
    let tombs = names_in(b, crate::naming::TOMBSTONE_PREFIX).await;
    assert_eq!(tombs, BTreeSet::from([tomb.to_string()]), "{}", b.id());
    for name in [&marker, &tomb, &object] {
        b.delete(name).await.expect("delete");
    }
    assert!(names_in(b, crate::naming::BUCKET_MARKER_PREFIX)
        .await
        .is_empty());
    assert!(names_in(b, crate::naming::TOMBSTONE_PREFIX)
        .await
        .is_empty());
}

/// Calls `$m!(<args> <every function of the suite>)`: the one list of the suite's functions,
/// for [`run_all`] and for test files that make a test of each (`backends/tests/cloud.rs`).
#[macro_export]
macro_rules! every_suite_function {
    ($m:ident ! ( $($args:tt)* )) => {
        $m! {
            $($args)*
            put_get_roundtrip,
            empty_object,
            large_object,
            ranges,
            head_attributes,
            overwrite,
            copy_moves_a_version_aside,
            delete,
            missing_not_found,
            if_match,
            aborted_stream_keeps_old,
            list_prefixes,
            unusual_keys,
            check,
            staged_is_invisible_until_published,
            publish_is_idempotent,
            discard_keeps_the_object,
            aborted_stage_leaves_nothing,
            collect_spares_live_staging,
            persist_makes_a_staged_copy_durable,
            multipart_roundtrip,
            multipart_reupload,
            multipart_sparse_subset,
            multipart_abort,
            multipart_unknown_receipt,
            multipart_concurrent_same_name,
            multipart_complete_again,
            records_listed_only_by_prefix,
        }
    };
}

/// All of the above, in sequence.
pub async fn run_all(b: &dyn Backend) {
    macro_rules! run_each {
        ($b:ident; $($test:ident),* $(,)?) => {
            $( $test($b).await; )*
        };
    }
    every_suite_function!(run_each!(b;));
}

#[cfg(test)]
mod runs {
    use crate::{LocalBackend, ObjectStoreBackend};

    fn local() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::Builder::new()
            .prefix("hansa-backends-")
            .tempdir()
            .expect("tempdir");
        let backend =
            LocalBackend::new("local-test", dir.path().join("root")).expect("local backend");
        (dir, backend)
    }

    macro_rules! suite {
        ($($test:ident),* $(,)?) => {
            mod local {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let (_dir, b) = super::local();
                        crate::testsuite::$test(&b).await;
                    }
                )*
            }
            mod memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let b = crate::ObjectStoreBackend::memory("memory-test");
                        crate::testsuite::$test(&b).await;
                    }
                )*
            }
            mod memory_with_prefix {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
                        let b = crate::ObjectStoreBackend::new("prefixed", store, object_store::path::Path::from("tenant/replica"));
                        crate::testsuite::$test(&b).await;
                    }
                )*
            }
        };
    }

    every_suite_function!(suite!());

    /// The whole suite on one shared backend, as another crate would run it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_shared() {
        let (_dir, b) = local();
        crate::testsuite::run_all(&b).await;
        crate::testsuite::run_all(&ObjectStoreBackend::memory("m")).await;
    }
}
