//! SigV4 verification shared by header and presigned auth: credential scope, canonical request,
//! string to sign, and the constant-time signature check.
//!
//! aws-sigv4 only signs; it cannot rebuild a request exactly as a *client* signed it (it picks
//! its own signed headers). So the canonical request is rebuilt here from the client's
//! SignedHeaders, and aws-sigv4 provides key derivation and the HMAC.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use http::HeaderValue;
use percent_encoding::{percent_decode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{AuthError, AuthSettings, ChunkSigning, CredentialStore, PayloadCheck, Verified};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const SERVICE: &str = "s3";
pub const TERMINATOR: &str = "aws4_request";
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Everything but the SigV4 unreserved set (`A-Z a-z 0-9 - _ . ~`) is percent-encoded.
const ENCODE_ALL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; the fallback keeps
    // this function total without a panic path.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SigV4 URI encoding of arbitrary bytes (`/` encoded too).
pub fn uri_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, ENCODE_ALL).to_string()
}

/// Parses a 64-digit hex signature or hash (either case).
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Dates

/// The request's timestamp in the forms SigV4 needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestDate {
    pub time: SystemTime,
    /// `yyyymmddThhmmssZ`, as it goes into the string to sign.
    pub amz: String,
    /// `yyyymmdd`, as it appears in the credential scope.
    pub day: String,
}

impl RequestDate {
    fn from_datetime(datetime: OffsetDateTime) -> Self {
        let amz = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            datetime.year(),
            u8::from(datetime.month()),
            datetime.day(),
            datetime.hour(),
            datetime.minute(),
            datetime.second()
        );
        let day = amz.get(..8).unwrap_or_default().to_owned();
        RequestDate {
            time: datetime.into(),
            amz,
            day,
        }
    }

    /// Parses the ISO 8601 basic form `20130524T000000Z`.
    pub fn parse_amz(text: &str) -> Option<Self> {
        let format =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        if text.len() != 16 || !text.is_ascii() {
            return None;
        }
        let datetime = time::PrimitiveDateTime::parse(text, &format).ok()?;
        Some(Self::from_datetime(datetime.assume_utc()))
    }

    /// Parses an HTTP `Date` header (RFC 7231 forms).
    pub fn parse_http(text: &str) -> Option<Self> {
        let time = httpdate::parse_http_date(text).ok()?;
        Some(Self::from_datetime(OffsetDateTime::from(time)))
    }
}

fn distance(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

pub fn is_skewed(request: SystemTime, now: SystemTime, max: Duration) -> bool {
    distance(request, now) > max
}

/// The date of a header-authenticated request and the header it came from (which must be
/// signed). `x-amz-date` wins over `Date`, as in S3.
fn header_request_date(
    headers: &http::HeaderMap,
) -> Result<(RequestDate, &'static str), AuthError> {
    if let Some(value) = headers.get(X_AMZ_DATE) {
        let text = value.to_str().map_err(|_| AuthError::MissingDate)?;
        return RequestDate::parse_amz(text.trim())
            .map(|date| (date, X_AMZ_DATE))
            .ok_or(AuthError::MissingDate);
    }
    if let Some(value) = headers.get(http::header::DATE) {
        let text = value.to_str().map_err(|_| AuthError::MissingDate)?;
        return RequestDate::parse_http(text.trim())
            .map(|date| (date, "date"))
            .ok_or(AuthError::MissingDate);
    }
    Err(AuthError::MissingDate)
}

// ---------------------------------------------------------------------------------------------
// Credential scope

/// `<access key>/<yyyymmdd>/<region>/s3/aws4_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialScope {
    pub access_key_id: String,
    pub day: String,
    pub region: String,
}

impl CredentialScope {
    /// Parses and checks the scope. Errors are messages in AWS's words, without the prefix the
    /// caller adds for its auth mechanism.
    pub fn parse(text: &str, expected_region: &str) -> Result<Self, String> {
        const SHAPE: &str = "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
        let mut fields = text.rsplitn(5, '/');
        let (Some(terminator), Some(service), Some(region), Some(day), Some(access_key_id)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(SHAPE.to_owned());
        };
        if access_key_id.is_empty()
            || region.is_empty()
            || day.len() != 8
            || !day.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SHAPE.to_owned());
        }
        if service != SERVICE {
            return Err(format!(
                "incorrect service \"{service}\". This endpoint belongs to \"{SERVICE}\"."
            ));
        }
        if terminator != TERMINATOR {
            return Err(format!(
                "incorrect terminal \"{terminator}\". This endpoint uses \"{TERMINATOR}\"."
            ));
        }
        if region != expected_region {
            return Err(format!(
                "the region '{region}' is wrong; expecting '{expected_region}'"
            ));
        }
        Ok(CredentialScope {
            access_key_id: access_key_id.to_owned(),
            day: day.to_owned(),
            region: region.to_owned(),
        })
    }

    /// The scope as it goes into strings to sign (without the access key).
    pub fn string(&self) -> String {
        format!("{}/{}/{SERVICE}/{TERMINATOR}", self.day, self.region)
    }

    pub fn check_day(&self, date: &RequestDate) -> Result<(), String> {
        if self.day == date.day {
            Ok(())
        } else {
            Err(format!(
                "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
                self.day, date.day
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signed headers and payload hash

/// The client's SignedHeaders list: lower-case names as given, `;`-separated.
#[derive(Clone, Debug)]
pub struct SignedHeaders {
    raw: String,
    names: Vec<String>,
}

impl SignedHeaders {
    pub fn parse(text: &str) -> Option<Self> {
        let raw = text.trim();
        if raw.is_empty() {
            return None;
        }
        let names: Vec<String> = raw.split(';').map(str::to_ascii_lowercase).collect();
        if names
            .iter()
            .any(|name| name.is_empty() || name.contains(char::is_whitespace))
        {
            return None;
        }
        Some(SignedHeaders {
            raw: raw.to_owned(),
            names,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|signed| signed == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// `x-amz-*` headers a presigned request may carry unsigned. A presigned URL's payload hash
/// comes from its query, so the `x-amz-content-sha256` header is never read; the SDKs leave
/// `x-amz-user-agent` and `x-amz-checksum-mode` out of presigned signatures on purpose
/// (aws-sigv4, aws-sdk-go-v2), and neither changes what is stored: one is informational, the
/// other only adds checksum headers to a response.
const PRESIGNED_MAY_OMIT: &[&str] = &[
    X_AMZ_CONTENT_SHA256,
    "x-amz-user-agent",
    "x-amz-checksum-mode",
];

/// Every `x-amz-*` header on the request must be covered by the signature, as S3 requires.
/// Unsigned, it could be added in transit or by whoever holds a presigned URL, and would change
/// what the request does: a copy source, metadata, an ACL, a checksum. Called after the
/// signature has been verified, so that only an authenticated caller learns which headers.
pub fn check_amz_headers_signed(
    headers: &http::HeaderMap,
    signed: &SignedHeaders,
    presigned: bool,
) -> Result<(), AuthError> {
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        // Header names are lower-case in `http`; `x-amzn-trace-id` does not match the prefix.
        .filter(|name| name.starts_with("x-amz-"))
        .filter(|name| !signed.contains(name))
        .filter(|name| !(presigned && PRESIGNED_MAY_OMIT.contains(name)))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    unsigned.dedup();
    Err(AuthError::HeadersNotSigned(unsigned.join(", ")))
}

/// What `x-amz-content-sha256` (or its presigned equivalent) announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    Unsigned,
    Sha256([u8; 32]),
    StreamingSigned,
    StreamingSignedTrailer,
    StreamingUnsignedTrailer,
}

impl PayloadKind {
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        match value {
            UNSIGNED_PAYLOAD => Ok(PayloadKind::Unsigned),
            STREAMING_SIGNED => Ok(PayloadKind::StreamingSigned),
            STREAMING_SIGNED_TRAILER => Ok(PayloadKind::StreamingSignedTrailer),
            STREAMING_UNSIGNED_TRAILER => Ok(PayloadKind::StreamingUnsignedTrailer),
            other if other.len() == 64 => parse_hex32(other)
                .map(PayloadKind::Sha256)
                .ok_or(AuthError::InvalidContentSha256),
            _ => Err(AuthError::InvalidContentSha256),
        }
    }

    /// Attaches what streaming verification chains from.
    pub fn into_check(self, signing: ChunkSigning) -> PayloadCheck {
        match self {
            PayloadKind::Unsigned => PayloadCheck::Unsigned,
            PayloadKind::Sha256(hash) => PayloadCheck::Sha256(hash),
            PayloadKind::StreamingSigned => PayloadCheck::StreamingSigned(signing),
            PayloadKind::StreamingSignedTrailer => PayloadCheck::StreamingSignedTrailer(signing),
            PayloadKind::StreamingUnsignedTrailer => PayloadCheck::StreamingUnsignedTrailer,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical request

/// Canonical URIs to try. S3 signs the path exactly as sent (no normalisation, no double
/// encoding). A few clients send characters raw that they percent-encoded when signing (or use
/// lower-case hex), so a second form, each segment decoded and re-encoded, is also accepted;
/// both denote the same key, so accepting either grants nothing extra.
pub fn canonical_uri_candidates(raw_path: &str) -> Vec<String> {
    let raw = if raw_path.is_empty() { "/" } else { raw_path };
    let normalized = raw
        .split('/')
        .map(|segment| uri_encode(&percent_decode(segment.as_bytes()).collect::<Vec<u8>>()))
        .collect::<Vec<_>>()
        .join("/");
    if normalized == raw {
        vec![raw.to_owned()]
    } else {
        vec![raw.to_owned(), normalized]
    }
}

/// Decodes a query component: `+` is a space (as every SDK's signer reads it), `%XX` a byte.
pub fn decode_query_component(text: &str) -> Vec<u8> {
    let spaced = text.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

/// The query's `(name, value)` pairs, decoded.
pub fn query_pairs(raw_query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_query_component(name), decode_query_component(value))
        })
        .collect()
}

/// The one value of a query parameter (from [`query_pairs`]), as UTF-8; a repeated or
/// non-UTF-8 one refuses the request (`AuthorizationQueryParametersError`).
pub fn single_param(pairs: &[(Vec<u8>, Vec<u8>)], name: &str) -> Result<Option<String>, AuthError> {
    let mut values = pairs
        .iter()
        .filter(|(key, _)| key.as_slice() == name.as_bytes())
        .map(|(_, value)| value);
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::MalformedQuery(format!(
            "The {name} parameter appears more than once."
        )));
    }
    first
        .map(|value| {
            String::from_utf8(value.clone()).map_err(|_| {
                AuthError::MalformedQuery(format!("The {name} parameter is not valid UTF-8."))
            })
        })
        .transpose()
}

/// Canonical query string: every parameter (minus `X-Amz-Signature` for presigned URLs),
/// re-encoded with the SigV4 set and sorted by name, then value.
pub fn canonical_query(raw_query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .into_iter()
        .filter(|(name, _)| !(skip_signature && name.as_slice() == b"X-Amz-Signature"))
        .map(|(name, value)| (uri_encode(&name), uri_encode(&value)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses inner runs of spaces, as SigV4's "Trimall".
fn trim_all(value: &[u8], out: &mut Vec<u8>) {
    let trimmed = value.trim_ascii();
    let mut previous_space = false;
    for &byte in trimmed {
        let space = byte == b' ';
        if !(space && previous_space) {
            out.push(byte);
        }
        previous_space = space;
    }
}

/// `name:value\n` for each signed header, values of repeated headers joined by `,`.
/// `host` may be absent from the header map (HTTP/2 `:authority`); the URI authority stands in.
pub fn canonical_headers(parts: &http::request::Parts, signed: &SignedHeaders) -> Vec<u8> {
    let mut block = Vec::new();
    for name in signed.names() {
        block.extend_from_slice(name.as_bytes());
        block.push(b':');
        let values: Vec<&HeaderValue> = parts.headers.get_all(name.as_str()).iter().collect();
        if values.is_empty() && name == "host" {
            if let Some(authority) = parts.uri.authority() {
                block.extend_from_slice(authority.as_str().as_bytes());
            }
        }
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                block.push(b',');
            }
            trim_all(value.as_bytes(), &mut block);
        }
        block.push(b'\n');
    }
    block
}

/// The canonical request, with one of the candidate URIs.
pub fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers_block: &[u8],
    signed_headers: &str,
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + headers_block.len());
    for part in [
        method.as_bytes(),
        uri.as_bytes(),
        query.as_bytes(),
        headers_block,
    ] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

pub fn string_to_sign(datetime: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{datetime}\n{scope}\n{}",
        hex::encode(sha256(canonical_request))
    )
}

/// The derived key `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, day), region), "s3"), "aws4_request")`.
pub fn signing_key(secret: &str, date: &RequestDate, region: &str) -> [u8; 32] {
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, date.time, region, SERVICE);
    let mut out = [0u8; 32];
    let bytes = key.as_ref();
    if bytes.len() == out.len() {
        out.copy_from_slice(bytes);
    }
    out
}

fn calculate_signature(key: &[u8; 32], string_to_sign: &str) -> Option<[u8; 32]> {
    parse_hex32(&aws_sigv4::sign::v4::calculate_signature(
        key,
        string_to_sign.as_bytes(),
    ))
}

/// A parsed signature claim, from either auth mechanism.
#[derive(Debug)]
pub struct SignatureClaim<'a> {
    pub scope: &'a CredentialScope,
    pub date: &'a RequestDate,
    pub signed_headers: &'a SignedHeaders,
    /// `None` when the client's signature was not 64 hex digits; it can only fail.
    pub signature: Option<[u8; 32]>,
    /// The payload hash exactly as it goes into the canonical request.
    pub payload_hash: &'a str,
    /// Presigned URLs sign their query without `X-Amz-Signature`.
    pub presigned: bool,
}

/// Rebuilds the canonical request and checks the claimed signature in constant time.
/// Returns the signing key, which streaming payloads keep using.
pub fn verify_signature(
    parts: &http::request::Parts,
    claim: &SignatureClaim<'_>,
    secret: &str,
) -> Result<[u8; 32], AuthError> {
    let key = signing_key(secret, claim.date, &claim.scope.region);
    let scope = claim.scope.string();
    let query = canonical_query(parts.uri.query().unwrap_or(""), claim.presigned);
    let headers = canonical_headers(parts, claim.signed_headers);
    let provided = claim.signature.unwrap_or([0; 32]);
    let mut matched = subtle::Choice::from(0u8);
    for uri in canonical_uri_candidates(parts.uri.path()) {
        let canonical = canonical_request(
            parts.method.as_str(),
            &uri,
            &query,
            &headers,
            &claim.signed_headers.raw,
            claim.payload_hash,
        );
        let expected =
            calculate_signature(&key, &string_to_sign(&claim.date.amz, &scope, &canonical))
                .ok_or(AuthError::SignatureDoesNotMatch)?;
        matched |= expected.ct_eq(&provided);
    }
    if claim.signature.is_some() && bool::from(matched) {
        Ok(key)
    } else {
        Err(AuthError::SignatureDoesNotMatch)
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization header

/// The three components of `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationHeader<'a> {
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

impl<'a> AuthorizationHeader<'a> {
    pub fn parse(value: &'a str) -> Result<Self, AuthError> {
        let value = value.trim();
        let Some(rest) = value.strip_prefix(ALGORITHM) else {
            return Err(classify_unsupported(value));
        };
        if !rest.starts_with([' ', '\t']) {
            return Err(classify_unsupported(value));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for component in rest.split(',') {
            let component = component.trim();
            if component.is_empty() {
                continue;
            }
            let (name, text) = component.split_once('=').ok_or_else(|| {
                malformed_header(format!(
                    "the authorization component \"{component}\" is malformed."
                ))
            })?;
            let slot = match name.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => {
                    return Err(malformed_header(format!(
                        "the authorization component \"{component}\" is malformed."
                    )))
                }
            };
            if slot.replace(text.trim()).is_some() {
                return Err(malformed_header(format!("{name} appears more than once.")));
            }
        }
        match (credential, signed_headers, signature) {
            (Some(credential), Some(signed_headers), Some(signature)) => Ok(AuthorizationHeader {
                credential,
                signed_headers,
                signature,
            }),
            _ => Err(malformed_header(
                "expecting Credential, SignedHeaders and Signature.".to_owned(),
            )),
        }
    }
}

fn malformed_header(message: String) -> AuthError {
    AuthError::MalformedHeader(message)
}

/// SigV2 (`AWS key:sig`) and SigV4A are real S3 mechanisms we don't implement; anything else
/// is not an S3 mechanism at all.
fn classify_unsupported(value: &str) -> AuthError {
    if value.starts_with("AWS ") || value.starts_with("AWS4-ECDSA-P256-SHA256") {
        AuthError::UnsupportedMechanism
    } else {
        AuthError::UnsupportedAuthorizationType
    }
}

/// Header-based SigV4 (`Authorization: AWS4-HMAC-SHA256 …`).
pub fn authenticate_header(
    parts: &http::request::Parts,
    authorization: &HeaderValue,
    store: &CredentialStore,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let text = authorization.to_str().map_err(|_| {
        malformed_header("it contains characters that are not visible ASCII.".to_owned())
    })?;
    let header = AuthorizationHeader::parse(text)?;
    let scope =
        CredentialScope::parse(header.credential, &settings.region).map_err(malformed_header)?;
    let (date, date_header) = header_request_date(&parts.headers)?;
    scope.check_day(&date).map_err(malformed_header)?;
    let signed_headers = SignedHeaders::parse(header.signed_headers)
        .ok_or_else(|| malformed_header("the SignedHeaders component is malformed.".to_owned()))?;
    // Unsigned, these could be swapped in transit: the target host, the replay window, and
    // which payload check applies.
    let must_sign = ["host", date_header, X_AMZ_CONTENT_SHA256];
    for required in must_sign {
        let present = required == "host" || parts.headers.contains_key(required);
        if present && !signed_headers.contains(required) {
            return Err(AuthError::HeadersNotSigned(required.to_owned()));
        }
    }
    let payload_hash = parts
        .headers
        .get(X_AMZ_CONTENT_SHA256)
        .ok_or(AuthError::MissingContentSha256)?
        .to_str()
        .map_err(|_| AuthError::InvalidContentSha256)?
        .trim();
    let payload = PayloadKind::parse(payload_hash)?;
    let credential = store
        .get(&scope.access_key_id)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    if is_skewed(date.time, now, settings.max_clock_skew) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let signature = parse_hex32(header.signature).filter(|_| header.signature.len() == 64);
    let claim = SignatureClaim {
        scope: &scope,
        date: &date,
        signed_headers: &signed_headers,
        signature,
        payload_hash,
        presigned: false,
    };
    let key = verify_signature(parts, &claim, &credential.secret_access_key)?;
    check_amz_headers_signed(&parts.headers, &signed_headers, false)?;
    let seed = signature.ok_or(AuthError::SignatureDoesNotMatch)?;
    let signing = ChunkSigning::new(seed, key, scope.string(), date.amz.clone());
    Ok(Verified {
        access_key_id: credential.access_key_id.clone(),
        payload: payload.into_check(signing),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::s3::auth::{authenticate, Credential};

    pub const DOC_AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    pub const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    pub const DOC_HOST: &str = "examplebucket.s3.amazonaws.com";

    pub fn doc_time() -> SystemTime {
        RequestDate::parse_amz("20130524T000000Z")
            .map(|d| d.time)
            .unwrap()
    }

    pub fn doc_store() -> CredentialStore {
        CredentialStore::new(vec![Credential {
            access_key_id: DOC_AKID.into(),
            secret_access_key: DOC_SECRET.into(),
            buckets: None,
            read_only: false,
        }])
    }

    pub fn doc_settings() -> AuthSettings {
        AuthSettings::default()
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn auth_header(signed: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={DOC_AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={signature}"
        )
    }

    /// AWS docs, "Example: GET Object" (header auth with a Range header).
    fn doc_get_object(signature: &str) -> http::request::Parts {
        request(
            "GET",
            "/test.txt",
            &[
                ("host", DOC_HOST),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256_HEX),
                ("x-amz-date", "20130524T000000Z"),
                (
                    "authorization",
                    &auth_header("host;range;x-amz-content-sha256;x-amz-date", signature),
                ),
            ],
        )
    }

    const GET_OBJECT_SIG: &str = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

    fn run(parts: &http::request::Parts) -> Result<Verified, AuthError> {
        authenticate(parts, &doc_store(), &doc_settings(), doc_time())
    }

    #[test]
    fn aws_doc_get_object() {
        let verified = run(&doc_get_object(GET_OBJECT_SIG)).unwrap();
        assert_eq!(verified.access_key_id, DOC_AKID);
        assert_eq!(verified.payload, PayloadCheck::Sha256(sha256(b"")));
        // Upper-case hex is the same signature.
        assert!(run(&doc_get_object(&GET_OBJECT_SIG.to_uppercase())).is_ok());
    }

    #[test]
    fn aws_doc_get_object_canonical_request() {
        let parts = doc_get_object(GET_OBJECT_SIG);
        let signed = SignedHeaders::parse("host;range;x-amz-content-sha256;x-amz-date").unwrap();
        let canonical = canonical_request(
            "GET",
            "/test.txt",
            &canonical_query("", false),
            &canonical_headers(&parts, &signed),
            &signed.raw,
            EMPTY_SHA256_HEX,
        );
        assert_eq!(
            hex::encode(sha256(&canonical)),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
    }

    #[test]
    fn aws_doc_put_object_with_escaped_key_and_date_header() {
        let body_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        let parts = request(
            "PUT",
            "/test%24file.text",
            &[
                ("host", DOC_HOST),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-content-sha256", body_hash),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                (
                    "authorization",
                    &auth_header(
                        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
                    ),
                ),
            ],
        );
        let verified = run(&parts).unwrap();
        assert_eq!(
            verified.payload,
            PayloadCheck::Sha256(sha256(b"Welcome to Amazon S3."))
        );
    }

    #[test]
    fn aws_doc_get_lifecycle_and_list_objects() {
        let headers = |sig: &str| {
            vec![
                ("host", DOC_HOST.to_owned()),
                ("x-amz-content-sha256", EMPTY_SHA256_HEX.to_owned()),
                ("x-amz-date", "20130524T000000Z".to_owned()),
                (
                    "authorization",
                    auth_header("host;x-amz-content-sha256;x-amz-date", sig),
                ),
            ]
        };
        for (uri, sig) in [
            (
                "/?lifecycle",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                "/?max-keys=2&prefix=J",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
            // Parameter order on the wire does not matter.
            (
                "/?prefix=J&max-keys=2",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ] {
            let owned = headers(sig);
            let pairs: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert!(run(&request("GET", uri, &pairs)).is_ok(), "{uri}");
        }
    }

    #[test]
    fn tampering_is_detected() {
        let mut wrong = GET_OBJECT_SIG.to_owned();
        wrong.replace_range(0..1, "0");
        assert_eq!(
            run(&doc_get_object(&wrong)).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        assert_eq!(
            run(&doc_get_object("abc")).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts.headers.insert("range", "bytes=0-10".parse().unwrap());
        assert_eq!(run(&parts).unwrap_err(), AuthError::SignatureDoesNotMatch);
        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts.uri = "/test.txu".parse().unwrap();
        assert_eq!(run(&parts).unwrap_err(), AuthError::SignatureDoesNotMatch);
    }

    #[test]
    fn clock_skew_and_unknown_keys() {
        let parts = doc_get_object(GET_OBJECT_SIG);
        let late = doc_time() + Duration::from_secs(16 * 60);
        assert_eq!(
            authenticate(&parts, &doc_store(), &doc_settings(), late).unwrap_err(),
            AuthError::RequestTimeTooSkewed
        );
        let early = doc_time() - Duration::from_secs(16 * 60);
        assert_eq!(
            authenticate(&parts, &doc_store(), &doc_settings(), early).unwrap_err(),
            AuthError::RequestTimeTooSkewed
        );
        let slightly = doc_time() + Duration::from_secs(14 * 60);
        assert!(authenticate(&parts, &doc_store(), &doc_settings(), slightly).is_ok());
        assert_eq!(
            authenticate(
                &parts,
                &CredentialStore::default(),
                &doc_settings(),
                doc_time()
            )
            .unwrap_err(),
            AuthError::InvalidAccessKeyId
        );
    }

    #[test]
    fn wrong_region_and_malformed_scope() {
        let parts = doc_get_object(GET_OBJECT_SIG);
        let settings = AuthSettings {
            region: "eu-central-1".into(),
            ..AuthSettings::default()
        };
        let error = authenticate(&parts, &doc_store(), &settings, doc_time()).unwrap_err();
        assert_eq!(error.s3_code(), "AuthorizationHeaderMalformed");
        assert!(error.to_string().contains("'us-east-1' is wrong"));

        for credential in [
            "AKID/20130524/us-east-1/s3",
            "AKID/2013052/us-east-1/s3/aws4_request",
            "AKID/20130524/us-east-1/ec2/aws4_request",
            "AKID/20130524/us-east-1/s3/aws5_request",
            "/20130524/us-east-1/s3/aws4_request",
        ] {
            let mut parts = doc_get_object(GET_OBJECT_SIG);
            let value = format!(
                "AWS4-HMAC-SHA256 Credential={credential},SignedHeaders=host,Signature={GET_OBJECT_SIG}"
            );
            parts
                .headers
                .insert("authorization", value.parse().unwrap());
            assert_eq!(
                run(&parts).unwrap_err().s3_code(),
                "AuthorizationHeaderMalformed",
                "{credential}"
            );
        }
    }

    #[test]
    fn header_shape_errors() {
        // SigV2 headers (`AWS key:signature`) are sigv2.rs's, tested there.
        let cases: [(&str, &str); 5] = [
            ("AWS4-ECDSA-P256-SHA256 Credential=x", "InvalidRequest"),
            ("Bearer abc", "InvalidArgument"),
            (
                "AWS4-HMAC-SHA256 Credential=x",
                "AuthorizationHeaderMalformed",
            ),
            ("AWS4-HMAC-SHA256Credential=x", "InvalidArgument"),
            (
                "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=x, Extra=1",
                "AuthorizationHeaderMalformed",
            ),
        ];
        for (value, code) in cases {
            let mut parts = doc_get_object(GET_OBJECT_SIG);
            parts
                .headers
                .insert("authorization", value.parse().unwrap());
            assert_eq!(run(&parts).unwrap_err().s3_code(), code, "{value}");
        }
    }

    #[test]
    fn required_headers() {
        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts.headers.remove("x-amz-date");
        assert_eq!(run(&parts).unwrap_err(), AuthError::MissingDate);

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts
            .headers
            .insert("x-amz-date", "yesterday".parse().unwrap());
        assert_eq!(run(&parts).unwrap_err(), AuthError::MissingDate);

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts.headers.remove("x-amz-content-sha256");
        let value = auth_header("host;range;x-amz-date", GET_OBJECT_SIG);
        parts
            .headers
            .insert("authorization", value.parse().unwrap());
        assert_eq!(run(&parts).unwrap_err(), AuthError::MissingContentSha256);

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts
            .headers
            .insert("x-amz-content-sha256", "nonsense".parse().unwrap());
        assert_eq!(run(&parts).unwrap_err(), AuthError::InvalidContentSha256);

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        let value = auth_header("range;x-amz-content-sha256;x-amz-date", GET_OBJECT_SIG);
        parts
            .headers
            .insert("authorization", value.parse().unwrap());
        assert_eq!(
            run(&parts).unwrap_err(),
            AuthError::HeadersNotSigned("host".into())
        );

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        let value = auth_header("host;range;x-amz-date", GET_OBJECT_SIG);
        parts
            .headers
            .insert("authorization", value.parse().unwrap());
        assert_eq!(
            run(&parts).unwrap_err(),
            AuthError::HeadersNotSigned("x-amz-content-sha256".into())
        );

        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts
            .headers
            .insert("x-amz-date", "20130525T000000Z".parse().unwrap());
        assert_eq!(
            run(&parts).unwrap_err().s3_code(),
            "AuthorizationHeaderMalformed"
        );

        let parts = request("GET", "/", &[("host", DOC_HOST)]);
        assert_eq!(run(&parts).unwrap_err(), AuthError::Anonymous);
    }

    #[test]
    fn host_from_uri_authority_when_header_is_missing() {
        let mut parts = doc_get_object(GET_OBJECT_SIG);
        parts.headers.remove("host");
        parts.uri = format!("https://{DOC_HOST}/test.txt").parse().unwrap();
        assert!(run(&parts).is_ok());
    }

    #[test]
    fn canonical_pieces() {
        assert_eq!(
            canonical_query("b=2&a=x%2Fy&a=1&flag&c=a+b&d=%7e", false),
            "a=1&a=x%2Fy&b=2&c=a%20b&d=~&flag="
        );
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
        assert_eq!(
            canonical_uri_candidates("/a/b%2Fc"),
            vec!["/a/b%2Fc".to_owned()]
        );
        assert_eq!(
            canonical_uri_candidates("/a(b)/c%2f"),
            vec!["/a(b)/c%2f".to_owned(), "/a%28b%29/c%2F".to_owned()]
        );
        assert_eq!(canonical_uri_candidates(""), vec!["/".to_owned()]);
        let mut out = Vec::new();
        trim_all(b"  a   b  c ", &mut out);
        assert_eq!(out, b"a b c");
    }

    // --- Round trips against aws-sigv4's signer, the same code aws-sdk-s3 uses. ---------------

    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SignatureLocation, SigningSettings, UriPathNormalizationMode,
    };

    pub fn sdk_settings(location: SignatureLocation, expires: Option<Duration>) -> SigningSettings {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.signature_location = location;
        settings.expires_in = expires;
        settings
    }

    /// Signs like aws-sdk-s3 and returns the request parts as the server would see them.
    pub fn sdk_sign(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
        settings: SigningSettings,
        time: SystemTime,
    ) -> http::request::Parts {
        let credentials =
            aws_credential_types::Credentials::new(DOC_AKID, DOC_SECRET, None, None, "test");
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(method, uri, headers.iter().copied(), body).unwrap();
        let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        request.into_parts().0
    }

    #[test]
    fn round_trip_header_auth_with_sdk_signer() {
        let now = SystemTime::now();
        let uri =
            "https://bucket.example.com:9000/dir/some%20key%2Bplus~%E2%82%AC?uploads=&x-id=Put%2FX";
        for body in [
            SignableBody::Bytes(b"payload"),
            SignableBody::UnsignedPayload,
            SignableBody::StreamingUnsignedPayloadTrailer,
        ] {
            let parts = sdk_sign(
                "PUT",
                uri,
                &[
                    ("host", "bucket.example.com:9000"),
                    ("content-type", "text/plain"),
                    ("x-amz-meta-note", "  spaced   out  "),
                ],
                body.clone(),
                sdk_settings(SignatureLocation::Headers, None),
                now,
            );
            let verified = authenticate(&parts, &doc_store(), &doc_settings(), now).unwrap();
            let expected = match body {
                SignableBody::Bytes(bytes) => PayloadCheck::Sha256(sha256(bytes)),
                SignableBody::UnsignedPayload => PayloadCheck::Unsigned,
                _ => PayloadCheck::StreamingUnsignedTrailer,
            };
            assert_eq!(verified.payload, expected);

            let mut tampered = parts.clone();
            tampered
                .headers
                .insert("x-amz-meta-note", "other".parse().unwrap());
            assert_eq!(
                authenticate(&tampered, &doc_store(), &doc_settings(), now).unwrap_err(),
                AuthError::SignatureDoesNotMatch
            );
        }
    }

    fn signed_put(location: SignatureLocation, now: SystemTime) -> http::request::Parts {
        let expires = (location == SignatureLocation::QueryParams).then(|| Duration::from_secs(60));
        sdk_sign(
            "PUT",
            "https://bucket.example.com/upload/key",
            &[
                ("host", "bucket.example.com"),
                ("x-amz-meta-note", "signed"),
            ],
            SignableBody::UnsignedPayload,
            sdk_settings(location, expires),
            now,
        )
    }

    fn with_headers(parts: &http::request::Parts, added: &[(&str, &str)]) -> http::request::Parts {
        let mut parts = parts.clone();
        for (name, value) in added {
            parts.headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        parts
    }

    #[test]
    fn unsigned_amz_headers_are_refused_for_both_mechanisms() {
        let now = SystemTime::now();
        for location in [SignatureLocation::Headers, SignatureLocation::QueryParams] {
            let parts = signed_put(location, now);
            assert!(authenticate(&parts, &doc_store(), &doc_settings(), now).is_ok());
            let cases: [(&[(&str, &str)], &str); 4] = [
                (
                    &[("x-amz-copy-source", "other/secret")],
                    "x-amz-copy-source",
                ),
                (
                    &[("x-amz-meta-evil", "1"), ("x-amz-acl", "public-read")],
                    "x-amz-acl, x-amz-meta-evil",
                ),
                (
                    &[
                        ("x-amz-checksum-crc32", "AAAAAA=="),
                        ("X-Amz-Checksum-CRC32", "x"),
                    ],
                    "x-amz-checksum-crc32",
                ),
                (&[("x-amz-tagging", "a=b")], "x-amz-tagging"),
            ];
            for (added, names) in cases {
                let error = authenticate(
                    &with_headers(&parts, added),
                    &doc_store(),
                    &doc_settings(),
                    now,
                )
                .unwrap_err();
                assert_eq!(
                    error,
                    AuthError::HeadersNotSigned(names.into()),
                    "{location:?}"
                );
                assert_eq!(error.s3_code(), "AccessDenied");
                assert_eq!(error.http_status(), 403);
                assert_eq!(error.headers_not_signed(), Some(names));
                assert_eq!(
                    error.to_string(),
                    "There were headers present in the request which were not signed"
                );
            }
            // Not an x-amz-* header: SDKs leave it unsigned on purpose.
            let traced = with_headers(&parts, &[("x-amzn-trace-id", "Root=1-abc")]);
            assert!(authenticate(&traced, &doc_store(), &doc_settings(), now).is_ok());
            // A second value of a signed name is covered (it changes the canonical request).
            let doubled = with_headers(&parts, &[("x-amz-meta-note", "evil")]);
            assert_eq!(
                authenticate(&doubled, &doc_store(), &doc_settings(), now).unwrap_err(),
                AuthError::SignatureDoesNotMatch
            );
            // A bad signature is reported as such, whatever else is wrong.
            let mut forged = with_headers(&parts, &[("x-amz-copy-source", "other/secret")]);
            forged
                .headers
                .insert("x-amz-meta-note", "changed".parse().unwrap());
            assert_eq!(
                authenticate(&forged, &doc_store(), &doc_settings(), now).unwrap_err(),
                AuthError::SignatureDoesNotMatch
            );
        }
    }

    #[test]
    fn presigned_exemptions_are_exactly_the_documented_ones() {
        let now = SystemTime::now();
        let presigned = signed_put(SignatureLocation::QueryParams, now);
        for name in [
            "x-amz-content-sha256",
            "x-amz-user-agent",
            "x-amz-checksum-mode",
        ] {
            let parts = with_headers(&presigned, &[(name, "ENABLED")]);
            assert!(
                authenticate(&parts, &doc_store(), &doc_settings(), now).is_ok(),
                "{name}"
            );
        }
        // Header auth has no such exemptions.
        let header = signed_put(SignatureLocation::Headers, now);
        for name in ["x-amz-user-agent", "x-amz-checksum-mode"] {
            let parts = with_headers(&header, &[(name, "ENABLED")]);
            assert_eq!(
                authenticate(&parts, &doc_store(), &doc_settings(), now).unwrap_err(),
                AuthError::HeadersNotSigned(name.into())
            );
        }
        // A header does not count as signed because the query carries a parameter of that name
        // (S3 refuses the header then too): the gateway reads the header, not the parameter.
        let hoisted = sdk_sign(
            "PUT",
            "https://bucket.example.com/upload/key?x-amz-acl=private",
            &[("host", "bucket.example.com")],
            SignableBody::UnsignedPayload,
            sdk_settings(
                SignatureLocation::QueryParams,
                Some(Duration::from_secs(60)),
            ),
            now,
        );
        assert!(authenticate(&hoisted, &doc_store(), &doc_settings(), now).is_ok());
        let parts = with_headers(&hoisted, &[("x-amz-acl", "public-read")]);
        assert_eq!(
            authenticate(&parts, &doc_store(), &doc_settings(), now).unwrap_err(),
            AuthError::HeadersNotSigned("x-amz-acl".into())
        );
    }

    #[test]
    fn round_trip_streaming_signed_gives_chunk_context() {
        let now = SystemTime::now();
        let parts = sdk_sign(
            "PUT",
            "https://bucket.example.com/key",
            &[
                ("host", "bucket.example.com"),
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "10"),
            ],
            SignableBody::Precomputed(STREAMING_SIGNED.to_owned()),
            sdk_settings(SignatureLocation::Headers, None),
            now,
        );
        let verified = authenticate(&parts, &doc_store(), &doc_settings(), now).unwrap();
        let PayloadCheck::StreamingSigned(signing) = verified.payload else {
            panic!("expected streaming payload, got {:?}", verified.payload);
        };
        assert!(signing.scope().ends_with("/us-east-1/s3/aws4_request"));
    }
}
