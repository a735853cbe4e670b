//! Placement rules on backend tags, end to end: five local disks tagged with a provider and a
//! jurisdiction, policies with `spread = "provider"` and `require` rules; 1,000 objects written
//! through aws-sdk-s3 land on backends that honour the rules, and their files are on exactly
//! those disks. The `hansa` binary refuses to start with a policy no backends can satisfy, and
//! `hansa explain` shows a key's plan, its reasons and its replicas.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hansa_conformance::{hansa_binary, process_config_from, test_tmp_root, Options, TestGateway};

/// (id, provider, jurisdiction) of the five disks: two ovh disks in the EU, one scaleway in
/// the EU, aws and google in the US.
const DISKS: [(&str, &str, &str); 5] = [
    ("disk-a", "ovh", "eu"),
    ("disk-b", "ovh", "eu"),
    ("disk-c", "scaleway", "eu"),
    ("disk-d", "aws", "us"),
    ("disk-e", "google", "us"),
];

fn tags_line(provider: &str, jurisdiction: &str) -> String {
    format!("tags = {{ provider = \"{provider}\", jurisdiction = \"{jurisdiction}\" }}\n")
}

/// Options for a gateway on the five tagged disks (disk-a and disk-b are the harness's own,
/// the others live under `extra`), with `policies` appended.
fn five_disks(extra: &Path, policies: &str) -> Options {
    let mut toml = String::new();
    for (id, provider, jurisdiction) in &DISKS[2..] {
        toml.push_str(&format!(
            "[[backend]]\nid = \"{id}\"\nkind = \"local\"\npath = {:?}\n{}\n",
            extra.join(id).display().to_string(),
            tags_line(provider, jurisdiction)
        ));
    }
    toml.push_str(policies);
    Options {
        backend_toml: DISKS[..2]
            .iter()
            .map(|(id, p, j)| (id.to_string(), tags_line(p, j)))
            .collect(),
        extra_toml: toml,
        ..Default::default()
    }
}

fn disk_dirs(gw: &TestGateway, extra: &Path) -> BTreeMap<&'static str, PathBuf> {
    let [a, b] = gw.backend_dirs();
    let mut dirs = BTreeMap::from([("disk-a", a), ("disk-b", b)]);
    for (id, _, _) in &DISKS[2..] {
        dirs.insert(id, extra.join(id));
    }
    dirs
}

const POLICIES: &str = r#"
[policy.pairs]
replicas = 2
write_quorum = 2
spread = "provider"
require = [{ jurisdiction = "eu", min = 1 }]

[policy.triples]
replicas = 3
write_quorum = 3
spread = "provider"
require = [{ jurisdiction = "eu" }, { jurisdiction = "us", min = 1 }]

[bucket.pairs]
policy = "pairs"

[bucket.triples]
policy = "triples"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_objects_land_where_the_rules_say() {
    let extra = tempfile::Builder::new()
        .prefix("disks-")
        .tempdir_in(test_tmp_root())
        .expect("temp dir");
    let gw = TestGateway::start_with(five_disks(extra.path(), POLICIES)).await;
    let s3 = gw.client();
    for bucket in ["pairs", "triples"] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
    }
    let keys: Vec<(&str, String)> = (0..1000)
        .map(|i| {
            let bucket = if i % 2 == 0 { "pairs" } else { "triples" };
            (bucket, format!("photos/{i:04}.jpg"))
        })
        .collect();
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(keys.iter().cloned())
        .map(|(bucket, key)| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(format!("the body of {bucket}/{key}").into_bytes().into())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{bucket}/{key}: {e:?}"))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r.expect("PUT");
    }
    eprintln!("1,000 PUTs in {:?}", started.elapsed());

    let tags: HashMap<&str, (&str, &str)> =
        DISKS.iter().map(|(id, p, j)| (*id, (*p, *j))).collect();
    let dirs = disk_dirs(&gw, extra.path());
    let store = gw.store();
    let mut per_disk: HashMap<(&str, String), usize> = HashMap::new();
    for (bucket, key) in &keys {
        let record = store
            .meta
            .object(bucket, key)
            .expect("index read")
            .unwrap_or_else(|| panic!("{bucket}/{key} is not in the index"));
        let holders: Vec<&str> = record.replicas.iter().map(|r| r.backend.as_str()).collect();
        let what = format!("{bucket}/{key} on {holders:?}");
        for r in &record.replicas {
            assert_eq!(
                r.state,
                hansa_conformance::hansa::meta::ReplicaState::Present,
                "{what}"
            );
        }
        // The rules, checked from the tags themselves, not through the placement code.
        let providers: HashSet<&str> = holders.iter().map(|h| tags[h].0).collect();
        assert_eq!(providers.len(), holders.len(), "spread broken: {what}");
        let eu = holders.iter().filter(|h| tags[*h].1 == "eu").count();
        let us = holders.iter().filter(|h| tags[*h].1 == "us").count();
        match *bucket {
            "pairs" => assert!(holders.len() == 2 && eu >= 1, "{what}"),
            _ => assert!(holders.len() == 3 && eu >= 1 && us >= 1, "{what}"),
        }
        // Exactly the planned targets hold it (the write quorum is every replica).
        let mut planned = store.placement().write_plan(bucket, key).targets;
        planned.sort();
        let mut sorted = holders.clone();
        sorted.sort();
        assert_eq!(sorted, planned, "{what}");
        // The file is on exactly those disks.
        let name = &record.replicas[0].name;
        assert_eq!(name, &format!("{bucket}/{key}"), "a plain name");
        for (id, dir) in &dirs {
            let exists = dir.join(name).is_file();
            assert_eq!(
                exists,
                holders.contains(id),
                "{what}: file on {id}: {exists}"
            );
            if exists {
                *per_disk.entry((id, bucket.to_string())).or_default() += 1;
            }
        }
    }
    // Keys spread over every disk the rules allow (each pairs disk gets roughly 2/5 of 500).
    for (id, _, _) in DISKS {
        let n = per_disk
            .get(&(id, "pairs".to_string()))
            .copied()
            .unwrap_or(0);
        assert!((100..=320).contains(&n), "pairs on {id}: {n}: {per_disk:?}");
    }
    // A few reads come back whole.
    for (bucket, key) in keys.iter().step_by(97) {
        let body = hansa_conformance::get(&s3, bucket, key).await;
        assert_eq!(body, format!("the body of {bucket}/{key}").into_bytes());
    }
    gw.shutdown().await;
}

/// Runs the `hansa` binary with `args` to its end (at most 30 s).
fn run_hansa(args: &[&str]) -> Output {
    let mut child = Command::new(hansa_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hansa");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait().expect("wait for hansa") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("hansa {args:?} did not exit within 30 s");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    child.wait_with_output().expect("hansa output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn serve_refuses_a_policy_no_backends_can_satisfy() {
    let dir = tempfile::Builder::new()
        .prefix("refuse-")
        .tempdir_in(test_tmp_root())
        .expect("temp dir");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let options = Options {
        backend_toml: vec![
            ("disk-a".into(), tags_line("ovh", "eu")),
            ("disk-b".into(), tags_line("aws", "us")),
        ],
        extra_toml:
            "[policy.eu-twice]\nreplicas = 2\nrequire = [{ jurisdiction = \"eu\", min = 2 }]\n"
                .into(),
        ..Default::default()
    };
    let config = dir.path().join("hansa.toml");
    std::fs::write(&config, process_config_from(dir.path(), listen, &options))
        .expect("write config");
    let config = config.display().to_string();
    let out = run_hansa(&["serve", "--config", &config]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "hansa serve started: {stderr}");
    assert!(
        stderr.contains(
            "policy.eu-twice.require: policy \"eu-twice\": require jurisdiction=eu min 2, \
             but only 1 member backend (disk-a) has jurisdiction=eu"
        ),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "nothing listens"
    );
    // `hansa explain` refuses the same configuration.
    let out = run_hansa(&["explain", "--config", &config, "b", "k"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("require jurisdiction=eu min 2"));
}

/// One gateway policy with a spread conflict to explain: three disks, two of them ovh.
const EXPLAINED: &str = r#"
[policy.default]
backends = ["disk-a", "disk-b", "disk-c", "disk-d"]
replicas = 2
write_quorum = 2
spread = "provider"
require = [{ jurisdiction = "eu", min = 1 }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_plan_its_reasons_and_the_replicas() {
    let extra = tempfile::Builder::new()
        .prefix("disks-")
        .tempdir_in(test_tmp_root())
        .expect("temp dir");
    let mut gw = TestGateway::start_with(five_disks(extra.path(), EXPLAINED)).await;
    let config = gw.dir.path().join("explain.toml");
    std::fs::write(&config, gw.config_toml()).expect("write config");
    let config = config.display().to_string();
    // A key whose two best-ranked backends are both ovh: the plan skips the second.
    let placement = gw.store().placement();
    let key = (0..1000)
        .map(|i| format!("reports/{i}.pdf"))
        .find(|k| {
            placement.explain_write("docs", k).backends.iter().any(|b| {
                matches!(
                    b.verdict,
                    hansa_conformance::hansa::placement::Verdict::SpreadConflict { .. }
                )
            })
        })
        .expect("a key with a spread conflict");
    let plan = placement.explain_write("docs", &key);
    hansa_conformance::create_bucket(&gw.client(), "docs").await;
    hansa_conformance::put(&gw.client(), "docs", &key, b"quarterly numbers").await;

    // While the gateway runs, it holds the index: the plan is shown all the same.
    let out = run_hansa(&["explain", "--config", &config, "docs", &key]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&plan.to_string()),
        "{stdout}\n---\n{plan}"
    );
    assert!(
        stdout.contains("current replicas: cannot be shown while the gateway holds the index"),
        "{stdout}"
    );

    // Stopped: the replicas are read from the index.
    let record = gw
        .store()
        .meta
        .object("docs", &key)
        .expect("index")
        .expect("the key");
    if let Some(running) = gw.running.take() {
        running.shutdown(Duration::from_secs(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let stdout = loop {
        let out = run_hansa(&["explain", "--config", &config, "docs", &key]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        if !stdout.contains("cannot be shown") {
            break stdout;
        }
        // The index is released once the last task of the stopped gateway lets go.
        assert!(
            Instant::now() < deadline,
            "the index stays locked: {stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stdout.starts_with(&plan.to_string()), "{stdout}");
    for expected in [
        "rules: spread on provider; require jurisdiction=eu min 1",
        "skipped: spread on provider: provider=ovh is already taken by",
        "not a member: not in the policy's backends",
        "target, counts towards require jurisdiction=eu min 1",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "current version {}: 17 bytes, etag \"{}\", 2 replicas",
            record.version_id, record.etag
        )),
        "{stdout}"
    );
    let current = &stdout[stdout.find("current version ").expect("a current version")..];
    for replica in &record.replicas {
        assert!(plan.targets.contains(&replica.backend));
        let line = current
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(replica.backend.as_str()))
            .unwrap_or_else(|| panic!("no line for {}:\n{stdout}", replica.backend));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            ["Present", replica.backend.as_str(), &format!("docs/{key}")],
            "{stdout}"
        );
    }

    // A key that does not exist, and a bucket that does not.
    let out = run_hansa(&["explain", "--config", &config, "docs", "no/such/key"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("targets: "), "{stdout}");
    assert!(
        stdout.contains(
            "current version: none: the index holds no key \"no/such/key\" in bucket \"docs\""
        ),
        "{stdout}"
    );
    let out = run_hansa(&["explain", "--config", &config, "nobucket", "k"]);
    assert!(
        text(&out.stdout).contains("the index holds no bucket \"nobucket\""),
        "{}",
        text(&out.stdout)
    );
}

/// Writes under failure: disk-a is the only EU backend of a policy that requires one EU copy
/// with W = 1. With the US disk down, writes succeed on disk-a (the US replica pending); with
/// disk-a down, the rule cannot be met and writes are refused with an error naming it, the
/// previous version untouched, never silently placed on the US disk alone.
#[tokio::test]
async fn a_write_that_cannot_meet_a_rule_is_refused() {
    let gw = TestGateway::start_with(Options {
        faults: true,
        backend_toml: vec![
            ("disk-a".into(), tags_line("ovh", "eu")),
            ("disk-b".into(), tags_line("aws", "us")),
        ],
        extra_toml: "[policy.default]\nreplicas = 2\nwrite_quorum = 1\n\
                     require = [{ jurisdiction = \"eu\" }]\n"
            .into(),
        ..Default::default()
    })
    .await;
    let s3 = gw.client();
    let bucket = hansa_conformance::bucket_name("rules-down");
    hansa_conformance::create_bucket(&s3, &bucket).await;
    hansa_conformance::put(&s3, &bucket, "k", b"v0").await;

    let all_fail = hansa_backends::FaultPlan::all(hansa_backends::Fault::Fail);
    gw.faults("disk-b").set(all_fail);
    hansa_conformance::put(&s3, &bucket, "k", b"v1 with the US disk down").await;
    let states = gw.replica_states(&bucket, "k");
    assert!(
        states.contains(&("disk-b".to_string(), hansa::meta::ReplicaState::Pending)),
        "{states:?}"
    );
    gw.faults("disk-b").clear();

    gw.faults("disk-a").set(all_fail);
    let refused = s3
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(b"v2 with the EU disk down".to_vec().into())
        .send()
        .await;
    let err = hansa_conformance::s3_err(&refused.expect_err("the rule cannot be met"));
    assert_eq!(err.status, 503, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("ServiceUnavailable"), "{err:?}");
    let message = err.message.unwrap_or_default();
    assert!(message.contains("jurisdiction=eu"), "{message}");
    gw.faults("disk-a").clear();
    assert_eq!(
        hansa_conformance::get(&s3, &bucket, "k").await,
        b"v1 with the US disk down"
    );
    gw.shutdown().await;
}
