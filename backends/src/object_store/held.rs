//! Small bodies (at most one part) staged in this process's memory: `stage` keeps the bytes
//! and the encoded attributes, `publish` is the one PUT a plain write always was. Nothing
//! reaches the store before publication, so a cut write leaves nothing there, and the common
//! case costs exactly the requests of a plain PUT.
//!
//! What is held is lost with the process: `publish` of such a handle after a restart answers
//! from the object at the name (published before, or `NotFound`), as for any staged copy that
//! is gone.

use super::handle::Live;
use super::ObjectStoreBackend;
use crate::backend::{ByteStream, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::PhysicalName;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use object_store::{Attributes, PutOptions, PutPayload};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One held body.
struct Held {
    chunks: Vec<Bytes>,
    size: u64,
    /// Encoded for the store (stamp and metadata names), once the body had ended.
    attributes: Attributes,
    since: Instant,
}

/// The bodies held by one backend (and its clones), by staging token.
#[derive(Clone, Default)]
pub(super) struct HeldBodies(Arc<Mutex<HashMap<String, Held>>>);

impl std::fmt::Debug for HeldBodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map(|m| m.len()).unwrap_or_default();
        write!(f, "HeldBodies({held})")
    }
}

impl HeldBodies {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A panic while the lock was held cannot leave an entry half-written (every change
        // is one insert or remove), so a poisoned map is still sound.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, token: &str, held: Held) {
        self.map().insert(token.to_string(), held);
    }

    /// The body (shared, not copied), its size and attributes.
    fn get(&self, token: &str) -> Option<(Vec<Bytes>, u64, Attributes)> {
        self.map()
            .get(token)
            .map(|h| (h.chunks.clone(), h.size, h.attributes.clone()))
    }

    fn remove(&self, token: &str) {
        self.map().remove(token);
    }

    /// Drops bodies held at least `older_than` that no live handle names.
    pub(super) fn collect(&self, older_than: Duration, live: &Live) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|token, held| live.has_token(token) || held.since.elapsed() < older_than);
        before - map.len()
    }
}

/// How a small body's stage ended.
pub(super) enum HeldStage {
    Held(Staged),
    /// The body is longer than one part (its announced size was wrong): what was read, and
    /// the rest, for a large stage.
    Overflow(ByteStream),
}

impl ObjectStoreBackend {
    /// Reads `body` (at most one part) into memory under `token`.
    pub(super) async fn stage_held(
        &self,
        name: &PhysicalName,
        token: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        mut body: ByteStream,
    ) -> Result<HeldStage> {
        let mut chunks = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| BackendError::Aborted)?;
            size += chunk.len();
            chunks.push(chunk);
            if size > self.part_size {
                let read = stream::iter(chunks.into_iter().map(Ok));
                return Ok(HeldStage::Overflow(read.chain(body).boxed()));
            }
        }
        let chunks = if self.detach_buffers {
            // One copy of the whole: the caller's buffers are released now.
            vec![Bytes::from(chunks.concat())]
        } else {
            chunks
        };
        // Encoded now that the body has ended: the stamp's late facts are complete.
        let attributes =
            self.meta_names
                .encode(super::encode_attributes(name, attrs, &stamp.resolved()));
        self.held.insert(
            token,
            Held {
                chunks,
                size: size as u64,
                attributes,
                since: Instant::now(),
            },
        );
        Ok(HeldStage::Held(Staged {
            handle: super::handle::Handle::Held {
                token: token.to_string(),
            }
            .to_string(),
            size: size as u64,
            durable: false,
        }))
    }

    /// One PUT of the held body; the entry goes once the PUT succeeded, so a failed publish
    /// can be tried again.
    pub(super) async fn publish_held(
        &self,
        name: &PhysicalName,
        token: &str,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        let Some((chunks, size, attributes)) = self.held.get(token) else {
            return self.published_as(name, stamp).await;
        };
        let path = self.path_of(name)?;
        let payload: PutPayload = chunks.into_iter().collect();
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        let put = self
            .store
            .put_opts(&path, payload, options)
            .await
            .map_err(|e| self.map_err(e, name.as_str()))?;
        let etag = match put.e_tag {
            Some(etag) => etag,
            // Some stores return no ETag on PUT; a HEAD reads the one they hold.
            None => self.published_as(name, stamp).await?.etag,
        };
        self.held.remove(token);
        Ok(PutResult { etag, size })
    }

    /// Writes a held body to its staging object (`.hansa/staging/<token>`, invisible), so it
    /// survives a crash; the handle to publish becomes that object's.
    pub(super) async fn persist_held(&self, name: &PhysicalName, token: &str) -> Result<Staged> {
        let Some((chunks, size, attributes)) = self.held.get(token) else {
            return Err(BackendError::NotFound {
                name: name.to_string(),
            });
        };
        let (path, rel) = self.staging_path(token)?;
        let payload: PutPayload = chunks.into_iter().collect();
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(&path, payload, options)
            .await
            .map_err(|e| self.map_err(e, &rel))?;
        self.held.remove(token);
        Ok(Staged {
            handle: super::handle::Handle::Object {
                token: token.to_string(),
                size: Some(size),
            }
            .to_string(),
            size,
            durable: true,
        })
    }

    pub(super) fn discard_held(&self, token: &str) {
        self.held.remove(token);
    }
}
