//! The `Secrets` port: credentials live only here (Secrets Manager in AWS, a 0600 file locally).
//! Values travel as [`SecretString`] so they cannot be printed or logged by accident.

pub mod aws;
pub mod file;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Provider;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("secret {0} is not in the expected format")]
    Malformed(String),
    #[error("secrets backend failed: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl SecretsError {
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        SecretsError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[async_trait]
pub trait Secrets: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError>;
    /// Reads the value from the backend itself, never from a cache: for decisions that must
    /// see another container's latest write (the re-read under the OAuth token lock).
    /// Adapters without a cache read the same way as [`Secrets::get`].
    async fn get_fresh(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        self.get(name).await
    }
    /// Creates the secret or stores a new value for it.
    async fn put(&self, name: &str, value: SecretString) -> Result<(), SecretsError>;
    /// Deletes the secret; deleting a missing secret is not an error.
    async fn delete(&self, name: &str) -> Result<(), SecretsError>;
}

/// What an integration's secret holds (design §5), as JSON inside the secret value.
#[derive(Clone, Serialize, Deserialize)]
pub struct IntegrationCredentials {
    pub client_id: String,
    #[serde(with = "secret_opt", default)]
    pub client_secret: Option<SecretString>,
    #[serde(with = "secret_opt", default)]
    pub refresh_token: Option<SecretString>,
    #[serde(with = "secret_opt", default)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub access_token_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IntegrationCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationCredentials")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl IntegrationCredentials {
    pub fn client_credentials(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: Some(client_secret),
            refresh_token: None,
            access_token: None,
            access_token_expires_at: None,
        }
    }

    pub async fn load(secrets: &dyn Secrets, name: &str) -> Result<Self, SecretsError> {
        let raw = secrets
            .get(name)
            .await?
            .ok_or_else(|| SecretsError::NotFound(name.to_owned()))?;
        Self::parse(name, &raw)
    }

    /// Like [`IntegrationCredentials::load`], bypassing any cache ([`Secrets::get_fresh`]).
    pub async fn load_fresh(secrets: &dyn Secrets, name: &str) -> Result<Self, SecretsError> {
        let raw = secrets
            .get_fresh(name)
            .await?
            .ok_or_else(|| SecretsError::NotFound(name.to_owned()))?;
        Self::parse(name, &raw)
    }

    fn parse(name: &str, raw: &SecretString) -> Result<Self, SecretsError> {
        serde_json::from_str(raw.expose_secret())
            .map_err(|_| SecretsError::Malformed(name.to_owned()))
    }

    pub async fn save(&self, secrets: &dyn Secrets, name: &str) -> Result<(), SecretsError> {
        let json =
            serde_json::to_string(self).map_err(|_| SecretsError::Malformed(name.to_owned()))?;
        secrets.put(name, SecretString::from(json)).await
    }
}

/// The client id/secret of Seatkeeper's own OAuth app at a provider, kept in the secret
/// `seatkeeper/apps/<provider>` as `{"client_id": "...", "client_secret": "..."}`.
/// Used both to start OAuth connects and to refresh the tokens of OAuth integrations.
#[derive(Clone)]
pub struct OAuthAppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for OAuthAppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthAppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// The JSON shape of the app secret; private so the secret only leaves it as a `SecretString`.
#[derive(Deserialize)]
struct OAuthAppCredentialsJson {
    client_id: String,
    client_secret: String,
}

impl OAuthAppCredentials {
    pub fn secret_name(provider: Provider) -> String {
        format!("seatkeeper/apps/{}", provider.as_str())
    }

    pub async fn load(secrets: &dyn Secrets, provider: Provider) -> Result<Self, SecretsError> {
        let name = Self::secret_name(provider);
        let raw = secrets
            .get(&name)
            .await?
            .ok_or_else(|| SecretsError::NotFound(name.clone()))?;
        let parsed: OAuthAppCredentialsJson = serde_json::from_str(raw.expose_secret())
            .map_err(|_| SecretsError::Malformed(name.clone()))?;
        if parsed.client_id.trim().is_empty() || parsed.client_secret.is_empty() {
            return Err(SecretsError::Malformed(name));
        }
        Ok(Self {
            client_id: parsed.client_id,
            client_secret: SecretString::from(parsed.client_secret),
        })
    }
}

/// Serde for `Option<SecretString>`: secrecy deliberately does not serialize secrets, and
/// writing them into the secret store is the one place where we must.
mod secret_opt {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(secret) => s.serialize_some(secret.expose_secret()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
    }
}
