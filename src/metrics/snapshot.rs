//! State read at scrape time, and the text exposition of everything.
//!
//! Gauges that describe state (a backend's circuit, its repair queue, the index's size, jobs,
//! the in-flight budget) are not pushed: the admin plane reads them from the running gateway
//! when it is scraped and hands them over as a [`Snapshot`], which [`encode`] renders after
//! the process-wide counters. Each scrape thus shows the state of the gateway it asks.

use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, text, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{registry, PREFIX};

/// Where a backend's circuit breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    const ALL: [Circuit; 3] = [Circuit::Closed, Circuit::Open, Circuit::HalfOpen];

    /// The `state` label value.
    pub fn label(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// One backend's state at scrape time.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendSnapshot {
    pub id: String,
    pub circuit: Circuit,
    /// Entries in its repair queue.
    pub repair_queue_depth: u64,
    /// How long the oldest of them has been queued (`None`: the queue is empty).
    pub repair_queue_oldest_age: Option<Duration>,
}

/// The gateway's state at scrape time. A part that could not be read is `None` and left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub backends: Vec<BackendSnapshot>,
    pub index_size_bytes: Option<u64>,
    /// Jobs running or paused.
    pub jobs_active: Option<u64>,
    pub inflight_budget_used_bytes: u64,
    pub inflight_budget_limit_bytes: u64,
}

/// The exposition format, chosen by the scraper's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4: the default, for curl and older scrapers.
    Prometheus,
    /// OpenMetrics 1.0 text, for scrapers that ask for it (Prometheus does).
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when `accept` names it, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.to_ascii_lowercase()
                    .contains("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    backend: String,
    state: &'static str,
}

fn gauge_i64(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

/// The snapshot's gauges in a registry of their own, built for one scrape.
fn snapshot_registry(s: &Snapshot) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    let up = Family::<BackendLabels, Gauge>::default();
    let circuit = Family::<CircuitLabels, Gauge>::default();
    let depth = Family::<BackendLabels, Gauge>::default();
    let age = Family::<BackendLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for b in &s.backends {
        let backend = || BackendLabels {
            backend: b.id.clone(),
        };
        up.get_or_create(&backend())
            .set(i64::from(b.circuit == Circuit::Closed));
        for state in Circuit::ALL {
            circuit
                .get_or_create(&CircuitLabels {
                    backend: b.id.clone(),
                    state: state.label(),
                })
                .set(i64::from(b.circuit == state));
        }
        depth
            .get_or_create(&backend())
            .set(i64::try_from(b.repair_queue_depth).unwrap_or(i64::MAX));
        age.get_or_create(&backend())
            .set(b.repair_queue_oldest_age.map_or(0.0, |d| d.as_secs_f64()));
    }
    r.register(
        "backend_up",
        "1 while the backend's circuit is closed (calls go to it), else 0",
        up,
    );
    r.register(
        "backend_circuit_state",
        "The backend's circuit state, one-hot over closed, open and half_open",
        circuit,
    );
    r.register(
        "repair_queue_depth",
        "Repair entries (replicas to write or remove) queued for the backend",
        depth,
    );
    r.register(
        "repair_queue_oldest_age_seconds",
        "Age of the oldest repair entry queued for the backend (0 when none)",
        age,
    );
    if let Some(size) = s.index_size_bytes {
        r.register(
            "index_size_bytes",
            "Size of the index on disk",
            gauge_i64(size),
        );
    }
    if let Some(jobs) = s.jobs_active {
        r.register(
            "jobs_active",
            "Drain, rebalance and verify jobs running or paused",
            gauge_i64(jobs),
        );
    }
    r.register(
        "inflight_budget_used_bytes",
        "In-flight body buffer bytes reserved now",
        gauge_i64(s.inflight_budget_used_bytes),
    );
    r.register(
        "inflight_budget_limit_bytes",
        "The in-flight body buffer budget (limits.inflight_bytes)",
        gauge_i64(s.inflight_budget_limit_bytes),
    );
    r
}

/// Every metric: the process-wide ones, then the snapshot's, in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let scrape = snapshot_registry(snapshot);
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a label, and a
    // partial answer is better than none.
    let result = match format {
        Format::Prometheus => prometheus_text::encode(&mut out, registry())
            .and_then(|()| prometheus_text::encode(&mut out, &scrape)),
        Format::OpenMetrics => text::encode_registry(&mut out, registry())
            .and_then(|()| text::encode_registry(&mut out, &scrape))
            .and_then(|()| text::encode_eof(&mut out)),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "metrics encoding failed");
    }
    out
}
