//! kill -9 at arbitrary moments loses no acknowledged write, leaves no key unreadable, and
//! leaves no staged copy behind once recovery and a collection pass have run.
//!
//! The gateway runs as a separate process. Writers PUT objects concurrently (mostly small
//! bodies, some of 1–5 MiB, and some of 6–12 MiB that span several of the gateway's buffers; a
//! few keys each, so keys are overwritten all the time) and remember what was acknowledged; the
//! process is killed with SIGKILL mid-traffic and restarted on the same data directory. Then
//! every acknowledged object must read back with exactly its bytes (or with the bytes of a later
//! write to the same key that was in flight at the kill), and every key the index lists must
//! read back (200, never 500/503) with the bytes of one of the writes sent to it. A multipart
//! writer runs alongside: every acknowledged part of an interrupted upload must still be listed
//! with its ETag after the restart, and the upload must complete with exactly those parts.
//!
//! A write stages its body on every target, commits its index entry, publishes the staged
//! copies, answers, and then settles (its intent goes). The rounds rotate through fault plans
//! that widen those windows so that kills land in each of them: slow staging on a disk (kills
//! while bodies are staged, before the commit: recovery discards them), slow publishes on one
//! or both disks (kills after the commit, before or during the publishes: recovery publishes
//! what is still staged), and no faults (kills anywhere, also after the publishes but before
//! the intent is settled). The gateway's start-up log says what recovery found; the test counts
//! it and requires each window to have been hit.
//!
//! At the end, after the open uploads are completed or aborted, the gateway is started once
//! more with `staging_max_age_secs = 0`: recovery and the collection pass must leave no file
//! under `.hansa/staging/`, `.hansa/tmp/` or `.hansa/mpu/` on either disk (and, in the cloud
//! variant, no multipart upload and no staged object under the test's prefix on moto), and
//! everything must still read back.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hansa_backends::physical_name;
use hansa_conformance::process::{
    field, files_under, free_port, log_len, log_since, spawn, write_config, TestDir,
};
use hansa_conformance::{
    client_at, cloud_backends_toml, list_all_keys, random_bytes, s3_err, sha256_hex,
    test_server_var,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 6;
const KEYS_PER_WRITER: usize = 3;
/// Kill rounds on two local disks.
const KILLS: usize = 50;
/// Kill rounds on a local disk, moto and Azurite.
const CLOUD_KILLS: usize = 8;
const BUCKET: &str = "crash";

/// The fault plans the rounds rotate through: a name and extra lines per local backend. Every
/// plan that has faults has one on `disk-a`, the disk the cloud variant uses too.
const PLANS: [(&str, &[(&str, &str)]); 4] = [
    ("no faults", &[]),
    (
        "disk-a stages slowly",
        &[("disk-a", "faults = { writes = { slow_ms = 40 } }")],
    ),
    (
        "disk-a publishes slowly",
        &[("disk-a", "faults = { publishes = { slow_ms = 30 } }")],
    ),
    (
        "both disks publish slowly",
        &[
            ("disk-a", "faults = { publishes = { slow_ms = 30 } }"),
            ("disk-b", "faults = { publishes = { slow_ms = 30 } }"),
        ],
    ),
];

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

/// Per key: the last acknowledged content hash, the hash of a write in flight, how many
/// writes were acknowledged since the last verification, and every content sent to it.
#[derive(Default, Clone)]
struct KeyState {
    acked: Option<String>,
    in_flight: Option<String>,
    new_acks: usize,
    written: HashSet<String>,
}

type State = Arc<Mutex<HashMap<String, KeyState>>>;

/// Notes that a write of `hash` to `key` is about to be sent.
fn sending(state: &State, key: &str, hash: &str) {
    state
        .lock()
        .unwrap()
        .entry(key.to_string())
        .or_default()
        .sending(hash);
}

impl KeyState {
    fn sending(&mut self, hash: &str) {
        self.written.insert(hash.to_string());
        self.in_flight = Some(hash.to_string());
    }

    fn acknowledged(&mut self, hash: String) {
        self.acked = Some(hash);
        self.in_flight = None;
        self.new_acks += 1;
    }
}

/// What the writers did, over the whole run.
#[derive(Default)]
struct Traffic {
    acknowledged: AtomicUsize,
    /// Writes the gateway answered with an error while it was up (not cut by a kill).
    refused: Mutex<Vec<String>>,
}

impl Traffic {
    fn refused(&self, what: String) {
        self.refused.lock().unwrap().push(what);
    }
}

/// Records a failed request: an answer from the gateway is a refusal, anything else (the
/// connection died with the process) is the kill.
fn note_failure<E>(
    traffic: &Traffic,
    what: &str,
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    if err.raw_response().is_some() {
        let e = s3_err(err);
        traffic.refused(format!("{what}: {} {:?} {:?}", e.status, e.code, e.message));
    }
}

/// Body sizes: mostly small, some of 1–5 MiB, every sixth of 6–12 MiB (several buffers).
fn body_size(rng: &mut StdRng, i: usize) -> usize {
    match i % 6 {
        5 => (6 << 20) + rng.gen_range(0..(6 << 20)),
        2 => rng.gen_range((1 << 20)..(5 << 20)),
        // Never empty: every body written is told apart by its bytes.
        _ => rng.gen_range(16..(200 << 10)),
    }
}

/// PUTs until the gateway dies (or refuses a write).
async fn writer(
    client: aws_sdk_s3::Client,
    state: State,
    traffic: Arc<Traffic>,
    w: usize,
    round: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (((round * WRITERS + w) as u64) << 32));
    for i in 0.. {
        // Few keys per writer, so keys are overwritten within and across rounds.
        let key = format!("w{w}/k{}", (i + round) % KEYS_PER_WRITER);
        let body = random_bytes(body_size(&mut rng, i));
        let hash = sha256_hex(&body);
        sending(&state, &key, &hash);
        let sent = client
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(body.into())
            .send()
            .await;
        match sent {
            Ok(_) => {
                state
                    .lock()
                    .unwrap()
                    .get_mut(&key)
                    .expect("key")
                    .acknowledged(hash);
                traffic.acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            // The gateway died (or refused): this write may or may not have landed.
            Err(e) => {
                note_failure(&traffic, &format!("PUT {key}"), &e);
                return;
            }
        }
    }
}

/// Multipart uploads until the gateway dies; leaves the interrupted one in `open`.
async fn multipart_writer(
    client: aws_sdk_s3::Client,
    state: State,
    traffic: Arc<Traffic>,
    open: Arc<Mutex<Option<OpenUpload>>>,
    round: usize,
) {
    for i in 0.. {
        let key = format!("mp/k{}", (i + round) % 3);
        let created = match client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
        {
            Ok(created) => created,
            Err(e) => {
                note_failure(&traffic, &format!("CreateMultipartUpload {key}"), &e);
                return;
            }
        };
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        *open.lock().unwrap() = Some(OpenUpload {
            key: key.clone(),
            upload_id: upload_id.clone(),
            ..Default::default()
        });
        for (number, size) in [(1, MP_PART), (2, 1000 + i * 4099 % 100_000)] {
            let body = random_bytes(size);
            let part = match client
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body.clone().into())
                .send()
                .await
            {
                Ok(part) => part,
                Err(e) => {
                    note_failure(&traffic, &format!("UploadPart {key}"), &e);
                    return;
                }
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
        sending(&state, &key, &hash);
        let done = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(&upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = done {
            note_failure(&traffic, &format!("CompleteMultipartUpload {key}"), &e);
            return;
        }
        *open.lock().unwrap() = None;
        state
            .lock()
            .unwrap()
            .get_mut(&key)
            .expect("key")
            .acknowledged(hash);
        traffic.acknowledged.fetch_add(1, Ordering::SeqCst);
    }
}

/// After a restart: the interrupted upload still holds every acknowledged part, and completes.
/// Returns how many acknowledged parts were checked.
async fn verify_open_upload(
    client: &aws_sdk_s3::Client,
    state: &State,
    traffic: &Traffic,
    open: &Arc<Mutex<Option<OpenUpload>>>,
) -> usize {
    let Some(o) = open.lock().unwrap().take() else {
        return 0;
    };
    let listed = client
        .list_parts()
        .bucket(BUCKET)
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
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(&o.key)
            .upload_id(&o.upload_id)
            .send()
            .await
            .expect("abort the interrupted upload after the restart");
        return 0;
    }
    let parts = completed_parts(&o.parts);
    let content: Vec<u8> = o.parts.iter().flat_map(|(_, _, b)| b.clone()).collect();
    let hash = sha256_hex(&content);
    sending(state, &o.key, &hash);
    client
        .complete_multipart_upload()
        .bucket(BUCKET)
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
    let got = client
        .get_object()
        .bucket(BUCKET)
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
    state
        .lock()
        .unwrap()
        .get_mut(&o.key)
        .expect("key")
        .acknowledged(hash);
    traffic.acknowledged.fetch_add(1, Ordering::SeqCst);
    o.parts.len()
}

/// Reads after the restarts, over the whole run.
#[derive(Default)]
struct Reads {
    /// Acknowledged writes whose key read back with them (or a later write in flight).
    read_back: usize,
    /// Acknowledged writes overwritten by a later acknowledged write before the kill.
    overwritten: usize,
    /// Reads of objects acknowledged before an earlier restart (checked again).
    rereads: usize,
    /// Keys the index listed, each read in full.
    listed: usize,
    parts: usize,
}

/// Reads every key the index lists and every acknowledged one: each must read back (200) with
/// bytes written to it, an acknowledged one with its acknowledged bytes or those of the write
/// in flight at the kill. Returns what is wrong.
async fn verify(client: &aws_sdk_s3::Client, state: &State, reads: &mut Reads) -> Vec<String> {
    let snapshot: HashMap<String, KeyState> = state.lock().unwrap().clone();
    let listed: HashSet<String> = list_all_keys(client, BUCKET).await.into_iter().collect();
    let keys: BTreeSet<&String> = listed
        .iter()
        .chain(
            snapshot
                .iter()
                .filter(|(_, s)| s.acked.is_some())
                .map(|(k, _)| k),
        )
        .collect();
    let mut problems = Vec::new();
    for key in keys {
        let s = snapshot.get(key).cloned().unwrap_or_default();
        let is_listed = listed.contains(key);
        reads.listed += usize::from(is_listed);
        let got = client.get_object().bucket(BUCKET).key(key).send().await;
        let got = match got {
            Ok(o) => o.body.collect().await.map(|b| b.into_bytes()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if is_listed {
                    problems.push(format!(
                        "{key}: listed but unreadable (status {status:?}): {e:?}"
                    ));
                } else if s.acked.is_some() {
                    problems.push(format!(
                        "{key}: acknowledged write lost (not listed, GET status {status:?})"
                    ));
                }
                let mut st = state.lock().unwrap();
                if let Some(e) = st.get_mut(key) {
                    e.in_flight = None;
                }
                continue;
            }
        };
        let got = match got {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{key}: body failed mid-read: {e:?}"));
                continue;
            }
        };
        let hash = sha256_hex(&got);
        if !s.written.contains(&hash) {
            problems.push(format!(
                "{key}: reads back {} bytes that were never written to it",
                got.len()
            ));
        }
        if let Some(acked) = &s.acked {
            if !is_listed {
                problems.push(format!("{key}: readable but not listed"));
            }
            if &hash != acked && s.in_flight.as_ref() != Some(&hash) {
                problems.push(format!(
                    "{key}: content after kill -9 is neither the acknowledged write nor the one \
                     in flight ({} bytes)",
                    got.len()
                ));
            }
            if s.new_acks > 0 {
                reads.read_back += 1;
                reads.overwritten += s.new_acks - 1;
            } else {
                reads.rereads += 1;
            }
        }
        // Whatever is there now is the acknowledged state from here on.
        let mut st = state.lock().unwrap();
        let e = st.entry(key.clone()).or_default();
        e.acked = Some(hash);
        e.in_flight = None;
        e.new_acks = 0;
    }
    problems
}

/// A PUT in flight at a kill, as the local disks showed it right after the kill: on how many of
/// them its bytes were already published at the key's name.
struct InFlight {
    key: String,
    hash: String,
    published_on: usize,
}

/// The PUTs in flight now (the gateway just died), with where they were published.
fn in_flight_at_kill(dir: &Path, disks: &[&str], state: &State) -> Vec<InFlight> {
    let snapshot = state.lock().unwrap();
    snapshot
        .iter()
        .filter(|(key, _)| !key.starts_with("mp/"))
        .filter_map(|(key, s)| {
            let hash = s.in_flight.clone()?;
            let name = physical_name(BUCKET, key);
            let published_on = disks
                .iter()
                .filter(|d| {
                    std::fs::read(dir.join(d).join(name.as_str()))
                        .is_ok_and(|bytes| sha256_hex(&bytes) == hash)
                })
                .count();
            Some(InFlight {
                key: key.clone(),
                hash,
                published_on,
            })
        })
        .collect()
}

/// Where the kills caught the PUTs in flight, told by the disks at the kill and by what the key
/// reads after the restart (the write rolled forward or back).
#[derive(Default, Debug)]
struct Phases {
    /// Not committed (body still arriving or being staged): rolled back.
    before_commit: usize,
    /// Committed, published nowhere yet: rolled forward by recovery.
    before_publish: usize,
    /// Published on some disks, not all: rolled forward.
    during_publish: usize,
    /// Published everywhere, the answer not yet received: rolled forward.
    after_publish: usize,
    /// Files under `.hansa/staging/` at the kills that were not there when the round began
    /// (both disks, all rounds).
    staged_files: usize,
}

impl Phases {
    /// Classifies the writes in flight at a kill once the restarted gateway has been read;
    /// returns the writes that contradict the protocol (published, yet rolled back).
    fn classify(&mut self, at_kill: &[InFlight], disks: usize, state: &State) -> Vec<String> {
        let mut problems = Vec::new();
        let st = state.lock().unwrap();
        for f in at_kill {
            let now = st.get(&f.key).and_then(|s| s.acked.as_ref());
            let rolled_forward = now == Some(&f.hash);
            match (f.published_on, rolled_forward) {
                (0, false) => self.before_commit += 1,
                (0, true) => self.before_publish += 1,
                (n, true) if n == disks => self.after_publish += 1,
                (_, true) => self.during_publish += 1,
                (n, false) => problems.push(format!(
                    "{}: the write in flight was published on {n} disk(s) at the kill (so \
                     committed), yet the key reads otherwise after the restart",
                    f.key
                )),
            }
        }
        problems
    }
}

/// What the gateway's start-up log says recovery did.
#[derive(Default, Debug)]
struct Recovery {
    /// Writes that had not committed: their staged copies were discarded.
    discarded: usize,
    /// Intents finished (uncommitted ones discarded, committed ones settled).
    finished: usize,
    /// Copies the index still had as staged, published (again: publishing is idempotent, and
    /// what a write published is recorded without a flush) at start-up.
    published_copies: usize,
    /// Staged copies no intent held, removed by the collection pass.
    collected: usize,
    /// Warnings and errors at start-up (fault-injection notices left out).
    warnings: Vec<String>,
}

impl Recovery {
    /// Committed writes settled at start-up.
    fn committed(&self) -> usize {
        self.finished.saturating_sub(self.discarded)
    }

    fn add(&mut self, other: &Recovery) {
        self.discarded += other.discarded;
        self.finished += other.finished;
        self.published_copies += other.published_copies;
        self.collected += other.collected;
    }
}

/// What recovery did, from the log a gateway wrote while starting (up to its first request).
fn recovery_in(text: &str) -> Recovery {
    let mut r = Recovery::default();
    for line in text.lines() {
        if line.contains("discarded the copies of a write that never committed") {
            r.discarded += 1;
        } else if line.contains("published a copy left staged") {
            r.published_copies += 1;
        } else if line.contains("finished writes left in flight by the previous run") {
            r.finished += field(line, "finished")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if line.contains("removed staged copies of writes that never committed") {
            r.collected += field(line, "collected")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if (line.contains(" WARN ") || line.contains(" ERROR "))
            && !line.contains("fault injection enabled")
        {
            r.warnings.push(line.to_string());
        }
    }
    r
}

/// The files under `.hansa/staging/` of both disks.
fn staged_files(dir: &Path) -> HashSet<PathBuf> {
    ["a", "b"]
        .iter()
        .flat_map(|disk| files_under(&dir.join(disk).join(".hansa").join("staging")))
        .collect()
}

/// Aborts every upload the index still lists (those whose creation a kill cut off before the
/// client got the id; the interrupted ones the test knows were completed after each restart);
/// returns how many there were.
async fn abort_open_uploads(client: &aws_sdk_s3::Client) -> usize {
    let listed = client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    assert_ne!(listed.is_truncated(), Some(true), "too many open uploads");
    for u in listed.uploads() {
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(u.key().unwrap_or_default())
            .upload_id(u.upload_id().unwrap_or_default())
            .send()
            .await
            .expect("abort a leftover upload");
    }
    let left = client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    assert!(left.uploads().is_empty(), "uploads left after aborting");
    listed.uploads().len()
}

/// moto, read directly: where the cloud variant's copies are.
struct Moto {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl Moto {
    fn from_env(prefix: String) -> Option<Moto> {
        let creds = aws_credential_types::Credentials::new(
            test_server_var("HANSA_TEST_S3_ACCESS_KEY")?,
            test_server_var("HANSA_TEST_S3_SECRET_KEY")?,
            None,
            None,
            "moto",
        );
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .endpoint_url(test_server_var("HANSA_TEST_S3_ENDPOINT")?)
                .force_path_style(true)
                .build(),
        );
        Some(Moto {
            client,
            bucket: test_server_var("HANSA_TEST_S3_BUCKET")?,
            prefix,
        })
    }

    /// Multipart uploads open under the prefix (key, upload id).
    async fn open_uploads(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(format!("{}/", self.prefix))
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await
                .expect("list uploads on moto");
            out.extend(page.uploads().iter().map(|u| {
                (
                    u.key().unwrap_or_default().to_string(),
                    u.upload_id().unwrap_or_default().to_string(),
                )
            }));
            if page.is_truncated() != Some(true) {
                return out;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
        }
    }

    /// How many objects are under the prefix (first page): the copies the test wrote.
    async fn objects(&self) -> usize {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}/", self.prefix))
            .send()
            .await
            .expect("list moto");
        listed.contents().len()
    }

    /// Objects under `<prefix>/.hansa/staging/`.
    async fn staged_objects(&self) -> Vec<String> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}/.hansa/staging/", self.prefix))
            .send()
            .await
            .expect("list moto");
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_write() {
    kill_rounds(String::new(), KILLS, &["a", "b"], None).await;
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
    let Some(moto) = Moto::from_env(format!("{run}/moto")) else {
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
    kill_rounds(extra, CLOUD_KILLS, &["a"], Some(moto)).await;
}

/// `kills` rounds of traffic, kill -9, restart and verification, with `extra_toml` added to
/// the gateway's configuration (whose policy writes to the local disks `disks`); then the final
/// start with `staging_max_age_secs = 0` and the check for leftovers (on moto too, when given).
/// With enough rounds, every phase of a write must have been hit by some kill.
async fn kill_rounds(extra_toml: String, kills: usize, disks: &[&str], moto: Option<Moto>) {
    let started = Instant::now();
    let seed = std::env::var("HANSA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash test seed {seed} (HANSA_CRASH_SEED={seed} repeats its choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TestDir::new("crash-");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    let log = dir.path().join("hansa.log");
    let client = client_at(&format!("http://{addr}"));

    write_config(&config, dir.path(), addr, &extra_toml, PLANS[0].1, "");
    let mut child = spawn(&config, &log, addr);
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let state: State = Arc::default();
    let traffic = Arc::new(Traffic::default());
    let open: Arc<Mutex<Option<OpenUpload>>> = Arc::default();
    let mut reads = Reads::default();
    let mut recovered = Recovery::default();
    let mut phases = Phases::default();
    let mut staged_before = HashSet::new();
    let mut moto_uploads_at_kills = 0;
    let mut warnings = Vec::new();

    for round in 0..kills {
        let (plan_name, _) = PLANS[round % PLANS.len()];
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            writers.push(tokio::spawn(writer(
                client.clone(),
                state.clone(),
                traffic.clone(),
                w,
                round,
                seed,
            )));
        }
        writers.push(tokio::spawn(multipart_writer(
            client.clone(),
            state.clone(),
            traffic.clone(),
            open.clone(),
            round,
        )));
        // The kill lands at a random moment once the writers are in their stride.
        let before = traffic.acknowledged.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        while traffic.acknowledged.load(Ordering::SeqCst) < before + WRITERS {
            assert!(
                Instant::now() < deadline,
                "round {round} ({plan_name}): no progress within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..800))).await;
        child.kill_9();
        for w in writers {
            let _ = w.await;
        }
        let at_kill = in_flight_at_kill(dir.path(), disks, &state);
        phases.staged_files += staged_files(dir.path()).difference(&staged_before).count();
        if let Some(moto) = &moto {
            moto_uploads_at_kills += moto.open_uploads().await.len();
        }

        let next = PLANS[(round + 1) % PLANS.len()].1;
        write_config(&config, dir.path(), addr, &extra_toml, next, "");
        let from = log_len(&log);
        child = spawn(&config, &log, addr);
        let found = recovery_in(&log_since(&log, from));
        recovered.add(&found);
        warnings.extend(found.warnings.iter().cloned());

        reads.parts += verify_open_upload(&client, &state, &traffic, &open).await;
        let mut problems = verify(&client, &state, &mut reads).await;
        problems.extend(phases.classify(&at_kill, disks.len(), &state));
        assert!(
            problems.is_empty(),
            "round {round} (seed {seed}, killed under \"{plan_name}\"): after the restart\n  {}\n\
             recovery: {found:?}",
            problems.join("\n  ")
        );
        staged_before = staged_files(dir.path());
    }

    // The final start: uploads the kills left open are aborted, then recovery and a collection
    // pass that spares nothing young must leave no staged copy behind.
    let aborted = abort_open_uploads(&client).await;
    child.kill_9();
    write_config(
        &config,
        dir.path(),
        addr,
        &extra_toml,
        &[],
        "staging_max_age_secs = 0",
    );
    let from = log_len(&log);
    let child = spawn(&config, &log, addr);
    let last = recovery_in(&log_since(&log, from));
    recovered.add(&last);
    warnings.extend(last.warnings.iter().cloned());
    let rereads_before = reads.rereads;
    let problems = verify(&client, &state, &mut reads).await;
    assert!(
        problems.is_empty(),
        "after the final start (collection of everything no write holds, seed {seed}):\n  {}",
        problems.join("\n  ")
    );
    drop(child);

    let acknowledged = traffic.acknowledged.load(Ordering::SeqCst);
    let verified = reads.read_back + reads.overwritten;
    let refused = traffic.refused.lock().unwrap().clone();
    eprintln!(
        "kills: {kills}, acknowledged: {acknowledged}, verified: {verified} (read back: {}, \
         overwritten by a later acknowledged write before the kill: {}), lost: {}",
        reads.read_back,
        reads.overwritten,
        acknowledged - verified.min(acknowledged)
    );
    eprintln!(
        "reads after restarts: {} listed keys, {} re-reads of earlier writes ({} after the final \
         start), {} acknowledged parts of interrupted uploads; {aborted} orphaned uploads aborted \
         at the end",
        reads.listed,
        reads.rereads,
        reads.rereads - rereads_before,
        reads.parts
    );
    eprintln!(
        "PUTs in flight at the kills: {} before the commit (rolled back), {} committed but \
         published nowhere, {} published on some disks, {} published on all (each rolled \
         forward); {} staged files on the disks at the kills",
        phases.before_commit,
        phases.before_publish,
        phases.during_publish,
        phases.after_publish,
        phases.staged_files
    );
    eprintln!(
        "recovery at start-up: {} uncommitted writes discarded, {} committed writes settled \
         ({} copies published), {} staged leftovers collected ({} at the final start); {} \
         warnings; {} writes refused while the gateway was up; {:.1} s",
        recovered.discarded,
        recovered.committed(),
        recovered.published_copies,
        recovered.collected,
        last.collected,
        warnings.len(),
        refused.len(),
        started.elapsed().as_secs_f64()
    );
    for w in warnings.iter().take(10) {
        eprintln!("  start-up warning: {w}");
    }
    for r in refused.iter().take(10) {
        eprintln!("  refused: {r}");
    }
    assert_eq!(
        verified, acknowledged,
        "every acknowledged write is read back or overwritten by a later acknowledged one"
    );
    assert!(
        acknowledged > kills,
        "too few writes were acknowledged: the test proved little"
    );
    assert!(
        refused.is_empty(),
        "the gateway refused writes while it was up (the fault plans only slow disks down)"
    );
    if kills >= 20 {
        // Each window is hit several times in 50 rounds (see the counts printed above); a window
        // never hit means the fault plans no longer widen it, and the test proves less.
        assert!(
            phases.before_commit > 0
                && phases.before_publish > 0
                && phases.during_publish > 0
                && phases.after_publish > 0,
            "some phase of a write was never caught by a kill: {phases:?}"
        );
    }
    // Checked last, after the report above, so a failing run still shows its numbers.
    let mut leftovers = Vec::new();
    for disk in ["a", "b"] {
        for sub in ["staging", "tmp", "mpu"] {
            let files = files_under(&dir.path().join(disk).join(".hansa").join(sub));
            leftovers.extend(files.iter().map(|p| {
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                format!("{} ({size} bytes)", p.display())
            }));
        }
    }
    if let Some(moto) = &moto {
        eprintln!(
            "moto: {moto_uploads_at_kills} multipart uploads open under the prefix at the kills \
             (all rounds)"
        );
        assert!(
            moto.objects().await > 0,
            "no object under {} on moto: the check below looks in the wrong place",
            moto.prefix
        );
        for (key, upload) in moto.open_uploads().await {
            leftovers.push(format!("moto: multipart upload {upload} at {key}"));
        }
        for key in moto.staged_objects().await {
            leftovers.push(format!("moto: staged object {key}"));
        }
    }
    assert!(
        leftovers.is_empty(),
        "left behind after recovery and a collection pass with staging_max_age_secs = 0 \
         (seed {seed}):\n  {}",
        leftovers.join("\n  ")
    );
}
