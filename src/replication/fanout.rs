//! The write fan-out: the client's body is read once, cut into buffers of bounded size, and
//! each buffer is shared (not copied) by every replica's writer. Memory per request is one
//! buffer being filled plus at most one queued per target: O(chunk × targets), never O(object).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hansa_backends::{Backend, BackendError, ObjectAttributes, PhysicalName, PutResult, Stamp};
use tokio::sync::mpsc;

use super::{InflightBudget, ReplicationError};

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
pub async fn fan_out<S>(
    body: S,
    expected_len: Option<u64>,
    targets: Vec<Target>,
    attrs: &ObjectAttributes,
    stamp: &Stamp,
    chunk_bytes: usize,
    budget: &InflightBudget,
    idle_timeout: Duration,
) -> (Vec<PutOutcome>, Result<(), ReplicationError>)
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
{
    let mut senders = Vec::with_capacity(targets.len());
    let mut writers = Vec::with_capacity(targets.len());
    for target in targets {
        // Capacity 1: a target holds at most one queued buffer beyond the one it is writing.
        let (tx, rx) = mpsc::channel::<Result<Bytes, BackendError>>(1);
        senders.push(tx);
        writers.push(async move {
            let stream = tokio_stream_from(rx);
            let result = target.backend.put(&target.name, attrs, stamp, stream).await;
            PutOutcome { target, result }
        });
    }
    let reader = pump(body, expected_len, senders, chunk_bytes, budget, idle_timeout);
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
    chunk_bytes: usize,
    budget: &InflightBudget,
    idle_timeout: Duration,
) -> Result<(), ReplicationError>
where
    S: Stream<Item = Result<Bytes, ReplicationError>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut remaining_hint = expected_len;
    loop {
        let want = remaining_hint
            .map(|r| (r as usize).clamp(1, chunk_bytes))
            .unwrap_or(chunk_bytes);
        let reservation = budget.reserve(want).await;
        let mut buf: Vec<u8> = Vec::with_capacity(want);
        let mut ended = false;
        while buf.len() < chunk_bytes {
            let next = match tokio::time::timeout(idle_timeout, body.next()).await {
                Ok(next) => next,
                Err(_) => Some(Err(ReplicationError::BodyStalled(idle_timeout))),
            };
            match next {
                Some(Ok(data)) => {
                    buf.extend_from_slice(&data);
                }
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
        if let Some(r) = remaining_hint.as_mut() {
            *r = r.saturating_sub(buf.len() as u64);
        }
        if !buf.is_empty() {
            let chunk = reservation.freeze(buf);
            send_to_all(&mut senders, chunk).await;
        }
        if ended || senders.is_empty() {
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
