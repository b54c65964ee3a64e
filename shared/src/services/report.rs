//! The license report: what a software-asset manager reads (seats, license types, activity).
//! Figures come from the latest complete snapshot, never from a half-finished sync.

use crate::domain::{
    Account, EventCoverage, InactiveDays, Integration, IntegrationId, LicenseTypeCounts, Provider,
    SeatPrice, Seats, Snapshot,
};
use crate::store::{Store, StoreError, for_each_account_page};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("integration {0} not found")]
    NotFound(IntegrationId),
    #[error("integration {0} has no completed sync yet")]
    NoData(IntegrationId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportIntegration {
    pub id: IntegrationId,
    pub provider: Provider,
    pub name: String,
}

/// The report without its accounts: `GET /integrations/{id}/licenses` serves exactly this.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LicenseSummary {
    pub integration: ReportIntegration,
    /// The sync time the figures are as of (`data_as_of`).
    pub synced_at: DateTime<Utc>,
    pub inactive_days: u32,
    pub event_coverage: Option<EventCoverage>,
    pub seats: Seats,
    pub license_types: Vec<LicenseTypeCounts>,
    /// What the inactive seats cost; `None` when the integration has no price per seat.
    pub potential_savings: Option<PotentialSavings>,
}

/// Inactive seats × the integration's price per seat. Amounts are in minor units (cents)
/// of `currency`, like the price itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PotentialSavings {
    pub inactive_seats: u64,
    pub monthly: u64,
    pub yearly: u64,
    pub currency: String,
}

impl PotentialSavings {
    pub fn of(price: &SeatPrice, license_types: &[LicenseTypeCounts]) -> Self {
        let inactive_seats = license_types
            .iter()
            .fold(0u64, |sum, lt| sum.saturating_add(lt.inactive));
        let monthly = price.monthly_cost(inactive_seats);
        Self {
            inactive_seats,
            monthly,
            yearly: monthly.saturating_mul(12),
            currency: price.currency.clone(),
        }
    }
}

/// One account as reports show it (and as the CLI reads it back from a deployed API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountRow {
    pub id: String,
    pub login: String,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub role: Option<String>,
    pub license_type: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub space_amount_bytes: Option<i64>,
    pub space_used_bytes: Option<i64>,
    pub max_upload_size_bytes: Option<i64>,
    pub is_sync_enabled: Option<bool>,
    pub is_exempt_from_device_limits: Option<bool>,
}

impl AccountRow {
    pub const CSV_HEADER: &'static str = "id,login,name,kind,status,role,license_type,last_login_at,created_at,space_amount_bytes,space_used_bytes,max_upload_size_bytes,is_sync_enabled,is_exempt_from_device_limits";

    pub fn csv_line(&self) -> String {
        fn opt<T: ToString>(v: &Option<T>) -> String {
            v.as_ref().map(ToString::to_string).unwrap_or_default()
        }
        fn time(v: &Option<DateTime<Utc>>) -> String {
            v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        }
        [
            csv_field(&self.id),
            csv_field(&self.login),
            csv_field(&self.name),
            csv_field(&self.kind),
            csv_field(&self.status),
            csv_field(&opt(&self.role)),
            csv_field(&opt(&self.license_type)),
            time(&self.last_login_at),
            time(&self.created_at),
            opt(&self.space_amount_bytes),
            opt(&self.space_used_bytes),
            opt(&self.max_upload_size_bytes),
            opt(&self.is_sync_enabled),
            opt(&self.is_exempt_from_device_limits),
        ]
        .join(",")
    }
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas (`=`, `+`, `-`, `@`).
pub fn csv_field(raw: &str) -> String {
    let guarded = if raw.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

impl From<&Account> for AccountRow {
    fn from(a: &Account) -> Self {
        Self {
            id: a.external_id.clone(),
            login: a.login.clone(),
            name: a.name.clone(),
            kind: a.kind.as_str().to_owned(),
            status: a.status.clone(),
            role: a.role.clone(),
            license_type: a.license_type.clone(),
            last_login_at: a.last_login_at,
            created_at: a.created_at,
            space_amount_bytes: a.space_amount_bytes,
            space_used_bytes: a.space_used_bytes,
            max_upload_size_bytes: a.max_upload_size_bytes,
            is_sync_enabled: a.is_sync_enabled,
            is_exempt_from_device_limits: a.is_exempt_from_device_limits,
        }
    }
}

/// The figures of the latest complete sync, counted at `inactive_days`.
pub async fn license_summary(
    store: &dyn Store,
    id: &IntegrationId,
    inactive_days: InactiveDays,
) -> Result<LicenseSummary, ReportError> {
    let integration = store
        .get_integration(id)
        .await?
        .ok_or_else(|| ReportError::NotFound(id.clone()))?;
    let snapshot = store
        .latest_snapshot(id)
        .await?
        .ok_or_else(|| ReportError::NoData(id.clone()))?;
    Ok(summarize(&integration, snapshot, inactive_days))
}

/// The summary of one snapshot of `integration` (pure: callers that already hold both use
/// it directly).
pub fn summarize(
    integration: &Integration,
    snapshot: Snapshot,
    inactive_days: InactiveDays,
) -> LicenseSummary {
    let license_types = snapshot.counts(inactive_days.get());
    LicenseSummary {
        integration: ReportIntegration {
            id: integration.id.clone(),
            provider: integration.provider,
            name: integration.name.clone(),
        },
        synced_at: snapshot.data_as_of,
        inactive_days: inactive_days.get(),
        potential_savings: integration
            .seat_price
            .as_ref()
            .map(|price| PotentialSavings::of(price, &license_types)),
        license_types,
        event_coverage: snapshot.event_coverage,
        seats: snapshot.seats,
    }
}

/// Visits every current (not vanished) account in id order, a page at a time.
pub async fn for_each_account(
    store: &dyn Store,
    id: &IntegrationId,
    mut visit: impl FnMut(AccountRow) -> std::io::Result<()>,
) -> Result<(), ReportError> {
    for_each_account_page(store, id, |page| {
        for account in page.iter().filter(|a| a.vanished_at.is_none()) {
            visit(AccountRow::from(account))
                .map_err(|e| StoreError::backend("cannot write the report", e))?;
        }
        Ok::<(), ReportError>(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::{PotentialSavings, csv_field};
    use crate::domain::{LicenseTypeCounts, SeatPrice};

    #[test]
    fn potential_savings_price_every_inactive_seat() {
        let counts = |name: &str, inactive| LicenseTypeCounts {
            name: name.into(),
            assigned: 10,
            active: 10 - inactive,
            inactive,
            never_logged_in: 0,
        };
        let price = SeatPrice::new(1500, "usd").expect("valid price");
        let savings = PotentialSavings::of(&price, &[counts("Business", 3), counts("Plus", 1)]);
        assert_eq!(
            savings,
            PotentialSavings {
                inactive_seats: 4,
                monthly: 6000,
                yearly: 72_000,
                currency: "USD".into(),
            }
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
