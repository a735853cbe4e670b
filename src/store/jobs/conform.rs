//! The step of drain and rebalance: make one object's replicas match the placement
//! ([`Store::write_plan`], draining backends excluded).
//!
//! Order, so that an object never falls below its policy: first every plan target gets a
//! present replica (a Pending replica is recorded under the key's lock, then the repair
//! machinery copies it from the best present replica, verified against the stored checksum,
//! and publishes it under the lock if the version is still current); only then, under the lock
//! and if the version is still the same, the replicas outside the plan leave the record and
//! their bytes are deleted. If the key is overwritten meanwhile, the step starts over with the
//! new record (whose replicas the new write placed by the same plan).

use std::sync::Arc;

use super::StepOutcome;
use crate::meta::{now_ms, ObjectRecord, RepairEntry, RepairTask, Replica, ReplicaState};
use crate::store::copies::remove_replica;
use crate::store::queue::{self, queue_removal};
use crate::store::repair::{self, Settled};
use crate::store::stage::name_for;
use crate::store::Store;

/// An overwrite racing the step makes it start over; after this many rounds it gives up (the
/// next pass of a drain sees the object again).
const MAX_ROUNDS: usize = 4;
/// A copy the step starts is left to it for this long before the repair worker takes it over
/// (when the gateway stopped in the middle).
const BACKSTOP: std::time::Duration = std::time::Duration::from_secs(600);

/// Brings `bucket/key`'s replicas to its plan. `keep_bytes_on`: a backend (a drain with
/// `keep_replicas`) whose replica leaves the index but whose bytes stay.
pub(crate) async fn conform(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    keep_bytes_on: Option<&str>,
) -> StepOutcome {
    let mut outcome = StepOutcome::default();
    for _ in 0..MAX_ROUNDS {
        match round(store, bucket, key, keep_bytes_on, &mut outcome).await {
            Ok(Round::Finished) => return outcome,
            Ok(Round::Again) => continue,
            Err(problem) => {
                outcome.problem = Some(problem);
                return outcome;
            }
        }
    }
    outcome.problem = Some(format!(
        "the object changed {MAX_ROUNDS} times while its replicas were being moved"
    ));
    outcome
}

enum Round {
    Finished,
    /// The record changed under the step: look again.
    Again,
}

fn count(outcome: &mut StepOutcome, name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    match outcome.counts.iter_mut().find(|(k, _)| *k == name) {
        Some((_, v)) => *v += n,
        None => outcome.counts.push((name, n)),
    }
}

/// Why the plan of `bucket/key` cannot hold the object: too few backends take writes, or a
/// `require` rule the remaining backends cannot meet.
fn unmet(store: &Store, bucket: &str, targets: &[String]) -> Option<String> {
    let placement = store.placement();
    let policy = placement.policy(bucket);
    if targets.len() < policy.replicas {
        return Some(format!(
            "policy {:?} needs {} replicas, only {} backends take writes",
            policy.name,
            policy.replicas,
            targets.len()
        ));
    }
    let holders: Vec<&str> = targets.iter().map(String::as_str).collect();
    placement.unmet_rule(bucket, &holders)
}

fn present_on(record: &ObjectRecord, backend: &str) -> bool {
    record
        .replicas
        .iter()
        .any(|r| r.backend == backend && r.state == ReplicaState::Present)
}

async fn round(
    store: &Arc<Store>,
    bucket: &str,
    key: &str,
    keep_bytes_on: Option<&str>,
    outcome: &mut StepOutcome,
) -> Result<Round, String> {
    let plan = store.write_plan(bucket, key);
    if let Some(why) = unmet(store, bucket, &plan.targets) {
        count(outcome, "unmet", 1);
        return Err(why);
    }
    // 1. Record a Pending replica on every target that lacks a present one.
    let (record, missing) = {
        let _guard = store.locks.lock(bucket, key).await;
        let Some(mut record) = store.meta.object(bucket, key).map_err(|e| e.to_string())? else {
            count(outcome, "unchanged", 1);
            return Ok(Round::Finished); // deleted meanwhile: nothing to move
        };
        let mut missing = Vec::new();
        for target in &plan.targets {
            if present_on(&record, target) {
                continue;
            }
            missing.push(target.clone());
            if record.replicas.iter().any(|r| r.backend == *target) {
                continue; // a replica a write missed: the copy below completes it
            }
            let backend = store
                .backend(target)
                .ok_or_else(|| format!("backend {target} is not configured"))?;
            let name = name_for(backend.as_ref(), bucket, key).await;
            record
                .replicas
                .push(Replica::new(target, name.as_str(), ReplicaState::Pending));
        }
        // With each Pending replica, a repair entry that the worker leaves alone for a while:
        // if the gateway stops before the copy below ends, the worker finishes it later.
        let mut entries = Vec::new();
        for target in &missing {
            let mut entry = RepairEntry::new(
                target,
                bucket,
                key,
                RepairTask::Replicate {
                    version_id: record.version_id.clone(),
                    staged: None,
                },
                "moved by a drain or rebalance",
            );
            entry.not_before_ms = now_ms() + BACKSTOP.as_millis() as u64;
            let ours = store
                .meta
                .queue_repair_if_absent(&entry)
                .map_err(|e| e.to_string())?;
            entries.push((entry, ours));
        }
        if !missing.is_empty() {
            store
                .meta
                .put_object(bucket, key, &record)
                .map_err(|e| e.to_string())?;
            store.meta.sync().await.map_err(|e| e.to_string())?;
        }
        (record, entries)
    };
    // 2. Copy to each of them (outside the lock: reads and writes of the key go on).
    let mut failures = Vec::new();
    let mut copied = 0;
    for (entry, ours) in &missing {
        let target = &entry.backend;
        let result = repair::repair_entry(store, entry).await;
        if result.is_ok() && *ours {
            // Done here: the backstop is not needed (unless work was queued again meanwhile).
            if let Err(e) = store.meta.settle_repair(entry, None) {
                tracing::warn!(error = %e, "could not update the repair queue");
            }
        }
        match result {
            Ok(Settled::Repaired) => {
                copied += 1;
                outcome.bytes_moved += record.size;
            }
            // The version moved on or the replica is there already: look again.
            Ok(Settled::Dropped) => {}
            Err(e) => {
                // The repair worker finishes it now; the object keeps its old replicas.
                let mut due = entry.clone();
                due.not_before_ms = now_ms();
                queue::queue(store, due);
                failures.push(format!("copy to {target}: {e}"));
            }
        }
    }
    count(outcome, "moved", u64::from(copied > 0));
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    // 3. Every target present: drop what lies outside the plan.
    let _guard = store.locks.lock(bucket, key).await;
    let Some(mut current) = store.meta.object(bucket, key).map_err(|e| e.to_string())? else {
        return Ok(Round::Finished);
    };
    if current.version_id != record.version_id
        || !plan.targets.iter().all(|t| present_on(&current, t))
    {
        return Ok(Round::Again);
    }
    let (extra, kept): (Vec<Replica>, Vec<Replica>) = current
        .replicas
        .drain(..)
        .partition(|r| !plan.targets.contains(&r.backend));
    if extra.is_empty() {
        if copied == 0 {
            count(outcome, "unchanged", 1);
        }
        return Ok(Round::Finished);
    }
    current.replicas = kept;
    store
        .meta
        .put_object(bucket, key, &current)
        .map_err(|e| e.to_string())?;
    store.meta.sync().await.map_err(|e| e.to_string())?;
    for replica in &extra {
        if Some(replica.backend.as_str()) == keep_bytes_on {
            count(outcome, "kept", 1);
            continue;
        }
        if !remove_replica(store, replica).await {
            queue_removal(store, bucket, key, replica, "moved by a drain or rebalance");
        }
        count(outcome, "removed", 1);
    }
    Ok(Round::Finished)
}
