//! Box's OAuth 2.0 authorization-code flow for a customer's own Box app: the authorize
//! URL, the code exchange, the refresh grant and revocation.
//!
//! Box refresh tokens are single use: every refresh spends the old one and returns a new
//! one, even when the answer never reaches us. Refresh and code exchange are therefore
//! sent [`Call::not_idempotent`]: a lost response is reported, not retried with a token
//! that is already spent. Callers must persist a new token set before using it. A lost
//! refresh (an `Unavailable` error) may have spent the token: the next refresh then gets
//! `invalid_grant`, and the grant needs the user to authorize again. The services layer
//! (`services::tokens`) does all of this under a lock shared by every container.
//!
//! Nothing here logs a response body, a token, a code or the client secret.
//!
//! Facts and sources: `shared/reference/box-api.md` §2.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::token::token_error;
use super::{BoxConfig, PROVIDER};
use crate::provider::ProviderError;
use crate::provider::http::{Call, HttpClient, describe_json_error};

/// The scopes Seatkeeper asks for (names from Box's OpenAPI `securitySchemes`): list and
/// update managed users, read groups, read enterprise events, transfer a user's content.
/// Acting as another user (`As-User`) is an app setting ("Make API calls using the as-user
/// header"), not a scope.
pub const BOX_OAUTH_SCOPES: &[&str] = &[
    "manage_managed_users",
    "manage_groups",
    "manage_enterprise_properties",
    "root_readwrite",
];

/// No token is trusted for longer than a day, whatever the server says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Box's documented access-token lifetime, used when a response omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A customer's Box app (OAuth 2.0 with user authentication). `Debug` redacts the secret.
#[derive(Clone)]
pub struct BoxOAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for BoxOAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxOAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// The tokens of one grant. The refresh token is single use: persist a new set before
/// using any of it. `Debug` redacts both tokens.
#[derive(Clone)]
pub struct BoxTokenSet {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// When the access token expires (`expires_in` from the request time, at most 24 h).
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for BoxTokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxTokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The browser redirect target:
/// `{authorize_base}?response_type=code&client_id=…&redirect_uri=…&state=…&scope=…`, every
/// value percent-encoded, scopes space-separated. `authorize_base` is
/// `https://account.box.com/api/oauth2/authorize` (or a simulator's); a query it already
/// has is kept. No `scope` parameter when `scopes` is empty (Box then grants the app's
/// configured scopes).
pub fn authorize_url(
    authorize_base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    scopes: &[&str],
) -> String {
    let mut url = authorize_base.to_owned();
    let mut separator = match url.rfind('?') {
        None => Some('?'),
        Some(at) if at + 1 == url.len() || url.ends_with('&') => None,
        Some(_) => Some('&'),
    };
    let scope = scopes.join(" ");
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ];
    if !scope.is_empty() {
        params.push(("scope", scope.as_str()));
    }
    for (name, value) in params {
        url.extend(separator);
        url.push_str(name);
        url.push('=');
        percent_encode(value, &mut url);
        separator = Some('&');
    }
    url
}

/// RFC 3986 percent-encoding of everything but unreserved characters (a space is `%20`,
/// which every query decoder reads as a space).
fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `grant_type=authorization_code`: trades the code from the redirect for a token set.
/// `redirect_uri` must be the one the authorize request named. A spent, expired or unknown
/// code is `ProviderError::Auth { code: "invalid_grant", .. }`.
#[tracing::instrument(name = "box.oauth.exchange_code", skip_all)]
pub async fn exchange_code(
    http: &HttpClient,
    config: &BoxConfig,
    app: &BoxOAuthApp,
    code: &SecretString,
    redirect_uri: &str,
    now: DateTime<Utc>,
) -> Result<BoxTokenSet, ProviderError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.expose_secret()),
        ("redirect_uri", redirect_uri),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
    ];
    token_request(http, config, "oauth.exchange_code", &form, now).await
}

/// `grant_type=refresh_token`: spends `refresh_token` and returns a new set whose refresh
/// token replaces it. `invalid_grant` (spent, expired or revoked) means the user must
/// authorize again. After an `Unavailable` error Box may have rotated the token without our
/// seeing the answer; whether it did shows on the next refresh.
#[tracing::instrument(name = "box.oauth.refresh", skip_all)]
pub async fn refresh(
    http: &HttpClient,
    config: &BoxConfig,
    app: &BoxOAuthApp,
    refresh_token: &SecretString,
    now: DateTime<Utc>,
) -> Result<BoxTokenSet, ProviderError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose_secret()),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
    ];
    token_request(http, config, "oauth.refresh", &form, now).await
}

/// `POST /oauth2/revoke`: ends the grant `token` (an access or refresh token) belongs to.
/// Box answers 200 for unknown tokens too, so repeating it is harmless.
#[tracing::instrument(name = "box.oauth.revoke", skip_all)]
pub async fn revoke(
    http: &HttpClient,
    config: &BoxConfig,
    app: &BoxOAuthApp,
    token: &SecretString,
) -> Result<(), ProviderError> {
    let url = format!("{}/oauth2/revoke", config.api_base.trim_end_matches('/'));
    let form = [
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        ("token", token.expose_secret()),
    ];
    let response = http
        .send(
            Call::new(PROVIDER, "oauth.revoke", &config.retry),
            |client| client.post(&url).form(&form),
        )
        .await?;
    if response.status.is_success() {
        tracing::debug!("box grant revoked");
        Ok(())
    } else {
        Err(token_error(
            response.status,
            &response.body,
            "oauth2/revoke",
        ))
    }
}

/// One non-idempotent `POST /oauth2/token` (the code or refresh token is spent by the
/// first request that reaches Box) and its token set.
async fn token_request(
    http: &HttpClient,
    config: &BoxConfig,
    operation: &'static str,
    form: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<BoxTokenSet, ProviderError> {
    let url = format!("{}/oauth2/token", config.api_base.trim_end_matches('/'));
    let response = http
        .send(
            Call::new(PROVIDER, operation, &config.retry).not_idempotent(),
            |client| client.post(&url).form(form),
        )
        .await?;
    if !response.status.is_success() {
        return Err(token_error(response.status, &response.body, "oauth2/token"));
    }
    // Not `HttpResponse::json`: the body holds tokens, and errors must not quote it.
    let parsed: TokenResponse =
        serde_json::from_slice(&response.body).map_err(|err| ProviderError::Malformed {
            provider: PROVIDER,
            detail: format!("token response: {}", describe_json_error(&err)),
        })?;
    let refresh_token = parsed
        .refresh_token
        .filter(|token| !token.expose_secret().is_empty())
        .ok_or_else(|| ProviderError::Malformed {
            provider: PROVIDER,
            detail: "token response without a refresh_token".to_owned(),
        })?;
    if parsed.access_token.expose_secret().is_empty() {
        return Err(ProviderError::Malformed {
            provider: PROVIDER,
            detail: "token response with an empty access_token".to_owned(),
        });
    }
    let lifetime = parsed
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
        .min(MAX_LIFETIME);
    tracing::debug!(
        expires_in_s = lifetime.as_secs(),
        "box oauth tokens obtained"
    );
    Ok(BoxTokenSet {
        access_token: parsed.access_token,
        refresh_token,
        expires_at: expires_at(now, lifetime),
    })
}

fn expires_at(now: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(lifetime)
        .ok()
        .and_then(|delta| now.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn authorize_url_keeps_an_existing_query() {
        let url = authorize_url("https://a/auth?x=1", "c", "https://r/cb", "s", &[]);
        assert_eq!(
            url,
            "https://a/auth?x=1&response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fr%2Fcb&state=s"
        );
    }

    #[test]
    fn lifetime_is_capped_and_never_overflows() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            expires_at(now, MAX_LIFETIME),
            now + TimeDelta::hours(24),
            "a day at most"
        );
        assert_eq!(
            expires_at(DateTime::<Utc>::MAX_UTC, MAX_LIFETIME),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn invalid_grant_is_auth() {
        let err = token_error(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"Invalid refresh token"}"#,
            "oauth2/token",
        );
        assert!(
            matches!(&err, ProviderError::Auth { code, .. } if code == "invalid_grant"),
            "{err:?}"
        );
        let err = token_error(StatusCode::BAD_REQUEST, b"<html>", "oauth2/token");
        assert!(
            matches!(err, ProviderError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }
}
