//! The request log as a log collector reads it: `hansa serve` run as a process, known requests
//! made with a raw HTTP client (so every `x-amz-request-id` is at hand), and stderr parsed
//! line by line. Every request is found in exactly one line, with its operation, status,
//! bucket, credential, bytes and replicas.

use std::time::Duration;

use hansa_conformance::process::{self, free_port, spawn_split, write_config, TestDir};
use hansa_conformance::raw::{self, Response};
use hansa_conformance::sign::{Payload, Signer};
use hansa_conformance::{admin, Key, ADMIN, READER};
use serde_json::Value;

const BUCKET: &str = "logged";
const BODY: &[u8] = b"twenty-six bytes of object";

/// A request signed by `key` (payload unsigned), sent with `body`.
async fn signed(key: Key, method: &str, url: &str, body: &[u8]) -> Response {
    let mut req = raw::request(method, url);
    Signer::new(key).sign(&mut req, &Payload::Unsigned);
    raw::send_reqwest(req, body.to_vec()).await
}

/// What one request's log line must say.
struct Expected {
    request_id: String,
    operation: &'static str,
    status: u16,
    credential: &'static str,
    bytes_in: u64,
    bytes_out: Option<u64>,
    replicas: Option<&'static str>,
    error: &'static str,
}

fn request_id(r: &Response) -> String {
    r.header("x-amz-request-id")
        .expect("x-amz-request-id on every answer")
        .to_string()
}

/// Makes the known requests against the gateway at `base`; returns what their lines must say.
async fn known_requests(base: &str) -> Vec<Expected> {
    let mut expected = Vec::new();
    let create = signed(ADMIN, "PUT", &format!("{base}/{BUCKET}"), b"").await;
    assert_eq!(create.status, 200, "{}", create.text());
    expected.push(Expected {
        request_id: request_id(&create),
        operation: "CreateBucket",
        status: 200,
        credential: ADMIN.access_key_id,
        bytes_in: 0,
        bytes_out: None,
        replicas: None,
        error: "-",
    });

    let put = signed(ADMIN, "PUT", &format!("{base}/{BUCKET}/doc"), BODY).await;
    assert_eq!(put.status, 200, "{}", put.text());
    expected.push(Expected {
        request_id: request_id(&put),
        operation: "PutObject",
        status: 200,
        credential: ADMIN.access_key_id,
        bytes_in: BODY.len() as u64,
        bytes_out: Some(0),
        // The default policy: both disks, both confirmed before the 200.
        replicas: Some("2/2"),
        error: "-",
    });

    let get = signed(READER, "GET", &format!("{base}/{BUCKET}/doc"), b"").await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.body, BODY);
    expected.push(Expected {
        request_id: request_id(&get),
        operation: "GetObject",
        status: 200,
        credential: READER.access_key_id,
        bytes_in: 0,
        bytes_out: Some(BODY.len() as u64),
        replicas: None, // one of the disks: checked below
        error: "-",
    });

    let missing = signed(ADMIN, "GET", &format!("{base}/{BUCKET}/no-such-doc"), b"").await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    expected.push(Expected {
        request_id: request_id(&missing),
        operation: "GetObject",
        status: 404,
        credential: ADMIN.access_key_id,
        bytes_in: 0,
        bytes_out: Some(missing.body.len() as u64),
        replicas: None,
        error: "NoSuchKey",
    });

    // No signature at all: refused before the body is read.
    let anonymous = raw::send_reqwest(
        raw::request("PUT", &format!("{base}/{BUCKET}/anonymous")),
        b"not stored".to_vec(),
    )
    .await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.text());
    expected.push(Expected {
        request_id: request_id(&anonymous),
        operation: "PutObject",
        status: 403,
        credential: "-",
        bytes_in: 0,
        bytes_out: Some(anonymous.body.len() as u64),
        replicas: None,
        error: "AccessDenied",
    });
    expected
}

#[tokio::test]
async fn json_log_names_every_request_in_exactly_one_line() {
    let dir = TestDir::new("logs-json");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    let admin_addr = free_port();
    let admin_table = admin::admin_toml(
        &admin_addr.to_string(),
        &format!("token = {:?}", admin::TOKEN),
    );
    write_config(&config, dir.path(), addr, &admin_table, &[], "");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut gw = spawn_split(&config, &["--log-format", "json"], &[], &out, &err, addr);
    let expected = known_requests(&format!("http://{addr}")).await;
    // The admin plane's log: with the token, and without.
    let admin_url = format!("http://{admin_addr}");
    let listed = admin::request(
        &admin_url,
        "GET",
        "/admin/v1/backends",
        Some(admin::TOKEN),
        None,
    );
    assert_eq!(listed.await.status, 200);
    let refused = admin::request(&admin_url, "GET", "/admin/v1/buckets", None, None).await;
    assert_eq!(refused.status, 401);
    assert!(gw.terminate(Duration::from_secs(20)), "stops on SIGTERM");

    let log = std::fs::read_to_string(&err).expect("stderr");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    assert!(lines.len() > expected.len(), "{log}");
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "no string {key:?} in {line}");
        }
        assert!(
            line.get("fields").is_none() && line.get("span").is_none(),
            "flat lines: {line}"
        );
    }
    for want in &expected {
        let found: Vec<&Value> = lines
            .iter()
            .filter(|l| l["request_id"] == want.request_id.as_str())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "request {} ({}) in exactly one line: {log}",
            want.request_id,
            want.operation
        );
        let line = found[0];
        let context = format!("{} {}: {line}", want.operation, want.status);
        assert_eq!(line["message"], "request", "{context}");
        assert_eq!(line["level"], "INFO", "{context}");
        assert_eq!(line["target"], "hansa::s3::handler", "{context}");
        assert_eq!(line["operation"], want.operation, "{context}");
        assert_eq!(line["status"], want.status, "{context}");
        assert_eq!(line["bucket"], BUCKET, "{context}");
        assert_eq!(line["credential"], want.credential, "{context}");
        assert_eq!(line["bytes_in"], want.bytes_in, "{context}");
        if let Some(out) = want.bytes_out {
            assert_eq!(line["bytes_out"], out, "{context}");
        }
        assert_eq!(line["error"], want.error, "{context}");
        assert!(line["duration_ms"].is_u64(), "{context}");
        match (want.operation, want.status, want.replicas) {
            (_, _, Some(replicas)) => assert_eq!(line["replicas"], replicas, "{context}"),
            ("GetObject", 200, None) => assert!(
                line["replicas"] == "disk-a" || line["replicas"] == "disk-b",
                "the backend that served the read: {context}"
            ),
            _ => assert_eq!(line["replicas"], "-", "{context}"),
        }
    }
    let admin_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "admin request")
        .collect();
    let admin_line = |operation: &str| {
        let found: Vec<&&Value> = admin_lines
            .iter()
            .filter(|l| l["operation"] == operation)
            .collect();
        assert_eq!(found.len(), 1, "one {operation} line: {log}");
        (*found[0]).clone()
    };
    let listed = admin_line("ListBackends");
    assert_eq!(listed["credential"], "admin-token", "{listed}");
    assert_eq!(listed["status"], 200, "{listed}");
    assert_eq!(listed["error"], "-", "{listed}");
    assert!(listed["bytes_out"].as_u64() > Some(0), "{listed}");
    let refused = admin_line("ListBuckets");
    assert_eq!(refused["credential"], "-", "{refused}");
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["error"], "Unauthorized", "{refused}");
}

#[tokio::test]
async fn text_log_has_no_colours_when_piped_and_follows_rust_log() {
    let dir = TestDir::new("logs-text");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    write_config(&config, dir.path(), addr, "", &[], "");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut gw = spawn_split(&config, &[], &[], &out, &err, addr);
    let expected = known_requests(&format!("http://{addr}")).await;
    assert!(gw.terminate(Duration::from_secs(20)), "stops on SIGTERM");
    let log = std::fs::read_to_string(&err).expect("stderr");
    assert!(
        !log.contains('\u{1b}'),
        "no escape codes when piped: {log:?}"
    );
    let put = &expected[1];
    let line = log
        .lines()
        .find(|l| l.contains(&put.request_id))
        .unwrap_or_else(|| panic!("PutObject {} logged: {log}", put.request_id));
    // Text lines quote string values.
    let field = |name| process::field(line, name).map(|v| v.trim_matches('"'));
    assert_eq!(field("operation"), Some("PutObject"), "{line}");
    assert_eq!(field("credential"), Some(ADMIN.access_key_id), "{line}");
    assert_eq!(field("bytes_in"), Some("26"), "{line}");
    assert_eq!(field("replicas"), Some("2/2"), "{line}");

    // RUST_LOG=warn: request lines (info) are not written.
    let dir = TestDir::new("logs-warn");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    write_config(&config, dir.path(), addr, "", &[], "");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut gw = spawn_split(&config, &[], &[("RUST_LOG", "warn")], &out, &err, addr);
    let expected = known_requests(&format!("http://{addr}")).await;
    assert!(gw.terminate(Duration::from_secs(20)), "stops on SIGTERM");
    let log = std::fs::read_to_string(&err).expect("stderr");
    for want in &expected {
        assert!(
            !log.contains(&want.request_id),
            "RUST_LOG=warn hides request lines: {log}"
        );
    }
}
