//! HTTP surface: the Box endpoints behind a front door that injects faults and counts
//! traffic, plus two routes that bypass it: the `/_sim/*` control plane, and the authorize
//! page, which is a browser redirect on another host (`account.box.com`) in production.

mod access;
mod authorize;
mod control;
mod control_tenant;
mod events;
mod memberships;
mod oauth;
mod observe;
mod own_stream;
mod token;
mod transfer;
mod user_writes;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::errors::BoxError;
use super::faults::Fault;
use super::server;
use super::state::{Shared, lock};

type AppState = State<Arc<Shared>>;

pub(crate) const AUTHORIZE_PATH: &str = "/api/oauth2/authorize";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth2/token", post(token::issue))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route(AUTHORIZE_PATH, get(authorize::authorize))
        .route("/2.0/users", get(users::list))
        .route("/2.0/users/me", get(users::me))
        .route(
            "/2.0/users/{user_id}",
            get(users::get_one)
                .put(user_writes::update)
                .delete(user_writes::delete),
        )
        .route("/2.0/users/{user_id}/folders/0", put(transfer::transfer))
        .route("/2.0/users/{user_id}/memberships", get(memberships::list))
        .route("/2.0/events", get(events::list))
        .route("/_sim/stats", get(control::stats))
        .route(
            "/_sim/faults",
            get(control::faults).put(control::set_faults),
        )
        .route("/_sim/info", get(control::info))
        .route("/_sim/oauth", get(control::oauth_stats))
        .route(
            "/_sim/oauth/revoke-refresh-tokens",
            post(control::revoke_refresh_tokens),
        )
        .route("/_sim/content", get(control_tenant::content))
        .route(
            "/_sim/scopes",
            get(control_tenant::scopes).put(control_tenant::set_scopes),
        )
        .route("/_sim/writes", get(control_tenant::writes))
        .route("/_sim/users/{user_id}", put(control_tenant::edit_user))
        .route(
            "/_sim/users/{user_id}/events",
            post(control_tenant::add_user_event),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            front_door,
        ))
        .with_state(shared)
}

async fn front_door(State(shared): AppState, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/_sim/") || path == AUTHORIZE_PATH {
        return next.run(request).await;
    }
    let observed = observe::observe(&request);
    observe::settle_transfers(&shared);
    let fault = lock(&shared.faults).roll();
    let response = match fault {
        Some(Fault::DropConnection) => server::dropped_connection(),
        Some(Fault::ServerError) => BoxError::internal().into_response(),
        Some(Fault::RateLimit { retry_after_secs }) => {
            BoxError::RateLimited { retry_after_secs }.into_response()
        }
        None => next.run(request).await,
    };
    // A handler may drop the connection itself, after doing its work (a lost refresh response).
    let fault = fault.or_else(|| server::is_dropped(&response).then_some(Fault::DropConnection));
    observe::record(&shared, observed, fault, response.status());
    response
}

async fn not_found() -> BoxError {
    BoxError::not_found()
}

/// The user (tenant index) the bearer token acts as; counts one use of the token.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<usize, BoxError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(BoxError::Unauthorized)?;
    let max_uses = lock(&shared.faults).faults().token_lifetime_requests;
    lock(&shared.tokens)
        .authenticate(token, max_uses)
        .ok_or(BoxError::Unauthorized)
}

/// Box takes numbers as query strings; parse them here so that bad values get Box's
/// error codes rather than the framework's.
fn parse_number(
    value: Option<&str>,
    code: &'static str,
    name: &str,
) -> Result<Option<i64>, BoxError> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            BoxError::bad_request(
                code,
                format!("Invalid value '{value}' for query parameter '{name}'"),
            )
        }),
    }
}
