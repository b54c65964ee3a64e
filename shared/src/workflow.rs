//! The `Workflow` port (design §3): starts reclaim executions and answers their approval
//! waits. In AWS it is the Standard state machine of `infra/statemachines/reclaim.asl.json`
//! ([`SfnWorkflow`]); the CLI runs the same steps in-process behind the same trait.
//!
//! The trait knows nothing of Step Functions beyond what an in-process runner can also do:
//! an execution runs one job and has an id; an approval wait is named by an opaque
//! [`TaskToken`] and ends with a success (go on) or a failure with one of the names of
//! [`TaskFailure`] (stop, and finalise the job).

use crate::domain::{ReclaimJobId, TaskToken};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest notice period an execution accepts: the approval wait already takes up to 7 days
/// and the job's candidates were planned against data of that day.
pub const MAX_NOTICE_SECONDS: u32 = 14 * 24 * 3600;

/// The input of one execution. Only ids and numbers: the job (its policy, its candidates)
/// lives in the store, so the execution state stays small at any tenant size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionInput {
    pub job_id: ReclaimJobId,
    /// Seconds between the approval and the first action (a notice period for the users).
    /// Absent: the batches start right after the approval. `0` is allowed and waits nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_seconds: Option<u32>,
}

impl ExecutionInput {
    pub fn new(job_id: ReclaimJobId) -> Self {
        Self {
            job_id,
            notice_seconds: None,
        }
    }

    pub fn with_notice_seconds(mut self, seconds: u32) -> Self {
        self.notice_seconds = Some(seconds);
        self
    }

    pub fn validate(&self) -> Result<(), WorkflowError> {
        match self.notice_seconds {
            Some(s) if s > MAX_NOTICE_SECONDS => Err(WorkflowError::Invalid(format!(
                "notice_seconds must be at most {MAX_NOTICE_SECONDS}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Names one execution: in Step Functions its ARN; in-process whatever the runner chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(String);

impl ExecutionId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an approval wait can fail. The ASL catches these names on its approval state and
/// goes to Finalize, which records the outcome; nothing else raises them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskFailure {
    /// An approver said no: the job acts on nobody.
    Rejected,
    /// The job was cancelled while it waited.
    Cancelled,
}

impl TaskFailure {
    /// Every name [`TaskFailure::error_name`] returns (the ASL test reads it).
    pub const ERROR_NAMES: &[&str] = &["Seatkeeper.Rejected", "Seatkeeper.Cancelled"];

    pub fn error_name(self) -> &'static str {
        match self {
            TaskFailure::Rejected => "Seatkeeper.Rejected",
            TaskFailure::Cancelled => "Seatkeeper.Cancelled",
        }
    }
}

/// The name a job's execution gets: the job id with a fixed prefix, so starting the same
/// job twice names the same execution (Step Functions answers a repeated start with the
/// running one), and IAM can name "the executions Seatkeeper started" (`job-*`).
pub fn execution_name(job_id: &ReclaimJobId) -> String {
    format!("job-{job_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("invalid workflow input: {0}")]
    Invalid(String),
    /// The job's execution exists already and cannot be started again (it finished, or
    /// it ran with another input).
    #[error("job {0} already has an execution")]
    AlreadyStarted(ReclaimJobId),
    /// The token is unknown, expired, or its wait was answered already: nothing waits on it.
    #[error("the approval wait is over (answered already, timed out, or unknown)")]
    TaskClosed,
    #[error("no such execution")]
    ExecutionNotFound,
    /// The workflow engine itself failed or refused the call. The message names the
    /// operation only: requests carry task tokens, which never go into errors or logs.
    #[error("the workflow service failed to {operation}")]
    Service {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[async_trait]
pub trait Workflow: Send + Sync {
    /// Starts the job's execution and returns its id. Starting a job that is already
    /// running with the same input returns the running execution.
    async fn start(&self, input: &ExecutionInput) -> Result<ExecutionId, WorkflowError>;

    /// Ends an approval wait successfully (approved); `output` becomes the wait's result.
    async fn send_task_success(
        &self,
        token: &TaskToken,
        output: &serde_json::Value,
    ) -> Result<(), WorkflowError>;

    /// Ends an approval wait with a failure; `cause` is a short text for the history (never
    /// a secret).
    async fn send_task_failure(
        &self,
        token: &TaskToken,
        failure: TaskFailure,
        cause: &str,
    ) -> Result<(), WorkflowError>;

    /// Stops an execution at once, without Finalize: a last resort. A cancel goes through
    /// the job's `cancelled` flag (or [`TaskFailure::Cancelled`] while it waits for an
    /// approval) so the execution still finalises the job.
    async fn stop(&self, execution: &ExecutionId, cause: &str) -> Result<(), WorkflowError>;
}

/// The Step Functions adapter: one state machine (`SEATKEEPER_STATE_MACHINE_ARN`, read by
/// the function that builds it).
pub struct SfnWorkflow {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl SfnWorkflow {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }
}

fn service_error(
    operation: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> WorkflowError {
    move |source| WorkflowError::Service { operation, source }
}

#[async_trait]
impl Workflow for SfnWorkflow {
    async fn start(&self, input: &ExecutionInput) -> Result<ExecutionId, WorkflowError> {
        input.validate()?;
        let payload = serde_json::to_string(input)
            .map_err(|e| service_error("encode the execution input")(Box::new(e)))?;
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(execution_name(&input.job_id))
            .input(payload)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists())
                {
                    WorkflowError::AlreadyStarted(input.job_id.clone())
                } else {
                    service_error("start an execution")(Box::new(e))
                }
            })?;
        let id = ExecutionId::new(started.execution_arn);
        tracing::info!(job_id = %input.job_id, execution = %id, "reclaim execution started");
        Ok(id)
    }

    async fn send_task_success(
        &self,
        token: &TaskToken,
        output: &serde_json::Value,
    ) -> Result<(), WorkflowError> {
        let output = serde_json::to_string(output)
            .map_err(|e| service_error("encode the task output")(Box::new(e)))?;
        self.client
            .send_task_success()
            .task_token(token.expose())
            .output(output)
            .send()
            .await
            .map_err(|e| {
                let closed = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_token() || s.is_task_does_not_exist() || s.is_task_timed_out()
                });
                if closed {
                    WorkflowError::TaskClosed
                } else {
                    service_error("send a task success")(Box::new(e))
                }
            })?;
        Ok(())
    }

    async fn send_task_failure(
        &self,
        token: &TaskToken,
        failure: TaskFailure,
        cause: &str,
    ) -> Result<(), WorkflowError> {
        self.client
            .send_task_failure()
            .task_token(token.expose())
            .error(failure.error_name())
            .cause(cause)
            .send()
            .await
            .map_err(|e| {
                let closed = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_token() || s.is_task_does_not_exist() || s.is_task_timed_out()
                });
                if closed {
                    WorkflowError::TaskClosed
                } else {
                    service_error("send a task failure")(Box::new(e))
                }
            })?;
        Ok(())
    }

    async fn stop(&self, execution: &ExecutionId, cause: &str) -> Result<(), WorkflowError> {
        self.client
            .stop_execution()
            .execution_arn(execution.as_str())
            .cause(cause)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist())
                {
                    WorkflowError::ExecutionNotFound
                } else {
                    service_error("stop an execution")(Box::new(e))
                }
            })?;
        tracing::warn!(execution = %execution, "reclaim execution stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_execution_input_is_ids_and_numbers_only() {
        let job = ReclaimJobId::generate();
        let input = ExecutionInput::new(job.clone());
        assert_eq!(
            serde_json::to_value(&input).expect("json"),
            serde_json::json!({ "job_id": job.as_str() })
        );
        let with_notice = input.with_notice_seconds(0);
        assert_eq!(
            serde_json::to_value(&with_notice).expect("json"),
            serde_json::json!({ "job_id": job.as_str(), "notice_seconds": 0 })
        );
        assert!(with_notice.validate().is_ok(), "a notice of 0 s is allowed");
    }

    #[test]
    fn a_notice_period_beyond_the_limit_is_refused() {
        let input = ExecutionInput::new(ReclaimJobId::generate())
            .with_notice_seconds(MAX_NOTICE_SECONDS + 1);
        assert!(matches!(input.validate(), Err(WorkflowError::Invalid(_))));
    }

    #[test]
    fn executions_are_named_after_their_job_within_step_functions_limits() {
        let job = ReclaimJobId::generate();
        let name = execution_name(&job);
        assert_eq!(name, format!("job-{job}"));
        // Step Functions: 1-80 characters of letters, digits, `-` and `_`.
        assert!(name.len() <= 80);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn task_failure_names_are_listed() {
        for failure in [TaskFailure::Rejected, TaskFailure::Cancelled] {
            assert!(TaskFailure::ERROR_NAMES.contains(&failure.error_name()));
        }
        assert_eq!(TaskFailure::ERROR_NAMES.len(), 2);
    }
}
