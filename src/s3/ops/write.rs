//! The write path shared by PutObject and CopyObject: intent, fan-out to the policy's
//! targets, quorum, index commit, and clean-up of superseded replicas.
//!
//! The caller holds the key's lock, so the index and the replicas agree on the current version.

use bytes::Bytes;
use futures::Stream;
use std::sync::Arc;

use hansa_backends::{naming, BackendError, LateStamp, ObjectAttributes, PhysicalName, Stamp};

use crate::gateway::Gateway;
use crate::meta::{Intent, ObjectRecord, PartSummary, Replica, ReplicaState};
use crate::replication::{fan_out, Flow, PutOutcome, ReplicationError, Target};
use crate::s3::checksum::Checksum;
use crate::s3::composite::ChecksumType;
use crate::s3::error::{S3Error, S3Result};
use crate::s3::handler::Ctx;
use crate::s3::response::now_ms;

/// What the write knows before the first byte.
pub struct WriteRequest<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub attributes: ObjectAttributes,
    pub size: u64,
    /// The content's ETag when known up front (Content-MD5, or a copy's source).
    pub known_etag: Option<String>,
    pub previous: Option<ObjectRecord>,
}

/// What the body turned out to be, known once it has been read to its end.
pub struct Content {
    pub size: u64,
    pub etag: String,
    pub checksum: Option<Checksum>,
}

pub async fn store_object<S, F>(
    ctx: &Ctx,
    req: WriteRequest<'_>,
    body: S,
    content: F,
) -> S3Result<ObjectRecord>
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
    F: Fn() -> Option<Content> + Send + Sync,
{
    let gw = &ctx.gw;
    let owner = ctx.credential.access_key_id.as_str();
    let plan = gw.placement.write_plan(req.bucket, req.key);
    let targets = choose_targets(gw, req.bucket, req.key, &plan.targets).await?;
    let version_id = begin_write(
        gw,
        req.bucket,
        req.key,
        &targets,
        owner,
        req.previous.is_some(),
        None,
    )
    .await?;

    let stamp = Stamp {
        bucket: req.bucket.to_string(),
        key: req.key.to_string(),
        version_id: version_id.clone(),
        // Empty when the content's ETag is only known after the body has been read; then
        // `late` carries it to backends that record their stamp at the end of the write.
        etag: req.known_etag.clone().unwrap_or_default(),
        size: req.size,
        checksum: None,
        late: Some(Arc::default()),
    };
    let late = stamp.late.clone();
    let complete_stamp = || {
        if let (Some(cell), Some(c)) = (&late, content()) {
            let _ = cell.set(LateStamp {
                etag: c.etag,
                checksum: c
                    .checksum
                    .map(|c| format!("{}:{}", c.algorithm.name(), c.value)),
            });
        }
    };
    let (outcomes, read_result) = fan_out(
        body,
        Some(req.size),
        targets,
        &req.attributes,
        &stamp,
        &flow(gw),
        complete_stamp,
    )
    .await;
    if let Err(e) = read_result {
        // Every target was told to abort: nothing changed on any backend.
        let _ = gw.meta.clear_intent(&version_id);
        return Err(e.into());
    }
    let commit = Commit {
        bucket: req.bucket,
        key: req.key,
        attributes: req.attributes,
        previous: req.previous,
        version_id,
        owner,
        write_quorum: plan.write_quorum,
        parts: Vec::new(),
        checksum_type: None,
        upload_id: None,
    };
    commit_write(gw, commit, outcomes, content()).await
}

/// How bodies flow through this gateway (buffer size, budget, stall timeout).
pub fn flow(gw: &Gateway) -> Flow<'_> {
    Flow {
        chunk_bytes: gw.config.limits.chunk_bytes,
        budget: &gw.budget,
        idle_timeout: std::time::Duration::from_secs(gw.config.limits.body_idle_timeout_secs),
    }
}

/// The replicas a new version of (bucket, key) goes to: the plain name where the backend can
/// hold it, the fallback name otherwise.
pub async fn choose_targets(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    backend_ids: &[String],
) -> S3Result<Vec<Target>> {
    let name = naming::physical_name(bucket, key);
    let mut targets = Vec::with_capacity(backend_ids.len());
    for id in backend_ids {
        let backend = gw
            .backends
            .get(id)
            .ok_or_else(|| S3Error::internal(format!("backend {id} is not configured")))?;
        let name = if backend.name_available(&name).await {
            name.clone()
        } else {
            naming::fallback_name(bucket, key)
        };
        targets.push(Target {
            backend: backend.clone(),
            name,
        });
    }
    Ok(targets)
}

/// A multipart completion, as recovery needs to know it.
pub struct UploadIntent {
    pub upload_id: String,
    pub parts: Vec<PartSummary>,
    pub checksum_type: Option<ChecksumType>,
    /// The object's ETag and stamped checksum (`ALGORITHM:base64`): a replica completed
    /// through S3's protocol keeps its creation-time stamp, which has neither.
    pub etag: String,
    pub checksum: Option<String>,
}

/// Records the intent to write a new version to `targets`; returns the new version id. A
/// multipart completion's version is its upload id: backends whose provider fixes metadata
/// when an upload starts stamped that version at creation.
pub async fn begin_write(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    targets: &[Target],
    owner: &str,
    has_previous: bool,
    upload: Option<UploadIntent>,
) -> S3Result<String> {
    let (version_id, upload_id, parts, checksum_type, etag, checksum) = match upload {
        Some(u) => (
            u.upload_id.clone(),
            Some(u.upload_id),
            u.parts,
            u.checksum_type,
            Some(u.etag),
            u.checksum,
        ),
        None => (
            uuid::Uuid::new_v4().simple().to_string(),
            None,
            Vec::new(),
            None,
            None,
            None,
        ),
    };
    let intent = Intent {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.clone(),
        targets: targets
            .iter()
            .map(|t| (t.backend.id().to_string(), t.name.as_str().to_string()))
            .collect(),
        started_ms: now_ms(),
        owner: owner.to_string(),
        upload_id,
        parts,
        checksum_type,
        etag,
        checksum,
    };
    gw.meta.record_intent(&version_id, &intent)?;
    // When a previous version exists, the intent must be durable before any replica can
    // change: the write may overwrite that version's copies in place, and after a crash the
    // intent is what lets recovery roll forward instead of leaving no readable copy. A new key
    // has nothing to lose; its intent only names copies to clean up, and is flushed with the
    // commit (or by sled's background flush). A multipart completion always flushes: recovery
    // also decides the upload's fate from it.
    if has_previous || intent.upload_id.is_some() {
        gw.meta.sync().await?;
    }
    Ok(version_id)
}

/// The index side of a write whose replicas have been written.
pub struct Commit<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub attributes: ObjectAttributes,
    pub previous: Option<ObjectRecord>,
    pub version_id: String,
    pub owner: &'a str,
    pub write_quorum: usize,
    pub parts: Vec<PartSummary>,
    pub checksum_type: Option<ChecksumType>,
    /// The multipart upload this write completes, if any.
    pub upload_id: Option<String>,
}

/// Commits the new version if the quorum holds it (durably, before returning), and removes the
/// copies it supersedes; otherwise undoes what can be undone and reports why.
pub async fn commit_write(
    gw: &Gateway,
    commit: Commit<'_>,
    outcomes: Vec<PutOutcome>,
    content: Option<Content>,
) -> S3Result<ObjectRecord> {
    let confirmed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let Some(content) = content.filter(|_| confirmed >= commit.write_quorum) else {
        return Err(abandon(gw, &commit, outcomes).await);
    };
    let record = ObjectRecord {
        size: content.size,
        etag: content.etag,
        checksum: content.checksum,
        attributes: commit.attributes,
        modified_ms: now_ms(),
        version_id: commit.version_id.clone(),
        owner: commit.owner.to_string(),
        replicas: outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(put) => Replica {
                    backend: o.target.backend.id().to_string(),
                    name: o.target.name.as_str().to_string(),
                    etag: put.etag.clone(),
                    state: ReplicaState::Present,
                },
                Err(e) => {
                    tracing::warn!(backend = o.target.backend.id(), error = %e, "replica write failed; recorded as pending");
                    Replica {
                        backend: o.target.backend.id().to_string(),
                        name: o.target.name.as_str().to_string(),
                        etag: String::new(),
                        state: ReplicaState::Pending,
                    }
                }
            })
            .collect(),
        parts: commit.parts,
        checksum_type: commit.checksum_type,
    };
    gw.meta.put_object(commit.bucket, commit.key, &record)?;
    gw.meta.sync().await?;
    let _ = gw.meta.clear_intent(&commit.version_id);
    if let Some(previous) = &commit.previous {
        delete_superseded(gw, previous, &record.replicas).await;
    }
    Ok(record)
}

/// Too few replicas took the write (or the body's summary is missing): the index keeps the
/// previous version. New copies under names the previous version doesn't use are deleted
/// (a multipart completion's are kept: where the provider consumed the upload, that copy is
/// what lets the client complete again; aborting the upload removes them); a replica that
/// overwrote the previous version's copy in place no longer holds that version and is marked
/// pending, so reads skip it.
async fn abandon(gw: &Gateway, req: &Commit<'_>, outcomes: Vec<PutOutcome>) -> S3Error {
    let error = quorum_not_met(&outcomes, req.write_quorum);
    let mut previous = req.previous.clone();
    for o in outcomes.iter().filter(|o| o.result.is_ok()) {
        let id = o.target.backend.id();
        let overwrote = previous.as_mut().and_then(|p| {
            p.replicas
                .iter_mut()
                .find(|r| r.backend == id && r.name == o.target.name.as_str())
        });
        match overwrote {
            Some(replica) => replica.state = ReplicaState::Pending,
            None if req.upload_id.is_some() => {}
            None => {
                if let Err(e) = o.target.backend.delete(&o.target.name).await {
                    tracing::warn!(backend = id, error = %e, "could not remove the copy of an abandoned write");
                }
            }
        }
    }
    if let Some(p) = previous.filter(|p| Some(p) != req.previous.as_ref()) {
        if gw.meta.put_object(req.bucket, req.key, &p).is_ok() {
            let _ = gw.meta.sync().await;
        }
    }
    let _ = gw.meta.clear_intent(&req.version_id);
    error
}

/// Why fewer than `needed` replicas took a write: SlowDown when a backend throttled us (the
/// client should retry later), otherwise which backends failed and how.
pub fn quorum_not_met(outcomes: &[PutOutcome], needed: usize) -> S3Error {
    if outcomes
        .iter()
        .any(|o| matches!(o.result, Err(BackendError::Throttled { .. })))
    {
        return ReplicationError::Throttled.into();
    }
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", o.target.backend.id()))
        })
        .collect();
    ReplicationError::QuorumNotMet {
        confirmed: outcomes.iter().filter(|o| o.result.is_ok()).count(),
        needed,
        errors: errors.join("; "),
    }
    .into()
}

/// Removes copies of the previous version that the new one did not overwrite in place
/// (a different physical name, or a backend the new version does not use).
async fn delete_superseded(gw: &Gateway, previous: &ObjectRecord, current: &[Replica]) {
    for old in &previous.replicas {
        let reused = current
            .iter()
            .any(|r| r.backend == old.backend && r.name == old.name);
        if reused {
            continue;
        }
        delete_replica(gw, old).await;
    }
}

/// Best-effort removal of one replica; a failure leaves an orphan copy, never a wrong read
/// (reads go through the index).
pub async fn delete_replica(gw: &Gateway, replica: &Replica) {
    let Some(backend) = gw.backends.get(&replica.backend) else {
        return;
    };
    let Ok(name) = PhysicalName::parse(&replica.name) else {
        return;
    };
    match backend.delete(&name).await {
        Ok(()) | Err(BackendError::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(backend = %replica.backend, name = %replica.name, error = %e, "could not delete replica; left as an orphan")
        }
    }
}
