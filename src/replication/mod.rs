//! Moving bytes between the client and the replicas: the write fan-out, reads with failover,
//! the in-flight byte budget and per-key write serialization.

mod budget;
mod fanout;
mod locks;
mod read;

pub use budget::InflightBudget;
pub use fanout::{fan_out, fan_out_with, Flow, PutOutcome, Target};
pub use locks::{BucketGuard, KeyGuard, KeyLocks};
pub use read::{open_replicas, ReplicaRead};

use std::collections::HashMap;
use std::sync::Arc;

use hansa_backends::Backend;

use crate::meta::MetaError;
use crate::s3::body::BodyError;

#[derive(thiserror::Error, Debug)]
pub enum ReplicationError {
    #[error("request body: {0}")]
    Body(#[from] BodyError),
    #[error("write quorum not met: {confirmed} of {needed} replicas confirmed ({errors})")]
    QuorumNotMet {
        confirmed: usize,
        needed: usize,
        errors: String,
    },
    #[error("no replica readable ({errors})")]
    NoReplica { errors: String },
    #[error("a backend asks to slow down")]
    Throttled,
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("the client sent no body bytes for {0:?}")]
    BodyStalled(std::time::Duration),
}

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
