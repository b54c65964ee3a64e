use super::InvalidInput;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Days without a login after which a seat counts as inactive (1..=365).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct InactiveDays(u32);

impl InactiveDays {
    pub const MAX: u32 = 365;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for InactiveDays {
    fn default() -> Self {
        Self(90)
    }
}

impl TryFrom<u32> for InactiveDays {
    type Error = InvalidInput;
    fn try_from(days: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&days) {
            Ok(Self(days))
        } else {
            Err(InvalidInput::new(
                "inactive_days",
                "must be between 1 and 365",
            ))
        }
    }
}

impl From<InactiveDays> for u32 {
    fn from(d: InactiveDays) -> Self {
        d.0
    }
}

/// The unbroken time range of login events actually read from the provider.
/// It moves only when a read completed, so "no login within coverage" is a fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCoverage {
    pub from: DateTime<Utc>,
    /// The high-water mark: every event created before this was read.
    pub to: DateTime<Utc>,
}

impl EventCoverage {
    /// The coverage after a completed read of `[read_from, read_to)`. A read that starts
    /// after the current high-water mark would leave a gap, so it starts a new range.
    pub fn extended(
        current: Option<&EventCoverage>,
        read_from: DateTime<Utc>,
        read_to: DateTime<Utc>,
    ) -> EventCoverage {
        match current {
            Some(c) if read_from <= c.to => EventCoverage {
                from: c.from.min(read_from),
                to: c.to.max(read_to),
            },
            _ => EventCoverage {
                from: read_from,
                to: read_to,
            },
        }
    }

    pub fn span(&self) -> Duration {
        self.to - self.from
    }
}

/// How long before `as_of` a login was, in whole days (floor); `None` = never within coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAge(pub Option<u32>);

impl LoginAge {
    pub fn of(last_login: Option<DateTime<Utc>>, as_of: DateTime<Utc>) -> Self {
        Self(last_login.map(|at| {
            let secs = (as_of - at).num_seconds().max(0);
            u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
        }))
    }

    /// Active means a login less than `inactive_days` × 24 h before the sync time.
    pub fn is_active(self, inactive_days: u32) -> bool {
        matches!(self.0, Some(days) if days < inactive_days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn inactive_days_are_bounded() {
        assert!(InactiveDays::try_from(0).is_err());
        assert!(InactiveDays::try_from(366).is_err());
        assert_eq!(InactiveDays::try_from(90).unwrap().get(), 90);
    }

    #[test]
    fn a_login_exactly_n_days_ago_is_inactive() {
        let now = t(31);
        assert!(LoginAge::of(Some(t(2)), now).is_active(30));
        assert!(!LoginAge::of(Some(t(1)), now).is_active(30));
        assert!(!LoginAge::of(None, now).is_active(30));
    }

    #[test]
    fn coverage_extends_only_without_gaps() {
        let c = EventCoverage {
            from: t(1),
            to: t(10),
        };
        assert_eq!(
            EventCoverage::extended(Some(&c), t(9), t(20)),
            EventCoverage {
                from: t(1),
                to: t(20)
            }
        );
        assert_eq!(
            EventCoverage::extended(Some(&c), t(11), t(20)),
            EventCoverage {
                from: t(11),
                to: t(20)
            }
        );
        assert_eq!(
            EventCoverage::extended(None, t(3), t(4)),
            EventCoverage {
                from: t(3),
                to: t(4)
            }
        );
    }
}
