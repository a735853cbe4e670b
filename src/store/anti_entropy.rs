//! Anti-entropy: each backend's listing compared with the index, so that what the repair
//! queue was never told about (a crash between two steps, a disk restored from an old backup,
//! a file removed by hand, a queue entry lost with an unflushed write) is found and repaired.
//!
//! For every replica the index records on the backend:
//! * present, but missing from the listing or listed with another etag: checked again under
//!   the key's lock with a HEAD (a write may have replaced it since the listing), then either
//!   adopted (the copy holds this version by its stamp: only its etag changed) or marked
//!   pending and queued;
//! * pending, staged or corrupt: queued if it is not already (a pending replica whose copy is
//!   there after all, by stamp and size, is adopted instead).
//!
//! For every listed object the index does not name on that backend:
//! * without a stamp: not Hansa's; reported, never touched;
//! * stamped for a bucket the index does not know: reported, never touched (the index may have
//!   been lost: rebuilding it must still find these);
//! * stamped with the current version of its key: adopted where that replica is not present;
//! * otherwise a copy of a deleted or replaced version: queued for removal once older than
//!   the grace period (the removal checks its stamp again under the key's lock).
//!
//! The listing of one backend is held in memory as names and etags (about a hundred bytes per
//! object); the index is read a page at a time.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use hansa_backends::{BackendError, ObjectInfo};
use serde::Serialize;

use super::copies::replica_target;
use super::queue::queue;
use super::{Store, StoreError, StoreResult};
use crate::meta::{ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState};
use crate::replication::bounded;

/// Index entries read per page.
const PAGE: usize = 1000;

/// What one pass over one backend found and did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ScanReport {
    pub backend: String,
    /// Objects the backend listed.
    pub listed: usize,
    /// Replicas the index records on the backend.
    pub indexed: usize,
    /// Present replicas that were missing or changed: marked pending and queued.
    pub missing: usize,
    /// Replicas not present that were queued (again).
    pub queued: usize,
    /// Copies that hold what the index wants, taken as they are.
    pub adopted: usize,
    /// Copies of deleted or replaced versions queued for removal.
    pub stale: usize,
    /// Such copies younger than the grace period, left for a later pass.
    pub young: usize,
    /// Stamped objects of buckets the index does not know (reported only).
    pub unknown: Vec<String>,
    /// Objects without Hansa's stamp (never touched).
    pub foreign: usize,
}

/// One pass over every backend that can be used now. Backends that cannot be listed are
/// reported in the log and left for the next pass.
pub async fn anti_entropy(store: &Arc<Store>) -> Vec<ScanReport> {
    let mut ids: Vec<String> = store.backends.iter().map(|b| b.id().to_string()).collect();
    ids.sort();
    let mut reports = Vec::new();
    for id in ids {
        if !store.backend_usable(&id) {
            tracing::info!(backend = %id, "anti-entropy skips a backend that is down");
            continue;
        }
        match scan_backend(store, &id).await {
            Ok(report) => {
                tracing::info!(
                    backend = %id,
                    listed = report.listed,
                    indexed = report.indexed,
                    missing = report.missing,
                    queued = report.queued,
                    adopted = report.adopted,
                    stale = report.stale,
                    unknown = report.unknown.len(),
                    foreign = report.foreign,
                    "anti-entropy pass"
                );
                for name in &report.unknown {
                    tracing::warn!(backend = %id, %name,
                        "a Hansa-stamped object of a bucket the index does not know (left alone)");
                }
                reports.push(report);
            }
            Err(e) => tracing::warn!(backend = %id, error = %e, "anti-entropy could not scan"),
        }
    }
    reports
}

/// Compares one backend's listing with the index.
pub async fn scan_backend(store: &Arc<Store>, id: &str) -> StoreResult<ScanReport> {
    let backend = store
        .backend(id)
        .ok_or_else(|| StoreError::Internal(format!("no backend {id}")))?
        .clone();
    let mut report = ScanReport {
        backend: id.to_string(),
        ..ScanReport::default()
    };
    let mut listed: HashMap<String, ObjectInfo> = HashMap::new();
    let mut stream = backend.list("");
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| StoreError::Internal(format!("listing {id}: {e}")))?;
        // Backends list bucket markers and tombstones only when asked for their prefix; this
        // keeps it so should one ever show up here: they are never objects.
        if hansa_backends::naming::is_record_name(&info.name) {
            continue;
        }
        listed.insert(info.name.clone(), info);
    }
    drop(stream);
    report.listed = listed.len();

    for bucket in store.meta.buckets()? {
        let mut start = Bound::Unbounded;
        loop {
            let page = store
                .meta
                .scan_objects(&bucket.name, "", start.clone(), PAGE)?;
            for (key, record) in &page.entries {
                for replica in record.replicas.iter().filter(|r| r.backend == id) {
                    report.indexed += 1;
                    let copy = listed.remove(&replica.name);
                    check_replica(store, &bucket.name, key, record, replica, copy, &mut report)
                        .await;
                }
            }
            match page.entries.last() {
                Some((key, _)) if page.truncated => start = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }

    let grace = Duration::from_secs(store.repair().settings.orphan_grace_secs);
    for (name, info) in listed {
        let Some(stamp) = &info.stamp else {
            report.foreign += 1;
            continue;
        };
        if store.meta.bucket(&stamp.bucket)?.is_none() {
            report.unknown.push(name);
            continue;
        }
        if adopt_unnamed(store, id, &info).await {
            report.adopted += 1;
            continue;
        }
        let age = SystemTime::now()
            .duration_since(info.last_modified)
            .unwrap_or_default();
        if age < grace {
            report.young += 1;
            continue;
        }
        report.stale += 1;
        queue(
            store,
            RepairEntry::new(
                id,
                &stamp.bucket,
                &stamp.key,
                RepairTask::Remove { name },
                "anti-entropy: a copy the index does not name",
            ),
        );
    }
    Ok(report)
}

/// One replica the index records on the backend, against what the listing holds at its name.
async fn check_replica(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replica: &Replica,
    copy: Option<ObjectInfo>,
    report: &mut ScanReport,
) {
    let holds_version = |info: &ObjectInfo| {
        info.size == record.size
            && info
                .stamp
                .as_ref()
                .is_some_and(|s| s.version_id == record.version_id && s.key == key)
    };
    match replica.state {
        ReplicaState::Present => {
            if copy.as_ref().is_some_and(|c| c.etag == replica.etag) {
                return;
            }
            match recheck_present(store, bucket, key, record, replica).await {
                Recheck::Fine => {}
                Recheck::Adopted => report.adopted += 1,
                Recheck::Missing => report.missing += 1,
            }
        }
        ReplicaState::Pending if copy.as_ref().is_some_and(holds_version) => {
            let info = copy.as_ref().map(|c| (c.name.clone(), c.etag.clone()));
            if let Some((name, etag)) = info {
                if set_present(store, bucket, key, record, replica, &name, &etag).await {
                    report.adopted += 1;
                }
            }
        }
        ReplicaState::Pending | ReplicaState::Staged | ReplicaState::Corrupt => {
            let entry = RepairEntry::new(
                &replica.backend,
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: record.version_id.clone(),
                    staged: replica.staged.clone(),
                },
                "anti-entropy: a replica not present",
            );
            if matches!(store.meta.queue_repair_if_absent(&entry), Ok(true)) {
                report.queued += 1;
                store.repair_wake.notify_one();
            }
        }
    }
}

enum Recheck {
    Fine,
    Adopted,
    Missing,
}

/// A present replica the listing did not show as recorded: looked at again under the key's
/// lock (a write may have replaced it since the listing was taken).
async fn recheck_present(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replica: &Replica,
) -> Recheck {
    let Some(target) = replica_target(store, replica) else {
        return Recheck::Fine;
    };
    let _guard = store.locks.lock(bucket, key).await;
    let Ok(Some(mut current)) = store.meta.object(bucket, key) else {
        return Recheck::Fine;
    };
    if current.version_id != record.version_id {
        return Recheck::Fine;
    }
    let Some(slot) = current
        .replicas
        .iter_mut()
        .find(|r| r.same_slot(replica) && r.state == ReplicaState::Present)
    else {
        return Recheck::Fine;
    };
    let head = bounded(
        store.settings().backend_timeout,
        "head",
        target.backend.head(&target.name),
    )
    .await;
    let outcome = match head {
        Ok(info) if info.etag == slot.etag => return Recheck::Fine,
        Ok(info)
            if info.size == current.size
                && info
                    .stamp
                    .as_ref()
                    .is_some_and(|s| s.version_id == current.version_id && s.key == key) =>
        {
            // The same version under another etag (restored with its attributes).
            slot.etag = info.etag;
            Recheck::Adopted
        }
        Ok(_) | Err(BackendError::NotFound { .. }) => {
            tracing::warn!(backend = %replica.backend, bucket, key, name = %replica.name,
                "anti-entropy: a present replica is missing or changed; queued for repair");
            slot.state = ReplicaState::Pending;
            Recheck::Missing
        }
        // Not known now: the next pass looks again.
        Err(_) => return Recheck::Fine,
    };
    let queued_version = current.version_id.clone();
    if let Err(e) = store.meta.put_object(bucket, key, &current) {
        tracing::warn!(error = %e, "could not record what anti-entropy found");
        return Recheck::Fine;
    }
    if matches!(outcome, Recheck::Missing) {
        queue(
            store,
            RepairEntry::new(
                &replica.backend,
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: queued_version,
                    staged: None,
                },
                "anti-entropy: missing or changed",
            ),
        );
    }
    outcome
}

/// Records `replica` present at `name` with `etag`, under the key's lock, if the key still has
/// `record`'s version and that replica is still not present.
async fn set_present(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replica: &Replica,
    name: &str,
    etag: &str,
) -> bool {
    let _guard = store.locks.lock(bucket, key).await;
    let Ok(Some(mut current)) = store.meta.object(bucket, key) else {
        return false;
    };
    if current.version_id != record.version_id {
        return false;
    }
    let Some(slot) = current
        .replicas
        .iter_mut()
        .find(|r| r.backend == replica.backend && r.state != ReplicaState::Present)
    else {
        return false;
    };
    if slot.state == ReplicaState::Corrupt {
        return false;
    }
    slot.name = name.to_string();
    slot.etag = etag.to_string();
    slot.state = ReplicaState::Present;
    slot.staged = None;
    match store.meta.put_object(bucket, key, &current) {
        Ok(()) => {
            tracing::info!(backend = %replica.backend, bucket, key, name,
                "anti-entropy: adopted a copy that holds the current version");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not record an adopted copy");
            false
        }
    }
}

/// A listed copy the index does not name: adopted if it holds its key's current version and
/// that version's replica on this backend is not present.
async fn adopt_unnamed(store: &Store, backend: &str, info: &ObjectInfo) -> bool {
    let Some(stamp) = &info.stamp else {
        return false;
    };
    let Ok(Some(record)) = store.meta.object(&stamp.bucket, &stamp.key) else {
        return false;
    };
    if record.version_id != stamp.version_id || record.size != info.size {
        return false;
    }
    let Some(replica) = record
        .replicas
        .iter()
        .find(|r| r.backend == backend && r.state == ReplicaState::Pending)
        .cloned()
    else {
        return false;
    };
    set_present(
        store,
        &stamp.bucket,
        &stamp.key,
        &record,
        &replica,
        &info.name,
        &info.etag,
    )
    .await
}
