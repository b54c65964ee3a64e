//! `PUT /2.0/users/{user_id}` (update: deactivate, role, profile) and
//! `DELETE /2.0/users/{user_id}` (refused while the user owns content, unless `force`).
//!
//! Both need the "Manage users" scope and an admin-like caller; nobody but the primary admin
//! touches the primary admin, and co-admins cannot manage admins or other co-admins.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::access::{Scope, acting_user, may_manage, require_admin_caller, require_scope};
use super::users::reachable;
use super::{AppState, authenticate};
use crate::boxsim::errors::BoxError;
use crate::boxsim::render::{self, FieldSelection};
use crate::boxsim::server;
use crate::boxsim::state::{Shared, lock, write};
use crate::boxsim::tenant::{Role, UserKind};

/// Box's user statuses; the only values `status` takes.
const STATUSES: &[&str] = &[
    "active",
    "inactive",
    "cannot_delete_edit",
    "cannot_delete_edit_upload",
];

/// The simulator's choice: the reference names no code for this refusal (see
/// `docs/box-sim-contract.md`).
pub(crate) const OWNS_CONTENT_CODE: &str = "user_delete_failed_owns_content";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct WriteQuery {
    fields: Option<String>,
    notify: Option<String>,
    force: Option<String>,
}

fn query_of(query: Result<Query<WriteQuery>, QueryRejection>) -> Result<WriteQuery, BoxError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| BoxError::bad_request("bad_request", rejection.body_text()))
}

/// Box's boolean query parameters; anything else is a 400.
pub(super) fn parse_flag(value: Option<&str>, name: &str) -> Result<bool, BoxError> {
    match value.map(str::trim) {
        None | Some("") => Ok(false),
        Some(flag) if flag.eq_ignore_ascii_case("true") || flag == "1" => Ok(true),
        Some(flag) if flag.eq_ignore_ascii_case("false") || flag == "0" => Ok(false),
        Some(flag) => Err(BoxError::bad_request(
            "bad_request",
            format!("Invalid value '{flag}' for query parameter '{name}'"),
        )),
    }
}

/// A JSON object body, whatever the `Content-Type`.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, BoxError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(BoxError::bad_request(
            "bad_request",
            "The request body must be a JSON object",
        )),
    }
}

fn invalid(field: &str, why: &str) -> BoxError {
    BoxError::bad_request(
        "invalid_parameter",
        format!("Invalid value for '{field}': {why}"),
    )
}

/// Closes the connection unanswered after a successful write, when the dice say so.
pub(super) fn maybe_lose_response(shared: &Shared, response: Response) -> Response {
    if lock(&shared.faults).write_response_lost() {
        lock(&shared.stats).write_responses_lost += 1;
        server::dropped_connection()
    } else {
        response
    }
}

/// The changes a body asks for, validated before any is applied.
#[derive(Debug, Default)]
struct Changes {
    status: Option<&'static str>,
    role: Option<Role>,
    name: Option<String>,
    job_title: Option<String>,
    phone: Option<String>,
    space_amount: Option<i64>,
}

fn optional_text(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, BoxError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= max => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(invalid(field, &format!("at most {max} characters"))),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn parse_changes(body: &Map<String, Value>, enterprise_id: &str) -> Result<Changes, BoxError> {
    let status = match body.get("status") {
        None => None,
        Some(Value::String(status)) => Some(
            STATUSES
                .iter()
                .copied()
                .find(|known| known == status)
                .ok_or_else(|| invalid("status", "not a user status"))?,
        ),
        Some(_) => return Err(invalid("status", "must be a string")),
    };
    // `admin` is not settable: an enterprise has one primary admin.
    let role = match body.get("role") {
        None => None,
        Some(Value::String(role)) if role == "coadmin" => Some(Role::Coadmin),
        Some(Value::String(role)) if role == "user" => Some(Role::User),
        Some(_) => return Err(invalid("role", "must be 'coadmin' or 'user'")),
    };
    match body.get("notify") {
        None | Some(Value::Bool(_) | Value::Null) => {}
        Some(_) => return Err(invalid("notify", "must be a boolean")),
    }
    match body.get("enterprise") {
        None => {}
        Some(Value::String(id)) if id == enterprise_id => {}
        // `null` rolls the user out of the enterprise into a free account: not simulated,
        // and refused rather than ignored so that a client cannot think it happened.
        Some(Value::Null) => {
            return Err(BoxError::bad_request(
                "bad_request",
                "Rolling a user out of the enterprise is not supported by the simulator",
            ));
        }
        Some(_) => return Err(invalid("enterprise", "not this enterprise")),
    }
    let name = optional_text(body, "name", 50)?;
    if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        return Err(invalid("name", "must not be empty"));
    }
    let space_amount = match body.get("space_amount") {
        None => None,
        Some(value) => Some(
            value
                .as_i64()
                .filter(|amount| *amount >= -1)
                .ok_or_else(|| invalid("space_amount", "bytes, or -1 for unlimited"))?,
        ),
    };
    Ok(Changes {
        status,
        role,
        name,
        job_title: optional_text(body, "job_title", 100)?,
        phone: optional_text(body, "phone", 100)?,
        space_amount,
    })
}

pub(crate) async fn update(
    State(shared): AppState,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, BoxError> {
    let caller = authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::ManageUsers)?;
    let query = query_of(query)?;
    let body = json_object(&body)?;
    let changes = parse_changes(&body, &shared.app.enterprise_id)?;

    let mut tenant = write(&shared.tenant);
    // With `As-User` the impersonated (always regular) user is the one acting.
    let caller = acting_user(&shared, &tenant, &headers, caller)?;
    require_admin_caller(&tenant, caller)?;
    let target = tenant
        .user_index(&user_id)
        .filter(|&index| reachable(&shared, &tenant.users[index]))
        .ok_or_else(BoxError::not_found)?;
    may_manage(&tenant, caller, target)?;
    if let Some(role) = changes.role {
        // Only admins grant or take co-admin rights; the primary admin keeps its role.
        if tenant.users[caller].role != Role::Admin || target == tenant.admin() {
            return Err(BoxError::insufficient_permissions());
        }
        if tenant.users[target].kind != UserKind::Managed {
            return Err(invalid("role", "only managed users have a role"));
        }
        tenant.users[target].role = role;
    }
    let user = &mut tenant.users[target];
    if let Some(status) = changes.status {
        user.status = Cow::Borrowed(status);
    }
    if let Some(name) = changes.name {
        user.name = name;
    }
    if let Some(job_title) = changes.job_title {
        user.job_title = Cow::Owned(job_title);
    }
    if let Some(phone) = changes.phone {
        user.phone = phone;
    }
    if let Some(space_amount) = changes.space_amount {
        user.space_amount = space_amount;
    }
    user.modified_at = user.modified_at.max(Utc::now().timestamp());
    let fields = FieldSelection::from_query(query.fields.as_deref());
    let rendered = render::user(&tenant.users[target], &tenant.enterprise, &fields);
    drop(tenant);
    let response = (StatusCode::OK, axum::Json(rendered)).into_response();
    Ok(maybe_lose_response(&shared, response))
}

pub(crate) async fn delete(
    State(shared): AppState,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    query: Result<Query<WriteQuery>, QueryRejection>,
) -> Result<Response, BoxError> {
    let caller = authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::ManageUsers)?;
    let query = query_of(query)?;
    parse_flag(query.notify.as_deref(), "notify")?;
    let force = parse_flag(query.force.as_deref(), "force")?;

    let mut tenant = write(&shared.tenant);
    // With `As-User` the impersonated (always regular) user is the one acting.
    let caller = acting_user(&shared, &tenant, &headers, caller)?;
    require_admin_caller(&tenant, caller)?;
    let target = tenant
        .user_index(&user_id)
        .filter(|&index| reachable(&shared, &tenant.users[index]))
        .ok_or_else(BoxError::not_found)?;
    // The service account goes with its app, and nobody deletes the account they act as.
    if target == caller || target == tenant.service_account {
        return Err(BoxError::insufficient_permissions());
    }
    may_manage(&tenant, caller, target)?;
    let owns_content = tenant.users[target].owned_items > 0 || tenant.transfer_pending_from(target);
    if owns_content && !force {
        return Err(BoxError::bad_request(
            OWNS_CONTENT_CODE,
            "User cannot be deleted because they still own content. Transfer their owned \
             content first, or use 'force' to delete the user and their files",
        ));
    }
    tenant.delete_user(target);
    drop(tenant);
    Ok(maybe_lose_response(
        &shared,
        StatusCode::NO_CONTENT.into_response(),
    ))
}
