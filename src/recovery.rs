//! Start-up recovery: writes that were in flight when the gateway stopped.
//!
//! An intent that is still recorded names replicas that may hold bytes the index never
//! committed. A backend only makes a write visible after the whole body arrived and passed
//! every check, so a replica whose stamp carries the intent's version holds that version
//! complete. When one does, the write is rolled forward: the index adopts it (the client never
//! got an answer, so either outcome is what S3 promises). This matters when a write overwrote
//! the previous version in place on every backend before the crash: rolling back would leave
//! no copy of anything. When none does, the write is rolled back: copies under names the
//! index doesn't use are deleted, and an indexed copy that no longer holds the indexed bytes is
//! marked pending so reads skip it.

use futures::StreamExt;
use hansa_backends::{Backend, BackendError, ObjectInfo, PhysicalName};
use md5::{Digest, Md5};
use std::sync::Arc;

use crate::gateway::Gateway;
use crate::meta::{Intent, ObjectRecord, Replica, ReplicaState};
use crate::s3::checksum::{Checksum, ChecksumAlgorithm};

pub async fn resolve_intents(gw: &Gateway) {
    let intents = match gw.meta.intents() {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot read write intents");
            return;
        }
    };
    for (id, intent) in intents {
        if let Err(e) = resolve(gw, &intent).await {
            // Keep the intent: the next start tries again.
            tracing::error!(bucket = %intent.bucket, key = %intent.key, error = %e,
                "could not resolve an unfinished write");
            continue;
        }
        let _ = gw.meta.clear_intent(&id);
    }
    if let Err(e) = gw.meta.sync().await {
        tracing::error!(error = %e, "cannot flush the index after recovery");
    }
}

/// One target of an unfinished write, as found now.
struct Found {
    backend: Arc<dyn Backend>,
    name: PhysicalName,
    info: Option<ObjectInfo>,
}

async fn resolve(gw: &Gateway, intent: &Intent) -> Result<(), String> {
    let indexed = gw
        .meta
        .object(&intent.bucket, &intent.key)
        .map_err(|e| e.to_string())?;
    if indexed
        .as_ref()
        .is_some_and(|r| r.version_id == intent.version_id)
    {
        // Committed before the stop; a completed upload may still be listed.
        forget_upload(gw, intent).await;
        return Ok(());
    }
    let mut found = Vec::new();
    for (backend_id, name) in &intent.targets {
        let (Some(backend), Ok(name)) = (gw.backends.get(backend_id), PhysicalName::parse(name))
        else {
            continue;
        };
        let info = match backend.head(&name).await {
            Ok(info) => Some(info),
            Err(BackendError::NotFound { .. }) => None,
            Err(e) => return Err(format!("{backend_id}: {e}")),
        };
        found.push(Found {
            backend: backend.clone(),
            name,
            info,
        });
    }
    let landed = |f: &Found| {
        f.info
            .as_ref()
            .and_then(|i| i.stamp.as_ref())
            .is_some_and(|s| s.version_id == intent.version_id)
    };
    if found.iter().any(landed) {
        let record = roll_forward(intent, &found).await?;
        gw.meta
            .put_object(&intent.bucket, &intent.key, &record)
            .map_err(|e| e.to_string())?;
        // After the record: the upload's removal spares copies the index holds.
        forget_upload(gw, intent).await;
        return Ok(());
    }
    // A completion that landed nowhere leaves its upload as it was: the client, which got no
    // answer, can complete it again.
    if let Some(record) = roll_back(intent, &found, indexed).await {
        gw.meta
            .put_object(&intent.bucket, &intent.key, &record)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn roll_forward(intent: &Intent, found: &[Found]) -> Result<ObjectRecord, String> {
    let (source, info) = found
        .iter()
        .find_map(|f| {
            let info = f.info.as_ref()?;
            let stamp = info.stamp.as_ref()?;
            (stamp.version_id == intent.version_id).then_some((f, info))
        })
        .ok_or("no landed replica")?;
    let stamped_etag = info
        .stamp
        .as_ref()
        .map(|s| s.etag.clone())
        .unwrap_or_default();
    // A replica completed through S3's protocol keeps its creation-time stamp, without ETag
    // or checksum: the completion's intent has them.
    let etag = match (stamped_etag.is_empty(), &intent.etag) {
        (false, _) => stamped_etag,
        (true, Some(etag)) => etag.clone(),
        (true, None) => content_md5(source).await?,
    };
    let replicas = found
        .iter()
        .map(|f| match &f.info {
            Some(i)
                if i.stamp
                    .as_ref()
                    .is_some_and(|s| s.version_id == intent.version_id) =>
            {
                Replica {
                    backend: f.backend.id().to_string(),
                    name: f.name.as_str().to_string(),
                    etag: i.etag.clone(),
                    state: ReplicaState::Present,
                }
            }
            _ => Replica {
                backend: f.backend.id().to_string(),
                name: f.name.as_str().to_string(),
                etag: String::new(),
                state: ReplicaState::Pending,
            },
        })
        .collect();
    tracing::info!(bucket = %intent.bucket, key = %intent.key, version = %intent.version_id,
        "an unfinished write had landed completely; the index adopts it");
    Ok(ObjectRecord {
        size: info.size,
        etag,
        checksum: info
            .stamp
            .as_ref()
            .and_then(|s| s.checksum.as_deref())
            .or(intent.checksum.as_deref())
            .and_then(parse_stamped_checksum),
        attributes: info.attributes.clone(),
        modified_ms: info
            .last_modified
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(intent.started_ms),
        version_id: intent.version_id.clone(),
        owner: intent.owner.clone(),
        replicas,
        parts: intent.parts.clone(),
        checksum_type: intent.checksum_type,
    })
}

/// The upload a rolled-forward completion finished: gone from the index, its leftovers from
/// the backends.
async fn forget_upload(gw: &Gateway, intent: &Intent) {
    let Some(upload_id) = &intent.upload_id else {
        return;
    };
    match gw.meta.upload(&intent.bucket, &intent.key, upload_id) {
        Ok(Some(upload)) => {
            if let Err(e) = crate::s3::ops::multipart::abort_upload(gw, &upload).await {
                tracing::warn!(upload = %upload_id, error = %e.message, "could not remove a completed upload");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(upload = %upload_id, error = %e, "could not read a completed upload")
        }
    }
}

/// Returns the record to store, or None when nothing in the index needs to change.
async fn roll_back(
    intent: &Intent,
    found: &[Found],
    mut indexed: Option<ObjectRecord>,
) -> Option<ObjectRecord> {
    let mut changed = false;
    for f in found {
        let id = f.backend.id();
        let in_index = indexed.as_mut().and_then(|r| {
            r.replicas
                .iter_mut()
                .find(|rep| rep.backend == id && rep.name == f.name.as_str())
        });
        match in_index {
            Some(replica) => {
                if f.info.as_ref().map(|i| i.etag.as_str()) != Some(replica.etag.as_str())
                    && replica.state == ReplicaState::Present
                {
                    replica.state = ReplicaState::Pending;
                    changed = true;
                }
            }
            None => match f.backend.delete(&f.name).await {
                Ok(()) | Err(BackendError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(backend = %id, name = %f.name, error = %e,
                    "could not remove the copy of an unfinished write"),
            },
        }
    }
    tracing::info!(bucket = %intent.bucket, key = %intent.key, version = %intent.version_id,
        "rolled back an unfinished write");
    indexed.filter(|_| changed)
}

async fn content_md5(f: &Found) -> Result<String, String> {
    let got = f
        .backend
        .get(&f.name, None, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut md5 = Md5::new();
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        md5.update(&chunk.map_err(|e| e.to_string())?);
    }
    Ok(hex::encode(md5.finalize()))
}

/// A stamp's `ALGORITHM:base64` checksum.
fn parse_stamped_checksum(s: &str) -> Option<Checksum> {
    let (algorithm, value) = s.split_once(':')?;
    Checksum::parse(ChecksumAlgorithm::from_name(algorithm)?, value).ok()
}
