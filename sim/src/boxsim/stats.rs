//! Counts of the Box API traffic served (the `/_sim/*` control plane is not counted).

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::faults::Fault;

/// `total` counts every Box API request, including faulted ones; `token`, `users_pages`,
/// `events_pages` and `other` split it by endpoint; the rest count outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl SimStats {
    pub(crate) fn record(&mut self, endpoint: Endpoint, fault: Option<Fault>, status: StatusCode) {
        self.total += 1;
        match endpoint {
            Endpoint::Token => self.token += 1,
            Endpoint::UsersPage => self.users_pages += 1,
            Endpoint::EventsPage => self.events_pages += 1,
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
