//! Box access tokens: obtained from a grant, cached until shortly before they expire.
//!
//! Two grants: the Client Credentials Grant (fetched here), and tokens handed over by an
//! [`AccessTokenProvider`] (authorization-code integrations, whose single-use refresh token
//! lives in the integration's secret and is refreshed under a lock by the services layer).
//! The cache and the "invalidate on 401" logic below do not depend on the grant; a provider
//! is told which token Box rejected, so it does not hand the same one out again.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
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

/// Where a [`BoxClient`](super::BoxClient) built with
/// [`with_token_provider`](super::BoxClient::with_token_provider) gets its access tokens.
#[async_trait]
pub trait AccessTokenProvider: Send + Sync {
    /// A usable access token. `rejected` is a token Box just answered 401 to: the provider
    /// must not hand that one out again (it obtains a new one instead).
    async fn access_token(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, ProviderError>;
}

/// An access token from an [`AccessTokenProvider`]. `Debug` redacts it.
#[derive(Clone)]
pub struct ProvidedToken {
    pub access_token: SecretString,
    /// How long it stays valid from now (the client stops using it a margin earlier).
    pub valid_for: Duration,
}

impl fmt::Debug for ProvidedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvidedToken")
            .field("access_token", &"[redacted]")
            .field("valid_for", &self.valid_for)
            .finish()
    }
}

/// One access token and nothing to replace it with: a grant just obtained (an OAuth
/// connect's code exchange, checked before anything is stored). Once Box rejects it, calls
/// fail with `Auth`.
pub(super) struct FixedToken(pub SecretString);

#[async_trait]
impl AccessTokenProvider for FixedToken {
    async fn access_token(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, ProviderError> {
        if rejected.is_some_and(|r| r.expose_secret() == self.0.expose_secret()) {
            return Err(ProviderError::Auth {
                provider: PROVIDER,
                code: "invalid_token".to_owned(),
                description: "Box rejected the access token".to_owned(),
            });
        }
        Ok(ProvidedToken {
            access_token: self.0.clone(),
            valid_for: DEFAULT_LIFETIME,
        })
    }
}

/// How a token is obtained.
pub(super) enum Grant {
    /// `grant_type=client_credentials` for the enterprise's service account.
    ClientCredentials(BoxCcgCredentials),
    /// Handed over by a provider (authorization-code integrations).
    Provided(Arc<dyn AccessTokenProvider>),
}

/// The Client Credentials token request form. Holds the client secret: never log it.
fn ccg_form(creds: &BoxCcgCredentials) -> Vec<(&'static str, &str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.client_secret.expose_secret()),
        ("box_subject_type", "enterprise"),
        ("box_subject_id", creds.enterprise_id.as_str()),
    ]
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

#[derive(Default)]
struct CacheState {
    cached: Option<Cached>,
    /// The token Box last answered 401 to, until a new one replaces it: a provider must
    /// not hand it out again even if its own records say it is still valid.
    rejected: Option<SecretString>,
}

pub(super) struct TokenSource {
    grant: Grant,
    token_url: String,
    margin: Duration,
    /// A tokio mutex held across the fetch: concurrent callers wait for one request.
    cache: Mutex<CacheState>,
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
            cache: Mutex::new(CacheState::default()),
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
        if let Some(cached) = cache.cached.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let fetched = match &self.grant {
            Grant::ClientCredentials(creds) => self.fetch_ccg(creds, http, policy).await?,
            Grant::Provided(provider) => self.fetch_provided(provider.as_ref(), &cache).await?,
        };
        let token = fetched.token.clone();
        cache.cached = Some(fetched);
        cache.rejected = None;
        Ok(token)
    }

    /// Forgets `token` after Box rejected it, unless it was already replaced.
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache
            .cached
            .as_ref()
            .is_some_and(|cached| cached.token.generation == token.generation)
        {
            cache.cached = None;
            cache.rejected = Some(token.secret.clone());
        }
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[tracing::instrument(name = "box.token.provided", skip_all)]
    async fn fetch_provided(
        &self,
        provider: &dyn AccessTokenProvider,
        cache: &CacheState,
    ) -> Result<Cached, ProviderError> {
        let requested_at = Instant::now();
        let provided = provider.access_token(cache.rejected.as_ref()).await?;
        let lifetime = provided.valid_for.min(MAX_LIFETIME);
        let generation = self.next_generation();
        tracing::debug!(
            valid_for_s = lifetime.as_secs(),
            generation,
            "box token provided"
        );
        Ok(Cached {
            token: AccessToken {
                secret: provided.access_token,
                generation,
            },
            refresh_at: requested_at + usable_lifetime(lifetime, self.margin),
        })
    }

    #[tracing::instrument(name = "box.token", skip_all)]
    async fn fetch_ccg(
        &self,
        creds: &BoxCcgCredentials,
        http: &HttpClient,
        policy: &RetryPolicy,
    ) -> Result<Cached, ProviderError> {
        let requested_at = Instant::now();
        let form = ccg_form(creds);
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
        let generation = self.next_generation();
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

    /// Hands out `token-1`, `token-2`, … and records which token it was told was rejected.
    #[derive(Default)]
    struct CountingProvider {
        calls: std::sync::Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl AccessTokenProvider for CountingProvider {
        async fn access_token(
            &self,
            rejected: Option<&SecretString>,
        ) -> Result<ProvidedToken, ProviderError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(rejected.map(|r| r.expose_secret().to_owned()));
            Ok(ProvidedToken {
                access_token: SecretString::from(format!("token-{}", calls.len())),
                valid_for: Duration::from_secs(3600),
            })
        }
    }

    #[tokio::test]
    async fn provided_tokens_are_cached_and_a_rejected_one_is_named() {
        let provider = Arc::new(CountingProvider::default());
        let source = TokenSource::new(
            Grant::Provided(provider.clone()),
            "unused".into(),
            Duration::from_secs(60),
        );
        let http = HttpClient::for_tests().unwrap();
        let policy = RetryPolicy::fast_for_tests();
        let first = source.get(&http, &policy).await.unwrap();
        let again = source.get(&http, &policy).await.unwrap();
        assert_eq!(first.secret.expose_secret(), "token-1");
        assert_eq!(again.generation, first.generation, "served from memory");

        source.invalidate(&first).await;
        let second = source.get(&http, &policy).await.unwrap();
        assert_eq!(second.secret.expose_secret(), "token-2");
        // A stale rejection (of a token already replaced) changes nothing.
        source.invalidate(&first).await;
        let still = source.get(&http, &policy).await.unwrap();
        assert_eq!(still.generation, second.generation);
        assert_eq!(
            *provider.calls.lock().unwrap(),
            vec![None, Some("token-1".to_owned())]
        );
        assert!(
            !format!(
                "{:?}",
                ProvidedToken {
                    access_token: SecretString::from("hidden-value"),
                    valid_for: Duration::ZERO,
                }
            )
            .contains("hidden-value")
        );
    }

    #[tokio::test]
    async fn a_fixed_token_cannot_be_replaced_once_rejected() {
        let fixed = FixedToken(SecretString::from("only-token"));
        let given = fixed.access_token(None).await.unwrap();
        assert_eq!(given.access_token.expose_secret(), "only-token");
        let other = SecretString::from("someone-else");
        assert!(fixed.access_token(Some(&other)).await.is_ok());
        let err = fixed
            .access_token(Some(&given.access_token))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Auth { code, .. } if code == "invalid_token"),
            "{err:?}"
        );
        assert!(!format!("{err} {err:?}").contains("only-token"));
    }

    #[test]
    fn form_carries_the_enterprise_subject() {
        let creds = BoxCcgCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("shh"),
            enterprise_id: "777".into(),
        };
        let form = ccg_form(&creds);
        assert!(form.contains(&("grant_type", "client_credentials")));
        assert!(form.contains(&("box_subject_type", "enterprise")));
        assert!(form.contains(&("box_subject_id", "777")));
        assert!(form.contains(&("client_secret", "shh")));
    }
}
