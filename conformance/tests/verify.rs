//! Verify: every replica checked against the index, on two real local disks, by calling the
//! verify step (`hansa::store::jobs::check`) for each object. Copies are damaged behind the
//! gateway's back — bytes changed in place, files removed, files restored without their
//! extended attributes — and each mode must report exactly what it can see, repair only when
//! asked, and otherwise change nothing.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use hansa::meta::ReplicaState;
use hansa::store::jobs::{check, CheckOptions, StepOutcome};
use hansa_backends::{Fault, FaultPlan};
use hansa_conformance::{bucket_name, create_bucket, get, put, random_bytes, Options, TestGateway};

/// disk-a and disk-b, both replicas written before the answer (W = 2), failed repairs retried
/// within a second, no anti-entropy pass of its own (it would find the damage first).
async fn gateway() -> TestGateway {
    gateway_with(false).await
}

/// [`gateway`], with a fault switch on both disks when `faults`.
async fn gateway_with(faults: bool) -> TestGateway {
    TestGateway::start_with(Options {
        faults,
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 2\n\
             [repair]\nmax_backoff_secs = 1\nanti_entropy_interval_secs = 0\n"
            .to_string(),
        ..Default::default()
    })
    .await
}

/// Empty, small, one request's worth and more than one 5 MiB buffer (streamed when read);
/// [`objects`] adds a multipart object of two parts.
const SIZES: [usize; 4] = [0, 1000, 100_000, (5 << 20) + 1];

/// A bucket with one object of each size; returns the bucket and (key, bytes).
async fn objects(gw: &TestGateway, prefix: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let s3 = gw.client();
    let bucket = bucket_name(prefix);
    create_bucket(&s3, &bucket).await;
    let mut out = Vec::new();
    for size in SIZES {
        let key = format!("obj-{size}");
        let body = random_bytes(size);
        put(&s3, &bucket, &key, &body).await;
        out.push((key, body));
    }
    let parts = [random_bytes(5 << 20), random_bytes(1000)];
    put_multipart(&s3, &bucket, "obj-multipart", &parts).await;
    out.push(("obj-multipart".to_string(), parts.concat()));
    // The upload's parts are removed in the background once the object is published: wait,
    // so what a test compares later is only what verify did.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw
        .all_files()
        .iter()
        .any(|p| p.to_string_lossy().contains(".hansa/mpu/"))
    {
        assert!(std::time::Instant::now() < deadline, "upload parts left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (bucket, out)
}

/// Uploads `parts` as one multipart object.
async fn put_multipart(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create upload");
    let id = upload.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(part.clone().into())
            .send()
            .await
            .expect("upload part");
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete upload");
}

fn quick() -> CheckOptions {
    CheckOptions::default()
}

fn deep() -> CheckOptions {
    CheckOptions {
        deep: true,
        ..CheckOptions::default()
    }
}

fn repairing(options: CheckOptions) -> CheckOptions {
    CheckOptions {
        repair: true,
        ..options
    }
}

/// The outcome's counts as a sorted map, e.g. {"corrupt": 1, "ok": 1}.
fn counts(outcome: &StepOutcome) -> BTreeMap<&'static str, u64> {
    let mut map = BTreeMap::new();
    for (name, n) in &outcome.counts {
        *map.entry(*name).or_insert(0) += n;
    }
    map
}

fn expect(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

/// Checks one object and returns its counts and problem.
async fn verify(
    gw: &TestGateway,
    bucket: &str,
    key: &str,
    options: &CheckOptions,
) -> (BTreeMap<&'static str, u64>, Option<String>) {
    let outcome = check(gw.store(), bucket, key, options).await;
    (counts(&outcome), outcome.problem)
}

/// disk 0 is disk-a, 1 is disk-b.
fn file(gw: &TestGateway, disk: usize, bucket: &str, key: &str) -> PathBuf {
    gw.backend_dirs()[disk].join(bucket).join(key)
}

/// Changes one byte in the middle of the file, in place: same size, same inode, same
/// extended attributes (so the same stamp and backend etag).
fn corrupt_in_place(path: &PathBuf) {
    let len = std::fs::metadata(path).expect("stat").len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let at = len / 2;
    let old = std::fs::read(path).expect("read")[at as usize];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&[old ^ 0xff]).expect("write");
    f.sync_all().expect("sync");
}

/// Replaces the file by a new one holding `bytes` and no extended attributes, as a restore
/// that does not keep them would (a new file renamed over the old one).
fn restore_without_xattrs(gw: &TestGateway, path: &PathBuf, bytes: &[u8]) {
    let tmp = gw.dir.path().join("restore.tmp");
    std::fs::write(&tmp, bytes).expect("write the restored copy");
    std::fs::rename(&tmp, path).expect("rename over the replica");
}

/// Whether the copy on `backend` carries a stamp, as the backend itself reads it.
async fn stamped(gw: &TestGateway, backend: &str, bucket: &str, key: &str) -> bool {
    let record = gw
        .store()
        .meta
        .object(bucket, key)
        .expect("index")
        .expect("object");
    let replica = record
        .replicas
        .iter()
        .find(|r| r.backend == backend)
        .expect("replica");
    let name = hansa_backends::PhysicalName::parse(&replica.name).expect("name");
    let b = gw.store().backends.get(backend).expect("backend");
    b.head(&name).await.expect("head").stamp.is_some()
}

#[tokio::test]
async fn clean_objects_are_ok_quick_and_deep() {
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "clean").await;
    for options in [quick(), deep(), repairing(quick()), repairing(deep())] {
        for (key, _) in &objects {
            let (counts, problem) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 2)]), "{key} {options:?}");
            assert_eq!(problem, None, "{key}");
        }
    }
    // Only one backend's replicas when one is named.
    let only_b = CheckOptions {
        backend: Some("disk-b".into()),
        deep: true,
        repair: false,
    };
    for (key, _) in &objects {
        let (counts, _) = verify(&gw, &bucket, key, &only_b).await;
        assert_eq!(counts, expect(&[("ok", 1)]), "{key}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_corrupted_replica_is_seen_by_deep_only_and_repaired_on_request() {
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "corrupt").await;
    let damaged: Vec<_> = objects.iter().filter(|(_, b)| !b.is_empty()).collect();
    for (key, _) in &damaged {
        corrupt_in_place(&file(&gw, 1, &bucket, key));
    }
    for (key, _) in &damaged {
        // Quick mode sees size and stamp only: bytes changed in place look fine to it.
        let (counts, problem) = verify(&gw, &bucket, key, &quick()).await;
        assert_eq!(
            counts,
            expect(&[("ok", 2)]),
            "{key}: quick cannot see bytes"
        );
        assert_eq!(problem, None);

        let (counts, problem) = verify(&gw, &bucket, key, &deep()).await;
        assert_eq!(counts, expect(&[("ok", 1), ("corrupt", 1)]), "{key}");
        assert_eq!(problem.as_deref(), Some("disk-b: corrupt"));
        // Reported only.
        assert!(gw
            .replica_states(&bucket, key)
            .iter()
            .all(|(_, s)| *s == ReplicaState::Present));
    }
    for (key, _) in &damaged {
        let (counts, _) = verify(&gw, &bucket, key, &repairing(deep())).await;
        assert_eq!(counts, expect(&[("ok", 1), ("corrupt", 1)]), "{key}");
    }
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    for (key, body) in &damaged {
        let (counts, _) = verify(&gw, &bucket, key, &deep()).await;
        assert_eq!(counts, expect(&[("ok", 2)]), "{key} after repair");
        let on_disk = std::fs::read(file(&gw, 1, &bucket, key)).expect("read");
        assert!(on_disk == *body, "{key}: repaired bytes");
        assert_eq!(get(&gw.client(), &bucket, key).await, *body);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_missing_replica_is_found_and_repaired_on_request() {
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "missing").await;
    for (key, _) in &objects {
        std::fs::remove_file(file(&gw, 0, &bucket, key)).expect("remove");
    }
    for (key, _) in &objects {
        for options in [quick(), deep()] {
            let (counts, problem) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 1), ("missing", 1)]), "{key}");
            assert_eq!(problem.as_deref(), Some("disk-a: missing"));
        }
        // The other backend alone is fine.
        let only_b = CheckOptions {
            backend: Some("disk-b".into()),
            ..quick()
        };
        assert_eq!(
            verify(&gw, &bucket, key, &only_b).await.0,
            expect(&[("ok", 1)])
        );
    }
    for (key, _) in &objects {
        let (counts, _) = verify(&gw, &bucket, key, &repairing(quick())).await;
        assert_eq!(counts, expect(&[("ok", 1), ("missing", 1)]), "{key}");
    }
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    for (key, body) in &objects {
        let (counts, _) = verify(&gw, &bucket, key, &deep()).await;
        assert_eq!(counts, expect(&[("ok", 2)]), "{key} after repair");
        let on_disk = std::fs::read(file(&gw, 0, &bucket, key)).expect("repaired file");
        assert!(on_disk == *body, "{key}: repaired bytes");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_restored_replica_without_stamp_is_restamped_and_other_bytes_are_not() {
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "restored").await;
    // Same bytes, no extended attributes: quick on disk-a, deep on disk-b.
    for (disk, backend, options) in [(0, "disk-a", quick()), (1, "disk-b", deep())] {
        for (key, body) in &objects {
            restore_without_xattrs(&gw, &file(&gw, disk, &bucket, key), body);
            assert!(!stamped(&gw, backend, &bucket, key).await);
            let (counts, problem) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 1), ("restamped", 1)]), "{key}");
            assert_eq!(problem, None);
            assert!(
                stamped(&gw, backend, &bucket, key).await,
                "{key}: stamp back"
            );
            let (counts, _) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 2)]), "{key} once restamped");
        }
    }
    // Other bytes of the same size: corrupt, never stamped as the object. Another size:
    // changed.
    for (key, body) in objects.iter().filter(|(_, b)| !b.is_empty()) {
        let mut other = body.clone();
        other[0] ^= 1;
        restore_without_xattrs(&gw, &file(&gw, 0, &bucket, key), &other);
        for options in [quick(), deep()] {
            let (counts, problem) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 1), ("corrupt", 1)]), "{key}");
            assert!(problem.is_some_and(|p| p.starts_with("disk-a: corrupt")));
            assert!(!stamped(&gw, "disk-a", &bucket, key).await);
        }
        restore_without_xattrs(&gw, &file(&gw, 0, &bucket, key), &body[1..]);
        for options in [quick(), deep()] {
            let (counts, _) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 1), ("changed", 1)]), "{key}");
            assert!(!stamped(&gw, "disk-a", &bucket, key).await);
        }
    }
    gw.shutdown().await;
}

/// Every file under the gateway's directory with its bytes, and every object's index entry.
fn snapshot(
    gw: &TestGateway,
    bucket: &str,
    keys: &[String],
) -> (
    BTreeMap<PathBuf, Vec<u8>>,
    Vec<Option<hansa::meta::ObjectRecord>>,
) {
    let files = gw
        .all_files()
        .into_iter()
        .filter(|p| !p.starts_with("data"))
        .map(|p| {
            let bytes = std::fs::read(gw.dir.path().join(&p)).expect("read");
            (p, bytes)
        })
        .collect();
    let records = keys
        .iter()
        .map(|k| gw.store().meta.object(bucket, k).expect("index"))
        .collect();
    (files, records)
}

#[tokio::test]
async fn without_repair_nothing_changes() {
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "report-only").await;
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    // One of each: corrupt on disk-b, missing on disk-a, other bytes without a stamp on disk-a.
    let (k1, _) = &objects[1];
    let (k2, _) = &objects[2];
    let (k3, b3) = &objects[3];
    corrupt_in_place(&file(&gw, 1, &bucket, k1));
    std::fs::remove_file(file(&gw, 0, &bucket, k2)).expect("remove");
    let mut other = b3.clone();
    other[7] ^= 1;
    restore_without_xattrs(&gw, &file(&gw, 0, &bucket, k3), &other);

    let before = snapshot(&gw, &bucket, &keys);
    let mut found = BTreeMap::new();
    for options in [quick(), deep()] {
        for key in &keys {
            let (counts, _) = verify(&gw, &bucket, key, &options).await;
            for (name, n) in counts {
                *found.entry((options.deep, name)).or_insert(0) += n;
            }
        }
    }
    assert_eq!(
        found,
        BTreeMap::from([
            ((false, "ok"), 8),
            ((false, "missing"), 1),
            ((false, "corrupt"), 1),
            ((true, "ok"), 7),
            ((true, "missing"), 1),
            ((true, "corrupt"), 2),
        ])
    );
    // Give anything that would have been queued a moment to act.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hansa::store::queue_depth(gw.store()), 0);
    let after = snapshot(&gw, &bucket, &keys);
    let differing: Vec<&PathBuf> = before
        .0
        .keys()
        .chain(after.0.keys())
        .filter(|p| before.0.get(*p) != after.0.get(*p))
        .collect();
    assert!(differing.is_empty(), "files changed: {differing:?}");
    assert_eq!(before.1, after.1, "index changed");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_backend_that_does_not_answer_is_unreachable_not_a_finding() {
    let gw = gateway_with(true).await;
    let (bucket, objects) = objects(&gw, "unreachable").await;
    gw.faults("disk-b").update(|p| p.reads = Fault::Fail);
    for (key, _) in &objects {
        for options in [quick(), deep(), repairing(deep())] {
            let (counts, problem) = verify(&gw, &bucket, key, &options).await;
            assert_eq!(counts, expect(&[("ok", 1), ("unreachable", 1)]), "{key}");
            assert!(problem.is_some_and(|p| p.starts_with("disk-b: unreachable")));
        }
        assert!(gw
            .replica_states(&bucket, key)
            .iter()
            .all(|(_, s)| *s == ReplicaState::Present));
    }
    assert_eq!(hansa::store::queue_depth(gw.store()), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_key_overwritten_while_it_is_checked_is_skipped() {
    let gw = gateway_with(true).await;
    let s3 = gw.client();
    let bucket = bucket_name("overwritten");
    create_bucket(&s3, &bucket).await;
    put(&s3, &bucket, "k", &random_bytes(1000)).await;
    std::fs::remove_file(file(&gw, 0, &bucket, "k")).expect("remove");
    // disk-a answers its HEAD late: the key is overwritten before the finding is in.
    gw.faults("disk-a").set(FaultPlan {
        reads: Fault::SlowMs(1500),
        ..FaultPlan::default()
    });
    let store = gw.store().clone();
    let bucket2 = bucket.clone();
    let checking =
        tokio::spawn(async move { check(&store, &bucket2, "k", &repairing(quick())).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newer = random_bytes(2000);
    put(&s3, &bucket, "k", &newer).await;
    let outcome = checking.await.expect("check task");
    assert!(outcome.counts.is_empty(), "{:?}", outcome.counts);
    assert_eq!(outcome.problem, None);
    gw.faults("disk-a").clear();
    // The new version was not marked: both copies present, nothing queued, bytes right.
    assert!(gw
        .replica_states(&bucket, "k")
        .iter()
        .all(|(_, s)| *s == ReplicaState::Present));
    assert_eq!(hansa::store::queue_depth(gw.store()), 0);
    assert_eq!(
        std::fs::read(file(&gw, 0, &bucket, "k")).expect("read"),
        newer
    );
    let (counts, _) = verify(&gw, &bucket, "k", &deep()).await;
    assert_eq!(counts, expect(&[("ok", 2)]));
    gw.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// A cloud backend: moto (S3) beside a local disk. Needs scripts/test-servers.sh (see
// conformance/tests/cloud_replicas.rs); without its variables the test fails saying so, unless
// HANSA_SKIP_CLOUD_TESTS=1.

/// The S3 server's coordinates, and where this test's copies live on it.
struct Moto {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl Moto {
    fn object(&self, bucket: &str, key: &str) -> String {
        format!(
            "{}/{}",
            self.prefix,
            hansa_backends::physical_name(bucket, key).as_str()
        )
    }
}

/// A gateway keeping two replicas, on disk-a and moto (W = 2); `None` when the servers'
/// variables are missing and HANSA_SKIP_CLOUD_TESTS=1.
async fn cloud_gateway() -> Option<(TestGateway, Moto)> {
    use hansa_conformance::{cloud_backends_toml, test_server_var};
    let run = format!("verify/{:016x}", rand::random::<u64>());
    let prefix = format!("{run}/moto");
    let backends = cloud_backends_toml(&prefix, &format!("{run}/azurite"))?;
    let endpoint = test_server_var("HANSA_TEST_S3_ENDPOINT")?;
    let creds = aws_credential_types::Credentials::new(
        test_server_var("HANSA_TEST_S3_ACCESS_KEY")?,
        test_server_var("HANSA_TEST_S3_SECRET_KEY")?,
        None,
        None,
        "moto",
    );
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build(),
    );
    let moto = Moto {
        client,
        bucket: test_server_var("HANSA_TEST_S3_BUCKET")?,
        prefix,
    };
    let gw = TestGateway::start_with(Options {
        extra_toml: format!(
            "{backends}\n[policy.default]\nbackends = [\"disk-a\", \"moto\"]\nreplicas = 2\n\
             write_quorum = 2\n[repair]\nmax_backoff_secs = 1\nanti_entropy_interval_secs = 0\n"
        ),
        ..Default::default()
    })
    .await;
    Some((gw, moto))
}

#[tokio::test]
async fn on_an_s3_backend_missing_and_corrupt_copies_are_found_and_repaired() {
    let Some((gw, moto)) = cloud_gateway().await else {
        return;
    };
    let s3 = gw.client();
    let bucket = bucket_name("cloud");
    create_bucket(&s3, &bucket).await;
    let objects: Vec<(String, Vec<u8>)> = [1000usize, 100_000]
        .iter()
        .map(|size| (format!("obj-{size}"), random_bytes(*size)))
        .collect();
    for (key, body) in &objects {
        put(&s3, &bucket, key, body).await;
    }
    for options in [quick(), deep()] {
        for (key, _) in &objects {
            assert_eq!(
                verify(&gw, &bucket, key, &options).await.0,
                expect(&[("ok", 2)])
            );
        }
    }

    // Missing: the first object's copy removed from moto.
    let (gone, gone_body) = &objects[0];
    moto.client
        .delete_object()
        .bucket(&moto.bucket)
        .key(moto.object(&bucket, gone))
        .send()
        .await
        .expect("moto DELETE");
    // Corrupt: the second object's copy rewritten with other bytes of the same size and the
    // same metadata (its stamp included): another S3 ETag, the right stamp.
    let (bad, bad_body) = &objects[1];
    let name = moto.object(&bucket, bad);
    let head = moto
        .client
        .head_object()
        .bucket(&moto.bucket)
        .key(&name)
        .send()
        .await
        .expect("moto HEAD");
    let mut other = bad_body.clone();
    other[500] ^= 0xff;
    moto.client
        .put_object()
        .bucket(&moto.bucket)
        .key(&name)
        .set_metadata(head.metadata().cloned())
        .set_content_type(head.content_type().map(str::to_string))
        .body(other.into())
        .send()
        .await
        .expect("moto PUT");

    assert_eq!(
        verify(&gw, &bucket, gone, &quick()).await,
        (
            expect(&[("ok", 1), ("missing", 1)]),
            Some("moto: missing".into())
        )
    );
    // Quick sees the right size and stamp: only deep reads the bytes.
    assert_eq!(
        verify(&gw, &bucket, bad, &quick()).await.0,
        expect(&[("ok", 2)])
    );
    assert_eq!(
        verify(&gw, &bucket, bad, &deep()).await,
        (
            expect(&[("ok", 1), ("corrupt", 1)]),
            Some("moto: corrupt".into())
        )
    );
    for key in [gone, bad] {
        verify(&gw, &bucket, key, &repairing(deep())).await;
    }
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    for (key, body) in [(gone, gone_body), (bad, bad_body)] {
        assert_eq!(
            verify(&gw, &bucket, key, &deep()).await.0,
            expect(&[("ok", 2)]),
            "{key} after repair"
        );
        let copy = moto
            .client
            .get_object()
            .bucket(&moto.bucket)
            .key(moto.object(&bucket, key))
            .send()
            .await
            .expect("moto GET");
        let bytes = copy.body.collect().await.expect("moto body").to_vec();
        assert!(bytes == *body, "{key}: repaired bytes on moto");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_replica_the_index_records_as_not_present_is_pending() {
    // W = 1: a write succeeds on disk-a alone and owes disk-b its copy.
    let gw = TestGateway::start_with(Options {
        faults: true,
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n\
             [repair]\nmax_backoff_secs = 1\nanti_entropy_interval_secs = 0\n"
            .to_string(),
        ..Default::default()
    })
    .await;
    let s3 = gw.client();
    let bucket = bucket_name("pending");
    create_bucket(&s3, &bucket).await;
    gw.faults("disk-b").set(FaultPlan::all(Fault::Fail));
    let body = random_bytes(1000);
    put(&s3, &bucket, "k", &body).await;
    for options in [quick(), repairing(deep())] {
        let (counts, problem) = verify(&gw, &bucket, "k", &options).await;
        assert_eq!(counts, expect(&[("ok", 1), ("pending", 1)]));
        assert_eq!(problem.as_deref(), Some("disk-b: pending"));
    }
    gw.faults("disk-b").clear();
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);
    let (counts, _) = verify(&gw, &bucket, "k", &deep()).await;
    assert_eq!(counts, expect(&[("ok", 2)]));
    assert_eq!(
        std::fs::read(file(&gw, 1, &bucket, "k")).expect("read"),
        body
    );
    gw.shutdown().await;
}

/// A figure, not a check: how fast a deep verify reads two local replicas of 32 objects of
/// 4 MiB, one object after another. `cargo test -p hansa-conformance --test verify
/// deep_verify_rate -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn deep_verify_rate() {
    let gw = gateway().await;
    let s3 = gw.client();
    let bucket = bucket_name("rate");
    create_bucket(&s3, &bucket).await;
    let keys: Vec<String> = (0..32).map(|i| format!("o{i:02}")).collect();
    for key in &keys {
        put(&s3, &bucket, key, &random_bytes(4 << 20)).await;
    }
    let started = std::time::Instant::now();
    for key in &keys {
        assert_eq!(
            verify(&gw, &bucket, key, &deep()).await.0,
            expect(&[("ok", 2)])
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let mib = (keys.len() * 2 * 4) as f64;
    println!(
        "deep verify: {mib} MiB of replicas in {secs:.2} s = {:.0} MiB/s",
        mib / secs
    );
    gw.shutdown().await;
}

/// The same checks as a job over the whole index (what `hansa admin verify --deep --repair`
/// starts): its counts sum every replica's finding, its problems name the damaged objects,
/// and with `repair` the worker puts them right.
#[tokio::test]
async fn a_verify_job_reports_damaged_objects_and_repairs_them_on_request() {
    use hansa::meta::{JobSpec, JobState};
    use hansa::store::jobs::{job, start_job};
    let gw = gateway().await;
    let (bucket, objects) = objects(&gw, "job").await;
    let (corrupted, _) = &objects[1];
    let (removed, _) = &objects[2];
    corrupt_in_place(&file(&gw, 1, &bucket, corrupted));
    std::fs::remove_file(file(&gw, 0, &bucket, removed)).expect("remove");

    let run = |deep: bool, repair: bool| {
        let gw = &gw;
        async move {
            let spec = JobSpec::Verify {
                backend: None,
                deep,
                repair,
            };
            let id = start_job(gw.store(), spec).expect("start").id;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let j = job(gw.store(), &id).expect("job");
                if !j.state.is_active() {
                    return j;
                }
                assert!(std::time::Instant::now() < deadline, "verify job: {j:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let count = |j: &hansa::meta::JobRecord, name: &str| j.progress.counts.get(name).copied();
    let replicas = 2 * objects.len() as u64;

    let quick = run(false, false).await;
    assert_eq!(
        quick.progress.objects_done,
        objects.len() as u64,
        "{quick:?}"
    );
    assert_eq!(count(&quick, "missing"), Some(1), "{quick:?}");
    assert_eq!(count(&quick, "ok"), Some(replicas - 1), "{quick:?}");
    let named: Vec<&str> = quick
        .progress
        .problems
        .iter()
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(named, vec![removed.as_str()], "{quick:?}");

    let deep = run(true, true).await;
    assert_eq!(count(&deep, "missing"), Some(1), "{deep:?}");
    assert_eq!(count(&deep, "corrupt"), Some(1), "{deep:?}");
    let mut named: Vec<&str> = deep
        .progress
        .problems
        .iter()
        .map(|p| p.key.as_str())
        .collect();
    named.sort_unstable();
    let mut want = vec![corrupted.as_str(), removed.as_str()];
    want.sort_unstable();
    assert_eq!(named, want, "{deep:?}");
    assert!(gw.wait_for_repairs(Duration::from_secs(30)).await);

    let after = run(true, false).await;
    assert_eq!(after.state, JobState::Done, "{after:?}");
    assert_eq!(count(&after, "ok"), Some(replicas), "{after:?}");
    assert!(after.progress.problems.is_empty(), "{after:?}");
    for (key, body) in &objects {
        assert_eq!(get(&gw.client(), &bucket, key).await, *body, "{key}");
    }
    gw.shutdown().await;
}
