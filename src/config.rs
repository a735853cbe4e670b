//! Configuration: the TOML file, its validation, and the embedded default.
//!
//! Every problem is reported with the file, the field and what is wrong, before anything
//! starts listening.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::placement::check::check_policy;
use crate::placement::rules::{ReadOrder, Requirement, Rules, Spread, TagMatch};
use crate::s3::auth::Credential;
use hansa_backends::{CloudConfig, FaultPlan};

#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {problem}")]
    Invalid {
        file: String,
        field: String,
        problem: String,
    },
    #[error("{path}: {problem}")]
    DataDir { path: String, problem: String },
}

/// The whole configuration after validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Probes and circuit breakers (`[health]`).
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default, rename = "credential")]
    pub credentials: Vec<CredentialConfig>,
    /// Optional per-credential rate limits, by access key id (`[rate_limit.<access key id>]`).
    #[serde(default, rename = "rate_limit")]
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendConfig>,
    #[serde(default, rename = "policy")]
    pub policies: BTreeMap<String, PolicyConfig>,
    #[serde(default, rename = "bucket")]
    pub buckets: BTreeMap<String, BucketConfig>,
    #[serde(default)]
    pub repair: RepairConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    /// The worker that applies bucket lifecycle rules (`[lifecycle]`).
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// The admin plane (`[admin]`); off when the section is absent.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Where metrics and health endpoints are served besides the admin listener (`[metrics]`).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: `GET /metrics`, `/health/live` and `/health/ready` are always served by the
/// admin listener without its token (docs/METRICS.md); `listen` adds a listener of their own
/// that serves nothing else, e.g. for a scraper or probes on another address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The dedicated listener's address; `None` (the default): none.
    pub listen: Option<SocketAddr>,
}

/// `[lifecycle]`: how often and how much the lifecycle worker does (docs/LIFECYCLE.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Seconds between passes; 0 = only when the admin API asks.
    pub interval_secs: u64,
    /// Objects expired and uploads aborted in one pass at most; the next pass resumes where
    /// this one stopped.
    pub max_actions_per_pass: usize,
    /// Keys examined in one pass at most (bounds a pass over a huge bucket with nothing due).
    pub max_keys_per_pass: usize,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            interval_secs: 3600,
            max_actions_per_pass: 1000,
            max_keys_per_pass: 100_000,
        }
    }
}

/// How drain, rebalance and verify jobs run (`[jobs]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Objects a job works on at once.
    pub concurrency: usize,
    /// Bytes per second a job may copy between backends; 0 = no limit.
    pub bytes_per_sec: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 4,
            bytes_per_sec: 0,
        }
    }
}

/// The repair queue and anti-entropy (`[repair]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairConfig {
    /// Repairs running at once per backend.
    pub concurrency: usize,
    /// Bytes per second a backend's repairs may write; 0 = no limit.
    pub bytes_per_sec: u64,
    /// A failed repair is retried after 1 s, 2 s, 4 s … up to this long.
    pub max_backoff_secs: u64,
    /// How often every backend's listing is compared with the index; 0 = only on demand.
    pub anti_entropy_interval_secs: u64,
    /// An object under Hansa's names that the index does not know is removed only once it is
    /// this old (a write may still be on its way).
    pub orphan_grace_secs: u64,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            concurrency: 4,
            bytes_per_sec: 0,
            max_backoff_secs: 300,
            anti_entropy_interval_secs: 6 * 3600,
            orphan_grace_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-HTTP listeners.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    pub tls: Option<TlsConfig>,
    /// Where the index (and, in the embedded default, the generated credentials) live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The region clients sign for and GetBucketLocation reports.
    #[serde(default = "default_region")]
    pub region: String,
    /// Base domains for virtual-host addressing: `bucket.<domain>`.
    #[serde(default)]
    pub base_domains: Vec<String>,
    /// Accept AWS Signature Version 2 (header and query forms) beside SigV4. On by default:
    /// older tools and boto3's default presigned URLs sign V2. Off, a V2 request gets the
    /// `InvalidRequest` a V4-only S3 region answers.
    #[serde(default = "default_true")]
    pub signature_v2: bool,
    /// Start with an empty index although a backend holds Hansa's data (`hansa serve
    /// --allow-empty-index`); see `store::check_startup`.
    #[serde(default)]
    pub allow_empty_index: bool,
    /// Start although objects have present replicas only on backends no longer configured
    /// (`hansa serve --force`).
    #[serde(default)]
    pub force_start: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            tls: None,
            data_dir: default_data_dir(),
            region: default_region(),
            base_domains: Vec::new(),
            signature_v2: true,
            allow_empty_index: false,
            force_start: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Bytes of request bodies buffered across all requests at once; writers wait beyond it.
    #[serde(default = "default_inflight")]
    pub inflight_bytes: u64,
    /// Size of the buffers a body is read into and shared by all replicas.
    #[serde(default = "default_chunk")]
    pub chunk_bytes: usize,
    /// A client must send its request headers within this many seconds.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Client connections open at once, plain and TLS together. The gateway admits at most
    /// this many, and never more than fit its open-file limit: what a reserve of a quarter of
    /// the limit (64 to 1024 descriptors) leaves, divided by 1 + the number of backends (a
    /// write in flight holds its connection and a file or socket per target). At the cap, the
    /// connection idle the longest is closed to make room; with none idle, a new connection
    /// gets 503 SlowDown. Default: 4096
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection with no request in flight is closed after this many seconds without a
    /// new request (on HTTP/1.1: without a byte from the client). HTTP/1.1 connections are
    /// also closed when the next request's headers do not arrive within
    /// `header_timeout_secs`. Default: 20
    #[serde(default = "default_keepalive_idle")]
    pub keepalive_idle_secs: u64,
    /// A request body that sends nothing for this many seconds fails with RequestTimeout.
    #[serde(default = "default_body_timeout")]
    pub body_idle_timeout_secs: u64,
    /// A backend call that should be quick (open a read, HEAD, publish, delete) and has not
    /// answered after this many seconds counts as failed: reads go to the next replica,
    /// writes go on without it. Body transfers fail after this long without progress.
    #[serde(default = "default_backend_timeout")]
    pub backend_timeout_secs: u64,
    /// A publish (a rename, a multipart completion, a server-side copy) that has not
    /// finished after this many seconds counts as failed; the replica stays staged and is
    /// published later.
    #[serde(default = "default_publish_timeout")]
    pub publish_timeout_secs: u64,
    /// Once the write quorum has staged a write, the other targets get at most this many
    /// milliseconds (and at most half the time the write took so far) before the client is
    /// answered; they finish in the background.
    #[serde(default = "default_straggler_grace")]
    pub straggler_grace_ms: u64,
    /// Buffers a target may fall behind the write quorum before it is cut from a write (its
    /// replica is then pending): the slowest provider never sets the upload rate.
    #[serde(default = "default_max_lag")]
    pub max_lag_buffers: usize,
    /// Staged copies that no write holds (left by a crash) are removed once this old.
    #[serde(default = "default_staging_max_age")]
    pub staging_max_age_secs: u64,
    /// sled's page cache.
    #[serde(default = "default_index_cache")]
    pub index_cache_bytes: u64,
    /// Largest request XML document accepted (DeleteObjects, CreateBucket...).
    #[serde(default = "default_xml_limit")]
    pub max_xml_bytes: usize,
    /// A request body (object, part or XML document) must average at least this many bytes
    /// per second, or it fails with RequestTimeout and releases what it held: a stalled or
    /// trickling client cannot keep memory, budget and a connection for ever. Measured only
    /// while the gateway waits for the client (not while it waits for budget or backends),
    /// after a grace of `min_body_rate_window_secs`; 0 turns the check off. Default 4096.
    #[serde(default = "default_min_body_rate")]
    pub min_body_bytes_per_sec: u64,
    /// The window the minimum body rate is averaged over: a body is cut once it has fallen
    /// this many seconds behind the minimum rate; a fast start banks at most this much
    /// credit. Also the grace a body gets before its first byte. Default 20.
    #[serde(default = "default_min_body_rate_window")]
    pub min_body_rate_window_secs: u64,
    /// How long a request waits for in-flight budget (`inflight_bytes`) before it fails with
    /// 503 SlowDown. Default 10000.
    #[serde(default = "default_budget_wait")]
    pub budget_wait_ms: u64,
    /// The largest fraction of `inflight_bytes` the requests of one access key may hold at
    /// once (0 < share ≤ 1; at least one `chunk_bytes`), so that no one credential can starve
    /// the others. Default 0.5.
    #[serde(default = "default_budget_share")]
    pub max_budget_share_per_credential: f64,
    /// Multipart uploads neither completed nor aborted this long after they started are
    /// aborted, and their parts removed from every backend.
    #[serde(default = "default_upload_max_age")]
    pub upload_max_age_secs: u64,
    /// How often the gateway does its upkeep: aborting such uploads, publishing copies a
    /// failed publish left staged, removing staged copies no write holds.
    #[serde(default = "default_upload_cleanup_interval")]
    pub upload_cleanup_interval_secs: u64,
    /// On SIGTERM or Ctrl-C the gateway stops accepting and lets requests in flight finish
    /// for at most this many seconds; then it closes what remains (those clients see the
    /// connection end, never a success for a write that did not commit). Default 30.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inflight_bytes: default_inflight(),
            chunk_bytes: default_chunk(),
            header_timeout_secs: default_header_timeout(),
            max_connections: default_max_connections(),
            keepalive_idle_secs: default_keepalive_idle(),
            body_idle_timeout_secs: default_body_timeout(),
            backend_timeout_secs: default_backend_timeout(),
            publish_timeout_secs: default_publish_timeout(),
            straggler_grace_ms: default_straggler_grace(),
            max_lag_buffers: default_max_lag(),
            staging_max_age_secs: default_staging_max_age(),
            index_cache_bytes: default_index_cache(),
            max_xml_bytes: default_xml_limit(),
            min_body_bytes_per_sec: default_min_body_rate(),
            min_body_rate_window_secs: default_min_body_rate_window(),
            budget_wait_ms: default_budget_wait(),
            max_budget_share_per_credential: default_budget_share(),
            upload_max_age_secs: default_upload_max_age(),
            upload_cleanup_interval_secs: default_upload_cleanup_interval(),
            shutdown_grace_secs: default_shutdown_grace(),
        }
    }
}

/// `[health]`: how backends are probed, and when a backend's circuit opens. While a circuit
/// is open the backend's calls fail at once (reads go to the next replica, writes go on with
/// the others and record that replica pending) instead of waiting for timeouts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Every backend is probed this often (write, read back and delete a small object under
    /// `.hansa/`), with or without traffic. Default 5000: on a cloud provider each probe is
    /// three billed requests, about 52,000 a day per backend at this interval.
    #[serde(default = "default_probe_interval")]
    pub probe_interval_ms: u64,
    /// A probe that has not finished after this long failed. Default 5000.
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout_ms: u64,
    /// Failures in a row — of requests (provider errors, calls given up after the backend
    /// timeout) or of probes — that open a backend's circuit; any healthy answer resets the
    /// count. Default 5.
    #[serde(default = "default_failures_to_open")]
    pub failures_to_open: u32,
    /// An open circuit refuses every call this long; then the next probe decides: passing,
    /// it closes; failing, it opens for this long again. Default 10000.
    #[serde(default = "default_open_for")]
    pub open_for_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval_ms: default_probe_interval(),
            probe_timeout_ms: default_probe_timeout(),
            failures_to_open: default_failures_to_open(),
            open_for_ms: default_open_for(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    pub access_key_id: String,
    pub secret_access_key: Option<String>,
    /// Name of an environment variable holding the secret.
    pub secret_access_key_env: Option<String>,
    /// Buckets this key may use; all when absent.
    pub buckets: Option<Vec<String>>,
    #[serde(default)]
    pub read_only: bool,
}

/// `[rate_limit.<access key id>]`: how fast one credential may go. Each limit is a token bucket
/// that holds one second's worth, so a key may burst to its per-second figure and then keeps
/// to the rate on average. Off unless configured.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second; beyond it, 503 SlowDown (S3 clients back off and retry).
    pub requests_per_sec: Option<f64>,
    /// Request-body bytes per second (objects, parts, XML documents): bodies are read no
    /// faster than this, so the client is slowed by TCP back-pressure rather than failed.
    /// Time spent throttled does not count against `limits.min_body_bytes_per_sec`.
    pub bytes_per_sec: Option<u64>,
}

/// One `[[backend]]`. `id`, `kind`, `tags` are common; `local` takes `path`; `s3`, `gcs` and
/// `azure` take the fields of [`CloudConfig`] (bucket, prefix, preset, credentials, timeouts).
/// Unknown fields are refused, per kind. `Debug` masks secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct BackendConfig {
    pub id: String,
    pub kind: BackendKind,
    /// `local`: the directory that holds this backend's copies.
    pub path: Option<PathBuf>,
    pub tags: BTreeMap<String, String>,
    /// `s3`, `gcs`, `azure`: everything else about the store.
    pub cloud: Option<CloudConfig>,
    /// Injected faults (tests, demonstrations): present, even empty, makes the backend
    /// switchable at run time; see `hansa_backends::faults`.
    pub faults: Option<FaultPlan>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Local,
    Memory,
    S3,
    Gcs,
    Azure,
}

/// The cloud kinds' fields live in the backends crate ([`CloudConfig`]); serde cannot combine
/// `flatten` with `deny_unknown_fields`, so the table is split here: common fields taken out,
/// the rest handed to the kind's own (strict) deserializer.
impl TryFrom<toml::Table> for BackendConfig {
    type Error = String;

    fn try_from(mut table: toml::Table) -> Result<Self, String> {
        let id = match table.remove("id") {
            Some(toml::Value::String(id)) => id,
            Some(_) => return Err("backend id: must be a string".into()),
            None => return Err("backend: missing field `id`".into()),
        };
        let kind: BackendKind = table
            .get("kind")
            .cloned()
            .ok_or_else(|| format!("backend {id:?}: missing field `kind`"))?
            .try_into()
            .map_err(|e| format!("backend {id:?}: kind: {e}"))?;
        let tags = match table.remove("tags") {
            Some(v) => v
                .try_into()
                .map_err(|e| format!("backend {id:?}: tags: {e}"))?,
            None => BTreeMap::new(),
        };
        let faults = table
            .remove("faults")
            .map(|v| v.try_into::<FaultPlan>())
            .transpose()
            .map_err(|e| format!("backend {id:?}: faults: {e}"))?;
        let (path, cloud) = match kind {
            BackendKind::Local | BackendKind::Memory => {
                table.remove("kind");
                let path = table
                    .remove("path")
                    .map(|v| v.try_into::<PathBuf>())
                    .transpose()
                    .map_err(|e| format!("backend {id:?}: path: {e}"))?;
                if let Some(field) = table.keys().next() {
                    return Err(format!(
                        "backend {id:?}: unknown field `{field}` for kind {kind:?}"
                    ));
                }
                (path, None)
            }
            BackendKind::S3 | BackendKind::Gcs | BackendKind::Azure => {
                if table.contains_key("path") {
                    return Err(format!(
                        "backend {id:?}: `path` is for local backends (cloud kinds take bucket and prefix)"
                    ));
                }
                let cloud: CloudConfig = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e| format!("backend {id:?}: {e}"))?;
                (None, Some(cloud))
            }
        };
        Ok(BackendConfig {
            id,
            kind,
            path,
            tags,
            cloud,
            faults,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Backends this policy may place replicas on; every backend when absent.
    pub backends: Option<Vec<String>>,
    /// Copies of each object; all of the policy's backends when absent.
    pub replicas: Option<usize>,
    /// Copies that must hold the bytes before the client gets its 200; all replicas when absent.
    pub write_quorum: Option<usize>,
    /// Reads: backends tried first, in this order (the others follow), or `"latency"` (lowest
    /// observed latency first).
    #[serde(default)]
    pub read_order: ReadOrder,
    /// Members are only the backends whose tags match all these pairs
    /// (`only = { jurisdiction = "eu" }`).
    pub only: Option<TagMatch>,
    /// No two replicas of an object on backends sharing a value of this tag
    /// (`spread = "provider"`); a backend without the tag conflicts with none.
    pub spread: Option<Spread>,
    /// At least `min` replicas on backends matching the pairs
    /// (`require = [{ jurisdiction = "eu", min = 1 }]`).
    #[serde(default)]
    pub require: Vec<Requirement>,
}

impl PolicyConfig {
    /// The policy's rules over backend tags.
    pub fn rules(&self) -> Rules {
        Rules {
            only: self.only.clone(),
            spread: self.spread.clone(),
            require: self.require.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub policy: String,
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 9000))]
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./hansa-data")
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_true() -> bool {
    true
}
fn default_inflight() -> u64 {
    512 << 20
}
fn default_chunk() -> usize {
    8 << 20
}
fn default_header_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    4096
}
fn default_keepalive_idle() -> u64 {
    20
}
fn default_body_timeout() -> u64 {
    60
}
fn default_backend_timeout() -> u64 {
    10
}
fn default_publish_timeout() -> u64 {
    120
}
fn default_straggler_grace() -> u64 {
    2000
}
fn default_max_lag() -> usize {
    2
}
fn default_staging_max_age() -> u64 {
    3600
}
fn default_index_cache() -> u64 {
    32 << 20
}
fn default_upload_max_age() -> u64 {
    7 * 24 * 3600
}

fn default_upload_cleanup_interval() -> u64 {
    300
}

fn default_shutdown_grace() -> u64 {
    30
}

fn default_xml_limit() -> usize {
    2 << 20
}

fn default_min_body_rate() -> u64 {
    4096
}

fn default_min_body_rate_window() -> u64 {
    20
}

fn default_budget_wait() -> u64 {
    10_000
}

fn default_budget_share() -> f64 {
    0.5
}

fn default_probe_interval() -> u64 {
    5000
}

fn default_probe_timeout() -> u64 {
    5000
}

fn default_failures_to_open() -> u32 {
    5
}

fn default_open_for() -> u64 {
    10_000
}

pub const DEFAULT_POLICY: &str = "default";

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9001))
}

/// `[admin]`: the admin plane's listener (JSON over HTTP, see docs/ADMIN.md). Every request
/// needs the bearer token, given in exactly one of `token`, `token_env` and `token_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawAdminConfig")]
pub struct AdminConfig {
    /// `enabled = false` keeps the section but opens no listener.
    pub enabled: bool,
    pub listen: SocketAddr,
    pub token: AdminToken,
    /// The embedded default's listener only: when its address is taken (another gateway on
    /// the machine), the gateway starts without it and says so. A configured one must bind.
    pub optional: bool,
}

/// Where the admin token comes from. `Debug` masks an inline token.
#[derive(Clone, PartialEq, Eq)]
pub enum AdminToken {
    Inline(String),
    /// The name of an environment variable holding it.
    Env(String),
    /// A file holding it (read at start, trimmed; must not be readable by others).
    File(PathBuf),
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminToken::Inline(_) => f.write_str("Inline(***)"),
            AdminToken::Env(var) => f.debug_tuple("Env").field(var).finish(),
            AdminToken::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Why an admin token could not be had: the `[admin]` field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenProblem {
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "admin.{}: {}", self.field, self.problem)
    }
}

impl AdminToken {
    /// The token itself: from the file, the environment or the configuration. Refused when
    /// empty, or when the file is readable by every user of the machine.
    pub fn resolve(&self) -> Result<String, TokenProblem> {
        let problem = |field, problem: String| TokenProblem { field, problem };
        let token = match self {
            AdminToken::Inline(t) => t.trim().to_string(),
            AdminToken::Env(var) => std::env::var(var)
                .map_err(|_| {
                    problem(
                        "token_env",
                        format!("environment variable {var} is not set"),
                    )
                })?
                .trim()
                .to_string(),
            AdminToken::File(path) => {
                read_token_file(path).map_err(|p| problem("token_file", p))?
            }
        };
        if token.is_empty() {
            let field = match self {
                AdminToken::Inline(_) => "token",
                AdminToken::Env(_) => "token_env",
                AdminToken::File(_) => "token_file",
            };
            return Err(problem(field, "the token is empty".into()));
        }
        Ok(token)
    }
}

/// Reads a token file, refusing one that every user may read: the token is the whole of the
/// admin plane's protection.
pub fn read_token_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(format!(
            "{} is readable by every user: chmod o-r (0600 is best)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.trim().to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdminConfig {
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default = "default_admin_listen")]
    listen: SocketAddr,
    token: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

fn enabled_by_default() -> bool {
    true
}

impl TryFrom<RawAdminConfig> for AdminConfig {
    type Error = String;

    fn try_from(raw: RawAdminConfig) -> Result<Self, String> {
        let token = match (raw.token, raw.token_env, raw.token_file) {
            (Some(t), None, None) => AdminToken::Inline(t),
            (None, Some(var), None) => AdminToken::Env(var),
            (None, None, Some(path)) => AdminToken::File(path),
            _ => {
                return Err("admin: give exactly one of token, token_env and token_file".to_string())
            }
        };
        Ok(AdminConfig {
            enabled: raw.enabled,
            listen: raw.listen,
            token,
            optional: false,
        })
    }
}

/// Whether secrets named by environment variables must be set for a configuration to be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    /// Serving: a key without its secret would refuse every request.
    Required,
    /// Inspecting: nothing is signed or verified.
    NotNeeded,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read_file(path, Secrets::Required)
    }

    /// [`Config::from_file`] for commands that only inspect (`hansa explain`): everything is
    /// validated except that secrets named by environment variables need not be set, since
    /// an operator's shell rarely has the gateway's environment.
    pub fn from_file_for_inspection(path: &Path) -> Result<Config, ConfigError> {
        Config::read_file(path, Secrets::NotNeeded)
    }

    fn read_file(path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::parse(&file, &text, secrets)
    }

    pub fn from_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse(file, text, Secrets::Required)
    }

    /// Validates a configuration put together in code (a reload's effective configuration:
    /// the new file's live part with the running backends).
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        self.validate(file, Secrets::Required)
    }

    fn parse(file: &str, text: &str, secrets: Secrets) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        config.validate(file, secrets)?;
        Ok(config)
    }

    /// The embedded default: two local backends under the data directory, two replicas.
    /// Credentials are added by the caller (generated on first start).
    pub fn embedded(data_dir: PathBuf, listen: SocketAddr) -> Config {
        let backend = |id: &str| BackendConfig {
            id: id.to_string(),
            kind: BackendKind::Local,
            path: Some(data_dir.join("backends").join(id)),
            tags: BTreeMap::new(),
            cloud: None,
            faults: None,
        };
        Config {
            server: ServerConfig {
                listen: vec![listen],
                data_dir: data_dir.clone(),
                ..ServerConfig::default()
            },
            limits: Limits::default(),
            health: HealthConfig::default(),
            credentials: Vec::new(),
            rate_limits: BTreeMap::new(),
            backends: vec![backend("disk-a"), backend("disk-b")],
            policies: BTreeMap::new(),
            buckets: BTreeMap::new(),
            repair: RepairConfig::default(),
            jobs: JobsConfig::default(),
            lifecycle: LifecycleConfig::default(),
            // The token file is created by `generated_admin_token` before the gateway starts.
            admin: Some(AdminConfig {
                enabled: true,
                listen: default_admin_listen(),
                token: AdminToken::File(data_dir.join(ADMIN_TOKEN_FILE)),
                optional: true,
            }),
            metrics: MetricsConfig::default(),
        }
    }

    fn validate(&self, file: &str, secrets: Secrets) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String| ConfigError::Invalid {
            file: file.to_string(),
            field,
            problem,
        };
        if self.server.listen.is_empty() && self.server.tls.is_none() {
            return Err(invalid(
                "server.listen".into(),
                "no listener: give at least one address here or in server.tls.listen".into(),
            ));
        }
        // Buffers double as multipart parts on object stores, whose minimum part is 5 MiB.
        if self.limits.chunk_bytes < 5 << 20 || self.limits.chunk_bytes > 64 << 20 {
            return Err(invalid(
                "limits.chunk_bytes".into(),
                "must be between 5 MiB and 64 MiB".into(),
            ));
        }
        if self.limits.inflight_bytes < 2 * self.limits.chunk_bytes as u64 {
            return Err(invalid(
                "limits.inflight_bytes".into(),
                "must hold at least two chunks (2 × limits.chunk_bytes)".into(),
            ));
        }
        let share = self.limits.max_budget_share_per_credential;
        if !(share > 0.0 && share <= 1.0) {
            return Err(invalid(
                "limits.max_budget_share_per_credential".into(),
                "must be greater than 0 and at most 1".into(),
            ));
        }
        if share * (self.limits.inflight_bytes as f64) < self.limits.chunk_bytes as f64 {
            return Err(invalid(
                "limits.max_budget_share_per_credential".into(),
                "must leave each credential at least one chunk (limits.chunk_bytes) of limits.inflight_bytes".into(),
            ));
        }
        if self.limits.min_body_bytes_per_sec > 0 && self.limits.min_body_rate_window_secs == 0 {
            return Err(invalid(
                "limits.min_body_rate_window_secs".into(),
                "must be at least 1 when limits.min_body_bytes_per_sec is set".into(),
            ));
        }
        let health = &self.health;
        for (field, value, least) in [
            ("health.probe_interval_ms", health.probe_interval_ms, 10),
            ("health.probe_timeout_ms", health.probe_timeout_ms, 1),
            ("health.open_for_ms", health.open_for_ms, 1),
            (
                "health.failures_to_open",
                u64::from(health.failures_to_open),
                1,
            ),
        ] {
            if value < least {
                return Err(invalid(field.into(), format!("must be at least {least}")));
            }
        }
        let mut keys = HashSet::new();
        for (i, c) in self.credentials.iter().enumerate() {
            let field = |f: &str| format!("credential[{i}].{f}");
            if c.access_key_id.len() < 3
                || !c.access_key_id.chars().all(|ch| ch.is_ascii_alphanumeric())
            {
                return Err(invalid(
                    field("access_key_id"),
                    "must be at least 3 ASCII letters or digits".into(),
                ));
            }
            if !keys.insert(&c.access_key_id) {
                return Err(invalid(field("access_key_id"), "appears twice".into()));
            }
            match (&c.secret_access_key, &c.secret_access_key_env) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        field("secret_access_key"),
                        "give either secret_access_key or secret_access_key_env, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(invalid(
                        field("secret_access_key"),
                        "missing (or name an environment variable in secret_access_key_env)".into(),
                    ))
                }
                (Some(secret), None) if secret.is_empty() => {
                    return Err(invalid(
                        field("secret_access_key"),
                        "is empty (an empty secret signs every request)".into(),
                    ))
                }
                (None, Some(var))
                    if secrets == Secrets::Required
                        && std::env::var(var).map_or(true, |v| v.is_empty()) =>
                {
                    return Err(invalid(
                        field("secret_access_key_env"),
                        format!("environment variable {var} is not set"),
                    ))
                }
                _ => {}
            }
        }
        for (key, rate) in &self.rate_limits {
            let field = |f: &str| format!("rate_limit.{key}.{f}");
            if !keys.contains(key) {
                return Err(invalid(
                    format!("rate_limit.{key}"),
                    "names no configured [[credential]] access_key_id".into(),
                ));
            }
            if let Some(r) = rate.requests_per_sec {
                if !(r.is_finite() && r > 0.0) {
                    return Err(invalid(
                        field("requests_per_sec"),
                        "must be a positive number (leave it out for no limit)".into(),
                    ));
                }
            }
            if rate.bytes_per_sec == Some(0) {
                return Err(invalid(
                    field("bytes_per_sec"),
                    "must be at least 1 (leave it out for no limit)".into(),
                ));
            }
        }
        let mut ids = HashSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            let field = |f: &str| format!("backend[{i}].{f}");
            if b.id.is_empty()
                || !b
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    field("id"),
                    "must be non-empty ASCII letters, digits, '-' or '_'".into(),
                ));
            }
            if !ids.insert(b.id.as_str()) {
                return Err(invalid(field("id"), format!("{:?} appears twice", b.id)));
            }
            if b.kind == BackendKind::Local && b.path.is_none() {
                return Err(invalid(
                    field("path"),
                    "a local backend needs a path".into(),
                ));
            }
            if let Some(cloud) = &b.cloud {
                cloud
                    .validate()
                    .map_err(|e| invalid(field(&e.field), e.problem))?;
            }
        }
        if self.backends.is_empty() {
            return Err(invalid(
                "backend".into(),
                "no backends: configure at least one [[backend]]".into(),
            ));
        }
        for (name, p) in &self.policies {
            let field = |f: &str| format!("policy.{name}.{f}");
            let listed: Vec<&str> = match &p.backends {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => self.backends.iter().map(|b| b.id.as_str()).collect(),
            };
            for (rule, id) in listed.iter().map(|id| ("backends", *id)).chain(
                p.read_order
                    .listed()
                    .iter()
                    .map(|id| ("read_order", id.as_str())),
            ) {
                if !ids.contains(id) {
                    return Err(invalid(
                        field(rule),
                        format!("policy {name:?}: {rule} names unknown backend {id:?}"),
                    ));
                }
            }
            let mut seen = HashSet::new();
            if let Some(id) = listed.iter().find(|id| !seen.insert(**id)) {
                return Err(invalid(
                    field("backends"),
                    format!("policy {name:?}: backend {id:?} is listed twice"),
                ));
            }
            let members = listed.len();
            let replicas = p.replicas.unwrap_or(members);
            if replicas == 0 {
                return Err(invalid(
                    field("replicas"),
                    format!("policy {name:?}: replicas must be at least 1"),
                ));
            }
            let tagged: Vec<(&str, &BTreeMap<String, String>)> = listed
                .iter()
                .filter_map(|id| self.backends.iter().find(|b| b.id == *id))
                .map(|b| (b.id.as_str(), &b.tags))
                .collect();
            // `replicas` defaults to every member, and `only` may admit fewer than listed.
            let replicas = match (&p.only, p.replicas) {
                (Some(only), None) => tagged
                    .iter()
                    .filter(|(_, t)| only.matches(t))
                    .count()
                    .max(1),
                _ => replicas,
            };
            check_policy(name, &tagged, replicas, &p.rules())
                .map_err(|problem| invalid(field(problem.rule), problem.message))?;
            let quorum = p.write_quorum.unwrap_or(replicas);
            if quorum == 0 || quorum > replicas {
                return Err(invalid(
                    field("write_quorum"),
                    format!(
                        "policy {name:?}: write_quorum {quorum} must be between 1 and replicas ({replicas})"
                    ),
                ));
            }
        }
        if let Some(admin) = self.admin.as_ref().filter(|a| a.enabled) {
            if let AdminToken::Inline(token) = &admin.token {
                if token.trim().is_empty() {
                    return Err(invalid(
                        "admin.token".into(),
                        "is empty (an empty token would let anyone in)".into(),
                    ));
                }
            }
            if secrets == Secrets::Required {
                admin
                    .token
                    .resolve()
                    .map_err(|e| invalid(format!("admin.{}", e.field), e.problem))?;
            }
        }
        if let Some(addr) = self.metrics.listen {
            self.check_metrics_listen(addr)
                .map_err(|problem| invalid("metrics.listen".into(), problem))?;
        }
        for (bucket, b) in &self.buckets {
            if b.policy != DEFAULT_POLICY && !self.policies.contains_key(&b.policy) {
                return Err(invalid(
                    format!("bucket.{bucket}.policy"),
                    format!("unknown policy {:?}", b.policy),
                ));
            }
        }
        Ok(())
    }

    /// The metrics listener must not take an address another listener has (port 0, any
    /// free port, never clashes).
    fn check_metrics_listen(&self, addr: SocketAddr) -> Result<(), String> {
        if addr.port() == 0 {
            return Ok(());
        }
        let s3 = self.server.listen.iter().map(|a| (a, "server.listen"));
        let tls = self
            .server
            .tls
            .iter()
            .flat_map(|t| t.listen.iter().map(|a| (a, "server.tls.listen")));
        let admin = self
            .admin
            .iter()
            .filter(|a| a.enabled)
            .map(|a| (&a.listen, "admin.listen"));
        match s3.chain(tls).chain(admin).find(|(a, _)| **a == addr) {
            Some((_, other)) => Err(format!(
                "{addr} is also {other}: give the metrics listener an address of its own, or \
                 leave it out (the admin listener serves /metrics too)"
            )),
            None => Ok(()),
        }
    }

    /// Credentials with their secrets resolved from the environment.
    pub fn resolved_credentials(&self) -> Vec<Credential> {
        self.credentials
            .iter()
            .map(|c| Credential {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c
                    .secret_access_key
                    .clone()
                    .or_else(|| {
                        c.secret_access_key_env
                            .as_ref()
                            .and_then(|v| std::env::var(v).ok())
                    })
                    .unwrap_or_default(),
                buckets: c.buckets.clone(),
                read_only: c.read_only,
            })
            .collect()
    }
}

/// Generated credentials of the embedded default, kept in the data directory.
pub struct GeneratedKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub file: PathBuf,
    /// True when this start created the key (the only time the secret is printed).
    pub created: bool,
}

const KEY_FILE: &str = "credentials.toml";

/// Loads the data directory's generated key, creating it (mode 0600) on first start.
pub fn generated_key(data_dir: &Path) -> Result<GeneratedKey, ConfigError> {
    let file = data_dir.join(KEY_FILE);
    let dir_err = |problem: String| ConfigError::DataDir {
        path: file.display().to_string(),
        problem,
    };
    if file.exists() {
        let text = std::fs::read_to_string(&file).map_err(|e| dir_err(e.to_string()))?;
        #[derive(Deserialize)]
        struct Stored {
            access_key_id: String,
            secret_access_key: String,
        }
        let stored: Stored = toml::from_str(&text).map_err(|e| dir_err(e.to_string()))?;
        return Ok(GeneratedKey {
            access_key_id: stored.access_key_id,
            secret_access_key: stored.secret_access_key,
            file,
            created: false,
        });
    }
    std::fs::create_dir_all(data_dir).map_err(|e| dir_err(e.to_string()))?;
    let access_key_id = format!(
        "HANSA{}",
        random_string(15, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    let secret_access_key = random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    );
    let text = format!(
        "# Generated by `hansa serve` on first start. Keep this file private.\n\
         access_key_id = \"{access_key_id}\"\nsecret_access_key = \"{secret_access_key}\"\n"
    );
    write_private(&file, text.as_bytes()).map_err(|e| dir_err(e.to_string()))?;
    Ok(GeneratedKey {
        access_key_id,
        secret_access_key,
        file,
        created: true,
    })
}

/// The embedded default's admin token, beside its generated key.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Makes sure the data directory holds an admin token (mode 0600), creating a random one on
/// first start and reusing it after; returns the file and whether this call created it.
pub fn generated_admin_token(data_dir: &Path) -> Result<(PathBuf, bool), ConfigError> {
    let file = data_dir.join(ADMIN_TOKEN_FILE);
    if file.exists() {
        return Ok((file, false));
    }
    let dir_err = |problem: String| ConfigError::DataDir {
        path: file.display().to_string(),
        problem,
    };
    std::fs::create_dir_all(data_dir).map_err(|e| dir_err(e.to_string()))?;
    let token = random_string(
        48,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    );
    write_private(&file, format!("{token}\n").as_bytes()).map_err(|e| dir_err(e.to_string()))?;
    Ok((file, true))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml("test.toml", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_field_and_problem() {
        let e = err("[[backend]]\nid = \"a\"\nkind = \"local\"\n");
        assert_eq!(
            e,
            "test.toml: backend[0].path: a local backend needs a path"
        );
        let e = err("[[backend]]\nid = \"a\"\nkind = \"floppy\"\npath = \"/x\"\n");
        assert!(e.starts_with("test.toml: ") && e.contains("floppy"), "{e}");
        let e = err("[[backend]]\nid = \"a\"\nkind = \"memory\"\n[policy.p]\nreplicas = 2\n");
        assert!(e.contains("policy.p.replicas"), "{e}");
        let e = err("[[backend]]\nid = \"a\"\nkind = \"memory\"\n[bucket.x]\npolicy = \"nope\"\n");
        assert!(e.contains("bucket.x.policy") && e.contains("nope"), "{e}");
        let e = err("bogus = 1\n");
        assert!(e.contains("bogus"), "{e}");
        let e = err("[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"\"\n");
        assert!(
            e.contains("credential[0].secret_access_key: is empty"),
            "{e}"
        );
    }

    #[test]
    fn cloud_backends_parse_validate_and_mask_secrets() {
        let config = Config::from_toml(
            "test.toml",
            "[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"s\"\n\
             [[backend]]\nid = \"scw\"\nkind = \"s3\"\npreset = \"scaleway\"\n\
             region = \"fr-par\"\nbucket = \"b\"\naccess_key_id = \"AKID\"\n\
             secret_access_key = \"topsecretvalue\"\ntags = { provider = \"scaleway\" }\n\
             [[backend]]\nid = \"az\"\nkind = \"azure\"\naccount = \"acc\"\n\
             container = \"c\"\nsas_token_env = \"SAS\"\n\
             [[backend]]\nid = \"g\"\nkind = \"gcs\"\nbucket = \"b\"\n",
        )
        .expect("cloud config");
        assert_eq!(config.backends[0].kind, BackendKind::S3);
        assert_eq!(config.backends[0].tags["provider"], "scaleway");
        assert_eq!(config.backends[1].kind, BackendKind::Azure);
        let dump = format!("{config:?}");
        assert!(!dump.contains("topsecretvalue"), "{dump}");
        let err = |text: &str| {
            Config::from_toml("test.toml", text)
                .unwrap_err()
                .to_string()
        };
        let e = err("[[backend]]\nid = \"a\"\nkind = \"s3\"\npreset = \"ovh\"\nbucket = \"b\"\n");
        assert!(e.contains("backend[0].region"), "{e}");
        let e = err("[[backend]]\nid = \"a\"\nkind = \"s3\"\nbucket = \"b\"\nbukket = 1\n");
        assert!(e.contains("bukket"), "{e}");
        let e = err("[[backend]]\nid = \"a\"\nkind = \"local\"\npath = \"/x\"\nbucket = \"b\"\n");
        assert!(e.contains("unknown field `bucket`"), "{e}");
        let e = err("[[backend]]\nid = \"a\"\nkind = \"gcs\"\nbucket = \"b\"\npreset = \"aws\"\n");
        assert!(e.contains("backend[0].preset"), "{e}");
    }

    #[test]
    fn budget_and_rate_limits_are_validated() {
        let base = "[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"s\"\n\
                    [[backend]]\nid = \"a\"\nkind = \"memory\"\n";
        let with = |extra: &str| Config::from_toml("test.toml", &format!("{base}{extra}"));
        let e = with("[limits]\nmax_budget_share_per_credential = 0.0\n").unwrap_err();
        assert!(
            e.to_string().contains("max_budget_share_per_credential"),
            "{e}"
        );
        let e = with("[limits]\nmax_budget_share_per_credential = 1.5\n").unwrap_err();
        assert!(
            e.to_string().contains("max_budget_share_per_credential"),
            "{e}"
        );
        // A share smaller than one buffer could never fill one.
        let e =
            with("[limits]\ninflight_bytes = 16777216\nmax_budget_share_per_credential = 0.25\n")
                .unwrap_err();
        assert!(e.to_string().contains("at least one chunk"), "{e}");
        let e = with("[limits]\nmin_body_rate_window_secs = 0\n").unwrap_err();
        assert!(e.to_string().contains("min_body_rate_window_secs"), "{e}");
        let e = with("[rate_limit.nobody]\nrequests_per_sec = 1\n").unwrap_err();
        assert!(e.to_string().contains("rate_limit.nobody"), "{e}");
        let e = with("[rate_limit.abc]\nrequests_per_sec = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("rate_limit.abc.requests_per_sec"),
            "{e}"
        );
        let e = with("[rate_limit.abc]\nbytes_per_sec = 0\n").unwrap_err();
        assert!(
            e.to_string().contains("rate_limit.abc.bytes_per_sec"),
            "{e}"
        );
        let e = with("[rate_limit.abc]\nburst = 3\n").unwrap_err();
        assert!(e.to_string().contains("burst"), "{e}");
        let ok = with("[rate_limit.abc]\nrequests_per_sec = 2.5\nbytes_per_sec = 1000\n").unwrap();
        assert_eq!(ok.rate_limits["abc"].requests_per_sec, Some(2.5));
        let e = with("[health]\nprobe_interval_ms = 0\n").unwrap_err();
        assert!(e.to_string().contains("health.probe_interval_ms"), "{e}");
        let e = with("[health]\nfailures_to_open = 0\n").unwrap_err();
        assert!(e.to_string().contains("health.failures_to_open"), "{e}");
        let e = with("[health]\nprobe_every = 1\n").unwrap_err();
        assert!(e.to_string().contains("probe_every"), "{e}");
        let health = with("[health]\nprobe_interval_ms = 100\nopen_for_ms = 500\n")
            .unwrap()
            .health;
        assert_eq!((health.probe_interval_ms, health.open_for_ms), (100, 500));
        assert_eq!(with("").unwrap().health, HealthConfig::default());
        assert_eq!(HealthConfig::default().failures_to_open, 5);
        assert_eq!(HealthConfig::default().probe_interval_ms, 5000);
        let defaults = with("").unwrap().limits;
        assert_eq!(defaults.min_body_bytes_per_sec, 4096);
        assert_eq!(defaults.budget_wait_ms, 10_000);
        assert_eq!(defaults.max_budget_share_per_credential, 0.5);
    }

    #[test]
    fn inspection_needs_no_secrets_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.toml");
        std::fs::write(
            &file,
            "[[credential]]\naccess_key_id = \"abc\"\n\
             secret_access_key_env = \"HANSA_TEST_SURELY_UNSET_SECRET\"\n\
             [[backend]]\nid = \"a\"\nkind = \"memory\"\n",
        )
        .unwrap();
        let e = Config::from_file(&file).unwrap_err().to_string();
        assert!(
            e.contains("HANSA_TEST_SURELY_UNSET_SECRET is not set"),
            "{e}"
        );
        let config = Config::from_file_for_inspection(&file).unwrap();
        assert_eq!(config.backends.len(), 1);
        // Everything else is still checked.
        std::fs::write(
            &file,
            "[[backend]]\nid = \"a\"\nkind = \"memory\"\n[policy.p]\nreplicas = 2\n",
        )
        .unwrap();
        assert!(Config::from_file_for_inspection(&file).is_err());
    }

    #[test]
    fn full_example_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/hansa.example.toml"
        ))
        .unwrap();
        std::env::set_var("HANSA_EXAMPLE_SECRET", "x".repeat(40));
        std::env::set_var("HANSA_ADMIN_TOKEN", "y".repeat(40));
        let config = Config::from_toml("deploy/hansa.example.toml", &text).unwrap();
        assert!(config.admin.is_some());
        assert!(config.backends.len() >= 2);
    }

    #[test]
    fn metrics_listener_is_optional_and_has_an_address_of_its_own() {
        let base = "[server]\nlisten = [\"127.0.0.1:9000\"]\n\
                    [[backend]]\nid = \"a\"\nkind = \"memory\"\n\
                    [admin]\nlisten = \"127.0.0.1:9001\"\ntoken = \"t\"\n";
        let parse = |extra: &str| Config::from_toml("t.toml", &format!("{base}{extra}"));
        assert_eq!(parse("").unwrap().metrics, MetricsConfig::default());
        assert_eq!(parse("").unwrap().metrics.listen, None);
        let own = parse("[metrics]\nlisten = \"0.0.0.0:9090\"\n").unwrap();
        assert_eq!(own.metrics.listen, Some("0.0.0.0:9090".parse().unwrap()));
        // Any free port, as tests use, is never a clash.
        assert!(parse("[metrics]\nlisten = \"127.0.0.1:0\"\n").is_ok());
        for (taken, other) in [
            ("127.0.0.1:9000", "server.listen"),
            ("127.0.0.1:9001", "admin.listen"),
        ] {
            let err = parse(&format!("[metrics]\nlisten = \"{taken}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("metrics.listen") && err.contains(other),
                "{err}"
            );
        }
        // A disabled admin plane holds no address.
        let disabled = base.replace("token = \"t\"", "token = \"t\"\nenabled = false");
        assert!(Config::from_toml(
            "t.toml",
            &format!("{disabled}[metrics]\nlisten = \"127.0.0.1:9001\"\n")
        )
        .is_ok());
        for bad in [
            "[metrics]\nlisten = \"not an address\"\n",
            "[metrics]\nlisten = \"127.0.0.1\"\n",
            "[metrics]\nport = 9090\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_token_comes_from_exactly_one_place() {
        let base = "[[backend]]\nid = \"a\"\nkind = \"memory\"\n[admin]\n";
        let parse = |lines: &str| Config::from_toml("t.toml", &format!("{base}{lines}"));
        let inline = parse("token = \"abc\"").unwrap();
        let admin = inline.admin.unwrap();
        assert_eq!(admin.token, AdminToken::Inline("abc".into()));
        assert_eq!(admin.listen, default_admin_listen());
        assert!(admin.enabled && !admin.optional);
        assert!(
            !format!("{:?}", admin.token).contains("abc"),
            "Debug masks the token"
        );
        for bad in [
            "",
            "token = \"a\"\ntoken_env = \"B\"",
            "token = \"a\"\ntoken_file = \"/x\"",
        ] {
            assert!(
                err(&format!("{base}{bad}")).contains("exactly one"),
                "{bad}"
            );
        }
        assert!(err(&format!("{base}token = \"  \"")).contains("admin.token: is empty"));
        assert!(
            err(&format!("{base}token_env = \"HANSA_TEST_UNSET_ADMIN_VAR\""))
                .contains("admin.token_env: environment variable HANSA_TEST_UNSET_ADMIN_VAR")
        );
        assert!(err(&format!("{base}token_file = \"/nonexistent/t\"")).contains("admin.token_file"));
        assert!(parse("enabled = false\ntoken = \"abc\"").is_ok());
        assert!(
            Config::from_toml("t.toml", base.trim_end_matches("[admin]\n"))
                .unwrap()
                .admin
                .is_none()
        );
    }

    #[test]
    fn admin_token_file_is_trimmed_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "  s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(AdminToken::File(file.clone()).resolve().unwrap(), "s3cret");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let problem = AdminToken::File(file.clone()).resolve().unwrap_err();
        assert_eq!(problem.field, "token_file");
        assert!(problem.problem.contains("readable by every user"));
        std::fs::write(&file, "\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AdminToken::File(file).resolve().is_err(), "empty");
    }

    #[test]
    fn generated_admin_token_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (file, created) = generated_admin_token(dir.path()).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = AdminToken::File(file.clone()).resolve().unwrap();
        assert!(token.len() >= 32);
        let (again, created) = generated_admin_token(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(AdminToken::File(again).resolve().unwrap(), token);
        let embedded = Config::embedded(dir.path().into(), "127.0.0.1:9000".parse().unwrap());
        let admin = embedded.admin.unwrap();
        assert_eq!(admin.token, AdminToken::File(file));
        assert_eq!(admin.listen, default_admin_listen());
    }

    #[test]
    fn generated_key_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = generated_key(dir.path()).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(&first.file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = generated_key(dir.path()).unwrap();
        assert!(!second.created);
        assert_eq!(first.secret_access_key, second.secret_access_key);
    }
}
