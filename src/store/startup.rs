//! Safety checks before the gateway serves: an index that does not fit the backends it is
//! started with is refused, so a lost index or a forgotten backend is not silently taken for
//! "no data".
//!
//! * The index holds no bucket while a reachable backend holds Hansa's data (a bucket marker
//!   or a stamped object): the index was lost or the wrong data directory is used. Refused
//!   unless started with `--allow-empty-index`; `hansa rebuild-index` brings the index back.
//! * Present replicas on a backend the configuration no longer has, and objects whose only
//!   present replicas are there: those objects would be unreadable. Refused unless `--force`.
//!
//! A configuration that no placement policy can be met with never gets here: loading the
//! configuration refuses it (`placement::check`).

use std::collections::BTreeMap;
use std::ops::Bound;

use futures::StreamExt;
use hansa_backends::naming::BUCKET_MARKER_PREFIX;

use super::Store;
use crate::meta::ReplicaState;

/// The switches that let a refused start go ahead on purpose.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartupOverrides {
    /// Start with an empty index although the backends hold Hansa's data.
    pub allow_empty_index: bool,
    /// Start although objects have present replicas only on backends no longer configured.
    pub force: bool,
}

/// Refuses (with the message to show) an index that does not fit the backends.
pub async fn check_startup(store: &Store, overrides: StartupOverrides) -> Result<(), String> {
    let buckets = store.meta.buckets().map_err(|e| e.to_string())?;
    if buckets.is_empty() {
        if !overrides.allow_empty_index {
            if let Some((backend, name)) = hansa_data_found(store).await {
                return Err(format!(
                    "the index is empty, but backend {backend} holds Hansa's data ({name}): the \
                     index was lost or another data directory is in use. Rebuild it from the \
                     backends with `hansa rebuild-index --config FILE`, or start empty on purpose \
                     with `hansa serve --allow-empty-index`"
                ));
            }
        }
        return Ok(());
    }
    if !overrides.force {
        orphaned_objects(store, &buckets)?;
    }
    Ok(())
}

/// The first bucket marker or stamped object found on a reachable backend. Each backend is
/// given the backend timeout: one that does not answer in time is left out (it was reported
/// by the start-up check of the backends).
async fn hansa_data_found(store: &Store) -> Option<(String, String)> {
    let looks = store
        .backends
        .iter()
        .filter(|b| store.backend_usable(b.id()))
        .map(|backend| async move {
            let found = tokio::time::timeout(
                store.settings().backend_timeout,
                first_hansa_object(backend),
            );
            match found.await {
                Ok(found) => found.map(|name| (backend.id().to_string(), name)),
                Err(_) => {
                    tracing::warn!(
                        backend = backend.id(),
                        "start-up check: listing the backend timed out; left out"
                    );
                    None
                }
            }
        });
    futures::future::join_all(looks)
        .await
        .into_iter()
        .flatten()
        .next()
}

/// The name of the first bucket marker, else of the first stamped object, of one backend.
async fn first_hansa_object(
    backend: &std::sync::Arc<dyn hansa_backends::Backend>,
) -> Option<String> {
    for prefix in [BUCKET_MARKER_PREFIX, ""] {
        let mut listing = backend.list(prefix);
        while let Some(item) = listing.next().await {
            match item {
                Ok(info) if prefix == BUCKET_MARKER_PREFIX || info.stamp.is_some() => {
                    return Some(info.name)
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(backend = backend.id(), error = %e,
                        "start-up check could not list a backend");
                    break;
                }
            }
        }
    }
    None
}

/// Refuses when some object has present replicas only on backends the configuration no
/// longer has.
fn orphaned_objects(store: &Store, buckets: &[crate::meta::BucketRecord]) -> Result<(), String> {
    const PAGE: usize = 1000;
    // Per unknown backend: objects stranded there, and one example.
    let mut stranded: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for bucket in buckets {
        let mut start = Bound::Unbounded;
        loop {
            let page = store
                .meta
                .scan_objects(&bucket.name, "", start.clone(), PAGE)
                .map_err(|e| e.to_string())?;
            for (key, record) in &page.entries {
                let present = record
                    .replicas
                    .iter()
                    .filter(|r| r.state == ReplicaState::Present);
                let (known, unknown): (Vec<_>, Vec<_>) =
                    present.partition(|r| store.backend(&r.backend).is_some());
                if known.is_empty() {
                    if let Some(r) = unknown.first() {
                        let entry = stranded
                            .entry(r.backend.clone())
                            .or_insert_with(|| (0, format!("{}/{key}", bucket.name)));
                        entry.0 += 1;
                    }
                }
            }
            match page.entries.last() {
                Some((key, _)) if page.truncated => start = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
    }
    let Some((backend, (count, example))) = stranded.into_iter().next() else {
        return Ok(());
    };
    Err(format!(
        "backend {backend} is no longer configured, but {count} object(s) have their only present \
         replicas there (e.g. {example}): they would be unreadable. Put the backend back in the \
         configuration (and drain it before removing it), or start anyway with `hansa serve --force`"
    ))
}
