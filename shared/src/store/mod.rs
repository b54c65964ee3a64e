//! The `Store` port: everything Seatkeeper keeps, in the single-table layout of design §4.
//! Adapters: [`dynamo::DynamoStore`] (AWS) and [`embedded::EmbeddedStore`] (the CLI's file).
//! One contract test suite (`tests/store_contract.rs`) runs against both.

pub mod dynamo;
pub mod embedded;
mod keys;

use crate::domain::{
    Account, EventCoverage, Integration, IntegrationId, Provider, Snapshot, TaskKind, TaskRun,
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
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("store backend failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
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
