//! The repair queue: what a backend owes the index, kept durably in the index and worked off
//! in the background.
//!
//! Entries come from every place that leaves a backend behind: a write committed without a
//! replica there (the backend was down, slow or its circuit open), a publish that failed, a
//! replica a read found corrupt, a delete or an overwrite whose removal failed, anti-entropy.
//! The worker takes a backend's due entries a few at a time while the backend is usable:
//!
//! * **Replicate**: publish the staged copy if it is still there; otherwise stream the version
//!   from a present replica (verified against the record's checksum as it flows), stage it on
//!   the backend, and publish it under the key's lock, if the version is still current then.
//!   One entry per key and backend: if the key has moved on and its newer version's replica
//!   there waits too, that one is repaired; otherwise the entry is dropped without work.
//! * **Remove**: under the key's lock, delete the copy at the name unless the index names that
//!   place for the current version, and only if its stamp says it is another version of this
//!   key (never a foreign object).
//!
//! Publishing under the key's lock keeps the backends' order of versions equal to the index's,
//! exactly as for client writes: a repair never puts an older version over a newer one.
//! Failures are retried with exponential backoff; the queue survives restarts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hansa_backends::{BackendError, ByteStream};
use tokio::sync::watch;

use super::copies::{discard, publish_at, replica_target, stamp_of};
use super::stage::Target;
use super::verify::Expectation;
use super::Store;
use crate::meta::{now_ms, ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState};
use crate::replication::{bounded, open_replicas};

/// How many entries one page of a backend's queue holds.
const PAGE: usize = 256;
/// The worker looks at the queue at least this often, even without being woken.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// What became of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The replica is present now, or the stale copy is gone.
    Repaired,
    /// Nothing to do any more (the version moved on, the replica is present already, …).
    Dropped,
}

/// Counts of one pass over the queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub repaired: usize,
    pub dropped: usize,
    pub failed: usize,
    /// Entries not yet due (a backend that cannot be used now counts once).
    pub deferred: usize,
}

impl PassReport {
    fn add(&mut self, other: PassReport) {
        self.repaired += other.repaired;
        self.dropped += other.dropped;
        self.failed += other.failed;
        self.deferred += other.deferred;
    }

    fn settled(&self) -> usize {
        self.repaired + self.dropped
    }
}

/// Works the queue until `stopped` changes: a pass whenever woken or every few seconds.
pub async fn run(store: Arc<Store>, mut stopped: watch::Receiver<bool>) {
    let mut depths = std::collections::BTreeMap::new();
    // Backends whose entries are all due on the next pass, whatever their backoff says: every
    // backend at start (the backoffs were earned against a backend that may have come back
    // since), and a backend whose circuit has just closed.
    let mut fresh: HashSet<String> = store.backends.iter().map(|b| b.id().to_string()).collect();
    let mut unusable: HashSet<String> = HashSet::new();
    loop {
        for b in store.backends.iter() {
            let id = b.id().to_string();
            if store.backend_usable(&id) {
                if unusable.remove(&id) {
                    fresh.insert(id);
                }
            } else {
                unusable.insert(id);
            }
        }
        let report = repair_pass_with(&store, &std::mem::take(&mut fresh)).await;
        let queued = log_depth_changes(&store, &mut depths);
        if report.settled() + report.failed > 0 {
            tracing::info!(
                repaired = report.repaired,
                dropped = report.dropped,
                failed = report.failed,
                waiting = report.deferred,
                "repair pass"
            );
        }
        // More work right away only if this pass got something done and left some behind.
        if report.settled() > 0 && report.deferred + report.failed > 0 {
            continue;
        }
        if report.settled() > 0 && queued == 0 {
            tracing::info!("repair queue empty: every backend holds what the index says");
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = store.repair_wake.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Logs each backend's queue depth, with its health, when it has changed since the last pass.
/// Returns the entries queued over all backends.
fn log_depth_changes(store: &Store, last: &mut std::collections::BTreeMap<String, usize>) -> usize {
    let mut total = 0;
    for status in store.backend_status() {
        total += status.queued;
        let before = last.insert(status.health.id.clone(), status.queued);
        if before.unwrap_or(0) == status.queued {
            continue;
        }
        tracing::info!(
            backend = %status.health.id,
            queued = status.queued,
            state = ?status.health.state,
            p50_ms = status.health.p50.map(|d| d.as_millis() as u64),
            p99_ms = status.health.p99.map(|d| d.as_millis() as u64),
            "repair queue depth changed"
        );
    }
    total
}

/// One pass over every backend's due entries, backends side by side, each with its own
/// concurrency (a slow provider does not hold up the others' repairs).
pub async fn repair_pass(store: &Arc<Store>) -> PassReport {
    repair_pass_with(store, &HashSet::new()).await
}

/// [`repair_pass`], with every entry of the backends in `due_now` taken as due.
async fn repair_pass_with(store: &Arc<Store>, due_now: &HashSet<String>) -> PassReport {
    let mut ids: Vec<String> = store.backends.iter().map(|b| b.id().to_string()).collect();
    ids.sort();
    let passes = ids
        .iter()
        .map(|id| backend_pass(store, id, due_now.contains(id)));
    let mut total = PassReport::default();
    for report in futures::future::join_all(passes).await {
        total.add(report);
    }
    total
}

/// Repairs until the queue is empty or `limit` has passed; returns whether it is empty.
/// For tests and tools: the worker does the same in the background.
pub async fn drain_queue(store: &Arc<Store>, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if queue_depth(store) == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let report = repair_pass(store).await;
        if report.settled() == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Entries queued over all backends.
pub fn queue_depth(store: &Store) -> usize {
    store
        .backends
        .iter()
        .map(|b| store.meta.repair_depth(b.id()).map_or(0, |(n, _)| n))
        .sum()
}

async fn backend_pass(store: &Arc<Store>, backend: &str, all_due: bool) -> PassReport {
    let mut report = PassReport::default();
    let concurrency = store.repair().settings.concurrency.max(1);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = match store.meta.repairs(backend, after.as_deref(), PAGE) {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(backend, error = %e, "cannot read the repair queue");
                return report;
            }
        };
        let Some((last, _)) = page.last() else {
            return report;
        };
        after = Some(last.clone());
        let full = page.len() == PAGE;
        if !store.backend_usable(backend) {
            // Waits for the backend; counted once, not entry by entry.
            report.deferred += 1;
            return report;
        }
        let now = now_ms();
        let (due, later): (Vec<_>, Vec<_>) = page
            .into_iter()
            .map(|(_, entry)| entry)
            .partition(|e| all_due || e.not_before_ms <= now);
        report.deferred += later.len();
        let outcomes: Vec<(RepairEntry, Result<Settled, String>)> =
            futures::stream::iter(due.into_iter().map(|entry| async move {
                let outcome = repair_entry(store, &entry).await;
                (entry, outcome)
            }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (entry, outcome) in outcomes {
            settle(store, &entry, outcome, &mut report);
        }
        if !full {
            return report;
        }
    }
}

/// Records how one entry went: gone when done, rescheduled with backoff when it failed.
fn settle(
    store: &Store,
    entry: &RepairEntry,
    outcome: Result<Settled, String>,
    report: &mut PassReport,
) {
    let next = match outcome {
        Ok(settled) => {
            match settled {
                Settled::Repaired => report.repaired += 1,
                Settled::Dropped => report.dropped += 1,
            }
            tracing::debug!(backend = %entry.backend, bucket = %entry.bucket, key = %entry.key,
                ?settled, "repair entry settled");
            None
        }
        Err(error) => {
            report.failed += 1;
            let attempts = entry.attempts.saturating_add(1);
            let backoff = backoff(attempts, store.repair().settings.max_backoff_secs);
            tracing::info!(backend = %entry.backend, bucket = %entry.bucket, key = %entry.key,
                attempts, retry_in = ?backoff, %error, "repair failed; will retry");
            Some(RepairEntry {
                attempts,
                not_before_ms: now_ms() + backoff.as_millis() as u64,
                last_error: Some(error),
                ..entry.clone()
            })
        }
    };
    // Work queued again meanwhile (a newer version, anti-entropy) stays queued.
    if let Err(e) = store.meta.settle_repair(entry, next.as_ref()) {
        tracing::warn!(error = %e, "could not update the repair queue");
    }
}

/// 1 s, 2 s, 4 s … up to `max_secs`, with a little jitter so that retries of many entries do
/// not arrive together.
fn backoff(attempts: u32, max_secs: u64) -> Duration {
    let base = 1u64 << attempts.saturating_sub(1).min(20);
    let secs = base.min(max_secs.max(1));
    let jitter = now_ms() % 250;
    Duration::from_secs(secs) + Duration::from_millis(jitter)
}

/// Does one entry's work.
pub(crate) async fn repair_entry(
    store: &Arc<Store>,
    entry: &RepairEntry,
) -> Result<Settled, String> {
    match &entry.task {
        RepairTask::Replicate { version_id, staged } => {
            replicate(store, entry, version_id, staged.as_deref()).await
        }
        RepairTask::Remove { name } => remove(store, entry, name).await,
    }
}

/// The key's current record (if it has `version_id`, when one is given), with the index of
/// its replica on the entry's backend when that one is not present.
fn waiting_replica(
    store: &Store,
    entry: &RepairEntry,
    version_id: Option<&str>,
) -> Result<Option<(ObjectRecord, usize)>, String> {
    let record = store
        .meta
        .object(&entry.bucket, &entry.key)
        .map_err(|e| e.to_string())?;
    let wanted = |r: &ObjectRecord| version_id.is_none_or(|v| r.version_id == v);
    Ok(record.filter(wanted).and_then(|r| {
        let slot = r
            .replicas
            .iter()
            .position(|x| x.backend == entry.backend && x.state != ReplicaState::Present)?;
        Some((r, slot))
    }))
}

/// Brings the backend's replica of the key to the key's current version. The entry names the
/// version it was queued for; when a later version's replica there waits too (its write missed
/// the backend as well), that one is repaired instead: one entry per key and backend.
async fn replicate(
    store: &Arc<Store>,
    entry: &RepairEntry,
    queued_version: &str,
    queued_handle: Option<&str>,
) -> Result<Settled, String> {
    let Some((record, slot)) = waiting_replica(store, entry, None)? else {
        return Ok(Settled::Dropped);
    };
    let version_id = record.version_id.as_str();
    let replica = record.replicas[slot].clone();
    let Some(target) = replica_target(store, &replica) else {
        return Ok(Settled::Dropped);
    };
    // A copy staged by the write itself: publishing it is all that is left.
    let queued_handle = queued_handle.filter(|_| queued_version == version_id);
    let handle = replica.staged.clone().or(queued_handle.map(str::to_string));
    if let Some(handle) = handle {
        match publish_if_waiting(store, entry, version_id, &target, &handle).await? {
            Some(settled) => return Ok(settled),
            None => tracing::debug!(backend = %entry.backend, "the staged copy is gone; copying"),
        }
    }
    let staged = stage_copy(store, entry, &record, &replica, &target).await?;
    match publish_if_waiting(store, entry, version_id, &target, &staged).await? {
        Some(settled) => Ok(settled),
        None => Err("the staged copy vanished before it was published".into()),
    }
}

/// Under the key's lock: if the version is still current and its replica on the target still
/// waits, publishes `handle` there and records the replica present. `None`: the staged copy is
/// gone (the caller copies anew). A copy no longer wanted is discarded.
async fn publish_if_waiting(
    store: &Store,
    entry: &RepairEntry,
    version_id: &str,
    target: &Target,
    handle: &str,
) -> Result<Option<Settled>, String> {
    let _guard = store.locks.lock(&entry.bucket, &entry.key).await;
    let Some((mut record, slot)) = waiting_replica(store, entry, Some(version_id))? else {
        drop(_guard);
        discard(store, target, handle).await;
        return Ok(Some(Settled::Dropped));
    };
    let stamp = stamp_of(&entry.bucket, &entry.key, &record);
    let (name, published) = publish_at(store, target, handle, &stamp).await;
    let replica = &mut record.replicas[slot];
    match published {
        Ok(put) => {
            replica.name = name.as_str().to_string();
            replica.state = ReplicaState::Present;
            replica.etag = put.etag;
            replica.staged = None;
        }
        Err(BackendError::NotFound { .. }) => {
            if replica.staged.as_deref() == Some(handle) {
                replica.state = ReplicaState::Pending;
                replica.staged = None;
                store
                    .meta
                    .put_object(&entry.bucket, &entry.key, &record)
                    .map_err(|e| e.to_string())?;
            }
            return Ok(None);
        }
        Err(e) => return Err(format!("publish: {e}")),
    }
    store
        .meta
        .put_object(&entry.bucket, &entry.key, &record)
        .map_err(|e| e.to_string())?;
    tracing::info!(backend = %entry.backend, bucket = %entry.bucket, key = %entry.key,
        reason = %entry.reason, "replica repaired");
    Ok(Some(Settled::Repaired))
}

/// Streams the version from a present replica into a staged copy on `target`, verified on
/// the way: a source whose bytes do not add up aborts the stage and the next source is tried.
/// Returns the staged copy's handle.
async fn stage_copy(
    store: &Arc<Store>,
    entry: &RepairEntry,
    record: &ObjectRecord,
    replica: &Replica,
    target: &Target,
) -> Result<String, String> {
    let sources: Vec<Replica> = store
        .read_order(&entry.bucket, &record.replicas)
        .into_iter()
        .filter(|r| r.backend != replica.backend && store.backend_usable(&r.backend))
        .cloned()
        .collect();
    if sources.is_empty() {
        return Err("no present replica to copy from".into());
    }
    let timeout = store.settings().backend_timeout;
    let stamp = stamp_of(&entry.bucket, &entry.key, record);
    let mut errors = Vec::new();
    for source in sources {
        // An empty object has no range to read: its copy is made from nothing.
        let read = if record.size == 0 {
            futures::stream::empty().boxed()
        } else {
            match open_replicas(
                &store.backends,
                vec![source.clone()],
                0..record.size,
                timeout,
            )
            .await
            {
                Ok(read) => read.body,
                Err(failure) => {
                    errors.push(failure.to_string());
                    continue;
                }
            }
        };
        let prepared = match bounded(
            timeout,
            "prepare",
            target
                .backend
                .prepare(&target.name, &record.attributes, &stamp),
        )
        .await
        {
            Ok(handle) => handle,
            Err(e) => return Err(format!("prepare: {e}")),
        };
        let body = verified_body(read, Expectation::of(record), record.size);
        let body = match &store.repair().throttle {
            Some(throttle) => throttle.pace(target.id(), body),
            None => body,
        };
        let (body, watch) = watched(body);
        let stage = target
            .backend
            .stage(&target.name, &prepared, &record.attributes, &stamp, body);
        let staged = watch.bound(stage, &store.settings()).await;
        match staged {
            Ok(staged) => return Ok(staged.handle),
            Err(e) => {
                discard(store, target, &prepared).await;
                errors.push(format!("{}: {e}", source.backend));
            }
        }
    }
    Err(format!("copy failed: {}", errors.join("; ")))
}

/// Under the key's lock, removes the copy at `name` if the index does not name that place for
/// the key's current version and the copy's stamp says it is another version of this key.
async fn remove(store: &Store, entry: &RepairEntry, name: &str) -> Result<Settled, String> {
    let Some(target) = replica_target(
        store,
        &Replica::new(&entry.backend, name, ReplicaState::Pending),
    ) else {
        return Ok(Settled::Dropped);
    };
    let _guard = store.locks.lock(&entry.bucket, &entry.key).await;
    let settled = remove_locked(store, entry, name, &target).await;
    if settled.is_ok() && !hansa_backends::naming::is_record_name(name) {
        // Under the key's lock, like the delete that wrote them.
        super::records::settle_tombstones(store, &entry.bucket, &entry.key).await;
    }
    settled
}

/// [`remove`] under the key's lock.
async fn remove_locked(
    store: &Store,
    entry: &RepairEntry,
    name: &str,
    target: &super::stage::Target,
) -> Result<Settled, String> {
    if name.starts_with(hansa_backends::naming::BUCKET_MARKER_PREFIX) {
        // A marker is removed only while its bucket is gone: a bucket created again since
        // has written a new one at that name.
        let exists = store
            .meta
            .bucket(&entry.bucket)
            .map_err(|e| e.to_string())?;
        if exists.is_some() {
            return Ok(Settled::Dropped);
        }
    }
    let current = store
        .meta
        .object(&entry.bucket, &entry.key)
        .map_err(|e| e.to_string())?;
    if current.as_ref().is_some_and(|c| {
        c.replicas
            .iter()
            .any(|r| r.backend == entry.backend && r.name == name)
    }) {
        // The current version owns that place (or will, through its own repair).
        return Ok(Settled::Dropped);
    }
    let limit = store.settings().backend_timeout;
    let info = match bounded(limit, "head", target.backend.head(&target.name)).await {
        Ok(info) => info,
        Err(BackendError::NotFound { .. }) => return Ok(Settled::Dropped),
        Err(e) => return Err(format!("head: {e}")),
    };
    let stale = info.stamp.is_some_and(|s| {
        s.bucket == entry.bucket
            && s.key == entry.key
            && current
                .as_ref()
                .is_none_or(|c| c.version_id != s.version_id)
    });
    if !stale {
        return Ok(Settled::Dropped);
    }
    match bounded(limit, "delete", target.backend.delete(&target.name)).await {
        Ok(()) | Err(BackendError::NotFound { .. }) => {
            tracing::info!(backend = %entry.backend, bucket = %entry.bucket, key = %entry.key,
                reason = %entry.reason, "stale copy removed");
            Ok(Settled::Repaired)
        }
        Err(e) => Err(format!("delete: {e}")),
    }
}

/// A source's bytes on their way into a repair.
type SourceBody =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>;

/// A body that fails instead of ending when its bytes are not the object's (or not all of
/// them): the backend then stages nothing.
fn verified_body(body: SourceBody, expectation: Option<Expectation>, size: u64) -> ByteStream {
    struct State {
        body: SourceBody,
        verifier: Option<super::verify::Verifier>,
        seen: u64,
        done: bool,
    }
    let state = State {
        body,
        verifier: expectation.map(|e| e.verifier()),
        seen: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        match st.body.next().await {
            Some(Ok(chunk)) => {
                st.seen += chunk.len() as u64;
                if let Some(v) = st.verifier.as_mut() {
                    v.update(&chunk);
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                let message = format!("reading the source: {e}");
                Some((Err(BackendError::Unavailable { message }), st))
            }
            None => {
                st.done = true;
                let whole = st.seen == size;
                if whole && st.verifier.take().is_none_or(|v| v.matches()) {
                    return None;
                }
                tracing::warn!(
                    seen = st.seen,
                    size,
                    "a repair source's bytes do not match the object; not copied"
                );
                Some((Err(BackendError::Aborted), st))
            }
        }
    })
    .boxed()
}

/// When a repair's body last moved, so that a target that stops taking bytes is given up on
/// like any silent backend call, however large the object.
struct Watch {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
    ended: Arc<AtomicBool>,
}

fn watched(body: ByteStream) -> (ByteStream, Watch) {
    let watch = Watch {
        origin: Instant::now(),
        last_ms: Arc::new(AtomicU64::new(0)),
        ended: Arc::new(AtomicBool::new(false)),
    };
    let (origin, last, ended) = (watch.origin, watch.last_ms.clone(), watch.ended.clone());
    let body = body
        .inspect(move |_| last.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed))
        .chain(futures::stream::poll_fn(move |_| {
            ended.store(true, Ordering::Relaxed);
            std::task::Poll::Ready(None)
        }))
        .boxed();
    (body, watch)
}

impl Watch {
    /// Runs `stage` while its body keeps moving (each step within the backend timeout) and,
    /// once the body has ended, for at most the publish timeout.
    async fn bound<T>(
        &self,
        stage: impl std::future::Future<Output = Result<T, BackendError>>,
        settings: &super::Settings,
    ) -> Result<T, BackendError> {
        tokio::pin!(stage);
        let tick = Duration::from_millis(250);
        let mut ended_at: Option<Instant> = None;
        loop {
            tokio::select! {
                result = &mut stage => return result,
                _ = tokio::time::sleep(tick) => {}
            }
            let idle = self
                .origin
                .elapsed()
                .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
            if self.ended.load(Ordering::Relaxed) {
                let since = *ended_at.get_or_insert_with(Instant::now);
                if since.elapsed() > settings.publish_timeout {
                    return Err(BackendError::Unavailable {
                        message: "stage did not finish after its body ended".into(),
                    });
                }
            } else if idle > settings.backend_timeout {
                return Err(BackendError::Unavailable {
                    message: format!("stage took nothing for {idle:?}"),
                });
            }
        }
    }
}
