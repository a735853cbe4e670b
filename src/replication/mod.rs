//! Moving bytes between the client and the replicas: the write fan-out, reads with failover,
//! the in-flight budget and per-key locks, a time limit on every backend call, and each
//! backend's health (probes, latency, circuit breakers).

mod budget;
mod fanout;
pub mod health;
mod locks;
mod rate;
mod read;

pub use budget::{BudgetError, BudgetPolicy, InflightBudget, Reservation};
pub use fanout::{feeds, pump, Cut, Feed, Flow, Frame, Progress, PumpError, PumpReport, Pumped};
pub use health::{BackendHealth, CircuitState, Health, HealthSettings, HealthTracked};
pub use locks::{BucketGuard, BucketShare, KeyGuard, KeyLocks};
pub(crate) use rate::seconds;
pub use rate::{Throttle, TokenBucket};
pub use read::{open_replicas, ReadFailure, ReplicaRead};

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hansa_backends::{Backend, BackendError};

/// The configured backends by id.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    by_id: HashMap<String, Arc<dyn Backend>>,
}

impl Backends {
    pub fn new(list: Vec<Arc<dyn Backend>>) -> Self {
        Backends {
            by_id: list.into_iter().map(|b| (b.id().to_string(), b)).collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Backend>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.by_id.values()
    }
}

/// A backend call that has not answered within `limit` fails as if the backend were
/// unreachable: a hung disk or a silent provider means failover, never a hung request.
pub async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::Unavailable {
            message: format!("{what}: no answer within {limit:?}"),
        }),
    }
}
