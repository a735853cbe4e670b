//! Why a request body was rejected, and the S3 error each reason becomes. Its own module
//! because both the body's checks (`body`) and the aws-chunked decoder (`auth::chunked`)
//! raise it.

use crate::checksum::ChecksumAlgorithm;

/// Why a body was rejected. Each variant names the S3 error it becomes.
#[derive(thiserror::Error, Debug)]
pub enum BodyError {
    /// `MissingContentLength` 411: neither Content-Length nor (for aws-chunked)
    /// x-amz-decoded-content-length.
    #[error("You must provide the Content-Length HTTP header.")]
    MissingContentLength,
    /// `InvalidArgument` 400: a length header that is not a number.
    #[error("The {0} header is not a valid length.")]
    InvalidContentLength(&'static str),
    /// `InvalidDigest` 400: Content-MD5 is not base64 of 16 bytes.
    #[error("The Content-MD5 you specified was invalid.")]
    InvalidDigest,
    /// `BadDigest` 400: the body's MD5 differs from Content-MD5.
    #[error("The Content-MD5 you specified did not match what we received.")]
    Md5Mismatch,
    /// `BadDigest` 400: the body's checksum differs from the header or trailer value.
    #[error("The {algorithm} you specified did not match the calculated checksum.")]
    ChecksumMismatch { algorithm: ChecksumAlgorithm },
    /// `InvalidRequest` 400: a checksum value that is not base64 of the digest length.
    #[error("Value for {} header is invalid.", algorithm.header_name())]
    InvalidChecksumValue { algorithm: ChecksumAlgorithm },
    /// `InvalidRequest` 400: more than one checksum sent (headers and/or trailer).
    #[error("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")]
    MultipleChecksums,
    /// `InvalidRequest` 400: an unknown algorithm in x-amz-trailer / x-amz-sdk-checksum-algorithm.
    #[error("Checksum algorithm provided is unsupported: {0}")]
    UnsupportedChecksumAlgorithm(String),
    /// `InvalidRequest` 400: x-amz-sdk-checksum-algorithm names another algorithm than the one sent.
    #[error("Value for x-amz-sdk-checksum-algorithm header is invalid.")]
    ChecksumAlgorithmConflict,
    /// `InvalidRequest` 400: x-amz-trailer without a `-TRAILER` payload.
    #[error("The x-amz-trailer header requires a STREAMING-*-TRAILER x-amz-content-sha256.")]
    UnexpectedTrailerHeader,
    /// `XAmzContentSHA256Mismatch` 400.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
    /// `SignatureDoesNotMatch` 403: an aws-chunked chunk signature.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    ChunkSignatureMismatch,
    /// `SignatureDoesNotMatch` 403: the x-amz-trailer-signature.
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    TrailerSignatureMismatch,
    /// `InvalidRequest` 400: aws-chunked framing broken.
    #[error("Malformed aws-chunked body: {0}.")]
    MalformedChunk(&'static str),
    /// `InvalidRequest` 400: a chunk larger than the configured maximum.
    #[error("Chunk size {size} exceeds the maximum of {max} bytes.")]
    ChunkTooLarge { size: u64, max: usize },
    /// `IncompleteBody` 400: fewer bytes than declared, or the body ended mid-chunk.
    #[error(
        "You did not provide the number of bytes specified by the Content-Length HTTP header."
    )]
    IncompleteBody,
    /// `EntityTooLarge` 400: a body of unknown length grew past the size limit.
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    TooLarge,
    /// `InvalidRequest` 400: more bytes than declared.
    #[error("The request body is longer than the declared content length.")]
    BodyTooLong,
    /// `MalformedTrailerError` 400: trailers missing, malformed or undeclared.
    #[error("The request contained trailing data that was not well-formed or did not conform to our published schema: {0}.")]
    MalformedTrailer(&'static str),
    /// `RequestTimeout` 400: the client sent nothing for the idle timeout, or fell behind the
    /// minimum body rate.
    #[error("Your socket connection to the server was not read from or written to within the timeout period.")]
    RequestTimeout,
    /// `IncompleteBody` 400: the transport failed (client went away, framing error).
    #[error("The request body could not be read: {0}")]
    Transport(Box<dyn std::error::Error + Send + Sync>),
}

impl BodyError {
    pub fn s3_code(&self) -> &'static str {
        match self {
            BodyError::MissingContentLength => "MissingContentLength",
            BodyError::TooLarge => "EntityTooLarge",
            BodyError::InvalidContentLength(_) => "InvalidArgument",
            BodyError::InvalidDigest => "InvalidDigest",
            BodyError::Md5Mismatch | BodyError::ChecksumMismatch { .. } => "BadDigest",
            BodyError::InvalidChecksumValue { .. }
            | BodyError::MultipleChecksums
            | BodyError::UnsupportedChecksumAlgorithm(_)
            | BodyError::ChecksumAlgorithmConflict
            | BodyError::UnexpectedTrailerHeader
            | BodyError::MalformedChunk(_)
            | BodyError::ChunkTooLarge { .. }
            | BodyError::BodyTooLong => "InvalidRequest",
            BodyError::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            BodyError::ChunkSignatureMismatch | BodyError::TrailerSignatureMismatch => {
                "SignatureDoesNotMatch"
            }
            BodyError::IncompleteBody | BodyError::Transport(_) => "IncompleteBody",
            BodyError::MalformedTrailer(_) => "MalformedTrailerError",
            BodyError::RequestTimeout => "RequestTimeout",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::MissingContentLength => 411,
            BodyError::ChunkSignatureMismatch | BodyError::TrailerSignatureMismatch => 403,
            _ => 400,
        }
    }
}
