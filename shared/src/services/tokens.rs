//! OAuth tokens of authorization-code integrations (design §5).
//!
//! The access token and its expiry live in the integration's secret, so every container
//! reuses one token instead of refreshing its own. Box refresh tokens are single use: a
//! refresh spends the stored one, and two containers refreshing with the same token would
//! leave one of them, and maybe the integration, with a dead grant. So a refresh is
//! serialised across containers by the token lock (`LEASE#token`), and its holder:
//!
//! 1. reads the secret again from the backend itself, not a cache: another container may
//!    have refreshed while we waited, and then its token is used;
//! 2. refreshes at Box (the request is never retried: the token is spent on arrival);
//! 3. writes the new refresh + access token pair to the secret, and only then hands the new
//!    access token out. If the write fails the call fails and the new token is never used;
//! 4. releases the lock (renewed meanwhile, so a slow refresh keeps it).
//!
//! A container that finds the lock held waits with jittered backoff, for a bounded time,
//! re-reading the secret until the holder's new token appears.
//!
//! `invalid_grant` means the user's grant is gone (revoked, expired after 60 idle days, or a
//! refresh whose answer was lost): the integration becomes `needs_reauth`, the error is
//! [`ProviderError::Auth`], and a new OAuth connect repairs it through
//! [`OAuthTokens::store_new_tokens`] / [`OAuthTokens::reconnect`]. Before marking, the secret is
//! read once more: if its refresh token changed meanwhile (a reconnect), that one is tried.
//!
//! No token, code or client secret is ever logged or put in an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::domain::{Integration, IntegrationId, IntegrationStatus};
use crate::provider::ProviderError;
use crate::provider::box_client::oauth::{self, BoxOAuthApp, BoxTokenSet};
use crate::provider::box_client::{AccessTokenProvider, BoxConfig, ProvidedToken};
use crate::provider::http::HttpClient;
use crate::secrets::{IntegrationCredentials, Secrets, SecretsError};
use crate::store::{Lease, LeaseKind, Store, StoreError};

const PROVIDER: &str = "box";

/// Refresh tokens tried under one hold of the lock: the stored one, and at most two that
/// replaced it while we were refreshing (a reconnect racing a refresh).
const MAX_REFRESH_ATTEMPTS: usize = 3;

/// The OAuth error code that means the grant itself is gone.
const INVALID_GRANT: &str = "invalid_grant";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLockOptions {
    /// How long the token lock lives unless renewed. The holder renews it every third of
    /// this while its refresh runs, so only a dead holder's lock expires.
    pub lock_ttl: Duration,
    /// How long a caller waits for another container's refresh before failing.
    pub max_wait: Duration,
    /// A stored access token is refreshed when it expires within this margin.
    pub refresh_margin: Duration,
    /// First pause while the lock is held; doubled per retry, jittered, capped.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for TokenLockOptions {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_secs(30),
            // Longer than the lock's lifetime, so a dead holder's lock can be taken over.
            max_wait: Duration::from_secs(40),
            refresh_margin: Duration::from_secs(5 * 60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl TokenLockOptions {
    /// Jittered exponential pause before re-reading, `U(0.5, 1.5) * initial * 2^retry`.
    fn backoff(&self, retry: u32) -> Duration {
        let exponential = 2u32
            .checked_pow(retry.min(16))
            .and_then(|factor| self.initial_backoff.checked_mul(factor))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        exponential.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The grant is gone; the integration was set to `needs_reauth`.
    #[error(
        "Box refused the stored refresh token of integration {integration_id} ({code}); \
         it needs to be reconnected"
    )]
    NeedsReauth {
        integration_id: IntegrationId,
        code: String,
    },
    #[error("the credentials of integration {integration_id} could not be read")]
    Read {
        integration_id: IntegrationId,
        #[source]
        source: SecretsError,
    },
    /// Box rotated the refresh token but the new pair could not be written: the new access
    /// token was not used.
    #[error(
        "the rotated tokens of integration {integration_id} could not be stored, so the new \
         access token was not used"
    )]
    NotStored {
        integration_id: IntegrationId,
        #[source]
        source: SecretsError,
    },
    #[error("the token lock of integration {integration_id} could not be used")]
    Lock {
        integration_id: IntegrationId,
        #[source]
        source: StoreError,
    },
    #[error("integration {integration_id} could not be updated")]
    Store {
        integration_id: IntegrationId,
        #[source]
        source: StoreError,
    },
    #[error(
        "another refresh of the token of integration {integration_id} did not finish within \
         {waited:?}"
    )]
    LockTimeout {
        integration_id: IntegrationId,
        waited: Duration,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl TokenError {
    /// What a Box API call reports: a refused grant is `Auth` (the sync stops and does not
    /// retry), a provider error stays itself, our own failures are `TokenHandling`.
    pub fn into_provider_error(self) -> ProviderError {
        match self {
            TokenError::Provider(e) => e,
            TokenError::NeedsReauth {
                integration_id,
                code,
            } => ProviderError::Auth {
                provider: PROVIDER,
                code,
                description: format!(
                    "the stored refresh token was refused; integration {integration_id} is now \
                     needs_reauth: reconnect it"
                ),
            },
            other => ProviderError::TokenHandling {
                provider: PROVIDER,
                detail: error_chain(&other),
            },
        }
    }
}

/// An error and its sources on one line. Secrets and store errors name the secret or the
/// item and the backend's complaint, never a value.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// How calls for one integration's token were served, since its provider was built.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TokenStats {
    /// Served from the secret without taking the lock.
    pub from_secret: u64,
    /// Refreshed at Box by this provider.
    pub refreshed: u64,
    /// Calls that found the lock held by another refresh at least once.
    pub waited_for_lock: u64,
    /// Served a token another container had refreshed while this one waited or locked.
    pub refreshed_elsewhere: u64,
}

#[derive(Default)]
struct Counters {
    from_secret: AtomicU64,
    refreshed: AtomicU64,
    waited_for_lock: AtomicU64,
    refreshed_elsewhere: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Token handling shared by every OAuth integration: the ports and the lock settings.
/// Cheap to clone.
#[derive(Clone)]
pub struct OAuthTokens {
    store: Arc<dyn Store>,
    secrets: Arc<dyn Secrets>,
    clock: Arc<dyn Clock>,
    options: TokenLockOptions,
}

impl OAuthTokens {
    pub fn new(store: Arc<dyn Store>, secrets: Arc<dyn Secrets>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            secrets,
            clock,
            options: TokenLockOptions::default(),
        }
    }

    pub fn with_options(mut self, options: TokenLockOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> &TokenLockOptions {
        &self.options
    }

    /// The access-token provider of one Box integration, for
    /// [`BoxClient::with_token_provider`](crate::provider::box_client::BoxClient::with_token_provider).
    /// `http` is used for refreshes (share the client's, so its request count includes them).
    pub fn box_provider(
        &self,
        integration: &Integration,
        app: BoxOAuthApp,
        http: HttpClient,
        box_config: BoxConfig,
    ) -> BoxTokenProvider {
        BoxTokenProvider {
            tokens: self.clone(),
            integration_id: integration.id.clone(),
            secret_name: integration.secret_name.clone(),
            app,
            http,
            box_config,
            counters: Counters::default(),
        }
    }

    /// Stores the tokens of a new grant (an OAuth connect's code exchange) in the
    /// integration's secret, replacing whatever it held. `client_id` is the OAuth app's.
    ///
    /// Waits for a refresh in flight (the token lock) so it cannot overwrite these tokens
    /// with the old grant's; if the lock stays held past the wait, the tokens are written
    /// anyway: a new grant is what the admin just approved.
    #[tracing::instrument(name = "oauth.store_new_tokens", skip_all, fields(integration_id = %integration.id))]
    pub async fn store_new_tokens(
        &self,
        integration: &Integration,
        client_id: &str,
        tokens: &BoxTokenSet,
    ) -> Result<(), TokenError> {
        let lease = self.wait_for_lock(&integration.id).await;
        let creds = IntegrationCredentials {
            client_id: client_id.to_owned(),
            client_secret: None,
            refresh_token: Some(tokens.refresh_token.clone()),
            access_token: Some(tokens.access_token.clone()),
            access_token_expires_at: Some(tokens.expires_at),
        };
        let saved = creds
            .save(self.secrets.as_ref(), &integration.secret_name)
            .await
            .map_err(|source| TokenError::NotStored {
                integration_id: integration.id.clone(),
                source,
            });
        if let Some(lease) = lease {
            self.release(&lease).await;
        }
        saved?;
        tracing::info!("new OAuth tokens stored");
        Ok(())
    }

    /// Repairs an integration after a new OAuth connect for the same tenant: stores the new
    /// grant's tokens, then sets the status back to `connected`. Callers decide beforehand
    /// whether the integration may be repaired (same tenant, not disconnected).
    pub async fn reconnect(
        &self,
        integration: &Integration,
        client_id: &str,
        tokens: &BoxTokenSet,
    ) -> Result<Integration, TokenError> {
        self.store_new_tokens(integration, client_id, tokens)
            .await?;
        let now = self.clock.now();
        let change = move |i: &mut Integration| {
            i.status = IntegrationStatus::Connected;
            i.updated_at = now;
        };
        let repaired = self
            .store
            .modify_integration(&integration.id, &change)
            .await
            .map_err(|source| TokenError::Store {
                integration_id: integration.id.clone(),
                source,
            })?;
        tracing::info!(integration_id = %integration.id, "integration reconnected");
        Ok(repaired)
    }

    /// Takes the token lock, waiting (bounded) while someone else holds it. `None` when it
    /// could not be had; the caller decides whether to go on without it.
    async fn wait_for_lock(&self, id: &IntegrationId) -> Option<Lease> {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            match self.try_lock(id).await {
                Ok(Some(lease)) => return Some(lease),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "token lock unavailable");
                    return None;
                }
            }
            let waited = started.elapsed();
            if waited >= self.options.max_wait {
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    "token lock still held"
                );
                return None;
            }
            tokio::time::sleep(self.pause(retry, waited)).await;
            retry += 1;
        }
    }

    /// One attempt at the lock, with an owner unique to this attempt. `None`: held by another.
    async fn try_lock(&self, id: &IntegrationId) -> Result<Option<Lease>, TokenError> {
        let owner = format!("token-{}", uuid::Uuid::new_v4());
        let now = self.clock.now();
        match self
            .store
            .acquire_lease(id, LeaseKind::Token, &owner, now, self.lock_expiry(now))
            .await
        {
            Ok(lease) => Ok(Some(lease)),
            Err(StoreError::LeaseHeld { .. }) => Ok(None),
            Err(source) => Err(TokenError::Lock {
                integration_id: id.clone(),
                source,
            }),
        }
    }

    fn lock_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + TimeDelta::from_std(self.options.lock_ttl).unwrap_or(TimeDelta::seconds(30))
    }

    /// The next pause, never past the end of the wait.
    fn pause(&self, retry: u32, waited: Duration) -> Duration {
        self.options
            .backoff(retry)
            .min(self.options.max_wait.saturating_sub(waited))
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.store.release_lease(lease).await {
            // It expires on its own; the next refresh only waits a little longer.
            tracing::warn!(error = %e, "could not release the token lock");
        }
    }

    /// Runs `work` while renewing `lease`, so a slow refresh does not lose the lock to a
    /// second refresher (which would find the stored refresh token spent). Gives back the
    /// work's outcome and the lease as last renewed.
    async fn holding<T>(&self, mut lease: Lease, work: impl Future<Output = T>) -> (T, Lease) {
        let every = (self.options.lock_ttl / 3).max(Duration::from_millis(10));
        tokio::pin!(work);
        loop {
            tokio::select! {
                outcome = &mut work => return (outcome, lease),
                () = tokio::time::sleep(every) => {
                    let now = self.clock.now();
                    match self.store.renew_lease(&lease, now, self.lock_expiry(now), None).await {
                        Ok(renewed) => lease = renewed,
                        // The refresh goes on: once Box answers, its tokens must be stored.
                        Err(e) => tracing::warn!(error = %e, "could not renew the token lock"),
                    }
                }
            }
        }
    }
}

/// The access-token provider of one Box OAuth integration (see the module docs).
pub struct BoxTokenProvider {
    tokens: OAuthTokens,
    integration_id: IntegrationId,
    secret_name: String,
    app: BoxOAuthApp,
    http: HttpClient,
    box_config: BoxConfig,
    counters: Counters,
}

impl std::fmt::Debug for BoxTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxTokenProvider")
            .field("integration_id", &self.integration_id)
            .field("secret_name", &self.secret_name)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl AccessTokenProvider for BoxTokenProvider {
    async fn access_token(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, ProviderError> {
        self.token(rejected)
            .await
            .map_err(TokenError::into_provider_error)
    }
}

impl BoxTokenProvider {
    pub fn stats(&self) -> TokenStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TokenStats {
            from_secret: get(&self.counters.from_secret),
            refreshed: get(&self.counters.refreshed),
            waited_for_lock: get(&self.counters.waited_for_lock),
            refreshed_elsewhere: get(&self.counters.refreshed_elsewhere),
        }
    }

    /// A usable access token: the stored one while it is valid (and not `rejected`, a token
    /// Box just answered 401 to), else a refreshed one, stored before it is returned.
    #[tracing::instrument(name = "oauth.access_token", skip_all, fields(integration_id = %self.integration_id))]
    pub async fn token(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, TokenError> {
        // A cached read is fine here: a stale token is caught by its expiry or a 401.
        let creds = self.read(false).await?;
        if let Some(token) = self.usable(&creds, rejected) {
            bump(&self.counters.from_secret);
            return Ok(token);
        }
        self.refresh_serialised(rejected).await
    }

    async fn read(&self, fresh: bool) -> Result<IntegrationCredentials, TokenError> {
        let secrets = self.tokens.secrets.as_ref();
        let loaded = if fresh {
            IntegrationCredentials::load_fresh(secrets, &self.secret_name).await
        } else {
            IntegrationCredentials::load(secrets, &self.secret_name).await
        };
        loaded.map_err(|source| TokenError::Read {
            integration_id: self.integration_id.clone(),
            source,
        })
    }

    /// The stored access token, if it is valid beyond the margin and not the rejected one.
    fn usable(
        &self,
        creds: &IntegrationCredentials,
        rejected: Option<&SecretString>,
    ) -> Option<ProvidedToken> {
        let token = creds.access_token.as_ref()?;
        if token.expose_secret().is_empty()
            || rejected.is_some_and(|r| r.expose_secret() == token.expose_secret())
        {
            return None;
        }
        let left = (creds.access_token_expires_at? - self.tokens.clock.now())
            .to_std()
            .ok()?;
        (left > self.tokens.options.refresh_margin).then(|| ProvidedToken {
            access_token: token.clone(),
            valid_for: left,
        })
    }

    /// Takes the lock and refreshes, or waits for whoever holds it and uses their token.
    async fn refresh_serialised(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, TokenError> {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            if let Some(lease) = self.tokens.try_lock(&self.integration_id).await? {
                let (outcome, lease) = self
                    .tokens
                    .holding(lease, self.refresh_locked(rejected))
                    .await;
                self.tokens.release(&lease).await;
                return outcome;
            }
            if retry == 0 {
                bump(&self.counters.waited_for_lock);
                tracing::debug!("token lock held by another refresh; waiting");
            }
            let waited = started.elapsed();
            if waited >= self.tokens.options.max_wait {
                return Err(TokenError::LockTimeout {
                    integration_id: self.integration_id.clone(),
                    waited,
                });
            }
            tokio::time::sleep(self.tokens.pause(retry, waited)).await;
            retry += 1;
            // The holder writes its new token before releasing: look for it.
            let creds = self.read(true).await?;
            if let Some(token) = self.usable(&creds, rejected) {
                bump(&self.counters.refreshed_elsewhere);
                return Ok(token);
            }
        }
    }

    /// Under the lock: the secret as it is now, refreshed at Box if still needed.
    async fn refresh_locked(
        &self,
        rejected: Option<&SecretString>,
    ) -> Result<ProvidedToken, TokenError> {
        // Another container may have refreshed between our first read and the lock; the
        // cache could hide that, so ask the backend itself.
        let mut creds = self.read(true).await?;
        for _ in 0..MAX_REFRESH_ATTEMPTS {
            if let Some(token) = self.usable(&creds, rejected) {
                bump(&self.counters.refreshed_elsewhere);
                return Ok(token);
            }
            let Some(refresh_token) = creds.refresh_token.clone() else {
                return Err(self.needs_reauth("no_refresh_token").await);
            };
            let now = self.tokens.clock.now();
            match oauth::refresh(&self.http, &self.box_config, &self.app, &refresh_token, now).await
            {
                Ok(set) => return self.persist(creds, set).await,
                Err(ProviderError::Auth { code, .. }) if code == INVALID_GRANT => {
                    // A reconnect (or a refresh whose lock had expired) may have replaced the
                    // token meanwhile: the grant is only gone if the stored token is the one
                    // Box refused.
                    let current = self.read(true).await?;
                    let replaced = current.refresh_token.as_ref().is_some_and(|stored| {
                        stored.expose_secret() != refresh_token.expose_secret()
                    });
                    if !replaced {
                        return Err(self.needs_reauth(INVALID_GRANT).await);
                    }
                    tracing::info!("refresh token replaced during the refresh; trying the new one");
                    creds = current;
                }
                // `Unavailable` may mean Box spent the token without our seeing the answer;
                // if so the next refresh gets `invalid_grant` and marks the integration.
                Err(other) => return Err(other.into()),
            }
        }
        Err(self.needs_reauth(INVALID_GRANT).await)
    }

    /// Writes the rotated pair, and only then hands out the new access token: Box has spent
    /// the old refresh token, so a new access token used without its refresh token stored
    /// would leave the integration without a grant after the next expiry.
    async fn persist(
        &self,
        old: IntegrationCredentials,
        set: BoxTokenSet,
    ) -> Result<ProvidedToken, TokenError> {
        let creds = IntegrationCredentials {
            client_id: old.client_id,
            client_secret: old.client_secret,
            refresh_token: Some(set.refresh_token),
            access_token: Some(set.access_token.clone()),
            access_token_expires_at: Some(set.expires_at),
        };
        if let Err(source) = creds
            .save(self.tokens.secrets.as_ref(), &self.secret_name)
            .await
        {
            tracing::error!(
                error = %error_chain(&source),
                "rotated Box tokens not stored; the new access token is not used"
            );
            return Err(TokenError::NotStored {
                integration_id: self.integration_id.clone(),
                source,
            });
        }
        bump(&self.counters.refreshed);
        let valid_for = (set.expires_at - self.tokens.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tracing::info!(
            valid_for_s = valid_for.as_secs(),
            "Box OAuth tokens refreshed and stored"
        );
        Ok(ProvidedToken {
            access_token: set.access_token,
            valid_for,
        })
    }

    /// Records that the grant is gone; the error to return.
    async fn needs_reauth(&self, code: &str) -> TokenError {
        let now = self.tokens.clock.now();
        let change = move |i: &mut Integration| {
            // Disabled or disconnected integrations keep their status.
            if matches!(
                i.status,
                IntegrationStatus::Connected | IntegrationStatus::Error
            ) {
                i.status = IntegrationStatus::NeedsReauth;
                i.updated_at = now;
            }
        };
        match self
            .tokens
            .store
            .modify_integration(&self.integration_id, &change)
            .await
        {
            Ok(_) => tracing::warn!(
                code,
                "Box refused the refresh token: the integration needs to be reconnected"
            ),
            Err(e) => tracing::error!(
                error = %e,
                code,
                "Box refused the refresh token, and needs_reauth could not be recorded"
            ),
        }
        TokenError::NeedsReauth {
            integration_id: self.integration_id.clone(),
            code: code.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let options = TokenLockOptions::default();
        for _ in 0..100 {
            let first = options.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
            assert!(options.backoff(40) <= options.max_backoff.mul_f64(1.5));
        }
    }

    #[test]
    fn refused_grants_become_auth_errors_without_secrets() {
        let id = IntegrationId::parse("int-1").unwrap();
        let err = TokenError::NeedsReauth {
            integration_id: id.clone(),
            code: INVALID_GRANT.into(),
        }
        .into_provider_error();
        assert!(
            matches!(&err, ProviderError::Auth { code, description, .. }
                if code == INVALID_GRANT && description.contains("needs_reauth")),
            "{err:?}"
        );
        let err = TokenError::NotStored {
            integration_id: id,
            source: SecretsError::NotFound("seatkeeper/integrations/int-1".into()),
        }
        .into_provider_error();
        match err {
            ProviderError::TokenHandling { detail, .. } => {
                assert!(detail.contains("not used"), "{detail}");
                assert!(detail.contains("seatkeeper/integrations/int-1"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
