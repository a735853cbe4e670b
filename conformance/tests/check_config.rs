//! `hansa check-config FILE` as an operator runs it before a deploy: exit 0 and the placement
//! summary for a configuration that is ready, non-zero naming the problem otherwise (a missing
//! directory, a provider that does not answer, bad TOML, a policy naming an unknown backend).

use std::path::Path;
use std::time::Duration;

use hansa_conformance::process::{free_port, run_hansa, spawn, write_config, Finished, TestDir};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn check(config: &Path, json: bool) -> Finished {
    let config = config.to_str().expect("utf-8 path");
    let mut args = vec!["check-config", config];
    if json {
        args.push("--json");
    }
    run_hansa(&args, LIMIT)
}

/// A configuration of the two test disks (their directories created) in `dir`, with `extra`.
fn two_disks(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("hansa.toml");
    write_config(&config, dir, free_port(), extra, &[], "");
    for disk in ["a", "b"] {
        std::fs::create_dir_all(dir.join(disk)).expect("backend directory");
    }
    config
}

#[test]
fn a_ready_configuration_passes_with_its_placement_summary() {
    let dir = TestDir::new("check-ok");
    let config = two_disks(
        dir.path(),
        "[policy.single]\nbackends = [\"disk-a\"]\nreplicas = 1\n\n[bucket.scratch]\npolicy = \"single\"\n",
    );
    let run = check(&config, false);
    assert_eq!(run.code, Some(0), "{run:?}");
    for expected in [
        "disk-a",
        "disk-b",
        "reachable, writable",
        "default:",
        "members:      disk-a, disk-b",
        "replicas:     2",
        "write quorum: 2",
        "single:",
        "scratch -> policy single",
        "check-config: OK",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} in {}",
            run.stdout
        );
    }
    assert!(
        !dir.path().join("data").join("index").exists(),
        "check-config does not create an index"
    );

    let run = check(&config, true);
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(report["valid"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    let backends = report["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 2);
    assert!(backends.iter().all(|b| b["ok"] == true), "{report}");
    let policies = report["policies"].as_array().expect("policies");
    assert_eq!(policies[0]["name"], "default");
    assert_eq!(policies[0]["write_quorum"], 2);
    assert_eq!(policies[0]["quorum_reachable"], true);
    assert_eq!(policies[1]["name"], "single");
    assert_eq!(
        report["buckets"],
        serde_json::json!([{"bucket": "scratch", "policy": "single"}])
    );
}

/// The index is not needed: a gateway holding it does not get in the way.
#[test]
fn runs_beside_a_gateway_that_holds_the_index() {
    let dir = TestDir::new("check-beside");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    write_config(&config, dir.path(), addr, "", &[], "");
    let _gateway = spawn(&config, &dir.path().join("gateway.log"), addr);
    let run = check(&config, false);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("check-config: OK"), "{}", run.stdout);
}

#[test]
fn a_missing_directory_fails_naming_the_backend() {
    let dir = TestDir::new("check-missing");
    let config = two_disks(dir.path(), "");
    std::fs::remove_dir(dir.path().join("b")).expect("remove disk-b's directory");
    let run = check(&config, false);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains("backend disk-b") && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("policy default: write quorum 2 cannot be met"),
        "{}",
        run.stderr
    );
    assert!(
        !dir.path().join("b").exists(),
        "check-config does not create a backend's directory"
    );
}

#[test]
fn an_unreachable_provider_fails_naming_the_backend() {
    let dir = TestDir::new("check-closed");
    let closed = free_port(); // nothing listens there any more
    let extra = format!(
        r#"
[[backend]]
id = "s3-closed"
kind = "s3"
preset = "custom"
endpoint = "http://{closed}"
bucket = "hansa"
allow_http = true
access_key_id = "closed-key"
secret_access_key = "closed-secret"
retries = 0
connect_timeout_secs = 1

[policy.default]
backends = ["disk-a", "disk-b"]
"#
    );
    let config = two_disks(dir.path(), &extra);
    let run = check(&config, true);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("backend s3-closed"), "{}", run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    let state = |id: &str| {
        report["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .find(|b| b["id"] == id)
            .map(|b| b["ok"].clone())
    };
    assert_eq!(state("s3-closed"), Some(Value::Bool(false)), "{report}");
    assert_eq!(state("disk-a"), Some(Value::Bool(true)), "{report}");
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(1),
        "only the provider is a problem; the default policy does not use it: {report}"
    );
}

#[test]
fn bad_toml_fails_with_its_line() {
    let dir = TestDir::new("check-toml");
    let config = dir.path().join("hansa.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = [\"127.0.0.1:9000\"\n\n[limits]\n",
    )
    .expect("write");
    let run = check(&config, false);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("invalid configuration") && run.stderr.contains("line"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_policy_naming_an_unknown_backend_fails_with_its_field() {
    let dir = TestDir::new("check-unknown");
    let config = two_disks(
        dir.path(),
        "[policy.lost]\nbackends = [\"disk-a\", \"disk-z\"]\n",
    );
    let run = check(&config, false);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("policy.lost.backends") && run.stderr.contains("disk-z"),
        "{}",
        run.stderr
    );
}
