//! `hansa check-config FILE`: is this configuration ready to serve? The file is loaded and
//! validated by the loader `hansa serve` uses, every backend gets the start-up probe (write,
//! read back and delete a small object under `.hansa/`) in parallel, each bounded by
//! `limits.backend_timeout_secs`, and the placement is summed up: per policy its members,
//! replicas, write quorum and rules, and whether enough members answered for its write
//! quorum; per bucket its policy. The index is neither opened nor needed, so this runs beside
//! a gateway that holds it.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{BackendKind, Config};
use crate::placement::rules::ReadOrder;
use crate::placement::Placement;

/// What `hansa check-config` found.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub backends: Vec<BackendCheck>,
    pub policies: Vec<PolicySummary>,
    /// Buckets mapped to a policy in the configuration; every other bucket uses `default`.
    pub buckets: Vec<BucketMapping>,
    /// Everything that is wrong, one sentence each; empty when all is well.
    pub problems: Vec<String>,
}

/// One backend's probe.
#[derive(Debug, Serialize)]
pub struct BackendCheck {
    pub id: String,
    pub kind: String,
    /// Where its copies go: a directory, or `bucket/prefix` on a provider.
    pub location: String,
    pub ok: bool,
    /// `reachable, writable`, or why not.
    pub detail: String,
    pub millis: u64,
}

/// One placement policy.
#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub name: String,
    pub members: Vec<String>,
    pub replicas: usize,
    pub write_quorum: usize,
    pub rules: Vec<String>,
    pub read_order: String,
    /// Members whose probe succeeded.
    pub reachable: usize,
    /// Whether `reachable` is at least `write_quorum`: writes can be acknowledged now.
    pub quorum_reachable: bool,
}

#[derive(Debug, Serialize)]
pub struct BucketMapping {
    pub bucket: String,
    pub policy: String,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Probes every backend of `config` (read from `file`) and sums up its placement.
pub async fn check(file: &Path, config: &Config) -> Report {
    let limit = Duration::from_secs(config.limits.backend_timeout_secs.max(1));
    let probes = config
        .backends
        .iter()
        .map(|b| probe(b, config.limits.chunk_bytes, limit));
    let backends: Vec<BackendCheck> = futures::future::join_all(probes).await;
    let mut problems: Vec<String> = backends
        .iter()
        .filter(|b| !b.ok)
        .map(|b| format!("backend {}: {}", b.id, b.detail))
        .collect();
    let placement = Placement::from_config(config);
    let policies: Vec<PolicySummary> = placement
        .policies()
        .into_iter()
        .map(|p| {
            let reachable = p
                .members
                .iter()
                .filter(|m| backends.iter().any(|b| b.ok && &b.id == *m))
                .count();
            PolicySummary {
                name: p.name.clone(),
                members: p.members.clone(),
                replicas: p.replicas,
                write_quorum: p.write_quorum,
                rules: p.rules.describe(),
                read_order: match &p.read_order {
                    ReadOrder::Latency => "latency".to_string(),
                    ReadOrder::Listed(list) if list.is_empty() => "as recorded".to_string(),
                    ReadOrder::Listed(list) => list.join(", "),
                },
                reachable,
                quorum_reachable: reachable >= p.write_quorum,
            }
        })
        .collect();
    for p in policies.iter().filter(|p| !p.quorum_reachable) {
        problems.push(format!(
            "policy {}: write quorum {} cannot be met now: {} of its {} members answered",
            p.name,
            p.write_quorum,
            p.reachable,
            p.members.len()
        ));
    }
    let buckets = config
        .buckets
        .iter()
        .map(|(bucket, b)| BucketMapping {
            bucket: bucket.clone(),
            policy: b.policy.clone(),
        })
        .collect();
    Report {
        file: file.display().to_string(),
        backends,
        policies,
        buckets,
        problems,
    }
}

/// The start-up probe of one backend, bounded by `limit`. A local backend's directory must
/// exist already: `hansa serve` would create it, so a mistyped path would silently start an
/// empty backend.
async fn probe(
    b: &crate::config::BackendConfig,
    chunk_bytes: usize,
    limit: Duration,
) -> BackendCheck {
    let started = Instant::now();
    let kind = format!("{:?}", b.kind).to_lowercase();
    let location = match (&b.kind, &b.path, &b.cloud) {
        (BackendKind::Local, Some(path), _) => path.display().to_string(),
        (_, _, Some(cloud)) => {
            let place = match (&cloud.account, &cloud.container, &cloud.bucket) {
                (Some(account), Some(container), _) => format!("{account}/{container}"),
                (_, _, Some(bucket)) => bucket.clone(),
                _ => "-".to_string(),
            };
            let place = if cloud.prefix.is_empty() {
                place
            } else {
                format!("{place}/{}", cloud.prefix)
            };
            match cloud.endpoint.as_deref() {
                Some(endpoint) => format!("{endpoint} {place}"),
                None => place,
            }
        }
        _ => "-".to_string(),
    };
    let outcome: Result<(), String> = async {
        if b.kind == BackendKind::Local {
            if let Some(path) = &b.path {
                if !path.is_dir() {
                    return Err(format!("directory {} does not exist", path.display()));
                }
            }
        }
        let backend = crate::store::build_backend(b, chunk_bytes).map_err(|e| match e {
            crate::store::OpenError::Backend { message, .. } => message,
            other => other.to_string(),
        })?;
        match tokio::time::timeout(limit, backend.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} s (limits.backend_timeout_secs)",
                limit.as_secs()
            )),
        }
    }
    .await;
    let (ok, detail) = match outcome {
        Ok(()) => (true, "reachable, writable".to_string()),
        Err(e) => (false, e),
    };
    BackendCheck {
        id: b.id.clone(),
        kind,
        location,
        ok,
        detail,
        millis: started.elapsed().as_millis() as u64,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration {}: valid", self.file)?;
        writeln!(f, "\nbackends:")?;
        let rows: Vec<[String; 5]> = self
            .backends
            .iter()
            .map(|b| {
                [
                    if b.ok { "ok" } else { "FAILED" }.to_string(),
                    b.id.clone(),
                    b.kind.clone(),
                    b.location.clone(),
                    format!("{} ({} ms)", b.detail, b.millis),
                ]
            })
            .collect();
        let width = |col: usize| rows.iter().map(|r| r[col].len()).max().unwrap_or(0);
        let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
        for [state, id, kind, location, detail] in &rows {
            writeln!(
                f,
                "  {state:<w0$}  {id:<w1$}  {kind:<w2$}  {location:<w3$}  {detail}"
            )?;
        }
        writeln!(f, "\npolicies:")?;
        for p in &self.policies {
            let rules = if p.rules.is_empty() {
                "none".to_string()
            } else {
                p.rules.join("; ")
            };
            writeln!(f, "  {}:", p.name)?;
            writeln!(f, "    members:      {}", p.members.join(", "))?;
            writeln!(f, "    replicas:     {}", p.replicas)?;
            writeln!(
                f,
                "    write quorum: {} ({} of {} members reachable now{})",
                p.write_quorum,
                p.reachable,
                p.members.len(),
                if p.quorum_reachable {
                    ""
                } else {
                    ": NOT ENOUGH"
                }
            )?;
            writeln!(f, "    rules:        {rules}")?;
            writeln!(f, "    read order:   {}", p.read_order)?;
        }
        writeln!(f, "\nbuckets:")?;
        for b in &self.buckets {
            writeln!(f, "  {} -> policy {}", b.bucket, b.policy)?;
        }
        writeln!(f, "  every other bucket -> policy default")?;
        writeln!(f)?;
        if self.problems.is_empty() {
            writeln!(f, "check-config: OK")
        } else {
            writeln!(f, "check-config: {} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}
