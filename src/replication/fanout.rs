//! The write fan-out: the client's body is read once, cut into buffers of bounded size, and
//! each buffer is shared (not copied) by every replica's writer. Memory per request is one
//! buffer being filled plus at most one queued per target: O(chunk × targets), never O(object).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use hansa_backends::{Backend, BackendError, ObjectAttributes, PhysicalName, PutResult, Stamp};
use tokio::sync::mpsc;

use super::{InflightBudget, ReplicationError};

/// How a body flows: buffer size, the global budget, and how long a stalled client may wait.
pub struct Flow<'a> {
    pub chunk_bytes: usize,
    pub budget: &'a InflightBudget,
    pub idle_timeout: Duration,
}

/// One replica to write.
#[derive(Clone, Debug)]
pub struct Target {
    pub backend: Arc<dyn Backend>,
    pub name: PhysicalName,
}

#[derive(Debug)]
pub struct PutOutcome {
    pub target: Target,
    pub result: Result<PutResult, BackendError>,
}

/// Streams `body` to every target at once. Returns each target's outcome, and the body's own
/// error if reading it failed (in which case every target was told to abort).
///
/// `expected_len` (when known) keeps small bodies from reserving a whole chunk of budget.
/// `at_end` runs once the body has ended cleanly, before any target sees the end of its
/// stream (the moment to complete the stamp's late facts).
pub async fn fan_out<S, E>(
    body: S,
    expected_len: Option<u64>,
    targets: Vec<Target>,
    attrs: &ObjectAttributes,
    stamp: &Stamp,
    flow: &Flow<'_>,
    at_end: E,
) -> (Vec<PutOutcome>, Result<(), ReplicationError>)
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
    E: FnOnce() + Send,
{
    fan_out_with(
        body,
        expected_len,
        targets,
        flow,
        at_end,
        |target, stream| {
            Box::pin(async move {
                let result = target.backend.put(&target.name, attrs, stamp, stream).await;
                PutOutcome { target, result }
            })
        },
    )
    .await
}

/// [`fan_out`] with the write each target does given by `write` (a `put`, a part upload).
pub async fn fan_out_with<'a, S, E, W>(
    body: S,
    expected_len: Option<u64>,
    targets: Vec<Target>,
    flow: &Flow<'_>,
    at_end: E,
    write: W,
) -> (Vec<PutOutcome>, Result<(), ReplicationError>)
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
    E: FnOnce() + Send,
    W: Fn(Target, hansa_backends::ByteStream) -> BoxFuture<'a, PutOutcome>,
{
    let mut senders = Vec::with_capacity(targets.len());
    let mut writers = Vec::with_capacity(targets.len());
    for target in targets {
        // Capacity 1: a target holds at most one queued buffer beyond the one it is writing.
        let (tx, rx) = mpsc::channel::<Result<Bytes, BackendError>>(1);
        senders.push(tx);
        writers.push(write(target, tokio_stream_from(rx)));
    }
    let reader = pump(body, expected_len, senders, flow, at_end);
    let (read_result, outcomes) = tokio::join!(reader, futures::future::join_all(writers));
    (outcomes, read_result)
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, BackendError>>,
) -> hansa_backends::ByteStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Reads the body into budgeted buffers and hands each full buffer to every live target.
async fn pump<S>(
    body: S,
    expected_len: Option<u64>,
    mut senders: Vec<mpsc::Sender<Result<Bytes, BackendError>>>,
    flow: &Flow<'_>,
    at_end: impl FnOnce(),
) -> Result<(), ReplicationError>
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut remaining_hint = expected_len;
    let mut seen: u64 = 0;
    // The part of the last piece that did not fit the previous buffer: buffers are filled to
    // exactly their size, never grown (a grown Vec would briefly double its memory).
    let mut carry: Option<Bytes> = None;
    loop {
        let want = match remaining_hint {
            // More than announced (only when the length was a hint): full buffers.
            Some(0) if seen > 0 => flow.chunk_bytes,
            Some(r) => r.clamp(1, flow.chunk_bytes as u64) as usize,
            None => flow.chunk_bytes,
        };
        let reservation = flow.budget.reserve(want).await;
        let mut buf: Vec<u8> = Vec::with_capacity(want);
        let mut ended = false;
        while buf.len() < want {
            let data = match carry.take() {
                Some(data) => data,
                None => {
                    let next = match tokio::time::timeout(flow.idle_timeout, body.next()).await {
                        Ok(next) => next,
                        Err(_) => Some(Err(ReplicationError::BodyStalled(flow.idle_timeout))),
                    };
                    match next {
                        Some(Ok(data)) => data,
                        Some(Err(e)) => {
                            abort_all(&senders).await;
                            return Err(e);
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    }
                }
            };
            let room = want - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                carry = Some(data.slice(room..));
            } else {
                buf.extend_from_slice(&data);
            }
        }
        seen += buf.len() as u64;
        if let Some(r) = remaining_hint.as_mut() {
            *r = r.saturating_sub(buf.len() as u64);
        }
        if !buf.is_empty() {
            let chunk = reservation.freeze(buf);
            send_to_all(&mut senders, chunk).await;
        }
        if ended || senders.is_empty() {
            if ended {
                at_end();
            }
            // Dropping the senders ends each target's stream cleanly: that is their commit.
            return Ok(());
        }
    }
}

async fn send_to_all(senders: &mut Vec<mpsc::Sender<Result<Bytes, BackendError>>>, chunk: Bytes) {
    let mut live = Vec::with_capacity(senders.len());
    for tx in senders.drain(..) {
        // A closed channel means that target already failed; its outcome says why.
        if tx.send(Ok(chunk.clone())).await.is_ok() {
            live.push(tx);
        }
    }
    *senders = live;
}

async fn abort_all(senders: &[mpsc::Sender<Result<Bytes, BackendError>>]) {
    for tx in senders {
        let _ = tx.send(Err(BackendError::Aborted)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use hansa_backends::{GetResult, ObjectInfo, ObjectStoreBackend};
    use std::ops::Range;

    /// A real in-memory backend whose writes fail: fault injection, not a fake.
    #[derive(Debug)]
    struct FailingPuts(ObjectStoreBackend);

    #[async_trait]
    impl Backend for FailingPuts {
        fn id(&self) -> &str {
            self.0.id()
        }
        async fn put(
            &self,
            _: &PhysicalName,
            _: &ObjectAttributes,
            _: &Stamp,
            _: hansa_backends::ByteStream,
        ) -> Result<PutResult, BackendError> {
            Err(BackendError::Unavailable {
                message: "injected".into(),
            })
        }
        async fn get(
            &self,
            n: &PhysicalName,
            r: Option<Range<u64>>,
            m: Option<&str>,
        ) -> Result<GetResult, BackendError> {
            self.0.get(n, r, m).await
        }
        async fn head(&self, n: &PhysicalName) -> Result<ObjectInfo, BackendError> {
            self.0.head(n).await
        }
        async fn delete(&self, n: &PhysicalName) -> Result<(), BackendError> {
            self.0.delete(n).await
        }
        fn list(
            &self,
            p: &str,
        ) -> futures::stream::BoxStream<'_, Result<ObjectInfo, BackendError>> {
            self.0.list(p)
        }
        async fn check(&self) -> Result<(), BackendError> {
            self.0.check().await
        }
        async fn create_upload(
            &self,
            n: &PhysicalName,
            id: &str,
            a: &ObjectAttributes,
            s: &Stamp,
        ) -> Result<String, BackendError> {
            self.0.create_upload(n, id, a, s).await
        }
        async fn put_part(
            &self,
            _: &PhysicalName,
            _: &str,
            _: u32,
            _: u64,
            _: hansa_backends::ByteStream,
        ) -> Result<PutResult, BackendError> {
            Err(BackendError::Unavailable {
                message: "injected".into(),
            })
        }
        async fn complete_upload(
            &self,
            n: &PhysicalName,
            u: &str,
            p: &[hansa_backends::CompletedPart],
            a: &ObjectAttributes,
            s: &Stamp,
        ) -> Result<PutResult, BackendError> {
            self.0.complete_upload(n, u, p, a, s).await
        }
        async fn abort_upload(&self, n: &PhysicalName, u: &str) -> Result<(), BackendError> {
            self.0.abort_upload(n, u).await
        }
    }

    const CHUNK: usize = 5 << 20;

    fn memory(id: &str) -> ObjectStoreBackend {
        ObjectStoreBackend::memory(id).with_part_size(CHUNK)
    }

    fn stamp() -> Stamp {
        Stamp {
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: "v1".into(),
            etag: String::new(),
            size: 0,
            checksum: None,
            late: None,
        }
    }

    fn chunks(n: usize, size: usize) -> Vec<Result<Bytes, ReplicationError>> {
        (0..n)
            .map(|i| Ok(Bytes::from(vec![i as u8; size])))
            .collect()
    }

    async fn read_all(b: &dyn Backend, name: &PhysicalName) -> Option<Vec<u8>> {
        let got = b.get(name, None, None).await.ok()?;
        let parts: Vec<Bytes> = got.body.map(|c| c.unwrap()).collect().await;
        Some(parts.concat())
    }

    #[tokio::test]
    async fn every_target_gets_the_same_bytes_in_bounded_buffers() {
        let a: Arc<dyn Backend> = Arc::new(memory("a"));
        let b: Arc<dyn Backend> = Arc::new(memory("b"));
        let name = hansa_backends::physical_name("bkt", "k");
        let targets = vec![
            Target {
                backend: a.clone(),
                name: name.clone(),
            },
            Target {
                backend: b.clone(),
                name: name.clone(),
            },
        ];
        // A budget of two chunks: the 24 MiB body must flow through multipart parts without
        // the budget ever holding more than it allows (otherwise reserve would block forever).
        let budget = InflightBudget::new(2 * CHUNK as u64);
        let body = futures::stream::iter(chunks(384, 64 << 10));
        let (outcomes, read) = fan_out(
            body,
            Some(24 << 20),
            targets,
            &ObjectAttributes::default(),
            &stamp(),
            &Flow {
                chunk_bytes: CHUNK,
                budget: &budget,
                idle_timeout: Duration::from_secs(5),
            },
            || {},
        )
        .await;
        read.unwrap();
        assert!(outcomes.iter().all(|o| o.result.is_ok()));
        let expected: Vec<u8> = (0..384usize)
            .map(|i| i as u8)
            .flat_map(|i| vec![i; 64 << 10])
            .collect();
        assert_eq!(read_all(a.as_ref(), &name).await.unwrap(), expected);
        assert_eq!(read_all(b.as_ref(), &name).await.unwrap(), expected);
        assert_eq!(
            budget.reserved_bytes(),
            0,
            "budget released after the write"
        );
    }

    #[tokio::test]
    async fn a_body_error_aborts_every_target() {
        let a: Arc<dyn Backend> = Arc::new(memory("a"));
        let name = hansa_backends::physical_name("bkt", "k");
        let mut items = chunks(3, 1000);
        items.push(Err(ReplicationError::NoReplica {
            errors: "injected".into(),
        }));
        let (outcomes, read) = fan_out(
            futures::stream::iter(items),
            None,
            vec![Target {
                backend: a.clone(),
                name: name.clone(),
            }],
            &ObjectAttributes::default(),
            &stamp(),
            &Flow {
                chunk_bytes: CHUNK,
                budget: &InflightBudget::new(4 * CHUNK as u64),
                idle_timeout: Duration::from_secs(5),
            },
            || {},
        )
        .await;
        assert!(read.is_err());
        assert!(outcomes[0].result.is_err());
        assert!(
            read_all(a.as_ref(), &name).await.is_none(),
            "nothing stored"
        );
    }

    #[tokio::test]
    async fn a_failing_target_does_not_stop_the_others() {
        let good: Arc<dyn Backend> = Arc::new(memory("good"));
        let bad: Arc<dyn Backend> = Arc::new(FailingPuts(memory("bad")));
        let name = hansa_backends::physical_name("bkt", "k");
        let (outcomes, read) = fan_out(
            futures::stream::iter(chunks(40, 100 << 10)),
            None,
            vec![
                Target {
                    backend: bad,
                    name: name.clone(),
                },
                Target {
                    backend: good.clone(),
                    name: name.clone(),
                },
            ],
            &ObjectAttributes::default(),
            &stamp(),
            &Flow {
                chunk_bytes: CHUNK,
                budget: &InflightBudget::new(4 * CHUNK as u64),
                idle_timeout: Duration::from_secs(5),
            },
            || {},
        )
        .await;
        read.unwrap();
        assert!(outcomes[0].result.is_err());
        assert!(outcomes[1].result.is_ok());
        assert_eq!(
            read_all(good.as_ref(), &name).await.unwrap().len(),
            40 * (100 << 10)
        );
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let a: Arc<dyn Backend> = Arc::new(memory("a"));
        let name = hansa_backends::physical_name("bkt", "k");
        let body = futures::stream::iter(chunks(1, 10)).chain(futures::stream::pending());
        let (_, read) = fan_out(
            body,
            None,
            vec![Target {
                backend: a.clone(),
                name: name.clone(),
            }],
            &ObjectAttributes::default(),
            &stamp(),
            &Flow {
                chunk_bytes: CHUNK,
                budget: &InflightBudget::new(4 * CHUNK as u64),
                idle_timeout: Duration::from_millis(100),
            },
            || {},
        )
        .await;
        assert!(matches!(read, Err(ReplicationError::BodyStalled(_))));
        assert!(read_all(a.as_ref(), &name).await.is_none());
    }
}
