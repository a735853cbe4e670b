//! Leaving a provider, end to end: three backends of three kinds (a local disk, an S3 server,
//! Azurite), objects of mixed sizes, the S3 backend drained through the admin API while a
//! client keeps reading and writing, the gateway killed with SIGKILL in the middle of the
//! drain and started again, the drain finished, the backend removed from the configuration
//! and the gateway started once more: every object reads back byte-identical, the drained
//! backend holds no Hansa object, and the client saw no error while the gateway was up.
//!
//! 2,000 objects by default; `HANSA_DRAIN_OBJECTS=10000` for the full run (README). The
//! figures for the closing note (objects and bytes moved, time, client requests during the
//! drain and how many failed) are printed at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hansa_conformance::process::{free_port, spawn, Gateway, TestDir};
use hansa_conformance::{
    client_at, client_with, cloud_backends_toml, create_bucket, process_config_with, random_bytes,
    sha256_hex, test_server_var,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const BUCKET: &str = "leaving";
const TOKEN: &str = "drain-e2e-admin-token-0123456789";
const DRAIN_LIMIT: Duration = Duration::from_secs(900);

/// The objects: mostly small, some of a quarter MiB, a few above the 8 MiB part size.
fn object_size(rng: &mut StdRng, i: usize) -> usize {
    match i % 400 {
        0 | 200 => 9 * 1024 * 1024 + rng.gen_range(0..4096),
        n if n % 20 == 0 => 256 * 1024 + rng.gen_range(0..4096),
        _ => rng.gen_range(0..16 * 1024),
    }
}

struct Setup {
    dir: TestDir,
    addr: SocketAddr,
    admin: SocketAddr,
    moto_prefix: String,
    log: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Setup {
    /// The configuration: `disk-a`, `moto` and `azurite` (or without `moto`, once drained),
    /// each object on two of them.
    fn write_config(&self, with_moto: bool) {
        let cloud = cloud_backends_toml(&self.moto_prefix, &format!("{}-az", self.moto_prefix))
            .expect("cloud servers");
        let members = if with_moto {
            r#"["disk-a", "moto", "azurite"]"#
        } else {
            r#"["disk-a", "azurite"]"#
        };
        let mut extra = String::new();
        if with_moto {
            extra.push_str(&cloud);
        } else {
            // The same Azurite backend, without the drained S3 server.
            let azure = &cloud[cloud
                .find("[[backend]]\nid = \"azurite\"")
                .expect("azurite")..];
            extra.push_str(azure);
        }
        extra.push_str(&format!(
            "\n[policy.default]\nbackends = {members}\nreplicas = 2\nwrite_quorum = 2\n\n\
             [repair]\nanti_entropy_interval_secs = 0\n\n\
             [admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n",
            admin = self.admin
        ));
        let toml = process_config_with(self.dir.path(), self.addr, extra);
        std::fs::write(&self.config, toml).expect("config");
    }

    fn start(&self) -> Gateway {
        spawn(&self.config, &self.log, self.addr)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}/admin/v1{path}", self.admin)
    }
}

async fn admin_json(
    http: &reqwest::Client,
    setup: &Setup,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http
        .request(method, setup.admin_url(path))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    // The admin listener of a gateway just started may be a moment behind its S3 listener.
    let mut tries = 0;
    let response = loop {
        match request.try_clone().expect("request").send().await {
            Ok(r) => break r,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("admin {path}: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("admin {path}: {e}"),
        }
    };
    let status = response.status();
    let text = response.text().await.expect("admin body");
    assert!(status.is_success(), "admin {path}: {status}: {text}");
    serde_json::from_str(&text).expect("admin JSON")
}

/// What the traffic client saw while the gateway was up.
#[derive(Default)]
struct Traffic {
    requests: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Reads known objects (checking their bytes) and writes new and overwritten ones until
/// `stop`; pauses while `paused` (the gateway is being killed and started again).
async fn traffic(
    endpoint: String,
    known: Arc<Mutex<BTreeMap<String, String>>>,
    stats: Arc<Traffic>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
) {
    let client = client_at(&endpoint);
    let mut rng = StdRng::seed_from_u64(7);
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        if paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        n += 1;
        let result: Result<(), String> = if n.is_multiple_of(3) {
            let key = if n.is_multiple_of(2) {
                format!("traffic/{n}")
            } else {
                format!("obj/{:05}", rng.gen_range(0..100))
            };
            let body = random_bytes(rng.gen_range(0..32 * 1024));
            let hash = sha256_hex(&body);
            match client
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(body.into())
                .send()
                .await
            {
                Ok(_) => {
                    known.lock().expect("known").insert(key, hash);
                    Ok(())
                }
                Err(e) => Err(format!("PUT {key}: {e:?}")),
            }
        } else {
            let pick = {
                let known = known.lock().expect("known");
                let i = rng.gen_range(0..known.len());
                known.iter().nth(i).map(|(k, h)| (k.clone(), h.clone()))
            };
            let Some((key, _)) = pick else { continue };
            match client.get_object().bucket(BUCKET).key(&key).send().await {
                Ok(out) => match out.body.collect().await {
                    Ok(bytes) => {
                        let got = sha256_hex(&bytes.into_bytes());
                        // The key may have been overwritten by this very client since the
                        // pick; compare with what is known now.
                        let want = known.lock().expect("known").get(&key).cloned();
                        if want.as_deref() == Some(got.as_str()) {
                            Ok(())
                        } else {
                            Err(format!("GET {key}: wrong bytes"))
                        }
                    }
                    Err(e) => Err(format!("GET {key} body: {e}")),
                },
                Err(e) => Err(format!("GET {key}: {e:?}")),
            }
        };
        stats.requests.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = result {
            stats.failures.lock().expect("failures").push(e);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_drained_under_traffic_and_a_kill_then_removed_loses_nothing() {
    let Some(s3_endpoint) = test_server_var("HANSA_TEST_S3_ENDPOINT") else {
        return;
    };
    let objects: usize = std::env::var("HANSA_DRAIN_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = TestDir::new("drain-e2e");
    let setup = Setup {
        addr: free_port(),
        admin: free_port(),
        moto_prefix: format!("drain-{}", uuid_like()),
        log: dir.path().join("gateway.log"),
        config: dir.path().join("hansa.toml"),
        dir,
    };
    setup.write_config(true);
    let mut gateway = setup.start();
    let endpoint = format!("http://{}", setup.addr);
    let client = client_at(&endpoint);
    create_bucket(&client, BUCKET).await;

    // The objects, 16 uploads at a time.
    let known: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut rng = StdRng::seed_from_u64(42);
    let sizes: Vec<usize> = (0..objects).map(|i| object_size(&mut rng, i)).collect();
    let total_bytes: usize = sizes.iter().sum();
    let started = Instant::now();
    let uploads = futures::stream::iter(sizes.iter().enumerate().map(|(i, &size)| {
        let client = client.clone();
        let known = known.clone();
        async move {
            let key = format!("obj/{i:05}");
            let body = random_bytes(size);
            let hash = sha256_hex(&body);
            client
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            known.lock().expect("known").insert(key, hash);
        }
    }));
    use futures::StreamExt;
    uploads.buffer_unordered(16).collect::<Vec<()>>().await;
    eprintln!(
        "wrote {objects} objects, {total_bytes} bytes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The drain, with traffic beside it.
    let http = reqwest::Client::new();
    let stats = Arc::new(Traffic::default());
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let traffic_task = tokio::spawn(traffic(
        endpoint.clone(),
        known.clone(),
        stats.clone(),
        stop.clone(),
        paused.clone(),
    ));
    let drain_started = Instant::now();
    let job = admin_json(
        &http,
        &setup,
        reqwest::Method::POST,
        "/jobs",
        Some(serde_json::json!({"kind": "drain", "backend": "moto"})),
    )
    .await;
    let id = job["id"].as_str().expect("job id").to_string();

    // Kill -9 once a third of the objects are done.
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let job = admin_json(
            &http,
            &setup,
            reqwest::Method::GET,
            &format!("/jobs/{id}"),
            None,
        )
        .await;
        let done = job["progress"]["objects_done"].as_u64().unwrap_or(0);
        if done * 3 >= objects as u64 || job["state"] != "running" {
            eprintln!("killing the gateway with the drain at {done} objects: {job}");
            break;
        }
        assert!(Instant::now() < deadline, "drain made no progress: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    paused.store(true, Ordering::SeqCst);
    // Let requests in flight finish: the client must not see the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.kill_9();
    let mut gateway = setup.start();
    paused.store(false, Ordering::SeqCst);

    let finished = loop {
        let job = admin_json(
            &http,
            &setup,
            reqwest::Method::GET,
            &format!("/jobs/{id}"),
            None,
        )
        .await;
        if job["state"] != "running" {
            break job;
        }
        assert!(Instant::now() < deadline, "drain did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drain_time = drain_started.elapsed();
    stop.store(true, Ordering::SeqCst);
    traffic_task.await.expect("traffic");
    assert_eq!(finished["state"], "done", "drain ended: {finished}");
    let failures = stats.failures.lock().expect("failures").clone();
    let requests = stats.requests.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} of {requests} client requests failed during the drain: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    // Remove the backend from the configuration and start again.
    gateway.terminate(Duration::from_secs(20));
    setup.write_config(false);
    let gateway = setup.start();
    let known = known.lock().expect("known").clone();
    let check = futures::stream::iter(known.iter().map(|(key, hash)| {
        let client = client.clone();
        async move {
            let out = client
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {key} after removing the backend: {e:?}"));
            let bytes = out.body.collect().await.expect("body").into_bytes();
            assert_eq!(
                &sha256_hex(&bytes),
                hash,
                "{key} after removing the backend"
            );
        }
    }));
    check.buffer_unordered(16).collect::<Vec<()>>().await;

    // The drained backend holds nothing of Hansa's.
    let moto = client_with(
        &s3_endpoint,
        &test_server_var("HANSA_TEST_S3_ACCESS_KEY").expect("moto key"),
        &test_server_var("HANSA_TEST_S3_SECRET_KEY").expect("moto secret"),
    );
    let left = list_names(
        &moto,
        &test_server_var("HANSA_TEST_S3_BUCKET").expect("moto bucket"),
        &format!("{}/", setup.moto_prefix),
    )
    .await;
    assert!(
        left.is_empty(),
        "{} names left on the drained backend, e.g. {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    drop(gateway);

    let progress = &finished["progress"];
    eprintln!(
        "DRAIN FIGURES: objects {objects} ({total_bytes} bytes) + traffic; job: objects_done {} \
         bytes_moved {} counts {}; time {:.1} s (one kill -9 and restart included); \
         {:.1} MB/s moved; client requests during the drain {requests}, failed {}",
        progress["objects_done"],
        progress["bytes_moved"],
        progress["counts"],
        drain_time.as_secs_f64(),
        progress["bytes_moved"].as_f64().unwrap_or(0.0) / drain_time.as_secs_f64() / 1e6,
        failures.len()
    );
}

async fn list_names(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list the drained backend");
        names.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    names
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
