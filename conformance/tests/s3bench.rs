//! The benchmark client (src/bin/s3bench.rs) against an in-process gateway: every workload runs
//! in a tiny configuration and prints one JSON object with its rates, latencies and the
//! server's CPU time; wrong bytes make it fail. Performance is never asserted here.

use std::time::Duration;

use hansa_conformance::{create_bucket, put, TestGateway, ADMIN};
use serde_json::Value;

const WORKLOADS: [&str; 7] = [
    "put-large",
    "multipart",
    "put-small",
    "get-small",
    "list",
    "get-large",
    "mixed",
];

/// Runs s3bench with tiny sizes for `workload`; answers its exit success and JSON.
async fn s3bench(gw: &TestGateway, workload: &str, bucket: &str) -> (bool, Value) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3bench"))
        .args(["--endpoint", &gw.endpoint])
        .args(["--access-key", ADMIN.access_key_id])
        .args(["--secret-key", ADMIN.secret_access_key])
        .args([
            "--bucket",
            bucket,
            "--workload",
            workload,
            "--server",
            "hansa",
        ])
        .args([
            "--quick",
            "--duration",
            "0.3",
            "--count",
            "1",
            "--concurrency",
            "4",
        ])
        .args(["--large-size", "256KiB", "--multipart-size", "6MiB"])
        .args(["--small-objects", "8", "--list-keys", "30"])
        // The gateway runs in this test process.
        .args(["--server-pid", &std::process::id().to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("s3bench finished within 60 s")
        .expect("s3bench ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{workload}: not one JSON object ({e}): {stdout:?}"));
    (out.status.success(), json)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_completes_and_reports() {
    let gw = TestGateway::start().await;
    for workload in WORKLOADS {
        let (ok, v) = s3bench(&gw, workload, "bench").await;
        assert!(ok, "{workload}: {v}");
        assert_eq!(v["workload"], workload);
        assert_eq!(v["server"], "hansa");
        assert_eq!(v["errors"], 0, "{workload}: {v}");
        assert!(v["ops"].as_u64().is_some_and(|n| n >= 1), "{workload}: {v}");
        assert!(
            v["ops_per_s"].as_f64().is_some_and(|r| r > 0.0),
            "{workload}: {v}"
        );
        assert!(
            v["p50_ms"].as_f64().is_some() && v["p99_ms"].as_f64().is_some(),
            "{v}"
        );
        assert!(v["server_cpu_s"].as_f64().is_some_and(|s| s >= 0.0), "{v}");
        assert!(
            v["server_peak_rss_kib"].as_u64().is_some_and(|k| k > 0),
            "{v}"
        );
        if workload == "list" {
            assert_eq!(v["keys_per_listing"], 30);
        } else {
            assert!(
                v["mb_per_s"].as_f64().is_some_and(|r| r > 0.0),
                "{workload}: {v}"
            );
        }
    }
    // What the workloads left: the multipart object whole, the small keys read back.
    let s3 = gw.client();
    let head = s3
        .head_object()
        .bucket("bench")
        .key("multipart/0")
        .send()
        .await;
    assert_eq!(
        head.expect("multipart object").content_length(),
        Some(6 << 20)
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_bytes_fail_the_run() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "tampered").await;
    // Set-up finds its keys (right size) and writes nothing; they hold other bytes.
    for i in 0..8 {
        put(&s3, "tampered", &format!("small/{i:06}"), &[1u8; 4096]).await;
    }
    let (ok, v) = s3bench(&gw, "get-small", "tampered").await;
    assert!(!ok, "{v}");
    assert!(v["errors"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert!(
        v["first_error"]
            .as_str()
            .is_some_and(|e| e.contains("wrong bytes")),
        "{v}"
    );
    gw.shutdown().await;
}
