//! The gateway's shared state: index, backends, placement, credentials and limits, built once
//! from the configuration.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use hansa_backends::{Backend, FaultSwitch, FaultyBackend, LocalBackend, ObjectStoreBackend};

use crate::config::{BackendKind, Config};
use crate::meta::{MetaStore, SledStore};
use crate::placement::Placement;
use crate::replication::{Backends, InflightBudget, KeyLocks};
use crate::s3::auth::{AuthSettings, CredentialStore};

pub struct Gateway {
    pub config: Config,
    pub meta: Arc<dyn MetaStore>,
    pub backends: Backends,
    pub placement: Placement,
    pub credentials: CredentialStore,
    pub auth: AuthSettings,
    pub budget: InflightBudget,
    pub locks: KeyLocks,
    /// Multipart uploads: "bucket" = upload id, "key" = part number. Parts lock shared,
    /// completion and abort exclusively.
    pub upload_locks: KeyLocks,
    /// The run-time fault switches of backends configured with `faults`, by backend id.
    pub fault_switches: HashMap<String, Arc<FaultSwitch>>,
}

#[derive(thiserror::Error, Debug)]
pub enum StartError {
    #[error("index at {path}: {source}")]
    Index {
        path: String,
        source: crate::meta::MetaError,
    },
    #[error("backend {id}: {message}")]
    Backend { id: String, message: String },
    #[error("no credentials configured: add a [[credential]] section")]
    NoCredentials,
}

impl Gateway {
    pub async fn open(config: Config) -> Result<Arc<Gateway>, StartError> {
        let credentials = config.resolved_credentials();
        if credentials.is_empty() {
            return Err(StartError::NoCredentials);
        }
        let index_dir = config.server.data_dir.join("index");
        let meta =
            SledStore::open(&index_dir, config.limits.index_cache_bytes).map_err(|source| {
                StartError::Index {
                    path: index_dir.display().to_string(),
                    source,
                }
            })?;
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
            list.push(backend);
        }
        check_backends(&list).await;
        let gateway = Gateway {
            placement: Placement::from_config(&config),
            credentials: CredentialStore::new(credentials),
            auth: AuthSettings {
                region: config.server.region.clone(),
                max_clock_skew: Duration::from_secs(15 * 60),
                max_presigned_expiry: Duration::from_secs(7 * 24 * 3600),
                max_chunk_size: 16 << 20,
            },
            budget: InflightBudget::new(config.limits.inflight_bytes),
            locks: KeyLocks::default(),
            upload_locks: KeyLocks::default(),
            fault_switches,
            backends: Backends::new(list),
            meta: Arc::new(meta),
            config,
        };
        crate::recovery::resolve_intents(&gateway).await;
        Ok(Arc::new(gateway))
    }
}

/// Object-store backends cut multipart parts of exactly `chunk_bytes`, the size of the
/// gateway's shared buffers, so a backend never holds a full buffer waiting for more input.
fn build_backend(
    b: &crate::config::BackendConfig,
    chunk_bytes: usize,
) -> Result<Arc<dyn Backend>, StartError> {
    let err = |message: String| StartError::Backend {
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
    for b in list {
        match tokio::time::timeout(Duration::from_secs(10), b.check()).await {
            Ok(Ok(())) => tracing::info!(backend = b.id(), "backend ready (reachable, writable)"),
            Ok(Err(e)) => tracing::warn!(backend = b.id(), error = %e, "backend NOT ready"),
            Err(_) => tracing::warn!(backend = b.id(), "backend NOT ready: check timed out"),
        }
    }
}
