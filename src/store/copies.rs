//! Operations on one copy of one version, shared by the write, read and recovery paths: where
//! a replica lives, publishing and discarding a staged copy, the stamp a replica carries.

use hansa_backends::{BackendError, PhysicalName, PutResult, Stamp};

use super::stage::Target;
use super::Store;
use crate::checksum::Checksum;
use crate::meta::{ObjectRecord, Replica, ReplicaState};
use crate::replication::bounded;

/// The backend and physical name of a replica, if both are valid.
pub(crate) fn replica_target(store: &Store, replica: &Replica) -> Option<Target> {
    Some(Target {
        backend: store.backend(&replica.backend)?.clone(),
        name: PhysicalName::parse(&replica.name).ok()?,
    })
}

/// Publishes a staged copy at `target`'s name, or, when the store cannot hold that name next
/// to what exists now (a file system where a directory took the path since the write began),
/// at the key's fallback name. Returns the name published at.
pub(crate) async fn publish_at(
    store: &Store,
    target: &Target,
    handle: &str,
    stamp: &Stamp,
) -> (PhysicalName, Result<PutResult, BackendError>) {
    let limit = store.settings().publish_timeout;
    let publish = |name: PhysicalName| async move {
        let result = bounded(
            limit,
            "publish",
            target.backend.publish(&name, handle, stamp),
        )
        .await;
        (name, result)
    };
    match publish(target.name.clone()).await {
        (name, Err(BackendError::NameConflict { .. })) if !name.is_fallback() => {
            let fallback = hansa_backends::naming::fallback_name(&stamp.bucket, &stamp.key);
            tracing::info!(
                backend = target.id(),
                "the plain name is taken by a directory; publishing under the fallback name"
            );
            publish(fallback).await
        }
        other => other,
    }
}

/// Removes a staged copy (best effort: what fails here, the collection of leftovers finds).
pub(crate) async fn discard(store: &Store, target: &Target, handle: &str) {
    let result = bounded(
        store.settings().backend_timeout,
        "discard",
        target.backend.discard(&target.name, handle),
    )
    .await;
    if let Err(e) = result {
        tracing::warn!(backend = target.id(), error = %e, "could not discard a staged copy; the collection of leftovers will");
    }
}

/// The stamp a replica of `record` carries.
pub(crate) fn stamp_of(bucket: &str, key: &str, record: &ObjectRecord) -> Stamp {
    Stamp {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: record.version_id.clone(),
        etag: record.etag.clone(),
        size: record.size,
        checksum: record.checksum.as_ref().map(Checksum::to_stamp),
        late: None,
    }
}

/// A copy of a backend error good enough for a report (its kind and text).
pub(crate) fn clone_kind(e: &BackendError) -> BackendError {
    match e {
        BackendError::Throttled { message } => BackendError::Throttled {
            message: message.clone(),
        },
        BackendError::AttributesTooLarge { name, message } => BackendError::AttributesTooLarge {
            name: name.clone(),
            message: message.clone(),
        },
        other => BackendError::Unavailable {
            message: other.to_string(),
        },
    }
}

/// Best-effort removal of one replica: whatever its name holds (a pending or corrupt replica's
/// name may still hold an older version), and its staged copy if it never got published. A
/// failure leaves an orphan copy, never a wrong read (reads go through the index).
pub(crate) async fn remove_replica(store: &Store, replica: &Replica) -> bool {
    let Some(target) = replica_target(store, replica) else {
        return true;
    };
    if let (ReplicaState::Staged, Some(handle)) = (replica.state, &replica.staged) {
        discard(store, &target, handle).await;
    }
    let deleted = bounded(
        store.settings().backend_timeout,
        "delete",
        target.backend.delete(&target.name),
    )
    .await;
    match deleted {
        Ok(()) | Err(hansa_backends::BackendError::NotFound { .. }) => true,
        Err(e) => {
            tracing::warn!(backend = %replica.backend, name = %replica.name, error = %e,
                "could not delete a replica; left as an orphan");
            false
        }
    }
}
