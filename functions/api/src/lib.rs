//! Seatkeeper's JSON HTTP API (issue 3): integrations, license information, accounts,
//! snapshots, task runs, the audit trail and on-demand syncs; and (issue 4) reclamations:
//! starting, watching, approving, rejecting, cancelling and restoring reclaim jobs.
//!
//! [`router`] is one axum `Router` that runs both in Lambda (`lambda_http::run`, API Gateway
//! HTTP API v2 events, `AWS_IAM` authorised) and inside `seatkeeper serve`, which adds its
//! own Host and bearer-token checks and puts an [`Actor`](seatkeeper_shared::domain::Actor)
//! into each request's extensions.
//!
//! Every answer other than a success is `{"error": {"code", "message"}}` with a 4xx (bad
//! input, never a panic) or, for a failed backend only, a 5xx with a generic message.
//! The routes are in [`routes::ROUTES`] and documented in `openapi.json` (served at
//! `/openapi.json`); a test holds the three together.

mod cursor;
mod error;
mod extract;
mod handlers;
mod reclaim;
pub mod routes;
mod views;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use seatkeeper_shared::services::ServiceContext;

pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The API's router over the services in `ctx`.
pub fn router(ctx: ServiceContext) -> Router {
    use handlers as h;
    use reclaim as r;
    let api = Router::new()
        .route(
            routes::INTEGRATIONS,
            get(h::list_integrations).post(h::connect),
        )
        .route(routes::INTEGRATIONS_OAUTH, post(h::oauth_ticket))
        .route(
            routes::INTEGRATION,
            get(h::get_integration)
                .patch(h::patch_integration)
                .delete(h::delete_integration),
        )
        .route(routes::LICENSES, get(h::licenses))
        .route(routes::ACCOUNTS, get(h::accounts))
        .route(routes::SNAPSHOTS, get(h::snapshots))
        .route(routes::TASKS, get(h::tasks))
        .route(routes::AUDIT, get(h::audit))
        .route(routes::SYNC, post(h::sync))
        .route(
            routes::RECLAMATIONS,
            get(r::list_reclamations).post(r::start_reclamation),
        )
        .route(routes::RECLAMATION, get(r::get_reclamation))
        .route(routes::RECLAMATION_ACCOUNTS, get(r::reclamation_accounts))
        .route(routes::RECLAMATION_APPROVE, post(r::approve))
        .route(routes::RECLAMATION_REJECT, post(r::reject))
        .route(routes::RECLAMATION_CANCEL, post(r::cancel))
        .route(routes::RECLAMATION_RESTORE, post(r::restore))
        // Only matched routes need a caller: an unknown route is a 404 for anyone.
        .route_layer(middleware::from_fn(extract::require_caller));
    Router::new()
        .route(routes::OPENAPI, get(h::openapi))
        .merge(api)
        .fallback(h::route_not_found)
        // After every route is in: it is set on each route's method router.
        .method_not_allowed_fallback(h::method_not_allowed)
        .with_state(ctx)
}
