//! What the admin plane reports about backends and buckets: the storage layer's live state,
//! the configuration, and counts taken from the index.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use serde::Serialize;

use crate::config::Config;
use crate::store::{self, BackendStatus, Store, StoreResult};

/// Objects and bytes, counted from the index.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

/// One backend, as `GET /admin/v1/backends` lists it.
#[derive(Debug, Serialize)]
pub struct BackendView {
    /// Health, latencies, circuit and repair queue (`Store::backend_status`).
    #[serde(flatten)]
    pub status: BackendStatus,
    pub kind: String,
    pub tags: BTreeMap<String, String>,
    /// A drain job empties it: it takes no new replicas.
    pub draining: bool,
    /// Current versions with a replica recorded on it (in any state), and their sizes.
    #[serde(flatten)]
    pub usage: Usage,
}

/// One bucket, as `GET /admin/v1/buckets` lists it.
#[derive(Debug, Serialize)]
pub struct BucketView {
    pub name: String,
    pub created_ms: u64,
    pub region: String,
    pub owner: String,
    pub policy: PolicyView,
    #[serde(flatten)]
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub name: String,
    pub replicas: usize,
    pub write_quorum: usize,
    /// The backends replicas may go to.
    pub members: Vec<String>,
    /// Each tag rule as the configuration names it (`only`, `spread`, `require`).
    pub rules: Vec<String>,
}

/// Usage by bucket and by backend, from one pass over every object in the index.
struct Counts {
    by_bucket: HashMap<String, Usage>,
    by_backend: HashMap<String, Usage>,
}

/// Index entries read per page.
const PAGE: usize = 1000;

/// Counts every current version. This reads the whole object index (each object's record
/// once): linear in the number of objects, some seconds for millions. That is acceptable for
/// an operator's command; keeping running totals would cost every write instead. Blocking
/// (sled): call it off the async threads.
fn count(store: &Store) -> StoreResult<Counts> {
    let mut counts = Counts {
        by_bucket: HashMap::new(),
        by_backend: HashMap::new(),
    };
    for bucket in store::buckets(store)? {
        let mut total = Usage::default();
        let mut start = Bound::Unbounded;
        loop {
            let page = store::list_objects(store, &bucket.name, "", start, PAGE)?;
            for (_, record) in &page.entries {
                total.objects += 1;
                total.bytes += record.size;
                for replica in &record.replicas {
                    let usage = counts
                        .by_backend
                        .entry(replica.backend.clone())
                        .or_default();
                    usage.objects += 1;
                    usage.bytes += record.size;
                }
            }
            match page.entries.last() {
                Some((key, _)) if page.truncated => start = Bound::Excluded(key.clone()),
                _ => break,
            }
        }
        counts.by_bucket.insert(bucket.name, total);
    }
    Ok(counts)
}

pub fn backends(store: &Store, config: &Config) -> StoreResult<Vec<BackendView>> {
    let counts = count(store)?;
    let draining = store::jobs::draining(store)?;
    Ok(store
        .backend_status()
        .into_iter()
        .map(|status| {
            let id = status.health.id.clone();
            let configured = config.backends.iter().find(|b| b.id == id);
            BackendView {
                kind: configured
                    .map(|b| format!("{:?}", b.kind).to_lowercase())
                    .unwrap_or_default(),
                tags: configured.map(|b| b.tags.clone()).unwrap_or_default(),
                draining: draining.contains(&id),
                usage: counts.by_backend.get(&id).copied().unwrap_or_default(),
                status,
            }
        })
        .collect())
}

pub fn buckets(store: &Store) -> StoreResult<Vec<BucketView>> {
    let counts = count(store)?;
    let placement = store.placement();
    Ok(store::buckets(store)?
        .into_iter()
        .map(|b| {
            let policy = placement.policy(&b.name);
            BucketView {
                usage: counts.by_bucket.get(&b.name).copied().unwrap_or_default(),
                policy: PolicyView {
                    name: policy.name.clone(),
                    replicas: policy.replicas,
                    write_quorum: policy.write_quorum,
                    members: policy.members.clone(),
                    rules: policy.rules.describe(),
                },
                name: b.name,
                created_ms: b.created_ms,
                region: b.region,
                owner: b.owner,
            }
        })
        .collect())
}
