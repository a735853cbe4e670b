//! S3 versioning on the plain layout.
//!
//! The index's `objects` entry of a key is its current version, at the plain name on the
//! backends, as without versioning; noncurrent versions and delete markers are in the
//! `versions` trees, their copies at the hidden names `.hansa/v/<bucket>/<sha256(key)>/<id>`
//! (`hansa_backends::naming::version_name`). A write that replaces a version to be kept first
//! copies it aside (a hard link on disks, a server-side copy in clouds), under the key's lock
//! and before the index commit; the commit's one flush records both the new version and the
//! kept one. A crash before that flush leaves at most a hidden copy the index does not name
//! (the old version is still current and whole); a crash after it leaves both recorded.
//!
//! What S3 shows as a version id: the internal id for versions written while versioning was
//! enabled, `null` for the others (`ObjectRecord::versioned`).

use std::ops::Bound;

use hansa_backends::naming::{physical_name, version_name};
use hansa_backends::PhysicalName;

use super::copies::remove_replica;
use super::copies::replica_target;
use super::queue::removal;
use super::{Store, StoreError, StoreResult};
use crate::meta::{BucketSetting, DeleteMarker, ObjectRecord, Replica, ReplicaState, VersionEntry};
use crate::replication::bounded;

/// A bucket's versioning (`PutBucketVersioning`): once enabled, never unversioned again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersioningState {
    Unversioned,
    Enabled,
    Suspended,
}

impl VersioningState {
    /// S3's name (`Status`), `None` for a bucket that never had versioning.
    pub fn name(self) -> Option<&'static str> {
        match self {
            VersioningState::Unversioned => None,
            VersioningState::Enabled => Some("Enabled"),
            VersioningState::Suspended => Some("Suspended"),
        }
    }

    /// New versions get their own id only when enabled; otherwise they are the null version.
    pub fn keeps_versions(self) -> bool {
        self != VersioningState::Unversioned
    }
}

/// The bucket's versioning state; `NoSuchBucket` when it does not exist.
pub fn versioning(store: &Store, bucket: &str) -> StoreResult<VersioningState> {
    Ok(
        match super::bucket_setting(store, bucket, BucketSetting::Versioning)?.as_deref() {
            Some("Enabled") => VersioningState::Enabled,
            Some("Suspended") => VersioningState::Suspended,
            _ => VersioningState::Unversioned,
        },
    )
}

/// Enables or suspends versioning (durably, in the bucket markers too).
pub async fn set_versioning(
    store: &Store,
    bucket: &str,
    state: VersioningState,
) -> StoreResult<()> {
    let Some(name) = state.name() else {
        return Err(StoreError::Internal(
            "versioning cannot be turned off once set".into(),
        ));
    };
    super::set_bucket_setting(store, bucket, BucketSetting::Versioning, Some(name)).await
}

/// One version of a key as S3 shows it.
#[derive(Clone, Debug)]
pub enum VersionView {
    Object {
        record: Box<ObjectRecord>,
        latest: bool,
    },
    DeleteMarker {
        marker: DeleteMarker,
        latest: bool,
    },
}

impl VersionView {
    pub fn shown_version_id(&self) -> &str {
        match self {
            VersionView::Object { record, .. } => record.shown_version_id(),
            VersionView::DeleteMarker { marker, .. } => {
                if marker.versioned {
                    &marker.version_id
                } else {
                    "null"
                }
            }
        }
    }

    pub fn is_latest(&self) -> bool {
        match self {
            VersionView::Object { latest, .. } | VersionView::DeleteMarker { latest, .. } => {
                *latest
            }
        }
    }

    fn of(entry: VersionEntry, latest: bool) -> VersionView {
        match entry {
            VersionEntry::Object(record) => VersionView::Object { record, latest },
            VersionEntry::DeleteMarker(marker) => VersionView::DeleteMarker { marker, latest },
        }
    }
}

/// Whether `shown` (an id as S3 shows it, `null` included) names this version.
fn names(shown: &str, versioned: bool, version_id: &str) -> bool {
    if versioned {
        shown == version_id
    } else {
        shown == "null"
    }
}

/// A version of `key`: the latest (`None`; a delete marker when that is the latest) or the
/// one S3 shows as `version_id`. `NoSuchKey` / `NoSuchVersion` when there is none.
pub fn object_version(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> StoreResult<VersionView> {
    super::bucket(store, bucket)?;
    let current = store.meta.object(bucket, key)?;
    let Some(wanted) = version_id else {
        if let Some(record) = current {
            return Ok(VersionView::Object {
                record: Box::new(record),
                latest: true,
            });
        }
        return match store.meta.versions_of(bucket, key)?.into_iter().next() {
            Some(VersionEntry::DeleteMarker(marker)) => Ok(VersionView::DeleteMarker {
                marker,
                latest: true,
            }),
            _ => Err(StoreError::NoSuchKey(key.to_string())),
        };
    };
    if let Some(record) = current.as_ref() {
        if names(wanted, record.versioned, &record.version_id) {
            return Ok(VersionView::Object {
                record: Box::new(record.clone()),
                latest: true,
            });
        }
    }
    let versions = store.meta.versions_of(bucket, key)?;
    for (i, entry) in versions.into_iter().enumerate() {
        if names(wanted, entry.versioned(), entry.version_id()) {
            let latest = current.is_none() && i == 0;
            return Ok(VersionView::of(entry, latest));
        }
    }
    Err(StoreError::NoSuchVersion {
        key: key.to_string(),
        version_id: wanted.to_string(),
    })
}

/// Changes one object version's index record (its tags, its object lock) durably, under the
/// key's lock, without touching its bytes: the latest version (`None`) or the one S3 shows as
/// `version_id`. A concurrent write is never undone: the change lands on the version it names.
pub async fn update_version(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    change: impl FnOnce(&mut ObjectRecord) -> StoreResult<()>,
) -> StoreResult<ObjectRecord> {
    let _guard = store.locks.lock(bucket, key).await;
    super::bucket(store, bucket)?;
    let current = store.meta.object(bucket, key)?;
    if let Some(mut record) =
        current.filter(|c| version_id.is_none_or(|v| names(v, c.versioned, &c.version_id)))
    {
        change(&mut record)?;
        store.meta.put_object(bucket, key, &record)?;
        store.meta.sync().await?;
        return Ok(record);
    }
    let Some(wanted) = version_id else {
        return Err(StoreError::NoSuchKey(key.to_string()));
    };
    let found = store
        .meta
        .versions_of(bucket, key)?
        .into_iter()
        .find(|v| names(wanted, v.versioned(), v.version_id()));
    match found {
        Some(VersionEntry::Object(mut record)) => {
            change(&mut record)?;
            store
                .meta
                .put_version(bucket, key, &VersionEntry::Object(record.clone()))?;
            store.meta.sync().await?;
            Ok(*record)
        }
        Some(VersionEntry::DeleteMarker(_)) => Err(StoreError::DeleteMarker {
            key: key.to_string(),
            version_id: wanted.to_string(),
        }),
        None => Err(StoreError::NoSuchVersion {
            key: key.to_string(),
            version_id: wanted.to_string(),
        }),
    }
}

/// What a write or delete does to the versions of its key, prepared under the key's lock.
#[derive(Default, Debug)]
pub(crate) struct Aside {
    /// Whether the new version gets its own id (versioning enabled).
    pub versioned: bool,
    /// The version replaced, copied aside and to be recorded as noncurrent.
    pub kept: Option<VersionEntry>,
    /// A noncurrent null version the new null version replaces (suspended bucket).
    pub dropped: Option<VersionEntry>,
}

/// Prepares the replacement of `previous` (the current version, if any): in a versioned
/// bucket its copies are moved aside to their hidden names now. A copy that cannot be made
/// refuses the write (`VersionNotKept`): a version is never lost to keep a write going. A
/// version the replacement would destroy (no versioning, or a suspended bucket's null
/// version) is refused while object lock protects it (`Locked`).
pub(crate) async fn prepare_replacement(
    store: &Store,
    bucket: &str,
    key: &str,
    previous: Option<&ObjectRecord>,
    bypass_governance: bool,
) -> StoreResult<Aside> {
    let destroyable = |record: &ObjectRecord| {
        super::lock::may_remove(&record.lock, bypass_governance, crate::meta::now_ms())
            .map_err(StoreError::Locked)
    };
    let state = versioning(store, bucket)?;
    let mut aside = Aside {
        versioned: state == VersioningState::Enabled,
        ..Aside::default()
    };
    if !state.keeps_versions() {
        if let Some(previous) = previous {
            destroyable(previous)?;
        }
        return Ok(aside);
    }
    if !aside.versioned {
        // Suspended: the new version is the null version, replacing the one there is.
        aside.dropped = store
            .meta
            .versions_of(bucket, key)?
            .into_iter()
            .find(|v| !v.versioned());
        if let Some(VersionEntry::Object(dropped)) = &aside.dropped {
            destroyable(dropped)?;
        }
    }
    if let Some(previous) = previous {
        if aside.versioned || previous.versioned {
            let moved = copy_aside(store, bucket, key, previous).await?;
            aside.kept = Some(VersionEntry::Object(Box::new(moved)));
        } else {
            destroyable(previous)?;
        }
    }
    Ok(aside)
}

/// Records `aside` in the index (not flushed: the caller's commit flushes it with the rest).
pub(crate) fn record_aside(
    store: &Store,
    bucket: &str,
    key: &str,
    aside: &Aside,
) -> StoreResult<()> {
    if let Some(dropped) = &aside.dropped {
        store.meta.remove_version(bucket, key, dropped)?;
    }
    if let Some(kept) = &aside.kept {
        store.meta.put_version(bucket, key, kept)?;
    }
    Ok(())
}

/// Takes back what [`record_aside`] recorded, for a commit that does not stand. The hidden
/// copies stay (the index no longer names them; they hold an older version's bytes only).
pub(crate) fn undo_aside(store: &Store, bucket: &str, key: &str, aside: &Aside) {
    let undone = (|| {
        if let Some(kept) = &aside.kept {
            store.meta.remove_version(bucket, key, kept)?;
        }
        if let Some(dropped) = &aside.dropped {
            store.meta.put_version(bucket, key, dropped)?;
        }
        Ok::<_, crate::meta::MetaError>(())
    })();
    if let Err(e) = undone {
        tracing::error!(error = %e, bucket, key, "could not take back the versions of a failed write");
    }
}

/// After the commit: the copies of a null version that was replaced go (their removal is
/// queued first, so a failure is repaired, not leaked).
pub(crate) async fn finish_aside(store: &Store, bucket: &str, key: &str, aside: &Aside) {
    match &aside.dropped {
        Some(VersionEntry::Object(dropped)) => {
            remove_copies(store, bucket, key, &dropped.replicas).await
        }
        Some(VersionEntry::DeleteMarker(marker)) => {
            remove_marker_objects(store, bucket, key, marker).await
        }
        None => {}
    }
}

/// When a write committed but published nowhere is rolled back to `previous` (recovery), the
/// noncurrent entry its commit made of `previous` goes again.
pub(crate) fn forget_kept(store: &Store, bucket: &str, key: &str, previous: &ObjectRecord) {
    let Ok(versions) = store.meta.versions_of(bucket, key) else {
        return;
    };
    for v in versions {
        if !v.is_delete_marker() && v.version_id() == previous.version_id {
            if let Err(e) = store.meta.remove_version(bucket, key, &v) {
                tracing::warn!(error = %e, "could not forget a rolled back version");
            }
        }
    }
}

/// Copies every present replica of `record` to its hidden version name; the record with
/// those copies as its replicas. Fails unless every present replica was copied.
async fn copy_aside(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
) -> StoreResult<ObjectRecord> {
    let hidden = version_name(bucket, key, &record.version_id)
        .ok_or_else(|| StoreError::Internal(format!("no version name for {bucket}/{key}")))?;
    let moved = relocate(store, record, |_| Some(hidden.clone())).await?;
    Ok(ObjectRecord {
        replicas: moved,
        ..record.clone()
    })
}

/// Copies each present replica of `record` within its backend to the name `to` gives; the
/// replicas at their new names. All or nothing: if any copy fails, those made are removed
/// and the error says which backend failed.
async fn relocate(
    store: &Store,
    record: &ObjectRecord,
    to: impl Fn(&Replica) -> Option<PhysicalName>,
) -> StoreResult<Vec<Replica>> {
    let limit = store.settings().publish_timeout;
    let present: Vec<&Replica> = record
        .replicas
        .iter()
        .filter(|r| r.state == ReplicaState::Present)
        .collect();
    if present.is_empty() {
        return Err(StoreError::VersionNotKept(
            "no present copy of the version to keep".into(),
        ));
    }
    let copies = futures::future::join_all(present.iter().map(|r| {
        let target = replica_target(store, r);
        let dest = to(r);
        async move {
            let (Some(target), Some(dest)) = (target, dest) else {
                return Err(format!("{}: no such backend or name", r.backend));
            };
            bounded(limit, "copy", target.backend.copy(&target.name, &dest))
                .await
                .map(|put| Replica {
                    backend: r.backend.clone(),
                    name: dest.into_string(),
                    etag: put.etag,
                    state: ReplicaState::Present,
                    staged: None,
                })
                .map_err(|e| format!("{}: {e}", r.backend))
        }
    }))
    .await;
    let mut made = Vec::new();
    let mut failed = Vec::new();
    for c in copies {
        match c {
            Ok(r) => made.push(r),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        for r in &made {
            remove_replica(store, r).await;
        }
        return Err(StoreError::VersionNotKept(failed.join("; ")));
    }
    Ok(made)
}

/// Removes copies the index no longer names: each removal queued first (repair finishes
/// what fails), taken back once done.
async fn remove_copies(store: &Store, bucket: &str, key: &str, replicas: &[Replica]) {
    let owed: Vec<_> = replicas
        .iter()
        .map(|r| removal(bucket, key, r, "a removed version"))
        .collect();
    for entry in &owed {
        if let Err(e) = store.meta.queue_repair(entry) {
            tracing::warn!(error = %e, "could not queue the removal of a version's copy");
        }
    }
    if let Err(e) = store.meta.sync().await {
        tracing::warn!(error = %e, "could not flush the removal of a version's copies");
        return;
    }
    for (r, entry) in replicas.iter().zip(&owed) {
        if remove_replica(store, r).await {
            let _ = store.meta.settle_repair(entry, None);
        }
    }
}

/// The user-metadata entry that tells a delete marker's object on a backend (its value: the
/// marker's owner); rebuild reads it back.
pub(crate) const MARKER_META: &str = "hansa-delete-marker";

/// Records a delete marker on the backends the key's copies go to, as a tiny object at its
/// hidden version name, so that a rebuild of the index finds it. Best effort: a backend that
/// misses it only means a rebuild from that backend alone would not know the marker.
async fn write_marker_objects(store: &Store, bucket: &str, key: &str, marker: &DeleteMarker) {
    let Some(name) = version_name(bucket, key, &marker.version_id) else {
        return;
    };
    let stamp = hansa_backends::Stamp {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: marker.version_id.clone(),
        // MD5 of nothing.
        etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
        size: 0,
        checksum: None,
        late: None,
    };
    let mut attrs = hansa_backends::ObjectAttributes::default();
    attrs
        .user_metadata
        .insert(MARKER_META.to_string(), marker.owner.clone());
    let limit = store.settings().backend_timeout;
    let targets = store.write_plan(bucket, key).targets;
    let writes = targets.iter().filter_map(|id| store.backend(id)).map(|b| {
        let (name, attrs, stamp) = (&name, &attrs, &stamp);
        async move {
            let body: hansa_backends::ByteStream = Box::pin(futures::stream::empty());
            if let Err(e) = bounded(limit, "put", b.put(name, attrs, stamp, body)).await {
                tracing::warn!(backend = b.id(), error = %e, "could not record a delete marker on a backend");
            }
        }
    });
    futures::future::join_all(writes).await;
}

/// Removes a delete marker's objects (see [`write_marker_objects`]) from every backend.
async fn remove_marker_objects(store: &Store, bucket: &str, key: &str, marker: &DeleteMarker) {
    let Some(name) = version_name(bucket, key, &marker.version_id) else {
        return;
    };
    let limit = store.settings().backend_timeout;
    let deletes = store.backends.iter().map(|b| {
        let name = &name;
        async move {
            if let Err(e) = bounded(limit, "delete", b.delete(name)).await {
                tracing::warn!(backend = b.id(), error = %e, "could not remove a delete marker's object");
            }
        }
    });
    futures::future::join_all(deletes).await;
}

/// What a delete did, as S3 answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version id removed or created (as S3 shows it); `None` in an unversioned bucket.
    pub version_id: Option<String>,
    /// The delete made a delete marker, or removed one.
    pub delete_marker: bool,
}

/// DeleteObject without a version id in a bucket with versioning: the current version is
/// kept as noncurrent (moved aside; the null version of a suspended bucket goes), and a
/// delete marker becomes the latest version. Called under the key's lock.
pub(crate) async fn delete_with_marker(
    store: &Store,
    bucket: &str,
    key: &str,
    owner: &str,
    bypass_governance: bool,
) -> StoreResult<DeleteOutcome> {
    let previous = store.meta.object(bucket, key)?;
    let aside =
        prepare_replacement(store, bucket, key, previous.as_ref(), bypass_governance).await?;
    let marker = DeleteMarker {
        version_id: uuid::Uuid::now_v7().simple().to_string(),
        modified_ms: crate::meta::now_ms(),
        owner: owner.to_string(),
        versioned: aside.versioned,
    };
    let plain: Vec<Replica> = previous
        .as_ref()
        .map(|p| p.replicas.clone())
        .unwrap_or_default();
    let owed: Vec<_> = plain
        .iter()
        .map(|r| removal(bucket, key, r, "missed a delete"))
        .collect();
    let recorded = (|| {
        record_aside(store, bucket, key, &aside)?;
        store
            .meta
            .put_version(bucket, key, &VersionEntry::DeleteMarker(marker.clone()))?;
        for entry in &owed {
            store.meta.queue_repair(entry)?;
        }
        store.meta.delete_object(bucket, key)?;
        Ok::<_, StoreError>(())
    })();
    if let Err(e) = recorded {
        undo_aside(store, bucket, key, &aside);
        if let Some(p) = &previous {
            let _ = store.meta.put_object(bucket, key, p);
        }
        return Err(e);
    }
    store.meta.sync().await?;
    for (r, entry) in plain.iter().zip(&owed) {
        if remove_replica(store, r).await {
            let _ = store.meta.settle_repair(entry, None);
        }
    }
    finish_aside(store, bucket, key, &aside).await;
    write_marker_objects(store, bucket, key, &marker).await;
    Ok(DeleteOutcome {
        version_id: Some(if marker.versioned {
            marker.version_id
        } else {
            "null".into()
        }),
        delete_marker: true,
    })
}

/// DeleteObject with a version id (`null` too): that version goes for good. If it was the
/// current version, the newest remaining one becomes the latest (an object version is copied
/// back to the plain name; a delete marker leaves the key without a current object). An
/// unknown version id changes nothing (as on S3).
pub async fn delete_version(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: &str,
    bypass_governance: bool,
) -> StoreResult<DeleteOutcome> {
    let outcome = delete_version_if(store, bucket, key, version_id, bypass_governance, |_, _| {
        true
    })
    .await?;
    Ok(outcome.unwrap_or_default())
}

/// [`delete_version`], done only if `still` (asked under the key's lock with the key's
/// current version and its noncurrent versions, newest first) agrees; `None` when it does
/// not. Lifecycle removes a version this way, so a write or delete that changed the key
/// since the version was judged due gets the rules' verdict on what is there now.
pub async fn delete_version_if(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: &str,
    bypass_governance: bool,
    still: impl FnOnce(Option<&ObjectRecord>, &[VersionEntry]) -> bool,
) -> StoreResult<Option<DeleteOutcome>> {
    let _guard = store.locks.lock(bucket, key).await;
    super::bucket(store, bucket)?;
    let current = store.meta.object(bucket, key)?;
    let versions = store.meta.versions_of(bucket, key)?;
    if !still(current.as_ref(), &versions) {
        return Ok(None);
    }
    let outcome = |marker: bool| DeleteOutcome {
        version_id: Some(version_id.to_string()),
        delete_marker: marker,
    };
    if let Some(current) = current.filter(|c| names(version_id, c.versioned, &c.version_id)) {
        let view = VersionView::Object {
            record: Box::new(current.clone()),
            latest: true,
        };
        may_remove(&view, bypass_governance)?;
        let promoted = match versions.first() {
            Some(VersionEntry::Object(next)) => {
                Some((promote(store, bucket, key, next).await?, next))
            }
            _ => None,
        };
        // Copies the promoted version did not land on go with the removed version.
        let gone: Vec<Replica> = current
            .replicas
            .iter()
            .filter(|r| {
                !promoted
                    .as_ref()
                    .is_some_and(|(p, _)| p.replicas.iter().any(|n| n.same_slot(r)))
            })
            .cloned()
            .collect();
        match &promoted {
            Some((record, entry)) => {
                store.meta.put_object(bucket, key, record)?;
                store
                    .meta
                    .remove_version(bucket, key, &VersionEntry::Object((*entry).clone()))?;
            }
            None => {
                store.meta.delete_object(bucket, key)?;
            }
        }
        store.meta.sync().await?;
        remove_copies(store, bucket, key, &gone).await;
        if let Some((_, entry)) = promoted {
            remove_copies(store, bucket, key, &entry.replicas).await;
        }
        return Ok(Some(outcome(false)));
    }
    let Some(pos) = versions
        .iter()
        .position(|v| names(version_id, v.versioned(), v.version_id()))
    else {
        return Ok(Some(outcome(false)));
    };
    let entry = versions[pos].clone();
    let latest = current_is_absent(store, bucket, key)? && pos == 0;
    may_remove(&VersionView::of(entry.clone(), latest), bypass_governance)?;
    // Removing the latest delete marker makes the version under it current again.
    let promoted = match (latest, versions.get(1)) {
        (true, Some(VersionEntry::Object(next))) => {
            Some((promote(store, bucket, key, next).await?, next.clone()))
        }
        _ => None,
    };
    store.meta.remove_version(bucket, key, &entry)?;
    if let Some((record, next)) = &promoted {
        store.meta.put_object(bucket, key, record)?;
        store
            .meta
            .remove_version(bucket, key, &VersionEntry::Object(next.clone()))?;
    }
    store.meta.sync().await?;
    match &entry {
        VersionEntry::Object(record) => remove_copies(store, bucket, key, &record.replicas).await,
        VersionEntry::DeleteMarker(marker) => {
            remove_marker_objects(store, bucket, key, marker).await
        }
    }
    if let Some((_, next)) = promoted {
        remove_copies(store, bucket, key, &next.replicas).await;
    }
    Ok(Some(outcome(entry.is_delete_marker())))
}

fn current_is_absent(store: &Store, bucket: &str, key: &str) -> StoreResult<bool> {
    Ok(store.meta.object(bucket, key)?.is_none())
}

/// The one place a version's permanent removal can be refused: object lock (retention, legal
/// hold). Delete markers carry no lock.
fn may_remove(version: &VersionView, bypass_governance: bool) -> StoreResult<()> {
    match version {
        VersionView::Object { record, .. } => {
            super::lock::may_remove(&record.lock, bypass_governance, crate::meta::now_ms())
                .map_err(StoreError::Locked)
        }
        _ => Ok(()),
    }
}

/// A noncurrent version made current again: its copies are copied back to the plain name.
async fn promote(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
) -> StoreResult<ObjectRecord> {
    let plain = physical_name(bucket, key);
    let replicas = relocate(store, record, |_| Some(plain.clone())).await?;
    Ok(ObjectRecord {
        replicas,
        ..record.clone()
    })
}

/// Where a listing of versions starts.
#[derive(Clone, Debug)]
pub enum VersionsFrom {
    Start,
    /// After every version of keys up to and including this one (`key-marker` alone).
    AfterKey(String),
    /// After this version of this key (`key-marker` with `version-id-marker`).
    AfterVersion(String, String),
}

/// One page of ListObjectVersions.
#[derive(Debug, Default)]
pub struct VersionListing {
    /// Keys ascending, each key's versions newest first.
    pub versions: Vec<(String, VersionView)>,
    /// With a delimiter: the common prefixes, in key order among the versions.
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts: key and (for a version) its shown id.
    pub next: Option<(String, Option<String>)>,
}

/// ListObjectVersions: versions of keys under `prefix`, rolled up at `delimiter`, at most
/// `limit` entries (versions and common prefixes) from `from` on.
pub fn list_versions(
    store: &Store,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    from: VersionsFrom,
    limit: usize,
) -> StoreResult<VersionListing> {
    super::bucket(store, bucket)?;
    let mut out = VersionListing::default();
    let mut count = 0usize;
    let mut cursor: Bound<String> = Bound::Unbounded;
    let mut skip_until: Option<String> = None;
    let common_prefix = |key: &str| -> Option<String> {
        let d = delimiter.filter(|d| !d.is_empty())?;
        let rest = key.strip_prefix(prefix)?;
        rest.find(d)
            .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
    };
    match &from {
        VersionsFrom::Start => {}
        VersionsFrom::AfterKey(k) => {
            // A marker that is a common prefix skips everything under it.
            cursor = match common_prefix(k).filter(|cp| cp == k) {
                Some(cp) => Bound::Excluded(format!("{cp}\u{10FFFF}")),
                None => Bound::Excluded(k.clone()),
            };
        }
        VersionsFrom::AfterVersion(k, v) => {
            cursor = Bound::Excluded(k.clone());
            skip_until = Some(v.clone());
        }
    }
    // The rest of the marker key's versions, after the marker version.
    if let (VersionsFrom::AfterVersion(k, _), Some(v)) = (&from, skip_until.take()) {
        if k.starts_with(prefix) {
            let all = versions_of_key(store, bucket, k)?;
            if let Some(pos) = all.iter().position(|x| x.shown_version_id() == v) {
                for view in all.into_iter().skip(pos + 1) {
                    if count == limit {
                        out.truncated = true;
                        return Ok(out);
                    }
                    out.next = Some((k.clone(), Some(view.shown_version_id().to_string())));
                    out.versions.push((k.clone(), view));
                    count += 1;
                }
            }
        }
    }
    let mut last_prefix: Option<String> = None;
    while let Some(key) = next_key(store, bucket, prefix, &cursor)? {
        if let Some(cp) = common_prefix(&key) {
            cursor = Bound::Excluded(key.clone());
            if last_prefix.as_deref() == Some(cp.as_str()) {
                continue;
            }
            if count == limit {
                out.truncated = true;
                return Ok(out);
            }
            cursor = Bound::Excluded(format!("{cp}\u{10FFFF}"));
            out.next = Some((cp.clone(), None));
            out.common_prefixes.push(cp.clone());
            last_prefix = Some(cp);
            count += 1;
            continue;
        }
        for view in versions_of_key(store, bucket, &key)? {
            if count == limit {
                out.truncated = true;
                return Ok(out);
            }
            out.next = Some((key.clone(), Some(view.shown_version_id().to_string())));
            out.versions.push((key.clone(), view));
            count += 1;
        }
        cursor = Bound::Excluded(key);
    }
    out.next = None;
    Ok(out)
}

/// Every version of `key`, newest first (the current one, if any, first).
fn versions_of_key(store: &Store, bucket: &str, key: &str) -> StoreResult<Vec<VersionView>> {
    let mut out = Vec::new();
    let current = store.meta.object(bucket, key)?;
    let has_current = current.is_some();
    if let Some(record) = current {
        out.push(VersionView::Object {
            record: Box::new(record),
            latest: true,
        });
    }
    for (i, v) in store.meta.versions_of(bucket, key)?.into_iter().enumerate() {
        out.push(VersionView::of(v, !has_current && i == 0));
    }
    Ok(out)
}

/// The first key under `prefix` after `cursor` with a current version or noncurrent ones.
pub(crate) fn next_key(
    store: &Store,
    bucket: &str,
    prefix: &str,
    cursor: &Bound<String>,
) -> StoreResult<Option<String>> {
    let object = store
        .meta
        .scan_objects(bucket, prefix, cursor.clone(), 1)?
        .entries
        .into_iter()
        .next()
        .map(|(k, _)| k);
    let version = store
        .meta
        .scan_versions(bucket, prefix, cursor.clone(), 1)?
        .entries
        .into_iter()
        .next()
        .map(|(k, _)| k);
    Ok(match (object, version) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}
