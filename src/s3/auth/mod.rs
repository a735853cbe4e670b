//! Request authentication: SigV4 (Authorization header, presigned query, and the signing
//! context the body verifier needs for `aws-chunked` streaming uploads) and SigV2 (header and
//! query forms, [`sigv2`]), both ending in the same [`Verified`].
//!
//! [`authenticate`] runs before any side effect. It checks everything that can be checked from
//! the request head; the payload (SHA-256, chunk and trailer signatures) is checked by
//! [`crate::s3::body::verified_body`] as the bytes arrive, driven by [`Verified::payload`].

pub mod chunked;
pub mod credentials;
pub mod presigned;
pub mod sigv2;
pub mod sigv4;

use std::fmt;
use std::time::{Duration, SystemTime};

pub use credentials::{Credential, CredentialStore};

/// Limits and identity of this gateway as a SigV4 "region".
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The region clients must sign for (the credential scope's region).
    pub region: String,
    /// Largest accepted distance between the request's date and our clock.
    pub max_clock_skew: Duration,
    /// Largest accepted `X-Amz-Expires` for presigned URLs.
    pub max_presigned_expiry: Duration,
    /// Largest accepted aws-chunked chunk; bounds what a client can make us parse per chunk.
    pub max_chunk_size: usize,
    /// Whether SigV2 (`AWS key:signature`, `AWSAccessKeyId`/`Signature`/`Expires`) is accepted;
    /// when not, it gets the InvalidRequest answer of a V4-only S3 region.
    pub signature_v2: bool,
    /// `server.base_domains`: SigV2 signs the bucket of a virtual-host request in its resource.
    pub base_domains: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            region: "us-east-1".to_owned(),
            max_clock_skew: Duration::from_secs(15 * 60),
            max_presigned_expiry: Duration::from_secs(7 * 24 * 60 * 60),
            max_chunk_size: 16 * 1024 * 1024,
            signature_v2: true,
            base_domains: Vec::new(),
        }
    }
}

/// A request whose head carried a valid signature.
#[derive(Clone, Debug)]
pub struct Verified {
    pub access_key_id: String,
    /// What the body must still prove.
    pub payload: PayloadCheck,
}

/// How the request body is authenticated (from `x-amz-content-sha256`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadCheck {
    /// `UNSIGNED-PAYLOAD`, or a presigned URL without a content hash.
    Unsigned,
    /// A hex SHA-256 was signed: the body must hash to it.
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked, every chunk signed.
    StreamingSigned(ChunkSigning),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks, then signed trailers.
    StreamingSignedTrailer(ChunkSigning),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked without signatures, with trailers.
    StreamingUnsignedTrailer,
}

impl PayloadCheck {
    /// The body uses `aws-chunked` framing.
    pub fn is_aws_chunked(&self) -> bool {
        matches!(
            self,
            PayloadCheck::StreamingSigned(_)
                | PayloadCheck::StreamingSignedTrailer(_)
                | PayloadCheck::StreamingUnsignedTrailer
        )
    }

    /// The body ends with trailing headers (checksums) after the last chunk.
    pub fn has_trailer(&self) -> bool {
        matches!(
            self,
            PayloadCheck::StreamingSignedTrailer(_) | PayloadCheck::StreamingUnsignedTrailer
        )
    }
}

/// What chunk and trailer signatures chain from: the request's (seed) signature, its signing key,
/// credential scope and timestamp.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSigning {
    seed_signature: [u8; 32],
    signing_key: [u8; 32],
    scope: String,
    datetime: String,
}

impl ChunkSigning {
    pub fn new(
        seed_signature: [u8; 32],
        signing_key: [u8; 32],
        scope: String,
        datetime: String,
    ) -> Self {
        ChunkSigning {
            seed_signature,
            signing_key,
            scope,
            datetime,
        }
    }

    pub fn seed_signature(&self) -> [u8; 32] {
        self.seed_signature
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn datetime(&self) -> &str {
        &self.datetime
    }

    /// Signature of one chunk, given the previous signature and the chunk data's SHA-256.
    pub fn chunk_signature(&self, previous: &[u8; 32], data_sha256: &[u8; 32]) -> [u8; 32] {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.datetime,
            self.scope,
            hex::encode(previous),
            sigv4::EMPTY_SHA256_HEX,
            hex::encode(data_sha256),
        );
        sigv4::hmac_sha256(&self.signing_key, string_to_sign.as_bytes())
    }

    /// Signature of the trailing headers, given the final chunk's signature and the SHA-256 of
    /// the canonical trailer block (`name:value\n` per trailer, sorted).
    pub fn trailer_signature(&self, previous: &[u8; 32], trailers_sha256: &[u8; 32]) -> [u8; 32] {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.datetime,
            self.scope,
            hex::encode(previous),
            hex::encode(trailers_sha256),
        );
        sigv4::hmac_sha256(&self.signing_key, string_to_sign.as_bytes())
    }
}

impl fmt::Debug for ChunkSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigning")
            .field("seed_signature", &hex::encode(self.seed_signature))
            .field("signing_key", &"<redacted>")
            .field("scope", &self.scope)
            .field("datetime", &self.datetime)
            .finish()
    }
}

/// Why a request was not authenticated. Each variant names the S3 error it becomes.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// `AccessDenied` 403: neither an Authorization header nor a presigned query.
    #[error("Access Denied")]
    Anonymous,
    /// `InvalidRequest` 400: SigV2 or SigV4A (AWS's wording for mechanisms a region refuses).
    #[error("The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")]
    UnsupportedMechanism,
    /// `InvalidArgument` 400: an Authorization header of an unknown scheme.
    #[error("Unsupported Authorization Type")]
    UnsupportedAuthorizationType,
    /// `InvalidArgument` 400: both an Authorization header and a presigned query.
    #[error("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")]
    MultipleMechanisms,
    /// `AuthorizationHeaderMalformed` 400: unparsable header, bad credential scope, wrong
    /// region, scope date differing from the request date.
    #[error("The authorization header is malformed; {0}")]
    MalformedHeader(String),
    /// `AuthorizationQueryParametersError` 400: the presigned-URL equivalent of
    /// [`AuthError::MalformedHeader`], including `X-Amz-Expires` out of range.
    #[error("{0}")]
    MalformedQuery(String),
    /// `InvalidAccessKeyId` 403.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    /// `SignatureDoesNotMatch` 403.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatch,
    /// `SignatureDoesNotMatch` 403 for SigV2, with the StringToSign S3 reports.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatchV2(Box<sigv2::V2Mismatch>),
    /// `InvalidArgument` 400: a SigV2 Authorization header that is not `AWS key:signature`.
    #[error("{}", .0.message())]
    MalformedV2Header(sigv2::V2HeaderProblem),
    /// `AccessDenied` 403: SigV2 query parameters missing or unreadable (S3's wording).
    #[error("{0}")]
    V2QueryDenied(String),
    /// `RequestTimeTooSkewed` 403.
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// `AccessDenied` 403: no usable `x-amz-date`/`Date` header (missing or unparsable).
    #[error("AWS authentication requires a valid Date or x-amz-date header")]
    MissingDate,
    /// `AccessDenied` 403: presigned URL past `X-Amz-Date + X-Amz-Expires`.
    #[error("Request has expired")]
    Expired,
    /// `AccessDenied` 403: presigned URL dated further in the future than the allowed skew.
    #[error("Request is not valid yet")]
    NotYetValid,
    /// `AccessDenied` 403: headers that must be covered by the signature are not. Carries
    /// their names, lower-case and comma-separated, for the `HeadersNotSigned` element.
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(String),
    /// `InvalidRequest` 400: header auth without `x-amz-content-sha256`.
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    /// `InvalidArgument` 400: `x-amz-content-sha256` is none of the accepted values.
    #[error("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, or a valid sha256 value.")]
    InvalidContentSha256,
}

impl AuthError {
    /// The names S3 lists in the error's `HeadersNotSigned` element, if it has one.
    pub fn headers_not_signed(&self) -> Option<&str> {
        match self {
            AuthError::HeadersNotSigned(names) => Some(names),
            _ => None,
        }
    }

    /// The further elements of S3's error document for this error.
    pub fn elements(&self) -> Vec<(&'static str, String)> {
        match self {
            AuthError::HeadersNotSigned(names) => vec![("HeadersNotSigned", names.clone())],
            AuthError::SignatureDoesNotMatchV2(mismatch) => mismatch.elements(),
            AuthError::MalformedV2Header(_) => vec![("ArgumentName", "Authorization".to_owned())],
            _ => Vec::new(),
        }
    }

    pub fn s3_code(&self) -> &'static str {
        match self {
            AuthError::Anonymous
            | AuthError::MissingDate
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::HeadersNotSigned(_)
            | AuthError::V2QueryDenied(_) => "AccessDenied",
            AuthError::UnsupportedMechanism | AuthError::MissingContentSha256 => "InvalidRequest",
            AuthError::UnsupportedAuthorizationType
            | AuthError::MultipleMechanisms
            | AuthError::InvalidContentSha256
            | AuthError::MalformedV2Header(_) => "InvalidArgument",
            AuthError::MalformedHeader(_) => "AuthorizationHeaderMalformed",
            AuthError::MalformedQuery(_) => "AuthorizationQueryParametersError",
            AuthError::InvalidAccessKeyId => "InvalidAccessKeyId",
            AuthError::SignatureDoesNotMatch | AuthError::SignatureDoesNotMatchV2(_) => {
                "SignatureDoesNotMatch"
            }
            AuthError::RequestTimeTooSkewed => "RequestTimeTooSkewed",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::UnsupportedMechanism
            | AuthError::UnsupportedAuthorizationType
            | AuthError::MultipleMechanisms
            | AuthError::MalformedHeader(_)
            | AuthError::MalformedQuery(_)
            | AuthError::MissingContentSha256
            | AuthError::InvalidContentSha256
            | AuthError::MalformedV2Header(_) => 400,
            AuthError::Anonymous
            | AuthError::InvalidAccessKeyId
            | AuthError::SignatureDoesNotMatch
            | AuthError::RequestTimeTooSkewed
            | AuthError::MissingDate
            | AuthError::Expired
            | AuthError::NotYetValid
            | AuthError::HeadersNotSigned(_)
            | AuthError::SignatureDoesNotMatchV2(_)
            | AuthError::V2QueryDenied(_) => 403,
        }
    }
}

/// Verifies a request's signature (Authorization header or presigned query) before any side
/// effect. `now` is a parameter so that tests and replays are deterministic.
pub fn authenticate(
    parts: &http::request::Parts,
    store: &CredentialStore,
    settings: &AuthSettings,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let query = parts.uri.query().unwrap_or("");
    let presigned_v4 = presigned::is_presigned_v4(query);
    let presigned_v2 = presigned::is_presigned_v2(query);
    let mut authorization = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(AuthError::MalformedHeader(
            "more than one Authorization header".to_owned(),
        ));
    }
    match (header, presigned_v4 || presigned_v2) {
        (Some(_), true) => Err(AuthError::MultipleMechanisms),
        (Some(value), false) if settings.signature_v2 && sigv2::is_v2_authorization(value) => {
            sigv2::authenticate_header(parts, value, store, settings, now)
        }
        // With SigV2 refused, its header reaches the V4 parser, which answers InvalidRequest.
        (Some(value), false) => sigv4::authenticate_header(parts, value, store, settings, now),
        (None, true) if presigned_v4 => {
            presigned::authenticate_presigned(parts, store, settings, now)
        }
        (None, true) if settings.signature_v2 => {
            sigv2::authenticate_query(parts, store, settings, now)
        }
        (None, true) => Err(AuthError::UnsupportedMechanism),
        (None, false) => Err(AuthError::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_code_and_status() {
        let all = [
            AuthError::Anonymous,
            AuthError::UnsupportedMechanism,
            AuthError::UnsupportedAuthorizationType,
            AuthError::MultipleMechanisms,
            AuthError::MalformedHeader("x".into()),
            AuthError::MalformedQuery("x".into()),
            AuthError::InvalidAccessKeyId,
            AuthError::SignatureDoesNotMatch,
            AuthError::SignatureDoesNotMatchV2(Box::new(sigv2::V2Mismatch {
                access_key_id: "AK".into(),
                string_to_sign: b"GET\n".to_vec(),
                signature_provided: "x".into(),
            })),
            AuthError::MalformedV2Header(sigv2::V2HeaderProblem::Shape),
            AuthError::MalformedV2Header(sigv2::V2HeaderProblem::Spaces),
            AuthError::V2QueryDenied("x".into()),
            AuthError::RequestTimeTooSkewed,
            AuthError::MissingDate,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::HeadersNotSigned("host".into()),
            AuthError::MissingContentSha256,
            AuthError::InvalidContentSha256,
        ];
        for error in all {
            assert!(!error.s3_code().is_empty());
            assert!(matches!(error.http_status(), 400 | 403));
            assert!(!error.to_string().is_empty());
        }
        assert_eq!(AuthError::Expired.s3_code(), "AccessDenied");
        assert_eq!(AuthError::Expired.to_string(), "Request has expired");
    }

    #[test]
    fn chunk_signing_debug_hides_the_key() {
        let signing = ChunkSigning::new([1; 32], [0xab; 32], "scope".into(), "date".into());
        let printed = format!("{signing:?}");
        assert!(!printed.contains(&hex::encode([0xab; 32])));
        assert!(printed.contains("redacted"));
    }
}
