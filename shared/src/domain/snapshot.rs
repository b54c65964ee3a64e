//! The daily snapshot: per license type, enough to answer "how many seats are active for
//! any inactivity threshold" without reading accounts again.

use super::{Account, EventCoverage, IntegrationId, LoginAge};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Ages at or beyond this many days share the last histogram bucket.
const HISTOGRAM_DAYS: usize = 366;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    /// Seats bought; unknown when the provider cannot tell and none were configured.
    pub purchased: Option<u64>,
    pub assigned: u64,
    /// `purchased − assigned`; negative when over-assigned.
    pub available: Option<i64>,
}

/// Stored per license type: seat holders, those never seen logging in, and a histogram of
/// days since the last login (index = whole days; the last bucket holds everything older).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseTypeStats {
    pub name: String,
    pub assigned: u64,
    pub never_logged_in: u64,
    pub login_age_days: Vec<u64>,
    /// Seats bought and used as the provider reports them per license (Salesforce).
    #[serde(default)]
    pub purchased: Option<u64>,
}

/// The figures a report shows for one license type at one inactivity threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseTypeCounts {
    pub name: String,
    pub assigned: u64,
    pub active: u64,
    pub inactive: u64,
    pub never_logged_in: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub integration_id: IntegrationId,
    pub date: NaiveDate,
    pub data_as_of: DateTime<Utc>,
    pub sync_id: String,
    pub event_coverage: Option<EventCoverage>,
    pub seats: Seats,
    pub license_types: Vec<LicenseTypeStats>,
    /// Accounts by kind (human, service, app, external), vanished ones excluded.
    pub accounts_by_kind: BTreeMap<String, u64>,
}

impl Snapshot {
    pub fn counts(&self, inactive_days: u32) -> Vec<LicenseTypeCounts> {
        self.license_types
            .iter()
            .map(|lt| {
                let cutoff = (inactive_days as usize).min(lt.login_age_days.len());
                let active: u64 = lt.login_age_days[..cutoff].iter().sum();
                LicenseTypeCounts {
                    name: lt.name.clone(),
                    assigned: lt.assigned,
                    active,
                    inactive: lt.assigned.saturating_sub(active),
                    never_logged_in: lt.never_logged_in,
                }
            })
            .collect()
    }
}

/// Accumulates a snapshot while accounts stream past, one at a time.
#[derive(Debug)]
pub struct SnapshotBuilder {
    data_as_of: DateTime<Utc>,
    by_type: BTreeMap<String, LicenseTypeStats>,
    by_kind: BTreeMap<String, u64>,
}

impl SnapshotBuilder {
    /// `license_types` are listed even when nobody holds them (a declared plan with no users).
    pub fn new(data_as_of: DateTime<Utc>, license_types: &[String]) -> Self {
        let mut b = Self {
            data_as_of,
            by_type: BTreeMap::new(),
            by_kind: BTreeMap::new(),
        };
        for name in license_types {
            b.entry(name);
        }
        b
    }

    fn entry(&mut self, name: &str) -> &mut LicenseTypeStats {
        self.by_type
            .entry(name.to_owned())
            .or_insert_with(|| LicenseTypeStats {
                name: name.to_owned(),
                assigned: 0,
                never_logged_in: 0,
                login_age_days: vec![0; HISTOGRAM_DAYS],
                purchased: None,
            })
    }

    pub fn add(&mut self, account: &Account) {
        if account.vanished_at.is_some() {
            return;
        }
        *self
            .by_kind
            .entry(account.kind.as_str().to_owned())
            .or_default() += 1;
        let Some(license_type) = account.license_type.as_deref() else {
            return;
        };
        let age = LoginAge::of(account.last_login_at, self.data_as_of);
        let stats = self.entry(license_type);
        stats.assigned += 1;
        match age.0 {
            Some(days) => {
                let bucket = (days as usize).min(HISTOGRAM_DAYS - 1);
                stats.login_age_days[bucket] += 1;
            }
            None => stats.never_logged_in += 1,
        }
    }

    /// Seats bought per license type, where the provider reports them.
    pub fn set_purchased(&mut self, license_type: &str, purchased: u64) {
        self.entry(license_type).purchased = Some(purchased);
    }

    pub fn finish(
        self,
        integration_id: IntegrationId,
        sync_id: String,
        event_coverage: Option<EventCoverage>,
        purchased_seats: Option<u64>,
    ) -> Snapshot {
        let license_types: Vec<LicenseTypeStats> = self.by_type.into_values().collect();
        let assigned = license_types.iter().map(|l| l.assigned).sum::<u64>();
        let purchased = purchased_seats.or_else(|| {
            let per_type: Vec<u64> = license_types.iter().filter_map(|l| l.purchased).collect();
            (!per_type.is_empty()).then(|| per_type.iter().sum())
        });
        Snapshot {
            integration_id,
            date: self.data_as_of.date_naive(),
            data_as_of: self.data_as_of,
            sync_id,
            event_coverage,
            seats: Seats {
                purchased,
                assigned,
                available: purchased.map(|p| p as i64 - assigned as i64),
            },
            license_types,
            accounts_by_kind: self.by_kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccountKind;
    use chrono::{Duration, TimeZone};

    fn account(
        id: &str,
        license: Option<&str>,
        last_login_days_ago: Option<i64>,
        now: DateTime<Utc>,
    ) -> Account {
        Account {
            external_id: id.into(),
            login: format!("{id}@example.com"),
            name: id.into(),
            kind: if license.is_some() {
                AccountKind::Human
            } else {
                AccountKind::App
            },
            status: "active".into(),
            role: None,
            license_type: license.map(str::to_owned),
            last_login_at: last_login_days_ago
                .map(|d| now - Duration::days(d) - Duration::hours(1)),
            created_at: None,
            modified_at: None,
            space_amount_bytes: None,
            space_used_bytes: None,
            max_upload_size_bytes: None,
            is_sync_enabled: None,
            is_exempt_from_device_limits: None,
            attributes: Default::default(),
            vanished_at: None,
        }
    }

    #[test]
    fn active_plus_inactive_is_assigned_at_every_threshold() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let mut b = SnapshotBuilder::new(now, &["Business".into(), "Enterprise".into()]);
        b.add(&account("1", Some("Business"), Some(1), now));
        b.add(&account("2", Some("Business"), Some(100), now));
        b.add(&account("3", Some("Business"), None, now));
        b.add(&account("4", Some("Business"), Some(400), now));
        b.add(&account("5", None, Some(1), now));
        let s = b.finish(
            IntegrationId::parse("i").unwrap(),
            "s".into(),
            None,
            Some(10),
        );
        let c = s.counts(90);
        assert_eq!(
            c[0],
            LicenseTypeCounts {
                name: "Business".into(),
                assigned: 4,
                active: 1,
                inactive: 3,
                never_logged_in: 1
            }
        );
        assert_eq!(
            c[1].assigned, 0,
            "declared plans are listed even when empty"
        );
        assert_eq!(s.counts(365)[0].active, 2);
        assert_eq!(
            s.seats,
            Seats {
                purchased: Some(10),
                assigned: 4,
                available: Some(6)
            }
        );
        assert_eq!(s.accounts_by_kind.get("app"), Some(&1));
    }
}
