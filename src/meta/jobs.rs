//! Long-running jobs (drain, rebalance, verify): what each does, where it is, what it did.
//!
//! A job's record is rewritten as it goes; its cursor names the last object it handled, so a
//! job that a restart interrupted resumes after it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// At most this many problems are kept in a job's record; the count goes on.
pub const MAX_PROBLEMS: usize = 100;

/// What a job does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    /// Moves every replica off `backend`: it takes no new replicas from the moment the job is
    /// created; each object with a copy on it gets its policy satisfied elsewhere, then that
    /// copy is removed (kept, with `keep_replicas`, for a provider one only stops writing to).
    Drain {
        backend: String,
        #[serde(default)]
        keep_replicas: bool,
    },
    /// Moves objects so that each has its replicas where the current policy puts them (after
    /// adding a backend or changing a policy).
    Rebalance,
    /// Checks replicas against the index: `deep` reads and checksums every byte, otherwise
    /// size and stamp. `repair` queues what is wrong for the repair worker. `backend` limits
    /// it to the replicas on one backend.
    Verify {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<String>,
        #[serde(default)]
        deep: bool,
        #[serde(default)]
        repair: bool,
    },
}

impl JobSpec {
    /// The backend a drain empties.
    pub fn drained_backend(&self) -> Option<&str> {
        match self {
            JobSpec::Drain { backend, .. } => Some(backend),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Cancelled,
    Done,
    Failed,
}

impl JobState {
    /// Running or paused: the job still has work and can be resumed or cancelled.
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Running | JobState::Paused)
    }
}

/// One object a job could not handle, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobProblem {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

/// Where a job is. Totals are counted when a pass starts; `done` grows as objects are handled.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobProgress {
    pub objects_done: u64,
    pub objects_total: u64,
    /// Sizes of the objects handled, and of all the pass considers.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes copied to other backends.
    pub bytes_moved: u64,
    pub objects_failed: u64,
    /// What the job's steps found, by name (e.g. verify: `ok`, `missing`, `corrupt`; drain:
    /// `moved`, `removed`, `unmet`).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// The first [`MAX_PROBLEMS`] objects that failed, and why.
    #[serde(default)]
    pub problems: Vec<JobProblem>,
}

/// The last object a job handled, in index order: (bucket, key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobCursor {
    pub bucket: String,
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobRecord {
    /// Time-ordered (UUIDv7, hex): the index lists jobs oldest first.
    pub id: String,
    pub spec: JobSpec,
    pub state: JobState,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Resume after this object; `None` at the start of a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<JobCursor>,
    /// Passes over the index so far (a drain passes again until one finds nothing to move).
    #[serde(default)]
    pub passes: u32,
    pub progress: JobProgress,
    /// Why a job failed, or how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
