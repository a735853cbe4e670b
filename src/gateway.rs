//! The gateway's shared state, built once from the configuration: the storage layer and what
//! the S3 front end needs beside it (credentials, signature settings).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::s3::auth::{AuthSettings, CredentialStore};
use crate::s3::pace::RateLimits;
use crate::store::{self, Store};

pub struct Gateway {
    pub config: Config,
    pub store: Arc<Store>,
    pub credentials: CredentialStore,
    pub auth: AuthSettings,
    /// Per-credential request and body-byte rates (`[rate_limit.<key>]`).
    pub rates: RateLimits,
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
        let credentials = config.resolved_credentials();
        if credentials.is_empty() {
            return Err(StartError::NoCredentials);
        }
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
        let collected = store::collect_leftovers(&store, store.settings.staging_max_age).await;
        if collected > 0 {
            tracing::info!(
                collected,
                "removed staged copies of writes that never committed"
            );
        }
        Ok(Arc::new(Gateway {
            credentials: CredentialStore::new(credentials),
            auth: AuthSettings {
                region: config.server.region.clone(),
                max_clock_skew: Duration::from_secs(15 * 60),
                max_presigned_expiry: Duration::from_secs(7 * 24 * 3600),
                max_chunk_size: 16 << 20,
            },
            rates: RateLimits::from_config(&config),
            store,
            config,
        }))
    }
}
