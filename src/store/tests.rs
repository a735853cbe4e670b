//! The commit's branches, through the store's own API, on in-memory stores (which hold small
//! bodies in memory until they are published, as the cloud kinds do) and a local disk, with
//! fault switches around them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hansa_backends::{Fault, FaultPlan, ObjectAttributes};

use super::*;
use crate::config::Config;
use crate::meta::{BucketRecord, RepairEntry, RepairTask, ReplicaState};

struct Fixture {
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

/// A store on `backends` (TOML `[[backend]]` tables, each with `faults = {}`) with a default
/// policy of every backend and write quorum `quorum`, and a bucket `bkt`.
async fn fixture(backends: &str, quorum: usize) -> Fixture {
    // Under target/: its file system keeps user extended attributes (the local disk needs them).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tmp");
    std::fs::create_dir_all(&root).expect("target/test-tmp");
    let dir = tempfile::Builder::new()
        .prefix("store-")
        .tempdir_in(root)
        .expect("tempdir");
    let toml = format!(
        "[server]\ndata_dir = {:?}\n[[credential]]\naccess_key_id = \"KEY\"\n\
         secret_access_key = \"secret-secret-secret\"\n{}\n[policy.default]\nwrite_quorum = {quorum}\n",
        dir.path().join("data").display().to_string(),
        backends.replace("{dir}", &dir.path().display().to_string()),
    );
    let config = Config::from_toml("test.toml", &toml).expect("config");
    let store = Arc::new(Store::open(&config).await.expect("store"));
    store
        .meta
        .create_bucket(&BucketRecord {
            name: "bkt".into(),
            created_ms: 0,
            region: "us-east-1".into(),
            owner: "KEY".into(),
        })
        .expect("bucket");
    Fixture { store, _dir: dir }
}

const TWO_MEMORY: &str = "[[backend]]\nid = \"m1\"\nkind = \"memory\"\nfaults = {}\n\
                          [[backend]]\nid = \"m2\"\nkind = \"memory\"\nfaults = {}\n";
const DISK_AND_MEMORY: &str = "[[backend]]\nid = \"disk\"\nkind = \"local\"\npath = \"{dir}/disk\"\n\
                               faults = {}\n[[backend]]\nid = \"mem\"\nkind = \"memory\"\nfaults = {}\n";

fn new_object(key: &str, size: usize) -> NewObject {
    NewObject {
        bucket: "bkt".into(),
        key: key.into(),
        attributes: ObjectAttributes::default(),
        size: Some(size as u64),
        known_etag: None,
        owner: "KEY".into(),
        condition: WriteCondition::Always,
        acl: None,
        tags: Vec::new(),
        lock: Default::default(),
    }
}

async fn put(store: &Arc<Store>, key: &str, data: &[u8]) -> StoreResult<crate::meta::ObjectRecord> {
    let bytes = Bytes::copy_from_slice(data);
    let etag = hex::encode(<md5::Md5 as md5::Digest>::digest(data));
    let body = futures::stream::once(async move { Ok::<_, BodyFailure>(bytes) });
    put_object(store, new_object(key, data.len()), body, move || {
        Some(BodyFacts {
            etag: etag.clone(),
            checksum: None,
        })
    })
    .await
}

async fn read(store: &Arc<Store>, key: &str) -> Vec<u8> {
    let record = object(store, "bkt", key).expect("index").expect("record");
    let ReadOutcome::Opened(body) = read_version(store, "bkt", key, &record, 0..record.size)
        .await
        .expect("read")
    else {
        panic!("the key changed")
    };
    let mut out = Vec::new();
    let mut body = body.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// What backend `id` holds under the key's plain name.
async fn on_backend(store: &Store, id: &str, key: &str) -> Option<Vec<u8>> {
    let backend = store.backends.get(id).expect("backend");
    let got = backend
        .get(&hansa_backends::physical_name("bkt", key), None, None)
        .await
        .ok()?;
    hansa_backends::testsuite::collect(got.body).await.ok()
}

/// Asserts that each of `ids` holds `body` at `key`.
async fn assert_held_by(store: &Store, ids: &[&str], key: &str, body: &[u8]) {
    for id in ids {
        assert_eq!(
            on_backend(store, id, key).await.as_deref(),
            Some(body),
            "on {id}"
        );
    }
}

/// A body of unknown length (HTTP chunked) is announced as small; every backend records its
/// real length in the replica's stamp, which rebuilds and anti-entropy compare with the size
/// stored.
#[tokio::test]
async fn a_body_of_unknown_length_is_stamped_with_its_length() {
    let f = fixture(DISK_AND_MEMORY, 2).await;
    let data = b"unknown length body ".repeat(100);
    let pieces: Vec<Result<Bytes, BodyFailure>> = data
        .chunks(300)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let etag = hex::encode(<md5::Md5 as md5::Digest>::digest(&data));
    let mut unsized_object = new_object("unsized", 0);
    unsized_object.size = None;
    let record = put_object(
        &f.store,
        unsized_object,
        futures::stream::iter(pieces),
        move || {
            Some(BodyFacts {
                etag: etag.clone(),
                checksum: None,
            })
        },
    )
    .await
    .expect("put");
    assert_eq!(record.size, data.len() as u64);
    assert_eq!(read(&f.store, "unsized").await, data);
    for id in ["disk", "mem"] {
        let backend = f.store.backends.get(id).expect("backend");
        let info = backend
            .head(&hansa_backends::physical_name("bkt", "unsized"))
            .await
            .expect("head");
        let stamp = info.stamp.expect("stamp");
        assert_eq!(info.size, data.len() as u64, "{id}");
        assert_eq!(stamp.size, data.len() as u64, "{id}");
        assert_eq!(stamp.etag, record.etag, "{id}");
    }
}

/// Two stores that hold small bodies in memory until published: a quorum of two needs both
/// held copies, so they are made durable first (staging objects), then published.
#[tokio::test]
async fn a_quorum_of_held_copies_is_made_durable_then_published() {
    let f = fixture(TWO_MEMORY, 2).await;
    let record = put(&f.store, "k", b"held twice").await.expect("put");
    assert!(record
        .replicas
        .iter()
        .all(|r| r.state == ReplicaState::Present));
    assert_held_by(&f.store, &["m1", "m2"], "k", b"held twice").await;
    assert_eq!(read(&f.store, "k").await, b"held twice");
}

/// A held copy the quorum needs whose publish fails: the write fails and nothing visible
/// changed on either backend (the held copy is published first, before the disk's).
#[tokio::test]
async fn a_failed_publish_of_a_needed_held_copy_changes_nothing() {
    let f = fixture(DISK_AND_MEMORY, 2).await;
    put(&f.store, "k", b"v0").await.expect("v0");
    f.store.fault_switches["mem"].update(|p| p.publishes = Fault::Fail);
    let err = put(&f.store, "k", b"v1 refused")
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::QuorumNotMet { .. }), "{err:?}");
    f.store.fault_switches["mem"].clear();
    assert_held_by(&f.store, &["disk", "mem"], "k", b"v0").await;
    assert_eq!(read(&f.store, "k").await, b"v0");
}

/// A durable staged copy whose publish fails still counts towards the quorum: the write
/// commits with that replica staged, its debt goes to the repair queue (with the staged
/// copy's handle), and the repair publishes that copy once the backend works again.
#[tokio::test]
async fn a_staged_copy_whose_publish_failed_is_published_later() {
    let f = fixture(DISK_AND_MEMORY, 2).await;
    f.store.fault_switches["disk"].update(|p| p.publishes = Fault::Fail);
    let record = put(&f.store, "k", b"v1").await.expect("put");
    let disk = record
        .replicas
        .iter()
        .find(|r| r.backend == "disk")
        .expect("disk replica");
    assert_eq!(disk.state, ReplicaState::Staged, "{record:?}");
    assert_eq!(read(&f.store, "k").await, b"v1");
    assert_eq!(on_backend(&f.store, "disk", "k").await, None);
    // The write's own follow-up tries again, gives up and queues the publish.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f.store.meta.intents().expect("intents").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the intent stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = f.store.meta.repairs("disk", None, 10).expect("queue");
    assert!(
        matches!(
            queued.as_slice(),
            [(
                _,
                RepairEntry {
                    task: RepairTask::Replicate {
                        staged: Some(_),
                        ..
                    },
                    ..
                }
            )]
        ),
        "{queued:?}"
    );
    // Still failing: the entry stays, with a backoff.
    let report = super::repair_pass(&f.store).await;
    assert_eq!((report.repaired, report.failed), (0, 1), "{report:?}");
    f.store.fault_switches["disk"].clear();
    let queued = f.store.meta.repairs("disk", None, 10).expect("queue");
    f.store
        .meta
        .queue_repair(&RepairEntry {
            not_before_ms: 0,
            ..queued[0].1.clone()
        })
        .expect("due now");
    let report = super::repair_pass(&f.store).await;
    assert_eq!(report.repaired, 1, "{report:?}");
    assert_eq!(super::queue_depth(&f.store), 0);
    assert_eq!(
        on_backend(&f.store, "disk", "k").await.as_deref(),
        Some(&b"v1"[..])
    );
    let record = object(&f.store, "bkt", "k")
        .expect("index")
        .expect("record");
    assert!(record
        .replicas
        .iter()
        .all(|r| r.state == ReplicaState::Present));
    assert!(f.store.meta.intents().expect("intents").is_empty());
}

/// A silent backend (every call hangs) with a quorum of one: the write is answered without it
/// and its replica is pending.
#[tokio::test]
async fn a_silent_backend_does_not_hold_up_a_quorum_of_one() {
    let f = fixture(DISK_AND_MEMORY, 1).await;
    f.store.fault_switches["mem"].set(FaultPlan::all(Fault::Hang));
    let record = tokio::time::timeout(Duration::from_secs(5), put(&f.store, "k", b"quick"))
        .await
        .expect("the write waited for the silent backend")
        .expect("put");
    let states: Vec<_> = record
        .replicas
        .iter()
        .map(|r| (r.backend.as_str(), r.state))
        .collect();
    assert!(
        states.contains(&("disk", ReplicaState::Present)),
        "{states:?}"
    );
    assert!(
        states.contains(&("mem", ReplicaState::Pending)),
        "{states:?}"
    );
    f.store.fault_switches["mem"].clear();
}

/// W = 1: the memory store's held copy makes the quorum at once while the disk is still
/// staging; when that copy cannot be published, the disk's copy makes the quorum instead of
/// the write failing.
#[tokio::test]
async fn a_held_copy_that_cannot_be_published_falls_back_to_a_slower_target() {
    let f = fixture(DISK_AND_MEMORY, 1).await;
    put(&f.store, "k", b"v0").await.expect("v0");
    f.store.fault_switches["disk"].update(|p| p.writes = Fault::SlowMs(300));
    f.store.fault_switches["mem"].update(|p| p.publishes = Fault::Fail);
    let record = put(&f.store, "k", b"v1 on the disk")
        .await
        .expect("the disk's copy makes the quorum");
    f.store.fault_switches["disk"].clear();
    f.store.fault_switches["mem"].clear();
    let states: Vec<_> = record
        .replicas
        .iter()
        .map(|r| (r.backend.as_str(), r.state))
        .collect();
    assert!(
        states.contains(&("disk", ReplicaState::Present)),
        "{states:?}"
    );
    assert!(
        !states.contains(&("mem", ReplicaState::Present)),
        "{states:?}"
    );
    assert_held_by(&f.store, &["disk"], "k", b"v1 on the disk").await;
    assert_eq!(read(&f.store, "k").await, b"v1 on the disk");
}

/// A crash between the index's flush and the first publish, with every staged copy lost
/// (bodies held in memory die with the process; a staged file that never reached the disk):
/// the write was never answered, so recovery puts the version before it back.
#[tokio::test]
async fn a_commit_published_nowhere_is_rolled_back_after_a_crash() {
    use crate::meta::{Before, Intent, IntentPhase, IntentTarget, Replica};
    let f = fixture(DISK_AND_MEMORY, 2).await;
    let v0 = put(&f.store, "k", b"v0").await.expect("v0");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // What the index holds after such a crash: the new version, its copies staged under
    // handles no backend knows any more.
    let mut v1 = v0.clone();
    v1.version_id = "v1crashed".into();
    v1.etag = "0123456789abcdef0123456789abcdef".into();
    v1.replicas = v0
        .replicas
        .iter()
        .map(|r| Replica {
            state: ReplicaState::Staged,
            staged: Some(if r.backend == "disk" {
                "v1crashedx0000000000000000".into()
            } else {
                "m0000000000000000000000000000000".into()
            }),
            etag: String::new(),
            ..r.clone()
        })
        .collect();
    let intent = Intent {
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: v1.version_id.clone(),
        started_ms: 0,
        owner: "KEY".into(),
        phase: IntentPhase::Committed,
        targets: v1
            .replicas
            .iter()
            .map(|r| IntentTarget {
                backend: r.backend.clone(),
                name: r.name.clone(),
                handle: r.staged.clone(),
                upload_handle: None,
            })
            .collect(),
        superseded: Vec::new(),
        upload_id: None,
        before: Some(Before::Object(Box::new(v0.clone()))),
    };
    f.store.meta.put_object("bkt", "k", &v1).expect("index");
    f.store
        .meta
        .record_intent("crashed", &intent)
        .expect("intent");
    assert_eq!(finish_intents(&f.store, Duration::ZERO).await, 1);
    let record = object(&f.store, "bkt", "k")
        .expect("index")
        .expect("record");
    assert_eq!(
        record.version_id, v0.version_id,
        "the previous version is back"
    );
    assert_eq!(read(&f.store, "k").await, b"v0");
    assert!(f.store.meta.intents().expect("intents").is_empty());

    // A copy that did get published (its handle is gone, but the name holds the version)
    // means the write may have been answered: it stands.
    let v2 = put(&f.store, "k", b"v2 acknowledged").await.expect("v2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut unflushed = v2.clone();
    for r in unflushed.replicas.iter_mut() {
        r.state = ReplicaState::Staged;
        r.staged = Some(if r.backend == "disk" {
            "v2gonex0000000000000000000".into()
        } else {
            "m1111111111111111111111111111111".into()
        });
    }
    let intent = Intent {
        version_id: v2.version_id.clone(),
        before: Some(Before::Object(Box::new(v0.clone()))),
        ..intent
    };
    f.store
        .meta
        .put_object("bkt", "k", &unflushed)
        .expect("index");
    f.store
        .meta
        .record_intent("crashed2", &intent)
        .expect("intent");
    assert_eq!(finish_intents(&f.store, Duration::ZERO).await, 1);
    let record = object(&f.store, "bkt", "k")
        .expect("index")
        .expect("record");
    assert_eq!(
        record.version_id, v2.version_id,
        "an answered write was rolled back"
    );
    assert_eq!(read(&f.store, "k").await, b"v2 acknowledged");
}

/// A crash after the commit, before the write's follow-up recorded what a backend missed (a
/// straggler's replica is pending in the index, with nothing queued for it): recovery queues
/// it, and the repair brings the backend to the current version. (It used to queue only copies
/// still staged: the backend kept the older version's bytes behind an empty queue.)
#[tokio::test]
async fn recovery_queues_a_replica_a_crashed_write_left_pending() {
    use crate::meta::{Before, Intent, IntentPhase, IntentTarget};
    let f = fixture(DISK_AND_MEMORY, 1).await;
    let v1 = put(&f.store, "k", b"v1 on both").await.expect("v1");
    f.store.fault_switches["mem"].set(FaultPlan::all(Fault::Fail));
    let v2 = put(&f.store, "k", b"v2, missed by mem").await.expect("v2");
    let pending = |r: &crate::meta::ObjectRecord| {
        r.replicas
            .iter()
            .any(|x| x.backend == "mem" && x.state == ReplicaState::Pending)
    };
    assert!(pending(&v2), "{v2:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f.store.meta.intents().expect("intents").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the intent stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The state a kill -9 leaves: the committed intent, the pending replica, no queue entry.
    for (_, entry) in f.store.meta.repairs("mem", None, 10).expect("queue") {
        f.store.meta.settle_repair(&entry, None).expect("unqueue");
    }
    let intent = Intent {
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: v2.version_id.clone(),
        started_ms: 0,
        owner: "KEY".into(),
        phase: IntentPhase::Committed,
        targets: v2
            .replicas
            .iter()
            .map(|r| IntentTarget {
                backend: r.backend.clone(),
                name: r.name.clone(),
                handle: None,
                upload_handle: None,
            })
            .collect(),
        superseded: Vec::new(),
        upload_id: None,
        before: Some(Before::Object(Box::new(v1))),
    };
    f.store
        .meta
        .record_intent("crashed", &intent)
        .expect("intent");
    f.store.fault_switches["mem"].clear();

    assert_eq!(finish_intents(&f.store, Duration::ZERO).await, 1);
    let queued = f.store.meta.repairs("mem", None, 10).expect("queue");
    assert!(
        matches!(queued.as_slice(), [(_, RepairEntry { task: RepairTask::Replicate { version_id, .. }, .. })] if *version_id == v2.version_id),
        "{queued:?}"
    );
    assert!(super::drain_queue(&f.store, Duration::from_secs(10)).await);
    assert_held_by(&f.store, &["disk", "mem"], "k", b"v2, missed by mem").await;
    let record = object(&f.store, "bkt", "k")
        .expect("index")
        .expect("record");
    assert!(!pending(&record), "{record:?}");
}

/// The removal of every copy is queued in the flush that deletes the index entry: while a
/// backend has not removed its copy yet, the index already holds the work a kill -9 must not
/// lose. (It used to be queued only once the removal had failed: a kill in between left the
/// copy behind an empty queue.)
#[tokio::test]
async fn a_delete_queues_its_removals_with_the_entry() {
    let backends = format!("{DISK_AND_MEMORY}[limits]\nbackend_timeout_secs = 1\n");
    let f = fixture(&backends, 2).await;
    put(&f.store, "k", b"doomed").await.expect("put");
    f.store.fault_switches["mem"].update(|p| p.deletes = Fault::Hang);
    let store = f.store.clone();
    let delete = tokio::spawn(async move { delete_object(&store, "bkt", "k", false).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while object(&f.store, "bkt", "k").expect("index").is_some() {
        assert!(std::time::Instant::now() < deadline, "the entry stayed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let removal_queued = |id: &str| {
        f.store
            .meta
            .repairs(id, None, 10)
            .expect("queue")
            .iter()
            .any(|(_, e)| matches!(e.task, RepairTask::Remove { .. }) && e.key == "k")
    };
    assert!(removal_queued("mem"), "mem's removal is not queued yet");
    delete.await.expect("task").expect("delete");
    assert!(
        !removal_queued("disk"),
        "a removal that was done stayed queued"
    );
    assert!(
        removal_queued("mem"),
        "the removal mem missed is not queued"
    );
    assert_eq!(
        on_backend(&f.store, "mem", "k").await.as_deref(),
        Some(&b"doomed"[..])
    );

    f.store.fault_switches["mem"].clear();
    assert!(super::drain_queue(&f.store, Duration::from_secs(10)).await);
    assert_eq!(on_backend(&f.store, "mem", "k").await, None);
    assert_eq!(on_backend(&f.store, "disk", "k").await, None);
}

/// A tag change waits for a write holding the key's lock, then tags what that write committed:
/// it never writes back the version it would have read before the write.
#[tokio::test]
async fn a_tag_change_waits_for_the_key_and_keeps_the_overwrite() {
    let f = fixture(TWO_MEMORY, 2).await;
    let store = &f.store;
    let old = put(store, "k", b"old").await.expect("put");
    let tags = vec![crate::meta::Tag {
        key: "k".into(),
        value: "v".into(),
    }];
    let guard = store.locks.lock("bkt", "k").await;
    let task = tokio::spawn({
        let store = store.clone();
        let tags = tags.clone();
        async move { set_object_tags(&store, "bkt", "k", None, tags).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished(), "the tag change waits for the key");
    // What a commit does under the key's lock: the index names the new version.
    let mut newer = old.clone();
    newer.version_id = "newer".into();
    newer.etag = "newer-etag".into();
    store.meta.put_object("bkt", "k", &newer).expect("index");
    drop(guard);
    let tagged = task.await.expect("task").expect("tags");
    assert_eq!(tagged.version_id, "newer");
    let now = object(store, "bkt", "k").expect("index").expect("record");
    assert_eq!((now.version_id.as_str(), &now.tags), ("newer", &tags));
    // A version that no longer exists is not tagged, and nothing changes.
    let stale = set_object_tags(store, "bkt", "k", Some(&old.version_id), Vec::new()).await;
    assert!(
        matches!(stale, Err(StoreError::NoSuchVersion { .. })),
        "{stale:?}"
    );
    let now = object(store, "bkt", "k").expect("index").expect("record");
    assert_eq!(now.tags, tags);
    assert!(matches!(
        set_object_tags(store, "bkt", "missing", None, Vec::new()).await,
        Err(StoreError::NoSuchKey(_))
    ));
}
