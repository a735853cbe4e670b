//! S3 errors: the one place where every layer's error becomes an S3 code, an HTTP status and
//! an XML body.

use std::fmt;

use http::StatusCode;

use crate::meta::MetaError;
use crate::s3::auth::AuthError;
use crate::s3::body::BodyError;
use crate::store::StoreError;

/// An S3 error as the client sees it.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// Extra elements for the XML body (e.g. `BucketName`, `Key`, `Condition`).
    pub details: Vec<(&'static str, String)>,
    /// Headers the error reply carries (e.g. `x-amz-delete-marker`).
    pub headers: Vec<(&'static str, String)>,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        S3Error {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    pub fn access_denied() -> Self {
        Self::new("AccessDenied", StatusCode::FORBIDDEN, "Access Denied")
    }
    /// S3's answer to removing a version (or weakening its retention) that object lock
    /// protects.
    pub fn locked() -> Self {
        S3Error::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            "Access Denied because object protected by object lock.",
        )
    }

    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(
            "NoSuchBucket",
            StatusCode::NOT_FOUND,
            "The specified bucket does not exist",
        )
        .with("BucketName", bucket)
    }
    pub fn no_such_key(key: &str) -> Self {
        Self::new(
            "NoSuchKey",
            StatusCode::NOT_FOUND,
            "The specified key does not exist.",
        )
        .with("Key", key)
    }
    pub fn entity_too_large() -> Self {
        Self::new(
            "EntityTooLarge",
            StatusCode::BAD_REQUEST,
            "Your proposed upload exceeds the maximum allowed object size.",
        )
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", StatusCode::BAD_REQUEST, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new("InvalidRequest", StatusCode::BAD_REQUEST, message)
    }
    pub fn malformed_xml() -> Self {
        Self::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by this gateway"),
        )
    }
    pub fn precondition_failed(condition: &str) -> Self {
        Self::new(
            "PreconditionFailed",
            StatusCode::PRECONDITION_FAILED,
            "At least one of the pre-conditions you specified did not hold",
        )
        .with("Condition", condition)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("InternalError", StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            message,
        )
    }
    pub fn no_such_upload(upload_id: &str) -> Self {
        S3Error::new(
            "NoSuchUpload",
            StatusCode::NOT_FOUND,
            "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        )
        .with("UploadId", upload_id)
    }

    pub fn slow_down() -> Self {
        Self::new(
            "SlowDown",
            StatusCode::SERVICE_UNAVAILABLE,
            "Please reduce your request rate.",
        )
    }

    /// The XML error document, with the resource and request id S3 puts in every error.
    pub fn to_xml(&self, resource: &str, request_id: &str) -> String {
        let escape = crate::s3::xml_text::escape;
        let mut out = String::with_capacity(256);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
        out.push_str(self.code);
        out.push_str("</Code><Message>");
        out.push_str(&escape(&self.message));
        out.push_str("</Message>");
        for (name, value) in &self.details {
            out.push_str(&format!("<{name}>{}</{name}>", escape(value)));
        }
        out.push_str("<Resource>");
        out.push_str(&escape(resource));
        out.push_str("</Resource><RequestId>");
        out.push_str(&escape(request_id));
        out.push_str("</RequestId></Error>");
        out
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for S3Error {}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        let error = S3Error::new(e.s3_code(), status(e.http_status()), e.to_string());
        e.elements()
            .into_iter()
            .fold(error, |error, (name, value)| error.with(name, value))
    }
}

impl From<BodyError> for S3Error {
    fn from(e: BodyError) -> Self {
        S3Error::new(e.s3_code(), status(e.http_status()), e.to_string())
    }
}

impl From<MetaError> for S3Error {
    fn from(e: MetaError) -> Self {
        tracing::error!(error = %e, "index error");
        S3Error::internal("The index could not be read or written")
    }
}

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchBucket(b) => S3Error::no_such_bucket(&b),
            StoreError::NoSuchKey(k) => S3Error::no_such_key(&k),
            StoreError::NoSuchUpload(id) => S3Error::no_such_upload(&id),
            StoreError::NoSuchVersion { key, version_id } => S3Error::new(
                "NoSuchVersion",
                StatusCode::NOT_FOUND,
                "The specified version does not exist.",
            )
            .with("Key", key)
            .with("VersionId", version_id),
            StoreError::DeleteMarker { key, version_id } => S3Error::new(
                "MethodNotAllowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "The specified method is not allowed against this resource.",
            )
            .with("ResourceType", "DeleteMarker")
            .with("Key", key)
            .with_header("x-amz-delete-marker", "true")
            .with_header("x-amz-version-id", &version_id),
            StoreError::VersionNotKept(_) => {
                tracing::warn!(error = %e, "a version could not be kept");
                S3Error::service_unavailable(
                    "The version this request replaces could not be kept on every backend that holds it; nothing was changed",
                )
            }
            StoreError::BucketExists(b) => S3Error::new(
                "BucketAlreadyExists",
                StatusCode::CONFLICT,
                "The requested bucket name is not available.",
            )
            .with("BucketName", b),
            StoreError::BucketNotEmpty(b) => S3Error::new(
                "BucketNotEmpty",
                StatusCode::CONFLICT,
                "The bucket you tried to delete is not empty",
            )
            .with("BucketName", b),
            StoreError::PreconditionFailed(which) => S3Error::precondition_failed(which),
            StoreError::QuorumNotMet { .. } => {
                tracing::warn!(error = %e, "write quorum not met");
                S3Error::service_unavailable(
                    "Not enough storage backends accepted the write; nothing was committed",
                )
            }
            StoreError::PlacementUnmet(ref rule) => {
                tracing::warn!(error = %e, "placement policy not met");
                S3Error::service_unavailable(format!(
                    "The bucket's placement policy cannot be met now ({rule}); nothing was committed"
                ))
            }
            StoreError::Throttled => S3Error::slow_down(),
            StoreError::Busy(_) => S3Error::slow_down(),
            StoreError::MetadataTooLarge(_) => {
                tracing::warn!(error = %e, "metadata too large for a backend");
                S3Error::new(
                    "MetadataTooLarge",
                    StatusCode::BAD_REQUEST,
                    "Your metadata headers exceed the maximum allowed metadata size.",
                )
            }
            StoreError::NoReplica(_) => {
                tracing::warn!(error = %e, "no readable replica");
                S3Error::service_unavailable("No replica of the object could be read right now")
            }
            StoreError::SourceUnreadable(_) => {
                tracing::warn!(error = %e, "copy source unreadable");
                S3Error::service_unavailable(
                    "The copy source could not be read whole and intact right now; nothing was copied",
                )
            }
            StoreError::Body(failure) => match failure.downcast::<BodyError>() {
                Ok(body) => (*body).into(),
                Err(other) => S3Error::new(
                    "IncompleteBody",
                    StatusCode::BAD_REQUEST,
                    format!("The request body could not be read: {other}"),
                ),
            },
            StoreError::BodyStalled(_) => S3Error::new(
                "RequestTimeout",
                StatusCode::BAD_REQUEST,
                "Your socket connection to the server was not read from or written to within the timeout period.",
            ),
            StoreError::Locked(_) => S3Error::locked(),
            StoreError::Meta(m) => m.into(),
            // Jobs are the admin plane's; an S3 request never reaches them.
            StoreError::NoSuchJob(_) | StoreError::InvalidJob(_) => {
                S3Error::internal("We encountered an internal error. Please try again.")
            }
            StoreError::Internal(message) => {
                tracing::error!(%message, "internal error");
                S3Error::internal("We encountered an internal error. Please try again.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_headers_are_named_in_the_error_document() {
        let error = S3Error::from(AuthError::HeadersNotSigned(
            "x-amz-acl, x-amz-copy-source".into(),
        ));
        assert_eq!(error.status, StatusCode::FORBIDDEN);
        let xml = error.to_xml("/b/k", "RID");
        assert!(xml.contains("<Code>AccessDenied</Code><Message>There were headers present in the request which were not signed</Message><HeadersNotSigned>x-amz-acl, x-amz-copy-source</HeadersNotSigned><Resource>/b/k</Resource>"), "{xml}");
        let other = S3Error::from(AuthError::SignatureDoesNotMatch).to_xml("/", "RID");
        assert!(!other.contains("HeadersNotSigned"), "{other}");
    }
}
