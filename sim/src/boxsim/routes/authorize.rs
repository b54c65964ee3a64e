//! `GET /api/oauth2/authorize`: Box's authorize page, minus the page. A browser would sign
//! in and consent here; the simulator takes the user's answer from its own query parameters
//! (`sim_decision`, `sim_user`) and redirects at once.
//!
//! As on Box (and RFC 6749 §4.1.2.1), a request whose client or redirect URI cannot be trusted
//! gets an error page and no redirect; any later problem is reported to the redirect URI.
//! `scope` and PKCE parameters are accepted and ignored (Box does not support PKCE).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::boxsim::oauth::is_web_uri;
use crate::boxsim::state::{Shared, lock, read};
use crate::boxsim::tenant::UserKind;

#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    sim_decision: Option<String>,
    sim_user: Option<String>,
}

/// An error page: answered to the browser, never redirected. Its texts are fixed strings,
/// so nothing needs HTML escaping.
struct ErrorPage {
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let Self { error, description } = self;
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>Box | Error</title></head>\
             <body><h1>{error}</h1><p>{description}</p></body></html>\n"
        );
        (StatusCode::BAD_REQUEST, Html(body)).into_response()
    }
}

fn error_page(error: &'static str, description: &'static str) -> Response {
    ErrorPage { error, description }.into_response()
}

pub(crate) async fn authorize(
    State(shared): AppState,
    query: Result<Query<AuthorizeQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_page("invalid_request", "The request is malformed.");
    };
    if query.client_id.as_deref() != Some(shared.app.client_id.as_str()) {
        return error_page("invalid_client", "The client_id is not valid.");
    }
    let redirect_uri = match redirect_target(&shared.app.redirect_uris, query.redirect_uri) {
        Ok(uri) => uri,
        Err(page) => return page.into_response(),
    };
    let state = query.state.as_deref();
    let refuse = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        params.extend(state.map(|state| ("state", state)));
        redirect(&redirect_uri, &params)
    };
    match query.response_type.as_deref() {
        Some("code") => {}
        None => return refuse("invalid_request", "The response_type parameter is missing"),
        Some(_) => {
            return refuse(
                "unsupported_response_type",
                "The response_type must be 'code'",
            );
        }
    }

    // The simulated sign-in and consent.
    let approve = match query.sim_decision.as_deref() {
        None | Some("approve") => true,
        Some("deny") => false,
        Some(_) => {
            return error_page(
                "invalid_sim_decision",
                "sim_decision must be 'approve' or 'deny'.",
            );
        }
    };
    let Some(user) = signing_in_user(&shared, query.sim_user.as_deref()) else {
        return error_page(
            "invalid_sim_user",
            "sim_user must be the id of an existing, active managed user.",
        );
    };
    if !approve {
        lock(&shared.oauth).stats.authorizations_denied += 1;
        return refuse(
            "access_denied",
            "The user denied access to your application",
        );
    }
    let code = lock(&shared.oauth).issue_code(user, redirect_uri.clone());
    let mut params = vec![("code", code.as_str())];
    params.extend(state.map(|state| ("state", state)));
    redirect(&redirect_uri, &params)
}

/// The URI to send the browser back to, or the error page saying why there is none. Without
/// a `redirect_uri` parameter, Box uses the app's only registered URI.
fn redirect_target(registered: &[String], given: Option<String>) -> Result<String, ErrorPage> {
    match given.filter(|uri| !uri.is_empty()) {
        Some(uri) => {
            let allowed = if registered.is_empty() {
                is_web_uri(&uri)
            } else {
                registered.contains(&uri)
            };
            if allowed {
                Ok(uri)
            } else {
                Err(ErrorPage {
                    error: "redirect_uri_mismatch",
                    description: "The redirect_uri does not match a redirect URI configured for the application.",
                })
            }
        }
        None => match registered {
            [only] => Ok(only.clone()),
            _ => Err(ErrorPage {
                error: "redirect_uri_missing",
                description: "A redirect_uri is required: the application has several redirect URIs, or none.",
            }),
        },
    }
}

/// The user who signs in: `sim_user` or else the admin. App users and the service account
/// have no password, and deactivated or deleted users cannot sign in.
fn signing_in_user(shared: &Shared, sim_user: Option<&str>) -> Option<usize> {
    let tenant = read(&shared.tenant);
    let index = match sim_user.filter(|id| !id.is_empty()) {
        Some(id) => tenant.user_index(id)?,
        None => tenant.admin(),
    };
    let user = &tenant.users[index];
    (user.kind == UserKind::Managed && !user.removed && user.status != "inactive").then_some(index)
}

/// 302 to `uri` with `params` added to its query.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut location = uri.to_owned();
    let mut separator = match uri.rfind('?') {
        None => Some('?'),
        // Already ends with a separator: "…?" or "…?a=1&".
        Some(at) if at + 1 == uri.len() || uri.ends_with('&') => None,
        Some(_) => Some('&'),
    };
    for (name, value) in params {
        location.extend(separator);
        location.push_str(name);
        location.push('=');
        form_encode(value, &mut location);
        separator = Some('&');
    }
    match HeaderValue::try_from(location) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        // Redirect URIs are checked to be visible ASCII and parameters are percent-encoded.
        Err(_) => error_page("server_error", "The redirect could not be built."),
    }
}

/// `application/x-www-form-urlencoded` encoding, as browsers and Box use in query strings.
fn form_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(uri: &str, params: &[(&str, &str)]) -> String {
        let response = redirect(uri, params);
        assert_eq!(response.status(), StatusCode::FOUND);
        response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn parameters_are_appended_to_any_existing_query() {
        assert_eq!(
            location("https://a/cb", &[("code", "x")]),
            "https://a/cb?code=x"
        );
        assert_eq!(
            location("https://a/cb?t=1", &[("code", "x"), ("state", "s")]),
            "https://a/cb?t=1&code=x&state=s"
        );
        assert_eq!(
            location("https://a/cb?", &[("code", "x")]),
            "https://a/cb?code=x"
        );
    }

    #[test]
    fn values_are_form_encoded() {
        assert_eq!(
            location("https://a/cb", &[("state", "a b&c=d/é~")]),
            "https://a/cb?state=a+b%26c%3Dd%2F%C3%A9%7E"
        );
    }
}
