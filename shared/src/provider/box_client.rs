//! Box's REST API over HTTP: CCG tokens (or tokens from an [`AccessTokenProvider`] for
//! authorization-code integrations), the current user, managed users (marker paging) and
//! enterprise `LOGIN` events (`admin_logs`). What reclamation needs on top (re-verifying
//! one user, and the user writes) lives in `verify` and `writes`.
//!
//! Every request goes through [`HttpClient`] (retries, request count). On top of that,
//! a 401 from an API call drops the cached token, fetches a new one once and repeats
//! the call once (tokens can be revoked or expire early). Errors are Box's
//! `ClientError` mapped to [`ProviderError`]; nothing logged here contains a token, the
//! client secret or a query string.
//!
//! Facts and sources: `shared/reference/box-api.md`.

mod model;
pub mod oauth;
mod token;
mod verify;
mod writes;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::ProviderError;
use super::http::{Call, HttpClient, HttpResponse, RetryPolicy};
pub use model::{
    BOX_USER_FIELDS, BoxCurrentUser, BoxEnterprise, BoxEvent, BoxEventPage, BoxEventUser,
    BoxNotificationEmail, BoxUser, BoxUserMini, BoxUserPage, TransferredFolder,
};
use model::{ClientError, EventsResponse, MeResponse, ProbeUsersResponse, UsersResponse};
use token::{AccessToken, FixedToken, Grant, TokenSource};
pub use token::{AccessTokenProvider, ProvidedToken};
pub use verify::{Capability, ReclaimCapabilities};
pub use writes::{DeleteOutcome, TRANSFER_TIMEOUT};

/// The provider name in errors and logs.
const PROVIDER: &str = "box";

/// Logins of the service account and of App Users end with this domain.
const PLATFORM_LOGIN_DOMAIN: &str = "@boxdevedition.com";

/// Entries read by [`BoxClient::probe_managed_users`]. More than one: `user_type=managed`
/// also lists the service account and App Users, which may sort first.
const PROBE_LIMIT: u32 = 100;

#[derive(Debug, Clone)]
pub struct BoxConfig {
    /// `https://api.box.com`, or a simulator's base URL. Tokens come from
    /// `{api_base}/oauth2/token`, the API is under `{api_base}/2.0/`.
    pub api_base: String,
    pub retry: RetryPolicy,
    /// `limit` for `GET /2.0/users` (Box's maximum: 1000).
    pub page_size_users: u32,
    /// `limit` for `GET /2.0/events` (Box's maximum: 500).
    pub page_size_events: u32,
    /// `limit` for `GET /2.0/users/{id}/memberships` (Box's maximum: 1000).
    pub page_size_memberships: u32,
    /// A token is replaced this long before Box says it expires.
    pub token_refresh_margin: Duration,
}

impl Default for BoxConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.box.com".to_owned(),
            retry: RetryPolicy::default(),
            page_size_users: 1000,
            page_size_events: 500,
            page_size_memberships: 1000,
            token_refresh_margin: Duration::from_secs(60),
        }
    }
}

/// A Box Platform app's Client Credentials Grant, acting as the enterprise's service
/// account. `Debug` redacts the secret.
#[derive(Clone)]
pub struct BoxCcgCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub enterprise_id: String,
}

impl fmt::Debug for BoxCcgCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxCcgCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("enterprise_id", &self.enterprise_id)
            .finish()
    }
}

pub struct BoxClient {
    config: BoxConfig,
    /// `api_base` without a trailing slash.
    base: String,
    http: HttpClient,
    tokens: TokenSource,
}

impl fmt::Debug for BoxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxClient")
            .field("api_base", &self.base)
            .field("requests_sent", &self.requests_sent())
            .finish_non_exhaustive()
    }
}

impl BoxClient {
    /// A client acting as the enterprise's service account (Client Credentials Grant).
    pub fn new(config: BoxConfig, http: HttpClient, creds: BoxCcgCredentials) -> Self {
        Self::with_grant(config, http, Grant::ClientCredentials(creds))
    }

    /// A client whose access tokens come from `provider` (an authorization-code
    /// integration). Tokens are still cached in memory, and a 401 makes the client ask the
    /// provider again, naming the rejected token.
    pub fn with_token_provider(
        config: BoxConfig,
        http: HttpClient,
        provider: Arc<dyn AccessTokenProvider>,
    ) -> Self {
        Self::with_grant(config, http, Grant::Provided(provider))
    }

    /// A client using one access token it cannot renew (an OAuth connect checking a grant
    /// it just obtained). If Box rejects the token, calls fail with `ProviderError::Auth`.
    pub fn with_access_token(config: BoxConfig, http: HttpClient, token: SecretString) -> Self {
        Self::with_grant(config, http, Grant::Provided(Arc::new(FixedToken(token))))
    }

    fn with_grant(config: BoxConfig, http: HttpClient, grant: Grant) -> Self {
        let base = config.api_base.trim_end_matches('/').to_owned();
        let tokens = TokenSource::new(
            grant,
            format!("{base}/oauth2/token"),
            config.token_refresh_margin,
        );
        Self {
            config,
            base,
            http,
            tokens,
        }
    }

    pub fn config(&self) -> &BoxConfig {
        &self.config
    }

    /// Requests sent through this client's [`HttpClient`] (retries and tokens included).
    pub fn requests_sent(&self) -> u64 {
        self.http.requests_sent()
    }

    /// The user the token acts as (the service account), with its enterprise.
    #[tracing::instrument(name = "box.current_user", skip_all)]
    pub async fn current_user(&self) -> Result<BoxCurrentUser, ProviderError> {
        let me: MeResponse = self
            .get_json(
                "users.me",
                "/2.0/users/me",
                &[("fields", "id,name,login,role,enterprise".to_owned())],
            )
            .await?;
        let (enterprise_id, enterprise_name) = match me.enterprise {
            Some(enterprise) => (Some(enterprise.id), enterprise.name),
            None => (None, None),
        };
        Ok(BoxCurrentUser {
            id: me.id,
            login: me.login.unwrap_or_default(),
            name: me.name.unwrap_or_default(),
            role: me.role,
            enterprise_id,
            enterprise_name,
        })
    }

    /// One page of managed users (App Users and the service account included: Box lists
    /// them as managed). `marker` is the previous page's `next_marker`.
    #[tracing::instrument(name = "box.users_page", skip_all, fields(first = marker.is_none()))]
    pub async fn users_page(&self, marker: Option<&str>) -> Result<BoxUserPage, ProviderError> {
        let mut query = vec![
            ("user_type", "managed".to_owned()),
            ("usemarker", "true".to_owned()),
            ("limit", self.config.page_size_users.to_string()),
            ("fields", BOX_USER_FIELDS.to_owned()),
        ];
        if let Some(marker) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", marker.to_owned()));
        }
        let page: UsersResponse = self.get_json("users.list", "/2.0/users", &query).await?;
        let next_marker = page.next_marker.filter(|m| !m.is_empty());
        tracing::debug!(
            users = page.entries.len(),
            more = next_marker.is_some(),
            "box users page"
        );
        Ok(BoxUserPage {
            users: page.entries,
            next_marker,
        })
    }

    /// How many managed users (not the service account, not App Users) the app can see
    /// on the first page. 0 means the app lacks "App + Enterprise Access" (or the
    /// enterprise has no users).
    #[tracing::instrument(name = "box.probe_managed_users", skip_all)]
    pub async fn probe_managed_users(&self) -> Result<usize, ProviderError> {
        let page: ProbeUsersResponse = self
            .get_json(
                "users.probe",
                "/2.0/users",
                &[
                    ("user_type", "managed".to_owned()),
                    ("limit", PROBE_LIMIT.to_string()),
                    ("fields", "id,login,is_platform_access_only".to_owned()),
                ],
            )
            .await?;
        let people = page
            .entries
            .iter()
            .filter(|user| user.is_platform_access_only != Some(true))
            .filter(|user| {
                !user.login.as_deref().is_some_and(|login| {
                    login.to_ascii_lowercase().ends_with(PLATFORM_LOGIN_DOMAIN)
                })
            })
            .count();
        tracing::debug!(seen = page.entries.len(), people, "box managed users probe");
        Ok(people)
    }

    /// Whether the app may read the enterprise event stream (403 → `Forbidden` when it
    /// lacks "Manage enterprise properties" or the admin role).
    #[tracing::instrument(name = "box.probe_events", skip_all)]
    pub async fn probe_events(&self) -> Result<(), ProviderError> {
        let _: EventsResponse = self
            .get_json(
                "events.probe",
                "/2.0/events",
                &[
                    ("stream_type", "admin_logs".to_owned()),
                    ("limit", "1".to_owned()),
                ],
            )
            .await?;
        Ok(())
    }

    /// One page of `LOGIN` events created in the window, from `stream_position` on.
    ///
    /// Box reads the window at whole seconds (sub-second parts are dropped). Paging ends
    /// with an empty page; a short page does not mean the end.
    #[tracing::instrument(
        name = "box.login_events_page",
        skip_all,
        fields(first = stream_position.is_none())
    )]
    pub async fn login_events_page(
        &self,
        created_after: DateTime<Utc>,
        created_before: DateTime<Utc>,
        stream_position: Option<&str>,
    ) -> Result<BoxEventPage, ProviderError> {
        let mut query = vec![
            ("stream_type", "admin_logs".to_owned()),
            ("event_type", "LOGIN".to_owned()),
            ("created_after", box_timestamp(created_after)),
            ("created_before", box_timestamp(created_before)),
            ("limit", self.config.page_size_events.to_string()),
        ];
        if let Some(position) = stream_position.filter(|p| !p.is_empty()) {
            query.push(("stream_position", position.to_owned()));
        }
        let page: EventsResponse = self
            .get_json("events.logins", "/2.0/events", &query)
            .await?;
        let chunk_size = page
            .chunk_size
            .unwrap_or_else(|| u64::try_from(page.entries.len()).unwrap_or(u64::MAX));
        tracing::debug!(
            events = page.entries.len(),
            chunk_size,
            "box login events page"
        );
        Ok(BoxEventPage {
            events: page.entries,
            next_stream_position: page.next_stream_position.map(|p| p.0),
            chunk_size,
        })
    }

    /// `GET {base}{path}?{query}` with the bearer token; on 401 a fresh token and one
    /// more try. Success is decoded as `T`, anything else mapped to a [`ProviderError`].
    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &'static str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base);
        let token = self.token().await?;
        let mut response = self.get_once(operation, &url, query, &token).await?;
        if response.status == StatusCode::UNAUTHORIZED {
            tracing::debug!(operation, "box rejected the token; fetching a new one");
            self.tokens.invalidate(&token).await;
            let token = self.token().await?;
            response = self.get_once(operation, &url, query, &token).await?;
        }
        if response.status.is_success() {
            response.json(PROVIDER).map_err(|err| match err {
                ProviderError::Malformed { provider, detail } => ProviderError::Malformed {
                    provider,
                    detail: format!("{detail} from {path}"),
                },
                other => other,
            })
        } else {
            Err(response_error(&response, path))
        }
    }

    async fn token(&self) -> Result<AccessToken, ProviderError> {
        self.tokens.get(&self.http, &self.config.retry).await
    }

    async fn get_once(
        &self,
        operation: &'static str,
        url: &str,
        query: &[(&str, String)],
        token: &AccessToken,
    ) -> Result<HttpResponse, ProviderError> {
        self.http
            .send(
                Call::new(PROVIDER, operation, &self.config.retry),
                |client| {
                    client
                        .get(url)
                        .query(query)
                        .bearer_auth(token.secret.expose_secret())
                },
            )
            .await
    }
}

/// RFC 3339 at whole seconds with a numeric offset, the form Box documents.
fn box_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn response_error(response: &HttpResponse, what: &str) -> ProviderError {
    let parsed = serde_json::from_slice::<ClientError>(&response.body).unwrap_or_default();
    api_error(response.status, parsed, what)
}

/// Maps a non-success status and Box's `ClientError` (possibly empty) to an error.
/// `what` names the resource (a path without query) for `NotFound`.
fn api_error(status: StatusCode, body: ClientError, what: &str) -> ProviderError {
    let code = body
        .code
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let mut message = body
        .message
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
    if let Some(request_id) = body.request_id {
        // Box support asks for it; it is an opaque id, not a secret.
        message = format!("{message} (request_id {request_id})");
    }
    match status.as_u16() {
        403 => ProviderError::Forbidden {
            provider: PROVIDER,
            status: 403,
            code,
            message,
        },
        404 => ProviderError::NotFound {
            provider: PROVIDER,
            what: what.trim_start_matches('/').to_owned(),
        },
        400..=499 => ProviderError::Rejected {
            provider: PROVIDER,
            status: status.as_u16(),
            code,
            message,
        },
        // Only reachable for calls not retried on 5xx.
        500..=599 => ProviderError::Unavailable {
            provider: PROVIDER,
            attempts: 1,
            detail: format!("HTTP {} {code}", status.as_u16()),
        },
        _ => ProviderError::Malformed {
            provider: PROVIDER,
            detail: format!("unexpected HTTP {} from {what}", status.as_u16()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_error(code: &str, message: &str) -> ClientError {
        serde_json::from_value(serde_json::json!({
            "type": "error", "code": code, "message": message, "request_id": "abc"
        }))
        .unwrap()
    }

    #[test]
    fn credentials_debug_redacts_the_secret() {
        let creds = BoxCcgCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("super-secret-value"),
            enterprise_id: "1".into(),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("super-secret-value"), "{shown}");
        assert!(shown.contains("cid"));
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let at = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(box_timestamp(at), "2024-01-02T03:04:05+00:00");
    }

    #[test]
    fn client_errors_map_by_status() {
        let forbidden = api_error(
            StatusCode::FORBIDDEN,
            client_error("access_denied_insufficient_permissions", "nope"),
            "/2.0/events",
        );
        match forbidden {
            ProviderError::Forbidden { code, message, .. } => {
                assert_eq!(code, "access_denied_insufficient_permissions");
                assert_eq!(message, "nope (request_id abc)");
            }
            other => panic!("{other:?}"),
        }
        let missing = api_error(
            StatusCode::NOT_FOUND,
            ClientError::default(),
            "/2.0/users/me",
        );
        assert!(
            matches!(missing, ProviderError::NotFound { ref what, .. } if what == "2.0/users/me")
        );
        let bad = api_error(
            StatusCode::BAD_REQUEST,
            client_error("invalid_limit", "too big"),
            "/2.0/users",
        );
        assert!(
            matches!(bad, ProviderError::Rejected { status: 400, ref code, .. } if code == "invalid_limit")
        );
        let empty = api_error(StatusCode::CONFLICT, ClientError::default(), "x");
        assert!(
            matches!(empty, ProviderError::Rejected { status: 409, ref code, .. } if code == "http_409")
        );
        let redirect = api_error(StatusCode::FOUND, ClientError::default(), "x");
        assert!(matches!(redirect, ProviderError::Malformed { .. }));
    }

    #[test]
    fn default_config_matches_box_limits() {
        let config = BoxConfig::default();
        assert_eq!(config.api_base, "https://api.box.com");
        assert_eq!(config.page_size_users, 1000);
        assert_eq!(config.page_size_events, 500);
        assert_eq!(config.page_size_memberships, 1000);
    }
}
