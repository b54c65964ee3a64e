//! `GET /2.0/users/{user_id}/memberships`: the user's groups, offset-paged (no `fields`).
//!
//! Needs the `manage_groups` scope; an admin-like caller or the user themselves. Faults
//! `memberships_forbidden_ratio` / `memberships_forbidden_users` answer 403 for chosen users,
//! so "cannot read the groups: skip the account" can be tested.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{Scope, acting_user, require_admin_caller, require_scope};
use super::users::reachable;
use super::{AppState, authenticate, parse_number};
use crate::boxsim::errors::BoxError;
use crate::boxsim::render::{UserMini, box_time};
use crate::boxsim::state::{lock, read};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
const MAX_OFFSET: i64 = 10_000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MembershipsQuery {
    limit: Option<String>,
    offset: Option<String>,
}

pub(crate) async fn list(
    State(shared): AppState,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    query: Result<Query<MembershipsQuery>, QueryRejection>,
) -> Result<Json<Value>, BoxError> {
    let caller = authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::ManageGroups)?;
    let Query(query) =
        query.map_err(|rejection| BoxError::bad_request("bad_request", rejection.body_text()))?;
    let limit =
        parse_number(query.limit.as_deref(), "invalid_limit", "limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(BoxError::bad_request(
            "invalid_limit",
            format!("Invalid value '{limit}'. 'limit' must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let offset = parse_number(query.offset.as_deref(), "invalid_offset", "offset")?.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(BoxError::bad_request(
            "invalid_offset",
            format!("Invalid value '{offset}'. 'offset' must be between 0 and {MAX_OFFSET}"),
        ));
    }
    let (limit, offset) = (limit as usize, offset as usize);

    // Lock order: the tenant, then the fault dice.
    let tenant = read(&shared.tenant);
    let caller = acting_user(&shared, &tenant, &headers, caller)?;
    let target = tenant
        .user_index(&user_id)
        .filter(|&index| reachable(&shared, &tenant.users[index]))
        .ok_or_else(BoxError::not_found)?;
    if caller != target {
        require_admin_caller(&tenant, caller)?;
    }
    let user = &tenant.users[target];
    if lock(&shared.faults).memberships_forbidden(user.id) {
        return Err(BoxError::insufficient_permissions());
    }
    let memberships = tenant.memberships_of(target);
    let entries: Vec<Value> = memberships
        .iter()
        .skip(offset)
        .take(limit)
        .map(|membership| {
            let group = &tenant.groups[membership.group as usize];
            json!({
                "type": "group_membership",
                "id": membership.id.to_string(),
                "user": UserMini::of(user),
                "group": {
                    "type": "group",
                    "id": group.id.to_string(),
                    "name": group.name,
                    "group_type": "managed_group",
                },
                "role": membership.role.as_str(),
                "created_at": box_time(membership.created_at),
                "modified_at": box_time(membership.created_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "total_count": memberships.len(),
        "entries": entries,
        "limit": limit,
        "offset": offset,
        "order": [{ "by": "id", "direction": "ASC" }],
    })))
}
