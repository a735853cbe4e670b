//! A window of recent call latencies for p50/p99: a fixed ring of atomics, so recording on the
//! request path takes no lock (one `fetch_add`, one `store`), and percentiles are computed by
//! whoever asks, from a copy.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// The last `capacity` latencies, in microseconds (a slot of 0 has never been written).
#[derive(Debug)]
pub struct LatencyWindow {
    slots: Box<[AtomicU32]>,
    next: AtomicUsize,
}

/// Percentiles of a window, by the nearest-rank method (a value that was actually measured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    /// How many latencies the window held.
    pub samples: usize,
}

impl LatencyWindow {
    pub fn new(capacity: usize) -> Self {
        LatencyWindow {
            slots: (0..capacity.max(1)).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Records one latency, replacing the oldest once the window is full. Latencies are kept
    /// in whole microseconds, at least 1 (0 marks an empty slot) and at most ~71 minutes.
    pub fn record(&self, latency: Duration) {
        let micros = latency.as_micros().clamp(1, u32::MAX as u128) as u32;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].store(micros, Ordering::Relaxed);
    }

    /// p50 and p99 of the window, `None` before the first latency. Sorting a copy of at most
    /// a few hundred numbers takes microseconds; a concurrent `record` may or may not be seen.
    pub fn percentiles(&self) -> Option<Percentiles> {
        let mut values: Vec<u32> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&v| v != 0)
            .collect();
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the values at or below it.
            let rank = (q * values.len() as f64).ceil() as usize;
            Duration::from_micros(u64::from(values[rank.clamp(1, values.len()) - 1]))
        };
        Some(Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            samples: values.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_window_has_no_percentiles() {
        assert_eq!(LatencyWindow::new(16).percentiles(), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let w = LatencyWindow::new(256);
        // Recorded out of order: the window sorts a copy.
        for n in (1..=100).rev() {
            w.record(ms(n));
        }
        let p = w.percentiles().expect("percentiles");
        assert_eq!(p.samples, 100);
        assert_eq!(p.p50, ms(50));
        assert_eq!(p.p99, ms(99));

        let one = LatencyWindow::new(8);
        one.record(ms(7));
        let p = one.percentiles().expect("percentiles");
        assert_eq!((p.p50, p.p99, p.samples), (ms(7), ms(7), 1));
    }

    #[test]
    fn a_full_window_forgets_the_oldest() {
        let w = LatencyWindow::new(4);
        for n in [1000, 1000, 1000, 1000, 1, 2, 3] {
            w.record(ms(n));
        }
        // Slots now hold 1, 2, 3 and one old 1000.
        let p = w.percentiles().expect("percentiles");
        assert_eq!(p.samples, 4);
        assert_eq!(p.p50, ms(2));
        assert_eq!(p.p99, ms(1000));
        w.record(ms(4));
        assert_eq!(w.percentiles().expect("percentiles").p99, ms(4));
    }

    #[test]
    fn zero_and_huge_latencies_stay_in_range() {
        let w = LatencyWindow::new(4);
        w.record(Duration::ZERO);
        w.record(Duration::from_secs(100_000));
        let p = w.percentiles().expect("percentiles");
        assert_eq!(p.samples, 2);
        assert_eq!(p.p50, Duration::from_micros(1));
        assert_eq!(p.p99, Duration::from_micros(u64::from(u32::MAX)));
    }
}
