//! The step of verify: check one object's replicas against the index.
//!
//! * **Quick**: one HEAD per replica. A copy is fine when it is there with the record's size
//!   and a stamp naming the record's version of this key. Bytes changed in place (same size,
//!   stamp kept) cannot be seen this way.
//! * **Deep**: every byte of every replica is read (exactly the backend etag the index
//!   records, as reads ask for it) and checked as it streams against the record's integrity
//!   checksum, checksum or MD5 ETag ([`Expectation`]). A copy under another backend etag whose
//!   stamp names the version is read anyway and judged by its bytes.
//!
//! Either way a copy without a stamp (a file restored without its extended attributes) whose
//! size matches is read once: when its bytes are the object's, its stamp is written back
//! (restamped) — always, even without `repair`, since that writes only what the index already
//! says. Anything else that is wrong is only reported, unless `repair` is set: then the
//! replica is marked (pending, or corrupt) under the key's lock if the key still has the
//! version that was checked, the index is flushed, and the repair worker is told.

use std::sync::Arc;

use futures::StreamExt;
use hansa_backends::{BackendError, ObjectInfo};

use super::StepOutcome;
use crate::meta::{ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState};
use crate::replication::bounded;
use crate::store::copies::{replica_target, stamp_of};
use crate::store::queue::queue;
use crate::store::stage::Target;
use crate::store::verify::Expectation;
use crate::store::Store;

/// How a verify job checks.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Only the replicas on this backend.
    pub backend: Option<String>,
    /// Read and checksum every byte, not only size and stamp.
    pub deep: bool,
    /// Mark what is wrong in the index and queue it for the repair worker.
    pub repair: bool,
}

/// What one replica was found to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finding {
    Ok,
    /// Not there.
    Missing,
    /// Another version or size there.
    Changed,
    /// The bytes do not match the object (deep only, or an unstamped copy).
    Corrupt,
    /// Without a stamp, with the object's bytes: its stamp was written back.
    Restamped,
    /// Not present in the index: already owed to the repair queue.
    Pending,
    /// The backend did not answer: nothing is known about the copy.
    Unreachable,
}

impl Finding {
    fn name(self) -> &'static str {
        match self {
            Finding::Ok => "ok",
            Finding::Missing => "missing",
            Finding::Changed => "changed",
            Finding::Corrupt => "corrupt",
            Finding::Restamped => "restamped",
            Finding::Pending => "pending",
            Finding::Unreachable => "unreachable",
        }
    }

    /// Whether the job's problem list names the object for it.
    fn is_problem(self) -> bool {
        !matches!(self, Finding::Ok | Finding::Restamped)
    }

    /// What the replica becomes in the index when it is repaired.
    fn mark(self) -> Option<ReplicaState> {
        match self {
            Finding::Missing | Finding::Changed => Some(ReplicaState::Pending),
            Finding::Corrupt => Some(ReplicaState::Corrupt),
            _ => None,
        }
    }
}

/// One replica's finding, with a word on why when it is not fine.
struct Checked {
    replica: Replica,
    finding: Finding,
    detail: Option<String>,
}

impl Checked {
    fn new(replica: &Replica, finding: Finding) -> Checked {
        Checked {
            replica: replica.clone(),
            finding,
            detail: None,
        }
    }

    fn because(mut self, detail: impl Into<String>) -> Checked {
        self.detail = Some(detail.into());
        self
    }
}

/// Checks the current version of `bucket/key` on its replicas (only those on
/// `options.backend` when set). A key deleted or overwritten while it was checked is skipped:
/// the outcome is empty.
pub async fn check(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    options: &CheckOptions,
) -> StepOutcome {
    let record = match store.meta.object(bucket, key) {
        Ok(Some(record)) => record,
        Ok(None) => return StepOutcome::default(),
        Err(e) => {
            return StepOutcome {
                problem: Some(format!("the index could not be read: {e}")),
                ..StepOutcome::default()
            }
        }
    };
    let replicas = record
        .replicas
        .iter()
        .filter(|r| options.backend.as_deref().is_none_or(|b| r.backend == b));
    let checks =
        replicas.map(|replica| check_replica(store, bucket, key, &record, replica, options));
    let checked = futures::future::join_all(checks).await;

    if checked.iter().any(|c| c.finding.is_problem()) && !still_current(store, bucket, key, &record)
    {
        // Overwritten or deleted meanwhile: what was found is about a version that is gone.
        return StepOutcome::default();
    }
    if options.repair {
        let to_mark: Vec<&Checked> = checked
            .iter()
            .filter(|c| c.finding.mark().is_some())
            .collect();
        if !to_mark.is_empty() && !mark(store, bucket, key, &record, &to_mark).await {
            return StepOutcome::default();
        }
        queue_pending(store, bucket, key, &record, &checked);
    }
    outcome(&checked)
}

/// Sums the findings and names the problems ("disk-b: corrupt; s3: missing").
fn outcome(checked: &[Checked]) -> StepOutcome {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for c in checked {
        let name = c.finding.name();
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name, 1)),
        }
    }
    let problems: Vec<String> = checked
        .iter()
        .filter(|c| c.finding.is_problem())
        .map(|c| match &c.detail {
            Some(detail) => format!("{}: {} ({detail})", c.replica.backend, c.finding.name()),
            None => format!("{}: {}", c.replica.backend, c.finding.name()),
        })
        .collect();
    StepOutcome {
        bytes_moved: 0,
        counts,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

fn still_current(store: &Store, bucket: &str, key: &str, record: &ObjectRecord) -> bool {
    matches!(store.meta.object(bucket, key), Ok(Some(current)) if current.version_id == record.version_id)
}

async fn check_replica(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replica: &Replica,
    options: &CheckOptions,
) -> Checked {
    if replica.state != ReplicaState::Present {
        let pending = Checked::new(replica, Finding::Pending);
        return match replica.state {
            ReplicaState::Staged => pending.because("staged, not yet published"),
            ReplicaState::Corrupt => pending.because("marked corrupt"),
            _ => pending,
        };
    }
    let Some(target) = replica_target(store, replica) else {
        return Checked::new(replica, Finding::Unreachable).because("backend not configured");
    };
    if !store.backend_usable(&replica.backend) {
        return Checked::new(replica, Finding::Unreachable).because("backend down");
    }
    let copy = Probe {
        store,
        bucket,
        key,
        record,
        replica,
        target: &target,
    };
    if options.deep {
        copy.deep().await
    } else {
        copy.quick().await
    }
}

/// One replica being checked.
struct Probe<'a> {
    store: &'a Store,
    bucket: &'a str,
    key: &'a str,
    record: &'a ObjectRecord,
    replica: &'a Replica,
    target: &'a Target,
}

impl Probe<'_> {
    fn found(&self, finding: Finding) -> Checked {
        Checked::new(self.replica, finding)
    }

    fn failed(&self, e: &BackendError) -> Checked {
        if e.is_not_found() {
            return self.found(Finding::Missing);
        }
        self.found(Finding::Unreachable).because(e.to_string())
    }

    /// The copy holds the record's version of this key, by its stamp.
    fn stamped_with_version(&self, info: &ObjectInfo) -> bool {
        info.stamp.as_ref().is_some_and(|s| {
            s.version_id == self.record.version_id && s.key == self.key && s.bucket == self.bucket
        })
    }

    async fn head(&self) -> Result<ObjectInfo, BackendError> {
        bounded(
            self.store.settings().backend_timeout,
            "head",
            self.target.backend.head(&self.target.name),
        )
        .await
    }

    /// Size and stamp; a copy without a stamp is judged by its bytes.
    async fn quick(&self) -> Checked {
        let info = match self.head().await {
            Ok(info) => info,
            Err(e) => return self.failed(&e),
        };
        self.judge_by_head(info).await
    }

    async fn judge_by_head(&self, info: ObjectInfo) -> Checked {
        if info.size != self.record.size {
            return self
                .found(Finding::Changed)
                .because(format!("{} bytes, not {}", info.size, self.record.size));
        }
        if info.stamp.is_none() {
            return self.restamp_if_same_bytes(&info).await;
        }
        if !self.stamped_with_version(&info) {
            return self.found(Finding::Changed).because("another version");
        }
        self.found(Finding::Ok)
    }

    /// Every byte, against the record's checksum.
    async fn deep(&self) -> Checked {
        let expected = match Expectation::of(self.record) {
            Some(expected) => expected,
            // Nothing to check bytes against: size and stamp are all there is.
            None => return self.quick().await,
        };
        let opened = bounded(
            self.store.settings().backend_timeout,
            "read",
            self.target
                .backend
                .get(&self.target.name, None, Some(&self.replica.etag)),
        )
        .await;
        let got = match opened {
            Ok(got) => got,
            Err(BackendError::PreconditionFailed { .. }) => {
                // Another backend etag: a restore, or another version. The stamp tells.
                let info = match self.head().await {
                    Ok(info) => info,
                    Err(e) => return self.failed(&e),
                };
                if info.size == self.record.size && self.stamped_with_version(&info) {
                    return match self.read_and_verify(&info.etag, &expected).await {
                        Ok(true) => self.found(Finding::Ok),
                        Ok(false) => self.found(Finding::Corrupt),
                        Err(e) => self.failed(&e),
                    };
                }
                return self.judge_by_head(info).await;
            }
            Err(e) => return self.failed(&e),
        };
        let info = got.info.clone();
        if info.size != self.record.size
            || info.stamp.is_some() && !self.stamped_with_version(&info)
        {
            return self.judge_by_head(info).await;
        }
        match verify_stream(self.store, got.body, self.record.size, &expected).await {
            Ok(true) if info.stamp.is_none() => self.restamp(&info).await,
            Ok(true) => self.found(Finding::Ok),
            Ok(false) => self.found(Finding::Corrupt),
            Err(e) => self.failed(&e),
        }
    }

    /// A copy without a stamp, of the right size: restamped if its bytes are the object's.
    async fn restamp_if_same_bytes(&self, info: &ObjectInfo) -> Checked {
        let Some(expected) = Expectation::of(self.record) else {
            return self
                .found(Finding::Changed)
                .because("no stamp, and no checksum to recognise its bytes by");
        };
        match self.read_and_verify(&info.etag, &expected).await {
            Ok(true) => self.restamp(info).await,
            Ok(false) => self
                .found(Finding::Corrupt)
                .because("no stamp, and other bytes"),
            Err(e) => self.failed(&e),
        }
    }

    /// Writes the stamp the index implies back onto a copy whose bytes were checked. Under
    /// the key's lock, and only if the key still has the checked version and the copy is
    /// still the one that was read (same backend etag, still without a stamp): a write that
    /// published a new version there meanwhile must not be stamped as the old one.
    async fn restamp(&self, info: &ObjectInfo) -> Checked {
        let _guard = self.store.locks.lock(self.bucket, self.key).await;
        if !still_current(self.store, self.bucket, self.key, self.record) {
            // `check` sees the key moved on and skips the object.
            return self
                .found(Finding::Changed)
                .because("overwritten meanwhile");
        }
        match self.head().await {
            Ok(now) if now.etag == info.etag && now.stamp.is_none() => {}
            Ok(_) => {
                return self
                    .found(Finding::Changed)
                    .because("replaced while it was checked")
            }
            Err(e) => return self.failed(&e),
        }
        let stamp = stamp_of(self.bucket, self.key, self.record);
        let restamped = bounded(
            self.store.settings().backend_timeout,
            "restamp",
            self.target
                .backend
                .restamp(&self.target.name, &self.record.attributes, &stamp),
        )
        .await;
        match restamped {
            Ok(_) => {
                tracing::info!(backend = %self.replica.backend, bucket = self.bucket,
                    key = self.key, name = %info.name,
                    "verify: a copy without its stamp holds the object's bytes; stamp written back");
                self.found(Finding::Restamped)
            }
            Err(e @ BackendError::Other { .. }) => self
                .found(Finding::Changed)
                .because(format!("no stamp, and it could not be written back: {e}")),
            Err(e) => self.failed(&e),
        }
    }

    /// Reads exactly the copy `etag` names, whole, and checks its bytes.
    async fn read_and_verify(
        &self,
        etag: &str,
        expected: &Expectation,
    ) -> Result<bool, BackendError> {
        let got = bounded(
            self.store.settings().backend_timeout,
            "read",
            self.target.backend.get(&self.target.name, None, Some(etag)),
        )
        .await?;
        verify_stream(self.store, got.body, self.record.size, expected).await
    }
}

/// Streams `body` through the verifier: whether it is exactly `size` bytes that give
/// `expected`. Nothing is held beyond the chunk in hand. A body that stops coming for longer
/// than the backend timeout is an error, not a verdict.
async fn verify_stream(
    store: &Store,
    mut body: hansa_backends::ByteStream,
    size: u64,
    expected: &Expectation,
) -> Result<bool, BackendError> {
    let mut verifier = expected.verifier();
    let mut seen = 0u64;
    loop {
        let next = tokio::time::timeout(store.settings().backend_timeout, body.next()).await;
        match next {
            Err(_) => {
                return Err(BackendError::Unavailable {
                    message: format!(
                        "read: no bytes within {:?}",
                        store.settings().backend_timeout
                    ),
                })
            }
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                seen += chunk.len() as u64;
                verifier.update(&chunk);
            }
            Ok(Some(Err(e))) => return Err(e),
        }
    }
    Ok(seen == size && verifier.matches())
}

/// Marks what was found wrong, under the key's lock, if the key still has the checked version
/// and each replica is still the copy that was checked; then flushes the index and queues the
/// repairs. Returns false when the key moved on (nothing marked; the finding is moot).
async fn mark(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    found: &[&Checked],
) -> bool {
    let marked = {
        let _guard = store.locks.lock(bucket, key).await;
        let mut current = match store.meta.object(bucket, key) {
            Ok(Some(current)) if current.version_id == record.version_id => current,
            Ok(_) => return false,
            Err(e) => {
                // Reported, not marked: the next verify (or anti-entropy) finds it again.
                tracing::warn!(bucket, key, error = %e, "verify could not read the index to mark");
                return true;
            }
        };
        let mut marked = Vec::new();
        for c in found {
            let Some(state) = c.finding.mark() else {
                continue;
            };
            // A copy replaced since it was checked (repaired, adopted) is left alone.
            let slot = current.replicas.iter_mut().find(|r| {
                r.same_slot(&c.replica) && r.etag == c.replica.etag && r.state == c.replica.state
            });
            if let Some(slot) = slot {
                slot.state = state;
                marked.push(c.replica.backend.clone());
            }
        }
        if marked.is_empty() {
            return true;
        }
        if let Err(e) = store.meta.put_object(bucket, key, &current) {
            tracing::warn!(bucket, key, error = %e, "verify could not mark replicas for repair");
            return true;
        }
        marked
    };
    if let Err(e) = store.meta.sync().await {
        tracing::warn!(error = %e, "verify could not flush the index");
    }
    for backend in marked {
        tracing::warn!(backend = %backend, bucket, key, "verify: replica marked for repair");
        queue(
            store,
            RepairEntry::new(
                &backend,
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: record.version_id.clone(),
                    staged: None,
                },
                "verify: missing, changed or corrupt",
            ),
        );
    }
    true
}

/// Replicas the index already knows are not present: their repair is queued unless it is
/// (an entry lost with an unflushed write is found here too).
fn queue_pending(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    checked: &[Checked],
) {
    for c in checked.iter().filter(|c| c.finding == Finding::Pending) {
        let entry = RepairEntry::new(
            &c.replica.backend,
            bucket,
            key,
            RepairTask::Replicate {
                version_id: record.version_id.clone(),
                staged: c.replica.staged.clone(),
            },
            "verify: a replica not present",
        );
        if matches!(store.meta.queue_repair_if_absent(&entry), Ok(true)) {
            store.repair_wake.notify_one();
        }
    }
}
