//! `/_sim/*` control of the reclaim-related state, for a simulator in another process: the
//! app's scopes, user edits, user-stream events, owned content and the write log. The same
//! operations exist on [`crate::SimHandle`].

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::boxsim::state::{AppScopes, lock, write};
use crate::boxsim::stats::UserWrite;

/// Tenant-wide content figures.
#[derive(Debug, Serialize)]
pub(crate) struct Content {
    owned_items_total: u64,
    items_destroyed: u64,
    pending_transfers: usize,
}

pub(crate) async fn content(State(shared): AppState) -> Json<Content> {
    let mut tenant = write(&shared.tenant);
    tenant.settle_transfers(Instant::now(), false);
    Json(Content {
        owned_items_total: tenant.owned_items_total(),
        items_destroyed: tenant.items_destroyed,
        pending_transfers: tenant.pending_transfer_count(),
    })
}

pub(crate) async fn scopes(State(shared): AppState) -> Json<AppScopes> {
    Json(lock(&shared.scopes).clone())
}

pub(crate) async fn set_scopes(
    State(shared): AppState,
    Json(scopes): Json<AppScopes>,
) -> Json<AppScopes> {
    *lock(&shared.scopes) = scopes.clone();
    Json(scopes)
}

pub(crate) async fn writes(State(shared): AppState) -> Json<Vec<UserWrite>> {
    Json(lock(&shared.writes).clone())
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserEdit {
    status: Option<String>,
    role: Option<String>,
    owned_items: Option<u64>,
}

/// 204, or 404 when a field names a user (or role) the tenant cannot take.
pub(crate) async fn edit_user(
    State(shared): AppState,
    Path(user_id): Path<String>,
    edit: Result<Json<UserEdit>, JsonRejection>,
) -> StatusCode {
    let Ok(Json(edit)) = edit else {
        return StatusCode::BAD_REQUEST;
    };
    let now = Utc::now().timestamp();
    let mut tenant = write(&shared.tenant);
    let exists = tenant.user_index(&user_id).is_some();
    let applied = exists
        && edit
            .status
            .is_none_or(|status| tenant.set_status(&user_id, &status, now))
        && edit
            .role
            .is_none_or(|role| tenant.set_role(&user_id, &role, now))
        && edit
            .owned_items
            .is_none_or(|items| tenant.set_owned_items(&user_id, items));
    if applied {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewUserEvent {
    event_type: String,
    at: DateTime<Utc>,
}

pub(crate) async fn add_user_event(
    State(shared): AppState,
    Path(user_id): Path<String>,
    event: Result<Json<NewUserEvent>, JsonRejection>,
) -> StatusCode {
    let Ok(Json(event)) = event else {
        return StatusCode::BAD_REQUEST;
    };
    let mut tenant = write(&shared.tenant);
    match tenant.user_index(&user_id) {
        Some(index) => {
            tenant.add_user_event(index, event.event_type, event.at.timestamp());
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}
