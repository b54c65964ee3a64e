//! Builds the provider client an integration needs, from its stored credentials.

use crate::domain::{Integration, Provider};
use crate::provider::LicenseSource;
use crate::provider::box_client::{BoxCcgCredentials, BoxClient, BoxConfig};
use crate::provider::box_source::BoxSource;
use crate::provider::http::HttpClient;
use crate::secrets::{IntegrationCredentials, Secrets, SecretsError};
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
    #[error("integration {0} is not configured completely: {1}")]
    Misconfigured(String, &'static str),
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

/// The real factory: credentials from the `Secrets` port, one shared HTTP client.
pub struct ProviderSources {
    pub secrets: Arc<dyn Secrets>,
    pub http: HttpClient,
    pub box_config: BoxConfig,
}

#[async_trait]
impl SourceFactory for ProviderSources {
    async fn source_for(
        &self,
        integration: &Integration,
    ) -> Result<Box<dyn LicenseSource>, SourceError> {
        match integration.provider {
            Provider::Box => {
                let creds =
                    IntegrationCredentials::load(self.secrets.as_ref(), &integration.secret_name)
                        .await
                        .map_err(|source| SourceError::Credentials {
                            integration_id: integration.id.to_string(),
                            source,
                        })?;
                let client_secret = creds.client_secret.ok_or(SourceError::Misconfigured(
                    integration.id.to_string(),
                    "no client secret stored",
                ))?;
                let plan = integration.plan.ok_or(SourceError::Misconfigured(
                    integration.id.to_string(),
                    "no Box plan declared",
                ))?;
                let client = BoxClient::new(
                    self.box_config.clone(),
                    // Its own counter: a sync reports the requests it made itself.
                    self.http.with_new_counter(),
                    BoxCcgCredentials {
                        client_id: creds.client_id,
                        client_secret,
                        enterprise_id: integration.tenant_id.clone(),
                    },
                );
                Ok(Box::new(BoxSource::new(
                    client,
                    integration.tenant_id.clone(),
                    plan,
                    integration.service_user_id.clone(),
                )))
            }
            Provider::Salesforce => Err(SourceError::Unsupported(Provider::Salesforce)),
        }
    }
}
