//! The records the index stores, and their versioned encoding.
//!
//! Every value starts with a format version byte so that later gateways can read (and migrate)
//! what earlier ones wrote.

use hansa_backends::ObjectAttributes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{MetaError, MetaResult};
use crate::checksum::composite::ChecksumType;
use crate::checksum::{Checksum, ChecksumAlgorithm};

const FORMAT_V1: u8 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BucketRecord {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub region: String,
    /// Access key id of the creator; the owner shown in listings and ACLs.
    pub owner: String,
}

/// One of a bucket's sub-resource configurations (`?cors`, `?policy`, …). The index keeps each
/// as the text its feature module wrote (that module owns the format); the bucket markers on
/// the backends carry them too, so that a rebuilt index gets them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BucketSetting {
    Cors,
    Policy,
    Acl,
    PublicAccessBlock,
    OwnershipControls,
    Tagging,
    Versioning,
    Lifecycle,
    ObjectLock,
}

impl BucketSetting {
    pub const ALL: [BucketSetting; 9] = [
        BucketSetting::Cors,
        BucketSetting::Policy,
        BucketSetting::Acl,
        BucketSetting::PublicAccessBlock,
        BucketSetting::OwnershipControls,
        BucketSetting::Tagging,
        BucketSetting::Versioning,
        BucketSetting::Lifecycle,
        BucketSetting::ObjectLock,
    ];

    /// The stable name it is stored under (in the index and in bucket markers).
    pub fn name(self) -> &'static str {
        match self {
            BucketSetting::Cors => "cors",
            BucketSetting::Policy => "policy",
            BucketSetting::Acl => "acl",
            BucketSetting::PublicAccessBlock => "public-access-block",
            BucketSetting::OwnershipControls => "ownership-controls",
            BucketSetting::Tagging => "tagging",
            BucketSetting::Versioning => "versioning",
            BucketSetting::Lifecycle => "lifecycle",
            BucketSetting::ObjectLock => "object-lock",
        }
    }

    pub fn from_name(name: &str) -> Option<BucketSetting> {
        BucketSetting::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ReplicaState {
    /// The backend holds this version under `name`, with backend ETag `etag`.
    Present,
    /// The backend should hold this version but does not yet (or holds a stale copy): a copy
    /// from a present replica will make it present.
    Pending,
    /// The backend holds this version's bytes durably but not yet under `name`: publishing
    /// the staged copy (`Replica::staged`) makes it present.
    Staged,
    /// A read found bytes that do not match the object: the copy must be replaced.
    Corrupt,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Replica {
    pub backend: String,
    /// Physical name relative to the backend's root.
    pub name: String,
    /// The backend's own ETag of this replica; reads ask for exactly this one.
    pub etag: String,
    pub state: ReplicaState,
    /// The backend's handle of the staged copy, while the state is `Staged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
}

impl Replica {
    /// A replica in `state` without a backend etag yet.
    pub fn new(backend: &str, name: &str, state: ReplicaState) -> Replica {
        Replica {
            backend: backend.to_string(),
            name: name.to_string(),
            etag: String::new(),
            state,
            staged: None,
        }
    }

    /// Whether `other` is the same copy slot: the same backend and physical name.
    pub fn same_slot(&self, other: &Replica) -> bool {
        self.backend == other.backend && self.name == other.name
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObjectRecord {
    pub size: u64,
    /// Hex MD5 of the content (S3 ETag without quotes).
    pub etag: String,
    pub checksum: Option<Checksum>,
    pub attributes: ObjectAttributes,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: u64,
    pub version_id: String,
    pub owner: String,
    pub replicas: Vec<Replica>,
    /// Parts of an object made by a multipart upload, in order (GetObject `partNumber`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "part_list")]
    pub parts: Vec<PartSummary>,
    /// How `checksum` was computed; `None` for single PUTs (a full-object checksum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<ChecksumType>,
    /// Hansa's own checksum of the whole object (CRC64NVME), computed as the bytes first
    /// arrived (or combined from the parts'): every whole-object read is verified against it.
    /// Absent in records written before it existed; reads then verify the MD5 ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Checksum>,
    /// The object's ACL as `crate::access::acl` stores it (JSON); `None`, as in records
    /// written before ACLs existed, means private: the owner has FULL_CONTROL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// The object's tags, in the order the client gave them. Index only: the copies on the
    /// backends do not carry them, so `hansa rebuild-index` brings objects back untagged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The version's object lock (retention and legal hold); none in records written before
    /// object lock existed.
    #[serde(default, skip_serializing_if = "ObjectLock::is_none")]
    pub lock: ObjectLock,
    /// Written while the bucket's versioning was enabled: S3 shows `version_id`. Otherwise
    /// (versioning off or suspended, and every record written before versioning existed)
    /// this is the key's `null` version, and `version_id` stays the unique id its replicas'
    /// stamps carry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub versioned: bool,
}

impl ObjectRecord {
    /// The value of the object's tag `key`, if it has one (lifecycle filters match on it).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// One tag of an object (`ObjectRecord::tags`) or of a bucket. Keys are unique in a set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Object lock retention modes (S3's `x-amz-object-lock-mode`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RetentionMode {
    /// Removable early by whoever holds `s3:BypassGovernanceRetention` and asks to bypass.
    Governance,
    /// Nobody can remove the version or shorten the retention before its date.
    Compliance,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    /// Milliseconds since the Unix epoch.
    pub retain_until_ms: u64,
}

/// One version's object lock state.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectLock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
}

impl ObjectLock {
    pub fn is_none(&self) -> bool {
        self.retention.is_none() && !self.legal_hold
    }
}

impl ObjectRecord {
    /// The version id S3 shows: `null` for the null version.
    pub fn shown_version_id(&self) -> &str {
        if self.versioned {
            &self.version_id
        } else {
            "null"
        }
    }
}

/// A noncurrent version of a key, or a delete marker, in the index's `versions` trees. The
/// current version of a key stays in `objects`; a key whose latest version is a delete marker
/// has no `objects` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum VersionEntry {
    /// A noncurrent object version; its replicas are named at the hidden version names
    /// (`hansa_backends::naming::version_name`).
    Object(Box<ObjectRecord>),
    DeleteMarker(DeleteMarker),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeleteMarker {
    pub version_id: String,
    pub modified_ms: u64,
    pub owner: String,
    /// As [`ObjectRecord::versioned`]: false for a suspended bucket's null marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub versioned: bool,
}

impl VersionEntry {
    pub fn version_id(&self) -> &str {
        match self {
            VersionEntry::Object(r) => &r.version_id,
            VersionEntry::DeleteMarker(m) => &m.version_id,
        }
    }

    pub fn modified_ms(&self) -> u64 {
        match self {
            VersionEntry::Object(r) => r.modified_ms,
            VersionEntry::DeleteMarker(m) => m.modified_ms,
        }
    }

    pub fn versioned(&self) -> bool {
        match self {
            VersionEntry::Object(r) => r.versioned,
            VersionEntry::DeleteMarker(m) => m.versioned,
        }
    }

    /// The version id S3 shows: `null` for the null version.
    pub fn shown_version_id(&self) -> &str {
        if self.versioned() {
            self.version_id()
        } else {
            "null"
        }
    }

    pub fn is_delete_marker(&self) -> bool {
        matches!(self, VersionEntry::DeleteMarker(_))
    }
}

/// One part of a completed multipart object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartSummary {
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// The stored form of an object's part list. Tools upload fixed-size chunks, so the common
/// list is parts of one size, the last one maybe shorter, without per-part checksums: that is
/// stored as three numbers instead of an entry per part, so the record of a 10,000-part
/// object stays small and listings that decode it stay cheap. Other lists (and records written
/// before this form existed) are an array of parts.
mod part_list {
    use super::PartSummary;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Uniform {
            part_size: u64,
            count: u32,
            last_size: u64,
        },
        Each(Vec<PartSummary>),
    }

    fn uniform(parts: &[PartSummary]) -> Option<Stored> {
        let (last, rest) = parts.split_last()?;
        let part_size = rest.first().map_or(last.size, |p| p.size);
        let same =
            parts.iter().all(|p| p.checksum.is_none()) && rest.iter().all(|p| p.size == part_size);
        (same && parts.len() > 1).then(|| Stored::Uniform {
            part_size,
            count: u32::try_from(parts.len()).unwrap_or(u32::MAX),
            last_size: last.size,
        })
    }

    pub fn serialize<S: Serializer>(parts: &[PartSummary], s: S) -> Result<S::Ok, S::Error> {
        match uniform(parts) {
            Some(form) => form.serialize(s),
            None => parts.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PartSummary>, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::Each(parts) => parts,
            Stored::Uniform {
                part_size,
                count,
                last_size,
            } => {
                // S3 allows 10,000 parts; a larger count is a corrupt record, not a reason
                // to allocate without bound.
                if count > 10_000 || count == 0 {
                    return Err(serde::de::Error::custom(format!(
                        "part count {count} out of 1..=10000"
                    )));
                }
                let part = |size| PartSummary {
                    size,
                    checksum: None,
                };
                let mut parts = vec![part(part_size); count as usize - 1];
                parts.push(part(last_size));
                parts
            }
        })
    }
}

/// A multipart upload in progress. Its parts are [`PartRecord`]s keyed by upload id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UploadRecord {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub owner: String,
    /// Content type, metadata & co. given at CreateMultipartUpload; the object gets them.
    pub attributes: ObjectAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<ChecksumType>,
    /// Where the object will live: chosen at creation, each with its backend upload handle.
    pub targets: Vec<UploadTarget>,
    /// The ACL asked for at CreateMultipartUpload; the object gets it at completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// The tags asked for at CreateMultipartUpload (`x-amz-tagging`); the object gets them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// The object lock asked for at CreateMultipartUpload; the object gets it at completion.
    #[serde(default, skip_serializing_if = "ObjectLock::is_none")]
    pub lock: ObjectLock,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UploadTarget {
    pub backend: String,
    /// Physical name of the object-to-be.
    pub name: String,
    /// The backend's handle for this upload (`Backend::create_upload`).
    pub handle: String,
}

/// The last upload of one part number.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartRecord {
    pub size: u64,
    /// Hex MD5 of the part: its S3 ETag.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    pub modified_ms: u64,
    /// Per upload target, in the order of [`UploadRecord::targets`]: the backend's receipt,
    /// or `None` where this part did not reach that target.
    pub receipts: Vec<Option<String>>,
    /// Hansa's CRC64NVME of the part: a completion combines them into the object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Checksum>,
}

/// A write in flight: recorded before the first byte leaves, kept until every copy it made
/// is published or discarded and the copies it superseded are removed. After a crash, the
/// intents still recorded tell start-up what to finish.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Intent {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub started_ms: u64,
    /// Access key of the writer.
    #[serde(default)]
    pub owner: String,
    pub phase: IntentPhase,
    /// Where the version goes, each with the handle of its staged (or prepared) copy.
    pub targets: Vec<IntentTarget>,
    /// Copies of the version this write replaced that it did not overwrite in place: removed
    /// once the write is done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Replica>,
    /// A multipart completion: the upload whose state on each backend is removed once that
    /// backend's copy no longer needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// What the key held before the write committed: put back if a crash leaves the write
    /// committed but provably published nowhere (its answer was never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Before>,
}

/// The key's entry before a write committed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Before {
    Absent,
    Object(Box<ObjectRecord>),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum IntentPhase {
    /// Bodies are being staged; nothing visible has changed. A crash here: discard.
    Staging,
    /// The index names the new version; its staged copies are being published. A crash here:
    /// publish what is still staged.
    Committed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IntentTarget {
    pub backend: String,
    pub name: String,
    /// The handle of the prepared or staged copy on this backend, if it got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// A multipart completion: this backend's handle of the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_handle: Option<String>,
}

/// Work a backend owes the index, kept in the index until done: make the replica of the
/// key's current version present there, or remove a copy the index no longer names (a delete
/// or an overwrite the backend missed while it was down).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RepairEntry {
    pub backend: String,
    pub bucket: String,
    pub key: String,
    pub task: RepairTask,
    /// Why it was queued (for logs and the admin plane).
    pub reason: String,
    pub enqueued_ms: u64,
    pub attempts: u32,
    /// Not tried again before this time (backoff after a failure).
    pub not_before_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RepairTask {
    /// The replica of `version_id` on the backend is missing, stale, corrupt or only staged.
    /// If a later version's replica there waits too, that one is repaired instead; dropped
    /// without work once the backend holds the key's current version (or the key is gone).
    Replicate {
        version_id: String,
        /// A staged copy that may still be published instead of copied again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        staged: Option<String>,
    },
    /// The backend may still hold a copy of this key under `name` that is not the current
    /// version: removed if its stamp says so.
    Remove { name: String },
}

impl RepairEntry {
    pub fn new(backend: &str, bucket: &str, key: &str, task: RepairTask, reason: &str) -> Self {
        RepairEntry {
            backend: backend.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            task,
            reason: reason.to_string(),
            enqueued_ms: super::now_ms(),
            attempts: 0,
            not_before_ms: 0,
            last_error: None,
        }
    }

    /// Where the entry lives in the queue: by backend first (a backend's debt is one range),
    /// then bucket and key; one replication per key and backend, one removal per name.
    pub fn queue_key(&self) -> Vec<u8> {
        let mut out = queue_prefix(&self.backend);
        for part in [self.bucket.as_bytes(), self.key.as_bytes()] {
            out.extend_from_slice(part);
            out.push(0);
        }
        match &self.task {
            RepairTask::Replicate { .. } => out.push(b'r'),
            RepairTask::Remove { name } => {
                out.push(b'd');
                out.extend_from_slice(name.as_bytes());
            }
        }
        out
    }
}

/// The queue keys of one backend's entries start with this.
pub fn queue_prefix(backend: &str) -> Vec<u8> {
    let mut out = backend.as_bytes().to_vec();
    out.push(0);
    out
}

pub(super) fn encode<T: Serialize>(value: &T) -> MetaResult<Vec<u8>> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| MetaError::Corrupt {
        what: std::any::type_name::<T>().to_string(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(super) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> MetaResult<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => serde_json::from_slice(rest).map_err(|e| MetaError::Corrupt {
            what: what.to_string(),
            reason: e.to_string(),
        }),
        Some((&version, _)) => Err(MetaError::UnknownFormat(version)),
        None => Err(MetaError::Corrupt {
            what: what.to_string(),
            reason: "empty value".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_with_parts(parts: Vec<PartSummary>) -> ObjectRecord {
        ObjectRecord {
            size: parts.iter().map(|p| p.size).sum(),
            etag: "e-2".into(),
            checksum: None,
            attributes: Default::default(),
            modified_ms: 1,
            version_id: "v".into(),
            owner: "o".into(),
            replicas: vec![],
            parts,
            checksum_type: None,
            integrity: None,
            acl: None,
            tags: vec![],
            lock: Default::default(),
            versioned: false,
        }
    }

    fn part(size: u64) -> PartSummary {
        PartSummary {
            size,
            checksum: None,
        }
    }

    #[test]
    fn uniform_part_lists_are_stored_as_three_numbers() {
        let mut parts = vec![part(8 << 20); 9_999];
        parts.push(part(12_345));
        let record = record_with_parts(parts);
        let stored = encode(&record).expect("encode");
        assert!(stored.len() < 400, "{} bytes", stored.len());
        assert_eq!(
            decode::<ObjectRecord>("object", &stored).expect("decode"),
            record
        );
        // One part, or equal parts throughout.
        for parts in [vec![part(7)], vec![part(5 << 20); 3]] {
            let record = record_with_parts(parts);
            let stored = encode(&record).expect("encode");
            assert_eq!(
                decode::<ObjectRecord>("object", &stored).expect("decode"),
                record
            );
        }
    }

    #[test]
    fn other_part_lists_keep_an_entry_per_part() {
        let checksum = Checksum {
            algorithm: ChecksumAlgorithm::Crc32,
            value: "AAAAAA==".into(),
        };
        let with_checksums = vec![
            PartSummary {
                size: 5 << 20,
                checksum: Some(checksum.clone()),
            },
            PartSummary {
                size: 3,
                checksum: Some(checksum),
            },
        ];
        let uneven = vec![part(6 << 20), part(5 << 20), part(1)];
        for parts in [with_checksums, uneven] {
            let record = record_with_parts(parts);
            let stored = encode(&record).expect("encode");
            assert!(String::from_utf8_lossy(&stored).contains("\"parts\":["));
            assert_eq!(
                decode::<ObjectRecord>("object", &stored).expect("decode"),
                record
            );
        }
    }

    #[test]
    fn a_uniform_list_with_an_impossible_count_is_corrupt() {
        let stored = encode(&record_with_parts(vec![part(5), part(5)])).expect("encode");
        let text =
            String::from_utf8_lossy(&stored[1..]).replace("\"count\":2", "\"count\":4000000000");
        let mut bad = vec![stored[0]];
        bad.extend_from_slice(text.as_bytes());
        assert!(decode::<ObjectRecord>("object", &bad).is_err());
    }
}
