//! Prometheus metrics: one process-wide registry of what is counted as it happens (requests,
//! bytes, backend calls, connections, index flushes, configuration reloads), small recording
//! functions so that callers need not know the metrics crate, and [`encode`], which adds the
//! state read at scrape time (backend circuits, repair queues, index size, jobs, in-flight
//! budget: a [`Snapshot`] the admin plane fills) and renders the text exposition.
//!
//! A leaf module: it imports nothing from the rest of the crate. Label values are bounded by
//! their types: operation, call, error kind and result names are `&'static str` from fixed
//! sets in the code, statuses are HTTP status codes, and backends are the configured ids. No
//! key, bucket, credential or other request data can become a label. docs/METRICS.md lists
//! every metric.

mod body;
mod snapshot;

pub use body::CountedBody;
pub use snapshot::{encode, BackendSnapshot, Circuit, Format, Snapshot};

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of every latency histogram, in seconds: 1 ms to 60 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric name starts with this (and `_`).
pub const PREFIX: &str = "hansa";

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendCallLabels {
    backend: String,
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendErrorLabels {
    backend: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The process-wide metrics: what is pushed as it happens.
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<OperationLabels>,
    request_bytes: Family<OperationLabels, Counter>,
    response_bytes: Family<OperationLabels, Counter>,
    connections_open: Gauge,
    connections_rejected: Counter,
    backend_duration: HistogramFamily<BackendCallLabels>,
    backend_errors: Family<BackendErrorLabels, Counter>,
    backend_written: Family<BackendLabels, Counter>,
    backend_read: Family<BackendLabels, Counter>,
    index_flush: Histogram,
    config_reloads: Family<ResultLabels, Counter>,
    config_last_reload: Gauge<f64, AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The gateway's version (always 1)", build_info);
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            connections_open: Gauge::default(),
            connections_rejected: Counter::default(),
            backend_duration: Family::new_with_constructor(latency_histogram),
            backend_errors: Family::default(),
            backend_written: Family::default(),
            backend_read: Family::default(),
            index_flush: latency_histogram(),
            config_reloads: Family::default(),
            config_last_reload: Gauge::default(),
            registry: Registry::default(),
        };
        // Both results exist from the start, so that a rate of errors is 0, not absent.
        for result in ["ok", "error"] {
            let _ = m.config_reloads.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "http_requests",
            "S3 requests answered, by operation and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response head, by operation",
            m.request_duration.clone(),
        );
        registry.register(
            "http_request_body_bytes",
            "Request body bytes received (as sent on the wire, aws-chunked framing included), by operation",
            m.request_bytes.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Response body bytes sent, by operation",
            m.response_bytes.clone(),
        );
        registry.register(
            "http_connections_open",
            "Client connections open on the S3 listeners",
            m.connections_open.clone(),
        );
        registry.register(
            "http_connections_rejected",
            "Client connections turned away at the connection cap",
            m.connections_rejected.clone(),
        );
        registry.register(
            "backend_request_duration_seconds",
            "Duration of backend calls that ended (body transfers included), by backend and call",
            m.backend_duration.clone(),
        );
        registry.register(
            "backend_errors",
            "Backend failures by kind (answers such as not_found are not errors)",
            m.backend_errors.clone(),
        );
        registry.register(
            "backend_written_bytes",
            "Bytes streamed to a backend (stages and multipart parts)",
            m.backend_written.clone(),
        );
        registry.register(
            "backend_read_bytes",
            "Bytes read from a backend (object bodies)",
            m.backend_read.clone(),
        );
        registry.register(
            "index_flush_duration_seconds",
            "Duration of the index's flushes to disk (one per group of committing writes)",
            m.index_flush.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by result (ok, error)",
            m.config_reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration was last reloaded successfully (Unix time; 0: never)",
            m.config_last_reload.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn metrics() -> &'static Metrics {
    &METRICS
}

/// One S3 request answered: `operation` as named in the request log, the response status,
/// and the time until the response head. Body bytes are counted by [`count_request_body`]
/// and [`count_response_body`] as they flow.
pub fn record_request(operation: &'static str, status: u16, duration: Duration) {
    let m = metrics();
    m.requests
        .get_or_create(&RequestLabels { operation, status })
        .inc();
    m.request_duration
        .get_or_create(&OperationLabels { operation })
        .observe(duration.as_secs_f64());
}

/// A request body that counts its bytes into `hansa_http_request_body_bytes_total`.
pub fn count_request_body<B>(operation: &'static str, body: B) -> CountedBody<B> {
    let counter = metrics()
        .request_bytes
        .get_or_create_owned(&OperationLabels { operation });
    CountedBody::new(body, ByteCounter(counter))
}

/// A response body that counts its bytes into `hansa_http_response_body_bytes_total` as
/// they are sent.
pub fn count_response_body<B>(operation: &'static str, body: B) -> CountedBody<B> {
    let counter = metrics()
        .response_bytes
        .get_or_create_owned(&OperationLabels { operation });
    CountedBody::new(body, ByteCounter(counter))
}

/// A handle on one byte counter, resolved once and cheap to add to on every chunk.
#[derive(Clone, Debug)]
pub struct ByteCounter(Counter);

impl ByteCounter {
    pub fn add(&self, bytes: u64) {
        self.0.inc_by(bytes);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A client connection was admitted on an S3 listener.
pub fn connection_opened() {
    metrics().connections_open.inc();
}

/// An admitted connection closed.
pub fn connection_closed() {
    metrics().connections_open.dec();
}

/// A connection was turned away at the connection cap.
pub fn connection_rejected() {
    metrics().connections_rejected.inc();
}

/// One backend call ended (with an answer, or given up by its caller): `call` is the tracked
/// call's name (`prepare`, `stage`, `publish`, `get`, …).
pub fn backend_call(backend: &str, call: &'static str, duration: Duration) {
    metrics()
        .backend_duration
        .get_or_create(&BackendCallLabels {
            backend: backend.to_string(),
            call,
        })
        .observe(duration.as_secs_f64());
}

/// A backend failure of `kind` (the health module's error kind: `unavailable`, `timeout`,
/// `unauthorized`, `throttled`, `other`, …).
pub fn backend_error(backend: &str, kind: &'static str) {
    metrics()
        .backend_errors
        .get_or_create(&BackendErrorLabels {
            backend: backend.to_string(),
            kind,
        })
        .inc();
}

/// The counter of bytes streamed to `backend`.
pub fn backend_written(backend: &str) -> ByteCounter {
    ByteCounter(
        metrics()
            .backend_written
            .get_or_create_owned(&BackendLabels {
                backend: backend.to_string(),
            }),
    )
}

/// The counter of bytes read from `backend`.
pub fn backend_read(backend: &str) -> ByteCounter {
    ByteCounter(metrics().backend_read.get_or_create_owned(&BackendLabels {
        backend: backend.to_string(),
    }))
}

/// One flush of the index to disk took `duration`.
pub fn index_flushed(duration: Duration) {
    metrics().index_flush.observe(duration.as_secs_f64());
}

/// A configuration reload was applied (`ok`) or refused.
pub fn config_reloaded(ok: bool) {
    let m = metrics();
    let result = if ok { "ok" } else { "error" };
    m.config_reloads
        .get_or_create(&ResultLabels { result })
        .inc();
    if ok {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        m.config_last_reload.set(now);
    }
}

fn registry() -> &'static Registry {
    &metrics().registry
}

#[cfg(test)]
mod tests;
