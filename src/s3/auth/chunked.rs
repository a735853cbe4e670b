//! Incremental `aws-chunked` decoder (`Content-Encoding: aws-chunked`).
//!
//! Wire format, as the AWS SDKs write it (aws-runtime's `AwsChunkedBody`):
//!
//! ```text
//! signed:    <hex size>;chunk-signature=<64 hex>\r\n <data> \r\n … 0;chunk-signature=<sig>\r\n
//! unsigned:  <hex size>\r\n <data> \r\n … 0\r\n
//! then:      [<trailer name>:<value>\r\n …] [x-amz-trailer-signature:<sig>\r\n] \r\n
//! ```
//!
//! Bytes are pushed in as they arrive and data is handed out as zero-copy slices; nothing but a
//! header or trailer line (bounded) is buffered. A chunk's signature chains from the previous
//! one and is checked when the chunk's last byte has been seen, so a consumer must not commit
//! anything before [`ChunkedDecoder::finish`] succeeds.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::sigv4::{self, parse_hex32};
use super::{ChunkSigning, PayloadCheck};
use crate::s3::body_error::BodyError;

/// Chunk-size lines and trailer lines are short; anything longer is not aws-chunked.
const MAX_LINE: usize = 4096;
/// Trailers carry a checksum and a signature; a handful is plenty.
const MAX_TRAILERS: usize = 16;
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading `<hex size>[;ext]\r\n`.
    ChunkHeader,
    /// Inside a chunk's data.
    ChunkData,
    /// Expecting the `\r\n` after a chunk's data; `bool` = `\r` already seen.
    DataEnd(bool),
    /// After the zero-size chunk: trailer lines up to an empty line.
    Trailers,
    /// Everything has been read; further bytes are an error.
    Done,
}

/// Push decoder for one aws-chunked body.
pub struct ChunkedDecoder {
    signing: Option<ChunkSigning>,
    trailers_allowed: bool,
    max_chunk_size: usize,
    state: State,
    line: Vec<u8>,
    /// Last verified signature (the seed at first).
    previous: [u8; 32],
    /// Signature claimed in the current chunk's header.
    claimed: [u8; 32],
    chunk_hash: Sha256,
    remaining: u64,
    blank_before_trailers: bool,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<String>,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("signed", &self.signing.is_some())
            .field("state", &self.state)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// A decoder for a streaming payload mode; `None` for payloads that are not aws-chunked.
    pub fn for_payload(payload: &PayloadCheck, max_chunk_size: usize) -> Option<Self> {
        let (signing, trailers_allowed) = match payload {
            PayloadCheck::StreamingSigned(signing) => (Some(signing.clone()), false),
            PayloadCheck::StreamingSignedTrailer(signing) => (Some(signing.clone()), true),
            PayloadCheck::StreamingUnsignedTrailer => (None, true),
            PayloadCheck::Unsigned | PayloadCheck::Sha256(_) => return None,
        };
        let previous = signing
            .as_ref()
            .map(ChunkSigning::seed_signature)
            .unwrap_or_default();
        Some(ChunkedDecoder {
            signing,
            trailers_allowed,
            max_chunk_size,
            state: State::ChunkHeader,
            line: Vec::new(),
            previous,
            claimed: [0; 32],
            chunk_hash: Sha256::new(),
            remaining: 0,
            blank_before_trailers: false,
            trailers: Vec::new(),
            trailer_signature: None,
        })
    }

    /// Trailing headers received (lower-case names, trimmed values), without the signature.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(trailer, _)| trailer == name)
            .map(|(_, value)| value.as_str())
    }

    /// Consumes `input`, handing each piece of decoded data to `emit` as soon as it is seen.
    pub fn feed(
        &mut self,
        mut input: Bytes,
        emit: &mut dyn FnMut(Bytes) -> Result<(), BodyError>,
    ) -> Result<(), BodyError> {
        while !input.is_empty() {
            match self.state {
                State::ChunkHeader | State::Trailers => {
                    if let Some(line) = self.take_line(&mut input)? {
                        self.on_line(&line)?;
                    }
                }
                State::ChunkData => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let piece = input.split_to(take);
                    if self.signing.is_some() {
                        self.chunk_hash.update(&piece);
                    }
                    self.remaining -= take as u64;
                    emit(piece)?;
                    if self.remaining == 0 {
                        self.end_of_chunk_data()?;
                    }
                }
                State::DataEnd(cr_seen) => {
                    let byte = input.split_to(1);
                    self.state = match (cr_seen, byte.as_ref()) {
                        (false, b"\r") => State::DataEnd(true),
                        (true, b"\n") => State::ChunkHeader,
                        _ => {
                            return Err(BodyError::MalformedChunk(
                                "chunk data is not followed by CRLF",
                            ))
                        }
                    };
                }
                State::Done => {
                    return Err(BodyError::MalformedChunk(
                        "data after the end of the aws-chunked body",
                    ))
                }
            }
        }
        Ok(())
    }

    /// Called at the end of the transport body: everything must have been complete.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Done => Ok(()),
            State::Trailers => {
                // Tolerated: a last trailer line without CRLF, and no closing empty line (the
                // AWS documentation's own trailer example ends that way).
                if !self.line.is_empty() {
                    let line = std::mem::take(&mut self.line);
                    self.on_trailer_line(&line)?;
                }
                if self.state != State::Done {
                    self.end_of_trailers()?;
                }
                Ok(())
            }
            State::ChunkHeader | State::ChunkData | State::DataEnd(_) => {
                Err(BodyError::IncompleteBody)
            }
        }
    }

    /// Accumulates up to a `\n`; returns the line without its CRLF once complete.
    fn take_line(&mut self, input: &mut Bytes) -> Result<Option<Vec<u8>>, BodyError> {
        let newline = input.iter().position(|&b| b == b'\n');
        let take = newline.map_or(input.len(), |at| at + 1);
        if self.line.len() + take > MAX_LINE {
            return Err(self.line_too_long());
        }
        self.line.extend_from_slice(&input.split_to(take));
        if newline.is_none() {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.line);
        line.pop();
        if line.pop() != Some(b'\r') {
            return Err(self.bad_line_ending());
        }
        Ok(Some(line))
    }

    fn line_too_long(&self) -> BodyError {
        match self.state {
            State::Trailers => BodyError::MalformedTrailer("trailer line too long"),
            _ => BodyError::MalformedChunk("chunk header line too long"),
        }
    }

    fn bad_line_ending(&self) -> BodyError {
        match self.state {
            State::Trailers => BodyError::MalformedTrailer("trailer line does not end with CRLF"),
            _ => BodyError::MalformedChunk("chunk header does not end with CRLF"),
        }
    }

    fn on_line(&mut self, line: &[u8]) -> Result<(), BodyError> {
        match self.state {
            State::ChunkHeader => self.on_chunk_header(line),
            _ => self.on_trailer_line(line),
        }
    }

    fn on_chunk_header(&mut self, line: &[u8]) -> Result<(), BodyError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| BodyError::MalformedChunk("chunk header is not ASCII"))?;
        let mut fields = text.split(';');
        let size_text = fields.next().unwrap_or_default().trim();
        let size = parse_chunk_size(size_text)?;
        if size > self.max_chunk_size as u64 {
            return Err(BodyError::ChunkTooLarge {
                size,
                max: self.max_chunk_size,
            });
        }
        if self.signing.is_some() {
            self.claimed = parse_chunk_signature(fields)?;
        }
        self.chunk_hash = Sha256::new();
        self.remaining = size;
        if size == 0 {
            self.end_of_chunk_data()?;
            self.state = State::Trailers;
        } else {
            self.state = State::ChunkData;
        }
        Ok(())
    }

    /// Verifies the chunk just completed (signed mode) and moves on to its CRLF.
    fn end_of_chunk_data(&mut self) -> Result<(), BodyError> {
        if let Some(signing) = &self.signing {
            let data_hash: [u8; 32] = std::mem::take(&mut self.chunk_hash).finalize().into();
            let expected = signing.chunk_signature(&self.previous, &data_hash);
            if !bool::from(expected.ct_eq(&self.claimed)) {
                return Err(BodyError::ChunkSignatureMismatch);
            }
            self.previous = expected;
        }
        self.state = State::DataEnd(false);
        Ok(())
    }

    fn on_trailer_line(&mut self, line: &[u8]) -> Result<(), BodyError> {
        if line.is_empty() {
            // A client may put an empty line between the last chunk and its trailers; an empty
            // line after trailers (or in a mode without trailers) ends the body.
            if self.trailers_allowed && self.trailers.is_empty() && !self.blank_before_trailers {
                self.blank_before_trailers = true;
                return Ok(());
            }
            return self.end_of_trailers();
        }
        if !self.trailers_allowed {
            return Err(BodyError::MalformedTrailer(
                "trailing headers sent without a -TRAILER payload",
            ));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| BodyError::MalformedTrailer("trailer is not ASCII"))?;
        let (name, value) = text
            .split_once(':')
            .ok_or(BodyError::MalformedTrailer("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        if name.is_empty() {
            return Err(BodyError::MalformedTrailer("trailer without a name"));
        }
        if name == TRAILER_SIGNATURE {
            if self.signing.is_none() {
                return Err(BodyError::MalformedTrailer(
                    "x-amz-trailer-signature in an unsigned payload",
                ));
            }
            if self.trailer_signature.replace(value).is_some() {
                return Err(BodyError::MalformedTrailer(
                    "x-amz-trailer-signature repeated",
                ));
            }
            return Ok(());
        }
        if self.trailer_signature.is_some() {
            return Err(BodyError::MalformedTrailer(
                "trailer after x-amz-trailer-signature",
            ));
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(BodyError::MalformedTrailer("too many trailers"));
        }
        self.trailers.push((name, value));
        Ok(())
    }

    fn end_of_trailers(&mut self) -> Result<(), BodyError> {
        if let Some(signing) = &self.signing {
            if self.trailers_allowed && !self.trailers.is_empty() {
                let claimed =
                    self.trailer_signature
                        .as_deref()
                        .ok_or(BodyError::MalformedTrailer(
                            "missing x-amz-trailer-signature",
                        ))?;
                let claimed = parse_hex32(claimed).ok_or(BodyError::TrailerSignatureMismatch)?;
                let expected = signing
                    .trailer_signature(&self.previous, &canonical_trailers_hash(&self.trailers));
                if !bool::from(expected.ct_eq(&claimed)) {
                    return Err(BodyError::TrailerSignatureMismatch);
                }
            }
        }
        self.state = State::Done;
        Ok(())
    }
}

/// SHA-256 over `name:value\n` for each trailer, sorted by name (aws-sigv4's `sign_trailer`).
fn canonical_trailers_hash(trailers: &[(String, String)]) -> [u8; 32] {
    let mut sorted: Vec<&(String, String)> = trailers.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = Vec::new();
    for (name, value) in sorted {
        canonical.extend_from_slice(name.as_bytes());
        canonical.push(b':');
        canonical.extend_from_slice(value.as_bytes());
        canonical.push(b'\n');
    }
    sigv4::sha256(&canonical)
}

fn parse_chunk_size(text: &str) -> Result<u64, BodyError> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BodyError::MalformedChunk("chunk size is not a hex number"));
    }
    u64::from_str_radix(text, 16)
        .map_err(|_| BodyError::MalformedChunk("chunk size is not a hex number"))
}

fn parse_chunk_signature<'a>(
    mut extensions: impl Iterator<Item = &'a str>,
) -> Result<[u8; 32], BodyError> {
    let extension = extensions
        .next()
        .ok_or(BodyError::MalformedChunk("chunk without chunk-signature"))?;
    if extensions.next().is_some() {
        return Err(BodyError::MalformedChunk("unexpected chunk extension"));
    }
    let (name, value) = extension
        .split_once('=')
        .ok_or(BodyError::MalformedChunk("chunk without chunk-signature"))?;
    if name.trim() != "chunk-signature" {
        return Err(BodyError::MalformedChunk("chunk without chunk-signature"));
    }
    let value = value.trim();
    if value.len() != 64 {
        return Err(BodyError::ChunkSignatureMismatch);
    }
    parse_hex32(value).ok_or(BodyError::ChunkSignatureMismatch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::s3::auth::sigv4::{signing_key, RequestDate};

    pub const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    pub fn doc_signing(seed: &str) -> ChunkSigning {
        let date = RequestDate::parse_amz("20130524T000000Z").unwrap();
        ChunkSigning::new(
            parse_hex32(seed).unwrap(),
            signing_key(DOC_SECRET, &date, "us-east-1"),
            "20130524/us-east-1/s3/aws4_request".into(),
            date.amz,
        )
    }

    /// AWS docs, "Example: PUT Object" with chunked upload (66560 bytes of 'a' in 64 KiB chunks).
    pub const DOC_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

    pub fn doc_chunked_body() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        body
    }

    /// AWS docs, trailing-checksum example (same data, CRC32C trailer).
    pub const DOC_TRAILER_SEED: &str =
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";

    pub fn doc_trailer_body() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
        body.extend_from_slice(b"x-amz-checksum-crc32c:sOO8/Q==\r\n");
        body.extend_from_slice(b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n");
        body
    }

    /// Decodes `body` fed in pieces of `step` bytes.
    fn decode(
        payload: &PayloadCheck,
        body: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, ChunkedDecoder), BodyError> {
        let mut decoder = ChunkedDecoder::for_payload(payload, 1 << 20).unwrap();
        let mut out = Vec::new();
        for piece in body.chunks(step.max(1)) {
            decoder.feed(Bytes::copy_from_slice(piece), &mut |data| {
                out.extend_from_slice(&data);
                Ok(())
            })?;
        }
        decoder.finish()?;
        Ok((out, decoder))
    }

    #[test]
    fn aws_doc_signed_chunks() {
        let payload = PayloadCheck::StreamingSigned(doc_signing(DOC_SEED));
        let (data, _) = decode(&payload, &doc_chunked_body(), usize::MAX).unwrap();
        assert_eq!(data, vec![b'a'; 66560]);
        assert_eq!(doc_chunked_body().len(), 66824);
    }

    #[test]
    fn aws_doc_signed_trailer() {
        let payload = PayloadCheck::StreamingSignedTrailer(doc_signing(DOC_TRAILER_SEED));
        let (data, decoder) = decode(&payload, &doc_trailer_body(), 4096).unwrap();
        assert_eq!(data.len(), 66560);
        assert_eq!(decoder.trailer("x-amz-checksum-crc32c"), Some("sOO8/Q=="));
        // As printed in the AWS example: no CRLF after the trailer signature.
        let mut body = doc_trailer_body();
        body.truncate(body.len() - 4);
        assert!(decode(&payload, &body, 1000).is_ok());
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        // Small signed body so every byte boundary can be tried, 1-byte frames included.
        let signing = doc_signing(DOC_SEED);
        let body = sign_chunks(&signing, &[b"hello ", b"world"], None);
        let payload = PayloadCheck::StreamingSigned(signing);
        for step in 1..body.len() {
            let (data, _) = decode(&payload, &body, step).unwrap();
            assert_eq!(data, b"hello world", "step {step}");
        }
        for split in 0..body.len() {
            let mut decoder = ChunkedDecoder::for_payload(&payload, 1024).unwrap();
            let mut out = Vec::new();
            for part in [&body[..split], &body[split..]] {
                decoder
                    .feed(Bytes::copy_from_slice(part), &mut |d| {
                        out.extend_from_slice(&d);
                        Ok(())
                    })
                    .unwrap();
            }
            decoder.finish().unwrap();
            assert_eq!(out, b"hello world");
        }
    }

    /// Encodes chunks the way aws-runtime's `AwsChunkedBody` does, signing with `signing`.
    pub fn sign_chunks(
        signing: &ChunkSigning,
        chunks: &[&[u8]],
        trailer: Option<(&str, &str)>,
    ) -> Vec<u8> {
        let mut previous = signing.seed_signature();
        let mut body = Vec::new();
        for data in chunks.iter().copied().chain(std::iter::once(&b""[..])) {
            let signature = signing.chunk_signature(&previous, &sigv4::sha256(data));
            body.extend_from_slice(
                format!(
                    "{:X};chunk-signature={}\r\n",
                    data.len(),
                    hex::encode(signature)
                )
                .as_bytes(),
            );
            body.extend_from_slice(data);
            if !data.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
            previous = signature;
        }
        if let Some((name, value)) = trailer {
            let hash = sigv4::sha256(format!("{name}:{value}\n").as_bytes());
            let signature = signing.trailer_signature(&previous, &hash);
            body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            body.extend_from_slice(
                format!("x-amz-trailer-signature:{}\r\n", hex::encode(signature)).as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    #[test]
    fn tampered_chunks_fail() {
        let payload = PayloadCheck::StreamingSigned(doc_signing(DOC_SEED));
        let mut body = doc_chunked_body();
        body[200] = b'b';
        assert!(matches!(
            decode(&payload, &body, 8192),
            Err(BodyError::ChunkSignatureMismatch)
        ));
        let body = String::from_utf8(doc_chunked_body())
            .unwrap()
            .replace("ad80c730", "ad80c731");
        assert!(matches!(
            decode(&payload, body.as_bytes(), 8192),
            Err(BodyError::ChunkSignatureMismatch)
        ));
        // Dropping a chunk breaks the chain: the second chunk's signature is only valid after
        // the first.
        let signing = doc_signing(DOC_SEED);
        let both = String::from_utf8(sign_chunks(&signing, &[b"abc", b"def"], None)).unwrap();
        let payload = PayloadCheck::StreamingSigned(signing);
        assert!(decode(&payload, both.as_bytes(), 3).is_ok());
        let second = both.rfind("3;chunk-signature").unwrap();
        assert!(matches!(
            decode(&payload, &both.as_bytes()[second..], 3),
            Err(BodyError::ChunkSignatureMismatch)
        ));
    }

    #[test]
    fn framing_errors() {
        let signing = doc_signing(DOC_SEED);
        let payload = PayloadCheck::StreamingSigned(signing.clone());
        let good = sign_chunks(&signing, &[b"abc"], None);
        // Truncated anywhere before the final empty line is incomplete.
        for cut in 0..good.len() - 2 {
            let result = decode(&payload, &good[..cut], 7);
            assert!(result.is_err(), "cut {cut}");
        }
        // Bytes after the end.
        let mut long = good.clone();
        long.extend_from_slice(b"x");
        assert!(matches!(
            decode(&payload, &long, 64),
            Err(BodyError::MalformedChunk(_))
        ));
        // No CRLF after the data.
        let text = String::from_utf8(good.clone())
            .unwrap()
            .replacen("abc\r\n", "abcX\n", 1);
        assert!(decode(&payload, text.as_bytes(), 64).is_err());
        // Not hex, missing signature, endless header line.
        for bad in [
            &b"zz;chunk-signature=00\r\n"[..],
            b"3\r\nabc\r\n",
            &[b'1'; 5000],
        ] {
            assert!(matches!(
                decode(&payload, bad, 64),
                Err(BodyError::MalformedChunk(_))
            ));
        }
        // Chunk over the limit is refused before any data.
        let mut decoder =
            ChunkedDecoder::for_payload(&PayloadCheck::StreamingUnsignedTrailer, 10).unwrap();
        let result = decoder.feed(Bytes::from_static(b"B\r\n"), &mut |_| Ok(()));
        assert!(matches!(
            result,
            Err(BodyError::ChunkTooLarge { size: 11, max: 10 })
        ));
    }

    #[test]
    fn unsigned_trailer_variants() {
        let payload = PayloadCheck::StreamingUnsignedTrailer;
        for body in [
            &b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\n\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n",
            b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32 : NhCmhg== \r\n\r\n",
        ] {
            for step in [1, 3, 100] {
                let (data, decoder) = decode(&payload, body, step).unwrap();
                assert_eq!(data, b"hello");
                assert_eq!(decoder.trailer("x-amz-checksum-crc32"), Some("NhCmhg=="));
            }
        }
        let (data, decoder) = decode(&payload, b"5\r\nhello\r\n0\r\n\r\n", 2).unwrap();
        assert_eq!(data, b"hello");
        assert!(decoder.trailers().is_empty());
        assert!(matches!(
            decode(&payload, b"0\r\nx-amz-trailer-signature:00\r\n\r\n", 5),
            Err(BodyError::MalformedTrailer(_))
        ));
        assert!(matches!(
            decode(&payload, b"0\r\nno colon here\r\n\r\n", 5),
            Err(BodyError::MalformedTrailer(_))
        ));
    }

    #[test]
    fn signed_trailer_signature_is_checked() {
        let signing = doc_signing(DOC_TRAILER_SEED);
        let payload = PayloadCheck::StreamingSignedTrailer(signing.clone());
        let body = sign_chunks(
            &signing,
            &[b"hello"],
            Some(("x-amz-checksum-crc32", "NhCmhg==")),
        );
        assert!(decode(&payload, &body, 1).is_ok());
        let tampered = String::from_utf8(body.clone())
            .unwrap()
            .replace("NhCmhg==", "AAAAAA==");
        assert!(matches!(
            decode(&payload, tampered.as_bytes(), 9),
            Err(BodyError::TrailerSignatureMismatch)
        ));
        let text = String::from_utf8(body).unwrap();
        let cut = text.find("x-amz-trailer-signature").unwrap();
        let unsigned = format!("{}\r\n", &text[..cut]);
        assert!(matches!(
            decode(&payload, unsigned.as_bytes(), 9),
            Err(BodyError::MalformedTrailer(_))
        ));
        // Trailers are refused in the plain signed mode.
        let plain = PayloadCheck::StreamingSigned(signing.clone());
        let body = sign_chunks(
            &signing,
            &[b"hello"],
            Some(("x-amz-checksum-crc32", "NhCmhg==")),
        );
        assert!(decode(&plain, &body, 9).is_err());
    }
}
