//! Multipart uploads staged as ordinary objects under `.hansa/mpu/<upload>/`, composed at
//! completion by streaming them into a staging object (`.hansa/staging/<token>`, see
//! `staging`) that publication copies to the name.
//!
//! This works on every store (the in-memory one included) and accepts any subset of parts in
//! any numbering, at the price of reading and writing the bytes a second time when the upload
//! completes.

use super::{map_error, ObjectStoreBackend};
use crate::backend::{ByteStream, CompletedPart, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::{is_safe_token, staged_part_name, staging_token, PhysicalName, UPLOADS_PREFIX};
use futures::stream::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attributes, GetOptions};
use std::sync::{Arc, Mutex};

/// Concurrent deletes while removing an upload's staged parts.
const DELETE_CONCURRENCY: usize = 8;

impl ObjectStoreBackend {
    fn staged_upload_dir(&self, upload: &str) -> Result<Path> {
        if !is_safe_token(upload) {
            return Err(BackendError::other(format!("invalid upload id {upload:?}")));
        }
        self.join(&format!("{UPLOADS_PREFIX}{upload}"))
    }

    pub(super) async fn staged_create(
        &self,
        _name: &PhysicalName,
        upload_id: &str,
        _attrs: &ObjectAttributes,
        _stamp: &Stamp,
    ) -> Result<String> {
        self.staged_upload_dir(upload_id)?;
        Ok(upload_id.to_string())
    }

    pub(super) async fn staged_put_part(
        &self,
        _name: &PhysicalName,
        upload: &str,
        part_number: u32,
        _size: u64,
        body: ByteStream,
    ) -> Result<PutResult> {
        self.staged_upload_dir(upload)?;
        let receipt = uuid::Uuid::new_v4().simple().to_string();
        let rel = staged_part_name(upload, part_number, &receipt);
        let path = self.join(&rel)?;
        let size = self.put_at(&path, &rel, Attributes::new, body).await?;
        Ok(PutResult {
            etag: receipt,
            size,
        })
    }

    /// Streams the chosen parts, in order, into a staging object with the object's
    /// attributes. A part that is gone or of another size → `PreconditionFailed`.
    pub(super) async fn staged_stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged> {
        self.staged_upload_dir(upload)?;
        let mut sources = Vec::with_capacity(parts.len());
        for part in parts {
            if !is_safe_token(&part.receipt) {
                return Err(BackendError::other(format!(
                    "invalid part receipt {:?}",
                    part.receipt
                )));
            }
            let rel = staged_part_name(upload, part.part_number, &part.receipt);
            sources.push((
                self.join(&rel)?,
                part.size,
                format!("{name} (part {})", part.part_number),
            ));
        }
        let failure: Arc<Mutex<Option<BackendError>>> = Arc::default();
        let store = self.store.clone();
        let body = futures::stream::iter(sources)
            .then(move |(path, size, shown)| {
                let store = store.clone();
                async move {
                    let result =
                        store
                            .get_opts(&path, GetOptions::default())
                            .await
                            .map_err(|e| match map_error(e, &shown) {
                                BackendError::NotFound { name } => {
                                    BackendError::PreconditionFailed { name }
                                }
                                other => other,
                            })?;
                    if result.meta.size != size {
                        return Err(BackendError::PreconditionFailed { name: shown });
                    }
                    Ok(result.into_stream().map_err(move |e| map_error(e, &shown)))
                }
            })
            .try_flatten();
        // `put_at` only sees that the body failed; the reason is kept here.
        let typed_failure = failure.clone();
        let body = body
            .map_err(move |e| {
                if let Ok(mut slot) = typed_failure.lock() {
                    *slot = Some(e);
                }
                BackendError::Aborted
            })
            .boxed();
        let token = staging_token(&stamp.version_id);
        let stored = self.stage_object(name, &token, attrs, stamp, body).await;
        match stored {
            // The staged parts stay until the caller aborts the upload (after its commit).
            Ok(stored) => Ok(stored),
            Err(BackendError::Aborted) => {
                let reason = failure.lock().ok().and_then(|mut slot| slot.take());
                Err(reason.unwrap_or(BackendError::Aborted))
            }
            Err(e) => Err(e),
        }
    }

    pub(super) async fn staged_abort(&self, _name: &PhysicalName, upload: &str) -> Result<()> {
        let dir = self.staged_upload_dir(upload)?;
        let store = self.store.clone();
        self.store
            .list(Some(&dir))
            .map_err(|e| map_error(e, "list staged parts"))
            .map_ok(|meta| {
                let store = store.clone();
                async move {
                    match store.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(map_error(e, meta.location.as_ref())),
                    }
                }
            })
            .try_buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}
