//! The write fan-out: the client's body is read once, cut into buffers of bounded size, and
//! each buffer is shared (not copied) by every target's feed.
//!
//! Memory per write is the buffer being filled plus at most `max_lag` queued per target, and
//! the buffers are shared: O(chunk × lag), never O(object). The write goes at the pace of the
//! quorum's slowest member, not of the slowest target: a target whose queue is full when the
//! quorum has taken the next buffer is `max_lag` buffers behind, and is cut from the write (its
//! replica is finished later), so one slow provider never sets the client's upload rate. A
//! target that takes nothing for `target_stall` is cut too; when too few targets remain for the
//! quorum, the write fails at once.
//!
//! A feed ends cleanly only with an explicit end marker, sent once the whole body has arrived
//! and passed every check. A feed whose sender goes away without it (a body error, a cut)
//! yields [`BackendError::Aborted`], so a backend can never take a cut stream for a complete
//! one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use hansa_backends::{BackendError, ByteStream};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{BudgetError, InflightBudget};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumHasher};

/// How a body flows through one write.
pub struct Flow<'a> {
    /// Size of the shared buffers.
    pub chunk_bytes: usize,
    /// The gateway-wide budget of buffered bytes; a buffer waits (boundedly) for its share.
    pub budget: &'a InflightBudget,
    /// Whose share of the budget the buffers count against (the signing access key).
    pub tenant: Option<Arc<str>>,
    /// How long the client may send nothing before the write fails.
    pub body_idle: Duration,
    /// How long a target may take nothing before it is cut.
    pub target_stall: Duration,
    /// Buffers a target may have queued before it counts as fallen behind.
    pub max_lag: usize,
}

/// What travels to a target.
#[derive(Debug)]
pub enum Frame {
    Data(Bytes),
    /// The body is complete and verified.
    End,
}

/// How far a target has read its feed: for a watchdog that tells a slow target from a hung one.
#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    last_ms: AtomicU64,
    ended: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        }
    }

    fn tick(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the target last took a buffer (or since the feed was made).
    pub fn idle(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Whether the target has read the end marker (it is finishing its copy).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// One target's side of the fan-out: its stream of buffers, and how far it has come.
pub struct Feed {
    pub body: ByteStream,
    pub progress: Arc<Progress>,
}

/// Makes `n` feeds, each with room for `max_lag` queued buffers (and the end marker).
pub fn feeds(n: usize, max_lag: usize) -> (Vec<mpsc::Sender<Frame>>, Vec<Feed>) {
    (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Frame>(max_lag.max(1));
            let progress = Arc::new(Progress::new());
            let body = feed_stream(rx, progress.clone());
            (tx, Feed { body, progress })
        })
        .unzip()
}

fn feed_stream(rx: mpsc::Receiver<Frame>, progress: Arc<Progress>) -> ByteStream {
    futures::stream::unfold(Some(rx), move |rx| {
        let progress = progress.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(Frame::Data(data)) => {
                    progress.tick();
                    Some((Ok(data), Some(rx)))
                }
                Some(Frame::End) => {
                    progress.tick();
                    progress.ended.store(true, Ordering::Relaxed);
                    None
                }
                // The sender went away without the end marker: the write was cut.
                None => Some((Err(BackendError::Aborted), None)),
            }
        }
    })
    .boxed()
}

/// Why a target was dropped from the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Its copy failed (it stopped reading its feed).
    Failed,
    /// It fell `max_lag` buffers behind the quorum.
    Lagging,
    /// It took nothing for `target_stall`.
    Stalled,
}

/// What the body turned out to be, known once it ended cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pumped {
    pub len: u64,
    /// Hansa's own whole-body checksum (CRC64NVME), computed as the bytes went by; reads
    /// verify against it.
    pub integrity: Checksum,
}

/// Why a pump did not deliver a whole body.
#[derive(Debug)]
pub enum PumpError<E> {
    /// The client's body failed (a bad signature, a wrong digest, a client that hung up).
    Body(E),
    /// The client sent nothing for this long.
    ClientStalled(Duration),
    /// No in-flight budget came free for the next buffer within the bounded wait.
    Busy(BudgetError),
    /// Too few targets are left to make the write quorum.
    QuorumLost,
}

/// The pump's result: the body (or why not), and for each target why it was cut, if it was.
pub struct PumpReport<E> {
    pub result: Result<Pumped, PumpError<E>>,
    pub cut: Vec<Option<Cut>>,
}

/// Reads `body` into budgeted buffers and hands each to every live target, keeping at least
/// `quorum` of them. `expected_len` (when known) keeps small bodies from reserving a whole
/// buffer of budget. `at_end` runs once the body has ended cleanly, with its length, before any
/// target sees the end marker (the moment to complete the stamp's late facts).
pub async fn pump<S, E>(
    body: S,
    expected_len: Option<u64>,
    senders: Vec<mpsc::Sender<Frame>>,
    quorum: usize,
    flow: &Flow<'_>,
    at_end: impl FnOnce(u64),
) -> PumpReport<E>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
{
    let mut targets = Targets {
        cut: vec![None; senders.len()],
        senders: senders.into_iter().map(Some).collect(),
        quorum: quorum.max(1),
        last_buffer: None,
    };
    let result = read_and_send(body, expected_len, &mut targets, flow).await;
    let result = match result {
        Ok(pumped) => {
            at_end(pumped.len);
            targets.finish(flow.target_stall);
            Ok(pumped)
        }
        // Dropping the senders without the end marker aborts every feed.
        Err(e) => Err(e),
    };
    PumpReport {
        result,
        cut: targets.cut,
    }
}

async fn read_and_send<S, E>(
    body: S,
    expected_len: Option<u64>,
    targets: &mut Targets,
    flow: &Flow<'_>,
) -> Result<Pumped, PumpError<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
{
    let mut body = std::pin::pin!(body);
    let mut remaining_hint = expected_len;
    let mut seen: u64 = 0;
    let mut integrity: ChecksumHasher = ChecksumAlgorithm::Crc64Nvme.hasher();
    // The part of the last piece that did not fit the previous buffer: buffers are filled to
    // exactly their size, never grown (a grown Vec would briefly double its memory).
    let mut carry: Option<Bytes> = None;
    loop {
        if !targets.viable() {
            return Err(PumpError::QuorumLost);
        }
        let want = match remaining_hint {
            // More than announced (only when the length was a hint): full buffers.
            Some(0) if seen > 0 => flow.chunk_bytes,
            Some(r) => r.clamp(1, flow.chunk_bytes as u64) as usize,
            None => flow.chunk_bytes,
        };
        // Budget is taken as the bytes arrive, not before: a client that has not sent them
        // (a stalled or trickling upload) holds what it sent, not a whole buffer. Past the
        // first `EARLY` bytes the rest of the buffer is taken at once, so that concurrent
        // writes never each hold part of a buffer while waiting for the rest (a deadlock when
        // those parts add up to the whole budget).
        let mut reservation = flow.budget.empty(flow.tenant.clone());
        let mut buf: Vec<u8> = Vec::with_capacity(want.min(EARLY));
        let mut ended = false;
        while buf.len() < want {
            let data = match carry.take() {
                Some(data) => data,
                None => match tokio::time::timeout(flow.body_idle, body.next()).await {
                    Err(_) => return Err(PumpError::ClientStalled(flow.body_idle)),
                    Ok(Some(Ok(data))) => data,
                    Ok(Some(Err(e))) => return Err(PumpError::Body(e)),
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                },
            };
            let room = want - buf.len();
            let filled = buf.len() + data.len().min(room);
            let cover = if filled <= EARLY { filled } else { want };
            reservation.cover(cover).await.map_err(PumpError::Busy)?;
            if cover == want {
                // Grows once, from at most `EARLY` bytes, to exactly the buffer's size.
                buf.reserve_exact(want - buf.len());
            }
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
            integrity.update(&buf);
            let chunk = reservation.freeze(buf);
            targets.send(chunk, flow).await;
        }
        if ended {
            if !targets.viable() {
                return Err(PumpError::QuorumLost);
            }
            return Ok(Pumped {
                len: seen,
                integrity: integrity.finish_checksum(),
            });
        }
    }
}

struct Targets {
    senders: Vec<Option<mpsc::Sender<Frame>>>,
    cut: Vec<Option<Cut>>,
    quorum: usize,
    /// When the previous buffer went out: how long a buffer takes at the write's pace.
    last_buffer: Option<Instant>,
}

/// Bytes of a buffer paid for as they arrive; beyond them, the whole buffer is reserved.
const EARLY: usize = 64 << 10;

/// The least patience a target without room gets before it is cut.
const MIN_PATIENCE: Duration = Duration::from_millis(20);

impl Targets {
    fn live(&self) -> usize {
        self.senders.iter().filter(|s| s.is_some()).count()
    }

    fn viable(&self) -> bool {
        self.live() >= self.quorum
    }

    fn drop_target(&mut self, i: usize, why: Cut) {
        if self.senders[i].take().is_some() {
            self.cut[i] = Some(why);
            tracing::debug!(target_index = i, ?why, "target cut from the write");
        }
    }

    /// Hands `chunk` to every live target. The write moves on once the quorum has taken it;
    /// a target still without room then gets the time the last buffer took (it may only be a
    /// moment behind) and is cut if it still has none: it is `max_lag` buffers behind and not
    /// catching up.
    async fn send(&mut self, chunk: Bytes, flow: &Flow<'_>) {
        let patience = self
            .last_buffer
            .map(|at| at.elapsed())
            .unwrap_or_default()
            .clamp(MIN_PATIENCE, flow.target_stall);
        self.last_buffer = Some(Instant::now());
        let mut accepted = 0;
        let mut full = Vec::new();
        for i in 0..self.senders.len() {
            let Some(tx) = &self.senders[i] else { continue };
            match tx.try_send(Frame::Data(chunk.clone())) {
                Ok(()) => accepted += 1,
                Err(TrySendError::Full(_)) => full.push(i),
                Err(TrySendError::Closed(_)) => self.drop_target(i, Cut::Failed),
            }
        }
        if full.is_empty() {
            return;
        }
        let mut waiting: FuturesUnordered<_> = full
            .iter()
            .filter_map(|&i| self.senders[i].clone().map(|tx| (i, tx)))
            .map(|(i, tx)| {
                let chunk = chunk.clone();
                async move {
                    let sent =
                        tokio::time::timeout(flow.target_stall, tx.send(Frame::Data(chunk))).await;
                    (i, sent)
                }
            })
            .collect();
        let settle = |targets: &mut Targets, i: usize, sent| match sent {
            Ok(Ok(())) => true,
            Ok(Err(_)) => {
                targets.drop_target(i, Cut::Failed);
                false
            }
            Err(_) => {
                targets.drop_target(i, Cut::Stalled);
                false
            }
        };
        // Until the quorum has the buffer, the write waits (a target needed for the quorum
        // is only cut when it stalls).
        let needed = self.quorum.min(self.live());
        let mut pending: Vec<usize> = full;
        while accepted < needed {
            let Some((i, sent)) = waiting.next().await else {
                break;
            };
            pending.retain(|&p| p != i);
            if settle(self, i, sent) {
                accepted += 1;
            }
        }
        // Then the others get their moment of patience.
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        while !pending.is_empty() {
            tokio::select! {
                next = waiting.next() => {
                    let Some((i, sent)) = next else { break };
                    pending.retain(|&p| p != i);
                    settle(self, i, sent);
                }
                _ = &mut deadline => break,
            }
        }
        for i in pending {
            self.drop_target(i, Cut::Lagging);
        }
    }

    /// Sends the end marker to every live target. A target with a full queue gets it as soon
    /// as it has room (it is finishing as a straggler); one that takes nothing for
    /// `target_stall` never gets it, and its copy aborts.
    fn finish(&mut self, stall: Duration) {
        for slot in &mut self.senders {
            let Some(tx) = slot.take() else { continue };
            match tx.try_send(Frame::End) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(frame)) => {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(stall, tx.send(frame)).await;
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 1 << 20;

    fn flow(budget: &InflightBudget) -> Flow<'_> {
        Flow {
            chunk_bytes: CHUNK,
            budget,
            tenant: None,
            body_idle: Duration::from_secs(5),
            target_stall: Duration::from_millis(300),
            max_lag: 2,
        }
    }

    fn body(chunks: usize) -> impl Stream<Item = Result<Bytes, String>> + Send {
        futures::stream::iter((0..chunks).map(|i| Ok(Bytes::from(vec![i as u8; CHUNK]))))
    }

    async fn drain(mut feed: ByteStream) -> Result<Vec<u8>, BackendError> {
        let mut out = Vec::new();
        while let Some(chunk) = feed.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn expected(chunks: usize) -> Vec<u8> {
        (0..chunks).flat_map(|i| vec![i as u8; CHUNK]).collect()
    }

    #[tokio::test]
    async fn every_target_gets_every_byte_and_the_end() {
        let budget = InflightBudget::new(4 * CHUNK as u64);
        let (senders, feeds) = feeds(2, 2);
        let readers: Vec<_> = feeds
            .into_iter()
            .map(|f| tokio::spawn(drain(f.body)))
            .collect();
        let report = pump(
            body(10),
            Some(10 * CHUNK as u64),
            senders,
            2,
            &flow(&budget),
            |_| {},
        )
        .await;
        let pumped = report.result.expect("pumped");
        assert_eq!(pumped.len, 10 * CHUNK as u64);
        assert_eq!(
            pumped.integrity,
            Checksum::compute(ChecksumAlgorithm::Crc64Nvme, &expected(10))
        );
        assert_eq!(report.cut, vec![None, None]);
        for r in readers {
            assert!(r.await.expect("join").expect("complete") == expected(10));
        }
        assert_eq!(budget.reserved_bytes(), 0, "budget released");
    }

    #[tokio::test]
    async fn a_body_error_aborts_every_feed() {
        let budget = InflightBudget::new(4 * CHUNK as u64);
        let (senders, feeds) = feeds(2, 2);
        let readers: Vec<_> = feeds
            .into_iter()
            .map(|f| tokio::spawn(drain(f.body)))
            .collect();
        let failing = body(3).chain(futures::stream::once(async {
            Err("bad digest".to_string())
        }));
        let report = pump(failing, None, senders, 1, &flow(&budget), |_| {
            panic!("at_end must not run for a failed body")
        })
        .await;
        assert!(matches!(report.result, Err(PumpError::Body(ref e)) if e == "bad digest"));
        for r in readers {
            assert!(matches!(r.await.expect("join"), Err(BackendError::Aborted)));
        }
    }

    #[tokio::test]
    async fn a_lagging_target_is_cut_when_the_others_make_the_quorum() {
        let budget = InflightBudget::new(16 * CHUNK as u64);
        let (senders, mut feeds) = feeds(2, 2);
        let slow = feeds.pop().expect("feed");
        let fast = tokio::spawn(drain(feeds.pop().expect("feed").body));
        // The slow target takes one buffer, then nothing.
        let slow = tokio::spawn(async move {
            let mut body = slow.body;
            let _ = body.next().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            drain(body).await
        });
        let started = Instant::now();
        let report = pump(body(12), None, senders, 1, &flow(&budget), |_| {}).await;
        assert!(report.result.is_ok());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the write waited for the slow target"
        );
        assert_eq!(report.cut, vec![None, Some(Cut::Lagging)]);
        assert!(fast.await.expect("join").expect("fast") == expected(12));
        assert!(matches!(
            slow.await.expect("join"),
            Err(BackendError::Aborted)
        ));
    }

    #[tokio::test]
    async fn with_every_target_needed_the_write_waits_then_fails_on_a_stall() {
        let budget = InflightBudget::new(16 * CHUNK as u64);
        let (senders, mut feeds) = feeds(2, 2);
        let hung = feeds.pop().expect("feed");
        let fast = tokio::spawn(drain(feeds.pop().expect("feed").body));
        let report = pump(body(8), None, senders, 2, &flow(&budget), |_| {}).await;
        assert!(matches!(report.result, Err(PumpError::QuorumLost)));
        assert_eq!(report.cut[1], Some(Cut::Stalled));
        assert!(
            fast.await.expect("join").is_err(),
            "the write was not cut off"
        );
        drop(hung);
    }

    #[tokio::test]
    async fn a_failed_target_below_the_quorum_stops_the_write() {
        let budget = InflightBudget::new(16 * CHUNK as u64);
        let (senders, mut feeds) = feeds(2, 2);
        drop(feeds.pop());
        let ok = tokio::spawn(drain(feeds.pop().expect("feed").body));
        let report = pump(body(4), None, senders, 2, &flow(&budget), |_| {}).await;
        assert!(matches!(report.result, Err(PumpError::QuorumLost)));
        assert_eq!(report.cut[1], Some(Cut::Failed));
        assert!(ok.await.expect("join").is_err());
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_times_out() {
        let budget = InflightBudget::new(4 * CHUNK as u64);
        let (senders, feeds) = feeds(1, 2);
        let reader = tokio::spawn(drain(feeds.into_iter().next().expect("feed").body));
        let stalled = body(1).chain(futures::stream::pending());
        let mut f = flow(&budget);
        f.body_idle = Duration::from_millis(100);
        let report = pump(stalled, None, senders, 1, &f, |_| {}).await;
        assert!(matches!(report.result, Err(PumpError::ClientStalled(_))));
        assert!(reader.await.expect("join").is_err());
    }

    #[tokio::test]
    async fn a_trickling_body_holds_only_what_it_sent() {
        let budget = InflightBudget::new(4 * CHUNK as u64);
        let (senders, feeds) = feeds(1, 2);
        let _reader = tokio::spawn(drain(feeds.into_iter().next().expect("feed").body));
        let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(4);
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let b = budget.clone();
        let pump = tokio::spawn(async move {
            let f = flow(&b);
            pump(body, Some(4 * CHUNK as u64), senders, 1, &f, |_| {})
                .await
                .result
                .map(|p| p.len)
        });
        tx.send(Ok(Bytes::from_static(b"x"))).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            budget.reserved_bytes(),
            1 << 10,
            "one byte sent, one unit held"
        );
        // Past the first bytes, the rest of the buffer is taken at once.
        tx.send(Ok(Bytes::from(vec![1; 100 << 10])))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(budget.reserved_bytes(), CHUNK as u64);
        tx.send(Err("cut".into())).await.expect("send");
        assert!(pump.await.expect("join").is_err(), "a cut body fails");
        assert_eq!(
            budget.reserved_bytes(),
            0,
            "and releases its budget at once"
        );
    }

    #[tokio::test]
    async fn a_write_without_budget_is_told_to_slow_down() {
        let budget = InflightBudget::with_policy(
            2 * CHUNK as u64,
            crate::replication::BudgetPolicy {
                wait: Duration::from_millis(100),
                max_share: 1.0,
            },
        );
        let _held = budget.reserve(2 * CHUNK, None).await.expect("reserve");
        let (senders, feeds) = feeds(1, 2);
        let reader = tokio::spawn(drain(feeds.into_iter().next().expect("feed").body));
        let report = pump(body(1), None, senders, 1, &flow(&budget), |_| {}).await;
        assert!(matches!(report.result, Err(PumpError::Busy(_))));
        assert!(reader.await.expect("join").is_err());
    }
}
