//! Builds the provider client an integration needs, from its stored credentials.
//!
//! Box integrations connect either with the Client Credentials Grant (the app's id and
//! secret in the integration's secret) or by OAuth (the app's credentials in
//! `seatkeeper/apps/box`, the grant's tokens in the integration's secret, refreshed through
//! [`OAuthTokens`]).

use crate::clock::Clock;
use crate::domain::{AuthKind, BoxPlan, Integration, IntegrationStatus, Provider};
use crate::provider::LicenseSource;
use crate::provider::box_client::oauth::BoxOAuthApp;
use crate::provider::box_client::{BoxCcgCredentials, BoxClient, BoxConfig};
use crate::provider::box_source::BoxSource;
use crate::provider::http::HttpClient;
use crate::secrets::{IntegrationCredentials, OAuthAppCredentials, Secrets, SecretsError};
use crate::services::tokens::{OAuthTokens, TokenLockOptions};
use crate::store::Store;
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the credentials of integration {integration_id} could not be loaded")]
    Credentials {
        integration_id: String,
        #[source]
        source: SecretsError,
    },
    #[error("the {provider} OAuth app's credentials could not be loaded")]
    AppCredentials {
        provider: Provider,
        #[source]
        source: SecretsError,
    },
    #[error("integration {0} is not configured completely: {1}")]
    Misconfigured(String, &'static str),
    /// The provider refused the integration's grant earlier: nothing works until an admin
    /// connects it again.
    #[error("integration {0} needs to be reconnected (status needs_reauth)")]
    NeedsReauth(String),
    #[error("{0} integrations are not supported yet")]
    Unsupported(Provider),
}

#[async_trait]
pub trait SourceFactory: Send + Sync {
    async fn source_for(
        &self,
        integration: &Integration,
    ) -> Result<Box<dyn LicenseSource>, SourceError>;
}

/// The real factory: credentials from the `Secrets` port, one shared HTTP client, and for
/// OAuth integrations the store (token lock, `needs_reauth`) and the clock (token expiry).
pub struct ProviderSources {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<dyn Clock>,
    pub http: HttpClient,
    pub box_config: BoxConfig,
    pub token_options: TokenLockOptions,
}

impl ProviderSources {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
        http: HttpClient,
        box_config: BoxConfig,
    ) -> Self {
        Self {
            store,
            secrets,
            clock,
            http,
            box_config,
            token_options: TokenLockOptions::default(),
        }
    }

    pub fn with_token_options(mut self, options: TokenLockOptions) -> Self {
        self.token_options = options;
        self
    }

    /// The Box client for `integration`, by its auth kind. Builds no connection and asks
    /// Box nothing: tokens are fetched on the first call.
    pub async fn box_client(&self, integration: &Integration) -> Result<BoxClient, SourceError> {
        let id = integration.id.to_string();
        if integration.status == IntegrationStatus::NeedsReauth {
            return Err(SourceError::NeedsReauth(id));
        }
        let creds = IntegrationCredentials::load(self.secrets.as_ref(), &integration.secret_name)
            .await
            .map_err(|source| SourceError::Credentials {
                integration_id: id.clone(),
                source,
            })?;
        // Its own counter: a sync reports the requests it made itself, token requests included.
        let http = self.http.with_new_counter();
        match integration.auth_kind {
            AuthKind::ClientCredentials => {
                let client_secret = creds
                    .client_secret
                    .ok_or(SourceError::Misconfigured(id, "no client secret stored"))?;
                Ok(BoxClient::new(
                    self.box_config.clone(),
                    http,
                    BoxCcgCredentials {
                        client_id: creds.client_id,
                        client_secret,
                        enterprise_id: integration.tenant_id.clone(),
                    },
                ))
            }
            AuthKind::OAuth => {
                if creds.refresh_token.is_none() {
                    return Err(SourceError::Misconfigured(id, "no refresh token stored"));
                }
                let app = OAuthAppCredentials::load(self.secrets.as_ref(), Provider::Box)
                    .await
                    .map_err(|source| SourceError::AppCredentials {
                        provider: Provider::Box,
                        source,
                    })?;
                let tokens =
                    OAuthTokens::new(self.store.clone(), self.secrets.clone(), self.clock.clone())
                        .with_options(self.token_options.clone())
                        .box_provider(
                            integration,
                            BoxOAuthApp {
                                client_id: app.client_id,
                                client_secret: app.client_secret,
                            },
                            http.clone(),
                            self.box_config.clone(),
                        );
                Ok(BoxClient::with_token_provider(
                    self.box_config.clone(),
                    http,
                    Arc::new(tokens),
                ))
            }
        }
    }
}

#[async_trait]
impl SourceFactory for ProviderSources {
    async fn source_for(
        &self,
        integration: &Integration,
    ) -> Result<Box<dyn LicenseSource>, SourceError> {
        match integration.provider {
            Provider::Box => {
                let plan: BoxPlan = integration.plan.ok_or(SourceError::Misconfigured(
                    integration.id.to_string(),
                    "no Box plan declared",
                ))?;
                let client = self.box_client(integration).await?;
                // Only a client-credentials integration acts as a service account (no seat).
                // An OAuth integration acts as the admin who authorised it: a person holding a
                // seat, counted like any other and kept from reclaim by the reclaim rules.
                let service_account = match integration.auth_kind {
                    AuthKind::ClientCredentials => integration.service_user_id.clone(),
                    AuthKind::OAuth => None,
                };
                Ok(Box::new(BoxSource::new(
                    client,
                    integration.tenant_id.clone(),
                    plan,
                    service_account,
                )))
            }
            Provider::Salesforce => Err(SourceError::Unsupported(Provider::Salesforce)),
        }
    }
}
