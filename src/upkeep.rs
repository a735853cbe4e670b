//! Background work the gateway does on its own: aborting multipart uploads that were
//! abandoned (neither completed nor aborted within `limits.upload_max_age_secs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::s3::ops::multipart::abort_stale_uploads;

/// Runs until `stopped` changes: once at start, then every cleanup interval.
pub async fn abandoned_uploads(gw: Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    let interval = Duration::from_secs(gw.config.limits.upload_cleanup_interval_secs.max(1));
    let max_age = Duration::from_secs(gw.config.limits.upload_max_age_secs);
    loop {
        match abort_stale_uploads(&gw, max_age).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(aborted = n, "abandoned multipart uploads removed"),
            Err(e) => tracing::warn!(error = %e.message, "could not clean up abandoned uploads"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}
