//! The narrow interface between the gateway and one storage provider.

use crate::error::{BackendError, Result as BResult};
use crate::naming::PhysicalName;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// A body: chunks in order, or an error that aborts the transfer.
pub type ByteStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, BackendError>>;

/// The S3 object attributes a replica keeps next to its bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Names lowercase, without the `x-amz-meta-` prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
}

impl ObjectAttributes {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Identifies one write of one S3 object; stored with every replica so replicas can be compared
/// and the index rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub bucket: String,
    /// The exact S3 key.
    pub key: String,
    pub version_id: String,
    /// S3 ETag, without quotes; empty when unknown.
    pub etag: String,
    pub size: u64,
    /// The object's checksum as `ALGORITHM:base64` (e.g. `CRC32:NhCmhg==`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Content facts known only once the body has been read (the ETag of a body sent without
    /// Content-MD5, its checksum): the writer fills this before the body stream ends, and a
    /// backend that records its stamp at the end of a write takes them from here.
    #[serde(skip)]
    pub late: Option<Arc<OnceLock<LateStamp>>>,
}

/// See [`Stamp::late`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateStamp {
    pub etag: String,
    pub checksum: Option<String>,
    /// The body's length when it was not known up front (an HTTP chunked upload, announced
    /// with `Stamp::size` 0).
    pub size: Option<u64>,
}

impl Stamp {
    /// The stamp with whatever the writer has filled in so far.
    pub fn resolved(&self) -> Stamp {
        let mut out = Stamp {
            late: None,
            ..self.clone()
        };
        if let Some(late) = self.late.as_ref().and_then(|l| l.get()) {
            if out.etag.is_empty() {
                out.etag = late.etag.clone();
            }
            if out.checksum.is_none() {
                out.checksum = late.checksum.clone();
            }
            if let Some(size) = late.size {
                out.size = size;
            }
        }
        out
    }
}

/// What a successful `put` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// The backend's etag of this replica: what `get(if_match)` checks later. Opaque.
    pub etag: String,
    pub size: u64,
}

/// One replica as the backend sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Physical name, relative to the backend's root. From `list` this may be a name Hansa did
    /// not write (a foreign object), so it is a plain string.
    pub name: String,
    pub size: u64,
    /// Backend etag (opaque); pass it to `get(if_match)`.
    pub etag: String,
    pub last_modified: SystemTime,
    pub attributes: ObjectAttributes,
    /// `None` for objects Hansa did not write.
    pub stamp: Option<Stamp>,
}

/// A body being read.
pub struct GetResult {
    pub info: ObjectInfo,
    /// The bytes `body` yields, within `0..info.size`.
    pub range: Range<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("info", &self.info)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The range a backend serves for `range` on an object of `size` bytes: the end is clamped to
/// the size; an empty range or one starting at or after the end is `RangeNotSatisfiable`.
pub fn resolve_range(name: &str, range: Option<Range<u64>>, size: u64) -> BResult<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start < r.end && r.start < size => Ok(r.start..r.end.min(size)),
        Some(r) => Err(BackendError::RangeNotSatisfiable {
            name: name.to_string(),
            start: r.start,
            end: r.end,
            size,
        }),
    }
}

/// One part of a multipart upload as `stage_upload` uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// The caller's part number (1..=10000); parts are passed in ascending order, possibly
    /// with gaps, and possibly a subset of the parts that were uploaded.
    pub part_number: u32,
    /// What `put_part` returned in [`PutResult::etag`] for this part (opaque).
    pub receipt: String,
    pub size: u64,
}

/// A new version's bytes, staged where no reader sees them: the result of
/// [`Backend::stage`] and [`Backend::stage_upload`], the input of [`Backend::publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    /// What `publish` and `discard` need, also in another process after a restart: opaque,
    /// printable ASCII, persisted by the caller.
    pub handle: String,
    pub size: u64,
    /// Whether the staged bytes survive a crash of this process. A store may hold a small
    /// body in memory until it is published (one request instead of two); such a copy counts
    /// towards a write quorum only once published or made durable with
    /// [`Backend::persist`].
    pub durable: bool,
}

/// One storage provider (a directory, a bucket + prefix, …).
///
/// # Writing: prepare, stage, publish
///
/// A write never changes what readers see until it is complete: [`prepare`](Backend::prepare)
/// reserves a place, [`stage`](Backend::stage) streams the body there durably, and
/// [`publish`](Backend::publish) makes the staged copy the object, quickly and idempotently.
/// [`discard`](Backend::discard) removes a staged (or only prepared) copy. A failed, cut or
/// abandoned write therefore never harms the version before it, and the caller decides when
/// (and in which order, for concurrent writes of one name) copies become visible.
/// [`put`](Backend::put) does all three at once.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The configured backend id.
    fn id(&self) -> &str;

    /// Reserves the place where a new version of `name` will be staged and returns its handle.
    /// The caller records the handle before the first byte is sent, so that what a crash
    /// leaves can be discarded. Quick (at most one small request). `stamp.size` is the size
    /// the body will have.
    async fn prepare(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError>;

    /// Streams `body` into the place `prepared` names, durably, where no reader sees it, and
    /// returns what [`publish`](Backend::publish) takes (the handle may differ from the
    /// prepared one).
    ///
    /// Consumes `body` to its end; a stream that yields an `Err` (→ [`BackendError::Aborted`])
    /// or a dropped future stages nothing (the caller discards the prepared handle). The
    /// stamp's late facts ([`Stamp::late`]) are complete when the body ends.
    async fn stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged, BackendError>;

    /// Composes `parts` of a multipart upload (ascending part numbers) into a staged copy of
    /// `name` with `attrs` and `stamp` (whose version is the upload id). Nothing visible
    /// changes. A receipt that no longer matches a stored part → `PreconditionFailed`.
    ///
    /// What the upload staged stays until `abort_upload`. Where the staged copy is the
    /// provider's own upload (S3's protocol), publishing it consumes the upload, and the caller
    /// aborts the upload only once the copy is published.
    async fn stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged, BackendError>;

    /// Makes the staged copy `staged` the object at `name`, replacing any previous object, and
    /// returns the replica's backend etag. Quick (a rename, a completion, a server-side copy)
    /// and idempotent: publishing again after a success returns the same result while `name`
    /// still holds `stamp.version_id`. A staged copy that is gone, with another version at
    /// `name` → `NotFound`.
    async fn publish(
        &self,
        name: &PhysicalName,
        staged: &str,
        stamp: &Stamp,
    ) -> Result<PutResult, BackendError>;

    /// Makes a staged copy durable where it is not ([`Staged::durable`]) without making it
    /// visible, and returns what to publish now. Durable copies are returned as they are.
    async fn persist(&self, name: &PhysicalName, staged: &Staged) -> Result<Staged, BackendError> {
        if staged.durable {
            return Ok(staged.clone());
        }
        Err(BackendError::Other {
            message: format!(
                "{}: {name}: this store cannot persist a staged copy",
                self.id()
            ),
        })
    }

    /// Removes a staged or only prepared copy; an unknown handle is `Ok`. Never touches the
    /// object at `name`.
    async fn discard(&self, name: &PhysicalName, handle: &str) -> Result<(), BackendError>;

    /// Removes staged copies that are at least `older_than` old and whose handles are not
    /// among `live` (what writes still in flight, or not yet published, hold): the leftovers of
    /// crashed writes. Returns how many were removed.
    async fn collect_staged(
        &self,
        older_than: std::time::Duration,
        live: &std::collections::HashSet<String>,
    ) -> Result<usize, BackendError>;

    /// Stores `body` under `name`, replacing any previous object: prepare, stage and publish
    /// in one call. The new object becomes visible only if the stream ends cleanly; an error
    /// leaves the previous object untouched. Durable on return.
    async fn put(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<PutResult, BackendError> {
        let prepared = self.prepare(name, attrs, stamp).await?;
        let staged = match self.stage(name, &prepared, attrs, stamp, body).await {
            Ok(staged) => staged,
            Err(e) => {
                let _ = self.discard(name, &prepared).await;
                return Err(e);
            }
        };
        match self.publish(name, &staged.handle, stamp).await {
            Ok(put) => Ok(put),
            Err(e) => {
                let _ = self.discard(name, &staged.handle).await;
                Err(e)
            }
        }
    }

    /// Copies the object at `from` to `to` within this backend, replacing whatever `to`
    /// held, with the same bytes, attributes and stamp; durable on return. Backends avoid
    /// moving bytes where they can (a hard link on a disk, a server-side copy in a cloud);
    /// this default streams the object through. `from` missing → `NotFound`.
    async fn copy(
        &self,
        from: &PhysicalName,
        to: &PhysicalName,
    ) -> Result<PutResult, BackendError> {
        let got = self.get(from, None, None).await?;
        let stamp = got.info.stamp.clone().ok_or_else(|| BackendError::Other {
            message: format!("{}: {from} has no stamp to copy", self.id()),
        })?;
        self.put(to, &got.info.attributes, &stamp, got.body).await
    }

    /// Reads `range` (end clamped to the size; `start >= size` or an empty range →
    /// `RangeNotSatisfiable`) or the whole object. `if_match` compares with the backend etag
    /// (`PutResult::etag`); a mismatch → `PreconditionFailed`.
    async fn get(
        &self,
        name: &PhysicalName,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetResult, BackendError>;

    async fn head(&self, name: &PhysicalName) -> Result<ObjectInfo, BackendError>;

    /// Removes the object; a missing object is `Ok`.
    async fn delete(&self, name: &PhysicalName) -> Result<(), BackendError>;

    /// Objects whose physical name starts with `prefix` (a plain string prefix, not only whole
    /// segments), in no particular order, with attributes and stamps. Hansa's own scratch
    /// objects (staged copies, temporary files, probes) are not listed.
    fn list(
        &self,
        prefix: &str,
    ) -> futures::stream::BoxStream<'_, Result<ObjectInfo, BackendError>>;

    /// Reachable and writable: writes, reads back and deletes a probe object under `.hansa/`.
    async fn check(&self) -> Result<(), BackendError>;

    /// Starts a multipart upload that will become `name`. `upload_id` is the gateway's id
    /// (ASCII alphanumeric), unique per upload. Returns this backend's handle for the upload
    /// (opaque, persisted by the caller and passed back to the calls below).
    ///
    /// `attrs` and `stamp` are the object's as far as they are known now; the stamp's version
    /// is `upload_id`, the version the completed object will have. Backends whose provider
    /// fixes metadata when an upload starts (S3's protocol) store these, not the ones given at
    /// completion.
    async fn create_upload(
        &self,
        name: &PhysicalName,
        upload_id: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError>;

    /// Stores one part. Parts may arrive in any order and concurrently (never two with the
    /// same number at once: the caller serialises those), and a part may be uploaded again;
    /// each upload gets its own receipt ([`PutResult::etag`]), and `stage_upload` uses
    /// exactly the receipts it is given. `size` is the part's announced length. Streams: memory
    /// stays bounded whatever the part's size. Durable on return.
    async fn put_part(
        &self,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult, BackendError>;

    /// Removes every part the upload staged (after a completion too); an unknown or finished
    /// upload is `Ok`. Never touches the object under `name`.
    async fn abort_upload(&self, name: &PhysicalName, upload: &str) -> Result<(), BackendError>;

    /// Whether `name` can be written without a [`BackendError::NameConflict`] given the names
    /// that exist now (a file system cannot hold `a` next to `a/b`). Object stores can hold
    /// any valid name.
    async fn name_available(&self, _name: &PhysicalName) -> bool {
        true
    }

    /// Writes the stamp and attributes of the object at `name` again, without touching its
    /// bytes: a copy restored without its metadata (a disk copied without extended
    /// attributes) becomes recognisable again. The caller has verified the bytes. Returns the
    /// object as it is now. Stores whose copies cannot lose their metadata keep the default,
    /// which refuses.
    async fn restamp(
        &self,
        name: &PhysicalName,
        _attrs: &ObjectAttributes,
        _stamp: &Stamp,
    ) -> Result<ObjectInfo, BackendError> {
        Err(BackendError::Other {
            message: format!("{}: {name}: this store cannot restamp objects", self.id()),
        })
    }
}
