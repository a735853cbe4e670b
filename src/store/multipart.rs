//! Multipart uploads: creation (an upload on every target), parts (streamed to every target
//! like any body), completion (each target composes the chosen parts into a staged copy, then
//! the commit every write has) and abort.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;
use hansa_backends::{BackendError, CompletedPart, ObjectAttributes, PutResult, Stamp};

use super::commit::{commit, StagedWrite};
use super::condition::WriteCondition;
use super::stage::{await_quorum, plan_targets, IntentLog, Slot, StageTask, Target, TargetSlot};
use super::write::BodyFacts;
use super::{BodyFailure, Store, StoreError, StoreResult};
use crate::checksum::composite::{full_object_checksum, ChecksumType};
use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::meta::{
    now_ms, Intent, IntentPhase, IntentTarget, ObjectLock, ObjectRecord, PartRecord, PartSummary,
    Tag, UploadRecord, UploadTarget,
};
use crate::replication::{bounded, feeds, pump, PumpError};

/// What CreateMultipartUpload knows.
pub struct NewUpload {
    pub bucket: String,
    pub key: String,
    pub attributes: ObjectAttributes,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub checksum_type: Option<ChecksumType>,
    pub owner: String,
    /// The ACL the completed object gets (`UploadRecord::acl`).
    pub acl: Option<String>,
    /// The tags the completed object gets (`UploadRecord::tags`).
    pub tags: Vec<Tag>,
    /// The object lock the completed object gets (`UploadRecord::lock`).
    pub lock: ObjectLock,
}

/// Starts an upload on the placement's targets and records it (durably). An upload that fewer
/// than the write quorum of targets could start is refused.
pub async fn create_upload(store: &Store, new: NewUpload) -> StoreResult<UploadRecord> {
    // Until the upload is recorded, DeleteBucket waits; after it, DeleteBucket aborts it.
    let _bucket = store.locks.share_bucket(&new.bucket).await;
    if store.meta.bucket(&new.bucket)?.is_none() {
        return Err(StoreError::NoSuchBucket(new.bucket));
    }
    // Time-ordered ids: a key's uploads list in the order they were started.
    let upload_id = uuid::Uuid::now_v7().simple().to_string();
    let (targets, quorum) = plan_targets(store, &new.bucket, &new.key)?;
    let targets = with_names(targets, &new.bucket, &new.key).await;
    let stamp = Stamp {
        bucket: new.bucket.clone(),
        key: new.key.clone(),
        version_id: upload_id.clone(),
        etag: String::new(),
        size: 0,
        checksum: None,
        late: None,
    };
    let limit = store.settings().backend_timeout;
    let created = futures::future::join_all(targets.iter().map(|t| {
        bounded(
            limit,
            "create upload",
            t.backend
                .create_upload(&t.name, &upload_id, &new.attributes, &stamp),
        )
    }))
    .await;
    let mut failures = Vec::new();
    let mut upload_targets = Vec::with_capacity(targets.len());
    for (t, result) in targets.iter().zip(created) {
        let handle = match result {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(backend = t.id(), error = %e, "could not start the upload on a backend; its replica will be pending");
                failures.push((t.id().to_string(), e));
                String::new()
            }
        };
        upload_targets.push(UploadTarget {
            backend: t.id().to_string(),
            name: t.name.as_str().to_string(),
            handle,
        });
    }
    let record = UploadRecord {
        bucket: new.bucket,
        key: new.key,
        upload_id,
        initiated_ms: now_ms(),
        owner: new.owner,
        attributes: new.attributes,
        checksum_algorithm: new.checksum_algorithm,
        checksum_type: new.checksum_type,
        targets: upload_targets,
        acl: new.acl,
        tags: new.tags,
        lock: new.lock,
    };
    let started = record
        .targets
        .iter()
        .filter(|t| !t.handle.is_empty())
        .count();
    if started < quorum {
        abort_on_backends(store, &record).await;
        return Err(StoreError::quorum(started, quorum, &failures));
    }
    store.meta.create_upload(&record)?;
    store.meta.sync().await?;
    Ok(record)
}

/// Each target with the name the object will get there (see `stage::name_for`).
async fn with_names(targets: Vec<Target>, bucket: &str, key: &str) -> Vec<Target> {
    futures::future::join_all(targets.into_iter().map(|t| async move {
        let name = super::stage::name_for(t.backend.as_ref(), bucket, key).await;
        Target { name, ..t }
    }))
    .await
}

/// The upload's targets that started it, with their slot in the record.
fn live_targets(store: &Store, upload: &UploadRecord) -> Vec<(usize, Target, String)> {
    upload
        .targets
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.handle.is_empty())
        .filter_map(|(i, t)| {
            let target = super::copies::replica_target(
                store,
                &crate::meta::Replica::new(&t.backend, &t.name, crate::meta::ReplicaState::Pending),
            )?;
            Some((i, target, t.handle.clone()))
        })
        .collect()
}

/// Where a part's bytes come from.
pub enum PartSource<S> {
    /// A client's body, with its ETag (MD5) and checksum once it has ended.
    Body {
        body: S,
        facts: Box<dyn Fn() -> Option<BodyFacts> + Send + Sync>,
    },
}

/// Streams one part to every target of the upload and records it (durably); its buffers count
/// against `tenant`'s share of the budget (the access key that sent the part). The caller
/// holds the part's lock.
pub async fn store_part<S>(
    store: &Arc<Store>,
    upload: &UploadRecord,
    tenant: &str,
    part_number: u32,
    size: u64,
    source: PartSource<S>,
) -> StoreResult<PartRecord>
where
    S: Stream<Item = Result<Bytes, BodyFailure>> + Send + 'static,
{
    let PartSource::Body { body, facts } = source;
    let quorum = store.write_plan(&upload.bucket, &upload.key).write_quorum;
    let targets = live_targets(store, upload);
    let (senders, feeds) = feeds(targets.len(), store.settings().max_lag);
    let tasks: Vec<(usize, Target, StageTask<PutResult>)> = targets
        .into_iter()
        .zip(feeds)
        .map(|((slot, target, handle), feed)| {
            let (backend, name) = (target.backend.clone(), target.name.clone());
            let task = StageTask::spawn(
                async move {
                    backend
                        .put_part(&name, &handle, part_number, size, feed.body)
                        .await
                },
                Some(feed.progress),
                &store.settings(),
            );
            (slot, target, task)
        })
        .collect();
    let flow = store.flow(tenant);
    let report = pump(body, Some(size), senders, quorum, &flow, |_| {}).await;
    // Every target's outcome (a part is cheap to wait for: it is cut if it lags).
    let mut receipts = vec![None; upload.targets.len()];
    let mut failures = Vec::new();
    for (slot, target, task) in tasks {
        match task.outcome().await {
            Ok(put) => receipts[slot] = Some(put.etag),
            Err(e) => {
                if report.result.is_ok() {
                    tracing::warn!(backend = target.id(), part_number, error = %e, "part upload failed on a backend; its replica will be pending");
                }
                failures.push((target.id().to_string(), e));
            }
        }
    }
    let pumped = match report.result {
        Ok(pumped) => pumped,
        Err(PumpError::Body(e)) => return Err(StoreError::Body(e)),
        Err(PumpError::ClientStalled(d)) => return Err(StoreError::BodyStalled(d)),
        Err(PumpError::Busy(e)) => return Err(StoreError::Busy(e)),
        Err(PumpError::QuorumLost) => {
            let confirmed = receipts.iter().filter(|r| r.is_some()).count();
            return Err(StoreError::quorum(confirmed, quorum, &failures));
        }
    };
    let confirmed = receipts.iter().filter(|r| r.is_some()).count();
    let facts = match facts() {
        Some(f) if confirmed >= quorum => f,
        _ => return Err(StoreError::quorum(confirmed, quorum, &failures)),
    };
    let part = PartRecord {
        size: pumped.len,
        etag: facts.etag,
        checksum: facts.checksum,
        modified_ms: now_ms(),
        receipts,
        integrity: Some(pumped.integrity),
    };
    store.meta.put_part(&upload.upload_id, part_number, &part)?;
    store.meta.sync().await?;
    Ok(part)
}

/// One part a completion names, as uploaded.
pub struct ChosenPart {
    pub number: u32,
    pub record: PartRecord,
}

/// A completion checked by the front end: the parts it names and what the object will be.
pub struct Completion {
    pub upload: UploadRecord,
    pub parts: Vec<ChosenPart>,
    /// The multipart ETag and the object's checksum, derived from the parts.
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub condition: WriteCondition,
    pub owner: String,
}

/// Completes an upload: every target composes the chosen parts into a staged copy, then the
/// version commits like any write (its version id is the upload id). The caller holds the
/// upload's lock. The upload is forgotten once the object is committed; a completion that
/// fails keeps it, so the client can complete again.
pub async fn complete_upload(
    store: &Arc<Store>,
    completion: Completion,
) -> StoreResult<ObjectRecord> {
    let started = Instant::now();
    let Completion {
        upload,
        parts,
        etag,
        checksum,
        condition,
        owner,
    } = completion;
    let size: u64 = parts.iter().map(|p| p.record.size).sum();
    let checksum_type = checksum.as_ref().and(upload.checksum_type);
    let version_id = upload.upload_id.clone();
    let stamp = Stamp {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        version_id: version_id.clone(),
        etag: etag.clone(),
        size,
        checksum: checksum.as_ref().map(Checksum::to_stamp),
        late: None,
    };
    let write_id = uuid::Uuid::new_v4().simple().to_string();
    let running = store.running(&write_id);
    let started_ms = now_ms();
    let mut slots = Vec::with_capacity(upload.targets.len());
    let mut intent_targets = Vec::with_capacity(upload.targets.len());
    for (slot, t) in upload.targets.iter().enumerate() {
        let target = super::copies::replica_target(
            store,
            &crate::meta::Replica::new(&t.backend, &t.name, crate::meta::ReplicaState::Pending),
        );
        let Some(target) = target else { continue };
        let receipts: Option<Vec<CompletedPart>> = parts
            .iter()
            .map(|p| {
                p.record
                    .receipts
                    .get(slot)
                    .cloned()
                    .flatten()
                    .map(|receipt| CompletedPart {
                        part_number: p.number,
                        receipt,
                        size: p.record.size,
                    })
            })
            .collect();
        let state = match receipts {
            Some(receipts) if !t.handle.is_empty() => {
                let (backend, name, handle) = (
                    target.backend.clone(),
                    target.name.clone(),
                    t.handle.clone(),
                );
                let (attrs, stamp) = (upload.attributes.clone(), stamp.clone());
                Slot::Straggling(StageTask::spawn(
                    async move {
                        let staged = backend
                            .stage_upload(&name, &handle, &receipts, &attrs, &stamp)
                            .await?;
                        Ok((name, staged))
                    },
                    None,
                    &store.settings(),
                ))
            }
            _ => Slot::Missing(BackendError::Unavailable {
                message: "the backend is missing parts of this upload".into(),
            }),
        };
        intent_targets.push(IntentTarget {
            backend: target.id().to_string(),
            name: target.name.as_str().to_string(),
            handle: None,
            upload_handle: (!t.handle.is_empty()).then(|| t.handle.clone()),
        });
        slots.push(TargetSlot {
            target,
            slot: state,
        });
    }
    let log = IntentLog::open(
        store,
        &write_id,
        Intent {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            version_id: version_id.clone(),
            started_ms,
            owner: owner.clone(),
            phase: IntentPhase::Staging,
            targets: intent_targets,
            superseded: Vec::new(),
            before: None,
            upload_id: Some(upload.upload_id.clone()),
        },
    )?;
    let quorum = store.write_plan(&upload.bucket, &upload.key).write_quorum;
    let slots = await_quorum(slots, quorum, &store.settings(), started).await;
    let part_summaries: Vec<PartSummary> = parts
        .iter()
        .map(|p| PartSummary {
            size: p.record.size,
            checksum: p.record.checksum.clone(),
        })
        .collect();
    let record = ObjectRecord {
        size,
        etag,
        checksum,
        attributes: upload.attributes.clone(),
        modified_ms: now_ms(),
        version_id,
        owner,
        replicas: Vec::new(),
        parts: part_summaries,
        checksum_type,
        integrity: combined_integrity(&parts),
        acl: upload.acl.clone(),
        tags: upload.tags.clone(),
        lock: upload.lock,
        versioned: false,
    };
    let write = StagedWrite {
        record,
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        stamp,
        slots,
        quorum,
        condition,
        started,
        log,
    };
    let record = commit(store, write, running).await?;
    // The upload is done; the backends' parts go once their copies are published (see
    // `recovery::settle`, which the commit's follow-up runs).
    store
        .meta
        .delete_upload(&upload.bucket, &upload.key, &upload.upload_id)?;
    store.meta.sync().await?;
    Ok(record)
}

/// The object's integrity checksum from its parts', when every part has one.
fn combined_integrity(parts: &[ChosenPart]) -> Option<Checksum> {
    let sums: Option<Vec<(Checksum, u64)>> = parts
        .iter()
        .map(|p| p.record.integrity.clone().map(|c| (c, p.record.size)))
        .collect();
    full_object_checksum(ChecksumAlgorithm::Crc64Nvme, &sums?)
}

/// Removes an upload's parts from every backend (best effort; logged).
async fn abort_on_backends(store: &Store, upload: &UploadRecord) {
    let limit = store.settings().backend_timeout;
    let aborts = live_targets(store, upload)
        .into_iter()
        .map(|(_, target, handle)| async move {
            let aborted = bounded(
                limit,
                "abort upload",
                target.backend.abort_upload(&target.name, &handle),
            )
            .await;
            if let Err(e) = aborted {
                tracing::warn!(backend = target.id(), upload = %upload.upload_id, error = %e, "could not remove an upload's parts");
            }
        });
    futures::future::join_all(aborts).await;
}

/// Aborts an upload: the index forgets it (durably), then every backend drops its parts.
///
/// Only the upload's lock is taken: a completion holds it from start to end, so an abort
/// waits for a completion in progress (and then finds the upload gone). Nothing of an upload
/// is visible before its completion commits, so there is nothing of the key to protect. (Locks
/// are always taken upload first, then key or bucket.)
pub async fn abort_upload(store: &Store, upload: &UploadRecord) -> StoreResult<()> {
    let _guard = store.upload_locks.lock_bucket(&upload.upload_id).await;
    // It may have been completed or aborted while this waited.
    if store
        .meta
        .upload(&upload.bucket, &upload.key, &upload.upload_id)?
        .is_none()
    {
        return Ok(());
    }
    store
        .meta
        .delete_upload(&upload.bucket, &upload.key, &upload.upload_id)?;
    store.meta.sync().await?;
    abort_on_backends(store, upload).await;
    Ok(())
}

/// Aborts uploads started more than `max_age` ago; returns how many.
pub async fn abort_stale_uploads(store: &Store, max_age: Duration) -> StoreResult<usize> {
    let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
    let mut aborted = 0;
    for upload in store.meta.all_uploads()? {
        if upload.initiated_ms > cutoff {
            continue;
        }
        abort_upload(store, &upload).await?;
        tracing::info!(bucket = %upload.bucket, key = %upload.key, upload = %upload.upload_id, "aborted an abandoned multipart upload");
        aborted += 1;
    }
    Ok(aborted)
}
