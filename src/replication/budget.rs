//! A global cap on request bytes buffered at once, so that many concurrent clients cannot
//! exhaust memory: a writer waits for budget before it fills a buffer.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget granularity; the semaphore counts units of this many bytes.
const UNIT: u64 = 1024;

#[derive(Clone, Debug)]
pub struct InflightBudget {
    units: Arc<Semaphore>,
    total_units: u32,
}

/// Budget held for one buffer; released when the last `Bytes` sharing the buffer drops.
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl InflightBudget {
    pub fn new(bytes: u64) -> Self {
        let total_units = (bytes / UNIT).clamp(1, u32::MAX as u64 / 2) as u32;
        InflightBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// Waits until `bytes` fit in the budget. A request larger than the whole budget is
    /// clamped to it, so it waits for an idle gateway instead of forever.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let units = (bytes as u64)
            .div_ceil(UNIT)
            .clamp(1, self.total_units as u64) as u32;
        let permit = self
            .units
            .clone()
            .acquire_many_owned(units)
            .await
            // The semaphore is never closed.
            .expect("in-flight budget semaphore closed");
        Reservation { permit }
    }

    /// Bytes currently reserved (for metrics and tests).
    pub fn reserved_bytes(&self) -> u64 {
        (self.total_units as u64 - self.units.available_permits() as u64) * UNIT
    }
}

impl Reservation {
    /// Freezes a filled buffer into shareable `Bytes` that keep the reservation alive.
    pub fn freeze(self, data: Vec<u8>) -> Bytes {
        Bytes::from_owner(Held {
            data,
            _permit: self.permit,
        })
    }
}

struct Held {
    data: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_is_released_when_the_last_clone_drops() {
        let budget = InflightBudget::new(4 << 10);
        let r = budget.reserve(3 << 10).await;
        let bytes = r.freeze(vec![1; 3 << 10]);
        let clone = bytes.clone();
        assert_eq!(budget.reserved_bytes(), 3 << 10);
        drop(bytes);
        assert_eq!(budget.reserved_bytes(), 3 << 10);
        drop(clone);
        assert_eq!(budget.reserved_bytes(), 0);
    }

    #[tokio::test]
    async fn reserve_waits_for_budget() {
        let budget = InflightBudget::new(2 << 10);
        let held = budget.reserve(2 << 10).await;
        let b2 = budget.clone();
        let waiter = tokio::spawn(async move { b2.reserve(1).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
