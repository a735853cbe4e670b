//! Write serialization. Writes to one key run one at a time (last writer wins, as in S3), so
//! the index and the replicas never disagree about which version is current; and a bucket is
//! deleted only while no write into it is in flight, so no object lands in a deleted bucket.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// Name → the lock of something being written; entries nobody holds are pruned.
struct LockTable<K> {
    entries: Mutex<HashMap<K, Weak<RwLock<()>>>>,
}

impl<K> Default for LockTable<K> {
    fn default() -> Self {
        LockTable {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> LockTable<K> {
    fn get(&self, name: K) -> Arc<RwLock<()>> {
        let mut table = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Drop entries nobody holds any more, so the table stays as small as the set of
        // names being written.
        if table.len() > 1024 {
            table.retain(|_, w| w.strong_count() > 0);
        }
        let entry = table.entry(name).or_default();
        match entry.upgrade() {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(RwLock::new(()));
                *entry = Arc::downgrade(&lock);
                lock
            }
        }
    }
}

#[derive(Default, Clone)]
pub struct KeyLocks {
    keys: Arc<LockTable<(String, String)>>,
    buckets: Arc<LockTable<String>>,
}

/// Held while a key is being written: the key exclusively, its bucket shared.
pub struct KeyGuard {
    _key: OwnedRwLockWriteGuard<()>,
    _bucket: OwnedRwLockReadGuard<()>,
}

/// Held while a bucket is being deleted: no write into it runs meanwhile.
pub struct BucketGuard {
    _bucket: OwnedRwLockWriteGuard<()>,
}

/// Held while something is created in a bucket without writing a key (a multipart upload):
/// the bucket is not deleted meanwhile.
pub struct BucketShare {
    _bucket: OwnedRwLockReadGuard<()>,
}

impl KeyLocks {
    pub async fn lock(&self, bucket: &str, key: &str) -> KeyGuard {
        let bucket_guard = self.buckets.get(bucket.to_string()).read_owned().await;
        let key_guard = self
            .keys
            .get((bucket.to_string(), key.to_string()))
            .write_owned()
            .await;
        KeyGuard {
            _key: key_guard,
            _bucket: bucket_guard,
        }
    }

    pub async fn share_bucket(&self, bucket: &str) -> BucketShare {
        BucketShare {
            _bucket: self.buckets.get(bucket.to_string()).read_owned().await,
        }
    }

    pub async fn lock_bucket(&self, bucket: &str) -> BucketGuard {
        BucketGuard {
            _bucket: self.buckets.get(bucket.to_string()).write_owned().await,
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

    #[tokio::test]
    async fn bucket_deletion_waits_for_writes_in_it() {
        let locks = KeyLocks::default();
        let w = locks.lock("b", "k").await;
        let del = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            locks.lock_bucket("b"),
        )
        .await;
        assert!(del.is_err(), "a write is in flight");
        let other = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            locks.lock_bucket("c"),
        )
        .await;
        assert!(other.is_ok());
        drop(w);
        let del = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            locks.lock_bucket("b"),
        )
        .await;
        assert!(del.is_ok());
    }

    #[tokio::test]
    async fn bucket_deletion_waits_for_uploads_being_created() {
        let locks = KeyLocks::default();
        let creating = locks.share_bucket("b").await;
        let del = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            locks.lock_bucket("b"),
        )
        .await;
        assert!(del.is_err(), "an upload is being created");
        drop(creating);
        let del = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            locks.lock_bucket("b"),
        )
        .await;
        assert!(del.is_ok());
    }
}
