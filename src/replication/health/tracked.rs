//! The wrapper that puts a backend under health tracking: every call reports its outcome and
//! latency; while the circuit is open, calls fail at once without touching the provider.
//!
//! Timeouts are the callers' (`replication::bounded`, the stage watchdog, the read's stall
//! limit): they drop the call's future. A guard in each call sees the drop and tells a hung
//! backend from a client that hung up by how long it was the backend's turn: a call dropped
//! after [`HealthSettings::hung_after`](super::HealthSettings::hung_after) without an answer
//! is a failure; one dropped sooner counts for nothing. For calls that read a body (stage,
//! parts) the time the backend spends waiting for the client's bytes is not its turn; for
//! bodies read from the backend (get) only the time a reader waits for the next chunk is.

use std::collections::HashSet;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use hansa_backends::{
    Backend, BackendError, ByteStream, CompletedPart, GetResult, ObjectAttributes, ObjectInfo,
    PhysicalName, PutResult, Staged, Stamp,
};

use super::{judge, Entry, Health, Outcome};
use crate::metrics;

/// A backend whose calls are judged by a [`Health`] registry.
#[derive(Debug)]
pub struct HealthTracked {
    inner: Arc<dyn Backend>,
    entry: Arc<Entry>,
    health: Arc<Health>,
    /// Bytes streamed to the backend and read from it (`hansa_backend_*_bytes_total`).
    written: metrics::ByteCounter,
    read: metrics::ByteCounter,
}

/// The calls, for messages and for how each is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Prepare,
    Stage,
    StageUpload,
    Publish,
    Persist,
    Discard,
    CollectStaged,
    Restamp,
    Copy,
    Get,
    Head,
    Delete,
    List,
    CreateUpload,
    PutPart,
    AbortUpload,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Prepare => "prepare",
            Op::Stage => "stage",
            Op::StageUpload => "stage upload",
            Op::Publish => "publish",
            Op::Persist => "persist",
            Op::Discard => "discard",
            Op::CollectStaged => "collect staged",
            Op::Restamp => "restamp",
            Op::Copy => "copy",
            Op::Get => "get",
            Op::Head => "head",
            Op::Delete => "delete",
            Op::List => "list",
            Op::CreateUpload => "create upload",
            Op::PutPart => "put part",
            Op::AbortUpload => "abort upload",
        }
    }

    /// Calls whose time says how the backend answers: one small request each. Calls that
    /// move a body or compose, copy or scan stay out of the latency window (their time is
    /// the size of the work).
    fn quick(self) -> bool {
        matches!(
            self,
            Op::Prepare
                | Op::Discard
                | Op::Restamp
                | Op::Get
                | Op::Head
                | Op::Delete
                | Op::CreateUpload
                | Op::AbortUpload
        )
    }

    /// The call's `call` label in `hansa_backend_request_duration_seconds`.
    fn metric_name(self) -> &'static str {
        match self {
            Op::Prepare => "prepare",
            Op::Stage => "stage",
            Op::StageUpload => "stage_upload",
            Op::Publish => "publish",
            Op::Persist => "persist",
            Op::Discard => "discard",
            Op::CollectStaged => "collect_staged",
            Op::Restamp => "restamp",
            Op::Copy => "copy",
            Op::Get => "get",
            Op::Head => "head",
            Op::Delete => "delete",
            Op::List => "list",
            Op::CreateUpload => "create_upload",
            Op::PutPart => "put_part",
            Op::AbortUpload => "abort_upload",
        }
    }

    /// Whether a drop after `hung_after` means the call hung. Scans (list, collecting staged
    /// copies) may rightly run long and are stopped with the gateway.
    fn may_hang(self) -> bool {
        !matches!(self, Op::List | Op::CollectStaged)
    }
}

impl HealthTracked {
    pub fn new(inner: Arc<dyn Backend>, health: Arc<Health>) -> Self {
        let entry = health.entry(inner.id());
        HealthTracked {
            written: metrics::backend_written(inner.id()),
            read: metrics::backend_read(inner.id()),
            inner,
            entry,
            health,
        }
    }

    /// The backend under tracking.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// Starts a call, or refuses it while the circuit is open.
    fn admit(&self, op: Op) -> Result<Call, BackendError> {
        if self.entry.refusing.load(Ordering::Relaxed) {
            self.entry.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BackendError::Unavailable {
                message: format!(
                    "circuit open: backend {} is skipped until a probe passes ({})",
                    self.inner.id(),
                    op.name()
                ),
            });
        }
        self.entry.requests.fetch_add(1, Ordering::Relaxed);
        self.entry.inflight.fetch_add(1, Ordering::Relaxed);
        Ok(Call {
            health: self.health.clone(),
            entry: self.entry.clone(),
            op,
            turn: Arc::new(Turn::new()),
            settled: false,
        })
    }

    /// Runs a call without a body under tracking.
    async fn run<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let guard = self.admit(op)?;
        let result = call.await;
        guard.settle(&result);
        result
    }
}

/// Whose turn a call is: the backend's (since when), or the client's, whose body the backend
/// waits for. Shared by a call's guard and the body stream it reads.
#[derive(Debug)]
struct Turn {
    started: Instant,
    /// Microseconds after `started` at which the backend's current turn began.
    backend_since: AtomicU64,
    waiting_for_input: AtomicBool,
}

impl Turn {
    fn new() -> Self {
        Turn {
            started: Instant::now(),
            backend_since: AtomicU64::new(0),
            waiting_for_input: AtomicBool::new(false),
        }
    }

    fn backends_turn(&self) {
        let at = self.started.elapsed().as_micros() as u64;
        self.backend_since.store(at, Ordering::Relaxed);
        self.waiting_for_input.store(false, Ordering::Relaxed);
    }

    /// How long the backend has had its turn, `None` while it waits for the client.
    fn backend_waited(&self) -> Option<Duration> {
        if self.waiting_for_input.load(Ordering::Relaxed) {
            return None;
        }
        let since = Duration::from_micros(self.backend_since.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(since))
    }
}

/// One call in flight: settled with its result, or judged by its drop.
struct Call {
    health: Arc<Health>,
    entry: Arc<Entry>,
    op: Op,
    turn: Arc<Turn>,
    settled: bool,
}

impl Call {
    fn settle<T>(mut self, result: &Result<T, BackendError>) {
        self.settled = true;
        metrics::backend_call(
            &self.entry.id,
            self.op.metric_name(),
            self.turn.started.elapsed(),
        );
        let mut outcome = match result {
            Ok(_) => Outcome::Healthy { error: None },
            Err(e) => judge(e),
        };
        // A store that cannot restamp says so with `Other`: an answer, not a failure.
        if self.op == Op::Restamp && matches!(outcome, Outcome::Failure { kind: "other", .. }) {
            outcome = Outcome::Healthy {
                error: Some("other"),
            };
        }
        // Quick failures (a refused connection) say nothing about how fast the backend
        // answers; only answers go into the latency window.
        let latency = (self.op.quick() && matches!(outcome, Outcome::Healthy { .. }))
            .then(|| self.turn.started.elapsed());
        self.health.record(&self.entry, outcome, latency);
    }

    /// The body the backend reads, with the time it waits for it taken off its turn.
    fn watch_input(&self, body: ByteStream) -> ByteStream {
        InputBody {
            body,
            turn: self.turn.clone(),
        }
        .boxed()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.entry.inflight.fetch_sub(1, Ordering::Relaxed);
        if self.settled || !self.op.may_hang() {
            return;
        }
        let hung_after = self.health.settings().hung_after;
        match self.turn.backend_waited() {
            Some(waited) if waited >= hung_after => {
                metrics::backend_call(
                    &self.entry.id,
                    self.op.metric_name(),
                    self.turn.started.elapsed(),
                );
                let latency = self.op.quick().then_some(waited);
                self.health.record(
                    &self.entry,
                    Outcome::Failure {
                        kind: "timeout",
                        message: format!(
                            "{}: no answer for {waited:.1?}, given up by the caller",
                            self.op.name()
                        ),
                    },
                    latency,
                );
            }
            // Dropped sooner, or while waiting for the client's bytes: the caller went away.
            _ => {}
        }
    }
}

/// A body on its way into the backend: each time the backend asks for bytes the client has
/// not sent yet, the turn is the client's until they arrive.
struct InputBody {
    body: ByteStream,
    turn: Arc<Turn>,
}

impl Stream for InputBody {
    type Item = Result<bytes::Bytes, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.body.poll_next_unpin(cx) {
            Poll::Pending => {
                self.turn.waiting_for_input.store(true, Ordering::Relaxed);
                Poll::Pending
            }
            ready => {
                self.turn.backends_turn();
                ready
            }
        }
    }
}

/// A body read from the backend: an error in it is judged like a call's, and a reader that
/// gives up after waiting `hung_after` for the next chunk found the backend hung. A reader
/// that stops asking (a client that stopped reading) is not the backend's doing.
pub(super) fn watch_output(body: ByteStream, health: Arc<Health>, entry: Arc<Entry>) -> ByteStream {
    OutputBody {
        body,
        health,
        entry,
        waiting_since: None,
    }
    .boxed()
}

struct OutputBody {
    body: ByteStream,
    health: Arc<Health>,
    entry: Arc<Entry>,
    /// Since when the reader waits for the backend.
    waiting_since: Option<Instant>,
}

impl Stream for OutputBody {
    type Item = Result<bytes::Bytes, BackendError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.body.poll_next_unpin(cx);
        match &polled {
            Poll::Pending => {
                self.waiting_since.get_or_insert_with(Instant::now);
            }
            Poll::Ready(item) => {
                self.waiting_since = None;
                if let Some(Err(e)) = item {
                    let outcome = judge(e);
                    self.health.record(&self.entry, outcome, None);
                }
            }
        }
        polled
    }
}

impl Drop for OutputBody {
    fn drop(&mut self) {
        let Some(since) = self.waiting_since else {
            return;
        };
        let waited = since.elapsed();
        if waited >= self.health.settings().hung_after {
            self.health.record(
                &self.entry,
                Outcome::Failure {
                    kind: "timeout",
                    message: format!("read: no bytes for {waited:.1?}, given up by the reader"),
                },
                None,
            );
        }
    }
}

/// `body`, its chunks' bytes added to `counter` as they pass.
fn count_bytes(body: ByteStream, counter: &metrics::ByteCounter) -> ByteStream {
    let counter = counter.clone();
    body.inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counter.add(bytes.len() as u64);
        }
    })
    .boxed()
}

#[async_trait]
impl Backend for HealthTracked {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn prepare(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError> {
        self.run(Op::Prepare, self.inner.prepare(name, attrs, stamp))
            .await
    }

    async fn stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged, BackendError> {
        let guard = self.admit(Op::Stage)?;
        let body = guard.watch_input(count_bytes(body, &self.written));
        let result = self.inner.stage(name, prepared, attrs, stamp, body).await;
        guard.settle(&result);
        result
    }

    async fn stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged, BackendError> {
        self.run(
            Op::StageUpload,
            self.inner.stage_upload(name, upload, parts, attrs, stamp),
        )
        .await
    }

    async fn publish(
        &self,
        name: &PhysicalName,
        staged: &str,
        stamp: &Stamp,
    ) -> Result<PutResult, BackendError> {
        self.run(Op::Publish, self.inner.publish(name, staged, stamp))
            .await
    }

    async fn persist(&self, name: &PhysicalName, staged: &Staged) -> Result<Staged, BackendError> {
        self.run(Op::Persist, self.inner.persist(name, staged))
            .await
    }

    async fn discard(&self, name: &PhysicalName, handle: &str) -> Result<(), BackendError> {
        self.run(Op::Discard, self.inner.discard(name, handle))
            .await
    }

    async fn collect_staged(
        &self,
        older_than: Duration,
        live: &HashSet<String>,
    ) -> Result<usize, BackendError> {
        self.run(
            Op::CollectStaged,
            self.inner.collect_staged(older_than, live),
        )
        .await
    }

    async fn restamp(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<ObjectInfo, BackendError> {
        self.run(Op::Restamp, self.inner.restamp(name, attrs, stamp))
            .await
    }

    async fn get(
        &self,
        name: &PhysicalName,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetResult, BackendError> {
        let mut got = self
            .run(Op::Get, self.inner.get(name, range, if_match))
            .await?;
        let body = watch_output(got.body, self.health.clone(), self.entry.clone());
        got.body = count_bytes(body, &self.read);
        Ok(got)
    }

    async fn head(&self, name: &PhysicalName) -> Result<ObjectInfo, BackendError> {
        self.run(Op::Head, self.inner.head(name)).await
    }

    async fn delete(&self, name: &PhysicalName) -> Result<(), BackendError> {
        self.run(Op::Delete, self.inner.delete(name)).await
    }

    async fn copy(
        &self,
        from: &PhysicalName,
        to: &PhysicalName,
    ) -> Result<PutResult, BackendError> {
        self.run(Op::Copy, self.inner.copy(from, to)).await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo, BackendError>> {
        let guard = match self.admit(Op::List) {
            Ok(guard) => guard,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        // The listing is a stream: the call is done once it exists; errors in it are judged
        // as they come.
        guard.settle(&Ok::<(), BackendError>(()));
        let health = self.health.clone();
        let entry = self.entry.clone();
        self.inner
            .list(prefix)
            .map(move |item| {
                if let Err(e) = &item {
                    health.record(&entry, judge(e), None);
                }
                item
            })
            .boxed()
    }

    /// Not tracked and never refused: this is the probe ([`Health::run_probes`] judges it),
    /// and it must reach the provider while the circuit is open.
    async fn check(&self) -> Result<(), BackendError> {
        self.inner.check().await
    }

    async fn create_upload(
        &self,
        name: &PhysicalName,
        upload_id: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError> {
        self.run(
            Op::CreateUpload,
            self.inner.create_upload(name, upload_id, attrs, stamp),
        )
        .await
    }

    async fn put_part(
        &self,
        name: &PhysicalName,
        upload: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<PutResult, BackendError> {
        let guard = self.admit(Op::PutPart)?;
        let body = guard.watch_input(count_bytes(body, &self.written));
        let result = self
            .inner
            .put_part(name, upload, part_number, size, body)
            .await;
        guard.settle(&result);
        result
    }

    async fn abort_upload(&self, name: &PhysicalName, upload: &str) -> Result<(), BackendError> {
        self.run(Op::AbortUpload, self.inner.abort_upload(name, upload))
            .await
    }

    /// While the circuit is open the provider is not asked: the write that asks is refused
    /// at its next call anyway.
    async fn name_available(&self, name: &PhysicalName) -> bool {
        if self.entry.refusing.load(Ordering::Relaxed) {
            return true;
        }
        self.inner.name_available(name).await
    }
}
