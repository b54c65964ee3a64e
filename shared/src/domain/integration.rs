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
    OAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Connected,
    NeedsReauth,
    Error,
    Disabled,
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
}

impl Integration {
    pub fn secret_name_for(id: &IntegrationId) -> String {
        format!("seatkeeper/integrations/{id}")
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
}
