//! The exact search behind placement: which `replicas` of a ranked list of backends to take
//! so that `spread` and every `require` hold, preferring better-ranked backends.
//!
//! The answer is the feasible set that comes first in rank order (lexicographically): walk the
//! candidates best first and take each one unless taking it makes the rules impossible to
//! complete with the candidates after it. "Impossible to complete" is decided exactly, not
//! guessed: backends sharing a spread value form a group of which at most one is taken, a
//! backend is reduced to the set of `require` rules it counts towards, and a dynamic program
//! over the groups tracks (replicas taken, what each rule still lacks). Its size is bounded by
//! groups × (replicas + 1) × Π(min + 1), small for any realistic policy, and it does not grow
//! exponentially with the number of backends as a search over combinations would.

use std::collections::{HashMap, HashSet};

use super::rules::{Requirement, Spread, Tags};

/// One backend as the search sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub tags: &'a Tags,
}

/// What the search decided for one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Taken; the indices of the `require` rules it counts towards.
    Chosen { counts_towards: Vec<usize> },
    /// Shares the spread tag's value with `with`, taken before it.
    SpreadConflict { value: String, with: String },
    /// Taking it would leave a rule unmeetable by the candidates after it: `Some(i)` when
    /// `require[i]` alone could no longer be met, `None` when only the rules together fail.
    WouldMissRequire(Option<usize>),
    /// The replica count was reached by better-ranked candidates.
    BeyondReplicas,
}

/// The outcome for a ranked list of candidates.
#[derive(Debug, Clone)]
pub struct Selection {
    /// One per candidate, in the candidates' order.
    pub picks: Vec<Pick>,
    /// False when no set of the candidates meets every rule (a configuration that skipped
    /// validation): the picks then follow rank alone.
    pub rules_met: bool,
}

impl Selection {
    pub fn chosen(&self) -> impl Iterator<Item = usize> + '_ {
        self.picks
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p, Pick::Chosen { .. }))
            .map(|(i, _)| i)
    }
}

/// The rules a selection must honour.
#[derive(Debug, Clone, Copy)]
pub struct Constraints<'r> {
    pub replicas: usize,
    pub spread: Option<&'r Spread>,
    pub require: &'r [Requirement],
}

/// Picks `replicas` of `candidates` (best ranked first) honouring the constraints.
pub fn select(candidates: &[Candidate<'_>], c: Constraints<'_>) -> Selection {
    let facts = Facts::of(candidates, c);
    let mins: Vec<usize> = c.require.iter().map(|r| r.min).collect();
    if !facts.completable(0, &HashSet::new(), c.replicas, &mins) {
        return by_rank(candidates.len(), c.replicas, &facts);
    }
    let mut picks = Vec::with_capacity(candidates.len());
    let mut taken = 0;
    let mut used: HashMap<&str, &str> = HashMap::new();
    let mut lacking = mins;
    for (i, cand) in candidates.iter().enumerate() {
        if taken == c.replicas {
            picks.push(Pick::BeyondReplicas);
            continue;
        }
        if let Some(value) = facts.group[i] {
            if let Some(with) = used.get(value) {
                picks.push(Pick::SpreadConflict {
                    value: value.to_string(),
                    with: with.to_string(),
                });
                continue;
            }
        }
        let after = reduce(&lacking, &facts.counts[i]);
        let mut groups: HashSet<&str> = used.keys().copied().collect();
        groups.extend(facts.group[i]);
        if facts.completable(i + 1, &groups, c.replicas - taken - 1, &after) {
            if let Some(value) = facts.group[i] {
                used.insert(value, cand.id);
            }
            picks.push(Pick::Chosen {
                counts_towards: facts.counts[i].clone(),
            });
            taken += 1;
            lacking = after;
        } else {
            picks.push(Pick::WouldMissRequire(facts.blocking_rule(
                i + 1,
                &groups,
                c.replicas - taken - 1,
                &after,
            )));
        }
    }
    Selection {
        picks,
        rules_met: true,
    }
}

/// Whether some `replicas` of `candidates` meet every rule.
pub fn feasible(candidates: &[Candidate<'_>], c: Constraints<'_>) -> bool {
    let mins: Vec<usize> = c.require.iter().map(|r| r.min).collect();
    Facts::of(candidates, c).completable(0, &HashSet::new(), c.replicas, &mins)
}

/// The fallback when the rules cannot be met at all: the best ranked, as without rules.
fn by_rank(n: usize, replicas: usize, facts: &Facts<'_>) -> Selection {
    let picks = (0..n)
        .map(|i| {
            if i < replicas {
                Pick::Chosen {
                    counts_towards: facts.counts[i].clone(),
                }
            } else {
                Pick::BeyondReplicas
            }
        })
        .collect();
    Selection {
        picks,
        rules_met: false,
    }
}

/// What a rule still lacks after taking a backend that counts towards `counts`.
fn reduce(lacking: &[usize], counts: &[usize]) -> Vec<usize> {
    let mut out = lacking.to_vec();
    for &r in counts {
        out[r] = out[r].saturating_sub(1);
    }
    out
}

/// The candidates reduced to what the rules see.
struct Facts<'a> {
    /// Each candidate's spread value; `None`: no spread rule, or the backend lacks the tag
    /// (it conflicts with nobody).
    group: Vec<Option<&'a str>>,
    /// Each candidate's `require` rules (indices) it counts towards.
    counts: Vec<Vec<usize>>,
}

impl<'a> Facts<'a> {
    fn of(candidates: &[Candidate<'a>], c: Constraints<'_>) -> Facts<'a> {
        Facts {
            group: candidates
                .iter()
                .map(|cand| c.spread.and_then(|s| s.value_of(cand.tags)))
                .collect(),
            counts: candidates
                .iter()
                .map(|cand| {
                    c.require
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.tags.matches(cand.tags))
                        .map(|(i, _)| i)
                        .collect()
                })
                .collect(),
        }
    }

    /// Whether exactly `need` more backends can be taken from candidates `from..`, at most
    /// one per spread value and none with a value in `used`, so that every rule's `lacking`
    /// count is covered.
    fn completable(
        &self,
        from: usize,
        used: &HashSet<&str>,
        need: usize,
        lacking: &[usize],
    ) -> bool {
        self.completable_for(from, used, need, lacking, None)
    }

    /// [`Facts::completable`] looking at one rule only (`only_rule`), or at all of them.
    fn completable_for(
        &self,
        from: usize,
        used: &HashSet<&str>,
        need: usize,
        lacking: &[usize],
        only_rule: Option<usize>,
    ) -> bool {
        let relevant = |r: usize| only_rule.is_none_or(|o| o == r);
        let lacking: Vec<usize> = lacking
            .iter()
            .enumerate()
            .map(|(r, &n)| if relevant(r) { n } else { 0 })
            .collect();
        // The groups still open, each as the distinct sets of rules its backends count
        // towards (which backend of a group is taken does not matter to feasibility).
        let mut grouped: HashMap<&str, Vec<Vec<usize>>> = HashMap::new();
        let mut groups: Vec<Vec<Vec<usize>>> = Vec::new();
        for i in from..self.group.len() {
            let counts: Vec<usize> = self.counts[i]
                .iter()
                .copied()
                .filter(|&r| relevant(r))
                .collect();
            match self.group[i] {
                Some(value) if used.contains(value) => {}
                Some(value) => {
                    let options = grouped.entry(value).or_default();
                    if !options.contains(&counts) {
                        options.push(counts);
                    }
                }
                None => groups.push(vec![counts]),
            }
        }
        groups.extend(grouped.into_values());
        if groups.len() < need {
            return false;
        }
        // States: (taken so far, what each rule still lacks). A state whose largest lack
        // exceeds what it may still take is dead and dropped.
        let mut states: HashSet<(usize, Vec<usize>)> = HashSet::new();
        states.insert((0, lacking));
        for options in &groups {
            let mut next = states.clone();
            for (taken, lack) in &states {
                if *taken == need {
                    continue;
                }
                for counts in options {
                    let after = reduce(lack, counts);
                    let left = need - taken - 1;
                    if after.iter().all(|&n| n <= left) {
                        next.insert((taken + 1, after));
                    }
                }
            }
            states = next;
        }
        states
            .iter()
            .any(|(taken, lack)| *taken == need && lack.iter().all(|&n| n == 0))
    }

    /// The one rule that can no longer be met on its own, if there is one.
    fn blocking_rule(
        &self,
        from: usize,
        used: &HashSet<&str>,
        need: usize,
        lacking: &[usize],
    ) -> Option<usize> {
        (0..lacking.len())
            .find(|&r| lacking[r] > 0 && !self.completable_for(from, used, need, lacking, Some(r)))
    }
}
