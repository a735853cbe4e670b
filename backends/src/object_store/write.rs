//! The write path's choice of mechanism (see `handle` for the handles):
//!
//! | write                    | staged where                          | publish                  |
//! |--------------------------|---------------------------------------|--------------------------|
//! | up to one part, any kind | memory (`held`)                       | one PUT                  |
//! | larger, S3 protocol      | multipart upload at the key           | CompleteMultipartUpload  |
//! | larger, Azure            | blocks on `.hansa/staging/<token>`    | Copy Blob, delete        |
//! | larger, other stores     | object `.hansa/staging/<token>`       | copy, delete             |
//! | completion, S3 protocol  | the client's upload (no request)      | CompleteMultipartUpload  |
//! | completion, Azure        | blocks committed on the upload's blob | Copy Blob                |
//! | completion, staged parts | object `.hansa/staging/<token>`       | copy, delete             |
//!
//! `prepare` chooses by the announced size (`stamp.size`); a body announced small that turns
//! out larger is staged as a large one by `stage` itself (with a handle of its own).

use super::handle::{Handle, Live};
use super::held::HeldStage;
use super::native::NativeMultipart;
use super::ObjectStoreBackend;
use crate::backend::{ByteStream, CompletedPart, ObjectAttributes, PutResult, Staged, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::{staging_token, PhysicalName};
use std::collections::HashSet;
use std::time::Duration;

fn check_parts(parts: &[CompletedPart]) -> Result<()> {
    if parts.is_empty() {
        return Err(BackendError::other(
            "a multipart upload needs at least one part",
        ));
    }
    if parts
        .windows(2)
        .any(|w| w[0].part_number >= w[1].part_number)
    {
        return Err(BackendError::other("parts must be in ascending order"));
    }
    Ok(())
}

fn not_staged(handle: &str) -> BackendError {
    BackendError::other(format!("{handle:?} is not a staged copy of this backend"))
}

impl ObjectStoreBackend {
    pub(super) async fn write_prepare(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String> {
        let token = staging_token(&stamp.version_id);
        if stamp.size <= self.part_size as u64 {
            return Ok(Handle::Held { token }.to_string());
        }
        match &self.native {
            Some(NativeMultipart::S3(s3)) => {
                let upload = self.s3_prepare(s3, name, attrs, stamp, true).await?;
                Ok(Handle::S3Put {
                    upload,
                    staged: None,
                }
                .to_string())
            }
            Some(NativeMultipart::Azure(_)) => {
                self.azure_create_staging(&token).await?;
                Ok(Handle::Object { token, size: None }.to_string())
            }
            None => Ok(Handle::Object { token, size: None }.to_string()),
        }
    }

    pub(super) async fn write_stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        match (Handle::parse(prepared)?, &self.native) {
            (Handle::Held { token }, _) => {
                match self.stage_held(name, &token, attrs, stamp, body).await? {
                    HeldStage::Held(staged) => Ok(staged),
                    HeldStage::Overflow(body) => {
                        self.stage_overflow(name, &token, attrs, stamp, body).await
                    }
                }
            }
            (Handle::Object { token, size: None }, Some(NativeMultipart::Azure(az))) => {
                self.azure_stage(az, name, &token, attrs, stamp, body).await
            }
            (Handle::Object { token, size: None }, None) => {
                self.stage_object(name, &token, attrs, stamp, body).await
            }
            (
                Handle::S3Put {
                    upload,
                    staged: None,
                },
                Some(NativeMultipart::S3(s3)),
            ) => self.s3_stage(s3, name, &upload, body).await,
            _ => Err(BackendError::other(format!(
                "{prepared:?} is not a prepared write of this backend"
            ))),
        }
    }

    /// A body announced as small that is larger: staged as a large one, in a place this call
    /// makes (the prepared handle names none). Cleaned up here if staging fails; if this
    /// future is dropped, `collect_staged` finds the leftovers (no handle names them).
    async fn stage_overflow(
        &self,
        name: &PhysicalName,
        token: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        tracing::debug!(backend = %self.id, %name, announced = stamp.size, "body larger than announced; staged as a large one");
        match &self.native {
            Some(NativeMultipart::S3(s3)) => {
                // The announced size is wrong here: the upload's metadata leaves it out.
                let upload = self.s3_prepare(s3, name, attrs, stamp, false).await?;
                let staged = self.s3_stage(s3, name, &upload, body).await;
                if staged.is_err() {
                    let path = self.path_of(name)?;
                    let _ = self
                        .s3_abort(s3, path.as_ref(), &upload, name.as_str())
                        .await;
                }
                staged
            }
            Some(NativeMultipart::Azure(az)) => {
                self.azure_create_staging(token).await?;
                let staged = self.azure_stage(az, name, token, attrs, stamp, body).await;
                if staged.is_err() {
                    let _ = self.delete_staging(token).await;
                }
                staged
            }
            None => self.stage_object(name, token, attrs, stamp, body).await,
        }
    }

    pub(super) async fn write_stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged> {
        check_parts(parts)?;
        match &self.native {
            Some(NativeMultipart::S3(_)) => self.s3_stage_upload(name, upload, parts),
            Some(NativeMultipart::Azure(az)) => {
                self.azure_stage_upload(az, name, upload, parts, attrs, stamp)
                    .await
            }
            None => {
                self.staged_stage_upload(name, upload, parts, attrs, stamp)
                    .await
            }
        }
    }

    pub(super) async fn write_publish(
        &self,
        name: &PhysicalName,
        staged: &str,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        match (Handle::parse(staged)?, &self.native) {
            (Handle::Held { token }, _) => self.publish_held(name, &token, stamp).await,
            (
                Handle::Object {
                    token,
                    size: Some(_),
                },
                Some(NativeMultipart::Azure(az)),
            ) => self.azure_publish_object(az, name, &token, stamp).await,
            // Staging objects on S3 (a held body made durable, or no native multipart) are
            // published by a server-side copy.
            (
                Handle::Object {
                    token,
                    size: Some(size),
                },
                None | Some(NativeMultipart::S3(_)),
            ) => self.publish_object(name, &token, size, stamp).await,
            (
                Handle::S3Put {
                    upload,
                    staged: Some(parts),
                }
                | Handle::S3Completion { upload, parts, .. },
                Some(NativeMultipart::S3(s3)),
            ) => self.s3_complete(s3, name, &upload, &parts, stamp).await,
            (Handle::AzureCompletion { upload_id }, Some(NativeMultipart::Azure(az))) => {
                self.azure_publish_upload(az, name, &upload_id, stamp).await
            }
            _ => Err(not_staged(staged)),
        }
    }

    pub(super) async fn write_discard(&self, name: &PhysicalName, handle: &str) -> Result<()> {
        match (Handle::parse(handle)?, &self.native) {
            (Handle::Held { token }, _) => {
                self.discard_held(&token);
                Ok(())
            }
            (Handle::Object { token, .. }, _) => self.delete_staging(&token).await,
            (Handle::S3Put { upload, .. }, Some(NativeMultipart::S3(s3))) => {
                let path = self.path_of(name)?;
                self.s3_abort(s3, path.as_ref(), &upload, name.as_str())
                    .await
            }
            // A completion's staged copy is the client's upload (or its blob): it stays
            // until `abort_upload`, so the completion can be sent again.
            (Handle::S3Completion { .. } | Handle::AzureCompletion { .. }, _) => Ok(()),
            _ => Err(not_staged(handle)),
        }
    }

    pub(super) async fn write_collect(
        &self,
        older_than: Duration,
        live: &HashSet<String>,
    ) -> Result<usize> {
        let live = Live::new(live);
        let mut removed = self.held.collect(older_than, &live);
        removed += self.collect_staging_objects(older_than, &live).await?;
        if let Some(NativeMultipart::S3(s3)) = &self.native {
            removed += self.s3_collect(s3, older_than, &live).await?;
        }
        Ok(removed)
    }

    /// The object at `name` as a publication's result if it is `stamp`'s version, else
    /// `NotFound`: how a publication whose staged copy is gone (published before, discarded,
    /// or lost with a restart) answers, and the read-back after one that copied.
    pub(super) async fn published_as(
        &self,
        name: &PhysicalName,
        stamp: &Stamp,
    ) -> Result<PutResult> {
        let path = self.path_of(name)?;
        let info = self.head_path(&path, name.as_str()).await?;
        if info.stamp.as_ref().map(|s| s.version_id.as_str()) != Some(stamp.version_id.as_str()) {
            return Err(BackendError::NotFound {
                name: name.to_string(),
            });
        }
        if info.etag.is_empty() {
            return Err(BackendError::other(format!(
                "{name}: the store returned no etag"
            )));
        }
        Ok(PutResult {
            etag: info.etag,
            size: info.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, LateStamp};
    use crate::naming::physical_name;
    use crate::object_store::MIN_PART_SIZE;
    use crate::testsuite::{body, collect, pattern, stamp};
    use futures::stream::{self, StreamExt, TryStreamExt};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::ObjectStore;
    use std::sync::{Arc, OnceLock};

    /// A backend (think: a gateway process) over `store`, with 5 MiB parts.
    fn process(store: &Arc<InMemory>) -> ObjectStoreBackend {
        ObjectStoreBackend::new("m", store.clone(), Path::from("p")).with_part_size(MIN_PART_SIZE)
    }

    async fn stored(store: &InMemory) -> Vec<String> {
        store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list")
    }

    async fn read(b: &ObjectStoreBackend, name: &PhysicalName) -> Vec<u8> {
        let got = b.get(name, None, None).await.expect("get");
        collect(got.body).await.expect("read")
    }

    async fn stage(
        b: &ObjectStoreBackend,
        name: &PhysicalName,
        st: &Stamp,
        attrs: &ObjectAttributes,
        body: ByteStream,
    ) -> (String, Staged) {
        let prepared = b.prepare(name, attrs, st).await.expect("prepare");
        let staged = b
            .stage(name, &prepared, attrs, st, body)
            .await
            .expect("stage");
        (prepared, staged)
    }

    #[tokio::test]
    async fn a_small_write_reaches_the_store_only_when_published() {
        let store = Arc::new(InMemory::new());
        let b = process(&store);
        let name = physical_name("bkt", "k");
        let st = stamp("bkt", "k", "v1", 5);
        let attrs = ObjectAttributes::default();
        let (prepared, staged) = stage(&b, &name, &st, &attrs, body(b"hello", 2)).await;
        assert!(prepared.starts_with('m'), "{prepared}");
        assert!(
            stored(&store).await.is_empty(),
            "written before publication"
        );
        let put = b
            .publish(&name, &staged.handle, &st)
            .await
            .expect("publish");
        assert_eq!(stored(&store).await, ["p/bkt/k"]);
        assert_eq!(put.size, 5);
        assert_eq!(read(&b, &name).await, b"hello");
    }

    /// What a process held is gone with it: another process publishing the handle gets the
    /// earlier publication's result, or `NotFound` (and the name keeps its object).
    #[tokio::test]
    async fn held_bodies_do_not_survive_a_restart() {
        let store = Arc::new(InMemory::new());
        let (first, after_restart) = (process(&store), process(&store));
        let name = physical_name("bkt", "k");
        let attrs = ObjectAttributes::default();
        let v1 = stamp("bkt", "k", "v1", 3);
        let (_, staged) = stage(&first, &name, &v1, &attrs, body(b"one", 1)).await;
        let published = first
            .publish(&name, &staged.handle, &v1)
            .await
            .expect("publish");
        let again = after_restart
            .publish(&name, &staged.handle, &v1)
            .await
            .expect("publish again after a restart");
        assert_eq!(again, published);
        let v2 = stamp("bkt", "k", "v2", 3);
        let (_, lost) = stage(&first, &name, &v2, &attrs, body(b"two", 1)).await;
        let result = after_restart.publish(&name, &lost.handle, &v2).await;
        assert!(
            matches!(result, Err(BackendError::NotFound { .. })),
            "{result:?}"
        );
        assert_eq!(read(&after_restart, &name).await, b"one");
    }

    /// The stamp's late facts (filled by the writer as the body ends) are in the object.
    #[tokio::test]
    async fn the_stamp_is_recorded_once_the_body_has_ended() {
        let store = Arc::new(InMemory::new());
        let b = process(&store);
        let name = physical_name("bkt", "late");
        let late = Arc::new(OnceLock::new());
        let mut st = stamp("bkt", "late", "v1", 4);
        st.etag.clear();
        st.late = Some(late.clone());
        let fill = stream::once(async move {
            let _ = late.set(LateStamp {
                etag: "md5-of-body".into(),
                checksum: Some("CRC32:AAAAAA==".into()),
                size: None,
            });
            Ok(bytes::Bytes::new())
        });
        let (_, staged) = stage(
            &b,
            &name,
            &st,
            &ObjectAttributes::default(),
            body(b"body", 3).chain(fill).boxed(),
        )
        .await;
        b.publish(&name, &staged.handle, &st)
            .await
            .expect("publish");
        let seen = b.head(&name).await.expect("head").stamp.expect("stamp");
        assert_eq!(seen.etag, "md5-of-body");
        assert_eq!(seen.checksum.as_deref(), Some("CRC32:AAAAAA=="));
    }

    #[tokio::test]
    async fn a_body_larger_than_announced_is_staged_as_a_large_one() {
        let store = Arc::new(InMemory::new());
        let b = process(&store);
        let name = physical_name("bkt", "grew");
        let st = stamp("bkt", "grew", "v1", 10);
        let data = pattern(MIN_PART_SIZE + 100, 1);
        let (prepared, staged) = stage(
            &b,
            &name,
            &st,
            &ObjectAttributes::default(),
            body(&data, 64 << 10),
        )
        .await;
        assert!(prepared.starts_with('m'), "{prepared}");
        assert!(staged.handle.starts_with('o'), "{}", staged.handle);
        assert_eq!(staged.size, data.len() as u64);
        assert!(b.head(&name).await.is_err(), "visible before publication");
        b.publish(&name, &staged.handle, &st)
            .await
            .expect("publish");
        assert!(read(&b, &name).await == data);
        assert_eq!(stored(&store).await, ["p/bkt/grew"], "staging object left");
    }

    #[tokio::test]
    async fn staged_objects_above_the_copy_limit_are_streamed_into_the_name() {
        let store = Arc::new(InMemory::new());
        let mut b = process(&store);
        b.max_copy_bytes = 1 << 20;
        let name = physical_name("bkt", "huge");
        let mut attrs = ObjectAttributes {
            content_type: Some("application/x-huge".into()),
            ..Default::default()
        };
        attrs.user_metadata.insert("colour".into(), "blau".into());
        let data = pattern(2 * MIN_PART_SIZE + 3, 2);
        let st = stamp("bkt", "huge", "v1", data.len() as u64);
        let (prepared, staged) = stage(&b, &name, &st, &attrs, body(&data, 64 << 10)).await;
        assert!(prepared.starts_with('o'), "{prepared}");
        let put = b
            .publish(&name, &staged.handle, &st)
            .await
            .expect("publish");
        assert_eq!(put.size, data.len() as u64);
        let info = b.head(&name).await.expect("head");
        assert_eq!(info.etag, put.etag);
        assert_eq!(info.attributes, attrs);
        assert_eq!(info.stamp.expect("stamp").version_id, "v1");
        assert!(read(&b, &name).await == data);
        assert_eq!(stored(&store).await, ["p/bkt/huge"], "staging object left");
        let again = b.publish(&name, &staged.handle, &st).await.expect("again");
        assert_eq!(again, put);
    }
}
