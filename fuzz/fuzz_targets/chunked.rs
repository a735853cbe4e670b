//! The aws-chunked decoder (`Content-Encoding: aws-chunked`), in the three streaming modes.
//!
//! Input, by its first byte:
//! - `!` and structured bytes: chunks and a trailer generated from them are framed and signed
//!   as an SDK does, optionally with one byte altered, and fed in pieces of generated sizes.
//!   Unaltered, the body must decode to exactly the chunks; altered, it must either be refused
//!   or still decode to exactly the chunks (a signature's hex case, say, does not matter).
//! - anything else: the rest is a body on the wire, decoded in the mode the byte selects
//!   (unsigned with trailer, signed, signed with trailer).
//!
//! Invariants for wire bodies: the outcome does not depend on how the body is split across
//! reads; an accepted body's output is exactly its chunks' data, so its length is the sum of
//! the declared chunk sizes.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use hansa::s3::auth::chunked::ChunkedDecoder;
use hansa::s3::auth::sigv4::{sha256, signing_key, RequestDate};
use hansa::s3::auth::{ChunkSigning, PayloadCheck};
use libfuzzer_sys::fuzz_target;

const MAX_CHUNK: usize = 64 * 1024;
/// The seed signature of the AWS documentation's chunked-upload example.
const DOC_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

fn signing() -> ChunkSigning {
    let date = RequestDate::parse_amz(hansa_fuzz::AMZ_DATE).unwrap();
    ChunkSigning::new(
        hansa::s3::auth::sigv4::parse_hex32(DOC_SEED).unwrap(),
        signing_key(hansa_fuzz::SECRET, &date, "us-east-1"),
        "20130524/us-east-1/s3/aws4_request".into(),
        date.amz,
    )
}

fn payload(mode: u8) -> PayloadCheck {
    match mode % 3 {
        0 => PayloadCheck::StreamingUnsignedTrailer,
        1 => PayloadCheck::StreamingSigned(signing()),
        _ => PayloadCheck::StreamingSignedTrailer(signing()),
    }
}

type Outcome = Result<(Vec<u8>, Vec<(String, String)>), String>;

/// Feeds `body` in pieces of the given sizes (cycled; the rest in one piece if none).
fn decode(payload: &PayloadCheck, body: &[u8], pieces: &[usize]) -> Outcome {
    let mut decoder = ChunkedDecoder::for_payload(payload, MAX_CHUNK).unwrap();
    let mut out = Vec::new();
    let mut emit = |piece: Bytes| {
        out.extend_from_slice(&piece);
        Ok(())
    };
    let body = Bytes::copy_from_slice(body);
    let mut at = 0;
    let mut sizes = pieces.iter().copied().filter(|&n| n > 0).cycle();
    while at < body.len() {
        let take = sizes.next().unwrap_or(body.len()).min(body.len() - at);
        decoder
            .feed(body.slice(at..at + take), &mut emit)
            .map_err(|e| format!("{e:?}"))?;
        at += take;
    }
    decoder.finish().map_err(|e| format!("{e:?}"))?;
    Ok((out, decoder.trailers().to_vec()))
}

/// The data of an accepted body, read by the simplest possible reading of the format.
fn reference_data(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = std::str::from_utf8(&rest[..end]).unwrap();
        let size_text = line.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).unwrap();
        rest = &rest[end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

fn wire(mode: u8, body: &[u8]) {
    let payload = payload(mode);
    let whole = decode(&payload, body, &[]);
    let bytewise = decode(&payload, body, &[1]);
    let split = decode(&payload, body, &[body.len() / 2 + 1, 3, 7]);
    // Which error is reported may depend on the read boundaries; success and output may not.
    assert_eq!(whole.as_ref().ok(), bytewise.as_ref().ok());
    assert_eq!(whole.as_ref().ok(), split.as_ref().ok());
    if let Ok((data, _)) = &whole {
        assert_eq!(data, &reference_data(body));
    }
}

#[derive(Arbitrary, Debug)]
struct Generated {
    mode: u8,
    chunks: Vec<Vec<u8>>,
    checksum: Option<String>,
    lower_case_hex: bool,
    pieces: Vec<u8>,
    alter: Option<(u16, u8)>,
}

fn generated(input: &Generated) {
    let payload = payload(input.mode);
    let signing = match &payload {
        PayloadCheck::StreamingSigned(s) | PayloadCheck::StreamingSignedTrailer(s) => {
            Some(s.clone())
        }
        _ => None,
    };
    let chunks: Vec<&Vec<u8>> = input.chunks.iter().filter(|c| !c.is_empty()).collect();
    let mut body = Vec::new();
    let mut previous = signing.as_ref().map(ChunkSigning::seed_signature);
    let mut header = |size: usize, data: &[u8], body: &mut Vec<u8>| {
        let size = if input.lower_case_hex {
            format!("{size:x}")
        } else {
            format!("{size:X}")
        };
        body.extend_from_slice(size.as_bytes());
        if let (Some(signing), Some(prev)) = (&signing, previous.as_mut()) {
            let signature = signing.chunk_signature(prev, &sha256(data));
            *prev = signature;
            body.extend_from_slice(format!(";chunk-signature={}", hex(&signature)).as_bytes());
        }
        body.extend_from_slice(b"\r\n");
    };
    for chunk in &chunks {
        header(chunk.len(), chunk, &mut body);
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    header(0, b"", &mut body);
    let trailer = input
        .checksum
        .as_deref()
        .map(|v| v.trim_matches(|c: char| c.is_ascii_whitespace()))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .filter(|_| payload.has_trailer());
    if let Some(value) = trailer {
        body.extend_from_slice(format!("x-amz-checksum-crc32:{value}\r\n").as_bytes());
        if let (Some(signing), Some(prev)) = (&signing, previous) {
            let canonical = format!("x-amz-checksum-crc32:{value}\n");
            let signature = signing.trailer_signature(&prev, &sha256(canonical.as_bytes()));
            body.extend_from_slice(
                format!("x-amz-trailer-signature:{}\r\n", hex(&signature)).as_bytes(),
            );
        }
    }
    body.extend_from_slice(b"\r\n");

    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let pieces: Vec<usize> = input.pieces.iter().map(|&p| usize::from(p)).collect();
    match input.alter {
        None => {
            let (data, trailers) = decode(&payload, &body, &pieces).unwrap();
            assert_eq!(data, expected);
            let expected_trailers: Vec<(String, String)> = trailer
                .map(|v| vec![("x-amz-checksum-crc32".to_owned(), v.to_owned())])
                .unwrap_or_default();
            assert_eq!(trailers, expected_trailers);
        }
        Some((at, xor)) => {
            if xor == 0 || body.is_empty() {
                return;
            }
            let at = usize::from(at) % body.len();
            body[at] ^= xor;
            if let Ok((data, _)) = decode(&payload, &body, &pieces) {
                if signing.is_some() {
                    assert_eq!(data, expected, "altered byte {at} accepted");
                }
            }
        }
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'!', rest)) => {
            if let Ok(input) = Generated::arbitrary(&mut Unstructured::new(rest)) {
                generated(&input);
            }
        }
        Some((&mode, body)) => wire(mode, body),
        None => {}
    }
});
