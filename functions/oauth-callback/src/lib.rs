//! The OAuth connect routes (design §7, "Connect (OAuth)"), as an axum router run by the
//! Lambda (API Gateway HTTP API v2 events) and mounted by `seatkeeper serve`:
//!
//! - `GET /oauth/{provider}/start?ticket=…`: spends the ticket, sets the browser-binding
//!   cookie and redirects (302) to the provider's authorize page.
//! - `GET /oauth/{provider}/callback?code=…&state=…` (or `?error=…&state=…`): completes the
//!   connect and answers a small fixed-text page.
//!
//! The behaviour lives in `seatkeeper_shared::services::oauth_connect`; this crate maps
//! HTTP to it and its outcomes to pages (status codes: success 200; bad, missing, expired,
//! replayed or foreign ticket or state 400; unknown provider or route 404; tenant conflicts
//! 409; provider failures 502). Nothing from the query string is echoed, and nothing logged
//! here carries a ticket, state, code or cookie.

mod cookie;
mod page;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use seatkeeper_shared::domain::Provider;
use seatkeeper_shared::services::ServiceContext;
use seatkeeper_shared::services::oauth_connect::{
    self, AuthorizeError, OAuthCallback, OAuthCallbackError, OAuthConnected, OAuthStartError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use cookie::BindingCookie;
pub use page::Page;

struct AppState {
    ctx: ServiceContext,
    cookie: BindingCookie,
}

type Shared = State<Arc<AppState>>;

/// The OAuth routes. No router-wide fallback (so `seatkeeper serve` can merge it with the
/// API's router): unknown paths under `/oauth/` are answered here by a 404 page, other
/// paths are left to the caller (the Lambda adds [`not_found`] as its fallback).
pub fn router(ctx: ServiceContext) -> Router {
    let cookie = BindingCookie::for_base_url(&ctx.public_base_url);
    let state = Arc::new(AppState { ctx, cookie });
    Router::new()
        .route("/oauth/{provider}/start", get(start))
        .route("/oauth/{provider}/callback", get(callback))
        // Everything else under /oauth (a catch-all beside `{provider}` is refused by the
        // path matcher, so each depth is named).
        .route("/oauth", any(not_found))
        .route("/oauth/", any(not_found))
        .route("/oauth/{provider}", any(not_found))
        .route("/oauth/{provider}/", any(not_found))
        .route("/oauth/{provider}/{step}", any(not_found))
        .route("/oauth/{provider}/{step}/", any(not_found))
        .route("/oauth/{provider}/{step}/{*rest}", any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(with_security_headers))
        .with_state(state)
}

/// Checks `SEATKEEPER_PUBLIC_BASE_URL`: HTTPS, or plain HTTP on a loopback address only.
pub fn validate_public_base_url(base: &str) -> Result<(), String> {
    let ok_scheme = base.starts_with("https://")
        || BindingCookie::for_base_url(base).name() == BindingCookie::LOOPBACK_NAME;
    if !ok_scheme {
        return Err(format!(
            "SEATKEEPER_PUBLIC_BASE_URL must be an https:// URL (plain http only on a loopback address), got {base:?}"
        ));
    }
    if base.contains(['?', '#']) || base.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("SEATKEEPER_PUBLIC_BASE_URL must be a plain base URL".to_owned());
    }
    Ok(())
}

async fn with_security_headers(mut response: Response) -> Response {
    page::security_headers(response.headers_mut());
    response
}

/// The 404 page (unknown route or provider).
pub async fn not_found() -> Response {
    Page::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here. Start a connection from Seatkeeper.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    let mut response = Page::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "Open this link in a browser.",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

fn parse_provider(raw: &str) -> Option<Provider> {
    match raw {
        "box" => Some(Provider::Box),
        "salesforce" => Some(Provider::Salesforce),
        _ => None,
    }
}

#[derive(Deserialize)]
struct StartQuery {
    ticket: Option<SecretString>,
}

async fn start(
    State(app): Shared,
    method: Method,
    Path(provider): Path<String>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Response {
    // `get` also routes HEAD here: a HEAD (a link preview) must not spend the ticket.
    if method != Method::GET {
        return method_not_allowed().await;
    }
    let Some(provider) = parse_provider(&provider) else {
        return not_found().await;
    };
    let Ok(Query(query)) = query else {
        return start_failure(&OAuthStartError::UnknownTicket);
    };
    match oauth_connect::start(&app.ctx, provider, query.ticket.as_ref()).await {
        Ok(started) => {
            let location = HeaderValue::try_from(started.authorize_url.expose_secret());
            let cookie = app.cookie.set(&started.browser_binding);
            match (location, cookie) {
                (Ok(mut location), Some(cookie)) => {
                    location.set_sensitive(true);
                    let mut response = StatusCode::FOUND.into_response();
                    let headers = response.headers_mut();
                    headers.insert(header::LOCATION, location);
                    headers.insert(header::SET_COOKIE, cookie);
                    response
                }
                _ => {
                    tracing::error!(%provider, "the authorize redirect could not be built");
                    internal_error()
                }
            }
        }
        Err(e) => start_failure(&e),
    }
}

fn start_failure(error: &OAuthStartError) -> Response {
    use OAuthStartError as E;
    let restart = "Start the connection again from Seatkeeper (seatkeeper connect box --oauth, or POST /integrations/oauth) and open the new link within 10 minutes.";
    let page = match error {
        E::MissingTicket => Page::new(
            StatusCode::BAD_REQUEST,
            "This link is incomplete",
            "A connection can only be started with the link Seatkeeper gives you. Start the connection from Seatkeeper (seatkeeper connect box --oauth, or POST /integrations/oauth).",
        ),
        E::UnknownTicket => Page::new(
            StatusCode::BAD_REQUEST,
            "This link is not valid or was already used",
            restart,
        ),
        E::ExpiredTicket => Page::new(StatusCode::BAD_REQUEST, "This link has expired", restart),
        E::WrongProvider { .. } => Page::new(
            StatusCode::BAD_REQUEST,
            "This link is for another provider",
            restart,
        ),
        E::Unsupported(_) => Page::new(
            StatusCode::NOT_FOUND,
            "Not supported yet",
            "Seatkeeper cannot connect this provider with OAuth yet.",
        ),
        E::AppNotConfigured { .. } => Page::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Seatkeeper is not set up for this provider",
            "An administrator must store the OAuth app's client id and secret in the secret seatkeeper/apps/<provider>.",
        ),
        E::Corrupt(_) | E::Store(_) => return internal_error(),
    };
    if page.status.is_server_error() {
        tracing::error!(error = %error, "OAuth start failed");
    } else {
        tracing::info!(error = %error, "OAuth start refused");
    }
    page.into_response()
}

fn internal_error() -> Response {
    Page::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Seatkeeper could not complete this step. Nothing was connected; try again later.",
    )
    .into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<SecretString>,
    state: Option<SecretString>,
    /// `error_description` and `error_uri` are deliberately not read.
    error: Option<String>,
}

async fn callback(
    State(app): Shared,
    method: Method,
    Path(provider): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    if method != Method::GET {
        return method_not_allowed().await;
    }
    let Some(provider) = parse_provider(&provider) else {
        return not_found().await;
    };
    let clear = app.cookie.clear();
    let Ok(Query(query)) = query else {
        return callback_failure(&OAuthCallbackError::UnknownState)
            .with_cookie(clear)
            .into_response();
    };
    let callback = OAuthCallback {
        code: query.code,
        state: query.state,
        error: query.error,
        browser_bindings: app.cookie.values(&headers),
    };
    let page = match oauth_connect::complete(&app.ctx, provider, callback).await {
        Ok(connected) => success(&connected),
        Err(e) => callback_failure(&e),
    };
    page.with_cookie(clear).into_response()
}

fn success(connected: &OAuthConnected) -> Page {
    let (title, message) = match (connected.repaired, connected.sync_started) {
        (false, true) => (
            "Connected",
            "The integration is connected. Its first sync has started; license data appears within minutes for most tenants. You can close this window.",
        ),
        (false, false) => (
            "Connected",
            "The integration is connected. Its first sync could not be started now; it runs with the next daily sync, or start it from Seatkeeper. You can close this window.",
        ),
        (true, true) => (
            "Reconnected",
            "The integration is connected again with new credentials. A sync has started. You can close this window.",
        ),
        (true, false) => (
            "Reconnected",
            "The integration is connected again with new credentials. A sync could not be started now; it runs with the next daily sync, or start it from Seatkeeper. You can close this window.",
        ),
    };
    Page::new(StatusCode::OK, title, message)
        .with_detail(format!("Integration: {}", connected.integration.name))
}

fn callback_failure(error: &OAuthCallbackError) -> Page {
    use OAuthCallbackError as E;
    let restart = "Nothing was connected. Start the connection again from Seatkeeper.";
    let page = match error {
        E::MissingState | E::UnknownState | E::MissingCode => Page::new(
            StatusCode::BAD_REQUEST,
            "This sign-in cannot be completed",
            "The link is not valid or was already used. Nothing was connected. Start the connection again from Seatkeeper.",
        ),
        E::ExpiredState => Page::new(
            StatusCode::BAD_REQUEST,
            "This sign-in took too long",
            "The connection has to be completed within 10 minutes. Nothing was connected. Start the connection again from Seatkeeper.",
        ),
        E::WrongProvider { .. } => Page::new(
            StatusCode::BAD_REQUEST,
            "This sign-in came back from another provider",
            restart,
        ),
        E::BrowserMismatch => Page::new(
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser",
            "Finish the connection in the browser where you opened the Seatkeeper link. Nothing was connected.",
        ),
        E::Authorize(AuthorizeError::AccessDenied) => Page::new(
            StatusCode::BAD_REQUEST,
            "Access was not granted",
            "The provider reports that access was declined. Nothing was connected.",
        ),
        E::Authorize(AuthorizeError::Refused) => Page::new(
            StatusCode::BAD_REQUEST,
            "The provider refused the request",
            "Check the OAuth app's configuration (redirect URI, scopes, approval by an admin), then start the connection again. Nothing was connected.",
        ),
        E::Authorize(AuthorizeError::Unavailable) => Page::new(
            StatusCode::BAD_GATEWAY,
            "The provider is unavailable",
            "The provider could not handle the sign-in right now. Nothing was connected; try again later.",
        ),
        E::CodeRejected { .. } => Page::new(
            StatusCode::BAD_REQUEST,
            "The sign-in was not accepted",
            "The provider did not accept the authorization (it may have expired). Nothing was connected. Start the connection again from Seatkeeper.",
        ),
        E::AppNotConfigured { .. } => Page::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Seatkeeper is not set up for this provider",
            "An administrator must store the OAuth app's client id and secret in the secret seatkeeper/apps/<provider>. Nothing was connected.",
        ),
        E::Unsupported(_) => Page::new(
            StatusCode::NOT_FOUND,
            "Not supported yet",
            "Seatkeeper cannot connect this provider with OAuth yet.",
        ),
        E::NoEnterprise => Page::new(
            StatusCode::BAD_REQUEST,
            "This account belongs to no enterprise",
            "Sign in with an administrator of the Box enterprise to connect. Nothing was connected.",
        ),
        E::MissingCapability { capability, fix } => Page::new(
            StatusCode::BAD_REQUEST,
            "The authorization is missing a permission",
            "Nothing was connected. What is missing and how to fix it:",
        )
        .with_detail(format!("The app cannot {capability}: {fix}.")),
        E::IntegrationGone(_) => Page::new(
            StatusCode::CONFLICT,
            "The integration to reconnect no longer exists",
            "It was deleted or disconnected after this connection started. Nothing was connected. Connect the tenant anew from Seatkeeper.",
        ),
        E::WrongTenant { integration_id } => Page::new(
            StatusCode::CONFLICT,
            "This tenant belongs to another enterprise",
            "You signed in to a different enterprise than the one this integration is connected to. Sign in as an administrator of that integration's enterprise. Nothing was changed.",
        )
        .with_detail(format!("Integration: {integration_id}")),
        E::TenantHeldByClientCredentials { integration_id, .. } => Page::new(
            StatusCode::CONFLICT,
            "This tenant is already connected with client credentials",
            "One tenant can only be connected once. Disconnect the existing integration first to connect it with OAuth. Nothing was changed.",
        )
        .with_detail(format!("Existing integration: {integration_id}")),
        E::TenantClaimed { integration_id, .. } => Page::new(
            StatusCode::CONFLICT,
            "This tenant is already connected",
            "One tenant can only be connected once. Nothing was changed.",
        )
        .with_detail(format!("Existing integration: {integration_id}")),
        E::ProviderTimeout(_) | E::Provider(_) => Page::new(
            StatusCode::BAD_GATEWAY,
            "The provider could not be reached",
            "The provider did not answer as expected. Nothing was connected; try again later.",
        ),
        E::Corrupt(_) | E::Store(_) | E::Secrets(_) | E::Tokens(_) => Page::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Seatkeeper could not complete this step. Nothing was connected; try again later.",
        ),
    };
    if page.status.is_server_error() {
        tracing::error!(error = %error, status = page.status.as_u16(), "OAuth callback failed");
    } else {
        tracing::info!(error = %error, status = page.status.as_u16(), "OAuth callback refused");
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_base_url_must_be_https_or_loopback() {
        assert!(validate_public_base_url("https://sk.example.com").is_ok());
        assert!(validate_public_base_url("http://127.0.0.1:7777").is_ok());
        assert!(validate_public_base_url("http://sk.example.com").is_err());
        assert!(validate_public_base_url("https://sk.example.com/?x").is_err());
    }

    #[test]
    fn providers_are_matched_exactly() {
        assert_eq!(parse_provider("box"), Some(Provider::Box));
        assert_eq!(parse_provider("salesforce"), Some(Provider::Salesforce));
        assert_eq!(parse_provider("Box"), None);
        assert_eq!(parse_provider("github"), None);
    }
}
