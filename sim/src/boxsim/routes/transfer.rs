//! `PUT /2.0/users/{user_id}/folders/0`: moves everything the user owns to another user,
//! into a new folder `"<login> - <name>'s Files and Folders"` in the destination's root.
//!
//! Needs the "Read and write all files and folders" scope (`root_readwrite`) and an
//! admin-like caller. Fault `transfer_early_return_ratio` answers 200 before the items move
//! (Box: transfers that outlast 10 minutes continue after the 200, with no way to see when
//! they end); the source keeps owning them, so a delete is refused, until the transfer is due.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{Scope, acting_user, may_manage, require_admin_caller, require_scope};
use super::user_writes::{json_object, maybe_lose_response, parse_flag};
use super::users::reachable;
use super::{AppState, authenticate};
use crate::boxsim::errors::BoxError;
use crate::boxsim::render::{UserMini, box_time};
use crate::boxsim::state::{lock, write};
use crate::boxsim::tenant::{Role, TransferTiming};

/// `fields` is accepted (unknown parameters are ignored) but the folder always has the same
/// fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TransferQuery {
    notify: Option<String>,
}

/// `owned_by.id`, as a string or a number.
fn destination_id(body: &serde_json::Map<String, Value>) -> Result<String, BoxError> {
    match body.get("owned_by").and_then(|owner| owner.get("id")) {
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        _ => Err(BoxError::bad_request(
            "bad_request",
            "Missing required field 'owned_by.id'",
        )),
    }
}

fn root_folder() -> Value {
    json!({
        "type": "folder",
        "id": "0",
        "sequence_id": null,
        "etag": null,
        "name": "All Files",
    })
}

pub(crate) async fn transfer(
    State(shared): AppState,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    query: Result<Query<TransferQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, BoxError> {
    let caller = authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::RootReadwrite)?;
    let Query(query) =
        query.map_err(|rejection| BoxError::bad_request("bad_request", rejection.body_text()))?;
    parse_flag(query.notify.as_deref(), "notify")?;
    let body = json_object(&body)?;
    let destination_id = destination_id(&body)?;

    // Lock order: the tenant, then the fault dice (nothing takes them the other way round).
    let mut tenant = write(&shared.tenant);
    // With `As-User` the impersonated (always regular) user is the one acting.
    let caller = acting_user(&shared, &tenant, &headers, caller)?;
    require_admin_caller(&tenant, caller)?;
    let find = |id: &str| {
        tenant
            .user_index(id)
            .filter(|&index| reachable(&shared, &tenant.users[index]))
            .ok_or_else(BoxError::not_found)
    };
    let source = find(&user_id)?;
    let destination = find(&destination_id)?;
    may_manage(&tenant, caller, source)?;
    // "Cannot transfer files from/to higher privileged accounts": co-admins only move
    // content to regular users or to themselves.
    let destination_is_privileged = tenant.users[destination].role != Role::User;
    if tenant.users[caller].role == Role::Coadmin
        && destination != caller
        && destination_is_privileged
    {
        return Err(BoxError::insufficient_permissions());
    }
    if source == destination {
        return Err(BoxError::bad_request(
            "bad_request",
            "The destination user must differ from the source user",
        ));
    }
    if tenant.users[destination].status != "active" {
        return Err(BoxError::bad_request(
            "bad_request",
            "The destination user must be active",
        ));
    }
    if tenant.transfer_pending_from(source) {
        return Err(BoxError::Api {
            status: StatusCode::CONFLICT,
            code: "operation_blocked_temporary",
            message: "A transfer of this user's content is still running; retry later".to_owned(),
        });
    }

    let timing = {
        let mut faults = lock(&shared.faults);
        if faults.transfer_returns_early() {
            let settings = faults.faults();
            TransferTiming::Later {
                ready_at: Instant::now() + Duration::from_millis(settings.transfer_completion_ms),
                requests: settings.transfer_completion_requests,
            }
        } else {
            TransferTiming::Immediate
        }
    };
    let folder_id = tenant.new_folder_id();
    tenant.start_transfer(source, destination, timing);

    let now = box_time(Utc::now().timestamp());
    let from = &tenant.users[source];
    let folder = json!({
        "type": "folder",
        "id": folder_id.to_string(),
        "sequence_id": "0",
        "etag": "0",
        "name": format!("{} - {}'s Files and Folders", from.login, from.name),
        "description": "",
        "created_at": now,
        "modified_at": now,
        "path_collection": { "total_count": 1, "entries": [root_folder()] },
        "created_by": UserMini::of(&tenant.users[caller]),
        "modified_by": UserMini::of(&tenant.users[caller]),
        "owned_by": UserMini::of(&tenant.users[destination]),
        "parent": root_folder(),
        "item_status": "active",
    });
    drop(tenant);
    if matches!(timing, TransferTiming::Later { .. }) {
        lock(&shared.stats).transfers_returned_early += 1;
    }
    Ok(maybe_lose_response(
        &shared,
        (StatusCode::OK, Json(folder)).into_response(),
    ))
}
