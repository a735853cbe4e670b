//! The last step of a drain: the drained backend's own listing is checked for copies of
//! indexed objects the index no longer names there (a removal that failed, a copy published by
//! a write that began before the drain and was overwritten since), and those are deleted.
//! Staged leftovers are not listed and are left to the collection of leftovers.

use futures::StreamExt;
use hansa_backends::naming::{BUCKET_MARKER_PREFIX, TOMBSTONE_PREFIX};
use hansa_backends::BackendError;

use crate::meta::MetaResult;
use crate::replication::bounded;
use crate::store::Store;

/// What the sweep of one backend found.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Copies deleted.
    pub deleted: u64,
    /// Bucket markers and tombstones deleted.
    pub records: u64,
    /// Copies that could not be deleted (or listed), with why.
    pub failed: Vec<String>,
}

/// Deletes from `backend` every copy stamped with an indexed bucket whose current record does
/// not name that place, under the key's lock (a write of the key cannot publish meanwhile).
pub(crate) async fn sweep(store: &Store, backend_id: &str) -> MetaResult<Swept> {
    let mut swept = Swept::default();
    let Some(backend) = store.backend(backend_id).cloned() else {
        return Ok(swept);
    };
    let buckets: std::collections::HashSet<String> =
        store.meta.buckets()?.into_iter().map(|b| b.name).collect();
    let mut found = Vec::new();
    let mut listing = backend.list("");
    while let Some(item) = listing.next().await {
        match item {
            Ok(info) => {
                if let Some(stamp) = info.stamp.filter(|s| buckets.contains(&s.bucket)) {
                    found.push((stamp.bucket, stamp.key, info.name));
                }
            }
            Err(e) => {
                swept.failed.push(format!("listing {backend_id}: {e}"));
                return Ok(swept);
            }
        }
    }
    drop(listing);
    for (bucket, key, name) in found {
        let _guard = store.locks.lock(&bucket, &key).await;
        let named = store.meta.object(&bucket, &key)?.is_some_and(|r| {
            r.replicas
                .iter()
                .any(|x| x.backend == backend_id && x.name == name)
        });
        if named {
            continue; // still the object's replica: the drain's passes handle it
        }
        let Ok(physical) = hansa_backends::PhysicalName::parse(&name) else {
            continue;
        };
        let limit = store.settings().backend_timeout;
        match bounded(limit, "delete", backend.delete(&physical)).await {
            Ok(()) | Err(BackendError::NotFound { .. }) => swept.deleted += 1,
            Err(e) => swept.failed.push(format!("{bucket}/{key} ({name}): {e}")),
        }
    }
    // Bucket markers and tombstones describe the buckets for a rebuild of the index from the
    // other backends, which hold their own: a drained backend keeps none of them.
    for prefix in [BUCKET_MARKER_PREFIX, TOMBSTONE_PREFIX] {
        let mut records = Vec::new();
        let mut listing = backend.list(prefix);
        while let Some(item) = listing.next().await {
            match item {
                Ok(info) => records.push(info.name),
                Err(e) => {
                    swept
                        .failed
                        .push(format!("listing {backend_id} {prefix}: {e}"));
                    return Ok(swept);
                }
            }
        }
        drop(listing);
        for name in records {
            let Ok(physical) = hansa_backends::PhysicalName::parse(&name) else {
                continue;
            };
            let limit = store.settings().backend_timeout;
            match bounded(limit, "delete", backend.delete(&physical)).await {
                Ok(()) | Err(BackendError::NotFound { .. }) => swept.records += 1,
                Err(e) => swept.failed.push(format!("{name}: {e}")),
            }
        }
    }
    Ok(swept)
}
