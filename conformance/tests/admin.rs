//! The admin plane: its bearer token, its separation from the S3 listener, what it reports
//! about backends and buckets, job control, and the `hansa admin` command line against a
//! gateway process.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hansa_backends::Fault;
use hansa_conformance::admin::{self, admin_endpoint, call, get_json, request, TOKEN};
use hansa_conformance::process::{self, free_port, TestDir};
use hansa_conformance::{bucket_name, create_bucket, hansa_binary, put, Options, TestGateway};
use serde_json::Value;

async fn admin_gateway() -> TestGateway {
    TestGateway::start_with(Options {
        admin: true,
        ..Default::default()
    })
    .await
}

/// Routes, with the method and body each takes, and what a request with the right token
/// gets.
const ROUTES: &[(&str, &str, Option<&str>, u16)] = &[
    ("GET", "/admin/v1/health", None, 200),
    ("GET", "/admin/v1/backends", None, 200),
    ("GET", "/admin/v1/buckets", None, 200),
    ("GET", "/admin/v1/jobs", None, 200),
    (
        "POST",
        "/admin/v1/jobs",
        Some(r#"{"kind":"rebalance"}"#),
        201,
    ),
    ("GET", "/admin/v1/jobs/0000", None, 404),
    ("POST", "/admin/v1/jobs/0000/pause", None, 404),
    ("POST", "/admin/v1/anti-entropy", None, 200),
    ("POST", "/admin/v1/lifecycle/run?dry_run=true", None, 200),
    ("GET", "/admin/v1/no-such-route", None, 404),
    ("GET", "/", None, 404),
];

#[tokio::test]
async fn every_route_needs_the_bearer_token() {
    let gw = admin_gateway().await;
    let endpoint = admin_endpoint(&gw);
    for &(method, path, body, expected) in ROUTES {
        for token in [None, Some("wrong-token"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let answer = request(&endpoint, method, path, token, body).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            assert_eq!(answer.error_code(), "Unauthorized");
            let challenge = answer.headers.get("www-authenticate").expect("challenge");
            assert!(challenge.to_str().unwrap().starts_with("Bearer"));
        }
        let answer = request(&endpoint, method, path, Some(TOKEN), body).await;
        assert_eq!(answer.status, expected, "{method} {path}: {}", answer.body);
        assert_eq!(
            answer.headers.get("content-type").unwrap(),
            "application/json"
        );
        answer.json();
    }
    assert_eq!(get_json(&gw, "/admin/v1/health").await["status"], "ok");
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_and_s3_listeners_do_not_answer_for_each_other() {
    let gw = admin_gateway().await;
    // A signed S3 request on the admin port gets no S3 answer.
    let s3_at_admin = hansa_conformance::client_at(&admin_endpoint(&gw));
    let err = s3_at_admin.list_buckets().send().await.unwrap_err();
    let raw = err.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 401);
    let body = std::str::from_utf8(raw.body().bytes().unwrap_or_default()).unwrap();
    assert!(!body.contains("<ListAllMyBucketsResult"), "{body}");
    assert!(serde_json::from_str::<Value>(body).is_ok(), "{body}");
    let put_at_admin = s3_at_admin
        .put_object()
        .bucket("b")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(put_at_admin.raw_response().unwrap().status().as_u16(), 401);

    // An admin request on the S3 port is an S3 request (for bucket "admin"): an S3 error,
    // never admin data, with or without the admin token.
    for path in ["/admin/v1/backends", "/admin/v1/jobs", "/admin/v1/health"] {
        for token in [None, Some(TOKEN)] {
            let answer = request(&gw.endpoint, "GET", path, token, None).await;
            assert!(answer.status >= 400, "{path}: {}", answer.status);
            assert!(
                answer.body.contains("<Error>") && answer.body.contains("<Code>"),
                "{path}: {}",
                answer.body
            );
            assert!(serde_json::from_str::<Value>(&answer.body).is_err());
        }
    }
    let answer = request(
        &gw.endpoint,
        "POST",
        "/admin/v1/jobs",
        Some(TOKEN),
        Some(r#"{"kind":"rebalance"}"#),
    )
    .await;
    assert!(answer.body.contains("<Error>"), "{}", answer.body);
    assert!(get_json(&gw, "/admin/v1/jobs")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    gw.shutdown().await;
}

fn by(list: &Value, field: &str, name: &str) -> Value {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .find(|v| v[field] == name)
        .unwrap_or_else(|| panic!("no {field} = {name} in {list}"))
        .clone()
}

#[tokio::test]
async fn backends_and_buckets_report_policy_health_and_counts() {
    let gw = admin_gateway().await;
    let client = gw.client();
    let (full, empty) = (bucket_name("adm-full"), bucket_name("adm-empty"));
    create_bucket(&client, &full).await;
    create_bucket(&client, &empty).await;
    let sizes = [10usize, 2000, 70_000];
    for (i, size) in sizes.iter().enumerate() {
        put(&client, &full, &format!("k{i}"), &vec![b'x'; *size]).await;
    }
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();

    let backends = get_json(&gw, "/admin/v1/backends").await;
    assert_eq!(backends.as_array().unwrap().len(), 2, "{backends}");
    for id in ["disk-a", "disk-b"] {
        let b = by(&backends, "id", id);
        assert_eq!(b["kind"], "local");
        assert_eq!(b["state"], "closed");
        assert_eq!(b["draining"], false);
        assert_eq!(b["objects"], 3, "{b}");
        assert_eq!(b["bytes"], total, "{b}");
        assert!(b["queued"].is_u64(), "{b}");
        assert!(
            b.get("p50_ms").is_some() && b.get("p99_ms").is_some(),
            "{b}"
        );
        assert!(b["tags"].is_object(), "{b}");
    }

    let buckets = get_json(&gw, "/admin/v1/buckets").await;
    let f = by(&buckets, "name", &full);
    assert_eq!(
        (f["objects"].as_u64(), f["bytes"].as_u64()),
        (Some(3), Some(total))
    );
    assert_eq!(f["policy"]["name"], "default");
    assert_eq!(f["policy"]["replicas"], 2);
    assert!(f["policy"]["write_quorum"].as_u64().unwrap() >= 1);
    assert_eq!(
        f["policy"]["members"],
        serde_json::json!(["disk-a", "disk-b"])
    );
    assert!(f["policy"]["rules"].is_array());
    let e = by(&buckets, "name", &empty);
    assert_eq!(
        (e["objects"].as_u64(), e["bytes"].as_u64()),
        (Some(0), Some(0))
    );

    // Anti-entropy compares each backend with the index now, and says what it found.
    let answer = call(&gw, "POST", "/admin/v1/anti-entropy", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let reports = answer.json();
    for id in ["disk-a", "disk-b"] {
        let r = by(&reports, "backend", id);
        assert_eq!(r["indexed"], 3, "{r}");
        assert_eq!(r["missing"], 0, "{r}");
    }
    gw.shutdown().await;
}

async fn post_job(gw: &TestGateway, spec: &str) -> Value {
    let answer = call(gw, "POST", "/admin/v1/jobs", Some(spec)).await;
    assert_eq!(answer.status, 201, "{spec}: {}", answer.body);
    answer.json()
}

async fn control(gw: &TestGateway, id: &str, action: &str) -> admin::Answer {
    call(gw, "POST", &format!("/admin/v1/jobs/{id}/{action}"), None).await
}

/// Reads on both disks hang (for ten minutes, the backend timeout) once an object is
/// written: a job that looks at that object cannot finish while a test runs, whatever its
/// runner does, so its state changes are the test's alone.
async fn gateway_with_stuck_jobs() -> TestGateway {
    let gw = TestGateway::start_with(Options {
        admin: true,
        faults: true,
        limits_toml: "backend_timeout_secs = 600\n".into(),
        ..Default::default()
    })
    .await;
    let client = gw.client();
    let bucket = bucket_name("adm-jobs");
    create_bucket(&client, &bucket).await;
    put(&client, &bucket, "stuck", b"a job reading this waits").await;
    for disk in ["disk-a", "disk-b"] {
        gw.faults(disk).update(|plan| plan.reads = Fault::Hang);
    }
    gw
}

#[tokio::test]
async fn jobs_are_started_listed_and_controlled() {
    let gw = gateway_with_stuck_jobs().await;
    let rebalance = post_job(&gw, r#"{"kind":"rebalance"}"#).await;
    assert_eq!(rebalance["spec"]["kind"], "rebalance");
    let drain = post_job(
        &gw,
        r#"{"kind":"drain","backend":"disk-b","keep_replicas":false}"#,
    )
    .await;
    assert_eq!(drain["spec"]["backend"], "disk-b");
    assert_eq!(drain["state"], "running");
    let drain_id = drain["id"].as_str().unwrap().to_string();
    let again = call(
        &gw,
        "POST",
        "/admin/v1/jobs",
        Some(r#"{"kind":"drain","backend":"disk-b"}"#),
    )
    .await;
    assert_eq!(
        (again.status, again.error_code()),
        (409, "InvalidJob".into())
    );
    let verify = post_job(&gw, r#"{"kind":"verify","deep":true}"#).await;
    let id = verify["id"].as_str().unwrap().to_string();

    let jobs = get_json(&gw, "/admin/v1/jobs").await;
    let ids: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            rebalance["id"].as_str().unwrap(),
            drain_id.as_str(),
            id.as_str()
        ]
    );
    assert_eq!(
        get_json(&gw, &format!("/admin/v1/jobs/{id}")).await["id"],
        id
    );
    let backends = get_json(&gw, "/admin/v1/backends").await;
    assert_eq!(by(&backends, "id", "disk-b")["draining"], true);
    assert_eq!(by(&backends, "id", "disk-a")["draining"], false);

    // State changes, and the ones that do not apply.
    let resume_running = control(&gw, &id, "resume").await;
    assert_eq!(resume_running.status, 409, "{}", resume_running.body);
    assert_eq!(resume_running.error_code(), "InvalidJob");
    let paused = control(&gw, &id, "pause").await;
    assert_eq!(
        (paused.status, paused.json()["state"].clone()),
        (200, "paused".into())
    );
    assert_eq!(control(&gw, &id, "pause").await.status, 409);
    let resumed = control(&gw, &id, "resume").await;
    assert_eq!(resumed.json()["state"], "running");
    let cancelled = control(&gw, &id, "cancel").await;
    assert_eq!(cancelled.json()["state"], "cancelled");
    assert!(cancelled.json()["finished_ms"].is_u64());
    assert_eq!(control(&gw, &id, "cancel").await.status, 409);
    assert_eq!(control(&gw, &id, "explode").await.status, 404);
    // A cancelled drain gives the backend back to writes.
    let cancelled = control(&gw, &drain_id, "cancel").await;
    assert_eq!(cancelled.json()["state"], "cancelled", "{}", cancelled.body);
    let backends = get_json(&gw, "/admin/v1/backends").await;
    assert_eq!(by(&backends, "id", "disk-b")["draining"], false);

    // Unknown jobs, bad specs, wrong methods, oversized bodies.
    let unknown = call(&gw, "GET", "/admin/v1/jobs/0123456789abcdef", None).await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (404, "NoSuchJob".into())
    );
    assert_eq!(control(&gw, "0123456789abcdef", "resume").await.status, 404);
    let no_backend = call(
        &gw,
        "POST",
        "/admin/v1/jobs",
        Some(r#"{"kind":"drain","backend":"disk-z"}"#),
    )
    .await;
    assert_eq!(
        (no_backend.status, no_backend.error_code()),
        (409, "InvalidJob".into())
    );
    let verify_unknown = call(
        &gw,
        "POST",
        "/admin/v1/jobs",
        Some(r#"{"kind":"verify","backend":"disk-z"}"#),
    )
    .await;
    assert_eq!(verify_unknown.status, 409);
    for bad in [
        "{not json",
        r#"{"kind":"explode"}"#,
        r#"{"kind":"drain"}"#,
        "",
    ] {
        let answer = call(&gw, "POST", "/admin/v1/jobs", Some(bad)).await;
        assert_eq!(answer.status, 400, "{bad:?}: {}", answer.body);
    }
    let huge = format!(r#"{{"kind":"rebalance","pad":"{}"}}"#, "x".repeat(70 << 10));
    let answer = call(&gw, "POST", "/admin/v1/jobs", Some(&huge)).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    let wrong_method = call(&gw, "DELETE", "/admin/v1/jobs", None).await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.headers.get("allow").is_some());
    assert_eq!(
        call(&gw, "POST", "/admin/v1/backends", None).await.status,
        405
    );
    assert_eq!(
        get_json(&gw, "/admin/v1/jobs")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn no_admin_listener_without_the_section_or_when_disabled() {
    let gw = TestGateway::start().await;
    assert!(gw.running.as_ref().unwrap().admin_addr.is_none());
    gw.shutdown().await;
    let disabled = admin::admin_toml(
        "127.0.0.1:0",
        &format!("token = {TOKEN:?}\nenabled = false"),
    );
    let gw = TestGateway::start_with(Options {
        extra_toml: disabled,
        ..Default::default()
    })
    .await;
    assert!(gw.running.as_ref().unwrap().admin_addr.is_none());
    gw.shutdown().await;
}

// ---- The command line ------------------------------------------------------------------

/// Runs `hansa admin <args>` with `env`; returns exit success, stdout and stderr.
fn hansa_admin(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(hansa_binary());
    cmd.arg("admin").args(args).env_remove("HANSA_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hansa admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn hansa_admin_talks_to_a_gateway_process() {
    let dir = TestDir::new("admin-cli-");
    let (addr, admin_addr) = (free_port(), free_port());
    let token_file = dir.path().join("admin-token");
    private_file(&token_file, &format!("{TOKEN}\n"));
    let config = dir.path().join("hansa.toml");
    let section = admin::admin_toml(
        &admin_addr.to_string(),
        &format!("token_file = {:?}", token_file.display().to_string()),
    );
    // Reads hang on both disks (see `gateway_with_stuck_jobs`); writes work.
    let hang = "faults = { reads = \"hang\" }";
    process::write_config(
        &config,
        dir.path(),
        addr,
        &section,
        &[("disk-a", hang), ("disk-b", hang)],
        "backend_timeout_secs = 600",
    );
    let mut gateway = process::spawn(&config, &dir.path().join("log"), addr);
    let client = hansa_conformance::client_at(&format!("http://{addr}"));
    let bucket = bucket_name("adm-cli");
    create_bucket(&client, &bucket).await;
    put(&client, &bucket, "stuck", b"a job reading this waits").await;
    let url = format!("http://{admin_addr}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(admin_addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "admin listener not up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let tf = token_file.display().to_string();

    // --json prints what the listener answered.
    let (ok, out, err) = hansa_admin(
        &["--url", &url, "--token-file", &tf, "backends", "--json"],
        &[],
    );
    assert!(ok, "{err}");
    let backends: Value = serde_json::from_str(&out).expect("backends --json is JSON");
    assert_eq!(backends.as_array().unwrap().len(), 2);

    // The token from --token-file, from the environment, and from the configuration.
    let (ok, out, err) = hansa_admin(
        &["--url", &url, "--token-file", &tf, "drain", "disk-b"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("drain disk-b") && out.contains("running"),
        "{out}"
    );
    let (ok, out, err) = hansa_admin(&["--url", &url, "jobs"], &[("HANSA_ADMIN_TOKEN", TOKEN)]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("ID ") && out.contains("drain disk-b"),
        "{out}"
    );
    let cfg = config.display().to_string();
    let (ok, out, err) = hansa_admin(&["--config", &cfg, "backends"], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("disk-a") && out.contains("DRAINING"), "{out}");
    let (ok, out, err) = hansa_admin(&["--config", &cfg, "verify", "--deep", "--json"], &[]);
    assert!(ok, "{err}");
    let verify: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verify["spec"]["deep"], true);
    let id = verify["id"].as_str().unwrap().to_string();
    let (ok, out, err) = hansa_admin(&["--config", &cfg, "jobs", "--json"], &[]);
    assert!(ok, "{err}");
    let jobs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert_eq!(jobs[1]["id"], id.as_str());
    let (ok, out, _) = hansa_admin(&["--config", &cfg, "pause", &id], &[]);
    assert!(ok && out.contains("paused"), "{out}");
    let (ok, _, err) = hansa_admin(&["--config", &cfg, "pause", &id], &[]);
    assert!(!ok && err.contains("InvalidJob"), "{err}");

    // --wait on a job that ended without being done: its last state, and a failing exit.
    let (ok, out, _) = hansa_admin(&["--config", &cfg, "resume", &id], &[]);
    assert!(ok && out.contains("running"), "{out}");
    let (ok, out, _) = hansa_admin(&["--config", &cfg, "cancel", &id], &[]);
    assert!(ok && out.contains("cancelled"), "{out}");
    let (ok, _, err) = hansa_admin(&["--config", &cfg, "job", "0123456789abcdef"], &[]);
    assert!(!ok && err.contains("404 NoSuchJob"), "{err}");
    let (ok, out, err) = hansa_admin(&["--config", &cfg, "job", &id, "--wait"], &[]);
    assert!(!ok, "a cancelled job is no success: {out}{err}");
    assert!(
        out.contains(&format!("{id} cancelled: objects ")) && out.contains(" left), bytes "),
        "a plain progress line when not on a terminal: {out}"
    );
    let (ok, out, _) = hansa_admin(&["--config", &cfg, "job", &id, "--wait", "--json"], &[]);
    assert!(!ok);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["state"], "cancelled");

    // A wrong token: a clear message and a failing exit.
    let wrong = dir.path().join("wrong-token");
    private_file(&wrong, "not-the-token");
    let (ok, out, err) = hansa_admin(
        &[
            "--url",
            &url,
            "--token-file",
            &wrong.display().to_string(),
            "jobs",
        ],
        &[],
    );
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("refused the token"), "{err}");
    let (ok, _, err) = hansa_admin(&["--url", &url, "jobs"], &[("HANSA_ADMIN_TOKEN", "nope")]);
    assert!(!ok && err.contains("401"), "{err}");
    // Nothing listening: says so.
    let (ok, _, err) = hansa_admin(
        &[
            "--url",
            &format!("http://{}", free_port()),
            "--token-file",
            &tf,
            "jobs",
        ],
        &[],
    );
    assert!(!ok && err.contains("cannot reach"), "{err}");

    assert!(
        gateway.terminate(Duration::from_secs(10)),
        "gateway stops on SIGTERM"
    );
}

#[test]
fn a_world_readable_token_file_is_refused() {
    let dir = TestDir::new("admin-perm-");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("hansa.toml");
    let section = admin::admin_toml(
        &free_port().to_string(),
        &format!("token_file = {:?}", token_file.display().to_string()),
    );
    process::write_config(&config, dir.path(), free_port(), &section, &[], "");
    let out = Command::new(hansa_binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run hansa serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin.token_file") && err.contains("readable by every user"),
        "{err}"
    );
}

/// `hansa serve` on the embedded default in `data`, its admin plane on `admin_addr`; returns
/// once both listen. The child is stopped by the caller.
fn serve_embedded(data: &Path, admin_addr: std::net::SocketAddr) -> std::process::Child {
    let addr = free_port();
    let child = Command::new(hansa_binary())
        .arg("serve")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin_addr.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hansa");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(admin_addr).is_err()
        || std::net::TcpStream::connect(addr).is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "hansa did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait for hansa");
    assert!(status.success(), "hansa stopped with {status}");
}

#[test]
fn embedded_default_generates_a_private_admin_token_and_reuses_it() {
    let dir = TestDir::new("admin-embedded-");
    let data = dir.path().join("data");
    let admin_addr = free_port();
    let url = format!("http://{admin_addr}");
    let child = serve_embedded(&data, admin_addr);
    let file = data.join("admin-token");
    let mode = std::fs::metadata(&file)
        .expect("admin-token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(token.len() >= 32, "{token:?}");
    let (ok, out, err) = hansa_admin(
        &["--url", &url, "backends"],
        &[("HANSA_ADMIN_TOKEN", &token)],
    );
    assert!(
        ok && out.contains("disk-a") && out.contains("disk-b"),
        "{out}{err}"
    );
    stop(child);

    let child = serve_embedded(&data, admin_addr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        token,
        "reused"
    );
    let (ok, _, err) = hansa_admin(
        &[
            "--url",
            &url,
            "--token-file",
            &file.display().to_string(),
            "jobs",
        ],
        &[],
    );
    assert!(ok, "{err}");
    stop(child);
}
