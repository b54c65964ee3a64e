//! `seatkeeper reclaim plan|run`: a reclaim job run in this process through the same
//! service steps, in the same order, as the Step Functions workflow
//! (`infra/statemachines/reclaim.asl.json`): start → plan → (nothing to do or dry run: end)
//! → approval → batches (each looped until done, retryable errors retried with backoff, a
//! failing batch not stopping the others) → finalize.
//!
//! Approval, locally: the person at this terminal is both the requester and the only
//! possible approver (the store, the credentials and the tenant are theirs already), so the
//! API's "someone else approves" rule cannot apply. `--yes` alone confirms the run but
//! approves nothing: a job the integration would not let through on its own (more
//! candidates than the approval threshold, or no auto-approval) stops before acting,
//! unless `--max-actions N` (at least the number of candidates) is given. That bound is
//! the explicit local approval and is recorded in the audit trail as the local actor,
//! tagged with the bound (`local:<user>/max-actions-<N>`), approving a job requested by
//! `local:<user>`. A job with more candidates than `--max-actions` acts on nobody (plan
//! refuses it).

use crate::Format;
use crate::app::LocalApp;
use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use seatkeeper_shared::domain::{
    ActionRecord, ActionStep, Actor, IntegrationId, JobState, ReclaimActionKind, ReclaimJobId,
    ReclaimPolicy,
};
use seatkeeper_shared::services::Deadline;
use seatkeeper_shared::services::reclaim::{
    JobSummary, LogNotifier, PlanSummary, ReclaimError, ReclaimOptions, Reclaimer,
};
use seatkeeper_shared::services::report::csv_field;
use seatkeeper_shared::store::Store;
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Batches acted on at once: the workflow's Map `MaxConcurrency`.
const MAX_CONCURRENT_BATCHES: usize = 3;
/// Attempts of one step on retryable errors, as the workflow's `Retry` (`MaxAttempts` 6
/// retries after the first attempt).
const MAX_ATTEMPTS: u32 = 7;
/// Longest wait between two attempts (the workflow's `MaxDelaySeconds`).
const MAX_BACKOFF: Duration = Duration::from_secs(900);
/// Accounts read per page when listing what plan left out and what a job did.
const PAGE: usize = 1_000;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Action {
    Deactivate,
    Delete,
}

impl From<Action> for ReclaimActionKind {
    fn from(action: Action) -> Self {
        match action {
            Action::Deactivate => ReclaimActionKind::Deactivate,
            Action::Delete => ReclaimActionKind::Delete,
        }
    }
}

/// What `reclaim plan` and `reclaim run` ask of the job.
pub struct Request {
    pub integration: Option<String>,
    pub inactive_days: u32,
    pub grace_days: u32,
    pub action: Action,
    pub transfer_to: Option<String>,
    pub notify: bool,
    pub max_actions: Option<u32>,
}

impl Request {
    fn policy(&self, dry_run: bool) -> ReclaimPolicy {
        ReclaimPolicy {
            inactive_days: self.inactive_days,
            grace_days: self.grace_days,
            action: self.action.into(),
            transfer_to: self.transfer_to.clone(),
            notify: self.notify,
            dry_run,
            max_actions: self.max_actions,
            ..ReclaimPolicy::default()
        }
    }
}

/// How long to wait before the first retry of a retryable error; doubles per attempt. The
/// workflow waits 60 s; `--retry-base-ms` (hidden) shortens it for tests.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(pub Duration);

impl Backoff {
    fn delay(self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        self.0.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

fn reclaimer(app: &LocalApp) -> Reclaimer {
    Reclaimer {
        store: app.store.clone(),
        sources: Arc::new(app.sources()),
        clock: Arc::new(app.clock),
        notifier: Arc::new(LogNotifier),
        options: ReclaimOptions::default(),
    }
}

/// `reclaim plan` (and `reclaim run` without `--yes`): a dry-run job; prints its
/// candidates, what it left out and why, and what a real run would need.
pub async fn plan(app: &LocalApp, request: &Request, format: Format) -> Result<()> {
    let id = app
        .resolve_integration(request.integration.as_deref())
        .await?;
    let reclaimer = reclaimer(app);
    let job = reclaimer
        .start_job(&id, request.policy(true), &crate::serve::local_actor())
        .await?;
    let summary = match with_retries(Backoff(Duration::from_secs(2)), "plan", || {
        reclaimer.plan(&job.id)
    })
    .await
    {
        Ok(summary) => summary,
        Err(e) => {
            end_failed_job(&reclaimer, &job.id).await;
            return Err(e.into());
        }
    };
    let view = PlanView::load(app, &reclaimer, &id, request, &summary).await?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &view)?;
            writeln!(out)?;
        }
        Format::Csv => view.write_csv(&mut out)?,
        Format::Table => view.write_table(&mut out)?,
    }
    out.flush()?;
    Ok(())
}

/// `reclaim run --yes`: the job, acted on in this process.
pub async fn run(app: &LocalApp, request: &Request, backoff: Backoff) -> Result<()> {
    let id = app
        .resolve_integration(request.integration.as_deref())
        .await?;
    let reclaimer = Arc::new(reclaimer(app));
    let requester = crate::serve::local_actor();
    let job = reclaimer
        .start_job(&id, request.policy(false), &requester)
        .await?;
    let job_id = job.id.clone();
    eprintln!("Reclaim job {job_id}: planning…");
    let summary = match with_retries(backoff, "plan", || reclaimer.plan(&job_id)).await {
        Ok(summary) => summary,
        Err(e) => {
            // A refused plan ends the job itself; one that kept failing is ended here so
            // the lease does not outlive this command.
            end_failed_job(&reclaimer, &job_id).await;
            return Err(anyhow::Error::new(e).context(format!("reclaim job {job_id}: plan")));
        }
    };
    if summary.batches.is_empty() {
        println!("Reclaim job {job_id}: no candidates; nothing to do.");
        return Ok(());
    }
    if summary.permanent {
        eprintln!(
            "Reclaim job {job_id}: {} accounts will be deleted. Box delete is permanent: their content moves to user {} first.",
            summary.candidates,
            request.transfer_to.as_deref().unwrap_or("?")
        );
    }
    if summary.needs_approval {
        match request.max_actions {
            Some(max) => {
                let approver = Actor::Local {
                    user: format!("{}/max-actions-{max}", actor_user(&requester)),
                };
                reclaimer.approve(&job_id, &approver).await?;
                eprintln!(
                    "Reclaim job {job_id}: {} candidates approved locally by --max-actions {max}.",
                    summary.candidates
                );
            }
            None => {
                let ended = stop_unapproved(&reclaimer, &job_id, &requester).await;
                bail!(
                    "reclaim job {job_id} stopped before acting: {} candidates need an approval \
                     (more than the integration's approval threshold, or it does not auto-approve). \
                     Nothing was changed{ended}. Review `seatkeeper reclaim plan`, then run again with \
                     --max-actions {} (at least the number of candidates) to approve locally.",
                    summary.candidates,
                    summary.candidates
                );
            }
        }
    }
    let failures = run_batches(&reclaimer, &job_id, &summary.batches, backoff).await;
    let finished = with_retries(backoff, "finalize", || reclaimer.finalize(&job_id)).await?;
    let actions = list_actions(&reclaimer, &job_id).await?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    write_run_summary(&mut out, &finished, request.action, &actions, &failures)?;
    out.flush()?;
    if !failures.is_empty() {
        bail!(
            "reclaim job {job_id}: {} of {} batches failed (see above)",
            failures.len(),
            summary.batches.len()
        );
    }
    if finished.state != JobState::Done {
        bail!("reclaim job {job_id} ended {}", finished.state);
    }
    Ok(())
}

fn actor_user(actor: &Actor) -> String {
    match actor {
        Actor::Local { user } => user.clone(),
        other => other.principal(),
    }
}

/// Ends a job above the threshold without acting: the local requester withdraws it (the
/// same as a cancel through the API), then finalize records the end. Returns a note for
/// the message if ending it failed (the lease then expires on its own).
async fn stop_unapproved(reclaimer: &Reclaimer, job_id: &ReclaimJobId, actor: &Actor) -> String {
    if let Err(e) = reclaimer.cancel(job_id, actor).await {
        tracing::warn!(error = %e, "could not cancel the unapproved job");
    }
    match reclaimer.finalize(job_id).await {
        Ok(_) => String::new(),
        Err(e) => format!(" (the job could not be finalised: {e})"),
    }
}

/// After a plan that failed: plan ends refused jobs itself, a job left `planning` is
/// finalised (failed) so the reclaim lease is released.
async fn end_failed_job(reclaimer: &Reclaimer, job_id: &ReclaimJobId) {
    if let Err(e) = reclaimer.finalize(job_id).await {
        tracing::warn!(error = %e, "could not finalise the failed job");
    }
}

/// Runs `step` until it succeeds, fails for good, or has failed retryably
/// [`MAX_ATTEMPTS`] times, waiting (doubling) between attempts.
async fn with_retries<T, F, Fut>(
    backoff: Backoff,
    what: &str,
    mut step: F,
) -> Result<T, ReclaimError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ReclaimError>>,
{
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() && attempt + 1 < MAX_ATTEMPTS => {
                let delay = backoff.delay(attempt);
                tracing::warn!(step = what, error = %e, ?delay, "retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A batch that failed for good (the workflow's per-batch Catch).
#[derive(Debug)]
struct BatchFailure {
    batch: u32,
    error: String,
}

/// Every batch, [`MAX_CONCURRENT_BATCHES`] at a time, each called until `done`.
async fn run_batches(
    reclaimer: &Arc<Reclaimer>,
    job_id: &ReclaimJobId,
    batches: &[u32],
    backoff: Backoff,
) -> Vec<BatchFailure> {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_BATCHES));
    let mut running = JoinSet::new();
    for &batch in batches {
        let reclaimer = reclaimer.clone();
        let job_id = job_id.clone();
        let permits = permits.clone();
        running.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            run_batch(&reclaimer, &job_id, batch, backoff)
                .await
                .map_err(|e| BatchFailure {
                    batch,
                    error: e.to_string(),
                })
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(e) => failures.push(BatchFailure {
                batch: 0,
                error: format!("a batch task ended abnormally: {e}"),
            }),
        }
    }
    failures.sort_by_key(|f| f.batch);
    failures
}

/// One batch, called until `done`. Retryable errors are retried with backoff; the attempt
/// count restarts whenever an account moved a step since the last failure, so a batch that
/// keeps progressing through a flaky Box is not given up (each call stops at the first
/// retryable error, and a 50-account batch makes a few hundred requests).
async fn run_batch(
    reclaimer: &Reclaimer,
    job_id: &ReclaimJobId,
    batch: u32,
    backoff: Backoff,
) -> Result<(), ReclaimError> {
    let mut failures = 0;
    let mut progress = batch_progress(reclaimer, job_id, batch).await?;
    loop {
        match reclaimer
            .reclaim_batch(job_id, batch, Deadline::none())
            .await
        {
            Ok(outcome) => {
                tracing::info!(
                    batch,
                    acted = outcome.acted,
                    skipped = outcome.skipped,
                    failed = outcome.failed,
                    done = outcome.done,
                    "batch step"
                );
                if outcome.done {
                    return Ok(());
                }
                failures = 0;
            }
            Err(e) if e.is_retryable() => {
                let now = batch_progress(reclaimer, job_id, batch).await?;
                if now != progress {
                    progress = now;
                    failures = 0;
                }
                failures += 1;
                if failures >= MAX_ATTEMPTS {
                    return Err(e);
                }
                let delay = backoff.delay(failures - 1);
                tracing::warn!(batch, error = %e, ?delay, "retrying the batch");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The step each of the batch's accounts reached.
async fn batch_progress(
    reclaimer: &Reclaimer,
    job_id: &ReclaimJobId,
    batch: u32,
) -> Result<Vec<Option<ActionStep>>, ReclaimError> {
    let mut steps = Vec::new();
    for candidate in reclaimer.store.list_candidates(job_id, batch).await? {
        let record = reclaimer
            .store
            .get_action(job_id, &candidate.external_id)
            .await?;
        steps.push(record.map(|r| r.step));
    }
    Ok(steps)
}

async fn list_actions(reclaimer: &Reclaimer, job_id: &ReclaimJobId) -> Result<Vec<ActionRecord>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = reclaimer
            .store
            .list_actions(job_id, cursor.as_deref(), PAGE)
            .await?;
        all.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

fn write_run_summary(
    out: &mut impl Write,
    summary: &JobSummary,
    action: Action,
    actions: &[ActionRecord],
    failures: &[BatchFailure],
) -> std::io::Result<()> {
    let c = &summary.counts;
    writeln!(out, "Reclaim job {} ({})", summary.job_id, summary.state)?;
    writeln!(out, "  candidates   {}", c.candidates)?;
    writeln!(out, "  acted        {}", c.acted)?;
    writeln!(out, "  skipped      {}", c.skipped)?;
    writeln!(out, "  failed       {}", c.failed)?;
    writeln!(out, "  seats freed  {}", c.seats_freed)?;
    if action == Action::Deactivate {
        writeln!(
            out,
            "  (a deactivated Box user still holds a seat: remove it in the Admin Console, or delete the user)"
        )?;
    }
    let notable: Vec<&ActionRecord> = actions
        .iter()
        .filter(|a| matches!(a.step, ActionStep::Skipped | ActionStep::Failed))
        .collect();
    if !notable.is_empty() {
        writeln!(out, "\nSkipped or failed:")?;
        for a in notable {
            writeln!(
                out,
                "  {:<8} {:<14} {:<40} {}",
                a.step.as_str(),
                a.external_id,
                a.login,
                a.reason.as_deref().unwrap_or("")
            )?;
        }
    }
    for f in failures {
        writeln!(out, "batch {} failed: {}", f.batch, f.error)?;
    }
    Ok(())
}

// The plan's view --------------------------------------------------------------------------

#[derive(Serialize)]
struct PlanView {
    job_id: ReclaimJobId,
    integration_id: IntegrationId,
    action: ReclaimActionKind,
    inactive_days: u32,
    grace_days: u32,
    transfer_to: Option<String>,
    summary: PlanCounts,
    candidates: Vec<CandidateRow>,
    skipped: Vec<SkippedRow>,
}

#[derive(Serialize)]
struct PlanCounts {
    candidates: u32,
    skipped: u32,
    batches: u32,
    approval_threshold: u32,
    auto_approve: bool,
    /// Whether a real run of this plan would wait for an approval (locally:
    /// `--max-actions`).
    needs_approval: bool,
    /// A delete: permanent.
    permanent: bool,
    seats_freed_if_all_acted: u32,
}

#[derive(Serialize)]
struct CandidateRow {
    id: String,
    login: String,
    last_login_at: Option<DateTime<Utc>>,
    created_at: Option<DateTime<Utc>>,
    batch: u32,
}

#[derive(Serialize)]
struct SkippedRow {
    id: String,
    login: String,
    reason: String,
    description: String,
    detail: Option<String>,
}

impl PlanView {
    async fn load(
        app: &LocalApp,
        reclaimer: &Reclaimer,
        id: &IntegrationId,
        request: &Request,
        summary: &PlanSummary,
    ) -> Result<Self> {
        let integration = app
            .store
            .get_integration(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("integration {id} not found"))?;
        let policy = request
            .policy(false)
            .tightened_by(&integration.reclaim, integration.purchased_seats)?;
        // A dry run's summary lists no batches to run: the job says how many plan wrote.
        let job = reclaimer
            .store
            .get_reclaim_job(&summary.job_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("reclaim job {} not found", summary.job_id))?;
        let mut candidates = Vec::new();
        for batch in 1..=job.batches {
            for c in reclaimer
                .store
                .list_candidates(&summary.job_id, batch)
                .await?
            {
                candidates.push(CandidateRow {
                    id: c.external_id,
                    login: c.login,
                    last_login_at: c.last_login_at,
                    created_at: c.created_at,
                    batch,
                });
            }
        }
        let mut skipped = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = reclaimer
                .store
                .list_exclusions(&summary.job_id, cursor.as_deref(), PAGE)
                .await?;
            skipped.extend(page.items.into_iter().map(|e| SkippedRow {
                id: e.external_id,
                login: e.login,
                reason: e.reason.as_str().to_owned(),
                description: e.reason.describe().to_owned(),
                detail: e.detail,
            }));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let action = policy.action();
        Ok(Self {
            job_id: summary.job_id.clone(),
            integration_id: id.clone(),
            action,
            inactive_days: policy.inactive_days(),
            grace_days: policy.grace_days(),
            transfer_to: policy.transfer_to().map(str::to_owned),
            summary: PlanCounts {
                candidates: summary.candidates,
                skipped: summary.excluded,
                batches: job.batches,
                approval_threshold: policy.approval_threshold(),
                auto_approve: policy.auto_approve(),
                // The dry run itself never waits: say what a real run would need.
                needs_approval: policy.needs_approval(u64::from(summary.candidates)),
                permanent: action == ReclaimActionKind::Delete,
                seats_freed_if_all_acted: summary
                    .candidates
                    .saturating_mul(action.seats_freed(integration.provider)),
            },
            candidates,
            skipped,
        })
    }

    fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "Reclaim plan (dry run, job {}) for integration {}: {} after {} days without a login, grace {} days",
            self.job_id, self.integration_id, self.action, self.inactive_days, self.grace_days
        )?;
        writeln!(out, "\nCandidates ({}):", self.candidates.len())?;
        writeln!(
            out,
            "  {:<14} {:<40} {:<12} {:<12}",
            "ID", "LOGIN", "LAST LOGIN", "CREATED"
        )?;
        for c in &self.candidates {
            writeln!(
                out,
                "  {:<14} {:<40} {:<12} {:<12}",
                c.id,
                c.login,
                day(c.last_login_at).unwrap_or_else(|| "never".to_owned()),
                day(c.created_at).unwrap_or_else(|| "-".to_owned())
            )?;
        }
        writeln!(out, "\nSkipped ({}):", self.skipped.len())?;
        for s in &self.skipped {
            writeln!(
                out,
                "  {:<14} {:<40} {:<20} {}{}",
                s.id,
                s.login,
                s.reason,
                s.description,
                s.detail
                    .as_deref()
                    .map_or_else(String::new, |d| format!(" ({d})"))
            )?;
        }
        let s = &self.summary;
        writeln!(out, "\nSummary:")?;
        writeln!(out, "  candidates            {}", s.candidates)?;
        writeln!(out, "  skipped               {}", s.skipped)?;
        writeln!(out, "  batches               {}", s.batches)?;
        writeln!(
            out,
            "  seats freed if acted  {}{}",
            s.seats_freed_if_all_acted,
            if self.action == ReclaimActionKind::Deactivate {
                " (a deactivated Box user still holds a seat)"
            } else {
                ""
            }
        )?;
        writeln!(
            out,
            "  approval              {}",
            if s.needs_approval {
                format!(
                    "needed (threshold {}, auto-approve {}): locally, `reclaim run --yes --max-actions {}`",
                    s.approval_threshold,
                    if s.auto_approve { "on" } else { "off" },
                    s.candidates.max(1)
                )
            } else {
                format!(
                    "not needed (at most {} and auto-approve on)",
                    s.approval_threshold
                )
            }
        )?;
        if s.permanent {
            writeln!(
                out,
                "  WARNING: Box delete is permanent: each user's content moves to {} first, then the user is deleted.",
                self.transfer_to.as_deref().unwrap_or("?")
            )?;
        }
        Ok(())
    }

    fn write_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "status,id,login,last_login_at,created_at,reason,detail"
        )?;
        for c in &self.candidates {
            writeln!(
                out,
                "candidate,{},{},{},{},,",
                csv_field(&c.id),
                csv_field(&c.login),
                c.last_login_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                c.created_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            )?;
        }
        for s in &self.skipped {
            writeln!(
                out,
                "skipped,{},{},,,{},{}",
                csv_field(&s.id),
                csv_field(&s.login),
                csv_field(&s.reason),
                csv_field(s.detail.as_deref().unwrap_or(""))
            )?;
        }
        Ok(())
    }
}

fn day(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|t| t.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff(Duration::from_secs(60));
        assert_eq!(b.delay(0), Duration::from_secs(60));
        assert_eq!(b.delay(1), Duration::from_secs(120));
        assert_eq!(b.delay(5), MAX_BACKOFF);
        assert_eq!(b.delay(40), MAX_BACKOFF);
    }
}
