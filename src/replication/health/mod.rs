//! Backend health and circuit breakers.
//!
//! Every backend call goes through a [`HealthTracked`] wrapper that reports its outcome and
//! latency to the shared [`Health`] registry; a background task ([`Health::run_probes`])
//! probes every backend with [`Backend::check`] at an interval. Failures in a row open a
//! backend's circuit ([`circuit`]): its calls then fail at once with
//! `BackendError::Unavailable("circuit open: …")` instead of waiting for a timeout, so reads
//! fail over immediately and a write's target on that backend ends missing (the store records
//! that replica pending and the write goes on with the others, as far as its quorum allows).
//! Probes close the circuit again.
//!
//! What counts against a backend (see [`judge`]): provider failures — `Unavailable` (I/O,
//! network, timeouts), `Unauthorized` (the backend is unusable until someone fixes its
//! credentials), `Other` — and calls that were still running when their caller gave up on
//! them after [`HealthSettings::hung_after`]. Answers about an object (`NotFound`,
//! `PreconditionFailed`, `NameConflict`, `RangeNotSatisfiable`, `AttributesTooLarge`) are a
//! healthy backend talking. `Aborted` is the client's body failing, not the backend.
//! `Throttled` counts neither way: the provider is up and asks for less traffic; opening the
//! circuit would move all of it elsewhere and leave every new replica there pending, and
//! the provider's own retry budget has already been spent on it. Throttling is counted and
//! shown (`errors.throttled`).

mod circuit;
mod latency;
mod probes;
mod tracked;

#[cfg(test)]
mod tests;

pub use circuit::{Circuit, CircuitPolicy, CircuitState, Transition};
pub use latency::{LatencyWindow, Percentiles};
pub use tracked::HealthTracked;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use hansa_backends::{Backend, BackendError};
use serde::{Serialize, Serializer};

/// How backends are judged and probed (from `[health]`, and the backend timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    /// Each backend is probed this often.
    pub probe_interval: Duration,
    /// A probe that has not answered after this long failed.
    pub probe_timeout: Duration,
    /// Failures in a row (of requests or probes) that open a closed circuit.
    pub failures_to_open: u32,
    /// An open circuit refuses every call this long before a probe may close it.
    pub open_for: Duration,
    /// A call that its caller drops (a timeout) after it ran this long without an answer was
    /// hung: a failure. One dropped sooner (a client that hung up) counts for nothing.
    pub hung_after: Duration,
    /// Latencies kept per backend for p50/p99.
    pub latency_window: usize,
    /// How often a summary line per backend is logged (at debug).
    pub summary_every: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            failures_to_open: 5,
            open_for: Duration::from_secs(10),
            hung_after: Duration::from_secs(9),
            latency_window: 512,
            summary_every: Duration::from_secs(60),
        }
    }
}

/// The health of every backend, shared by the store's wrappers and the probe task.
#[derive(Debug)]
pub struct Health {
    /// Swapped by a configuration reload ([`Health::set_settings`]).
    settings: arc_swap::ArcSwap<HealthSettings>,
    /// Filled when the store wraps its backends; read by id for `is_open`, snapshots, probes.
    entries: RwLock<BTreeMap<String, Arc<Entry>>>,
}

/// One backend's record. The counters and the latency window are atomics written on every
/// call without a lock; the circuit and what goes with it sit behind a mutex that a call
/// takes only when it has something to change (a failure, or a success after failures).
#[derive(Debug)]
pub(crate) struct Entry {
    id: String,
    /// Mirror of "the circuit refuses requests", read on every call.
    refusing: AtomicBool,
    /// Mirror of the circuit's failures in a row: a success with nothing to reset skips the
    /// lock.
    consecutive: AtomicU32,
    /// Calls running now (the backend's queue depth as the gateway sees it).
    inflight: AtomicU64,
    /// Calls sent to the backend (refused ones not included).
    requests: AtomicU64,
    /// Calls refused because the circuit was open.
    refused: AtomicU64,
    latency: LatencyWindow,
    state: Mutex<EntryState>,
}

#[derive(Debug)]
struct EntryState {
    circuit: Circuit,
    /// Wall-clock time the circuit's state began (the circuit keeps a monotonic one).
    since: SystemTime,
    /// Outcomes counted against the backend.
    failures: u64,
    /// Every error the backend gave, by kind (answers such as `not_found` too).
    errors: BTreeMap<&'static str, u64>,
    last_error: Option<String>,
    probes: u64,
    probe_failures: u64,
    last_probe: Option<Duration>,
}

/// How one outcome is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The backend answered: a success, or an error that is an answer (`error` names it).
    Healthy { error: Option<&'static str> },
    /// The provider's failure: counts towards opening the circuit.
    Failure { kind: &'static str, message: String },
    /// Neither (throttling, the client's own body failing): only counted by kind.
    Ignored { kind: &'static str },
}

/// The kind of an error, as counted and shown.
pub fn error_kind(e: &BackendError) -> &'static str {
    match e {
        BackendError::NotFound { .. } => "not_found",
        BackendError::PreconditionFailed { .. } => "precondition_failed",
        BackendError::NameConflict { .. } => "name_conflict",
        BackendError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        BackendError::AttributesTooLarge { .. } => "attributes_too_large",
        BackendError::Throttled { .. } => "throttled",
        BackendError::Unauthorized { .. } => "unauthorized",
        BackendError::Unavailable { .. } => "unavailable",
        BackendError::Aborted => "aborted",
        _ => "other",
    }
}

/// How an error is judged (see the module documentation).
pub(crate) fn judge(e: &BackendError) -> Outcome {
    let kind = error_kind(e);
    match e {
        BackendError::NotFound { .. }
        | BackendError::PreconditionFailed { .. }
        | BackendError::NameConflict { .. }
        | BackendError::RangeNotSatisfiable { .. }
        | BackendError::AttributesTooLarge { .. } => Outcome::Healthy { error: Some(kind) },
        BackendError::Throttled { .. } | BackendError::Aborted => Outcome::Ignored { kind },
        // Unavailable, Unauthorized, Other, and kinds added later (treated like Other).
        _ => Outcome::Failure {
            kind,
            message: e.to_string(),
        },
    }
}

/// One backend's health as the admin plane shows it (`serde` gives its JSON form).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendHealth {
    pub id: String,
    pub state: CircuitState,
    /// When the circuit entered its state.
    #[serde(rename = "since_unix_ms", serialize_with = "unix_ms")]
    pub since: SystemTime,
    /// Median and 99th percentile of the latest quick calls (opening a read, HEAD, prepare,
    /// delete, discard, …) that got an answer, and of hung ones.
    #[serde(rename = "p50_ms", serialize_with = "opt_ms")]
    pub p50: Option<Duration>,
    #[serde(rename = "p99_ms", serialize_with = "opt_ms")]
    pub p99: Option<Duration>,
    /// How many latencies p50 and p99 are taken from.
    pub latency_samples: usize,
    /// Calls sent to the backend since start.
    pub requests: u64,
    /// Calls running now.
    pub inflight: u64,
    /// Calls refused at once because the circuit was open.
    pub refused: u64,
    /// Outcomes counted against the backend (provider failures and hung calls).
    pub failures: u64,
    /// Every error by kind (`not_found`, `unavailable`, `timeout`, …), answers included.
    pub errors: BTreeMap<String, u64>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub probes: u64,
    pub probe_failures: u64,
    /// How long the latest probe took.
    #[serde(rename = "last_probe_ms", serialize_with = "opt_ms")]
    pub last_probe: Option<Duration>,
}

fn unix_ms<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    s.serialize_u64(ms)
}

fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => s.serialize_none(),
    }
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Health {
    pub fn new(settings: HealthSettings) -> Self {
        Health {
            settings: arc_swap::ArcSwap::from_pointee(settings),
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn settings(&self) -> Arc<HealthSettings> {
        self.settings.load_full()
    }

    /// Applies new settings (a configuration reload): every circuit takes the new policy at
    /// once, probe loops the new interval and timeout at their next round. The latency window
    /// keeps its size until the next start.
    pub fn set_settings(&self, settings: HealthSettings) {
        let policy = CircuitPolicy {
            failures_to_open: settings.failures_to_open,
            open_for: settings.open_for,
        };
        self.settings.store(Arc::new(settings));
        for entry in self.all() {
            entry.lock().circuit.set_policy(policy);
        }
    }

    /// Wraps `backend` so that its calls are judged here and refused while its circuit is
    /// open (see [`HealthTracked`]).
    pub fn track(self: &Arc<Self>, backend: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(HealthTracked::new(backend, self.clone()))
    }

    /// Whether backend `id`'s calls are refused now (its circuit is open or half-open).
    /// Unknown backends are not open.
    pub fn is_open(&self, id: &str) -> bool {
        self.find(id)
            .is_some_and(|e| e.refusing.load(Ordering::Relaxed))
    }

    /// The state of backend `id`'s circuit.
    pub fn state(&self, id: &str) -> Option<CircuitState> {
        self.find(id).map(|e| e.lock().circuit.state())
    }

    /// Median latency of backend `id`'s latest quick calls; `None` before the first.
    pub fn latency_p50(&self, id: &str) -> Option<Duration> {
        self.find(id)
            .and_then(|e| e.latency.percentiles())
            .map(|p| p.p50)
    }

    /// 99th percentile of the same.
    pub fn latency_p99(&self, id: &str) -> Option<Duration> {
        self.find(id)
            .and_then(|e| e.latency.percentiles())
            .map(|p| p.p99)
    }

    /// Every backend's entry, taken out of the lock.
    fn all(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every backend's health, by id.
    pub fn snapshot(&self) -> Vec<BackendHealth> {
        self.all().iter().map(|e| e.snapshot()).collect()
    }

    fn find(&self, id: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Backend `id`'s record, created on first use.
    pub(crate) fn entry(&self, id: &str) -> Arc<Entry> {
        if let Some(e) = self.find(id) {
            return e;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries
            .entry(id.to_string())
            .or_insert_with(|| {
                let settings = self.settings();
                let policy = CircuitPolicy {
                    failures_to_open: settings.failures_to_open,
                    open_for: settings.open_for,
                };
                Arc::new(Entry {
                    id: id.to_string(),
                    refusing: AtomicBool::new(false),
                    consecutive: AtomicU32::new(0),
                    inflight: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                    refused: AtomicU64::new(0),
                    latency: LatencyWindow::new(settings.latency_window),
                    state: Mutex::new(EntryState {
                        circuit: Circuit::new(policy, Instant::now()),
                        since: SystemTime::now(),
                        failures: 0,
                        errors: BTreeMap::new(),
                        last_error: None,
                        probes: 0,
                        probe_failures: 0,
                        last_probe: None,
                    }),
                })
            })
            .clone()
    }

    /// Records the outcome of one call (and its latency, for quick calls).
    pub(crate) fn record(&self, entry: &Entry, outcome: Outcome, latency: Option<Duration>) {
        if let Some(latency) = latency {
            entry.latency.record(latency);
        }
        match &outcome {
            Outcome::Failure { kind, .. } => crate::metrics::backend_error(&entry.id, kind),
            Outcome::Ignored { kind: "throttled" } => {
                crate::metrics::backend_error(&entry.id, "throttled")
            }
            _ => {}
        }
        // The common case — a success with no failures to forget — takes no lock.
        if outcome == (Outcome::Healthy { error: None })
            && entry.consecutive.load(Ordering::Relaxed) == 0
        {
            return;
        }
        let now = Instant::now();
        let transition = {
            let mut s = entry.lock();
            let t = match outcome {
                Outcome::Healthy { error } => {
                    if let Some(kind) = error {
                        *s.errors.entry(kind).or_default() += 1;
                    }
                    s.circuit.on_success(now)
                }
                Outcome::Failure { kind, message } => {
                    *s.errors.entry(kind).or_default() += 1;
                    s.failures += 1;
                    s.last_error = Some(message);
                    s.circuit.on_failure(now)
                }
                Outcome::Ignored { kind } => {
                    *s.errors.entry(kind).or_default() += 1;
                    None
                }
            };
            entry.settle(&mut s, t);
            t
        };
        if let Some(t) = transition {
            self.log_transition(entry, t);
        }
    }

    /// Records a probe: `Ok`, or why it failed. A throttled probe decides nothing.
    pub(crate) fn record_probe(
        &self,
        entry: &Entry,
        result: &Result<(), BackendError>,
        took: Duration,
    ) {
        let now = Instant::now();
        let transition = {
            let mut s = entry.lock();
            s.probes += 1;
            s.last_probe = Some(took);
            let t = match result {
                Ok(()) => s.circuit.on_probe(true, now),
                Err(e) => {
                    let kind = error_kind(e);
                    crate::metrics::backend_error(&entry.id, kind);
                    *s.errors.entry(kind).or_default() += 1;
                    if matches!(e, BackendError::Throttled { .. }) {
                        None
                    } else {
                        s.probe_failures += 1;
                        s.failures += 1;
                        s.last_error = Some(format!("probe: {e}"));
                        s.circuit.on_probe(false, now)
                    }
                }
            };
            entry.settle(&mut s, t);
            t
        };
        if let Some(t) = transition {
            self.log_transition(entry, t);
        }
    }

    /// Moves an open circuit whose period is over to half-open. Returns whether a probe can
    /// change the circuit now.
    pub(crate) fn tick(&self, entry: &Entry) -> bool {
        let (transition, wants) = {
            let mut s = entry.lock();
            let t = s.circuit.tick(Instant::now());
            entry.settle(&mut s, t);
            (t, s.circuit.wants_probe())
        };
        if let Some(t) = transition {
            self.log_transition(entry, t);
        }
        wants
    }

    /// One line per change of state, with what explains it.
    fn log_transition(&self, entry: &Entry, t: Transition) {
        let h = entry.snapshot();
        let (p50_ms, p99_ms) = (ms(h.p50), ms(h.p99));
        let open_for_ms = self.settings().open_for.as_millis() as u64;
        let last_error = h.last_error.as_deref().unwrap_or("");
        match t {
            Transition::Opened => tracing::warn!(
                backend = %h.id, failures_in_a_row = h.consecutive_failures, last_error,
                ?p50_ms, ?p99_ms, inflight = h.inflight, open_for_ms,
                "circuit opened: calls to this backend fail at once until a probe passes"
            ),
            Transition::Reopened => tracing::warn!(
                backend = %h.id, last_error, ?p50_ms, ?p99_ms, open_for_ms,
                "probe failed: circuit open again"
            ),
            Transition::HalfOpened => tracing::info!(
                backend = %h.id, "circuit half-open: the next probe decides"
            ),
            Transition::Closed => tracing::info!(
                backend = %h.id, ?p50_ms, ?p99_ms, last_probe_ms = ?ms(h.last_probe),
                refused = h.refused,
                "circuit closed: backend serves calls again"
            ),
        }
    }

    /// One debug line per backend: state, latency, counts.
    pub(crate) fn log_summary(&self) {
        for h in self.snapshot() {
            tracing::debug!(
                backend = %h.id, state = %h.state, p50_ms = ?ms(h.p50), p99_ms = ?ms(h.p99),
                requests = h.requests, inflight = h.inflight, failures = h.failures,
                refused = h.refused, consecutive_failures = h.consecutive_failures,
                "backend health"
            );
        }
    }
}

impl Entry {
    fn lock(&self) -> std::sync::MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After the circuit was told something: the mirrors follow it, and a new state gets its
    /// wall-clock time.
    fn settle(&self, s: &mut EntryState, t: Option<Transition>) {
        if t.is_some() {
            s.since = SystemTime::now();
        }
        self.refusing
            .store(!s.circuit.admits_requests(), Ordering::Relaxed);
        self.consecutive
            .store(s.circuit.consecutive_failures(), Ordering::Relaxed);
    }

    fn snapshot(&self) -> BackendHealth {
        let p = self.latency.percentiles();
        let s = self.lock();
        BackendHealth {
            id: self.id.clone(),
            state: s.circuit.state(),
            since: s.since,
            p50: p.map(|p| p.p50),
            p99: p.map(|p| p.p99),
            latency_samples: p.map_or(0, |p| p.samples),
            requests: self.requests.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failures: s.failures,
            errors: s.errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            consecutive_failures: s.circuit.consecutive_failures(),
            last_error: s.last_error.clone(),
            probes: s.probes,
            probe_failures: s.probe_failures,
            last_probe: s.last_probe,
        }
    }
}
