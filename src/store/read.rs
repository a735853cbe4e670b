//! Reading one version of an object: from its present replicas in read order, verified, with
//! failover, and consistent with the index.
//!
//! * An object that fits the verification buffer is read whole from one replica and checked
//!   before its first byte goes out: a bad copy fails over invisibly.
//! * A larger one streams and is checked as it goes; the last buffer is held back until the
//!   check is done, so a mismatch ends the response short (the client sees an error), never
//!   as a complete 200 with wrong bytes. A body joined from two replicas after a mid-stream
//!   failover is checked as a whole.
//! * A copy that fails the check is marked corrupt in the index, and the next read avoids it.
//! * When no replica holds the version the caller read from the index, the index is read
//!   again: a key overwritten meanwhile is read anew ([`ReadOutcome::Changed`]), never
//!   answered with 503. A copy that holds the version under another backend etag (a disk
//!   restored with `cp`), or holds its exact bytes without its stamp (restored without
//!   extended attributes), is recognised, restamped if needed, and adopted.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hansa_backends::BackendError;

use super::copies::{replica_target, stamp_of};
use super::verify::Expectation;
use super::{Store, StoreError, StoreResult};
use crate::meta::{ObjectRecord, Replica, ReplicaState};
use crate::replication::{bounded, open_replicas, ReadFailure, Reservation};

/// An object's bytes on their way to the client.
pub struct ObjectBody {
    pub body: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    /// The backend the first bytes come from (none for an empty span).
    pub served_by: Option<String>,
}

pub enum ReadOutcome {
    Opened(ObjectBody),
    /// The index names another version of the key now (or none): read it again.
    Changed,
}

/// How often a read retries after adopting a restored copy before giving up.
const ADOPTION_ROUNDS: usize = 2;

/// Opens `span` of the version `record` names. `record` is what the caller answered
/// conditions and headers from; when the key has moved on, [`ReadOutcome::Changed`] asks it
/// to start over with the current record.
pub async fn read_version(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    span: Range<u64>,
) -> StoreResult<ReadOutcome> {
    if span.is_empty() {
        return Ok(ReadOutcome::Opened(ObjectBody {
            body: futures::stream::empty().boxed(),
            served_by: None,
        }));
    }
    let whole = span.start == 0 && span.end == record.size;
    let expectation = whole.then(|| Expectation::of(record)).flatten();
    let mut record = record.clone();
    for round in 0..=ADOPTION_ROUNDS {
        if record
            .replicas
            .iter()
            .all(|r| r.state != ReplicaState::Present)
            && record
                .replicas
                .iter()
                .any(|r| r.state == ReplicaState::Staged)
        {
            // A write is publishing this version: its copies are visible once it releases the
            // key.
            drop(store.locks.lock(bucket, key).await);
            match reread(store, bucket, key, &record)? {
                Some(current) => record = current,
                None => return Ok(ReadOutcome::Changed),
            }
        }
        let replicas: Vec<Replica> = store
            .read_order(bucket, &record.replicas)
            .into_iter()
            .cloned()
            .collect();
        let failure = match &expectation {
            Some(expected) if record.size <= store.settings().verify_before_send => {
                // Held in memory until checked: counted in the in-flight budget like a
                // write's buffer. Reads are short and nobody's share: no tenant.
                let reservation = store.budget.reserve(record.size as usize, None).await?;
                match read_small(store, bucket, key, &record, replicas, expected, reservation).await
                {
                    Ok(body) => return Ok(ReadOutcome::Opened(body)),
                    Err(failure) => failure,
                }
            }
            _ => match open_replicas(
                &store.backends,
                replicas,
                span.clone(),
                store.settings().backend_timeout,
            )
            .await
            {
                Ok(read) => {
                    let served_by = read
                        .sources
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .first()
                        .cloned();
                    let body = match &expectation {
                        Some(expected) => verified_stream(
                            store.clone(),
                            Version::of(bucket, key, &record),
                            read,
                            expected.clone(),
                            span.end - span.start,
                        ),
                        None => read.body,
                    };
                    return Ok(ReadOutcome::Opened(ObjectBody { body, served_by }));
                }
                Err(failure) => failure,
            },
        };
        // Nothing served. Has the key moved on?
        match store.meta.object(bucket, key)? {
            Some(current) if current.version_id == record.version_id => {}
            _ => return Ok(ReadOutcome::Changed),
        }
        if round == ADOPTION_ROUNDS || failure.mismatched.is_empty() {
            return Err(StoreError::NoReplica(failure.to_string()));
        }
        let mut adopted = false;
        for replica in &failure.mismatched {
            adopted |= adopt(store, bucket, key, &record, replica).await;
        }
        if !adopted {
            return Err(StoreError::NoReplica(failure.to_string()));
        }
        match reread(store, bucket, key, &record)? {
            Some(current) => record = current,
            None => return Ok(ReadOutcome::Changed),
        }
    }
    Err(StoreError::NoReplica("no replica could be read".into()))
}

/// The key's entry again, if it still names `record`'s version.
fn reread(
    store: &Store,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
) -> StoreResult<Option<ObjectRecord>> {
    Ok(store
        .meta
        .object(bucket, key)?
        .filter(|current| current.version_id == record.version_id))
}

/// Reads a small object whole from one replica after another until one checks out.
async fn read_small(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replicas: Vec<Replica>,
    expected: &Expectation,
    reservation: Reservation,
) -> Result<ObjectBody, ReadFailure> {
    let mut failure = ReadFailure::default();
    for replica in replicas {
        let read = open_replicas(
            &store.backends,
            vec![replica.clone()],
            0..record.size,
            store.settings().backend_timeout,
        )
        .await;
        let mut read = match read {
            Ok(read) => read,
            Err(f) => {
                failure.mismatched.extend(f.mismatched);
                failure.errors.extend(f.errors);
                continue;
            }
        };
        let mut data = Vec::with_capacity(record.size as usize);
        let mut verifier = expected.verifier();
        let mut broken = None;
        while let Some(chunk) = read.body.next().await {
            match chunk {
                Ok(chunk) => {
                    verifier.update(&chunk);
                    data.extend_from_slice(&chunk);
                }
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = broken {
            failure.errors.push(format!("{}: {e}", replica.backend));
            continue;
        }
        if data.len() as u64 == record.size && verifier.matches() {
            let data = reservation.freeze(data);
            return Ok(ObjectBody {
                body: futures::stream::once(async move { Ok(data) }).boxed(),
                served_by: Some(replica.backend.clone()),
            });
        }
        failure.errors.push(format!(
            "{}: the bytes do not match the object",
            replica.backend
        ));
        mark_corrupt(store, &Version::of(bucket, key, record), &replica).await;
    }
    Err(failure)
}

/// Which version of which key a read is about.
#[derive(Clone)]
struct Version {
    bucket: String,
    key: String,
    version_id: String,
}

impl Version {
    fn of(bucket: &str, key: &str, record: &ObjectRecord) -> Version {
        Version {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: record.version_id.clone(),
        }
    }
}

/// Checks a streamed body as it goes, holding back the last buffer until the check is done.
fn verified_stream(
    store: Arc<Store>,
    version: Version,
    read: crate::replication::ReplicaRead,
    expected: Expectation,
    len: u64,
) -> Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>> {
    struct State {
        body: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
        verifier: Option<super::verify::Verifier>,
        seen: u64,
    }
    let sources = read.sources.clone();
    let state = State {
        body: read.body,
        verifier: Some(expected.verifier()),
        seen: 0,
    };
    futures::stream::unfold(state, move |mut state| {
        let (store, version, sources) = (store.clone(), version.clone(), sources.clone());
        async move {
            let chunk = match state.body.next().await? {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(e), state)),
            };
            let verifier = state.verifier.as_mut()?;
            verifier.update(&chunk);
            state.seen += chunk.len() as u64;
            if state.seen < len {
                return Some((Ok(chunk), state));
            }
            let verifier = state.verifier.take()?;
            if verifier.matches() {
                return Some((Ok(chunk), state));
            }
            let served_by = sources.lock().unwrap_or_else(|p| p.into_inner()).clone();
            tracing::error!(bucket = %version.bucket, key = %version.key, ?served_by,
                "the bytes read do not match the object; the response is cut short");
            // One source: that copy is bad. Several (a failover in mid-stream): which one is
            // unknown; the next whole read of each will tell.
            if let [only] = served_by.as_slice() {
                if let Some(replica) = replica_of(&store, &version, only) {
                    let (store, version) = (store.clone(), version.clone());
                    tokio::spawn(async move { mark_corrupt(&store, &version, &replica).await });
                }
            }
            Some((
                Err(std::io::Error::other(
                    "the object's bytes failed verification; the response was cut short",
                )),
                state,
            ))
        }
    })
    .boxed()
}

fn replica_of(store: &Store, version: &Version, backend: &str) -> Option<Replica> {
    store
        .meta
        .object(&version.bucket, &version.key)
        .ok()??
        .replicas
        .into_iter()
        .find(|r| r.backend == backend)
}

/// Marks a replica whose bytes did not match as corrupt (if the key still has that version),
/// so reads avoid it until it is repaired.
async fn mark_corrupt(store: &Store, version: &Version, replica: &Replica) {
    tracing::warn!(bucket = %version.bucket, key = %version.key, backend = %replica.backend,
        name = %replica.name, "replica holds other bytes than the object; marked corrupt");
    if update_replica(store, version, replica, |r| r.state = ReplicaState::Corrupt).await {
        super::queue::queue(
            store,
            crate::meta::RepairEntry::new(
                &replica.backend,
                &version.bucket,
                &version.key,
                crate::meta::RepairTask::Replicate {
                    version_id: version.version_id.clone(),
                    staged: None,
                },
                "a read found its bytes corrupt",
            ),
        );
    }
}

/// Changes one replica of the key's entry, under the key's lock, if the entry still names
/// `version`.
async fn update_replica(
    store: &Store,
    version: &Version,
    replica: &Replica,
    change: impl FnOnce(&mut Replica),
) -> bool {
    let _guard = store.locks.lock(&version.bucket, &version.key).await;
    let Ok(Some(mut record)) = store.meta.object(&version.bucket, &version.key) else {
        return false;
    };
    if record.version_id != version.version_id {
        return false;
    }
    let Some(slot) = record.replicas.iter_mut().find(|r| r.same_slot(replica)) else {
        return false;
    };
    change(slot);
    match store
        .meta
        .put_object(&version.bucket, &version.key, &record)
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not update a replica in the index");
            false
        }
    }
}

/// A replica whose backend etag differs from the index's: if it holds this version (its stamp
/// says so, or, without a stamp, its bytes check out), the index takes its etag (and an
/// unstamped copy gets its stamp back). Returns whether it was adopted.
async fn adopt(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    record: &ObjectRecord,
    replica: &Replica,
) -> bool {
    let Some(target) = replica_target(store, replica) else {
        return false;
    };
    let limit = store.settings().backend_timeout;
    let info = match bounded(limit, "head", target.backend.head(&target.name)).await {
        Ok(info) if info.size == record.size => info,
        _ => return false,
    };
    let etag = match &info.stamp {
        Some(stamp) if stamp.version_id == record.version_id => info.etag,
        Some(_) => return false,
        None => {
            let Some(expected) = Expectation::of(record) else {
                return false;
            };
            if !bytes_match(store, &target, &info.etag, &expected).await {
                return false;
            }
            let stamp = stamp_of(bucket, key, record);
            match bounded(
                limit,
                "restamp",
                target
                    .backend
                    .restamp(&target.name, &record.attributes, &stamp),
            )
            .await
            {
                Ok(restamped) => restamped.etag,
                Err(e) => {
                    tracing::warn!(backend = target.id(), error = %e, "could not restamp a restored copy");
                    return false;
                }
            }
        }
    };
    tracing::info!(
        bucket,
        key,
        backend = target.id(),
        "a copy of the indexed version under a new backend etag (a restore?): adopted"
    );
    let version = Version::of(bucket, key, record);
    update_replica(store, &version, replica, |r| r.etag = etag).await
}

/// Reads a copy whole (exactly the one `etag` names) and checks it against the object.
async fn bytes_match(
    store: &Store,
    target: &super::stage::Target,
    etag: &str,
    expected: &Expectation,
) -> bool {
    let opened = bounded(
        store.settings().backend_timeout,
        "read",
        target.backend.get(&target.name, None, Some(etag)),
    )
    .await;
    let Ok(got) = opened else { return false };
    let mut verifier = expected.verifier();
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => verifier.update(&chunk),
            Err(BackendError::Aborted) | Err(_) => return false,
        }
    }
    verifier.matches()
}
