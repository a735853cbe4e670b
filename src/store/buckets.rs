//! Buckets, and the index reads the front end answers from (lookups and listings, which never
//! touch a backend).

use std::ops::Bound;

use super::{Store, StoreError, StoreResult};
use crate::meta::{
    BucketRecord, BucketSetting, MetaError, ObjectLock, ObjectPage, ObjectRecord, PartRecord, Tag,
    UploadRecord,
};

/// The bucket's record, or `NoSuchBucket`.
pub fn bucket(store: &Store, name: &str) -> StoreResult<BucketRecord> {
    store
        .meta
        .bucket(name)?
        .ok_or_else(|| StoreError::NoSuchBucket(name.to_string()))
}

pub fn buckets(store: &Store) -> StoreResult<Vec<BucketRecord>> {
    Ok(store.meta.buckets()?)
}

/// Creates a bucket (durably); `BucketExists` when the name is taken.
pub async fn create_bucket(store: &Store, record: &BucketRecord) -> StoreResult<()> {
    match store.meta.create_bucket(record) {
        Ok(()) => {}
        Err(MetaError::BucketExists(name)) => return Err(StoreError::BucketExists(name)),
        Err(e) => return Err(e.into()),
    }
    store.meta.sync().await?;
    // After the index: a marker without a bucket is harmless (a rebuild brings back an empty
    // bucket), a bucket the index holds is what the client was told.
    super::records::write_bucket_markers(store, record).await;
    Ok(())
}

/// Deletes an empty bucket (durably); its multipart uploads in progress go with it, as on S3.
pub async fn delete_bucket(store: &Store, name: &str) -> StoreResult<()> {
    {
        // No write into the bucket runs meanwhile, so "empty" stays true until it is gone.
        let _guard = store.locks.lock_bucket(name).await;
        match store.meta.delete_bucket(name) {
            Ok(()) => {}
            Err(MetaError::NoSuchBucket(_)) => {
                return Err(StoreError::NoSuchBucket(name.to_string()))
            }
            Err(MetaError::BucketNotEmpty(_)) => {
                return Err(StoreError::BucketNotEmpty(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        store.meta.sync().await?;
        super::records::remove_bucket_markers(store, name).await;
    }
    // After the bucket lock: a completion in progress holds its upload's lock and waits for
    // the bucket's; it now finds the bucket gone and fails, and then its upload is aborted.
    for upload in store.meta.scan_uploads(name, "", None, usize::MAX)? {
        super::abort_upload(store, &upload).await?;
    }
    Ok(())
}

/// The bucket's `setting` document, if set; `NoSuchBucket` when the bucket does not exist.
pub fn bucket_setting(
    store: &Store,
    bucket: &str,
    setting: BucketSetting,
) -> StoreResult<Option<String>> {
    match store.meta.bucket_setting(bucket, setting)? {
        Some(value) => Ok(Some(value)),
        None => {
            self::bucket(store, bucket)?;
            Ok(None)
        }
    }
}

/// Sets (`Some`) or removes (`None`) one of the bucket's settings, durably, then rewrites the
/// bucket's markers on the backends so that a rebuilt index keeps it (best effort, as for the
/// markers themselves).
pub async fn set_bucket_setting(
    store: &Store,
    bucket: &str,
    setting: BucketSetting,
    value: Option<&str>,
) -> StoreResult<()> {
    // Under the bucket's lock: a DeleteBucket cannot slip between the change and the markers.
    let _guard = store.locks.lock_bucket(bucket).await;
    match store.meta.set_bucket_setting(bucket, setting, value) {
        Ok(()) => {}
        Err(MetaError::NoSuchBucket(_)) => return Err(StoreError::NoSuchBucket(bucket.into())),
        Err(e) => return Err(e.into()),
    }
    store.meta.sync().await?;
    let record = self::bucket(store, bucket)?;
    super::records::write_bucket_markers(store, &record).await;
    Ok(())
}

/// Replaces the current version's ACL (`ObjectRecord::acl`), durably, under the key's lock so
/// that a concurrent write is not undone; `NoSuchKey` when there is no object.
pub async fn set_object_acl(
    store: &Store,
    bucket: &str,
    key: &str,
    acl: Option<String>,
) -> StoreResult<()> {
    let _guard = store.locks.lock(bucket, key).await;
    let mut record = store
        .meta
        .object(bucket, key)?
        .ok_or_else(|| StoreError::NoSuchKey(key.to_string()))?;
    record.acl = acl;
    store.meta.put_object(bucket, key, &record)?;
    store.meta.sync().await?;
    Ok(())
}

/// Replaces a version's tags (`ObjectRecord::tags`): the latest (`None`) or the one S3 shows
/// as `version`. See [`super::update_version`].
pub async fn set_object_tags(
    store: &Store,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    tags: Vec<Tag>,
) -> StoreResult<ObjectRecord> {
    super::update_version(store, bucket, key, version, |record| {
        record.tags = tags;
        Ok(())
    })
    .await
}

/// Changes the object lock of a version (the latest, or the one S3 shows as `version_id`):
/// `change` sees the version as it is now, under the key's lock, and answers its new lock (or
/// why not).
pub async fn update_object_lock(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    change: impl FnOnce(&ObjectRecord) -> StoreResult<ObjectLock>,
) -> StoreResult<ObjectRecord> {
    super::update_version(store, bucket, key, version_id, |record| {
        record.lock = change(record)?;
        Ok(())
    })
    .await
}

pub fn object(store: &Store, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
    Ok(store.meta.object(bucket, key)?)
}

/// Objects whose key starts with `prefix`, from `start` on, at most `limit` of them.
pub fn list_objects(
    store: &Store,
    bucket: &str,
    prefix: &str,
    start: Bound<String>,
    limit: usize,
) -> StoreResult<ObjectPage> {
    Ok(store.meta.scan_objects(bucket, prefix, start, limit)?)
}

/// The upload, if it exists for this bucket and key.
pub fn upload(
    store: &Store,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> StoreResult<Option<UploadRecord>> {
    if !hansa_backends::naming::is_safe_token(upload_id) {
        return Ok(None);
    }
    Ok(store.meta.upload(bucket, key, upload_id)?)
}

/// Uploads in progress, in (key, initiation) order after `after`; see `MetaStore::scan_uploads`.
pub fn list_uploads(
    store: &Store,
    bucket: &str,
    prefix: &str,
    after: Option<(&str, Option<&str>)>,
    limit: usize,
) -> StoreResult<Vec<UploadRecord>> {
    Ok(store.meta.scan_uploads(bucket, prefix, after, limit)?)
}

/// An upload's parts numbered above `after`, ascending, at most `limit`.
pub fn list_parts(
    store: &Store,
    upload_id: &str,
    after: u32,
    limit: usize,
) -> StoreResult<Vec<(u32, PartRecord)>> {
    Ok(store.meta.parts(upload_id, after, limit)?)
}
