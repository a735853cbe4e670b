//! How fast a client must, and may, go.
//!
//! - [`PacedBody`] wraps every request body: it fails with [`BodyTimeout`] when the client
//!   sends nothing for the idle timeout, or falls behind the minimum body rate (a stalled or
//!   trickling upload must not hold a connection, memory and in-flight budget for ever), and
//!   it holds back reading while the credential's bytes-per-second bucket is empty.
//! - [`RateLimits`] holds the per-credential token buckets (`[rate_limit.<key>]`).
//!
//! The minimum rate is a credit of time: a body starts with one window's worth, every byte
//! adds `1 / min_rate` seconds, capped at one window, and time spent waiting for the client
//! uses it up. A client is cut once it is a whole window behind the minimum rate; a fast start
//! banks at most one window. Only time spent waiting *for the client* counts: while the
//! gateway does not read (waiting for budget or a slow backend, or throttling the credential),
//! the client cannot be blamed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::config::{Config, Limits};
use crate::replication::{seconds, TokenBucket};

/// The client's request body, boxed once so handlers need not be generic.
pub type RawBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A request body that was too slow: idle for too long, or below the minimum rate.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    #[error("no body bytes for {0:?}")]
    Idle(Duration),
    #[error("the body fell a whole window behind the minimum rate of {0} bytes/s")]
    TooSlow(u64),
}

/// How a body must go.
#[derive(Clone, Debug)]
pub struct Pace {
    pub idle: Duration,
    /// Bytes per second; 0: no minimum.
    pub min_rate: u64,
    pub window: Duration,
    /// The credential's bytes-per-second bucket, if it has one.
    pub throttle: Option<Arc<TokenBucket>>,
}

impl Pace {
    pub fn from_limits(limits: &Limits, throttle: Option<Arc<TokenBucket>>) -> Pace {
        Pace {
            idle: Duration::from_secs(limits.body_idle_timeout_secs.max(1)),
            min_rate: limits.min_body_bytes_per_sec,
            window: Duration::from_secs(limits.min_body_rate_window_secs.max(1)),
            throttle,
        }
    }
}

pub struct PacedBody {
    inner: RawBody,
    pace: Pace,
    /// Time the client may still spend sending nothing before it is behind the minimum rate.
    credit: Duration,
    /// Since when the gateway has been waiting for the client's next frame.
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    /// Set while the credential's bytes-per-second bucket is in debt.
    throttled: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl PacedBody {
    pub fn new(inner: RawBody, pace: Pace) -> PacedBody {
        PacedBody {
            inner,
            credit: pace.window,
            pace,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            throttled: None,
            done: false,
        }
    }

    /// When waiting that started at `since` stops being the client's right.
    fn deadline(&self, since: Instant) -> (Instant, BodyTimeout) {
        let idle = (
            after(since, self.pace.idle),
            BodyTimeout::Idle(self.pace.idle),
        );
        if self.pace.min_rate == 0 || self.credit >= self.pace.idle {
            return idle;
        }
        (
            after(since, self.credit),
            BodyTimeout::TooSlow(self.pace.min_rate),
        )
    }

    fn arrived(&mut self, since: Instant, len: usize) {
        let waited = since.elapsed();
        if self.pace.min_rate > 0 {
            let earned = seconds(len as f64 / self.pace.min_rate as f64);
            self.credit = self
                .credit
                .saturating_sub(waited)
                .saturating_add(earned)
                .min(self.pace.window);
        }
        if let Some(bucket) = &self.pace.throttle {
            let delay = bucket.take_with_debt(len as f64);
            if !delay.is_zero() {
                self.throttled = Some(Box::pin(tokio::time::sleep(delay)));
            }
        }
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(delay) = this.throttled.as_mut() {
            if delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.throttled = None;
        }
        let since = match this.waiting_since {
            Some(since) => since,
            None => {
                let now = Instant::now();
                this.waiting_since = Some(now);
                let (deadline, _) = this.deadline(now);
                this.timer.as_mut().reset(deadline);
                now
            }
        };
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len());
                this.waiting_since = None;
                this.arrived(since, len);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.waiting_since = None;
                Poll::Ready(other)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    let (_, why) = this.deadline(since);
                    tracing::debug!(%why, "request body too slow");
                    Poll::Ready(Some(Err(Box::new(why))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `since + d`, or a year from `since` where that overflows (limits come from configuration).
fn after(since: Instant, d: Duration) -> Instant {
    since
        .checked_add(d)
        .unwrap_or_else(|| since + Duration::from_secs(365 * 24 * 3600))
}

/// Per-credential token buckets, built once from `[rate_limit.<key>]`.
#[derive(Debug, Default)]
pub struct RateLimits {
    by_key: HashMap<String, KeyRates>,
}

#[derive(Debug, Default)]
struct KeyRates {
    requests: Option<TokenBucket>,
    bytes: Option<Arc<TokenBucket>>,
}

impl RateLimits {
    pub fn from_config(config: &Config) -> RateLimits {
        let by_key = config
            .rate_limits
            .iter()
            .map(|(key, rate)| {
                let rates = KeyRates {
                    requests: rate.requests_per_sec.map(TokenBucket::per_second),
                    bytes: rate
                        .bytes_per_sec
                        .map(|b| Arc::new(TokenBucket::per_second(b as f64))),
                };
                (key.clone(), rates)
            })
            .collect();
        RateLimits { by_key }
    }

    /// Whether `access_key_id` may make one more request now.
    pub fn admit(&self, access_key_id: &str) -> bool {
        match self
            .by_key
            .get(access_key_id)
            .and_then(|r| r.requests.as_ref())
        {
            Some(bucket) => bucket.try_take(),
            None => true,
        }
    }

    /// The bucket `access_key_id`'s request bodies are read through, if it has one.
    pub fn bytes(&self, access_key_id: &str) -> Option<Arc<TokenBucket>> {
        self.by_key.get(access_key_id).and_then(|r| r.bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn pace(idle_ms: u64, min_rate: u64, window_ms: u64) -> Pace {
        Pace {
            idle: Duration::from_millis(idle_ms),
            min_rate,
            window: Duration::from_millis(window_ms),
            throttle: None,
        }
    }

    /// A body that yields `pieces` of `size` bytes, `gap` apart.
    fn trickle(pieces: usize, size: usize, gap: Duration) -> RawBody {
        let stream = futures::stream::unfold(0, move |i| async move {
            if i == pieces {
                return None;
            }
            tokio::time::sleep(gap).await;
            let frame: Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>> =
                Ok(Frame::data(Bytes::from(vec![b'x'; size])));
            Some((frame, i + 1))
        });
        http_body_util::StreamBody::new(stream).boxed_unsync()
    }

    async fn read_all(body: PacedBody) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        Ok(body.collect().await?.to_bytes().len())
    }

    fn timeout_of(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<BodyTimeout> {
        e.downcast_ref::<BodyTimeout>().copied()
    }

    #[tokio::test]
    async fn a_trickle_below_the_minimum_rate_is_cut_after_one_window() {
        // One byte every 50 ms against a minimum of 1000 bytes/s and a 400 ms window.
        let started = Instant::now();
        let body = PacedBody::new(
            trickle(100, 1, Duration::from_millis(50)),
            pace(60_000, 1000, 400),
        );
        let err = read_all(body).await.unwrap_err();
        assert_eq!(timeout_of(err.as_ref()), Some(BodyTimeout::TooSlow(1000)));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(1_000),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_body_at_the_minimum_rate_passes() {
        // 120 bytes every 50 ms: 2400 bytes/s against a minimum of 1000, for 2 s.
        let body = PacedBody::new(
            trickle(40, 120, Duration::from_millis(50)),
            pace(60_000, 1000, 300),
        );
        assert_eq!(read_all(body).await.unwrap(), 40 * 120);
    }

    #[tokio::test]
    async fn a_fast_start_banks_at_most_one_window() {
        use futures::StreamExt;
        type Item = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;
        let fast = futures::stream::once(async { Ok(Frame::data(Bytes::from(vec![1; 1 << 20]))) });
        let body = fast.chain(futures::stream::pending::<Item>());
        let body = http_body_util::StreamBody::new(body).boxed_unsync();
        let started = Instant::now();
        let err = read_all(PacedBody::new(body, pace(60_000, 1000, 300)))
            .await
            .unwrap_err();
        assert_eq!(timeout_of(err.as_ref()), Some(BodyTimeout::TooSlow(1000)));
        assert!(started.elapsed() < Duration::from_millis(900));
    }

    #[tokio::test]
    async fn the_idle_timeout_still_applies_without_a_minimum_rate() {
        let stall = futures::stream::pending::<
            Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
        >();
        let body = http_body_util::StreamBody::new(stall).boxed_unsync();
        let err = read_all(PacedBody::new(body, pace(300, 0, 2_000)))
            .await
            .unwrap_err();
        assert_eq!(
            timeout_of(err.as_ref()),
            Some(BodyTimeout::Idle(Duration::from_millis(300)))
        );
    }

    #[tokio::test]
    async fn time_the_gateway_does_not_read_is_not_held_against_the_client() {
        let mut body = PacedBody::new(trickle(3, 10, Duration::ZERO), pace(60_000, 1000, 200));
        assert!(body.frame().await.is_some());
        // The gateway is busy elsewhere for longer than the window.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(body.frame().await.expect("frame").is_ok());
        assert!(body.frame().await.expect("frame").is_ok());
    }

    #[tokio::test]
    async fn a_throttled_body_is_read_no_faster_than_its_bucket() {
        let mut p = pace(60_000, 0, 1_000);
        p.throttle = Some(Arc::new(TokenBucket::per_second(10_000.0)));
        let started = Instant::now();
        // 15000 bytes at 10000 bytes/s, 10000 of them from the full bucket: about 0.5 s.
        let n = read_all(PacedBody::new(trickle(15, 1000, Duration::ZERO), p))
            .await
            .unwrap();
        assert_eq!(n, 15_000);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(1_500),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn the_request_bucket_refills() {
        let bucket = TokenBucket::per_second(10.0);
        for _ in 0..10 {
            assert!(bucket.try_take());
        }
        assert!(!bucket.try_take());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(bucket.try_take());
        assert!(bucket.try_take());
    }
}
