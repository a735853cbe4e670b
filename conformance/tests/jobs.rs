//! Drain and rebalance jobs, started in-process with `hansa::store::jobs::start_job` on a
//! gateway with three local disks (`disk-a`, `disk-b` from the test gateway, `disk-c` added
//! here), clients reading and writing through aws-sdk-s3 meanwhile. Checked behind the S3
//! interface: the job's record, the index's replicas, the drained backend's own listing and
//! files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hansa::meta::{JobRecord, JobSpec, JobState, ReplicaState};
use hansa::store::jobs::{control_job, job, start_job, JobControl};
use hansa_conformance::{
    cloud_backends_toml, create_bucket, get, put, random_bytes, sha256_hex, test_tmp_root, Options,
    TestGateway,
};

/// A gateway over `disk-a`, `disk-b` and `disk-c` (in `extra`'s directory), with `policy` as
/// the TOML of its default policy and `more` appended (e.g. `[jobs]`).
struct Three {
    gw: TestGateway,
    /// Holds `disk-c`'s directory for the test's life.
    extra: tempfile::TempDir,
}

impl Three {
    fn disk_c(&self) -> PathBuf {
        self.extra.path().join("c")
    }
}

fn disk_c_toml(dir: &Path) -> String {
    format!(
        "\n[[backend]]\nid = \"disk-c\"\nkind = \"local\"\npath = {:?}\n",
        dir.join("c").display().to_string()
    )
}

async fn three_disks(policy: &str, more: &str) -> Three {
    let extra = tempfile::Builder::new()
        .prefix("jobs-")
        .tempdir_in(test_tmp_root())
        .expect("tempdir");
    let gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{}\n[policy.default]\n{policy}\n{more}\n",
            disk_c_toml(extra.path())
        ),
        ..Options::default()
    })
    .await;
    Three { gw, extra }
}

/// A body of `size` bytes; its key names the size, so a failure says which one.
fn sizes(n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| match i % 50 {
            0 => 0,
            1 if i < 150 => 9 << 20, // above the 8 MiB part size: three of them
            2..=6 => (1 << 20) + i * 4099,
            _ => (i * 7919) % 70_000,
        })
        .collect()
}

/// Writes `n` objects of mixed sizes; returns key → sha256.
async fn fill(client: &aws_sdk_s3::Client, bucket: &str, n: usize) -> BTreeMap<String, String> {
    let bodies = futures::stream::iter(sizes(n).into_iter().enumerate().map(|(i, size)| {
        let client = client.clone();
        let bucket = bucket.to_string();
        async move {
            let key = format!("obj/{i:04}-{size}");
            let body = random_bytes(size);
            put(&client, &bucket, &key, &body).await;
            (key, sha256_hex(&body))
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>()
    .await;
    bodies.into_iter().collect()
}

/// Waits until the job is no longer active; panics after `limit`.
async fn wait_job(gw: &TestGateway, id: &str, limit: Duration) -> JobRecord {
    let deadline = Instant::now() + limit;
    loop {
        let j = job(gw.store(), id).expect("job");
        if !j.state.is_active() {
            return j;
        }
        assert!(Instant::now() < deadline, "job still {:?}: {j:?}", j.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Backends the index names for `bucket/key`, sorted.
fn replica_backends(gw: &TestGateway, bucket: &str, key: &str) -> Vec<String> {
    let record = gw
        .store()
        .meta
        .object(bucket, key)
        .expect("index")
        .expect("object");
    let mut out: Vec<String> = record
        .replicas
        .iter()
        .map(|r| {
            assert_eq!(r.state, ReplicaState::Present, "{bucket}/{key}: {r:?}");
            r.backend.clone()
        })
        .collect();
    out.sort();
    out
}

/// Objects of `buckets` that `backend` holds by its own listing (stamped by Hansa).
async fn stamped_on(gw: &TestGateway, backend: &str, buckets: &[&str]) -> Vec<String> {
    let b = gw.store().backends.get(backend).expect("backend").clone();
    let mut out = Vec::new();
    let mut listing = b.list("");
    while let Some(info) = listing.next().await {
        let info = info.expect("list");
        if let Some(stamp) = info.stamp {
            if buckets.contains(&stamp.bucket.as_str()) {
                out.push(format!("{}/{}", stamp.bucket, stamp.key));
            }
        }
    }
    out
}

/// Files under `dir` outside Hansa's internals (`.hansa/`).
fn object_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".hansa") {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

async fn assert_all_read_back(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &BTreeMap<String, String>,
) {
    let checks = futures::stream::iter(objects.iter().map(|(key, sha)| async move {
        assert_eq!(&sha256_hex(&get(client, bucket, key).await), sha, "{key}");
    }))
    .buffer_unordered(8)
    .collect::<Vec<_>>();
    checks.await;
}

/// Reads, overwrites and writes new objects through the gateway until `stop`; every call
/// must succeed and every read must return what was last written. Starts from `objects` (key
/// → sha256) and returns them as the client left them, new keys included.
fn client_load(
    client: aws_sdk_s3::Client,
    bucket: String,
    mut objects: BTreeMap<String, String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(BTreeMap<String, String>, usize)> {
    tokio::spawn(async move {
        let keys: Vec<String> = objects.keys().cloned().collect();
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let key = &keys[(i * 37) % keys.len()];
            assert_eq!(
                &sha256_hex(&get(&client, &bucket, key).await),
                &objects[key],
                "{key}"
            );
            let (key, body) = if i.is_multiple_of(2) {
                // Overwrite an object the drain may be moving right now.
                (key.clone(), random_bytes(500 + (i * 131) % 20_000))
            } else {
                (
                    format!("during/{i:05}"),
                    random_bytes(1000 + (i * 131) % 50_000),
                )
            };
            put(&client, &bucket, &key, &body).await;
            objects.insert(key, sha256_hex(&body));
            i += 1;
        }
        (objects, i)
    })
}

const TWO_OF_THREE: &str = "replicas = 2\nwrite_quorum = 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_moves_every_replica_off_a_disk_while_clients_work() {
    let t = three_disks(TWO_OF_THREE, "[jobs]\nconcurrency = 4\n").await;
    let gw = &t.gw;
    let client = gw.client();
    let bucket = "drain";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 300).await;
    let on_c = objects
        .keys()
        .filter(|k| replica_backends(gw, bucket, k).contains(&"disk-c".to_string()))
        .count();
    assert!(on_c > 100, "{on_c} of 300 objects on disk-c");

    let stop = Arc::new(AtomicBool::new(false));
    let load = client_load(
        client.clone(),
        bucket.to_string(),
        objects.clone(),
        stop.clone(),
    );
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let started = start_job(gw.store(), spec).expect("start drain");
    let done = wait_job(gw, &started.id, Duration::from_secs(240)).await;
    stop.store(true, Ordering::Relaxed);
    let (all, client_calls) = load.await.expect("client task: no errors");
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let p = &done.progress;
    eprintln!(
        "drain of disk-c: {} objects, {} bytes copied in {} ms, {} pass(es)",
        p.objects_done,
        p.bytes_moved,
        done.finished_ms.unwrap_or(0) - done.created_ms,
        done.passes
    );
    assert_eq!(p.objects_failed, 0, "{:?}", p.problems);
    assert_eq!(p.objects_done, p.objects_total);
    assert!(p.objects_done >= 300, "{p:?}");
    // Every object on disk-c left it through the drain or an overwrite (every other client
    // call; a write that began just before the drain may add one more to move).
    assert!(client_calls > 0);
    eprintln!("client: {client_calls} rounds (read + write) during the drain");
    let removed = p.counts.get("removed").copied().unwrap_or(0);
    let overwritten = client_calls.div_ceil(2) as u64;
    assert!(
        removed + overwritten >= on_c as u64 && removed <= on_c as u64 + 1,
        "{removed} removed, {overwritten} overwritten, {on_c} on disk-c: {p:?}"
    );
    assert!(p.bytes_moved > 0);

    // Every object readable and byte-identical; none names disk-c, each has two replicas.
    assert_all_read_back(&client, bucket, &all).await;
    // A write of the client's last moments may still be publishing a straggler's copy.
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    for key in all.keys() {
        let backends = replica_backends(gw, bucket, key);
        assert_eq!(backends, ["disk-a", "disk-b"], "{key}");
    }
    assert_eq!(
        stamped_on(gw, "disk-c", &[bucket]).await,
        Vec::<String>::new()
    );
    assert_eq!(object_files(&t.disk_c()), Vec::<PathBuf>::new());

    // Writes after the drain never land on disk-c either.
    put(&client, bucket, "after", b"after the drain").await;
    assert_eq!(replica_backends(gw, bucket, "after"), ["disk-a", "disk-b"]);
    assert_eq!(object_files(&t.disk_c()), Vec::<PathBuf>::new());
    assert!(
        gw.wait_for_repairs(Duration::from_secs(10)).await,
        "no repair left behind by the drain"
    );
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_keep_replicas_leaves_the_bytes_but_not_the_index_entries() {
    let t = three_disks(TWO_OF_THREE, "").await;
    let gw = &t.gw;
    let client = gw.client();
    let bucket = "keep";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 40).await;
    let before = stamped_on(gw, "disk-c", &[bucket]).await;
    assert!(!before.is_empty());
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: true,
    };
    let started = start_job(gw.store(), spec).expect("start drain");
    let done = wait_job(gw, &started.id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(
        done.progress.counts.get("kept").copied(),
        Some(before.len() as u64)
    );
    assert_eq!(done.progress.counts.get("removed"), None);
    for key in objects.keys() {
        assert_eq!(replica_backends(gw, bucket, key), ["disk-a", "disk-b"]);
    }
    let mut after = stamped_on(gw, "disk-c", &[bucket]).await;
    let mut before = before;
    after.sort();
    before.sort();
    assert_eq!(after, before, "the drained disk keeps its copies");
    assert_all_read_back(&client, bucket, &objects).await;
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_cannot_meet_the_policy_fails_and_removes_nothing() {
    let t = three_disks("replicas = 3\nwrite_quorum = 2\n", "").await;
    let gw = &t.gw;
    let client = gw.client();
    let bucket = "stuck";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 12).await;
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let started = start_job(gw.store(), spec).expect("start drain");
    let done = wait_job(gw, &started.id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    let message = done.message.clone().unwrap_or_default();
    assert!(
        message.contains("12 objects keep a replica on disk-c"),
        "{message}"
    );
    let p = &done.progress;
    assert_eq!(p.objects_failed, 12, "{p:?}");
    assert_eq!(p.problems.len(), 12);
    let named: HashSet<&str> = p.problems.iter().map(|x| x.key.as_str()).collect();
    for key in objects.keys() {
        assert!(named.contains(key.as_str()), "{key} not named");
        assert_eq!(
            replica_backends(gw, bucket, key),
            ["disk-a", "disk-b", "disk-c"]
        );
    }
    for problem in &p.problems {
        assert_eq!(
            problem.reason,
            "policy \"default\" needs 3 replicas, only 2 backends take writes"
        );
    }
    assert_eq!(stamped_on(gw, "disk-c", &[bucket]).await.len(), 12);
    // A failed drain gives the backend back to writes.
    put(&client, bucket, "after", b"x").await;
    // Answered at the write quorum: the third copy may still be publishing.
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    assert_eq!(
        replica_backends(gw, bucket, "after"),
        ["disk-a", "disk-b", "disk-c"]
    );
    t.gw.shutdown().await;
}

/// A slow drain (`bytes_per_sec`) over small objects, to be paused and restarted in the middle.
const SLOW_JOBS: &str = "[jobs]\nconcurrency = 2\nbytes_per_sec = 600000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_and_cancel() {
    let mut t = three_disks(TWO_OF_THREE, SLOW_JOBS).await;
    let client = t.gw.client();
    let bucket = "pause";
    create_bucket(&client, bucket).await;
    let objects = futures::stream::iter((0..120).map(|i| {
        let client = client.clone();
        async move {
            let key = format!("k{i:03}");
            let body = random_bytes(60_000);
            put(&client, bucket, &key, &body).await;
            (key, sha256_hex(&body))
        }
    }))
    .buffer_unordered(8)
    .collect::<BTreeMap<_, _>>()
    .await;
    let on_c = objects
        .keys()
        .filter(|k| replica_backends(&t.gw, bucket, k).contains(&"disk-c".to_string()))
        .count() as u64;
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let id = start_job(t.gw.store(), spec).expect("start").id;

    // Pause once it has made progress: the record stops moving.
    let progressed = |gw: &TestGateway, at_least: u64| {
        job(gw.store(), &id).expect("job").progress.objects_done >= at_least
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !progressed(&t.gw, 10) {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paused = control_job(t.gw.store(), &id, JobControl::Pause).expect("pause");
    assert_eq!(paused.state, JobState::Paused);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = job(t.gw.store(), &id).expect("job");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = job(t.gw.store(), &id).expect("job");
    assert_eq!(later.state, JobState::Paused);
    assert_eq!(later.progress, still.progress, "a paused job does not move");
    assert!(control_job(t.gw.store(), &id, JobControl::Pause).is_err());

    // Resume, then restart the gateway in the middle: it goes on from its cursor.
    control_job(t.gw.store(), &id, JobControl::Resume).expect("resume");
    let target = later.progress.objects_done + 10;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !progressed(&t.gw, target) {
        assert!(Instant::now() < deadline, "no progress after resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.gw.restart().await;
    let client = t.gw.client(); // the restarted gateway listens on another port
    let resumed = job(t.gw.store(), &id).expect("job");
    assert!(resumed.progress.objects_done >= later.progress.objects_done);
    assert!(resumed.progress.objects_done < resumed.progress.objects_total);
    assert_eq!(resumed.state, JobState::Running);
    let mut seen = resumed.progress.objects_done;
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let j = job(t.gw.store(), &id).expect("job");
        assert!(j.progress.objects_done >= seen, "progress went backwards");
        seen = j.progress.objects_done;
        if !j.state.is_active() {
            break j;
        }
        assert!(Instant::now() < deadline, "drain did not end: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(done.passes, 1, "{done:?}");
    assert_eq!(done.progress.objects_done, 120);
    assert_eq!(done.progress.objects_total, 120);
    // Each object left disk-c once; at most the few in flight at the restart were redone.
    let removed = done.progress.counts.get("removed").copied().unwrap_or(0);
    assert!(removed <= on_c, "{removed} removals for {on_c} objects");
    assert_eq!(
        stamped_on(&t.gw, "disk-c", &[bucket]).await,
        Vec::<String>::new()
    );
    assert_all_read_back(&client, bucket, &objects).await;

    // Cancel: a second drain (of disk-b) stops, and disk-b takes writes again.
    let spec = JobSpec::Drain {
        backend: "disk-b".into(),
        keep_replicas: false,
    };
    let second = start_job(t.gw.store(), spec).expect("start").id;
    let cancelled = control_job(t.gw.store(), &second, JobControl::Cancel).expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(control_job(t.gw.store(), &second, JobControl::Resume).is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        job(t.gw.store(), &second).expect("job").state,
        JobState::Cancelled
    );
    put(&client, bucket, "after-cancel", b"x").await;
    assert_eq!(
        replica_backends(&t.gw, bucket, "after-cancel"),
        ["disk-a", "disk-b"],
        "disk-c stays drained, disk-b takes writes again"
    );
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_after_a_policy_change_puts_every_object_where_the_plan_says() {
    // Two replicas over three disks, then three: every object gains its third replica.
    let mut t = three_disks(TWO_OF_THREE, "").await;
    let client = t.gw.client();
    let bucket = "rebalance";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 60).await;
    let two = t.gw.config_toml().to_string();
    let three = two.replace(TWO_OF_THREE, "replicas = 3\nwrite_quorum = 2\n");
    assert_ne!(two, three);
    restart_with(&mut t.gw, &three).await;
    let id = start_job(t.gw.store(), JobSpec::Rebalance)
        .expect("start")
        .id;
    let done = wait_job(&t.gw, &id, Duration::from_secs(120)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let grew = objects
        .keys()
        .filter(|k| replica_backends(&t.gw, bucket, k).len() == 3)
        .count();
    assert_eq!(grew, objects.len());
    assert_eq!(done.progress.counts.get("removed"), None);

    // Back to two: the replica outside each key's plan goes.
    restart_with(&mut t.gw, &two).await;
    let client = t.gw.client();
    let id = start_job(t.gw.store(), JobSpec::Rebalance)
        .expect("start")
        .id;
    let done = wait_job(&t.gw, &id, Duration::from_secs(120)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(
        done.progress.counts.get("removed").copied(),
        Some(objects.len() as u64)
    );
    for key in objects.keys() {
        let plan = t.gw.store().write_plan(bucket, key);
        let mut targets = plan.targets.clone();
        targets.sort();
        assert_eq!(replica_backends(&t.gw, bucket, key), targets, "{key}");
    }
    assert_all_read_back(&client, bucket, &objects).await;
    t.gw.shutdown().await;
}

/// Restarts `gw` with another configuration on the same directories.
async fn restart_with(gw: &mut TestGateway, toml: &str) {
    if let Some(r) = gw.running.take() {
        r.shutdown(Duration::from_secs(5)).await;
    }
    let config = hansa::config::Config::from_toml("jobs-test.toml", toml).expect("valid");
    let mut attempt = 0;
    let running = loop {
        match hansa::server::start(config.clone()).await {
            Ok(r) => break r,
            Err(e) if attempt < 50 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("gateway did not start: {e}"),
        }
    };
    gw.addr = running.http_addrs[0];
    gw.endpoint = format!("http://{}", gw.addr);
    gw.running = Some(running);
}

/// Waits until the job has handled `n` objects.
async fn wait_progress(gw: &TestGateway, id: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while job(gw.store(), id).expect("job").progress.objects_done < n {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The end-to-end drain of the issue, on the three real kinds: objects of mixed sizes on a
/// local disk, moto (S3) and Azurite, two replicas each; moto is drained while a client reads
/// and writes; the gateway restarts in the middle; once done, moto leaves the configuration
/// and everything still reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_of_an_s3_backend_to_local_disk_and_azure() {
    if std::env::var_os("HANSA_TEST_S3_ENDPOINT").is_none() {
        eprintln!("HANSA_TEST_S3_ENDPOINT not set (run inside scripts/test-servers.sh): skipped");
        return;
    }
    let run = uuid_like();
    let Some(cloud) = cloud_backends_toml(&format!("jobs-{run}/"), &format!("jobs-{run}/")) else {
        return;
    };
    let policy = "[policy.default]\nbackends = [\"disk-a\", \"moto\", \"azurite\"]\nreplicas = 2\nwrite_quorum = 2\n";
    let mut gw = TestGateway::start_with(Options {
        extra_toml: format!("{cloud}\n{policy}\n[jobs]\nbytes_per_sec = 8000000\n"),
        ..Options::default()
    })
    .await;
    let bucket = "cloud-drain";
    create_bucket(&gw.client(), bucket).await;
    let objects = fill(&gw.client(), bucket, 200).await;
    let on_moto = stamped_on(&gw, "moto", &[bucket]).await.len();
    assert!(on_moto > 50, "{on_moto}");
    let spec = JobSpec::Drain {
        backend: "moto".into(),
        keep_replicas: false,
    };
    let started = Instant::now();
    let id = start_job(gw.store(), spec).expect("start").id;

    // A client works until the restart, another one after it.
    let stop = Arc::new(AtomicBool::new(false));
    let load = client_load(gw.client(), bucket.to_string(), objects, stop.clone());
    wait_progress(&gw, &id, 60).await;
    stop.store(true, Ordering::Relaxed);
    let (objects, before_restart) = load.await.expect("client: no errors");
    let at_restart = job(gw.store(), &id).expect("job").progress;
    gw.restart().await;
    let resumed = job(gw.store(), &id).expect("job");
    assert_eq!(resumed.state, JobState::Running, "{resumed:?}");
    assert!(
        resumed.progress.objects_done >= at_restart.objects_done,
        "progress went back"
    );
    assert!(
        resumed.progress.objects_done < resumed.progress.objects_total,
        "restarted too late"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = client_load(gw.client(), bucket.to_string(), objects, stop.clone());
    let done = wait_job(&gw, &id, Duration::from_secs(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (objects, after_restart) = load.await.expect("client: no errors");
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let p = &done.progress;
    eprintln!(
        "drain of moto: {} objects, {} bytes copied, {} pass(es), {:?} with a restart; \
         client rounds (read + write) {before_restart} before and {after_restart} after it, 0 failed",
        p.objects_done,
        p.bytes_moved,
        done.passes,
        started.elapsed()
    );
    assert_eq!(p.objects_failed, 0, "{:?}", p.problems);
    // A write of the client's last moments may still be publishing a straggler's copy.
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    for key in objects.keys() {
        assert_eq!(
            replica_backends(&gw, bucket, key),
            ["azurite", "disk-a"],
            "{key}"
        );
    }
    assert_eq!(
        stamped_on(&gw, "moto", &[bucket]).await,
        Vec::<String>::new()
    );

    // moto leaves the configuration: everything still reads back.
    let start = cloud
        .find("[[backend]]\nid = \"moto\"")
        .expect("moto's table");
    let end = cloud
        .find("[[backend]]\nid = \"azurite\"")
        .expect("azurite's table");
    let without = gw
        .config_toml()
        .replace(&cloud[start..end], "")
        .replace("\"moto\", ", "");
    assert!(!without.contains("moto"));
    restart_with(&mut gw, &without).await;
    assert!(gw.store().backends.get("moto").is_none());
    assert_all_read_back(&gw.client(), bucket, &objects).await;
    gw.shutdown().await;
}

/// A name unique to this run, for the cloud backends' prefixes.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_deletes_copies_on_the_backend_that_the_index_does_not_name() {
    let t = three_disks(TWO_OF_THREE, "").await;
    let gw = &t.gw;
    let client = gw.client();
    let bucket = "sweep";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 12).await;
    // A second copy of an object on disk-c under its fallback name, stamp and all (as a
    // removal that failed leaves one): the index names only the plain one.
    let key = objects
        .keys()
        .find(|k| replica_backends(gw, bucket, k).contains(&"disk-c".to_string()))
        .expect("an object on disk-c")
        .clone();
    let plain = t
        .disk_c()
        .join(hansa_backends::physical_name(bucket, &key).as_str());
    let fallback = t
        .disk_c()
        .join(hansa_backends::fallback_name(bucket, &key).as_str());
    std::fs::create_dir_all(fallback.parent().expect("parent")).expect("mkdir");
    let status = std::process::Command::new("cp")
        .arg("--preserve=xattr")
        .arg(&plain)
        .arg(&fallback)
        .status()
        .expect("cp");
    assert!(status.success());
    let on_c = stamped_on(gw, "disk-c", &[bucket]).await;
    assert_eq!(
        on_c.iter()
            .filter(|k| **k == format!("{bucket}/{key}"))
            .count(),
        2
    );

    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let id = start_job(gw.store(), spec).expect("start").id;
    let done = wait_job(gw, &id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(
        done.progress.counts.get("swept").copied(),
        Some(1),
        "{done:?}"
    );
    assert_eq!(
        stamped_on(gw, "disk-c", &[bucket]).await,
        Vec::<String>::new()
    );
    assert_eq!(object_files(&t.disk_c()), Vec::<PathBuf>::new());
    assert_all_read_back(&client, bucket, &objects).await;
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_passes_again_for_an_upload_begun_before_it() {
    let t = three_disks(TWO_OF_THREE, SLOW_JOBS).await;
    let gw = &t.gw;
    let client = gw.client();
    let bucket = "late";
    create_bucket(&client, bucket).await;
    for i in 0..60 {
        put(&client, bucket, &format!("k{i:03}"), &random_bytes(60_000)).await;
    }
    // An upload whose targets include disk-c, begun before the drain, completed during it
    // under a key the drain's cursor has passed already.
    let key = (0..)
        .map(|i| format!("a-upload-{i}"))
        .find(|k| {
            gw.store()
                .placement()
                .write_plan(bucket, k)
                .targets
                .contains(&"disk-c".to_string())
        })
        .expect("a key placed on disk-c");
    let upload = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id").to_string();
    let body = random_bytes(100_000);
    let part = client
        .upload_part()
        .bucket(bucket)
        .key(&key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(body.clone().into())
        .send()
        .await
        .expect("upload part");
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let id = start_job(gw.store(), spec).expect("start").id;
    let deadline = Instant::now() + Duration::from_secs(30);
    while job(gw.store(), &id).expect("job").progress.objects_done < 5 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        )
        .build();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(completed)
        .send()
        .await
        .expect("complete");
    assert!(
        replica_backends(gw, bucket, &key).contains(&"disk-c".to_string()),
        "the upload's own targets hold it"
    );
    let done = wait_job(gw, &id, Duration::from_secs(120)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(done.passes >= 2, "{done:?}");
    assert_eq!(replica_backends(gw, bucket, &key), ["disk-a", "disk-b"]);
    assert_eq!(
        sha256_hex(&get(&client, bucket, &key).await),
        sha256_hex(&body)
    );
    assert_eq!(
        stamped_on(gw, "disk-c", &[bucket]).await,
        Vec::<String>::new()
    );
    t.gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_would_break_a_require_rule_names_the_rule() {
    // Only disk-c is in the EU; every object needs one EU replica.
    let extra = tempfile::Builder::new()
        .prefix("jobs-")
        .tempdir_in(test_tmp_root())
        .expect("tempdir");
    let gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{}tags = {{ jurisdiction = \"eu\" }}\n[policy.default]\n{TWO_OF_THREE}require = [{{ jurisdiction = \"eu\", min = 1 }}]\n",
            disk_c_toml(extra.path())
        ),
        ..Options::default()
    })
    .await;
    let client = gw.client();
    let bucket = "eu-only";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 6).await;
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let id = start_job(gw.store(), spec).expect("start").id;
    let done = wait_job(&gw, &id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert_eq!(done.progress.problems.len(), objects.len());
    for problem in &done.progress.problems {
        assert!(
            problem.reason.starts_with("policy \"default\": ")
                && problem.reason.contains("jurisdiction=eu")
                && problem.reason.contains("is not met"),
            "{problem:?}"
        );
    }
    for key in objects.keys() {
        assert!(replica_backends(&gw, bucket, key).contains(&"disk-c".to_string()));
    }
    gw.shutdown().await;
}

/// Repair entries queued for disk-c.
fn queued_for_c(gw: &TestGateway) -> usize {
    gw.store()
        .backend_status()
        .into_iter()
        .find(|s| s.health.id == "disk-c")
        .map_or(0, |s| s.queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_owed_by_the_drained_backend_are_dropped() {
    let extra = tempfile::Builder::new()
        .prefix("jobs-")
        .tempdir_in(test_tmp_root())
        .expect("tempdir");
    let gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{}faults = {{}}\n[policy.default]\nreplicas = 2\nwrite_quorum = 1\n",
            disk_c_toml(extra.path())
        ),
        ..Options::default()
    })
    .await;
    // disk-c takes no writes: objects placed on it are written with a Pending replica there
    // and a repair queued for it.
    gw.faults("disk-c").update(|plan| {
        plan.writes = hansa_backends::Fault::Fail;
        plan.publishes = hansa_backends::Fault::Fail;
    });
    let client = gw.client();
    let bucket = "owed";
    create_bucket(&client, bucket).await;
    let objects = fill(&client, bucket, 20).await;
    assert!(queued_for_c(&gw) > 0, "repairs owed by disk-c");
    let spec = JobSpec::Drain {
        backend: "disk-c".into(),
        keep_replicas: false,
    };
    let id = start_job(gw.store(), spec).expect("start").id;
    let done = wait_job(&gw, &id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Done, "{done:?}");
    for key in objects.keys() {
        assert_eq!(replica_backends(&gw, bucket, key), ["disk-a", "disk-b"]);
    }
    // The worker drops what disk-c owed: the index no longer names a replica there.
    assert!(
        hansa::store::drain_queue(gw.store(), Duration::from_secs(30)).await,
        "repair queue not empty"
    );
    assert_eq!(queued_for_c(&gw), 0);
    assert_all_read_back(&client, bucket, &objects).await;
    gw.shutdown().await;
}
