//! DeleteObject: the index entry goes first (durably, with the removal of every copy queued in
//! the same flush), then the copies.
//!
//! A crash in between leaves copies the index no longer names, and the repair queue removes
//! them; never a listed object without data. The copies are removed
//! under the key's lock, so a write of the key that commits next cannot have its fresh copy
//! removed by a delete that came before it.

use super::copies::remove_replica;
use super::queue::removal;
use super::records::write_tombstones;
use super::{DeleteOutcome, Store, StoreError, StoreResult};
use crate::meta::RepairEntry;

/// Deletes `key` from `bucket`; deleting a missing key is fine (as on S3). In a bucket with
/// versioning this makes a delete marker (owned by the bucket's owner; see
/// [`delete_object_by`]) and keeps the current version as noncurrent. A version object lock
/// protects is never removed (`Locked`); `bypass_governance`: the request may and asks to
/// bypass governance retention.
pub async fn delete_object(
    store: &Store,
    bucket: &str,
    key: &str,
    bypass_governance: bool,
) -> StoreResult<DeleteOutcome> {
    let owner = match store.meta.bucket(bucket)? {
        Some(b) => b.owner,
        None => return Err(StoreError::NoSuchBucket(bucket.to_string())),
    };
    delete_object_by(store, bucket, key, &owner, bypass_governance).await
}

/// [`delete_object`] by `owner` (who owns the delete marker it may make).
pub async fn delete_object_by(
    store: &Store,
    bucket: &str,
    key: &str,
    owner: &str,
    bypass_governance: bool,
) -> StoreResult<DeleteOutcome> {
    let _guard = store.locks.lock(bucket, key).await;
    delete_locked(store, bucket, key, owner, bypass_governance).await
}

/// [`delete_object`] only while the key's current version is still `version_id`: an
/// expiry decided on one version must not remove a newer one written meanwhile. `None` when
/// the key has moved on (or is gone).
pub async fn delete_object_if_current(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> StoreResult<Option<DeleteOutcome>> {
    let _guard = store.locks.lock(bucket, key).await;
    let owner = match store.meta.bucket(bucket)? {
        Some(b) => b.owner,
        None => return Err(StoreError::NoSuchBucket(bucket.to_string())),
    };
    match store.meta.object(bucket, key)? {
        Some(current) if current.version_id == version_id => Ok(Some(
            delete_locked(store, bucket, key, &owner, false).await?,
        )),
        _ => Ok(None),
    }
}

/// The delete itself; the caller holds the key's lock.
async fn delete_locked(
    store: &Store,
    bucket: &str,
    key: &str,
    owner: &str,
    bypass_governance: bool,
) -> StoreResult<DeleteOutcome> {
    if store.meta.bucket(bucket)?.is_none() {
        return Err(StoreError::NoSuchBucket(bucket.to_string()));
    }
    if super::versioning(store, bucket)?.keeps_versions() {
        return super::versions::delete_with_marker(store, bucket, key, owner, bypass_governance)
            .await;
    }
    let Some(record) = store.meta.object(bucket, key)? else {
        return Ok(DeleteOutcome::default());
    };
    super::lock::may_remove(&record.lock, bypass_governance, crate::meta::now_ms())
        .map_err(StoreError::Locked)?;
    // Every copy's removal is owed from the moment the entry goes, so it is queued in the same
    // flush: a crash before the copies are removed (or a backend that misses the delete)
    // leaves the work queued, never a copy nobody will remove. Removals that succeed take
    // their entry back.
    let owed: Vec<RepairEntry> = record
        .replicas
        .iter()
        .map(|r| removal(bucket, key, r, "missed a delete"))
        .collect();
    for entry in &owed {
        store.meta.queue_repair(entry)?;
    }
    store.meta.delete_object(bucket, key)?;
    store.meta.sync().await?;
    let removed =
        futures::future::join_all(record.replicas.iter().map(|r| remove_replica(store, r))).await;
    let mut reached = Vec::new();
    for ((replica, removed), entry) in record.replicas.iter().zip(removed).zip(&owed) {
        if removed {
            reached.push(replica.backend.clone());
            // Not flushed: after a crash the entry finds nothing left to remove.
            if let Err(e) = store.meta.settle_repair(entry, None) {
                tracing::warn!(error = %e, "could not take back a removal that was done");
            }
        }
    }
    if reached.len() < record.replicas.len() {
        // Where the delete arrived, a tombstone tells a rebuild of the index that the copy
        // left elsewhere was deleted, not lost from the index (docs/LAYOUT.md).
        write_tombstones(store, bucket, key, &record.version_id, &reached).await;
        store.repair_wake.notify_one();
    }
    Ok(DeleteOutcome::default())
}
