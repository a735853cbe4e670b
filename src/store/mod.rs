//! The storage protocol, apart from HTTP: how a version is written (stage, then publish), read
//! (with failover and verification), deleted, completed from multipart parts, recovered after
//! a crash, and how what crashed writes left behind is collected.
//!
//! Every write goes the same way ([`commit`]): its body is staged on the placement's targets in
//! parallel, without the key's lock, where no reader sees it; once the body is complete and
//! verified and the write quorum has staged it, the key's lock is taken, conditions are checked
//! again, the index entry naming the staged copies is committed (one flush), the copies are
//! published (renamed, completed, copied into place), and the answer goes out. A failed, cut or
//! concurrent write therefore never harms the version before it, and publishes of one key happen
//! in commit order, so the backends and the index agree on which write won.
//!
//! The front end (`s3/`) calls the functions of this module; nothing here knows HTTP.

mod anti_entropy;
mod buckets;
mod commit;
mod condition;
mod copies;
mod delete;
mod error;
pub mod jobs;
pub mod lifecycle;
pub mod lock;
mod multipart;
mod read;
pub mod rebuild;
pub mod records;
mod startup;
pub use startup::{check_startup, StartupOverrides};
mod queue;
mod recovery;
mod repair;
mod stage;
#[cfg(test)]
mod tests;
mod verify;
mod versions;
mod write;

pub use anti_entropy::{anti_entropy, scan_backend, ScanReport};
pub use buckets::*;
pub use condition::WriteCondition;
pub use delete::{delete_object, delete_object_by, delete_object_if_current};
pub use error::{BodyFailure, StoreError, StoreResult};
pub use multipart::{
    abort_stale_uploads, abort_upload, complete_upload, create_upload, store_part, ChosenPart,
    Completion, NewUpload, PartSource,
};
pub use read::{read_version, ObjectBody, ReadOutcome};
pub use recovery::{collect_leftovers, finish_intents};
pub use repair::{drain_queue, queue_depth, repair_pass, run as run_repairs, PassReport, Settled};
pub use versions::{
    delete_version, list_versions, object_version, set_versioning, update_version, versioning,
    DeleteOutcome, VersionListing, VersionView, VersioningState, VersionsFrom,
};
pub use write::{copy_object, put_object, BodyFacts, NewObject};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hansa_backends::{Backend, FaultSwitch, FaultyBackend, LocalBackend, ObjectStoreBackend};

use crate::config::{BackendKind, Config, JobsConfig, Limits, RepairConfig};
use crate::meta::{MetaStore, SledStore};
use crate::placement::Placement;
use crate::replication::{
    Backends, BudgetPolicy, Flow, Health, HealthSettings, InflightBudget, KeyLocks, Throttle,
};

/// The storage layer's state: the index, the backends and how writes are placed on them.
pub struct Store {
    pub meta: Arc<dyn MetaStore>,
    pub backends: Backends,
    /// Swapped whole by a configuration reload ([`Store::reconfigure`]); read it through
    /// [`Store::placement`].
    placement: ArcSwap<Placement>,
    pub budget: InflightBudget,
    /// Writes of one key commit one at a time; deleting a bucket excludes writes into it.
    pub locks: KeyLocks,
    /// Multipart uploads: "bucket" = upload id, "key" = part number. Parts lock shared,
    /// completion and abort exclusively.
    pub upload_locks: KeyLocks,
    /// Swapped whole by a reload; read through [`Store::settings`].
    settings: ArcSwap<Settings>,
    /// The run-time fault switches of backends configured with `faults`, by backend id.
    pub fault_switches: HashMap<String, Arc<FaultSwitch>>,
    /// Every backend's health and circuit; each backend in `backends` reports to it.
    pub health: Arc<Health>,
    /// Writes running in this process, by write id: their intents are not leftovers.
    running: Mutex<HashSet<String>>,
    /// How the repair queue is worked; swapped by a reload, read through [`Store::repair`].
    repair: ArcSwap<Repairs>,
    /// Wakes the repair worker when work is queued.
    pub(crate) repair_wake: tokio::sync::Notify,
    /// Wakes the job runner when a job is created or changed.
    pub(crate) jobs_wake: tokio::sync::Notify,
    /// Job records change one at a time (admin controls against the runner's updates).
    pub(crate) jobs_lock: Mutex<()>,
    /// Backends being drained (see [`jobs::draining`]), kept here so that a write does not
    /// scan the jobs; refreshed whenever a job is created, changed or ends.
    pub(crate) draining: std::sync::RwLock<HashSet<String>>,
    /// How jobs run (`[jobs]`); swapped by a reload.
    jobs_config: ArcSwap<JobsConfig>,
}

/// One backend's health and repair debt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendStatus {
    #[serde(flatten)]
    pub health: crate::replication::BackendHealth,
    /// Repair entries queued for it.
    pub queued: usize,
    /// When the oldest of them was queued (ms since the epoch).
    pub oldest_queued_ms: Option<u64>,
}

/// The repair queue's settings.
pub struct Repairs {
    pub settings: RepairConfig,
    /// Bytes per second per backend, when limited.
    pub throttle: Option<Throttle>,
}

impl Repairs {
    pub fn new(settings: RepairConfig) -> Repairs {
        let throttle =
            (settings.bytes_per_sec > 0).then(|| Throttle::per_second(settings.bytes_per_sec));
        Repairs { settings, throttle }
    }
}

/// The limits the protocol works within (from `[limits]`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub chunk_bytes: usize,
    pub body_idle: Duration,
    /// A backend call that should be quick fails after this long; a body transfer after this
    /// long without progress.
    pub backend_timeout: Duration,
    /// A publish (a rename, a completion, a server-side copy) fails after this long.
    pub publish_timeout: Duration,
    /// Once the quorum has staged a write, the other targets get at most this long (and at
    /// most half the time the write took so far) before the client gets its answer.
    pub straggler_grace: Duration,
    /// Buffers a target may fall behind the quorum before it is cut from a write.
    pub max_lag: usize,
    /// Objects up to this size are read whole and verified before their first byte is sent.
    pub verify_before_send: u64,
    /// Staged copies no write holds are collected once they are this old.
    pub staging_max_age: Duration,
    pub upload_max_age: Duration,
    /// How long a request waits for in-flight budget, and the share one access key may hold.
    pub budget: BudgetPolicy,
}

impl Settings {
    pub fn from_limits(limits: &Limits) -> Settings {
        Settings {
            chunk_bytes: limits.chunk_bytes,
            body_idle: Duration::from_secs(limits.body_idle_timeout_secs),
            backend_timeout: Duration::from_secs(limits.backend_timeout_secs.max(1)),
            publish_timeout: Duration::from_secs(limits.publish_timeout_secs.max(1)),
            straggler_grace: Duration::from_millis(limits.straggler_grace_ms),
            max_lag: limits.max_lag_buffers.max(1),
            verify_before_send: limits.chunk_bytes as u64,
            staging_max_age: Duration::from_secs(limits.staging_max_age_secs),
            upload_max_age: Duration::from_secs(limits.upload_max_age_secs),
            budget: BudgetPolicy {
                wait: Duration::from_millis(limits.budget_wait_ms),
                max_share: limits.max_budget_share_per_credential,
            },
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum OpenError {
    #[error("index at {path}: {source}")]
    Index {
        path: String,
        source: crate::meta::MetaError,
    },
    #[error("backend {id}: {message}")]
    Backend { id: String, message: String },
}

impl Store {
    /// Opens the index and builds the backends (each checked once: an unreachable backend is
    /// reported and the others serve). Writes left in flight by a previous run are not
    /// resolved here: call [`finish_intents`] before serving.
    pub async fn open(config: &Config) -> Result<Store, OpenError> {
        let index_dir = config.server.data_dir.join("index");
        let meta =
            SledStore::open(&index_dir, config.limits.index_cache_bytes).map_err(|source| {
                OpenError::Index {
                    path: index_dir.display().to_string(),
                    source,
                }
            })?;
        let settings = Settings::from_limits(&config.limits);
        let health = Arc::new(Health::new(health_settings(config, &settings)));
        let mut list: Vec<Arc<dyn Backend>> = Vec::new();
        let mut fault_switches = HashMap::new();
        for b in &config.backends {
            let backend = build_backend(b, config.limits.chunk_bytes)?;
            let backend: Arc<dyn Backend> = match b.faults {
                Some(plan) => {
                    let switch = Arc::new(FaultSwitch::new(plan));
                    fault_switches.insert(b.id.clone(), switch.clone());
                    tracing::warn!(backend = %b.id, ?plan, "fault injection enabled on this backend");
                    Arc::new(FaultyBackend::new(backend, switch))
                }
                None => backend,
            };
            // Outside the fault wrapper: injected faults are judged like real ones.
            list.push(health.track(backend));
        }
        check_backends(&list).await;
        let store = Store {
            meta: Arc::new(meta),
            backends: Backends::new(list),
            placement: ArcSwap::from_pointee(Placement::from_config(config)),
            budget: InflightBudget::with_policy(config.limits.inflight_bytes, settings.budget),
            locks: KeyLocks::default(),
            upload_locks: KeyLocks::default(),
            settings: ArcSwap::from_pointee(settings),
            fault_switches,
            health,
            running: Mutex::new(HashSet::new()),
            repair: ArcSwap::from_pointee(Repairs::new(config.repair.clone())),
            repair_wake: tokio::sync::Notify::new(),
            jobs_wake: tokio::sync::Notify::new(),
            jobs_lock: Mutex::new(()),
            draining: std::sync::RwLock::new(HashSet::new()),
            jobs_config: ArcSwap::from_pointee(config.jobs.clone()),
        };
        jobs::refresh_draining(&store);
        Ok(store)
    }

    /// The placement in force now (policies, bucket mappings, backend tags). A caller that
    /// asks it several questions keeps the `Arc`, so that all answers come from one version.
    pub fn placement(&self) -> Arc<Placement> {
        self.placement.load_full()
    }

    /// The `[limits]` the protocol works within now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// How the repair queue is worked now (`[repair]`).
    pub fn repair(&self) -> Arc<Repairs> {
        self.repair.load_full()
    }

    /// How jobs run now (`[jobs]`).
    pub fn jobs_config(&self) -> Arc<JobsConfig> {
        self.jobs_config.load_full()
    }

    /// Applies what a configuration reload may change while the store serves: the placement
    /// (policies, bucket → policy mappings, backend tags), the per-call limits, the budget's
    /// wait and per-credential share, `[health]`, `[repair]` and `[jobs]`. What needs a
    /// restart (the backends themselves, the index, `chunk_bytes`, `inflight_bytes`) is
    /// neither read nor changed here: `config` must describe the running backends (the
    /// caller checks that, see `reload`). Writes already placed keep their targets; new
    /// writes follow the new placement. Existing objects keep their replicas.
    pub fn reconfigure(&self, config: &Config) {
        let running = self.settings();
        let mut settings = Settings::from_limits(&config.limits);
        // Buffers already handed out have this size: it changes at the next start.
        settings.chunk_bytes = running.chunk_bytes;
        settings.verify_before_send = running.verify_before_send;
        self.budget.set_policy(settings.budget);
        self.health.set_settings(health_settings(config, &settings));
        self.placement
            .store(Arc::new(Placement::from_config(config)));
        self.settings.store(Arc::new(settings));
        self.repair
            .store(Arc::new(Repairs::new(config.repair.clone())));
        self.jobs_config.store(Arc::new(config.jobs.clone()));
        // A job or repair waiting on its old rate or concurrency looks again.
        self.repair_wake.notify_one();
        self.jobs_wake.notify_one();
    }

    /// Where a new replica of `bucket/key` goes: the placement's plan without the backends
    /// being drained. Every write path and the jobs ask this, never the placement directly.
    pub fn write_plan(&self, bucket: &str, key: &str) -> crate::placement::WritePlan {
        let draining = self.draining.read().unwrap_or_else(|p| p.into_inner());
        self.placement()
            .write_plan_excluding(bucket, key, &draining)
    }

    /// How bodies flow through this store's writes; their buffers count against `tenant`'s
    /// share of the budget (the access key that signed the request).
    pub(crate) fn flow(&self, tenant: &str) -> Flow<'_> {
        let settings = self.settings();
        Flow {
            chunk_bytes: settings.chunk_bytes,
            budget: &self.budget,
            tenant: (!tenant.is_empty()).then(|| Arc::from(tenant)),
            body_idle: settings.body_idle,
            target_stall: settings.backend_timeout,
            max_lag: settings.max_lag,
        }
    }

    /// Marks write `id` (its intent's key) as running in this process until the guard drops.
    pub(crate) fn running(self: &Arc<Self>, id: &str) -> RunningWrite {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        RunningWrite {
            store: self.clone(),
            id: id.to_string(),
        }
    }

    pub(crate) fn is_running(&self, id: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    pub(crate) fn backend(&self, id: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(id)
    }

    /// Present replicas in the order reads should try them (the policy's read order; by
    /// observed latency where the policy says so).
    pub(crate) fn read_order<'r>(
        &self,
        bucket: &str,
        replicas: &'r [crate::meta::Replica],
    ) -> Vec<&'r crate::meta::Replica> {
        self.placement()
            .read_order(bucket, replicas, &|id| self.health.latency_p50(id))
    }

    /// Whether background work should use backend `id` now (it exists and its circuit is not
    /// open): repairs wait for a backend that is down instead of failing against it.
    pub fn backend_usable(&self, id: &str) -> bool {
        self.backends.get(id).is_some() && !self.health.is_open(id)
    }

    /// Each backend's health with its repair queue: what the admin plane and the logs show.
    pub fn backend_status(&self) -> Vec<BackendStatus> {
        self.health
            .snapshot()
            .into_iter()
            .map(|health| {
                let (queued, oldest_queued_ms) =
                    self.meta.repair_depth(&health.id).unwrap_or((0, None));
                BackendStatus {
                    health,
                    queued,
                    oldest_queued_ms,
                }
            })
            .collect()
    }
}

/// `[health]`, with the backend timeout: a call still without an answer when its caller
/// gives up after (nearly) that long was hung. Nine tenths, because the caller's clock
/// started a moment before the call's own.
fn health_settings(config: &Config, settings: &Settings) -> HealthSettings {
    let h = &config.health;
    HealthSettings {
        probe_interval: Duration::from_millis(h.probe_interval_ms),
        probe_timeout: Duration::from_millis(h.probe_timeout_ms),
        failures_to_open: h.failures_to_open,
        open_for: Duration::from_millis(h.open_for_ms),
        hung_after: settings.backend_timeout.mul_f64(0.9),
        ..HealthSettings::default()
    }
}

/// See [`Store::running`].
pub(crate) struct RunningWrite {
    store: Arc<Store>,
    id: String,
}

impl Drop for RunningWrite {
    fn drop(&mut self) {
        self.store
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Object-store backends cut multipart parts of exactly `chunk_bytes`, the size of the
/// gateway's shared buffers, so a backend never holds a full buffer waiting for more input.
/// The backend a `[[backend]]` entry describes (without its fault injection), as the gateway
/// opens it; makes no request to a cloud provider (`hansa check-config` probes it next).
pub fn build_backend(
    b: &crate::config::BackendConfig,
    chunk_bytes: usize,
) -> Result<Arc<dyn Backend>, OpenError> {
    let err = |message: String| OpenError::Backend {
        id: b.id.clone(),
        message,
    };
    Ok(match b.kind {
        BackendKind::Local => {
            let path = b
                .path
                .clone()
                .ok_or_else(|| err("a local backend needs a path".into()))?;
            Arc::new(LocalBackend::new(b.id.clone(), path).map_err(|e| err(e.to_string()))?)
        }
        BackendKind::S3 | BackendKind::Gcs | BackendKind::Azure => {
            let cloud = b
                .cloud
                .as_ref()
                .ok_or_else(|| err("missing the store's settings (bucket, …)".into()))?;
            // Reads secrets from their variables/files; makes no request (the start-up check
            // below reports reachability).
            Arc::new(
                cloud
                    .build(&b.id)
                    .map_err(|e| err(e.to_string()))?
                    .with_part_size(chunk_bytes),
            )
        }
        BackendKind::Memory => {
            Arc::new(ObjectStoreBackend::memory(b.id.clone()).with_part_size(chunk_bytes))
        }
    })
}

/// One line per backend: reachable and writable, or why not. An unavailable backend does not
/// stop the gateway: the other replicas still serve.
async fn check_backends(list: &[Arc<dyn Backend>]) {
    let checks = list.iter().map(|b| async move {
        match tokio::time::timeout(Duration::from_secs(10), b.check()).await {
            Ok(Ok(())) => tracing::info!(backend = b.id(), "backend ready (reachable, writable)"),
            Ok(Err(e)) => tracing::warn!(backend = b.id(), error = %e, "backend NOT ready"),
            Err(_) => tracing::warn!(backend = b.id(), "backend NOT ready: check timed out"),
        }
    });
    futures::future::join_all(checks).await;
}
