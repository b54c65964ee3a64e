//! Connecting a tenant (design §7, "Connect (CCG)"): test what the integration needs, not a
//! role name; claim the tenant; store the secret, then the integration. Nothing is stored
//! unless every check passed.

use crate::clock::Clock;
use crate::domain::{
    AuthKind, BoxPlan, Integration, IntegrationId, IntegrationStatus, InvalidInput, Provider,
    ReclaimGuardRails, SyncSettings,
};
use crate::provider::ProviderError;
use crate::provider::box_client::{BoxCcgCredentials, BoxClient, BoxConfig};
use crate::provider::http::HttpClient;
use crate::secrets::{IntegrationCredentials, Secrets, SecretsError};
use crate::store::{Store, StoreError};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("Box refused the app's credentials ({code}): {description}")]
    Credentials { code: String, description: String },
    #[error("the credentials belong to enterprise {actual}, not {expected}")]
    WrongEnterprise { expected: String, actual: String },
    #[error("the app cannot {capability}: {fix}")]
    MissingCapability {
        capability: &'static str,
        fix: &'static str,
    },
    #[error("{provider} tenant {tenant_id} is already connected as integration {integration_id}")]
    TenantClaimed {
        provider: Provider,
        tenant_id: String,
        integration_id: String,
    },
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// A Box Client Credentials Grant connect request, already parsed.
pub struct BoxCcgConnect {
    pub client_id: String,
    pub client_secret: SecretString,
    pub enterprise_id: String,
    pub plan: BoxPlan,
    pub purchased_seats: Option<u64>,
    pub name: Option<String>,
}

impl BoxCcgConnect {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !id_ok(&self.client_id) {
            return Err(InvalidInput::new(
                "client_id",
                "must be 1-128 letters, digits, '-' or '_'",
            ));
        }
        let secret = self.client_secret.expose_secret();
        if secret.is_empty() || secret.len() > 256 || secret.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "client_secret",
                "must be 1-256 printable characters",
            ));
        }
        if self.enterprise_id.is_empty()
            || self.enterprise_id.len() > 20
            || !self.enterprise_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(InvalidInput::new(
                "enterprise_id",
                "must be Box's numeric enterprise id",
            ));
        }
        if let Some(seats) = self.purchased_seats {
            Integration::check_seats(seats)?;
        }
        if let Some(name) = &self.name {
            Integration::check_name("name", name)?;
        }
        Ok(())
    }
}

pub struct Connector<'a> {
    pub store: &'a dyn Store,
    pub secrets: &'a dyn Secrets,
    pub clock: &'a dyn Clock,
    pub http: HttpClient,
    pub box_config: BoxConfig,
}

impl Connector<'_> {
    #[tracing::instrument(skip_all, fields(enterprise_id = %request.enterprise_id))]
    pub async fn connect_box_ccg(
        &self,
        request: BoxCcgConnect,
    ) -> Result<Integration, ConnectError> {
        request.validate()?;
        let client = BoxClient::new(
            self.box_config.clone(),
            self.http.clone(),
            BoxCcgCredentials {
                client_id: request.client_id.clone(),
                client_secret: request.client_secret.clone(),
                enterprise_id: request.enterprise_id.clone(),
            },
        );
        let me = client.current_user().await.map_err(credentials_error)?;
        // The token must name the expected enterprise, not merely fail to name another.
        match me.enterprise_id.as_deref() {
            Some(actual) if actual == request.enterprise_id => {}
            actual => {
                return Err(ConnectError::WrongEnterprise {
                    expected: request.enterprise_id.clone(),
                    actual: actual.unwrap_or("no enterprise").to_owned(),
                });
            }
        }
        match client.probe_managed_users().await {
            Ok(n) if n > 0 => {}
            Ok(_) | Err(ProviderError::Forbidden { .. }) => {
                return Err(ConnectError::MissingCapability {
                    capability: "see the enterprise's managed users",
                    fix: "set the app's access level to App + Enterprise Access, grant the 'Manage users' scope and re-authorize the app in the Admin Console",
                });
            }
            Err(e) => return Err(ConnectError::Provider(e)),
        }
        match client.probe_events().await {
            Ok(()) => {}
            Err(ProviderError::Forbidden { .. }) => {
                return Err(ConnectError::MissingCapability {
                    capability: "read the enterprise event stream (last logins)",
                    fix: "grant the 'Manage enterprise properties' scope and re-authorize the app in the Admin Console",
                });
            }
            Err(e) => return Err(ConnectError::Provider(e)),
        }
        if let Some(owner) = self
            .store
            .tenant_owner(Provider::Box, &request.enterprise_id)
            .await?
        {
            return Err(ConnectError::TenantClaimed {
                provider: Provider::Box,
                tenant_id: request.enterprise_id.clone(),
                integration_id: owner.to_string(),
            });
        }

        let now = self.clock.now();
        let id = IntegrationId::generate();
        let integration = Integration {
            secret_name: Integration::secret_name_for(&id),
            id,
            provider: Provider::Box,
            name: request
                .name
                .clone()
                .or(me.enterprise_name.clone())
                .unwrap_or_else(|| format!("Box {}", request.enterprise_id)),
            auth_kind: AuthKind::ClientCredentials,
            tenant_id: request.enterprise_id.clone(),
            status: IntegrationStatus::Connected,
            enabled: true,
            plan: Some(request.plan),
            purchased_seats: request.purchased_seats,
            service_user_id: Some(me.id.clone()),
            sync: SyncSettings::default(),
            created_at: now,
            updated_at: now,
            last_sync: None,
            reclaim: ReclaimGuardRails::default(),
            seat_price: None,
        };
        IntegrationCredentials::client_credentials(request.client_id, request.client_secret)
            .save(self.secrets, &integration.secret_name)
            .await?;
        if let Err(e) = self.store.create_integration(&integration).await {
            // Lost a race for the tenant: leave nothing behind.
            if let Err(cleanup) = self.secrets.delete(&integration.secret_name).await {
                tracing::error!(error = %cleanup, "could not delete the secret of a refused integration");
            }
            return Err(match e {
                StoreError::TenantClaimed {
                    provider,
                    tenant_id,
                    integration_id,
                } => ConnectError::TenantClaimed {
                    provider,
                    tenant_id,
                    integration_id,
                },
                other => ConnectError::Store(other),
            });
        }
        tracing::info!(integration_id = %integration.id, "Box integration connected");
        Ok(integration)
    }
}

fn credentials_error(e: ProviderError) -> ConnectError {
    match e {
        ProviderError::Auth {
            code, description, ..
        } => ConnectError::Credentials { code, description },
        other => ConnectError::Provider(other),
    }
}
