//! Box access tokens: obtained from a grant, cached until shortly before they expire.
//!
//! Only the Client Credentials Grant exists today. Authorization-code apps will add a
//! `Grant` variant whose refresh token rotates on every use; the cache and the
//! "invalidate on 401" logic below do not depend on the grant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::model::{ClientError, OAuth2Error};
use super::{BoxCcgCredentials, PROVIDER, api_error};
use crate::provider::ProviderError;
use crate::provider::http::{Call, HttpClient, RetryPolicy, describe_json_error};

/// No token is trusted for longer than a day, whatever the server says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Box's documented default lifetime, used when a token response omits `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// How a token is obtained.
pub(super) enum Grant {
    /// `grant_type=client_credentials` for the enterprise's service account.
    ClientCredentials(BoxCcgCredentials),
}

impl Grant {
    /// The token request form. Holds the client secret: never log it.
    fn form(&self) -> Vec<(&'static str, &str)> {
        match self {
            Grant::ClientCredentials(creds) => vec![
                ("grant_type", "client_credentials"),
                ("client_id", creds.client_id.as_str()),
                ("client_secret", creds.client_secret.expose_secret()),
                ("box_subject_type", "enterprise"),
                ("box_subject_id", creds.enterprise_id.as_str()),
            ],
        }
    }
}

/// A bearer token plus the generation that identifies it, so a caller that saw it
/// rejected invalidates exactly that token and not a fresher one another task fetched.
#[derive(Clone)]
pub(super) struct AccessToken {
    pub secret: SecretString,
    pub generation: u64,
}

struct Cached {
    token: AccessToken,
    /// When to stop using it: `expires_in` minus the refresh margin.
    refresh_at: Instant,
}

pub(super) struct TokenSource {
    grant: Grant,
    token_url: String,
    margin: Duration,
    /// A tokio mutex held across the fetch: concurrent callers wait for one request.
    cache: Mutex<Option<Cached>>,
    generations: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: SecretString,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(grant: Grant, token_url: String, margin: Duration) -> Self {
        Self {
            grant,
            token_url,
            margin,
            cache: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    /// A valid token: the cached one, or a new one fetched now.
    pub async fn get(
        &self,
        http: &HttpClient,
        policy: &RetryPolicy,
    ) -> Result<AccessToken, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let fetched = self.fetch(http, policy).await?;
        let token = fetched.token.clone();
        *cache = Some(fetched);
        Ok(token)
    }

    /// Forgets `token` after Box rejected it, unless it was already replaced.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|cached| cached.token.generation == token.generation)
        {
            *cache = None;
        }
    }

    #[tracing::instrument(name = "box.token", skip_all)]
    async fn fetch(
        &self,
        http: &HttpClient,
        policy: &RetryPolicy,
    ) -> Result<Cached, ProviderError> {
        let requested_at = Instant::now();
        let form = self.grant.form();
        // Getting a second token is harmless, so the request is idempotent for retries.
        let response = http
            .send(Call::new(PROVIDER, "token", policy), |client| {
                client.post(&self.token_url).form(&form)
            })
            .await?;
        if !response.status.is_success() {
            return Err(token_error(response.status, &response.body, "oauth2/token"));
        }
        // Not `HttpResponse::json`: the body holds the token, and the error must not
        // even hint at it; position-only errors are fine.
        let parsed: TokenResponse =
            serde_json::from_slice(&response.body).map_err(|err| ProviderError::Malformed {
                provider: PROVIDER,
                detail: format!("token response: {}", describe_json_error(&err)),
            })?;
        // Capped: the value comes from the network, and `Instant + Duration` panics on overflow.
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs)
            .min(MAX_LIFETIME);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            generation,
            "box token obtained"
        );
        Ok(Cached {
            token: AccessToken {
                secret: parsed.access_token,
                generation,
            },
            // Measured from the request, not the response: the clock started at Box.
            refresh_at: requested_at + usable_lifetime(lifetime, self.margin),
        })
    }
}

/// How long to use a token: its lifetime minus the margin, or half its lifetime when the
/// margin would eat it all (a short-lived token must still be used at least once).
fn usable_lifetime(lifetime: Duration, margin: Duration) -> Duration {
    match lifetime.checked_sub(margin) {
        Some(usable) if !usable.is_zero() => usable,
        _ => lifetime / 2,
    }
}

/// 400/401 with `{"error","error_description"}` is a refusal of the credentials; anything
/// else is read as an API error.
/// A token-endpoint failure: OAuth's `{error, error_description}` becomes `Auth`, anything
/// else Box's usual API error. Shared by the client-credentials and authorization-code flows.
pub(super) fn token_error(status: StatusCode, body: &[u8], what: &str) -> ProviderError {
    if matches!(status.as_u16(), 400 | 401)
        && let Ok(err) = serde_json::from_slice::<OAuth2Error>(body)
    {
        return ProviderError::Auth {
            provider: PROVIDER,
            code: err.error,
            description: err.error_description.unwrap_or_default(),
        };
    }
    let parsed = serde_json::from_slice::<ClientError>(body).unwrap_or_default();
    api_error(status, parsed, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_keeps_a_margin() {
        let s = Duration::from_secs;
        assert_eq!(usable_lifetime(s(3600), s(60)), s(3540));
        assert_eq!(usable_lifetime(s(60), s(60)), s(30));
        assert_eq!(usable_lifetime(s(10), s(60)), s(5));
        assert_eq!(usable_lifetime(s(0), s(60)), s(0));
    }

    #[test]
    fn oauth_errors_become_auth() {
        let err = token_error(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_client","error_description":"The client credentials are invalid."}"#,
            "oauth2/token",
        );
        match err {
            ProviderError::Auth {
                code, description, ..
            } => {
                assert_eq!(code, "invalid_client");
                assert_eq!(description, "The client credentials are invalid.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_token_failures_are_api_errors() {
        let err = token_error(
            StatusCode::FORBIDDEN,
            br#"{"type":"error","status":403,"code":"forbidden","message":"no"}"#,
            "oauth2/token",
        );
        assert!(
            matches!(err, ProviderError::Forbidden { status: 403, .. }),
            "{err:?}"
        );
        let err = token_error(StatusCode::BAD_REQUEST, b"<html>", "oauth2/token");
        assert!(
            matches!(err, ProviderError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn form_carries_the_enterprise_subject() {
        let grant = Grant::ClientCredentials(BoxCcgCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("shh"),
            enterprise_id: "777".into(),
        });
        let form = grant.form();
        assert!(form.contains(&("grant_type", "client_credentials")));
        assert!(form.contains(&("box_subject_type", "enterprise")));
        assert!(form.contains(&("box_subject_id", "777")));
        assert!(form.contains(&("client_secret", "shh")));
    }
}
