//! Placement policy: which backends take a write, how many must confirm it, and in what order
//! reads try the replicas.
//!
//! A policy's members are its `backends` (every backend when absent) that its `only` rule
//! admits. For each key the members are ranked by rendezvous hashing (stable per key, even
//! over keys); the targets are the first set in rank order that honours `spread` and every
//! `require` ([`select`]). The configuration refuses a policy no set of members can satisfy
//! ([`check`]), so a plan always exists for a validated configuration.

pub mod check;
mod explain;
pub mod rules;
mod select;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Config, DEFAULT_POLICY};
use crate::meta::{Replica, ReplicaState};
pub(crate) use explain::column_width;
pub use explain::{BackendVerdict, Verdict, WriteExplanation};
use rules::{ReadOrder, Rules, Tags};
use select::{Candidate, Constraints, Pick, Selection};

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// The backends the policy lists (its `backends`, or every backend), in configured order.
    pub listed: Vec<String>,
    /// The listed backends its `only` rule admits: where replicas may go.
    pub members: Vec<String>,
    pub replicas: usize,
    pub write_quorum: usize,
    pub read_order: ReadOrder,
    pub rules: Rules,
}

#[derive(Debug, Clone)]
pub struct Placement {
    /// Buckets not mapped to a named policy use this one.
    default: Policy,
    policies: HashMap<String, Policy>,
    bucket_policy: HashMap<String, String>,
    /// Every configured backend, in configured order.
    backends: Vec<String>,
    tags: HashMap<String, Tags>,
}

/// Where one write goes.
#[derive(Debug, Clone)]
pub struct WritePlan {
    pub targets: Vec<String>,
    pub write_quorum: usize,
}

/// Tags of a backend the configuration does not know (an index entry naming a removed
/// backend): none, so it matches no rule.
static NO_TAGS: Tags = Tags::new();

impl Placement {
    pub fn from_config(config: &Config) -> Placement {
        let all: Vec<String> = config.backends.iter().map(|b| b.id.clone()).collect();
        let tags: HashMap<String, Tags> = config
            .backends
            .iter()
            .map(|b| (b.id.clone(), b.tags.clone()))
            .collect();
        let admitted = |rules: &Rules, id: &String| {
            rules
                .only
                .as_ref()
                .is_none_or(|only| only.matches(tags.get(id).unwrap_or(&NO_TAGS)))
        };
        let mut policies: HashMap<String, Policy> = config
            .policies
            .iter()
            .map(|(name, p)| {
                let listed = p.backends.clone().unwrap_or_else(|| all.clone());
                let rules = p.rules();
                let members: Vec<String> = listed
                    .iter()
                    .filter(|id| admitted(&rules, id))
                    .cloned()
                    .collect();
                let replicas = p.replicas.unwrap_or(members.len());
                let policy = Policy {
                    name: name.clone(),
                    write_quorum: p.write_quorum.unwrap_or(replicas),
                    replicas,
                    listed,
                    members,
                    read_order: p.read_order.clone(),
                    rules,
                };
                (name.clone(), policy)
            })
            .collect();
        let default = policies.remove(DEFAULT_POLICY).unwrap_or_else(|| Policy {
            name: DEFAULT_POLICY.to_string(),
            listed: all.clone(),
            members: all.clone(),
            replicas: all.len(),
            write_quorum: all.len(),
            read_order: ReadOrder::default(),
            rules: Rules::default(),
        });
        let bucket_policy = config
            .buckets
            .iter()
            .map(|(b, c)| (b.clone(), c.policy.clone()))
            .collect();
        Placement {
            default,
            policies,
            bucket_policy,
            backends: all,
            tags,
        }
    }

    /// Every policy: the default one first, then the named ones by name (`hansa
    /// check-config`'s summary).
    pub fn policies(&self) -> Vec<&Policy> {
        let mut named: Vec<&Policy> = self.policies.values().collect();
        named.sort_by(|a, b| a.name.cmp(&b.name));
        std::iter::once(&self.default).chain(named).collect()
    }

    pub fn policy(&self, bucket: &str) -> &Policy {
        self.bucket_policy
            .get(bucket)
            .and_then(|name| self.policies.get(name))
            .unwrap_or(&self.default)
    }

    /// The policy of buckets mapped to no named policy.
    pub fn default_policy(&self) -> &Policy {
        &self.default
    }

    fn tags(&self, id: &str) -> &Tags {
        self.tags.get(id).unwrap_or(&NO_TAGS)
    }

    /// The policy's members ranked for `bucket/key` by rendezvous hashing: each member's hash
    /// of (id, bucket, key), lowest first. Adding or removing a member moves only the keys
    /// that rank it (or ranked it) among their targets.
    fn ranked<'p>(policy: &'p Policy, bucket: &str, key: &str) -> Vec<&'p str> {
        let mut ranked: Vec<(Vec<u8>, &str)> = policy
            .members
            .iter()
            .map(|id| {
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                h.update([0]);
                h.update(bucket.as_bytes());
                h.update([0]);
                h.update(key.as_bytes());
                (h.finalize().to_vec(), id.as_str())
            })
            .collect();
        ranked.sort();
        ranked.into_iter().map(|(_, id)| id).collect()
    }

    /// The ranked members of `bucket/key`'s policy and the search's decision on each.
    fn select<'p>(
        &'p self,
        policy: &'p Policy,
        bucket: &str,
        key: &str,
    ) -> (Vec<&'p str>, Selection) {
        let ranked = Self::ranked(policy, bucket, key);
        let candidates: Vec<Candidate<'_>> = ranked
            .iter()
            .map(|id| Candidate {
                id,
                tags: self.tags(id),
            })
            .collect();
        let selection = select::select(
            &candidates,
            Constraints {
                replicas: policy.replicas,
                spread: policy.rules.spread.as_ref(),
                require: &policy.rules.require,
            },
        );
        (ranked, selection)
    }

    /// The backends that take a write of `bucket/key`, best ranked first: the first set of
    /// `replicas` members in rank order that honours the policy's `spread` and `require`
    /// rules. Stable per key; without rules, the best-ranked members.
    pub fn write_plan(&self, bucket: &str, key: &str) -> WritePlan {
        let policy = self.policy(bucket);
        let (ranked, selection) = self.select(policy, bucket, key);
        WritePlan {
            targets: selection.chosen().map(|i| ranked[i].to_string()).collect(),
            write_quorum: policy.write_quorum,
        }
    }

    /// [`Placement::write_plan`] with the backends in `excluded` taken out of the policy's
    /// members (backends being drained). The others keep their rank (rendezvous hashing), so
    /// a key moves only off an excluded backend. With too few members left the plan has fewer
    /// than `replicas` targets (and, if the rules cannot be met, follows rank alone): callers
    /// check [`Placement::unmet_rule`] and the target count.
    pub fn write_plan_excluding(
        &self,
        bucket: &str,
        key: &str,
        excluded: &HashSet<String>,
    ) -> WritePlan {
        let policy = self.policy(bucket);
        if !policy.members.iter().any(|m| excluded.contains(m)) {
            return self.write_plan(bucket, key);
        }
        let mut narrowed = policy.clone();
        narrowed.members.retain(|m| !excluded.contains(m));
        let (ranked, selection) = self.select(&narrowed, bucket, key);
        WritePlan {
            targets: selection.chosen().map(|i| ranked[i].to_string()).collect(),
            write_quorum: policy.write_quorum,
        }
    }

    /// The write plan of `bucket/key` with the reason for every backend's place in it.
    pub fn explain_write(&self, bucket: &str, key: &str) -> WriteExplanation {
        let policy = self.policy(bucket);
        let (ranked, selection) = self.select(policy, bucket, key);
        let rules = &policy.rules;
        let require_name = |i: usize| {
            rules
                .require
                .get(i)
                .map_or_else(|| format!("require rule {i}"), ToString::to_string)
        };
        let mut backends: Vec<BackendVerdict> = ranked
            .iter()
            .zip(&selection.picks)
            .enumerate()
            .map(|(rank, (id, pick))| BackendVerdict {
                backend: id.to_string(),
                rank: Some(rank + 1),
                tags: self.tags(id).clone(),
                verdict: match pick {
                    Pick::Chosen { counts_towards } => Verdict::Target {
                        counts_towards: counts_towards.iter().map(|&i| require_name(i)).collect(),
                    },
                    Pick::SpreadConflict { value, with } => Verdict::SpreadConflict {
                        tag: rules
                            .spread
                            .as_ref()
                            .map_or_else(String::new, |s| s.tag().to_string()),
                        value: value.clone(),
                        with: with.clone(),
                    },
                    Pick::WouldMissRequire(rule) => Verdict::WouldMissRequire {
                        rule: rule.map(require_name),
                    },
                    Pick::BeyondReplicas => Verdict::BeyondReplicas,
                },
            })
            .collect();
        for id in &self.backends {
            if policy.members.contains(id) {
                continue;
            }
            let verdict = match (&rules.only, policy.listed.contains(id)) {
                (Some(only), true) => Verdict::ExcludedByOnly {
                    only: only.to_string(),
                },
                _ => Verdict::NotListed,
            };
            backends.push(BackendVerdict {
                backend: id.clone(),
                rank: None,
                tags: self.tags(id).clone(),
                verdict,
            });
        }
        WriteExplanation {
            bucket: bucket.to_string(),
            key: key.to_string(),
            policy: policy.name.clone(),
            replicas: policy.replicas,
            write_quorum: policy.write_quorum,
            rules: rules.describe(),
            rules_met: selection.rules_met,
            targets: selection.chosen().map(|i| ranked[i].to_string()).collect(),
            backends,
        }
    }

    /// Given the backends that hold a write durably, the first `require` rule of the bucket's
    /// policy they fail, as a message naming the policy and the rule (a write the store must
    /// refuse, e.g. when the only EU backend is down). `None` when every rule is met.
    pub fn unmet_rule(&self, bucket: &str, holders: &[&str]) -> Option<String> {
        let policy = self.policy(bucket);
        let mut distinct: Vec<&str> = holders.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        policy.rules.require.iter().find_map(|rule| {
            let matching: Vec<&str> = distinct
                .iter()
                .copied()
                .filter(|id| rule.tags.matches(self.tags(id)))
                .collect();
            if matching.len() >= rule.min {
                return None;
            }
            let held = if distinct.is_empty() {
                "no backend holds the write".to_string()
            } else if matching.is_empty() {
                format!(
                    "the write is held by {}, none of which has {}",
                    distinct.join(", "),
                    rule.tags
                )
            } else {
                format!(
                    "the write is held by {}, of which only {} ({}) {} {}",
                    distinct.join(", "),
                    matching.len(),
                    matching.join(", "),
                    if matching.len() == 1 { "has" } else { "have" },
                    rule.tags
                )
            };
            Some(format!(
                "policy {:?}: {rule} is not met: {held}",
                policy.name
            ))
        })
    }

    /// Present replicas in the order reads should try them. A listed order: those backends
    /// first, in that order, then the rest as recorded. `latency`: lowest latency reported by
    /// `latency` (by backend id) first; backends without a measurement last; ties as recorded.
    pub fn read_order<'r>(
        &self,
        bucket: &str,
        replicas: &'r [Replica],
        latency: &dyn Fn(&str) -> Option<Duration>,
    ) -> Vec<&'r Replica> {
        let policy = self.policy(bucket);
        let mut present: Vec<&Replica> = replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Present)
            .collect();
        // Stable sorts: equal keys keep the recorded order.
        match &policy.read_order {
            ReadOrder::Listed(order) => present.sort_by_key(|r| {
                order
                    .iter()
                    .position(|id| *id == r.backend)
                    .unwrap_or(usize::MAX)
            }),
            ReadOrder::Latency => present.sort_by_key(|r| match latency(r.backend.as_str()) {
                Some(d) => (false, d),
                None => (true, Duration::ZERO),
            }),
        }
        present
    }
}
