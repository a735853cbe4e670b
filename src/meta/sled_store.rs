//! The embedded index on sled.
//!
//! Trees: `buckets` (name → BucketRecord), one `objects/<bucket>` tree per bucket (key bytes →
//! ObjectRecord, so a listing is an ordered range scan), and `intents`.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::records::{decode, encode};
use super::{BucketRecord, Intent, MetaError, MetaResult, MetaStore, ObjectPage, ObjectRecord};

pub struct SledStore {
    db: sled::Db,
    buckets: sled::Tree,
    intents: sled::Tree,
    flush: GroupFlush,
}

impl SledStore {
    /// Opens (or creates) the index in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> MetaResult<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // We flush explicitly before every acknowledgement; the background flusher only
            // bounds how much unacknowledged work could be lost.
            .flush_every_ms(Some(1000))
            .open()?;
        let buckets = db.open_tree("buckets")?;
        let intents = db.open_tree("intents")?;
        Ok(SledStore {
            db,
            buckets,
            intents,
            flush: GroupFlush::default(),
        })
    }

    fn objects(&self, bucket: &str) -> MetaResult<sled::Tree> {
        Ok(self.db.open_tree(format!("objects/{bucket}"))?)
    }
}

#[async_trait::async_trait]
impl MetaStore for SledStore {
    fn create_bucket(&self, record: &BucketRecord) -> MetaResult<()> {
        let value = encode(record)?;
        match self.buckets.compare_and_swap(
            record.name.as_bytes(),
            None as Option<&[u8]>,
            Some(value),
        )? {
            Ok(()) => Ok(()),
            Err(_) => Err(MetaError::BucketExists(record.name.clone())),
        }
    }

    fn bucket(&self, name: &str) -> MetaResult<Option<BucketRecord>> {
        self.buckets
            .get(name.as_bytes())?
            .map(|v| decode(name, &v))
            .transpose()
    }

    fn buckets(&self) -> MetaResult<Vec<BucketRecord>> {
        self.buckets
            .iter()
            .map(|item| {
                let (k, v) = item?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        if self.buckets.get(name.as_bytes())?.is_none() {
            return Err(MetaError::NoSuchBucket(name.to_string()));
        }
        let objects = self.objects(name)?;
        if !objects.is_empty() {
            return Err(MetaError::BucketNotEmpty(name.to_string()));
        }
        self.buckets.remove(name.as_bytes())?;
        self.db.drop_tree(format!("objects/{name}"))?;
        Ok(())
    }

    fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        self.objects(bucket)?
            .get(key.as_bytes())?
            .map(|v| decode(key, &v))
            .transpose()
    }

    fn put_object(&self, bucket: &str, key: &str, record: &ObjectRecord) -> MetaResult<()> {
        self.objects(bucket)?
            .insert(key.as_bytes(), encode(record)?)?;
        Ok(())
    }

    fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>> {
        self.objects(bucket)?
            .remove(key.as_bytes())?
            .map(|v| decode(key, &v))
            .transpose()
    }

    fn scan_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: Bound<String>,
        limit: usize,
    ) -> MetaResult<ObjectPage> {
        let tree = self.objects(bucket)?;
        let start = match start {
            Bound::Included(s) if s.as_str() > prefix => Bound::Included(s.into_bytes()),
            Bound::Excluded(s) if s.as_str() >= prefix => Bound::Excluded(s.into_bytes()),
            _ => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let mut entries = Vec::new();
        let mut truncated = false;
        for item in tree.range((start, Bound::Unbounded)) {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            if entries.len() == limit {
                truncated = true;
                break;
            }
            let key = String::from_utf8(k.to_vec()).map_err(|_| MetaError::Corrupt {
                what: format!("key in bucket {bucket}"),
                reason: "not UTF-8".into(),
            })?;
            let record = decode(&key, &v)?;
            entries.push((key, record));
        }
        Ok(ObjectPage { entries, truncated })
    }

    fn record_intent(&self, id: &str, intent: &Intent) -> MetaResult<()> {
        self.intents.insert(id.as_bytes(), encode(intent)?)?;
        Ok(())
    }

    fn clear_intent(&self, id: &str) -> MetaResult<()> {
        self.intents.remove(id.as_bytes())?;
        Ok(())
    }

    fn intents(&self) -> MetaResult<Vec<(String, Intent)>> {
        self.intents
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let id = String::from_utf8_lossy(&k).into_owned();
                let intent = decode(&id, &v)?;
                Ok((id, intent))
            })
            .collect()
    }

    async fn sync(&self) -> MetaResult<()> {
        self.flush.flush(&self.db).await
    }
}

/// Group commit: concurrent writers that ask for durability share one flush.
///
/// A caller takes a ticket; whoever holds the lock flushes everything written so far, and every
/// caller whose ticket is covered by a finished flush returns without flushing again.
#[derive(Default)]
struct GroupFlush {
    requested: AtomicU64,
    done: Mutex<u64>,
}

impl GroupFlush {
    async fn flush(&self, db: &sled::Db) -> MetaResult<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut done = self.done.lock().await;
        if *done >= ticket {
            return Ok(());
        }
        // Everything written before this load is covered by the flush that follows.
        let covered = self.requested.load(Ordering::SeqCst);
        db.flush_async().await?;
        *done = covered;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(etag: &str) -> ObjectRecord {
        ObjectRecord {
            size: 3,
            etag: etag.into(),
            checksum: None,
            attributes: Default::default(),
            modified_ms: 1,
            version_id: "v".into(),
            owner: "o".into(),
            replicas: vec![],
        }
    }

    fn bucket(name: &str) -> BucketRecord {
        BucketRecord {
            name: name.into(),
            created_ms: 0,
            region: "us-east-1".into(),
            owner: "o".into(),
        }
    }

    #[tokio::test]
    async fn objects_survive_reopen_after_sync() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            store.create_bucket(&bucket("b1")).unwrap();
            store.put_object("b1", "k", &record("e1")).unwrap();
            store.sync().await.unwrap();
        }
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(store.object("b1", "k").unwrap().unwrap().etag, "e1");
        assert!(matches!(
            store.create_bucket(&bucket("b1")),
            Err(MetaError::BucketExists(_))
        ));
        assert!(matches!(
            store.delete_bucket("b1"),
            Err(MetaError::BucketNotEmpty(_))
        ));
        store.delete_object("b1", "k").unwrap();
        store.delete_bucket("b1").unwrap();
        assert!(store.bucket("b1").unwrap().is_none());
    }

    #[tokio::test]
    async fn scan_respects_prefix_start_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        store.create_bucket(&bucket("b1")).unwrap();
        for k in ["a", "b/1", "b/2", "b/3", "c"] {
            store.put_object("b1", k, &record(k)).unwrap();
        }
        let page = store.scan_objects("b1", "b/", Bound::Unbounded, 2).unwrap();
        let keys: Vec<_> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b/1", "b/2"]);
        assert!(page.truncated);
        let page = store
            .scan_objects("b1", "b/", Bound::Excluded("b/2".into()), 10)
            .unwrap();
        let keys: Vec<_> = page.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b/3"]);
        assert!(!page.truncated);
    }

    #[tokio::test]
    async fn concurrent_syncs_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SledStore::open(dir.path(), 8 << 20).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.create_bucket(&bucket(&format!("bucket{i}"))).unwrap();
                    s.sync().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.buckets().unwrap().len(), 16);
    }
}
