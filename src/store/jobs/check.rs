//! The step of verify: check one object's replicas against the index.
//! (Skeleton: filled in by the verify work.)

use std::sync::Arc;

use super::StepOutcome;
use crate::store::Store;

/// How a verify job checks.
#[derive(Clone, Debug)]
pub(crate) struct CheckOptions {
    /// Only the replicas on this backend.
    pub backend: Option<String>,
    /// Read and checksum every byte, not only size and stamp.
    pub deep: bool,
    /// Mark what is wrong in the index and queue it for the repair worker.
    pub repair: bool,
}

/// Checks the current version of `bucket/key` on its replicas.
#[allow(dead_code)] // until the runner calls it
pub(crate) async fn check(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    options: &CheckOptions,
) -> StepOutcome {
    let _ = (store, bucket, key, options);
    StepOutcome {
        problem: Some("verify is not built yet".to_string()),
        ..StepOutcome::default()
    }
}
