//! `GET /2.0/events`: the enterprise `admin_logs` stream, which here holds LOGIN events, and
//! with `As-User` the impersonated user's own stream ([`super::own_stream`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::access::{Scope, acting_user, require_scope};
use super::{AppState, authenticate, own_stream, parse_number};
use crate::boxsim::errors::BoxError;
use crate::boxsim::render::{self, EventJson};
use crate::boxsim::state::read;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    stream_type: Option<String>,
    stream_position: Option<String>,
    limit: Option<String>,
    event_type: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

pub(super) enum Position {
    Start,
    Now,
    After(u64),
}

fn parse_position(position: Option<&str>) -> Result<Position, BoxError> {
    match position.map(str::trim) {
        None | Some("" | "0") => Ok(Position::Start),
        Some("now") => Ok(Position::Now),
        Some(position) => position.parse().map(Position::After).map_err(|_| {
            BoxError::bad_request(
                "invalid_request_parameters",
                format!("Invalid value '{position}' for query parameter 'stream_position'"),
            )
        }),
    }
}

fn parse_time(value: Option<&str>, name: &str) -> Result<Option<i64>, BoxError> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| {
            DateTime::parse_from_rfc3339(value)
                .map(|time| time.timestamp())
                .map_err(|_| {
                    BoxError::bad_request(
                        "invalid_request_parameters",
                        format!("Invalid value '{value}' for query parameter '{name}'"),
                    )
                })
        })
        .transpose()
}

#[derive(Serialize)]
struct EventsPage<'a> {
    chunk_size: usize,
    /// Always a string: positions exceed 2^53.
    next_stream_position: String,
    entries: Vec<EventJson<'a>>,
}

/// Serialised here, while the tenant is still borrowed by the entries.
fn page(entries: Vec<EventJson<'_>>, next_stream_position: String) -> Result<Response, BoxError> {
    let page = EventsPage {
        chunk_size: entries.len(),
        next_stream_position,
        entries,
    };
    let body = serde_json::to_vec(&page).map_err(|err| {
        tracing::error!(error = %err, "cannot serialise an events page");
        BoxError::internal()
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub(crate) async fn list(
    State(shared): AppState,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, BoxError> {
    let caller = authenticate(&shared, &headers)?;
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
    let position = parse_position(query.stream_position.as_deref())?;
    let echo = query
        .stream_position
        .clone()
        .unwrap_or_else(|| "0".to_owned());

    let (acting, service_account) = {
        let tenant = read(&shared.tenant);
        let acting = acting_user(&shared, &tenant, &headers, caller)?;
        (acting, tenant.service_account)
    };
    // Box honours the date filters only on `admin_logs`, never on the streaming variant.
    let dated = match query.stream_type.as_deref().unwrap_or("all") {
        // Impersonated users are never admins, so the enterprise log is not theirs to read.
        "admin_logs" | "admin_logs_streaming" if acting != caller => {
            return Err(BoxError::insufficient_permissions());
        }
        "admin_logs" => true,
        "admin_logs_streaming" => false,
        // A user's own stream: the impersonated user's, or that of the user an OAuth token
        // acts for.
        "all" | "changes" if acting != service_account => {
            return own_stream::page(&shared, acting, position, limit, echo);
        }
        // The service account's own user stream: nothing happens in it.
        "all" | "changes" | "sync" => return page(Vec::new(), echo),
        other => {
            return Err(BoxError::bad_request(
                "invalid_request_parameters",
                format!("Invalid value '{other}' for query parameter 'stream_type'"),
            ));
        }
    };
    // Box has answered this with `access_denied_insufficient_permissions` rather than
    // `insufficient_scope`; clients of the enterprise log already expect that code.
    if require_scope(&shared, Scope::ManageEnterpriseProperties).is_err() {
        return Err(BoxError::insufficient_permissions());
    }
    let created_after =
        parse_time(query.created_after.as_deref(), "created_after")?.filter(|_| dated);
    let created_before =
        parse_time(query.created_before.as_deref(), "created_before")?.filter(|_| dated);
    let wants_logins = query.event_type.as_deref().is_none_or(|types| {
        types
            .split(',')
            .any(|event_type| event_type.trim().eq_ignore_ascii_case("LOGIN"))
    });

    let tenant = read(&shared.tenant);
    let events = &tenant.events;
    let mut start = match position {
        Position::Now => {
            let latest = events.last().map_or(0, |event| event.position());
            return page(Vec::new(), latest.to_string());
        }
        Position::Start => 0,
        Position::After(seen) => events.partition_point(|event| event.position() <= seen),
    };
    if let Some(after) = created_after {
        start = start.max(events.partition_point(|event| event.at < after));
    }
    let end = created_before.map_or(events.len(), |before| {
        events.partition_point(|event| event.at <= before)
    });
    let end = if wants_logins {
        end.min(start.saturating_add(limit))
    } else {
        start
    };
    let chunk = events.get(start..end).unwrap_or_default();
    // An exhausted stream answers an empty page and the position it was given.
    let next_stream_position = chunk
        .last()
        .map_or(echo, |event| event.position().to_string());
    let entries = chunk
        .iter()
        .map(|event| {
            render::login_event(event, &tenant.users[event.user as usize], tenant.event_salt)
        })
        .collect();
    page(entries, next_stream_position)
}
