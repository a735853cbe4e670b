//! Applying bucket lifecycle rules: one bounded pass aborts the uploads that are due and
//! expires the current objects that are due, through the same paths as AbortMultipartUpload
//! and DeleteObject. A pass walks buckets and keys in index order from a cursor kept in the
//! index, stops after `max_actions` actions or `max_keys` keys, and the next pass resumes
//! after the last key it looked at; a pass that reaches the end clears the cursor.
//!
//! In a bucket with versioning the walk visits every key with a current object or noncurrent
//! versions, and also removes the noncurrent versions and expired delete markers that are due,
//! through `delete_version` (so object lock is honoured).
//!
//! What is due is decided by `crate::lifecycle` (pure); this file only walks and acts. A dry
//! run walks from the start, acts on nothing and moves no cursor.

use std::collections::HashMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::{Store, StoreResult};
use crate::lifecycle::{
    LifecycleConfiguration, ObjectFacts, VerdictKind, VersionFacts, VersionVerdict,
};
use crate::meta::{BucketSetting, JobCursor, ObjectRecord, VersionEntry};

/// The name the worker's cursor is kept under in the index.
const CURSOR: &str = "lifecycle";
/// Keys read from the index at a time.
const BATCH: usize = 256;

/// One pass's bounds and clock.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// The time rules are evaluated at (milliseconds since the Unix epoch).
    pub now_ms: u64,
    pub dry_run: bool,
    pub max_actions: usize,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Expire,
    AbortUpload,
    /// `NoncurrentVersionExpiration` removed a noncurrent version (or delete marker).
    ExpireNoncurrent,
    /// An expired object delete marker was removed.
    RemoveDeleteMarker,
}

/// One thing a pass removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Action {
    pub action: ActionKind,
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The version removed (as S3 shows it), for the versioned actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The rule's ID.
    pub rule: String,
    /// Why acting failed; the pass goes on with the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassReport {
    pub dry_run: bool,
    pub now_ms: u64,
    /// Where the object walk started: after this key (`None`: from the first bucket).
    pub resumed_after: Option<JobCursor>,
    /// Where the next pass resumes; `None` when this one reached the end.
    pub cursor: Option<JobCursor>,
    pub keys_examined: usize,
    pub actions: Vec<Action>,
}

/// The object tags rules match on.
fn object_tags(record: &ObjectRecord) -> Vec<(String, String)> {
    record
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

/// The bucket's rules, if it has any this gateway can read.
pub fn bucket_rules(store: &Store, bucket: &str) -> StoreResult<Option<LifecycleConfiguration>> {
    Ok(
        super::bucket_setting(store, bucket, BucketSetting::Lifecycle)?
            .and_then(|json| LifecycleConfiguration::from_json(&json)),
    )
}

fn load_cursor(store: &Store) -> StoreResult<Option<JobCursor>> {
    Ok(store
        .meta
        .upkeep_cursor(CURSOR)?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

fn save_cursor(store: &Store, cursor: Option<&JobCursor>) -> StoreResult<()> {
    let text = cursor.and_then(|c| serde_json::to_string(c).ok());
    store.meta.set_upkeep_cursor(CURSOR, text.as_deref())?;
    Ok(())
}

/// One pass; see the module's description.
pub async fn run_pass(store: &Store, options: &PassOptions) -> StoreResult<PassReport> {
    let max_actions = options.max_actions.max(1);
    let resumed_after = if options.dry_run {
        None
    } else {
        load_cursor(store)?
    };
    let mut report = PassReport {
        dry_run: options.dry_run,
        now_ms: options.now_ms,
        resumed_after: resumed_after.clone(),
        cursor: resumed_after.clone(),
        keys_examined: 0,
        actions: Vec::new(),
    };
    let mut rules: HashMap<String, Option<LifecycleConfiguration>> = HashMap::new();
    let mut rules_of = |bucket: &str| -> StoreResult<Option<LifecycleConfiguration>> {
        if let Some(known) = rules.get(bucket) {
            return Ok(known.clone());
        }
        let found = bucket_rules(store, bucket)?;
        rules.insert(bucket.to_string(), found.clone());
        Ok(found)
    };

    // Uploads first: an aborted upload leaves the list, so the next pass needs no cursor for
    // them.
    for upload in store.meta.all_uploads()? {
        if report.actions.len() >= max_actions {
            break;
        }
        let Some(config) = rules_of(&upload.bucket)? else {
            continue;
        };
        let Some(rule) = config.aborting_rule(&upload.key, upload.initiated_ms, options.now_ms)
        else {
            continue;
        };
        let mut action = Action {
            action: ActionKind::AbortUpload,
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            upload_id: Some(upload.upload_id.clone()),
            version_id: None,
            rule: rule.id.clone(),
            error: None,
        };
        if !options.dry_run {
            match super::abort_upload(store, &upload).await {
                Ok(()) => {
                    tracing::info!(bucket = %upload.bucket, key = %upload.key, upload = %upload.upload_id, rule = %action.rule, "lifecycle aborted an incomplete upload")
                }
                Err(e) => action.error = Some(e.to_string()),
            }
        }
        report.actions.push(action);
    }

    let mut buckets: Vec<String> = store.meta.buckets()?.into_iter().map(|b| b.name).collect();
    buckets.sort();
    let mut start = resumed_after;
    for bucket in buckets {
        if report.actions.len() >= max_actions || report.keys_examined >= options.max_keys {
            return finish(store, options, report);
        }
        let mut after = match &start {
            Some(c) if c.bucket > bucket => continue,
            Some(c) if c.bucket == bucket => Bound::Excluded(c.key.clone()),
            _ => Bound::Unbounded,
        };
        start = None;
        let Some(config) = rules_of(&bucket)? else {
            continue;
        };
        if super::versioning(store, &bucket)?.keeps_versions() {
            if !config.acts_on_current() && !config.acts_on_versions() {
                continue;
            }
            while let Some(key) = super::versions::next_key(store, &bucket, "", &after)? {
                if report.actions.len() >= max_actions || report.keys_examined >= options.max_keys {
                    return finish(store, options, report);
                }
                report.keys_examined += 1;
                let before = report.cursor.replace(JobCursor {
                    bucket: bucket.clone(),
                    key: key.clone(),
                });
                let done_before = report.actions.len();
                let whole = walk_versions(
                    store,
                    &config,
                    &bucket,
                    &key,
                    options,
                    max_actions,
                    &mut report,
                )
                .await?;
                if !whole {
                    // Stopped within the key: the next pass looks at it again, unless nothing
                    // was removed from it (all refused, e.g. locked), which would stop every
                    // pass here; then the rest waits for the next walk over the index.
                    let removed = report.actions[done_before..]
                        .iter()
                        .any(|a| a.error.is_none());
                    if removed {
                        report.cursor = before;
                    }
                    return finish(store, options, report);
                }
                after = Bound::Excluded(key);
            }
            continue;
        }
        if !config.acts_on_current() {
            continue;
        }
        loop {
            let room = options.max_keys.saturating_sub(report.keys_examined);
            let page =
                store
                    .meta
                    .scan_objects(&bucket, "", after.clone(), BATCH.min(room.max(1)))?;
            for (key, record) in &page.entries {
                if report.actions.len() >= max_actions || report.keys_examined >= options.max_keys {
                    return finish(store, options, report);
                }
                report.keys_examined += 1;
                report.cursor = Some(JobCursor {
                    bucket: bucket.clone(),
                    key: key.clone(),
                });
                if let Some(action) = expire(store, &config, &bucket, key, record, options).await? {
                    report.actions.push(action);
                }
            }
            match page.entries.last() {
                Some((key, _)) if page.truncated => after = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }
    // The whole index was walked: the next pass starts from the beginning.
    report.cursor = None;
    finish(store, options, report)
}

fn finish(store: &Store, options: &PassOptions, report: PassReport) -> StoreResult<PassReport> {
    if !options.dry_run {
        save_cursor(store, report.cursor.as_ref())?;
    }
    Ok(report)
}

/// Expires `key` if a rule says it is due. Before deleting, the entry is read again: a write
/// that replaced the object since the scan gets the rules' verdict on the new object.
async fn expire(
    store: &Store,
    config: &LifecycleConfiguration,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    options: &PassOptions,
) -> StoreResult<Option<Action>> {
    let due = |record: &ObjectRecord| {
        let tags = object_tags(record);
        let facts = ObjectFacts {
            key,
            size: record.size,
            modified_ms: record.modified_ms,
            tags: &tags,
        };
        config
            .expiring_rule(&facts, options.now_ms)
            .map(|r| r.id.clone())
    };
    let Some(rule) = due(record) else {
        return Ok(None);
    };
    let mut action = Action {
        action: ActionKind::Expire,
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: None,
        version_id: None,
        rule,
        error: None,
    };
    if options.dry_run {
        return Ok(Some(action));
    }
    let version_id = match store.meta.object(bucket, key)? {
        Some(now) if due(&now).is_some() => now.version_id,
        _ => return Ok(None),
    };
    // Only the version judged due goes: a write that lands between the check and the delete
    // is not removed. In a versioned bucket this leaves a delete marker, S3's behaviour for
    // Expiration on current versions; noncurrent versions are `walk_versions`' part.
    match super::delete_object_if_current(store, bucket, key, &version_id).await {
        Ok(Some(_)) => {
            tracing::info!(bucket, key, rule = %action.rule, "lifecycle expired an object")
        }
        Ok(None) => return Ok(None),
        Err(e) => action.error = Some(e.to_string()),
    }
    Ok(Some(action))
}

/// The verdicts on `versions` of `key` whose current object (if any) was modified at
/// `current_ms`.
fn verdicts(
    config: &LifecycleConfiguration,
    key: &str,
    current_ms: Option<u64>,
    versions: &[VersionEntry],
    now_ms: u64,
) -> Vec<VersionVerdict> {
    let tags: Vec<Vec<(String, String)>> = versions
        .iter()
        .map(|v| match v {
            VersionEntry::Object(r) => object_tags(r),
            VersionEntry::DeleteMarker(_) => Vec::new(),
        })
        .collect();
    let facts: Vec<VersionFacts> = versions
        .iter()
        .zip(&tags)
        .map(|(v, tags)| match v {
            VersionEntry::Object(r) => VersionFacts {
                modified_ms: r.modified_ms,
                size: r.size,
                tags,
                delete_marker: false,
            },
            VersionEntry::DeleteMarker(m) => VersionFacts {
                modified_ms: m.modified_ms,
                size: 0,
                tags,
                delete_marker: true,
            },
        })
        .collect();
    config.version_verdicts(key, current_ms, &facts, now_ms)
}

/// One key of a bucket with versioning: its current object is judged as in an unversioned
/// bucket (expiring it leaves a delete marker), then its noncurrent versions and its latest
/// delete marker. Each removal goes through `delete_version` (object lock refuses locked
/// versions: the refusal is the action's error) after the key's versions are judged again
/// under its lock. False when the action cap stopped the walk within the key.
async fn walk_versions(
    store: &Store,
    config: &LifecycleConfiguration,
    bucket: &str,
    key: &str,
    options: &PassOptions,
    max_actions: usize,
    report: &mut PassReport,
) -> StoreResult<bool> {
    if config.acts_on_current() {
        if let Some(record) = store.meta.object(bucket, key)? {
            if let Some(action) = expire(store, config, bucket, key, &record, options).await? {
                report.actions.push(action);
            }
        }
    }
    let current_ms = store.meta.object(bucket, key)?.map(|r| r.modified_ms);
    let versions = store.meta.versions_of(bucket, key)?;
    for verdict in verdicts(config, key, current_ms, &versions, options.now_ms) {
        if report.actions.len() >= max_actions {
            return Ok(false);
        }
        let Some(judged) = versions.get(verdict.index) else {
            continue;
        };
        let shown = judged.shown_version_id().to_string();
        let mut action = Action {
            action: match verdict.kind {
                VerdictKind::Noncurrent => ActionKind::ExpireNoncurrent,
                VerdictKind::ExpiredDeleteMarker => ActionKind::RemoveDeleteMarker,
            },
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: None,
            version_id: Some(shown.clone()),
            rule: verdict.rule.clone(),
            error: None,
        };
        if options.dry_run {
            report.actions.push(action);
            continue;
        }
        let still = |current: Option<&ObjectRecord>, now: &[VersionEntry]| match verdict.kind {
            // Only a marker that is truly alone now: a version under it that could not be
            // removed (locked) keeps it.
            VerdictKind::ExpiredDeleteMarker => {
                current.is_none() && now.len() == 1 && now[0] == *judged
            }
            VerdictKind::Noncurrent => {
                let current_ms = current.map(|r| r.modified_ms);
                now.iter().position(|v| v == judged).is_some_and(|index| {
                    verdicts(config, key, current_ms, now, options.now_ms)
                        .iter()
                        .any(|v| v.index == index && v.kind == VerdictKind::Noncurrent)
                })
            }
        };
        match super::versions::delete_version_if(store, bucket, key, &shown, false, still).await {
            Ok(Some(_)) => {
                tracing::info!(bucket, key, version = %shown, rule = %action.rule, kind = ?action.action, "lifecycle removed a version")
            }
            Ok(None) => continue,
            Err(e) => action.error = Some(e.to_string()),
        }
        report.actions.push(action);
    }
    Ok(true)
}
