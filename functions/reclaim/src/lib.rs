//! The reclaim Lambda: the task handler of the reclaim state machine
//! (`infra/statemachines/reclaim.asl.json`). Thin: parse the task's payload, call the
//! reclaim service in `shared`, answer its small result, or fail with an error whose type
//! is the stable name the state machine's Retry and Catch match.
//!
//! | `action` | payload | answer |
//! |---|---|---|
//! | `plan` | `job_id` | [`PlanSummary`](seatkeeper_shared::services::reclaim::PlanSummary) |
//! | `await_approval` | `job_id`, `task_token` | [`ApprovalWait`](seatkeeper_shared::services::reclaim::ApprovalWait); an auto-approved job answers its own wait |
//! | `reclaim_batch` | `job_id`, `batch` | [`BatchOutcome`](seatkeeper_shared::services::reclaim::BatchOutcome) (`done: false`: call again) |
//! | `finalize` | `job_id` | [`JobSummary`](seatkeeper_shared::services::reclaim::JobSummary) |

use lambda_runtime::LambdaEvent;
use seatkeeper_shared::domain::{ReclaimJobId, TaskToken};
use seatkeeper_shared::services::Deadline;
use seatkeeper_shared::services::reclaim::{ReclaimError, Reclaimer};
use seatkeeper_shared::workflow::{Workflow, WorkflowError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// The error type of a payload that is not a reclaim request (one of
/// `seatkeeper_shared::services::reclaim::ERROR_NAMES`): retrying it changes nothing.
pub const INVALID_REQUEST: &str = "Seatkeeper.Invalid";
/// The error type of an unexpected failure of the handler itself (also one of the
/// service's names).
pub const INTERNAL: &str = "Seatkeeper.Internal";
/// The error type when Step Functions could not be told that an auto-approved job may go
/// on: retried by the state machine (a retried wait brings a new token, and the job is
/// still approved).
pub const WORKFLOW_UNAVAILABLE: &str = "Seatkeeper.WorkflowUnavailable";
/// Names this handler raises beyond the service's `ERROR_NAMES`.
pub const HANDLER_ERROR_NAMES: &[&str] = &[WORKFLOW_UNAVAILABLE];

/// One task of the state machine, told apart by `action`. Unknown fields are refused: a
/// payload the definition does not produce is a mistake, not something to guess at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReclaimRequest {
    Plan {
        job_id: ReclaimJobId,
    },
    /// From a `.waitForTaskToken` Task: `task_token` is `$$.Task.Token`.
    AwaitApproval {
        job_id: ReclaimJobId,
        task_token: TaskToken,
    },
    ReclaimBatch {
        job_id: ReclaimJobId,
        batch: u32,
    },
    Finalize {
        job_id: ReclaimJobId,
    },
}

impl ReclaimRequest {
    /// Every `action` the handler accepts (the ASL test compares the definition with it).
    pub const ACTIONS: &[&str] = &["plan", "await_approval", "reclaim_batch", "finalize"];

    /// Reads a task payload. The error never repeats the task token: serde's messages can
    /// quote a value, and the token resumes the execution.
    pub fn parse(payload: &Value) -> Result<Self, HandlerError> {
        Self::deserialize(payload).map_err(|e| {
            let mut message = e.to_string();
            if let Some(token) = payload.get("task_token").and_then(Value::as_str)
                && !token.is_empty()
            {
                message = message.replace(token, "<task token>");
            }
            HandlerError::Request(message)
        })
    }

    pub fn action(&self) -> &'static str {
        match self {
            ReclaimRequest::Plan { .. } => "plan",
            ReclaimRequest::AwaitApproval { .. } => "await_approval",
            ReclaimRequest::ReclaimBatch { .. } => "reclaim_batch",
            ReclaimRequest::Finalize { .. } => "finalize",
        }
    }

    pub fn job_id(&self) -> &ReclaimJobId {
        match self {
            ReclaimRequest::Plan { job_id }
            | ReclaimRequest::AwaitApproval { job_id, .. }
            | ReclaimRequest::ReclaimBatch { job_id, .. }
            | ReclaimRequest::Finalize { job_id } => job_id,
        }
    }
}

/// Built once per container (see `main.rs`).
pub struct Deps {
    pub reclaimer: Reclaimer,
    /// Answers the approval wait of an auto-approved job.
    pub workflow: Arc<dyn Workflow>,
    /// Time kept free before the Lambda deadline: a batch returns `done: false` before it.
    pub deadline_margin: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("not a reclaim request: {0}")]
    Request(String),
    #[error(transparent)]
    Reclaim(#[from] ReclaimError),
    #[error("could not answer the approval wait of an auto-approved job")]
    Workflow(#[source] WorkflowError),
    #[error("could not encode the answer")]
    Encode(#[source] serde_json::Error),
}

impl HandlerError {
    /// The stable name the state machine matches (`errorType` of the Lambda error).
    pub fn error_name(&self) -> &'static str {
        match self {
            HandlerError::Request(_) => INVALID_REQUEST,
            HandlerError::Reclaim(e) => e.error_name(),
            HandlerError::Workflow(WorkflowError::Service { .. }) => WORKFLOW_UNAVAILABLE,
            HandlerError::Workflow(_) | HandlerError::Encode(_) => INTERNAL,
        }
    }
}

/// The Lambda error leaves with `errorType` = [`HandlerError::error_name`]: that is what
/// Step Functions' `ErrorEquals` compares.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_name().to_owned(),
            error_message: e.to_string(),
        }
    }
}

pub async fn handle(event: LambdaEvent<Value>, deps: &Deps) -> Result<Value, HandlerError> {
    let request = match ReclaimRequest::parse(&event.payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::error!(error = %e, "reclaim task refused");
            return Err(e);
        }
    };
    let deadline = lambda_deadline(event.context.deadline, deps.deadline_margin);
    let span = tracing::info_span!(
        "reclaim_task",
        action = request.action(),
        job_id = %request.job_id(),
        batch = tracing::field::Empty,
    );
    if let ReclaimRequest::ReclaimBatch { batch, .. } = &request {
        span.record("batch", batch);
    }
    async move {
        let result = run(request, deadline, deps).await;
        if let Err(e) = &result {
            let retryable = matches!(e, HandlerError::Reclaim(r) if r.is_retryable())
                || e.error_name() == WORKFLOW_UNAVAILABLE;
            if retryable {
                tracing::warn!(error_type = e.error_name(), error = %e, "reclaim task failed; the state machine retries it");
            } else {
                tracing::error!(error_type = e.error_name(), error = %e, "reclaim task failed");
            }
        }
        result
    }
    .instrument(span)
    .await
}

async fn run(
    request: ReclaimRequest,
    deadline: Deadline,
    deps: &Deps,
) -> Result<Value, HandlerError> {
    let reclaimer = &deps.reclaimer;
    match request {
        ReclaimRequest::Plan { job_id } => encode(&reclaimer.plan(&job_id).await?),
        ReclaimRequest::AwaitApproval { job_id, task_token } => {
            let wait = reclaimer
                .await_approval(&job_id, task_token.clone())
                .await?;
            if wait.auto_approved {
                let output = json!({ "job_id": job_id, "auto_approved": true });
                match deps.workflow.send_task_success(&task_token, &output).await {
                    Ok(()) => tracing::info!("auto-approved job: approval wait answered"),
                    // Answered already (a repeated delivery of this task): nothing waits.
                    Err(WorkflowError::TaskClosed) => {
                        tracing::info!("auto-approved job: the approval wait was answered already");
                    }
                    Err(e) => return Err(HandlerError::Workflow(e)),
                }
            }
            encode(&wait)
        }
        ReclaimRequest::ReclaimBatch { job_id, batch } => {
            encode(&reclaimer.reclaim_batch(&job_id, batch, deadline).await?)
        }
        ReclaimRequest::Finalize { job_id } => encode(&reclaimer.finalize(&job_id).await?),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Value, HandlerError> {
    serde_json::to_value(value).map_err(HandlerError::Encode)
}

/// The Lambda context's deadline (epoch milliseconds) as an `Instant`, less the margin.
/// `0` (no deadline, as in tests with a default context) means none.
pub fn lambda_deadline(deadline_ms: u64, margin: Duration) -> Deadline {
    if deadline_ms == 0 {
        return Deadline::none();
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(margin);
    Deadline::at(Instant::now() + left)
}
