//! The verifying request-body stream.
//!
//! [`verified_body`] turns a transport body into the object's bytes, checking as they pass:
//! the signed payload SHA-256, aws-chunked framing and chunk/trailer signatures, the declared
//! length, Content-MD5 and `x-amz-checksum-*` (header or trailer). Bytes are forwarded as they
//! arrive; any failure is yielded as an `Err` *instead of* the final `None`, so a consumer that
//! commits only after a clean end of stream never commits unverified data.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;

use super::auth::chunked::ChunkedDecoder;
use super::auth::{AuthSettings, PayloadCheck};
use super::digests::{Digested, Digests};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumHasher};

pub use super::body_error::BodyError;

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + 'static>>;

/// What a fully verified body turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodySummary {
    pub len: u64,
    /// Always computed: it is the object's (or part's) ETag.
    pub md5: [u8; 16],
    /// The checksum that was sent (header or trailer) or requested, computed over the data.
    pub checksum: Option<Checksum>,
}

/// Shared handle to the summary; filled just before the stream yields its final `None`.
#[derive(Clone, Debug, Default)]
pub struct BodyOutcome(Arc<Mutex<Option<BodySummary>>>);

impl BodyOutcome {
    pub fn get(&self) -> Option<BodySummary> {
        self.0.lock().ok().and_then(|summary| summary.clone())
    }

    fn set(&self, summary: BodySummary) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(summary);
        }
    }
}

/// What the body must satisfy, from the request headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyRules {
    /// Decoded object length: `Content-Length`, or `x-amz-decoded-content-length` for
    /// aws-chunked; `None` for a plain body sent with HTTP `Transfer-Encoding: chunked` and no
    /// length (Go's and Java's clients do so for bodies of unknown length).
    pub declared_len: Option<u64>,
    /// The most a body may carry; checked as it arrives when its length is unknown.
    pub max_len: u64,
    pub content_md5: Option<[u8; 16]>,
    /// `x-amz-checksum-*` header value.
    pub checksum: Option<Checksum>,
    /// Algorithm announced in `x-amz-trailer`; its value comes after the last chunk.
    pub trailer_checksum: Option<ChecksumAlgorithm>,
    /// Computed and reported even when no value was sent (`x-amz-sdk-checksum-algorithm`).
    pub compute_checksum: Option<ChecksumAlgorithm>,
}

const DECODED_LENGTH: &str = "x-amz-decoded-content-length";
const TRAILER: &str = "x-amz-trailer";
const SDK_CHECKSUM_ALGORITHM: &str = "x-amz-sdk-checksum-algorithm";
const CHECKSUM_ALGORITHM: &str = "x-amz-checksum-algorithm";

impl BodyRules {
    pub fn from_headers(headers: &HeaderMap, payload: &PayloadCheck) -> Result<Self, BodyError> {
        let length_header = if payload.is_aws_chunked() {
            DECODED_LENGTH
        } else {
            http::header::CONTENT_LENGTH.as_str()
        };
        let declared_len = match parse_length(headers, length_header) {
            Err(BodyError::MissingContentLength)
                if !payload.is_aws_chunked() && is_http_chunked(headers) =>
            {
                None
            }
            other => Some(other?),
        };
        let content_md5 = parse_content_md5(headers)?;
        let checksum = checksum_from_headers(headers)?;
        let trailer_checksum = parse_trailer(headers, payload)?;
        if checksum.is_some() && trailer_checksum.is_some() {
            return Err(BodyError::MultipleChecksums);
        }
        let compute_checksum = parse_requested_algorithm(headers)?;
        let sent = checksum.as_ref().map(|c| c.algorithm).or(trailer_checksum);
        if let (Some(sent), Some(requested)) = (sent, compute_checksum) {
            if sent != requested {
                return Err(BodyError::ChecksumAlgorithmConflict);
            }
        }
        Ok(BodyRules {
            declared_len,
            max_len: u64::MAX,
            content_md5,
            checksum,
            trailer_checksum,
            compute_checksum,
        })
    }

    /// Refuses a body longer than `max`: at once when its length is declared, as it arrives
    /// otherwise.
    pub fn limit(mut self, max: u64) -> Result<Self, BodyError> {
        if self.declared_len.is_some_and(|len| len > max) {
            return Err(BodyError::TooLarge);
        }
        self.max_len = max;
        Ok(self)
    }

    /// The single algorithm to compute, if any.
    fn algorithm(&self) -> Option<ChecksumAlgorithm> {
        self.checksum
            .as_ref()
            .map(|c| c.algorithm)
            .or(self.trailer_checksum)
            .or(self.compute_checksum)
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// HTTP/1.1 chunked framing (which hyper has already removed): the body's length is unknown.
fn is_http_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

fn parse_length(headers: &HeaderMap, name: &'static str) -> Result<u64, BodyError> {
    let text = header_str(headers, name).ok_or(BodyError::MissingContentLength)?;
    text.trim()
        .parse()
        .map_err(|_| BodyError::InvalidContentLength(name))
}

fn parse_content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, BodyError> {
    let Some(text) = header_str(headers, "content-md5") else {
        return Ok(None);
    };
    let raw = BASE64
        .decode(text.trim())
        .map_err(|_| BodyError::InvalidDigest)?;
    raw.try_into()
        .map(Some)
        .map_err(|_| BodyError::InvalidDigest)
}

fn parse_trailer(
    headers: &HeaderMap,
    payload: &PayloadCheck,
) -> Result<Option<ChecksumAlgorithm>, BodyError> {
    let Some(text) = header_str(headers, TRAILER) else {
        return Ok(None);
    };
    if !payload.has_trailer() {
        return Err(BodyError::UnexpectedTrailerHeader);
    }
    let mut algorithms = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty());
    let (Some(name), None) = (algorithms.next(), algorithms.next()) else {
        return Err(BodyError::MultipleChecksums);
    };
    ChecksumAlgorithm::from_header_name(name)
        .map(Some)
        .ok_or_else(|| BodyError::UnsupportedChecksumAlgorithm(name.to_owned()))
}

fn parse_requested_algorithm(headers: &HeaderMap) -> Result<Option<ChecksumAlgorithm>, BodyError> {
    let Some(text) = header_str(headers, SDK_CHECKSUM_ALGORITHM)
        .or_else(|| header_str(headers, CHECKSUM_ALGORITHM))
    else {
        return Ok(None);
    };
    ChecksumAlgorithm::from_name(text)
        .map(Some)
        .ok_or_else(|| BodyError::UnsupportedChecksumAlgorithm(text.trim().to_owned()))
}

/// Incremental checks over the decoded object bytes (their digests are [`Digests`]').
struct Verifier {
    rules: BodyRules,
    decoder: Option<ChunkedDecoder>,
    expected_sha256: Option<[u8; 32]>,
    len: u64,
}

impl Verifier {
    fn new(payload: &PayloadCheck, rules: BodyRules, settings: &AuthSettings) -> Self {
        let expected_sha256 = match payload {
            PayloadCheck::Sha256(hash) => Some(*hash),
            _ => None,
        };
        Verifier {
            decoder: ChunkedDecoder::for_payload(payload, settings.max_chunk_size),
            expected_sha256,
            len: 0,
            rules,
        }
    }

    /// The digests this body needs.
    fn digests(&self) -> Digests {
        Digests::new(
            self.rules.declared_len,
            self.expected_sha256.is_some(),
            self.rules.algorithm().map(|algorithm| algorithm.hasher()),
        )
    }

    /// Feeds one transport frame; decoded pieces go to `out`.
    fn feed(&mut self, frame: Bytes, out: &mut VecDeque<Bytes>) -> Result<(), BodyError> {
        let Verifier {
            rules,
            decoder,
            len,
            ..
        } = self;
        let mut accept = |piece: Bytes| -> Result<(), BodyError> {
            *len += piece.len() as u64;
            match rules.declared_len {
                Some(declared) if *len > declared => return Err(BodyError::BodyTooLong),
                None if *len > rules.max_len => return Err(BodyError::TooLarge),
                _ => {}
            }
            if !piece.is_empty() {
                out.push_back(piece);
            }
            Ok(())
        };
        match decoder {
            Some(decoder) => decoder.feed(frame, &mut accept),
            None => accept(frame),
        }
    }

    fn finish(mut self, digested: Digested) -> Result<BodySummary, BodyError> {
        if let Some(decoder) = self.decoder.as_mut() {
            decoder.finish()?;
        }
        if self
            .rules
            .declared_len
            .is_some_and(|declared| self.len != declared)
        {
            return Err(BodyError::IncompleteBody);
        }
        if let Some(expected) = self.expected_sha256 {
            let actual = digested.sha256.unwrap_or_default();
            if !bool::from(actual.ct_eq(&expected)) {
                return Err(BodyError::ContentSha256Mismatch);
            }
        }
        let md5 = digested.md5;
        if let Some(expected) = self.rules.content_md5 {
            if md5 != expected {
                return Err(BodyError::Md5Mismatch);
            }
        }
        let computed = digested.checksum.map(ChecksumHasher::finish_checksum);
        check_sent_checksum(&self.rules, self.decoder.as_ref(), computed.as_ref())?;
        Ok(BodySummary {
            len: self.len,
            md5,
            checksum: computed,
        })
    }
}

/// Compares the computed checksum with the header value or the trailer value.
fn check_sent_checksum(
    rules: &BodyRules,
    decoder: Option<&ChunkedDecoder>,
    computed: Option<&Checksum>,
) -> Result<(), BodyError> {
    let sent = match (&rules.checksum, rules.trailer_checksum) {
        (Some(header), _) => Some(header.clone()),
        (None, Some(algorithm)) => {
            let value = decoder
                .and_then(|decoder| decoder.trailer(algorithm.header_name()))
                .ok_or(BodyError::MalformedTrailer(
                    "the trailer announced in x-amz-trailer is missing",
                ))?;
            Some(Checksum::parse(algorithm, value)?)
        }
        (None, None) => None,
    };
    if let Some(decoder) = decoder {
        let announced = rules.trailer_checksum.map(|a| a.header_name());
        let stray = decoder.trailers().iter().any(|(name, _)| {
            name.starts_with("x-amz-checksum-") && Some(name.as_str()) != announced
        });
        if stray {
            return Err(BodyError::MalformedTrailer(
                "a checksum trailer was not announced in x-amz-trailer",
            ));
        }
    }
    match (sent, computed) {
        (Some(sent), Some(computed)) if sent.value != computed.value => {
            Err(BodyError::ChecksumMismatch {
                algorithm: sent.algorithm,
            })
        }
        _ => Ok(()),
    }
}

struct StreamState<B> {
    body: Pin<Box<B>>,
    verifier: Option<Verifier>,
    digests: Option<Digests>,
    pending: VecDeque<Bytes>,
    outcome: BodyOutcome,
}

impl From<crate::checksum::InvalidChecksum> for BodyError {
    fn from(e: crate::checksum::InvalidChecksum) -> Self {
        BodyError::InvalidChecksumValue {
            algorithm: e.algorithm,
        }
    }
}

/// Wraps a transport body into the verified stream of object bytes, and a handle that holds
/// the [`BodySummary`] once the stream has ended cleanly.
pub fn verified_body<B>(
    body: B,
    payload: PayloadCheck,
    rules: BodyRules,
    settings: &AuthSettings,
) -> (BodyStream, BodyOutcome)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let outcome = BodyOutcome::default();
    let verifier = Verifier::new(&payload, rules, settings);
    let state = StreamState {
        body: Box::pin(body),
        digests: Some(verifier.digests()),
        verifier: Some(verifier),
        pending: VecDeque::new(),
        outcome: outcome.clone(),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let item = next_item(&mut state).await?;
        Some((item, state))
    });
    (Box::pin(stream), outcome)
}

/// The next decoded piece, the error that ends the stream, or `None` after a clean end.
async fn next_item<B>(state: &mut StreamState<B>) -> Option<Result<Bytes, BodyError>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        if let Some(piece) = state.pending.pop_front() {
            if let Some(digests) = state.digests.as_mut() {
                digests.update(&piece).await;
            }
            return Some(Ok(piece));
        }
        let verifier = state.verifier.as_mut()?;
        let Some(frame) = state.body.frame().await else {
            match finish(state).await {
                Ok(summary) => {
                    state.outcome.set(summary);
                    return None;
                }
                Err(failure) => return Some(Err(fail(state, failure))),
            }
        };
        let failure = match frame {
            Ok(frame) => match frame.into_data() {
                // HTTP trailers are not part of S3's protocol (aws-chunked carries its own).
                Err(_) => continue,
                Ok(data) => match verifier.feed(data, &mut state.pending) {
                    Ok(()) => continue,
                    Err(error) => error,
                },
            },
            Err(error) => {
                let error: Box<dyn std::error::Error + Send + Sync> = error.into();
                if error.is::<super::pace::BodyTimeout>() {
                    BodyError::RequestTimeout
                } else {
                    BodyError::Transport(error)
                }
            }
        };
        return Some(Err(fail(state, failure)));
    }
}

/// Ends the stream with `failure`: nothing after it, not the pieces already decoded, not a
/// later `None`.
fn fail<B>(state: &mut StreamState<B>, failure: BodyError) -> BodyError {
    state.verifier = None;
    state.digests = None;
    state.pending.clear();
    failure
}

/// Checks the ended body against its digests.
async fn finish<B>(state: &mut StreamState<B>) -> Result<BodySummary, BodyError> {
    let (Some(verifier), Some(digests)) = (state.verifier.take(), state.digests.take()) else {
        return Err(BodyError::Transport(
            "the body was read past its end".into(),
        ));
    };
    let digested = digests
        .finish()
        .await
        .ok_or_else(|| BodyError::Transport("the body's digests were lost".into()))?;
    verifier.finish(digested)
}

/// The `x-amz-checksum-<alg>` header of a request, if any. More than one is an error, as in S3.
pub fn checksum_from_headers(headers: &http::HeaderMap) -> Result<Option<Checksum>, BodyError> {
    let mut found: Option<Checksum> = None;
    for algorithm in ChecksumAlgorithm::ALL {
        let mut values = headers.get_all(algorithm.header_name()).iter();
        let Some(value) = values.next() else {
            continue;
        };
        if found.is_some() || values.next().is_some() {
            return Err(BodyError::MultipleChecksums);
        }
        let text = value
            .to_str()
            .map_err(|_| BodyError::InvalidChecksumValue { algorithm })?;
        found = Some(Checksum::parse(algorithm, text).map_err(|e| {
            BodyError::InvalidChecksumValue {
                algorithm: e.algorithm,
            }
        })?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_validated() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(checksum_from_headers(&headers).ok(), Some(None));

        headers.insert("x-amz-checksum-crc32", "DUoRhQ==".parse().unwrap());
        let found = checksum_from_headers(&headers).unwrap().unwrap();
        assert_eq!(found.algorithm, ChecksumAlgorithm::Crc32);
        assert_eq!(found.value, "DUoRhQ==");

        headers.insert(
            "x-amz-checksum-sha1",
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0=".parse().unwrap(),
        );
        assert!(matches!(
            checksum_from_headers(&headers),
            Err(BodyError::MultipleChecksums)
        ));

        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-checksum-crc32", "not base64!".parse().unwrap());
        assert!(matches!(
            checksum_from_headers(&headers),
            Err(BodyError::InvalidChecksumValue { .. })
        ));
        // Valid base64 of the wrong length.
        headers.insert("x-amz-checksum-crc32", "DUoRhQA=".parse().unwrap());
        assert!(checksum_from_headers(&headers).is_err());
    }

    use crate::s3::auth::chunked::tests::{
        doc_chunked_body, doc_signing, doc_trailer_body, sign_chunks, DOC_SEED, DOC_TRAILER_SEED,
    };
    use crate::s3::auth::sigv4::sha256;
    use futures::StreamExt;
    use http_body_util::StreamBody;

    type Frame = Result<http_body::Frame<Bytes>, std::io::Error>;

    /// A transport body delivering `data` in frames of `step` bytes, optionally failing at the end.
    fn transport(
        data: &[u8],
        step: usize,
        fail: bool,
    ) -> StreamBody<futures::stream::Iter<std::vec::IntoIter<Frame>>> {
        let mut frames: Vec<Frame> = data
            .chunks(step.max(1))
            .map(|piece| Ok(http_body::Frame::data(Bytes::copy_from_slice(piece))))
            .collect();
        if fail {
            frames.push(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "gone",
            )));
        }
        StreamBody::new(futures::stream::iter(frames))
    }

    fn rules(len: u64) -> BodyRules {
        BodyRules {
            declared_len: Some(len),
            max_len: u64::MAX,
            content_md5: None,
            checksum: None,
            trailer_checksum: None,
            compute_checksum: None,
        }
    }

    /// Runs the stream to its end: the data, then `Ok(summary)` or the error that ended it.
    async fn run(
        wire: &[u8],
        step: usize,
        payload: PayloadCheck,
        rules: BodyRules,
    ) -> (Vec<u8>, Result<BodySummary, BodyError>) {
        let (mut stream, outcome) = verified_body(
            transport(wire, step, false),
            payload,
            rules,
            &AuthSettings::default(),
        );
        let mut data = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(piece) => data.extend_from_slice(&piece),
                Err(error) => {
                    assert!(stream.next().await.is_none(), "nothing after an error");
                    assert!(outcome.get().is_none());
                    return (data, Err(error));
                }
            }
        }
        let summary = outcome.get().expect("outcome after a clean end");
        (data, Ok(summary))
    }

    fn md5_of(data: &[u8]) -> [u8; 16] {
        use md5::Digest as _;
        md5::Md5::digest(data).into()
    }

    #[tokio::test]
    async fn plain_body_with_sha256_md5_and_checksum() {
        let data = b"hello world";
        let mut rules = rules(11);
        rules.content_md5 = Some(md5_of(data));
        rules.checksum = Some(Checksum::compute(ChecksumAlgorithm::Crc32, data));
        for step in [1, 4, 64] {
            let (out, result) = run(
                data,
                step,
                PayloadCheck::Sha256(sha256(data)),
                rules.clone(),
            )
            .await;
            assert_eq!(out, data);
            let summary = result.unwrap();
            assert_eq!(summary.len, 11);
            assert_eq!(summary.md5, md5_of(data));
            assert_eq!(summary.checksum.unwrap().value, "DUoRhQ==");
        }
    }

    /// A large body is hashed beside the stream (src/s3/digests.rs): the same checks, the same
    /// summary, and a mismatch still ends the stream with its error instead of a clean end.
    #[tokio::test]
    async fn a_large_body_is_checked_by_its_digests_beside_the_stream() {
        let data: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i % 251) as u8).collect();
        let len = data.len() as u64;
        let mut good = rules(len);
        good.content_md5 = Some(md5_of(&data));
        good.checksum = Some(Checksum::compute(ChecksumAlgorithm::Crc32, &data));
        let (out, result) = run(&data, 65_536, PayloadCheck::Sha256(sha256(&data)), good).await;
        assert_eq!(out.len(), data.len());
        let summary = result.expect("summary");
        assert_eq!((summary.len, summary.md5), (len, md5_of(&data)));

        let (_, result) = run(
            &data,
            65_536,
            PayloadCheck::Sha256(sha256(b"x")),
            rules(len),
        )
        .await;
        assert!(
            matches!(result, Err(BodyError::ContentSha256Mismatch)),
            "{result:?}"
        );
        let mut bad_md5 = rules(len);
        bad_md5.content_md5 = Some([0; 16]);
        let (_, result) = run(&data, 65_536, PayloadCheck::Unsigned, bad_md5).await;
        assert!(matches!(result, Err(BodyError::Md5Mismatch)), "{result:?}");
        let mut bad_checksum = rules(len);
        bad_checksum.checksum = Some(Checksum::compute(ChecksumAlgorithm::Crc32, b"x"));
        let (_, result) = run(&data, 65_536, PayloadCheck::Unsigned, bad_checksum).await;
        assert!(
            matches!(result, Err(BodyError::ChecksumMismatch { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn mismatches_end_the_stream_with_an_error() {
        let data = b"hello world";
        let (_, result) = run(data, 3, PayloadCheck::Sha256(sha256(b"other")), rules(11)).await;
        assert!(matches!(result, Err(BodyError::ContentSha256Mismatch)));

        let mut bad_md5 = rules(11);
        bad_md5.content_md5 = Some([0; 16]);
        let (_, result) = run(data, 3, PayloadCheck::Unsigned, bad_md5).await;
        assert!(matches!(result, Err(BodyError::Md5Mismatch)));

        for algorithm in ChecksumAlgorithm::ALL {
            let mut bad = rules(11);
            bad.checksum = Some(Checksum::compute(algorithm, b"hello worle"));
            let (_, result) = run(data, 3, PayloadCheck::Unsigned, bad).await;
            let error = result.unwrap_err();
            assert_eq!(error.s3_code(), "BadDigest");
            assert_eq!(
                error.to_string(),
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm.name()
                )
            );
        }
    }

    #[tokio::test]
    async fn short_long_and_broken_bodies() {
        let (_, result) = run(b"hello", 2, PayloadCheck::Unsigned, rules(6)).await;
        assert!(matches!(result, Err(BodyError::IncompleteBody)));
        let (out, result) = run(b"hello!!", 2, PayloadCheck::Unsigned, rules(5)).await;
        assert!(matches!(result, Err(BodyError::BodyTooLong)));
        assert!(out.len() <= 5, "excess bytes are never forwarded");

        let (mut stream, outcome) = verified_body(
            transport(b"hello", 5, true),
            PayloadCheck::Unsigned,
            rules(5),
            &AuthSettings::default(),
        );
        assert!(matches!(stream.next().await, Some(Ok(_))));
        assert!(matches!(
            stream.next().await,
            Some(Err(BodyError::Transport(_)))
        ));
        assert!(stream.next().await.is_none());
        assert!(outcome.get().is_none());
    }

    #[tokio::test]
    async fn unknown_length_is_counted_and_capped() {
        let mut unknown = rules(0);
        unknown.declared_len = None;
        let (out, result) = run(
            b"hello world",
            3,
            PayloadCheck::Sha256(sha256(b"hello world")),
            unknown.clone(),
        )
        .await;
        assert_eq!(out, b"hello world");
        assert_eq!(result.unwrap().len, 11);

        let capped = unknown.clone().limit(10).unwrap();
        let (out, result) = run(b"hello world", 4, PayloadCheck::Unsigned, capped).await;
        let error = result.unwrap_err();
        assert_eq!(
            (error.s3_code(), error.http_status()),
            ("EntityTooLarge", 400)
        );
        assert!(out.len() <= 10, "bytes past the limit are never forwarded");
        let exact = unknown.limit(11).unwrap();
        assert!(run(b"hello world", 4, PayloadCheck::Unsigned, exact)
            .await
            .1
            .is_ok());
        // A declared length over the limit is refused before any byte.
        assert!(matches!(rules(11).limit(10), Err(BodyError::TooLarge)));
    }

    #[tokio::test]
    async fn aws_doc_chunked_upload() {
        let payload = PayloadCheck::StreamingSigned(doc_signing(DOC_SEED));
        for step in [1000, 65536, 100_000] {
            let (out, result) = run(&doc_chunked_body(), step, payload.clone(), rules(66560)).await;
            assert_eq!(out.len(), 66560);
            assert_eq!(result.unwrap().md5, md5_of(&vec![b'a'; 66560]));
        }
        let (_, result) = run(&doc_chunked_body(), 5000, payload.clone(), rules(66559)).await;
        assert!(matches!(result, Err(BodyError::BodyTooLong)));
        let (_, result) = run(&doc_chunked_body(), 5000, payload, rules(66561)).await;
        assert!(matches!(result, Err(BodyError::IncompleteBody)));
    }

    #[tokio::test]
    async fn chunked_one_byte_frames() {
        let signing = doc_signing(DOC_SEED);
        let wire = sign_chunks(&signing, &[b"hello ", b"world"], None);
        let (out, result) = run(
            &wire,
            1,
            PayloadCheck::StreamingSigned(signing.clone()),
            rules(11),
        )
        .await;
        assert_eq!(out, b"hello world");
        assert!(result.is_ok());
        let mut tampered = wire.clone();
        let at = tampered.iter().position(|&b| b == b'w').unwrap();
        tampered[at] = b'W';
        let (_, result) = run(
            &tampered,
            1,
            PayloadCheck::StreamingSigned(signing),
            rules(11),
        )
        .await;
        assert!(matches!(result, Err(BodyError::ChunkSignatureMismatch)));
    }

    #[tokio::test]
    async fn aws_doc_signed_trailer_checksum() {
        let payload = PayloadCheck::StreamingSignedTrailer(doc_signing(DOC_TRAILER_SEED));
        let mut rules = rules(66560);
        rules.trailer_checksum = Some(ChecksumAlgorithm::Crc32c);
        let (_, result) = run(&doc_trailer_body(), 7000, payload.clone(), rules.clone()).await;
        assert_eq!(result.unwrap().checksum.unwrap().value, "sOO8/Q==");

        // Announced CRC32 but the trailer carries CRC32C.
        rules.trailer_checksum = Some(ChecksumAlgorithm::Crc32);
        let (_, result) = run(&doc_trailer_body(), 7000, payload, rules).await;
        assert!(matches!(result, Err(BodyError::MalformedTrailer(_))));
    }

    #[tokio::test]
    async fn unsigned_trailer_checksums() {
        let mut rules = rules(5);
        rules.trailer_checksum = Some(ChecksumAlgorithm::Crc32);
        let good = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n";
        let (out, result) = run(
            good,
            1,
            PayloadCheck::StreamingUnsignedTrailer,
            rules.clone(),
        )
        .await;
        assert_eq!(out, b"hello");
        assert!(result.is_ok());

        let wrong = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let (_, result) = run(
            wrong,
            4,
            PayloadCheck::StreamingUnsignedTrailer,
            rules.clone(),
        )
        .await;
        assert!(matches!(
            result,
            Err(BodyError::ChecksumMismatch {
                algorithm: ChecksumAlgorithm::Crc32
            })
        ));

        let missing = b"5\r\nhello\r\n0\r\n\r\n";
        let (_, result) = run(
            missing,
            4,
            PayloadCheck::StreamingUnsignedTrailer,
            rules.clone(),
        )
        .await;
        assert!(matches!(result, Err(BodyError::MalformedTrailer(_))));

        let garbage = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:!!\r\n\r\n";
        let (_, result) = run(garbage, 4, PayloadCheck::StreamingUnsignedTrailer, rules).await;
        assert!(matches!(
            result,
            Err(BodyError::InvalidChecksumValue { .. })
        ));
    }

    #[tokio::test]
    async fn signed_trailer_round_trip_through_the_stream() {
        let signing = doc_signing(DOC_TRAILER_SEED);
        let checksum = Checksum::compute(ChecksumAlgorithm::Sha256, b"hello");
        let wire = sign_chunks(
            &signing,
            &[b"hel", b"lo"],
            Some(("x-amz-checksum-sha256", &checksum.value)),
        );
        let mut rules = rules(5);
        rules.trailer_checksum = Some(ChecksumAlgorithm::Sha256);
        let payload = PayloadCheck::StreamingSignedTrailer(signing);
        let (out, result) = run(&wire, 1, payload, rules).await;
        assert_eq!(out, b"hello");
        assert_eq!(result.unwrap().checksum, Some(checksum));
    }

    #[test]
    fn rules_from_headers() {
        let headers = |pairs: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            map
        };
        let chunked = PayloadCheck::StreamingUnsignedTrailer;
        let rules = BodyRules::from_headers(
            &headers(&[
                ("content-length", "999"),
                ("x-amz-decoded-content-length", "5"),
                ("x-amz-trailer", "x-amz-checksum-crc64nvme"),
                ("x-amz-sdk-checksum-algorithm", "CRC64NVME"),
                ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ]),
            &chunked,
        )
        .unwrap();
        assert_eq!(rules.declared_len, Some(5));
        assert_eq!(rules.trailer_checksum, Some(ChecksumAlgorithm::Crc64Nvme));
        assert_eq!(rules.content_md5, Some(md5_of(b"hello")));

        let plain = PayloadCheck::Unsigned;
        let error = |pairs: &[(&str, &str)], payload: &PayloadCheck| {
            BodyRules::from_headers(&headers(pairs), payload).unwrap_err()
        };
        assert_eq!(error(&[], &plain).http_status(), 411);
        // Plain HTTP chunking: a body of unknown length. aws-chunked still needs its length.
        let te = [("transfer-encoding", "chunked")];
        let rules = BodyRules::from_headers(&headers(&te), &plain).unwrap();
        assert_eq!(rules.declared_len, None);
        assert_eq!(error(&te, &chunked).s3_code(), "MissingContentLength");
        assert_eq!(
            error(&[("content-length", "5")], &chunked).s3_code(),
            "MissingContentLength"
        );
        assert_eq!(
            error(&[("content-length", "x")], &plain).s3_code(),
            "InvalidArgument"
        );
        assert_eq!(
            error(&[("content-length", "5"), ("content-md5", "abc")], &plain).s3_code(),
            "InvalidDigest"
        );
        assert_eq!(
            error(
                &[
                    ("content-length", "5"),
                    ("x-amz-trailer", "x-amz-checksum-crc32")
                ],
                &plain
            )
            .s3_code(),
            "InvalidRequest"
        );
        assert_eq!(
            error(
                &[
                    ("content-length", "5"),
                    ("x-amz-sdk-checksum-algorithm", "MD4")
                ],
                &plain
            )
            .s3_code(),
            "InvalidRequest"
        );
        assert!(matches!(
            error(
                &[
                    ("content-length", "5"),
                    ("x-amz-checksum-crc32", "NhCmhg=="),
                    ("x-amz-sdk-checksum-algorithm", "SHA256")
                ],
                &plain
            ),
            BodyError::ChecksumAlgorithmConflict
        ));
    }
}
