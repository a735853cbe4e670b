//! SigV4 by hand, with aws-sigv4's primitives, for the requests SDKs never send: wrong
//! regions, skewed clocks, tampered signatures, hand-built aws-chunked bodies.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;

use crate::{Key, REGION};

/// What the signature covers as the payload (`x-amz-content-sha256`).
#[derive(Clone, Debug)]
pub enum Payload {
    /// The SHA-256 of these bytes.
    Bytes(Vec<u8>),
    /// `UNSIGNED-PAYLOAD`
    Unsigned,
    /// A literal value: a (possibly wrong) hex hash or a `STREAMING-…` marker.
    Literal(String),
}

pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// Signs requests as `access_key_id` for `region` at `time`.
#[derive(Clone, Debug)]
pub struct Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub time: SystemTime,
}

impl Signer {
    pub fn new(key: Key) -> Signer {
        Signer {
            access_key_id: key.access_key_id.to_string(),
            secret_access_key: key.secret_access_key.to_string(),
            region: REGION.to_string(),
            time: SystemTime::now(),
        }
    }

    pub fn region(mut self, region: &str) -> Signer {
        self.region = region.to_string();
        self
    }

    pub fn time(mut self, time: SystemTime) -> Signer {
        self.time = time;
        self
    }

    pub fn secret(mut self, secret: &str) -> Signer {
        self.secret_access_key = secret.to_string();
        self
    }

    fn settings(&self, location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
        let mut s = SigningSettings::default();
        s.payload_checksum_kind = if location == SignatureLocation::Headers {
            PayloadChecksumKind::XAmzSha256
        } else {
            PayloadChecksumKind::NoHeader
        };
        s.percent_encoding_mode = PercentEncodingMode::Single;
        s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        s.signature_location = location;
        s.expires_in = expires;
        s
    }

    fn sign_with(
        &self,
        req: &mut http::Request<()>,
        payload: &Payload,
        location: SignatureLocation,
        expires: Option<Duration>,
    ) -> String {
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "hand",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.time)
            .settings(self.settings(location, expires))
            .build()
            .expect("signing params")
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().expect("ascii header").to_string(),
                )
            })
            .collect();
        let body = match payload {
            Payload::Bytes(b) => SignableBody::Bytes(b),
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::Literal(s) => SignableBody::Precomputed(s.clone()),
        };
        let uri = req.uri().to_string();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .expect("signable request");
        let (instructions, signature) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(req);
        signature
    }

    /// Adds `Authorization`, `x-amz-date` and `x-amz-content-sha256`; returns the signature.
    pub fn sign(&self, req: &mut http::Request<()>, payload: &Payload) -> String {
        self.sign_with(req, payload, SignatureLocation::Headers, None)
    }

    /// Turns the request's URI into a presigned URL valid for `expires`.
    pub fn presign(&self, req: &mut http::Request<()>, expires: Duration) -> String {
        self.sign_with(
            req,
            &Payload::Unsigned,
            SignatureLocation::QueryParams,
            Some(expires),
        )
    }

    fn signing_key(&self) -> impl AsRef<[u8]> {
        v4::generate_signing_key(&self.secret_access_key, self.time, &self.region, "s3")
    }

    fn scope(&self) -> String {
        format!(
            "{}/{}/s3/aws4_request",
            amz_date(self.time)[..8].to_owned(),
            self.region
        )
    }

    /// The signature of one aws-chunked chunk, chained on `previous`.
    pub fn chunk_signature(&self, previous: &str, chunk: &[u8]) -> String {
        let identity = aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "hand",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.time)
            .settings(())
            .build()
            .expect("params");
        let chunk = bytes::Bytes::copy_from_slice(chunk);
        let signed = v4::sign_chunk(&chunk, previous, &params).expect("sign chunk");
        signed.signature().to_string()
    }

    /// The signature of the trailing headers, chained on the final (empty) chunk's signature.
    pub fn trailer_signature(&self, previous: &str, trailers: &[(&str, &str)]) -> String {
        let mut sorted: Vec<_> = trailers.to_vec();
        sorted.sort_by_key(|(n, _)| n.to_ascii_lowercase());
        let mut canonical = String::new();
        for (n, v) in sorted {
            canonical.push_str(&n.to_ascii_lowercase());
            canonical.push(':');
            canonical.push_str(v.trim());
            canonical.push('\n');
        }
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            amz_date(self.time),
            self.scope(),
            previous,
            crate::sha256_hex(canonical.as_bytes())
        );
        v4::calculate_signature(self.signing_key(), string_to_sign.as_bytes())
    }
}

/// `YYYYMMDDTHHMMSSZ`
pub fn amz_date(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    dt.format(&fmt).expect("format date")
}

/// Builds an aws-chunked body signed chunk by chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD),
/// starting from the seed signature of the request's headers.
pub fn signed_chunked_body(signer: &Signer, seed: &str, data: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = seed.to_string();
    for chunk in data.chunks(chunk_size.max(1)) {
        let sig = signer.chunk_signature(&previous, chunk);
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        previous = sig;
    }
    let sig = signer.chunk_signature(&previous, &[]);
    out.extend_from_slice(format!("0;chunk-signature={sig}\r\n\r\n").as_bytes());
    out
}

/// Builds an unsigned aws-chunked body with trailing headers
/// (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
pub fn unsigned_trailer_body(data: &[u8], chunk_size: usize, trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(chunk_size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// CRC32 (IEEE) of `data`, base64 of its big-endian bytes, as in `x-amz-checksum-crc32`.
pub fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    base64::engine::general_purpose::STANDARD.encode((!crc).to_be_bytes())
}

/// Builds a signed aws-chunked body with signed trailing headers
/// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER). With `tamper_trailer`, the trailer signature
/// is corrupted.
pub fn signed_trailer_body(
    signer: &Signer,
    seed: &str,
    data: &[u8],
    chunk_size: usize,
    trailers: &[(&str, &str)],
    tamper_trailer: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = seed.to_string();
    for chunk in data.chunks(chunk_size.max(1)) {
        let sig = signer.chunk_signature(&previous, chunk);
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        previous = sig;
    }
    let final_sig = signer.chunk_signature(&previous, &[]);
    out.extend_from_slice(format!("0;chunk-signature={final_sig}\r\n").as_bytes());
    for (n, v) in trailers {
        out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
    }
    let mut trailer_sig = signer.trailer_signature(&final_sig, trailers);
    if tamper_trailer {
        let first = if trailer_sig.starts_with('0') {
            "1"
        } else {
            "0"
        };
        trailer_sig.replace_range(..1, first);
    }
    out.extend_from_slice(format!("x-amz-trailer-signature:{trailer_sig}\r\n\r\n").as_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// SigV2

/// The query parameters S3 signs in a V2 CanonicalizedResource that these tests use (the
/// gateway knows more; a test that needs another adds it here).
const V2_SUBRESOURCES: &[&str] = &[
    "acl",
    "delete",
    "location",
    "partNumber",
    "response-content-type",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
];

/// SigV2 by hand, from the S3 documentation's rules (kept apart from the gateway's code, so
/// that the two are checked against each other): `Authorization: AWS key:signature` with a
/// `Date` header, or the query form with `Expires`.
#[derive(Clone, Debug)]
pub struct SignerV2 {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl SignerV2 {
    pub fn new(key: Key) -> SignerV2 {
        SignerV2 {
            access_key_id: key.access_key_id.to_string(),
            secret_access_key: key.secret_access_key.to_string(),
        }
    }

    pub fn secret(mut self, secret: &str) -> SignerV2 {
        self.secret_access_key = secret.to_string();
        self
    }

    pub fn access_key(mut self, access_key_id: &str) -> SignerV2 {
        self.access_key_id = access_key_id.to_string();
        self
    }

    /// `VERB\nContent-MD5\nContent-Type\n<date>\n<x-amz-* headers><resource>`, the resource
    /// being `/bucket` for a virtual-host request (`Host: bucket.<BASE_DOMAIN>`), the path as
    /// sent, and the signed sub-resources sorted, values decoded.
    pub fn string_to_sign(req: &http::Request<()>, date: &str) -> String {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii header").trim().to_string())
                .unwrap_or_default()
        };
        let mut amz: Vec<(String, String)> = Vec::new();
        for (name, value) in req.headers() {
            let name = name.as_str().to_ascii_lowercase();
            if !name.starts_with("x-amz-") {
                continue;
            }
            let value = value.to_str().expect("ascii header").trim().to_string();
            match amz.iter_mut().find(|(n, _)| *n == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(&value);
                }
                None => amz.push((name, value)),
            }
        }
        amz.sort();
        let mut out = format!(
            "{}\n{}\n{}\n{date}\n",
            req.method(),
            header("content-md5"),
            header("content-type")
        );
        for (name, value) in amz {
            out.push_str(&format!("{name}:{value}\n"));
        }
        let host = header("host");
        let host = host.split(':').next().unwrap_or("");
        if let Some(bucket) = host.strip_suffix(&format!(".{}", crate::BASE_DOMAIN)) {
            out.push('/');
            out.push_str(bucket);
        }
        out.push_str(req.uri().path());
        let mut subresources: Vec<String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|piece| {
                let (name, value) = match piece.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (piece, None),
                };
                V2_SUBRESOURCES.contains(&name).then(|| match value {
                    Some(v) => format!(
                        "{name}={}",
                        percent_encoding::percent_decode_str(v).decode_utf8_lossy()
                    ),
                    None => name.to_string(),
                })
            })
            .collect();
        subresources.sort_by(|a, b| a.split('=').next().cmp(&b.split('=').next()));
        if !subresources.is_empty() {
            out.push('?');
            out.push_str(&subresources.join("&"));
        }
        out
    }

    /// Base64 HMAC-SHA1 of `string_to_sign`.
    pub fn signature(&self, string_to_sign: &str) -> String {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.secret_access_key.as_bytes())
            .expect("any key length");
        mac.update(string_to_sign.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Adds `Date` (for `time`) and `Authorization`; returns the StringToSign.
    pub fn sign(&self, req: &mut http::Request<()>, time: SystemTime) -> String {
        let date = http_date(time);
        req.headers_mut()
            .insert("date", date.parse().expect("date header"));
        let string = Self::string_to_sign(req, &date);
        let authorization = format!("AWS {}:{}", self.access_key_id, self.signature(&string));
        req.headers_mut().insert(
            "authorization",
            authorization.parse().expect("authorization header"),
        );
        string
    }

    /// Appends `AWSAccessKeyId`, `Expires` (seconds since the epoch) and `Signature` to the
    /// request's query: a presigned URL.
    pub fn presign(&self, req: &mut http::Request<()>, expires: SystemTime) {
        let expires = expires
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            .to_string();
        let string = Self::string_to_sign(req, &expires);
        let signature: String = percent_encoding::utf8_percent_encode(
            &self.signature(&string),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let uri = req.uri().to_string();
        let separator = if req.uri().query().is_some() {
            '&'
        } else {
            '?'
        };
        let presigned = format!(
            "{uri}{separator}AWSAccessKeyId={}&Expires={expires}&Signature={signature}",
            self.access_key_id
        );
        *req.uri_mut() = presigned.parse().expect("presigned URI");
    }
}

/// `Tue, 27 Mar 2007 19:36:42 GMT`
pub fn http_date(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    dt.format(&fmt).expect("format date")
}
