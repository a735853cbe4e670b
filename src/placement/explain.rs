//! Why a write goes where it goes: every configured backend with its rank for the key, its
//! tags and the decision about it, in a form an operator can read (`hansa explain`).

use std::fmt;

use super::rules::Tags;

/// The write plan of one key with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteExplanation {
    pub bucket: String,
    pub key: String,
    pub policy: String,
    pub replicas: usize,
    pub write_quorum: usize,
    /// The policy's rules as the configuration names them (`only jurisdiction=eu`,
    /// `spread on provider`, `require jurisdiction=eu min 1`).
    pub rules: Vec<String>,
    /// False when no set of member backends meets every rule (a configuration that was not
    /// validated): the targets then follow rank alone.
    pub rules_met: bool,
    /// The targets, best ranked first (the order `write_plan` returns).
    pub targets: Vec<String>,
    /// Every configured backend: the members in rank order, then the others in configured
    /// order.
    pub backends: Vec<BackendVerdict>,
}

/// One backend's place in a write plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendVerdict {
    pub backend: String,
    /// 1 = best ranked for this key among the members; `None` for a backend that is no member.
    pub rank: Option<usize>,
    pub tags: Tags,
    pub verdict: Verdict,
}

/// What the plan decided about a backend, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A target; the `require` rules it counts towards.
    Target { counts_towards: Vec<String> },
    /// Skipped: it shares `tag = value` with `with`, a better-ranked target.
    SpreadConflict {
        tag: String,
        value: String,
        with: String,
    },
    /// Skipped: taking it would leave `rule` unmeetable by the backends ranked after it
    /// (`None`: only the rules together would fail).
    WouldMissRequire { rule: Option<String> },
    /// Skipped: the replica count was reached by better-ranked backends.
    BeyondReplicas,
    /// Not a member: the policy's `only` rule excludes it.
    ExcludedByOnly { only: String },
    /// Not a member: not among the policy's `backends`.
    NotListed,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Target { counts_towards } if counts_towards.is_empty() => {
                f.write_str("target")
            }
            Verdict::Target { counts_towards } => {
                write!(f, "target, counts towards {}", counts_towards.join("; "))
            }
            Verdict::SpreadConflict { tag, value, with } => write!(
                f,
                "skipped: spread on {tag}: {tag}={value} is already taken by {with}"
            ),
            Verdict::WouldMissRequire { rule: Some(rule) } => {
                write!(f, "skipped: taking it would leave {rule} unmet")
            }
            Verdict::WouldMissRequire { rule: None } => {
                f.write_str("skipped: taking it would leave the rules unmeetable together")
            }
            Verdict::BeyondReplicas => {
                f.write_str("skipped: beyond the replica count (better-ranked targets suffice)")
            }
            Verdict::ExcludedByOnly { only } => write!(f, "not a member: only {only}"),
            Verdict::NotListed => f.write_str("not a member: not in the policy's backends"),
        }
    }
}

fn tags_text(tags: &Tags) -> String {
    if tags.is_empty() {
        return "(no tags)".to_string();
    }
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for WriteExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "write of {}/{}: policy {:?}, {} replicas, write quorum {}",
            self.bucket, self.key, self.policy, self.replicas, self.write_quorum
        )?;
        if self.rules.is_empty() {
            writeln!(f, "rules: none (the best-ranked members take the replicas)")?;
        } else {
            writeln!(f, "rules: {}", self.rules.join("; "))?;
        }
        if !self.rules_met {
            writeln!(
                f,
                "warning: no set of member backends meets every rule; targets follow rank alone"
            )?;
        }
        writeln!(f, "targets: {}", self.targets.join(", "))?;
        let rows: Vec<[String; 4]> = self
            .backends
            .iter()
            .map(|b| {
                [
                    b.rank.map_or("-".to_string(), |r| r.to_string()),
                    b.backend.clone(),
                    tags_text(&b.tags),
                    b.verdict.to_string(),
                ]
            })
            .collect();
        let header = ["rank", "backend", "tags", "decision"];
        let width = |col: usize| column_width(&rows, col, header[col]);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        writeln!(
            f,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
            header[0], header[1], header[2], header[3]
        )?;
        for [rank, backend, tags, decision] in &rows {
            writeln!(f, "  {rank:<w0$}  {backend:<w1$}  {tags:<w2$}  {decision}")?;
        }
        Ok(())
    }
}

/// The width of column `col` of a text table: its widest cell, or its header.
pub(crate) fn column_width<const N: usize>(
    rows: &[[String; N]],
    col: usize,
    header: &str,
) -> usize {
    rows.iter()
        .map(|r| r[col].chars().count())
        .chain([header.chars().count()])
        .max()
        .unwrap_or(0)
}
