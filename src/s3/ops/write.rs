//! The write path shared by PutObject and CopyObject: intent, fan-out to the policy's
//! targets, quorum, index commit, and clean-up of superseded replicas.
//!
//! The caller holds the key's lock, so the index and the replicas agree on the current version.

use bytes::Bytes;
use futures::Stream;
use std::sync::Arc;

use hansa_backends::{naming, BackendError, LateStamp, ObjectAttributes, PhysicalName, Stamp};

use crate::meta::{Intent, ObjectRecord, Replica, ReplicaState};
use crate::replication::{fan_out, Flow, PutOutcome, ReplicationError, Target};
use crate::s3::checksum::Checksum;
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
    let version_id = uuid::Uuid::new_v4().simple().to_string();
    let plan = gw.placement.write_plan(req.bucket, req.key);
    let name = naming::physical_name(req.bucket, req.key);
    let mut targets = Vec::with_capacity(plan.targets.len());
    for id in &plan.targets {
        let backend = gw
            .backends
            .get(id)
            .ok_or_else(|| S3Error::internal(format!("backend {id} is not configured")))?;
        let name = if backend.name_available(&name).await {
            name.clone()
        } else {
            naming::fallback_name(req.bucket, req.key)
        };
        targets.push(Target {
            backend: backend.clone(),
            name,
        });
    }
    let intent = Intent {
        bucket: req.bucket.to_string(),
        key: req.key.to_string(),
        version_id: version_id.clone(),
        targets: targets
            .iter()
            .map(|t| (t.backend.id().to_string(), t.name.as_str().to_string()))
            .collect(),
        started_ms: now_ms(),
        owner: ctx.credential.access_key_id.clone(),
    };
    gw.meta.record_intent(&version_id, &intent)?;
    // When a previous version exists, the intent must be durable before any replica can
    // change: the write may overwrite that version's copies in place, and after a crash the
    // intent is what lets recovery roll forward instead of leaving no readable copy. A new key
    // has nothing to lose; its intent only names copies to clean up, and is flushed with the
    // commit (or by sled's background flush).
    if req.previous.is_some() {
        gw.meta.sync().await?;
    }

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
        &Flow {
            chunk_bytes: gw.config.limits.chunk_bytes,
            budget: &gw.budget,
            idle_timeout: std::time::Duration::from_secs(gw.config.limits.body_idle_timeout_secs),
        },
        complete_stamp,
    )
    .await;
    if let Err(e) = read_result {
        // Every target was told to abort: nothing changed on any backend.
        let _ = gw.meta.clear_intent(&version_id);
        return Err(e.into());
    }
    let confirmed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let Some(content) = content().filter(|_| confirmed >= plan.write_quorum) else {
        return Err(abandon(ctx, &req, &version_id, outcomes, plan.write_quorum).await);
    };

    let record = ObjectRecord {
        size: content.size,
        etag: content.etag,
        checksum: content.checksum,
        attributes: req.attributes,
        modified_ms: now_ms(),
        version_id: version_id.clone(),
        owner: ctx.credential.access_key_id.clone(),
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
    };
    gw.meta.put_object(req.bucket, req.key, &record)?;
    gw.meta.sync().await?;
    let _ = gw.meta.clear_intent(&version_id);
    if let Some(previous) = &req.previous {
        delete_superseded(ctx, previous, &record.replicas).await;
    }
    Ok(record)
}

/// Too few replicas took the write (or the body's summary is missing): the index keeps the
/// previous version. New copies under names the previous version doesn't use are deleted; a
/// replica that overwrote the previous version's copy in place no longer holds that version
/// and is marked pending, so reads skip it.
async fn abandon(
    ctx: &Ctx,
    req: &WriteRequest<'_>,
    version_id: &str,
    outcomes: Vec<PutOutcome>,
    needed: usize,
) -> S3Error {
    let gw = &ctx.gw;
    let confirmed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", o.target.backend.id()))
        })
        .collect();
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
    let _ = gw.meta.clear_intent(version_id);
    if errors.iter().any(|e| e.contains("throttled")) {
        return ReplicationError::Throttled.into();
    }
    ReplicationError::QuorumNotMet {
        confirmed,
        needed,
        errors: errors.join("; "),
    }
    .into()
}

/// Removes copies of the previous version that the new one did not overwrite in place
/// (a different physical name, or a backend the new version does not use).
async fn delete_superseded(ctx: &Ctx, previous: &ObjectRecord, current: &[Replica]) {
    for old in &previous.replicas {
        let reused = current
            .iter()
            .any(|r| r.backend == old.backend && r.name == old.name);
        if reused {
            continue;
        }
        delete_replica(ctx, old).await;
    }
}

/// Best-effort removal of one replica; a failure leaves an orphan copy, never a wrong read
/// (reads go through the index).
pub async fn delete_replica(ctx: &Ctx, replica: &Replica) {
    let Some(backend) = ctx.gw.backends.get(&replica.backend) else {
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
