//! `/_sim/*`: control of a simulator running in another process (benchmarks, the demo).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::boxsim::faults::Faults;
use crate::boxsim::state::{lock, read};
use crate::boxsim::stats::{OAuthStats, SimStats};
use crate::boxsim::tenant::UserKind;

pub(crate) async fn stats(State(shared): AppState) -> Json<SimStats> {
    Json(lock(&shared.stats).clone())
}

pub(crate) async fn faults(State(shared): AppState) -> Json<Faults> {
    Json(lock(&shared.faults).faults().clone())
}

pub(crate) async fn set_faults(
    State(shared): AppState,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    lock(&shared.faults).set(faults.clone());
    Json(faults)
}

pub(crate) async fn info(State(shared): AppState) -> Json<Value> {
    let tenant = read(&shared.tenant);
    let existing = || tenant.users.iter().filter(|user| !user.removed);
    let managed = existing()
        .filter(|user| user.kind == UserKind::Managed)
        .count();
    let app_users = existing()
        .filter(|user| user.kind == UserKind::AppUser)
        .count();
    Json(json!({
        "enterprise_id": shared.app.enterprise_id,
        "client_id": shared.app.client_id,
        "client_secret": shared.app.client_secret,
        "service_account_id": tenant.users[tenant.service_account].id.to_string(),
        "admin_user_id": tenant.users[tenant.admin()].id.to_string(),
        "users": existing().count(),
        "managed_users": managed,
        "app_users": app_users,
        "events": tenant.events.len(),
    }))
}

pub(crate) async fn oauth_stats(State(shared): AppState) -> Json<OAuthStats> {
    Json(lock(&shared.oauth).stats.clone())
}

/// See [`crate::SimHandle::revoke_refresh_tokens`].
pub(crate) async fn revoke_refresh_tokens(State(shared): AppState) -> StatusCode {
    lock(&shared.oauth).revoke_all_refresh_tokens();
    StatusCode::NO_CONTENT
}
