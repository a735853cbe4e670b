//! The wrapper and the probes around a real (in-memory) backend with injected faults. Timings
//! are real but small: the settings below scale every wait to tens of milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hansa_backends::testsuite::{body, collect, put_bytes, stamp};
use hansa_backends::{
    Backend, BackendError, Fault, FaultPlan, FaultSwitch, FaultyBackend, ObjectAttributes,
    ObjectStoreBackend, PhysicalName,
};

use super::{CircuitState, Health, HealthSettings};

const HUNG_AFTER: Duration = Duration::from_millis(150);

fn settings() -> HealthSettings {
    HealthSettings {
        probe_interval: Duration::from_millis(20),
        probe_timeout: Duration::from_millis(100),
        failures_to_open: 3,
        open_for: Duration::from_millis(200),
        hung_after: HUNG_AFTER,
        latency_window: 64,
        summary_every: Duration::from_millis(50),
    }
}

/// Health(Faulty(memory)), as the store builds it.
fn tracked() -> (Arc<Health>, Arc<dyn Backend>, Arc<FaultSwitch>) {
    let health = Arc::new(Health::new(settings()));
    let switch = Arc::new(FaultSwitch::default());
    let faulty = Arc::new(FaultyBackend::new(
        Arc::new(ObjectStoreBackend::memory("mem")),
        switch.clone(),
    ));
    let backend = health.track(faulty);
    (health, backend, switch)
}

fn one(health: &Health) -> super::BackendHealth {
    let all = health.snapshot();
    assert_eq!(all.len(), 1);
    all[0].clone()
}

fn reads(fault: Fault) -> FaultPlan {
    FaultPlan {
        reads: fault,
        ..Default::default()
    }
}

async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_wrapper_passes_the_backend_suite() {
    let (health, backend, _) = tracked();
    hansa_backends::testsuite::run_all(backend.as_ref()).await;
    let h = one(&health);
    assert_eq!(h.state, CircuitState::Closed);
    assert_eq!(h.failures, 0, "{h:?}");
    assert!(h.requests > 10);
    assert_eq!(h.inflight, 0);
    assert!(h.p50.is_some() && h.p99 >= h.p50);
}

#[tokio::test]
async fn failures_in_a_row_open_the_circuit_and_calls_then_skip_the_provider() {
    let (health, backend, switch) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", b"hello").await;
    switch.set(reads(Fault::Fail));
    for _ in 0..2 {
        assert!(backend.head(&name).await.is_err());
    }
    assert!(!health.is_open("mem"));
    assert!(backend.head(&name).await.is_err());
    assert!(health.is_open("mem"));
    assert_eq!(health.state("mem"), Some(CircuitState::Open));

    // The provider now hangs; an open circuit answers at once without asking it.
    switch.set(FaultPlan::all(Fault::Hang));
    let requests = one(&health).requests;
    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(1), backend.head(&name))
        .await
        .expect("an open circuit answers at once");
    assert!(started.elapsed() < Duration::from_millis(100));
    match refused {
        Err(BackendError::Unavailable { message }) => {
            assert!(message.starts_with("circuit open"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let got = tokio::time::timeout(Duration::from_secs(1), backend.get(&name, None, None)).await;
    assert!(matches!(got, Ok(Err(BackendError::Unavailable { .. }))));
    let listed: Vec<_> = backend.list("").collect().await;
    assert!(matches!(
        listed.as_slice(),
        [Err(BackendError::Unavailable { .. })]
    ));
    // A write asking whether a name is free is not held up by the hung provider either.
    let free = tokio::time::timeout(Duration::from_secs(1), backend.name_available(&name)).await;
    assert_eq!(free.ok(), Some(true));

    let h = one(&health);
    assert_eq!(
        h.requests, requests,
        "refused calls never reach the provider"
    );
    assert_eq!(h.refused, 3);
    assert_eq!(h.failures, 3);
    assert_eq!(h.errors.get("unavailable"), Some(&3));
    assert!(
        h.last_error
            .as_deref()
            .is_some_and(|e| e.contains("injected")),
        "{h:?}"
    );
}

#[tokio::test]
async fn answers_about_objects_are_not_failures() {
    let (health, backend, _) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", b"hello").await;
    let missing = PhysicalName::parse("bkt/missing").expect("name");
    for _ in 0..5 {
        assert!(backend
            .head(&missing)
            .await
            .is_err_and(|e| e.is_not_found()));
        let r = backend.get(&name, None, Some("another-etag")).await;
        assert!(matches!(r, Err(BackendError::PreconditionFailed { .. })));
        let r = backend.get(&name, Some(100..200), None).await;
        assert!(matches!(r, Err(BackendError::RangeNotSatisfiable { .. })));
    }
    // A body that the client aborts is the client's doing.
    let prepared = backend
        .prepare(
            &name,
            &ObjectAttributes::default(),
            &stamp("bkt", "k", "v2", 3),
        )
        .await
        .expect("prepare");
    let aborted = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"ab")),
        Err(BackendError::Aborted),
    ])
    .boxed();
    let r = backend
        .stage(
            &name,
            &prepared,
            &ObjectAttributes::default(),
            &stamp("bkt", "k", "v2", 3),
            aborted,
        )
        .await;
    assert!(matches!(r, Err(BackendError::Aborted)), "{r:?}");
    let h = one(&health);
    assert_eq!(h.state, CircuitState::Closed);
    assert_eq!(h.failures, 0, "{h:?}");
    assert_eq!(h.consecutive_failures, 0);
    assert_eq!(h.errors.get("not_found"), Some(&5));
    assert_eq!(h.errors.get("precondition_failed"), Some(&5));
    assert_eq!(h.errors.get("range_not_satisfiable"), Some(&5));
    assert_eq!(h.errors.get("aborted"), Some(&1));
}

#[tokio::test]
async fn a_hung_call_counts_when_given_up_late_and_not_when_dropped_early() {
    let (health, backend, switch) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", b"hello").await;
    switch.set(reads(Fault::Hang));
    // A client that hangs up long before the backend timeout.
    let early = tokio::time::timeout(Duration::from_millis(20), backend.head(&name)).await;
    assert!(early.is_err());
    let h = one(&health);
    assert_eq!((h.failures, h.inflight), (0, 0), "{h:?}");
    // A caller's timeout after the backend had its time.
    let late =
        tokio::time::timeout(HUNG_AFTER + Duration::from_millis(30), backend.head(&name)).await;
    assert!(late.is_err());
    let h = one(&health);
    assert_eq!(h.failures, 1, "{h:?}");
    assert_eq!(h.errors.get("timeout"), Some(&1));
    assert_eq!(h.consecutive_failures, 1);
    assert!(
        h.p99 >= Some(HUNG_AFTER),
        "a hung call's time shows in p99: {h:?}"
    );
    assert_eq!(h.inflight, 0);
}

#[tokio::test]
async fn a_stage_waiting_for_the_client_is_not_hung_but_one_that_ignores_its_body_is() {
    let (health, backend, switch) = tracked();
    let name = PhysicalName::parse("bkt/k").expect("name");
    let s = stamp("bkt", "k", "v1", 10);
    let attrs = ObjectAttributes::default();
    // The client sends two bytes, then nothing: the backend waits for it.
    let prepared = backend.prepare(&name, &attrs, &s).await.expect("prepare");
    let slow_client = futures::stream::iter([Ok(bytes::Bytes::from_static(b"ab"))])
        .chain(futures::stream::pending())
        .boxed();
    let r = tokio::time::timeout(
        HUNG_AFTER * 2,
        backend.stage(&name, &prepared, &attrs, &s, slow_client),
    )
    .await;
    assert!(r.is_err());
    assert_eq!(one(&health).failures, 0, "{:?}", one(&health));

    // The backend hangs before it reads a byte: given up after the limit, a failure.
    switch.set(FaultPlan {
        writes: Fault::Hang,
        ..Default::default()
    });
    let r = tokio::time::timeout(
        HUNG_AFTER * 2,
        backend.stage(&name, &prepared, &attrs, &s, body(b"0123456789", 3)),
    )
    .await;
    assert!(r.is_err());
    let h = one(&health);
    assert_eq!(h.failures, 1, "{h:?}");
    assert_eq!(h.errors.get("timeout"), Some(&1));
}

#[tokio::test]
async fn a_read_cut_mid_stream_or_stalled_counts_against_the_backend() {
    let (health, backend, switch) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", &[7u8; 100]).await;
    switch.set(reads(Fault::CutAfter(10)));
    let got = backend.get(&name, None, None).await.expect("open");
    assert!(collect(got.body).await.is_err());
    assert_eq!(one(&health).failures, 1);

    // A reader that stops reading is not the backend's fault.
    switch.set(reads(Fault::SlowMs(1)));
    let mut got = backend.get(&name, None, None).await.expect("open");
    assert!(got.body.next().await.is_some());
    tokio::time::sleep(HUNG_AFTER + Duration::from_millis(20)).await;
    drop(got);
    assert_eq!(one(&health).failures, 1);

    // A reader that waits for the next chunk until it gives up found the backend stalled.
    let mut stalled = super::tracked::watch_output(
        futures::stream::pending().boxed(),
        health.clone(),
        health.entry("mem"),
    );
    let next = tokio::time::timeout(HUNG_AFTER + Duration::from_millis(30), stalled.next()).await;
    assert!(next.is_err());
    drop(stalled);
    let h = one(&health);
    assert_eq!(h.failures, 2, "{h:?}");
    assert_eq!(h.errors.get("timeout"), Some(&1));
}

#[tokio::test]
async fn probes_open_an_idle_backend_and_close_it_once_it_recovers() {
    let (health, backend, switch) = tracked();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(health.clone().run_probes(vec![backend.clone()], stopped));

    switch.set(FaultPlan {
        writes: Fault::Fail,
        ..Default::default()
    });
    eventually("probes open the circuit", Duration::from_secs(3), || {
        health.is_open("mem")
    })
    .await;
    let h = one(&health);
    assert_eq!(h.requests, 0, "no request was sent: probes alone opened it");
    assert!(h.probe_failures >= 3, "{h:?}");
    assert!(h
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("probe:")));

    // Still failing: the circuit goes half-open after its period, and the probe opens it
    // again.
    let probes = one(&health).probes;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(health.is_open("mem"));
    assert!(
        one(&health).probes > probes,
        "half-open circuits are probed"
    );

    switch.clear();
    eventually("a passing probe closes it", Duration::from_secs(3), || {
        health.state("mem") == Some(CircuitState::Closed)
    })
    .await;
    assert!(!health.is_open("mem"));
    let name = PhysicalName::parse("bkt/k").expect("name");
    assert!(backend.head(&name).await.is_err_and(|e| e.is_not_found()));

    // A probe that hangs fails by its timeout.
    switch.set(FaultPlan::all(Fault::Hang));
    eventually("hung probes open it", Duration::from_secs(3), || {
        health.is_open("mem")
    })
    .await;
    assert!(one(&health)
        .last_error
        .is_some_and(|e| e.contains("no answer within")),);

    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("probes stop when asked")
        .expect("probe task");
}

#[tokio::test]
async fn snapshot_serializes_for_the_admin_plane() {
    let (health, backend, switch) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", b"x").await;
    backend.head(&name).await.expect("head");
    switch.set(reads(Fault::Fail));
    for _ in 0..3 {
        let _ = backend.head(&name).await;
    }
    let json = serde_json::to_value(health.snapshot()).expect("json");
    let b = &json[0];
    assert_eq!(b["id"], "mem");
    assert_eq!(b["state"], "open");
    assert_eq!(b["consecutive_failures"], 3);
    assert_eq!(b["errors"]["unavailable"], 3);
    assert!(b["p50_ms"].is_number() && b["p99_ms"].is_number(), "{b}");
    assert!(b["since_unix_ms"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));
    assert!(b["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("injected")));
    assert!(health.latency_p50("mem").is_some());
    assert_eq!(health.latency_p50("nope"), None);
    assert!(!health.is_open("nope"));
}

#[test]
fn errors_are_judged_by_whose_doing_they_are() {
    use super::{judge, Outcome};
    let answer = |e: BackendError| matches!(judge(&e), Outcome::Healthy { error: Some(_) });
    let failure = |e: BackendError| matches!(judge(&e), Outcome::Failure { .. });
    let ignored = |e: BackendError| matches!(judge(&e), Outcome::Ignored { .. });
    let name = || "n".to_string();
    let message = || "m".to_string();
    assert!(answer(BackendError::NotFound { name: name() }));
    assert!(answer(BackendError::PreconditionFailed { name: name() }));
    assert!(answer(BackendError::NameConflict { name: name() }));
    assert!(answer(BackendError::RangeNotSatisfiable {
        name: name(),
        start: 1,
        end: 2,
        size: 0
    }));
    assert!(answer(BackendError::AttributesTooLarge {
        name: name(),
        message: message()
    }));
    assert!(ignored(BackendError::Throttled { message: message() }));
    assert!(ignored(BackendError::Aborted));
    assert!(failure(BackendError::Unavailable { message: message() }));
    assert!(failure(BackendError::Unauthorized { message: message() }));
    assert!(failure(BackendError::Other { message: message() }));
}

#[tokio::test]
async fn new_settings_apply_to_existing_circuits() {
    let (health, backend, switch) = tracked();
    let (name, _) = put_bytes(backend.as_ref(), "bkt", "k", "v1", b"hello").await;
    switch.set(reads(Fault::Fail));
    assert!(backend.head(&name).await.is_err());
    assert!(!health.is_open("mem"), "3 failures in a row open it, not 1");
    health.set_settings(HealthSettings {
        failures_to_open: 2,
        ..settings()
    });
    assert_eq!(health.settings().failures_to_open, 2);
    assert!(backend.head(&name).await.is_err());
    assert!(
        health.is_open("mem"),
        "the second failure opens it under the new policy"
    );
}
