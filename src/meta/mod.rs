//! The index: the authoritative record of buckets, objects and their replicas.
//!
//! `MetaStore` is a trait so that a shared database can replace the embedded sled store when
//! one gateway is not enough; the gateway only talks to the trait.

mod jobs;
mod records;
mod sled_store;

pub use jobs::{JobCursor, JobProblem, JobProgress, JobRecord, JobSpec, JobState, MAX_PROBLEMS};

pub use records::{
    queue_prefix, Before, BucketRecord, BucketSetting, DeleteMarker, Intent, IntentPhase,
    IntentTarget, ObjectLock, ObjectRecord, PartRecord, PartSummary, RepairEntry, RepairTask,
    Replica, ReplicaState, Retention, RetentionMode, Tag, UploadRecord, UploadTarget, VersionEntry,
};
pub use sled_store::SledStore;

use std::ops::Bound;

#[derive(thiserror::Error, Debug)]
pub enum MetaError {
    #[error("index storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("index record {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("index record format version {0} is newer than this gateway understands")]
    UnknownFormat(u8),
    #[error("bucket {0} already exists")]
    BucketExists(String),
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// Milliseconds since the Unix epoch: the time stamps records carry.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One page of keys, in key order, starting strictly after or at a bound.
pub struct ObjectPage {
    pub entries: Vec<(String, ObjectRecord)>,
    /// True when the scan stopped because it hit the limit, not the end of the bucket.
    pub truncated: bool,
}

/// One page of noncurrent versions, in key order, each key's newest first.
pub struct VersionPage {
    pub entries: Vec<(String, VersionEntry)>,
    /// True when the scan stopped because it hit the limit.
    pub truncated: bool,
}

#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + 'static {
    fn create_bucket(&self, record: &BucketRecord) -> MetaResult<()>;
    fn bucket(&self, name: &str) -> MetaResult<Option<BucketRecord>>;
    fn buckets(&self) -> MetaResult<Vec<BucketRecord>>;
    /// Removes the bucket if it holds no objects and no versions.
    fn delete_bucket(&self, name: &str) -> MetaResult<()>;

    /// The bucket's `setting` document, if set.
    fn bucket_setting(&self, bucket: &str, setting: BucketSetting) -> MetaResult<Option<String>>;
    /// Every setting the bucket has.
    fn bucket_settings(&self, bucket: &str) -> MetaResult<Vec<(BucketSetting, String)>>;
    /// Sets (`Some`) or removes (`None`) a setting; `NoSuchBucket` when the bucket is gone.
    fn set_bucket_setting(
        &self,
        bucket: &str,
        setting: BucketSetting,
        value: Option<&str>,
    ) -> MetaResult<()>;

    fn object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>>;
    fn put_object(&self, bucket: &str, key: &str, record: &ObjectRecord) -> MetaResult<()>;
    fn delete_object(&self, bucket: &str, key: &str) -> MetaResult<Option<ObjectRecord>>;
    /// Objects whose key starts with `prefix`, from `start` on, at most `limit` of them.
    fn scan_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: Bound<String>,
        limit: usize,
    ) -> MetaResult<ObjectPage>;

    /// Records a noncurrent version or delete marker of `key`.
    fn put_version(&self, bucket: &str, key: &str, entry: &VersionEntry) -> MetaResult<()>;
    /// Removes the entry (found by its version id and time); missing is fine.
    fn remove_version(&self, bucket: &str, key: &str, entry: &VersionEntry) -> MetaResult<()>;
    /// The noncurrent versions and delete markers of `key`, newest first.
    fn versions_of(&self, bucket: &str, key: &str) -> MetaResult<Vec<VersionEntry>>;
    /// Noncurrent versions and markers of keys starting with `prefix`, keys ascending (from
    /// `start` on), each key's newest first; at most `limit` entries.
    fn scan_versions(
        &self,
        bucket: &str,
        prefix: &str,
        start: Bound<String>,
        limit: usize,
    ) -> MetaResult<VersionPage>;

    fn create_upload(&self, record: &UploadRecord) -> MetaResult<()>;
    fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> MetaResult<Option<UploadRecord>>;
    /// Removes the upload and all its part records.
    fn delete_upload(&self, bucket: &str, key: &str, upload_id: &str) -> MetaResult<()>;
    /// Uploads in `bucket` whose key starts with `prefix`, in (key, initiation) order, after
    /// `after` = (key, upload id): with an upload id, later uploads of that key follow; without,
    /// only later keys. At most `limit`.
    fn scan_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, Option<&str>)>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>>;
    /// Every upload in every bucket (for the clean-up of abandoned uploads).
    fn all_uploads(&self) -> MetaResult<Vec<UploadRecord>>;
    fn put_part(&self, upload_id: &str, part_number: u32, part: &PartRecord) -> MetaResult<()>;
    /// Parts with numbers above `after`, ascending, at most `limit`.
    fn parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> MetaResult<Vec<(u32, PartRecord)>>;

    fn record_intent(&self, id: &str, intent: &Intent) -> MetaResult<()>;
    fn intent(&self, id: &str) -> MetaResult<Option<Intent>>;
    fn clear_intent(&self, id: &str) -> MetaResult<()>;
    fn intents(&self) -> MetaResult<Vec<(String, Intent)>>;

    /// Queues `entry`, replacing an entry for the same work (see [`RepairEntry::queue_key`]).
    fn queue_repair(&self, entry: &RepairEntry) -> MetaResult<()>;
    /// Queues `entry` unless the same work is queued already (keeping its backoff).
    fn queue_repair_if_absent(&self, entry: &RepairEntry) -> MetaResult<bool>;
    /// `backend`'s entries in queue order, after the queue key `after`, at most `limit`.
    fn repairs(
        &self,
        backend: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, RepairEntry)>>;
    /// Replaces `old` by `new` (or removes it, with `None`) if the queue still holds exactly
    /// `old`: work queued again meanwhile is kept. Returns whether it did.
    fn settle_repair(&self, old: &RepairEntry, new: Option<&RepairEntry>) -> MetaResult<bool>;
    /// How many entries `backend` has, and when the oldest was queued.
    fn repair_depth(&self, backend: &str) -> MetaResult<(usize, Option<u64>)>;

    /// Creates or replaces a job's record.
    fn put_job(&self, job: &JobRecord) -> MetaResult<()>;
    fn job(&self, id: &str) -> MetaResult<Option<JobRecord>>;
    /// Every job, oldest first.
    fn jobs(&self) -> MetaResult<Vec<JobRecord>>;

    /// A background task's saved position (e.g. the lifecycle worker's cursor), by name.
    fn upkeep_cursor(&self, name: &str) -> MetaResult<Option<String>>;
    /// Saves (`Some`) or clears (`None`) a background task's position.
    fn set_upkeep_cursor(&self, name: &str, value: Option<&str>) -> MetaResult<()>;

    /// Makes every change so far durable. Called before any success reply to a write.
    async fn sync(&self) -> MetaResult<()>;

    /// The index's size on disk, in bytes (for metrics); an error says the index does not
    /// answer.
    fn size_on_disk(&self) -> MetaResult<u64>;
}
