//! Start-up check of a policy's rules against the configured backends: a policy that no set of
//! its backends can satisfy is refused before the gateway serves, with a message that names
//! the policy and the rule. The verdict is exact ([`select::feasible`]); the per-rule checks
//! before it only find the most specific message.

use std::collections::BTreeMap;

use super::rules::{Rules, Spread, Tags};
use super::select::{self, Candidate, Constraints};

/// Why a policy cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The policy field at fault: `only`, `replicas`, `spread` or `require`.
    pub rule: &'static str,
    /// A sentence naming the policy and the rule.
    pub message: String,
}

/// Checks that `replicas` of `listed` (the policy's backends with their tags, in configured
/// order) can be chosen so that every rule holds.
pub fn check_policy(
    policy: &str,
    listed: &[(&str, &Tags)],
    replicas: usize,
    rules: &Rules,
) -> Result<(), RuleProblem> {
    let problem = |rule: &'static str, message: String| RuleProblem {
        rule,
        message: format!("policy {policy:?}: {message}"),
    };
    let members: Vec<(&str, &Tags)> = listed
        .iter()
        .copied()
        .filter(|(_, tags)| rules.only.as_ref().is_none_or(|only| only.matches(tags)))
        .collect();
    if let Some(only) = &rules.only {
        if members.is_empty() {
            return Err(problem(
                "only",
                format!(
                    "only {only} matches none of its backends ({})",
                    ids(listed.iter().map(|(id, _)| *id))
                ),
            ));
        }
    }
    if replicas > members.len() {
        let have = match &rules.only {
            Some(only) => format!(
                "only {only} leaves {}",
                count_backends(members.iter().map(|(id, _)| *id))
            ),
            None => format!(
                "the policy has {}",
                count_backends(members.iter().map(|(id, _)| *id))
            ),
        };
        return Err(problem(
            "replicas",
            format!("replicas {replicas}, but {have}"),
        ));
    }
    for rule in &rules.require {
        if rule.min > replicas {
            return Err(problem(
                "require",
                format!("{rule}, but replicas is {replicas}"),
            ));
        }
        let matching: Vec<&str> = members
            .iter()
            .filter(|(_, tags)| rule.tags.matches(tags))
            .map(|(id, _)| *id)
            .collect();
        if matching.len() < rule.min {
            let have = match matching.len() {
                0 => format!("no member backend has {}", rule.tags),
                1 => format!("only 1 member backend ({}) has {}", matching[0], rule.tags),
                n => format!(
                    "only {n} member backends ({}) have {}",
                    ids(matching.iter().copied()),
                    rule.tags
                ),
            };
            return Err(problem("require", format!("{rule}, but {have}")));
        }
    }
    if let Some(spread) = &rules.spread {
        let values = SpreadValues::of(&members, spread);
        if values.distinct() < replicas {
            return Err(problem(
                "spread",
                format!(
                    "{spread} needs {replicas} distinct {tag} values for {replicas} replicas, \
                     but the member backends have only {} ({values})",
                    values.distinct(),
                    tag = spread.tag()
                ),
            ));
        }
        for rule in &rules.require {
            let matching: Vec<(&str, &Tags)> = members
                .iter()
                .copied()
                .filter(|(_, tags)| rule.tags.matches(tags))
                .collect();
            let values = SpreadValues::of(&matching, spread);
            if values.distinct() < rule.min {
                let shared = match values.single_shared() {
                    Some(value) => format!("share one {} ({value})", spread.tag()),
                    None => format!(
                        "have only {} distinct {} values ({values})",
                        values.distinct(),
                        spread.tag(),
                    ),
                };
                return Err(problem(
                    "require",
                    format!(
                        "{rule} with {spread}, but the member backends with {} ({}) {shared}",
                        rule.tags,
                        ids(matching.iter().map(|(id, _)| *id))
                    ),
                ));
            }
        }
    }
    let candidates: Vec<Candidate<'_>> = members
        .iter()
        .map(|(id, tags)| Candidate { id, tags })
        .collect();
    let constraints = Constraints {
        replicas,
        spread: rules.spread.as_ref(),
        require: &rules.require,
    };
    if !select::feasible(&candidates, constraints) {
        let rule = if rules.require.is_empty() {
            "spread"
        } else {
            "require"
        };
        return Err(problem(
            rule,
            format!(
                "no {replicas} of its member backends ({}) meet all rules together ({})",
                ids(members.iter().map(|(id, _)| *id)),
                rules.describe().join("; ")
            ),
        ));
    }
    Ok(())
}

/// The members grouped by their spread value. A backend without the tag conflicts with
/// nobody, so each untagged one is a distinct value of its own.
struct SpreadValues<'a> {
    tagged: BTreeMap<&'a str, Vec<&'a str>>,
    untagged: Vec<&'a str>,
}

impl<'a> SpreadValues<'a> {
    fn of(members: &[(&'a str, &'a Tags)], spread: &Spread) -> SpreadValues<'a> {
        let mut values = SpreadValues {
            tagged: BTreeMap::new(),
            untagged: Vec::new(),
        };
        for (id, tags) in members {
            match spread.value_of(tags) {
                Some(v) => values.tagged.entry(v).or_default().push(*id),
                None => values.untagged.push(*id),
            }
        }
        values
    }

    fn distinct(&self) -> usize {
        self.tagged.len() + self.untagged.len()
    }

    /// The one value every one of them shares, if so.
    fn single_shared(&self) -> Option<&'a str> {
        match (self.tagged.len(), self.untagged.is_empty()) {
            (1, true) => self.tagged.keys().next().copied(),
            _ => None,
        }
    }
}

/// "ovh: disk-a, disk-b; scaleway: disk-c; without the tag: disk-x".
impl std::fmt::Display for SpreadValues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .tagged
            .iter()
            .map(|(value, backends)| format!("{value}: {}", backends.join(", ")))
            .collect();
        if !self.untagged.is_empty() {
            parts.push(format!("without the tag: {}", self.untagged.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

fn ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.collect::<Vec<_>>().join(", ")
}

fn count_backends<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    match ids.len() {
        0 => "no member backends".to_string(),
        1 => format!("1 member backend ({})", ids[0]),
        n => format!("{n} member backends ({})", ids.join(", ")),
    }
}
