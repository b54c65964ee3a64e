//! [`LocalWorkflow`]: the `Workflow` port for `seatkeeper serve`, where there is no Step
//! Functions. Each execution is a task of this process that runs the reclaim steps in the
//! order of `infra/statemachines/reclaim.asl.json`: plan → (nothing to do or dry run: end)
//! → approval wait (skipped when plan approved the job) → notice period → every batch,
//! called again until `done` → finalize. A rejected or cancelled wait goes to finalize, as
//! the ASL's Catch does.
//!
//! Local limits: executions live only as long as the process (a restarted server leaves a
//! job where it stopped; its lease expires and `finalize` is never called), and the approval
//! wait ends, like the ASL's, after [`APPROVAL_TIMEOUT`].

use super::reclaim::{Notifier, ReclaimError, ReclaimOptions, Reclaimer};
use super::{Deadline, ProviderSources};
use crate::clock::Clock;
use crate::domain::{ReclaimJobId, TaskToken};
use crate::provider::box_client::BoxConfig;
use crate::provider::http::HttpClient;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::workflow::{ExecutionId, ExecutionInput, TaskFailure, Workflow, WorkflowError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long an approval wait lasts (the ASL's `TimeoutSeconds`: 7 days).
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a step failing with a retryable error is tried in all, and the first pause
/// (doubled each time), like the ASL's Retry.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

type Answer = Result<serde_json::Value, TaskFailure>;

/// Runs reclaim executions on tasks of this process.
pub struct LocalWorkflow {
    reclaimer: Arc<Reclaimer>,
    /// Approval waits in progress, by task token.
    waits: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    /// Jobs with an execution running here: a second start of one is the same execution.
    running: Arc<Mutex<HashMap<ReclaimJobId, ExecutionId>>>,
}

impl LocalWorkflow {
    pub fn new(reclaimer: Arc<Reclaimer>) -> Self {
        Self {
            reclaimer,
            waits: Arc::new(Mutex::new(HashMap::new())),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The local workflow over these ports: its own reclaim service, default timings.
    pub fn in_process(
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
        http: HttpClient,
        box_config: BoxConfig,
        notifier: Arc<dyn Notifier>,
    ) -> Self {
        let sources = ProviderSources::new(store.clone(), secrets, clock.clone(), http, box_config);
        Self::new(Arc::new(Reclaimer {
            store,
            sources: Arc::new(sources),
            clock,
            notifier,
            options: ReclaimOptions::default(),
        }))
    }

    fn answer(&self, token: &TaskToken, answer: Answer) -> Result<(), WorkflowError> {
        let sender = self
            .waits
            .lock()
            .map_err(|_| poisoned())?
            .remove(token.expose())
            .ok_or(WorkflowError::TaskClosed)?;
        sender.send(answer).map_err(|_| WorkflowError::TaskClosed)
    }
}

fn poisoned() -> WorkflowError {
    WorkflowError::Service {
        operation: "reach the in-process executions",
        source: "a lock was poisoned by a panic".into(),
    }
}

#[async_trait]
impl Workflow for LocalWorkflow {
    async fn start(&self, input: &ExecutionInput) -> Result<ExecutionId, WorkflowError> {
        input.validate()?;
        let id = ExecutionId::new(format!(
            "local:{}",
            crate::workflow::execution_name(&input.job_id)
        ));
        {
            let mut running = self.running.lock().map_err(|_| poisoned())?;
            if let Some(existing) = running.get(&input.job_id) {
                return Ok(existing.clone());
            }
            running.insert(input.job_id.clone(), id.clone());
        }
        let execution = Execution {
            reclaimer: self.reclaimer.clone(),
            waits: self.waits.clone(),
            input: input.clone(),
        };
        let running = self.running.clone();
        let job_id = input.job_id.clone();
        tokio::spawn(async move {
            if let Err(e) = execution.run().await {
                tracing::error!(job_id = %job_id, error = %e, "local reclaim execution failed");
                // As the ASL's last Catch: the job is finished so its lease is released.
                if let Err(e) = execution.reclaimer.finalize(&job_id).await {
                    tracing::error!(job_id = %job_id, error = %e, "could not finalize the job");
                }
            }
            if let Ok(mut running) = running.lock() {
                running.remove(&job_id);
            }
        });
        tracing::info!(job_id = %input.job_id, execution = %id, "local reclaim execution started");
        Ok(id)
    }

    async fn send_task_success(
        &self,
        token: &TaskToken,
        output: &serde_json::Value,
    ) -> Result<(), WorkflowError> {
        self.answer(token, Ok(output.clone()))
    }

    async fn send_task_failure(
        &self,
        token: &TaskToken,
        failure: TaskFailure,
        _cause: &str,
    ) -> Result<(), WorkflowError> {
        self.answer(token, Err(failure))
    }

    async fn stop(&self, _execution: &ExecutionId, _cause: &str) -> Result<(), WorkflowError> {
        // Tasks are not aborted mid-step (a provider write could be cut in half); a cancel
        // goes through the job's flag, which every step reads.
        Err(WorkflowError::Service {
            operation: "stop an in-process execution",
            source: "cancel the job instead: its steps stop at the next account".into(),
        })
    }
}

struct Execution {
    reclaimer: Arc<Reclaimer>,
    waits: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    input: ExecutionInput,
}

impl Execution {
    async fn run(&self) -> Result<(), ReclaimError> {
        let job_id = &self.input.job_id;
        let plan = retrying(|| self.reclaimer.plan(job_id)).await?;
        // Plan finishes a dry run and a job with nothing to do itself.
        if plan.dry_run || plan.batches.is_empty() {
            return Ok(());
        }
        if plan.needs_approval && !self.wait_for_approval().await? {
            self.reclaimer.finalize(job_id).await?;
            return Ok(());
        }
        if let Some(seconds) = self.input.notice_seconds.filter(|s| *s > 0) {
            tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
        }
        for batch in &plan.batches {
            loop {
                match retrying(|| {
                    self.reclaimer
                        .reclaim_batch(job_id, *batch, Deadline::none())
                })
                .await
                {
                    Ok(outcome) if outcome.done => break,
                    Ok(_) => continue,
                    // The ASL catches a failed batch and goes on with the next one.
                    Err(e) => {
                        tracing::error!(job_id = %job_id, batch, error = %e, "batch failed");
                        break;
                    }
                }
            }
        }
        retrying(|| self.reclaimer.finalize(job_id)).await?;
        Ok(())
    }

    /// `true` once approved; `false` when rejected, cancelled or timed out.
    async fn wait_for_approval(&self) -> Result<bool, ReclaimError> {
        let job_id = &self.input.job_id;
        let token = TaskToken::new(format!("local-{}", uuid::Uuid::new_v4()));
        let (sender, receiver) = oneshot::channel();
        self.waits
            .lock()
            .map_err(|_| ReclaimError::NotEligible("the approval waits are unusable".into()))?
            .insert(token.expose().to_owned(), sender);
        let wait = self.reclaimer.await_approval(job_id, token.clone()).await;
        let approved = match wait {
            Ok(w) if w.auto_approved => Ok(true),
            Ok(_) => match tokio::time::timeout(APPROVAL_TIMEOUT, receiver).await {
                Ok(Ok(Ok(_))) => Ok(true),
                Ok(Ok(Err(failure))) => {
                    tracing::info!(job_id = %job_id, failure = failure.error_name(), "approval wait failed");
                    Ok(false)
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(job_id = %job_id, "approval wait ended without an answer");
                    Ok(false)
                }
            },
            Err(e) => Err(e),
        };
        if let Ok(mut waits) = self.waits.lock() {
            waits.remove(token.expose());
        }
        approved
    }
}

/// Calls `step` again after a pause while it fails with a retryable error.
async fn retrying<T, F, Fut>(mut step: F) -> Result<T, ReclaimError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ReclaimError>>,
{
    let mut pause = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "reclaim step failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}
