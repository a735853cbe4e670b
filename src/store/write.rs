//! PutObject and CopyObject: a body streamed once to every target's stage, then the commit.
//!
//! The write runs in a task of its own: once the body has arrived whole, a client that hangs up
//! (or a request future that is dropped) cannot stop the commit halfway; a body that does not
//! arrive whole fails the pump, and every staged copy is discarded.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hansa_backends::{BackendError, ByteStream, LateStamp, ObjectAttributes, Stamp};

use super::commit::{abandon, commit, StagedWrite};
use super::condition::WriteCondition;
use super::copies::clone_kind;
use super::stage::{
    await_quorum, name_for, plan_targets, IntentLog, Slot, StageTask, StagedCopy, Target,
    TargetSlot,
};
use super::{BodyFailure, Store, StoreError, StoreResult};
use crate::checksum::Checksum;
use crate::meta::{Intent, IntentPhase, IntentTarget, ObjectLock, ObjectRecord, Tag};
use crate::replication::{feeds, pump, Cut, PumpError};

/// What a write knows before its first byte.
#[derive(Clone, Debug)]
pub struct NewObject {
    pub bucket: String,
    pub key: String,
    pub attributes: ObjectAttributes,
    /// The body's length (announced, and checked by whoever verifies the body); `None` for a
    /// body of unknown length (HTTP chunked), whose length is known once it has ended.
    pub size: Option<u64>,
    /// The content's ETag when known up front (Content-MD5, a copy's source).
    pub known_etag: Option<String>,
    /// Access key of the writer.
    pub owner: String,
    pub condition: WriteCondition,
    /// The object's ACL (`ObjectRecord::acl`).
    pub acl: Option<String>,
    /// The object's tags (`ObjectRecord::tags`).
    pub tags: Vec<Tag>,
    /// The version's object lock (`ObjectRecord::lock`).
    pub lock: ObjectLock,
}

/// What a body turned out to be, known once it has been read to its end and verified.
#[derive(Clone, Debug)]
pub struct BodyFacts {
    /// Hex MD5 of the content (the S3 ETag).
    pub etag: String,
    /// The client's checksum, sent or computed.
    pub checksum: Option<Checksum>,
}

/// Stores `body` as the new version of the object; returns the committed record. `facts`
/// tells, once the body has ended cleanly, its ETag and checksum.
pub async fn put_object<S, F>(
    store: &Arc<Store>,
    object: NewObject,
    body: S,
    facts: F,
) -> StoreResult<ObjectRecord>
where
    S: Stream<Item = Result<Bytes, BodyFailure>> + Send + 'static,
    F: Fn() -> Option<BodyFacts> + Send + Sync + 'static,
{
    let store = store.clone();
    let task =
        tokio::spawn(async move { write(&store, object, body, facts, StoreError::Body).await });
    task.await
        .unwrap_or_else(|e| Err(StoreError::Internal(format!("write task: {e}"))))
}

/// Stores a copy of `source` (an open, verified read of the whole source object) as the new
/// version. A source that fails or does not match its record fails the copy, which then
/// changes nothing.
pub async fn copy_object<S>(
    store: &Arc<Store>,
    object: NewObject,
    source_record: &ObjectRecord,
    source: S,
) -> StoreResult<ObjectRecord>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let facts = BodyFacts {
        etag: source_record.etag.clone(),
        checksum: source_record.checksum.clone(),
    };
    let body = source.map(|item| item.map_err(|e| Box::new(e) as BodyFailure));
    let store = store.clone();
    let task = tokio::spawn(async move {
        write(
            &store,
            object,
            body,
            move || Some(facts.clone()),
            |e| StoreError::SourceUnreadable(e.to_string()),
        )
        .await
    });
    task.await
        .unwrap_or_else(|e| Err(StoreError::Internal(format!("copy task: {e}"))))
}

async fn write<S, F>(
    store: &Arc<Store>,
    object: NewObject,
    body: S,
    facts: F,
    body_error: impl FnOnce(BodyFailure) -> StoreError,
) -> StoreResult<ObjectRecord>
where
    S: Stream<Item = Result<Bytes, BodyFailure>> + Send + 'static,
    F: Fn() -> Option<BodyFacts> + Send + Sync + 'static,
{
    let started = Instant::now();
    let started_ms = crate::meta::now_ms();
    let (targets, quorum) = plan_targets(store, &object.bucket, &object.key)?;
    let version_id = uuid::Uuid::now_v7().simple().to_string();
    let late: Arc<OnceLock<LateStamp>> = Arc::default();
    let stamp = Stamp {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        version_id: version_id.clone(),
        // Empty when the content's ETag is only known once the body has been read; then
        // `late` carries it to backends that record their stamp at the end of the write.
        etag: object.known_etag.clone().unwrap_or_default(),
        // A body of unknown length is announced as small (backends stage a larger one as
        // large by themselves); its length goes in the late stamp.
        size: object.size.unwrap_or(0),
        checksum: None,
        late: Some(late.clone()),
    };
    let write_id = uuid::Uuid::new_v4().simple().to_string();
    let running = store.running(&write_id);
    let log = IntentLog::open(
        store,
        &write_id,
        Intent {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version_id: version_id.clone(),
            started_ms,
            owner: object.owner.clone(),
            phase: IntentPhase::Staging,
            targets: targets
                .iter()
                .map(|t| IntentTarget {
                    backend: t.id().to_string(),
                    name: t.name.as_str().to_string(),
                    handle: None,
                    upload_handle: None,
                })
                .collect(),
            superseded: Vec::new(),
            before: None,
            upload_id: None,
        },
    )?;
    // A large body may leave remote state behind a crash (an open multipart upload): its
    // handle is made durable before the body goes there. A small one leaves at most a staged
    // file, which the collection of leftovers finds.
    let flush_handles = object
        .size
        .is_none_or(|size| size > store.settings().chunk_bytes as u64);
    let (senders, feeds) = feeds(targets.len(), store.settings().max_lag);
    let slots: Vec<TargetSlot> = targets
        .into_iter()
        .zip(feeds)
        .enumerate()
        .map(|(i, (target, feed))| {
            let work = stage_one(
                log.clone(),
                i,
                target.clone(),
                object.attributes.clone(),
                stamp.clone(),
                feed.body,
                flush_handles,
            );
            TargetSlot {
                target,
                slot: Slot::Straggling(StageTask::spawn(
                    work,
                    Some(feed.progress),
                    &store.settings(),
                )),
            }
        })
        .collect();

    let unknown_size = object.size.is_none();
    let complete_stamp = |len: u64| {
        if let Some(f) = facts() {
            let _ = late.set(LateStamp {
                etag: f.etag,
                checksum: f.checksum.as_ref().map(Checksum::to_stamp),
                size: unknown_size.then_some(len),
            });
        }
    };
    let flow = store.flow(&object.owner);
    let report = pump(body, object.size, senders, quorum, &flow, complete_stamp).await;
    let mut record = ObjectRecord {
        size: object.size.unwrap_or(0),
        etag: String::new(),
        checksum: None,
        attributes: object.attributes.clone(),
        modified_ms: 0,
        version_id: version_id.clone(),
        owner: object.owner.clone(),
        replicas: Vec::new(),
        parts: Vec::new(),
        checksum_type: None,
        integrity: None,
        acl: object.acl.clone(),
        tags: object.tags.clone(),
        lock: object.lock,
        versioned: false,
    };
    let staged_write = |slots, record| StagedWrite {
        record,
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        stamp: stamp.clone(),
        slots,
        quorum,
        condition: object.condition.clone(),
        started,
        log: log.clone(),
    };
    let pumped = match report.result {
        Ok(pumped) => pumped,
        Err(e) => {
            let (slots, error) = match e {
                PumpError::Body(e) => (slots, body_error(e)),
                PumpError::ClientStalled(d) => (slots, StoreError::BodyStalled(d)),
                PumpError::Busy(e) => (slots, StoreError::Busy(e)),
                PumpError::QuorumLost => lost_quorum(slots, &report.cut, quorum).await,
            };
            abandon(store, staged_write(slots, record), running);
            return Err(error);
        }
    };
    let Some(facts) = facts() else {
        abandon(store, staged_write(slots, record), running);
        return Err(StoreError::Internal(
            "the body ended without its summary".into(),
        ));
    };
    record.size = pumped.len;
    record.etag = facts.etag;
    record.checksum = facts.checksum;
    record.integrity = Some(pumped.integrity);
    record.modified_ms = crate::meta::now_ms();
    let slots = await_quorum(slots, quorum, &store.settings(), started).await;
    commit(store, staged_write(slots, record), running).await
}

/// One target's part of a write: its name, a prepared place (recorded in the intent before a
/// byte goes there), the body staged. What it prepared is discarded if it fails.
async fn stage_one(
    log: Arc<IntentLog>,
    index: usize,
    target: Target,
    attrs: ObjectAttributes,
    stamp: Stamp,
    body: ByteStream,
    flush_handle: bool,
) -> Result<StagedCopy, BackendError> {
    let backend = target.backend;
    let name = name_for(backend.as_ref(), &stamp.bucket, &stamp.key).await;
    let handle = backend.prepare(&name, &attrs, &stamp).await?;
    if !log.set_handle(index, &name, &handle, flush_handle).await {
        let _ = backend.discard(&name, &handle).await;
        return Err(BackendError::Aborted);
    }
    match backend.stage(&name, &handle, &attrs, &stamp, body).await {
        Ok(staged) => Ok((name, staged)),
        Err(e) => {
            if let Err(d) = backend.discard(&name, &handle).await {
                tracing::debug!(backend = backend.id(), error = %d, "could not discard a failed stage");
            }
            Err(e)
        }
    }
}

/// Why a write lost its quorum while the body was flowing: the stages that failed say why
/// (they have ended: their feeds were closed), the others were cut for being slow.
async fn lost_quorum(
    slots: Vec<TargetSlot>,
    cut: &[Option<Cut>],
    quorum: usize,
) -> (Vec<TargetSlot>, StoreError) {
    let mut failures = Vec::new();
    let mut settled = Vec::with_capacity(slots.len());
    for (i, mut s) in slots.into_iter().enumerate() {
        let why = match std::mem::replace(&mut s.slot, Slot::Missing(BackendError::Aborted)) {
            Slot::Missing(e) => {
                let reported = clone_kind(&e);
                s.slot = Slot::Missing(e);
                Some(reported)
            }
            Slot::Straggling(task) => match cut.get(i).copied().flatten() {
                Some(Cut::Failed) => {
                    let e = task.outcome().await.err().unwrap_or(BackendError::Aborted);
                    let reported = clone_kind(&e);
                    s.slot = Slot::Missing(e);
                    Some(reported)
                }
                cut => {
                    s.slot = Slot::Straggling(task);
                    match cut {
                        Some(Cut::Stalled) => Some(BackendError::Unavailable {
                            message: "took no data within the backend timeout".into(),
                        }),
                        Some(Cut::Lagging) => Some(BackendError::Unavailable {
                            message: "fell behind the others".into(),
                        }),
                        _ => None,
                    }
                }
            },
            staged => {
                s.slot = staged;
                None
            }
        };
        if let Some(e) = why {
            failures.push((s.target.id().to_string(), e));
        }
        settled.push(s);
    }
    let error = StoreError::quorum(0, quorum, &failures);
    (settled, error)
}
