//! Rebuilding a lost index from the backends alone (`hansa rebuild-index`), offline.
//!
//! Every configured backend is listed in parallel: its bucket markers (`.hansa/b/`), its
//! tombstones (`.hansa/t/`) and its stamped copies (plain and fallback names; staged copies,
//! temporary files, parts of uploads in progress and probes are never listed). Per
//! (bucket, key) the newest version wins ([`newer`]); its replicas are the backends that hold a
//! copy of exactly that version. A tombstone of that version or a newer one means the key was
//! deleted: it stays deleted. Copies of older versions are left where they are; once the
//! gateway runs, anti-entropy finds them unnamed by the index and removes them.
//!
//! Backends the placement policy wants for a key but that lack its newest version get a
//! pending replica and a repair entry, so the repair worker fills them after start. The index
//! is flushed once, at the end. The rules are described in docs/LAYOUT.md and docs/REBUILD.md.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hansa_backends::naming::{
    fallback_name, is_valid_bucket_name, physical_name, version_name, BUCKET_MARKER_PREFIX,
    TOMBSTONE_PREFIX, VERSIONS_PREFIX,
};
use hansa_backends::{Backend, ObjectInfo, PhysicalName};
use serde::Serialize;

use super::queue::queue_missing_replicas;
use super::records::{read_json, BucketMarker, Tombstone};
use super::{Store, StoreError, StoreResult};
use crate::checksum::Checksum;
use crate::meta::{
    BucketRecord, BucketSetting, DeleteMarker, ObjectRecord, Replica, ReplicaState, VersionEntry,
};

/// What a rebuild found and recorded.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RebuildReport {
    pub backends: usize,
    pub buckets: usize,
    pub objects: usize,
    /// Noncurrent versions and delete markers recorded.
    pub versions: usize,
    /// Sum of the recorded objects' sizes.
    pub bytes: u64,
    /// Copies of versions older than their key's newest (or of deleted versions), left for
    /// anti-entropy to remove once the gateway runs.
    pub stale_copies: usize,
    /// Keys whose newest version a tombstone marks deleted: not recorded.
    pub tombstoned_keys: usize,
    /// Objects without Hansa's stamp that were not imported (not under a valid bucket name,
    /// a key Hansa also has a stamped copy of, `--import-foreign` not given, or a store that
    /// cannot restamp).
    pub foreign_skipped: usize,
    /// Objects without Hansa's stamp imported with `--import-foreign` (read once, restamped).
    pub foreign_imported: usize,
    /// Replicas recorded pending and queued for repair (the policy wants them, the backend
    /// lacks the version).
    pub pending_replicas: usize,
    pub millis: u64,
}

/// How a rebuild treats what Hansa did not write.
#[derive(Clone, Copy, Debug, Default)]
pub struct RebuildOptions {
    /// Import unstamped objects at plain names `<bucket>/<key>` of a valid bucket: each is
    /// read once (MD5 ETag, Hansa's integrity checksum) and stamped as a new version.
    pub import_foreign: bool,
}

/// What one backend's listing holds.
#[derive(Default)]
struct BackendScan {
    markers: Vec<BucketMarker>,
    tombstones: Vec<Tombstone>,
    copies: Vec<ObjectInfo>,
    /// Stamped copies of noncurrent versions and delete markers, at their hidden names.
    versions: Vec<ObjectInfo>,
    /// Unstamped objects at a plain name of a valid bucket: candidates for import.
    importable: Vec<ObjectInfo>,
    foreign: usize,
}

/// One copy of a key on one backend.
struct Found {
    backend: String,
    info: ObjectInfo,
}

/// Rebuilds the index of `store`, which must hold no bucket: refuses otherwise (the index was
/// not lost, or a rebuild already ran). A backend that cannot be listed fails the rebuild:
/// what it alone holds would be lost, or an older version taken for the newest.
pub async fn rebuild_index(
    store: &Arc<Store>,
    default_owner: &str,
    default_region: &str,
    options: RebuildOptions,
) -> StoreResult<RebuildReport> {
    let started = Instant::now();
    let existing = store.meta.buckets()?;
    if !existing.is_empty() {
        return Err(StoreError::Internal(format!(
            "the index already holds {} bucket(s) (e.g. {}): a rebuild only fills an empty index",
            existing.len(),
            existing[0].name
        )));
    }
    let scans = futures::future::join_all(store.backends.iter().map(|b| scan(store, b))).await;
    let mut report = RebuildReport {
        backends: scans.len(),
        ..RebuildReport::default()
    };

    let mut buckets: BTreeMap<String, BucketRecord> = BTreeMap::new();
    let mut settings: BTreeMap<String, BucketMarker> = BTreeMap::new();
    let mut tombstones: HashMap<(String, String), Tombstone> = HashMap::new();
    let mut keys: BTreeMap<(String, String), Vec<Found>> = BTreeMap::new();
    let mut importable: BTreeMap<(String, String), Vec<Found>> = BTreeMap::new();
    let mut versions: BTreeMap<(String, String, String), Vec<Found>> = BTreeMap::new();
    for (backend, scan) in store.backends.iter().zip(scans) {
        let scan = scan?;
        for info in scan.versions {
            let Some(stamp) = &info.stamp else { continue };
            versions
                .entry((
                    stamp.bucket.clone(),
                    stamp.key.clone(),
                    stamp.version_id.clone(),
                ))
                .or_default()
                .push(Found {
                    backend: backend.id().to_string(),
                    info,
                });
        }
        report.foreign_skipped += scan.foreign;
        for info in scan.importable {
            let Some((bucket, key)) = info.name.split_once('/') else {
                continue;
            };
            importable
                .entry((bucket.to_string(), key.to_string()))
                .or_default()
                .push(Found {
                    backend: backend.id().to_string(),
                    info,
                });
        }
        for marker in scan.markers {
            let record = marker.record();
            match settings.get(&marker.bucket) {
                Some(newest) if newest.settings_ms >= marker.settings_ms => {}
                _ => {
                    settings.insert(marker.bucket.clone(), marker.clone());
                }
            }
            buckets
                .entry(record.name.clone())
                .and_modify(|r| {
                    if record.created_ms < r.created_ms {
                        *r = record.clone();
                    }
                })
                .or_insert(record);
        }
        for tomb in scan.tombstones {
            let slot = (tomb.bucket.clone(), tomb.key.clone());
            match tombstones.get(&slot) {
                Some(t) if !tombstone_newer(&tomb, t) => {}
                _ => {
                    tombstones.insert(slot, tomb);
                }
            }
        }
        for info in scan.copies {
            let Some(stamp) = &info.stamp else { continue };
            keys.entry((stamp.bucket.clone(), stamp.key.clone()))
                .or_default()
                .push(Found {
                    backend: backend.id().to_string(),
                    info,
                });
        }
    }

    // Foreign copies of keys Hansa has stamped copies of are never imported: the stamped
    // version is the object.
    importable.retain(|slot, copies| {
        let keep = options.import_foreign && !keys.contains_key(slot);
        if !keep {
            report.foreign_skipped += copies.len();
        }
        keep
    });
    let mut integrity: HashMap<(String, String), Checksum> = HashMap::new();
    for ((bucket, key), copies) in importable {
        if let Some((imported, checksum)) =
            import_foreign(store, &bucket, &key, copies, &mut report).await
        {
            integrity.insert((bucket.clone(), key.clone()), checksum);
            keys.insert((bucket, key), imported);
        }
    }

    let mut records: Vec<(String, String, ObjectRecord)> = Vec::new();
    for ((bucket, key), mut copies) in keys {
        // A copy whose size is not its stamp's is cut short (or changed): never a replica.
        let before = copies.len();
        copies.retain(|c| c.info.stamp.as_ref().is_some_and(|s| s.size == c.info.size));
        report.stale_copies += before - copies.len();
        let Some(newest) = newest_version(&copies) else {
            continue;
        };
        let (holders, older): (Vec<&Found>, Vec<&Found>) = copies.iter().partition(|c| {
            c.info
                .stamp
                .as_ref()
                .is_some_and(|s| s.version_id == newest)
        });
        report.stale_copies += older.len();
        let Some(first) = holders.first() else {
            continue;
        };
        if let Some(tomb) = tombstones.get(&(bucket.clone(), key.clone())) {
            if deleted_by(tomb, &newest, &first.info) {
                report.tombstoned_keys += 1;
                report.stale_copies += holders.len();
                continue;
            }
        }
        let bucket_record = buckets
            .entry(bucket.clone())
            .or_insert_with(|| BucketRecord {
                name: bucket.clone(),
                created_ms: ms(first.info.last_modified),
                region: String::new(),
                owner: default_owner.to_string(),
            });
        if bucket_record.created_ms > ms(first.info.last_modified) {
            // A bucket known only from its objects is as old as its oldest object.
            bucket_record.created_ms = ms(first.info.last_modified);
        }
        let mut record = object_record(store, &bucket, &key, &newest, &holders, bucket_record);
        record.integrity = integrity.remove(&(bucket.clone(), key.clone()));
        report.pending_replicas += record
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Pending)
            .count();
        records.push((bucket, key, record));
    }

    // Versions written while versioning was enabled show their own ids; which versions those
    // were is not on the backends, so the bucket's setting now decides (docs/REBUILD.md).
    let enabled = |bucket: &str| {
        settings.get(bucket).is_some_and(|m| {
            m.known_settings()
                .iter()
                .any(|(s, v)| *s == BucketSetting::Versioning && v == "Enabled")
        })
    };
    for (bucket, _, record) in records.iter_mut() {
        record.versioned = enabled(bucket);
    }
    let current_ids: HashMap<(&str, &str), &str> = records
        .iter()
        .map(|(b, k, r)| ((b.as_str(), k.as_str()), r.version_id.as_str()))
        .collect();
    let mut noncurrent: Vec<(String, String, VersionEntry)> = Vec::new();
    for ((bucket, key, version), holders) in versions {
        let current = current_ids.get(&(bucket.as_str(), key.as_str())) == Some(&version.as_str());
        // The current version's own copy aside (a crash between the move aside and the
        // commit, or a promotion's leftover): the current version is the one to keep.
        let Some(bucket_record) = buckets.get(&bucket) else {
            report.stale_copies += holders.len();
            continue;
        };
        if current {
            report.stale_copies += holders.len();
            continue;
        }
        let modified_ms = holders
            .iter()
            .map(|c| ms(c.info.last_modified))
            .min()
            .unwrap_or(0);
        let marker_owner = holders.iter().find_map(|c| {
            c.info
                .attributes
                .user_metadata
                .get(super::versions::MARKER_META)
                .cloned()
        });
        let entry = match marker_owner {
            Some(owner) => VersionEntry::DeleteMarker(DeleteMarker {
                version_id: version.clone(),
                modified_ms,
                owner,
                versioned: enabled(&bucket),
            }),
            None => {
                let sized: Vec<&Found> = holders
                    .iter()
                    .filter(|c| c.info.stamp.as_ref().is_some_and(|s| s.size == c.info.size))
                    .collect();
                if sized.is_empty() {
                    report.stale_copies += holders.len();
                    continue;
                }
                let mut record =
                    object_record(store, &bucket, &key, &version, &sized, bucket_record);
                // Only the copies found: a noncurrent version is not replicated again.
                record.replicas.retain(|r| r.state == ReplicaState::Present);
                record.versioned = enabled(&bucket);
                VersionEntry::Object(Box::new(record))
            }
        };
        noncurrent.push((bucket, key, entry));
    }

    for record in buckets.values_mut() {
        if record.region.is_empty() {
            record.region = default_region.to_string();
        }
        store.meta.create_bucket(record)?;
        if let Some(marker) = settings.get(&record.name) {
            for (setting, value) in marker.known_settings() {
                store
                    .meta
                    .set_bucket_setting(&record.name, setting, Some(&value))?;
            }
        }
    }
    report.buckets = buckets.len();
    for (bucket, key, record) in &records {
        store.meta.put_object(bucket, key, record)?;
        queue_missing_replicas(
            store,
            bucket,
            key,
            record,
            "rebuild: a copy the policy wants",
        );
        report.objects += 1;
        report.bytes += record.size;
    }
    for (bucket, key, entry) in &noncurrent {
        store.meta.put_version(bucket, key, entry)?;
        report.versions += 1;
    }
    // One flush for the whole index.
    store.meta.sync().await?;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Lists one backend: markers and tombstones (read whole: they are small) and stamped copies.
async fn scan(store: &Store, backend: &Arc<dyn Backend>) -> StoreResult<BackendScan> {
    let id = backend.id().to_string();
    let failed = |e: hansa_backends::BackendError| {
        StoreError::Internal(format!("backend {id}: listing failed: {e}"))
    };
    let mut out = BackendScan::default();
    for info in list_all(backend, BUCKET_MARKER_PREFIX)
        .await
        .map_err(failed)?
    {
        let Ok(name) = PhysicalName::parse(&info.name) else {
            continue;
        };
        match read_json::<BucketMarker>(store, backend, &name).await {
            Ok(m)
                if Some(&name)
                    == hansa_backends::naming::bucket_marker_name(&m.bucket).as_ref() =>
            {
                out.markers.push(m)
            }
            Ok(_) => {
                tracing::warn!(backend = %id, %name, "a bucket marker naming another bucket; ignored")
            }
            Err(e) => {
                tracing::warn!(backend = %id, %name, error = %e, "an unreadable bucket marker; ignored")
            }
        }
    }
    for info in list_all(backend, TOMBSTONE_PREFIX).await.map_err(failed)? {
        let Ok(name) = PhysicalName::parse(&info.name) else {
            continue;
        };
        match read_json::<Tombstone>(store, backend, &name).await {
            Ok(t)
                if Some(&name)
                    == hansa_backends::naming::tombstone_name(&t.bucket, &t.key).as_ref() =>
            {
                out.tombstones.push(t)
            }
            Ok(_) => {
                tracing::warn!(backend = %id, %name, "a tombstone naming another key; ignored")
            }
            Err(e) => {
                tracing::warn!(backend = %id, %name, error = %e, "an unreadable tombstone; ignored")
            }
        }
    }
    for info in list_all(backend, VERSIONS_PREFIX).await.map_err(failed)? {
        match &info.stamp {
            Some(s)
                if version_name(&s.bucket, &s.key, &s.version_id)
                    .is_some_and(|n| n.as_str() == info.name) =>
            {
                out.versions.push(info)
            }
            _ => out.foreign += 1,
        }
    }
    for info in list_all(backend, "").await.map_err(failed)? {
        match &info.stamp {
            // A copy counts only at one of the names its own stamp gives it: a stamped file
            // copied elsewhere by hand is not taken for the object.
            Some(s)
                if is_valid_bucket_name(&s.bucket)
                    && (info.name == physical_name(&s.bucket, &s.key).as_str()
                        || info.name == fallback_name(&s.bucket, &s.key).as_str()) =>
            {
                out.copies.push(info)
            }
            None if is_plain_object(&info.name) => out.importable.push(info),
            _ => out.foreign += 1,
        }
    }
    Ok(out)
}

/// `<bucket>/<key>` exactly as Hansa would name that key, in a valid bucket.
fn is_plain_object(name: &str) -> bool {
    name.split_once('/').is_some_and(|(bucket, key)| {
        hansa_backends::naming::plain_name(bucket, key).is_some_and(|n| n.as_str() == name)
    })
}

/// Imports the unstamped copies of one key: each is read once (its MD5 and Hansa's
/// integrity checksum); the copies with the same bytes as the newest one are stamped as one
/// new version and returned, with that version's integrity checksum in their stamps' place.
async fn import_foreign(
    store: &Store,
    bucket: &str,
    key: &str,
    mut copies: Vec<Found>,
    report: &mut RebuildReport,
) -> Option<(Vec<Found>, Checksum)> {
    // Newest first: its bytes are the object's.
    copies.sort_by_key(|c| std::cmp::Reverse(c.info.last_modified));
    let version = uuid::Uuid::now_v7().simple().to_string();
    let mut wanted: Option<(String, Checksum)> = None;
    let mut imported = Vec::new();
    for copy in copies {
        let Some(backend) = store.backend(&copy.backend).cloned() else {
            report.foreign_skipped += 1;
            continue;
        };
        let Ok(name) = PhysicalName::parse(&copy.info.name) else {
            report.foreign_skipped += 1;
            continue;
        };
        let digests = match digest_copy(&backend, &name).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(backend = %copy.backend, %name, error = %e, "could not read a foreign object; not imported");
                report.foreign_skipped += 1;
                continue;
            }
        };
        let (md5, integrity) = wanted.get_or_insert_with(|| digests.clone()).clone();
        if digests.0 != md5 {
            report.foreign_skipped += 1;
            continue;
        }
        let stamp = hansa_backends::Stamp {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version.clone(),
            etag: md5,
            size: copy.info.size,
            checksum: None,
            late: None,
        };
        match backend.restamp(&name, &copy.info.attributes, &stamp).await {
            Ok(info) => {
                report.foreign_imported += 1;
                let mut info = info;
                info.stamp = Some(stamp);
                imported.push((
                    Found {
                        backend: copy.backend,
                        info,
                    },
                    integrity,
                ));
            }
            Err(e) => {
                tracing::warn!(backend = %copy.backend, %name, error = %e, "could not stamp a foreign object; not imported");
                report.foreign_skipped += 1;
            }
        }
    }
    let integrity = imported.first().map(|(_, i)| i.clone())?;
    Some((imported.into_iter().map(|(c, _)| c).collect(), integrity))
}

/// The MD5 (hex) and CRC64NVME of a copy's bytes, read once.
async fn digest_copy(
    backend: &Arc<dyn Backend>,
    name: &PhysicalName,
) -> Result<(String, Checksum), hansa_backends::BackendError> {
    use md5::Digest;
    let got = backend.get(name, None, None).await?;
    let mut md5 = md5::Md5::new();
    let mut crc = crate::checksum::ChecksumAlgorithm::Crc64Nvme.hasher();
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        md5.update(&chunk);
        crc.update(&chunk);
    }
    Ok((hex::encode(md5.finalize()), crc.finish_checksum()))
}

async fn list_all(
    backend: &Arc<dyn Backend>,
    prefix: &str,
) -> Result<Vec<ObjectInfo>, hansa_backends::BackendError> {
    let mut stream = backend.list(prefix);
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?);
    }
    Ok(out)
}

/// The record of `key`'s version `version` from the copies that hold it.
fn object_record(
    store: &Store,
    bucket: &str,
    key: &str,
    version: &str,
    holders: &[&Found],
    bucket_record: &BucketRecord,
) -> ObjectRecord {
    let stamps = holders.iter().filter_map(|c| c.info.stamp.as_ref());
    // Object-store multipart copies may lack the ETag (fixed before the body was known);
    // another backend's stamp may have it.
    // Failing that, an S3 provider's own ETag of a native multipart copy is the S3 ETag
    // (the gateway used the client's parts).
    let etag = stamps
        .clone()
        .map(|s| s.etag.clone())
        .find(|e| !e.is_empty())
        .or_else(|| {
            holders
                .iter()
                .map(|c| c.info.etag.trim_matches('"').to_string())
                .find(|e| is_s3_etag(e))
        })
        .unwrap_or_default();
    let checksum = stamps
        .clone()
        .find_map(|s| s.checksum.as_deref().and_then(Checksum::from_stamp));
    let size = holders.first().map_or(0, |c| c.info.size);
    let attributes = holders
        .iter()
        .map(|c| c.info.attributes.clone())
        .find(|a| !a.is_empty())
        .unwrap_or_default();
    let modified_ms = holders
        .iter()
        .map(|c| ms(c.info.last_modified))
        .min()
        .unwrap_or(0);
    let mut replicas: Vec<Replica> = holders
        .iter()
        .map(|c| Replica {
            backend: c.backend.clone(),
            name: c.info.name.clone(),
            etag: c.info.etag.clone(),
            state: ReplicaState::Present,
            staged: None,
        })
        .collect();
    for wanted in store.placement().write_plan(bucket, key).targets {
        if !replicas.iter().any(|r| r.backend == wanted) {
            replicas.push(Replica::new(
                &wanted,
                physical_name(bucket, key).as_str(),
                ReplicaState::Pending,
            ));
        }
    }
    ObjectRecord {
        size,
        etag,
        checksum,
        attributes,
        modified_ms,
        version_id: version.to_string(),
        owner: bucket_record.owner.clone(),
        replicas,
        // Part boundaries are not on the backends: GetObject partNumber answers for the whole
        // object (docs/REBUILD.md).
        parts: Vec::new(),
        checksum_type: None,
        integrity: None,
        // Tags live in the index only (docs/LAYOUT.md): a rebuilt index has none.
        tags: Vec::new(),
        acl: None,
        lock: Default::default(),
        versioned: false,
    }
}

/// `<32 hex>` or `<32 hex>-<parts>`: an S3 ETag.
fn is_s3_etag(etag: &str) -> bool {
    let (md5, parts) = match etag.split_once('-') {
        Some((md5, n)) => (md5, Some(n)),
        None => (etag, None),
    };
    md5.len() == 32
        && md5.bytes().all(|b| b.is_ascii_hexdigit())
        && parts.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The newest version among `copies`.
fn newest_version(copies: &[Found]) -> Option<String> {
    let mut best: Option<(&str, SystemTime)> = None;
    for c in copies {
        let Some(s) = &c.info.stamp else { continue };
        let candidate = (s.version_id.as_str(), c.info.last_modified);
        best = match best {
            Some(b) if newer(candidate, b) != Ordering::Greater => Some(b),
            _ => Some(candidate),
        };
    }
    best.map(|(v, _)| v.to_string())
}

/// Orders two versions, each with the modification time of a copy of it. Version ids made
/// by this gateway are UUIDv7: their 32-hex form sorts by creation time (milliseconds first),
/// so two of them compare as strings. An older (v4) id carries no time: then the copies'
/// modification times decide, then the ids (for a stable answer).
pub fn newer(a: (&str, SystemTime), b: (&str, SystemTime)) -> Ordering {
    if a.0 == b.0 {
        return Ordering::Equal;
    }
    if is_v7(a.0) && is_v7(b.0) {
        return a.0.cmp(b.0);
    }
    a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0))
}

fn is_v7(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.get_version_num() == 7)
}

/// Whether `tomb` deletes `version` (a copy of which is `copy`): the same version, or a newer
/// one (the key was written again and that write deleted too).
fn deleted_by(tomb: &Tombstone, version: &str, copy: &ObjectInfo) -> bool {
    let deleted_at = UNIX_EPOCH + std::time::Duration::from_millis(tomb.deleted_ms);
    tomb.version_id == version
        || newer(
            (&tomb.version_id, deleted_at),
            (version, copy.last_modified),
        ) == Ordering::Greater
}

fn tombstone_newer(a: &Tombstone, b: &Tombstone) -> bool {
    let at = |t: &Tombstone| UNIX_EPOCH + std::time::Duration::from_millis(t.deleted_ms);
    newer((&a.version_id, at(a)), (&b.version_id, at(b))) == Ordering::Greater
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn s3_etags() {
        assert!(is_s3_etag("0123456789abcdef0123456789abcdef"));
        assert!(is_s3_etag("0123456789abcdef0123456789abcdef-12"));
        assert!(!is_s3_etag("0123456789abcdef0123456789abcdef-"));
        assert!(!is_s3_etag("0193a1b2c3d4e5f60718293a4b5c6d7e-1f"));
        assert!(!is_s3_etag("0x8DC0123456789AB"));
    }

    #[test]
    fn v7_ids_order_by_creation_and_v4_by_modification_time() {
        let early = uuid::Uuid::now_v7().simple().to_string();
        std::thread::sleep(Duration::from_millis(2));
        let late = uuid::Uuid::now_v7().simple().to_string();
        let t0 = UNIX_EPOCH + Duration::from_secs(100);
        let t1 = UNIX_EPOCH + Duration::from_secs(200);
        // v7: the id decides, whatever the copies' times say.
        assert_eq!(newer((&late, t0), (&early, t1)), Ordering::Greater);
        assert_eq!(newer((&early, t1), (&late, t0)), Ordering::Less);
        // A v4 id on either side: the copies' times decide.
        let v4 = uuid::Uuid::new_v4().simple().to_string();
        assert_eq!(newer((&v4, t1), (&late, t0)), Ordering::Greater);
        assert_eq!(newer((&v4, t0), (&early, t1)), Ordering::Less);
        assert_eq!(newer((&v4, t0), (&v4, t1)), Ordering::Equal);
    }
}
