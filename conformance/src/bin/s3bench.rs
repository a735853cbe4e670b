//! `s3bench`: a concurrent S3 client that runs one workload against one server and prints one
//! JSON object (ops/s, MB/s, p50/p99 latency). `scripts/bench-peers.sh` runs it against Hansa
//! and its peers in interleaved rounds; docs/PERFORMANCE.md tells how to read the output.
//!
//! ```text
//! s3bench --endpoint http://127.0.0.1:9000 --access-key K --secret-key S \
//!         --workload put-large [--quick] [--server hansa-2] [sizes, counts, concurrency…]
//! ```
//!
//! Workloads (objects under `--bucket`, created when missing):
//! - `put-large`: `--count` single PUTs of `--large-size` bytes (default 64 MiB),
//!   `--large-concurrency` at a time (default 1).
//! - `multipart`: `--count` multipart uploads of `--multipart-size` (256 MiB) in `--part-size`
//!   parts (16 MiB), `--part-concurrency` parts at a time (4); the size is checked by HEAD.
//! - `put-small` / `get-small`: `--small-size` objects (4 KiB) for `--duration` seconds at
//!   `--concurrency` (32). GETs read `--small-objects` keys written beforehand (untimed) and
//!   compare every body.
//! - `list`: `--count` listings of a prefix of `--list-keys` keys (10,000, written beforehand
//!   when missing), paged by 1,000, each listing timed whole; the key count is checked.
//! - `get-large`: `--count` GETs of one `--large-size` object, bodies compared.
//! - `mixed`: 70 % GETs of the small keys, 30 % PUTs of new small keys, for `--duration`.
//!
//! MB is 10^6 bytes. Exit status 1 when any operation failed or returned wrong bytes (the JSON
//! is printed all the same, with `errors` and the first error).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hansa_conformance::sign::{Payload, Signer};
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    PutLarge,
    Multipart,
    PutSmall,
    GetSmall,
    List,
    GetLarge,
    Mixed,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::PutLarge => "put-large",
            Workload::Multipart => "multipart",
            Workload::PutSmall => "put-small",
            Workload::GetSmall => "get-small",
            Workload::List => "list",
            Workload::GetLarge => "get-large",
            Workload::Mixed => "mixed",
        }
    }
}

/// One workload against one S3 server; JSON on stdout.
#[derive(Parser, Debug, Clone)]
#[command(name = "s3bench", version)]
struct Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (path-style addressing).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket (created when missing).
    #[arg(long, default_value = "bench")]
    bucket: String,
    #[arg(long, value_enum)]
    workload: Workload,
    /// Label of the server in the JSON output.
    #[arg(long, default_value = "server")]
    server: String,
    /// Smoke-run preset: small sizes and counts, 2-second runs (explicit flags still win).
    #[arg(long)]
    quick: bool,
    /// Size of large objects (put-large, get-large): bytes, or with KiB/MiB/GiB [default: 64MiB;
    /// quick: 4MiB].
    #[arg(long, value_parser = parse_size)]
    large_size: Option<u64>,
    /// Size of each multipart upload [default: 256MiB; quick: 12MiB].
    #[arg(long, value_parser = parse_size)]
    multipart_size: Option<u64>,
    /// Part size of multipart uploads [default: 16MiB; quick: 5MiB].
    #[arg(long, value_parser = parse_size)]
    part_size: Option<u64>,
    /// Size of small objects (put-small, get-small, mixed) [default: 4KiB].
    #[arg(long, value_parser = parse_size)]
    small_size: Option<u64>,
    /// Operations of the counted workloads (put-large, multipart, get-large, list)
    /// [default: 8; quick: 2].
    #[arg(long)]
    count: Option<u64>,
    /// Seconds each timed workload runs (put-small, get-small, mixed) [default: 10; quick: 2].
    #[arg(long)]
    duration: Option<f64>,
    /// Concurrent requests of the small-object workloads [default: 32].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Concurrent large PUTs/GETs [default: 1].
    #[arg(long)]
    large_concurrency: Option<usize>,
    /// Parts of one multipart upload in flight at once [default: 4].
    #[arg(long)]
    part_concurrency: Option<usize>,
    /// Keys read by get-small and mixed [default: 1000; quick: 100].
    #[arg(long)]
    small_objects: Option<u64>,
    /// Keys under the listed prefix [default: 10000; quick: 500].
    #[arg(long)]
    list_keys: Option<u64>,
    /// Process id of the server (repeatable): its CPU time (with its descendants') is read
    /// from /proc before and after the timed part, and its peak RSS (VmHWM) after it.
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Static file server mode (get-small, get-large only): write the objects the workload
    /// reads as files under DIR/<bucket>/<key> instead of PUTting them, and create no bucket.
    #[arg(long, value_name = "DIR")]
    files_root: Option<std::path::PathBuf>,
}

/// Parameters after the preset and the flags are merged.
#[derive(Clone, Debug, PartialEq)]
struct Params {
    large_size: u64,
    multipart_size: u64,
    part_size: u64,
    small_size: u64,
    count: u64,
    duration: Duration,
    concurrency: usize,
    large_concurrency: usize,
    part_concurrency: usize,
    small_objects: u64,
    list_keys: u64,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

impl Args {
    fn params(&self) -> Result<Params, String> {
        let q = self.quick;
        let pick =
            |v: Option<u64>, full: u64, quick: u64| v.unwrap_or(if q { quick } else { full });
        let p = Params {
            large_size: pick(self.large_size, 64 * MIB, 4 * MIB),
            multipart_size: pick(self.multipart_size, 256 * MIB, 12 * MIB),
            part_size: pick(self.part_size, 16 * MIB, 5 * MIB),
            small_size: pick(self.small_size, 4 * KIB, 4 * KIB),
            count: pick(self.count, 8, 2),
            duration: Duration::from_secs_f64(self.duration.unwrap_or(if q { 2.0 } else { 10.0 })),
            concurrency: self.concurrency.unwrap_or(32),
            large_concurrency: self.large_concurrency.unwrap_or(1),
            part_concurrency: self.part_concurrency.unwrap_or(4),
            small_objects: pick(self.small_objects, 1000, 100),
            list_keys: pick(self.list_keys, 10_000, 500),
        };
        if p.count == 0 || p.concurrency == 0 || p.large_concurrency == 0 {
            return Err("--count and the concurrencies must be at least 1".into());
        }
        if p.part_concurrency == 0 || p.part_size == 0 || p.small_objects == 0 {
            return Err("--part-size, --part-concurrency and --small-objects must be > 0".into());
        }
        if p.multipart_size.div_ceil(p.part_size) > 10_000 {
            return Err("a multipart upload has at most 10,000 parts".into());
        }
        if p.duration.is_zero() {
            return Err("--duration must be > 0".into());
        }
        Ok(p)
    }
}

/// `4096`, `4KiB`, `64MiB`, `1GiB` (also `K`/`M`/`G`, binary) to bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {s:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("too large: {s:?}"))
}

/// Deterministic body of `len` bytes (the same for every object of a size, so GETs can compare).
fn body(len: u64, seed: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ len);
    let mut v = vec![0u8; len as usize];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

fn client(args: &Args) -> Client {
    let creds = aws_credential_types::Credentials::new(
        &args.access_key,
        &args.secret_key,
        None,
        None,
        "s3bench",
    );
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(args.region.clone()))
        .credentials_provider(creds)
        .endpoint_url(&args.endpoint)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(600))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// What the timed part of a workload measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    extra: BTreeMap<String, Value>,
}

impl Tally {
    fn ok(&mut self, latency: Duration, bytes: u64) {
        self.latencies.push(latency);
        self.bytes += bytes;
    }
    fn fail(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[i].as_secs_f64() * 1e3)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The JSON object printed for one run.
fn report(args: &Args, p: &Params, mut t: Tally, elapsed: Duration) -> Value {
    t.latencies.sort();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ops = t.latencies.len() as u64;
    let mut v = json!({
        "server": args.server,
        "workload": args.workload.name(),
        "ops": ops,
        "errors": t.errors,
        "seconds": round3(secs),
        "bytes": t.bytes,
        "ops_per_s": round3(ops as f64 / secs),
        "mb_per_s": round3(t.bytes as f64 / 1e6 / secs),
        "p50_ms": percentile_ms(&t.latencies, 50.0).map(round3),
        "p99_ms": percentile_ms(&t.latencies, 99.0).map(round3),
        "params": {
            "large_size": p.large_size,
            "multipart_size": p.multipart_size,
            "part_size": p.part_size,
            "small_size": p.small_size,
            "count": p.count,
            "duration_s": p.duration.as_secs_f64(),
            "concurrency": p.concurrency,
            "large_concurrency": p.large_concurrency,
            "part_concurrency": p.part_concurrency,
            "small_objects": p.small_objects,
            "list_keys": p.list_keys,
        },
    });
    if let Some(e) = t.first_error {
        v["first_error"] = json!(e);
    }
    for (k, x) in t.extra {
        v[k] = x;
    }
    v
}

fn err_text<E: std::error::Error>(what: &str, e: E) -> String {
    // The SDK's Display is terse ("service error"); the Debug form names the S3 code.
    let mut s = format!("{what}: {e:?}");
    s.truncate(400);
    s
}

async fn ensure_bucket(c: &Client, bucket: &str) -> Result<(), String> {
    if c.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    match c.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        // Created meanwhile, or the server answers HEAD differently: check once more.
        Err(e) => match c.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(_) => Err(err_text("create bucket", e)),
        },
    }
}

async fn put(c: &Client, bucket: &str, key: &str, body: Bytes) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err_text(&format!("PUT {key}"), e))
}

async fn get_check(c: &Client, bucket: &str, key: &str, want: &Bytes) -> Result<u64, String> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| err_text(&format!("GET {key}"), e))?;
    let got = out
        .body
        .collect()
        .await
        .map_err(|e| err_text(&format!("GET {key} body"), e))?
        .into_bytes();
    if got != *want {
        return Err(format!(
            "GET {key}: wrong bytes ({} bytes, expected {})",
            got.len(),
            want.len()
        ));
    }
    Ok(got.len() as u64)
}

/// Size of `key`, or `None` when it is missing.
async fn head_size(c: &Client, bucket: &str, key: &str) -> Option<i64> {
    c.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()
        .and_then(|h| h.content_length())
}

/// Writes `keys` (untimed set-up) at `concurrency`, unless the last one is already there.
async fn prepare(
    c: &Client,
    bucket: &str,
    keys: Vec<String>,
    body: Bytes,
    concurrency: usize,
    files_root: Option<&std::path::Path>,
) -> Result<(), String> {
    let Some(last) = keys.last() else {
        return Ok(());
    };
    if let Some(root) = files_root {
        for key in &keys {
            let path = root.join(bucket).join(key);
            if std::fs::metadata(&path).map(|m| m.len()).ok() == Some(body.len() as u64) {
                continue;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            std::fs::write(&path, &body).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(());
    }
    if head_size(c, bucket, last).await == Some(body.len() as i64) {
        return Ok(());
    }
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(keys.len()) {
        let (c, bucket, keys, next, body) = (
            c.clone(),
            bucket.to_string(),
            keys.clone(),
            next.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(key) = keys.get(i) else {
                    return Ok::<(), String>(());
                };
                put(&c, &bucket, key, body.clone()).await?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("set-up task: {e}"))??;
    }
    Ok(())
}

fn small_keys(n: u64) -> Vec<String> {
    (0..n).map(|i| format!("small/{i:06}")).collect()
}

/// Runs `op(worker, index)` on `workers` tasks until `limit` operations were started (Some) or
/// the deadline passed (None); `op` answers the bytes moved.
async fn drive<F, Fut>(workers: usize, limit: Option<u64>, duration: Duration, op: F) -> Tally
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            loop {
                if limit.is_none() && Instant::now() >= deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| i >= l) {
                    break;
                }
                let start = Instant::now();
                match op(w, i).await {
                    Ok(bytes) => t.ok(start.elapsed(), bytes),
                    Err(e) => t.fail(e),
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => all.merge(t),
            Err(e) => all.fail(format!("worker: {e}")),
        }
    }
    all
}

/// CreateMultipartUpload sent by hand, its UploadId read from whatever root element the answer
/// has. `rclone serve s3` (v1.75) answers with the root `InitiateMultipartUpload` instead of
/// `InitiateMultipartUploadResult`, which aws-sdk-s3 refuses (the aws cli and boto3 accept it);
/// the parts and the completion go through the SDK as usual.
async fn create_upload_by_hand(args: &Args, bucket: &str, key: &str) -> Result<String, String> {
    let url = format!(
        "{}/{bucket}/{}?uploads",
        args.endpoint.trim_end_matches('/'),
        hansa_conformance::encode_key(key)
    );
    let mut req = http::Request::builder()
        .method("POST")
        .uri(&url)
        .body(())
        .map_err(|e| format!("CreateMultipartUpload by hand: {url}: {e}"))?;
    let signer = Signer {
        access_key_id: args.access_key.clone(),
        secret_access_key: args.secret_key.clone(),
        region: args.region.clone(),
        time: std::time::SystemTime::now(),
    };
    signer.sign(&mut req, &Payload::Bytes(Vec::new()));
    let (parts, ()) = req.into_parts();
    let mut rb = reqwest::Client::new().post(&url);
    for (k, v) in parts.headers.iter() {
        rb = rb.header(k, v);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("CreateMultipartUpload by hand: {e}"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("CreateMultipartUpload by hand: {e}"))?;
    match hansa_conformance::xml_text(&text, "UploadId") {
        Some(id) if status.is_success() => Ok(id),
        _ => Err(format!(
            "CreateMultipartUpload by hand: {status}: {text:.300}"
        )),
    }
}

async fn multipart_once(
    args: &Args,
    c: &Client,
    bucket: &str,
    key: &str,
    p: &Params,
    data: &Bytes,
) -> Result<u64, String> {
    let id = match c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
    {
        Ok(up) => up
            .upload_id()
            .ok_or("CreateMultipartUpload: no upload id")?
            .to_string(),
        Err(e) => {
            let text = err_text("CreateMultipartUpload", e);
            // Another root element than InitiateMultipartUploadResult: read it by hand.
            if !text.contains("expected InitiateMultipartUploadResult but got") {
                return Err(text);
            }
            create_upload_by_hand(args, bucket, key).await?
        }
    };
    let parts = p.multipart_size.div_ceil(p.part_size);
    let uploads = futures::stream::iter(0..parts).map(|n| {
        let (c, bucket, key, id) = (c.clone(), bucket.to_string(), key.to_string(), id.clone());
        let start = (n * p.part_size) as usize;
        let end = ((n + 1) * p.part_size).min(p.multipart_size) as usize;
        let chunk = data.slice(start..end);
        async move {
            let number = i32::try_from(n + 1).map_err(|_| "too many parts".to_string())?;
            let out = c
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| err_text(&format!("UploadPart {number}"), e))?;
            Ok::<_, String>(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .build(),
            )
        }
    });
    let results: Vec<Result<CompletedPart, String>> =
        uploads.buffered(p.part_concurrency).collect().await;
    let completed = match results.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(parts) => parts,
        Err(e) => {
            let _ = c
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
            return Err(e);
        }
    };
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .map_err(|e| err_text("CompleteMultipartUpload", e))?;
    match head_size(c, bucket, key).await {
        Some(n) if n as u64 == p.multipart_size => Ok(p.multipart_size),
        other => Err(format!(
            "HEAD {key} after CompleteMultipartUpload: size {other:?}, expected {}",
            p.multipart_size
        )),
    }
}

/// Runs the workload: untimed set-up, then the timed part. Answers the JSON and whether
/// anything failed.
async fn run(args: &Args, p: &Params) -> (Value, bool) {
    let c = client(args);
    let bucket = args.bucket.clone();
    let fail = |e: String| {
        let mut t = Tally::default();
        t.fail(e);
        t
    };
    if args.files_root.is_some() {
        if !matches!(args.workload, Workload::GetSmall | Workload::GetLarge) {
            let e = "--files-root serves get-small and get-large only".to_string();
            return (report(args, p, fail(e), Duration::ZERO), true);
        }
    } else if let Err(e) = ensure_bucket(&c, &bucket).await {
        return (report(args, p, fail(e), Duration::ZERO), true);
    }
    let small = body(p.small_size, 1);
    let files = args.files_root.as_deref();
    let setup = match args.workload {
        Workload::GetSmall | Workload::Mixed => {
            prepare(
                &c,
                &bucket,
                small_keys(p.small_objects),
                small.clone(),
                p.concurrency,
                files,
            )
            .await
        }
        Workload::List => {
            let keys = (0..p.list_keys)
                .map(|i| format!("list-{}/{i:06}", p.list_keys))
                .collect();
            prepare(
                &c,
                &bucket,
                keys,
                Bytes::from_static(b"x"),
                p.concurrency,
                files,
            )
            .await
        }
        Workload::GetLarge => {
            let key = vec![format!("large-get/{}", p.large_size)];
            prepare(&c, &bucket, key, body(p.large_size, 2), 1, files).await
        }
        _ => Ok(()),
    };
    if let Err(e) = setup {
        return (
            report(args, p, fail(format!("set-up: {e}")), Duration::ZERO),
            true,
        );
    }

    let cpu_before = server_cpu_seconds(&args.server_pids);
    let start = Instant::now();
    let mut tally = match args.workload {
        Workload::PutLarge => {
            let data = body(p.large_size, 2);
            // Keys are reused (one more than run at once) so the disk holds a few objects.
            let (c, b, keys) = (c.clone(), bucket.clone(), p.large_concurrency as u64 + 1);
            drive(
                p.large_concurrency,
                Some(p.count),
                p.duration,
                move |_, i| {
                    let (c, b, data) = (c.clone(), b.clone(), data.clone());
                    async move {
                        let n = data.len() as u64;
                        put(&c, &b, &format!("large-put/{}", i % keys), data)
                            .await
                            .map(|_| n)
                    }
                },
            )
            .await
        }
        Workload::Multipart => {
            let data = body(p.multipart_size, 3);
            let (c, b, p2, a) = (c.clone(), bucket.clone(), p.clone(), Arc::new(args.clone()));
            drive(1, Some(p.count), p.duration, move |_, i| {
                let (c, b, data, p2, a) =
                    (c.clone(), b.clone(), data.clone(), p2.clone(), a.clone());
                // Two keys in turn: the disk holds two uploads, not `--count`.
                async move {
                    multipart_once(&a, &c, &b, &format!("multipart/{}", i % 2), &p2, &data).await
                }
            })
            .await
        }
        Workload::PutSmall => {
            let (c, b) = (c.clone(), bucket.clone());
            drive(p.concurrency, None, p.duration, move |_, i| {
                let (c, b, data) = (c.clone(), b.clone(), small.clone());
                async move {
                    let n = data.len() as u64;
                    put(&c, &b, &format!("small-put/{i:08}"), data)
                        .await
                        .map(|_| n)
                }
            })
            .await
        }
        Workload::GetSmall => {
            let (c, b, n) = (c.clone(), bucket.clone(), p.small_objects);
            drive(p.concurrency, None, p.duration, move |_, i| {
                let (c, b, want) = (c.clone(), b.clone(), small.clone());
                async move { get_check(&c, &b, &format!("small/{:06}", i % n), &want).await }
            })
            .await
        }
        Workload::GetLarge => {
            let want = body(p.large_size, 2);
            let (c, b, size) = (c.clone(), bucket.clone(), p.large_size);
            drive(
                p.large_concurrency,
                Some(p.count),
                p.duration,
                move |_, _| {
                    let (c, b, want) = (c.clone(), b.clone(), want.clone());
                    async move { get_check(&c, &b, &format!("large-get/{size}"), &want).await }
                },
            )
            .await
        }
        Workload::List => {
            let (c, b, n) = (c.clone(), bucket.clone(), p.list_keys);
            let mut t = drive(1, Some(p.count), p.duration, move |_, _| {
                let (c, b) = (c.clone(), b.clone());
                async move { list_all(&c, &b, &format!("list-{n}/"), n).await }
            })
            .await;
            // A listing moves no object bytes (`bytes` counted keys).
            t.extra.insert("keys_per_listing".into(), json!(n));
            t.bytes = 0;
            t
        }
        Workload::Mixed => {
            let gets = Arc::new(AtomicU64::new(0));
            let (c, b, n, g) = (c.clone(), bucket.clone(), p.small_objects, gets.clone());
            let mut t = drive(p.concurrency, None, p.duration, move |w, i| {
                let (c, b, data, g) = (c.clone(), b.clone(), small.clone(), g.clone());
                // 7 of every 10 operations are GETs, mixed evenly and seeded per worker.
                let is_get = rand::rngs::StdRng::seed_from_u64(i).gen_range(0..10) < 7;
                async move {
                    if is_get {
                        g.fetch_add(1, Ordering::Relaxed);
                        get_check(&c, &b, &format!("small/{:06}", i % n), &data).await
                    } else {
                        let n = data.len() as u64;
                        put(&c, &b, &format!("mixed-put/{w:03}-{i:08}"), data)
                            .await
                            .map(|_| n)
                    }
                }
            })
            .await;
            t.extra
                .insert("gets".into(), json!(gets.load(Ordering::Relaxed)));
            t
        }
    };
    let elapsed = start.elapsed();
    if !args.server_pids.is_empty() {
        let cpu = server_cpu_seconds(&args.server_pids) - cpu_before;
        let ops = tally.latencies.len() as f64;
        let gb = tally.bytes as f64 / 1e9;
        tally
            .extra
            .insert("server_cpu_s".into(), json!(round3(cpu)));
        let per_gb = (gb > 0.0).then(|| round3(cpu / gb));
        tally
            .extra
            .insert("server_cpu_s_per_gb".into(), json!(per_gb));
        let per_kop = (ops > 0.0).then(|| round3(cpu / ops * 1000.0));
        tally
            .extra
            .insert("server_cpu_s_per_1000_ops".into(), json!(per_kop));
        let rss = server_peak_rss_kib(&args.server_pids);
        tally.extra.insert("server_peak_rss_kib".into(), json!(rss));
    }
    let failed = tally.errors > 0;
    (report(args, p, tally, elapsed), failed)
}

/// The process ids of `roots` and of all their descendants (from /proc/*/stat).
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(pid) {
                // Field 4 of stat, the parent, is the second after the command.
                if let Some(ppid) = fields.get(1).and_then(|f| f.parse::<u32>().ok()) {
                    parent_of.push((pid, ppid));
                }
            }
        }
    }
    let mut tree: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        for &(child, parent) in &parent_of {
            if parent == p && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    tree
}

/// Fields of /proc/<pid>/stat after the command (the first one is the state, field 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of the servers' process trees, in seconds.
fn server_cpu_seconds(roots: &[u32]) -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is handed over.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    process_tree(roots)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            // utime and stime are fields 14 and 15: indexes 11 and 12 here.
            let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            (t(11) + t(12)) / ticks
        })
        .sum()
}

/// Sum of VmHWM (peak resident set, KiB) over the servers' process trees.
fn server_peak_rss_kib(roots: &[u32]) -> u64 {
    process_tree(roots)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// Lists `prefix` whole (pages of 1,000), checking that `want` keys came back; answers the
/// number of keys.
async fn list_all(c: &Client, bucket: &str, prefix: &str, want: u64) -> Result<u64, String> {
    let mut token: Option<String> = None;
    let mut keys = 0u64;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(1000)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| err_text("ListObjectsV2", e))?;
        keys += out.contents().len() as u64;
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    if keys != want {
        return Err(format!("LIST {prefix}: {keys} keys, expected {want}"));
    }
    Ok(keys)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let p = match args.params() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("s3bench: {e}");
            std::process::exit(2);
        }
    };
    let (v, failed) = run(&args, &p).await;
    println!("{v}");
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec![
            "s3bench",
            "--endpoint",
            "http://127.0.0.1:1",
            "--access-key",
            "k",
            "--secret-key",
            "s",
            "--workload",
        ];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).expect("flags parse")
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn defaults_quick_preset_and_flags_merge() {
        let full = args(&["put-large"]).params().expect("valid");
        assert_eq!(full.large_size, 64 << 20);
        assert_eq!((full.multipart_size, full.part_size), (256 << 20, 16 << 20));
        assert_eq!((full.small_size, full.concurrency), (4096, 32));
        assert_eq!((full.list_keys, full.count), (10_000, 8));
        let quick = args(&["list", "--quick"]).params().expect("valid");
        assert_eq!((quick.list_keys, quick.large_size), (500, 4 << 20));
        assert_eq!(quick.duration, Duration::from_secs(2));
        let mixed = args(&["mixed", "--quick", "--list-keys", "7", "--duration", "0.5"]);
        let p = mixed.params().expect("valid");
        assert_eq!((p.list_keys, p.duration), (7, Duration::from_millis(500)));
        assert!(args(&["mixed", "--concurrency", "0"]).params().is_err());
        assert!(
            args(&["multipart", "--part-size", "1", "--multipart-size", "1MiB"])
                .params()
                .is_err()
        );
        assert!(Args::try_parse_from(["s3bench", "--workload", "list"]).is_err());
        assert!(Args::try_parse_from([
            "s3bench",
            "--endpoint",
            "e",
            "--access-key",
            "k",
            "--secret-key",
            "s",
            "--workload",
            "nonsense"
        ])
        .is_err());
    }

    #[test]
    fn report_carries_rates_and_percentiles() {
        let a = args(&["get-small", "--server", "peer"]);
        let p = a.params().expect("valid");
        let mut t = Tally::default();
        for ms in 1..=100u64 {
            t.ok(Duration::from_millis(ms), 4096);
        }
        t.fail("GET x: boom".into());
        let v = report(&a, &p, t, Duration::from_secs(2));
        assert_eq!(v["server"], "peer");
        assert_eq!(v["workload"], "get-small");
        assert_eq!(v["ops"], 100);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["ops_per_s"], 50.0);
        assert_eq!(v["mb_per_s"], 0.205);
        assert_eq!(v["p50_ms"], 50.0);
        assert_eq!(v["p99_ms"], 99.0);
        assert_eq!(v["first_error"], "GET x: boom");
        assert_eq!(v["params"]["concurrency"], 32);
    }

    #[test]
    fn own_process_has_cpu_time_and_peak_rss() {
        let me = std::process::id();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(body(1024, 9));
        }
        assert!(server_cpu_seconds(&[me]) > 0.0);
        assert!(server_peak_rss_kib(&[me]) > 0);
        assert!(process_tree(&[me]).contains(&me));
    }
}
