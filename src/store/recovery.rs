//! Finishing what writes left behind: at start-up, the writes a crash interrupted; later, at
//! intervals, publishes that failed (a backend that was down) and copies not yet removed.
//!
//! Every write keeps an intent until it is settled. An intent still in the `Staging` phase
//! belongs to a write that never committed: its staged copies are discarded and nothing
//! visible changes. A `Committed` one names a version the index holds (unless a later write
//! or a delete replaced it): its copies still staged are published (idempotently), and the
//! copies of the version it replaced are removed. What no intent names any more (a crash
//! before an intent reached the disk) is collected by age.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hansa_backends::BackendError;

use super::copies::{discard, publish_at, replica_target, stamp_of};
use super::queue::{queue_missing_replicas, queue_removal};
use super::Store;
use crate::meta::{Before, Intent, IntentPhase, Replica, ReplicaState};
use crate::replication::bounded;

/// Settles every intent at least `older_than` old that no write of this process holds;
/// returns how many were finished. At start-up, call with `Duration::ZERO`.
pub async fn finish_intents(store: &Arc<Store>, older_than: Duration) -> usize {
    let intents = match store.meta.intents() {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot read write intents");
            return 0;
        }
    };
    let now = crate::meta::now_ms();
    let mut finished = 0;
    for (id, intent) in intents {
        let age = Duration::from_millis(now.saturating_sub(intent.started_ms));
        if store.is_running(&id) || age < older_than {
            continue;
        }
        let done = match intent.phase {
            IntentPhase::Staging => {
                discard_all(store, &intent).await;
                tracing::info!(bucket = %intent.bucket, key = %intent.key, version = %intent.version_id,
                    "discarded the copies of a write that never committed");
                if let Err(e) = store.meta.clear_intent(&id) {
                    tracing::warn!(error = %e, "could not clear an intent");
                }
                true
            }
            IntentPhase::Committed => settle(store, &id, &intent).await,
        };
        finished += usize::from(done);
    }
    if let Err(e) = store.meta.sync().await {
        tracing::error!(error = %e, "cannot flush the index after finishing writes");
    }
    finished
}

/// Discards every copy an intent names.
async fn discard_all(store: &Store, intent: &Intent) {
    for t in &intent.targets {
        let (Some(handle), Some(target)) = (&t.handle, target_of(store, &t.backend, &t.name))
        else {
            continue;
        };
        discard(store, &target, handle).await;
    }
}

fn target_of(store: &Store, backend: &str, name: &str) -> Option<super::stage::Target> {
    replica_target(store, &Replica::new(backend, name, ReplicaState::Pending))
}

/// Finishes a committed write: publishes its copies still staged (or discards them if the key
/// has moved on), removes the copies it superseded and its upload's leftovers, and clears the
/// intent once nothing is left. Returns whether the intent is cleared.
pub(crate) async fn settle(store: &Store, id: &str, intent: &Intent) -> bool {
    let mut unfinished = false;
    let mut queued = false;
    let still_staged = publish_remaining(store, intent).await;
    // Every replica of the version not present now is owed by its backend: one still staged
    // where a backend is failing, a straggler's copy that never completed, a staged copy that
    // is gone. The repair queue publishes (or copies) once the backend is back, and the write
    // is settled. After a crash this is the only place those debts are recorded: stragglers
    // are not queued when the entry is committed, the write's follow-up died with the process.
    match store.meta.object(&intent.bucket, &intent.key) {
        Ok(Some(record)) if record.version_id == intent.version_id => {
            let reason = if still_staged {
                "publish failed"
            } else {
                "not published with the write"
            };
            queue_missing_replicas(store, &intent.bucket, &intent.key, &record, reason);
            queued |= record
                .replicas
                .iter()
                .any(|r| r.state != ReplicaState::Present);
        }
        Ok(_) => {}
        Err(_) => unfinished = true,
    }
    for old in &intent.superseded {
        if !remove_superseded(store, intent, old).await {
            queued = true;
            queue_removal(
                store,
                &intent.bucket,
                &intent.key,
                old,
                "missed an overwrite",
            );
        }
    }
    if intent.upload_id.is_some() {
        unfinished |= !forget_upload(store, intent).await;
    }
    if unfinished {
        return false;
    }
    // The debts are durable before the intent that would otherwise find them again goes.
    if queued {
        if let Err(e) = store.meta.sync().await {
            tracing::warn!(error = %e, "could not flush the repair queue; the intent stays");
            return false;
        }
    }
    if let Err(e) = store.meta.clear_intent(id) {
        tracing::warn!(error = %e, "could not clear an intent");
        return false;
    }
    true
}

/// Publishes the staged copies of the intent's version; returns whether some stay staged.
async fn publish_remaining(store: &Store, intent: &Intent) -> bool {
    let _guard = store.locks.lock(&intent.bucket, &intent.key).await;
    let record = match store.meta.object(&intent.bucket, &intent.key) {
        Ok(Some(r)) if r.version_id == intent.version_id => r,
        Ok(_) => {
            // A later write or a delete replaced this version: its staged copies are
            // leftovers (the index never names them any more).
            discard_all(store, intent).await;
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the index to finish a write");
            return true;
        }
    };
    let mut record = record;
    let stamp = stamp_of(&intent.bucket, &intent.key, &record);
    let mut changed = false;
    let mut still_staged = false;
    // Whether some copy may have been published (a publish that could not be proven not to
    // have happened): then the write may have been answered, and it stands.
    let mut maybe_published = false;
    for replica in record.replicas.iter_mut() {
        let Some(target) = replica_target(store, replica) else {
            continue;
        };
        // A copy still staged in the index, or one a straggler staged before a crash (its
        // replica is pending and the intent holds its handle).
        let handle = match (replica.state, &replica.staged) {
            (ReplicaState::Present, _) => {
                maybe_published = true;
                continue;
            }
            (ReplicaState::Staged, Some(handle)) => handle.clone(),
            (ReplicaState::Pending, _) => {
                let from_intent = intent
                    .targets
                    .iter()
                    .find(|t| t.backend == replica.backend && t.name == replica.name)
                    .and_then(|t| t.handle.clone());
                match from_intent {
                    Some(handle) => handle,
                    None => continue,
                }
            }
            _ => continue,
        };
        let (name, published) = publish_at(store, &target, &handle, &stamp).await;
        match published {
            Ok(put) => {
                tracing::info!(bucket = %intent.bucket, key = %intent.key, backend = %replica.backend,
                    "published a copy left staged");
                replica.name = name.as_str().to_string();
                replica.state = ReplicaState::Present;
                replica.etag = put.etag;
                replica.staged = None;
                changed = true;
                maybe_published = true;
            }
            // Gone, and the name does not hold this version: never published there.
            Err(BackendError::NotFound { .. }) => {
                if replica.state == ReplicaState::Staged {
                    tracing::warn!(backend = %replica.backend, "a staged copy is gone; the replica is pending");
                    replica.state = ReplicaState::Pending;
                    replica.staged = None;
                    changed = true;
                }
            }
            Err(e) if replica.state == ReplicaState::Pending => {
                // A straggler's copy that never completed (or cannot be reached now).
                tracing::debug!(backend = %replica.backend, error = %e, "a straggler's copy cannot be published");
                maybe_published = true;
                discard(store, &target, &handle).await;
            }
            Err(e) => {
                tracing::warn!(backend = %replica.backend, error = %e, "publishing a staged copy failed again");
                maybe_published = true;
                still_staged = true;
            }
        }
    }
    if !maybe_published {
        // Committed, but provably published nowhere (a crash between the index's flush and
        // the first publish, with the staged copies lost): the client never got an answer,
        // and the version before it is whole on every backend. Put its entry back.
        if let Some(before) = &intent.before {
            return roll_back(store, intent, before).await;
        }
    }
    if changed {
        if let Err(e) = store.meta.put_object(&intent.bucket, &intent.key, &record) {
            tracing::warn!(error = %e, "could not record published copies");
            return true;
        }
    }
    still_staged
}

/// Puts back the key's entry from before a write that was committed but published nowhere.
/// Returns whether something is left to do.
async fn roll_back(store: &Store, intent: &Intent, before: &Before) -> bool {
    let restored = match before {
        Before::Object(previous) => {
            super::versions::forget_kept(store, &intent.bucket, &intent.key, previous);
            store.meta.put_object(&intent.bucket, &intent.key, previous)
        }
        Before::Absent => store
            .meta
            .delete_object(&intent.bucket, &intent.key)
            .map(|_| ()),
    };
    match restored {
        Ok(()) => {
            tracing::info!(bucket = %intent.bucket, key = %intent.key, version = %intent.version_id,
                "a write committed but published nowhere was rolled back to the version before it");
            discard_all(store, intent).await;
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not roll back a write published nowhere");
            true
        }
    }
}

/// Removes a copy of the version a write replaced, if nothing the index names uses its place
/// and it still is that copy. Returns false when it should be tried again.
async fn remove_superseded(store: &Store, intent: &Intent, old: &Replica) -> bool {
    let _guard = store.locks.lock(&intent.bucket, &intent.key).await;
    let current = match store.meta.object(&intent.bucket, &intent.key) {
        Ok(current) => current,
        Err(_) => return false,
    };
    if current
        .as_ref()
        .is_some_and(|r| r.replicas.iter().any(|r| r.same_slot(old)))
    {
        return true;
    }
    let Some(target) = replica_target(store, old) else {
        return true;
    };
    if let (ReplicaState::Staged, Some(handle)) = (old.state, &old.staged) {
        discard(store, &target, handle).await;
    }
    let limit = store.settings().backend_timeout;
    let info = match bounded(limit, "head", target.backend.head(&target.name)).await {
        Ok(info) => info,
        Err(BackendError::NotFound { .. }) => return true,
        Err(_) => return false,
    };
    // Only the copy this write replaced: the exact one for a present replica, any copy of the
    // key that is not the current version otherwise.
    let stale = match old.state {
        ReplicaState::Present | ReplicaState::Corrupt => info.etag == old.etag,
        ReplicaState::Pending | ReplicaState::Staged => info.stamp.is_some_and(|s| {
            s.bucket == intent.bucket
                && s.key == intent.key
                && current
                    .as_ref()
                    .is_none_or(|c| c.version_id != s.version_id)
        }),
    };
    if !stale {
        return true;
    }
    match bounded(limit, "delete", target.backend.delete(&target.name)).await {
        Ok(()) | Err(BackendError::NotFound { .. }) => true,
        Err(e) => {
            tracing::warn!(backend = %old.backend, name = %old.name, error = %e,
                "could not remove a superseded copy; will try again");
            false
        }
    }
}

/// A completion's upload: its state on each backend goes once that backend's copy no longer
/// needs it (published, or not to be), and its index entry once the object is committed.
async fn forget_upload(store: &Store, intent: &Intent) -> bool {
    let Some(upload_id) = &intent.upload_id else {
        return true;
    };
    let current = store
        .meta
        .object(&intent.bucket, &intent.key)
        .ok()
        .flatten();
    let ours = current
        .as_ref()
        .filter(|r| r.version_id == intent.version_id);
    if ours.is_none() {
        // Rolled back or replaced: an upload the index still lists stays whole, so the client
        // can complete it (again) or abort it.
        match store.meta.upload(&intent.bucket, &intent.key, upload_id) {
            Ok(None) => {}
            Ok(Some(_)) => return true,
            Err(_) => return false,
        }
    }
    let mut all = true;
    for t in &intent.targets {
        let Some(handle) = &t.upload_handle else {
            continue;
        };
        let staged_here = ours.is_some_and(|r| {
            r.replicas.iter().any(|r| {
                r.backend == t.backend && r.name == t.name && r.state == ReplicaState::Staged
            })
        });
        if staged_here {
            all = false;
            continue;
        }
        let Some(target) = target_of(store, &t.backend, &t.name) else {
            continue;
        };
        let aborted = bounded(
            store.settings().backend_timeout,
            "abort upload",
            target.backend.abort_upload(&target.name, handle),
        )
        .await;
        if let Err(e) = aborted {
            tracing::warn!(backend = %t.backend, upload = %upload_id, error = %e, "could not remove an upload's parts; will try again");
            all = false;
        }
    }
    if ours.is_some() {
        if let Err(e) = store
            .meta
            .delete_upload(&intent.bucket, &intent.key, upload_id)
        {
            tracing::warn!(error = %e, "could not forget a completed upload");
            all = false;
        }
    }
    all
}

/// Removes staged copies at least `older_than` old that no intent and no upload holds, on
/// every backend; returns how many were removed.
pub async fn collect_leftovers(store: &Store, older_than: Duration) -> usize {
    let mut live = HashSet::new();
    match store.meta.intents() {
        Ok(intents) => {
            for (_, intent) in intents {
                for t in intent.targets {
                    live.extend(t.handle);
                    live.extend(t.upload_handle);
                }
                for r in intent.superseded {
                    live.extend(r.staged);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read intents; nothing collected");
            return 0;
        }
    }
    // Staged copies the repair queue will publish.
    for backend in store.backends.iter() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = match store.meta.repairs(backend.id(), after.as_deref(), 1024) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the repair queue; nothing collected");
                    return 0;
                }
            };
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, entry) in page {
                if let crate::meta::RepairTask::Replicate {
                    staged: Some(h), ..
                } = entry.task
                {
                    live.insert(h);
                }
            }
        }
    }
    match store.meta.all_uploads() {
        Ok(uploads) => live.extend(
            uploads
                .into_iter()
                .flat_map(|u| u.targets.into_iter().map(|t| t.handle)),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read uploads; nothing collected");
            return 0;
        }
    }
    let mut removed = 0;
    for backend in store.backends.iter() {
        match bounded(
            store.settings().publish_timeout,
            "collect staged copies",
            backend.collect_staged(older_than, &live),
        )
        .await
        {
            Ok(n) => removed += n,
            Err(e) => {
                tracing::warn!(backend = backend.id(), error = %e, "could not collect staged leftovers")
            }
        }
    }
    removed
}
