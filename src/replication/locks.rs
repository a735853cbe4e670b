//! Per-key write serialization: writes to one key run one at a time (last writer wins, as in
//! S3), so the index and the replicas never disagree about which version is current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// (bucket, key) → the lock of a key being written; entries nobody holds are pruned.
type LockTable = HashMap<(String, String), Weak<AsyncMutex<()>>>;

#[derive(Default, Clone)]
pub struct KeyLocks {
    table: Arc<Mutex<LockTable>>,
}

/// Held while a key is being written.
pub struct KeyGuard {
    _guard: OwnedMutexGuard<()>,
}

impl KeyLocks {
    pub async fn lock(&self, bucket: &str, key: &str) -> KeyGuard {
        let lock = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            // Drop entries nobody holds any more, so the table stays as small as the set of
            // keys being written.
            if table.len() > 1024 {
                table.retain(|_, w| w.strong_count() > 0);
            }
            let entry = table
                .entry((bucket.to_string(), key.to_string()))
                .or_default();
            match entry.upgrade() {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    *entry = Arc::downgrade(&lock);
                    lock
                }
            }
        };
        KeyGuard {
            _guard: lock.lock_owned().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_waits_other_key_does_not() {
        let locks = KeyLocks::default();
        let g = locks.lock("b", "k").await;
        let other =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("b", "k2"))
                .await;
        assert!(other.is_ok());
        let same =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("b", "k")).await;
        assert!(same.is_err());
        drop(g);
        let same =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("b", "k")).await;
        assert!(same.is_ok());
    }
}
