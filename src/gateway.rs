//! The gateway's shared state, built from the configuration: the storage layer and what the
//! S3 front end needs beside it (credentials, signature settings, rates). What a reload may
//! change sits behind one swappable handle, [`Gateway::live`], that a request reads once.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::s3::auth::{AuthSettings, CredentialStore};
use crate::s3::pace::RateLimits;
use crate::store::{self, Store};

pub struct Gateway {
    /// The configuration the gateway started with. What needs a restart (listeners, TLS,
    /// data directory, the backends themselves, connection and memory limits) is read from
    /// here; what a reload changes is in [`Gateway::live`].
    pub config: Config,
    pub store: Arc<Store>,
    live: ArcSwap<LiveSettings>,
    /// Where a reload reads the configuration from; the lock also keeps reloads one at a time.
    pub(crate) reload: tokio::sync::Mutex<Option<crate::config_source::Source>>,
}

/// What a request reads from the configuration, as one consistent version: a reload swaps
/// it whole, and a request that started before keeps the version it began with.
pub struct LiveSettings {
    /// The configuration last applied (at start, or by the latest reload that succeeded).
    /// Of its fields, those a reload reports as needing a restart are not in force.
    pub config: Config,
    pub credentials: CredentialStore,
    pub auth: AuthSettings,
    /// Per-credential request and body-byte rates (`[rate_limit.<key>]`).
    pub rates: RateLimits,
}

impl LiveSettings {
    pub fn from_config(config: Config) -> Result<LiveSettings, StartError> {
        let credentials = config.resolved_credentials();
        if credentials.is_empty() {
            return Err(StartError::NoCredentials);
        }
        Ok(LiveSettings {
            credentials: CredentialStore::new(credentials),
            auth: AuthSettings {
                region: config.server.region.clone(),
                max_clock_skew: Duration::from_secs(15 * 60),
                max_presigned_expiry: Duration::from_secs(7 * 24 * 3600),
                max_chunk_size: 16 << 20,
                signature_v2: config.server.signature_v2,
                base_domains: config.server.base_domains.clone(),
            },
            rates: RateLimits::from_config(&config),
            config,
        })
    }
}

#[derive(thiserror::Error, Debug)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::OpenError),
    #[error("no credentials configured: add a [[credential]] section")]
    NoCredentials,
    /// The index does not fit the backends (`store::check_startup`).
    #[error("refusing to start: {0}")]
    Unsafe(String),
}

impl Gateway {
    /// Opens the storage layer and finishes what writes a previous run left in flight, before
    /// any request is served.
    pub async fn open(config: Config) -> Result<Arc<Gateway>, StartError> {
        let live = LiveSettings::from_config(config.clone())?;
        let store = Arc::new(Store::open(&config).await?);
        let overrides = store::StartupOverrides {
            allow_empty_index: config.server.allow_empty_index,
            force: config.server.force_start,
        };
        store::check_startup(&store, overrides)
            .await
            .map_err(StartError::Unsafe)?;
        let finished = store::finish_intents(&store, Duration::ZERO).await;
        if finished > 0 {
            tracing::info!(
                finished,
                "finished writes left in flight by the previous run"
            );
        }
        let collected = store::collect_leftovers(&store, store.settings().staging_max_age).await;
        if collected > 0 {
            tracing::info!(
                collected,
                "removed staged copies of writes that never committed"
            );
        }
        Ok(Arc::new(Gateway {
            live: ArcSwap::from_pointee(live),
            reload: tokio::sync::Mutex::new(None),
            store,
            config,
        }))
    }

    /// The settings in force now; a request calls this once and keeps the answer.
    pub fn live(&self) -> Arc<LiveSettings> {
        self.live.load_full()
    }

    /// Puts `live` in force for requests that start from now on (see `reload`).
    pub(crate) fn set_live(&self, live: LiveSettings) {
        self.live.store(Arc::new(live));
    }

    /// Makes `reload` (SIGHUP, the admin plane's `POST /admin/v1/reload`) read the
    /// configuration from `source`; without one, a reload is refused.
    pub async fn set_reload_source(&self, source: crate::config_source::Source) {
        *self.reload.lock().await = Some(source);
    }
}
