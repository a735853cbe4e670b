//! The registry is process-wide and other unit tests record into it too: these tests use
//! backend ids and operations of their own, and look at differences.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};

use super::*;

/// The value of the sample `name{labels}` in a Prometheus text exposition (labels in the
/// order they are written).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .map(|v| v.trim().parse().expect("a number"))
}

fn scrape() -> String {
    encode(&Snapshot::default(), Format::Prometheus)
}

#[test]
fn names_types_and_units_follow_prometheus_conventions() {
    record_request("UnitTestNames", 200, Duration::from_millis(3));
    let one_backend = Snapshot {
        backends: vec![BackendSnapshot {
            id: "unit-names".into(),
            circuit: Circuit::Closed,
            repair_queue_depth: 0,
            repair_queue_oldest_age: None,
        }],
        ..Snapshot::default()
    };
    let text = encode(&one_backend, Format::Prometheus);
    for (name, kind) in [
        ("hansa_build_info", "gauge"),
        ("hansa_http_requests_total", "counter"),
        ("hansa_http_request_duration_seconds", "histogram"),
        ("hansa_http_connections_open", "gauge"),
        ("hansa_http_connections_rejected_total", "counter"),
        ("hansa_index_flush_duration_seconds", "histogram"),
        ("hansa_config_reloads_total", "counter"),
        (
            "hansa_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("hansa_backend_up", "gauge"),
        ("hansa_inflight_budget_limit_bytes", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} missing in\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "hansa_build_info",
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))
        ),
        Some(1.0)
    );
    // Histogram buckets from 1 ms to 60 s, and +Inf.
    let bucket = |le: &str| {
        sample(
            &text,
            "hansa_http_request_duration_seconds_bucket",
            &format!("le=\"{le}\",operation=\"UnitTestNames\""),
        )
        .or_else(|| {
            sample(
                &text,
                "hansa_http_request_duration_seconds_bucket",
                &format!("operation=\"UnitTestNames\",le=\"{le}\""),
            )
        })
    };
    assert_eq!(bucket("0.001"), Some(0.0), "{text}");
    assert_eq!(bucket("0.005"), Some(1.0), "{text}");
    assert_eq!(bucket("60"), Some(1.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(1.0), "{text}");
    // Reload results exist before any reload.
    assert!(sample(&text, "hansa_config_reloads_total", "result=\"error\"").is_some());
}

#[test]
fn requests_count_by_operation_and_status() {
    let count = |status: u16| {
        sample(
            &scrape(),
            "hansa_http_requests_total",
            &format!("operation=\"UnitTestCount\",status=\"{status}\""),
        )
        .unwrap_or(0.0)
    };
    let (ok, missing) = (count(200), count(404));
    for _ in 0..3 {
        record_request("UnitTestCount", 200, Duration::from_millis(1));
    }
    record_request("UnitTestCount", 404, Duration::from_millis(1));
    assert_eq!(count(200) - ok, 3.0);
    assert_eq!(count(404) - missing, 1.0);
    let text = scrape();
    assert!(
        sample(
            &text,
            "hansa_http_request_duration_seconds_count",
            "operation=\"UnitTestCount\""
        )
        .unwrap_or(0.0)
            >= 4.0
    );
}

#[tokio::test]
async fn bodies_count_every_byte_as_it_passes() {
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = [100usize, 0, 4096, 7]
        .iter()
        .map(|&n| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; n]))))
        .collect();
    let body = count_request_body(
        "UnitTestBody",
        StreamBody::new(futures::stream::iter(chunks)),
    );
    let before =
        |text: &str, name: &str| sample(text, name, "operation=\"UnitTestBody\"").unwrap_or(0.0);
    let at_start = scrape();
    let collected = body.collect().await.expect("body").to_bytes();
    assert_eq!(collected.len(), 4203);
    let response = count_response_body("UnitTestBody", Full::new(Bytes::from_static(b"hello")));
    response.collect().await.expect("body");
    let after = scrape();
    for (name, expected) in [
        ("hansa_http_request_body_bytes_total", 4203.0),
        ("hansa_http_response_body_bytes_total", 5.0),
    ] {
        assert_eq!(
            before(&after, name) - before(&at_start, name),
            expected,
            "{name}"
        );
    }
}

#[test]
fn snapshot_gauges_are_one_hot_and_read_as_given() {
    let snapshot = Snapshot {
        backends: vec![
            BackendSnapshot {
                id: "unit-a".into(),
                circuit: Circuit::Closed,
                repair_queue_depth: 0,
                repair_queue_oldest_age: None,
            },
            BackendSnapshot {
                id: "unit-b".into(),
                circuit: Circuit::HalfOpen,
                repair_queue_depth: 7,
                repair_queue_oldest_age: Some(Duration::from_millis(2500)),
            },
        ],
        index_size_bytes: Some(4096),
        jobs_active: Some(2),
        inflight_budget_used_bytes: 1 << 20,
        inflight_budget_limit_bytes: 128 << 20,
    };
    let text = encode(&snapshot, Format::Prometheus);
    let value = |name: &str, labels: &str| sample(&text, name, labels);
    assert_eq!(value("hansa_backend_up", "backend=\"unit-a\""), Some(1.0));
    assert_eq!(value("hansa_backend_up", "backend=\"unit-b\""), Some(0.0));
    for (backend, hot) in [("unit-a", "closed"), ("unit-b", "half_open")] {
        for state in ["closed", "open", "half_open"] {
            assert_eq!(
                value(
                    "hansa_backend_circuit_state",
                    &format!("backend=\"{backend}\",state=\"{state}\"")
                ),
                Some(if state == hot { 1.0 } else { 0.0 }),
                "{backend} {state}"
            );
        }
    }
    assert_eq!(
        value("hansa_repair_queue_depth", "backend=\"unit-b\""),
        Some(7.0)
    );
    assert_eq!(
        value(
            "hansa_repair_queue_oldest_age_seconds",
            "backend=\"unit-b\""
        ),
        Some(2.5)
    );
    assert_eq!(
        value(
            "hansa_repair_queue_oldest_age_seconds",
            "backend=\"unit-a\""
        ),
        Some(0.0)
    );
    assert_eq!(value("hansa_index_size_bytes", ""), Some(4096.0));
    assert_eq!(value("hansa_jobs_active", ""), Some(2.0));
    assert_eq!(
        value("hansa_inflight_budget_used_bytes", ""),
        Some(1048576.0)
    );
    assert_eq!(
        value("hansa_inflight_budget_limit_bytes", ""),
        Some(134217728.0)
    );
    // What could not be read is left out rather than shown as 0.
    let text = encode(&Snapshot::default(), Format::Prometheus);
    assert!(!text.contains("hansa_index_size_bytes"));
    assert!(!text.contains("hansa_jobs_active"));
}

#[test]
fn backend_series_are_bounded_by_backends_calls_and_kinds() {
    // Thousands of calls make one series per (backend, call), never one per call.
    for i in 0..2000u32 {
        let call = ["get", "stage", "publish"][(i % 3) as usize];
        backend_call("unit-bounded", call, Duration::from_micros(u64::from(i)));
        if i % 100 == 0 {
            backend_error("unit-bounded", "unavailable");
        }
    }
    let text = scrape();
    let series = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("backend=\"unit-bounded\""))
            .count()
    };
    assert_eq!(series("hansa_backend_request_duration_seconds_count"), 3);
    assert_eq!(series("hansa_backend_errors_total"), 1);
    assert_eq!(
        sample(
            &text,
            "hansa_backend_errors_total",
            "backend=\"unit-bounded\",kind=\"unavailable\""
        ),
        Some(20.0)
    );
}

#[test]
fn label_values_are_escaped() {
    // Backend ids come from the configuration; whatever they hold cannot break a line.
    backend_read("unit-\"quoted\"\\id\nnewline").add(3);
    let text = scrape();
    assert!(
        text.contains(
            r#"hansa_backend_read_bytes_total{backend="unit-\"quoted\"\\id\nnewline"} 3"#
        ),
        "{text}"
    );
}

#[test]
fn openmetrics_when_asked_for() {
    assert_eq!(Format::negotiate(None), Format::Prometheus);
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
    let prometheus_accept = "application/openmetrics-text;version=1.0.0;q=0.5,\
                             text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
    assert_eq!(
        Format::negotiate(Some(prometheus_accept)),
        Format::OpenMetrics
    );
    assert!(Format::Prometheus
        .content_type()
        .starts_with("text/plain; version=0.0.4"));
    assert!(Format::OpenMetrics
        .content_type()
        .starts_with("application/openmetrics-text"));
    let text = encode(&Snapshot::default(), Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    // OpenMetrics names the counter family without `_total`, its samples with it.
    assert!(text.contains("# TYPE hansa_http_connections_rejected counter\n"));
    assert!(text.contains("hansa_http_connections_rejected_total "));
    let plain = encode(&Snapshot::default(), Format::Prometheus);
    assert!(!plain.contains("# EOF"));
}

#[test]
fn config_reloads_count_and_stamp_successes() {
    let text = scrape();
    let ok = sample(&text, "hansa_config_reloads_total", "result=\"ok\"").unwrap_or(0.0);
    let error = sample(&text, "hansa_config_reloads_total", "result=\"error\"").unwrap_or(0.0);
    config_reloaded(false);
    config_reloaded(true);
    let text = scrape();
    assert!(sample(&text, "hansa_config_reloads_total", "result=\"ok\"").unwrap() >= ok + 1.0);
    assert!(
        sample(&text, "hansa_config_reloads_total", "result=\"error\"").unwrap() >= error + 1.0
    );
    let stamp = sample(
        &text,
        "hansa_config_last_reload_success_timestamp_seconds",
        "",
    )
    .unwrap();
    assert!(stamp > 1.7e9, "{stamp}");
}
