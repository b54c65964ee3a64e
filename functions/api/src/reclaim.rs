//! The reclamation routes (issue 4, design §7 "Reclaim"): thin handlers over
//! [`Reclaimer`](seatkeeper_shared::services::reclaim::Reclaimer) and the
//! [`Workflow`](seatkeeper_shared::workflow::Workflow) port.
//!
//! A job is never serialised whole: it holds the task token of its approval wait, which
//! resumes the execution. Every answer is a view built field by field.
//!
//! Decisions:
//! - Start answers 202 as soon as the execution is started: the plan runs in the workflow.
//!   If the execution cannot be started, the job is cancelled (which finishes it and
//!   releases the reclaim lease) and the answer is a 503.
//! - Approve records the approval first, then ends the wait. If the workflow cannot be
//!   told, the answer is a 503 and the approval stays recorded; the execution still finds
//!   the job approved when its wait is retried, or the wait times out (7 days) and the job
//!   finishes without acting.
//! - Reject and cancel finish the job in the store first; ending the wait is then best
//!   effort (logged): an execution not told ends at its timeout and finds the job finished.
//! - Restore runs synchronously in the request: it is bounded by the function's timeout
//!   (29 s in the template, about 2 provider calls per account), so it suits jobs of up to
//!   a few dozen accounts; a restore cut short is safe to call again (each account is
//!   restored at most once) and carries on where it stopped.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seatkeeper_shared::domain::{
    ActionRecord, ActionStep, Exclusion, JobCounts, JobState, ReclaimActionKind, ReclaimJob,
    ReclaimPolicy, SkipReason,
};
use seatkeeper_shared::services::ServiceContext;
use seatkeeper_shared::services::reclaim::{JobSummary, ReclaimError};
use seatkeeper_shared::workflow::{ExecutionInput, MAX_NOTICE_SECONDS, TaskFailure, WorkflowError};
use serde::{Deserialize, Serialize};

use crate::cursor;
use crate::error::ApiError;
use crate::extract::{Caller, IntegrationPath, JobPath, JsonBody, QueryParams};
use crate::views::{ActorView, PageView};

type Ctx = State<ServiceContext>;

/// Items per page of the reclamation listings.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

// ---------------------------------------------------------------------------------------
// Bodies and views

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    policy: ReclaimPolicy,
    notice_seconds: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct StartedView {
    job_id: String,
    state: JobState,
    execution: String,
}

/// A job as callers see it: everything but its task token.
#[derive(Debug, Serialize)]
pub struct ReclamationView {
    id: String,
    integration_id: String,
    state: JobState,
    cancelled: bool,
    policy: ReclaimPolicy,
    counts: JobCounts,
    batches: u32,
    requested_by: ActorView,
    approved_by: Option<ActorView>,
    execution: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    error: Option<String>,
}

impl From<&ReclaimJob> for ReclamationView {
    fn from(job: &ReclaimJob) -> Self {
        Self {
            id: job.id.to_string(),
            integration_id: job.integration_id.to_string(),
            state: job.state,
            cancelled: job.cancelled,
            policy: job.policy.clone(),
            counts: job.counts,
            batches: job.batches,
            requested_by: ActorView::from(&job.requested_by),
            approved_by: job.approved_by.as_ref().map(ActorView::from),
            execution: job.execution_arn.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            error: job.error.clone(),
        }
    }
}

/// One account's result in a job.
#[derive(Debug, Serialize)]
pub struct ActionView {
    external_id: String,
    login: String,
    action: ReclaimActionKind,
    step: ActionStep,
    skip: Option<SkipReason>,
    reason: Option<String>,
    transferred_to: Option<String>,
    seats_freed: u32,
    at: DateTime<Utc>,
}

impl From<ActionRecord> for ActionView {
    fn from(r: ActionRecord) -> Self {
        Self {
            external_id: r.external_id,
            login: r.login,
            action: r.action,
            step: r.step,
            skip: r.skip,
            reason: r.reason,
            transferred_to: r.transferred_to,
            seats_freed: r.seats_freed,
            at: r.at,
        }
    }
}

/// An account the plan left out, and why.
#[derive(Debug, Serialize)]
pub struct SkippedView {
    external_id: String,
    login: String,
    reason: SkipReason,
    description: &'static str,
    detail: Option<String>,
}

impl From<Exclusion> for SkippedView {
    fn from(e: Exclusion) -> Self {
        Self {
            external_id: e.external_id,
            login: e.login,
            reason: e.reason,
            description: e.reason.describe(),
            detail: e.detail,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RestoredView {
    job_id: String,
    state: JobState,
    counts: JobCounts,
}

impl From<JobSummary> for RestoredView {
    fn from(s: JobSummary) -> Self {
        Self {
            job_id: s.job_id.to_string(),
            state: s.state,
            counts: s.counts,
        }
    }
}

/// The listings' cursors: the store's own, tagged so one listing's is refused by another.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum ReclaimCursor {
    #[serde(rename = "jobs")]
    Jobs(String),
    #[serde(rename = "actions")]
    Actions(String),
    #[serde(rename = "skipped")]
    Skipped(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    cursor: Option<String>,
    limit: Option<String>,
    skipped: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Handlers

pub async fn start_reclamation(
    State(ctx): Ctx,
    Caller(actor): Caller,
    IntegrationPath(id): IntegrationPath,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    body.policy.validate().map_err(|e| {
        let field = format!("policy.{}", e.field);
        ApiError::bad_request("invalid_input", format!("{field}: {}", e.reason)).with_field(field)
    })?;
    if body.notice_seconds.is_some_and(|s| s > MAX_NOTICE_SECONDS) {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!("notice_seconds: must be at most {MAX_NOTICE_SECONDS}"),
        )
        .with_field("notice_seconds"));
    }
    let reclaimer = ctx.reclaimer();
    let job = reclaimer
        .start_job(&id, body.policy, &actor)
        .await
        .map_err(|e| match e {
            ReclaimError::Invalid(_) => {
                ApiError::bad_request("invalid_policy", e.to_string()).with_field("policy")
            }
            other => ApiError::from(other),
        })?;
    let mut input = ExecutionInput::new(job.id.clone());
    if let Some(seconds) = body.notice_seconds {
        input = input.with_notice_seconds(seconds);
    }
    let execution = match ctx.workflow.start(&input).await {
        Ok(execution) => execution,
        Err(e) => {
            // Nothing will ever run the job: finish it so the integration is free again.
            if let Err(cancel) = reclaimer
                .cancel(&job.id, &seatkeeper_shared::domain::Actor::System)
                .await
            {
                tracing::error!(job_id = %job.id, error = %cancel, "could not cancel a job whose execution did not start");
            }
            return Err(ApiError::workflow(
                &e,
                &format!(
                    "the reclamation could not be started (job {} was cancelled)",
                    job.id
                ),
            ));
        }
    };
    let arn = execution.to_string();
    let record = |j: &mut ReclaimJob| {
        j.execution_arn = Some(arn.clone());
        Ok(())
    };
    // The execution runs whether or not its id is recorded: a failure here is logged only.
    let state = match ctx.store.modify_reclaim_job(&job.id, &record).await {
        Ok(stored) => stored.state,
        Err(e) => {
            tracing::error!(job_id = %job.id, error = %e, "could not record the execution id");
            job.state
        }
    };
    let view = StartedView {
        job_id: job.id.to_string(),
        state,
        execution: arn,
    };
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

pub async fn list_reclamations(
    State(ctx): Ctx,
    IntegrationPath(id): IntegrationPath,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<PageView<ReclamationView>>, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let inner = match q.cursor.as_deref().map(cursor::decode::<ReclaimCursor>) {
        None => None,
        Some(Ok(ReclaimCursor::Jobs(c))) => Some(c),
        Some(Ok(_)) => return Err(ApiError::bad_cursor("the cursor is of another listing")),
        Some(Err(e)) => return Err(e),
    };
    if ctx.store.get_integration(&id).await?.is_none() {
        return Err(ApiError::integration_missing(&id));
    }
    let page = ctx
        .store
        .list_reclaim_jobs(&id, inner.as_deref(), limit)
        .await?;
    Ok(Json(PageView {
        items: page.items.iter().map(ReclamationView::from).collect(),
        next_cursor: page
            .next
            .map(|c| cursor::encode(&ReclaimCursor::Jobs(c)))
            .transpose()?,
    }))
}

pub async fn get_reclamation(
    State(ctx): Ctx,
    JobPath(job_id): JobPath,
) -> Result<Json<ReclamationView>, ApiError> {
    let job = load(&ctx, &job_id).await?;
    Ok(Json(ReclamationView::from(&job)))
}

pub async fn reclamation_accounts(
    State(ctx): Ctx,
    JobPath(job_id): JobPath,
    QueryParams(q): QueryParams<AccountsQuery>,
) -> Result<Response, ApiError> {
    let limit = parse_limit(q.limit.as_deref())?;
    let skipped = match q.skipped.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_query", "skipped: must be true or false")
                    .with_field("skipped"),
            );
        }
    };
    let decoded = q
        .cursor
        .as_deref()
        .map(cursor::decode::<ReclaimCursor>)
        .transpose()?;
    load(&ctx, &job_id).await?;
    let wrong = || ApiError::bad_cursor("the cursor is of another listing");
    if skipped {
        let inner = match decoded {
            None => None,
            Some(ReclaimCursor::Skipped(c)) => Some(c),
            Some(_) => return Err(wrong()),
        };
        let page = ctx
            .store
            .list_exclusions(&job_id, inner.as_deref(), limit)
            .await?;
        let view = PageView {
            items: page.items.into_iter().map(SkippedView::from).collect(),
            next_cursor: page
                .next
                .map(|c| cursor::encode(&ReclaimCursor::Skipped(c)))
                .transpose()?,
        };
        Ok(Json(view).into_response())
    } else {
        let inner = match decoded {
            None => None,
            Some(ReclaimCursor::Actions(c)) => Some(c),
            Some(_) => return Err(wrong()),
        };
        let page = ctx
            .store
            .list_actions(&job_id, inner.as_deref(), limit)
            .await?;
        let view = PageView {
            items: page.items.into_iter().map(ActionView::from).collect(),
            next_cursor: page
                .next
                .map(|c| cursor::encode(&ReclaimCursor::Actions(c)))
                .transpose()?,
        };
        Ok(Json(view).into_response())
    }
}

pub async fn approve(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JobPath(job_id): JobPath,
) -> Result<Json<ReclamationView>, ApiError> {
    let job = ctx.reclaimer().approve(&job_id, &actor).await?;
    // No token yet: the execution has not reached its wait, and finds the job approved.
    if let Some(token) = &job.task_token {
        let output = serde_json::json!({ "approved": true });
        match ctx.workflow.send_task_success(token, &output).await {
            Ok(()) => {}
            Err(WorkflowError::TaskClosed) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "approval_wait_closed",
                    format!(
                        "the approval of job {job_id} is recorded, but its execution no longer waits for one (it timed out or ended); start a new reclamation"
                    ),
                ));
            }
            Err(e) => {
                return Err(ApiError::workflow(
                    &e,
                    &format!(
                        "the approval of job {job_id} is recorded, but its execution could not be told"
                    ),
                ));
            }
        }
    }
    Ok(Json(ReclamationView::from(&job)))
}

pub async fn reject(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JobPath(job_id): JobPath,
) -> Result<Json<ReclamationView>, ApiError> {
    let before = load(&ctx, &job_id).await?;
    let job = ctx.reclaimer().reject(&job_id, &actor).await?;
    end_wait(
        &ctx,
        &job,
        &before,
        TaskFailure::Rejected,
        "rejected by an approver",
    )
    .await;
    Ok(Json(ReclamationView::from(&job)))
}

pub async fn cancel(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JobPath(job_id): JobPath,
) -> Result<Json<ReclamationView>, ApiError> {
    let before = load(&ctx, &job_id).await?;
    let job = ctx.reclaimer().cancel(&job_id, &actor).await?;
    if before.state == JobState::AwaitingApproval {
        end_wait(&ctx, &job, &before, TaskFailure::Cancelled, "cancelled").await;
    }
    Ok(Json(ReclamationView::from(&job)))
}

pub async fn restore(
    State(ctx): Ctx,
    Caller(actor): Caller,
    JobPath(job_id): JobPath,
) -> Result<Json<RestoredView>, ApiError> {
    let job = load(&ctx, &job_id).await?;
    if job.policy.action != ReclaimActionKind::Deactivate {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_restorable",
            format!(
                "job {job_id} deleted its accounts, which is permanent; only deactivate jobs can be restored"
            ),
        ));
    }
    let summary = ctx.reclaimer().restore(&job_id, &actor).await?;
    Ok(Json(RestoredView::from(summary)))
}

// ---------------------------------------------------------------------------------------
// Helpers

async fn load(
    ctx: &ServiceContext,
    id: &seatkeeper_shared::domain::ReclaimJobId,
) -> Result<ReclaimJob, ApiError> {
    ctx.store
        .get_reclaim_job(id)
        .await?
        .ok_or_else(|| ApiError::reclamation_not_found(id))
}

/// Ends the job's approval wait with `failure`. The job is finished in the store already,
/// so a failure here is logged, not answered: the execution finds the job finished when
/// its wait times out.
async fn end_wait(
    ctx: &ServiceContext,
    job: &ReclaimJob,
    before: &ReclaimJob,
    failure: TaskFailure,
    cause: &str,
) {
    let Some(token) = job.task_token.as_ref().or(before.task_token.as_ref()) else {
        return;
    };
    if let Err(e) = ctx.workflow.send_task_failure(token, failure, cause).await {
        tracing::warn!(job_id = %job.id, error = %e, "could not end the approval wait");
    }
}

fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be an integer between 1 and {MAX_LIMIT}"),
        )
        .with_field("limit")),
    }
}
