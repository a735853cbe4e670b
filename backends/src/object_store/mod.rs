//! Adapter from [`Backend`] to any `object_store::ObjectStore` (memory; S3, GCS, Azure).
//!
//! Attributes travel as the store's native object attributes, so a replica is readable with the
//! provider's own tools: Content-Type & co. as themselves, user metadata as user metadata
//! (`x-amz-meta-<name>` on S3), and the stamp as `hansa-*` metadata entries. See
//! `docs/LAYOUT.md`. Azure accepts only C# identifiers as metadata names, so there every
//! metadata name is encoded reversibly ([`MetaNames::Azure`]).
//!
//! Writes are staged, then published (see `write` for which mechanism each kind and size
//! uses): `held` (small bodies, in memory), `s3_stage` and `s3_collect` (S3's multipart
//! protocol), `azure_stage` (Azure blocks), `staging` (staging objects), with `pump` cutting
//! bodies into parts and `handle` naming what was staged. `native` speaks the providers' own
//! requests, and client multipart uploads; `upload` stages those as objects where there is no
//! native API; `xml` holds the provider documents; `copy_aside` moves a plain-named version
//! aside server-side.

use crate::backend::{
    resolve_range, Backend, ByteStream, CompletedPart, GetResult, ObjectAttributes, ObjectInfo,
    PutResult, Staged, Stamp,
};
use crate::error::{BackendError, Result};
use crate::naming::{PhysicalName, FALLBACK_PREFIX, HASHED_BUCKET_PREFIX};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, MultipartUpload, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload,
};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::task::JoinSet;

mod azure_stage;
mod copy_aside;
mod handle;
mod held;
mod native;
mod pump;
mod s3_collect;
mod s3_stage;
mod staging;
mod upload;
mod write;
mod xml;

pub use native::{AzureNative, NativeMultipart, NativeRetry, S3Native, S3ProtocolAuth};

/// Smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Default part size, and the largest object sent with a single PUT.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts uploading concurrently per put, besides the one being filled.
const PARTS_IN_FLIGHT: usize = 2;
/// Concurrent HEADs while listing (object_store's list returns no attributes).
const LIST_HEAD_CONCURRENCY: usize = 8;

/// Metadata entries of the stamp. Names use only `a-z` and `-` so S3 and GCS keep them
/// unchanged. (On Azure every name is encoded: [`MetaNames::Azure`].)
pub const META_VERSION: &str = "hansa-version";
pub const META_ETAG: &str = "hansa-etag";
pub const META_SIZE: &str = "hansa-size";
pub const META_CHECKSUM: &str = "hansa-checksum";
/// Only when the physical name does not show the bucket / key (fallback names).
pub const META_BUCKET: &str = "hansa-bucket";
pub const META_KEY: &str = "hansa-key";
/// object_store has no Expires attribute.
pub const META_EXPIRES: &str = "hansa-expires";
/// Set (`1`) when the object has no content type: cloud stores answer with a default of their
/// own (`binary/octet-stream`, `application/octet-stream`), which must not come back as the
/// object's.
pub const META_NO_CONTENT_TYPE: &str = "hansa-no-content-type";
/// User metadata whose name starts with `hansa-` is stored under this prefix, so it can never
/// be mistaken for Hansa's own entries.
pub const META_USER_ESCAPE: &str = "hansa-u-";

/// Values that are not plain visible ASCII are stored RFC 2047-encoded (`=?UTF-8?B?…?=`), as
/// S3 itself returns non-ASCII metadata; HTTP header values cannot carry them otherwise.
const ENCODED_PREFIX: &str = "=?UTF-8?B?";
const ENCODED_SUFFIX: &str = "?=";

/// How metadata names are spelled on the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetaNames {
    /// As they are (S3, GCS, memory): lowercase names with `-`.
    #[default]
    Plain,
    /// Azure accepts only C# identifiers (letters, digits, `_`; not starting with a digit):
    /// letters and digits stay, every other byte of the UTF-8 name becomes `_` + two lowercase
    /// hex digits (`hansa-version` → `hansa_2dversion`), and a leading digit is escaped too.
    /// `_` only ever starts an escape, so decoding is unambiguous.
    Azure,
}

impl MetaNames {
    fn encode(self, attributes: Attributes) -> Attributes {
        match self {
            Self::Plain => attributes,
            Self::Azure => attributes
                .iter()
                .map(|(k, v)| match k {
                    Attribute::Metadata(name) => (
                        Attribute::Metadata(encode_azure_name(name).into()),
                        v.clone(),
                    ),
                    other => (other.clone(), v.clone()),
                })
                .collect(),
        }
    }

    fn decode(self, attributes: &Attributes) -> std::borrow::Cow<'_, Attributes> {
        match self {
            Self::Plain => std::borrow::Cow::Borrowed(attributes),
            Self::Azure => std::borrow::Cow::Owned(
                attributes
                    .iter()
                    .map(|(k, v)| match k {
                        Attribute::Metadata(name) => {
                            // A name Hansa did not encode (a foreign writer's) stays as it is.
                            let decoded =
                                decode_azure_name(name).unwrap_or_else(|| name.to_string());
                            (Attribute::Metadata(decoded.into()), v.clone())
                        }
                        other => (other.clone(), v.clone()),
                    })
                    .collect(),
            ),
        }
    }
}

/// See [`MetaNames::Azure`].
pub fn encode_azure_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Inverse of [`encode_azure_name`]; `None` for names it cannot have produced. Case-insensitive,
/// as Azure metadata names are.
pub fn decode_azure_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b.is_ascii_alphanumeric() && !(i == 0 && b.is_ascii_digit()) {
            out.push(b.to_ascii_lowercase());
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    id: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    part_size: usize,
    /// Copy incoming buffers instead of sharing them. A store that keeps what it is given
    /// (the in-memory store) would otherwise pin the caller's buffers, and with them the
    /// gateway's in-flight budget, for the object's whole life.
    detach_buffers: bool,
    meta_names: MetaNames,
    /// The provider's own multipart uploads (s3, azure); `None`: parts are staged as objects.
    native: Option<NativeMultipart>,
    /// Small bodies staged in memory until published (see `held`).
    held: held::HeldBodies,
    /// Staging objects above this size are published by streaming them into the name, not
    /// with a server-side copy (S3's CopyObject stops at 5 GiB).
    max_copy_bytes: u64,
    /// Versions moved aside with a server-side copy that rewrote their stamp (shared by
    /// clones; see [`Self::server_side_copies`]).
    server_side_copies: Arc<std::sync::atomic::AtomicU64>,
}

impl ObjectStoreBackend {
    /// `prefix`: where this backend's names start inside the store (may be empty).
    pub fn new(id: impl Into<String>, store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self {
            id: id.into(),
            store,
            prefix,
            part_size: DEFAULT_PART_SIZE,
            detach_buffers: false,
            meta_names: MetaNames::Plain,
            native: None,
            held: held::HeldBodies::default(),
            max_copy_bytes: staging::MAX_COPY_BYTES,
            server_side_copies: Arc::default(),
        }
    }

    /// Multipart uploads go to the provider's own multipart API.
    pub fn with_native_multipart(mut self, native: NativeMultipart) -> Self {
        self.native = Some(native);
        self
    }

    /// How many plain-named replicas `copy` has copied server-side with a new stamp (S3's
    /// CopyObject, Azure's Copy Blob), not streamed through the gateway.
    pub fn server_side_copies(&self) -> u64 {
        self.server_side_copies
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether multipart uploads use the provider's own API (else they are staged).
    pub fn has_native_multipart(&self) -> bool {
        self.native.is_some()
    }

    /// How metadata names are spelled on this store.
    pub fn with_meta_names(mut self, names: MetaNames) -> Self {
        self.meta_names = names;
        self
    }

    /// Maps a store error, naming this backend in the messages an operator acts on, and logs
    /// an authentication failure once with the backend's id (a wrong key must be obvious).
    pub(crate) fn map_err(&self, e: object_store::Error, name: &str) -> BackendError {
        match map_error(e, name) {
            BackendError::Unauthorized { message } => {
                tracing::error!(backend = %self.id, %message, "backend refused our credentials");
                BackendError::Unauthorized {
                    message: format!("backend {}: credentials refused: {message}", self.id),
                }
            }
            BackendError::Unavailable { message } => BackendError::Unavailable {
                message: format!("backend {}: {message}", self.id),
            },
            BackendError::Throttled { message } => BackendError::Throttled {
                message: format!("backend {}: {message}", self.id),
            },
            other => other,
        }
    }

    fn info(&self, name: &str, meta: &object_store::ObjectMeta, attrs: &Attributes) -> ObjectInfo {
        object_info(name, meta, &self.meta_names.decode(attrs))
    }

    /// A fresh in-memory store (the `memory` backend kind).
    pub fn memory(id: impl Into<String>) -> Self {
        Self {
            detach_buffers: true,
            ..Self::new(
                id,
                Arc::new(object_store::memory::InMemory::new()),
                Path::default(),
            )
        }
    }

    /// Multipart part size (at least [`MIN_PART_SIZE`]); objects up to this size go in one PUT.
    /// The largest object is 10,000 × part size (S3's part-count limit).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of `name`. Plain names are valid `Path` strings by construction, so the
    /// bytes reach the provider unchanged (no re-escaping).
    pub fn path_of(&self, name: &PhysicalName) -> Result<Path> {
        self.join(name.as_str())
    }

    fn join(&self, rel: &str) -> Result<Path> {
        let full = if self.prefix.as_ref().is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix.as_ref())
        };
        Path::parse(&full).map_err(|e| BackendError::other(format!("invalid path {full:?}: {e}")))
    }

    /// The name relative to the prefix, or `None` for paths outside it.
    fn relative(&self, path: &Path) -> Option<String> {
        self.relative_key(path.as_ref())
    }

    /// A full key (prefix included) relative to the prefix, or `None` for keys outside it.
    fn relative_key(&self, key: &str) -> Option<String> {
        let p = self.prefix.as_ref();
        if p.is_empty() {
            return Some(key.to_string());
        }
        key.strip_prefix(p)
            .and_then(|r| r.strip_prefix('/'))
            .map(str::to_string)
    }

    /// `body` with its chunks copied when `detach_buffers` is set, as they are otherwise.
    fn detach(&self, body: ByteStream) -> ByteStream {
        if self.detach_buffers {
            body.map_ok(|chunk| Bytes::copy_from_slice(&chunk)).boxed()
        } else {
            body
        }
    }

    async fn head_path(&self, path: &Path, name: &str) -> Result<ObjectInfo> {
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(path, options)
            .await
            .map_err(|e| self.map_err(e, name))?;
        Ok(self.info(name, &result.meta, &result.attributes))
    }

    /// Stores `body` at `path` (a staging object, a staged part, a copy streamed through
    /// Hansa): one PUT up to the part size, a multipart upload beyond. Returns the size. The
    /// callers need no ETag of these objects (a publication reads the name's own).
    async fn put_at(
        &self,
        path: &Path,
        name: &str,
        attributes: impl FnOnce() -> Attributes + Send,
        body: ByteStream,
    ) -> Result<u64> {
        let mut body = self.detach(body);
        let mut first = Vec::new();
        let mut size = 0usize;
        let mut multipart = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| BackendError::Aborted)?;
            size += chunk.len();
            first.push(chunk);
            // A full part goes out at once rather than waiting for more input: the gateway
            // cuts bodies into part-sized buffers from a global budget, and a backend that
            // held a full buffer while waiting for the next could deadlock writers.
            if size >= self.part_size {
                multipart = true;
                break;
            }
        }
        let attributes = self.meta_names.encode(attributes());
        if multipart {
            return self
                .put_multipart(path, name, attributes, first, body)
                .await;
        }
        let payload: PutPayload = first.into_iter().collect();
        let options = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(path, payload, options)
            .await
            .map_err(|e| self.map_err(e, name))?;
        Ok(size as u64)
    }

    async fn put_multipart(
        &self,
        path: &Path,
        name: &str,
        attributes: Attributes,
        first: Vec<Bytes>,
        mut body: ByteStream,
    ) -> Result<u64> {
        let mut size: u64 = first.iter().map(|c| c.len() as u64).sum();
        let upload = self
            .store
            .put_multipart_opts(
                path,
                PutMultipartOptions {
                    attributes,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.map_err(e, name))?;
        let mut upload = Multipart::new(upload, self.part_size);
        for chunk in first {
            upload.put(chunk);
        }
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                upload.abort().await;
                return Err(BackendError::Aborted);
            };
            // Backpressure: stop reading the body while too many parts are on the wire.
            if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                upload.abort().await;
                return Err(self.map_err(e, name));
            }
            size += chunk.len() as u64;
            upload.put(chunk);
        }
        upload.finish().await.map_err(|e| self.map_err(e, name))?;
        Ok(size)
    }
}

/// A multipart upload cut into equal parts (Cloudflare R2 and some others require equal sizes).
/// Dropped before `finish` (error, or the caller's future dropped), it aborts the upload in
/// the background so no parts are left billed at the provider.
struct Multipart {
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<Bytes>,
    buffered: usize,
    part_size: usize,
    // Parts are spawned: an object_store part future makes progress only while polled.
    tasks: JoinSet<object_store::Result<()>>,
}

impl Multipart {
    fn new(upload: Box<dyn MultipartUpload>, part_size: usize) -> Self {
        Self {
            upload: Some(upload),
            buffer: Vec::new(),
            buffered: 0,
            part_size,
            tasks: JoinSet::new(),
        }
    }

    fn put(&mut self, mut chunk: Bytes) {
        while !chunk.is_empty() {
            let room = self.part_size - self.buffered;
            if chunk.len() < room {
                self.buffered += chunk.len();
                self.buffer.push(chunk);
                return;
            }
            self.buffer.push(chunk.split_to(room));
            self.buffered = self.part_size;
            self.send_part();
        }
    }

    fn send_part(&mut self) {
        let parts = std::mem::take(&mut self.buffer);
        self.buffered = 0;
        if let Some(upload) = self.upload.as_mut() {
            let payload: PutPayload = parts.into_iter().collect();
            self.tasks.spawn(upload.put_part(payload));
        }
    }

    async fn wait_for_capacity(&mut self, max: usize) -> object_store::Result<()> {
        while self.tasks.len() > max {
            match self.tasks.join_next().await {
                Some(Ok(r)) => r?,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> object_store::Result<object_store::PutResult> {
        if self.buffered > 0 {
            self.send_part();
        }
        self.wait_for_capacity(0).await?;
        let Some(mut upload) = self.upload.take() else {
            return Err(object_store::Error::NotImplemented);
        };
        match upload.complete().await {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self) {
        self.tasks.shutdown().await;
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(error = %e, "aborting multipart upload failed");
            }
        }
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        self.tasks.abort_all();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(error = %e, "aborting abandoned multipart upload failed");
                    }
                });
            }
            Err(_) => tracing::warn!("multipart upload abandoned outside a runtime; not aborted"),
        }
    }
}

fn is_header_safe(value: &str) -> bool {
    value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?")
}

/// Reversible: plain visible ASCII stays readable, anything else is RFC 2047-encoded (values
/// that merely look encoded are encoded again, so decoding never guesses).
pub fn encode_meta_value(value: &str) -> String {
    if is_header_safe(value) {
        value.to_string()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("{ENCODED_PREFIX}{b64}{ENCODED_SUFFIX}")
    }
}

pub fn decode_meta_value(value: &str) -> String {
    value
        .strip_prefix(ENCODED_PREFIX)
        .and_then(|v| v.strip_suffix(ENCODED_SUFFIX))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| value.to_string())
}

/// The bucket and key a physical name (relative, as a string) reveals.
fn name_origin(name: &str) -> (Option<String>, Option<String>) {
    match PhysicalName::parse(name) {
        Ok(n) => {
            let (b, k) = n.origin();
            (b.map(str::to_string), k.map(str::to_string))
        }
        Err(_) => (None, None),
    }
}

pub(crate) fn encode_attributes(
    name: &PhysicalName,
    attrs: &ObjectAttributes,
    stamp: &Stamp,
) -> Attributes {
    let mut out = Attributes::new();
    let standard = [
        (Attribute::ContentType, &attrs.content_type),
        (Attribute::ContentEncoding, &attrs.content_encoding),
        (Attribute::ContentDisposition, &attrs.content_disposition),
        (Attribute::ContentLanguage, &attrs.content_language),
        (Attribute::CacheControl, &attrs.cache_control),
    ];
    for (attr, value) in standard {
        if let Some(v) = value {
            out.insert(attr, AttributeValue::from(v.clone()));
        }
    }
    let mut meta = |k: String, v: &str| {
        out.insert(
            Attribute::Metadata(k.into()),
            AttributeValue::from(encode_meta_value(v)),
        );
    };
    if let Some(expires) = &attrs.expires {
        meta(META_EXPIRES.to_string(), expires);
    }
    if attrs.content_type.is_none() {
        meta(META_NO_CONTENT_TYPE.to_string(), "1");
    }
    for (k, v) in &attrs.user_metadata {
        let stored = if k.starts_with("hansa-") {
            format!("{META_USER_ESCAPE}{k}")
        } else {
            k.clone()
        };
        meta(stored, v);
    }
    meta(META_VERSION.to_string(), &stamp.version_id);
    meta(META_ETAG.to_string(), &stamp.etag);
    meta(META_SIZE.to_string(), &stamp.size.to_string());
    if let Some(checksum) = &stamp.checksum {
        meta(META_CHECKSUM.to_string(), checksum);
    }
    let (bucket, key) = name.origin();
    if bucket != Some(stamp.bucket.as_str()) {
        meta(META_BUCKET.to_string(), &stamp.bucket);
    }
    if key != Some(stamp.key.as_str()) {
        meta(META_KEY.to_string(), &stamp.key);
    }
    out
}

/// The object's attributes and stamp; `stored_size` is the object's own size, which a stamp
/// written before the size was known (an upload's creation, see `native`) leaves out.
pub(crate) fn decode_attributes(
    name: &str,
    attributes: &Attributes,
    stored_size: u64,
) -> (ObjectAttributes, Option<Stamp>) {
    let mut attrs = ObjectAttributes::default();
    let (mut version, mut etag, mut size, mut bucket, mut key) = (None, None, None, None, None);
    let mut checksum = None;
    let mut no_content_type = false;
    for (attr, value) in attributes {
        let v = value.as_ref().to_string();
        match attr {
            Attribute::ContentType => attrs.content_type = Some(v),
            Attribute::ContentEncoding => attrs.content_encoding = Some(v),
            Attribute::ContentDisposition => attrs.content_disposition = Some(v),
            Attribute::ContentLanguage => attrs.content_language = Some(v),
            Attribute::CacheControl => attrs.cache_control = Some(v),
            Attribute::Metadata(k) => {
                let v = decode_meta_value(&v);
                let k = k.to_ascii_lowercase();
                match k.as_str() {
                    META_VERSION => version = Some(v),
                    META_ETAG => etag = Some(v),
                    META_SIZE => size = v.parse::<u64>().ok(),
                    META_CHECKSUM => checksum = Some(v),
                    META_BUCKET => bucket = Some(v),
                    META_KEY => key = Some(v),
                    META_EXPIRES => attrs.expires = Some(v),
                    META_NO_CONTENT_TYPE => no_content_type = true,
                    _ => {
                        if let Some(user) = k.strip_prefix(META_USER_ESCAPE) {
                            attrs.user_metadata.insert(user.to_string(), v);
                        } else if !k.starts_with("hansa-") {
                            attrs.user_metadata.insert(k, v);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if no_content_type {
        attrs.content_type = None;
    }
    let (name_bucket, name_key) = name_origin(name);
    let stamp = match (
        version,
        etag,
        size,
        bucket.or(name_bucket),
        key.or(name_key),
    ) {
        (Some(version_id), etag, size, Some(bucket), Some(key)) => Some(Stamp {
            bucket,
            key,
            version_id,
            etag: etag.unwrap_or_default(),
            size: size.unwrap_or(stored_size),
            checksum,
            late: None,
        }),
        _ => None,
    };
    (attrs, stamp)
}

fn object_info(name: &str, meta: &object_store::ObjectMeta, attributes: &Attributes) -> ObjectInfo {
    let (attributes, stamp) = decode_attributes(name, attributes, meta.size);
    ObjectInfo {
        name: name.to_string(),
        size: meta.size,
        etag: meta.e_tag.clone().unwrap_or_default(),
        last_modified: SystemTime::from(meta.last_modified),
        attributes,
        stamp,
    }
}

/// Maps object_store's errors by what the gateway does next.
///
/// The typed variants carry the status object_store recognised (404, 412/304, 401, 403).
/// Other HTTP failures arrive as `Generic` wrapping object_store's retry error, whose type is
/// private: a network failure is recognised by the public `HttpError` in its source chain,
/// and the status (429, 503, other 5xx, 4xx) by the text the retry error shows for it
/// (`…status code: 503 Service Unavailable…`), or S3's `SlowDown` / Azure's `ServerBusy` in a
/// 200 error body. object_store has already retried these (with backoff, per the backend's
/// retry settings) when they reach us.
pub(crate) fn map_error(e: object_store::Error, name: &str) -> BackendError {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => BackendError::NotFound {
            name: name.to_string(),
        },
        E::Precondition { .. } | E::NotModified { .. } => BackendError::PreconditionFailed {
            name: name.to_string(),
        },
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => BackendError::Unauthorized {
            message: redact(&e.to_string()),
        },
        E::Generic { ref source, .. } => {
            let message = redact(&e.to_string());
            let network = {
                let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
                let mut found = false;
                while let Some(err) = cur {
                    if err
                        .downcast_ref::<object_store::client::HttpError>()
                        .is_some()
                        || err.downcast_ref::<std::io::Error>().is_some()
                    {
                        found = true;
                        break;
                    }
                    cur = err.source();
                }
                found
            };
            match http_status(&message) {
                Some(429) => BackendError::Throttled { message },
                Some(503) if is_throttle_text(&message) => BackendError::Throttled { message },
                Some(s) if s >= 500 => BackendError::Unavailable { message },
                Some(401 | 403) => BackendError::Unauthorized { message },
                Some(404) => BackendError::NotFound {
                    name: name.to_string(),
                },
                Some(412) => BackendError::PreconditionFailed {
                    name: name.to_string(),
                },
                // 408 Request Timeout is the connection's fault, not the request's.
                Some(408) => BackendError::Unavailable { message },
                Some(_) => BackendError::Other { message },
                None if is_throttle_text(&message) => BackendError::Throttled { message },
                None if network => BackendError::Unavailable { message },
                // No status and no network error in the chain: still the provider's
                // failure to answer usefully (malformed response, …): try another replica.
                None => BackendError::Unavailable { message },
            }
        }
        other => BackendError::other(redact(&other.to_string())),
    }
}

/// The HTTP status a retry error's text shows (`status code: 503 …`).
fn http_status(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message.get(at..at + 3)?.parse().ok()
}

fn is_throttle_text(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "slowdown",
        "slow down",
        "too many requests",
        "serverbusy",
        "toomanyrequests",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

/// Error texts may quote a request URL; a SAS token or presigned signature in it must not
/// reach a log.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("sig=") {
        let (before, after) = rest.split_at(at + 4);
        out.push_str(before);
        out.push_str("***");
        let end = after.find(['&', ' ', '"', ')']).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The bytes `range` of a stream that yields a whole object.
fn slice_stream(body: ByteStream, range: Range<u64>) -> ByteStream {
    let mut offset = 0u64;
    body.try_filter_map(move |chunk: Bytes| {
        let start = offset;
        let end = start + chunk.len() as u64;
        offset = end;
        let from = range.start.max(start);
        let to = range.end.min(end);
        let piece =
            (from < to).then(|| chunk.slice((from - start) as usize..(to - start) as usize));
        futures::future::ready(Ok(piece))
    })
    .boxed()
}

fn is_internal(rel: &str, prefix: &str) -> bool {
    rel.starts_with(".hansa/")
        && !rel.starts_with(FALLBACK_PREFIX)
        && !rel.starts_with(HASHED_BUCKET_PREFIX)
        // Bucket markers and tombstones are listed only when asked for by their prefix, so
        // nothing that lists objects ever takes them for objects.
        && !listed_record(rel, prefix)
}

/// Bucket markers and tombstones are listed only when the prefix asks for them.
fn listed_record(rel: &str, prefix: &str) -> bool {
    (crate::naming::is_record_name(rel) && crate::naming::is_record_name(prefix))
        || (crate::naming::is_version_name(rel) && crate::naming::is_version_name(prefix))
}

#[async_trait]
impl Backend for ObjectStoreBackend {
    fn id(&self) -> &str {
        &self.id
    }

    async fn prepare(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String> {
        self.write_prepare(name, attrs, stamp).await
    }

    async fn stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged> {
        self.write_stage(name, prepared, attrs, stamp, body).await
    }

    async fn stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged> {
        self.write_stage_upload(name, upload, parts, attrs, stamp)
            .await
    }

    async fn publish(&self, name: &PhysicalName, staged: &str, stamp: &Stamp) -> Result<PutResult> {
        self.write_publish(name, staged, stamp).await
    }

    async fn persist(&self, name: &PhysicalName, staged: &Staged) -> Result<Staged> {
        match handle::Handle::parse(&staged.handle) {
            Ok(handle::Handle::Held { token }) => self.persist_held(name, &token).await,
            _ => Ok(staged.clone()),
        }
    }

    async fn discard(&self, name: &PhysicalName, handle: &str) -> Result<()> {
        self.write_discard(name, handle).await
    }

    async fn collect_staged(
        &self,
        older_than: std::time::Duration,
        live: &std::collections::HashSet<String>,
    ) -> Result<usize> {
        self.write_collect(older_than, live).await
    }

    async fn create_upload(
        &self,
        name: &PhysicalName,
        upload_id: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String> {
        match &self.native {
            Some(native) => {
                self.native_create(native, name, upload_id, attrs, stamp)
                    .await
            }
            None => self.staged_create(name, upload_id, attrs, stamp).await,
        }
    }

    async fn put_part(
        &self,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult> {
        match &self.native {
            Some(native) => {
                self.native_put_part(native, name, upload, part_number, size, body)
                    .await
            }
            None => {
                self.staged_put_part(name, upload, part_number, size, body)
                    .await
            }
        }
    }

    async fn abort_upload(&self, name: &PhysicalName, upload: &str) -> Result<()> {
        match &self.native {
            Some(native) => self.native_abort(native, name, upload).await,
            None => self.staged_abort(name, upload).await,
        }
    }

    async fn get(
        &self,
        name: &PhysicalName,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetResult> {
        let path = self.path_of(name)?;
        if let Some(r) = &range {
            if r.start >= r.end {
                let info = self.head_path(&path, name.as_str()).await?;
                resolve_range(name.as_str(), range.clone(), info.size)?;
            }
        }
        // Backend etags are never empty (`put` refuses a store that returns none), so an
        // empty `if_match` can only fail; some servers would read it as "no condition".
        if if_match == Some("") {
            self.head_path(&path, name.as_str()).await?;
            return Err(BackendError::PreconditionFailed {
                name: name.to_string(),
            });
        }
        let options = GetOptions {
            if_match: if_match.map(str::to_string),
            range: range.clone().map(GetRange::Bounded),
            ..Default::default()
        };
        let mut skip_to = None;
        let result = match self.store.get_opts(&path, options).await {
            Ok(r) => r,
            Err(e) => {
                let non_partial = e.to_string().contains("non-partial response");
                let err = self.map_err(e, name.as_str());
                if let (true, Some(r)) = (non_partial, &range) {
                    // The server ignored the Range header (rclone serve s3 answers 200 with a
                    // Content-Range): read the whole object and cut the range out here. Costs
                    // bandwidth on such servers only.
                    let options = GetOptions {
                        if_match: if_match.map(str::to_string),
                        ..Default::default()
                    };
                    let whole = self
                        .store
                        .get_opts(&path, options)
                        .await
                        .map_err(|e| self.map_err(e, name.as_str()))?;
                    let resolved = resolve_range(name.as_str(), Some(r.clone()), whole.meta.size)?;
                    skip_to = Some(resolved);
                    whole
                } else {
                    // A missing object with a condition may come back as 412; and a start
                    // beyond the end as a generic error. Tell them apart.
                    if matches!(
                        err,
                        BackendError::PreconditionFailed { .. }
                            | BackendError::Unavailable { .. }
                            | BackendError::Other { .. }
                    ) {
                        let info = self.head_path(&path, name.as_str()).await?;
                        if let Some(r) = &range {
                            resolve_range(name.as_str(), Some(r.clone()), info.size)?;
                        }
                    }
                    return Err(err);
                }
            }
        };
        // Some servers (rclone serve s3) ignore If-Match: check the etag we got.
        if let Some(expected) = if_match {
            if result.meta.e_tag.as_deref() != Some(expected) {
                return Err(BackendError::PreconditionFailed {
                    name: name.to_string(),
                });
            }
        }
        let info = self.info(name.as_str(), &result.meta, &result.attributes);
        let owned = name.to_string();
        let this = self.clone();
        let (range, body) = match skip_to {
            None => (
                result.range.clone(),
                result
                    .into_stream()
                    .map_err(move |e| this.map_err(e, &owned))
                    .boxed(),
            ),
            Some(wanted) => {
                let body = slice_stream(
                    result
                        .into_stream()
                        .map_err(move |e| this.map_err(e, &owned))
                        .boxed(),
                    wanted.clone(),
                );
                (wanted, body)
            }
        };
        Ok(GetResult { info, range, body })
    }

    /// A server-side copy (attributes and stamp travel with it), streamed through above the
    /// provider's copy limit. A plain name's metadata leaves out the key (the name says it),
    /// which the copy's name no longer would: on S3 and Azure it is copied server-side with a
    /// new stamp (CopyObject / Copy Blob, metadata replaced), on GCS, or when refused,
    /// streamed through.
    async fn copy(&self, from: &PhysicalName, to: &PhysicalName) -> Result<PutResult> {
        let source = self.path_of(from)?;
        let dest = self.path_of(to)?;
        let info = self.head_path(&source, from.as_str()).await?;
        if !from.is_fallback() {
            if info.size <= self.max_copy_bytes {
                match self.copy_restamped(from, &source, to, &dest, &info).await {
                    Ok(Some(copied)) => return Ok(copied),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(backend = %self.id, %from, %to, error = %e, "server-side copy refused; streaming it");
                    }
                }
            }
            let got = self.get(from, None, None).await?;
            let stamp = got.info.stamp.clone().ok_or_else(|| {
                BackendError::other(format!("{}: {from} has no stamp to copy", self.id))
            })?;
            return self.put(to, &got.info.attributes, &stamp, got.body).await;
        }
        if info.size > self.max_copy_bytes {
            self.stream_copy(&source, &dest, to).await?;
        } else {
            self.store
                .copy(&source, &dest)
                .await
                .map_err(|e| self.map_err(e, from.as_str()))?;
        }
        let copied = self.head_path(&dest, to.as_str()).await?;
        Ok(PutResult {
            etag: copied.etag,
            size: copied.size,
        })
    }

    async fn head(&self, name: &PhysicalName) -> Result<ObjectInfo> {
        let path = self.path_of(name)?;
        self.head_path(&path, name.as_str()).await
    }

    async fn delete(&self, name: &PhysicalName) -> Result<()> {
        let path = self.path_of(name)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(e, name.as_str())),
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo>> {
        // object_store lists whole segments; list the deepest directory of the prefix and
        // filter by the full string.
        let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let list_path = if dir.is_empty() {
            Some(self.prefix.clone())
        } else {
            self.join(dir).ok()
        };
        let list_path = list_path.unwrap_or_else(|| self.prefix.clone());
        let prefix = prefix.to_string();
        self.store
            .list(Some(&list_path))
            .map_err(|e| self.map_err(e, "list"))
            .try_filter_map(move |meta| {
                let rel = self
                    .relative(&meta.location)
                    .filter(|rel| rel.starts_with(&prefix) && !is_internal(rel, &prefix));
                futures::future::ready(Ok(rel.map(|rel| (rel, meta.location))))
            })
            .map_ok(move |(rel, location)| async move {
                match self.head_path(&location, &rel).await {
                    Ok(info) => Ok(Some(info)),
                    // Deleted between list and head.
                    Err(BackendError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .try_buffered(LIST_HEAD_CONCURRENCY)
            .try_filter_map(|info| futures::future::ready(Ok(info)))
            .boxed()
    }

    async fn check(&self) -> Result<()> {
        let rel = format!(".hansa/probe-{}", uuid::Uuid::new_v4());
        let path = self.join(&rel)?;
        let content = Bytes::from(format!("hansa probe {}", uuid::Uuid::new_v4()));
        self.store
            .put(&path, PutPayload::from(content.clone()))
            .await
            .map_err(|e| self.map_err(e, &rel))?;
        let read = match self.store.get(&path).await {
            Ok(r) => r.bytes().await.map_err(|e| self.map_err(e, &rel)),
            Err(e) => Err(self.map_err(e, &rel)),
        };
        let deleted = self
            .store
            .delete(&path)
            .await
            .map_err(|e| self.map_err(e, &rel));
        if read? != content {
            return Err(BackendError::unavailable(format!(
                "{rel}: probe read back differently"
            )));
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{fallback_name, physical_name};
    use crate::testsuite::stamp;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn metadata(attrs: &Attributes) -> BTreeMap<String, String> {
        attrs
            .iter()
            .filter_map(|(k, v)| match k {
                Attribute::Metadata(k) => Some((k.to_string(), v.as_ref().to_string())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn plain_replicas_carry_a_minimal_readable_stamp() {
        let name = physical_name("photos", "2024/cat.jpg");
        let mut attrs = ObjectAttributes::default();
        attrs.user_metadata.insert("camera".into(), "Leica".into());
        let st = stamp("photos", "2024/cat.jpg", "v1", 10);
        let encoded = encode_attributes(&name, &attrs, &st);
        let meta = metadata(&encoded);
        assert_eq!(meta.get("camera").map(String::as_str), Some("Leica"));
        assert_eq!(meta.get(META_VERSION).map(String::as_str), Some("v1"));
        assert_eq!(meta.get(META_SIZE).map(String::as_str), Some("10"));
        assert!(!meta.contains_key(META_KEY), "the name shows the key");
        assert!(!meta.contains_key(META_BUCKET));
        assert_eq!(
            decode_attributes(name.as_str(), &encoded, 10),
            (attrs, Some(st))
        );
    }

    #[test]
    fn fallback_replicas_carry_the_key() {
        let key = "a//b/ü";
        let name = fallback_name("photos", key);
        let st = stamp("photos", key, "v1", 10);
        let encoded = encode_attributes(&name, &ObjectAttributes::default(), &st);
        let meta = metadata(&encoded);
        assert!(meta.contains_key(META_KEY));
        assert!(!meta.contains_key(META_BUCKET), "the name shows the bucket");
        assert_eq!(decode_attributes(name.as_str(), &encoded, 10).1, Some(st));
        // Hashed bucket: both travel in metadata.
        let name = fallback_name("..", key);
        let st = stamp("..", key, "v1", 10);
        let encoded = encode_attributes(&name, &ObjectAttributes::default(), &st);
        assert_eq!(decode_attributes(name.as_str(), &encoded, 10).1, Some(st));
    }

    #[test]
    fn a_stamp_without_etag_and_size_takes_the_stored_size() {
        let name = physical_name("photos", "big.bin");
        let mut encoded = encode_attributes(
            &name,
            &ObjectAttributes::default(),
            &stamp("photos", "big.bin", "up1", 0),
        );
        let mut kept = Attributes::new();
        for (k, v) in encoded.iter() {
            let unknown = matches!(k, Attribute::Metadata(n) if n == META_SIZE || n == META_ETAG);
            if !unknown {
                kept.insert(k.clone(), v.clone());
            }
        }
        encoded = kept;
        let st = decode_attributes(name.as_str(), &encoded, 12345)
            .1
            .expect("a stamp");
        assert_eq!(
            (st.version_id.as_str(), st.etag.as_str(), st.size),
            ("up1", "", 12345)
        );
    }

    #[test]
    fn foreign_objects_have_no_stamp() {
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::ContentType, "text/plain".into());
        attrs.insert(Attribute::Metadata("owner".into()), "someone".into());
        let (decoded, st) = decode_attributes("bucket/x", &attrs, 3);
        assert_eq!(st, None);
        assert_eq!(decoded.content_type.as_deref(), Some("text/plain"));
        assert_eq!(decoded.user_metadata.len(), 1);
    }

    #[test]
    fn errors_map_to_backend_errors() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        assert!(matches!(
            map_error(generic("HTTP status 429 Too Many Requests"), "n"),
            BackendError::Throttled { .. }
        ));
        let status = |s: &str| {
            generic(&format!(
                "Error performing PUT http://h/b/k in 1s - Server returned non-2xx status code: {s}: body"
            ))
        };
        assert!(matches!(
            map_error(status("429 Too Many Requests"), "n"),
            BackendError::Throttled { .. }
        ));
        assert!(matches!(
            map_error(
                status("503 Service Unavailable: <Code>SlowDown</Code>"),
                "n"
            ),
            BackendError::Throttled { .. }
        ));
        assert!(matches!(
            map_error(status("503 Service Unavailable"), "n"),
            BackendError::Unavailable { .. }
        ));
        assert!(matches!(
            map_error(status("500 Internal Server Error"), "n"),
            BackendError::Unavailable { .. }
        ));
        assert!(matches!(
            map_error(status("400 Bad Request"), "n"),
            BackendError::Other { .. }
        ));
        assert!(matches!(
            map_error(status("403 Forbidden"), "n"),
            BackendError::Unauthorized { .. }
        ));
        assert!(matches!(
            map_error(
                generic("Server returned error response: <Error><Code>SlowDown</Code></Error>"),
                "n"
            ),
            BackendError::Throttled { .. }
        ));
        let e = map_error(
            generic("GET http://h/c/k?sv=1&sig=SECRETSIG&x=1 failed"),
            "n",
        );
        assert!(!e.to_string().contains("SECRETSIG"), "{e}");
        assert!(matches!(
            map_error(generic("connection reset"), "n"),
            BackendError::Unavailable { .. }
        ));
        assert!(matches!(
            map_error(
                object_store::Error::NotFound {
                    path: "p".into(),
                    source: "x".into()
                },
                "n"
            ),
            BackendError::NotFound { .. }
        ));
        assert!(matches!(
            map_error(
                object_store::Error::Precondition {
                    path: "p".into(),
                    source: "x".into()
                },
                "n"
            ),
            BackendError::PreconditionFailed { .. }
        ));
    }

    #[test]
    fn azure_names_are_identifiers_and_round_trip() {
        for (name, encoded) in [
            ("hansa-version", "hansa_2dversion"),
            ("color", "color"),
            ("my_key", "my_5fkey"),
            ("1st", "_31st"),
            ("x-amz", "x_2damz"),
        ] {
            assert_eq!(encode_azure_name(name), encoded);
            assert_eq!(decode_azure_name(encoded).as_deref(), Some(name));
            assert_eq!(
                decode_azure_name(&encoded.to_ascii_uppercase()).as_deref(),
                Some(name)
            );
        }
        assert_eq!(decode_azure_name("bad-name"), None);
        assert_eq!(decode_azure_name("_zz"), None);
    }

    proptest! {
        #[test]
        fn azure_names_round_trip(name in "[a-z0-9_.~ü-]{1,40}") {
            let encoded = encode_azure_name(&name);
            let first = encoded.chars().next().unwrap_or('0');
            prop_assert!(first.is_ascii_alphabetic() || first == '_');
            prop_assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            prop_assert_eq!(decode_azure_name(&encoded), Some(name));
        }

        #[test]
        fn meta_values_round_trip_and_are_header_safe(v in any::<String>()) {
            let encoded = encode_meta_value(&v);
            prop_assert!(encoded.bytes().all(|b| (0x20..0x7f).contains(&b)));
            prop_assert_eq!(decode_meta_value(&encoded), v);
        }

        #[test]
        fn meta_values_that_look_encoded_round_trip(v in "=\\?UTF-8\\?B\\?[A-Za-z0-9+/=]{0,12}\\?=") {
            prop_assert_eq!(decode_meta_value(&encode_meta_value(&v)), v);
        }
    }
}
