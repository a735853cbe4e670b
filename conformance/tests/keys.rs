//! Awkward keys: path traversal, empty segments, file/directory clashes, dots, unicode, spaces,
//! `+`, `%`, long keys. They coexist, round-trip, list exactly, and nothing leaves the
//! backend directories.

use std::collections::BTreeMap;

use hansa_conformance::{
    assert_s3_err, create_bucket, encode_key, get, list_all_keys, put, TestGateway,
};

fn awkward_keys(tag: &str) -> Vec<String> {
    let mut keys: Vec<String> = [
        "../../etc/passwd",
        "a//b",
        "a/b",
        "a",
        "a/b/c",
        "dir/",
        "dir",
        "dir//",
        "./x",
        "x",
        ".",
        "..",
        "./",
        "../",
        "a/./b",
        "a/../b",
        "/leading-slash",
        "trailing-dot.",
        "ünïcödé/ключ/鍵.txt",
        "with space/and more spaces ",
        "plus+sign",
        "percent%",
        "percent%2Fencoded",
        "%00",
        "question?mark",
        "hash#tag",
        "semi;colon",
        "quote\"and'apos",
        "back\\slash",
        "tilde~and*star",
        "ampersand&equals=",
        ".hansa/k/keys/deadbeef",
        ".hansa",
        "emoji 🎉",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    keys.push(format!(
        "../../../../../../../../../../../tmp/hansa-escape-{tag}"
    ));
    keys.push(format!("../../escape-{tag}"));
    // A segment longer than a file name may be.
    keys.push(format!("long-segment/{}", "s".repeat(300)));
    // 1024 bytes: the longest key S3 allows (multi-byte characters count as bytes).
    let mut k1024 = "é".repeat(500);
    k1024.push_str(&"k".repeat(1024 - k1024.len()));
    assert_eq!(k1024.len(), 1024);
    keys.push(k1024);
    let ascii1024 = format!("deep/{}", "a/".repeat(509));
    let ascii1024 = format!("{ascii1024}{}", "z".repeat(1024 - ascii1024.len()));
    assert_eq!(ascii1024.len(), 1024);
    keys.push(ascii1024);
    keys
}

#[tokio::test]
async fn awkward_keys_coexist_and_round_trip() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "keys").await;
    let tag = format!("{:08x}", rand::random::<u32>());
    let keys = awkward_keys(&tag);
    let mut expected = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let body = format!("#{i} content of {k:?}").into_bytes();
        match s3
            .put_object()
            .bucket("keys")
            .key(k)
            .body(body.clone().into())
            .send()
            .await
        {
            Ok(_) => {
                expected.insert(k.clone(), body);
            }
            Err(e) => failures.push(format!("PUT {k:?}: {:?}", hansa_conformance::s3_err(&e))),
        }
    }
    for (k, body) in &expected {
        match s3.get_object().bucket("keys").key(k).send().await {
            Ok(out) => {
                let got = out.body.collect().await.expect("body").into_bytes();
                if got.as_ref() != body.as_slice() {
                    failures.push(format!(
                        "GET {k:?}: wrong content {:?}",
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
            Err(e) => failures.push(format!("GET {k:?}: {:?}", hansa_conformance::s3_err(&e))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (k, body) in &expected {
        let head = s3
            .head_object()
            .bucket("keys")
            .key(k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {k:?}: {e:?}"));
        assert_eq!(head.content_length(), Some(body.len() as i64), "{k:?}");
    }
    let listed = list_all_keys(&s3, "keys").await;
    let want: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(
        listed, want,
        "the listing is exactly the set of keys, in byte order"
    );

    // Copy between awkward keys keeps them apart as well.
    s3.copy_object()
        .copy_source(format!("keys/{}", encode_key("a//b")))
        .bucket("keys")
        .key("dir//")
        .send()
        .await
        .expect("copy a//b onto dir//");
    assert_eq!(get(&s3, "keys", "dir//").await, expected["a//b"]);
    assert_eq!(get(&s3, "keys", "dir/").await, expected["dir/"]);
    assert_eq!(get(&s3, "keys", "a/b").await, expected["a/b"]);

    // Nothing outside the gateway's directories, and inside only under a/, b/ and data/.
    assert!(
        !std::path::Path::new(&format!("/tmp/hansa-escape-{tag}")).exists(),
        "a key escaped to /tmp"
    );
    for f in gw.all_files() {
        let first = f
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        assert!(
            matches!(first.as_deref(), Some("a" | "b" | "data")),
            "file outside the backend and data directories: {}",
            f.display()
        );
    }
    assert!(!gw.dir.path().join(format!("escape-{tag}")).exists());

    // Deleting each key removes exactly that key.
    for k in ["a", "dir", "a//b", "./x", "../../etc/passwd"] {
        s3.delete_object()
            .bucket("keys")
            .key(k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {k:?}: {e:?}"));
        expected.remove(k);
        assert_s3_err!(
            s3.get_object().bucket("keys").key(k).send().await,
            404,
            "NoSuchKey"
        );
    }
    for (k, body) in &expected {
        if k == "dir//" {
            continue; // overwritten by the copy above
        }
        assert_eq!(&get(&s3, "keys", k).await, body, "after deletes: {k:?}");
    }
    let listed = list_all_keys(&s3, "keys").await;
    let want: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(listed, want);
    gw.shutdown().await;
}

#[tokio::test]
async fn awkward_keys_survive_a_restart() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "keys").await;
    let keys = ["a", "a/b", "a//b", "dir/", "dir", "./x", "../../up"];
    for k in keys {
        put(&s3, "keys", k, format!("body {k}").as_bytes()).await;
    }
    gw.restart().await;
    let s3 = gw.client();
    for k in keys {
        assert_eq!(
            get(&s3, "keys", k).await,
            format!("body {k}").into_bytes(),
            "{k:?}"
        );
    }
    let mut want: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(list_all_keys(&s3, "keys").await, want);
    gw.shutdown().await;
}

#[tokio::test]
async fn key_too_long() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "keys").await;
    let k1025 = "k".repeat(1025);
    let e = assert_s3_err!(
        s3.put_object()
            .bucket("keys")
            .key(&k1025)
            .body(b"x".to_vec().into())
            .send()
            .await,
        400,
        "KeyTooLongError"
    );
    let _ = e;
    let multibyte = "é".repeat(513); // 1026 bytes, 513 characters
    assert_s3_err!(
        s3.put_object()
            .bucket("keys")
            .key(&multibyte)
            .body(b"x".to_vec().into())
            .send()
            .await,
        400,
        "KeyTooLongError"
    );
    put(&s3, "keys", "src", b"x").await;
    assert_s3_err!(
        s3.copy_object()
            .copy_source("keys/src")
            .bucket("keys")
            .key(&k1025)
            .send()
            .await,
        400,
        "KeyTooLongError"
    );
    assert_eq!(list_all_keys(&s3, "keys").await, vec!["src"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn same_key_in_two_buckets_is_two_objects() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "one").await;
    create_bucket(&s3, "two").await;
    put(&s3, "one", "shared/key", b"in one").await;
    put(&s3, "two", "shared/key", b"in two").await;
    assert_eq!(get(&s3, "one", "shared/key").await, b"in one");
    assert_eq!(get(&s3, "two", "shared/key").await, b"in two");
    s3.delete_object()
        .bucket("one")
        .key("shared/key")
        .send()
        .await
        .expect("delete");
    assert_eq!(get(&s3, "two", "shared/key").await, b"in two");
    gw.shutdown().await;
}
