//! The probe task: every `probe_interval` each backend's `check()` (write, read back and
//! delete a probe object) runs with a timeout, bypassing the circuit. Probes judge backends
//! that get no traffic (one that fails its probes opens without a request), and they are
//! the only way an open circuit closes. Each backend has its own loop, so a hung backend's
//! probe never delays the others'.

use std::sync::Arc;
use std::time::Instant;

use hansa_backends::{Backend, BackendError};
use tokio::sync::watch;

use super::{Entry, Health};

impl Health {
    /// Probes `backends` until `stopped` turns true (or its sender is gone), and logs a
    /// summary line per backend (debug) every `summary_every`. Pass the store's backends:
    /// their health wrappers let `check` through whatever the circuit says.
    pub async fn run_probes(
        self: Arc<Self>,
        backends: Vec<Arc<dyn Backend>>,
        stopped: watch::Receiver<bool>,
    ) {
        let loops = backends
            .into_iter()
            .map(|b| self.clone().probe_loop(b, stopped.clone()))
            .collect::<Vec<_>>();
        let summary = self.clone().summary_loop(stopped);
        futures::future::join(futures::future::join_all(loops), summary).await;
    }

    /// Probes `backend` once now (moving an open circuit whose period is over to half-open
    /// first) and records the outcome. Does nothing while the open period runs.
    pub async fn probe(&self, backend: &dyn Backend) {
        let entry = self.entry(backend.id());
        self.probe_entry(&entry, backend).await;
    }

    async fn probe_entry(&self, entry: &Entry, backend: &dyn Backend) {
        if !self.tick(entry) {
            return;
        }
        let limit = self.settings().probe_timeout;
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, backend.check()).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Unavailable {
                message: format!("no answer within {limit:?}"),
            }),
        };
        self.record_probe(entry, &result, started.elapsed());
    }

    async fn probe_loop(
        self: Arc<Self>,
        backend: Arc<dyn Backend>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let entry = self.entry(backend.id());
        loop {
            // Read each round: a reload changes it.
            let interval = self.settings().probe_interval;
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = async {
                    tokio::time::sleep(interval).await;
                    self.probe_entry(&entry, backend.as_ref()).await;
                } => {}
            }
        }
    }

    async fn summary_loop(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let every = self.settings().summary_every;
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(every) => self.log_summary(),
            }
        }
    }
}
