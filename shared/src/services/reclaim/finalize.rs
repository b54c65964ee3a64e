//! Finalize: every account of a job that could act ends with a result, the job's figures
//! are recounted from its records, the job reaches its final state, a `reclamation` task
//! run and an audit entry are written, and the reclaim lease is released. Idempotent.
//!
//! The integration's seat figures are left to the next sync (they come from the provider,
//! not from what the job believes it did); finalize starts nothing.

use super::{JobSummary, Notice, ReclaimError, Reclaimer};
use crate::domain::{
    ActionRecord, ActionStep, Actor, AuditEntry, JobCounts, JobState, ReclaimJob, ReclaimJobId,
    SkipReason, TaskKind, TaskRun, TaskStatus,
};
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Action records read per page when recounting.
const ACTIONS_PAGE: usize = 1_000;

impl Reclaimer {
    /// Step Functions "finalize" (also after a cancel, a rejection, an expired approval or
    /// a failed batch). Accounts a running job never finished are recorded (`skipped` as
    /// cancelled, or `failed` with the step they stopped at).
    #[tracing::instrument(skip(self), fields(job_id = %job_id))]
    pub async fn finalize(&self, job_id: &ReclaimJobId) -> Result<JobSummary, ReclaimError> {
        let job = self.load_job(job_id).await?;
        if matches!(job.state, JobState::Approved | JobState::Running) {
            self.close_unfinished(&job).await?;
        }
        self.finish(job_id, None).await
    }

    /// Gives every candidate of a job that was allowed to act a final record.
    async fn close_unfinished(&self, job: &ReclaimJob) -> Result<(), ReclaimError> {
        let why = if job.cancelled {
            "the job was cancelled"
        } else {
            "the job finished first"
        };
        for batch in 1..=job.batches {
            for candidate in self.store.list_candidates(&job.id, batch).await? {
                let now = self.clock.now();
                let record = self
                    .store
                    .get_action(&job.id, &candidate.external_id)
                    .await?;
                let (closed, expected) = match record {
                    None if job.cancelled => (
                        ActionRecord::skipped_before_start(
                            &candidate,
                            job.policy.action,
                            SkipReason::Cancelled,
                            now,
                        ),
                        None,
                    ),
                    None => (
                        ActionRecord::started(&candidate, job.policy.action, None, None, now)
                            .failed(format!("not reached: {why}"), now),
                        None,
                    ),
                    Some(r) if matches!(r.step, ActionStep::Started | ActionStep::Transferred) => {
                        let step = r.step;
                        (
                            r.failed(format!("stopped at step {step}: {why}"), now),
                            Some(step),
                        )
                    }
                    Some(_) => continue,
                };
                match self.store.advance_action(&closed, expected).await {
                    // A batch still running got there first: its record stands.
                    Ok(_) | Err(StoreError::StepConflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Brings the job to its final state (unless it is there already) with figures
    /// recounted from its records; `failure` makes it `failed`. Writes the task run, the
    /// audit entry (once), and releases the reclaim lease.
    pub(super) async fn finish(
        &self,
        job_id: &ReclaimJobId,
        failure: Option<String>,
    ) -> Result<JobSummary, ReclaimError> {
        let recounted = self.recount(job_id).await?;
        let now = self.clock.now();
        let finished_now = AtomicBool::new(false);
        let change = |j: &mut ReclaimJob| {
            j.counts = JobCounts {
                candidates: j.counts.candidates,
                excluded: j.counts.excluded,
                ..recounted
            };
            j.updated_at = now;
            if j.state.is_final() {
                finished_now.store(false, Ordering::SeqCst);
                return Ok(());
            }
            let next = if failure.is_some() {
                JobState::Failed
            } else if j.cancelled {
                JobState::Cancelled
            } else {
                match j.state {
                    JobState::AwaitingApproval => JobState::Expired,
                    JobState::Planning => JobState::Failed,
                    _ => JobState::Done,
                }
            };
            j.move_to(next, now)?;
            j.error = match (&failure, next) {
                (Some(message), _) => Some(message.clone()),
                (None, JobState::Expired) => {
                    Some("nobody approved or rejected the job in time".to_owned())
                }
                (None, JobState::Failed) => Some("the plan did not finish".to_owned()),
                _ => None,
            };
            finished_now.store(true, Ordering::SeqCst);
            Ok(())
        };
        let job = self.change_job(job_id, &change).await?;
        if finished_now.load(Ordering::SeqCst) {
            self.audit(
                AuditEntry::new(
                    job.integration_id.clone(),
                    now,
                    Actor::System,
                    "reclaim_finished",
                )
                .with_target(job.id.to_string())
                .with_detail(serde_json::json!({
                    "state": job.state,
                    "counts": job.counts,
                    "error": job.error,
                })),
            )
            .await?;
            if matches!(job.state, JobState::Failed | JobState::Expired) || job.counts.failed > 0 {
                self.send_notice(failure_notice(&job)).await;
            }
            tracing::info!(state = %job.state, counts = ?job.counts, "reclaim job finished");
        }
        self.store.put_task_run(&task_run(&job, now)).await?;
        self.release_lease_of(&job.integration_id, job.id.as_str())
            .await?;
        Ok(JobSummary {
            job_id: job.id.clone(),
            state: job.state,
            counts: job.counts,
        })
    }

    /// The job's figures from its action records (candidates and exclusions come from
    /// plan).
    async fn recount(&self, job_id: &ReclaimJobId) -> Result<JobCounts, ReclaimError> {
        let mut counts = JobCounts::default();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_actions(job_id, cursor.as_deref(), ACTIONS_PAGE)
                .await?;
            for record in page.items {
                match record.step {
                    ActionStep::Done => {
                        counts.acted += 1;
                        counts.seats_freed += record.seats_freed;
                    }
                    // Acted on, then put back: the seat (if any) is taken again.
                    ActionStep::Restored => counts.acted += 1,
                    ActionStep::Skipped => counts.skipped += 1,
                    ActionStep::Failed => counts.failed += 1,
                    ActionStep::Started | ActionStep::Transferred => {}
                }
            }
            cursor = page.next;
            if cursor.is_none() {
                return Ok(counts);
            }
        }
    }
}

/// The job as a task run (one per job: the same key however often it is written).
fn task_run(job: &ReclaimJob, now: chrono::DateTime<chrono::Utc>) -> TaskRun {
    let failed = matches!(job.state, JobState::Failed | JobState::Expired);
    let c = job.counts;
    let counts: BTreeMap<String, u64> = [
        ("candidates", c.candidates),
        ("excluded", c.excluded),
        ("acted", c.acted),
        ("skipped", c.skipped),
        ("failed", c.failed),
        ("seats_freed", c.seats_freed),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), u64::from(v)))
    .collect();
    TaskRun {
        integration_id: job.integration_id.clone(),
        kind: TaskKind::Reclamation,
        sync_id: job.id.to_string(),
        started_at: job.created_at,
        finished_at: now,
        status: if failed {
            TaskStatus::Failed
        } else {
            TaskStatus::Succeeded
        },
        duration_ms: u64::try_from((now - job.created_at).num_milliseconds()).unwrap_or(0),
        counts,
        error: if failed { job.error.clone() } else { None },
    }
}

fn failure_notice(job: &ReclaimJob) -> Notice {
    let c = job.counts;
    Notice {
        subject: format!("Seatkeeper: reclaim job {} ended {}", job.id, job.state),
        message: format!(
            "Reclaim job {} of integration {} ended {}{}: {} acted on, {} skipped, {} failed \
             of {} candidates. Per-account results: GET /reclamations/{}.",
            job.id,
            job.integration_id,
            job.state,
            job.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            c.acted,
            c.skipped,
            c.failed,
            c.candidates,
            job.id
        ),
    }
}
