//! Thin handlers: parse the request, call one service function
//! (`seatkeeper_shared::services::integrations`, `oauth_connect`), map the result.

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use seatkeeper_shared::domain::{
    AccountKind, InactiveDays, InvalidInput, Provider, SeatPrice, TaskKind,
};
use seatkeeper_shared::services::ServiceContext;
use seatkeeper_shared::services::connect::BoxCcgConnect;
use seatkeeper_shared::services::integrations::{
    self, AccountFilter, AccountsCursor, GuardRailsChange, IntegrationsError, PageLimit,
    SettingsChange, SnapshotRange,
};
use seatkeeper_shared::services::oauth_connect::{self, OAuthTicketRequest};
use seatkeeper_shared::services::report::AccountRow;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::IntoDeserializer;

use crate::OPENAPI_JSON;
use crate::cursor::{self, AuditCursor};
use crate::error::ApiError;
use crate::extract::{Caller, IntegrationPath, JsonBody, QueryParams};
use crate::views::{
    AuditEntryView, ConnectBody, IntegrationView, ListView, OAuthBody, OAuthStartView, PageView,
    PatchBody, SnapshotsView, SyncStartedView, TaskKindView, TasksView,
};

type Ctx = State<ServiceContext>;

pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

pub async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

// ---------------------------------------------------------------------------------------
// Integrations

pub async fn list_integrations(
    State(ctx): Ctx,
) -> Result<Json<ListView<IntegrationView>>, ApiError> {
    let all = integrations::list_integrations(&ctx).await?;
    Ok(Json(ListView {
        items: all.iter().map(IntegrationView::from).collect(),
    }))
}

pub async fn connect(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<ConnectBody>,
) -> Result<Response, ApiError> {
    if body.provider != Provider::Box {
        return Err(unsupported_provider(body.provider));
    }
    let request = BoxCcgConnect {
        client_id: body.client_id,
        client_secret: body.client_secret,
        enterprise_id: body.enterprise_id,
        plan: body.plan,
        purchased_seats: body.seats,
        name: body.name,
    };
    let integration = integrations::connect_box_ccg(&ctx, request, &actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(IntegrationView::from(&integration)),
    )
        .into_response())
}

fn unsupported_provider(provider: Provider) -> ApiError {
    ApiError::bad_request(
        "unsupported_provider",
        format!("connecting {provider} with client credentials is not supported yet; use \"box\""),
    )
    .with_field("provider")
}

pub async fn oauth_ticket(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JsonBody(body): JsonBody<OAuthBody>,
) -> Result<Response, ApiError> {
    let request = OAuthTicketRequest {
        provider: body.provider,
        name: body.name,
        plan: body.plan,
        purchased_seats: body.seats,
        integration_id: body.integration_id,
    };
    let issued = oauth_connect::issue_ticket(&ctx, request, &actor).await?;
    let view = OAuthStartView {
        start_url: issued.start_url.expose_secret().to_owned(),
        expires_at: issued.expires_at,
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub async fn get_integration(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = integrations::get_integration(&ctx, &id).await?;
    Ok(Json(IntegrationView::from(&integration)))
}

pub async fn patch_integration(
    State(ctx): Ctx,
    Caller(actor): Caller,
    IntegrationPath(id): IntegrationPath,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<IntegrationView>, ApiError> {
    let change = settings_change(body)?;
    let updated = integrations::update_settings(&ctx, &id, &change, &actor)
        .await
        .map_err(patch_error)?;
    Ok(Json(IntegrationView::from(&updated)))
}

/// Guard-rail errors come from the domain without their `reclaim.` prefix.
const GUARD_RAIL_FIELDS: [&str; 5] = [
    "excluded_logins",
    "excluded_user_ids",
    "excluded_group_ids",
    "approval_threshold",
    "grace_period_days",
];

fn patch_error(e: IntegrationsError) -> ApiError {
    match e {
        IntegrationsError::Invalid(invalid) if GUARD_RAIL_FIELDS.contains(&invalid.field) => {
            let field = format!("reclaim.{}", invalid.field);
            ApiError::bad_request("invalid_input", format!("{field}: {}", invalid.reason))
                .with_field(field)
        }
        other => ApiError::from(other),
    }
}

fn settings_change(body: PatchBody) -> Result<SettingsChange, ApiError> {
    let inactive_days = body.inactive_days.map(InactiveDays::try_from).transpose()?;
    let seat_price = match body.price_per_seat {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) => Some(Some(SeatPrice::new(p.monthly, &p.currency).map_err(
            |e| {
                let field = if e.field == "currency" {
                    "price_per_seat.currency"
                } else {
                    "price_per_seat.monthly"
                };
                ApiError::invalid(&InvalidInput::new(field, e.reason))
            },
        )?)),
    };
    let rails = body.reclaim.unwrap_or_default();
    Ok(SettingsChange {
        name: body.name,
        plan: body.plan,
        purchased_seats: body.seats,
        enabled: body.enabled,
        inactive_days,
        seat_price,
        reclaim: GuardRailsChange {
            excluded_logins: rails.excluded_logins,
            excluded_user_ids: rails.excluded_user_ids,
            excluded_group_ids: rails.excluded_group_ids,
            approval_threshold: rails.approval_threshold,
            auto_approve: rails.auto_approve,
            allow_self_approval: rails.allow_self_approval,
            grace_period_days: rails.grace_period_days,
        },
    })
}

pub async fn delete_integration(
    State(ctx): Ctx,
    Caller(actor): Caller,
    IntegrationPath(id): IntegrationPath,
) -> Result<Json<IntegrationView>, ApiError> {
    let disconnected = integrations::disconnect(&ctx, &id, &actor).await?;
    Ok(Json(IntegrationView::from(&disconnected)))
}

pub async fn sync(
    State(ctx): Ctx,
    Caller(actor): Caller,
    IntegrationPath(id): IntegrationPath,
) -> Result<Response, ApiError> {
    integrations::request_sync(&ctx, &id, &actor).await?;
    let view = SyncStartedView {
        integration_id: id,
        status: "started",
    };
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

// ---------------------------------------------------------------------------------------
// License information

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensesQuery {
    inactive_days: Option<String>,
}

pub async fn licenses(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<LicensesQuery>,
) -> Result<Response, ApiError> {
    let days = parse_inactive_days(q.inactive_days.as_deref())?;
    let summary = integrations::license_summary(&ctx, &id, days).await?;
    Ok(Json(summary).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    license_type: Option<String>,
    kind: Option<String>,
    inactive_days: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn accounts(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<AccountsQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let kind = q
        .kind
        .as_deref()
        .map(|k| parse_enum::<AccountKind>("kind", k))
        .transpose()?;
    let days = parse_inactive_days(q.inactive_days.as_deref())?;
    let filter = AccountFilter::new(q.license_type.clone(), kind, days)?;
    let limit = page_limit(q.limit.as_deref())?;
    let cursor = q
        .cursor
        .as_deref()
        .map(cursor::decode::<AccountsCursor>)
        .transpose()?;
    let page = integrations::list_accounts(&ctx, &id, &filter, cursor, limit).await?;
    let next = page.next.as_ref().map(cursor::encode).transpose()?;
    let rows: Vec<AccountRow> = page.items.iter().map(AccountRow::from).collect();
    if wants_csv(&headers) {
        return Ok(csv_response(
            rows,
            next.map(|c| next_link(uri.path(), &q, &c)),
        ));
    }
    Ok(Json(PageView {
        items: rows,
        next_cursor: next,
    })
    .into_response())
}

/// `Accept` names `text/csv` before (or without) `application/json`.
fn wants_csv(headers: &HeaderMap) -> bool {
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            if refused {
                continue;
            }
            match essence.as_str() {
                "text/csv" => return true,
                "application/json" => return false,
                _ => {}
            }
        }
    }
    false
}

/// One page of accounts as CSV, produced row by row; the next page is in the `Link` header.
fn csv_response(rows: Vec<AccountRow>, next: Option<String>) -> Response {
    let lines = std::iter::once(format!("{}\n", AccountRow::CSV_HEADER))
        .chain(rows.into_iter().map(|row| format!("{}\n", row.csv_line())))
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(futures::stream::iter(lines)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// `<path?filters&cursor=…>; rel="next"`: the same query with the next cursor.
fn next_link(path: &str, q: &AccountsQuery, cursor: &str) -> String {
    let mut query = Vec::new();
    for (name, value) in [
        ("license_type", &q.license_type),
        ("kind", &q.kind),
        ("inactive_days", &q.inactive_days),
        ("limit", &q.limit),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", percent_encode(value)));
        }
    }
    query.push(format!("cursor={}", percent_encode(cursor)));
    format!("<{path}?{}>; rel=\"next\"", query.join("&"))
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsQuery {
    from: Option<String>,
    to: Option<String>,
    inactive_days: Option<String>,
}

pub async fn snapshots(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<SnapshotsQuery>,
) -> Result<Response, ApiError> {
    let from = q
        .from
        .as_deref()
        .map(|d| parse_date("from", d))
        .transpose()?;
    let to = q.to.as_deref().map(|d| parse_date("to", d)).transpose()?;
    let days = parse_inactive_days(q.inactive_days.as_deref())?;
    let range = SnapshotRange::new(from, to, ctx.clock.now().date_naive())?;
    let items = integrations::snapshot_history(&ctx, &id, range, days).await?;
    Ok(Json(SnapshotsView {
        from: range.from,
        to: range.to,
        items,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    kind: Option<String>,
    limit: Option<String>,
}

/// Runs listed per task kind unless `limit` says otherwise.
const DEFAULT_TASK_RUNS: usize = 10;

pub async fn tasks(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<TasksQuery>,
) -> Result<Json<TasksView>, ApiError> {
    let kind = q
        .kind
        .as_deref()
        .map(|k| parse_enum::<TaskKind>("kind", k))
        .transpose()?;
    let limit = parse_limit(
        q.limit.as_deref(),
        DEFAULT_TASK_RUNS,
        integrations::MAX_TASK_RUNS,
    )?;
    let history = integrations::task_history(&ctx, &id, kind, limit).await?;
    Ok(Json(TasksView {
        tasks: history.into_iter().map(TaskKindView::from).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn audit(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<PageView<AuditEntryView>>, ApiError> {
    let limit = page_limit(q.limit.as_deref())?;
    let inner = q
        .cursor
        .as_deref()
        .map(cursor::decode::<AuditCursor>)
        .transpose()?
        .map(|c| c.audit);
    let page = integrations::audit_trail(&ctx, &id, inner.as_deref(), limit).await?;
    let next_cursor = page
        .next
        .map(|audit| cursor::encode(&AuditCursor { audit }))
        .transpose()?;
    Ok(Json(PageView {
        items: page.items.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    }))
}

// ---------------------------------------------------------------------------------------
// Query values

fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be an integer between 1 and {max}"),
        )
        .with_field("limit")),
    }
}

/// `limit` of a cursor-paged listing (default 100, at most 1000).
fn page_limit(raw: Option<&str>) -> Result<PageLimit, ApiError> {
    let n = parse_limit(raw, PageLimit::DEFAULT, PageLimit::MAX)?;
    Ok(PageLimit::new(u64::try_from(n).unwrap_or(u64::MAX))?)
}

fn parse_inactive_days(raw: Option<&str>) -> Result<Option<InactiveDays>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    raw.parse::<u32>()
        .ok()
        .and_then(|n| InactiveDays::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "inactive_days: must be an integer between 1 and 365",
            )
            .with_field("inactive_days")
        })
}

fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("{field}: must be a date as YYYY-MM-DD"),
            )
            .with_field(field)
        })
}

/// A snake_case enum value (`human`, `application_roster`, …), with serde's own message
/// listing the accepted ones.
fn parse_enum<T: for<'de> Deserialize<'de>>(field: &'static str, raw: &str) -> Result<T, ApiError> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        raw.into_deserializer();
    T::deserialize(de).map_err(|e| {
        ApiError::bad_request("invalid_query", format!("{field}: {e}")).with_field(field)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_only_when_asked_for_first() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_static(v));
            m
        };
        assert!(wants_csv(&h("text/csv")));
        assert!(wants_csv(&h("text/csv;q=0.9, application/json;q=0.5")));
        assert!(!wants_csv(&h("application/json, text/csv")));
        assert!(!wants_csv(&h("text/csv;q=0, application/json")));
        assert!(!wants_csv(&h("*/*")));
        assert!(!wants_csv(&HeaderMap::new()));
    }

    #[test]
    fn query_values_are_checked_by_field() {
        assert_eq!(parse_limit(None, 100, 1000).unwrap(), 100);
        assert!(parse_limit(Some("0"), 100, 1000).is_err());
        assert!(parse_limit(Some("1001"), 100, 1000).is_err());
        assert!(parse_limit(Some("-1"), 100, 1000).is_err());
        assert_eq!(parse_inactive_days(Some("30")).unwrap().unwrap().get(), 30);
        assert!(parse_inactive_days(Some("366")).is_err());
        assert!(parse_date("from", "2026-02-30").is_err());
        assert!(parse_date("from", "2026-2-3").is_err());
        assert_eq!(
            parse_enum::<AccountKind>("kind", "app").unwrap(),
            AccountKind::App
        );
        let e = parse_enum::<AccountKind>("kind", "robot").unwrap_err();
        assert_eq!(e.code(), "invalid_query");
    }

    #[test]
    fn the_next_link_keeps_the_filters_and_encodes_them() {
        let q = AccountsQuery {
            license_type: Some("Business Plus".into()),
            kind: None,
            inactive_days: Some("30".into()),
            cursor: Some("old".into()),
            limit: Some("5".into()),
        };
        assert_eq!(
            next_link("/integrations/x/accounts", &q, "abc_-"),
            "</integrations/x/accounts?license_type=Business%20Plus&inactive_days=30&limit=5&cursor=abc_->; rel=\"next\""
        );
    }
}
