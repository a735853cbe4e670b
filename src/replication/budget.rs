//! A global cap on request bytes buffered at once, so that many concurrent clients cannot
//! exhaust memory, and a fair share of it per tenant (the access key a request is signed
//! with), so that no one credential can take all of it.
//!
//! A reservation starts empty and grows as the bytes it pays for arrive ([`Reservation::cover`]):
//! a slow client holds what it has sent, not the buffer it may one day fill. Waiting for budget
//! is bounded ([`BudgetPolicy::wait`]): a request that cannot get its share in time fails with
//! [`BudgetError::Busy`] (the client is told to slow down) instead of queueing without end.
//!
//! Waiters are woken together on every release and retry; there is no queue order, so a large
//! request can lose to a stream of small ones, but never for longer than the bounded wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// Budget granularity; the budget counts units of this many bytes.
const UNIT: u64 = 1024;

/// How requests share the budget.
#[derive(Clone, Copy, Debug)]
pub struct BudgetPolicy {
    /// The longest a request waits for budget before it fails with [`BudgetError::Busy`].
    pub wait: Duration,
    /// The largest fraction of the budget one tenant may hold at once (0 < share ≤ 1).
    pub max_share: f64,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            wait: Duration::from_secs(10),
            max_share: 1.0,
        }
    }
}

#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetError {
    /// No budget (or none within the tenant's share) came free within the bounded wait.
    #[error("no in-flight budget came free within {0:?}")]
    Busy(Duration),
}

#[derive(Clone, Debug)]
pub struct InflightBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    released: Notify,
    total_units: u64,
    /// The policy's parts, changed in place by [`InflightBudget::set_policy`] (a reload).
    tenant_units: AtomicU64,
    wait_nanos: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    used: u64,
    by_tenant: HashMap<Arc<str>, u64>,
}

/// Budget held for one buffer; released when it drops (or, once frozen, when the last `Bytes`
/// sharing the buffer drops).
#[derive(Debug)]
pub struct Reservation {
    inner: Arc<Inner>,
    tenant: Option<Arc<str>>,
    units: u64,
}

impl InflightBudget {
    pub fn new(bytes: u64) -> Self {
        Self::with_policy(bytes, BudgetPolicy::default())
    }

    pub fn with_policy(bytes: u64, policy: BudgetPolicy) -> Self {
        let total_units = (bytes / UNIT).max(1);
        let budget = InflightBudget {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                released: Notify::new(),
                total_units,
                tenant_units: AtomicU64::new(total_units),
                wait_nanos: AtomicU64::new(0),
            }),
        };
        budget.set_policy(policy);
        budget
    }

    /// Changes the wait and the per-tenant share while requests hold and wait for budget
    /// (a configuration reload). What a tenant holds beyond a smaller share stays held until
    /// released; waiters see the new share at their next try.
    pub fn set_policy(&self, policy: BudgetPolicy) {
        let inner = &self.inner;
        let share = if policy.max_share.is_finite() {
            policy.max_share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let tenant_units = ((inner.total_units as f64 * share) as u64).clamp(1, inner.total_units);
        let wait_nanos = u64::try_from(policy.wait.as_nanos()).unwrap_or(u64::MAX);
        inner.tenant_units.store(tenant_units, Ordering::Relaxed);
        inner.wait_nanos.store(wait_nanos, Ordering::Relaxed);
        inner.released.notify_waiters();
    }

    /// An empty reservation for `tenant` (`None`: the gateway's own work, which no share
    /// limits), to be grown with [`Reservation::cover`] as bytes arrive.
    pub fn empty(&self, tenant: Option<Arc<str>>) -> Reservation {
        Reservation {
            inner: self.inner.clone(),
            tenant,
            units: 0,
        }
    }

    /// Waits (boundedly) until `bytes` fit in the budget and in `tenant`'s share. A request
    /// larger than the whole budget or the share is clamped to it, so it waits for an idle
    /// gateway instead of for ever.
    pub async fn reserve(
        &self,
        bytes: usize,
        tenant: Option<Arc<str>>,
    ) -> Result<Reservation, BudgetError> {
        let mut reservation = self.empty(tenant);
        reservation.cover(bytes.max(1)).await?;
        Ok(reservation)
    }

    /// The whole budget, in bytes (`limits.inflight_bytes`, in whole units).
    pub fn limit_bytes(&self) -> u64 {
        self.inner.total_units * UNIT
    }

    /// Bytes currently reserved (for metrics and tests).
    pub fn reserved_bytes(&self) -> u64 {
        self.inner.lock().used * UNIT
    }

    /// Bytes `tenant` currently holds.
    pub fn tenant_bytes(&self, tenant: &str) -> u64 {
        self.inner
            .lock()
            .by_tenant
            .get(tenant)
            .copied()
            .unwrap_or(0)
            * UNIT
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a pair of counters, consistent after every statement: a panic elsewhere
        // cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limit_for(&self, tenant: Option<&Arc<str>>) -> u64 {
        match tenant {
            Some(_) => self.tenant_units.load(Ordering::Relaxed),
            None => self.total_units,
        }
    }

    fn try_take(&self, tenant: Option<&Arc<str>>, units: u64) -> bool {
        let mut state = self.lock();
        if state.used + units > self.total_units {
            return false;
        }
        if let Some(t) = tenant {
            let held = state.by_tenant.get(t).copied().unwrap_or(0);
            if held + units > self.tenant_units.load(Ordering::Relaxed) {
                return false;
            }
            state.by_tenant.insert(t.clone(), held + units);
        }
        state.used += units;
        true
    }

    fn give_back(&self, tenant: Option<&Arc<str>>, units: u64) {
        if units == 0 {
            return;
        }
        {
            let mut state = self.lock();
            state.used = state.used.saturating_sub(units);
            if let Some(t) = tenant {
                if let Some(held) = state.by_tenant.get_mut(t) {
                    *held = held.saturating_sub(units);
                    if *held == 0 {
                        state.by_tenant.remove(t);
                    }
                }
            }
        }
        self.released.notify_waiters();
    }

    async fn take(&self, tenant: Option<&Arc<str>>, units: u64) -> Result<(), BudgetError> {
        let now = tokio::time::Instant::now();
        let wait = Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed));
        // The wait comes from configuration: a huge one means a year, not an overflow.
        let deadline = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        loop {
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_take(tenant, units) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return if self.try_take(tenant, units) {
                    Ok(())
                } else {
                    Err(BudgetError::Busy(wait))
                };
            }
        }
    }
}

impl Reservation {
    /// Grows the reservation until it pays for `bytes`, waiting at most the policy's wait. On
    /// failure the reservation is empty.
    pub async fn cover(&mut self, bytes: usize) -> Result<(), BudgetError> {
        let limit = self.inner.limit_for(self.tenant.as_ref());
        let wanted = (bytes as u64).div_ceil(UNIT).min(limit);
        if wanted <= self.units {
            return Ok(());
        }
        let tenant = self.tenant.as_ref();
        if self.inner.try_take(tenant, wanted - self.units) {
            self.units = wanted;
            return Ok(());
        }
        // Waiting while holding part of what is needed is how concurrent requests deadlock
        // (each holds a part, each waits for the rest, the parts add up to the budget or a
        // share): let go while waiting, then take the whole at once. The bytes already in
        // hand (at most the pump's first 64 KiB of a buffer) go unaccounted meanwhile.
        let held = std::mem::take(&mut self.units);
        self.inner.give_back(tenant, held);
        self.inner.take(tenant, wanted).await?;
        self.units = wanted;
        Ok(())
    }

    /// Bytes this reservation pays for.
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }

    /// Freezes a filled buffer into shareable `Bytes` that keep the reservation alive.
    pub fn freeze(self, data: Vec<u8>) -> Bytes {
        Bytes::from_owner(Held {
            data,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.give_back(self.tenant.as_ref(), self.units);
    }
}

struct Held {
    data: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64, wait_ms: u64, share: f64) -> InflightBudget {
        InflightBudget::with_policy(
            bytes,
            BudgetPolicy {
                wait: Duration::from_millis(wait_ms),
                max_share: share,
            },
        )
    }

    fn tenant(name: &str) -> Option<Arc<str>> {
        Some(Arc::from(name))
    }

    #[tokio::test]
    async fn budget_is_released_when_the_last_clone_drops() {
        let budget = InflightBudget::new(4 << 10);
        let r = budget.reserve(3 << 10, None).await.unwrap();
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
        let budget = budget(2 << 10, 5_000, 1.0);
        let held = budget.reserve(2 << 10, None).await.unwrap();
        let b2 = budget.clone();
        let waiter = tokio::spawn(async move { b2.reserve(1, None).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(got.is_ok());
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let budget = budget(2 << 10, 100, 1.0);
        let _held = budget.reserve(2 << 10, None).await.unwrap();
        let started = std::time::Instant::now();
        let got = budget.reserve(1, None).await;
        assert_eq!(
            got.unwrap_err(),
            BudgetError::Busy(Duration::from_millis(100))
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn one_tenant_holds_at_most_its_share() {
        let budget = budget(8 << 10, 100, 0.5);
        let a = budget.reserve(4 << 10, tenant("a")).await.unwrap();
        assert_eq!(budget.tenant_bytes("a"), 4 << 10);
        // The share is full: a waits, then is told to slow down...
        assert!(budget.reserve(1, tenant("a")).await.is_err());
        // ...while another tenant gets the rest at once.
        let b = budget.reserve(4 << 10, tenant("b")).await.unwrap();
        drop(a);
        assert_eq!(budget.tenant_bytes("a"), 0);
        assert!(budget.reserve(1, tenant("a")).await.is_ok());
        drop(b);
    }

    #[tokio::test]
    async fn a_new_policy_applies_to_the_next_reservation() {
        let budget = budget(8 << 10, 100, 0.5);
        let a = budget.reserve(4 << 10, tenant("a")).await.unwrap();
        assert!(budget.reserve(1, tenant("a")).await.is_err());
        budget.set_policy(BudgetPolicy {
            wait: Duration::from_millis(50),
            max_share: 1.0,
        });
        let more = budget.reserve(4 << 10, tenant("a")).await.unwrap();
        assert_eq!(budget.tenant_bytes("a"), 8 << 10);
        drop((a, more));
        budget.set_policy(BudgetPolicy {
            wait: Duration::from_millis(50),
            max_share: 0.25,
        });
        let r = budget.reserve(100 << 10, tenant("a")).await.unwrap();
        assert_eq!(r.bytes(), 2 << 10, "clamped to the new share");
        assert_eq!(
            budget.reserve(1, tenant("a")).await.unwrap_err(),
            BudgetError::Busy(Duration::from_millis(50)),
            "the new wait"
        );
    }

    #[tokio::test]
    async fn a_request_larger_than_the_share_is_clamped_to_it() {
        let budget = budget(8 << 10, 100, 0.5);
        let r = budget.reserve(100 << 10, tenant("a")).await.unwrap();
        assert_eq!(r.bytes(), 4 << 10);
        let g = budget.reserve(100 << 10, None).await;
        assert!(g.is_err(), "the whole budget is not free");
    }

    #[tokio::test]
    async fn a_reservation_grows_as_bytes_arrive() {
        let budget = budget(8 << 10, 100, 1.0);
        let mut r = budget.empty(tenant("a"));
        assert_eq!(budget.reserved_bytes(), 0);
        r.cover(1).await.unwrap();
        assert_eq!(budget.reserved_bytes(), 1 << 10);
        r.cover(1000).await.unwrap();
        assert_eq!(budget.reserved_bytes(), 1 << 10);
        r.cover(3 << 10).await.unwrap();
        assert_eq!(budget.reserved_bytes(), 3 << 10);
        assert_eq!(budget.tenant_bytes("a"), 3 << 10);
        // A growth that must wait lets go of what it held meanwhile.
        let _other = budget.reserve(5 << 10, None).await.unwrap();
        assert!(r.cover(6 << 10).await.is_err());
        assert_eq!(r.bytes(), 0);
        assert_eq!(budget.tenant_bytes("a"), 0);
        assert_eq!(budget.reserved_bytes(), 5 << 10);
        drop(r);
        assert_eq!(budget.reserved_bytes(), 5 << 10);
    }

    #[tokio::test]
    async fn partial_holders_of_one_share_do_not_deadlock() {
        // A share of exactly one buffer (4 KiB), two requests each holding a part of one and
        // wanting the whole: one gets it, the other follows once it is released.
        let budget = budget(8 << 10, 2_000, 0.5);
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut r = budget.empty(tenant("a"));
            r.cover(1 << 10).await.unwrap();
            held.push(r);
        }
        let growers: Vec<_> = held
            .into_iter()
            .map(|mut r| {
                tokio::spawn(async move {
                    r.cover(4 << 10).await?;
                    // The buffer goes out, and is released a moment later.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<u64, BudgetError>(r.bytes())
                })
            })
            .collect();
        for g in growers {
            let got = tokio::time::timeout(Duration::from_secs(3), g)
                .await
                .expect("no deadlock")
                .unwrap();
            assert_eq!(got, Ok(4 << 10));
        }
        assert_eq!(budget.reserved_bytes(), 0);
    }
}
