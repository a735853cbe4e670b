//! Start-up recovery: writes that were in flight when the gateway stopped.
//!
//! An intent that is still recorded names replicas that may hold bytes the index never
//! committed. Copies under names the index does not reference are deleted; a copy the index
//! does reference but that now holds another version is marked pending, so reads skip it
//! (each replica is read with If-Match on its recorded ETag anyway).

use hansa_backends::{BackendError, PhysicalName};

use crate::gateway::Gateway;
use crate::meta::ReplicaState;

pub async fn resolve_intents(gw: &Gateway) {
    let intents = match gw.meta.intents() {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot read write intents");
            return;
        }
    };
    for (id, intent) in intents {
        let mut record = gw.meta.object(&intent.bucket, &intent.key).ok().flatten();
        let committed = record
            .as_ref()
            .is_some_and(|r| r.version_id == intent.version_id);
        if !committed {
            for (backend_id, name) in &intent.targets {
                let Some(backend) = gw.backends.get(backend_id) else {
                    continue;
                };
                let Ok(physical) = PhysicalName::parse(name) else {
                    continue;
                };
                let indexed = record.as_mut().and_then(|r| {
                    r.replicas
                        .iter_mut()
                        .find(|rep| rep.backend == *backend_id && rep.name == *name)
                });
                match indexed {
                    Some(replica) => {
                        // Same name as the committed version: stale only if the write landed.
                        if let Ok(info) = backend.head(&physical).await {
                            if info.etag != replica.etag {
                                replica.state = ReplicaState::Pending;
                            }
                        }
                    }
                    None => match backend.delete(&physical).await {
                        Ok(()) | Err(BackendError::NotFound { .. }) => {}
                        Err(e) => tracing::warn!(backend = %backend_id, %name, error = %e,
                            "could not remove the copy of an unfinished write"),
                    },
                }
            }
            if let Some(r) = &record {
                if let Err(e) = gw.meta.put_object(&intent.bucket, &intent.key, r) {
                    tracing::error!(error = %e, "cannot update index during recovery");
                    continue;
                }
            }
            tracing::info!(bucket = %intent.bucket, key = %intent.key, version = %intent.version_id,
                "resolved an unfinished write from before the last stop");
        }
        let _ = gw.meta.clear_intent(&id);
    }
    if let Err(e) = gw.meta.sync().await {
        tracing::error!(error = %e, "cannot flush the index after recovery");
    }
}
