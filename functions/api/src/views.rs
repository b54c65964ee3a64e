//! The JSON the API reads and writes, separate from the domain types so the wire format
//! (and `openapi.json`) changes only on purpose. Nothing here ever holds a secret except the
//! connect request's `client_secret`, which stays a `SecretString`.

use chrono::{DateTime, NaiveDate, Utc};
use seatkeeper_shared::domain::{
    AuditEntry, AuthKind, BoxPlan, Integration, IntegrationId, IntegrationStatus, Provider,
    SyncSummary, TaskKind, TaskRun, TaskStatus,
};
use seatkeeper_shared::services::integrations::TaskHistory;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// For optional fields that must not be `null`: absent is `None` (with `#[serde(default)]`),
/// `null` is a type error like any other.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// For optional, nullable fields: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------
// Requests

/// `POST /integrations`: a Client Credentials Grant connect.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: SecretString,
    pub enterprise_id: String,
    pub plan: BoxPlan,
    #[serde(default, deserialize_with = "present")]
    pub seats: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
}

/// `POST /integrations/oauth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthBody {
    pub provider: Provider,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub plan: Option<BoxPlan>,
    #[serde(default, deserialize_with = "present")]
    pub seats: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub integration_id: Option<IntegrationId>,
}

/// `PATCH /integrations/{id}`: every field optional; `null` clears the nullable ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub plan: Option<BoxPlan>,
    #[serde(default, deserialize_with = "nullable")]
    pub seats: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub inactive_days: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    pub price_per_seat: Option<Option<PriceBody>>,
    #[serde(default, deserialize_with = "present")]
    pub reclaim: Option<GuardRailsBody>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    /// Minor units (cents) per seat per month.
    pub monthly: u64,
    pub currency: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardRailsBody {
    #[serde(default, deserialize_with = "present")]
    pub excluded_logins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub excluded_user_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub excluded_group_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub approval_threshold: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub auto_approve: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub allow_self_approval: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub grace_period_days: Option<u32>,
}

// ---------------------------------------------------------------------------------------
// Responses

#[derive(Debug, Serialize)]
pub struct IntegrationView {
    pub id: IntegrationId,
    pub provider: Provider,
    pub name: String,
    /// `client_credentials` or `oauth`.
    pub auth_kind: &'static str,
    pub tenant_id: String,
    pub status: IntegrationStatus,
    pub enabled: bool,
    pub plan: Option<BoxPlan>,
    pub seats: Option<u64>,
    pub service_user_id: Option<String>,
    pub inactive_days: u32,
    pub price_per_seat: Option<PriceView>,
    pub reclaim: GuardRailsView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_sync: Option<LastSyncView>,
}

#[derive(Debug, Serialize)]
pub struct PriceView {
    pub monthly: u64,
    pub currency: String,
}

#[derive(Debug, Serialize)]
pub struct GuardRailsView {
    pub excluded_logins: Vec<String>,
    pub excluded_user_ids: Vec<String>,
    pub excluded_group_ids: Vec<String>,
    pub approval_threshold: Option<u32>,
    /// The threshold in force (the configured one, or the default for the seats).
    pub effective_approval_threshold: u32,
    pub auto_approve: bool,
    pub allow_self_approval: bool,
    pub grace_period_days: u32,
}

#[derive(Debug, Serialize)]
pub struct LastSyncView {
    pub sync_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub succeeded: bool,
    pub error: Option<String>,
}

impl From<&SyncSummary> for LastSyncView {
    fn from(s: &SyncSummary) -> Self {
        Self {
            sync_id: s.sync_id.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            succeeded: s.succeeded,
            error: s.error.clone(),
        }
    }
}

impl From<&Integration> for IntegrationView {
    fn from(i: &Integration) -> Self {
        Self {
            id: i.id.clone(),
            provider: i.provider,
            name: i.name.clone(),
            auth_kind: match i.auth_kind {
                AuthKind::ClientCredentials => "client_credentials",
                AuthKind::OAuth => "oauth",
            },
            tenant_id: i.tenant_id.clone(),
            status: i.status,
            enabled: i.enabled,
            plan: i.plan,
            seats: i.purchased_seats,
            service_user_id: i.service_user_id.clone(),
            inactive_days: i.sync.sanitized().inactive_days,
            price_per_seat: i.seat_price.as_ref().map(|p| PriceView {
                monthly: p.monthly_minor_units,
                currency: p.currency.clone(),
            }),
            reclaim: GuardRailsView {
                excluded_logins: i.reclaim.excluded_logins.clone(),
                excluded_user_ids: i.reclaim.excluded_user_ids.clone(),
                excluded_group_ids: i.reclaim.excluded_group_ids.clone(),
                approval_threshold: i.reclaim.approval_threshold,
                effective_approval_threshold: i.reclaim.effective_threshold(i.purchased_seats),
                auto_approve: i.reclaim.auto_approve,
                allow_self_approval: i.reclaim.allow_self_approval,
                grace_period_days: i.reclaim.grace_period_days,
            },
            created_at: i.created_at,
            updated_at: i.updated_at,
            last_sync: i.last_sync.as_ref().map(LastSyncView::from),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ListView<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Serialize)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OAuthStartView {
    /// The start URL carries a single-use ticket: it is shown to the caller who asked for it
    /// and nowhere else.
    pub start_url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct SyncStartedView {
    pub integration_id: IntegrationId,
    pub status: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SnapshotsView<T> {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub items: Vec<T>,
}

#[derive(Debug, Serialize)]
pub struct TasksView {
    pub tasks: Vec<TaskKindView>,
}

#[derive(Debug, Serialize)]
pub struct TaskKindView {
    pub kind: TaskKind,
    pub runs: Vec<TaskRunView>,
}

#[derive(Debug, Serialize)]
pub struct TaskRunView {
    pub sync_id: String,
    pub status: TaskStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub counts: BTreeMap<String, u64>,
    pub error: Option<String>,
}

impl From<TaskHistory> for TaskKindView {
    fn from(h: TaskHistory) -> Self {
        Self {
            kind: h.kind,
            runs: h.runs.into_iter().map(TaskRunView::from).collect(),
        }
    }
}

impl From<TaskRun> for TaskRunView {
    fn from(r: TaskRun) -> Self {
        Self {
            sync_id: r.sync_id,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            counts: r.counts,
            error: r.error,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuditEntryView {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: ActorView,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct ActorView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub principal: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        use seatkeeper_shared::domain::Actor;
        let kind = match &e.actor {
            Actor::Iam { .. } => "iam",
            Actor::Local { .. } => "local",
            Actor::System => "system",
        };
        Self {
            actor: ActorView {
                kind,
                principal: e.actor.principal(),
            },
            id: e.id,
            at: e.at,
            action: e.action,
            target: e.target,
            detail: e.detail,
        }
    }
}

impl From<&seatkeeper_shared::domain::Actor> for ActorView {
    fn from(actor: &seatkeeper_shared::domain::Actor) -> Self {
        use seatkeeper_shared::domain::Actor;
        let kind = match actor {
            Actor::Iam { .. } => "iam",
            Actor::Local { .. } => "local",
            Actor::System => "system",
        };
        Self {
            kind,
            principal: actor.principal(),
        }
    }
}
