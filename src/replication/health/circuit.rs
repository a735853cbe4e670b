//! The circuit breaker of one backend, as a plain state machine: it is told what happened and
//! when (`now` is passed in, so tests need no clock), and says when its state changes.
//!
//! - **Closed**: requests go to the backend. `failures_to_open` failures in a row (of requests
//!   or probes) open it; any healthy answer resets the count.
//! - **Open**: requests are refused at once, without touching the backend. After `open_for`
//!   the probe loop moves it to half-open (`tick`).
//! - **HalfOpen**: the open period is over and the next probe decides: a passing probe closes
//!   the circuit, a failing one opens it again for another `open_for`. Requests are still
//!   refused meanwhile: a backend that hangs would otherwise make one more round of requests
//!   wait for their timeout.
//!
//! Only probes close a circuit. A request that succeeds while the circuit is open was sent
//! before it opened; it says little about the backend now.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Where a circuit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl std::fmt::Display for CircuitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        })
    }
}

/// When a circuit opens and how long it stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Failures in a row that open a closed circuit (at least 1).
    pub failures_to_open: u32,
    /// How long an open circuit refuses everything before a probe may close it.
    pub open_for: Duration,
}

/// A change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Closed → Open: too many failures in a row.
    Opened,
    /// Open → HalfOpen: the open period is over; the next probe decides.
    HalfOpened,
    /// HalfOpen → Open: the probe failed.
    Reopened,
    /// HalfOpen → Closed: the probe passed.
    Closed,
}

/// One backend's circuit.
#[derive(Clone, Debug)]
pub struct Circuit {
    policy: CircuitPolicy,
    state: CircuitState,
    /// When the current state began.
    since: Instant,
    consecutive_failures: u32,
}

impl Circuit {
    pub fn new(policy: CircuitPolicy, now: Instant) -> Self {
        Circuit {
            policy: CircuitPolicy {
                failures_to_open: policy.failures_to_open.max(1),
                ..policy
            },
            state: CircuitState::Closed,
            since: now,
            consecutive_failures: 0,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Takes a new policy (a configuration reload); the state and the failures counted so
    /// far stay, and the next event is judged by the new policy.
    pub fn set_policy(&mut self, policy: CircuitPolicy) {
        self.policy = CircuitPolicy {
            failures_to_open: policy.failures_to_open.max(1),
            ..policy
        };
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Whether requests may go to the backend.
    pub fn admits_requests(&self) -> bool {
        self.state == CircuitState::Closed
    }

    /// A request got a healthy answer (a success, or an answer such as "not found").
    pub fn on_success(&mut self, _now: Instant) -> Option<Transition> {
        if self.state == CircuitState::Closed {
            self.consecutive_failures = 0;
        }
        None
    }

    /// A request failed in a way that is the provider's doing.
    pub fn on_failure(&mut self, now: Instant) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.state == CircuitState::Closed
            && self.consecutive_failures >= self.policy.failures_to_open
        {
            return Some(self.enter(CircuitState::Open, now, Transition::Opened));
        }
        None
    }

    /// The open period may be over: moves Open → HalfOpen once `open_for` has passed.
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        if self.state == CircuitState::Open
            && now.saturating_duration_since(self.since) >= self.policy.open_for
        {
            return Some(self.enter(CircuitState::HalfOpen, now, Transition::HalfOpened));
        }
        None
    }

    /// Whether a probe now can change anything: not while the circuit is open and its open
    /// period runs (the probe loop skips those).
    pub fn wants_probe(&self) -> bool {
        self.state != CircuitState::Open
    }

    /// A probe's outcome. Closed: counts like a request. HalfOpen: decides. Open (the open
    /// period still runs): changes nothing.
    pub fn on_probe(&mut self, passed: bool, now: Instant) -> Option<Transition> {
        match (self.state, passed) {
            (CircuitState::Closed, true) => self.on_success(now),
            (CircuitState::Closed, false) => self.on_failure(now),
            (CircuitState::HalfOpen, true) => {
                self.consecutive_failures = 0;
                Some(self.enter(CircuitState::Closed, now, Transition::Closed))
            }
            (CircuitState::HalfOpen, false) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                Some(self.enter(CircuitState::Open, now, Transition::Reopened))
            }
            (CircuitState::Open, passed) => {
                if !passed {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                }
                None
            }
        }
    }

    fn enter(&mut self, state: CircuitState, now: Instant, t: Transition) -> Transition {
        self.state = state;
        self.since = now;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    fn circuit(t0: Instant) -> Circuit {
        Circuit::new(
            CircuitPolicy {
                failures_to_open: 3,
                open_for: OPEN_FOR,
            },
            t0,
        )
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn opens_after_failures_in_a_row_only() {
        let t0 = Instant::now();
        let mut c = circuit(t0);
        assert_eq!(c.on_failure(at(t0, 1)), None);
        assert_eq!(c.on_failure(at(t0, 2)), None);
        // A healthy answer in between starts the count again.
        assert_eq!(c.on_success(at(t0, 3)), None);
        assert_eq!(c.consecutive_failures(), 0);
        assert_eq!(c.on_failure(at(t0, 4)), None);
        assert_eq!(c.on_failure(at(t0, 5)), None);
        assert!(c.admits_requests());
        assert_eq!(c.on_failure(at(t0, 6)), Some(Transition::Opened));
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.since(), at(t0, 6));
        assert!(!c.admits_requests());
        assert_eq!(c.consecutive_failures(), 3);
    }

    #[test]
    fn stays_open_for_its_period_whatever_requests_and_probes_say() {
        let t0 = Instant::now();
        let mut c = circuit(t0);
        for s in 0..3 {
            c.on_failure(at(t0, s));
        }
        let opened = at(t0, 2);
        assert_eq!(c.state(), CircuitState::Open);
        // Late successes of requests sent before it opened, and early probes, change nothing.
        assert_eq!(c.on_success(at(t0, 3)), None);
        assert_eq!(c.on_probe(true, at(t0, 4)), None);
        assert_eq!(c.on_failure(at(t0, 5)), None);
        assert!(!c.wants_probe());
        assert_eq!(c.tick(opened + OPEN_FOR - Duration::from_millis(1)), None);
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.tick(opened + OPEN_FOR), Some(Transition::HalfOpened));
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(c.wants_probe());
        // Still no requests until a probe passes.
        assert!(!c.admits_requests());
        assert_eq!(c.tick(opened + OPEN_FOR * 5), None);
    }

    #[test]
    fn a_passing_probe_closes_a_half_open_circuit() {
        let t0 = Instant::now();
        let mut c = circuit(t0);
        for s in 0..3 {
            c.on_failure(at(t0, s));
        }
        c.tick(at(t0, 30));
        assert_eq!(c.on_probe(true, at(t0, 31)), Some(Transition::Closed));
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.since(), at(t0, 31));
        assert_eq!(c.consecutive_failures(), 0);
        assert!(c.admits_requests());
        // It takes the full count to open again.
        assert_eq!(c.on_failure(at(t0, 32)), None);
        assert_eq!(c.on_failure(at(t0, 33)), None);
        assert_eq!(c.on_failure(at(t0, 34)), Some(Transition::Opened));
    }

    #[test]
    fn a_failing_probe_reopens_for_another_period() {
        let t0 = Instant::now();
        let mut c = circuit(t0);
        for s in 0..3 {
            c.on_failure(at(t0, s));
        }
        c.tick(at(t0, 20));
        assert_eq!(c.on_probe(false, at(t0, 21)), Some(Transition::Reopened));
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.since(), at(t0, 21));
        assert_eq!(c.tick(at(t0, 30)), None);
        assert_eq!(c.tick(at(t0, 31)), Some(Transition::HalfOpened));
    }

    #[test]
    fn probes_alone_open_a_circuit() {
        let t0 = Instant::now();
        let mut c = circuit(t0);
        assert_eq!(c.on_probe(false, at(t0, 1)), None);
        assert_eq!(c.on_probe(false, at(t0, 2)), None);
        assert_eq!(c.on_probe(false, at(t0, 3)), Some(Transition::Opened));
        // A passing probe on a closed circuit resets the count.
        let mut d = circuit(t0);
        d.on_probe(false, at(t0, 1));
        d.on_probe(false, at(t0, 2));
        d.on_probe(true, at(t0, 3));
        assert_eq!(d.on_probe(false, at(t0, 4)), None);
        assert_eq!(d.state(), CircuitState::Closed);
    }

    #[test]
    fn failures_to_open_is_at_least_one() {
        let t0 = Instant::now();
        let mut c = Circuit::new(
            CircuitPolicy {
                failures_to_open: 0,
                open_for: OPEN_FOR,
            },
            t0,
        );
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.on_failure(t0), Some(Transition::Opened));
    }
}
