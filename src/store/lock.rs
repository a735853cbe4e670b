//! Object lock: whether a version may be removed or its retention changed, decided from the
//! version's lock state alone (no I/O), and the bucket's lock configuration as it is stored.
//!
//! Every path that can destroy a version asks [`may_remove`]; the S3 layer turns a refusal
//! into `AccessDenied`, as S3 does.

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectLock, Retention, RetentionMode};

/// Why a version may not be removed (or its retention not changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    LegalHold,
    /// Under compliance retention until this time (ms): nobody may.
    Compliance(u64),
    /// Under governance retention until this time (ms): only with the bypass.
    Governance(u64),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LegalHold => write!(f, "the version is under a legal hold"),
            Refusal::Compliance(until) => {
                write!(
                    f,
                    "the version is under compliance retention until {until} ms"
                )
            }
            Refusal::Governance(until) => {
                write!(
                    f,
                    "the version is under governance retention until {until} ms"
                )
            }
        }
    }
}

/// Retention that still holds at `now_ms`; a retention whose date has passed protects nothing.
fn active(retention: Option<&Retention>, now_ms: u64) -> Option<Retention> {
    retention.copied().filter(|r| r.retain_until_ms > now_ms)
}

/// Whether a version with `lock` may be removed (deleted, or overwritten away) at `now_ms`.
/// `bypass_governance`: the request asked to bypass governance retention and may.
pub fn may_remove(lock: &ObjectLock, bypass_governance: bool, now_ms: u64) -> Result<(), Refusal> {
    if lock.legal_hold {
        return Err(Refusal::LegalHold);
    }
    match active(lock.retention.as_ref(), now_ms) {
        None => Ok(()),
        Some(r) => match r.mode {
            RetentionMode::Compliance => Err(Refusal::Compliance(r.retain_until_ms)),
            RetentionMode::Governance if bypass_governance => Ok(()),
            RetentionMode::Governance => Err(Refusal::Governance(r.retain_until_ms)),
        },
    }
}

/// Whether a version's retention may go from `current` to `new` at `now_ms`. Keeping or
/// strengthening it (a later or equal date, governance to compliance) is always allowed;
/// weakening active compliance retention never is, weakening governance only with the bypass.
pub fn may_change_retention(
    current: Option<&Retention>,
    new: Option<&Retention>,
    bypass_governance: bool,
    now_ms: u64,
) -> Result<(), Refusal> {
    let Some(held) = active(current, now_ms) else {
        return Ok(());
    };
    let keeps = new.is_some_and(|n| {
        n.retain_until_ms >= held.retain_until_ms
            && !(held.mode == RetentionMode::Compliance && n.mode == RetentionMode::Governance)
    });
    match held.mode {
        _ if keeps => Ok(()),
        RetentionMode::Compliance => Err(Refusal::Compliance(held.retain_until_ms)),
        RetentionMode::Governance if bypass_governance => Ok(()),
        RetentionMode::Governance => Err(Refusal::Governance(held.retain_until_ms)),
    }
}

/// A bucket's default retention period.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Years(u32),
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub period: Period,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl DefaultRetention {
    /// The retention a version created at `created_ms` gets. A year is 365 days, as S3
    /// counts it.
    pub fn applied_at(&self, created_ms: u64) -> Retention {
        let days = match self.period {
            Period::Days(d) => u64::from(d),
            Period::Years(y) => u64::from(y) * 365,
        };
        Retention {
            mode: self.mode,
            retain_until_ms: created_ms.saturating_add(days.saturating_mul(DAY_MS)),
        }
    }
}

/// A bucket's object lock configuration (`BucketSetting::ObjectLock`, stored as JSON). Its
/// presence means object lock is enabled on the bucket; S3 offers no way to disable it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

impl LockConfiguration {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// `None` for a stored text this gateway cannot read (treated as lock enabled without a
    /// default by callers, never as lock disabled).
    pub fn from_json(text: &str) -> Option<LockConfiguration> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn lock(mode: Option<RetentionMode>, until: u64, legal_hold: bool) -> ObjectLock {
        ObjectLock {
            retention: mode.map(|mode| Retention {
                mode,
                retain_until_ms: until,
            }),
            legal_hold,
        }
    }

    fn ret(mode: RetentionMode, until: u64) -> Retention {
        Retention {
            mode,
            retain_until_ms: until,
        }
    }

    use RetentionMode::{Compliance, Governance};

    #[test]
    fn unlocked_and_expired_versions_may_go() {
        assert_eq!(may_remove(&ObjectLock::default(), false, NOW), Ok(()));
        assert_eq!(
            may_remove(&lock(Some(Compliance), NOW, false), false, NOW),
            Ok(())
        );
        assert_eq!(
            may_remove(&lock(Some(Governance), NOW - 1, false), false, NOW),
            Ok(())
        );
    }

    #[test]
    fn compliance_holds_even_with_the_bypass() {
        let l = lock(Some(Compliance), NOW + 1, false);
        assert_eq!(
            may_remove(&l, false, NOW),
            Err(Refusal::Compliance(NOW + 1))
        );
        assert_eq!(may_remove(&l, true, NOW), Err(Refusal::Compliance(NOW + 1)));
    }

    #[test]
    fn governance_yields_only_to_the_bypass() {
        let l = lock(Some(Governance), NOW + 1, false);
        assert_eq!(
            may_remove(&l, false, NOW),
            Err(Refusal::Governance(NOW + 1))
        );
        assert_eq!(may_remove(&l, true, NOW), Ok(()));
    }

    #[test]
    fn legal_hold_holds_whatever_the_retention() {
        assert_eq!(
            may_remove(&lock(None, 0, true), true, NOW),
            Err(Refusal::LegalHold)
        );
        assert_eq!(
            may_remove(&lock(Some(Governance), NOW - 1, true), true, NOW),
            Err(Refusal::LegalHold)
        );
    }

    #[test]
    fn compliance_retention_is_only_ever_extended() {
        let held = ret(Compliance, NOW + 100);
        let change = |new: Option<Retention>, bypass| {
            may_change_retention(Some(&held), new.as_ref(), bypass, NOW)
        };
        assert_eq!(change(Some(ret(Compliance, NOW + 200)), false), Ok(()));
        assert_eq!(change(Some(ret(Compliance, NOW + 100)), false), Ok(()));
        let refused = Err(Refusal::Compliance(NOW + 100));
        assert_eq!(change(Some(ret(Compliance, NOW + 99)), true), refused);
        assert_eq!(change(Some(ret(Governance, NOW + 200)), true), refused);
        assert_eq!(change(None, true), refused);
    }

    #[test]
    fn governance_retention_is_weakened_only_with_the_bypass() {
        let held = ret(Governance, NOW + 100);
        let change = |new: Option<Retention>, bypass| {
            may_change_retention(Some(&held), new.as_ref(), bypass, NOW)
        };
        assert_eq!(change(Some(ret(Governance, NOW + 200)), false), Ok(()));
        assert_eq!(change(Some(ret(Compliance, NOW + 100)), false), Ok(()));
        let refused = Err(Refusal::Governance(NOW + 100));
        assert_eq!(change(Some(ret(Governance, NOW + 50)), false), refused);
        assert_eq!(change(None, false), refused);
        assert_eq!(change(Some(ret(Governance, NOW + 50)), true), Ok(()));
        assert_eq!(change(None, true), Ok(()));
    }

    #[test]
    fn expired_retention_may_be_changed_freely() {
        let held = ret(Compliance, NOW);
        assert_eq!(may_change_retention(Some(&held), None, false, NOW), Ok(()));
        assert_eq!(may_change_retention(None, None, false, NOW), Ok(()));
    }

    #[test]
    fn default_retention_counts_days_and_years() {
        let d = DefaultRetention {
            mode: Governance,
            period: Period::Days(2),
        };
        assert_eq!(d.applied_at(5).retain_until_ms, 5 + 2 * DAY_MS);
        let y = DefaultRetention {
            mode: Compliance,
            period: Period::Years(1),
        };
        assert_eq!(y.applied_at(0), ret(Compliance, 365 * DAY_MS));
    }

    #[test]
    fn configuration_round_trips_through_json() {
        let c = LockConfiguration {
            default_retention: Some(DefaultRetention {
                mode: Compliance,
                period: Period::Years(3),
            }),
        };
        assert_eq!(LockConfiguration::from_json(&c.to_json()), Some(c));
        assert_eq!(
            LockConfiguration::from_json("{}"),
            Some(LockConfiguration::default())
        );
    }
}
