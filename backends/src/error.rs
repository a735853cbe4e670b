//! The one error type every backend returns.
//!
//! Variants are chosen by what the gateway does next, not by where the error came from:
//! `NotFound` and `PreconditionFailed` are answers about the replica, `NameConflict` asks for the
//! fallback name, `Throttled`/`Unavailable` make the replica unusable for now (try another one),
//! `Aborted` means the caller's body stream failed (nothing was written).

/// Errors returned by a [`crate::Backend`].
///
/// `#[non_exhaustive]` so that new cases can be added without breaking the gateway's matches;
/// treat unknown variants like `Other`.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum BackendError {
    /// No object with this physical name.
    #[error("object not found: {name}")]
    NotFound { name: String },

    /// `if_match` did not match the replica's backend etag: the replica changed behind the
    /// index's back.
    #[error("precondition failed (etag changed): {name}")]
    PreconditionFailed { name: String },

    /// The store cannot hold this plain name next to existing names (on a file system: a path
    /// component is a file, or the target is a directory). Retry with the fallback name.
    #[error("name conflicts with an existing object or directory: {name}")]
    NameConflict { name: String },

    /// The requested range starts at or beyond the end of the object (or is empty).
    #[error("range {start}..{end} not satisfiable for {name} of size {size}")]
    RangeNotSatisfiable {
        name: String,
        start: u64,
        end: u64,
        size: u64,
    },

    /// The object's attributes (metadata, stamp) are too large for this store
    /// (ext4 keeps all extended attributes of a file in one 4 KiB block).
    #[error("attributes of {name} too large for this backend: {message}")]
    AttributesTooLarge { name: String, message: String },

    /// The provider asks us to slow down (HTTP 429/503 SlowDown).
    #[error("throttled: {message}")]
    Throttled { message: String },

    /// Credentials missing, wrong, or lacking permission.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },

    /// Network or I/O failure: this replica is unusable right now.
    #[error("backend unavailable: {message}")]
    Unavailable { message: String },

    /// The body stream handed to `put` yielded an error; nothing was written.
    #[error("body stream aborted")]
    Aborted,

    /// Anything else (bugs, unsupported operations, invalid data read back).
    #[error("{message}")]
    Other { message: String },
}

impl BackendError {
    /// True when trying again later (or on another replica) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }

    /// True for `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
        }
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
