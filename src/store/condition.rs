//! Conditional writes.

use super::{StoreError, StoreResult};
use crate::meta::ObjectRecord;

/// A conditional write's condition, checked against the key's current entry when the write
/// commits, under the key's lock: a write that raced another cannot slip past it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WriteCondition {
    #[default]
    Always,
    /// `If-None-Match: *`: only if the key has no object.
    IfAbsent,
    /// `If-Match`: only if the key's object has one of these ETags (`*`: any object).
    IfMatch(Vec<String>),
}

impl WriteCondition {
    /// Whether the write may replace `current` (the key's entry now).
    pub fn check(&self, current: Option<&ObjectRecord>, key: &str) -> StoreResult<()> {
        match (self, current) {
            (WriteCondition::Always, _) => Ok(()),
            (WriteCondition::IfAbsent, None) => Ok(()),
            (WriteCondition::IfAbsent, Some(_)) => {
                Err(StoreError::PreconditionFailed("If-None-Match"))
            }
            (WriteCondition::IfMatch(_), None) => Err(StoreError::NoSuchKey(key.to_string())),
            (WriteCondition::IfMatch(etags), Some(c)) => {
                if etags.iter().any(|e| e == "*" || *e == c.etag) {
                    Ok(())
                } else {
                    Err(StoreError::PreconditionFailed("If-Match"))
                }
            }
        }
    }
}
