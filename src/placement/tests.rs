//! Placement: rendezvous hashing, the tag rules (every plan of many keys checked), the exact
//! search against brute force, the start-up refusals, unmet rules and read orders.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::rules::{Requirement, Spread, TagMatch, Tags};
use super::select::{self, Candidate, Constraints, Pick};
use super::*;

fn placement(toml: &str) -> Placement {
    Placement::from_config(&Config::from_toml("t.toml", toml).expect("valid configuration"))
}

fn config_error(toml: &str) -> String {
    match Config::from_toml("t.toml", toml) {
        Ok(_) => panic!("configuration accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

const THREE: &str = "[[backend]]\nid = \"a\"\nkind = \"memory\"\n[[backend]]\nid = \"b\"\nkind = \"memory\"\n[[backend]]\nid = \"c\"\nkind = \"memory\"\n";

/// Five backends over four providers, three in the EU:
/// ovh-1, ovh-2 (ovh, eu), scw (scaleway, eu), aws (aws, us), gcp (google, us).
const FIVE: &str = r#"
[[backend]]
id = "ovh-1"
kind = "memory"
tags = { provider = "ovh", jurisdiction = "eu" }
[[backend]]
id = "ovh-2"
kind = "memory"
tags = { provider = "ovh", jurisdiction = "eu" }
[[backend]]
id = "scw"
kind = "memory"
tags = { provider = "scaleway", jurisdiction = "eu" }
[[backend]]
id = "aws"
kind = "memory"
tags = { provider = "aws", jurisdiction = "us" }
[[backend]]
id = "gcp"
kind = "memory"
tags = { provider = "google", jurisdiction = "us" }
"#;

fn five_with(policies: &str) -> Placement {
    placement(&format!("{FIVE}{policies}"))
}

fn tags_of(p: &Placement, id: &str) -> Tags {
    p.tags(id).clone()
}

#[test]
fn default_policy_writes_everywhere() {
    let p = placement(THREE);
    let plan = p.write_plan("bkt", "k");
    assert_eq!(plan.targets.len(), 3);
    assert_eq!(plan.write_quorum, 3);
}

#[test]
fn fewer_replicas_spread_keys_over_members() {
    let p = placement(&format!(
        "{THREE}[policy.two]\nreplicas = 2\nwrite_quorum = 1\n[bucket.bkt]\npolicy = \"two\"\n"
    ));
    let mut counts = HashMap::new();
    for i in 0..300 {
        let plan = p.write_plan("bkt", &format!("key{i}"));
        assert_eq!(plan.targets.len(), 2);
        assert_eq!(plan.write_quorum, 1);
        assert_ne!(plan.targets[0], plan.targets[1]);
        assert_eq!(
            plan.targets,
            p.write_plan("bkt", &format!("key{i}")).targets
        );
        for t in plan.targets {
            *counts.entry(t).or_insert(0) += 1;
        }
    }
    // Each of the three backends gets roughly 2/3 of 300 keys.
    for (_, n) in counts {
        assert!((150..250).contains(&n), "{n}");
    }
}

/// Policies without rules place exactly as before the rules existed (the lowest hashes of
/// (id, bucket, key)): data already written stays where the index expects new versions.
#[test]
fn without_rules_the_best_ranked_members_are_the_targets() {
    let p = five_with("[policy.default]\nreplicas = 2\n");
    for i in 0..200 {
        let key = format!("k{i}");
        let mut hashed: Vec<(Vec<u8>, &str)> = ["ovh-1", "ovh-2", "scw", "aws", "gcp"]
            .iter()
            .map(|id| {
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                h.update([0]);
                h.update(b"bkt");
                h.update([0]);
                h.update(key.as_bytes());
                (h.finalize().to_vec(), *id)
            })
            .collect();
        hashed.sort();
        let expected: Vec<&str> = hashed.iter().take(2).map(|(_, id)| *id).collect();
        assert_eq!(p.write_plan("bkt", &key).targets, expected, "{key}");
    }
}

/// Checks one plan against the rules: distinct providers, at least `eu_min` EU replicas.
fn assert_honours(p: &Placement, targets: &[String], replicas: usize, eu_min: usize, what: &str) {
    assert_eq!(targets.len(), replicas, "{what}: {targets:?}");
    let providers: HashSet<String> = targets
        .iter()
        .map(|t| tags_of(p, t)["provider"].clone())
        .collect();
    assert_eq!(
        providers.len(),
        replicas,
        "{what}: spread broken: {targets:?}"
    );
    let eu = targets
        .iter()
        .filter(|t| tags_of(p, t)["jurisdiction"] == "eu")
        .count();
    assert!(eu >= eu_min, "{what}: {eu} EU replicas: {targets:?}");
}

#[test]
fn spread_and_require_hold_for_every_key_and_keys_spread_evenly() {
    let p = five_with(
        r#"
[policy.two]
replicas = 2
write_quorum = 1
spread = "provider"
require = [{ jurisdiction = "eu" }]
[policy.three]
replicas = 3
write_quorum = 2
spread = "provider"
require = [{ jurisdiction = "eu", min = 2 }]
[bucket.pairs]
policy = "two"
[bucket.triples]
policy = "three"
"#,
    );
    // A second placement from the same configuration: plans depend on nothing but it.
    let again = five_with(
        r#"
[policy.two]
replicas = 2
spread = "provider"
require = [{ jurisdiction = "eu", min = 1 }]
[bucket.pairs]
policy = "two"
"#,
    );
    let mut pairs: HashMap<String, usize> = HashMap::new();
    let mut triples: HashMap<String, usize> = HashMap::new();
    for i in 0..1000 {
        let key = format!("photos/{i:04}.jpg");
        let plan = p.write_plan("pairs", &key);
        assert_honours(&p, &plan.targets, 2, 1, &key);
        assert_eq!(plan.write_quorum, 1);
        assert_eq!(plan.targets, p.write_plan("pairs", &key).targets, "stable");
        assert_eq!(
            plan.targets,
            again.write_plan("pairs", &key).targets,
            "stable"
        );
        for t in plan.targets {
            *pairs.entry(t).or_default() += 1;
        }
        let plan = p.write_plan("triples", &key);
        assert_honours(&p, &plan.targets, 3, 2, &key);
        assert_eq!(plan.write_quorum, 2);
        for t in plan.targets {
            *triples.entry(t).or_default() += 1;
        }
    }
    // Pairs: 2,000 replicas over five backends, 400 each on average; the rules forbid two
    // ovh or two US copies, which shifts some weight to scw.
    assert_eq!(pairs.len(), 5, "{pairs:?}");
    for (id, n) in &pairs {
        assert!((250..=600).contains(n), "{id}: {n} of 2000: {pairs:?}");
    }
    // Triples: two EU providers with spread means scw always and one ovh backend; the third
    // copy goes to one of the US providers. Both halves split evenly.
    assert_eq!(triples["scw"], 1000, "{triples:?}");
    for id in ["ovh-1", "ovh-2", "aws", "gcp"] {
        assert!(
            (400..=600).contains(&triples[id]),
            "{id}: {} of 1000: {triples:?}",
            triples[id]
        );
    }
    assert_eq!(triples["ovh-1"] + triples["ovh-2"], 1000);
    assert_eq!(triples["aws"] + triples["gcp"], 1000);
}

#[test]
fn only_restricts_members_and_replicas_default_to_them() {
    let p = five_with(
        "[policy.eu]\nonly = { jurisdiction = \"eu\" }\nspread = \"provider\"\nreplicas = 2\n\
         [policy.all-eu]\nonly = { jurisdiction = \"eu\" }\n\
         [bucket.x]\npolicy = \"eu\"\n[bucket.y]\npolicy = \"all-eu\"\n",
    );
    assert_eq!(p.policy("x").members, ["ovh-1", "ovh-2", "scw"]);
    for i in 0..300 {
        let plan = p.write_plan("x", &format!("k{i}"));
        assert_eq!(plan.targets.len(), 2);
        assert!(plan.targets.contains(&"scw".to_string()), "{plan:?}");
        for t in &plan.targets {
            assert_eq!(tags_of(&p, t)["jurisdiction"], "eu");
        }
    }
    // Without `replicas`, every member the rule admits.
    let plan = p.write_plan("y", "k");
    assert_eq!(plan.targets.len(), 3);
    assert_eq!(plan.write_quorum, 3);
}

#[test]
fn a_backend_without_the_spread_tag_conflicts_with_nobody() {
    let p = placement(
        r#"
[[backend]]
id = "disk-a"
kind = "memory"
[[backend]]
id = "disk-b"
kind = "memory"
[[backend]]
id = "ovh"
kind = "memory"
tags = { provider = "ovh" }
[policy.default]
replicas = 3
spread = "provider"
"#,
    );
    let plan = p.write_plan("b", "k");
    let mut targets = plan.targets.clone();
    targets.sort();
    assert_eq!(targets, ["disk-a", "disk-b", "ovh"]);
}

/// The exact search: on random small instances, `feasible` agrees with trying every subset,
/// and `select` takes the first feasible subset in rank order (lexicographically smallest).
#[test]
fn the_search_is_exact_against_brute_force() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let providers = ["p", "q", "r", "s"];
    let places = ["eu", "us", "ch"];
    let mut feasible_seen = 0;
    let mut infeasible_seen = 0;
    for round in 0..3000 {
        let n = rng.gen_range(1..=8);
        let tags: Vec<Tags> = (0..n)
            .map(|_| {
                let mut t = Tags::new();
                // Some backends lack a tag: they count as a spread value of their own.
                if rng.gen_bool(0.85) {
                    t.insert("provider".into(), providers[rng.gen_range(0..4)].into());
                }
                t.insert("jurisdiction".into(), places[rng.gen_range(0..3)].into());
                t
            })
            .collect();
        let ids: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let candidates: Vec<Candidate<'_>> = ids
            .iter()
            .zip(&tags)
            .map(|(id, tags)| Candidate { id, tags })
            .collect();
        let replicas = rng.gen_range(1..=n);
        let spread = rng
            .gen_bool(0.7)
            .then(|| Spread::new("provider").expect("tag"));
        let require: Vec<Requirement> = (0..rng.gen_range(0..=2))
            .map(|_| Requirement {
                tags: TagMatch::new(BTreeMap::from([(
                    "jurisdiction".to_string(),
                    places[rng.gen_range(0..3)].to_string(),
                )]))
                .expect("pairs"),
                min: rng.gen_range(1..=replicas),
            })
            .collect();
        let c = Constraints {
            replicas,
            spread: spread.as_ref(),
            require: &require,
        };
        let ok = |set: &[usize]| {
            let values: Vec<&str> = set
                .iter()
                .filter_map(|&i| spread.as_ref().and_then(|s| s.value_of(&tags[i])))
                .collect();
            let distinct: HashSet<&&str> = values.iter().collect();
            distinct.len() == values.len()
                && require
                    .iter()
                    .all(|r| set.iter().filter(|&&i| r.tags.matches(&tags[i])).count() >= r.min)
        };
        let first = combinations(n, replicas).into_iter().find(|s| ok(s));
        assert_eq!(
            select::feasible(&candidates, c),
            first.is_some(),
            "round {round}: {tags:?} replicas {replicas} {spread:?} {require:?}"
        );
        let selection = select::select(&candidates, c);
        match first {
            Some(best) => {
                feasible_seen += 1;
                assert!(selection.rules_met);
                let chosen: Vec<usize> = selection.chosen().collect();
                assert_eq!(chosen, best, "round {round}: {tags:?} {require:?}");
            }
            None => {
                infeasible_seen += 1;
                assert!(!selection.rules_met);
            }
        }
    }
    assert!(
        feasible_seen > 500 && infeasible_seen > 200,
        "{feasible_seen} {infeasible_seen}"
    );
}

/// Every `k`-subset of `0..n`, in lexicographic order.
fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    go(0, n, k, &mut Vec::new(), &mut out);
    out
}

#[test]
fn impossible_policies_are_refused_naming_the_rule() {
    // `require` more EU replicas than EU backends.
    let e = config_error(
        r#"
[[backend]]
id = "disk-a"
kind = "memory"
tags = { jurisdiction = "eu" }
[[backend]]
id = "aws"
kind = "memory"
tags = { jurisdiction = "us" }
[policy.eu-only]
replicas = 2
require = [{ jurisdiction = "eu", min = 2 }]
"#,
    );
    assert_eq!(
        e,
        "t.toml: policy.eu-only.require: policy \"eu-only\": require jurisdiction=eu min 2, \
         but only 1 member backend (disk-a) has jurisdiction=eu"
    );
    let cases: &[(&str, &str)] = &[
        // More replicas than `only` leaves.
        (
            "[policy.p]\nonly = { jurisdiction = \"eu\" }\nreplicas = 4\n",
            "policy.p.replicas: policy \"p\": replicas 4, but only jurisdiction=eu leaves 3 member backends (ovh-1, ovh-2, scw)",
        ),
        (
            "[policy.p]\nonly = { jurisdiction = \"ch\" }\n",
            "policy.p.only: policy \"p\": only jurisdiction=ch matches none of its backends (ovh-1, ovh-2, scw, aws, gcp)",
        ),
        (
            "[policy.p]\nbackends = [\"ovh-1\", \"aws\"]\nreplicas = 3\n",
            "policy.p.replicas: policy \"p\": replicas 3, but the policy has 2 member backends (ovh-1, aws)",
        ),
        // Fewer distinct providers than replicas.
        (
            "[policy.p]\nbackends = [\"ovh-1\", \"ovh-2\", \"scw\"]\nreplicas = 3\nspread = \"provider\"\n",
            "policy.p.spread: policy \"p\": spread on provider needs 3 distinct provider values for 3 replicas, but the member backends have only 2 (ovh: ovh-1, ovh-2; scaleway: scw)",
        ),
        (
            "[policy.p]\nreplicas = 2\nwrite_quorum = 3\n",
            "policy.p.write_quorum: policy \"p\": write_quorum 3 must be between 1 and replicas (2)",
        ),
        (
            "[policy.p]\nbackends = [\"ovh-1\", \"nowhere\"]\n",
            "policy.p.backends: policy \"p\": backends names unknown backend \"nowhere\"",
        ),
        (
            "[policy.p]\nread_order = [\"aws\", \"elsewhere\"]\n",
            "policy.p.read_order: policy \"p\": read_order names unknown backend \"elsewhere\"",
        ),
        (
            "[policy.p]\nreplicas = 2\nrequire = [{ jurisdiction = \"eu\", min = 3 }]\n",
            "policy.p.require: policy \"p\": require jurisdiction=eu min 3, but replicas is 2",
        ),
        // Both EU backends of the list share one provider.
        (
            "[policy.p]\nbackends = [\"ovh-1\", \"ovh-2\", \"aws\", \"gcp\"]\nreplicas = 3\n\
             spread = \"provider\"\nrequire = [{ jurisdiction = \"eu\", min = 2 }]\n",
            "policy.p.require: policy \"p\": require jurisdiction=eu min 2 with spread on provider, but the member backends with jurisdiction=eu (ovh-1, ovh-2) share one provider (ovh)",
        ),
        // Each rule can be met alone, not all together in two replicas.
        (
            "[policy.p]\nreplicas = 2\nrequire = [{ jurisdiction = \"eu\", min = 2 }, { jurisdiction = \"us\" }]\n",
            "policy.p.require: policy \"p\": no 2 of its member backends (ovh-1, ovh-2, scw, aws, gcp) meet all rules together (require jurisdiction=eu min 2; require jurisdiction=us min 1)",
        ),
        (
            "[policy.p]\nbackends = [\"ovh-1\", \"ovh-1\"]\n",
            "policy.p.backends: policy \"p\": backend \"ovh-1\" is listed twice",
        ),
    ];
    for (policy, expected) in cases {
        let e = config_error(&format!("{FIVE}{policy}"));
        assert_eq!(e, format!("t.toml: {expected}"), "{policy}");
    }
}

#[test]
fn rule_syntax_is_checked_and_old_configs_stay_valid() {
    let p = five_with(
        "[policy.default]\nread_order = [\"scw\", \"aws\"]\n[policy.fast]\nread_order = \"latency\"\n",
    );
    assert_eq!(
        p.policy("x").read_order,
        ReadOrder::Listed(vec!["scw".into(), "aws".into()])
    );
    assert_eq!(p.policies["fast"].read_order, ReadOrder::Latency);
    for (policy, needle) in [
        ("read_order = \"fastest\"", "unknown read order \"fastest\""),
        ("read_order = 3", "a list of backend ids or \"latency\""),
        (
            "require = [{ jurisdiction = \"eu\", min = 0 }]",
            "min must be at least 1",
        ),
        ("require = [{ min = 1 }]", "at least one tag pair"),
        ("only = {}", "at least one tag pair"),
        ("spread = \"\"", "needs a tag name"),
        ("spread = [\"provider\"]", "spread"),
        ("require = [{ jurisdiction = 1 }]", "require"),
        ("prefer = \"eu\"", "prefer"),
    ] {
        let e = config_error(&format!("{FIVE}[policy.p]\n{policy}\n"));
        assert!(e.contains(needle), "{policy}: {e}");
    }
    // A policy that is tight but possible is accepted: three EU backends over two providers,
    // two EU copies with spread, and one more anywhere.
    five_with(
        "[policy.p]\nreplicas = 3\nspread = \"provider\"\n\
         require = [{ jurisdiction = \"eu\", min = 2 }, { jurisdiction = \"us\" }]\n",
    );
}

#[test]
fn unmet_rule_names_the_first_rule_the_holders_fail() {
    let p = five_with(
        "[policy.default]\nreplicas = 3\nwrite_quorum = 1\n\
         require = [{ jurisdiction = \"eu\" }, { provider = \"ovh\", jurisdiction = \"eu\", min = 2 }]\n\
         [policy.free]\nreplicas = 2\n[bucket.loose]\npolicy = \"free\"\n",
    );
    assert_eq!(
        p.unmet_rule("b", &["aws"]).as_deref(),
        Some(
            "policy \"default\": require jurisdiction=eu min 1 is not met: the write is held by \
             aws, none of which has jurisdiction=eu"
        )
    );
    assert_eq!(
        p.unmet_rule("b", &["aws", "ovh-1", "scw"]).as_deref(),
        Some(
            "policy \"default\": require jurisdiction=eu,provider=ovh min 2 is not met: the \
             write is held by aws, ovh-1, scw, of which only 1 (ovh-1) has \
             jurisdiction=eu,provider=ovh"
        )
    );
    // The same backend named twice counts once.
    assert!(p.unmet_rule("b", &["ovh-1", "ovh-1"]).is_some());
    assert_eq!(p.unmet_rule("b", &["ovh-1", "ovh-2"]), None);
    assert_eq!(
        p.unmet_rule("b", &[]).as_deref(),
        Some("policy \"default\": require jurisdiction=eu min 1 is not met: no backend holds the write")
    );
    // A backend the configuration does not know matches no rule.
    assert!(p.unmet_rule("b", &["gone"]).is_some());
    // No rules, nothing to miss.
    assert_eq!(p.unmet_rule("loose", &["aws"]), None);
}

fn replica(backend: &str, state: ReplicaState) -> Replica {
    Replica {
        etag: "e".into(),
        ..Replica::new(backend, "n", state)
    }
}

#[test]
fn read_order_prefers_policy_order_and_skips_pending() {
    let p = placement(&format!("{THREE}[policy.default]\nread_order = [\"c\"]\n"));
    let replicas = [
        replica("a", ReplicaState::Present),
        replica("b", ReplicaState::Pending),
        replica("c", ReplicaState::Present),
    ];
    let order: Vec<_> = p
        .read_order("x", &replicas, &|_| Some(Duration::from_millis(1)))
        .iter()
        .map(|r| r.backend.as_str())
        .collect();
    assert_eq!(order, ["c", "a"], "a listed order ignores latency");
}

#[test]
fn latency_read_order_is_fastest_first_unknown_last() {
    let p = five_with("[policy.default]\nread_order = \"latency\"\n");
    let replicas = [
        replica("gcp", ReplicaState::Present),
        replica("ovh-1", ReplicaState::Present),
        replica("aws", ReplicaState::Present),
        replica("scw", ReplicaState::Pending),
        replica("ovh-2", ReplicaState::Present),
    ];
    let measured: HashMap<&str, Duration> = [
        ("ovh-1", Duration::from_millis(30)),
        ("aws", Duration::from_millis(5)),
        ("ovh-2", Duration::from_millis(5)),
        ("scw", Duration::from_millis(1)),
    ]
    .into();
    let order: Vec<&str> = p
        .read_order("b", &replicas, &|id| measured.get(id).copied())
        .iter()
        .map(|r| r.backend.as_str())
        .collect();
    // Ties (aws, ovh-2) keep the recorded order; gcp has no measurement; scw is pending.
    assert_eq!(order, ["aws", "ovh-2", "ovh-1", "gcp"]);
    // Without any measurement: as recorded.
    let order: Vec<&str> = p
        .read_order("b", &replicas, &|_| None)
        .iter()
        .map(|r| r.backend.as_str())
        .collect();
    assert_eq!(order, ["gcp", "ovh-1", "aws", "ovh-2"]);
}

#[test]
fn explanation_gives_every_backend_its_reason() {
    let p = placement(&format!(
        "{FIVE}[[backend]]\nid = \"spare\"\nkind = \"memory\"\n\
         [policy.eu]\nbackends = [\"ovh-1\", \"ovh-2\", \"scw\", \"aws\", \"gcp\"]\n\
         only = {{ jurisdiction = \"eu\" }}\nreplicas = 2\nwrite_quorum = 1\nspread = \"provider\"\n\
         [policy.default]\nreplicas = 2\nspread = \"provider\"\n\
         require = [{{ jurisdiction = \"eu\" }}]\n[bucket.eu]\npolicy = \"eu\"\n"
    ));
    let mut conflicts = 0;
    let mut require_skips = 0;
    for i in 0..200 {
        let key = format!("k{i}");
        let x = p.explain_write("eu", &key);
        assert_eq!(x.targets, p.write_plan("eu", &key).targets);
        assert_eq!(
            (x.policy.as_str(), x.replicas, x.write_quorum),
            ("eu", 2, 1)
        );
        assert_eq!(x.rules, ["only jurisdiction=eu", "spread on provider"]);
        assert!(x.rules_met);
        let by_id: HashMap<&str, &BackendVerdict> =
            x.backends.iter().map(|b| (b.backend.as_str(), b)).collect();
        assert_eq!(by_id.len(), 6);
        for us in ["aws", "gcp"] {
            assert_eq!(
                by_id[us].verdict,
                Verdict::ExcludedByOnly {
                    only: "jurisdiction=eu".into()
                }
            );
            assert_eq!(by_id[us].rank, None);
        }
        assert_eq!(by_id["spare"].verdict, Verdict::NotListed);
        let ranks: Vec<Option<usize>> = x.backends.iter().take(3).map(|b| b.rank).collect();
        assert_eq!(ranks, [Some(1), Some(2), Some(3)]);
        let text = x.to_string();
        assert!(
            text.contains("policy \"eu\", 2 replicas, write quorum 1"),
            "{text}"
        );
        for b in &x.backends {
            if let Verdict::SpreadConflict { tag, value, with } = &b.verdict {
                conflicts += 1;
                assert_eq!((tag.as_str(), value.as_str()), ("provider", "ovh"));
                assert!(x.targets.contains(with));
                assert!(
                    text.contains("skipped: spread on provider: provider=ovh is already taken by"),
                    "{text}"
                );
            }
        }
        // The default policy: a key whose two best-ranked backends are both in the US must
        // skip the second for the EU rule.
        let x = p.explain_write("other", &key);
        for b in &x.backends {
            if let Verdict::WouldMissRequire { rule } = &b.verdict {
                require_skips += 1;
                assert_eq!(rule.as_deref(), Some("require jurisdiction=eu min 1"));
                assert!(x.to_string().contains(
                    "skipped: taking it would leave require jurisdiction=eu min 1 unmet"
                ));
            }
            if let Verdict::Target { counts_towards } = &b.verdict {
                let eu = b.tags.get("jurisdiction").map(String::as_str) == Some("eu");
                assert_eq!(!counts_towards.is_empty(), eu);
            }
        }
    }
    assert!(conflicts > 20, "{conflicts}");
    assert!(require_skips > 5, "{require_skips}");
}

#[test]
fn targets_when_rules_cannot_be_met_follow_rank() {
    // A configuration built without validation (as `Config::embedded` is) with an impossible
    // rule still gets a plan: the best-ranked members.
    let mut config = Config::from_toml("t.toml", FIVE).expect("valid");
    let policy: crate::config::PolicyConfig =
        toml::from_str("replicas = 2\nrequire = [{ jurisdiction = \"ch\" }]\n").expect("policy");
    config.policies.insert("default".into(), policy);
    let p = Placement::from_config(&config);
    let x = p.explain_write("b", "k");
    assert!(!x.rules_met);
    assert_eq!(x.targets.len(), 2);
    assert_eq!(
        x.targets,
        x.backends
            .iter()
            .take(2)
            .map(|b| b.backend.clone())
            .collect::<Vec<_>>()
    );
    assert!(x.to_string().contains("warning: no set of member backends"));
}

#[test]
fn the_search_skips_conflicts_in_rank_order() {
    let t = |p: &str| Tags::from([("provider".to_string(), p.to_string())]);
    let tags = [t("x"), t("x"), t("y")];
    let ids = ["one", "two", "three"];
    let candidates: Vec<Candidate<'_>> = ids
        .iter()
        .zip(&tags)
        .map(|(id, tags)| Candidate { id, tags })
        .collect();
    let spread = Spread::new("provider").expect("tag");
    let s = select::select(
        &candidates,
        Constraints {
            replicas: 2,
            spread: Some(&spread),
            require: &[],
        },
    );
    assert_eq!(
        s.picks,
        [
            Pick::Chosen {
                counts_towards: vec![]
            },
            Pick::SpreadConflict {
                value: "x".into(),
                with: "one".into()
            },
            Pick::Chosen {
                counts_towards: vec![]
            },
        ]
    );
}

fn excluded(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn excluding_a_backend_moves_only_the_keys_it_held() {
    let p = placement(&format!(
        "{THREE}[policy.two]\nreplicas = 2\nwrite_quorum = 1\n[bucket.bkt]\npolicy = \"two\"\n"
    ));
    let without_b = excluded(&["b"]);
    for i in 0..300 {
        let key = format!("key{i}");
        let before = p.write_plan("bkt", &key).targets;
        let after = p.write_plan_excluding("bkt", &key, &without_b);
        assert_eq!(after.write_quorum, 1);
        assert_eq!(after.targets.len(), 2, "{key}: {:?}", after.targets);
        assert!(!after.targets.contains(&"b".to_string()), "{key}");
        if !before.contains(&"b".to_string()) {
            assert_eq!(after.targets, before, "{key} moved without holding b");
        }
    }
    // Nothing excluded (or only backends outside the policy): the plain plan.
    for set in [excluded(&[]), excluded(&["elsewhere"])] {
        assert_eq!(
            p.write_plan_excluding("bkt", "k", &set).targets,
            p.write_plan("bkt", "k").targets
        );
    }
}

#[test]
fn excluding_below_the_replica_count_leaves_a_short_plan() {
    let p = placement(THREE);
    let plan = p.write_plan_excluding("bkt", "k", &excluded(&["c"]));
    assert_eq!(plan.targets.len(), 2);
    assert!(!plan.targets.contains(&"c".to_string()));
    assert_eq!(plan.write_quorum, 3);
}

#[test]
fn excluding_keeps_the_rules_while_they_can_hold() {
    // Two EU replicas of three; without ovh-1 two EU backends remain (ovh-2, scw): still met.
    let p = five_with(
        "[policy.eu]\nreplicas = 3\nrequire = [{ jurisdiction = \"eu\", min = 2 }]\n[bucket.bkt]\npolicy = \"eu\"\n",
    );
    let without = excluded(&["ovh-1"]);
    for i in 0..200 {
        let key = format!("key{i}");
        let plan = p.write_plan_excluding("bkt", &key, &without);
        assert_eq!(plan.targets.len(), 3, "{key}");
        assert!(!plan.targets.contains(&"ovh-1".to_string()));
        let holders: Vec<&str> = plan.targets.iter().map(String::as_str).collect();
        assert_eq!(p.unmet_rule("bkt", &holders), None, "{key}: {holders:?}");
    }
}
