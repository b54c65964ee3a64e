//! The `SyncTrigger` port: start (or continue) one integration's sync somewhere else, so a
//! scheduled run never syncs every tenant in one invocation. In AWS: an asynchronous
//! invocation of the license-sync function.

use crate::domain::IntegrationId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The payload of a direct license-sync invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub integration_id: IntegrationId,
    /// Present when continuing a sync that handed over near its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<ContinueFrom>,
}

/// Names the sync to continue; its state is in the sync lease, not in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinueFrom {
    pub sync_id: String,
    /// Which hand-over this continues: a stale duplicate delivery cannot take a later one.
    pub handover: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("could not start the sync of integration {integration_id}: {message}")]
pub struct TriggerError {
    pub integration_id: IntegrationId,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[async_trait]
pub trait SyncTrigger: Send + Sync {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError>;
}

/// Invokes the license-sync function asynchronously (`InvocationType=Event`).
pub struct LambdaSyncTrigger {
    client: aws_sdk_lambda::Client,
    function_name: String,
}

impl LambdaSyncTrigger {
    pub fn new(client: aws_sdk_lambda::Client, function_name: impl Into<String>) -> Self {
        Self {
            client,
            function_name: function_name.into(),
        }
    }
}

#[async_trait]
impl SyncTrigger for LambdaSyncTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        let fail = |message: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            TriggerError {
                integration_id: request.integration_id.clone(),
                message,
                source,
            }
        };
        let payload = serde_json::to_vec(request)
            .map_err(|e| fail("cannot encode the payload".into(), Some(Box::new(e))))?;
        self.client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| fail("Lambda refused the invocation".into(), Some(Box::new(e))))?;
        Ok(())
    }
}
