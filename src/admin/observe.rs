//! The open routes: `GET /metrics`, `/health/live` and `/health/ready`, answered without the
//! admin token by the admin listener and by the dedicated metrics listener (`[metrics]
//! listen`), which serves nothing else.
//!
//! They are open because scrapers and orchestrator probes carry no bearer token, and because
//! they hold no secret: counts, latencies, backend ids and health, never a key, a bucket or a
//! credential. The admin listener binds to loopback by default; a deployment that exposes it
//! (or the metrics listener) beyond loopback shows these numbers to whoever can reach it
//! (docs/METRICS.md).
//!
//! The state gauges (circuits, repair queues, index size, jobs, budget) are read here at
//! scrape time from the gateway that is asked, and handed to `metrics::encode`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::gateway::Gateway;
use crate::metrics::{self, BackendSnapshot, Circuit, Format, Snapshot};
use crate::replication::CircuitState;
use crate::store::{jobs, Store};

/// One of the open routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Open {
    Metrics,
    Live,
    Ready,
}

impl Open {
    /// The open route at `path`, if it is one.
    pub(super) fn at(path: &str) -> Option<Open> {
        match path {
            "/metrics" => Some(Open::Metrics),
            "/health/live" => Some(Open::Live),
            "/health/ready" => Some(Open::Ready),
            _ => None,
        }
    }

    /// The name in the admin request log.
    pub(super) fn operation(self) -> &'static str {
        match self {
            Open::Metrics => "Metrics",
            Open::Live => "Live",
            Open::Ready => "Ready",
        }
    }
}

/// The request's `Accept` header, which chooses the metrics format.
pub(super) fn accept<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Answers an open route asked for with `method` (and `accept`, the `Accept` header).
pub(super) async fn answer(
    gateway: &Arc<Gateway>,
    route: Open,
    method: &Method,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    if *method != Method::GET && *method != Method::HEAD {
        let body = json!({"error": "MethodNotAllowed", "message": "this route takes GET"});
        let mut response = json_response(StatusCode::METHOD_NOT_ALLOWED, &body);
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        Open::Live => json_response(StatusCode::OK, &json!({"status": "live"})),
        Open::Ready => {
            let gw = gateway.clone();
            match tokio::task::spawn_blocking(move || readiness(&gw.store)).await {
                Ok(Ok(details)) => json_response(StatusCode::OK, &details),
                Ok(Err(reasons)) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not ready", "reasons": reasons}),
                ),
                Err(e) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not ready", "reasons": [format!("readiness check failed: {e}")]}),
                ),
            }
        }
        Open::Metrics => {
            let format = Format::negotiate(accept);
            let gw = gateway.clone();
            // Repair queue depths and job records are index scans.
            let text =
                tokio::task::spawn_blocking(move || metrics::encode(&snapshot(&gw.store), format))
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "metrics scrape failed");
                        metrics::encode(&Snapshot::default(), format)
                    });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, format.content_type())
                .header(header::CACHE_CONTROL, "no-store")
                .body(Full::new(Bytes::from(text)))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        }
    }
}

/// The dedicated metrics listener's requests: the open routes, and 404 for anything else
/// (the admin routes are not there, with or without a token).
pub(super) async fn handle_only<B>(
    gateway: Arc<Gateway>,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let accept = accept(&req);
    drop(req);
    let response = match Open::at(&path) {
        Some(route) => answer(&gateway, route, &method, accept.as_deref()).await,
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "NoSuchRoute", "message": format!("no route {path} here: this listener serves /metrics, /health/live and /health/ready")}),
        ),
    };
    tracing::debug!(
        target: "hansa::admin",
        %method,
        path,
        status = response.status().as_u16(),
        "metrics listener request"
    );
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Ready when the index answers and the default policy's write quorum is reachable: at least
/// `write_quorum` of its members exist, are not being drained, and have closed circuits.
/// (Start-up recovery is finished before any listener opens, so a gateway that answers has
/// done it.) `Ok` carries the details shown, `Err` the reasons it is not ready.
pub(super) fn readiness(store: &Store) -> Result<serde_json::Value, Vec<String>> {
    let mut reasons = Vec::new();
    if let Err(e) = store.meta.size_on_disk() {
        reasons.push(format!("index: {e}"));
    }
    let placement = store.placement();
    let policy = placement.default_policy();
    let draining = store
        .draining
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for id in &policy.members {
        let why = if store.backends.get(id).is_none() {
            Some("not configured")
        } else if draining.contains(id) {
            Some("draining")
        } else {
            match store.health.state(id) {
                Some(CircuitState::Open) => Some("circuit open"),
                Some(CircuitState::HalfOpen) => Some("circuit half-open"),
                _ => None,
            }
        };
        match why {
            None => usable.push(id.clone()),
            Some(why) => unusable.push(format!("{id}: {why}")),
        }
    }
    if usable.len() < policy.write_quorum {
        reasons.push(format!(
            "default policy: its write quorum needs {} usable backends, {} usable ({})",
            policy.write_quorum,
            usable.len(),
            unusable.join(", ")
        ));
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    Ok(json!({
        "status": "ready",
        "index": "open",
        "recovery": "done",
        "default_policy": {
            "write_quorum": policy.write_quorum,
            "usable": usable,
            "unusable": unusable,
        },
    }))
}

/// The gateway's state for one scrape.
fn snapshot(store: &Store) -> Snapshot {
    let now_ms = crate::meta::now_ms();
    let backends = store
        .backend_status()
        .into_iter()
        .map(|b| BackendSnapshot {
            circuit: match b.health.state {
                CircuitState::Closed => Circuit::Closed,
                CircuitState::Open => Circuit::Open,
                CircuitState::HalfOpen => Circuit::HalfOpen,
            },
            repair_queue_depth: b.queued as u64,
            repair_queue_oldest_age: b
                .oldest_queued_ms
                .map(|at| Duration::from_millis(now_ms.saturating_sub(at))),
            id: b.health.id,
        })
        .collect();
    Snapshot {
        backends,
        index_size_bytes: store.meta.size_on_disk().ok(),
        jobs_active: jobs::jobs(store)
            .ok()
            .map(|all| all.iter().filter(|j| j.state.is_active()).count() as u64),
        inflight_budget_used_bytes: store.budget.reserved_bytes(),
        inflight_budget_limit_bytes: store.budget.limit_bytes(),
    }
}
