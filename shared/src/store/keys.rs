//! The single-table keys of design §4, shared by both adapters so their layouts match.

use crate::domain::{AccountKind, IntegrationId, Provider, ReclaimJobId, TaskKind};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::{LeaseKind, OneTimeKind};

/// Timestamps inside sort keys: fixed width, so they sort as text in time order.
const MICROS: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
/// The last login in `gsi2sk`: whole seconds.
const LAST_LOGIN: &str = "%Y-%m-%dT%H:%M:%SZ";

pub struct Keys;

impl Keys {
    pub const META: &'static str = "META";
    /// GSI partition listing every integration.
    pub const INTEGRATIONS_GSI: &'static str = "INTS";

    pub fn integration(id: &IntegrationId) -> String {
        format!("{}{id}", Self::INTEGRATION_PREFIX)
    }

    pub const INTEGRATION_PREFIX: &'static str = "INT#";

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
        last_login.map_or_else(|| "0000".to_owned(), |t| t.format(LAST_LOGIN).to_string())
    }

    /// Whether `sort` is something [`Keys::last_login_sort`] writes.
    pub fn is_last_login_sort(sort: &str) -> bool {
        sort == "0000"
            || NaiveDateTime::parse_from_str(sort, LAST_LOGIN)
                .is_ok_and(|t| t.format(LAST_LOGIN).to_string() == sort)
    }

    /// GSI `gsi3` partition serving "accounts of one kind" (sort key: the external id).
    pub fn kind_partition(id: &IntegrationId, kind: AccountKind) -> String {
        format!("INT#{id}#KIND#{kind}")
    }

    pub const COVERAGE: &'static str = "COVERAGE#events";

    pub fn snapshot(date: NaiveDate) -> String {
        format!("SNAP#{}", date.format("%Y-%m-%d"))
    }

    pub const SNAPSHOT_PREFIX: &'static str = "SNAP#";

    pub fn task_run(kind: TaskKind, started_at: DateTime<Utc>) -> String {
        format!("TASK#{kind}#{}", started_at.format(MICROS))
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

    /// Partition of a one-time item; `key` is already a digest, never the bearer value.
    pub fn one_time(key: &str) -> String {
        format!("{}{key}", Self::ONE_TIME_PREFIX)
    }

    /// Every one-time item's partition starts with this.
    pub const ONE_TIME_PREFIX: &'static str = "OAUTH#";

    /// Sort key of a one-time item: a ticket and a state never answer for each other.
    pub fn one_time_sort(kind: OneTimeKind) -> &'static str {
        match kind {
            OneTimeKind::OAuthTicket => "TICKET",
            OneTimeKind::OAuthState => "STATE",
        }
    }

    /// Audit entries sort by time, then by entry id (unique within the integration).
    pub fn audit(at: DateTime<Utc>, entry_id: &str) -> String {
        format!("AUDIT#{}#{entry_id}", at.format(MICROS))
    }

    pub const AUDIT_PREFIX: &'static str = "AUDIT#";

    /// Partition of a reclaim job and of its candidates, exclusions and actions.
    pub fn reclaim_job(id: &ReclaimJobId) -> String {
        format!("RJOB#{id}")
    }

    /// `gsi1pk` listing an integration's reclaim jobs.
    pub fn reclaim_jobs_partition(integration_id: &IntegrationId) -> String {
        format!("RJOBS#{integration_id}")
    }

    /// `gsi1sk` of a reclaim job: creation time, then id (newest first when read backwards).
    pub fn reclaim_job_sort(created_at: DateTime<Utc>, id: &ReclaimJobId) -> String {
        format!("{}#{id}", created_at.format(MICROS))
    }

    /// The batch number has six digits, so batches sort in number order.
    pub fn candidate(batch: u32, external_id: &str) -> String {
        format!("{}{external_id}", Self::candidate_batch_prefix(batch))
    }

    pub fn candidate_batch_prefix(batch: u32) -> String {
        format!("CAND#{batch:06}#")
    }

    pub fn exclusion(external_id: &str) -> String {
        format!("{}{external_id}", Self::EXCLUSION_PREFIX)
    }

    pub const EXCLUSION_PREFIX: &'static str = "SKIP#";

    pub fn action(external_id: &str) -> String {
        format!("{}{external_id}", Self::ACTION_PREFIX)
    }

    pub const ACTION_PREFIX: &'static str = "ACT#";

    /// Sort key of an account lock, under the integration's partition.
    pub fn account_lock(external_id: &str) -> String {
        format!("LOCK#{external_id}")
    }
}
