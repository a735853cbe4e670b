//! Backend health and circuit breakers, through the real gateway: a backend that hangs opens
//! its circuit, after which writes (W = 1 of 2) and reads no longer wait for it and the
//! replicas it misses are recorded pending; once it recovers, probes close the circuit and
//! writes reach it again; and a backend that only fails its probes opens without traffic.

use std::time::{Duration, Instant};

use hansa::meta::ReplicaState;
use hansa::replication::CircuitState;
use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::{bucket_name, create_bucket, get, put, random_bytes, Options, TestGateway};

/// `[health]` with small intervals, so that a circuit opens and closes within a second or
/// two.
const HEALTH: &str = "probe_interval_ms = 200\nprobe_timeout_ms = 500\n\
                      failures_to_open = 3\nopen_for_ms = 1000\n";
/// The backend timeout the tests' hung calls wait for before failing over.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Two local disks with fault switches, W = 1 of 2, reads trying disk-b first (the disk that
/// will hang, so that reads meet it).
async fn gateway() -> TestGateway {
    TestGateway::start_with(Options {
        faults: true,
        limits_toml: format!("backend_timeout_secs = {}\n", BACKEND_TIMEOUT.as_secs()),
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n\
                     read_order = [\"disk-b\", \"disk-a\"]\n"
            .into(),
        health_toml: Some(HEALTH.into()),
        ..Default::default()
    })
    .await
}

fn health_of(gw: &TestGateway, id: &str) -> hansa::replication::BackendHealth {
    gw.store()
        .health
        .snapshot()
        .into_iter()
        .find(|h| h.id == id)
        .unwrap_or_else(|| panic!("no health for {id}"))
}

fn both_present() -> Vec<(String, ReplicaState)> {
    vec![
        ("disk-a".to_string(), ReplicaState::Present),
        ("disk-b".to_string(), ReplicaState::Present),
    ]
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// (a) disk-b hangs: the first reads that meet it pay the backend timeout; once its circuit
/// is open, PUTs and GETs answer at their healthy latency and writes record disk-b's
/// replica pending. (b) disk-b recovers: probes close the circuit within a few intervals,
/// and writes reach both disks again.
#[tokio::test]
async fn a_hung_backend_is_skipped_once_its_circuit_opens_and_rejoins_when_probes_pass() {
    let gw = gateway().await;
    let client = gw.client();
    let bucket = bucket_name("circuit");
    create_bucket(&client, &bucket).await;

    // Objects on both disks, to be read while disk-b hangs.
    let mut before = Vec::new();
    for i in 0..20 {
        let body = random_bytes(10_000 + i);
        let key = format!("before-{i}");
        put(&client, &bucket, &key, &body).await;
        before.push((key, body));
    }
    for (key, _) in &before {
        wait_until("both replicas present", Duration::from_secs(10), || {
            gw.replica_states(&bucket, key) == both_present()
        })
        .await;
    }
    assert_eq!(health_of(&gw, "disk-b").state, CircuitState::Closed);

    // (a) disk-b hangs on everything.
    gw.faults("disk-b").set(FaultPlan::all(Fault::Hang));
    let hang_started = Instant::now();
    // The first reads meet it (it is first in read order) and fail over after the timeout.
    let mut first_reads = Vec::new();
    for (key, body) in before.iter().take(4) {
        let (client, bucket) = (client.clone(), bucket.clone());
        let (key, body) = (key.clone(), body.clone());
        first_reads.push(tokio::spawn(async move {
            assert_eq!(get(&client, &bucket, &key).await, body);
        }));
    }
    let opened_after = wait_until("disk-b's circuit opens", Duration::from_secs(15), || {
        gw.store().health.is_open("disk-b")
    })
    .await;
    for read in first_reads {
        read.await.expect("first reads fail over to disk-a");
    }
    let h = health_of(&gw, "disk-b");
    eprintln!(
        "disk-b opened {opened_after:?} after it hung; failures {} ({:?}), last error {:?}",
        h.failures, h.errors, h.last_error
    );
    assert!(h.failures >= 3, "{h:?}");
    assert!(!gw.store().health.is_open("disk-a"));

    // With the circuit open nothing waits for disk-b.
    let mut slowest_put = Duration::ZERO;
    let mut slowest_get = Duration::ZERO;
    let mut after = Vec::new();
    for i in 0..20 {
        let key = format!("after-{i}");
        let body = random_bytes(10_000 + i);
        after.push((key.clone(), body.clone()));
        let started = Instant::now();
        put(&client, &bucket, &key, &body).await;
        slowest_put = slowest_put.max(started.elapsed());

        let (old_key, old_body) = &before[i % before.len()];
        let started = Instant::now();
        assert_eq!(&get(&client, &bucket, old_key).await, old_body);
        slowest_get = slowest_get.max(started.elapsed());

        assert_eq!(
            gw.replica_states(&bucket, &key),
            vec![
                ("disk-a".to_string(), ReplicaState::Present),
                ("disk-b".to_string(), ReplicaState::Pending),
            ],
            "{key}: the replica on the open backend is recorded pending"
        );
    }
    eprintln!(
        "with disk-b's circuit open: slowest PUT {slowest_put:?}, slowest GET {slowest_get:?}"
    );
    for (what, slowest) in [("PUT", slowest_put), ("GET", slowest_get)] {
        assert!(
            slowest < Duration::from_secs(1),
            "a {what} took {slowest:?} with the backend timeout at {BACKEND_TIMEOUT:?}"
        );
    }
    let h = health_of(&gw, "disk-b");
    assert!(h.refused >= 40, "calls were refused at once: {h:?}");
    assert!(
        gw.store().health.is_open("disk-b"),
        "still hung, still open"
    );
    assert!(hang_started.elapsed() > Duration::from_secs(1));

    // The replicas disk-b missed are queued, and the repair worker leaves them alone while
    // the circuit is open (no attempt, no timeout paid).
    let queued = gw
        .store()
        .meta
        .repairs("disk-b", None, 1000)
        .expect("queue");
    assert_eq!(queued.len(), after.len(), "{queued:?}");
    assert!(
        queued.iter().all(|(_, e)| e.attempts == 0),
        "the worker tried the open backend: {queued:?}"
    );

    // (b) disk-b recovers: probes close its circuit within its open period and a few
    // probe intervals.
    gw.faults("disk-b").clear();
    let closed_after = wait_until("disk-b's circuit closes", Duration::from_secs(8), || {
        gw.store().health.state("disk-b") == Some(CircuitState::Closed)
    })
    .await;
    eprintln!("disk-b closed {closed_after:?} after it recovered");
    let h = health_of(&gw, "disk-b");
    assert_eq!(h.consecutive_failures, 0);
    assert!(h.probes > 0);

    let body = random_bytes(50_000);
    put(&client, &bucket, "healed", &body).await;
    wait_until(
        "the new write on both disks",
        Duration::from_secs(10),
        || gw.replica_states(&bucket, "healed") == both_present(),
    )
    .await;
    let on_b = std::fs::read(gw.backend_dirs()[1].join(&bucket).join("healed"))
        .expect("disk-b holds the new write");
    assert!(on_b == body, "disk-b's copy differs");

    // What disk-b missed while its circuit was open is repaired once it is closed.
    assert!(
        gw.wait_for_repairs(Duration::from_secs(30)).await,
        "the repair queue did not drain"
    );
    for (key, body) in &after {
        assert_eq!(gw.replica_states(&bucket, key), both_present(), "{key}");
        let on_b = std::fs::read(gw.backend_dirs()[1].join(&bucket).join(key))
            .expect("disk-b holds the repaired copy");
        assert!(on_b == *body, "{key}: disk-b's repaired copy differs");
    }
    gw.shutdown().await;
}

/// (c) A backend that only fails its probes (writes fail; nobody sends it a request) opens
/// by probing alone, and closes once its probes pass again.
#[tokio::test]
async fn a_backend_failing_its_probes_opens_without_traffic() {
    let gw = gateway().await;
    // Start-up made its own calls (collecting leftovers); no request comes after this.
    let requests = health_of(&gw, "disk-b").requests;
    gw.faults("disk-b").set(FaultPlan {
        writes: Fault::Fail,
        ..Default::default()
    });
    wait_until("disk-b's circuit opens", Duration::from_secs(5), || {
        gw.store().health.is_open("disk-b")
    })
    .await;
    let h = health_of(&gw, "disk-b");
    assert_eq!(h.requests, requests, "no request reached disk-b: {h:?}");
    assert!(h.probe_failures >= 3, "{h:?}");
    assert_eq!(h.failures, h.probe_failures, "only probes failed: {h:?}");
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("probe:") && e.contains("injected")),
        "{h:?}"
    );
    let a = health_of(&gw, "disk-a");
    assert_eq!(a.state, CircuitState::Closed);
    assert_eq!(a.probe_failures, 0);
    assert!(a.probes > 0);

    gw.faults("disk-b").clear();
    wait_until("disk-b's circuit closes", Duration::from_secs(5), || {
        gw.store().health.state("disk-b") == Some(CircuitState::Closed)
    })
    .await;
    gw.shutdown().await;
}
