//! The staging phase of a write: where the version goes, one stage task per target fed by the
//! fan-out, and the wait for the write quorum.
//!
//! Each target's task does all of its part (its name, a prepared place, the body), so a slow or
//! silent target never holds up the others: the fan-out cuts it when it falls behind, and the
//! write goes on with the quorum. Stage tasks are spawned: a target still staging when the
//! client is answered (a straggler) goes on in the background and is published if its version
//! is still current when it ends. A watchdog tells a slow target from a hung one by its
//! progress: one that takes no buffer for the backend timeout, or does not finish its copy
//! within the publish timeout once the body has ended, is stopped.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hansa_backends::{naming, Backend, BackendError, PhysicalName, Staged};
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;

use super::{Settings, Store, StoreError};
use crate::meta::{Intent, IntentTarget};
use crate::replication::Progress;

/// One replica to write: a backend and the physical name the version gets there.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub backend: Arc<dyn Backend>,
    pub name: PhysicalName,
}

impl Target {
    pub fn id(&self) -> &str {
        self.backend.id()
    }
}

/// The targets of a new version of (bucket, key), each with the plain name (a target may
/// switch to the fallback name when its store cannot hold the plain one, see [`name_for`]),
/// and the write quorum.
pub(crate) fn plan_targets(
    store: &Store,
    bucket: &str,
    key: &str,
) -> Result<(Vec<Target>, usize), StoreError> {
    let plan = store.write_plan(bucket, key);
    let name = naming::physical_name(bucket, key);
    let targets = plan
        .targets
        .iter()
        .map(|id| {
            let backend = store
                .backend(id)
                .ok_or_else(|| StoreError::Internal(format!("backend {id} is not configured")))?;
            Ok(Target {
                backend: backend.clone(),
                name: name.clone(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((targets, plan.write_quorum))
}

/// The name a new version of (bucket, key) gets on `backend`: the plain one where the store
/// can hold it next to what exists (a file system cannot hold `a` next to `a/b`), the
/// fallback name otherwise.
pub(crate) async fn name_for(backend: &dyn Backend, bucket: &str, key: &str) -> PhysicalName {
    let plain = naming::physical_name(bucket, key);
    if backend.name_available(&plain).await {
        plain
    } else {
        naming::fallback_name(bucket, key)
    }
}

/// The write's intent, kept current as its targets get their handles: what recovery needs to
/// discard or publish whatever a crash interrupts. Once the write is settled it is closed, and
/// a handle that arrives after that is refused (its task discards the copy itself).
pub(crate) struct IntentLog {
    store: Arc<Store>,
    /// The intent's key in the index: one per write attempt (a completion retried after a
    /// failure writes the same version again, and each attempt settles its own intent).
    id: String,
    intent: Mutex<(Intent, bool)>,
}

impl IntentLog {
    /// Records `intent` (not flushed: a write that crashes before anything is staged leaves
    /// nothing to undo).
    pub fn open(
        store: &Arc<Store>,
        id: &str,
        intent: Intent,
    ) -> Result<Arc<IntentLog>, StoreError> {
        store.meta.record_intent(id, &intent)?;
        Ok(Arc::new(IntentLog {
            store: store.clone(),
            id: id.to_string(),
            intent: Mutex::new((intent, false)),
        }))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Notes target `i`'s handle and name; with `flush`, durably before returning (a handle
    /// that names remote state, such as an open multipart upload). False once the write is
    /// settled.
    pub async fn set_handle(
        &self,
        i: usize,
        name: &PhysicalName,
        handle: &str,
        flush: bool,
    ) -> bool {
        {
            let mut guard = self.intent.lock().await;
            let (intent, closed) = &mut *guard;
            if *closed {
                return false;
            }
            if let Some(t) = intent.targets.get_mut(i) {
                t.name = name.as_str().to_string();
                t.handle = Some(handle.to_string());
            }
            if let Err(e) = self.store.meta.record_intent(&self.id, intent) {
                tracing::warn!(error = %e, "could not record a staged copy in the intent");
            }
        }
        if flush {
            if let Err(e) = self.store.meta.sync().await {
                tracing::warn!(error = %e, "could not flush the intent");
            }
        }
        true
    }

    /// Changes the intent and records it.
    pub async fn update(&self, change: impl FnOnce(&mut Intent)) -> Result<(), StoreError> {
        let mut guard = self.intent.lock().await;
        change(&mut guard.0);
        Ok(self.store.meta.record_intent(&self.id, &guard.0)?)
    }

    /// The intent's targets as they stand.
    pub async fn targets(&self) -> Vec<IntentTarget> {
        self.intent.lock().await.0.targets.clone()
    }

    /// No handle is recorded any more.
    pub async fn close(&self) {
        self.intent.lock().await.1 = true;
    }
}

/// A stage (or composition) running on one target, watched, in the background: its outcome
/// arrives whether or not anyone is waiting for it.
pub(crate) struct StageTask<T = Staged> {
    outcome: oneshot::Receiver<Result<T, BackendError>>,
}

impl<T: Send + 'static> StageTask<T> {
    /// Spawns `work` with its watchdog. `progress` is how far it has read its body (`None`
    /// for work without one, such as a composition, which then gets the publish timeout).
    pub fn spawn(
        work: impl Future<Output = Result<T, BackendError>> + Send + 'static,
        progress: Option<Arc<Progress>>,
        settings: &Settings,
    ) -> StageTask<T> {
        let (tx, outcome) = oneshot::channel();
        let (stall, finish) = (settings.backend_timeout, settings.publish_timeout);
        tokio::spawn(async move {
            let result = watched(tokio::spawn(work), progress, stall, finish).await;
            let _ = tx.send(result);
        });
        StageTask { outcome }
    }

    /// The stage's outcome.
    pub async fn outcome(self) -> Result<T, BackendError> {
        self.outcome.await.unwrap_or_else(|_| {
            Err(BackendError::Other {
                message: "stage task lost".into(),
            })
        })
    }
}

/// Runs a stage to its end unless it hangs: no buffer taken for `stall` while the body flows,
/// or not finished `finish` after it ended (or after it started, for work without a body).
/// A hung stage is aborted, which drops its body and frees its buffers.
async fn watched<T>(
    mut task: JoinHandle<Result<T, BackendError>>,
    progress: Option<Arc<Progress>>,
    stall: Duration,
    finish: Duration,
) -> Result<T, BackendError> {
    let started = Instant::now();
    let mut ended_at: Option<Instant> = None;
    loop {
        let hung = match &progress {
            Some(p) if p.ended() => ended_at.get_or_insert_with(Instant::now).elapsed() > finish,
            Some(p) => p.idle() > stall,
            None => started.elapsed() > finish,
        };
        if hung {
            task.abort();
            return Err(BackendError::Unavailable {
                message: "the copy made no progress and was stopped".into(),
            });
        }
        tokio::select! {
            joined = &mut task => {
                return joined.unwrap_or_else(|e| Err(BackendError::Other {
                    message: format!("stage task failed: {e}"),
                }));
            }
            _ = tokio::time::sleep(WATCHDOG_TICK) => {}
        }
    }
}

const WATCHDOG_TICK: Duration = Duration::from_millis(100);

/// What a target's stage task gives: the name it chose and its staged copy.
pub(crate) type StagedCopy = (PhysicalName, Staged);

/// Where one target stands when the write commits.
pub(crate) enum Slot {
    /// The copy is staged durably.
    Staged(Staged),
    /// Still staging: finishes in the background.
    Straggling(StageTask<StagedCopy>),
    /// No copy here.
    Missing(BackendError),
}

/// A target of a write and how it stands.
pub(crate) struct TargetSlot {
    pub target: Target,
    pub slot: Slot,
}

impl TargetSlot {
    pub fn is_staged(&self) -> bool {
        matches!(self.slot, Slot::Staged(_))
    }
}

/// How long the others get once the quorum is reached: at most the configured grace, and at
/// most half the time the write has taken so far (a slow replica never doubles a write).
pub(crate) fn grace(settings: &Settings, started: Instant) -> Duration {
    settings.straggler_grace.min(started.elapsed() / 2)
}

/// The first of `running` to finish, with its position, or `None` once `deadline` (if there
/// is one) has passed. `running` must not be empty.
pub(crate) async fn first_or_deadline<F: Future + Unpin>(
    running: impl IntoIterator<Item = F>,
    deadline: Option<&mut std::pin::Pin<Box<tokio::time::Sleep>>>,
) -> Option<(F::Output, usize)> {
    let next = futures::future::select_all(running);
    match deadline {
        Some(deadline) => tokio::select! {
            (result, pos, _) = next => Some((result, pos)),
            _ = deadline.as_mut() => None,
        },
        None => {
            let (result, pos, _) = next.await;
            Some((result, pos))
        }
    }
}

/// Waits for the targets' stages until the quorum has staged, then the grace for the others;
/// those still running then stay `Straggling`. Returns early when the quorum can no longer be
/// made.
pub(crate) async fn await_quorum(
    mut slots: Vec<TargetSlot>,
    quorum: usize,
    settings: &Settings,
    started: Instant,
) -> Vec<TargetSlot> {
    let mut pending: Vec<(usize, StageTask<StagedCopy>)> = Vec::new();
    for (i, slot) in slots.iter_mut().enumerate() {
        if matches!(slot.slot, Slot::Straggling(_)) {
            if let Slot::Straggling(task) =
                std::mem::replace(&mut slot.slot, Slot::Missing(BackendError::Aborted))
            {
                pending.push((i, task));
            }
        }
    }
    let mut staged = slots.iter().filter(|s| s.is_staged()).count();
    let mut deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    while !pending.is_empty() && staged + pending.len() >= quorum {
        if staged >= quorum && deadline.is_none() {
            deadline = Some(Box::pin(tokio::time::sleep(grace(settings, started))));
        }
        let next = first_or_deadline(
            pending.iter_mut().map(|(_, t)| &mut t.outcome),
            deadline.as_mut(),
        );
        let Some((result, pos)) = next.await else {
            break;
        };
        let (i, _) = pending.swap_remove(pos);
        match result {
            Ok(Ok((name, copy))) => {
                staged += 1;
                slots[i].target.name = name;
                slots[i].slot = Slot::Staged(copy);
            }
            Ok(Err(e)) => slots[i].slot = Slot::Missing(e),
            Err(_) => {
                slots[i].slot = Slot::Missing(BackendError::Other {
                    message: "stage task lost".into(),
                })
            }
        }
    }
    for (i, task) in pending {
        slots[i].slot = Slot::Straggling(task);
    }
    slots
}
