//! Connection limits: the cap (`limits.max_connections`), eviction of idle connections at the
//! cap, the keep-alive idle timeout (`limits.keepalive_idle_secs`), and a load test: a gateway
//! process started with a low open-file limit, 2,000 idle connections (re-opened as the
//! gateway closes them) and 100 trickling uploads, while a normal aws-sdk-s3 client writes and
//! reads. Its figures are printed (run with `--nocapture` to see them).
//!
//! The load test needs the `hansa` binary (`cargo build --workspace`) and an open-file hard
//! limit of a few thousand for the test process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hansa_conformance::{
    bucket_name, client_at, create_bucket, encode_key, hansa_binary, process_config_from, raw,
    sign, Options, TestGateway, ADMIN,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn options(limits: &str) -> Options {
    Options {
        limits_toml: limits.to_string(),
        ..Default::default()
    }
}

/// The head of a signed PUT (payload unsigned) of `len` bytes to `bucket/key` at `endpoint`.
fn put_head(endpoint: &str, bucket: &str, key: &str, len: usize) -> Vec<u8> {
    let url = format!("{endpoint}/{bucket}/{}", encode_key(key));
    let mut req = raw::request("PUT", &url);
    req.headers_mut().insert("content-length", len.into());
    sign::Signer::new(ADMIN).sign(&mut req, &sign::Payload::Unsigned);
    raw::head_bytes(&req)
}

/// A signed GET of `bucket/key` as bytes.
fn get_bytes(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    let url = format!("{endpoint}/{bucket}/{}", encode_key(key));
    let mut req = raw::request("GET", &url);
    sign::Signer::new(ADMIN).sign(&mut req, &sign::Payload::Bytes(Vec::new()));
    raw::head_bytes(&req)
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    match stream.try_read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits until `stream` is closed by the server; how long that took, `None` if not within
/// `limit`.
async fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut b = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_connections_make_room_and_busy_ones_get_slow_down() {
    let gw = TestGateway::start_with(options("max_connections = 8\n")).await;
    let bucket = bucket_name("cap");
    create_bucket(&gw.client(), &bucket).await;

    // Eight silent connections fill the cap (with the SDK's pooled one, one is evicted).
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(gw.addr).await.expect("connect"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A ninth connection is served: the oldest idle one made room for it.
    let resp = raw::send(
        gw.addr,
        &get_bytes(&gw.endpoint, &bucket, "missing"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closed = silent.iter().filter(|s| closed_by_server(s)).count();
    assert!(closed >= 1, "no idle connection was closed to make room");
    assert!(
        !closed_by_server(&silent[7]),
        "the newest silent connection was closed before older ones"
    );

    // Eight uploads in flight: nothing is idle any more.
    let body = b"0123456789".to_vec();
    let mut puts = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(gw.addr).await.expect("connect");
        s.write_all(&put_head(
            &gw.endpoint,
            &bucket,
            &format!("k{i}"),
            body.len(),
        ))
        .await
        .expect("head");
        s.write_all(&body[..1]).await.expect("first byte");
        puts.push(s);
        // The request must reach the handler before the next connection looks for room.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        silent.iter().all(closed_by_server),
        "silent connections are closed before busy ones"
    );
    let started = Instant::now();
    let resp = raw::send(
        gw.addr,
        &get_bytes(&gw.endpoint, &bucket, "k0"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.code().as_deref(), Some("SlowDown"), "{}", resp.text());
    assert!(started.elapsed() < Duration::from_secs(3));

    // One upload ends and its connection closes: the next connection is served.
    let mut first = puts.remove(0);
    first.write_all(&body[1..]).await.expect("rest");
    let resp = raw::read_response(&mut first, Duration::from_secs(10))
        .await
        .expect("PUT answered");
    assert_eq!(resp.status, 200, "{}", resp.text());
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = raw::send(
        gw.addr,
        &get_bytes(&gw.endpoint, &bucket, "k0"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, body);
    drop(puts);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_keepalive_idle_secs() {
    let gw = TestGateway::start_with(options("keepalive_idle_secs = 1\n")).await;
    let bucket = bucket_name("idle");
    create_bucket(&gw.client(), &bucket).await;

    // A keep-alive connection after its request.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(&get_bytes(&gw.endpoint, &bucket, "missing"))
        .await
        .expect("request");
    let resp = raw::read_response(&mut s, Duration::from_secs(10))
        .await
        .expect("answer");
    assert_eq!(resp.status, 404);
    let idle = wait_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("idle keep-alive connection closed");
    assert!(idle >= Duration::from_millis(800), "closed after {idle:?}");

    // A connection that never sends anything: well before the header timeout (30 s).
    let mut silent = TcpStream::connect(gw.addr).await.expect("connect");
    let idle = wait_closed(&mut silent, Duration::from_secs(5))
        .await
        .expect("silent connection closed");
    assert!(idle >= Duration::from_millis(800), "closed after {idle:?}");

    // A request in flight is never idle, however long its body takes.
    let body = b"slow body".to_vec();
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(&put_head(&gw.endpoint, &bucket, "slow", body.len()))
        .await
        .expect("head");
    s.write_all(&body[..1]).await.expect("first byte");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.write_all(&body[1..]).await.expect("rest");
    let resp = raw::read_response(&mut s, Duration::from_secs(10))
        .await
        .expect("PUT answered");
    assert_eq!(resp.status, 200, "{}", resp.text());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_tls_connections_share_one_cap() {
    let gw = TestGateway::start_with(Options {
        tls: true,
        limits_toml: "max_connections = 3\n".into(),
        ..Default::default()
    })
    .await;
    let tls_addr = gw.tls_addr.expect("TLS listener");
    // Three silent connections: two plain, then one TLS that never starts its handshake.
    let mut silent = Vec::new();
    for addr in [gw.addr, gw.addr, tls_addr] {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A TLS client gets in by closing the oldest plain one.
    let bucket = bucket_name("shared");
    // Kept until the end: dropping it would close its connection and free a place.
    let tls_client = gw.tls_client();
    create_bucket(&tls_client, &bucket).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        closed_by_server(&silent[0]),
        "oldest plain connection closed"
    );
    assert!(
        !closed_by_server(&silent[2]),
        "newest silent connection kept"
    );
    // A plain request gets in by closing the next one.
    let resp = raw::send(
        gw.addr,
        &get_bytes(&gw.endpoint, &bucket, "missing"),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        closed_by_server(&silent[1]),
        "second plain connection closed"
    );
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The load test

const IDLE_CONNECTIONS: usize = 2000;
const TRICKLERS: usize = 100;
/// The gateway's open-file limit at start; it raises the soft one to the hard one.
const GATEWAY_SOFT_LIMIT: usize = 512;
const GATEWAY_HARD_LIMIT: usize = 1024;
/// Peak resident memory the gateway may reach under this load.
const RSS_BOUND_KIB: u64 = 256 << 10;
/// Every normal request must be answered within this.
const REQUEST_BOUND: Duration = Duration::from_secs(5);
/// The normal client works for this long while the load is on.
const CLIENT_TIME: Duration = Duration::from_secs(20);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn soft_nofile(pid: u32) -> Option<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What became of a trickling upload.
#[derive(Debug)]
enum Trickle {
    /// Still sending when the test ended.
    Held,
    /// The gateway answered with this status before the body was complete.
    Answered(u16),
    /// The connection was closed or refused without an answer.
    Closed,
}

async fn trickle(
    addr: SocketAddr,
    endpoint: String,
    bucket: String,
    i: usize,
    until: Instant,
) -> Trickle {
    let len = 64;
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Trickle::Closed;
    };
    if s.write_all(&put_head(&endpoint, &bucket, &format!("trickle-{i}"), len))
        .await
        .is_err()
    {
        return Trickle::Closed;
    }
    let mut sent = 0;
    while Instant::now() < until && sent < len - 1 {
        if s.write_all(b"x").await.is_err() {
            break;
        }
        sent += 1;
        let wait = tokio::time::sleep(Duration::from_secs(3));
        tokio::pin!(wait);
        let mut b = [0u8; 1];
        tokio::select! {
            _ = &mut wait => {}
            r = s.peek(&mut b) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return Trickle::Closed;
                }
                return match raw::read_response(&mut s, Duration::from_secs(2)).await {
                    Some(resp) => Trickle::Answered(resp.status),
                    None => Trickle::Closed,
                };
            }
        }
    }
    if closed_by_server(&s) {
        Trickle::Closed
    } else {
        Trickle::Held
    }
}

/// Keeps `IDLE_CONNECTIONS` silent connections open, re-opening those the gateway closes,
/// until `until`. Returns (connections opened in all, connections open at the end).
async fn idle_flood(addr: SocketAddr, until: Instant) -> (usize, usize) {
    let mut conns: Vec<Option<TcpStream>> = (0..IDLE_CONNECTIONS).map(|_| None).collect();
    let mut opened = 0;
    while Instant::now() < until {
        for c in conns.iter_mut() {
            if c.as_ref().is_some_and(|s| !closed_by_server(s)) {
                continue;
            }
            *c = match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    opened += 1;
                    Some(s)
                }
                _ => None,
            };
            if Instant::now() >= until {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let open = conns
        .iter()
        .filter(|c| c.as_ref().is_some_and(|s| !closed_by_server(s)))
        .count();
    (opened, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_idle_and_trickling_connections_do_not_starve_a_normal_client() {
    // This process holds 2,000+ sockets.
    let own = hansa_conformance::hansa::fd_limit::raise_nofile().expect("own open-file limit");
    assert!(
        own.soft >= (IDLE_CONNECTIONS + TRICKLERS + 200) as u64,
        "this test needs an open-file hard limit of at least {}, have {}",
        IDLE_CONNECTIONS + TRICKLERS + 200,
        own.hard
    );
    let dir = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(hansa_conformance::test_tmp_root())
        .expect("tempdir");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    std::fs::write(
        &config,
        process_config_from(dir.path(), addr, &Options::default()),
    )
    .expect("config");
    let log_path = dir.path().join("gateway.log");
    let gateway = spawn_limited(&config, &log_path, addr);
    let pid = gateway.0.id();
    let endpoint = format!("http://{addr}");
    let client = client_at(&endpoint);
    let bucket = bucket_name("load");
    create_bucket(&client, &bucket).await;
    let soft_limit = soft_nofile(pid).expect("gateway's open-file limit");

    // Sample the gateway's open files while the load runs.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(open_files(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };

    let started = Instant::now();
    let until = started + Duration::from_millis(3500) + CLIENT_TIME + Duration::from_secs(2);
    let tricklers: Vec<_> = (0..TRICKLERS)
        .map(|i| tokio::spawn(trickle(addr, endpoint.clone(), bucket.clone(), i, until)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flood = tokio::spawn(idle_flood(addr, until));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The normal client: small and 1 MiB objects, written and read back.
    let small = hansa_conformance::random_bytes(1024);
    let large = hansa_conformance::random_bytes(1 << 20);
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let client_start = Instant::now();
    let mut round = 0usize;
    while client_start.elapsed() < CLIENT_TIME {
        round += 1;
        for (name, body) in [("small", &small), ("large", &large)] {
            let key = format!("{name}-{}", round % 8);
            let t = Instant::now();
            let put = tokio::time::timeout(
                REQUEST_BOUND,
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(body.clone().into())
                    .send(),
            )
            .await;
            latencies.push(t.elapsed());
            match put {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => errors.push(format!("PUT {key}: {e:?}")),
                Err(_) => errors.push(format!("PUT {key}: no answer within {REQUEST_BOUND:?}")),
            }
            let t = Instant::now();
            let get = tokio::time::timeout(REQUEST_BOUND, async {
                let out = client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let bytes = out.body.collect().await.map_err(|e| format!("{e:?}"))?;
                Ok::<_, String>(bytes.into_bytes())
            })
            .await;
            latencies.push(t.elapsed());
            match get {
                Ok(Ok(b)) if b.as_ref() == body.as_slice() => {}
                Ok(Ok(_)) => errors.push(format!("GET {key}: wrong bytes")),
                Ok(Err(e)) => errors.push(format!("GET {key}: {e:?}")),
                Err(_) => errors.push(format!("GET {key}: no answer within {REQUEST_BOUND:?}")),
            }
        }
    }
    let client_time = client_start.elapsed();
    let fds_under_load = open_files(pid);
    let (opened, idle_held) = flood.await.expect("flood task");
    let mut trickle_held = 0;
    let mut trickle_answered = std::collections::BTreeMap::new();
    let mut trickle_closed = 0;
    for t in tricklers {
        match t.await.expect("trickler") {
            Trickle::Held => trickle_held += 1,
            Trickle::Answered(status) => *trickle_answered.entry(status).or_insert(0) += 1,
            Trickle::Closed => trickle_closed += 1,
        }
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_fds = sampler.await.expect("sampler");
    let peak_rss_kib = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    drop(gateway);

    latencies.sort();
    println!("load test figures:");
    println!(
        "  gateway open-file limit: started with soft {GATEWAY_SOFT_LIMIT}, hard \
         {GATEWAY_HARD_LIMIT}; soft {soft_limit} once running"
    );
    if let Some(line) = log.lines().find(|l| l.contains("connection limits")) {
        println!("  gateway log: {line}");
    }
    println!(
        "  idle connections: {IDLE_CONNECTIONS} kept open by the client, {opened} opened in all \
         (re-opened after the gateway closed them), {idle_held} open at the end"
    );
    println!(
        "  trickling uploads (1 byte / 3 s): {TRICKLERS} started, {trickle_held} held to the end, \
         answered {trickle_answered:?}, {trickle_closed} closed without an answer"
    );
    println!(
        "  normal client: {} requests in {:.1} s, p50 {:?}, p99 {:?}, max {:?}, errors {}",
        latencies.len(),
        client_time.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        errors.len()
    );
    println!(
        "  gateway: peak open files {peak_fds} (limit {soft_limit}), open files under load \
         {fds_under_load}, peak RSS {} MiB",
        peak_rss_kib / 1024
    );
    assert!(errors.is_empty(), "normal requests failed: {errors:#?}");
    // At the default minimum body rate (4 KiB/s over 20 s) every trickler is cut with
    // 400 RequestTimeout before the load ends, and none is dropped without an answer.
    assert_eq!(
        trickle_answered.get(&400),
        Some(&TRICKLERS),
        "tricklers: {trickle_held} held, answered {trickle_answered:?}, {trickle_closed} closed"
    );
    assert_eq!(soft_limit, GATEWAY_HARD_LIMIT, "the soft limit was raised");
    assert!(
        peak_fds < soft_limit,
        "open files reached the limit: {peak_fds}"
    );
    assert!(
        !log.contains("Too many open files"),
        "the gateway ran out of descriptors"
    );
    assert!(
        peak_rss_kib < RSS_BOUND_KIB,
        "peak RSS {peak_rss_kib} KiB above {RSS_BOUND_KIB} KiB"
    );
}

/// The gateway binary, started with a low open-file limit (soft 512, hard 1024).
fn spawn_limited(config: &Path, log: &Path, addr: SocketAddr) -> Process {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).expect("log file");
    let mut command = Command::new(hansa_binary());
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .env("HANSA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, on a struct it owns.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: GATEWAY_SOFT_LIMIT as libc::rlim_t,
                rlim_max: GATEWAY_HARD_LIMIT as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("start the gateway");
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    process
}
