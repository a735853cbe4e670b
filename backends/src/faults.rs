//! A backend wrapper that injects faults: calls fail, hang, slow down, corrupt bytes or cut
//! a stream short. It wraps a real backend, so everything it does not break is the real
//! thing, and its faults can be switched at run time ([`FaultSwitch`]) by tests, or set in the
//! configuration for a demonstration (`faults = { writes = "fail" }` on a `[[backend]]`).
//!
//! Faults are chosen per class of operation, because a provider rarely fails at everything at
//! once: reads (`get`, `head`), writes (bodies going in and what prepares them: `prepare`,
//! `stage`, `stage_upload`, `create_upload`, `put_part`, `restamp`), publishes (making a write
//! visible: `publish`), deletes (`delete`, `discard`, `abort_upload`, `collect_staged`) and
//! lists.

use crate::backend::{
    Backend, ByteStream, CompletedPart, GetResult, ObjectAttributes, ObjectInfo, PutResult, Staged,
    Stamp,
};
use crate::error::BackendError;
use crate::naming::PhysicalName;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What happens to one class of operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The call goes through untouched.
    #[default]
    None,
    /// The call fails at once as if the provider were unreachable.
    Fail,
    /// The call never returns (a silent provider, a hung disk): only the caller's timeout ends
    /// it.
    Hang,
    /// Every call, and every chunk of a body, is delayed by this many milliseconds.
    SlowMs(u64),
    /// Bytes are changed on their way: the first byte of a read, or of a write, is inverted.
    Corrupt,
    /// A body stream fails after this many bytes (a connection cut mid-transfer).
    CutAfter(u64),
}

/// The faults of one backend, by class of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    pub reads: Fault,
    pub writes: Fault,
    pub publishes: Fault,
    pub deletes: Fault,
    pub lists: Fault,
}

impl FaultPlan {
    /// Every class of operations with the same fault.
    pub fn all(fault: Fault) -> Self {
        FaultPlan {
            reads: fault,
            writes: fault,
            publishes: fault,
            deletes: fault,
            lists: fault,
        }
    }
}

/// The run-time switch of a [`FaultyBackend`]: shared, so a test flips faults while the
/// gateway runs.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    plan: RwLock<FaultPlan>,
}

impl FaultSwitch {
    pub fn new(plan: FaultPlan) -> Self {
        FaultSwitch {
            plan: RwLock::new(plan),
        }
    }

    pub fn set(&self, plan: FaultPlan) {
        *self.plan.write().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    /// Changes one class of operations, keeping the others.
    pub fn update(&self, change: impl FnOnce(&mut FaultPlan)) {
        change(&mut self.plan.write().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn clear(&self) {
        self.set(FaultPlan::default());
    }

    pub fn plan(&self) -> FaultPlan {
        *self.plan.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A backend whose calls go through the faults of its [`FaultSwitch`].
#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    switch: Arc<FaultSwitch>,
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>, switch: Arc<FaultSwitch>) -> Self {
        FaultyBackend { inner, switch }
    }

    pub fn switch(&self) -> &Arc<FaultSwitch> {
        &self.switch
    }

    fn injected(&self, what: &str) -> BackendError {
        BackendError::Unavailable {
            message: format!("backend {}: injected fault on {what}", self.inner.id()),
        }
    }

    /// The fault's effect before a call: an error, a delay, or never.
    async fn before(&self, fault: Fault, what: &str) -> Result<(), BackendError> {
        match fault {
            Fault::Fail => Err(self.injected(what)),
            Fault::Hang => futures::future::pending().await,
            Fault::SlowMs(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Fault::None | Fault::Corrupt | Fault::CutAfter(_) => Ok(()),
        }
    }
}

/// Where a [`Fault::CutAfter`] stream stands.
enum Cut {
    Running,
    Pending,
    Done,
}

/// Applies a fault to the chunks of a body: delays, a changed first byte, a cut.
fn faulty_stream(body: ByteStream, fault: Fault, label: String) -> ByteStream {
    match fault {
        Fault::None | Fault::Fail => body,
        Fault::Hang => futures::stream::pending().boxed(),
        Fault::SlowMs(ms) => body
            .then(move |chunk| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                chunk
            })
            .boxed(),
        Fault::Corrupt => {
            let mut first = true;
            body.map(move |chunk| {
                let chunk = chunk?;
                if !first || chunk.is_empty() {
                    return Ok(chunk);
                }
                first = false;
                let mut changed = BytesMut::from(&chunk[..]);
                changed[0] = !changed[0];
                Ok(changed.freeze())
            })
            .boxed()
        }
        Fault::CutAfter(limit) => {
            // The bytes up to the limit pass; the first byte beyond it turns into an error
            // that ends the stream.
            let cut = move || BackendError::Unavailable {
                message: format!("{label}: injected cut after {limit} bytes"),
            };
            futures::stream::unfold(
                (body, 0u64, Cut::Running),
                move |(mut body, passed, state)| {
                    let cut = cut.clone();
                    async move {
                        match state {
                            Cut::Done => return None,
                            Cut::Pending => return Some((Err(cut()), (body, passed, Cut::Done))),
                            Cut::Running => {}
                        }
                        let chunk: Bytes = match body.next().await? {
                            Ok(chunk) => chunk,
                            Err(e) => return Some((Err(e), (body, passed, Cut::Done))),
                        };
                        let room = (limit - passed).min(chunk.len() as u64) as usize;
                        if room == chunk.len() {
                            return Some((Ok(chunk), (body, passed + room as u64, Cut::Running)));
                        }
                        if room == 0 {
                            return Some((Err(cut()), (body, passed, Cut::Done)));
                        }
                        // Part of this chunk passes; the next poll reports the cut.
                        Some((Ok(chunk.slice(..room)), (body, limit, Cut::Pending)))
                    }
                },
            )
            .boxed()
        }
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn prepare(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError> {
        self.before(self.switch.plan().writes, "prepare").await?;
        self.inner.prepare(name, attrs, stamp).await
    }

    async fn stage(
        &self,
        name: &PhysicalName,
        prepared: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
        body: ByteStream,
    ) -> Result<Staged, BackendError> {
        let fault = self.switch.plan().writes;
        self.before(fault, "stage").await?;
        let body = faulty_stream(body, fault, format!("stage {name}"));
        self.inner.stage(name, prepared, attrs, stamp, body).await
    }

    async fn stage_upload(
        &self,
        name: &PhysicalName,
        upload: &str,
        parts: &[CompletedPart],
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<Staged, BackendError> {
        self.before(self.switch.plan().writes, "stage upload")
            .await?;
        self.inner
            .stage_upload(name, upload, parts, attrs, stamp)
            .await
    }

    async fn publish(
        &self,
        name: &PhysicalName,
        staged: &str,
        stamp: &Stamp,
    ) -> Result<PutResult, BackendError> {
        self.before(self.switch.plan().publishes, "publish").await?;
        self.inner.publish(name, staged, stamp).await
    }

    async fn persist(&self, name: &PhysicalName, staged: &Staged) -> Result<Staged, BackendError> {
        self.before(self.switch.plan().writes, "persist").await?;
        self.inner.persist(name, staged).await
    }

    async fn discard(&self, name: &PhysicalName, handle: &str) -> Result<(), BackendError> {
        self.before(self.switch.plan().deletes, "discard").await?;
        self.inner.discard(name, handle).await
    }

    async fn collect_staged(
        &self,
        older_than: Duration,
        live: &HashSet<String>,
    ) -> Result<usize, BackendError> {
        self.before(self.switch.plan().deletes, "collect staged")
            .await?;
        self.inner.collect_staged(older_than, live).await
    }

    async fn restamp(
        &self,
        name: &PhysicalName,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<ObjectInfo, BackendError> {
        self.before(self.switch.plan().writes, "restamp").await?;
        self.inner.restamp(name, attrs, stamp).await
    }

    async fn copy(
        &self,
        from: &PhysicalName,
        to: &PhysicalName,
    ) -> Result<PutResult, BackendError> {
        self.before(self.switch.plan().writes, "copy").await?;
        self.inner.copy(from, to).await
    }

    async fn get(
        &self,
        name: &PhysicalName,
        range: Option<Range<u64>>,
        if_match: Option<&str>,
    ) -> Result<GetResult, BackendError> {
        let fault = self.switch.plan().reads;
        self.before(fault, "get").await?;
        let mut got = self.inner.get(name, range, if_match).await?;
        got.body = faulty_stream(got.body, fault, format!("get {name}"));
        Ok(got)
    }

    async fn head(&self, name: &PhysicalName) -> Result<ObjectInfo, BackendError> {
        self.before(self.switch.plan().reads, "head").await?;
        self.inner.head(name).await
    }

    async fn delete(&self, name: &PhysicalName) -> Result<(), BackendError> {
        self.before(self.switch.plan().deletes, "delete").await?;
        self.inner.delete(name).await
    }

    fn list(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo, BackendError>> {
        let fault = self.switch.plan().lists;
        let prefix = prefix.to_string();
        futures::stream::once(async move {
            match self.before(fault, "list").await {
                Ok(()) => self.inner.list(&prefix),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn check(&self) -> Result<(), BackendError> {
        let plan = self.switch.plan();
        self.before(plan.writes, "check").await?;
        self.before(plan.reads, "check").await?;
        self.inner.check().await
    }

    async fn create_upload(
        &self,
        name: &PhysicalName,
        upload_id: &str,
        attrs: &ObjectAttributes,
        stamp: &Stamp,
    ) -> Result<String, BackendError> {
        self.before(self.switch.plan().writes, "create upload")
            .await?;
        self.inner
            .create_upload(name, upload_id, attrs, stamp)
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
        let fault = self.switch.plan().writes;
        self.before(fault, "put part").await?;
        let body = faulty_stream(body, fault, format!("part {part_number} of {name}"));
        self.inner
            .put_part(name, upload, part_number, size, body)
            .await
    }

    async fn abort_upload(&self, name: &PhysicalName, upload: &str) -> Result<(), BackendError> {
        self.before(self.switch.plan().deletes, "abort upload")
            .await?;
        self.inner.abort_upload(name, upload).await
    }

    async fn name_available(&self, name: &PhysicalName) -> bool {
        self.inner.name_available(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::{body, collect, put_bytes, stamp};
    use crate::ObjectStoreBackend;

    fn faulty() -> (FaultyBackend, Arc<FaultSwitch>) {
        let switch = Arc::new(FaultSwitch::default());
        let inner = Arc::new(ObjectStoreBackend::memory("mem"));
        (FaultyBackend::new(inner, switch.clone()), switch)
    }

    #[tokio::test]
    async fn passes_everything_through_without_faults() {
        let (b, _) = faulty();
        crate::testsuite::run_all(&b).await;
    }

    #[tokio::test]
    async fn fail_hang_and_slow_apply_to_their_class_only() {
        let (b, switch) = faulty();
        let (name, _) = put_bytes(&b, "bkt", "k", "v1", b"hello").await;
        switch.update(|p| p.writes = Fault::Fail);
        let failed = b
            .put(
                &name,
                &ObjectAttributes::default(),
                &stamp("bkt", "k", "v2", 3),
                body(b"new", 3),
            )
            .await;
        assert!(matches!(failed, Err(BackendError::Unavailable { .. })));
        // Reads still work, and the failed write changed nothing.
        let got = b.get(&name, None, None).await.expect("get");
        assert_eq!(collect(got.body).await.expect("body"), b"hello");

        switch.set(FaultPlan {
            reads: Fault::Hang,
            ..Default::default()
        });
        let hung = tokio::time::timeout(Duration::from_millis(100), b.head(&name)).await;
        assert!(hung.is_err(), "a hung read never answers");

        switch.set(FaultPlan {
            reads: Fault::SlowMs(30),
            ..Default::default()
        });
        let started = std::time::Instant::now();
        b.head(&name).await.expect("slow head");
        assert!(started.elapsed() >= Duration::from_millis(30));
        switch.clear();
        assert_eq!(switch.plan(), FaultPlan::default());
    }

    #[tokio::test]
    async fn corrupt_and_cut_change_the_bytes_on_their_way() {
        let (b, switch) = faulty();
        let (name, _) = put_bytes(&b, "bkt", "k", "v1", b"abcdef").await;
        switch.update(|p| p.reads = Fault::Corrupt);
        let got = b.get(&name, None, None).await.expect("get");
        let read = collect(got.body).await.expect("body");
        assert_eq!(read.len(), 6);
        assert_eq!(read[0], !b'a');
        assert_eq!(&read[1..], b"bcdef");

        switch.update(|p| p.reads = Fault::CutAfter(4));
        let got = b.get(&name, None, None).await.expect("get");
        let mut chunks = got.body;
        let mut seen = Vec::new();
        let mut failed = false;
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(c) => seen.extend_from_slice(&c),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "the stream fails after the cut");
        assert_eq!(seen, b"abcd");

        // A corrupted write stores other bytes than it was given.
        switch.set(FaultPlan {
            writes: Fault::Corrupt,
            ..Default::default()
        });
        b.put(
            &name,
            &ObjectAttributes::default(),
            &stamp("bkt", "k", "v2", 3),
            body(b"xyz", 3),
        )
        .await
        .expect("corrupted put still succeeds");
        switch.clear();
        let got = b.get(&name, None, None).await.expect("get");
        assert_eq!(collect(got.body).await.expect("body"), [!b'x', b'y', b'z']);
    }

    #[test]
    fn plans_parse_from_toml() {
        let plan: FaultPlan = toml::from_str(
            "writes = \"fail\"\nreads = { slow_ms = 20 }\nlists = { cut_after = 9 }",
        )
        .expect("parse");
        assert_eq!(plan.writes, Fault::Fail);
        assert_eq!(plan.reads, Fault::SlowMs(20));
        assert_eq!(plan.lists, Fault::CutAfter(9));
        assert_eq!(plan.publishes, Fault::None);
        assert!(toml::from_str::<FaultPlan>("writes = \"explode\"").is_err());
        assert!(toml::from_str::<FaultPlan>("wrties = \"fail\"").is_err());
    }
}
