//! Recording what a backend owes the index: the entries of the repair queue, written by
//! every path that leaves a backend behind (writes, deletes, reads, anti-entropy, jobs) and
//! worked off by the repair worker (`repair`).

use super::Store;
use crate::meta::{ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState};

/// Queues `entry` (replacing the same work queued before) and wakes the worker. A failure to
/// record it is logged: anti-entropy finds the same work again.
pub(crate) fn queue(store: &Store, entry: RepairEntry) {
    if queue_quietly(store, entry) {
        store.repair_wake.notify_one();
    }
}

/// Queues `entry` without waking the worker: for a write that queues what it missed before
/// its own copies are published (there is nothing to copy from yet; the write wakes the worker
/// once it is done). Returns whether it was recorded.
pub(crate) fn queue_quietly(store: &Store, entry: RepairEntry) -> bool {
    match store.meta.queue_repair(&entry) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(backend = %entry.backend, bucket = %entry.bucket, key = %entry.key,
                error = %e, "could not queue a repair");
            false
        }
    }
}

/// Queues the replication of every replica of `record` that is not present.
pub(crate) fn queue_missing_replicas(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    reason: &str,
) {
    for r in record
        .replicas
        .iter()
        .filter(|r| r.state != ReplicaState::Present)
    {
        queue(
            store,
            RepairEntry::new(
                &r.backend,
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: record.version_id.clone(),
                    staged: r.staged.clone(),
                },
                reason,
            ),
        );
    }
}

/// Queues the removal of what `replica` names on its backend.
pub(crate) fn queue_removal(store: &Store, bucket: &str, key: &str, replica: &Replica, why: &str) {
    queue(store, removal(bucket, key, replica, why));
}

/// The entry that removes what `replica` names on its backend.
pub(crate) fn removal(bucket: &str, key: &str, replica: &Replica, why: &str) -> RepairEntry {
    RepairEntry::new(
        &replica.backend,
        bucket,
        key,
        RepairTask::Remove {
            name: replica.name.clone(),
        },
        why,
    )
}
