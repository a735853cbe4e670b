//! Background work the gateway does on its own, at intervals: aborting multipart uploads that
//! were abandoned (neither completed nor aborted within `limits.upload_max_age_secs`),
//! finishing writes whose copies are still staged (a publish that failed while a backend was
//! down), removing staged copies no write holds any more, working off the repair queue,
//! comparing each backend with the index (anti-entropy), and applying bucket lifecycle rules.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{self, Store};

/// Intents younger than this belong to writes still settling on their own.
const INTENT_GRACE: Duration = Duration::from_secs(60);
/// While the gateway serves, staged copies and temporary files are collected only once at
/// least this old, whatever `limits.staging_max_age_secs` says: a part being uploaded has no
/// handle, only a fresh modification time. (At start-up nothing is running: the configured
/// age applies as it is.)
const LEAST_RUNTIME_STAGING_AGE: Duration = Duration::from_secs(600);

/// Runs until `stopped` changes: once at start, then every cleanup interval.
pub async fn run(store: Arc<Store>, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let interval = interval.max(Duration::from_secs(1));
    // The gateway collected leftovers before it started listening; collecting again while the
    // first requests arrive only races them: the set of live handles is read before the
    // backends are listed, so an upload created in between looks abandoned wherever a
    // provider misreports its age (moto dates every upload 2010).
    let mut collect = false;
    loop {
        match store::abort_stale_uploads(&store, store.settings().upload_max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(aborted = n, "abandoned multipart uploads removed"),
            Err(e) => tracing::warn!(error = %e, "could not clean up abandoned uploads"),
        }
        let finished = store::finish_intents(&store, INTENT_GRACE).await;
        if finished > 0 {
            tracing::info!(finished, "finished writes whose copies were left staged");
        }
        let age = store
            .settings()
            .staging_max_age
            .max(LEAST_RUNTIME_STAGING_AGE);
        if collect {
            store::collect_leftovers(&store, age).await;
        }
        collect = true;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Works off the repair queue until `stopped` changes.
pub async fn run_repairs(store: Arc<Store>, stopped: watch::Receiver<bool>) {
    store::run_repairs(store, stopped).await
}

/// Compares every backend with the index every `interval` (0: never on its own) and whenever
/// the process receives SIGUSR1 (on demand), until `stopped` changes.
pub async fn run_anti_entropy(
    store: Arc<Store>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut on_demand = on_demand_signal();
    loop {
        let periodic = async {
            if interval.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(interval).await
            }
        };
        tokio::select! {
            _ = periodic => {}
            _ = on_demand.recv() => tracing::info!("anti-entropy requested (SIGUSR1)"),
            _ = stopped.changed() => return,
        }
        store::anti_entropy(&store).await;
    }
}

/// SIGUSR1 where there are signals; never elsewhere.
struct OnDemand(Option<tokio::signal::unix::Signal>);

impl OnDemand {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

fn on_demand_signal() -> OnDemand {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
        Ok(signal) => OnDemand(Some(signal)),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGUSR1: anti-entropy runs only at its interval");
            OnDemand(None)
        }
    }
}

/// Applies the buckets' lifecycle rules every `config.interval_secs` (0: only when the admin
/// API asks), one bounded pass at a time, until `stopped` changes.
pub async fn run_lifecycle(
    store: Arc<Store>,
    config: crate::config::LifecycleConfig,
    mut stopped: watch::Receiver<bool>,
) {
    if config.interval_secs == 0 {
        return;
    }
    let interval = Duration::from_secs(config.interval_secs);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        let options = store::lifecycle::PassOptions {
            now_ms: crate::meta::now_ms(),
            dry_run: false,
            max_actions: config.max_actions_per_pass,
            max_keys: config.max_keys_per_pass,
        };
        match store::lifecycle::run_pass(&store, &options).await {
            Ok(report) if !report.actions.is_empty() => tracing::info!(
                actions = report.actions.len(),
                examined = report.keys_examined,
                "lifecycle pass"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lifecycle pass failed"),
        }
    }
}
