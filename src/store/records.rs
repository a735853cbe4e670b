//! Hansa's own records on the backends, beside the objects: bucket markers and tombstones.
//!
//! They exist so that the index can be rebuilt from the backends alone (`rebuild.rs`): a
//! bucket marker `.hansa/b/<bucket>` says the bucket exists even while it holds no object, and
//! a tombstone `.hansa/t/<bucket>/<sha256 of key>` says a version was deleted on purpose while
//! some backend still holds a copy it owes the removal of. Both are small JSON bodies, stamped
//! like objects, written best effort: a backend that fails to take one is logged and the
//! operation still succeeds (what that costs a rebuild is in docs/LAYOUT.md).
//!
//! Backends list them only when asked for their prefix, so nothing that lists objects
//! (anti-entropy, the collection of leftovers) ever takes them for objects.

use bytes::Bytes;
use hansa_backends::naming::{bucket_marker_name, tombstone_name};
use hansa_backends::{Backend, BackendError, ObjectAttributes, PhysicalName, Stamp};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::Store;
use std::collections::BTreeMap;

use crate::meta::{BucketRecord, BucketSetting};
use crate::replication::bounded;

/// The body of a bucket marker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketMarker {
    pub bucket: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub owner: String,
    pub region: String,
    /// The bucket's settings (CORS, policy, …) by their stored name, as of `settings_ms`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// When the settings were written (milliseconds since the Unix epoch): a rebuild takes
    /// the newest marker's settings.
    #[serde(default)]
    pub settings_ms: u64,
}

impl BucketMarker {
    pub fn of(record: &BucketRecord, settings: &[(BucketSetting, String)]) -> BucketMarker {
        BucketMarker {
            bucket: record.name.clone(),
            created_ms: record.created_ms,
            owner: record.owner.clone(),
            region: record.region.clone(),
            settings: settings
                .iter()
                .map(|(s, v)| (s.name().to_string(), v.clone()))
                .collect(),
            settings_ms: crate::meta::now_ms(),
        }
    }

    /// The settings this gateway knows (a later one's are skipped).
    pub fn known_settings(&self) -> Vec<(BucketSetting, String)> {
        self.settings
            .iter()
            .filter_map(|(name, v)| BucketSetting::from_name(name).map(|s| (s, v.clone())))
            .collect()
    }

    pub fn record(&self) -> BucketRecord {
        BucketRecord {
            name: self.bucket.clone(),
            created_ms: self.created_ms,
            region: self.region.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// The body of a tombstone: this version of this key was deleted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tombstone {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// Milliseconds since the Unix epoch.
    pub deleted_ms: u64,
}

/// Writes the bucket's marker on every backend usable now; failures are logged.
pub(crate) async fn write_bucket_markers(store: &Store, record: &BucketRecord) {
    let Some(name) = bucket_marker_name(&record.name) else {
        return;
    };
    // The index is the truth; the marker carries its settings so that a rebuild keeps them.
    let settings = match store.meta.bucket_settings(&record.name) {
        Ok(settings) => settings,
        Err(e) => {
            tracing::warn!(bucket = %record.name, error = %e,
                "could not read the bucket's settings; its markers are left as they are");
            return;
        }
    };
    let marker = BucketMarker::of(record, &settings);
    let stamp_version = uuid::Uuid::now_v7().simple().to_string();
    // Not on a backend being drained: it is on its way out and keeps nothing of Hansa's.
    let draining = store
        .draining
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let targets = usable(store)
        .into_iter()
        .filter(|b| !draining.contains(b.id()));
    let writes = targets.map(|backend| {
        let (name, marker, version) = (name.clone(), marker.clone(), stamp_version.clone());
        async move {
            let result =
                put_json(store, &backend, &name, &record.name, "", &version, &marker).await;
            if let Err(e) = result {
                tracing::warn!(backend = backend.id(), bucket = %record.name, error = %e,
                    "could not write the bucket marker (a rebuild of the index from this \
                     backend alone would not see the bucket while it is empty)");
            }
        }
    });
    futures::future::join_all(writes).await;
}

/// Removes the bucket's marker from every backend. Where that fails (or the backend is down)
/// the removal is queued for the repair worker: a marker left behind would bring the bucket
/// back on a rebuild and make an empty index refuse to start.
pub(crate) async fn remove_bucket_markers(store: &Store, bucket: &str) {
    let Some(name) = bucket_marker_name(bucket) else {
        return;
    };
    let removals = store.backends.iter().map(|backend| {
        let name = name.clone();
        async move {
            if !store.backend_usable(backend.id()) {
                return Some(backend.id().to_string());
            }
            let removed = bounded(
                store.settings().backend_timeout,
                "delete",
                backend.delete(&name),
            )
            .await;
            match removed {
                Ok(()) | Err(BackendError::NotFound { .. }) => None,
                Err(e) => {
                    tracing::warn!(backend = backend.id(), %name, error = %e,
                        "could not remove a bucket marker; queued");
                    Some(backend.id().to_string())
                }
            }
        }
    });
    for backend in futures::future::join_all(removals)
        .await
        .into_iter()
        .flatten()
    {
        // The key "" is the marker's own (its stamp names no key); the removal checks that
        // the bucket is still gone (`repair::remove`).
        super::queue::queue(
            store,
            crate::meta::RepairEntry::new(
                &backend,
                bucket,
                "",
                crate::meta::RepairTask::Remove {
                    name: name.to_string(),
                },
                "a bucket marker of a deleted bucket",
            ),
        );
    }
}

/// Writes a tombstone for `version_id` of `(bucket, key)` on the backends `on`.
pub(crate) async fn write_tombstones(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: &str,
    on: &[String],
) {
    let Some(name) = tombstone_name(bucket, key) else {
        return;
    };
    let tombstone = Tombstone {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.to_string(),
        deleted_ms: crate::meta::now_ms(),
    };
    let writes = usable(store)
        .into_iter()
        .filter(|b| on.iter().any(|id| id == b.id()))
        .map(|backend| {
            let (name, tombstone) = (name.clone(), tombstone.clone());
            async move {
                let result =
                    put_json(store, &backend, &name, bucket, key, version_id, &tombstone).await;
                if let Err(e) = result {
                    tracing::warn!(backend = backend.id(), bucket, key, error = %e,
                        "could not write a tombstone");
                }
            }
        });
    futures::future::join_all(writes).await;
}

/// After a removal a backend owed for `(bucket, key)`: the key's tombstones go once they can
/// tell a rebuild nothing any more, that is when the key has a current version again (it is
/// newer than the tombstone and wins anyway), or when no usable backend still holds a stamped
/// copy of the key at its names. Called under the key's lock.
pub(crate) async fn settle_tombstones(store: &Store, bucket: &str, key: &str) {
    let Some(tomb) = tombstone_name(bucket, key) else {
        return;
    };
    let rewritten = matches!(store.meta.object(bucket, key), Ok(Some(_)));
    if !rewritten {
        let names = [
            hansa_backends::naming::physical_name(bucket, key),
            hansa_backends::naming::fallback_name(bucket, key),
        ];
        for backend in usable(store) {
            for name in &names {
                let head = bounded(store.settings().backend_timeout, "head", backend.head(name));
                match head.await {
                    Ok(info)
                        if info
                            .stamp
                            .as_ref()
                            .is_some_and(|s| s.bucket == bucket && s.key == key) =>
                    {
                        return
                    }
                    Ok(_) | Err(BackendError::NotFound { .. }) => {}
                    // Not known: keep the tombstones for a later removal to settle.
                    Err(_) => return,
                }
            }
        }
    }
    remove_everywhere(store, &tomb, "tombstone").await;
}

fn usable(store: &Store) -> Vec<std::sync::Arc<dyn Backend>> {
    store
        .backends
        .iter()
        .filter(|b| store.backend_usable(b.id()))
        .cloned()
        .collect()
}

async fn remove_everywhere(store: &Store, name: &PhysicalName, what: &str) {
    let removals = usable(store).into_iter().map(|backend| async move {
        let removed = bounded(
            store.settings().backend_timeout,
            "delete",
            backend.delete(name),
        )
        .await;
        match removed {
            Ok(()) | Err(BackendError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(backend = backend.id(), %name, error = %e, "could not remove a {what}")
            }
        }
    });
    futures::future::join_all(removals).await;
}

async fn put_json<T: Serialize>(
    store: &Store,
    backend: &std::sync::Arc<dyn Backend>,
    name: &PhysicalName,
    bucket: &str,
    key: &str,
    version_id: &str,
    body: &T,
) -> Result<(), BackendError> {
    let bytes = serde_json::to_vec(body).map_err(|e| BackendError::Other {
        message: format!("encoding {name}: {e}"),
    })?;
    let stamp = Stamp {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.to_string(),
        etag: hex::encode(Md5::digest(&bytes)),
        size: bytes.len() as u64,
        checksum: None,
        late: None,
    };
    let attrs = ObjectAttributes {
        content_type: Some("application/json".to_string()),
        ..ObjectAttributes::default()
    };
    let body: hansa_backends::ByteStream =
        Box::pin(futures::stream::once(async move { Ok(Bytes::from(bytes)) }));
    bounded(
        store.settings().backend_timeout,
        "put",
        backend.put(name, &attrs, &stamp, body),
    )
    .await
    .map(|_| ())
}

/// Reads one record's JSON body (they are small: at most a few hundred bytes).
pub(crate) async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &Store,
    backend: &std::sync::Arc<dyn Backend>,
    name: &PhysicalName,
) -> Result<T, BackendError> {
    use futures::TryStreamExt;
    let got = bounded(
        store.settings().backend_timeout,
        "get",
        backend.get(name, None, None),
    )
    .await?;
    let chunks: Vec<Bytes> = got.body.try_collect().await?;
    let bytes: Vec<u8> = chunks.concat();
    serde_json::from_slice(&bytes).map_err(|e| BackendError::Other {
        message: format!("{}: {name}: not a record: {e}", backend.id()),
    })
}
