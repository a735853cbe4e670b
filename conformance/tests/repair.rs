//! Replication that heals itself, on two real local disks with the fault-injection wrapper:
//! a backend that was down catches up by itself through the repair queue, deletes and
//! overwrites it missed do not come back, a corrupt or vanished replica is found (by a read or
//! by anti-entropy) and replaced, and what is not Hansa's is never touched.

use std::path::PathBuf;
use std::time::Duration;

use hansa::meta::ReplicaState;
use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::{bucket_name, create_bucket, get, put, random_bytes, Options, TestGateway};

/// A gateway on disk-a and disk-b, W = 1 of 2, reads in `read_order`, failed repairs retried
/// within a second, anti-entropy only on demand and without a grace period.
async fn gateway(read_order: &str) -> TestGateway {
    TestGateway::start_with(Options {
        faults: true,
        extra_toml: format!(
            "[policy.default]\nreplicas = 2\nwrite_quorum = 1\nread_order = {read_order}\n\
             [repair]\nmax_backoff_secs = 1\nanti_entropy_interval_secs = 0\norphan_grace_secs = 0\n"
        ),
        ..Default::default()
    })
    .await
}

/// Every operation of disk-b fails, as if the provider were unreachable.
fn down(gw: &TestGateway) {
    gw.faults("disk-b").set(FaultPlan::all(Fault::Fail));
}

fn file(gw: &TestGateway, disk: usize, bucket: &str, key: &str) -> PathBuf {
    gw.backend_dirs()[disk].join(bucket).join(key)
}

/// Mixed sizes around the interesting edges: empty, one byte, one buffer (5 MiB in the test
/// gateway) and more than one.
fn sizes() -> Vec<usize> {
    vec![0, 1, 1000, 100_000, 5 << 20, (5 << 20) + 1, 11 << 20]
}

/// Waits until both replicas of each key are present: with W = 1 the second copy of a write
/// may still be on its way when the write is answered.
async fn wait_for_both(gw: &TestGateway, bucket: &str, keys: impl IntoIterator<Item = String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for key in keys {
        while !all_present(gw, bucket, &key) {
            assert!(
                std::time::Instant::now() < deadline,
                "{key}: {:?}",
                gw.replica_states(bucket, &key)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn all_present(gw: &TestGateway, bucket: &str, key: &str) -> bool {
    let states = gw.replica_states(bucket, key);
    states.len() == 2 && states.iter().all(|(_, s)| *s == ReplicaState::Present)
}

#[tokio::test]
async fn a_backend_down_during_writes_catches_up_when_it_returns() {
    let gw = gateway(r#"["disk-a", "disk-b"]"#).await;
    let s3 = gw.client();
    let bucket = bucket_name("catch-up");
    create_bucket(&s3, &bucket).await;
    down(&gw);
    let mut objects = Vec::new();
    for (i, size) in sizes().into_iter().cycle().take(28).enumerate() {
        let key = format!("k{i:02}/size-{size}");
        let body = random_bytes(size);
        put(&s3, &bucket, &key, &body).await;
        objects.push((key, body));
    }
    for (key, _) in &objects {
        let states = gw.replica_states(&bucket, key);
        assert!(
            states.contains(&("disk-b".to_string(), ReplicaState::Pending)),
            "{key}: {states:?}"
        );
        assert!(!file(&gw, 1, &bucket, key).exists(), "{key} reached disk-b");
    }
    // While disk-b stays down, the queue keeps its work (retried, never dropped).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hansa::store::queue_depth(gw.store()) >= objects.len());

    gw.faults("disk-b").clear();
    assert!(
        gw.wait_for_repairs(Duration::from_secs(60)).await,
        "the queue did not drain: {} left",
        hansa::store::queue_depth(gw.store())
    );
    for (key, body) in &objects {
        assert!(
            all_present(&gw, &bucket, key),
            "{key}: {:?}",
            gw.replica_states(&bucket, key)
        );
        let on_b = std::fs::read(file(&gw, 1, &bucket, key)).expect("copy on disk-b");
        assert!(on_b == *body, "{key}: disk-b holds other bytes");
    }
    // Reads from disk-b alone give the objects back.
    gw.faults("disk-a").set(FaultPlan::all(Fault::Fail));
    for (key, body) in objects.iter().step_by(3) {
        assert!(get(&s3, &bucket, key).await == *body, "{key}");
    }
    gw.faults("disk-a").clear();
    gw.shutdown().await;
}

#[tokio::test]
async fn deletes_and_overwrites_a_backend_missed_do_not_come_back() {
    // disk-b first: a stale copy there would be served if the index let it.
    let gw = gateway(r#"["disk-b", "disk-a"]"#).await;
    let s3 = gw.client();
    let bucket = bucket_name("missed");
    create_bucket(&s3, &bucket).await;
    let mut bodies = Vec::new();
    for i in 0..30 {
        let body = random_bytes(500 + i * 3000);
        put(&s3, &bucket, &format!("k{i:02}"), &body).await;
        bodies.push(body);
    }
    wait_for_both(&gw, &bucket, (0..30).map(|i| format!("k{i:02}"))).await;
    down(&gw);
    for i in 0..10 {
        s3.delete_object()
            .bucket(&bucket)
            .key(format!("k{i:02}"))
            .send()
            .await
            .expect("delete while disk-b is down");
    }
    for (i, body) in bodies.iter_mut().enumerate().skip(10).take(10) {
        *body = random_bytes(700 + i * 11);
        put(&s3, &bucket, &format!("k{i:02}"), body).await;
    }
    // Nothing stale is served meanwhile.
    for (i, body) in bodies.iter().enumerate().skip(10) {
        assert!(
            get(&s3, &bucket, &format!("k{i:02}")).await == *body,
            "k{i:02}"
        );
    }
    gw.faults("disk-b").clear();
    assert!(
        gw.wait_for_repairs(Duration::from_secs(60)).await,
        "queue not drained"
    );
    for (i, body) in bodies.iter().enumerate() {
        let key = format!("k{i:02}");
        let on_b = file(&gw, 1, &bucket, &key);
        if i < 10 {
            assert!(!on_b.exists(), "{key}: deleted, but disk-b still holds it");
            assert!(!file(&gw, 0, &bucket, &key).exists(), "{key} on disk-a");
        } else {
            assert!(
                std::fs::read(&on_b).expect("copy") == *body,
                "{key}: stale on disk-b"
            );
            assert!(all_present(&gw, &bucket, &key), "{key}");
            assert!(get(&s3, &bucket, &key).await == *body, "{key}");
        }
    }
    // A restart does not bring anything back either.
    let mut gw = gw;
    gw.restart().await;
    let s3 = gw.client();
    let keys = hansa_conformance::list_all_keys(&s3, &bucket).await;
    assert_eq!(keys.len(), 20, "{keys:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_replica_found_by_a_read_is_repaired() {
    let gw = gateway(r#"["disk-a", "disk-b"]"#).await;
    let s3 = gw.client();
    let bucket = bucket_name("corrupt");
    create_bucket(&s3, &bucket).await;
    let body = random_bytes(64 * 1024);
    put(&s3, &bucket, "doc", &body).await;
    wait_for_both(&gw, &bucket, ["doc".to_string()]).await;
    // Flip a byte in place on disk-a: same size, same file, same attributes.
    let path = file(&gw, 0, &bucket, "doc");
    let mut bad = std::fs::read(&path).expect("copy on disk-a");
    bad[1000] ^= 0xff;
    std::fs::write(&path, &bad).expect("corrupt the copy");

    // The read fails over to disk-b invisibly and reports the bad copy.
    assert!(get(&s3, &bucket, "doc").await == body);
    assert!(
        gw.wait_for_repairs(Duration::from_secs(30)).await,
        "queue not drained"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !all_present(&gw, &bucket, "doc") {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            gw.replica_states(&bucket, "doc")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        std::fs::read(&path).expect("copy") == body,
        "disk-a not repaired"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn anti_entropy_repairs_what_the_queue_never_heard_of() {
    let gw = gateway(r#"["disk-a", "disk-b"]"#).await;
    let s3 = gw.client();
    let bucket = bucket_name("entropy");
    create_bucket(&s3, &bucket).await;
    let mut bodies = Vec::new();
    for i in 0..6 {
        let body = random_bytes(10_000 + i);
        put(&s3, &bucket, &format!("k{i}"), &body).await;
        bodies.push(body);
    }
    wait_for_both(&gw, &bucket, (0..6).map(|i| format!("k{i}"))).await;
    // Behind the gateway's back: a copy vanishes from disk-b, another is overwritten with
    // other bytes, and a file Hansa never wrote appears under the bucket's directory.
    std::fs::remove_file(file(&gw, 1, &bucket, "k0")).expect("remove");
    std::fs::write(file(&gw, 1, &bucket, "k1"), b"changed by hand").expect("overwrite");
    let foreign = file(&gw, 1, &bucket, "not-hansa.txt");
    std::fs::write(&foreign, b"someone else's").expect("foreign file");
    // A delete disk-b missed whose queue entry was lost (an unflushed index, say).
    down(&gw);
    s3.delete_object()
        .bucket(&bucket)
        .key("k5")
        .send()
        .await
        .expect("delete");
    // Forgotten while disk-b is still down, once the worker has failed at it (so that no
    // attempt is in flight: the next waits for its backoff), as if the entry had been lost.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gw
        .store()
        .meta
        .repairs("disk-b", None, 10)
        .expect("queue")
        .iter()
        .any(|(_, e)| e.attempts >= 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never tried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    forget_queue(&gw);
    gw.faults("disk-b").clear();
    assert!(file(&gw, 1, &bucket, "k5").exists());

    let reports = hansa::store::anti_entropy(gw.store()).await;
    let b = reports
        .iter()
        .find(|r| r.backend == "disk-b")
        .expect("disk-b scanned");
    assert_eq!(b.missing, 2, "{b:?}");
    assert_eq!(b.stale, 1, "{b:?}");
    assert_eq!(b.foreign, 1, "{b:?}");
    let a = reports
        .iter()
        .find(|r| r.backend == "disk-a")
        .expect("disk-a scanned");
    assert_eq!((a.missing, a.stale, a.foreign), (0, 0, 0), "{a:?}");

    assert!(
        gw.wait_for_repairs(Duration::from_secs(30)).await,
        "queue not drained"
    );
    for (i, body) in bodies.iter().enumerate().take(5) {
        let key = format!("k{i}");
        assert!(all_present(&gw, &bucket, &key), "{key}");
        assert!(
            std::fs::read(file(&gw, 1, &bucket, &key)).expect("copy") == *body,
            "{key}"
        );
    }
    assert!(
        !file(&gw, 1, &bucket, "k5").exists(),
        "the missed delete came back"
    );
    assert_eq!(
        std::fs::read(&foreign).expect("foreign file"),
        b"someone else's"
    );
    // A second pass finds nothing left to do.
    let again = hansa::store::anti_entropy(gw.store()).await;
    for r in &again {
        assert_eq!((r.missing, r.queued, r.stale), (0, 0, 0), "{r:?}");
    }
    gw.shutdown().await;
}

/// Empties the repair queue without doing the work, as if its entries had been lost.
fn forget_queue(gw: &TestGateway) {
    let meta = &gw.store().meta;
    for backend in ["disk-a", "disk-b"] {
        for (_, entry) in meta.repairs(backend, None, 10_000).expect("queue") {
            meta.settle_repair(&entry, None).expect("forget");
        }
    }
}

/// `repair.bytes_per_sec` holds a backend's repairs to its rate: 4 MiB at 1 MiB/s (one
/// second's worth saved up) take about three seconds, however fast the disks are.
#[tokio::test]
async fn repairs_keep_to_the_bandwidth_limit() {
    let gw = TestGateway::start_with(Options {
        faults: true,
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n\
                     [repair]\nmax_backoff_secs = 1\nbytes_per_sec = 1048576\n\
                     anti_entropy_interval_secs = 0\n"
            .into(),
        ..Default::default()
    })
    .await;
    let s3 = gw.client();
    let bucket = bucket_name("paced");
    create_bucket(&s3, &bucket).await;
    down(&gw);
    for i in 0..4 {
        put(&s3, &bucket, &format!("k{i}"), &random_bytes(1 << 20)).await;
    }
    let started = std::time::Instant::now();
    gw.faults("disk-b").clear();
    assert!(
        gw.wait_for_repairs(Duration::from_secs(30)).await,
        "queue not drained"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "4 MiB repaired in {took:?}"
    );
    for i in 0..4 {
        assert!(all_present(&gw, &bucket, &format!("k{i}")));
    }
    gw.shutdown().await;
}

/// One entry per key and backend: an entry still naming an older version (kept by
/// anti-entropy's "queue unless queued", say) repairs the current version when its replica
/// waits too, instead of being dropped and leaving the backend behind.
#[tokio::test]
async fn an_entry_for_an_older_version_repairs_the_current_one() {
    let gw = gateway(r#"["disk-a", "disk-b"]"#).await;
    let s3 = gw.client();
    let bucket = bucket_name("moved-on");
    create_bucket(&s3, &bucket).await;
    down(&gw);
    put(&s3, &bucket, "k", b"v1").await;
    let meta = &gw.store().meta;
    let v1 = meta
        .object(&bucket, "k")
        .expect("index")
        .expect("record")
        .version_id;
    put(&s3, &bucket, "k", b"v2, the current one").await;
    meta.queue_repair(&hansa::meta::RepairEntry::new(
        "disk-b",
        &bucket,
        "k",
        hansa::meta::RepairTask::Replicate {
            version_id: v1,
            staged: None,
        },
        "an entry of the older version",
    ))
    .expect("queue");
    gw.faults("disk-b").clear();
    assert!(
        gw.wait_for_repairs(Duration::from_secs(30)).await,
        "queue not drained"
    );
    assert!(
        all_present(&gw, &bucket, "k"),
        "{:?}",
        gw.replica_states(&bucket, "k")
    );
    assert_eq!(
        std::fs::read(file(&gw, 1, &bucket, "k")).expect("copy on disk-b"),
        b"v2, the current one"
    );
    gw.shutdown().await;
}
