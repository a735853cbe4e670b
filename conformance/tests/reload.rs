//! Reload on SIGHUP (and `POST /admin/v1/reload`), and the graceful stop on SIGTERM, against
//! a real `hansa serve --config FILE` process with two local disks: the test rewrites the
//! file, signals the process and watches clients, the disks and the log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hansa_conformance::process::{self, TestDir};
use hansa_conformance::{
    admin, assert_s3_err, create_bucket, get, process_config_from, put, random_bytes, raw,
    sha256_hex, sign, Key, Options, ADMIN, READER,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A key only some of the configurations have.
const NEW: Key = Key {
    access_key_id: "HANSARELOADNEW",
    secret_access_key: "new-secret-0123456789abcdefghijklmnopqrs",
};

/// A gateway process whose configuration file the test rewrites.
struct Served {
    dir: TestDir,
    config: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    admin: SocketAddr,
    process: process::Gateway,
}

impl Served {
    fn start(prefix: &str, options: &Options) -> Served {
        let dir = TestDir::new(prefix);
        let (addr, admin) = (process::free_port(), process::free_port());
        let config = dir.path().join("hansa.toml");
        let log = dir.path().join("hansa.log");
        std::fs::write(&config, config_text(dir.path(), addr, admin, options))
            .expect("write the configuration");
        let process = process::spawn(&config, &log, addr);
        Served {
            dir,
            config,
            log,
            addr,
            admin,
            process,
        }
    }

    /// The test configuration for `options`, with the admin plane on its port.
    fn text(&self, options: &Options) -> String {
        config_text(self.dir.path(), self.addr, self.admin, options)
    }

    /// Starts the gateway again on the same configuration, data and disks.
    fn restart(&mut self) {
        self.process = process::spawn(&self.config, &self.log, self.addr);
    }

    /// SIGTERM; returns the exit status and how long the process took to exit (at most
    /// `limit`, else the test fails).
    fn terminate(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        self.process.signal(libc::SIGTERM);
        let status = self.process.exit_status(limit).unwrap_or_else(|| {
            panic!(
                "still running {limit:?} after SIGTERM: {}",
                process::log_since(&self.log, 0)
            )
        });
        (status, started.elapsed())
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write the configuration");
    }

    fn client(&self, key: Key) -> aws_sdk_s3::Client {
        hansa_conformance::client_with(
            &format!("http://{}", self.addr),
            key.access_key_id,
            key.secret_access_key,
        )
    }

    /// Sends SIGHUP and waits for the reload's outcome in the log; returns the log since.
    async fn hup(&self) -> String {
        let from = process::log_len(&self.log);
        self.process.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = process::log_since(&self.log, from);
            if log.contains("configuration reloaded") || log.contains("configuration refused") {
                return log;
            }
            assert!(Instant::now() < deadline, "no reload outcome logged: {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /admin/v1/reload` with the token.
    async fn admin_reload(&self) -> admin::Answer {
        admin::request(
            &format!("http://{}", self.admin),
            "POST",
            "/admin/v1/reload",
            Some(admin::TOKEN),
            None,
        )
        .await
    }

    fn disk(&self, id: &str) -> PathBuf {
        self.dir.path().join(id)
    }
}

/// The test configuration of `dir` for `options`, with the admin plane on `admin`.
fn config_text(
    dir: &std::path::Path,
    addr: SocketAddr,
    admin: SocketAddr,
    options: &Options,
) -> String {
    let mut options = options.clone();
    options.extra_toml.push_str(&admin::admin_toml(
        &admin.to_string(),
        &format!("token = {:?}", admin::TOKEN),
    ));
    process_config_from(dir, addr, &options)
}

/// A `[[credential]]` table for `key`.
fn credential_toml(key: Key) -> String {
    format!(
        "\n[[credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        key.access_key_id, key.secret_access_key
    )
}

/// `text` without READER's `[[credential]]` table.
fn without_reader(text: &str) -> String {
    let table = format!(
        "\n[[credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nread_only = true\n",
        READER.access_key_id, READER.secret_access_key
    );
    assert!(
        text.contains(&table),
        "the reader's table is where expected"
    );
    text.replacen(&table, "", 1)
}

/// ListBuckets signed with `key`, sent on `stream` (a connection kept open across requests).
async fn list_buckets_on(stream: &mut TcpStream, addr: SocketAddr, key: Key) -> raw::Response {
    let mut req = raw::request("GET", &format!("http://{addr}/"));
    sign::Signer::new(key).sign(&mut req, &sign::Payload::Bytes(Vec::new()));
    stream
        .write_all(&raw::head_bytes(&req))
        .await
        .expect("send the request");
    raw::read_response(stream, Duration::from_secs(10))
        .await
        .expect("an answer on the same connection")
}

#[tokio::test]
async fn sighup_applies_credentials_also_on_open_connections() {
    let served = Served::start("reload-keys", &Options::default());
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "keys").await;
    // Connections opened before the reload and kept open across it.
    let mut as_new = TcpStream::connect(served.addr).await.expect("connect");
    let mut as_reader = TcpStream::connect(served.addr).await.expect("connect");
    let before = list_buckets_on(&mut as_new, served.addr, NEW).await;
    assert_eq!(
        (before.status, before.code().as_deref()),
        (403, Some("InvalidAccessKeyId"))
    );
    assert_eq!(
        list_buckets_on(&mut as_reader, served.addr, READER)
            .await
            .status,
        200
    );

    let options = Options {
        extra_toml: credential_toml(NEW),
        ..Default::default()
    };
    served.write(&without_reader(&served.text(&options)));
    let log = served.hup().await;
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("credential HANSATESTREADER removed")
            && log.contains("credential HANSARELOADNEW added"),
        "{log}"
    );
    assert!(
        !log.contains(NEW.secret_access_key),
        "no secret in the log: {log}"
    );

    let after = list_buckets_on(&mut as_new, served.addr, NEW).await;
    assert_eq!(after.status, 200, "{}", after.text());
    let removed = list_buckets_on(&mut as_reader, served.addr, READER).await;
    assert_eq!(
        (removed.status, removed.code().as_deref()),
        (403, Some("InvalidAccessKeyId"))
    );
    let new = served.client(NEW);
    put(
        &new,
        "keys",
        "by-new",
        b"written with a key added by reload",
    )
    .await;
    assert_eq!(
        get(&s3, "keys", "by-new").await,
        b"written with a key added by reload"
    );
    assert_s3_err!(
        served.client(READER).list_buckets().send().await,
        403,
        "InvalidAccessKeyId"
    );
}

#[tokio::test]
async fn invalid_files_are_refused_and_the_running_configuration_stays() {
    let served = Served::start("reload-refused", &Options::default());
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "kept").await;
    let valid = served.text(&Options {
        extra_toml: credential_toml(NEW),
        ..Default::default()
    });

    // Not TOML at all.
    served.write(&format!("{valid}\n[[credential\n"));
    let log = served.hup().await;
    assert!(log.contains("configuration refused"), "{log}");
    assert!(log.contains("ERROR"), "logged at error level: {log}");
    assert!(log.contains("hansa.toml"), "names the file: {log}");
    // Valid TOML, but a policy names a backend that does not exist.
    served.write(&format!(
        "{valid}\n[policy.ghost]\nbackends = [\"disk-a\", \"disk-z\"]\n"
    ));
    let log = served.hup().await;
    assert!(log.contains("configuration refused"), "{log}");
    assert!(log.contains("disk-z"), "{log}");
    // A backend that only a restart would add, named by a policy.
    let extra = format!(
        "{}\n[[backend]]\nid = \"disk-c\"\nkind = \"local\"\npath = {:?}\n\
         [policy.three]\nbackends = [\"disk-a\", \"disk-c\"]\n",
        credential_toml(NEW),
        served.disk("c")
    );
    served.write(&served.text(&Options {
        extra_toml: extra,
        ..Default::default()
    }));
    let log = served.hup().await;
    assert!(
        log.contains("configuration refused") && log.contains("disk-c"),
        "{log}"
    );
    assert!(log.contains("adding a backend needs a restart"), "{log}");
    let answer = served.admin_reload().await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.error_code(), "InvalidConfiguration");

    // The running configuration still serves, and the refused files added nothing.
    put(&s3, "kept", "still", b"the old configuration serves").await;
    assert_s3_err!(
        served.client(NEW).list_buckets().send().await,
        403,
        "InvalidAccessKeyId"
    );

    // A later valid file applies.
    served.write(&valid);
    let log = served.hup().await;
    assert!(log.contains("configuration reloaded"), "{log}");
    put(
        &served.client(NEW),
        "kept",
        "new",
        b"applied after refusals",
    )
    .await;
}

#[tokio::test]
async fn uploads_survive_reloads() {
    const CLIENTS: usize = 8;
    const OBJECTS: usize = 2;
    const SIZE: usize = 6 << 20;
    let served = Served::start("reload-uploads", &Options::default());
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "busy").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut uploads = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = served.client(ADMIN);
        let done = done.clone();
        uploads.spawn(async move {
            let mut written = Vec::new();
            for o in 0..OBJECTS {
                let key = format!("c{c}/o{o}");
                let body = random_bytes(SIZE);
                client
                    .put_object()
                    .bucket("busy")
                    .key(&key)
                    .body(body.clone().into())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("upload {key} failed during reloads: {e:?}"));
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                written.push((key, sha256_hex(&body)));
            }
            written
        });
    }
    // Five reloads while the bodies stream: credentials and limits change back and forth.
    let configs = [
        served.text(&Options {
            extra_toml: credential_toml(NEW),
            limits_toml: "backend_timeout_secs = 15\nbudget_wait_ms = 20000\n".into(),
            ..Default::default()
        }),
        served.text(&Options::default()),
    ];
    let mut after_first = 0;
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if i == 0 {
            after_first = done.load(std::sync::atomic::Ordering::Relaxed);
        }
        served.write(&configs[i % 2]);
        let log = served.hup().await;
        assert!(log.contains("configuration reloaded"), "reload {i}: {log}");
    }
    let after_reloads = done.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "uploads done: {after_first} at the first reload, {after_reloads} after the fifth, of {}",
        CLIENTS * OBJECTS
    );
    assert!(
        after_first < CLIENTS * OBJECTS,
        "the reloads began while bodies streamed"
    );
    let mut written = Vec::new();
    while let Some(done) = uploads.join_next().await {
        written.extend(done.expect("upload task"));
    }
    assert_eq!(written.len(), CLIENTS * OBJECTS);
    for (key, sum) in written {
        assert_eq!(sha256_hex(&get(&s3, "busy", &key).await), sum, "{key}");
    }
}

#[tokio::test]
async fn a_policy_change_sends_new_writes_to_its_backends() {
    let served = Served::start("reload-policy", &Options::default());
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "routed").await;
    put(&s3, "routed", "before", b"on both disks").await;
    let on = |disk: &str, key: &str| served.disk(disk).join("routed").join(key).exists();
    assert!(on("a", "before") && on("b", "before"));

    served.write(
        &served.text(&Options {
            extra_toml: "\n[policy.solo]\nbackends = [\"disk-b\"]\nreplicas = 1\n\
                     [bucket.routed]\npolicy = \"solo\"\n"
                .into(),
            ..Default::default()
        }),
    );
    let answer = served.admin_reload().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let applied = answer.json()["applied"].clone();
    let applied: Vec<&str> = applied
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(applied.contains(&"policy.solo added"), "{applied:?}");
    assert!(applied.contains(&"bucket.routed added"), "{applied:?}");

    put(&s3, "routed", "after", b"on disk-b only").await;
    assert!(
        on("b", "after") && !on("a", "after"),
        "new writes follow the policy"
    );
    // What was there keeps its replicas.
    assert!(on("a", "before") && on("b", "before"));
    assert_eq!(get(&s3, "routed", "before").await, b"on both disks");
}

#[tokio::test]
async fn admin_reload_lists_applied_and_restart_changes() {
    let served = Served::start("reload-admin", &Options::default());
    let unauthorized = admin::request(
        &format!("http://{}", served.admin),
        "POST",
        "/admin/v1/reload",
        None,
        None,
    )
    .await;
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.body);

    let answer = served.admin_reload().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = answer.json();
    assert_eq!(v["applied"], serde_json::json!([]), "nothing changed: {v}");
    assert_eq!(v["restart_needed"], serde_json::json!([]), "{v}");

    served.write(&served.text(&Options {
        extra_toml: credential_toml(NEW),
        limits_toml: "max_connections = 77\nbackend_timeout_secs = 7\n".into(),
        ..Default::default()
    }));
    let from = process::log_len(&served.log);
    let answer = served.admin_reload().await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = answer.json();
    assert_eq!(
        v["applied"],
        serde_json::json!([
            "credential HANSARELOADNEW added",
            "limits.backend_timeout_secs: 10 → 7"
        ]),
        "{v}"
    );
    assert_eq!(
        v["restart_needed"],
        serde_json::json!(["limits.max_connections: 4096 → 77"]),
        "{v}"
    );
    let log = process::log_since(&served.log, from);
    assert!(
        log.contains("restart to apply: limits.max_connections: 4096 → 77"),
        "one warning line names it: {log}"
    );
    // The live part is in force; what needs a restart is reported again until then.
    served
        .client(NEW)
        .list_buckets()
        .send()
        .await
        .expect("the key added by the reload works");
    let again = served.admin_reload().await.json();
    assert_eq!(again["applied"], serde_json::json!([]), "{again}");
    assert_eq!(
        again["restart_needed"],
        serde_json::json!(["limits.max_connections: 4096 → 77"]),
        "{again}"
    );

    // `hansa admin reload` prints the same.
    let token_file = served.dir.path().join("admin-token");
    std::fs::write(&token_file, admin::TOKEN).expect("token file");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
            .expect("token file private");
    }
    let out = std::process::Command::new(hansa_conformance::hansa_binary())
        .args(["admin", "reload", "--url"])
        .arg(format!("http://{}", served.admin))
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .expect("run hansa admin reload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("restart to apply: limits.max_connections: 4096 → 77"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_uploads_in_flight_finish() {
    const CLIENTS: usize = 8;
    const SIZE: usize = 3 << 20;
    const GRACE: u64 = 10;
    let mut served = Served::start(
        "stop-uploads",
        &Options {
            limits_toml: format!("shutdown_grace_secs = {GRACE}\n"),
            ..Default::default()
        },
    );
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "stopping").await;
    put(&s3, "stopping", "c0/o0", b"a first version").await;
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut uploads = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = served.client(ADMIN);
        let acknowledged = acknowledged.clone();
        uploads.spawn(async move {
            // Keys this client got a 200 for, with what it sent; and how many failed.
            let mut written = Vec::new();
            let mut failed = 0;
            for o in 0.. {
                let key = format!("c{c}/o{o}");
                let body = random_bytes(SIZE);
                let result = client
                    .put_object()
                    .bucket("stopping")
                    .key(&key)
                    .body(body.clone().into())
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        written.push((key, sha256_hex(&body)));
                    }
                    // The gateway stopped: connection closed or refused, never a 200.
                    Err(_) => {
                        failed += 1;
                        if failed >= 2 {
                            break;
                        }
                    }
                }
            }
            written
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.load(std::sync::atomic::Ordering::Relaxed) < CLIENTS {
        assert!(Instant::now() < deadline, "uploads too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) =
        tokio::task::block_in_place(|| served.terminate(Duration::from_secs(GRACE + 5)));
    assert!(status.success(), "exit status {status}");
    let log = process::log_since(&served.log, 0);
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("index flushed"), "{log}");
    let mut written = Vec::new();
    while let Some(done) = uploads.join_next().await {
        written.extend(done.expect("upload task"));
    }
    assert!(written.len() >= CLIENTS, "{} acknowledged", written.len());
    eprintln!(
        "SIGTERM: exited after {took:?} with {} uploads acknowledged",
        written.len()
    );

    served.restart();
    let s3 = served.client(ADMIN);
    for (key, sum) in written {
        assert_eq!(
            sha256_hex(&get(&s3, "stopping", &key).await),
            sum,
            "{key} was acknowledged"
        );
    }
    let _ = tokio::task::block_in_place(|| served.terminate(Duration::from_secs(GRACE + 5)));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_does_not_wait_past_the_grace_for_a_slow_upload() {
    const GRACE: u64 = 2;
    let mut served = Served::start(
        "stop-slow",
        &Options {
            limits_toml: format!("shutdown_grace_secs = {GRACE}\n"),
            ..Default::default()
        },
    );
    let s3 = served.client(ADMIN);
    create_bucket(&s3, "slow").await;
    put(&s3, "slow", "k", b"the previous version").await;
    // A PUT of 6 MiB that sends 64 KiB and then nothing.
    let body = random_bytes(6 << 20);
    let mut req = raw::request("PUT", &format!("http://{}/slow/k", served.addr));
    req.headers_mut().insert(
        "content-length",
        body.len().to_string().parse().expect("header"),
    );
    sign::Signer::new(ADMIN).sign(&mut req, &sign::Payload::Unsigned);
    let mut slow = TcpStream::connect(served.addr).await.expect("connect");
    slow.write_all(&raw::head_bytes(&req)).await.expect("head");
    slow.write_all(&body[..64 << 10]).await.expect("some body");
    slow.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, took) =
        tokio::task::block_in_place(|| served.terminate(Duration::from_secs(GRACE + 5)));
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= Duration::from_secs(GRACE) - Duration::from_millis(200),
        "the upload in flight got its grace: {took:?}"
    );
    let answer = raw::read_response(&mut slow, Duration::from_secs(5)).await;
    assert!(
        answer.as_ref().is_none_or(|a| a.status != 200),
        "no success for a write that did not arrive: {answer:?}"
    );

    served.restart();
    let s3 = served.client(ADMIN);
    assert_eq!(get(&s3, "slow", "k").await, b"the previous version");
    let _ = tokio::task::block_in_place(|| served.terminate(Duration::from_secs(GRACE + 5)));
}
