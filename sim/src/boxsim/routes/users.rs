//! `GET /2.0/users` (marker and offset paging), `/2.0/users/me`, `/2.0/users/{user_id}`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::access::{Scope, acting_user, require_scope};
use super::{AppState, authenticate, parse_number};
use crate::boxsim::errors::BoxError;
use crate::boxsim::faults::RosterDrop;
use crate::boxsim::render::{self, FieldSelection};
use crate::boxsim::state::{Shared, lock, read};
use crate::boxsim::tenant::{User, UserKind};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
const MAX_OFFSET: i64 = 10_000;
const MARKER_PREFIX: &str = "mk";
/// Markers are scrambled so that a client cannot mistake them for ids or counts.
const MARKER_KEY: u64 = 0x5ea7_6eef_0b0c_5eed;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsersQuery {
    filter_term: Option<String>,
    user_type: Option<String>,
    external_app_user_id: Option<String>,
    fields: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
    usemarker: Option<String>,
    marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FieldsQuery {
    fields: Option<String>,
}

fn encode_marker(user_id: u64) -> String {
    format!("{MARKER_PREFIX}{:x}", user_id ^ MARKER_KEY)
}

fn decode_marker(marker: &str) -> Option<u64> {
    let hex = marker.strip_prefix(MARKER_PREFIX)?;
    u64::from_str_radix(hex, 16)
        .ok()
        .map(|raw| raw ^ MARKER_KEY)
}

/// Who the app may see: with only "App Access", its service account and app users.
pub(super) fn reachable(shared: &Shared, user: &User) -> bool {
    !user.removed && (shared.app.enterprise_access || user.kind != UserKind::Managed)
}

/// The listing's filters, decided once per request.
struct Listing {
    /// `user_type=external` (or an `external_app_user_id` nobody has) matches no one here:
    /// the tenant has no external users.
    matches_nobody: bool,
    filter_term: Option<String>,
    roster: RosterDrop,
}

impl Listing {
    fn includes(&self, shared: &Shared, user: &User) -> bool {
        !self.matches_nobody
            && reachable(shared, user)
            && !self.roster.hides(user.id)
            && self.filter_term.as_deref().is_none_or(|term| {
                starts_with_ignore_case(&user.name, term)
                    || starts_with_ignore_case(&user.login, term)
            })
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_true(flag: Option<&str>) -> bool {
    matches!(flag.map(str::trim), Some("true" | "1"))
}

pub(crate) async fn list(
    State(shared): AppState,
    headers: HeaderMap,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<Value>, BoxError> {
    authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::ManageUsers)?;
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
    let limit = limit as usize;
    let matches_nobody = match query.user_type.as_deref() {
        None | Some("all" | "managed") => query.external_app_user_id.is_some(),
        Some("external") => true,
        Some(other) => {
            return Err(BoxError::bad_request(
                "bad_request",
                format!("Invalid value '{other}' for query parameter 'user_type'"),
            ));
        }
    };
    let listing = Listing {
        matches_nobody,
        filter_term: query.filter_term.filter(|term| !term.is_empty()),
        roster: lock(&shared.faults).roster(),
    };
    let fields = FieldSelection::from_query(query.fields.as_deref());

    if is_true(query.usemarker.as_deref()) {
        marker_page(&shared, &listing, &fields, limit, query.marker.as_deref())
    } else {
        if query.marker.is_some() {
            return Err(BoxError::bad_request(
                "bad_request",
                "'marker' requires 'usemarker=true'",
            ));
        }
        let offset =
            parse_number(query.offset.as_deref(), "invalid_offset", "offset")?.unwrap_or(0);
        if !(0..=MAX_OFFSET).contains(&offset) {
            return Err(BoxError::bad_request(
                "invalid_offset",
                format!(
                    "Invalid value '{offset}'. 'offset' must be between 0 and {MAX_OFFSET}; use marker-based pagination"
                ),
            ));
        }
        Ok(offset_page(
            &shared,
            &listing,
            &fields,
            limit,
            offset as usize,
        ))
    }
}

fn marker_page(
    shared: &Shared,
    listing: &Listing,
    fields: &FieldSelection,
    limit: usize,
    marker: Option<&str>,
) -> Result<Json<Value>, BoxError> {
    let tenant = read(&shared.tenant);
    let start = match marker.filter(|marker| !marker.is_empty()) {
        None => 0,
        Some(marker) => {
            let from_id = decode_marker(marker).ok_or_else(|| {
                BoxError::bad_request("bad_request", "Invalid value for 'marker'")
            })?;
            tenant.users.partition_point(|user| user.id < from_id)
        }
    };
    let mut entries = Vec::with_capacity(limit);
    let mut next_marker = None;
    for user in tenant.users[start..]
        .iter()
        .filter(|user| listing.includes(shared, user))
    {
        if entries.len() == limit {
            next_marker = Some(encode_marker(user.id));
            break;
        }
        entries.push(render::user(user, &tenant.enterprise, fields));
    }
    Ok(Json(json!({
        "entries": entries,
        "limit": limit,
        "next_marker": next_marker,
    })))
}

fn offset_page(
    shared: &Shared,
    listing: &Listing,
    fields: &FieldSelection,
    limit: usize,
    offset: usize,
) -> Json<Value> {
    let tenant = read(&shared.tenant);
    let mut total_count = 0usize;
    let mut entries = Vec::with_capacity(limit);
    for user in tenant
        .users
        .iter()
        .filter(|user| listing.includes(shared, user))
    {
        if (offset..offset + limit).contains(&total_count) {
            entries.push(render::user(user, &tenant.enterprise, fields));
        }
        total_count += 1;
    }
    Json(json!({
        "total_count": total_count,
        "entries": entries,
        "offset": offset,
        "limit": limit,
        "order": [{ "by": "id", "direction": "ASC" }],
    }))
}

fn fields_of(
    query: Result<Query<FieldsQuery>, QueryRejection>,
) -> Result<FieldSelection, BoxError> {
    let Query(query) =
        query.map_err(|rejection| BoxError::bad_request("bad_request", rejection.body_text()))?;
    Ok(FieldSelection::from_query(query.fields.as_deref()))
}

pub(crate) async fn me(
    State(shared): AppState,
    headers: HeaderMap,
    query: Result<Query<FieldsQuery>, QueryRejection>,
) -> Result<Json<Value>, BoxError> {
    let caller = authenticate(&shared, &headers)?;
    let fields = fields_of(query)?;
    let tenant = read(&shared.tenant);
    // `As-User` makes `/users/me` the impersonated user, as on Box.
    let index = acting_user(&shared, &tenant, &headers, caller)?;
    let user = tenant.users.get(index).ok_or_else(BoxError::not_found)?;
    Ok(Json(render::user(user, &tenant.enterprise, &fields)))
}

pub(crate) async fn get_one(
    State(shared): AppState,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    query: Result<Query<FieldsQuery>, QueryRejection>,
) -> Result<Json<Value>, BoxError> {
    authenticate(&shared, &headers)?;
    require_scope(&shared, Scope::ManageUsers)?;
    let fields = fields_of(query)?;
    let tenant = read(&shared.tenant);
    let user = tenant
        .user_index(&user_id)
        .map(|index| &tenant.users[index])
        .filter(|user| reachable(&shared, user))
        .ok_or_else(BoxError::not_found)?;
    Ok(Json(render::user(user, &tenant.enterprise, &fields)))
}
