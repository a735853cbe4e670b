//! The index can always be rebuilt from the backends, and a gateway does not start over them
//! as if they were empty: `hansa rebuild-index`, bucket markers, tombstones of deletes that
//! reached only some backends, and the start-up refusals with their flags.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::process::{free_port, TestDir};
use hansa_conformance::{
    bucket_name, create_bucket, gateway_state, hansa_binary, put, random_bytes, Options,
    TestGateway,
};

/// Key, size and ETag of every object, as ListObjectsV2 shows them, per bucket.
async fn listings(client: &aws_sdk_s3::Client) -> Vec<(String, Vec<(String, i64, String)>)> {
    let mut out = Vec::new();
    let buckets = client.list_buckets().send().await.expect("list buckets");
    for b in buckets.buckets() {
        let name = b.name().unwrap_or_default().to_string();
        let mut entries = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&name)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            for o in page.contents() {
                entries.push((
                    o.key().unwrap_or_default().to_string(),
                    o.size().unwrap_or_default(),
                    o.e_tag().unwrap_or_default().to_string(),
                ));
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out.push((name, entries));
    }
    out.sort();
    out
}

/// Stops the in-process gateway, keeping its directories.
async fn stop(gw: &mut TestGateway) {
    if let Some(r) = gw.running.take() {
        r.shutdown(Duration::from_secs(5)).await;
    }
}

/// Writes `toml` next to the gateway's data and returns the file.
fn config_file(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, toml).expect("write configuration");
    file
}

/// `hansa rebuild-index --config FILE --json`: its report, or its stderr on failure.
fn rebuild_index(config: &Path) -> Result<serde_json::Value, String> {
    let out = Command::new(hansa_binary())
        .args(["rebuild-index", "--json", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run hansa rebuild-index");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| format!("{e}: {stdout}"))
}

/// Runs `hansa serve --config FILE [args]` (the configuration's listener replaced by a free
/// port): `Ok` once it listens (it is then stopped with SIGTERM), `Err(stderr)` if it exits.
fn serve(config_toml: &str, dir: &Path, args: &[&str]) -> Result<(), String> {
    let addr = free_port();
    let toml = config_toml.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{addr}\"]"),
        1,
    );
    let config = config_file(dir, "serve.toml", &toml);
    let err_file = dir.join("serve.err");
    let mut child = Command::new(hansa_binary())
        .args(["serve", "--config"])
        .arg(&config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_file).expect("stderr file"))
        .spawn()
        .expect("start hansa");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
            assert!(!status.success(), "hansa serve exited 0 before listening");
            return Err(stderr);
        }
        if TcpStream::connect(addr).is_ok() {
            // The SIGTERM handler is installed a moment after the listener binds.
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: kill only signals our own child, which has not been waited for.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let status = child.wait().expect("wait for hansa");
            assert!(status.success(), "hansa stopped with {status}");
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hansa serve neither listened nor exited");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn put_with_metadata(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    content_type: &str,
) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .metadata("origin", "rebuild-test")
        .metadata("note", "ünïcode value")
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

async fn put_multipart(client: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-parts")
        .send()
        .await
        .expect("create upload");
    let id = upload.upload_id().expect("upload id").to_string();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let part = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(data.clone().into())
            .send()
            .await
            .expect("upload part");
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap_or_default())
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete upload");
}

async fn delete(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete {bucket}/{key}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_index_serves_what_the_lost_one_did() {
    let mut gw = TestGateway::start_with(Options {
        faults: true,
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let (main, empty) = (bucket_name("rb-main"), bucket_name("rb-empty"));
    create_bucket(&s3, &main).await;
    create_bucket(&s3, &empty).await;

    let long_key = format!("long/{}", "k".repeat(995));
    assert_eq!(long_key.len(), 1000);
    put_with_metadata(&s3, &main, "doc.txt", b"first", "text/plain").await;
    put_with_metadata(&s3, &main, "doc.txt", b"second version", "text/markdown").await;
    put(&s3, &main, "über/日本語 😀.txt", &random_bytes(3000)).await;
    put(&s3, &main, "a//b", b"fallback name").await;
    put(&s3, &main, &long_key, b"a long key").await;
    put(&s3, &main, "empty-object", b"").await;
    put(&s3, &main, "big.bin", &random_bytes(6 << 20)).await;
    put(&s3, &main, "rewritten", &random_bytes(100)).await;
    put(&s3, &main, "rewritten", &random_bytes(200)).await;
    let parts = vec![random_bytes(5 << 20), random_bytes(1234)];
    put_multipart(&s3, &main, "multi.bin", &parts).await;
    put(&s3, &main, "deleted", b"gone").await;
    delete(&s3, &main, "deleted").await;
    put(&s3, &main, "deleted-then-back", b"old").await;
    delete(&s3, &main, "deleted-then-back").await;
    put(&s3, &main, "deleted-then-back", b"new").await;
    // A delete disk-b misses: its copy stays there, a tombstone on disk-a says it was deleted.
    put(&s3, &main, "half-deleted", b"one copy survives").await;
    put(&s3, &main, "a//half", b"fallback, one copy survives").await;
    gw.faults("disk-b").update(|p| p.deletes = Fault::Fail);
    delete(&s3, &main, "half-deleted").await;
    delete(&s3, &main, "a//half").await;
    // Deleted the same way, then written again: the tombstone is older than the new version.
    put(&s3, &main, "half-then-back", b"old").await;
    delete(&s3, &main, "half-then-back").await;
    put(&s3, &main, "half-then-back", b"written again").await;
    let [disk_a, disk_b] = gw.backend_dirs();
    let tombstones = std::fs::read_dir(disk_a.join(".hansa/t").join(&main))
        .expect("tombstones on disk-a")
        .count();
    assert_eq!(tombstones, 3);
    assert!(disk_b.join(&main).join("half-deleted").exists());
    assert!(disk_a.join(".hansa/b").join(&empty).exists());
    assert!(disk_b.join(".hansa/b").join(&empty).exists());

    let before = gateway_state(&s3).await;
    let listed_before = listings(&s3).await;
    let halves: Vec<&str> = before
        .objects
        .iter()
        .filter(|o| o.key.contains("half"))
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(halves, ["half-then-back"]);

    // The index is lost (with the removals disk-b still owed).
    stop(&mut gw).await;
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    let config =
        hansa::config::Config::from_toml("rebuild.toml", gw.config_toml()).expect("configuration");
    let refused = hansa::server::start(config)
        .await
        .err()
        .expect("a start over an empty index and full backends is refused")
        .to_string();
    assert!(
        refused.contains("hansa rebuild-index --config FILE")
            && refused.contains("--allow-empty-index"),
        "{refused}"
    );

    let config_path = config_file(gw.dir.path(), "rebuild.toml", gw.config_toml());
    let report = rebuild_index(&config_path).expect("rebuild-index");
    assert_eq!(report["buckets"], 2, "{report}");
    assert_eq!(
        report["objects"].as_u64(),
        Some(before.objects.len() as u64)
    );
    // Two keys stay deleted; the tombstone of "half-then-back" is older than its new version.
    assert_eq!(report["tombstoned_keys"], 2, "{report}");
    assert_eq!(report["pending_replicas"], 0, "{report}");
    // A second rebuild refuses: the index is no longer empty.
    let again = rebuild_index(&config_path).expect_err("a second rebuild");
    assert!(again.contains("already holds"), "{again}");

    gw.restart().await;
    let s3 = gw.client();
    assert_eq!(listings(&s3).await, listed_before);
    let after = gateway_state(&s3).await;
    assert_eq!(after, before);
    // HEAD keeps the attributes.
    let head = s3
        .head_object()
        .bucket(&main)
        .key("doc.txt")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/markdown"));
    assert_eq!(head.content_length(), Some(14));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("note").map(String::as_str), Some("ünïcode value"));
    assert_eq!(
        hansa_conformance::get(&s3, &main, "half-then-back").await,
        b"written again"
    );
    for key in ["half-deleted", "a//half", "deleted"] {
        let err = s3.head_object().bucket(&main).key(key).send().await;
        assert!(err.is_err(), "{key} came back");
    }
    gw.shutdown().await;
}

/// A bucket only on disk-c (policy `solo`), for the refusal of a configuration without it.
fn solo_toml(disk_c: &Path, bucket: &str) -> String {
    format!(
        "[[backend]]\nid = \"disk-c\"\nkind = \"local\"\npath = {:?}\n\n\
         [policy.solo]\nbackends = [\"disk-c\"]\nreplicas = 1\n\n\
         [bucket.{bucket}]\npolicy = \"solo\"\n",
        disk_c.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_an_index_that_does_not_fit_the_backends() {
    let extra = TestDir::new("rebuild-c-");
    let solo = bucket_name("rb-solo");
    let extra_toml = solo_toml(&extra.path().join("c"), &solo);
    let mut gw = TestGateway::start_with(Options {
        extra_toml: extra_toml.clone(),
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let both = bucket_name("rb-both");
    create_bucket(&s3, &both).await;
    create_bucket(&s3, &solo).await;
    put(&s3, &both, "k", b"on disk-a and disk-b").await;
    put(&s3, &solo, "only-here", b"only on disk-c").await;
    put(&s3, &solo, "and-here", b"only on disk-c too").await;
    stop(&mut gw).await;
    let dir = gw.dir.path().to_path_buf();
    let full = gw.config_toml().to_string();

    // (b) disk-c left out of the configuration: its objects would be unreadable.
    let without_c = full
        .strip_suffix(&extra_toml)
        .expect("the extra TOML ends the configuration");
    let refused = serve(without_c, &dir, &[]).expect_err("refused without disk-c");
    assert!(
        refused.contains("disk-c")
            && refused.contains("2 object(s)")
            && refused.contains(&format!("{solo}/"))
            && refused.contains("--force"),
        "{refused}"
    );
    serve(without_c, &dir, &["--force"]).expect("--force starts");
    serve(&full, &dir, &[]).expect("with disk-c it starts");

    // (a) the index lost: refused, and --allow-empty-index starts empty on purpose.
    std::fs::remove_dir_all(dir.join("data").join("index")).expect("remove the index");
    let refused = serve(&full, &dir, &[]).expect_err("refused over an empty index");
    assert!(
        refused.contains("hansa rebuild-index --config FILE")
            && refused.contains("--allow-empty-index"),
        "{refused}"
    );
    serve(&full, &dir, &["--allow-empty-index"]).expect("--allow-empty-index starts");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_gateway_starts_and_deleted_buckets_leave_no_marker() {
    let mut gw = TestGateway::start_with(Options {
        faults: true,
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let (bucket, missed) = (bucket_name("rb-gone"), bucket_name("rb-missed"));
    create_bucket(&s3, &bucket).await;
    create_bucket(&s3, &missed).await;
    let [disk_a, disk_b] = gw.backend_dirs();
    let marker = |disk: &Path, b: &str| disk.join(".hansa/b").join(b).exists();
    assert!(marker(&disk_a, &bucket) && marker(&disk_b, &bucket));
    let delete_bucket = |b: String| {
        let s3 = s3.clone();
        async move {
            s3.delete_bucket()
                .bucket(b)
                .send()
                .await
                .expect("delete bucket")
        }
    };
    delete_bucket(bucket.clone()).await;
    assert!(!marker(&disk_a, &bucket) && !marker(&disk_b, &bucket));
    // A marker disk-b fails to remove is removed by the repair worker once it can.
    gw.faults("disk-b").update(|p| p.deletes = Fault::Fail);
    delete_bucket(missed.clone()).await;
    assert!(!marker(&disk_a, &missed) && marker(&disk_b, &missed));
    gw.faults("disk-b").clear();
    assert!(gw.wait_for_repairs(Duration::from_secs(60)).await);
    assert!(!marker(&disk_b, &missed));
    // Nothing of Hansa's left: an empty index over these backends starts.
    stop(&mut gw).await;
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    gw.restart().await;
    gw.shutdown().await;
}

/// A bucket's settings (CORS rules, policy, …) live in the index and in its bucket markers: a
/// rebuilt index has the newest of them, and one a backend missed does not win over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_settings_survive_a_rebuilt_index() {
    use hansa::meta::BucketSetting;
    let mut gw = TestGateway::start_with(Options {
        faults: true,
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let bucket = bucket_name("rb-settings");
    create_bucket(&s3, &bucket).await;
    let store = gw.store().clone();
    let set = |setting, value: Option<&'static str>| {
        let (store, bucket) = (store.clone(), bucket.clone());
        async move {
            hansa::store::set_bucket_setting(&store, &bucket, setting, value)
                .await
                .expect("set a bucket setting")
        }
    };
    set(BucketSetting::Cors, Some("old rules")).await;
    set(BucketSetting::Policy, Some("{\"a\":1}")).await;
    // disk-a (the first backend a rebuild lists) misses the newest change: its marker keeps
    // the old rules, and the rebuild must still take disk-b's newer ones.
    gw.faults("disk-a").update(|p| p.writes = Fault::Fail);
    set(BucketSetting::Cors, Some("new rules")).await;
    set(BucketSetting::Policy, None).await;
    gw.faults("disk-a").clear();
    let marker = std::fs::read_to_string(gw.backend_dirs()[0].join(".hansa/b").join(&bucket))
        .expect("disk-a's marker");
    assert!(marker.contains("old rules"), "{marker}");
    assert!(matches!(
        hansa::store::set_bucket_setting(&store, "no-such-bucket", BucketSetting::Cors, None).await,
        Err(hansa::store::StoreError::NoSuchBucket(_))
    ));

    stop(&mut gw).await;
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    let config_path = config_file(gw.dir.path(), "rebuild.toml", gw.config_toml());
    let report = rebuild_index(&config_path).expect("rebuild-index");
    assert_eq!(report["buckets"], 1, "{report}");
    gw.restart().await;
    let store = gw.store().clone();
    let setting = |s| hansa::store::bucket_setting(&store, &bucket, s).expect("read a setting");
    assert_eq!(setting(BucketSetting::Cors).as_deref(), Some("new rules"));
    assert_eq!(setting(BucketSetting::Policy), None);
    gw.shutdown().await;
}

/// A delete missed by one backend leaves a tombstone until the removal is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_go_once_the_owed_removal_is_done() {
    let gw = TestGateway::start_with(Options {
        faults: true,
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let bucket = bucket_name("rb-tomb");
    create_bucket(&s3, &bucket).await;
    put(&s3, &bucket, "k", b"data").await;
    gw.faults("disk-b").set(FaultPlan {
        deletes: Fault::Fail,
        ..FaultPlan::default()
    });
    delete(&s3, &bucket, "k").await;
    let [disk_a, disk_b] = gw.backend_dirs();
    let tombs = disk_a.join(".hansa/t").join(&bucket);
    assert_eq!(std::fs::read_dir(&tombs).expect("tombstone").count(), 1);
    assert!(disk_b.join(&bucket).join("k").exists());
    gw.faults("disk-b").clear();
    assert!(gw.wait_for_repairs(Duration::from_secs(60)).await);
    assert!(!disk_b.join(&bucket).join("k").exists());
    let left = std::fs::read_dir(&tombs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the tombstone outlived the owed removal");
    gw.shutdown().await;
}

/// `hansa rebuild-index --import-foreign`: objects copied onto the disks by hand, at
/// `<bucket>/<key>`, become objects (read once, stamped); anything else stays foreign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_foreign_takes_unstamped_objects_under_bucket_names() {
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    let bucket = bucket_name("rb-foreign");
    create_bucket(&s3, &bucket).await;
    put(&s3, &bucket, "hansa.txt", b"written through the gateway").await;
    stop(&mut gw).await;
    let [disk_a, disk_b] = gw.backend_dirs();
    let both = random_bytes(70_000);
    for disk in [&disk_a, &disk_b] {
        std::fs::create_dir_all(disk.join(&bucket).join("copied")).expect("mkdir");
        std::fs::write(disk.join(&bucket).join("copied/both.bin"), &both).expect("write");
    }
    std::fs::write(disk_a.join(&bucket).join("only-a.txt"), b"only on disk-a").expect("write");
    // A name no bucket can have stays foreign.
    std::fs::create_dir_all(disk_a.join("Not_A_Bucket")).expect("mkdir");
    std::fs::write(disk_a.join("Not_A_Bucket/x"), b"x").expect("write");
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");

    let config = config_file(gw.dir.path(), "rebuild.toml", gw.config_toml());
    let out = Command::new(hansa_binary())
        .args(["rebuild-index", "--import-foreign", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("run hansa rebuild-index");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["foreign_imported"], 3, "{report}");
    assert_eq!(report["foreign_skipped"], 1, "{report}");
    assert_eq!(report["objects"], 3, "{report}");
    assert_eq!(report["pending_replicas"], 1, "{report}");

    gw.restart().await;
    let s3 = gw.client();
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("copied/both.bin")
        .send()
        .await
        .expect("get imported");
    assert_eq!(
        got.e_tag().map(str::to_string),
        Some(format!("\"{}\"", hansa_conformance::md5_hex(&both)))
    );
    let bytes = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&bytes[..], &both[..]);
    assert_eq!(
        hansa_conformance::get(&s3, &bucket, "only-a.txt").await,
        b"only on disk-a"
    );
    // The policy wants a copy on disk-b too: the repair worker makes it.
    assert!(gw.wait_for_repairs(Duration::from_secs(60)).await);
    assert_eq!(
        std::fs::read(disk_b.join(&bucket).join("only-a.txt")).expect("repaired copy"),
        b"only on disk-a"
    );
    gw.shutdown().await;
}

/// The time `hansa rebuild-index` takes for `HANSA_REBUILD_OBJECTS` (default 10,000) small
/// objects on the two local test backends. Run with
/// `cargo test -p hansa-conformance --test rebuild -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints how long a rebuild of 10,000 objects takes"]
async fn measure_rebuild_of_10000_objects() {
    use futures::StreamExt;
    let count: usize = std::env::var("HANSA_REBUILD_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut gw = TestGateway::start().await;
    let s3 = gw.client();
    let bucket = bucket_name("rb-measure");
    create_bucket(&s3, &bucket).await;
    let started = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |i| {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                let body = format!("object {i}").repeat(1 + i % 50);
                put(
                    &s3,
                    &bucket,
                    &format!("dir-{}/obj-{i:06}", i % 100),
                    body.as_bytes(),
                )
                .await;
            }
        })
        .await;
    println!("wrote {count} objects in {:?}", started.elapsed());
    stop(&mut gw).await;
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    let config = config_file(gw.dir.path(), "rebuild.toml", gw.config_toml());
    let started = Instant::now();
    let report = rebuild_index(&config).expect("rebuild-index");
    let took = started.elapsed();
    assert_eq!(report["objects"].as_u64(), Some(count as u64), "{report}");
    println!(
        "rebuild-index of {count} objects on 2 local backends: {took:?} wall clock \
         (the rebuild itself: {} ms); report {report}",
        report["millis"]
    );
    gw.restart().await;
    assert_eq!(
        hansa_conformance::list_all_keys(&gw.client(), &bucket)
            .await
            .len(),
        count
    );
    gw.shutdown().await;
}

/// The rebuild over object stores: replicas on the S3 server (moto) and Azurite only, from
/// `scripts/test-servers.sh` (skipped as `tests/cloud_replicas.rs` is without them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_over_object_stores_serves_what_the_lost_index_did() {
    let run = format!("rebuild/{:016x}", rand::random::<u64>());
    let Some(backends) =
        hansa_conformance::cloud_backends_toml(&format!("{run}/moto"), &format!("{run}/azurite"))
    else {
        return;
    };
    let mut gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{backends}\n[policy.default]\nbackends = [\"moto\", \"azurite\"]\nreplicas = 2\n"
        ),
        ..Options::default()
    })
    .await;
    let s3 = gw.client();
    let (bucket, empty) = (bucket_name("rb-cloud"), bucket_name("rb-cloud-empty"));
    create_bucket(&s3, &bucket).await;
    create_bucket(&s3, &empty).await;
    put_with_metadata(&s3, &bucket, "doc.txt", b"v1", "text/plain").await;
    put_with_metadata(&s3, &bucket, "doc.txt", b"version two", "text/markdown").await;
    put(&s3, &bucket, "a//b", b"fallback name").await;
    put(&s3, &bucket, "über/日本語.txt", &random_bytes(2000)).await;
    put_multipart(
        &s3,
        &bucket,
        "multi.bin",
        &[random_bytes(5 << 20), random_bytes(777)],
    )
    .await;
    put(&s3, &bucket, "deleted", b"x").await;
    delete(&s3, &bucket, "deleted").await;
    let before = gateway_state(&s3).await;
    let listed_before = listings(&s3).await;

    stop(&mut gw).await;
    std::fs::remove_dir_all(gw.data_dir().join("index")).expect("remove the index");
    let config = config_file(gw.dir.path(), "rebuild.toml", gw.config_toml());
    let report = rebuild_index(&config).expect("rebuild-index");
    assert_eq!(report["buckets"], 2, "{report}");
    assert_eq!(
        report["objects"].as_u64(),
        Some(before.objects.len() as u64)
    );
    assert_eq!(report["pending_replicas"], 0, "{report}");
    gw.restart().await;
    let s3 = gw.client();
    assert_eq!(listings(&s3).await, listed_before);
    assert_eq!(gateway_state(&s3).await, before);
    gw.shutdown().await;
}
