//! The license-sync Lambda: an EventBridge schedule fans out one asynchronous invocation per
//! enabled integration; a direct invocation syncs one integration and, near its deadline,
//! hands over to a new invocation.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use seatkeeper_shared::clock::Clock;
use seatkeeper_shared::domain::IntegrationStatus;
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::services::sources::SourceError;
use seatkeeper_shared::services::{Deadline, LicenseSync, SourceFactory, SyncError, SyncOptions};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the function is invoked with.
#[derive(Debug)]
pub enum SyncEvent {
    Direct(SyncRequest),
    Scheduled(Box<EventBridgeEvent<Value>>),
}

/// Chosen by shape, so a malformed direct request gets its own error (say, a bad
/// `integration_id`) rather than "matched no variant".
impl<'de> Deserialize<'de> for SyncEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(deserializer)?;
        if value.get("integration_id").is_some() {
            SyncRequest::deserialize(value)
                .map(SyncEvent::Direct)
                .map_err(D::Error::custom)
        } else if value.get("detail-type").is_some() {
            EventBridgeEvent::deserialize(value)
                .map(|e| SyncEvent::Scheduled(Box::new(e)))
                .map_err(D::Error::custom)
        } else {
            Err(D::Error::custom(
                "expected {\"integration_id\": ...} or an EventBridge scheduled event",
            ))
        }
    }
}

pub struct Deps {
    pub store: Arc<dyn Store>,
    pub sources: Arc<dyn SourceFactory>,
    pub trigger: Arc<dyn SyncTrigger>,
    pub clock: Arc<dyn Clock>,
    pub options: SyncOptions,
    /// Time kept free before the Lambda deadline to save the checkpoint and hand over.
    pub deadline_margin: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] seatkeeper_shared::store::StoreError),
    #[error(transparent)]
    Trigger(#[from] seatkeeper_shared::trigger::TriggerError),
}

pub async fn handle(event: LambdaEvent<SyncEvent>, deps: &Deps) -> Result<Value, HandlerError> {
    match event.payload {
        SyncEvent::Scheduled(_) => fan_out(deps).await,
        SyncEvent::Direct(request) => {
            let deadline = lambda_deadline(event.context.deadline, deps.deadline_margin);
            sync_one(request, deadline, deps).await
        }
    }
}

/// One invocation per enabled, connected integration; one failing trigger does not stop
/// the others.
async fn fan_out(deps: &Deps) -> Result<Value, HandlerError> {
    let mut started = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for integration in deps.store.list_integrations().await? {
        if !integration.enabled || integration.status != IntegrationStatus::Connected {
            skipped.push(integration.id.to_string());
            continue;
        }
        let request = SyncRequest {
            integration_id: integration.id.clone(),
            checkpoint: None,
        };
        match deps.trigger.trigger(&request).await {
            Ok(()) => started.push(integration.id.to_string()),
            Err(e) => {
                tracing::error!(error = %e, integration_id = %integration.id, "could not start a sync");
                failed.push(integration.id.to_string());
            }
        }
    }
    tracing::info!(
        started = started.len(),
        skipped = skipped.len(),
        failed = failed.len(),
        "scheduled fan-out"
    );
    Ok(json!({ "started": started, "skipped": skipped, "failed": failed }))
}

async fn sync_one(
    request: SyncRequest,
    deadline: Deadline,
    deps: &Deps,
) -> Result<Value, HandlerError> {
    let sync = LicenseSync {
        store: deps.store.as_ref(),
        sources: deps.sources.as_ref(),
        clock: deps.clock.as_ref(),
        options: deps.options.clone(),
    };
    let summary = match sync
        .run(
            &request.integration_id,
            request.checkpoint.as_ref(),
            deadline,
        )
        .await
    {
        Ok(summary) => summary,
        // Another invocation is already syncing this integration: nothing to do.
        Err(SyncError::Busy { until, .. }) => {
            return Ok(json!({
                "integration_id": request.integration_id,
                "status": "busy",
                "until": until,
            }));
        }
        // Already recorded, and a retry would fail the same way: answer, don't raise, so
        // Lambda does not run it again.
        // A refused grant (`invalid_grant` sets the integration to needs_reauth) stays refused
        // until an admin reconnects it.
        Err(
            e @ (SyncError::NotFound(_)
            | SyncError::Disabled(_)
            | SyncError::CheckpointLost(_)
            | SyncError::RosterIncomplete { .. }
            | SyncError::Provider(ProviderError::Auth { .. })
            | SyncError::Source(SourceError::NeedsReauth(_))),
        ) => {
            tracing::warn!(error = %e, "sync not run, or failed for good");
            return Ok(json!({
                "integration_id": request.integration_id,
                "status": "failed",
                "error": e.to_string(),
            }));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(next) = summary.continue_from() {
        deps.trigger
            .trigger(&SyncRequest {
                integration_id: request.integration_id.clone(),
                checkpoint: Some(next),
            })
            .await?;
    }
    Ok(serde_json::to_value(&summary).unwrap_or_else(|_| json!({ "sync_id": summary.sync_id })))
}

/// The Lambda context's deadline (epoch millis) as an `Instant`, less the margin.
fn lambda_deadline(deadline_ms: u64, margin: Duration) -> Deadline {
    if deadline_ms == 0 {
        return Deadline::none();
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(margin);
    Deadline::at(Instant::now() + left)
}

/// Errors leave the function with a stable type name, for alarms and retries.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Sync(SyncError::NotFound(_)) => "Seatkeeper.NotFound",
            HandlerError::Sync(SyncError::Disabled(_)) => "Seatkeeper.Disabled",
            HandlerError::Sync(SyncError::RosterIncomplete { .. }) => "Seatkeeper.RosterIncomplete",
            HandlerError::Sync(SyncError::Provider(_) | SyncError::Source(_)) => {
                "Seatkeeper.ProviderFailed"
            }
            HandlerError::Sync(_) | HandlerError::Store(_) => "Seatkeeper.StoreFailed",
            HandlerError::Trigger(_) => "Seatkeeper.TriggerFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}
