//! Prometheus metrics and health endpoints, scraped and parsed with a Prometheus text parser
//! while the gateway serves: counters move by exactly what known requests did (a `hansa
//! serve` process of its own, so that no other test's requests count), connections and the
//! in-flight budget show what is open, a failing backend turns its gauges and error counter
//! and, with its write quorum gone, readiness; the open routes need no token while every
//! other admin route still does; the dedicated metrics listener serves only them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::admin::{admin_endpoint, request, TOKEN};
use hansa_conformance::metrics::{scrape, scrape_until, Scrape};
use hansa_conformance::process::{self, free_port, TestDir};
use hansa_conformance::raw::{self, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{
    bucket_name, create_bucket, process_config_from, put, random_bytes, Options, TestGateway, ADMIN,
};
use tokio::io::AsyncWriteExt;

const LIMIT: Duration = Duration::from_secs(10);

/// A `hansa serve` process with an admin listener and a dedicated metrics listener.
struct Served {
    _dir: TestDir,
    gateway: process::Gateway,
    s3: SocketAddr,
    admin: String,
    metrics: String,
}

impl Served {
    fn start(prefix: &str, limits_toml: &str) -> Served {
        let dir = TestDir::new(prefix);
        let (s3, admin, metrics) = (free_port(), free_port(), free_port());
        let options = Options {
            limits_toml: limits_toml.to_string(),
            extra_toml: format!(
                "[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n\n\
                 [metrics]\nlisten = \"{metrics}\"\n"
            ),
            ..Default::default()
        };
        let config: PathBuf = dir.path().join("hansa.toml");
        std::fs::write(&config, process_config_from(dir.path(), s3, &options)).expect("config");
        let gateway = process::spawn(&config, &dir.path().join("hansa.log"), s3);
        Served {
            gateway,
            s3,
            admin: format!("http://{admin}"),
            metrics: format!("http://{metrics}"),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.s3)
    }

    /// A signed request (payload unsigned) with `body`, through reqwest.
    async fn s3(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let mut req = raw::request(method, &self.url(path));
        Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
        raw::send_reqwest(req, body.to_vec()).await
    }
}

fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.count(name, labels) - before.count(name, labels)
}

#[tokio::test]
async fn counters_move_by_exactly_what_known_requests_did() {
    let mut served = Served::start("metrics-counts-", "");
    let bucket = bucket_name("metrics");
    assert_eq!(served.s3("PUT", &bucket, b"").await.status, 200);

    let before = scrape(&served.admin).await;
    let bodies: Vec<Vec<u8>> = [1000usize, 20_000, 300_000]
        .iter()
        .map(|&n| random_bytes(n))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        let r = served.s3("PUT", &format!("{bucket}/k{i}"), body).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for (i, body) in bodies.iter().enumerate().take(2) {
        let r = served.s3("GET", &format!("{bucket}/k{i}"), b"").await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body, body);
        let r = served.s3("HEAD", &format!("{bucket}/k{i}"), b"").await;
        assert_eq!(r.status, 200);
    }
    let missing = served
        .s3("GET", &format!("{bucket}/no-such-key"), b"")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code().as_deref(), Some("NoSuchKey"));
    let after = scrape(&served.admin).await;

    let requests = |op: &str, status: &str| {
        delta(
            &before,
            &after,
            "hansa_http_requests_total",
            &[("operation", op), ("status", status)],
        )
    };
    assert_eq!(requests("PutObject", "200"), 3.0);
    assert_eq!(requests("GetObject", "200"), 2.0);
    assert_eq!(requests("HeadObject", "200"), 2.0);
    assert_eq!(requests("GetObject", "404"), 1.0);
    let by_op = |name: &str, op: &str| delta(&before, &after, name, &[("operation", op)]);
    assert_eq!(
        by_op("hansa_http_request_duration_seconds_count", "PutObject"),
        3.0
    );
    assert_eq!(
        by_op("hansa_http_request_duration_seconds_count", "GetObject"),
        3.0
    );
    assert_eq!(
        by_op("hansa_http_request_duration_seconds_count", "HeadObject"),
        2.0
    );
    let put_bytes: usize = bodies.iter().map(Vec::len).sum();
    assert_eq!(
        by_op("hansa_http_request_body_bytes_total", "PutObject"),
        put_bytes as f64
    );
    assert_eq!(
        by_op("hansa_http_request_body_bytes_total", "GetObject"),
        0.0
    );
    assert_eq!(
        by_op("hansa_http_response_body_bytes_total", "GetObject"),
        (bodies[0].len() + bodies[1].len() + missing.body.len()) as f64
    );
    assert_eq!(
        by_op("hansa_http_response_body_bytes_total", "HeadObject"),
        0.0
    );
    assert_eq!(
        by_op("hansa_http_response_body_bytes_total", "PutObject"),
        0.0
    );
    assert_eq!(
        after.declared_type("hansa_http_requests_total").as_deref(),
        Some("counter")
    );
    assert_eq!(
        after
            .declared_type("hansa_http_request_duration_seconds")
            .as_deref(),
        Some("histogram")
    );

    // Both replicas took every body; the reads came from one of them.
    for backend in ["disk-a", "disk-b"] {
        let labels = [("backend", backend)];
        assert_eq!(
            delta(
                &before,
                &after,
                "hansa_backend_written_bytes_total",
                &labels
            ),
            put_bytes as f64,
            "{backend}"
        );
        assert_eq!(
            delta(
                &before,
                &after,
                "hansa_backend_request_duration_seconds_count",
                &[("backend", backend), ("call", "stage")]
            ),
            3.0,
            "{backend}"
        );
        assert_eq!(after.value("hansa_backend_up", &labels), Some(1.0));
        assert_eq!(
            after.value(
                "hansa_backend_circuit_state",
                &[("backend", backend), ("state", "closed")]
            ),
            Some(1.0)
        );
        assert_eq!(after.value("hansa_repair_queue_depth", &labels), Some(0.0));
        assert_eq!(
            after.value("hansa_repair_queue_oldest_age_seconds", &labels),
            Some(0.0)
        );
    }
    let read: f64 = ["disk-a", "disk-b"]
        .iter()
        .map(|b| {
            delta(
                &before,
                &after,
                "hansa_backend_read_bytes_total",
                &[("backend", b)],
            )
        })
        .sum();
    assert_eq!(read, (bodies[0].len() + bodies[1].len()) as f64);
    assert!(
        delta(
            &before,
            &after,
            "hansa_index_flush_duration_seconds_count",
            &[]
        ) >= 1.0
    );
    assert!(after.count("hansa_index_size_bytes", &[]) > 0.0);
    assert_eq!(after.value("hansa_jobs_active", &[]), Some(0.0));
    assert_eq!(
        after.value("hansa_inflight_budget_limit_bytes", &[]),
        Some((128u64 << 20) as f64)
    );
    assert_eq!(
        after.value("hansa_inflight_budget_used_bytes", &[]),
        Some(0.0)
    );
    assert!(after.text.contains("hansa_build_info{version=\""));
    assert_eq!(
        after.value("hansa_config_reloads_total", &[("result", "error")]),
        Some(0.0)
    );

    // The dedicated listener shows the same registry, and serves nothing else.
    let there = scrape(&served.metrics).await;
    assert_eq!(
        there.count(
            "hansa_http_requests_total",
            &[("operation", "PutObject"), ("status", "200")]
        ),
        after.count(
            "hansa_http_requests_total",
            &[("operation", "PutObject"), ("status", "200")]
        )
    );
    for token in [None, Some(TOKEN)] {
        let answer = request(&served.metrics, "GET", "/admin/v1/backends", token, None).await;
        assert_eq!(answer.status, 404, "{}", answer.body);
    }

    // Open routes on both listeners; every admin route still needs the token.
    for endpoint in [&served.admin, &served.metrics] {
        let live = request(endpoint, "GET", "/health/live", None, None).await;
        assert_eq!(live.status, 200);
        assert_eq!(live.json()["status"], "live");
        let ready = request(endpoint, "GET", "/health/ready", None, None).await;
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(ready.json()["status"], "ready");
        assert_eq!(ready.json()["default_policy"]["write_quorum"], 2);
        let post = request(endpoint, "POST", "/metrics", None, None).await;
        assert_eq!(post.status, 405);
    }
    for path in ["/admin/v1/health", "/admin/v1/backends", "/admin/v1/jobs"] {
        let answer = request(&served.admin, "GET", path, None, None).await;
        assert_eq!(answer.status, 401, "{path}");
        let answer = request(&served.admin, "GET", path, Some(TOKEN), None).await;
        assert_eq!(answer.status, 200, "{path}");
    }

    // OpenMetrics for a scraper that asks for it (as Prometheus does).
    let open = raw::reqwest_client()
        .get(format!("{}/metrics", served.admin))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
        )
        .send()
        .await
        .expect("scrape");
    assert!(open.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = open.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE hansa_http_requests counter\n"));

    // Connections: three idle ones open, then none.
    let _ = scrape_until(&served.admin, "earlier connections closed", LIMIT, |s| {
        s.value("hansa_http_connections_open", &[]) == Some(0.0)
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(
            tokio::net::TcpStream::connect(served.s3)
                .await
                .expect("connect"),
        );
    }
    scrape_until(&served.admin, "three connections open", LIMIT, |s| {
        s.value("hansa_http_connections_open", &[]) == Some(3.0)
    })
    .await;
    drop(idle);
    scrape_until(&served.admin, "the connections closed", LIMIT, |s| {
        s.value("hansa_http_connections_open", &[]) == Some(0.0)
    })
    .await;
    assert!(served.gateway.terminate(LIMIT));
}

/// A PUT whose head and first `sent` bytes of a `total`-byte body are on their way.
async fn start_put(s3: SocketAddr, url: &str, total: usize, sent: usize) -> tokio::net::TcpStream {
    let mut req = raw::request("PUT", url);
    req.headers_mut()
        .insert("content-length", total.to_string().parse().expect("length"));
    Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
    let mut stream = tokio::net::TcpStream::connect(s3).await.expect("connect");
    stream
        .write_all(&raw::head_bytes(&req))
        .await
        .expect("head");
    stream
        .write_all(&vec![7u8; sent])
        .await
        .expect("part of the body");
    stream.flush().await.expect("flush");
    stream
}

#[tokio::test]
async fn rejected_connections_and_the_budget_in_use_show() {
    let mut served = Served::start("metrics-cap-", "max_connections = 1\n");
    let bucket = bucket_name("metrics-cap");
    assert_eq!(served.s3("PUT", &bucket, b"").await.status, 200);
    scrape_until(
        &served.admin,
        "the bucket's connection closed",
        LIMIT,
        |s| s.value("hansa_http_connections_open", &[]) == Some(0.0),
    )
    .await;
    let before = scrape(&served.admin).await;
    assert_eq!(
        before.value("hansa_http_connections_rejected_total", &[]),
        Some(0.0)
    );

    // The one connection allowed is busy with an upload whose body has partly arrived.
    let busy = start_put(
        served.s3,
        &served.url(&format!("{bucket}/big")),
        8 << 20,
        1 << 20,
    )
    .await;
    let during = scrape_until(&served.admin, "the upload holds budget", LIMIT, |s| {
        s.count("hansa_inflight_budget_used_bytes", &[]) > 0.0
            && s.value("hansa_http_connections_open", &[]) == Some(1.0)
    })
    .await;
    assert!(during.count("hansa_inflight_budget_used_bytes", &[]) <= (128u64 << 20) as f64);

    // A second connection is turned away with 503 SlowDown.
    let mut get = raw::request("GET", &served.url(&bucket));
    Signer::new(ADMIN).sign(&mut get, &Payload::Unsigned);
    let turned_away = raw::send(served.s3, &raw::head_bytes(&get), LIMIT).await;
    assert_eq!(turned_away.status, 503);
    let after = scrape(&served.admin).await;
    assert_eq!(
        delta(
            &before,
            &after,
            "hansa_http_connections_rejected_total",
            &[]
        ),
        1.0
    );
    assert_eq!(after.value("hansa_http_connections_open", &[]), Some(1.0));

    // The client hangs up: its connection and its buffers are given back.
    drop(busy);
    scrape_until(
        &served.admin,
        "budget and connection released",
        LIMIT,
        |s| {
            s.value("hansa_inflight_budget_used_bytes", &[]) == Some(0.0)
                && s.value("hansa_http_connections_open", &[]) == Some(0.0)
        },
    )
    .await;
    assert!(served.gateway.terminate(LIMIT));
}

/// Probes every 100 ms; two failures in a row open a circuit, for half a second at a time.
const HEALTH: &str = "probe_interval_ms = 100\nprobe_timeout_ms = 500\n\
                      failures_to_open = 2\nopen_for_ms = 500\n";

async fn ready(endpoint: &str) -> hansa_conformance::admin::Answer {
    request(endpoint, "GET", "/health/ready", None, None).await
}

#[tokio::test]
async fn a_failing_backend_turns_its_gauges_errors_and_readiness() {
    let gw = TestGateway::start_with(Options {
        faults: true,
        admin: true,
        health_toml: Some(HEALTH.into()),
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n".into(),
        ..Default::default()
    })
    .await;
    let endpoint = admin_endpoint(&gw);
    let client = gw.client();
    let bucket = bucket_name("metrics-fail");
    create_bucket(&client, &bucket).await;
    assert_eq!(ready(&endpoint).await.status, 200);
    let errors = [("backend", "disk-b"), ("kind", "unavailable")];
    let before = scrape(&endpoint).await;

    // disk-b fails everything, probes included: its circuit opens without traffic.
    gw.faults("disk-b").set(FaultPlan::all(Fault::Fail));
    let down = scrape_until(&endpoint, "disk-b down", LIMIT, |s| {
        s.value("hansa_backend_up", &[("backend", "disk-b")]) == Some(0.0)
    })
    .await;
    let state = |s: &Scrape, backend: &str, state: &str| {
        s.value(
            "hansa_backend_circuit_state",
            &[("backend", backend), ("state", state)],
        )
        .expect("a circuit gauge per state")
    };
    assert_eq!(state(&down, "disk-b", "closed"), 0.0);
    assert_eq!(
        state(&down, "disk-b", "open") + state(&down, "disk-b", "half_open"),
        1.0
    );
    assert_eq!(
        down.value("hansa_backend_up", &[("backend", "disk-a")]),
        Some(1.0)
    );
    assert!(delta(&before, &down, "hansa_backend_errors_total", &errors) >= 2.0);
    assert_eq!(
        delta(
            &before,
            &down,
            "hansa_backend_errors_total",
            &[("backend", "disk-a"), ("kind", "unavailable")]
        ),
        0.0
    );

    // A write (W = 1) succeeds on disk-a; disk-b's replica waits in its repair queue.
    put(&client, &bucket, "pending", b"owed to disk-b").await;
    let queued = scrape_until(&endpoint, "a repair queued for disk-b, aging", LIMIT, |s| {
        s.count("hansa_repair_queue_depth", &[("backend", "disk-b")]) >= 1.0
            && s.count(
                "hansa_repair_queue_oldest_age_seconds",
                &[("backend", "disk-b")],
            ) >= 0.2
    })
    .await;
    assert_eq!(
        queued.value("hansa_repair_queue_depth", &[("backend", "disk-a")]),
        Some(0.0)
    );
    assert_eq!(ready(&endpoint).await.status, 200, "W = 1: disk-a suffices");

    // With disk-a down too, no write can reach its quorum: not ready, and why.
    gw.faults("disk-a").set(FaultPlan::all(Fault::Fail));
    scrape_until(&endpoint, "disk-a down", LIMIT, |s| {
        s.value("hansa_backend_up", &[("backend", "disk-a")]) == Some(0.0)
    })
    .await;
    let answer = ready(&endpoint).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["status"], "not ready");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("write quorum") && reasons.contains("disk-a"),
        "{reasons}"
    );
    // Liveness does not depend on the backends.
    let live = request(&endpoint, "GET", "/health/live", None, None).await;
    assert_eq!(live.status, 200);

    // Both recover: probes close the circuits and the gateway is ready again.
    gw.faults("disk-a").clear();
    gw.faults("disk-b").clear();
    scrape_until(&endpoint, "both backends up", LIMIT, |s| {
        s.value("hansa_backend_up", &[("backend", "disk-a")]) == Some(1.0)
            && s.value("hansa_backend_up", &[("backend", "disk-b")]) == Some(1.0)
    })
    .await;
    assert_eq!(ready(&endpoint).await.status, 200);
    gw.shutdown().await;
}
