//! The single-table keys of design §4, shared by both adapters so their layouts match.

use crate::domain::{IntegrationId, Provider, TaskKind};
use chrono::{DateTime, NaiveDate, Utc};

use super::LeaseKind;

pub struct Keys;

impl Keys {
    pub const META: &'static str = "META";
    /// GSI partition listing every integration.
    pub const INTEGRATIONS_GSI: &'static str = "INTS";

    pub fn integration(id: &IntegrationId) -> String {
        format!("INT#{id}")
    }

    pub fn tenant(provider: Provider, tenant_id: &str) -> String {
        format!("TENANT#{provider}#{tenant_id}")
    }

    pub fn account(external_id: &str) -> String {
        format!("ACC#{external_id}")
    }

    pub const ACCOUNT_PREFIX: &'static str = "ACC#";

    /// GSI partition serving "accounts of a license type, oldest login first".
    pub fn license_type_partition(id: &IntegrationId, license_type: &str) -> String {
        format!("INT#{id}#LT#{license_type}")
    }

    /// GSI sort key: the last login (RFC 3339, sortable) or `0000` for never.
    pub fn last_login_sort(last_login: Option<DateTime<Utc>>) -> String {
        last_login.map_or_else(
            || "0000".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    }

    pub const COVERAGE: &'static str = "COVERAGE#events";

    pub fn snapshot(date: NaiveDate) -> String {
        format!("SNAP#{}", date.format("%Y-%m-%d"))
    }

    pub const SNAPSHOT_PREFIX: &'static str = "SNAP#";

    pub fn task_run(kind: TaskKind, started_at: DateTime<Utc>) -> String {
        format!(
            "TASK#{kind}#{}",
            started_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
    }

    pub fn task_prefix(kind: Option<TaskKind>) -> String {
        kind.map_or_else(|| "TASK#".to_owned(), |k| format!("TASK#{k}#"))
    }

    pub fn lease(kind: LeaseKind) -> String {
        format!("LEASE#{kind}")
    }

    pub fn roster_chunk(sync_id: &str, chunk: u32) -> String {
        format!("ROSTER#{sync_id}#{chunk:08}")
    }

    pub fn roster_prefix(sync_id: &str) -> String {
        format!("ROSTER#{sync_id}#")
    }
}
