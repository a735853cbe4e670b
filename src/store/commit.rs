//! The second half of every write: commit under the key's lock, publish, answer; then, in the
//! background, the stragglers, late publishes, the copies the write superseded and the intent.
//!
//! The index entry is written before the copies are published: one flush makes the new
//! version and the handles of its staged copies durable, so a crash at any later moment is
//! finished by publishing what is still staged (publishing is idempotent). Readers that meet
//! the entry while its copies are being published wait for the key's lock. The version commits
//! when the write quorum holds its bytes durably (staged or published) and at least one copy
//! is published; with none published, the previous entry is put back and nothing visible has
//! changed anywhere.
//!
//! The client is answered once one copy is published and the others had the grace: a publish
//! still running then (a silent provider) finishes in the background. If it lands after a
//! later write of the key committed, it may have put an older version over the newer one on
//! that backend: that replica is then marked pending, so reads skip it until repair.

use std::sync::Arc;
use std::time::Instant;

use hansa_backends::{BackendError, PhysicalName, PutResult, Staged, Stamp};
use tokio::task::JoinHandle;

use super::condition::WriteCondition;
use super::copies::{clone_kind, discard, publish_at};
use super::stage::{first_or_deadline, grace, IntentLog, Slot, Target, TargetSlot};
use super::{queue, versions, RunningWrite, Store, StoreError, StoreResult};
use crate::meta::{
    Before, IntentPhase, ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState,
};
use crate::replication::bounded;

/// A version staged on its targets, ready to commit.
pub(crate) struct StagedWrite {
    /// The new object's record; its replicas are filled in by the commit.
    pub record: ObjectRecord,
    pub bucket: String,
    pub key: String,
    pub stamp: Stamp,
    pub slots: Vec<TargetSlot>,
    pub quorum: usize,
    pub condition: WriteCondition,
    pub started: Instant,
    pub log: Arc<IntentLog>,
}

/// How a publish went, and at which name.
type Published = (PhysicalName, Result<PutResult, BackendError>);

/// A publish that had not finished when the client was answered.
struct LatePublish {
    slot: usize,
    target: Target,
    handle: String,
    task: JoinHandle<Published>,
}

/// Commits `write` if its quorum staged it and its condition still holds; answers with the
/// committed record. Whatever happens, nothing it staged is left behind.
pub(crate) async fn commit(
    store: &Arc<Store>,
    mut write: StagedWrite,
    mut running: RunningWrite,
) -> StoreResult<ObjectRecord> {
    loop {
        match try_commit(store, write, running).await {
            Attempt::Done(result) => return result,
            Attempt::HeldCopiesFailed(retry) => {
                let Retry {
                    write: w,
                    running: r,
                    failed,
                } = *retry;
                (write, running) = (w, r);
                fall_back_to_stragglers(&mut write, failed).await;
            }
        }
    }
}

/// How one attempt at committing ended.
// One per attempt, moved once: the size of the record is no cost worth a box.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Done(StoreResult<ObjectRecord>),
    /// The copies held in memory that made the quorum could not be published, and nothing
    /// visible changed; targets still staging may make the quorum instead.
    HeldCopiesFailed(Box<Retry>),
}

/// A write to try again, and why each of its publishes failed (`None`: not tried or done).
struct Retry {
    write: StagedWrite,
    running: RunningWrite,
    failed: Vec<Option<BackendError>>,
}

/// After the held copies failed to publish: they are out of the write, and the stragglers'
/// stages are waited for (each bounded by its own timeouts), to count towards the quorum.
async fn fall_back_to_stragglers(write: &mut StagedWrite, failed: Vec<Option<BackendError>>) {
    for (slot, failure) in write.slots.iter_mut().zip(failed) {
        if let Some(e) = failure {
            slot.slot = Slot::Missing(e);
        }
    }
    for slot in write.slots.iter_mut() {
        if !matches!(slot.slot, Slot::Straggling(_)) {
            continue;
        }
        let lost = Slot::Missing(BackendError::Other {
            message: "stage task lost".into(),
        });
        let Slot::Straggling(task) = std::mem::replace(&mut slot.slot, lost) else {
            continue;
        };
        slot.slot = match task.outcome().await {
            Ok((name, copy)) => {
                slot.target.name = name;
                Slot::Staged(copy)
            }
            Err(e) => Slot::Missing(e),
        };
    }
}

/// One attempt at [`commit`].
async fn try_commit(store: &Arc<Store>, mut write: StagedWrite, running: RunningWrite) -> Attempt {
    // Copies held in memory count once published; if the quorum needs more than one of them,
    // they are made durable first, so that a failing publish can never leave some of them
    // published and the write failed (see `publish_all`).
    let durable = durable_count(&write.slots);
    let staged = write.slots.iter().filter(|s| s.is_staged()).count();
    if staged >= write.quorum && write.quorum.saturating_sub(durable) >= 2 {
        make_durable(store, &mut write.slots).await;
    }
    let staged = write.slots.iter().filter(|s| s.is_staged()).count();
    if staged < write.quorum || write.quorum.saturating_sub(durable_count(&write.slots)) >= 2 {
        let error = quorum_error(&write.slots, write.quorum);
        abandon(store, write, running);
        return Attempt::Done(Err(error));
    }
    if let Some(rule) = unmet_rule(store, &mut write).await {
        abandon(store, write, running);
        return Attempt::Done(Err(StoreError::PlacementUnmet(rule)));
    }
    let guard = store.locks.lock(&write.bucket, &write.key).await;
    let previous = match current(store, &write) {
        Ok(previous) => previous,
        Err(e) => {
            drop(guard);
            abandon(store, write, running);
            return Attempt::Done(Err(e));
        }
    };
    // In a bucket with versioning, the version replaced is copied aside now, before the
    // commit names the new one; if it cannot be kept, nothing changes.
    let aside = match versions::prepare_replacement(
        store,
        &write.bucket,
        &write.key,
        previous.as_ref(),
        false,
    )
    .await
    {
        Ok(aside) => aside,
        Err(e) => {
            drop(guard);
            abandon(store, write, running);
            return Attempt::Done(Err(e));
        }
    };
    write.record.versioned = aside.versioned;
    write.record.replicas = write
        .slots
        .iter()
        .map(|s| {
            let mut r = Replica::new(s.target.id(), s.target.name.as_str(), ReplicaState::Pending);
            if let Slot::Staged(staged) = &s.slot {
                r.state = ReplicaState::Staged;
                r.staged = Some(staged.handle.clone());
            }
            r
        })
        .collect();
    let superseded: Vec<Replica> = previous
        .iter()
        .flat_map(|p| p.replicas.iter())
        .filter(|old| !write.record.replicas.iter().any(|new| new.same_slot(old)))
        .cloned()
        .collect();
    let committed = async {
        let staged_handles: Vec<Option<String>> = write
            .slots
            .iter()
            .map(|s| match &s.slot {
                Slot::Staged(staged) => Some(staged.handle.clone()),
                _ => None,
            })
            .collect();
        let names: Vec<String> = write
            .slots
            .iter()
            .map(|s| s.target.name.as_str().to_string())
            .collect();
        write
            .log
            .update(|intent| {
                intent.phase = IntentPhase::Committed;
                intent.superseded = superseded;
                intent.before = Some(match &previous {
                    Some(p) => Before::Object(Box::new(p.clone())),
                    None => Before::Absent,
                });
                for ((t, handle), name) in intent.targets.iter_mut().zip(staged_handles).zip(names)
                {
                    t.name = name;
                    if handle.is_some() {
                        t.handle = handle;
                    }
                }
            })
            .await?;
        versions::record_aside(store, &write.bucket, &write.key, &aside)?;
        store
            .meta
            .put_object(&write.bucket, &write.key, &write.record)?;
        // Replicas no copy was staged for are owed by their backends from now on: queued in
        // the same flush as the entry that names them.
        for r in write.record.replicas.iter().zip(&write.slots) {
            if let (
                replica,
                TargetSlot {
                    slot: Slot::Missing(e),
                    ..
                },
            ) = r
            {
                queue::queue_quietly(
                    store,
                    RepairEntry::new(
                        &replica.backend,
                        &write.bucket,
                        &write.key,
                        RepairTask::Replicate {
                            version_id: write.record.version_id.clone(),
                            staged: None,
                        },
                        &format!("missed the write: {e}"),
                    ),
                );
            }
        }
        Ok::<_, StoreError>(store.meta.sync().await?)
    }
    .await;
    if let Err(e) = committed {
        tracing::error!(error = %e, "could not commit a write to the index");
        versions::undo_aside(store, &write.bucket, &write.key, &aside);
        restore(store, &write.bucket, &write.key, previous.as_ref()).await;
        drop(guard);
        abandon(store, write, running);
        return Attempt::Done(Err(e));
    }
    let (published, late) = publish_all(store, &write).await;
    let mut any = false;
    for (i, result) in published.iter().enumerate() {
        let replica = &mut write.record.replicas[i];
        if let Some((name, _)) = result {
            replica.name = name.as_str().to_string();
        }
        match result.as_ref().map(|(_, r)| r) {
            Some(Ok(put)) => {
                any = true;
                replica.state = ReplicaState::Present;
                replica.etag = put.etag.clone();
                replica.staged = None;
            }
            // The staged copy is gone: nothing left to publish there.
            Some(Err(BackendError::NotFound { .. })) => {
                replica.state = ReplicaState::Pending;
                replica.staged = None;
            }
            Some(Err(e)) => {
                tracing::warn!(backend = %replica.backend, error = %e, "publish failed; the replica stays staged and is published later");
            }
            // Not published (yet): stays as it is.
            None => {}
        }
    }
    if !any {
        // Nothing visible changed: the previous version stays the object. (Publishes are
        // left running only once one has succeeded, so none is running now.)
        versions::undo_aside(store, &write.bucket, &write.key, &aside);
        restore(store, &write.bucket, &write.key, previous.as_ref()).await;
        drop(guard);
        if write
            .slots
            .iter()
            .any(|s| matches!(s.slot, Slot::Straggling(_)))
        {
            let failed = published
                .into_iter()
                .map(|r| r.and_then(|(_, result)| result.err()))
                .collect();
            return Attempt::HeldCopiesFailed(Box::new(Retry {
                write,
                running,
                failed,
            }));
        }
        let failures: Vec<(String, BackendError)> = write
            .slots
            .iter()
            .zip(published)
            .filter_map(|(s, r)| match r {
                Some((_, Err(e))) => Some((s.target.id().to_string(), e)),
                _ => None,
            })
            .collect();
        let error = StoreError::quorum(0, write.quorum, &failures);
        abandon(store, write, running);
        return Attempt::Done(Err(error));
    }
    // Not flushed: after a crash, recovery publishes the staged copies again (idempotent),
    // which gives the same etags.
    if let Err(e) = store
        .meta
        .put_object(&write.bucket, &write.key, &write.record)
    {
        tracing::warn!(error = %e, "could not record published replicas; recovery will");
    }
    drop(guard);
    if aside.dropped.is_some() {
        let (store, bucket, key) = (store.clone(), write.bucket.clone(), write.key.clone());
        tokio::spawn(async move { versions::finish_aside(&store, &bucket, &key, &aside).await });
    }
    let record = write.record.clone();
    tokio::spawn(after_commit(store.clone(), write, late, running));
    Attempt::Done(Ok(record))
}

/// The first rule of the bucket's policy that the staged copies fail (e.g. no copy in the
/// required jurisdiction), after waiting for the targets still staging when they are needed:
/// a write is never acknowledged on backends the policy does not accept as its holders.
async fn unmet_rule(store: &Store, write: &mut StagedWrite) -> Option<String> {
    let holders = |write: &StagedWrite| -> Vec<String> {
        write
            .slots
            .iter()
            .filter(|s| s.is_staged())
            .map(|s| s.target.id().to_string())
            .collect()
    };
    let check = |write: &StagedWrite| {
        let ids = holders(write);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        store.placement().unmet_rule(&write.bucket, &ids)
    };
    check(write)?;
    if write
        .slots
        .iter()
        .any(|s| matches!(s.slot, Slot::Straggling(_)))
    {
        let none = write.slots.iter().map(|_| None).collect();
        fall_back_to_stragglers(write, none).await;
    }
    check(write)
}

/// Staged copies that survive a crash: what the write quorum counts before anything is
/// published.
fn durable_count(slots: &[TargetSlot]) -> usize {
    slots
        .iter()
        .filter(|s| matches!(&s.slot, Slot::Staged(staged) if staged.durable))
        .count()
}

/// Makes the staged copies a store holds in memory durable (still invisible), for a write whose
/// quorum needs them: they count only once they survive a crash. A copy that cannot be made
/// durable is dropped from the write.
async fn make_durable(store: &Store, slots: &mut [TargetSlot]) {
    let limit = store.settings().backend_timeout;
    let persisted = futures::future::join_all(slots.iter().map(|s| async move {
        match &s.slot {
            Slot::Staged(staged) if !staged.durable => Some(
                bounded(
                    limit,
                    "persist",
                    s.target.backend.persist(&s.target.name, staged),
                )
                .await,
            ),
            _ => None,
        }
    }))
    .await;
    for (slot, result) in slots.iter_mut().zip(persisted) {
        match result {
            Some(Ok(staged)) => slot.slot = Slot::Staged(staged),
            Some(Err(e)) => {
                tracing::warn!(backend = slot.target.id(), error = %e, "could not make a staged copy durable");
                slot.slot = Slot::Missing(e);
            }
            None => {}
        }
    }
}

/// The key's current record, after checking the bucket still exists and the write's
/// condition still holds against it.
fn current(store: &Store, write: &StagedWrite) -> StoreResult<Option<ObjectRecord>> {
    if store.meta.bucket(&write.bucket)?.is_none() {
        return Err(StoreError::NoSuchBucket(write.bucket.clone()));
    }
    let previous = store.meta.object(&write.bucket, &write.key)?;
    write.condition.check(previous.as_ref(), &write.key)?;
    Ok(previous)
}

/// Puts the previous entry back (or none) after a commit that must not stand.
async fn restore(store: &Store, bucket: &str, key: &str, previous: Option<&ObjectRecord>) {
    let restored = match previous {
        Some(p) => store.meta.put_object(bucket, key, p),
        None => store.meta.delete_object(bucket, key).map(|_| ()),
    };
    let flushed = match restored {
        Ok(()) => store.meta.sync().await,
        Err(e) => Err(e),
    };
    if let Err(e) = flushed {
        tracing::error!(error = %e, bucket, key, "could not restore the previous index entry");
    }
}

/// Publishes every staged copy at once, until one has succeeded and the others had the
/// grace; returns each slot's result (`None`: no copy, or still publishing) and the publishes
/// still running.
async fn publish_staged(
    store: &Arc<Store>,
    write: &StagedWrite,
    results: &mut [Option<Published>],
    only: impl Fn(&Staged) -> bool,
    wait_for: usize,
) -> Vec<LatePublish> {
    let mut running: Vec<LatePublish> = write
        .slots
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| match &s.slot {
            Slot::Staged(staged) if results[slot].is_none() && only(staged) => {
                let (target, handle, stamp) =
                    (s.target.clone(), staged.handle.clone(), write.stamp.clone());
                let task = {
                    let (store, target, handle) = (store.clone(), target.clone(), handle.clone());
                    tokio::spawn(async move { publish_at(&store, &target, &handle, &stamp).await })
                };
                Some(LatePublish {
                    slot,
                    target,
                    handle,
                    task,
                })
            }
            _ => None,
        })
        .collect();
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    while !running.is_empty() {
        let published = results
            .iter()
            .filter(|r| matches!(r, Some((_, Ok(_)))))
            .count();
        if published >= wait_for.max(1) && deadline.is_none() {
            deadline = Some(Box::pin(tokio::time::sleep(grace(
                &store.settings(),
                write.started,
            ))));
        }
        let next = first_or_deadline(running.iter_mut().map(|l| &mut l.task), deadline.as_mut());
        let Some((result, pos)) = next.await else {
            break;
        };
        let finished = running.swap_remove(pos);
        results[finished.slot] = Some(result.unwrap_or_else(|e| {
            (
                finished.target.name.clone(),
                Err(BackendError::Other {
                    message: format!("publish task failed: {e}"),
                }),
            )
        }));
    }
    running
}

/// Publishes the staged copies: those the quorum needs that are held in memory first (one
/// held copy at most is needed here, see [`commit`]: if it fails, nothing visible has changed
/// anywhere), then the others, until the write quorum is published (or every publish has
/// ended) and the others had the grace. Returns each slot's result (`None`: no copy, or
/// still publishing) and the publishes still running.
async fn publish_all(
    store: &Arc<Store>,
    write: &StagedWrite,
) -> (Vec<Option<Published>>, Vec<LatePublish>) {
    let mut results: Vec<Option<Published>> = (0..write.slots.len()).map(|_| None).collect();
    let needs_held = durable_count(&write.slots) < write.quorum;
    if needs_held {
        // Waited for to the end (no grace): nothing is left running.
        publish_staged(store, write, &mut results, |s| !s.durable, usize::MAX).await;
        let held_published = results
            .iter()
            .filter(|r| matches!(r, Some((_, Ok(_)))))
            .count();
        if durable_count(&write.slots) + held_published < write.quorum {
            return (results, Vec::new());
        }
    }
    let published = results
        .iter()
        .filter(|r| matches!(r, Some((_, Ok(_)))))
        .count();
    let wait_for = write.quorum.saturating_sub(published);
    let late = publish_staged(store, write, &mut results, |_| true, wait_for).await;
    (results, late)
}

fn quorum_error(slots: &[TargetSlot], quorum: usize) -> StoreError {
    let failures: Vec<(String, BackendError)> = slots
        .iter()
        .filter_map(|s| match &s.slot {
            Slot::Missing(e) => Some((s.target.id().to_string(), clone_kind(e))),
            Slot::Straggling(_) => Some((
                s.target.id().to_string(),
                BackendError::Unavailable {
                    message: "too slow".into(),
                },
            )),
            Slot::Staged(_) => None,
        })
        .collect();
    StoreError::quorum(durable_count(slots), quorum, &failures)
}

/// A write that does not commit: every staged or prepared copy is discarded (stragglers once
/// they end), then the intent goes. Runs in the background; the client's answer does not wait.
pub(crate) fn abandon(store: &Arc<Store>, write: StagedWrite, running: RunningWrite) {
    let store = store.clone();
    tokio::spawn(async move {
        let log = write.log.clone();
        let mut staged = Vec::new();
        for s in write.slots {
            let copy = match s.slot {
                Slot::Staged(copy) => Some((s.target.name.clone(), copy.handle)),
                Slot::Straggling(task) => task
                    .outcome()
                    .await
                    .ok()
                    .map(|(name, copy)| (name, copy.handle)),
                Slot::Missing(_) => None,
            };
            staged.push((s.target, copy));
        }
        // No more handles are recorded; whatever was prepared and is still named goes.
        log.close().await;
        let prepared = log.targets().await;
        for (i, (target, copy)) in staged.into_iter().enumerate() {
            if let Some((name, handle)) = copy {
                discard(
                    &store,
                    &Target {
                        name,
                        ..target.clone()
                    },
                    &handle,
                )
                .await;
            }
            if let Some(t) = prepared.get(i) {
                if let (Some(handle), Ok(name)) = (&t.handle, PhysicalName::parse(&t.name)) {
                    discard(&store, &Target { name, ..target }, handle).await;
                }
            }
        }
        let _ = store.meta.clear_intent(log.id());
        drop(running);
    });
}

/// After the answer: late publishes are recorded, stragglers are published if their version
/// is still current (or discarded), the copies the write superseded are removed, the upload's
/// leftovers too, and the intent goes once nothing it names is left to do.
async fn after_commit(
    store: Arc<Store>,
    write: StagedWrite,
    late: Vec<LatePublish>,
    running: RunningWrite,
) {
    let (bucket, key, stamp) = (&write.bucket, &write.key, &write.stamp);
    let late_publishes = late.into_iter().map(|l| {
        let store = store.clone();
        async move {
            let (name, result) = l.task.await.unwrap_or_else(|e| {
                (
                    l.target.name.clone(),
                    Err(BackendError::Other {
                        message: format!("publish task failed: {e}"),
                    }),
                )
            });
            let target = Target { name, ..l.target };
            settle_late_publish(&store, bucket, key, stamp, &target, &l.handle, result).await
        }
    });
    let stragglers = write.slots.into_iter().filter_map(|s| match s.slot {
        Slot::Straggling(task) => {
            let (store, target) = (store.clone(), s.target);
            Some(async move {
                match task.outcome().await {
                    Ok((name, copy)) => {
                        let target = Target { name, ..target };
                        publish_if_current(&store, bucket, key, &target, &copy.handle, stamp)
                            .await
                    }
                    Err(e) => {
                        tracing::info!(backend = target.id(), error = %e, "a straggling copy failed; its replica stays pending");
                    }
                }
            })
        }
        _ => None,
    });
    futures::future::join(
        futures::future::join_all(late_publishes),
        futures::future::join_all(stragglers),
    )
    .await;
    // Settling the intent queues what is still not present (a straggler that failed, a
    // publish that failed): the same step recovery takes for a write cut off by a crash.
    write.log.close().await;
    match store.meta.intent(write.log.id()) {
        Ok(Some(intent)) => {
            super::recovery::settle(&store, write.log.id(), &intent).await;
        }
        Ok(None) => {}
        // The intent stays; upkeep settles it later.
        Err(e) => tracing::warn!(error = %e, "could not read a write's intent"),
    }
    drop(running);
}

/// A publish that finished after the client was answered. If the key still has this version,
/// the replica is recorded; if a later write committed meanwhile, this publish may have put
/// the older version over the newer one: then the newer version's replica there is marked
/// pending (reads skip it; repair replaces it).
async fn settle_late_publish(
    store: &Store,
    bucket: &str,
    key: &str,
    stamp: &Stamp,
    target: &Target,
    handle: &str,
    result: Result<PutResult, BackendError>,
) {
    let _guard = store.locks.lock(bucket, key).await;
    let Ok(Some(mut record)) = store.meta.object(bucket, key) else {
        return;
    };
    let Some(replica) = record
        .replicas
        .iter_mut()
        .find(|r| r.backend == target.id())
    else {
        return;
    };
    if record.version_id == stamp.version_id {
        if replica.staged.as_deref() != Some(handle) {
            return;
        }
        match result {
            Ok(put) => {
                replica.name = target.name.as_str().to_string();
                replica.state = ReplicaState::Present;
                replica.etag = put.etag;
                replica.staged = None;
            }
            Err(BackendError::NotFound { .. }) => {
                replica.state = ReplicaState::Pending;
                replica.staged = None;
            }
            Err(e) => {
                tracing::warn!(backend = target.id(), error = %e, "a late publish failed; the replica stays staged");
                return;
            }
        }
    } else {
        if result.is_err() || replica.state != ReplicaState::Present {
            return;
        }
        let landed_over = bounded(
            store.settings().backend_timeout,
            "head",
            target.backend.head(&target.name),
        )
        .await
        .map(|info| info.stamp.is_some_and(|s| s.version_id == stamp.version_id));
        if !matches!(landed_over, Ok(true)) {
            return;
        }
        tracing::warn!(
            bucket,
            key,
            backend = target.id(),
            "an older version's late publish landed over the current one; the replica is pending"
        );
        replica.state = ReplicaState::Pending;
        queue::queue(
            store,
            RepairEntry::new(
                target.id(),
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: record.version_id.clone(),
                    staged: None,
                },
                "an older version's late publish landed over it",
            ),
        );
    }
    if let Err(e) = store.meta.put_object(bucket, key, &record) {
        tracing::warn!(error = %e, "could not record a late publish");
    }
}

/// Publishes a straggler's staged copy if its version is still the key's and its replica
/// still waits for it; otherwise discards it.
async fn publish_if_current(
    store: &Store,
    bucket: &str,
    key: &str,
    target: &Target,
    handle: &str,
    stamp: &Stamp,
) {
    let guard = store.locks.lock(bucket, key).await;
    let current = match store.meta.object(bucket, key) {
        Ok(Some(r)) if r.version_id == stamp.version_id => Some(r),
        _ => None,
    };
    let waiting = current.as_ref().and_then(|r| {
        r.replicas
            .iter()
            .position(|r| r.backend == target.id() && r.state == ReplicaState::Pending)
    });
    let (Some(mut record), Some(slot)) = (current, waiting) else {
        drop(guard);
        discard(store, target, handle).await;
        return;
    };
    let (name, published) = publish_at(store, target, handle, stamp).await;
    let replica = &mut record.replicas[slot];
    replica.name = name.as_str().to_string();
    match published {
        Ok(put) => {
            replica.state = ReplicaState::Present;
            replica.etag = put.etag;
            replica.staged = None;
            tracing::debug!(backend = target.id(), "a straggling copy was published");
        }
        Err(e) => {
            tracing::warn!(backend = target.id(), error = %e, "publishing a straggling copy failed; it stays staged");
            replica.state = ReplicaState::Staged;
            replica.staged = Some(handle.to_string());
        }
    }
    if let Err(e) = store.meta.put_object(bucket, key, &record) {
        tracing::warn!(error = %e, "could not record a straggler's replica");
    }
}
