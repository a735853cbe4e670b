//! Long-running jobs over the whole index: drain a backend, rebalance after a change of
//! backends or policies, verify replicas. One job machinery serves them all: a job walks the
//! objects in index order, hands each to its step (`conform` for drain and rebalance, `check`
//! for verify) with bounded concurrency, and records its cursor and progress in the index, so
//! it survives a restart and can be paused, resumed and cancelled.
//!
//! A drain changes placement from the moment it is created: the drained backend takes no new
//! replicas ([`draining`]) while the job moves the old ones off it.

mod check;
mod conform;
mod runner;
mod sweep;

use std::collections::HashSet;

pub use check::{check, CheckOptions};
pub use runner::run;

use super::{Store, StoreError, StoreResult};
use crate::meta::{now_ms, JobProgress, JobRecord, JobSpec, JobState};

/// What an admin asks of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobControl {
    Pause,
    Resume,
    Cancel,
}

/// What one step did with one object.
#[derive(Debug, Default)]
pub struct StepOutcome {
    /// Bytes copied to other backends.
    pub bytes_moved: u64,
    /// What the step found, by name (summed into the job's `counts`).
    pub counts: Vec<(&'static str, u64)>,
    /// Why the object could not be handled; the job goes on with the next.
    pub problem: Option<String>,
}

/// Records a new job and wakes the runner. A drain needs a configured backend that no other
/// active drain empties; verify's backend, when named, must be configured.
pub fn start_job(store: &Store, spec: JobSpec) -> StoreResult<JobRecord> {
    let known = |id: &str| store.backend(id).is_some();
    match &spec {
        JobSpec::Drain { backend, .. } => {
            if !known(backend) {
                return Err(StoreError::InvalidJob(format!("no backend {backend:?}")));
            }
            if draining(store)?.contains(backend.as_str()) {
                return Err(StoreError::InvalidJob(format!(
                    "backend {backend:?} is being drained already"
                )));
            }
        }
        JobSpec::Verify {
            backend: Some(backend),
            ..
        } if !known(backend) => {
            return Err(StoreError::InvalidJob(format!("no backend {backend:?}")));
        }
        _ => {}
    }
    let now = now_ms();
    let job = JobRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        spec,
        state: JobState::Running,
        created_ms: now,
        updated_ms: now,
        finished_ms: None,
        cursor: None,
        passes: 0,
        progress: JobProgress::default(),
        message: None,
    };
    store.meta.put_job(&job)?;
    refresh_draining(store);
    store.jobs_wake.notify_one();
    Ok(job)
}

/// Every job, oldest first.
pub fn jobs(store: &Store) -> StoreResult<Vec<JobRecord>> {
    Ok(store.meta.jobs()?)
}

pub fn job(store: &Store, id: &str) -> StoreResult<JobRecord> {
    store
        .meta
        .job(id)?
        .ok_or_else(|| StoreError::NoSuchJob(id.to_string()))
}

/// Pauses, resumes or cancels a job. Only a running job can be paused and only a paused one
/// resumed; a job that ended cannot be changed. The runner sees the change before its next
/// object.
pub fn control_job(store: &Store, id: &str, control: JobControl) -> StoreResult<JobRecord> {
    let _guard = store.jobs_lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut job = job(store, id)?;
    let next = match (control, job.state) {
        (JobControl::Pause, JobState::Running) => JobState::Paused,
        (JobControl::Resume, JobState::Paused) => JobState::Running,
        (JobControl::Cancel, state) if state.is_active() => JobState::Cancelled,
        (_, state) => {
            return Err(StoreError::InvalidJob(format!(
                "job {id} is {state:?}: it cannot be told to {control:?}"
            )))
        }
    };
    job.state = next;
    job.updated_ms = now_ms();
    if next == JobState::Cancelled {
        job.finished_ms = Some(job.updated_ms);
    }
    store.meta.put_job(&job)?;
    refresh_draining(store);
    store.jobs_wake.notify_one();
    Ok(job)
}

/// Re-reads [`draining`] into the store's cache (the set writes exclude). On an index error
/// the cache keeps what it had: a drain is never forgotten because of a failed read.
pub(crate) fn refresh_draining(store: &Store) {
    match draining(store) {
        Ok(set) => *store.draining.write().unwrap_or_else(|p| p.into_inner()) = set,
        Err(e) => tracing::error!(error = %e, "cannot read the jobs to learn which backends drain"),
    }
}

/// Backends that take no new replicas: those an active or finished drain empties. (A drained
/// backend stays out of writes until it is removed from the configuration; cancelling its
/// drain lets it take writes again.)
pub fn draining(store: &Store) -> StoreResult<HashSet<String>> {
    Ok(store
        .meta
        .jobs()?
        .into_iter()
        .filter(|j| j.state.is_active() || j.state == JobState::Done)
        .filter_map(|j| j.spec.drained_backend().map(str::to_string))
        .collect())
}
