//! Runs the jobs recorded in the index. (Skeleton: filled in by the job machinery work.)

use std::sync::Arc;

use tokio::sync::watch;

use crate::store::Store;

/// Works the active jobs until `stopped`; resumes those a restart interrupted.
pub async fn run(store: Arc<Store>, mut stopped: watch::Receiver<bool>) {
    let _ = &store;
    let _ = stopped.changed().await;
}
