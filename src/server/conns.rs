//! The open connections, across every listener: the cap, what counts as idle, eviction.
//!
//! Idle connections cost a descriptor each and nothing else, so at the cap the one idle the
//! longest is closed to let a new one in: thousands of silent or parked connections then only
//! push each other out, and a client that is sending requests keeps getting in. Connections
//! that never sent a request go before ones that did, so a real client's pooled connection is
//! the last to go.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};

/// Connections being turned away with a 503 at once; beyond it a new connection at the cap
/// is closed without an answer, so a flood cannot make rejecting itself a cost.
const REJECTING_AT_ONCE: usize = 64;
/// How long the accept loop waits for an evicted connection to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct Conns {
    cap: usize,
    idle_after: Duration,
    epoch: Instant,
    open: Mutex<Open>,
    closed: Notify,
    pub(crate) rejecting: Arc<Semaphore>,
    evicted: AtomicU64,
    rejected: AtomicU64,
    last_warning_ms: AtomicU64,
}

struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
}

/// What the accept loop and the connection share about one connection.
pub(crate) struct ConnState {
    epoch: Instant,
    /// Requests in flight (HTTP/2 may have several), counted until their response body ends.
    active: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since `epoch` of the last request start or end, or of the last byte read
    /// while `reads_count`.
    last_ms: AtomicU64,
    /// Bytes from the client count as activity on HTTP/1.1 (a request's headers are on their
    /// way), not on HTTP/2, where ping acknowledgements would keep an idle connection alive.
    reads_count: AtomicBool,
    evicting: AtomicBool,
    pub(crate) evict: Notify,
    /// The last request in flight ended: the idle clock starts.
    pub(crate) quiet: Notify,
}

/// A connection's place under the cap; dropping it frees the place.
pub(crate) struct Slot {
    conns: Arc<Conns>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        crate::metrics::connection_closed();
        self.conns.lock().conns.remove(&self.id);
        self.conns.closed.notify_waiters();
    }
}

impl Conns {
    pub(crate) fn new(cap: usize, idle_after: Duration) -> Arc<Conns> {
        Arc::new(Conns {
            cap: cap.max(1),
            idle_after,
            epoch: Instant::now(),
            open: Mutex::new(Open {
                next_id: 0,
                conns: HashMap::new(),
            }),
            closed: Notify::new(),
            rejecting: Arc::new(Semaphore::new(REJECTING_AT_ONCE)),
            evicted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn idle_after(&self) -> Duration {
        self.idle_after
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.lock().conns.len()
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection: at the cap, the connection idle the longest is closed
    /// first. `None` when every connection has a request in flight (or an eviction did not
    /// complete in time): the caller turns the new one away.
    pub(crate) async fn admit(self: &Arc<Self>) -> Option<Slot> {
        let deadline = tokio::time::Instant::now() + EVICTION_WAIT;
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            let victim = {
                let mut open = self.lock();
                if open.conns.len() < self.cap {
                    let id = open.next_id;
                    open.next_id += 1;
                    let state = Arc::new(ConnState::new(self.epoch));
                    open.conns.insert(id, state.clone());
                    crate::metrics::connection_opened();
                    return Some(Slot {
                        conns: self.clone(),
                        id,
                        state,
                    });
                }
                self.pick_victim(&open)
            };
            match victim {
                Some(v) => {
                    v.evict.notify_one();
                    let n = self.evicted.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::debug!(evicted = n, "connection cap reached: closing an idle one");
                    self.warn_at_cap();
                }
                // An idle connection already told to close frees a place within moments.
                None if self.evicting_any() => {}
                None => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::connection_rejected();
                    self.warn_at_cap();
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                crate::metrics::connection_rejected();
                return None;
            }
        }
    }

    fn pick_victim(&self, open: &Open) -> Option<Arc<ConnState>> {
        let victim = open
            .conns
            .values()
            .filter(|c| c.is_idle() && !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| {
                (
                    c.requests.load(Ordering::Relaxed) > 0,
                    c.last_ms.load(Ordering::Relaxed),
                )
            })?
            .clone();
        victim.evicting.store(true, Ordering::Relaxed);
        Some(victim)
    }

    /// Whether an idle connection told to close has not closed yet. One that took a request
    /// meanwhile closes only after it (which may be long: a trickling upload), so it does
    /// not count: waiting for it would stall the accept loop.
    fn evicting_any(&self) -> bool {
        self.lock()
            .conns
            .values()
            .any(|c| c.evicting.load(Ordering::Relaxed) && c.is_idle())
    }

    /// One warning a minute at most: under a flood, a line per connection would be the flood.
    fn warn_at_cap(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < 60_000)
            || self
                .last_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        tracing::warn!(
            max_connections = self.cap,
            evicted_idle = self.evicted.load(Ordering::Relaxed),
            rejected = self.rejected.load(Ordering::Relaxed),
            "at the connection cap (totals since start)"
        );
    }

    /// Waits until every connection has closed.
    pub(crate) async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        ConnState {
            epoch,
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            reads_count: AtomicBool::new(true),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            quiet: Notify::new(),
        }
    }

    fn touch(&self) {
        self.last_ms
            .fetch_max(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_reads_count(&self, yes: bool) {
        self.reads_count.store(yes, Ordering::Relaxed);
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.active.load(Ordering::Relaxed) == 0
    }

    /// When the connection will have been idle long enough to close, if nothing happens
    /// meanwhile; `None` while a request is in flight.
    pub(crate) fn idle_deadline(&self, idle_after: Duration) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        Some(self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle_after)
    }

    /// A request started: the returned guard ends it when dropped (with its response body).
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
        RequestGuard(self.clone())
    }
}

pub(crate) struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        if self.0.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.quiet.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper is done with it.
pub(crate) struct GuardedBody<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(inner: B, guard: RequestGuard) -> Self {
        GuardedBody {
            inner,
            _guard: guard,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting bytes read as activity.
pub(crate) struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> Tracked<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> Self {
        Tracked { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.state.reads_count.load(Ordering::Relaxed) {
            self.state.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn evicts_the_oldest_never_served_first() {
        let conns = Conns::new(3, Duration::from_secs(60));
        let a = conns.admit().await.expect("a");
        let _g = a.state.begin(); // a: busy
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = conns.admit().await.expect("b");
        drop(b.state.begin()); // b: served, idle
        tokio::time::sleep(Duration::from_millis(5)).await;
        let c = conns.admit().await.expect("c"); // c: never served, newest
        let (b_state, c_state) = (b.state.clone(), c.state.clone());
        let evicted_c = tokio::spawn(async move {
            c_state.evict.notified().await;
            drop(c);
        });
        let d = conns.admit().await.expect("d admitted after evicting c");
        evicted_c.await.expect("c evicted");
        assert!(!b_state.evicting.load(Ordering::Relaxed));
        let evicted_b = tokio::spawn(async move {
            b_state.evict.notified().await;
            drop(b);
        });
        let _d_busy = d.state.begin();
        let e = conns.admit().await.expect("e admitted after evicting b");
        evicted_b.await.expect("b evicted");
        let _e_busy = e.state.begin();
        assert_eq!(conns.count(), 3);
        assert!(conns.admit().await.is_none(), "all busy: turned away");
    }

    #[tokio::test]
    async fn a_victim_that_took_a_request_does_not_stall_admission() {
        let conns = Conns::new(1, Duration::from_secs(60));
        let a = conns.admit().await.expect("a");
        let waiting = tokio::spawn({
            let conns = conns.clone();
            async move { conns.admit().await.is_none() }
        });
        // `a` is told to close, but a request arrived first: it stays until that ends.
        a.state.evict.notified().await;
        let _busy = a.state.begin();
        assert!(waiting.await.expect("admit"), "no place: turned away");
        let started = Instant::now();
        assert!(conns.admit().await.is_none());
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "waited {:?} for a busy connection to close",
            started.elapsed()
        );
    }
}
