//! The command line as an operator meets it under a service manager: stdout is not a terminal,
//! so the generated secret stays in its file, and logs go to stderr, uncoloured or as JSON.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hansa_conformance::hansa_binary;

struct Output {
    stdout: String,
    stderr: String,
}

/// Runs `hansa [args] serve` on the embedded default in `data` until it listens, then stops it.
fn serve_once(data: &Path, args: &[&str]) -> Output {
    let addr: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address")
    };
    let (out, err) = (data.with_extension("out"), data.with_extension("err"));
    let mut child = Command::new(hansa_binary())
        .args(args)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start hansa");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "hansa did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: the graceful stop, as a service manager sends it.
    // SAFETY: kill only sends a signal to our own child, which has not been waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait for hansa");
    assert!(status.success(), "hansa stopped with {status}");
    Output {
        stdout: std::fs::read_to_string(out).expect("stdout"),
        stderr: std::fs::read_to_string(err).expect("stderr"),
    }
}

fn stored_secret(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("credentials.toml")).expect("credentials file");
    let line = text
        .lines()
        .find(|l| l.starts_with("secret_access_key"))
        .expect("a secret in the credentials file");
    line.split('"').nth(1).expect("quoted secret").to_string()
}

#[test]
fn secret_stays_in_its_file_and_logs_go_to_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = serve_once(&data, &[]);
    let secret = stored_secret(&data);
    assert!(secret.len() >= 20, "a real secret was generated");
    assert!(
        !first.stdout.contains(&secret) && !first.stderr.contains(&secret),
        "the secret was printed: {}{}",
        first.stdout,
        first.stderr
    );
    assert!(
        first.stdout.contains("the secret is in") && first.stdout.contains("credentials.toml"),
        "stdout names where the secret is: {}",
        first.stdout
    );
    assert!(first.stdout.contains("listening on http://127.0.0.1:"));
    assert!(
        first.stderr.contains("backend ready"),
        "logs on stderr: {}",
        first.stderr
    );
    assert!(
        !first.stdout.contains("INFO"),
        "no logs on stdout: {}",
        first.stdout
    );
    assert!(
        !first.stderr.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {:?}",
        first.stderr
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let run = serve_once(&data, &["--log-format", "json"]);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty(), "some logs");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("backend ready")),
        "{}",
        run.stderr
    );
}

/// `kill -USR1` asks a running gateway for an anti-entropy pass: a copy removed behind its back
/// is found and repaired without a restart.
#[tokio::test]
async fn sigusr1_runs_anti_entropy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address")
    };
    let config = dir.path().join("hansa.toml");
    let options = hansa_conformance::Options {
        extra_toml: "[repair]\nanti_entropy_interval_secs = 0\n".into(),
        ..Default::default()
    };
    std::fs::write(
        &config,
        hansa_conformance::process_config_from(dir.path(), addr, &options),
    )
    .expect("config");
    let err = dir.path().join("stderr");
    let mut child = Command::new(hansa_binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start hansa");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "hansa did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s3 = hansa_conformance::client_at(&format!("http://{addr}"));
    hansa_conformance::create_bucket(&s3, "usr1").await;
    hansa_conformance::put(&s3, "usr1", "doc", b"kept on both disks").await;
    let on_b = dir.path().join("b").join("usr1").join("doc");
    std::fs::remove_file(&on_b).expect("remove the copy on disk-b");

    // SAFETY: kill only sends a signal to our own child, which has not been waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGUSR1) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !on_b.exists() {
        assert!(
            Instant::now() < deadline,
            "not repaired after SIGUSR1: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read(&on_b).expect("repaired copy"),
        b"kept on both disks"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait for hansa");
    assert!(status.success(), "hansa stopped with {status}");
    let log = std::fs::read_to_string(&err).expect("stderr");
    assert!(log.contains("anti-entropy requested (SIGUSR1)"), "{log}");
    assert!(log.contains("anti-entropy pass"), "{log}");
}
