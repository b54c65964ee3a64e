//! The `Store` port: everything Seatkeeper keeps, in the single-table layout of design §4.
//! Adapters: [`dynamo::DynamoStore`] (AWS) and [`embedded::EmbeddedStore`] (the CLI's file).
//! One contract test suite (`tests/store_contract.rs`) runs against both.

mod cursor;
pub mod dynamo;
pub mod embedded;
mod keys;

use crate::domain::{
    Account, AccountKind, ActionRecord, ActionStep, AuditEntry, CANDIDATES_PER_BATCH, Candidate,
    EventCoverage, Exclusion, FailedRetry, Integration, IntegrationId, IntegrationStatus,
    JobChangeRefused, JobState, Provider, ReclaimJob, ReclaimJobId, Snapshot, TaskKind, TaskRun,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use keys::Keys;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{provider} tenant {tenant_id} is already connected as integration {integration_id}")]
    TenantClaimed {
        provider: Provider,
        tenant_id: String,
        integration_id: String,
    },
    #[error("integration {0} already exists")]
    AlreadyExists(IntegrationId),
    #[error("integration {0} not found")]
    NotFound(IntegrationId),
    #[error(
        "the {kind} lease of integration {integration_id} is held by {owner} until {expires_at}"
    )]
    LeaseHeld {
        integration_id: IntegrationId,
        kind: LeaseKind,
        owner: String,
        expires_at: DateTime<Utc>,
    },
    #[error("the {kind} lease of integration {integration_id} is no longer ours")]
    LeaseLost {
        integration_id: IntegrationId,
        kind: LeaseKind,
    },
    /// A one-time item (OAuth ticket or state) already exists under this key.
    #[error("a one-time {0} with this key already exists")]
    OneTimeExists(OneTimeKind),
    /// A one-time key that is not a hex SHA-256 digest: refused so a raw bearer value can
    /// never end up in the store by mistake.
    #[error("a one-time key must be a hex SHA-256 digest")]
    InvalidOneTimeKey,
    /// A page cursor that this listing did not hand out (garbage, tampered with, or from
    /// another listing): the caller's input, so an API answers 400. The message never
    /// repeats the cursor.
    #[error("invalid cursor: {0}")]
    BadCursor(String),
    #[error("reclaim job {0} already exists")]
    ReclaimJobExists(ReclaimJobId),
    #[error("reclaim job {0} not found")]
    ReclaimJobNotFound(ReclaimJobId),
    /// `modify_reclaim_job`'s change refused itself; the job was left as it was.
    #[error("reclaim job {job_id} was not changed: {reason}")]
    JobChangeRefused {
        job_id: ReclaimJobId,
        #[source]
        reason: JobChangeRefused,
    },
    /// `advance_action` expected the account at another step: another writer got there
    /// first (or the caller is replaying an old step). Nothing was written.
    #[error(
        "account {external_id} of reclaim job {job_id} is at step {}, not {}",
        step_name(*.current),
        step_name(*.expected)
    )]
    StepConflict {
        job_id: ReclaimJobId,
        external_id: String,
        expected: Option<ActionStep>,
        current: Option<ActionStep>,
    },
    /// Another owner holds the account lock and it has not expired.
    #[error(
        "account {external_id} of integration {integration_id} is locked by {owner} until {expires_at}"
    )]
    AccountLocked {
        integration_id: IntegrationId,
        external_id: String,
        owner: String,
        expires_at: DateTime<Utc>,
    },
    /// A write the store refuses before touching anything: it would break a rule of the
    /// layout (a candidate of another job, a step out of order, …). A caller's bug.
    #[error("refused: {0}")]
    InvalidItem(String),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("store backend failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

fn step_name(step: Option<ActionStep>) -> &'static str {
    step.map_or("none", ActionStep::as_str)
}

impl StoreError {
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseKind {
    Sync,
    Token,
    Reclaim,
}

impl LeaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Sync => "sync",
            LeaseKind::Token => "token",
            LeaseKind::Reclaim => "reclaim",
        }
    }
}

impl std::fmt::Display for LeaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A held lease. Expiry is checked in the write condition, never left to TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub integration_id: IntegrationId,
    pub kind: LeaseKind,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
    /// Where a cut-short run continues (opaque to the store).
    pub checkpoint: Option<serde_json::Value>,
}

/// What a one-time item is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OneTimeKind {
    // Named explicitly: `snake_case` alone would write `o_auth_ticket`.
    #[serde(rename = "oauth_ticket")]
    OAuthTicket,
    #[serde(rename = "oauth_state")]
    OAuthState,
}

impl OneTimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OneTimeKind::OAuthTicket => "oauth_ticket",
            OneTimeKind::OAuthState => "oauth_state",
        }
    }
}

impl std::fmt::Display for OneTimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A single-use item (OAuth start ticket, OAuth state). `key` is already a digest
/// (hex SHA-256 of the bearer value, computed by the caller): the raw value is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneTimeItem {
    pub kind: OneTimeKind,
    pub key: String,
    pub expires_at: DateTime<Utc>,
    /// Opaque to the store.
    pub payload: serde_json::Value,
}

/// What `take_one_time` found.
#[derive(Debug, Clone, PartialEq)]
pub enum OneTimeTake {
    Taken(OneTimeItem),
    Expired,
    Missing,
}

/// Whether `key` looks like what a one-time key must be: 64 hex digits (a SHA-256 digest).
pub(crate) fn is_digest(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Marks `integration` disconnected as of `now`; `false` (and untouched) if it already was,
/// so a repeated disconnect changes nothing.
pub(crate) fn mark_disconnected(integration: &mut Integration, now: DateTime<Utc>) -> bool {
    if integration.status == IntegrationStatus::Disconnected && !integration.enabled {
        return false;
    }
    integration.status = IntegrationStatus::Disconnected;
    integration.enabled = false;
    integration.updated_at = now;
    true
}

/// Candidate batches are numbered in sort keys with six digits.
pub const MAX_CANDIDATE_BATCH: u32 = 999_999;

/// A change made by `modify_reclaim_job` may not touch what identifies the job or what
/// was approved: its id, integration, creation time (its listing key), requester, policy.
pub(crate) fn check_job_change(before: &ReclaimJob, after: &ReclaimJob) -> Result<(), StoreError> {
    let fixed = [
        ("id", before.id == after.id),
        (
            "integration_id",
            before.integration_id == after.integration_id,
        ),
        ("created_at", before.created_at == after.created_at),
        ("requested_by", before.requested_by == after.requested_by),
        ("policy", before.policy == after.policy),
    ];
    match fixed.iter().find(|(_, same)| !same) {
        Some((field, _)) => Err(StoreError::InvalidItem(format!(
            "a change to reclaim job {} tried to change its {field}",
            before.id
        ))),
        None => Ok(()),
    }
}

/// Candidates are written only while their job plans (the approved set never grows after
/// the plan), only for that job, with a batch number the keys can hold.
pub(crate) fn check_candidates(
    job: Option<&ReclaimJob>,
    job_id: &ReclaimJobId,
    candidates: &[Candidate],
) -> Result<(), StoreError> {
    check_planning(job, job_id, "candidates")?;
    for c in candidates {
        if c.job_id != *job_id {
            return Err(StoreError::InvalidItem(format!(
                "a candidate of job {} written under job {job_id}",
                c.job_id
            )));
        }
        if c.batch > MAX_CANDIDATE_BATCH {
            return Err(StoreError::InvalidItem(format!(
                "candidate batch {} is above {MAX_CANDIDATE_BATCH}",
                c.batch
            )));
        }
        check_external_id(&c.external_id)?;
    }
    Ok(())
}

/// What plan left out is written while the job plans, for that job only.
pub(crate) fn check_exclusions(
    job: Option<&ReclaimJob>,
    job_id: &ReclaimJobId,
    exclusions: &[Exclusion],
) -> Result<(), StoreError> {
    check_planning(job, job_id, "exclusions")?;
    for e in exclusions {
        if e.job_id != *job_id {
            return Err(StoreError::InvalidItem(format!(
                "an exclusion of job {} written under job {job_id}",
                e.job_id
            )));
        }
        check_external_id(&e.external_id)?;
    }
    Ok(())
}

fn check_planning(
    job: Option<&ReclaimJob>,
    job_id: &ReclaimJobId,
    what: &str,
) -> Result<(), StoreError> {
    match job {
        None => Err(StoreError::ReclaimJobNotFound(job_id.clone())),
        Some(job) if job.state != JobState::Planning => Err(StoreError::InvalidItem(format!(
            "{what} of reclaim job {job_id} are written only while it plans (it is {})",
            job.state
        ))),
        Some(_) => Ok(()),
    }
}

/// Whether adding `new_ids` to a batch that holds `stored_ids` keeps it within
/// [`CANDIDATES_PER_BATCH`].
pub(crate) fn check_batch_size<'a>(
    batch: u32,
    stored_ids: impl IntoIterator<Item = &'a str>,
    new_ids: impl IntoIterator<Item = &'a str>,
) -> Result<(), StoreError> {
    let all: std::collections::HashSet<&str> = stored_ids.into_iter().chain(new_ids).collect();
    if all.len() > CANDIDATES_PER_BATCH {
        return Err(StoreError::InvalidItem(format!(
            "candidate batch {batch} would hold {} accounts (at most {CANDIDATES_PER_BATCH})",
            all.len()
        )));
    }
    Ok(())
}

/// The order of steps is the domain's (never `done` before `transferred` for a delete,
/// nothing after a final step); retrying a failed account is the caller's explicit choice,
/// made before calling, so the store allows it.
pub(crate) fn check_advance(
    record: &ActionRecord,
    expected: Option<ActionStep>,
) -> Result<(), StoreError> {
    check_external_id(&record.external_id)?;
    if ActionStep::allows(record.action, expected, record.step, FailedRetry::Allow) {
        Ok(())
    } else {
        Err(StoreError::InvalidItem(format!(
            "a {} of account {} cannot go from step {} to {}",
            record.action,
            record.external_id,
            step_name(expected),
            record.step
        )))
    }
}

pub(crate) fn check_lock(external_id: &str, owner: &str) -> Result<(), StoreError> {
    check_external_id(external_id)?;
    if owner.is_empty() {
        return Err(StoreError::InvalidItem("a lock needs an owner".into()));
    }
    Ok(())
}

fn check_external_id(external_id: &str) -> Result<(), StoreError> {
    if external_id.is_empty() || external_id.len() > 256 {
        return Err(StoreError::InvalidItem(
            "an external id must be 1-256 bytes".into(),
        ));
    }
    Ok(())
}

/// A stored account lock (`INT#<id>`/`LOCK#<external id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AccountLock {
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

/// A change `modify_reclaim_job` applies to a job as stored now; it may refuse (a
/// transition the job's states do not allow, an approver who may not approve, …), and then
/// nothing is written. `'a` lets the change borrow from its caller (the time, the
/// guard-rails).
pub type JobChange<'a> =
    dyn for<'j> Fn(&'j mut ReclaimJob) -> Result<(), JobChangeRefused> + Send + Sync + 'a;

/// One page of a paginated listing; `next` is an opaque cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[async_trait]
pub trait Store: Send + Sync {
    // Integrations -------------------------------------------------------------------------
    /// Creates the integration and claims its tenant in one atomic write: one integration
    /// per tenant, so two integrations can never act on one tenant's users.
    async fn create_integration(&self, integration: &Integration) -> Result<(), StoreError>;
    async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError>;
    async fn list_integrations(&self) -> Result<Vec<Integration>, StoreError>;
    /// Replaces an existing integration (`NotFound` if it is gone).
    async fn update_integration(&self, integration: &Integration) -> Result<(), StoreError>;
    /// Applies `change` to the integration as stored now, by compare-and-swap (retried on a
    /// conflicting write), so a concurrent change to other fields is never lost.
    async fn modify_integration(
        &self,
        id: &IntegrationId,
        change: &(dyn for<'i> Fn(&'i mut Integration) + Send + Sync),
    ) -> Result<Integration, StoreError>;
    /// Which integration, if any, has claimed a tenant.
    async fn tenant_owner(
        &self,
        provider: Provider,
        tenant_id: &str,
    ) -> Result<Option<IntegrationId>, StoreError>;

    // Accounts -----------------------------------------------------------------------------
    /// The stored accounts among `external_ids` (unknown ids are left out).
    async fn get_accounts(
        &self,
        id: &IntegrationId,
        external_ids: &[String],
    ) -> Result<Vec<Account>, StoreError>;
    /// Writes accounts (insert or replace), in as few round trips as the backend allows.
    async fn put_accounts(
        &self,
        id: &IntegrationId,
        accounts: &[Account],
    ) -> Result<(), StoreError>;
    /// Accounts in external-id order, `limit` at a time.
    async fn list_accounts(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError>;
    /// Seat holders of one license type, oldest last login first (never-logged-in first), via
    /// GSI gsi2, `limit` at a time. With `last_login_before = Some(t)` only accounts whose last
    /// login is before `t` or missing (a key condition on gsi2sk, not a filter). The index
    /// keeps whole seconds, so a login within `t`'s own second counts as not before `t`: the
    /// safe side for reclaim. Vanished accounts are not in the index. DynamoDB's index is
    /// eventually consistent.
    async fn accounts_by_license_type(
        &self,
        id: &IntegrationId,
        license_type: &str,
        last_login_before: Option<DateTime<Utc>>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError>;
    /// Accounts of one kind (human/service/app/external), in external-id order, via GSI gsi3
    /// (vanished accounts are left out of the index), so the API never filters a whole
    /// partition.
    async fn accounts_by_kind(
        &self,
        id: &IntegrationId,
        kind: AccountKind,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError>;

    /// Disconnect in one atomic write: the integration gets `status = Disconnected`,
    /// `enabled = false`, `updated_at = now`; its tenant claim is deleted only if it still
    /// names this integration (never another integration's claim). Returns the updated
    /// integration; `NotFound` if it does not exist. Idempotent on an already disconnected
    /// one (left as it is, `updated_at` included).
    async fn disconnect_integration(
        &self,
        id: &IntegrationId,
        now: DateTime<Utc>,
    ) -> Result<Integration, StoreError>;

    // Event coverage -----------------------------------------------------------------------
    async fn get_event_coverage(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<EventCoverage>, StoreError>;
    async fn put_event_coverage(
        &self,
        id: &IntegrationId,
        coverage: &EventCoverage,
    ) -> Result<(), StoreError>;

    // Snapshots ----------------------------------------------------------------------------
    /// One per day: a later sync on the same day replaces it.
    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
    async fn latest_snapshot(&self, id: &IntegrationId) -> Result<Option<Snapshot>, StoreError>;
    async fn list_snapshots(
        &self,
        id: &IntegrationId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Snapshot>, StoreError>;

    // Task runs ----------------------------------------------------------------------------
    async fn put_task_run(&self, run: &TaskRun) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_task_runs(
        &self,
        id: &IntegrationId,
        kind: Option<TaskKind>,
        limit: usize,
    ) -> Result<Vec<TaskRun>, StoreError>;

    // Leases -------------------------------------------------------------------------------
    /// Takes the lease if it is free, expired, or already ours (same owner: a continuation).
    async fn acquire_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Lease, StoreError>;
    /// Extends our lease and saves the checkpoint; `LeaseLost` if someone else holds it now.
    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError>;
    /// Hands our lease to `new_owner` in one conditional write (owner must still be
    /// `lease.owner`, expired or not), so of two callers holding the same old lease only one
    /// can take it; the other gets `LeaseLost`. The checkpoint is replaced by `checkpoint`.
    async fn transfer_lease(
        &self,
        lease: &Lease,
        new_owner: &str,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError>;
    /// Releases the lease if we still hold it (no error if it is already gone).
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    async fn get_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
    ) -> Result<Option<Lease>, StoreError>;

    // Roster chunks: the ids a cut-short sync had already seen, so the invocation that
    // continues it can still tell which accounts vanished. Written only on a checkpoint.
    async fn put_roster_chunk(
        &self,
        id: &IntegrationId,
        sync_id: &str,
        chunk: u32,
        external_ids: &[String],
    ) -> Result<(), StoreError>;
    async fn roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<Vec<String>, StoreError>;
    async fn delete_roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<(), StoreError>;

    // One-time items -----------------------------------------------------------------------
    /// Stores a new one-time item; `OneTimeExists` if the key is taken (expired or not),
    /// `InvalidOneTimeKey` unless the key is a hex SHA-256 digest.
    async fn put_one_time(&self, item: &OneTimeItem) -> Result<(), StoreError>;
    /// Consumes the item atomically: of two concurrent takers exactly one gets `Taken`. The
    /// expiry is checked in the consuming write's condition, never left to TTL; an expired
    /// item is never `Taken` (it is left for TTL, so a later take says `Expired` again).
    async fn take_one_time(
        &self,
        kind: OneTimeKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<OneTimeTake, StoreError>;

    // Reclaim jobs -------------------------------------------------------------------------
    /// Stores a new job; `ReclaimJobExists` if its id is taken.
    async fn create_reclaim_job(&self, job: &ReclaimJob) -> Result<(), StoreError>;
    async fn get_reclaim_job(&self, id: &ReclaimJobId) -> Result<Option<ReclaimJob>, StoreError>;
    /// Applies `change` to the job as stored now, by compare-and-swap (retried on a
    /// conflicting write), so concurrent changes are never lost. If `change` refuses, the
    /// job is left as it was and the answer is `JobChangeRefused`. A change to the job's id,
    /// integration, creation time, requester or policy is refused (`InvalidItem`);
    /// `ReclaimJobNotFound` if there is no such job.
    async fn modify_reclaim_job(
        &self,
        id: &ReclaimJobId,
        change: &JobChange<'_>,
    ) -> Result<ReclaimJob, StoreError>;
    /// An integration's jobs, newest first (by `created_at`, then id), via GSI gsi1
    /// (`gsi1pk = RJOBS#<integration id>`); DynamoDB's index is eventually consistent.
    async fn list_reclaim_jobs(
        &self,
        integration_id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReclaimJob>, StoreError>;

    // Candidates and exclusions ------------------------------------------------------------
    /// Writes candidates (insert or replace, batched). Only while the job is `planning`, only
    /// candidates of this job, at most [`CANDIDATES_PER_BATCH`] per batch counting those
    /// already stored, batch numbers up to [`MAX_CANDIDATE_BATCH`]; otherwise `InvalidItem`
    /// (or `ReclaimJobNotFound`) and nothing is written.
    async fn put_candidates(
        &self,
        job_id: &ReclaimJobId,
        candidates: &[Candidate],
    ) -> Result<(), StoreError>;
    /// One batch's candidates in external-id order (never more than
    /// [`CANDIDATES_PER_BATCH`]).
    async fn list_candidates(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
    ) -> Result<Vec<Candidate>, StoreError>;
    /// The candidate, if `external_id` is in that batch of the approved set.
    async fn get_candidate(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        external_id: &str,
    ) -> Result<Option<Candidate>, StoreError>;
    /// Writes what plan left out (insert or replace, batched); same rules as candidates
    /// (only while `planning`, only this job's).
    async fn put_exclusions(
        &self,
        job_id: &ReclaimJobId,
        exclusions: &[Exclusion],
    ) -> Result<(), StoreError>;
    /// In external-id order, `limit` at a time.
    async fn list_exclusions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Exclusion>, StoreError>;

    // Actions ------------------------------------------------------------------------------
    async fn get_action(
        &self,
        job_id: &ReclaimJobId,
        external_id: &str,
    ) -> Result<Option<ActionRecord>, StoreError>;
    /// Writes `record` (under `record.job_id`/`record.external_id`) only if the stored step
    /// is `expected` (`None`: no record yet) and the stored action kind is the record's: of
    /// two writers expecting the same step exactly one succeeds, and the other gets
    /// `StepConflict` with the step found. A move the domain order forbids
    /// ([`ActionStep::allows`], failed retries allowed) is `InvalidItem`.
    async fn advance_action(
        &self,
        record: &ActionRecord,
        expected: Option<ActionStep>,
    ) -> Result<ActionRecord, StoreError>;
    /// In external-id order, `limit` at a time.
    async fn list_actions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ActionRecord>, StoreError>;

    // Account locks ------------------------------------------------------------------------
    /// Takes the lock on one provider account if it is free, expired, or already `owner`'s
    /// (then extended to `expires_at`). Expiry is checked in the write's condition, never
    /// left to TTL. `AccountLocked` if another owner holds it unexpired.
    async fn acquire_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Releases the lock if `owner` holds it; otherwise (someone else's, or gone) does
    /// nothing.
    async fn release_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
    ) -> Result<(), StoreError>;

    // Audit --------------------------------------------------------------------------------
    /// Appends one audit entry (idempotent: the same entry written twice is stored once).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The audit trail newest first, `limit` at a time; `cursor` is opaque (the previous
    /// page's `next`).
    async fn list_audit(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError>;
}

/// Page size for walking a whole integration's accounts.
const WALK_PAGE: usize = 1_000;

/// Visits every stored account of an integration (vanished ones included), one page at a
/// time in external-id order, so no caller ever holds a whole tenant in memory.
pub async fn for_each_account_page<E: From<StoreError>>(
    store: &dyn Store,
    id: &IntegrationId,
    mut visit: impl FnMut(Vec<Account>) -> Result<(), E>,
) -> Result<(), E> {
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_accounts(id, cursor.as_deref(), WALK_PAGE)
            .await?;
        visit(page.items)?;
        cursor = page.next;
        if cursor.is_none() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_kinds_serialise_as_they_display() {
        for kind in [OneTimeKind::OAuthTicket, OneTimeKind::OAuthState] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::json!(kind.as_str()));
        }
    }

    #[test]
    fn only_hex_sha256_digests_are_one_time_keys() {
        assert!(is_digest(&"ab".repeat(32)));
        assert!(!is_digest(&"ab".repeat(31)));
        assert!(!is_digest(&"zz".repeat(32)));
        assert!(!is_digest("raw-state-value"));
    }
}
