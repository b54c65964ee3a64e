//! Every answer that is not a success: `{"error": {"code", "message"[, "field"]}}`.
//!
//! Bad input is a 4xx naming what is wrong. A 5xx means a backend failed: its detail goes to
//! the log only, the caller gets a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use seatkeeper_shared::domain::InvalidInput;
use seatkeeper_shared::domain::{ApprovalRefused, JobChangeRefused};
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::services::connect::ConnectError;
use seatkeeper_shared::services::integrations::{IntegrationsError, SyncRefusal};
use seatkeeper_shared::services::oauth_connect::OAuthConnectError;
use seatkeeper_shared::services::reclaim::ReclaimError;
use seatkeeper_shared::services::sources::SourceError;
use seatkeeper_shared::store::StoreError;
use seatkeeper_shared::workflow::WorkflowError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(e: &InvalidInput) -> Self {
        Self::bad_request("invalid_input", e.to_string()).with_field(e.field)
    }

    pub fn bad_cursor(message: impl std::fmt::Display) -> Self {
        Self::bad_request(
            "bad_cursor",
            format!("{message}; start again without `cursor`"),
        )
        .with_field("cursor")
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the request carries no caller identity (sign it with SigV4, or use the local token)",
        )
    }

    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route; see /openapi.json",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method; see /openapi.json",
        )
    }

    /// A backend failure: logged with its detail, answered with a generic message.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error, chain = %chain(error), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request could not be completed; the details are in the service's log",
        )
    }

    fn integration_not_found(id: &impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "integration_not_found",
            format!("integration {id} not found"),
        )
    }
}

/// `error: source: source…`, for the log.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::invalid(&e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::integration_not_found(&id),
            StoreError::BadCursor(message) => ApiError::bad_cursor(message),
            StoreError::TenantClaimed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "tenant_claimed", e.to_string())
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<IntegrationsError> for ApiError {
    fn from(e: IntegrationsError) -> Self {
        match e {
            IntegrationsError::Invalid(invalid) => ApiError::invalid(&invalid),
            IntegrationsError::NotFound(id) => ApiError::integration_not_found(&id),
            IntegrationsError::Disconnected(id) => ApiError::new(
                StatusCode::CONFLICT,
                "integration_disconnected",
                format!(
                    "integration {id} is disconnected; its history stays readable, and connecting the tenant again creates a new integration"
                ),
            ),
            IntegrationsError::NeverSynced(id) => ApiError::new(
                StatusCode::CONFLICT,
                "not_synced",
                format!(
                    "integration {id} has no completed sync yet; wait for the first sync or start one with POST /integrations/{id}/sync"
                ),
            ),
            IntegrationsError::SyncRefused { id, reason } => sync_refused(&id, &reason),
            IntegrationsError::BadCursor(message) => ApiError::bad_cursor(message),
            IntegrationsError::Connect(e) => connect_error(e),
            IntegrationsError::Store(e) => ApiError::from(e),
            IntegrationsError::Secrets(e) => ApiError::internal(&e),
            IntegrationsError::Trigger(e) => ApiError::internal(&e),
            IntegrationsError::Reclaim(e) => ApiError::from(e),
        }
    }
}

fn sync_refused(id: &impl std::fmt::Display, reason: &SyncRefusal) -> ApiError {
    let (code, what_to_do) = match reason {
        SyncRefusal::Running { .. } => (
            "sync_running",
            "try again when it has finished (GET /integrations/{id}/tasks shows its progress)",
        ),
        SyncRefusal::Disabled => (
            "integration_disabled",
            "enable it first: PATCH /integrations/{id} with {\"enabled\": true}",
        ),
        SyncRefusal::Disconnected => (
            "integration_disconnected",
            "connect the tenant again (POST /integrations or POST /integrations/oauth)",
        ),
        SyncRefusal::NeedsReauth => (
            "needs_reauth",
            "authorize it again: POST /integrations/oauth with {\"provider\": ..., \"integration_id\": \"{id}\"} and open the start URL",
        ),
    };
    let what_to_do = what_to_do.replace("{id}", &id.to_string());
    ApiError::new(
        StatusCode::CONFLICT,
        code,
        format!("cannot sync integration {id}: {reason}; {what_to_do}"),
    )
}

fn connect_error(e: ConnectError) -> ApiError {
    match e {
        ConnectError::Invalid(invalid) => ApiError::invalid(&invalid),
        ConnectError::Credentials { .. } => {
            ApiError::bad_request("invalid_credentials", e.to_string())
        }
        ConnectError::WrongEnterprise { .. } => {
            ApiError::bad_request("wrong_enterprise", e.to_string()).with_field("enterprise_id")
        }
        ConnectError::MissingCapability { .. } => {
            ApiError::bad_request("missing_capability", e.to_string())
        }
        ConnectError::TenantClaimed { .. } => {
            ApiError::new(StatusCode::CONFLICT, "tenant_claimed", e.to_string())
        }
        ConnectError::Provider(p) => provider_error(p),
        ConnectError::Store(s) => ApiError::from(s),
        other => ApiError::internal(&other),
    }
}

/// What the provider answered while connecting: a refusal is the caller's to fix (400);
/// a provider that cannot be reached is a failure on the way (502), logged.
fn provider_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Auth { .. } => ApiError::bad_request("invalid_credentials", e.to_string()),
        ProviderError::Forbidden { .. }
        | ProviderError::NotFound { .. }
        | ProviderError::Rejected { .. } => {
            ApiError::bad_request("provider_refused", e.to_string())
        }
        ProviderError::RateLimited { .. }
        | ProviderError::Unavailable { .. }
        | ProviderError::Malformed { .. } => {
            tracing::error!(error = %e, "the provider failed while connecting");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                "the provider did not answer as expected; try again later",
            )
        }
        // Our own side (token handling) or anything newer: a failure, not bad input.
        other => ApiError::internal(&other),
    }
}

impl From<OAuthConnectError> for ApiError {
    fn from(e: OAuthConnectError) -> Self {
        match e {
            OAuthConnectError::Invalid(invalid) => ApiError::invalid(&invalid),
            OAuthConnectError::NotFound(id) => ApiError::integration_not_found(&id),
            // Anything else is a failure, not bad input (a store error keeps its own mapping).
            other => match other {
                OAuthConnectError::Store(s) => ApiError::from(s),
                other => ApiError::internal(&other),
            },
        }
    }
}

impl ApiError {
    pub fn reclamation_not_found(id: &impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "reclamation_not_found",
            format!("reclamation {id} not found"),
        )
    }

    pub fn integration_missing(id: &impl std::fmt::Display) -> Self {
        Self::integration_not_found(id)
    }

    /// The workflow engine failed or refused: logged, answered 503 with what is known.
    pub fn workflow(error: &WorkflowError, what: &str) -> Self {
        tracing::error!(error = %error, chain = %chain(error), "the workflow call failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "workflow_unavailable",
            format!("{what}; try again later (the details are in the service's log)"),
        )
    }
}

impl From<ReclaimError> for ApiError {
    fn from(e: ReclaimError) -> Self {
        let conflict =
            |code, e: &ReclaimError| ApiError::new(StatusCode::CONFLICT, code, e.to_string());
        match e {
            ReclaimError::NotFound(ref what) if what.starts_with("reclaim job") => ApiError::new(
                StatusCode::NOT_FOUND,
                "reclamation_not_found",
                e.to_string(),
            ),
            ReclaimError::NotFound(ref what) if what.starts_with("integration") => ApiError::new(
                StatusCode::NOT_FOUND,
                "integration_not_found",
                e.to_string(),
            ),
            ReclaimError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            // The request cannot be valid as it is (at start: the policy against the
            // integration's guard-rails; the start handler names the field).
            ReclaimError::Invalid(_) => ApiError::bad_request("invalid_request", e.to_string()),
            ReclaimError::NotEligible(_) => conflict("reclaim_not_eligible", &e),
            ReclaimError::Busy { .. } => conflict("reclaim_running", &e),
            ReclaimError::AccountLocked { .. } => conflict("account_locked", &e),
            ReclaimError::SyncRunning(_) => conflict("sync_running", &e),
            ReclaimError::Refused { ref reason, .. } => match reason {
                JobChangeRefused::Approval(ApprovalRefused::SelfApproval) => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "self_approval_refused",
                    e.to_string(),
                ),
                JobChangeRefused::Approval(ApprovalRefused::NotAPerson) => {
                    ApiError::new(StatusCode::FORBIDDEN, "approval_refused", e.to_string())
                }
                JobChangeRefused::Approval(_) => conflict("not_awaiting_approval", &e),
                _ => conflict("reclamation_state_conflict", &e),
            },
            ReclaimError::Provider(p) => provider_error(p),
            ReclaimError::Source(SourceError::NeedsReauth(_)) => conflict("needs_reauth", &e),
            ReclaimError::Source(other) => ApiError::internal(&other),
            ReclaimError::Store(s) => ApiError::from(s),
        }
    }
}
