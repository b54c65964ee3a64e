//! Counts of the Box API traffic served (the `/_sim/*` control plane is not counted).

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::faults::Fault;

/// `total` counts every Box API request, including faulted ones; `token`, `users_pages`,
/// `events_pages`, `user_updates`, `user_deletes`, `transfers`, `memberships_pages` and
/// `other` split it by endpoint; the rest count outcomes and request features.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimStats {
    pub total: u64,
    pub token: u64,
    /// `GET /2.0/users` listings (not `/users/me` or `/users/{id}`).
    pub users_pages: u64,
    pub events_pages: u64,
    pub other: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub dropped: u64,
    /// 401 answers (missing, unknown or expired tokens).
    pub unauthorized: u64,
    /// `PUT /2.0/users/{id}`.
    pub user_updates: u64,
    /// `DELETE /2.0/users/{id}`.
    pub user_deletes: u64,
    /// `PUT /2.0/users/{id}/folders/0`.
    pub transfers: u64,
    /// `GET /2.0/users/{id}/memberships`.
    pub memberships_pages: u64,
    /// `DELETE /2.0/users/{id}` requests carrying `force` with any value but `false`/`0`,
    /// whatever their outcome (faulted ones included): a client must never send it.
    pub force_deletes: u64,
    /// Requests carrying an `As-User` header.
    pub as_user_requests: u64,
    /// Transfers answered before their items moved (`transfer_early_return_ratio`).
    pub transfers_returned_early: u64,
    /// Successful user writes whose response was dropped (`write_lost_response_ratio`).
    pub write_responses_lost: u64,
}

/// The user write endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// `PUT /2.0/users/{id}`
    UpdateUser,
    /// `DELETE /2.0/users/{id}`
    DeleteUser,
    /// `PUT /2.0/users/{id}/folders/0`
    TransferContent,
}

/// One user write request as received, in order, whatever its outcome: lets a test prove
/// that an account was never written to, not merely never changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserWrite {
    pub kind: WriteKind,
    /// The `{id}` of the path, as sent.
    pub user_id: String,
    /// The HTTP status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// Whether the request carried `force` (deletes only).
    pub force: bool,
}

/// Outcomes of the OAuth 2.0 flows, apart from [`SimStats`] so that its totals stay as they
/// were before the authorization-code flow existed. Faulted requests never reach these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthStats {
    /// Authorize requests approved (each issued a code).
    pub authorizations_approved: u64,
    /// Authorize requests denied with `sim_decision=deny`.
    pub authorizations_denied: u64,
    /// Tokens issued by `grant_type=client_credentials`.
    pub client_credentials_grants: u64,
    /// Tokens issued by `grant_type=authorization_code`.
    pub authorization_code_grants: u64,
    /// Tokens issued by `grant_type=refresh_token`, including those whose response was lost.
    pub refresh_token_grants: u64,
    /// Rotated refresh tokens whose response was lost (`refresh_lost_response_ratio`).
    pub refresh_responses_lost: u64,
    /// Code exchanges and refreshes refused with `invalid_grant`.
    pub invalid_grants: u64,
    /// Revoke requests that named a live token.
    pub revocations: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token,
    UsersPage,
    EventsPage,
    UserUpdate,
    UserDelete,
    Transfer,
    MembershipsPage,
    Other,
}

impl Endpoint {
    pub(crate) fn of(path: &str) -> Self {
        match path {
            "/oauth2/token" => Self::Token,
            "/2.0/users" => Self::UsersPage,
            "/2.0/events" => Self::EventsPage,
            _ => Self::Other,
        }
    }

    /// [`Self::of`], telling apart the per-user endpoints that share a path by method.
    pub(crate) fn of_request(method: &Method, path: &str) -> Self {
        let Some(rest) = path.strip_prefix("/2.0/users/") else {
            return Self::of(path);
        };
        let mut segments = rest.split('/');
        let user = segments.next().unwrap_or_default();
        if user.is_empty() || user == "me" {
            return Self::Other;
        }
        match (method, segments.next(), segments.next(), segments.next()) {
            (&Method::PUT, None, _, _) => Self::UserUpdate,
            (&Method::DELETE, None, _, _) => Self::UserDelete,
            (&Method::PUT, Some("folders"), Some("0"), None) => Self::Transfer,
            (&Method::GET, Some("memberships"), None, _) => Self::MembershipsPage,
            _ => Self::Other,
        }
    }

    /// The write this endpoint is, if any.
    pub(crate) fn write_kind(self) -> Option<WriteKind> {
        match self {
            Self::UserUpdate => Some(WriteKind::UpdateUser),
            Self::UserDelete => Some(WriteKind::DeleteUser),
            Self::Transfer => Some(WriteKind::TransferContent),
            _ => None,
        }
    }
}

impl SimStats {
    pub(crate) fn record(&mut self, endpoint: Endpoint, fault: Option<Fault>, status: StatusCode) {
        self.total += 1;
        match endpoint {
            Endpoint::Token => self.token += 1,
            Endpoint::UsersPage => self.users_pages += 1,
            Endpoint::EventsPage => self.events_pages += 1,
            Endpoint::UserUpdate => self.user_updates += 1,
            Endpoint::UserDelete => self.user_deletes += 1,
            Endpoint::Transfer => self.transfers += 1,
            Endpoint::MembershipsPage => self.memberships_pages += 1,
            Endpoint::Other => self.other += 1,
        }
        match fault {
            Some(Fault::DropConnection) => self.dropped += 1,
            Some(Fault::ServerError) => self.server_errors += 1,
            Some(Fault::RateLimit { .. }) => self.rate_limited += 1,
            None if status == StatusCode::UNAUTHORIZED => self.unauthorized += 1,
            None => {}
        }
    }
}
