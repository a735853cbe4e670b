//! Runs the jobs recorded in the index, one at a time, oldest first.
//!
//! A job walks every bucket and object in (bucket, key) order from its cursor and hands each
//! object to its step, a few at once (`[jobs] concurrency`). Results are taken in order, so the
//! cursor is always the highest key whose object and every one before it are done: a restart
//! resumes after it and never skips an object. Progress and cursor are written to the index
//! every [`SAVE_EVERY`] objects or [`SAVE_INTERVAL`], and when the job stops. Between objects
//! the runner re-reads the record: a job paused or cancelled by an admin stops there.
//!
//! A drain passes over the index again while the last pass moved anything or replicas on the
//! drained backend remain (written by writes that began before the drain); a pass that moves
//! nothing while some remain ends the job Failed, naming the objects that cannot move.

use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;

use super::check::{check, CheckOptions};
use super::conform::conform;
use super::sweep::sweep;
use super::{refresh_draining, StepOutcome};
use crate::meta::{
    now_ms, JobCursor, JobProblem, JobRecord, JobSpec, JobState, ObjectRecord, MAX_PROBLEMS,
};
use crate::store::Store;

/// Objects read from the index at a time.
const PAGE: usize = 256;
/// The record is written after this many objects …
const SAVE_EVERY: u64 = 100;
/// … or this long, whichever comes first.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// The runner looks for work at least this often, even without being woken.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// A drain that keeps finding new work (writes that began before it, copies that failed and
/// succeed later) gives up after this many passes.
const MAX_PASSES: u32 = 20;

/// Works the active jobs until `stopped`; resumes those a restart interrupted.
pub async fn run(store: Arc<Store>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let next = match store.meta.jobs() {
            Ok(jobs) => jobs.into_iter().find(|j| j.state == JobState::Running),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the jobs");
                None
            }
        };
        match next {
            Some(job) => {
                tokio::select! {
                    _ = run_job(&store, job) => {}
                    _ = stopped.changed() => return,
                }
                // A job that stops at once (its record unreadable) is not retried in a spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = store.jobs_wake.notified() => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }
}

/// What the runner holds of a job while working it; written into the record as it goes.
struct Work {
    job: JobRecord,
    /// Whether the current pass moved anything (unknown, so assumed, for a resumed pass).
    moved_in_pass: bool,
    last_save: Instant,
    unsaved: u64,
    /// When the job started copying and how much, for `[jobs] bytes_per_sec`.
    paced_since: Instant,
    paced_bytes: u64,
}

/// Why a walk stopped.
enum Walk {
    /// Every object of the pass was handled.
    Finished,
    /// The job was paused or cancelled, or its record vanished.
    Halted,
}

async fn run_job(store: &Arc<Store>, job: JobRecord) {
    tracing::info!(job = %job.id, spec = ?job.spec, passes = job.passes, "job starts");
    let mut work = Work {
        moved_in_pass: job.cursor.is_some(),
        job,
        last_save: Instant::now(),
        unsaved: 0,
        paced_since: Instant::now(),
        paced_bytes: 0,
    };
    loop {
        if work.job.cursor.is_none() {
            if let Err(e) = start_pass(store, &mut work) {
                finish(store, &mut work, JobState::Failed, format!("index: {e}"));
                return;
            }
        }
        match walk(store, &mut work).await {
            Ok(Walk::Halted) => {
                save(store, &mut work);
                return;
            }
            Ok(Walk::Finished) => {}
            Err(e) => {
                finish(store, &mut work, JobState::Failed, format!("index: {e}"));
                return;
            }
        }
        match end_of_pass(store, &mut work).await {
            Ok(Some((state, message))) => {
                finish(store, &mut work, state, message);
                return;
            }
            Ok(None) => {
                // Another pass.
                work.job.cursor = None;
                save(store, &mut work);
            }
            Err(e) => {
                finish(store, &mut work, JobState::Failed, format!("index: {e}"));
                return;
            }
        }
    }
}

/// Counts what the new pass considers and records its start.
fn start_pass(store: &Store, work: &mut Work) -> Result<(), crate::meta::MetaError> {
    let (mut objects, mut bytes) = (0u64, 0u64);
    for_each_object(store, |_, _, record| {
        objects += 1;
        bytes += record.size;
    })?;
    let progress = &mut work.job.progress;
    // Totals grow by each pass's count, so `done` never goes backwards and ends equal to them.
    progress.objects_total += objects;
    progress.bytes_total += bytes;
    work.job.passes += 1;
    work.moved_in_pass = false;
    save(store, work);
    Ok(())
}

/// Calls `f` on every object of the index in (bucket, key) order.
fn for_each_object(
    store: &Store,
    mut f: impl FnMut(&str, &str, &ObjectRecord),
) -> Result<(), crate::meta::MetaError> {
    let mut buckets: Vec<String> = store.meta.buckets()?.into_iter().map(|b| b.name).collect();
    buckets.sort();
    for bucket in buckets {
        let mut start = Bound::Unbounded;
        loop {
            let page = store.meta.scan_objects(&bucket, "", start, PAGE)?;
            for (key, record) in &page.entries {
                f(&bucket, key, record);
            }
            match page.entries.last() {
                Some((key, _)) if page.truncated => start = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Handles every object after the cursor, in order, a few at a time.
async fn walk(store: &Arc<Store>, work: &mut Work) -> Result<Walk, crate::meta::MetaError> {
    let concurrency = store.jobs_config().concurrency.max(1);
    let mut buckets: Vec<String> = store.meta.buckets()?.into_iter().map(|b| b.name).collect();
    buckets.sort();
    let from = work.job.cursor.clone();
    for bucket in buckets {
        let mut start = match &from {
            Some(c) if bucket < c.bucket => continue,
            Some(c) if bucket == c.bucket => Bound::Excluded(c.key.clone()),
            _ => Bound::Unbounded,
        };
        loop {
            let page = store.meta.scan_objects(&bucket, "", start, PAGE)?;
            let spec = work.job.spec.clone();
            let keys: Vec<(String, ObjectRecord)> = page.entries;
            let id = work.job.id.clone();
            let mut halted = false;
            let mut steps = futures::stream::iter(keys.clone().into_iter().map(|(key, record)| {
                let (store, spec, bucket, id) =
                    (store.clone(), spec.clone(), bucket.clone(), id.clone());
                async move {
                    // Checked as each object starts: a pause or cancel stops the walk here.
                    if !still_running(&store, &id) {
                        return None;
                    }
                    Some(step(&store, &spec, &bucket, &key, &record).await)
                }
            }))
            .buffered(concurrency);
            let mut index = 0;
            while let Some(outcome) = steps.next().await {
                let (key, record) = &keys[index];
                index += 1;
                let Some(outcome) = outcome else {
                    halted = true;
                    break;
                };
                record_outcome(work, &bucket, key, record.size, outcome);
                if work.unsaved >= SAVE_EVERY || work.last_save.elapsed() >= SAVE_INTERVAL {
                    save(store, work);
                }
                pace(store, work).await;
            }
            if halted {
                return Ok(Walk::Halted);
            }
            match keys.last() {
                Some((key, _)) if page.truncated => start = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }
    // The pass handled exactly these: objects deleted since it counted them drop out.
    let progress = &mut work.job.progress;
    progress.objects_total = progress.objects_done;
    progress.bytes_total = progress.bytes_done;
    save(store, work);
    Ok(Walk::Finished)
}

/// Whether the job's record still says Running (an admin's pause or cancel stops it).
fn still_running(store: &Store, id: &str) -> bool {
    matches!(store.meta.job(id), Ok(Some(j)) if j.state == JobState::Running)
}

/// One object's step, by the job's kind.
async fn step(
    store: &Arc<Store>,
    spec: &JobSpec,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
) -> StepOutcome {
    match spec {
        JobSpec::Drain {
            backend,
            keep_replicas,
        } => {
            if !record.replicas.iter().any(|r| r.backend == *backend) {
                return StepOutcome {
                    counts: vec![("unchanged", 1)],
                    ..StepOutcome::default()
                };
            }
            let keep = keep_replicas.then_some(backend.as_str());
            conform(store, bucket, key, keep).await
        }
        JobSpec::Rebalance => conform(store, bucket, key, None).await,
        JobSpec::Verify {
            backend,
            deep,
            repair,
        } => {
            let options = CheckOptions {
                backend: backend.clone(),
                deep: *deep,
                repair: *repair,
            };
            tracing::trace!(bucket, key, backend = ?options.backend, deep = options.deep,
                repair = options.repair, "verify step");
            check(store, bucket, key, &options).await
        }
    }
}

fn record_outcome(work: &mut Work, bucket: &str, key: &str, size: u64, outcome: StepOutcome) {
    let progress = &mut work.job.progress;
    progress.objects_done += 1;
    progress.bytes_done += size;
    // Objects written since the pass counted them: the totals grow with them.
    progress.objects_total = progress.objects_total.max(progress.objects_done);
    progress.bytes_total = progress.bytes_total.max(progress.bytes_done);
    progress.bytes_moved += outcome.bytes_moved;
    work.paced_bytes += outcome.bytes_moved;
    for (name, n) in outcome.counts {
        if matches!(name, "moved" | "removed" | "kept") && n > 0 {
            work.moved_in_pass = true;
        }
        *progress.counts.entry(name.to_string()).or_default() += n;
    }
    // One problem per object, as its last pass found it: a later pass's reason replaces an
    // earlier one, and an object handled since leaves the list (and the failed count).
    let listed = progress
        .problems
        .iter()
        .position(|p| p.bucket == bucket && p.key == key);
    match (outcome.problem, listed) {
        (Some(reason), Some(i)) => progress.problems[i].reason = reason,
        (Some(reason), None) => {
            tracing::warn!(job = %work.job.id, bucket, key, %reason, "job: object not handled");
            progress.objects_failed += 1;
            if progress.problems.len() < MAX_PROBLEMS {
                progress.problems.push(JobProblem {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    reason,
                });
            }
        }
        (None, Some(i)) => {
            progress.problems.remove(i);
            progress.objects_failed = progress.objects_failed.saturating_sub(1);
        }
        (None, None) => {}
    }
    work.job.cursor = Some(JobCursor {
        bucket: bucket.to_string(),
        key: key.to_string(),
    });
    work.unsaved += 1;
}

/// Holds the job to `[jobs] bytes_per_sec`: after a copy, waits until the bytes copied so far
/// are within the rate.
async fn pace(store: &Store, work: &Work) {
    let rate = store.jobs_config().bytes_per_sec;
    if rate == 0 || work.paced_bytes == 0 {
        return;
    }
    let due = Duration::from_secs_f64(work.paced_bytes as f64 / rate as f64);
    let elapsed = work.paced_since.elapsed();
    if due > elapsed {
        tokio::time::sleep(due - elapsed).await;
    }
}

/// Whether the job is finished after a pass, and how: `None` for another pass.
async fn end_of_pass(
    store: &Store,
    work: &mut Work,
) -> Result<Option<(JobState, String)>, crate::meta::MetaError> {
    if let JobSpec::Drain {
        backend,
        keep_replicas: false,
    } = &work.job.spec
    {
        // Copies the index no longer names, left behind by failed removals or by writes that
        // began before the drain: gone before the drain can say the backend is empty.
        let swept = sweep(store, backend).await?;
        let counts = &mut work.job.progress.counts;
        if swept.deleted > 0 {
            *counts.entry("swept".to_string()).or_default() += swept.deleted;
        }
        if swept.records > 0 {
            *counts.entry("records_removed".to_string()).or_default() += swept.records;
        }
        if !swept.failed.is_empty() {
            return Ok(Some((
                JobState::Failed,
                format!(
                    "{} copies on {backend} could not be deleted, e.g. {}",
                    swept.failed.len(),
                    swept.failed[..swept.failed.len().min(5)].join("; ")
                ),
            )));
        }
    }
    let job = &work.job;
    let progress = &job.progress;
    let summary = || {
        let counts: Vec<String> = progress
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "{} objects in {} pass(es), {} bytes copied; {}",
            progress.objects_done,
            job.passes,
            progress.bytes_moved,
            counts.join(", ")
        )
    };
    let backend = match &job.spec {
        JobSpec::Drain { backend, .. } => backend,
        JobSpec::Rebalance if progress.objects_failed > 0 => {
            return Ok(Some((
                JobState::Failed,
                format!(
                    "{} objects could not be placed by the policy ({})",
                    progress.objects_failed,
                    summary()
                ),
            )))
        }
        _ => return Ok(Some((JobState::Done, summary()))),
    };
    let mut remaining: Vec<(String, String)> = Vec::new();
    for_each_object(store, |bucket, key, record| {
        if record.replicas.iter().any(|r| r.backend == *backend) {
            remaining.push((bucket.to_string(), key.to_string()));
        }
    })?;
    if remaining.is_empty() {
        return Ok(Some((
            JobState::Done,
            format!("backend {backend} drained: {}", summary()),
        )));
    }
    if work.moved_in_pass && job.passes < MAX_PASSES {
        return Ok(None);
    }
    let first = progress
        .problems
        .iter()
        .find(|p| remaining.contains(&(p.bucket.clone(), p.key.clone())))
        .map(|p| format!(": {}/{}: {}", p.bucket, p.key, p.reason))
        .unwrap_or_default();
    Ok(Some((
        JobState::Failed,
        format!(
            "{} objects keep a replica on {backend} (see problems){first}",
            remaining.len()
        ),
    )))
}

/// Writes the runner's progress into the record, keeping the state an admin may have set
/// meanwhile (a pause or cancel is never overwritten).
fn save(store: &Store, work: &mut Work) {
    let _guard = store.jobs_lock.lock().unwrap_or_else(|e| e.into_inner());
    let stored = match store.meta.job(&work.job.id) {
        Ok(Some(stored)) => stored,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(job = %work.job.id, error = %e, "cannot read the job");
            return;
        }
    };
    work.job.state = stored.state;
    work.job.finished_ms = stored.finished_ms;
    work.job.message = stored.message.clone().or(work.job.message.take());
    work.job.updated_ms = now_ms();
    if let Err(e) = store.meta.put_job(&work.job) {
        tracing::error!(job = %work.job.id, error = %e, "cannot record the job's progress");
    }
    work.last_save = Instant::now();
    work.unsaved = 0;
}

/// Ends the job as `state` with `message`, unless an admin cancelled it meanwhile.
fn finish(store: &Store, work: &mut Work, state: JobState, message: String) {
    {
        let _guard = store.jobs_lock.lock().unwrap_or_else(|e| e.into_inner());
        let stored_state = match store.meta.job(&work.job.id) {
            Ok(Some(stored)) => stored.state,
            _ => return,
        };
        if stored_state == JobState::Running {
            work.job.state = state;
            work.job.message = Some(message.clone());
            work.job.updated_ms = now_ms();
            work.job.finished_ms = Some(work.job.updated_ms);
            if let Err(e) = store.meta.put_job(&work.job) {
                tracing::error!(job = %work.job.id, error = %e, "cannot record the job's end");
            }
        }
    }
    refresh_draining(store);
    tracing::info!(job = %work.job.id, ?state, %message, "job ended");
}
