//! The embedded index on sled.
//!
//! Trees: `buckets` (name → BucketRecord), one `objects/<bucket>` tree per bucket (key bytes →
//! ObjectRecord, so a listing is an ordered range scan), `intents`, `uploads` (bucket NUL key
//! NUL upload id → UploadRecord; upload ids sort by creation time, so a key's uploads list in
//! the order S3 lists them), `parts` (upload id, big-endian part number → PartRecord) and
//! `repairs` (backend NUL bucket NUL key NUL task → RepairEntry: the repair queue) and
//! `bucket_settings` (bucket NUL setting name → the setting's document), `upkeep` (task name
//! → where a background task got to), and one `versions/<bucket>` tree per bucket (key bytes, NUL, big-endian `u64::MAX - modified_ms`,
//! inverted version id → VersionEntry: keys ascending, each key's versions newest first).

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::records::{decode, encode};
use super::{
    queue_prefix, BucketRecord, BucketSetting, Intent, JobRecord, MetaError, MetaResult, MetaStore,
    ObjectPage, ObjectRecord, PartRecord, RepairEntry, UploadRecord, VersionEntry, VersionPage,
};

pub struct SledStore {
    db: sled::Db,
    buckets: sled::Tree,
    intents: sled::Tree,
    uploads: sled::Tree,
    parts: sled::Tree,
    repairs: sled::Tree,
    jobs: sled::Tree,
    settings: sled::Tree,
    upkeep: sled::Tree,
    flush: GroupFlush,
}

fn setting_key(bucket: &str, setting: BucketSetting) -> Vec<u8> {
    let mut out = settings_prefix(bucket);
    out.extend_from_slice(setting.name().as_bytes());
    out
}

fn settings_prefix(bucket: &str) -> Vec<u8> {
    let mut out = bucket.as_bytes().to_vec();
    out.push(0);
    out
}

/// Bytes after the key in a `versions` tree key: NUL and the inverted time.
const VERSION_ORDER_BYTES: usize = 9;

fn version_prefix(key: &str) -> Vec<u8> {
    let mut out = key.as_bytes().to_vec();
    out.push(0);
    out
}

fn version_key(key: &str, entry: &VersionEntry) -> Vec<u8> {
    let mut out = version_prefix(key);
    out.extend_from_slice(&(u64::MAX - entry.modified_ms()).to_be_bytes());
    // Inverted too: of two versions of one millisecond, the later id (UUID v7) comes first.
    out.extend(entry.version_id().bytes().map(|b| !b));
    out
}

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + upload_id.len() + 2);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(upload_id.len() + 5);
    out.extend_from_slice(upload_id.as_bytes());
    out.push(0);
    out.extend_from_slice(&part_number.to_be_bytes());
    out
}

fn part_prefix(upload_id: &str) -> Vec<u8> {
    let mut out = upload_id.as_bytes().to_vec();
    out.push(0);
    out
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
        let uploads = db.open_tree("uploads")?;
        let parts = db.open_tree("parts")?;
        let repairs = db.open_tree("repairs")?;
        let jobs = db.open_tree("jobs")?;
        let settings = db.open_tree("bucket_settings")?;
        let upkeep = db.open_tree("upkeep")?;
        Ok(SledStore {
            db,
            buckets,
            intents,
            uploads,
            parts,
            repairs,
            jobs,
            settings,
            upkeep,
            flush: GroupFlush::default(),
        })
    }

    fn objects(&self, bucket: &str) -> MetaResult<sled::Tree> {
        Ok(self.db.open_tree(format!("objects/{bucket}"))?)
    }

    fn versions(&self, bucket: &str) -> MetaResult<sled::Tree> {
        Ok(self.db.open_tree(format!("versions/{bucket}"))?)
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
        if !objects.is_empty() || !self.versions(name)?.is_empty() {
            return Err(MetaError::BucketNotEmpty(name.to_string()));
        }
        self.buckets.remove(name.as_bytes())?;
        self.db.drop_tree(format!("objects/{name}"))?;
        self.db.drop_tree(format!("versions/{name}"))?;
        for item in self.settings.scan_prefix(settings_prefix(name)) {
            let (key, _) = item?;
            self.settings.remove(key)?;
        }
        Ok(())
    }

    fn bucket_setting(&self, bucket: &str, setting: BucketSetting) -> MetaResult<Option<String>> {
        self.settings
            .get(setting_key(bucket, setting))?
            .map(|v| decode(setting.name(), &v))
            .transpose()
    }

    fn bucket_settings(&self, bucket: &str) -> MetaResult<Vec<(BucketSetting, String)>> {
        let prefix = settings_prefix(bucket);
        let mut out = Vec::new();
        for item in self.settings.scan_prefix(&prefix) {
            let (key, value) = item?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            // A setting a later gateway wrote and this one does not know: not ours to show.
            if let Some(setting) = BucketSetting::from_name(&name) {
                out.push((setting, decode(&name, &value)?));
            }
        }
        Ok(out)
    }

    fn set_bucket_setting(
        &self,
        bucket: &str,
        setting: BucketSetting,
        value: Option<&str>,
    ) -> MetaResult<()> {
        if self.buckets.get(bucket.as_bytes())?.is_none() {
            return Err(MetaError::NoSuchBucket(bucket.to_string()));
        }
        let key = setting_key(bucket, setting);
        match value {
            Some(value) => {
                self.settings.insert(key, encode(&value)?)?;
            }
            None => {
                self.settings.remove(key)?;
            }
        }
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

    fn put_version(&self, bucket: &str, key: &str, entry: &VersionEntry) -> MetaResult<()> {
        self.versions(bucket)?
            .insert(version_key(key, entry), encode(entry)?)?;
        Ok(())
    }

    fn remove_version(&self, bucket: &str, key: &str, entry: &VersionEntry) -> MetaResult<()> {
        self.versions(bucket)?.remove(version_key(key, entry))?;
        Ok(())
    }

    fn versions_of(&self, bucket: &str, key: &str) -> MetaResult<Vec<VersionEntry>> {
        let prefix = version_prefix(key);
        let mut out = Vec::new();
        for item in self.versions(bucket)?.scan_prefix(&prefix) {
            let (k, v) = item?;
            let entry: VersionEntry = decode(key, &v)?;
            if version_key(key, &entry) == k.as_ref() {
                out.push(entry);
            }
        }
        Ok(out)
    }

    fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        start: Bound<String>,
        limit: usize,
    ) -> MetaResult<VersionPage> {
        let tree = self.versions(bucket)?;
        let start: Bound<Vec<u8>> = match start {
            Bound::Included(s) if s.as_str() > prefix => Bound::Included(version_prefix(&s)),
            // Past every entry of key `s`: its prefix followed by the highest bytes.
            Bound::Excluded(s) if s.as_str() >= prefix => {
                let mut after = version_prefix(&s);
                after.extend_from_slice(&[0xff; VERSION_ORDER_BYTES]);
                Bound::Excluded(after)
            }
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
            let entry: VersionEntry = decode(bucket, &v)?;
            let id_len = entry.version_id().len();
            let Some(key_len) = k.len().checked_sub(id_len + VERSION_ORDER_BYTES) else {
                continue;
            };
            let key = String::from_utf8(k[..key_len].to_vec()).map_err(|_| MetaError::Corrupt {
                what: format!("version key in bucket {bucket}"),
                reason: "not UTF-8".into(),
            })?;
            entries.push((key, entry));
        }
        Ok(VersionPage { entries, truncated })
    }

    fn create_upload(&self, record: &UploadRecord) -> MetaResult<()> {
        let key = upload_key(&record.bucket, &record.key, &record.upload_id);
        self.uploads.insert(key, encode(record)?)?;
        Ok(())
    }

    fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> MetaResult<Option<UploadRecord>> {
        self.uploads
            .get(upload_key(bucket, key, upload_id))?
            .map(|v| decode(upload_id, &v))
            .transpose()
    }

    fn delete_upload(&self, bucket: &str, key: &str, upload_id: &str) -> MetaResult<()> {
        self.uploads.remove(upload_key(bucket, key, upload_id))?;
        let mut batch = sled::Batch::default();
        for item in self.parts.scan_prefix(part_prefix(upload_id)) {
            let (k, _) = item?;
            batch.remove(k);
        }
        self.parts.apply_batch(batch)?;
        Ok(())
    }

    fn scan_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, Option<&str>)>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>> {
        let mut scope = bucket.as_bytes().to_vec();
        scope.push(0);
        let mut first = scope.clone();
        first.extend_from_slice(prefix.as_bytes());
        let start = match after {
            // Strictly after that upload of the key: later uploads of the same key follow.
            Some((key, Some(upload_id))) => Bound::Excluded(upload_key(bucket, key, upload_id)),
            // Past every upload of the key: `key NUL …` < `key \x01`, and any longer key that
            // starts with `key` sorts at or after it.
            Some((key, None)) => {
                let mut k = scope.clone();
                k.extend_from_slice(key.as_bytes());
                k.push(1);
                Bound::Included(k)
            }
            None => Bound::Included(first.clone()),
        };
        let start = match start {
            Bound::Included(k) | Bound::Excluded(k) if k < first => Bound::Included(first.clone()),
            other => other,
        };
        let mut out = Vec::new();
        for item in self.uploads.range((start, Bound::Unbounded)) {
            if out.len() == limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(&first) {
                break;
            }
            out.push(decode("upload", &v)?);
        }
        Ok(out)
    }

    fn all_uploads(&self) -> MetaResult<Vec<UploadRecord>> {
        self.uploads
            .iter()
            .map(|item| {
                let (_, v) = item?;
                decode("upload", &v)
            })
            .collect()
    }

    fn put_part(&self, upload_id: &str, part_number: u32, part: &PartRecord) -> MetaResult<()> {
        self.parts
            .insert(part_key(upload_id, part_number), encode(part)?)?;
        Ok(())
    }

    fn parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> MetaResult<Vec<(u32, PartRecord)>> {
        let prefix = part_prefix(upload_id);
        let start = part_key(upload_id, after.saturating_add(1));
        let mut out = Vec::new();
        if after == u32::MAX {
            return Ok(out);
        }
        for item in self.parts.range(start..) {
            if out.len() == limit {
                break;
            }
            let (k, v) = item?;
            let Some(number) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let number: [u8; 4] = number.try_into().map_err(|_| MetaError::Corrupt {
                what: format!("part of upload {upload_id}"),
                reason: "bad part key".into(),
            })?;
            out.push((u32::from_be_bytes(number), decode("part", &v)?));
        }
        Ok(out)
    }

    fn record_intent(&self, id: &str, intent: &Intent) -> MetaResult<()> {
        self.intents.insert(id.as_bytes(), encode(intent)?)?;
        Ok(())
    }

    fn intent(&self, id: &str) -> MetaResult<Option<Intent>> {
        self.intents
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    fn clear_intent(&self, id: &str) -> MetaResult<()> {
        self.intents.remove(id.as_bytes())?;
        Ok(())
    }

    fn intents(&self) -> MetaResult<Vec<(String, Intent)>> {
        let mut out = Vec::new();
        for item in self.intents.iter() {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k).into_owned();
            match decode(&id, &v) {
                Ok(intent) => out.push((id, intent)),
                // An intent of another format (an older gateway's) only names copies to clean
                // up; the collection of staged leftovers finds those without it.
                Err(e) => {
                    tracing::warn!(intent = %id, error = %e, "dropping an unreadable write intent");
                    self.intents.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    fn upkeep_cursor(&self, name: &str) -> MetaResult<Option<String>> {
        Ok(self
            .upkeep
            .get(name.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_upkeep_cursor(&self, name: &str, value: Option<&str>) -> MetaResult<()> {
        match value {
            Some(v) => {
                self.upkeep.insert(name.as_bytes(), v.as_bytes())?;
            }
            None => {
                self.upkeep.remove(name.as_bytes())?;
            }
        }
        Ok(())
    }

    fn put_job(&self, job: &JobRecord) -> MetaResult<()> {
        self.jobs.insert(job.id.as_bytes(), encode(job)?)?;
        Ok(())
    }

    fn job(&self, id: &str) -> MetaResult<Option<JobRecord>> {
        self.jobs
            .get(id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    fn jobs(&self) -> MetaResult<Vec<JobRecord>> {
        self.jobs
            .iter()
            .map(|item| {
                let (k, v) = item?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    fn queue_repair(&self, entry: &RepairEntry) -> MetaResult<()> {
        self.repairs.insert(entry.queue_key(), encode(entry)?)?;
        Ok(())
    }

    fn queue_repair_if_absent(&self, entry: &RepairEntry) -> MetaResult<bool> {
        let swapped = self.repairs.compare_and_swap(
            entry.queue_key(),
            None as Option<&[u8]>,
            Some(encode(entry)?),
        )?;
        Ok(swapped.is_ok())
    }

    fn repairs(
        &self,
        backend: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, RepairEntry)>> {
        let prefix = queue_prefix(backend);
        let start = match after {
            Some(after) if after >= prefix.as_slice() => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        for item in self.repairs.range((start, Bound::Unbounded)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() == limit {
                break;
            }
            match decode::<RepairEntry>("repair", &v) {
                Ok(entry) => out.push((k.to_vec(), entry)),
                // Work of a format this gateway cannot read: anti-entropy finds it again.
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an unreadable repair entry");
                    self.repairs.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    fn settle_repair(&self, old: &RepairEntry, new: Option<&RepairEntry>) -> MetaResult<bool> {
        let key = old.queue_key();
        let new = new.map(encode).transpose()?;
        let swapped = self
            .repairs
            .compare_and_swap(key, Some(encode(old)?), new)?;
        Ok(swapped.is_ok())
    }

    fn repair_depth(&self, backend: &str) -> MetaResult<(usize, Option<u64>)> {
        let mut count = 0;
        let mut oldest: Option<u64> = None;
        for item in self.repairs.scan_prefix(queue_prefix(backend)) {
            let (_, v) = item?;
            count += 1;
            if let Ok(entry) = decode::<RepairEntry>("repair", &v) {
                oldest = Some(oldest.map_or(entry.enqueued_ms, |o| o.min(entry.enqueued_ms)));
            }
        }
        Ok((count, oldest))
    }

    async fn sync(&self) -> MetaResult<()> {
        self.flush.flush(&self.db).await
    }

    fn size_on_disk(&self) -> MetaResult<u64> {
        Ok(self.db.size_on_disk()?)
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
        let started = std::time::Instant::now();
        db.flush_async().await?;
        crate::metrics::index_flushed(started.elapsed());
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
            parts: vec![],
            checksum_type: None,
            integrity: None,
            acl: None,
            tags: vec![],
            lock: Default::default(),
            versioned: false,
        }
    }

    fn upload(bucket: &str, key: &str, id: &str) -> UploadRecord {
        UploadRecord {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: id.into(),
            initiated_ms: 1,
            owner: "o".into(),
            attributes: Default::default(),
            checksum_algorithm: None,
            checksum_type: None,
            targets: vec![],
            acl: None,
            tags: vec![],
            lock: Default::default(),
        }
    }

    fn part(etag: &str) -> PartRecord {
        PartRecord {
            size: 5,
            etag: etag.into(),
            checksum: None,
            modified_ms: 1,
            receipts: vec![Some("r".into())],
            integrity: None,
        }
    }

    #[tokio::test]
    async fn uploads_scan_in_key_then_id_order_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        for (k, id) in [
            ("a", "u2"),
            ("a", "u1"),
            ("ab", "u3"),
            ("b/c", "u4"),
            ("b/d", "u5"),
        ] {
            store.create_upload(&upload("b1", k, id)).unwrap();
        }
        store.create_upload(&upload("b2", "a", "u9")).unwrap();
        let ids = |v: Vec<UploadRecord>| v.into_iter().map(|u| u.upload_id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.scan_uploads("b1", "", None, 100).unwrap()),
            ["u1", "u2", "u3", "u4", "u5"]
        );
        assert_eq!(
            ids(store.scan_uploads("b1", "b/", None, 1).unwrap()),
            ["u4"]
        );
        assert_eq!(
            ids(store
                .scan_uploads("b1", "", Some(("a", Some("u1"))), 100)
                .unwrap()),
            ["u2", "u3", "u4", "u5"]
        );
        assert_eq!(
            ids(store
                .scan_uploads("b1", "", Some(("a", None)), 100)
                .unwrap()),
            ["u3", "u4", "u5"]
        );
        assert_eq!(
            ids(store
                .scan_uploads("b1", "b/", Some(("a", None)), 100)
                .unwrap()),
            ["u4", "u5"]
        );
        assert_eq!(store.all_uploads().unwrap().len(), 6);
    }

    #[tokio::test]
    async fn parts_page_and_go_with_their_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        store.create_upload(&upload("b1", "k", "u1")).unwrap();
        for n in [3, 1, 10000, 2] {
            store.put_part("u1", n, &part(&format!("e{n}"))).unwrap();
        }
        store.put_part("u1", 2, &part("again")).unwrap();
        store.put_part("u10", 1, &part("other upload")).unwrap();
        let numbers = |v: Vec<(u32, PartRecord)>| v.into_iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            numbers(store.parts("u1", 0, 100).unwrap()),
            [1, 2, 3, 10000]
        );
        assert_eq!(numbers(store.parts("u1", 1, 2).unwrap()), [2, 3]);
        assert_eq!(store.parts("u1", 1, 1).unwrap()[0].1.etag, "again");
        assert!(store.parts("u1", 10000, 10).unwrap().is_empty());
        store.delete_upload("b1", "k", "u1").unwrap();
        assert!(store.upload("b1", "k", "u1").unwrap().is_none());
        assert!(store.parts("u1", 0, 100).unwrap().is_empty());
        assert_eq!(store.parts("u10", 0, 100).unwrap().len(), 1);
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
    async fn bucket_settings_live_and_die_with_their_bucket() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), 8 << 20).unwrap();
            assert!(matches!(
                store.set_bucket_setting("nope", BucketSetting::Cors, Some("x")),
                Err(MetaError::NoSuchBucket(_))
            ));
            store.create_bucket(&bucket("b1")).unwrap();
            // A bucket whose name extends b1's must not see b1's settings.
            store.create_bucket(&bucket("b1x")).unwrap();
            store
                .set_bucket_setting("b1", BucketSetting::Cors, Some("<cors/>"))
                .unwrap();
            store
                .set_bucket_setting("b1", BucketSetting::Policy, Some("{}"))
                .unwrap();
            store.sync().await.unwrap();
        }
        let store = SledStore::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(
            store.bucket_setting("b1", BucketSetting::Cors).unwrap(),
            Some("<cors/>".to_string())
        );
        assert_eq!(store.bucket_settings("b1").unwrap().len(), 2);
        assert!(store.bucket_settings("b1x").unwrap().is_empty());
        store
            .set_bucket_setting("b1", BucketSetting::Cors, None)
            .unwrap();
        assert_eq!(
            store.bucket_setting("b1", BucketSetting::Cors).unwrap(),
            None
        );
        store.delete_bucket("b1").unwrap();
        store.create_bucket(&bucket("b1")).unwrap();
        assert!(store.bucket_settings("b1").unwrap().is_empty());
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
