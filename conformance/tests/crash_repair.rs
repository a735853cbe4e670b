//! The repair queue survives kill -9: in a loop of kills during repair, with writers running,
//! nothing acknowledged is lost and the queue converges.
//!
//! The gateway runs as a separate process on two local disks, every object on both (replicas
//! = 2) and acknowledged once one holds it (write_quorum = 1); failed repairs are retried
//! within a second and anti-entropy never runs on its own, so whatever `disk-b` ends up with
//! comes through the queue. Each round starts the process on the same data directory with a
//! fault plan for `disk-b`, runs writers (a few keys each, so keys are overwritten; mostly
//! small bodies, some of several MiB, some larger than the gateway's 5 MiB buffer; some
//! DELETEs) and kills the process with SIGKILL at a random moment. The plans rotate:
//!
//! * `disk-b` down (writes, publishes and deletes fail): writes are acknowledged on `disk-a`
//!   alone and deletes leave `disk-b`'s copy behind; the queue grows;
//! * `disk-b` back but slow (20 ms per call and per chunk of a body): the queue is worked off
//!   while the kill lands, with copies half staged on `disk-b`;
//! * no faults.
//!
//! The test counts the rounds whose log shows repairs done before the kill and requires a good
//! number of them. At the end the gateway starts once more without faults until its log says
//! the queue is empty (or shows no more work), every acknowledged write must read back through
//! S3 (or a later write that was in flight at a kill), every acknowledged delete must have
//! stuck (unless a later write in flight recreated the key); then the process is stopped and
//! the index is opened directly: the queue must be empty, every replica present, each
//! replica's file on both disks must hold exactly the object's bytes, and no file of a deleted
//! key may be left on either disk.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hansa::meta::{MetaStore, ReplicaState, SledStore};
use hansa_backends::physical_name;
use hansa_conformance::process::{
    files_under, free_port, log_len, log_since, spawn, write_config, TestDir,
};
use hansa_conformance::{client_at, random_bytes, s3_err, sha256_hex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Kill rounds: 17 under each plan.
const ROUNDS: usize = 51;
const WRITERS: usize = 5;
/// Enough keys that the queue holds more than the keys the next round overwrites at once
/// (work for a version that moved on is dropped, not repaired); few enough that keys are
/// overwritten within rounds and across them.
const KEYS_PER_WRITER: usize = 8;
/// Rounds whose kill must have landed while the queue was being worked off.
const MIN_KILLS_DURING_REPAIR: usize = 10;
const BUCKET: &str = "crash-repair";
/// How long the final start may take to work the queue off.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(120);

const POLICY: &str = "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n\n\
                      [repair]\nmax_backoff_secs = 1\nanti_entropy_interval_secs = 0\n";

const DOWN: &str = "disk-b down";
const DOWN_FAULTS: &str = r#"faults = { writes = "fail", publishes = "fail", deletes = "fail" }"#;
/// The fault plans the rounds rotate through: a name and the lines added to `disk-b`.
const PLANS: [(&str, &[(&str, &str)]); 3] = [
    (DOWN, &[("disk-b", DOWN_FAULTS)]),
    (
        "disk-b back, slow",
        &[("disk-b", "faults = { writes = { slow_ms = 20 } }")],
    ),
    ("no faults", &[]),
];

/// What a request does to a key: a PUT of content with this hash, or a DELETE.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Put(String),
    Delete,
}

/// Per key: the last acknowledged request, the one in flight now, and those that were in
/// flight at a kill since the last acknowledged one (each may or may not have happened).
#[derive(Default, Clone, Debug)]
struct KeyState {
    acked: Option<Op>,
    in_flight: Option<Op>,
    maybe: Vec<Op>,
}

impl KeyState {
    /// Whether the key reading back `now` (a content hash, or absent) is allowed.
    fn allows(&self, now: Option<&String>) -> bool {
        let fits = |op: &Op| match (op, now) {
            (Op::Put(h), Some(n)) => h == n,
            (Op::Delete, None) => true,
            _ => false,
        };
        let acked = match &self.acked {
            Some(op) => fits(op),
            // Never acknowledged: absent is fine too.
            None => now.is_none(),
        };
        acked || self.maybe.iter().any(fits)
    }
}

type State = Arc<Mutex<BTreeMap<String, KeyState>>>;

/// What the writers did, over the whole run.
#[derive(Default)]
struct Traffic {
    puts: AtomicUsize,
    puts_acked: AtomicUsize,
    deletes: AtomicUsize,
    deletes_acked: AtomicUsize,
    /// Requests the gateway answered with an error while it was up (not cut by a kill).
    refused: Mutex<Vec<String>>,
}

/// A refusal (the gateway answered with an error), or `None` when the connection died with
/// the process.
fn refusal<E>(
    what: &str,
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    err.raw_response()?;
    let e = s3_err(err);
    Some(format!("{what}: {} {:?} {:?}", e.status, e.code, e.message))
}

/// Body sizes: mostly small, some of 1–4 MiB, one in ten larger than the 5 MiB buffer.
fn body_size(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..10) {
        0 => (5 << 20) + rng.gen_range(1..(3 << 20)),
        1 | 2 => rng.gen_range((1 << 20)..(4 << 20)),
        // Never empty: every body written is told apart by its bytes.
        _ => rng.gen_range(16..(200 << 10)),
    }
}

/// PUTs and DELETEs until the gateway dies (or refuses a request).
async fn writer(
    client: aws_sdk_s3::Client,
    state: State,
    traffic: Arc<Traffic>,
    w: usize,
    round: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (((round * WRITERS + w) as u64) << 32));
    loop {
        let key = format!("w{w}/k{}", rng.gen_range(0..KEYS_PER_WRITER));
        let op = if rng.gen_ratio(1, 6) {
            Op::Delete
        } else {
            Op::Put(String::new())
        };
        let (op, result) = match op {
            Op::Delete => {
                state
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default()
                    .in_flight = Some(Op::Delete);
                traffic.deletes.fetch_add(1, Ordering::SeqCst);
                let sent = client.delete_object().bucket(BUCKET).key(&key).send().await;
                let result = sent
                    .map(|_| ())
                    .map_err(|e| refusal(&format!("DELETE {key}"), &e));
                (Op::Delete, result)
            }
            Op::Put(_) => {
                let body = random_bytes(body_size(&mut rng));
                let op = Op::Put(sha256_hex(&body));
                state
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default()
                    .in_flight = Some(op.clone());
                traffic.puts.fetch_add(1, Ordering::SeqCst);
                let sent = client
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(body.into())
                    .send()
                    .await;
                let result = sent
                    .map(|_| ())
                    .map_err(|e| refusal(&format!("PUT {key}"), &e));
                (op, result)
            }
        };
        match result {
            Ok(()) => {
                let counter = match op {
                    Op::Put(_) => &traffic.puts_acked,
                    Op::Delete => &traffic.deletes_acked,
                };
                let mut st = state.lock().unwrap();
                let s = st.get_mut(&key).expect("key");
                s.acked = Some(op);
                s.in_flight = None;
                s.maybe.clear();
                counter.fetch_add(1, Ordering::SeqCst);
            }
            // The gateway died (or refused): this request may or may not have happened.
            Err(refused) => {
                if let Some(r) = refused {
                    traffic.refused.lock().unwrap().push(r);
                }
                return;
            }
        }
    }
}

/// What one round's log shows.
#[derive(Default, Debug)]
struct RoundLog {
    repaired: usize,
    /// Whether the worker said the queue was empty.
    drained: bool,
    failed: usize,
    stale_removed: usize,
    published_at_start: usize,
    warnings: Vec<String>,
}

fn round_log(text: &str) -> RoundLog {
    let mut r = RoundLog::default();
    for line in text.lines() {
        if line.contains("replica repaired") {
            r.repaired += 1;
        } else if line.contains("repair queue empty") {
            r.drained = true;
        } else if line.contains("repair failed; will retry") {
            r.failed += 1;
        } else if line.contains("stale copy removed") {
            r.stale_removed += 1;
        } else if line.contains("published a copy left staged") {
            r.published_at_start += 1;
        } else if line.contains(" ERROR ")
            || (line.contains(" WARN ") && !line.contains("fault injection enabled"))
        {
            r.warnings.push(line.to_string());
        }
    }
    r
}

/// Lines that show the repair worker at work.
fn repair_activity(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            l.contains("replica repaired")
                || l.contains("repair pass")
                || l.contains("repair failed")
                || l.contains("stale copy removed")
        })
        .count()
}

/// Waits until the log since `from` says the queue is empty, or shows no repair work for a
/// while (the worker logs every pass that does something, at least every few seconds while
/// work is left). Returns whether the "queue empty" line came, and how long it took.
fn wait_for_convergence(log: &Path, from: u64) -> (bool, Duration) {
    let started = Instant::now();
    let mut activity = 0;
    let mut since = Instant::now();
    loop {
        let text = log_since(log, from);
        if text.contains("repair queue empty") {
            return (true, started.elapsed());
        }
        let now = repair_activity(&text);
        if now != activity {
            activity = now;
            since = Instant::now();
        }
        if since.elapsed() > Duration::from_secs(8) || started.elapsed() > CONVERGENCE_LIMIT {
            return (false, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A local backend's directory by its id.
fn disk_dir(dir: &Path, backend: &str) -> PathBuf {
    dir.join(backend.strip_prefix("disk-").expect("a local disk"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_queue_survives_kill_9_loop() {
    let started = Instant::now();
    let seed = std::env::var("HANSA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash-repair test seed {seed} (HANSA_CRASH_SEED={seed} repeats its choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TestDir::new("crash-repair-");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    let log = dir.path().join("hansa.log");
    let client = client_at(&format!("http://{addr}"));

    write_config(&config, dir.path(), addr, POLICY, &[], "");
    let mut child = spawn(&config, &log, addr);
    client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    assert!(child.terminate(Duration::from_secs(30)), "no clean stop");

    let state: State = Arc::default();
    let traffic = Arc::new(Traffic::default());
    let mut rounds_with_repairs = 0;
    let mut rounds_killed_mid_queue = 0;
    let mut repaired_before_kills = 0;
    let mut failed_repairs = 0;
    let mut stale_removed = 0;
    let mut published_at_start = 0;
    let mut in_flight_at_kills = 0;
    let mut warnings = Vec::new();

    for round in 0..ROUNDS {
        // Down, slow, no faults, down…, the last round down: the final start has a queue to
        // work off.
        let (plan_name, plan) =
            PLANS[(round + PLANS.len() - (ROUNDS - 1) % PLANS.len()) % PLANS.len()];
        write_config(&config, dir.path(), addr, POLICY, plan, "");
        let from = log_len(&log);
        let mut child = spawn(&config, &log, addr);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    client.clone(),
                    state.clone(),
                    traffic.clone(),
                    w,
                    round,
                    seed,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..2000))).await;
        child.kill_9();
        for w in writers {
            w.await.expect("writer task");
        }
        for s in state.lock().unwrap().values_mut() {
            if let Some(op) = s.in_flight.take() {
                s.maybe.push(op);
                in_flight_at_kills += 1;
            }
        }
        let found = round_log(&log_since(&log, from));
        if plan_name != DOWN && found.repaired > 0 {
            rounds_with_repairs += 1;
            rounds_killed_mid_queue += usize::from(!found.drained);
        }
        repaired_before_kills += found.repaired;
        failed_repairs += found.failed;
        stale_removed += found.stale_removed;
        published_at_start += found.published_at_start;
        warnings.extend(found.warnings);
    }

    // The final start: no faults, until the queue is worked off.
    write_config(&config, dir.path(), addr, POLICY, &[], "");
    let from = log_len(&log);
    let mut child = spawn(&config, &log, addr);
    let (queue_empty_logged, convergence) = wait_for_convergence(&log, from);
    let last = round_log(&log_since(&log, from));
    warnings.extend(last.warnings.iter().cloned());

    // Through S3: every acknowledged request stuck (or a later one in flight at a kill).
    let snapshot = state.lock().unwrap().clone();
    let mut problems = Vec::new();
    let mut lost = 0;
    let mut now: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (key, s) in &snapshot {
        let got = client.get_object().bucket(BUCKET).key(key).send().await;
        let hash = match got {
            Ok(o) => match o.body.collect().await {
                Ok(b) => Some(sha256_hex(&b.into_bytes())),
                Err(e) => {
                    problems.push(format!("{key}: body failed mid-read: {e:?}"));
                    continue;
                }
            },
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => None,
            Err(e) => {
                problems.push(format!("{key}: unreadable: {e:?}"));
                continue;
            }
        };
        if !s.allows(hash.as_ref()) {
            lost += 1;
            problems.push(format!(
                "{key}: reads back {hash:?}, but the last acknowledged request was {:?} (in \
                 flight at kills since: {:?})",
                s.acked, s.maybe
            ));
        }
        now.insert(key.clone(), hash);
    }
    let listed: HashSet<String> = hansa_conformance::list_all_keys(&client, BUCKET)
        .await
        .into_iter()
        .collect();
    let present: HashSet<String> = now
        .iter()
        .filter(|(_, h)| h.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    if listed != present {
        problems.push(format!(
            "the listing ({listed:?}) is not the keys that read back ({present:?})"
        ));
    }
    let stopped = child.terminate(Duration::from_secs(30));

    // Behind S3: the index and the disks.
    let mut queued = Vec::new();
    let mut replicas_checked = 0;
    let mut absent_checked = 0;
    {
        let index = SledStore::open(&dir.path().join("data").join("index"), 64 << 20)
            .expect("open the index");
        for backend in ["disk-a", "disk-b"] {
            let (depth, _) = index.repair_depth(backend).expect("queue depth");
            if depth > 0 {
                let entries = index.repairs(backend, None, 10).expect("queue");
                queued.push(format!("{backend}: {depth} entries, e.g. {entries:?}"));
            }
        }
        let page = index
            .scan_objects(BUCKET, "", Bound::Unbounded, 100_000)
            .expect("scan the index");
        assert!(!page.truncated);
        let mut named: HashSet<PathBuf> = HashSet::new();
        for (key, record) in &page.entries {
            let Some(Some(hash)) = now.get(key) else {
                problems.push(format!("{key}: in the index, but not read back through S3"));
                continue;
            };
            let mut backends: Vec<&str> =
                record.replicas.iter().map(|r| r.backend.as_str()).collect();
            backends.sort();
            if backends != ["disk-a", "disk-b"] {
                problems.push(format!("{key}: replicas on {backends:?}"));
            }
            for r in &record.replicas {
                if r.state != ReplicaState::Present {
                    problems.push(format!(
                        "{key}: replica on {} is {:?} (queue converged: {queue_empty_logged})",
                        r.backend, r.state
                    ));
                }
                let path = disk_dir(dir.path(), &r.backend).join(&r.name);
                named.insert(path.clone());
                replicas_checked += 1;
                match std::fs::read(&path) {
                    Ok(bytes)
                        if sha256_hex(&bytes) == *hash && bytes.len() as u64 == record.size => {}
                    Ok(bytes) => problems.push(format!(
                        "{key}: {} holds {} bytes that are not the object's ({} bytes)",
                        path.display(),
                        bytes.len(),
                        record.size
                    )),
                    Err(e) => problems.push(format!("{key}: {}: {e}", path.display())),
                }
            }
        }
        // Deleted keys leave no file on either disk; nothing the index does not name is left.
        for (key, hash) in &now {
            if hash.is_some() {
                continue;
            }
            for disk in ["disk-a", "disk-b"] {
                absent_checked += 1;
                let path = disk_dir(dir.path(), disk).join(physical_name(BUCKET, key).as_str());
                if path.exists() {
                    problems.push(format!(
                        "{key}: deleted, but {} is still there",
                        path.display()
                    ));
                }
            }
        }
        for disk in ["disk-a", "disk-b"] {
            let root = disk_dir(dir.path(), disk);
            for file in files_under(&root) {
                if !file.starts_with(root.join(".hansa")) && !named.contains(&file) {
                    problems.push(format!(
                        "{}: a file the index does not name",
                        file.display()
                    ));
                }
            }
        }
    }

    let acked = traffic.puts_acked.load(Ordering::SeqCst);
    let refused = traffic.refused.lock().unwrap().clone();
    eprintln!(
        "crash-repair: kills: {ROUNDS}, rounds killed with repairs done in them: \
         {rounds_with_repairs} ({rounds_killed_mid_queue} of them before the queue was empty; \
         {repaired_before_kills} replicas repaired before the kills, \
         {failed_repairs} failed attempts retried, {stale_removed} stale copies removed), writes \
         attempted/acknowledged/lost: {}/{acked}/{lost}, deletes attempted/acknowledged: {}/{}, \
         requests in flight at the kills: {in_flight_at_kills}, copies published at start-up: \
         {published_at_start}; final start: {} replicas repaired, queue empty logged: \
         {queue_empty_logged} after {:.1} s; checked {replicas_checked} replica files and \
         {absent_checked} deleted names; {} warnings; {} refused; {:.1} s",
        traffic.puts.load(Ordering::SeqCst),
        traffic.deletes.load(Ordering::SeqCst),
        traffic.deletes_acked.load(Ordering::SeqCst),
        last.repaired,
        convergence.as_secs_f64(),
        warnings.len(),
        refused.len(),
        started.elapsed().as_secs_f64()
    );
    for w in warnings.iter().take(8) {
        eprintln!("  warning: {w}");
    }
    for r in refused.iter().take(8) {
        eprintln!("  refused: {r}");
    }
    assert!(stopped, "the gateway did not stop on SIGTERM within 30 s");
    assert!(
        problems.is_empty() && queued.is_empty(),
        "after {ROUNDS} kills (seed {seed}):\n  {}\nqueue left: {queued:?}",
        problems.join("\n  ")
    );
    assert!(
        refused.is_empty(),
        "the gateway refused requests while it was up"
    );
    assert!(
        acked > ROUNDS * WRITERS,
        "too few writes were acknowledged: the test proved little"
    );
    assert!(
        rounds_with_repairs >= MIN_KILLS_DURING_REPAIR,
        "only {rounds_with_repairs} kills landed while the queue was being worked off"
    );
}

/// The removal an acknowledged DELETE leaves to a backend that is down is durable when the
/// client gets its answer: kill -9 right after it, and the copy still goes once the backend is
/// back. (It used to be queued without a flush: the kill lost it, and the deleted object's
/// copy stayed on disk-b with an empty queue.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_missed_by_a_backend_survives_kill_9() {
    let dir = TestDir::new("crash-repair-delete-");
    let addr = free_port();
    let config = dir.path().join("hansa.toml");
    let log = dir.path().join("hansa.log");
    let client = client_at(&format!("http://{addr}"));
    let copy_on_b = disk_dir(dir.path(), "disk-b").join(physical_name("gone", "k").as_str());

    write_config(&config, dir.path(), addr, POLICY, &[], "");
    let mut child = spawn(&config, &log, addr);
    client
        .create_bucket()
        .bucket("gone")
        .send()
        .await
        .expect("create bucket");
    client
        .put_object()
        .bucket("gone")
        .key("k")
        .body(vec![7u8; 1000].into())
        .send()
        .await
        .expect("put");
    assert!(child.terminate(Duration::from_secs(30)), "no clean stop");
    assert!(
        copy_on_b.exists(),
        "{} was never written",
        copy_on_b.display()
    );

    write_config(
        &config,
        dir.path(),
        addr,
        POLICY,
        &[("disk-b", DOWN_FAULTS)],
        "",
    );
    let mut child = spawn(&config, &log, addr);
    client
        .delete_object()
        .bucket("gone")
        .key("k")
        .send()
        .await
        .expect("delete");
    child.kill_9();

    write_config(&config, dir.path(), addr, POLICY, &[], "");
    let from = log_len(&log);
    let mut child = spawn(&config, &log, addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    while copy_on_b.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.terminate(Duration::from_secs(30)), "no clean stop");
    assert!(
        !copy_on_b.exists(),
        "the deleted object's copy is still on disk-b after the restart:\n{}",
        log_since(&log, from)
    );
    let index =
        SledStore::open(&dir.path().join("data").join("index"), 8 << 20).expect("open the index");
    assert_eq!(index.repair_depth("disk-b").expect("queue depth").0, 0);
}
