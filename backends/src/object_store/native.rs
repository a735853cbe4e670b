//! The providers' own protocols where object_store's API is not enough: requests signed
//! with object_store's signers ([`AwsAuthorizer`], [`AzureAuthorizer`]) and credential
//! providers and sent through a client built like the stores' own (connect and read-idle
//! timeouts), small ones retried; and the client multipart uploads that stream each part
//! straight into the provider's own multipart upload (S3 UploadPart, Azure Put Block), since
//! object_store's positional multipart API can take neither the caller's sparse part numbers
//! nor a chosen subset of them.
//!
//! Completing an upload is a staged write like any other: `s3_stage` (CompleteMultipartUpload
//! at publication) and `azure_stage` (Put Block List when staged, Copy Blob at publication).
//!
//! # Handles and receipts
//!
//! * S3: handle `<gateway upload id>:<provider UploadId>`; receipt = the part's ETag
//!   without quotes and a nonce. Uploading a part number again replaces the part at the
//!   provider; the gateway serialises same-number uploads and completes with the latest
//!   receipt (an older receipt then fails the publication with `PreconditionFailed`).
//! * Azure: handle = the gateway upload id; receipt = the block id as 64 hex digits (32
//!   bytes: 16 bytes of SHA-256 of the handle, the part number as a big-endian u32, a random
//!   8-byte nonce, the block's index in the part). Every block id on a blob has the same
//!   length (44 characters in base64, the length object_store's own block ids have).
//!
//!   Azure drops every uncommitted block of a blob when anything commits that blob, so blocks
//!   staged on the destination would be lost to a concurrent upload's completion or a plain
//!   PUT of the same key. Each upload therefore has a staging blob of its own,
//!   `.hansa/uploads/<upload id>`, created with the upload (its existence says the upload is
//!   live) and holding its blocks. The staging blob stays until abort (which the gateway also
//!   sends once the completion is committed), and goes with its blocks.
//!
//! # Attributes and stamp
//!
//! Azure takes the metadata with Put Block List, so the completed blob carries the
//! attributes and stamp given to `stage_upload`. S3's protocol fixes an object's metadata
//! when the upload is created, so an object completed that way carries the creation-time
//! attributes and stamp: its version is the upload id (the gateway completes every upload
//! under that version, see [`crate::Backend::create_upload`]). Its ETag, size and checksum
//! are not known then and are left out of the metadata (reads take the object's own size; the
//! index has the rest, and a completion's intent carries it for recovery).

use super::handle::split_s3_handle;
use super::{is_throttle_text, xml, ObjectStoreBackend};
use crate::backend::{ByteStream, ObjectAttributes, PutResult, Stamp};
use crate::error::{BackendError, Result};
use crate::naming::{is_safe_token, PhysicalName};
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::azure::{AzureAuthorizer, AzureCredential, AzureCredentialProvider};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::gcp::GcpCredentialProvider;
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, PutPayload};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH};
use reqwest::{Method, StatusCode, Url};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Azure uploads' staging blobs: created with the upload (its existence says the upload is
/// live), its blocks staged on it, committed there when a completion is staged and copied to
/// the key when it is published.
pub const AZURE_STAGING_PREFIX: &str = ".hansa/uploads/";

/// S3's URI encoding of a query value (and, without `/`, of a path).
pub(super) const STRICT_ENCODE_SET: AsciiSet = NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const STRICT_PATH_ENCODE_SET: AsciiSet = STRICT_ENCODE_SET.remove(b'/');

/// Retries of the small requests (create, complete, abort). A part's body is a stream and is
/// sent once.
#[derive(Debug, Clone)]
pub struct NativeRetry {
    pub retries: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// The provider's own multipart API, when the store has one Hansa speaks.
#[derive(Clone)]
pub enum NativeMultipart {
    /// S3's multipart protocol: S3 and S3-compatible providers, and GCS's XML API (which
    /// speaks the same requests and documents, with OAuth instead of SigV4).
    S3(Arc<S3Native>),
    Azure(Arc<AzureNative>),
}

impl std::fmt::Debug for NativeMultipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3(s) => write!(f, "NativeMultipart::S3({})", s.bucket_endpoint),
            Self::Azure(a) => write!(f, "NativeMultipart::Azure({})", a.container_url),
        }
    }
}

pub struct S3Native {
    pub client: reqwest::Client,
    pub auth: S3ProtocolAuth,
    /// `https://bucket.host` or `https://host/bucket`, without a trailing `/`.
    pub bucket_endpoint: String,
    /// The bucket's name (CopyObject names its source by bucket and key); empty: unknown,
    /// no server-side copies.
    pub bucket: String,
    pub retry: NativeRetry,
}

/// Who speaks S3's multipart protocol, and how requests are authorised.
pub enum S3ProtocolAuth {
    /// S3: SigV4.
    Aws {
        credentials: AwsCredentialProvider,
        region: String,
    },
    /// GCS's XML API: an OAuth bearer token (none when the credential's token is empty, as
    /// with an emulator's `disable_oauth`).
    Gcp { credentials: GcpCredentialProvider },
}

impl S3ProtocolAuth {
    /// The header prefix of user metadata.
    pub(super) fn meta_prefix(&self) -> &'static str {
        match self {
            Self::Aws { .. } => "x-amz-meta-",
            Self::Gcp { .. } => "x-goog-meta-",
        }
    }
}

pub struct AzureNative {
    pub client: reqwest::Client,
    pub credentials: AzureCredentialProvider,
    pub account: String,
    /// The container's URL (`https://account.blob.core.windows.net/container`).
    pub container_url: Url,
    pub retry: NativeRetry,
    /// The largest block the service takes; larger parts are staged as several blocks.
    pub max_block_bytes: u64,
}

/// A response read to its end (the small requests' answers).
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(super) enum Failure {
    /// No answer (connection, timeout).
    Network(String),
    /// The caller's body failed or did not match its announced size.
    Aborted,
}

pub(super) fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| BackendError::other(format!("invalid header name {name:?}: {e}")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|e| BackendError::other(format!("invalid value for header {name}: {e}")))?;
    Ok((n, v))
}

/// Attributes as request headers: standard ones under `standard(..)`'s names, metadata under
/// `meta_prefix`.
pub(super) fn attribute_headers(
    attributes: &Attributes,
    meta_prefix: &str,
    standard: impl Fn(&Attribute) -> Option<&'static str>,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for (k, v) in attributes {
        match k {
            Attribute::Metadata(name) => out.push(header(
                &format!("{meta_prefix}{}", name.as_ref()),
                v.as_ref(),
            )?),
            other => {
                if let Some(name) = standard(other) {
                    out.push(header(name, v.as_ref())?);
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn s3_standard(a: &Attribute) -> Option<&'static str> {
    match a {
        Attribute::ContentType => Some("content-type"),
        Attribute::ContentEncoding => Some("content-encoding"),
        Attribute::ContentDisposition => Some("content-disposition"),
        Attribute::ContentLanguage => Some("content-language"),
        Attribute::CacheControl => Some("cache-control"),
        _ => None,
    }
}

pub(super) fn azure_standard(a: &Attribute) -> Option<&'static str> {
    match a {
        Attribute::ContentType => Some("x-ms-blob-content-type"),
        Attribute::ContentEncoding => Some("x-ms-blob-content-encoding"),
        Attribute::ContentDisposition => Some("x-ms-blob-content-disposition"),
        Attribute::ContentLanguage => Some("x-ms-blob-content-language"),
        Attribute::CacheControl => Some("x-ms-blob-cache-control"),
        _ => None,
    }
}

/// An unsigned request with an empty placeholder body (the signers look at the method, URL
/// and headers; the real body is attached when sending).
fn request(
    method: Method,
    url: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
) -> Result<HttpRequest> {
    let mut req = HttpRequest::new(HttpRequestBody::from(body));
    *req.method_mut() = method;
    *req.uri_mut() = url
        .parse()
        .map_err(|e| BackendError::other(format!("invalid request URL: {e}")))?;
    for (k, v) in headers {
        req.headers_mut().insert(k, v);
    }
    Ok(req)
}

/// Sends a signed request with `body` (or the request's own bytes) and reads the answer.
pub(super) async fn send(
    client: &reqwest::Client,
    req: HttpRequest,
    body: Option<reqwest::Body>,
    aborted: Option<&AtomicBool>,
) -> std::result::Result<Reply, Failure> {
    let (parts, own) = req.into_parts();
    let body = match body {
        Some(b) => b,
        None => reqwest::Body::from(own.as_bytes().cloned().unwrap_or_default()),
    };
    let result = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await;
    let caller_failed = || aborted.is_some_and(|a| a.load(Ordering::SeqCst));
    let response = match result {
        Ok(r) => r,
        Err(_) if caller_failed() => return Err(Failure::Aborted),
        Err(e) => return Err(Failure::Network(redact_url(&e))),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return Err(Failure::Network(redact_url(&e))),
    };
    if caller_failed() {
        return Err(Failure::Aborted);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// reqwest's error text without the URL (a SAS token travels in it).
fn redact_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "(url)");
    }
    super::redact(&text)
}

/// A part's body as sent: checked against its announced size (a longer or shorter body fails
/// the request), with the caller's failure remembered in `aborted`.
fn checked_body(body: ByteStream, size: u64, aborted: Arc<AtomicBool>) -> reqwest::Body {
    reqwest::Body::wrap_stream(checked_stream(body, size, aborted))
}

fn checked_stream(body: ByteStream, size: u64, aborted: Arc<AtomicBool>) -> ByteStream {
    let seen = Arc::new(AtomicU64::new(0));
    let (seen_end, aborted_end) = (seen.clone(), aborted.clone());
    let checked = body
        .map(move |item| match item {
            Ok(chunk) => {
                let total =
                    seen.fetch_add(chunk.len() as u64, Ordering::SeqCst) + chunk.len() as u64;
                if total > size {
                    aborted.store(true, Ordering::SeqCst);
                    Err(BackendError::other("part body longer than announced"))
                } else {
                    Ok(chunk)
                }
            }
            Err(e) => {
                aborted.store(true, Ordering::SeqCst);
                Err(e)
            }
        })
        .chain(stream::once(async move {
            if seen_end.load(Ordering::SeqCst) == size {
                Ok(Bytes::new())
            } else {
                aborted_end.store(true, Ordering::SeqCst);
                Err(BackendError::other("part body shorter than announced"))
            }
        }))
        .try_filter(|chunk| futures::future::ready(!chunk.is_empty()));
    checked.boxed()
}

/// Moves exactly `len` bytes of `source` into `sink`, keeping what lies beyond in `carry` for
/// the next block. A failing or short source sends an error down the sink (so the block's
/// request fails) and is returned.
async fn feed_block(
    source: &mut ByteStream,
    carry: &mut Option<Bytes>,
    len: u64,
    mut sink: futures::channel::mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    use futures::SinkExt;
    let mut left = len;
    while left > 0 {
        let chunk = match carry.take() {
            Some(c) => c,
            None => match source.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let _ = sink.send(Err(BackendError::Aborted)).await;
                    return Err(e);
                }
                None => {
                    let _ = sink.send(Err(BackendError::Aborted)).await;
                    return Err(BackendError::other("part body shorter than announced"));
                }
            },
        };
        let mut chunk = chunk;
        if chunk.len() as u64 > left {
            *carry = Some(chunk.split_off(left as usize));
        }
        left -= chunk.len() as u64;
        // The request ended early (it failed): its error is what counts.
        if sink.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn backoff(retry: &NativeRetry, attempt: usize) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(16) as u32);
    retry
        .initial_backoff
        .saturating_mul(factor)
        .min(retry.max_backoff)
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// 16 bytes naming an Azure upload inside its block ids.
fn azure_upload_tag(handle: &str) -> [u8; 16] {
    let digest = Sha256::digest(handle.as_bytes());
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    tag
}

/// A block id: the upload's tag, the part number, a nonce of this upload of the part, and
/// the block's index within the part (a part larger than the largest block is several).
fn azure_block_id(handle: &str, part_number: u32, nonce: [u8; 8], index: u32) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&azure_upload_tag(handle));
    id[16..20].copy_from_slice(&part_number.to_be_bytes());
    id[20..28].copy_from_slice(&nonce);
    id[28..].copy_from_slice(&index.to_be_bytes());
    id
}

fn azure_nonce() -> [u8; 8] {
    let mut nonce = [0u8; 8];
    nonce.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    nonce
}

/// A receipt: the first block's id in hex, then `-<count>` when the part is several blocks.
fn azure_receipt(first: &[u8; 32], count: u32) -> String {
    match count {
        1 => hex::encode(first),
        n => format!("{}-{n}", hex::encode(first)),
    }
}

fn no_credentials(provider: &str, e: object_store::Error) -> BackendError {
    BackendError::Unauthorized {
        message: format!("no {provider} credentials: {e}"),
    }
}

pub(super) fn azure_staging_name(upload: &str) -> String {
    format!("{AZURE_STAGING_PREFIX}{upload}")
}

pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The ETag header of an answer, without quotes.
pub(super) fn reply_etag(reply: &Reply) -> Option<String> {
    header_text(&reply.headers, reqwest::header::ETAG.as_str())
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// A body made of `chunks` (shared, not copied): a part held in memory can be sent again
/// when its request is retried.
pub(super) fn chunks_body(chunks: Vec<Bytes>) -> reqwest::Body {
    match <[Bytes; 1]>::try_from(chunks) {
        Ok([one]) => reqwest::Body::from(one),
        Err(chunks) => reqwest::Body::wrap_stream(stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        )),
    }
}

pub(super) fn azure_error_code(reply: &Reply) -> Option<String> {
    header_text(&reply.headers, "x-ms-error-code").or_else(|| xml::error_code(&reply.body))
}

/// The block ids (base64, in order) a receipt of `handle`'s upload names, or `None` for a
/// receipt that is not one.
pub(super) fn azure_receipt_blocks(
    handle: &str,
    part_number: u32,
    receipt: &str,
) -> Option<Vec<String>> {
    let (first, count) = match receipt.split_once('-') {
        Some((first, count)) => (first, count.parse::<u32>().ok().filter(|&n| n > 1)?),
        None => (receipt, 1),
    };
    let raw = hex::decode(first).ok()?;
    if raw.len() != 32
        || raw[..16] != azure_upload_tag(handle)
        || raw[16..20] != part_number.to_be_bytes()
    {
        return None;
    }
    if count == 1 {
        return Some(vec![base64::engine::general_purpose::STANDARD.encode(raw)]);
    }
    if raw[28..] != 0u32.to_be_bytes() {
        return None;
    }
    let ids = (0..count)
        .map(|index| {
            let mut id = raw.clone();
            id[28..].copy_from_slice(&index.to_be_bytes());
            base64::engine::general_purpose::STANDARD.encode(id)
        })
        .collect();
    Some(ids)
}

impl ObjectStoreBackend {
    pub(super) fn native_status_error(
        &self,
        name: &str,
        what: &str,
        reply: &Reply,
    ) -> BackendError {
        let text = reply.text();
        let code = xml::error_code(&reply.body)
            .or_else(|| header_text(&reply.headers, "x-ms-error-code"))
            .unwrap_or_default();
        let message = super::redact(&format!(
            "backend {}: {what} {name}: HTTP {} {code}",
            self.id, reply.status
        ));
        match reply.status.as_u16() {
            404 => BackendError::NotFound {
                name: name.to_string(),
            },
            412 => BackendError::PreconditionFailed {
                name: name.to_string(),
            },
            401 | 403 => {
                tracing::error!(backend = %self.id, %message, "backend refused our credentials");
                BackendError::Unauthorized {
                    message: format!("backend {}: credentials refused: {message}", self.id),
                }
            }
            429 => BackendError::Throttled { message },
            503 if is_throttle_text(&code) || is_throttle_text(&text) => {
                BackendError::Throttled { message }
            }
            408 => BackendError::Unavailable { message },
            s if s >= 500 => BackendError::Unavailable { message },
            _ => BackendError::Other { message },
        }
    }

    fn native_failure(&self, name: &str, what: &str, f: Failure) -> BackendError {
        match f {
            Failure::Aborted => BackendError::Aborted,
            Failure::Network(e) => {
                BackendError::unavailable(format!("backend {}: {what} {name}: {e}", self.id))
            }
        }
    }

    /// Sends a small request (built and signed afresh per attempt), retrying network
    /// failures, 5xx and 429 with backoff. Returns the last answer, whatever its status.
    pub(super) async fn native_small<F, Fut>(
        &self,
        retry: &NativeRetry,
        name: &str,
        what: &str,
        mut attempt: F,
    ) -> Result<Reply>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<std::result::Result<Reply, Failure>>>,
    {
        let mut n = 0;
        loop {
            let result = attempt().await?;
            let retryable = match &result {
                Ok(reply) => is_transient(reply.status),
                Err(Failure::Network(_)) => true,
                Err(Failure::Aborted) => false,
            };
            if !retryable || n >= retry.retries {
                return result.map_err(|f| self.native_failure(name, what, f));
            }
            tokio::time::sleep(backoff(retry, n)).await;
            n += 1;
        }
    }

    pub(super) async fn native_create(
        &self,
        native: &NativeMultipart,
        name: &PhysicalName,
        upload_id: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String> {
        if !is_safe_token(upload_id) {
            return Err(BackendError::other(format!(
                "invalid upload id {upload_id:?}"
            )));
        }
        match native {
            NativeMultipart::S3(s3) => {
                // S3's protocol fixes the metadata now, before the object's ETag and size are
                // known.
                let attributes = creation_attributes(name, attrs, stamp, false);
                let id = self.s3_create(s3, name, &attributes).await?;
                Ok(format!("{upload_id}:{id}"))
            }
            NativeMultipart::Azure(_) => {
                let rel = azure_staging_name(upload_id);
                let path = self.join(&rel)?;
                self.store
                    .put(&path, PutPayload::from(Bytes::from(name.to_string())))
                    .await
                    .map_err(|e| self.map_err(e, &rel))?;
                Ok(upload_id.to_string())
            }
        }
    }

    pub(super) async fn native_put_part(
        &self,
        native: &NativeMultipart,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult> {
        if !(1..=10_000).contains(&part_number) {
            return Err(BackendError::other(format!(
                "part number {part_number} out of 1..=10000"
            )));
        }
        let path = self.path_of(name)?;
        let aborted = Arc::new(AtomicBool::new(false));
        let what = format!("part {part_number} of");
        let length = header(CONTENT_LENGTH.as_str(), &size.to_string())?;
        let (req, client, receipt) = match native {
            NativeMultipart::S3(s3) => {
                let (_, provider_id) = split_s3_handle(upload)?;
                let url = s3.part_url(&path, provider_id, part_number);
                let req = s3
                    .sign(Method::PUT, &url, vec![length], Bytes::new(), false)
                    .await?;
                (req, &s3.client, None)
            }
            NativeMultipart::Azure(az) => {
                if !is_safe_token(upload) {
                    return Err(BackendError::other(format!("invalid upload {upload:?}")));
                }
                if size > az.max_block_bytes {
                    return self
                        .azure_put_blocks(az, name, upload, part_number, size, body)
                        .await;
                }
                let id = azure_block_id(upload, part_number, azure_nonce(), 0);
                let url = self.azure_block_url(az, upload, &id)?;
                let req = az
                    .sign(Method::PUT, &url, vec![length], Bytes::new())
                    .await?;
                (req, &az.client, Some(azure_receipt(&id, 1)))
            }
        };
        let body = checked_body(body, size, aborted.clone());
        let reply = send(client, req, Some(body), Some(&aborted))
            .await
            .map_err(|f| self.native_failure(name.as_str(), &what, f))?;
        if !reply.status.is_success() {
            return Err(self.native_status_error(name.as_str(), &what, &reply));
        }
        let receipt = match receipt {
            Some(r) => r,
            // The ETag, and a nonce: an upload of the same bytes again gets a receipt of its
            // own.
            None => reply_etag(&reply)
                .map(|etag| {
                    let nonce = uuid::Uuid::new_v4().simple().to_string();
                    format!("{etag}.{}", &nonce[..8])
                })
                .ok_or_else(|| {
                    BackendError::unavailable(format!(
                        "backend {}: {what} {name}: no ETag in the answer",
                        self.id
                    ))
                })?,
        };
        Ok(PutResult {
            etag: receipt,
            size,
        })
    }

    /// Put Block of `id` on the upload's own staging blob, where no other writer commits.
    fn azure_block_url(&self, az: &AzureNative, upload: &str, id: &[u8; 32]) -> Result<Url> {
        let mut url = az.blob_url(&self.join(&azure_staging_name(upload))?);
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair(
                "blockid",
                &base64::engine::general_purpose::STANDARD.encode(id),
            );
        Ok(url)
    }

    /// A part larger than the largest block: consecutive blocks of at most that size, sent
    /// one after the other while the body streams through (never more than a chunk or two
    /// held).
    async fn azure_put_blocks(
        &self,
        az: &AzureNative,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult> {
        let what = format!("part {part_number} of");
        let aborted = Arc::new(AtomicBool::new(false));
        let mut source = checked_stream(body, size, aborted.clone());
        let mut carry = None;
        let nonce = azure_nonce();
        let count = u32::try_from(size.div_ceil(az.max_block_bytes))
            .map_err(|_| BackendError::other("part too large"))?;
        for index in 0..count {
            let len = az
                .max_block_bytes
                .min(size - u64::from(index) * az.max_block_bytes);
            let id = azure_block_id(upload, part_number, nonce, index);
            let url = self.azure_block_url(az, upload, &id)?;
            let length = header(CONTENT_LENGTH.as_str(), &len.to_string())?;
            let req = az
                .sign(Method::PUT, &url, vec![length], Bytes::new())
                .await?;
            let (sink, bytes) = futures::channel::mpsc::channel(1);
            let sent = send(
                &az.client,
                req,
                Some(reqwest::Body::wrap_stream(bytes)),
                Some(&aborted),
            );
            let (reply, fed) = tokio::join!(sent, feed_block(&mut source, &mut carry, len, sink));
            if fed.is_err() {
                // The caller's body failed, or was shorter or longer than announced.
                return Err(BackendError::Aborted);
            }
            let reply = reply.map_err(|f| self.native_failure(name.as_str(), &what, f))?;
            if !reply.status.is_success() {
                return Err(self.native_status_error(name.as_str(), &what, &reply));
            }
        }
        // The blocks took exactly `size` bytes (so nothing is carried over); a body longer
        // than announced shows here, as more bytes or the checked stream's error.
        if source.next().await.is_some() {
            return Err(BackendError::Aborted);
        }
        let first = azure_block_id(upload, part_number, nonce, 0);
        Ok(PutResult {
            etag: azure_receipt(&first, count),
            size,
        })
    }

    pub(super) async fn native_abort(
        &self,
        native: &NativeMultipart,
        name: &PhysicalName,
        upload: &str,
    ) -> Result<()> {
        match native {
            NativeMultipart::S3(s3) => {
                let (_, provider_id) = split_s3_handle(upload)?;
                let path = self.path_of(name)?;
                self.s3_abort(s3, path.as_ref(), provider_id, name.as_str())
                    .await
            }
            NativeMultipart::Azure(_) => {
                // Deleting the staging blob deletes its uncommitted blocks with it.
                if !is_safe_token(upload) {
                    return Ok(());
                }
                let rel = azure_staging_name(upload);
                match self.store.delete(&self.join(&rel)?).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.map_err(e, &rel)),
                }
            }
        }
    }
}

/// The part ETag in an S3 receipt (`<etag>.<nonce>`).
pub(super) fn s3_receipt_etag(receipt: &str) -> Option<&str> {
    let (etag, nonce) = receipt.rsplit_once('.')?;
    let valid = !etag.is_empty()
        && !etag.chars().any(char::is_control)
        && nonce.len() == 8
        && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(etag)
}

impl S3Native {
    /// The URL of the object whose full key (backend prefix included) is `key`.
    pub(super) fn key_url(&self, key: &str) -> String {
        format!(
            "{}/{}",
            self.bucket_endpoint,
            utf8_percent_encode(key, &STRICT_PATH_ENCODE_SET)
        )
    }

    pub(super) fn object_url(&self, path: &Path) -> String {
        self.key_url(path.as_ref())
    }

    /// The URL of the multipart upload `upload` of the object `key`.
    pub(super) fn upload_url(&self, key: &str, upload: &str) -> String {
        format!(
            "{}?uploadId={}",
            self.key_url(key),
            utf8_percent_encode(upload, &STRICT_ENCODE_SET)
        )
    }

    /// The URL of part `number` of the multipart upload `upload` of the object at `path`.
    pub(super) fn part_url(&self, path: &Path, upload: &str, number: u32) -> String {
        format!(
            "{}?partNumber={number}&uploadId={}",
            self.object_url(path),
            utf8_percent_encode(upload, &STRICT_ENCODE_SET)
        )
    }

    /// The bucket's own URL (for requests on the bucket, not an object), with a path.
    pub(super) fn bucket_url(&self) -> String {
        match Url::parse(&self.bucket_endpoint) {
            Ok(url) if url.path() == "/" => format!("{}/", self.bucket_endpoint),
            _ => self.bucket_endpoint.clone(),
        }
    }

    pub(super) async fn sign(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        sign_payload: bool,
    ) -> Result<HttpRequest> {
        let mut req = request(method, url, headers, body)?;
        match &self.auth {
            S3ProtocolAuth::Aws {
                credentials,
                region,
            } => {
                let credential = credentials
                    .get_credential()
                    .await
                    .map_err(|e| no_credentials("S3", e))?;
                AwsAuthorizer::new(&credential, "s3", region)
                    .with_sign_payload(sign_payload)
                    .authorize(&mut req, None);
            }
            S3ProtocolAuth::Gcp { credentials } => {
                let credential = credentials
                    .get_credential()
                    .await
                    .map_err(|e| no_credentials("GCS", e))?;
                if !credential.bearer.is_empty() {
                    let (name, value) = header(
                        reqwest::header::AUTHORIZATION.as_str(),
                        &format!("Bearer {}", credential.bearer),
                    )?;
                    req.headers_mut().insert(name, value);
                }
            }
        }
        Ok(req)
    }

    /// A small request, signed and sent.
    pub(super) async fn signed(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        sign_payload: bool,
    ) -> Result<std::result::Result<Reply, Failure>> {
        let req = self.sign(method, url, headers, body, sign_payload).await?;
        Ok(send(&self.client, req, None, None).await)
    }
}

impl AzureNative {
    pub(super) fn blob_url(&self, path: &Path) -> Url {
        let mut url = self.container_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(path.parts());
        }
        url
    }

    pub(super) async fn sign(
        &self,
        method: Method,
        url: &Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<HttpRequest> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| no_credentials("Azure", e))?;
        let mut req = request(method, url.as_str(), headers, body)?;
        AzureAuthorizer::new(&credential, &self.account).authorize(&mut req);
        Ok(req)
    }

    /// The SAS token's query pairs when the credential is one (a copy's source URL needs
    /// them).
    pub(super) async fn sas_pairs(&self) -> Result<Option<Vec<(String, String)>>> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| no_credentials("Azure", e))?;
        Ok(match credential.as_ref() {
            AzureCredential::SASToken(pairs) => Some(pairs.clone()),
            _ => None,
        })
    }

    pub(super) async fn signed(
        &self,
        method: Method,
        url: &Url,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<std::result::Result<Reply, Failure>> {
        let req = self.sign(method, url, headers, body).await?;
        Ok(send(&self.client, req, None, None).await)
    }
}

/// The attributes an upload is created with. Facts of the stamp not known yet are left out,
/// not written as empty or 0: a client upload's ETag and size (`known_size` false), and a
/// write's ETag when the body has not been read yet.
pub(super) fn creation_attributes(
    name: &PhysicalName,
    attrs: &ObjectAttributes,
    stamp: &Stamp,
    known_size: bool,
) -> Attributes {
    let resolved = stamp.resolved();
    let drop_etag = !known_size || resolved.etag.is_empty();
    super::encode_attributes(name, attrs, &resolved)
        .iter()
        .filter(|(k, _)| match k {
            Attribute::Metadata(n) if n == super::META_ETAG => !drop_etag,
            Attribute::Metadata(n) if n == super::META_SIZE => known_size,
            _ => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_receipts_name_their_upload_and_part() {
        let id = azure_block_id("up1", 7, azure_nonce(), 0);
        let receipt = azure_receipt(&id, 1);
        assert_eq!(receipt.len(), 64);
        let blocks = azure_receipt_blocks("up1", 7, &receipt).expect("own receipt");
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            blocks[0].len(),
            44,
            "the length of object_store's block ids"
        );
        assert!(azure_receipt_blocks("up2", 7, &receipt).is_none());
        assert!(azure_receipt_blocks("up1", 8, &receipt).is_none());
        assert!(azure_receipt_blocks("up1", 7, "0123456789abcdef").is_none());
        let again = azure_receipt(&azure_block_id("up1", 7, azure_nonce(), 0), 1);
        assert_ne!(again, receipt, "nonce");
    }

    #[test]
    fn azure_receipts_of_several_blocks_list_them_in_order() {
        let nonce = azure_nonce();
        let first = azure_block_id("up1", 3, nonce, 0);
        let receipt = azure_receipt(&first, 3);
        assert!(receipt.ends_with("-3"), "{receipt}");
        let blocks = azure_receipt_blocks("up1", 3, &receipt).expect("own receipt");
        let expected: Vec<String> = (0..3)
            .map(|i| {
                base64::engine::general_purpose::STANDARD.encode(azure_block_id("up1", 3, nonce, i))
            })
            .collect();
        assert_eq!(blocks, expected);
        let distinct: std::collections::HashSet<_> = blocks.iter().collect();
        assert_eq!(distinct.len(), 3);
        // A run must start at block 0, and hold more than one block.
        let second = azure_block_id("up1", 3, nonce, 1);
        assert!(azure_receipt_blocks("up1", 3, &azure_receipt(&second, 2)).is_none());
        assert!(azure_receipt_blocks("up1", 3, &format!("{}-1", hex::encode(first))).is_none());
        assert!(azure_receipt_blocks("up1", 3, &format!("{}-x", hex::encode(first))).is_none());
    }

    #[test]
    fn s3_receipts_carry_the_etag() {
        assert_eq!(s3_receipt_etag("abc-2.0123abcd"), Some("abc-2"));
        assert_eq!(s3_receipt_etag("a.b.0123abcd"), Some("a.b"));
        assert_eq!(s3_receipt_etag("0123456789abcdef0123456789abcdef"), None);
        assert_eq!(s3_receipt_etag(".0123abcd"), None);
    }
}
