//! Configuration reload: on SIGHUP and on the admin plane's `POST /admin/v1/reload`, both
//! through [`reload`].
//!
//! The file is read and validated again exactly as at start-up (environment secrets
//! included). An invalid file is refused with its error, logged, counted, and the running
//! configuration stays. A valid one is compared with what runs: the live part (credentials,
//! rate limits, per-request limits, policies and bucket mappings, backend tags, `[health]`,
//! `[repair]` and `[jobs]` rates) is put in force at once, for requests that start from then
//! on, without dropping a connection; each change that needs a restart (listeners, TLS, data
//! directory, backends added, removed or changed, memory and connection limits, `[admin]`)
//! is named in one warning line. See docs/OPERATIONS.md for the table.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError};
use crate::config_source::Source;
use crate::gateway::{Gateway, LiveSettings};

/// What a reload did: the changes now in force, and those that wait for a restart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub file: String,
    pub applied: Vec<String>,
    pub restart_needed: Vec<String>,
}

#[derive(thiserror::Error, Debug)]
pub enum ReloadError {
    #[error("started without --config: there is no file to reload")]
    NoFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Valid on its own, but not with what runs (e.g. a policy naming a backend that only a
    /// restart would add), or unusable (no credentials).
    #[error("{file}: {problem}")]
    Conflict { file: String, problem: String },
}

/// Reads the configuration file again and applies what can change live; one reload at a
/// time. The SIGHUP handler and the admin plane both call this.
pub async fn reload(gw: &Gateway) -> Result<Outcome, ReloadError> {
    let source = gw.reload.lock().await;
    let result = match source.as_ref() {
        Some(source) => apply(gw, source),
        None => Err(ReloadError::NoFile),
    };
    drop(source);
    match &result {
        Ok(outcome) => {
            crate::metrics::config_reloaded(true);
            tracing::info!(
                file = %outcome.file,
                applied = %list(&outcome.applied),
                "configuration reloaded"
            );
            if !outcome.restart_needed.is_empty() {
                tracing::warn!(
                    file = %outcome.file,
                    "restart to apply: {}",
                    outcome.restart_needed.join("; ")
                );
            }
        }
        Err(ReloadError::NoFile) => {
            tracing::warn!("reload ignored: started without --config, there is no file to read")
        }
        Err(e) => {
            crate::metrics::config_reloaded(false);
            tracing::error!(error = %e, "configuration refused; the running configuration stays");
        }
    }
    result
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join("; ")
    }
}

fn apply(gw: &Gateway, source: &Source) -> Result<Outcome, ReloadError> {
    let file = source.file.display().to_string();
    let conflict = |problem: String| ReloadError::Conflict {
        file: file.clone(),
        problem,
    };
    let mut new = Config::from_file(&source.file)?;
    source.overrides.apply(&mut new).map_err(&conflict)?;
    let restart_needed = restart_changes(&gw.config, &new);
    let effective = effective(&gw.config, &new);
    // The live part must hold together with what keeps running: a policy may only name
    // backends that run now, and shares are judged against the running budget.
    effective.check(&file).map_err(|e| {
        conflict(format!(
            "{e} (with the backends and memory limits running now: adding a backend needs a restart)"
        ))
    })?;
    let live = LiveSettings::from_config(effective).map_err(|e| conflict(e.to_string()))?;
    let applied = live_changes(&gw.live().config, &live.config);
    gw.store.reconfigure(&live.config);
    gw.set_live(live);
    Ok(Outcome {
        file,
        applied,
        restart_needed,
    })
}

/// `new` as far as it can be in force without a restart: the running backends (with the
/// new file's tags where a backend stays) and the running restart-only settings.
fn effective(running: &Config, new: &Config) -> Config {
    let mut effective = new.clone();
    effective.backends = running
        .backends
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if let Some(n) = new.backends.iter().find(|n| n.id == b.id) {
                b.tags = n.tags.clone();
            }
            b
        })
        .collect();
    let (limits, was) = (&mut effective.limits, &running.limits);
    limits.inflight_bytes = was.inflight_bytes;
    limits.chunk_bytes = was.chunk_bytes;
    limits.header_timeout_secs = was.header_timeout_secs;
    limits.max_connections = was.max_connections;
    limits.keepalive_idle_secs = was.keepalive_idle_secs;
    limits.index_cache_bytes = was.index_cache_bytes;
    limits.upload_cleanup_interval_secs = was.upload_cleanup_interval_secs;
    effective.repair.anti_entropy_interval_secs = running.repair.anti_entropy_interval_secs;
    effective.lifecycle = running.lifecycle.clone();
    effective.server.listen = running.server.listen.clone();
    effective.server.tls = running.server.tls.clone();
    effective.server.data_dir = running.server.data_dir.clone();
    effective.admin = running.admin.clone();
    effective
}

/// Compares one field of two configurations by path; pushes "path: old → new".
macro_rules! compare {
    ($out:ident, $a:ident, $b:ident, $($field:ident).+) => {
        if $a.$($field).+ != $b.$($field).+ {
            $out.push(format!(
                "{}: {:?} → {:?}",
                stringify!($($field).+).replace(' ', ""),
                $a.$($field).+,
                $b.$($field).+
            ));
        }
    };
}

/// What differs between the running configuration and `b` and takes a restart.
pub fn restart_changes(a: &Config, b: &Config) -> Vec<String> {
    let mut out = Vec::new();
    compare!(out, a, b, server.listen);
    if format!("{:?}", a.server.tls) != format!("{:?}", b.server.tls) {
        out.push("server.tls".into());
    }
    compare!(out, a, b, server.data_dir);
    compare!(out, a, b, limits.inflight_bytes);
    compare!(out, a, b, limits.chunk_bytes);
    compare!(out, a, b, limits.header_timeout_secs);
    compare!(out, a, b, limits.max_connections);
    compare!(out, a, b, limits.keepalive_idle_secs);
    compare!(out, a, b, limits.index_cache_bytes);
    compare!(out, a, b, limits.upload_cleanup_interval_secs);
    compare!(out, a, b, repair.anti_entropy_interval_secs);
    compare!(out, a, b, lifecycle);
    for old in &a.backends {
        match b.backends.iter().find(|n| n.id == old.id) {
            None => out.push(format!("backend {} removed", old.id)),
            Some(new) => {
                let mut fields = Vec::new();
                if old.kind != new.kind {
                    fields.push("kind");
                }
                if old.path != new.path {
                    fields.push("path");
                }
                if old.cloud != new.cloud {
                    fields.push("store settings or credentials");
                }
                if old.faults != new.faults {
                    fields.push("faults");
                }
                if !fields.is_empty() {
                    out.push(format!("backend {}: {}", old.id, fields.join(", ")));
                }
            }
        }
    }
    for new in &b.backends {
        if !a.backends.iter().any(|old| old.id == new.id) {
            out.push(format!("backend {} added", new.id));
        }
    }
    match (&a.admin, &b.admin) {
        (None, None) => {}
        (Some(x), Some(y))
            if x.enabled == y.enabled && x.listen == y.listen && x.token == y.token => {}
        _ => out.push("admin (listener or token)".into()),
    }
    out
}

/// What differs between the live configuration `a` and `b` among the fields a reload
/// applies. Secrets are never shown, only that they changed.
pub fn live_changes(a: &Config, b: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let (old_keys, new_keys) = (a.resolved_credentials(), b.resolved_credentials());
    for old in &old_keys {
        match new_keys
            .iter()
            .find(|n| n.access_key_id == old.access_key_id)
        {
            None => out.push(format!("credential {} removed", old.access_key_id)),
            Some(new) => {
                let mut what = Vec::new();
                if old.secret_access_key != new.secret_access_key {
                    what.push("secret rotated");
                }
                if old.buckets != new.buckets {
                    what.push("buckets");
                }
                if old.read_only != new.read_only {
                    what.push("read_only");
                }
                if !what.is_empty() {
                    out.push(format!(
                        "credential {}: {}",
                        old.access_key_id,
                        what.join(", ")
                    ));
                }
            }
        }
    }
    for new in &new_keys {
        if !old_keys
            .iter()
            .any(|old| old.access_key_id == new.access_key_id)
        {
            out.push(format!("credential {} added", new.access_key_id));
        }
    }
    map_changes(&mut out, "rate_limit", &a.rate_limits, &b.rate_limits);
    compare!(out, a, b, server.region);
    compare!(out, a, b, server.base_domains);
    compare!(out, a, b, server.signature_v2);
    compare!(out, a, b, limits.body_idle_timeout_secs);
    compare!(out, a, b, limits.backend_timeout_secs);
    compare!(out, a, b, limits.publish_timeout_secs);
    compare!(out, a, b, limits.straggler_grace_ms);
    compare!(out, a, b, limits.max_lag_buffers);
    compare!(out, a, b, limits.staging_max_age_secs);
    compare!(out, a, b, limits.max_xml_bytes);
    compare!(out, a, b, limits.min_body_bytes_per_sec);
    compare!(out, a, b, limits.min_body_rate_window_secs);
    compare!(out, a, b, limits.budget_wait_ms);
    compare!(out, a, b, limits.max_budget_share_per_credential);
    compare!(out, a, b, limits.upload_max_age_secs);
    compare!(out, a, b, limits.shutdown_grace_secs);
    compare!(out, a, b, health.probe_interval_ms);
    compare!(out, a, b, health.probe_timeout_ms);
    compare!(out, a, b, health.failures_to_open);
    compare!(out, a, b, health.open_for_ms);
    let debug = |m: &std::collections::BTreeMap<String, config::PolicyConfig>| {
        m.iter()
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    map_changes(&mut out, "policy", &debug(&a.policies), &debug(&b.policies));
    let buckets = |m: &std::collections::BTreeMap<String, config::BucketConfig>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.policy.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    map_changes(
        &mut out,
        "bucket",
        &buckets(&a.buckets),
        &buckets(&b.buckets),
    );
    compare!(out, a, b, repair.concurrency);
    compare!(out, a, b, repair.bytes_per_sec);
    compare!(out, a, b, repair.max_backoff_secs);
    compare!(out, a, b, repair.orphan_grace_secs);
    compare!(out, a, b, jobs.concurrency);
    compare!(out, a, b, jobs.bytes_per_sec);
    for old in &a.backends {
        if let Some(new) = b.backends.iter().find(|n| n.id == old.id) {
            if old.tags != new.tags {
                out.push(format!("backend {} tags", old.id));
            }
        }
    }
    out
}

/// "name.key added / removed / changed" for each entry that differs.
fn map_changes<V: PartialEq>(
    out: &mut Vec<String>,
    name: &str,
    a: &std::collections::BTreeMap<String, V>,
    b: &std::collections::BTreeMap<String, V>,
) {
    for (key, old) in a {
        match b.get(key) {
            None => out.push(format!("{name}.{key} removed")),
            Some(new) if new != old => out.push(format!("{name}.{key} changed")),
            Some(_) => {}
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{name}.{key} added"));
    }
}

/// Reloads on every SIGHUP until `stopped` turns true. The handler is installed when this is
/// called (SIGHUP's default action would end the process), not when the task first runs.
pub fn on_sighup(
    gw: Arc<Gateway>,
    mut stopped: watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let hangups = signal(SignalKind::hangup());
    async move {
        let mut hangups = match hangups {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload through the admin plane");
                return;
            }
        };
        loop {
            let hangup = tokio::select! {
                _ = stopped.wait_for(|s| *s) => false,
                got = hangups.recv() => got.is_some(),
            };
            if !hangup {
                return;
            }
            tracing::info!("SIGHUP: reloading the configuration");
            // The outcome is logged by `reload`.
            let _ = reload(&gw).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"s1\"\n\
        [[backend]]\nid = \"a\"\nkind = \"memory\"\n[[backend]]\nid = \"b\"\nkind = \"memory\"\n";

    fn parse(extra: &str) -> Config {
        Config::from_toml("t.toml", &format!("{BASE}{extra}")).unwrap()
    }

    #[test]
    fn changes_are_sorted_into_live_and_restart() {
        let a = parse("");
        let b = Config::from_toml(
            "t.toml",
            "[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"s2\"\n\
             [[credential]]\naccess_key_id = \"new\"\nsecret_access_key = \"n\"\n\
             [[backend]]\nid = \"a\"\nkind = \"memory\"\ntags = { zone = \"x\" }\n\
             [[backend]]\nid = \"c\"\nkind = \"memory\"\n\
             [limits]\nbackend_timeout_secs = 3\nchunk_bytes = 6291456\n\
             [policy.p]\nbackends = [\"a\"]\n[bucket.photos]\npolicy = \"p\"\n",
        )
        .unwrap();
        let live = live_changes(&a, &b);
        assert!(
            live.contains(&"credential abc: secret rotated".to_string()),
            "{live:?}"
        );
        assert!(
            live.contains(&"credential new added".to_string()),
            "{live:?}"
        );
        assert!(
            live.contains(&"limits.backend_timeout_secs: 10 → 3".to_string()),
            "{live:?}"
        );
        assert!(live.contains(&"policy.p added".to_string()), "{live:?}");
        assert!(
            live.contains(&"bucket.photos added".to_string()),
            "{live:?}"
        );
        assert!(live.contains(&"backend a tags".to_string()), "{live:?}");
        assert!(
            !live.iter().any(|l| l.contains("s2")),
            "no secret shown: {live:?}"
        );
        let restart = restart_changes(&a, &b);
        assert_eq!(
            restart,
            vec![
                "limits.chunk_bytes: 8388608 → 6291456".to_string(),
                "backend b removed".to_string(),
                "backend c added".to_string(),
            ]
        );
        assert!(live_changes(&a, &a).is_empty() && restart_changes(&a, &a).is_empty());
    }

    #[test]
    fn signature_v2_switch_is_live() {
        let on = parse("");
        assert!(on.server.signature_v2, "on by default");
        let off = parse("[server]\nsignature_v2 = false\n");
        assert!(!off.server.signature_v2);
        assert_eq!(
            live_changes(&on, &off),
            vec!["server.signature_v2: true → false".to_string()]
        );
        assert!(restart_changes(&on, &off).is_empty());
        let live = crate::gateway::LiveSettings::from_config(off).unwrap();
        assert!(!live.auth.signature_v2);
    }

    #[test]
    fn the_effective_configuration_keeps_what_runs() {
        let a = parse("");
        // The new file names a backend only a restart would add, in a policy.
        let b = Config::from_toml(
            "t.toml",
            "[[credential]]\naccess_key_id = \"abc\"\nsecret_access_key = \"s\"\n\
             [[backend]]\nid = \"a\"\nkind = \"memory\"\n[[backend]]\nid = \"c\"\nkind = \"memory\"\n\
             [policy.p]\nbackends = [\"a\", \"c\"]\n",
        )
        .unwrap();
        let e = effective(&a, &b);
        let ids: Vec<&str> = e.backends.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let problem = e.check("t.toml").unwrap_err().to_string();
        assert!(problem.contains("unknown backend \"c\""), "{problem}");
        // Restart-only limits stay as they run.
        let b = parse("[limits]\nchunk_bytes = 6291456\nbudget_wait_ms = 5\n");
        let e = effective(&a, &b);
        assert_eq!(e.limits.chunk_bytes, a.limits.chunk_bytes);
        assert_eq!(e.limits.budget_wait_ms, 5);
        assert!(e.check("t.toml").is_ok());
    }
}
