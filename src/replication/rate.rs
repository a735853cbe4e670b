//! Pacing by rate: a token bucket, and byte streams held to a rate with one.
//!
//! Client requests are limited per access key with these buckets (`s3::pace`); repairs are
//! limited per backend, so that a backend catching up does not take all of a link.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use hansa_backends::ByteStream;

/// A token bucket: `rate` tokens a second, at most `capacity` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket holding one second's worth (at least one token), full.
    pub fn per_second(rate: f64) -> TokenBucket {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    fn refill(&self) -> std::sync::MutexGuard<'_, (f64, Instant)> {
        // Two numbers, consistent after every statement: a poisoned lock is still usable.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.rate).min(self.capacity);
        state.1 = now;
        state
    }

    /// Takes one token if there is one.
    pub fn try_take(&self) -> bool {
        let mut state = self.refill();
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, going into debt if need be (a frame can be larger than the bucket),
    /// and says how long to wait until the debt is paid.
    pub fn take_with_debt(&self, n: f64) -> Duration {
        let mut state = self.refill();
        state.0 -= n;
        if state.0 >= 0.0 {
            Duration::ZERO
        } else {
            seconds(-state.0 / self.rate)
        }
    }
}

/// `from_secs_f64` panics on values out of range; rates come from configuration and sizes
/// from clients, so never trust the quotient.
pub(crate) fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(if s > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

/// Byte streams held to a rate per key (a backend id): each chunk waits until its bytes are
/// paid for, so a stream never runs ahead of its bucket by more than one chunk.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: f64,
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
}

impl Throttle {
    pub fn per_second(bytes_per_sec: u64) -> Throttle {
        Throttle {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn bucket(&self, key: &str) -> Arc<TokenBucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(TokenBucket::per_second(self.bytes_per_sec)))
            .clone()
    }

    /// `body`, paced by `key`'s bucket (shared by every stream of that key).
    pub fn pace(&self, key: &str, body: ByteStream) -> ByteStream {
        let bucket = self.bucket(key);
        body.then(move |chunk| {
            let bucket = bucket.clone();
            async move {
                if let Ok(data) = &chunk {
                    let wait = bucket.take_with_debt(data.len() as f64);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                chunk
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn a_paced_stream_keeps_to_its_rate() {
        let throttle = Throttle::per_second(20_000);
        let chunks: Vec<Result<Bytes, hansa_backends::BackendError>> =
            (0..6).map(|_| Ok(Bytes::from(vec![0u8; 5000]))).collect();
        let started = Instant::now();
        let body = throttle.pace("b", futures::stream::iter(chunks).boxed());
        let sizes: Vec<usize> = body.map(|c| c.map_or(0, |d| d.len())).collect().await;
        assert_eq!(sizes.iter().sum::<usize>(), 30_000);
        // 30,000 bytes at 20,000/s with one second saved up: half a second.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }
}
