//! Placement policy: which backends take a write, how many must confirm it, and in what order
//! reads try the replicas.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::config::{Config, DEFAULT_POLICY};
use crate::meta::{Replica, ReplicaState};

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Backend ids this policy may use.
    pub members: Vec<String>,
    pub replicas: usize,
    pub write_quorum: usize,
    pub read_order: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Placement {
    /// Buckets not mapped to a named policy use this one.
    default: Policy,
    policies: HashMap<String, Policy>,
    bucket_policy: HashMap<String, String>,
}

/// Where one write goes.
#[derive(Debug, Clone)]
pub struct WritePlan {
    pub targets: Vec<String>,
    pub write_quorum: usize,
}

impl Placement {
    pub fn from_config(config: &Config) -> Placement {
        let all: Vec<String> = config.backends.iter().map(|b| b.id.clone()).collect();
        let mut policies: HashMap<String, Policy> = config
            .policies
            .iter()
            .map(|(name, p)| {
                let members = p.backends.clone().unwrap_or_else(|| all.clone());
                let replicas = p.replicas.unwrap_or(members.len());
                let policy = Policy {
                    name: name.clone(),
                    write_quorum: p.write_quorum.unwrap_or(replicas),
                    replicas,
                    members,
                    read_order: p.read_order.clone(),
                };
                (name.clone(), policy)
            })
            .collect();
        let default = policies.remove(DEFAULT_POLICY).unwrap_or_else(|| Policy {
            name: DEFAULT_POLICY.to_string(),
            members: all.clone(),
            replicas: all.len(),
            write_quorum: all.len(),
            read_order: Vec::new(),
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
        }
    }

    pub fn policy(&self, bucket: &str) -> &Policy {
        self.bucket_policy
            .get(bucket)
            .and_then(|name| self.policies.get(name))
            .unwrap_or(&self.default)
    }

    /// The backends that take a write of `bucket/key`. When the policy has more members than
    /// replicas, rendezvous hashing spreads keys evenly and keeps a key's targets stable.
    pub fn write_plan(&self, bucket: &str, key: &str) -> WritePlan {
        let policy = self.policy(bucket);
        let mut ranked: Vec<(Vec<u8>, &String)> = policy
            .members
            .iter()
            .map(|id| {
                let mut h = Sha256::new();
                h.update(id.as_bytes());
                h.update([0]);
                h.update(bucket.as_bytes());
                h.update([0]);
                h.update(key.as_bytes());
                (h.finalize().to_vec(), id)
            })
            .collect();
        ranked.sort();
        WritePlan {
            targets: ranked
                .into_iter()
                .take(policy.replicas)
                .map(|(_, id)| id.clone())
                .collect(),
            write_quorum: policy.write_quorum,
        }
    }

    /// Present replicas in the order reads should try them: the policy's read order first,
    /// then the rest as recorded.
    pub fn read_order<'r>(&self, bucket: &str, replicas: &'r [Replica]) -> Vec<&'r Replica> {
        let policy = self.policy(bucket);
        let rank = |r: &Replica| {
            policy
                .read_order
                .iter()
                .position(|id| *id == r.backend)
                .unwrap_or(usize::MAX)
        };
        let mut present: Vec<&Replica> = replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Present)
            .collect();
        present.sort_by_key(|r| rank(r));
        present
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(toml: &str) -> Placement {
        Placement::from_config(&Config::from_toml("t.toml", toml).unwrap())
    }

    const THREE: &str = "[[backend]]\nid = \"a\"\nkind = \"memory\"\n[[backend]]\nid = \"b\"\nkind = \"memory\"\n[[backend]]\nid = \"c\"\nkind = \"memory\"\n";

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

    #[test]
    fn read_order_prefers_policy_order_and_skips_pending() {
        let p = placement(&format!("{THREE}[policy.default]\nread_order = [\"c\"]\n"));
        let r = |b: &str, state| Replica {
            etag: "e".into(),
            ..Replica::new(b, "n", state)
        };
        let replicas = [
            r("a", ReplicaState::Present),
            r("b", ReplicaState::Pending),
            r("c", ReplicaState::Present),
        ];
        let order: Vec<_> = p
            .read_order("x", &replicas)
            .iter()
            .map(|r| r.backend.as_str())
            .collect();
        assert_eq!(order, ["c", "a"]);
    }
}
