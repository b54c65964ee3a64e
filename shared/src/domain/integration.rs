use super::InvalidInput;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An integration's id: lowercase letters, digits and dashes (we mint UUIDs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntegrationId(String);

impl IntegrationId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "integration_id",
                "must be 1-64 characters of a-z, 0-9 and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IntegrationId {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IntegrationId> for String {
    fn from(id: IntegrationId) -> Self {
        id.0
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Box,
    Salesforce,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Box => "box",
            Provider::Salesforce => "salesforce",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// Box Client Credentials Grant (or Salesforce client credentials).
    ClientCredentials,
    /// Authorization code with a refresh token.
    #[serde(rename = "oauth")]
    OAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Connected,
    NeedsReauth,
    Error,
    Disabled,
    /// Disconnected by an admin: credentials deleted, tenant released, history kept.
    Disconnected,
}

impl IntegrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "connected",
            IntegrationStatus::NeedsReauth => "needs_reauth",
            IntegrationStatus::Error => "error",
            IntegrationStatus::Disabled => "disabled",
            IntegrationStatus::Disconnected => "disconnected",
        }
    }
}

/// The Box subscription plans. Box has no API that tells the plan or the seat count,
/// so an integration declares them (seed 001, "License Differentiation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxPlan {
    BusinessStarter,
    Business,
    BusinessPlus,
    Enterprise,
    EnterprisePlus,
}

impl BoxPlan {
    pub const ALL: [BoxPlan; 5] = [
        BoxPlan::BusinessStarter,
        BoxPlan::Business,
        BoxPlan::BusinessPlus,
        BoxPlan::Enterprise,
        BoxPlan::EnterprisePlus,
    ];

    /// The license type name shown in reports.
    pub fn license_type(self) -> &'static str {
        match self {
            BoxPlan::BusinessStarter => "Business Starter",
            BoxPlan::Business => "Business",
            BoxPlan::BusinessPlus => "Business Plus",
            BoxPlan::Enterprise => "Enterprise",
            BoxPlan::EnterprisePlus => "Enterprise Plus",
        }
    }

    /// Accepts `business-plus`, `business_plus`, `Business Plus`, in any case.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let norm: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        match norm.as_str() {
            "business_starter" | "starter" => Ok(BoxPlan::BusinessStarter),
            "business" => Ok(BoxPlan::Business),
            "business_plus" => Ok(BoxPlan::BusinessPlus),
            "enterprise" => Ok(BoxPlan::Enterprise),
            "enterprise_plus" => Ok(BoxPlan::EnterprisePlus),
            _ => Err(InvalidInput::new(
                "plan",
                "must be one of business-starter, business, business-plus, enterprise, enterprise-plus",
            )),
        }
    }
}

/// How an integration's sync behaves; every field has a safe default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncSettings {
    /// Days without a login after which a seat counts as inactive in snapshots.
    pub inactive_days: u32,
    /// How far back the first sync reads login events.
    pub event_backfill_days: u32,
    /// How far before the coverage high-water mark later syncs start reading, for late events.
    pub event_overlap_hours: u32,
    /// If more than this share of known accounts vanished from one roster read, nothing is marked.
    pub max_vanish_ratio: f64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            inactive_days: 90,
            event_backfill_days: 365,
            event_overlap_hours: 24,
            max_vanish_ratio: 0.10,
        }
    }
}

impl SyncSettings {
    /// Box keeps enterprise events for a year: a longer backfill would claim coverage that
    /// was never readable.
    pub const MAX_BACKFILL_DAYS: u32 = 365;

    /// The settings with every value brought into its safe range, whatever was stored.
    pub fn sanitized(&self) -> SyncSettings {
        let defaults = SyncSettings::default();
        SyncSettings {
            inactive_days: self.inactive_days.clamp(1, 365),
            event_backfill_days: self.event_backfill_days.clamp(1, Self::MAX_BACKFILL_DAYS),
            // At least an hour: it also absorbs Box's whole-second window bounds.
            event_overlap_hours: self.event_overlap_hours.clamp(1, 24 * 7),
            max_vanish_ratio: if self.max_vanish_ratio.is_finite() && self.max_vanish_ratio >= 0.0 {
                self.max_vanish_ratio.min(1.0)
            } else {
                defaults.max_vanish_ratio
            },
        }
    }
}

/// What the last sync did, kept on the integration for list views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSummary {
    pub sync_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub succeeded: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: IntegrationId,
    pub provider: Provider,
    pub name: String,
    pub auth_kind: AuthKind,
    /// Box enterprise id, or Salesforce org id.
    pub tenant_id: String,
    /// Name of the secret holding this integration's credentials (never the credentials).
    pub secret_name: String,
    pub status: IntegrationStatus,
    pub enabled: bool,
    /// The license type every seat holder gets, where the provider cannot tell (Box).
    pub plan: Option<BoxPlan>,
    /// Seats bought, where the provider cannot tell (Box).
    pub purchased_seats: Option<u64>,
    /// The provider user Seatkeeper acts as (Box service account): never reclaimed.
    pub service_user_id: Option<String>,
    #[serde(default)]
    pub sync: SyncSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub last_sync: Option<SyncSummary>,
    /// Reclaim guard-rails (design §8); a job's policy may only tighten them.
    #[serde(default)]
    pub reclaim: ReclaimGuardRails,
    /// What a seat costs, for `potential_savings`.
    #[serde(default)]
    pub seat_price: Option<SeatPrice>,
}

impl Integration {
    /// Most seats an integration may declare.
    pub const MAX_SEATS: u64 = 10_000_000;

    pub fn secret_name_for(id: &IntegrationId) -> String {
        format!("seatkeeper/integrations/{id}")
    }

    /// A display name (integration, license type): 1-100 printable characters.
    pub fn check_name(field: &'static str, name: &str) -> Result<(), InvalidInput> {
        if name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(
                field,
                "must be 1-100 printable characters",
            ));
        }
        Ok(())
    }

    /// Declared purchased seats.
    pub fn check_seats(seats: u64) -> Result<(), InvalidInput> {
        if seats > Self::MAX_SEATS {
            return Err(InvalidInput::new(
                "seats",
                format!("must be at most {}", Self::MAX_SEATS),
            ));
        }
        Ok(())
    }
}

/// The integration's reclaim guard-rails (design §8). Stored on the integration; a
/// reclaim job may only tighten them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReclaimGuardRails {
    /// Provider logins (e-mail addresses) never acted on, compared case-insensitively.
    pub excluded_logins: Vec<String>,
    /// Provider user ids never acted on.
    pub excluded_user_ids: Vec<String>,
    /// Provider group ids whose members are never acted on (read live per candidate).
    pub excluded_group_ids: Vec<String>,
    /// Jobs with more candidates than this wait for approval; `None` means the default:
    /// the smaller of 50 and 10 % of the purchased seats.
    pub approval_threshold: Option<u32>,
    /// Jobs at or under the threshold start without an approval.
    pub auto_approve: bool,
    /// Whether the requester may approve their own job.
    pub allow_self_approval: bool,
    /// Accounts created more recently than this are never candidates.
    pub grace_period_days: u32,
}

impl Default for ReclaimGuardRails {
    fn default() -> Self {
        Self {
            excluded_logins: Vec::new(),
            excluded_user_ids: Vec::new(),
            excluded_group_ids: Vec::new(),
            approval_threshold: None,
            auto_approve: false,
            allow_self_approval: false,
            grace_period_days: 30,
        }
    }
}

impl ReclaimGuardRails {
    /// Longest exclusion list an integration keeps (items stay small, design §4).
    pub const MAX_EXCLUSIONS: usize = 500;

    /// The threshold in force: the configured one, or the smaller of 50 and 10 % of seats.
    pub fn effective_threshold(&self, purchased_seats: Option<u64>) -> u32 {
        self.approval_threshold.unwrap_or_else(|| {
            let tenth = purchased_seats.map_or(50, |s| (s / 10).min(50));
            u32::try_from(tenth).unwrap_or(50)
        })
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        let lists = [
            ("excluded_logins", &self.excluded_logins),
            ("excluded_user_ids", &self.excluded_user_ids),
            ("excluded_group_ids", &self.excluded_group_ids),
        ];
        for (field, list) in lists {
            if list.len() > Self::MAX_EXCLUSIONS {
                return Err(InvalidInput::new(
                    field,
                    format!("at most {} entries", Self::MAX_EXCLUSIONS),
                ));
            }
            if list
                .iter()
                .any(|v| v.trim().is_empty() || v.len() > 254 || v.chars().any(char::is_control))
            {
                return Err(InvalidInput::new(
                    field,
                    "entries must be 1-254 printable characters",
                ));
            }
        }
        if self.approval_threshold.is_some_and(|t| t > 100_000) {
            return Err(InvalidInput::new(
                "approval_threshold",
                "must be at most 100000",
            ));
        }
        if self.grace_period_days > 3650 {
            return Err(InvalidInput::new(
                "grace_period_days",
                "must be at most 3650",
            ));
        }
        Ok(())
    }
}

/// The price of one seat per month, in minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatPrice {
    /// Minor units (cents) per seat per month.
    pub monthly_minor_units: u64,
    /// ISO 4217 code, upper case (`USD`).
    pub currency: String,
}

impl SeatPrice {
    pub fn new(monthly_minor_units: u64, currency: &str) -> Result<Self, InvalidInput> {
        if monthly_minor_units > 100_000_000 {
            return Err(InvalidInput::new(
                "price_per_seat",
                "must be at most 1000000 per month",
            ));
        }
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(InvalidInput::new(
                "currency",
                "must be a three-letter ISO 4217 code",
            ));
        }
        Ok(Self {
            monthly_minor_units,
            currency: currency.to_ascii_uppercase(),
        })
    }

    /// What `seats` unused seats cost per month, in minor units.
    pub fn monthly_cost(&self, seats: u64) -> u64 {
        self.monthly_minor_units.saturating_mul(seats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_settings_are_brought_into_range() {
        let wild = SyncSettings {
            inactive_days: 0,
            event_backfill_days: u32::MAX,
            event_overlap_hours: 0,
            max_vanish_ratio: f64::NAN,
        };
        let safe = wild.sanitized();
        assert_eq!(safe.inactive_days, 1);
        assert_eq!(safe.event_backfill_days, 365);
        assert_eq!(safe.event_overlap_hours, 1);
        assert_eq!(safe.max_vanish_ratio, 0.10);
        let negative = SyncSettings {
            max_vanish_ratio: -1.0,
            ..SyncSettings::default()
        };
        assert_eq!(negative.sanitized().max_vanish_ratio, 0.10);
    }

    #[test]
    fn default_threshold_is_the_smaller_of_fifty_and_a_tenth_of_seats() {
        let rails = ReclaimGuardRails::default();
        assert_eq!(rails.effective_threshold(None), 50);
        assert_eq!(rails.effective_threshold(Some(200)), 20);
        assert_eq!(rails.effective_threshold(Some(10_000)), 50);
        let set = ReclaimGuardRails {
            approval_threshold: Some(7),
            ..ReclaimGuardRails::default()
        };
        assert_eq!(set.effective_threshold(Some(10_000)), 7);
    }

    #[test]
    fn guard_rails_refuse_oversized_or_blank_exclusions() {
        let blank = ReclaimGuardRails {
            excluded_logins: vec![" ".into()],
            ..ReclaimGuardRails::default()
        };
        assert_eq!(blank.validate().unwrap_err().field, "excluded_logins");
        let long = ReclaimGuardRails {
            excluded_user_ids: vec!["1".into(); ReclaimGuardRails::MAX_EXCLUSIONS + 1],
            ..ReclaimGuardRails::default()
        };
        assert_eq!(long.validate().unwrap_err().field, "excluded_user_ids");
        assert!(ReclaimGuardRails::default().validate().is_ok());
    }

    #[test]
    fn seat_price_checks_the_currency() {
        assert_eq!(SeatPrice::new(1500, "eur").unwrap().currency, "EUR");
        assert!(SeatPrice::new(1500, "EURO").is_err());
        assert_eq!(SeatPrice::new(1500, "USD").unwrap().monthly_cost(3), 4500);
    }
}
