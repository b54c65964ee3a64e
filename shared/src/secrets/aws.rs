//! Secrets Manager adapter of the [`Secrets`](super::Secrets) port.
//!
//! Values are cached in memory for a few seconds (design §5) so a burst of calls in one
//! container reads a secret once; they are never written anywhere else. Error messages name
//! the secret and the service's error, never the value.

use super::{Secrets, SecretsError};
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read value is reused before Secrets Manager is asked again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// Days a deleted secret can still be restored (Secrets Manager allows 7 to 30).
pub const DEFAULT_RECOVERY_WINDOW_DAYS: i64 = 7;

pub struct SecretsManagerSecrets {
    client: Client,
    cache: Mutex<HashMap<String, Cached>>,
    cache_ttl: Duration,
    recovery_window_days: i64,
}

struct Cached {
    value: SecretString,
    read_at: Instant,
}

impl std::fmt::Debug for SecretsManagerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerSecrets")
            .field("cache_ttl", &self.cache_ttl)
            .field("recovery_window_days", &self.recovery_window_days)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerSecrets {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
            cache_ttl: DEFAULT_CACHE_TTL,
            recovery_window_days: DEFAULT_RECOVERY_WINDOW_DAYS,
        }
    }

    /// How long values are cached; `Duration::ZERO` turns the cache off.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Days a deleted secret stays restorable (7 to 30).
    pub fn with_recovery_window_days(mut self, days: i64) -> Self {
        self.recovery_window_days = days;
        self
    }

    fn cached(&self, name: &str) -> Option<SecretString> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(name)
            .filter(|c| c.read_at.elapsed() < self.cache_ttl)
            .map(|c| c.value.clone())
    }

    fn remember(&self, name: &str, value: &SecretString) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Expired entries go whenever something is stored, so the cache stays small.
        cache.retain(|_, c| c.read_at.elapsed() < self.cache_ttl);
        cache.insert(
            name.to_owned(),
            Cached {
                value: value.clone(),
                read_at: Instant::now(),
            },
        );
    }

    fn forget(&self, name: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(name);
    }

    /// Whether the secret is scheduled for deletion: Secrets Manager answers requests on
    /// such a secret with InvalidRequestException, not ResourceNotFoundException.
    async fn is_scheduled_for_deletion(&self, name: &str) -> Result<bool, SecretsError> {
        match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => Ok(out.deleted_date().is_some()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(sdk_err("DescribeSecret", name, e)),
        }
    }

    async fn put_value(&self, name: &str, value: &SecretString) -> Result<(), PutOutcome> {
        let result = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Err(PutOutcome::Missing),
            Err(e) if e.code() == Some("InvalidRequestException") => {
                Err(PutOutcome::Invalid(sdk_err("PutSecretValue", name, e)))
            }
            Err(e) => Err(PutOutcome::Failed(sdk_err("PutSecretValue", name, e))),
        }
    }

    /// Creates the secret; `false` if another writer created it first.
    async fn create(&self, name: &str, value: &SecretString) -> Result<bool, SecretsError> {
        let result = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceExistsException") => Ok(false),
            Err(e) => Err(sdk_err("CreateSecret", name, e)),
        }
    }

    async fn restore(&self, name: &str) -> Result<(), SecretsError> {
        self.client
            .restore_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| sdk_err("RestoreSecret", name, e))?;
        Ok(())
    }

    async fn store(&self, name: &str, value: &SecretString) -> Result<(), SecretsError> {
        match self.put_value(name, value).await {
            Ok(()) => Ok(()),
            Err(PutOutcome::Missing) => {
                if self.create(name, value).await? {
                    return Ok(());
                }
                // Created by someone else meanwhile: ours is the newer value.
                self.put_value(name, value)
                    .await
                    .map_err(PutOutcome::into_error)
            }
            Err(PutOutcome::Invalid(err)) => {
                if !self.is_scheduled_for_deletion(name).await? {
                    return Err(err);
                }
                // Storing a value again undoes a deletion (a reconnect after a disconnect).
                self.restore(name).await?;
                self.put_value(name, value)
                    .await
                    .map_err(PutOutcome::into_error)
            }
            Err(PutOutcome::Failed(err)) => Err(err),
        }
    }
}

enum PutOutcome {
    Missing,
    Invalid(SecretsError),
    Failed(SecretsError),
}

impl PutOutcome {
    fn into_error(self) -> SecretsError {
        match self {
            PutOutcome::Missing => SecretsError::Backend {
                message: "the secret disappeared while it was being written".into(),
                source: None,
            },
            PutOutcome::Invalid(e) | PutOutcome::Failed(e) => e,
        }
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        if let Some(value) = self.cached(name) {
            return Ok(Some(value));
        }
        self.get_fresh(name).await
    }

    /// Asks Secrets Manager even when the cache holds the name; the answer refreshes the cache.
    async fn get_fresh(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        let result = self.client.get_secret_value().secret_id(name).send().await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                self.forget(name);
                return Ok(None);
            }
            Err(e) if e.code() == Some("InvalidRequestException") => {
                if self.is_scheduled_for_deletion(name).await? {
                    self.forget(name);
                    return Ok(None);
                }
                return Err(sdk_err("GetSecretValue", name, e));
            }
            Err(e) => return Err(sdk_err("GetSecretValue", name, e)),
        };
        let value = out
            .secret_string()
            .map(|s| SecretString::from(s.to_owned()))
            .ok_or_else(|| SecretsError::Malformed(name.to_owned()))?;
        self.remember(name, &value);
        Ok(Some(value))
    }

    async fn put(&self, name: &str, value: SecretString) -> Result<(), SecretsError> {
        self.forget(name);
        self.store(name, &value).await?;
        self.remember(name, &value);
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        self.forget(name);
        let result = self
            .client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(false)
            .recovery_window_in_days(self.recovery_window_days)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            // Deleting a secret already scheduled for deletion.
            Err(e) if e.code() == Some("InvalidRequestException") => {
                if self.is_scheduled_for_deletion(name).await? {
                    Ok(())
                } else {
                    Err(sdk_err("DeleteSecret", name, e))
                }
            }
            Err(e) => Err(sdk_err("DeleteSecret", name, e)),
        }
    }
}

/// The service's answer never echoes a secret value, and requests (which do hold it) are
/// not part of an `SdkError`'s message, so the context is safe to keep.
fn sdk_err<E, R>(operation: &str, name: &str, err: SdkError<E, R>) -> SecretsError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    SecretsError::backend(
        format!(
            "Secrets Manager {operation} of {name} failed: {}",
            DisplayErrorContext(&err)
        ),
        err,
    )
}
