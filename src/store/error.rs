//! The storage layer's one error type. Variants say what went wrong for the caller (a missing
//! key, a quorum not met, a body that failed), not which backend call failed; the front end
//! maps each to its S3 error in one place.

use hansa_backends::BackendError;

use crate::meta::MetaError;

/// A client body's own failure (a wrong digest, a bad chunk signature, a client that hung
/// up), passed through untouched so the front end can name it.
pub type BodyFailure = Box<dyn std::error::Error + Send + Sync>;

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("key {0} does not exist")]
    NoSuchKey(String),
    #[error("version {version_id} of key {key} does not exist")]
    NoSuchVersion { key: String, version_id: String },
    /// The version named is a delete marker, which has no object to act on.
    #[error("version {version_id} of key {key} is a delete marker")]
    DeleteMarker { key: String, version_id: String },
    /// The version a write or delete would replace could not be kept (moved aside) on a
    /// backend that holds it: nothing was changed.
    #[error("the version replaced could not be kept: {0}")]
    VersionNotKept(String),
    #[error("upload {0} does not exist")]
    NoSuchUpload(String),
    #[error("bucket {0} already exists")]
    BucketExists(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// A conditional write whose condition no longer held when it was about to commit.
    #[error("precondition {0} failed")]
    PreconditionFailed(&'static str),
    #[error("write quorum not met: {confirmed} of {needed} replicas ({errors})")]
    QuorumNotMet {
        confirmed: usize,
        needed: usize,
        errors: String,
    },
    /// The copies that could be made do not meet a rule of the bucket's placement policy
    /// (e.g. the only backend in the required jurisdiction is down): nothing was committed.
    #[error("placement policy not met: {0}")]
    PlacementUnmet(String),
    /// A backend asks to slow down.
    #[error("a backend asks to slow down")]
    Throttled,
    /// The gateway's in-flight budget (or the writer's share of it) stayed full for the
    /// bounded wait.
    #[error("the gateway is busy: {0}")]
    Busy(#[from] crate::replication::BudgetError),
    /// The object's attributes are more than a backend can store with it.
    #[error("the object's metadata is too large for a backend: {0}")]
    MetadataTooLarge(String),
    #[error("no replica readable ({0})")]
    NoReplica(String),
    /// A source read for a copy failed or did not match its object.
    #[error("the copy source could not be read whole and intact: {0}")]
    SourceUnreadable(String),
    #[error("request body: {0}")]
    Body(BodyFailure),
    /// The client sent no body bytes for this long.
    #[error("the client sent no body bytes for {0:?}")]
    BodyStalled(std::time::Duration),
    #[error("job {0} does not exist")]
    NoSuchJob(String),
    /// A job that cannot be started or changed as asked.
    #[error("{0}")]
    InvalidJob(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Object lock forbids removing the version (or weakening its retention).
    #[error("object lock: {0}")]
    Locked(super::lock::Refusal),
    #[error("{0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Why fewer than `needed` of the backends took a write: `Throttled` when one asked to slow
    /// down (the client should retry later), otherwise which failed and how.
    pub(crate) fn quorum(
        confirmed: usize,
        needed: usize,
        failures: &[(String, BackendError)],
    ) -> StoreError {
        if failures
            .iter()
            .any(|(_, e)| matches!(e, BackendError::Throttled { .. }))
        {
            return StoreError::Throttled;
        }
        if let Some((_, BackendError::AttributesTooLarge { message, .. })) = failures
            .iter()
            .find(|(_, e)| matches!(e, BackendError::AttributesTooLarge { .. }))
        {
            return StoreError::MetadataTooLarge(message.clone());
        }
        let errors = failures
            .iter()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        StoreError::QuorumNotMet {
            confirmed,
            needed,
            errors,
        }
    }
}
