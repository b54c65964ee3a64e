//! Managing integrations, as the HTTP API (`functions/api`, `seatkeeper serve`) offers it:
//! connect, read, change settings, disconnect, ask for a sync; and the read models behind
//! the license-information routes (summary from the snapshot, accounts by key or index,
//! daily history, task runs, audit trail).
//!
//! Every change is audited with the [`Actor`] who made it. The audit entry is written after
//! the change: a failed audit write is logged at error level but does not turn a change
//! that happened into an error (the caller would retry something already done).

use std::sync::Mutex;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{
    Account, AccountKind, Actor, AuditEntry, AuthKind, BoxPlan, InactiveDays, Integration,
    IntegrationId, IntegrationStatus, InvalidInput, JobState, LicenseTypeCounts, Provider,
    ReclaimGuardRails, SeatPrice, Seats, Snapshot, TaskKind, TaskRun,
};
use crate::provider::box_client::oauth::{self, BoxOAuthApp};
use crate::secrets::{IntegrationCredentials, OAuthAppCredentials, SecretsError};
use crate::services::ServiceContext;
use crate::services::connect::{BoxCcgConnect, ConnectError, Connector};
use crate::services::reclaim::ReclaimError;
use crate::services::report::{self, LicenseSummary};
use crate::store::{LeaseKind, Page, StoreError};
use crate::trigger::{SyncRequest, TriggerError};
use crate::workflow::TaskFailure;

#[derive(Debug, thiserror::Error)]
pub enum IntegrationsError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("integration {0} not found")]
    NotFound(IntegrationId),
    #[error("integration {0} is disconnected")]
    Disconnected(IntegrationId),
    #[error("integration {0} has no completed sync yet")]
    NeverSynced(IntegrationId),
    #[error("cannot start a sync of integration {id}: {reason}")]
    SyncRefused {
        id: IntegrationId,
        reason: SyncRefusal,
    },
    /// A page cursor nobody handed out for this listing (the caller's input).
    #[error("invalid cursor: {0}")]
    BadCursor(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error(transparent)]
    Reclaim(#[from] ReclaimError),
}

impl From<StoreError> for IntegrationsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => IntegrationsError::NotFound(id),
            StoreError::BadCursor(message) => IntegrationsError::BadCursor(message),
            other => IntegrationsError::Store(other),
        }
    }
}

/// Why an on-demand sync cannot start now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    #[error("a sync is running (its lease runs until {until})")]
    Running { until: DateTime<Utc> },
    #[error("the integration is disabled")]
    Disabled,
    #[error("the integration is disconnected")]
    Disconnected,
    #[error("the integration needs to be authorized again")]
    NeedsReauth,
}

// ---------------------------------------------------------------------------------------
// Connect, read

/// Connects a Box tenant with the Client Credentials Grant (capability checks and tenant
/// claim in [`Connector::connect_box_ccg`]; nothing is stored unless they all pass), audits
/// it and starts the first sync. A sync that cannot be started is logged, not an error: the
/// integration is connected, and the daily schedule or `POST …/sync` syncs it.
#[tracing::instrument(skip_all)]
pub async fn connect_box_ccg(
    ctx: &ServiceContext,
    request: BoxCcgConnect,
    actor: &Actor,
) -> Result<Integration, IntegrationsError> {
    let integration = Connector {
        store: ctx.store.as_ref(),
        secrets: ctx.secrets.as_ref(),
        clock: ctx.clock.as_ref(),
        http: ctx.http.clone(),
        box_config: ctx.box_config.clone(),
    }
    .connect_box_ccg(request)
    .await?;
    let first_sync_started = match trigger_sync(ctx, &integration.id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(integration_id = %integration.id, error = %e, "could not start the first sync");
            false
        }
    };
    record(
        ctx,
        AuditEntry::new(
            integration.id.clone(),
            ctx.clock.now(),
            actor.clone(),
            "integration_connected",
        )
        .with_detail(serde_json::json!({
            "provider": integration.provider,
            "auth_kind": integration.auth_kind,
            "tenant_id": integration.tenant_id,
            "first_sync_started": first_sync_started,
        })),
    )
    .await;
    Ok(integration)
}

pub async fn list_integrations(
    ctx: &ServiceContext,
) -> Result<Vec<Integration>, IntegrationsError> {
    let mut all = ctx.store.list_integrations().await?;
    // A stable order for people and tests: oldest first.
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(all)
}

pub async fn get_integration(
    ctx: &ServiceContext,
    id: &IntegrationId,
) -> Result<Integration, IntegrationsError> {
    ctx.store
        .get_integration(id)
        .await?
        .ok_or_else(|| IntegrationsError::NotFound(id.clone()))
}

// ---------------------------------------------------------------------------------------
// Settings

/// A partial change of an integration's settings: `None` leaves a field as it is; for the
/// nullable ones, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub plan: Option<BoxPlan>,
    pub purchased_seats: Option<Option<u64>>,
    pub enabled: Option<bool>,
    pub inactive_days: Option<InactiveDays>,
    pub seat_price: Option<Option<SeatPrice>>,
    pub reclaim: GuardRailsChange,
}

/// A partial change of the reclaim guard-rails (design §8). Lists are replaced whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardRailsChange {
    pub excluded_logins: Option<Vec<String>>,
    pub excluded_user_ids: Option<Vec<String>>,
    pub excluded_group_ids: Option<Vec<String>>,
    /// `Some(None)` returns to the default threshold.
    pub approval_threshold: Option<Option<u32>>,
    pub auto_approve: Option<bool>,
    pub allow_self_approval: Option<bool>,
    pub grace_period_days: Option<u32>,
}

impl SettingsChange {
    /// Checks every given value on its own; [`SettingsChange::check_for`] adds the checks
    /// that depend on the integration.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(name) = &self.name {
            Integration::check_name("name", name)?;
        }
        if let Some(Some(seats)) = self.purchased_seats {
            Integration::check_seats(seats)?;
        }
        // Each guard-rail is checked independently, so checking the given ones on top of the
        // defaults is the same as checking the merged result.
        let rails = self.reclaim.apply_to(ReclaimGuardRails::default());
        rails.validate()
    }

    /// Checks that need the integration: a plan only where the provider cannot tell it.
    pub fn check_for(&self, integration: &Integration) -> Result<(), InvalidInput> {
        if self.plan.is_some() && integration.provider != Provider::Box {
            return Err(InvalidInput::new(
                "plan",
                format!(
                    "{} reports its license types itself; only Box integrations declare a plan",
                    integration.provider
                ),
            ));
        }
        Ok(())
    }

    /// Applies the change and names the fields whose value changed.
    pub fn apply(&self, integration: &mut Integration) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut set = |field: &'static str, differs: bool| {
            if differs {
                changed.push(field);
            }
        };
        if let Some(name) = &self.name {
            let name = name.trim().to_owned();
            set("name", integration.name != name);
            integration.name = name;
        }
        if let Some(plan) = self.plan {
            set("plan", integration.plan != Some(plan));
            integration.plan = Some(plan);
        }
        if let Some(seats) = self.purchased_seats {
            set("seats", integration.purchased_seats != seats);
            integration.purchased_seats = seats;
        }
        if let Some(enabled) = self.enabled {
            set("enabled", integration.enabled != enabled);
            integration.enabled = enabled;
            // `disabled` is the status of an integration switched off; switching it back on
            // makes it connected again. Other statuses (needs_reauth, error) say something
            // about the tenant and stay.
            if enabled && integration.status == IntegrationStatus::Disabled {
                integration.status = IntegrationStatus::Connected;
            }
        }
        if let Some(days) = self.inactive_days {
            set(
                "inactive_days",
                integration.sync.inactive_days != days.get(),
            );
            integration.sync.inactive_days = days.get();
        }
        if let Some(price) = &self.seat_price {
            set("price_per_seat", &integration.seat_price != price);
            integration.seat_price = price.clone();
        }
        let rails = self.reclaim.apply_to(integration.reclaim.clone());
        let before = &integration.reclaim;
        for (field, differs) in [
            (
                "reclaim.excluded_logins",
                rails.excluded_logins != before.excluded_logins,
            ),
            (
                "reclaim.excluded_user_ids",
                rails.excluded_user_ids != before.excluded_user_ids,
            ),
            (
                "reclaim.excluded_group_ids",
                rails.excluded_group_ids != before.excluded_group_ids,
            ),
            (
                "reclaim.approval_threshold",
                rails.approval_threshold != before.approval_threshold,
            ),
            (
                "reclaim.auto_approve",
                rails.auto_approve != before.auto_approve,
            ),
            (
                "reclaim.allow_self_approval",
                rails.allow_self_approval != before.allow_self_approval,
            ),
            (
                "reclaim.grace_period_days",
                rails.grace_period_days != before.grace_period_days,
            ),
        ] {
            set(field, differs);
        }
        integration.reclaim = rails;
        changed
    }
}

impl GuardRailsChange {
    fn apply_to(&self, mut rails: ReclaimGuardRails) -> ReclaimGuardRails {
        if let Some(v) = &self.excluded_logins {
            rails.excluded_logins = v.iter().map(|s| s.trim().to_owned()).collect();
        }
        if let Some(v) = &self.excluded_user_ids {
            rails.excluded_user_ids = v.iter().map(|s| s.trim().to_owned()).collect();
        }
        if let Some(v) = &self.excluded_group_ids {
            rails.excluded_group_ids = v.iter().map(|s| s.trim().to_owned()).collect();
        }
        if let Some(v) = self.approval_threshold {
            rails.approval_threshold = v;
        }
        if let Some(v) = self.auto_approve {
            rails.auto_approve = v;
        }
        if let Some(v) = self.allow_self_approval {
            rails.allow_self_approval = v;
        }
        if let Some(v) = self.grace_period_days {
            rails.grace_period_days = v;
        }
        rails
    }
}

/// Changes an integration's settings by compare-and-swap (a concurrent change of other
/// fields is kept) and audits which fields changed. A disconnected integration keeps its
/// history as it was: changing it is refused.
#[tracing::instrument(skip_all, fields(integration_id = %id))]
pub async fn update_settings(
    ctx: &ServiceContext,
    id: &IntegrationId,
    change: &SettingsChange,
    actor: &Actor,
) -> Result<Integration, IntegrationsError> {
    change.validate()?;
    let current = get_integration(ctx, id).await?;
    if current.status == IntegrationStatus::Disconnected {
        return Err(IntegrationsError::Disconnected(id.clone()));
    }
    change.check_for(&current)?;
    let now = ctx.clock.now();
    // The closure may run more than once (a conflicting write retries it): the fields of
    // its last run are the ones that changed.
    let changed: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let apply = |integration: &mut Integration| {
        let fields = if integration.status == IntegrationStatus::Disconnected {
            Vec::new()
        } else {
            change.apply(integration)
        };
        if !fields.is_empty() {
            integration.updated_at = now;
        }
        *changed.lock().unwrap_or_else(|p| p.into_inner()) = fields;
    };
    let updated = ctx.store.modify_integration(id, &apply).await?;
    let changed = changed.into_inner().unwrap_or_else(|p| p.into_inner());
    if updated.status == IntegrationStatus::Disconnected {
        // Disconnected between our read and the write: nothing was applied.
        return Err(IntegrationsError::Disconnected(id.clone()));
    }
    if !changed.is_empty() {
        record(
            ctx,
            AuditEntry::new(id.clone(), now, actor.clone(), "settings_changed")
                .with_detail(serde_json::json!({ "fields": changed })),
        )
        .await;
    }
    Ok(updated)
}

// ---------------------------------------------------------------------------------------
// Disconnect

/// Disconnects an integration: stops its pending work, revokes an OAuth grant at the
/// provider (best effort), marks it `disconnected` and releases its tenant claim (history
/// kept), deletes its secret, and audits it. Repeating it is harmless: an integration that
/// is already disconnected only has its secret deleted again (in case that failed before).
#[tracing::instrument(skip_all, fields(integration_id = %id))]
pub async fn disconnect(
    ctx: &ServiceContext,
    id: &IntegrationId,
    actor: &Actor,
) -> Result<Integration, IntegrationsError> {
    let integration = get_integration(ctx, id).await?;
    let already = integration.status == IntegrationStatus::Disconnected;
    let mut revoked = None;
    if !already {
        cancel_pending_reclaim_jobs(ctx, &integration).await?;
        if integration.auth_kind == AuthKind::OAuth {
            revoked = Some(revoke_oauth_grant(ctx, &integration).await);
        }
    }
    let now = ctx.clock.now();
    let disconnected = ctx.store.disconnect_integration(id, now).await?;
    // After the status change, so a failure here leaves a disconnected integration whose
    // secret a repeated DELETE removes.
    ctx.secrets.delete(&integration.secret_name).await?;
    if !already {
        record(
            ctx,
            AuditEntry::new(id.clone(), now, actor.clone(), "integration_disconnected")
                .with_detail(serde_json::json!({
                    "provider": integration.provider,
                    "tenant_id": integration.tenant_id,
                    "grant_revoked": revoked,
                })),
        )
        .await;
    }
    tracing::info!("integration disconnected");
    Ok(disconnected)
}

/// Disconnecting stops the integration's reclaim jobs before its credentials go: each job
/// not in a final state is cancelled (its cancel flag is checked before every provider
/// write; a job not yet acting finishes at once and releases the reclaim lease), and an
/// execution waiting for an approval is told (`Seatkeeper.Cancelled`), so it finalises.
async fn cancel_pending_reclaim_jobs(
    ctx: &ServiceContext,
    integration: &Integration,
) -> Result<(), IntegrationsError> {
    let reclaimer = ctx.reclaimer();
    let mut cursor: Option<String> = None;
    loop {
        let page = ctx
            .store
            .list_reclaim_jobs(&integration.id, cursor.as_deref(), 100)
            .await?;
        for job in page.items.iter().filter(|j| !j.state.is_final()) {
            let cancelled = reclaimer.cancel(&job.id, &Actor::System).await?;
            let token = cancelled.task_token.as_ref().or(job.task_token.as_ref());
            if let (JobState::AwaitingApproval, Some(token)) = (job.state, token) {
                // Best effort: the job is cancelled already; an execution not told ends
                // its wait at the timeout and finds the job finished.
                if let Err(e) = ctx
                    .workflow
                    .send_task_failure(token, TaskFailure::Cancelled, "integration disconnected")
                    .await
                {
                    tracing::warn!(job_id = %job.id, error = %e, "could not end the approval wait");
                }
            }
            tracing::info!(job_id = %job.id, "reclaim job cancelled by the disconnect");
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Revokes the integration's OAuth grant at the provider. Best effort: a failure is logged
/// (never with a token) and the disconnect goes on, since deleting the secret makes the
/// tokens unusable by Seatkeeper anyway. Returns whether the provider confirmed.
async fn revoke_oauth_grant(ctx: &ServiceContext, integration: &Integration) -> bool {
    match integration.provider {
        Provider::Box => {}
        Provider::Salesforce => {
            tracing::warn!("revoking a Salesforce grant is not supported yet");
            return false;
        }
    }
    let credentials =
        match IntegrationCredentials::load(ctx.secrets.as_ref(), &integration.secret_name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no tokens to revoke");
                return false;
            }
        };
    // Revoking the refresh token ends the whole grant; the access token alone ends it too.
    let Some(token): Option<SecretString> = credentials.refresh_token.or(credentials.access_token)
    else {
        tracing::warn!("the integration's secret holds no token to revoke");
        return false;
    };
    let app = match OAuthAppCredentials::load(ctx.secrets.as_ref(), Provider::Box).await {
        Ok(app) => BoxOAuthApp {
            client_id: app.client_id,
            client_secret: app.client_secret,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot revoke the grant without the OAuth app's credentials");
            return false;
        }
    };
    match oauth::revoke(&ctx.http, &ctx.box_config, &app, &token).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Box did not revoke the grant");
            false
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sync

/// Asks for a sync now (asynchronously, through the [`SyncTrigger`](crate::trigger::SyncTrigger)).
/// Refused while a sync runs (its lease is held and unexpired) and for integrations that
/// cannot sync: disabled, disconnected, or waiting for a new authorization.
#[tracing::instrument(skip_all, fields(integration_id = %id))]
pub async fn request_sync(
    ctx: &ServiceContext,
    id: &IntegrationId,
    actor: &Actor,
) -> Result<(), IntegrationsError> {
    let integration = get_integration(ctx, id).await?;
    let refuse = |reason| IntegrationsError::SyncRefused {
        id: id.clone(),
        reason,
    };
    match integration.status {
        IntegrationStatus::Disconnected => return Err(refuse(SyncRefusal::Disconnected)),
        IntegrationStatus::NeedsReauth => return Err(refuse(SyncRefusal::NeedsReauth)),
        IntegrationStatus::Disabled => return Err(refuse(SyncRefusal::Disabled)),
        IntegrationStatus::Connected | IntegrationStatus::Error => {}
    }
    if !integration.enabled {
        return Err(refuse(SyncRefusal::Disabled));
    }
    let now = ctx.clock.now();
    if let Some(lease) = ctx.store.get_lease(id, LeaseKind::Sync).await?
        && lease.expires_at > now
    {
        return Err(refuse(SyncRefusal::Running {
            until: lease.expires_at,
        }));
    }
    trigger_sync(ctx, id).await?;
    record(
        ctx,
        AuditEntry::new(id.clone(), now, actor.clone(), "sync_requested"),
    )
    .await;
    Ok(())
}

async fn trigger_sync(ctx: &ServiceContext, id: &IntegrationId) -> Result<(), TriggerError> {
    ctx.sync_trigger
        .trigger(&SyncRequest {
            integration_id: id.clone(),
            checkpoint: None,
        })
        .await
}

// ---------------------------------------------------------------------------------------
// License information

/// The inactivity threshold an integration is configured with.
fn configured_inactive_days(integration: &Integration) -> InactiveDays {
    InactiveDays::try_from(integration.sync.sanitized().inactive_days).unwrap_or_default()
}

/// The license summary of the latest snapshot (never the accounts), at `inactive_days` or
/// the integration's own threshold, with the potential savings when a price is set.
pub async fn license_summary(
    ctx: &ServiceContext,
    id: &IntegrationId,
    inactive_days: Option<InactiveDays>,
) -> Result<LicenseSummary, IntegrationsError> {
    let integration = get_integration(ctx, id).await?;
    let snapshot = ctx
        .store
        .latest_snapshot(id)
        .await?
        .ok_or_else(|| IntegrationsError::NeverSynced(id.clone()))?;
    let days = inactive_days.unwrap_or_else(|| configured_inactive_days(&integration));
    Ok(report::summarize(&integration, snapshot, days))
}

/// How many items one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(usize);

impl PageLimit {
    pub const DEFAULT: usize = 100;
    pub const MAX: usize = 1000;

    pub fn new(limit: u64) -> Result<Self, InvalidInput> {
        match usize::try_from(limit) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(InvalidInput::new("limit", "must be between 1 and 1000")),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// Which accounts to list. Each variant is served by a key or an index, never by reading
/// a whole partition and filtering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFilter {
    /// Every current account, in external-id order (the partition's `ACC#` keys).
    All,
    /// Seat holders of one license type, oldest login first (GSI gsi2); with a threshold,
    /// only those without a login in the last `inactive_days`.
    LicenseType {
        license_type: String,
        inactive_days: Option<InactiveDays>,
    },
    /// Accounts of one kind (GSI gsi3).
    Kind(AccountKind),
    /// Seat holders without a login in the last `inactive_days`, every license type of the
    /// latest snapshot one after another (gsi2 per type).
    Inactive(InactiveDays),
}

impl AccountFilter {
    /// Combines the query's filters; combinations no index serves are refused.
    pub fn new(
        license_type: Option<String>,
        kind: Option<AccountKind>,
        inactive_days: Option<InactiveDays>,
    ) -> Result<Self, InvalidInput> {
        if let Some(name) = &license_type {
            Integration::check_name("license_type", name)?;
        }
        match (license_type, kind, inactive_days) {
            (None, None, None) => Ok(AccountFilter::All),
            (Some(license_type), None, inactive_days) => Ok(AccountFilter::LicenseType {
                license_type,
                inactive_days,
            }),
            (None, Some(kind), None) => Ok(AccountFilter::Kind(kind)),
            (None, None, Some(days)) => Ok(AccountFilter::Inactive(days)),
            (_, Some(_), _) => Err(InvalidInput::new(
                "kind",
                "cannot be combined with license_type or inactive_days (license_type combines with inactive_days)",
            )),
        }
    }

    /// Names the listing a cursor belongs to, so a cursor of another one is refused.
    fn fingerprint(&self) -> String {
        match self {
            AccountFilter::All => "all".to_owned(),
            AccountFilter::LicenseType {
                license_type,
                inactive_days,
            } => format!(
                "lt:{}:{license_type}",
                inactive_days.map_or(0, InactiveDays::get)
            ),
            AccountFilter::Kind(kind) => format!("kind:{kind}"),
            AccountFilter::Inactive(days) => format!("inactive:{}", days.get()),
        }
    }
}

/// Where the next page of an accounts listing starts. Opaque to callers (the API encodes it
/// into its `cursor` parameter); checked against the listing it is used with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsCursor {
    #[serde(rename = "f")]
    filter: String,
    /// The login cutoff of the first page, kept so every page of a listing uses the same one.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    before: Option<DateTime<Utc>>,
    /// The license type being walked (`AccountFilter::Inactive`).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    license_type: Option<String>,
    /// The store's cursor within the current listing.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    inner: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountsPage {
    pub items: Vec<Account>,
    pub next: Option<AccountsCursor>,
}

/// Store reads one accounts page may make at most (a walk over license types may need one
/// per type; pages with nothing current in them must not make a request spin).
const MAX_READS_PER_PAGE: usize = 32;

/// One page of accounts. Vanished accounts are never listed.
#[tracing::instrument(skip_all, fields(integration_id = %id))]
pub async fn list_accounts(
    ctx: &ServiceContext,
    id: &IntegrationId,
    filter: &AccountFilter,
    cursor: Option<AccountsCursor>,
    limit: PageLimit,
) -> Result<AccountsPage, IntegrationsError> {
    get_integration(ctx, id).await?;
    let fingerprint = filter.fingerprint();
    if let Some(c) = &cursor
        && c.filter != fingerprint
    {
        return Err(IntegrationsError::BadCursor(
            "the cursor belongs to a listing with other filters".to_owned(),
        ));
    }
    let inner = cursor.as_ref().and_then(|c| c.inner.clone());
    let limit_n = limit.get();
    let current = |page: Page<Account>| -> (Vec<Account>, Option<String>) {
        let items = page
            .items
            .into_iter()
            .filter(|a| a.vanished_at.is_none())
            .collect();
        (items, page.next)
    };
    let wrap = |next: Option<String>, before: Option<DateTime<Utc>>| {
        next.map(|inner| AccountsCursor {
            filter: fingerprint.clone(),
            before,
            license_type: None,
            inner: Some(inner),
        })
    };
    match filter {
        AccountFilter::All => {
            let (items, next) = current(
                ctx.store
                    .list_accounts(id, inner.as_deref(), limit_n)
                    .await?,
            );
            Ok(AccountsPage {
                items,
                next: wrap(next, None),
            })
        }
        AccountFilter::Kind(kind) => {
            let (items, next) = current(
                ctx.store
                    .accounts_by_kind(id, *kind, inner.as_deref(), limit_n)
                    .await?,
            );
            Ok(AccountsPage {
                items,
                next: wrap(next, None),
            })
        }
        AccountFilter::LicenseType {
            license_type,
            inactive_days,
        } => {
            let before = match (&cursor, inactive_days) {
                (Some(c), Some(_)) => Some(c.before.ok_or_else(|| {
                    IntegrationsError::BadCursor("the cursor lacks its login cutoff".to_owned())
                })?),
                (None, Some(days)) => Some(login_cutoff(ctx, *days)),
                (_, None) => None,
            };
            let (items, next) = current(
                ctx.store
                    .accounts_by_license_type(id, license_type, before, inner.as_deref(), limit_n)
                    .await?,
            );
            Ok(AccountsPage {
                items,
                next: wrap(next, before),
            })
        }
        AccountFilter::Inactive(days) => {
            let before = match &cursor {
                Some(c) => c.before.ok_or_else(|| {
                    IntegrationsError::BadCursor("the cursor lacks its login cutoff".to_owned())
                })?,
                None => login_cutoff(ctx, *days),
            };
            walk_inactive(ctx, id, fingerprint.clone(), before, cursor, limit_n).await
        }
    }
}

/// Logins before this are `inactive_days` or more ago.
fn login_cutoff(ctx: &ServiceContext, days: InactiveDays) -> DateTime<Utc> {
    ctx.clock.now() - Duration::days(i64::from(days.get()))
}

/// Walks the license types of the latest snapshot in name order, each through its index,
/// filling one page; the cursor names the type it stopped in.
async fn walk_inactive(
    ctx: &ServiceContext,
    id: &IntegrationId,
    fingerprint: String,
    before: DateTime<Utc>,
    cursor: Option<AccountsCursor>,
    limit: usize,
) -> Result<AccountsPage, IntegrationsError> {
    let Some(snapshot) = ctx.store.latest_snapshot(id).await? else {
        // Never synced: no seat holders to list.
        return Ok(AccountsPage {
            items: Vec::new(),
            next: None,
        });
    };
    let mut types: Vec<String> = snapshot
        .license_types
        .iter()
        .map(|lt| lt.name.clone())
        .collect();
    types.sort();
    types.dedup();
    let (mut index, mut inner) = match cursor {
        None => (0, None),
        Some(c) => {
            let at = c.license_type.ok_or_else(|| {
                IntegrationsError::BadCursor("the cursor names no license type".to_owned())
            })?;
            match types.binary_search(&at) {
                Ok(i) => (i, c.inner),
                // The type is gone from a newer snapshot: go on with the ones after it.
                Err(i) => (i, None),
            }
        }
    };
    let mut items = Vec::new();
    let mut reads = 0;
    while index < types.len() && items.len() < limit && reads < MAX_READS_PER_PAGE {
        let page = ctx
            .store
            .accounts_by_license_type(
                id,
                &types[index],
                Some(before),
                inner.as_deref(),
                limit - items.len(),
            )
            .await?;
        reads += 1;
        items.extend(page.items.into_iter().filter(|a| a.vanished_at.is_none()));
        inner = page.next;
        if inner.is_none() {
            index += 1;
        }
    }
    let next = (index < types.len()).then(|| AccountsCursor {
        filter: fingerprint,
        before: Some(before),
        license_type: Some(types[index].clone()),
        inner,
    });
    Ok(AccountsPage { items, next })
}

// ---------------------------------------------------------------------------------------
// History, tasks, audit

/// An inclusive range of days, at most [`SnapshotRange::MAX_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl SnapshotRange {
    pub const MAX_DAYS: i64 = 366;
    pub const DEFAULT_DAYS: i64 = 30;

    /// `to` defaults to `today`, `from` to 30 days ending at `to`.
    pub fn new(
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, InvalidInput> {
        let to = to.unwrap_or(today);
        let from = match from {
            Some(from) => from,
            None => to
                .checked_sub_signed(Duration::days(Self::DEFAULT_DAYS - 1))
                .unwrap_or(NaiveDate::MIN),
        };
        if from > to {
            return Err(InvalidInput::new("from", "must not be after `to`"));
        }
        if (to - from).num_days() + 1 > Self::MAX_DAYS {
            return Err(InvalidInput::new(
                "from",
                "the range from `from` to `to` may span at most 366 days",
            ));
        }
        Ok(Self { from, to })
    }
}

/// One day of an integration's history, counted at one inactivity threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotDay {
    pub date: NaiveDate,
    pub data_as_of: DateTime<Utc>,
    pub sync_id: String,
    pub inactive_days: u32,
    pub seats: Seats,
    pub license_types: Vec<LicenseTypeCounts>,
    pub accounts_by_kind: std::collections::BTreeMap<String, u64>,
}

impl SnapshotDay {
    pub fn of(snapshot: Snapshot, inactive_days: InactiveDays) -> Self {
        Self {
            license_types: snapshot.counts(inactive_days.get()),
            date: snapshot.date,
            data_as_of: snapshot.data_as_of,
            sync_id: snapshot.sync_id,
            inactive_days: inactive_days.get(),
            seats: snapshot.seats,
            accounts_by_kind: snapshot.accounts_by_kind,
        }
    }
}

/// The daily snapshots within `range`, oldest first (at most 366 of them: one per day).
pub async fn snapshot_history(
    ctx: &ServiceContext,
    id: &IntegrationId,
    range: SnapshotRange,
    inactive_days: Option<InactiveDays>,
) -> Result<Vec<SnapshotDay>, IntegrationsError> {
    let integration = get_integration(ctx, id).await?;
    let days = inactive_days.unwrap_or_else(|| configured_inactive_days(&integration));
    let mut snapshots = ctx.store.list_snapshots(id, range.from, range.to).await?;
    snapshots.sort_by_key(|s| s.date);
    Ok(snapshots
        .into_iter()
        .map(|s| SnapshotDay::of(s, days))
        .collect())
}

/// The runs of one task kind, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskHistory {
    pub kind: TaskKind,
    pub runs: Vec<TaskRun>,
}

/// Task kinds the Application Task Tracking chart shows, in its order.
pub const TRACKED_TASKS: [TaskKind; 5] = [
    TaskKind::ApplicationRoster,
    TaskKind::LicenseInformation,
    TaskKind::LicenseDifferentiation,
    TaskKind::ApplicationAccess,
    TaskKind::Reclamation,
];

/// Most runs listed per task kind.
pub const MAX_TASK_RUNS: usize = 100;

/// Application Task Tracking: per task kind (or the one asked for), its `limit` most
/// recent runs.
pub async fn task_history(
    ctx: &ServiceContext,
    id: &IntegrationId,
    kind: Option<TaskKind>,
    limit: usize,
) -> Result<Vec<TaskHistory>, IntegrationsError> {
    if !(1..=MAX_TASK_RUNS).contains(&limit) {
        return Err(InvalidInput::new("limit", "must be between 1 and 100").into());
    }
    get_integration(ctx, id).await?;
    let kinds = match kind {
        Some(kind) => vec![kind],
        None => TRACKED_TASKS.to_vec(),
    };
    let mut history = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let runs = ctx.store.list_task_runs(id, Some(kind), limit).await?;
        history.push(TaskHistory { kind, runs });
    }
    Ok(history)
}

/// The audit trail, newest first.
pub async fn audit_trail(
    ctx: &ServiceContext,
    id: &IntegrationId,
    cursor: Option<&str>,
    limit: PageLimit,
) -> Result<Page<AuditEntry>, IntegrationsError> {
    get_integration(ctx, id).await?;
    Ok(ctx.store.list_audit(id, cursor, limit.get()).await?)
}

/// Appends an audit entry after a change; see the module comment for why a failure is
/// logged rather than returned.
async fn record(ctx: &ServiceContext, entry: AuditEntry) {
    if let Err(e) = ctx.store.append_audit(&entry).await {
        tracing::error!(
            integration_id = %entry.integration_id,
            action = %entry.action,
            error = %e,
            "could not write the audit entry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SyncSettings;
    use chrono::TimeZone;

    fn integration() -> Integration {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Integration {
            id: IntegrationId::parse("i-1").unwrap(),
            provider: Provider::Box,
            name: "Box".into(),
            auth_kind: AuthKind::ClientCredentials,
            tenant_id: "1".into(),
            secret_name: "s".into(),
            status: IntegrationStatus::Connected,
            enabled: true,
            plan: Some(BoxPlan::Business),
            purchased_seats: Some(10),
            service_user_id: None,
            sync: SyncSettings::default(),
            created_at: at,
            updated_at: at,
            last_sync: None,
            reclaim: ReclaimGuardRails::default(),
            seat_price: None,
        }
    }

    #[test]
    fn a_change_names_only_the_fields_whose_value_changed() {
        let mut i = integration();
        let change = SettingsChange {
            name: Some("Box".into()),
            plan: Some(BoxPlan::BusinessPlus),
            purchased_seats: Some(None),
            inactive_days: Some(InactiveDays::try_from(90).unwrap()),
            seat_price: Some(Some(SeatPrice::new(1500, "EUR").unwrap())),
            reclaim: GuardRailsChange {
                excluded_logins: Some(vec![" ceo@example.com ".into()]),
                auto_approve: Some(false),
                approval_threshold: Some(Some(5)),
                ..GuardRailsChange::default()
            },
            ..SettingsChange::default()
        };
        let fields = change.apply(&mut i);
        assert_eq!(
            fields,
            vec![
                "plan",
                "seats",
                "price_per_seat",
                "reclaim.excluded_logins",
                "reclaim.approval_threshold"
            ]
        );
        assert_eq!(i.reclaim.excluded_logins, vec!["ceo@example.com"]);
        assert_eq!(i.purchased_seats, None);
        assert_eq!(
            change.apply(&mut i),
            Vec::<&str>::new(),
            "applying twice changes nothing"
        );
    }

    #[test]
    fn enabling_a_disabled_integration_connects_it_but_keeps_needs_reauth() {
        let mut i = integration();
        i.status = IntegrationStatus::Disabled;
        i.enabled = false;
        let enable = SettingsChange {
            enabled: Some(true),
            ..SettingsChange::default()
        };
        enable.apply(&mut i);
        assert_eq!((i.enabled, i.status), (true, IntegrationStatus::Connected));
        let mut reauth = integration();
        reauth.status = IntegrationStatus::NeedsReauth;
        enable.apply(&mut reauth);
        assert_eq!(reauth.status, IntegrationStatus::NeedsReauth);
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let field = |change: SettingsChange| change.validate().unwrap_err().field;
        assert_eq!(
            field(SettingsChange {
                name: Some(" ".into()),
                ..SettingsChange::default()
            }),
            "name"
        );
        assert_eq!(
            field(SettingsChange {
                purchased_seats: Some(Some(Integration::MAX_SEATS + 1)),
                ..SettingsChange::default()
            }),
            "seats"
        );
        assert_eq!(
            field(SettingsChange {
                reclaim: GuardRailsChange {
                    grace_period_days: Some(4000),
                    ..GuardRailsChange::default()
                },
                ..SettingsChange::default()
            }),
            "grace_period_days"
        );
        assert_eq!(
            field(SettingsChange {
                reclaim: GuardRailsChange {
                    excluded_group_ids: Some(vec!["".into()]),
                    ..GuardRailsChange::default()
                },
                ..SettingsChange::default()
            }),
            "excluded_group_ids"
        );
    }

    #[test]
    fn a_plan_is_only_declared_for_box() {
        let mut sf = integration();
        sf.provider = Provider::Salesforce;
        let change = SettingsChange {
            plan: Some(BoxPlan::Business),
            ..SettingsChange::default()
        };
        assert_eq!(change.check_for(&sf).unwrap_err().field, "plan");
        assert!(change.check_for(&integration()).is_ok());
    }

    #[test]
    fn only_indexed_filter_combinations_are_accepted() {
        let days = Some(InactiveDays::try_from(30).unwrap());
        assert_eq!(AccountFilter::new(None, None, None), Ok(AccountFilter::All));
        assert!(matches!(
            AccountFilter::new(Some("Business".into()), None, days),
            Ok(AccountFilter::LicenseType { .. })
        ));
        assert!(matches!(
            AccountFilter::new(None, None, days),
            Ok(AccountFilter::Inactive(_))
        ));
        assert_eq!(
            AccountFilter::new(None, Some(AccountKind::Human), days)
                .unwrap_err()
                .field,
            "kind"
        );
        assert_eq!(
            AccountFilter::new(Some("B".into()), Some(AccountKind::Human), None)
                .unwrap_err()
                .field,
            "kind"
        );
        assert_eq!(
            AccountFilter::new(Some("\n".into()), None, None)
                .unwrap_err()
                .field,
            "license_type"
        );
    }

    #[test]
    fn snapshot_ranges_default_to_thirty_days_and_stop_at_366() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let r = SnapshotRange::new(None, None, day(30)).unwrap();
        assert_eq!((r.from, r.to), (day(1), day(30)));
        assert_eq!(
            SnapshotRange::new(Some(day(2)), Some(day(1)), day(30))
                .unwrap_err()
                .field,
            "from"
        );
        let a_year_ago = day(30) - Duration::days(365);
        assert!(SnapshotRange::new(Some(a_year_ago), None, day(30)).is_ok());
        assert!(SnapshotRange::new(Some(a_year_ago - Duration::days(1)), None, day(30)).is_err());
    }

    #[test]
    fn page_limits_are_bounded() {
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(1001).is_err());
        assert_eq!(PageLimit::new(1000).unwrap().get(), 1000);
        assert_eq!(PageLimit::default().get(), 100);
    }
}
