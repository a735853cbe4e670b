//! kill -9 at arbitrary moments loses no acknowledged write.
//!
//! The gateway runs as a separate process. Writers PUT objects concurrently and remember what
//! was acknowledged; the process is killed with SIGKILL mid-traffic, restarted on the same data
//! directory, and every acknowledged object must read back with exactly its bytes (or with the
//! bytes of a later write to the same key that was in flight at the kill). A multipart writer
//! runs alongside: every acknowledged part of an interrupted upload must still be listed with its
//! ETag after the restart, and the upload must complete with exactly those parts.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hansa_conformance::{
    client_at, cloud_backends_toml, hansa_binary, process_config_with, random_bytes, sha256_hex,
    test_tmp_root,
};

const WRITERS: usize = 6;
const KILLS: usize = 5;

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The gateway process; killed when dropped, so a failing assertion leaves no process behind.
struct Gateway(Child);

impl Gateway {
    fn kill_9(&mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix
        let _ = self.0.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn spawn(config: &Path, log: &Path, addr: SocketAddr) -> Gateway {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let child = Command::new(hansa_binary())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start hansa");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() >= deadline {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("gateway did not start listening");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Gateway(child)
}

/// An upload the kill interrupted: the parts acknowledged so far (number, ETag, bytes).
#[derive(Default)]
struct OpenUpload {
    key: String,
    upload_id: String,
    parts: Vec<(i32, String, Vec<u8>)>,
    completing: bool,
}

const MP_PART: usize = 5 << 20;

fn completed_parts(parts: &[(i32, String, Vec<u8>)]) -> Vec<aws_sdk_s3::types::CompletedPart> {
    parts
        .iter()
        .map(|(n, e, _)| {
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(*n)
                .e_tag(e)
                .build()
        })
        .collect()
}

/// Multipart uploads until the gateway dies; leaves the interrupted one in `open`.
async fn multipart_writer(
    client: aws_sdk_s3::Client,
    state: Arc<Mutex<HashMap<String, KeyState>>>,
    open: Arc<Mutex<Option<OpenUpload>>>,
    round: usize,
) {
    for i in 0.. {
        let key = format!("mp/k{}", (i + round) % 3);
        let Ok(created) = client
            .create_multipart_upload()
            .bucket("crash")
            .key(&key)
            .send()
            .await
        else {
            return;
        };
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        *open.lock().unwrap() = Some(OpenUpload {
            key: key.clone(),
            upload_id: upload_id.clone(),
            ..Default::default()
        });
        for (number, size) in [(1, MP_PART), (2, 1000 + i * 4099 % 100_000)] {
            let body = random_bytes(size);
            let Ok(part) = client
                .upload_part()
                .bucket("crash")
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body.clone().into())
                .send()
                .await
            else {
                return;
            };
            let etag = part.e_tag().unwrap_or_default().to_string();
            if let Some(o) = open.lock().unwrap().as_mut() {
                o.parts.push((number, etag, body));
            }
        }
        let (parts, content) = {
            let mut guard = open.lock().unwrap();
            let Some(o) = guard.as_mut() else { return };
            o.completing = true;
            let parts = completed_parts(&o.parts);
            let content: Vec<u8> = o.parts.iter().flat_map(|(_, _, b)| b.clone()).collect();
            (parts, content)
        };
        let hash = sha256_hex(&content);
        state
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .in_flight = Some(hash.clone());
        let done = client
            .complete_multipart_upload()
            .bucket("crash")
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if done.is_err() {
            return;
        }
        *open.lock().unwrap() = None;
        let mut s = state.lock().unwrap();
        let entry = s.entry(key).or_default();
        entry.acked = Some(hash);
        entry.in_flight = None;
    }
}

/// After a restart: the interrupted upload still holds every acknowledged part, and completes.
/// Returns how many acknowledged parts were checked.
async fn verify_open_upload(
    client: &aws_sdk_s3::Client,
    state: &Arc<Mutex<HashMap<String, KeyState>>>,
    open: &Arc<Mutex<Option<OpenUpload>>>,
) -> usize {
    let Some(o) = open.lock().unwrap().take() else {
        return 0;
    };
    let listed = client
        .list_parts()
        .bucket("crash")
        .key(&o.key)
        .upload_id(&o.upload_id)
        .send()
        .await;
    let listed = match listed {
        Ok(l) => l,
        // A completion in flight at the kill may have landed (recovery rolled it forward).
        Err(_) if o.completing => return 0,
        Err(e) => panic!(
            "upload {} with acknowledged parts lost after kill -9: {e:?}",
            o.upload_id
        ),
    };
    for (number, etag, _) in &o.parts {
        let found = listed
            .parts()
            .iter()
            .find(|p| p.part_number() == Some(*number));
        assert_eq!(
            found.and_then(|p| p.e_tag()),
            Some(etag.as_str()),
            "acknowledged part {number} of {} lost after kill -9",
            o.upload_id
        );
    }
    if o.parts.is_empty() {
        let _ = client
            .abort_multipart_upload()
            .bucket("crash")
            .key(&o.key)
            .upload_id(&o.upload_id)
            .send()
            .await;
        return 0;
    }
    let parts = completed_parts(&o.parts);
    client
        .complete_multipart_upload()
        .bucket("crash")
        .key(&o.key)
        .upload_id(&o.upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete the interrupted upload after the restart");
    let content: Vec<u8> = o.parts.iter().flat_map(|(_, _, b)| b.clone()).collect();
    let got = client
        .get_object()
        .bucket("crash")
        .key(&o.key)
        .send()
        .await
        .expect("get completed upload")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert!(
        got == content,
        "{}: completed after the restart with other bytes",
        o.key
    );
    let mut s = state.lock().unwrap();
    let e = s.entry(o.key.clone()).or_default();
    e.acked = Some(sha256_hex(&content));
    e.in_flight = None;
    o.parts.len()
}

/// Per key: the last acknowledged content hash, and the hash of a write in flight.
#[derive(Default, Clone)]
struct KeyState {
    acked: Option<String>,
    in_flight: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_write() {
    kill_rounds(String::new(), KILLS).await;
}

/// The same with every write on three replicas: a local disk, moto (s3, native multipart)
/// and Azurite (azure, per-upload staging blobs), write quorum 3. Kills land during native
/// part uploads and completions too; recovery must find the completed ones by the version
/// their creation-time stamp carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_with_cloud_replicas_loses_no_acknowledged_write() {
    let run = format!("crash/{:016x}", rand::random::<u64>());
    let Some(backends) = cloud_backends_toml(&format!("{run}/moto"), &format!("{run}/azurite"))
    else {
        return;
    };
    let extra = format!(
        r#"{backends}
[policy.default]
backends = ["disk-a", "moto", "azurite"]
replicas = 3
write_quorum = 3
"#
    );
    kill_rounds(extra, 3).await;
}

/// `kills` rounds of traffic, kill -9, restart and verification, with `extra_toml` added to
/// the gateway's configuration.
async fn kill_rounds(extra_toml: String, kills: usize) {
    let dir = tempfile::Builder::new()
        .prefix("crash-")
        .tempdir_in(test_tmp_root())
        .expect("tempdir");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    std::fs::write(&config, process_config_with(dir.path(), addr, extra_toml)).expect("config");
    let log = dir.path().join("hansa.log");
    let endpoint = format!("http://{addr}");
    let client = client_at(&endpoint);

    let mut child = spawn(&config, &log, addr);
    client
        .create_bucket()
        .bucket("crash")
        .send()
        .await
        .expect("create bucket");
    let state: Arc<Mutex<HashMap<String, KeyState>>> = Arc::default();
    let open: Arc<Mutex<Option<OpenUpload>>> = Arc::default();

    let mut verified = 0;
    let mut parts_verified = 0;
    for round in 0..kills {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = client.clone();
            let state = state.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    // Few keys per writer, so keys are overwritten across rounds.
                    let key = format!("w{w}/k{}", (i + round) % 7);
                    let size = if i % 5 == 4 {
                        6 << 20
                    } else {
                        (i * 7919) % (200 << 10)
                    };
                    let body = random_bytes(size);
                    let hash = sha256_hex(&body);
                    state
                        .lock()
                        .unwrap()
                        .entry(key.clone())
                        .or_default()
                        .in_flight = Some(hash.clone());
                    let sent = client
                        .put_object()
                        .bucket("crash")
                        .key(&key)
                        .body(body.into())
                        .send()
                        .await;
                    let mut s = state.lock().unwrap();
                    let entry = s.entry(key).or_default();
                    match sent {
                        Ok(_) => {
                            entry.acked = Some(hash);
                            entry.in_flight = None;
                        }
                        // The gateway died: this write may or may not have landed.
                        Err(_) => return,
                    }
                }
            }));
        }
        writers.push(tokio::spawn(multipart_writer(
            client.clone(),
            state.clone(),
            open.clone(),
            round,
        )));
        tokio::time::sleep(Duration::from_millis(700 + 350 * round as u64)).await;
        child.kill_9();
        for w in writers {
            let _ = w.await;
        }
        child = spawn(&config, &log, addr);
        parts_verified += verify_open_upload(&client, &state, &open).await;
        verified += verify(&client, &state).await;
    }
    eprintln!("verified {verified} acknowledged objects and {parts_verified} acknowledged parts of interrupted uploads");
    assert!(
        verified > 0,
        "no write was acknowledged before a kill: the test proved nothing"
    );
    drop(child);
}

/// Checks every acknowledged object; returns how many there were.
async fn verify(
    client: &aws_sdk_s3::Client,
    state: &Arc<Mutex<HashMap<String, KeyState>>>,
) -> usize {
    let snapshot: Vec<(String, KeyState)> = state
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut acked = 0;
    for (key, s) in snapshot {
        let Some(expected) = &s.acked else { continue };
        acked += 1;
        let got = client.get_object().bucket("crash").key(&key).send().await;
        let got = match got {
            Ok(o) => o.body.collect().await.expect("body").into_bytes(),
            Err(e) => panic!("acknowledged object {key} lost after kill -9: {e:?}"),
        };
        let hash = sha256_hex(&got);
        assert!(
            &hash == expected || s.in_flight.as_ref() == Some(&hash),
            "{key}: content after kill -9 is neither the acknowledged write nor the one in flight"
        );
        let mut st = state.lock().unwrap();
        // Whatever is there now is the acknowledged state from here on.
        let e = st.get_mut(&key).expect("key");
        e.acked = Some(hash);
        e.in_flight = None;
    }
    acked
}
