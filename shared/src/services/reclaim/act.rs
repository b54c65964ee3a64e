//! `reclaim_batch` (design §7, §8): one batch of the approved set, account by account,
//! each account re-verified right before the first write, under its account lock, one
//! conditional step at a time:
//!
//! - deactivate: `started` (previous status and role saved) → `PUT status=inactive` → `done`
//! - delete: `started` → transfer owned content → `transferred` → `DELETE` (never forced) → `done`
//!
//! A retried or resumed batch reads each account's step and goes on from there, so no step
//! happens twice. The job's cancel flag is read before every provider write.

use super::eligibility::{Rules, Skip};
use super::error::{ErrorReach, reach};
use super::plan::provider_detail;
use super::verify::Verdict;
use super::{BatchOutcome, ReclaimError, Reclaimer};
use crate::domain::{
    Account, ActionRecord, ActionStep, Actor, AuditEntry, Candidate, EffectivePolicy, Integration,
    JobState, ReclaimActionKind, ReclaimJob, ReclaimJobId, SkipReason,
};
use crate::provider::ProviderError;
use crate::provider::box_client::{BoxClient, DeleteOutcome};
use crate::services::Deadline;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// What to do after one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Next,
    /// Stop the batch now; `done`: nothing more will happen in it (the job was cancelled).
    Stop {
        done: bool,
    },
}

impl Reclaimer {
    /// Step Functions "reclaim_batch": acts on one batch until it is done or the deadline
    /// nears (`done: false`: call again). A cancelled or finished job acts on nobody
    /// (`done: true`). Errors worth retrying (rate limits, Box unavailable, a transfer
    /// still running) leave every account at the step it reached.
    #[tracing::instrument(skip(self, deadline), fields(job_id = %job_id, batch))]
    pub async fn reclaim_batch(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        deadline: Deadline,
    ) -> Result<BatchOutcome, ReclaimError> {
        let started_with = deadline.remaining();
        let job = self.load_job(job_id).await?;
        if stops(&job) {
            return self.batch_outcome(job_id, batch, Some(true)).await;
        }
        if !matches!(job.state, JobState::Approved | JobState::Running) {
            return Err(ReclaimError::NotEligible(format!(
                "job {job_id} is {}: nothing is acted on before an approval",
                job.state
            )));
        }
        if batch == 0 || batch > job.batches {
            return Err(ReclaimError::Invalid(format!(
                "batch {batch} is not one of job {job_id}'s batches (1 to {})",
                job.batches
            )));
        }
        self.hold_lease(&job).await?;
        let now = self.clock.now();
        let change = |j: &mut ReclaimJob| {
            if j.state == JobState::Approved {
                j.move_to(JobState::Running, now)
            } else {
                Ok(())
            }
        };
        let job = match self.change_job(job_id, &change).await {
            Ok(job) => job,
            Err(ReclaimError::Refused { .. }) if stops(&self.load_job(job_id).await?) => {
                return self.batch_outcome(job_id, batch, Some(true)).await;
            }
            Err(e) => return Err(e),
        };

        let pending = self.pending(job_id, batch).await?;
        if pending.is_empty() {
            return self.batch_outcome(job_id, batch, None).await;
        }
        let integration = self.load_integration(&job.integration_id).await?;
        if !integration.enabled {
            return Err(ReclaimError::NotEligible(format!(
                "integration {} was disabled or disconnected: its jobs act no more",
                integration.id
            )));
        }
        let policy = Self::rules_of(&job, &integration)?;
        let client = self.sources.box_client(&integration).await?;
        let mut work = Batch {
            reclaimer: self,
            actor: job.approved_by.clone().unwrap_or(Actor::System),
            job,
            integration,
            policy,
            client,
            deadline,
            started_with,
            logins: HashMap::new(),
            planned: HashMap::new(),
            progressed: false,
            transfer_pending: None,
        };
        work.prepare(&pending).await?;
        for (candidate, record) in &pending {
            if !work.time_left(self.options.account_headroom) {
                return self.batch_outcome(job_id, batch, Some(false)).await;
            }
            let flow = match work.account(candidate, record.clone()).await {
                Ok(flow) => flow,
                // After progress, a retryable failure hands the batch back to the loop (a new
                // invocation with fresh retries) instead of spending the workflow's retries
                // on a batch that is moving; steps are idempotent, so it resumes cleanly.
                Err(e) if e.is_retryable() && work.progressed => {
                    tracing::warn!(error = %e, batch, "batch paused after progress");
                    return self.batch_outcome(job_id, batch, Some(false)).await;
                }
                Err(e) => return Err(e),
            };
            if let Flow::Stop { done } = flow {
                // A pending transfer is retried by the next invocation first.
                return self.batch_outcome(job_id, batch, Some(done)).await;
            }
        }
        // A delete refused because Box still moves the content: retried with a long backoff
        // by Step Functions, which is better than waiting here.
        if let Some(e) = work.transfer_pending {
            return Err(e.into());
        }
        self.batch_outcome(job_id, batch, None).await
    }

    /// The batch's candidates that still need work, with the step each reached.
    async fn pending(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
    ) -> Result<Vec<(Candidate, Option<ActionRecord>)>, ReclaimError> {
        let mut pending = Vec::new();
        for candidate in self.store.list_candidates(job_id, batch).await? {
            let record = self
                .store
                .get_action(job_id, &candidate.external_id)
                .await?;
            let open = record
                .as_ref()
                .is_none_or(|r| matches!(r.step, ActionStep::Started | ActionStep::Transferred));
            if open {
                pending.push((candidate, record));
            }
        }
        Ok(pending)
    }

    /// The batch's figures from its accounts' records.
    pub(super) async fn batch_outcome(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        done: Option<bool>,
    ) -> Result<BatchOutcome, ReclaimError> {
        let mut outcome = BatchOutcome {
            job_id: job_id.clone(),
            batch,
            done: false,
            acted: 0,
            skipped: 0,
            failed: 0,
        };
        let mut open = 0u32;
        for candidate in self.store.list_candidates(job_id, batch).await? {
            let step = self
                .store
                .get_action(job_id, &candidate.external_id)
                .await?
                .map(|r| r.step);
            match step {
                Some(ActionStep::Done | ActionStep::Restored) => outcome.acted += 1,
                Some(ActionStep::Skipped) => outcome.skipped += 1,
                Some(ActionStep::Failed) => outcome.failed += 1,
                None | Some(ActionStep::Started | ActionStep::Transferred) => open += 1,
            }
        }
        outcome.done = done.unwrap_or(open == 0);
        Ok(outcome)
    }
}

/// A job that must not act any more: cancelled, or finished.
fn stops(job: &ReclaimJob) -> bool {
    job.cancelled || job.state.is_final()
}

/// One invocation's work on one batch.
pub(super) struct Batch<'a> {
    pub reclaimer: &'a Reclaimer,
    pub job: ReclaimJob,
    pub integration: Integration,
    pub policy: EffectivePolicy,
    pub client: BoxClient,
    /// Who the audit names for the job's writes: its approver (Seatkeeper itself when the
    /// integration auto-approved it).
    actor: Actor,
    deadline: Deadline,
    /// Time the invocation had when it started.
    started_with: Option<Duration>,
    /// The latest LOGIN per user since the coverage high-water mark (minus the overlap).
    pub logins: HashMap<String, DateTime<Utc>>,
    /// The accounts as the store has them (what plan saw, or a later sync).
    pub planned: HashMap<String, Account>,
    /// Whether this invocation has written anything yet.
    progressed: bool,
    /// A delete refused while Box still moves the content, remembered so the other
    /// accounts go on first.
    transfer_pending: Option<ProviderError>,
}

impl Batch<'_> {
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            policy: &self.policy,
            own_user_id: self.integration.service_user_id.as_deref(),
            enterprise_id: &self.integration.tenant_id,
            now: self.reclaimer.clock.now(),
        }
    }

    /// What every account needs before acting: the transfer target still fit to receive
    /// content, and, for accounts not yet started, one pass over the LOGIN events since
    /// the sync and the stored accounts.
    async fn prepare(
        &mut self,
        pending: &[(Candidate, Option<ActionRecord>)],
    ) -> Result<(), ReclaimError> {
        let needs_transfer = pending
            .iter()
            .any(|(_, r)| r.as_ref().is_none_or(|r| r.step == ActionStep::Started));
        if let Some(target) = self.policy.transfer_to()
            && needs_transfer
        {
            let rules = self.rules();
            self.reclaimer
                .check_transfer_target(&self.client, &self.integration, &rules, target)
                .await?;
        }
        let fresh: Vec<String> = pending
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(c, _)| c.external_id.clone())
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        self.load_verification(&fresh).await
    }

    fn time_left(&self, headroom: Duration) -> bool {
        self.deadline.remaining().is_none_or(|left| left > headroom)
    }

    /// One account, from wherever it stopped.
    async fn account(
        &mut self,
        candidate: &Candidate,
        record: Option<ActionRecord>,
    ) -> Result<Flow, ReclaimError> {
        // The approved set is read again right before acting: nothing outside it, whatever
        // the input said.
        if !self.in_approved_set(candidate).await? {
            return Ok(Flow::Next);
        }
        match record {
            None => self.fresh(candidate).await,
            Some(record)
                if matches!(record.step, ActionStep::Started | ActionStep::Transferred) =>
            {
                self.lock(candidate).await?;
                // Read again under the lock: the step it reached is where it goes on.
                let current = self
                    .reclaimer
                    .store
                    .get_action(&self.job.id, &record.external_id)
                    .await;
                let flow = match current {
                    Ok(Some(current)) => self.steps(current).await,
                    Ok(None) => Ok(Flow::Next),
                    Err(e) => Err(e.into()),
                };
                self.unlock(candidate).await;
                flow
            }
            Some(_) => Ok(Flow::Next),
        }
    }

    async fn in_approved_set(&self, candidate: &Candidate) -> Result<bool, ReclaimError> {
        let stored = self
            .reclaimer
            .store
            .get_candidate(&self.job.id, candidate.batch, &candidate.external_id)
            .await?;
        let approved = stored.is_some_and(|c| c.job_id == self.job.id);
        if !approved {
            tracing::warn!(user_id = %candidate.external_id, batch = candidate.batch, "not in the job's approved set; left alone");
        }
        Ok(approved)
    }

    /// An account nothing was done to yet: re-verify, then start.
    async fn fresh(&mut self, candidate: &Candidate) -> Result<Flow, ReclaimError> {
        match self.verify(candidate).await? {
            Verdict::Skip(skip) => {
                tracing::info!(user_id = %candidate.external_id, reason = %skip.reason, "skipped at re-verification");
                self.skip_before_start(candidate, skip).await?;
                Ok(Flow::Next)
            }
            Verdict::Fail(reason) => {
                let record = self
                    .first_record(candidate, None, None)
                    .failed(reason, self.now());
                self.advance(&record, None).await?;
                Ok(Flow::Next)
            }
            Verdict::Act { status, role } => {
                self.lock(candidate).await?;
                let flow = self.start(candidate, status, role).await;
                self.unlock(candidate).await;
                flow
            }
        }
    }

    /// Saves what `restore` needs (`started`), then goes through the steps.
    async fn start(
        &mut self,
        candidate: &Candidate,
        status: Option<String>,
        role: Option<String>,
    ) -> Result<Flow, ReclaimError> {
        let headroom = self.headroom_for(ActionStep::Started);
        if self.stopping().await? {
            self.skip_before_start(candidate, Skip::new(SkipReason::Cancelled))
                .await?;
            return Ok(Flow::Stop { done: true });
        }
        if let Some(flow) = self.out_of_time(headroom)? {
            return Ok(flow);
        }
        let record = self.first_record(candidate, status, role);
        match self.advance(&record, None).await? {
            Some(record) => self.steps(record).await,
            None => Ok(Flow::Next),
        }
    }

    /// The provider writes, one step at a time from the step recorded.
    async fn steps(&mut self, mut record: ActionRecord) -> Result<Flow, ReclaimError> {
        let notify = self.policy.notify();
        loop {
            if !matches!(record.step, ActionStep::Started | ActionStep::Transferred) {
                return Ok(Flow::Next);
            }
            if let Some(flow) = self.before_write(&record).await? {
                return Ok(flow);
            }
            let id = record.external_id.clone();
            match (record.action, record.step) {
                (ReclaimActionKind::Deactivate, ActionStep::Started) => {
                    let result = self
                        .client
                        .set_user_status(&id, super::eligibility::INACTIVE, notify)
                        .await;
                    self.progressed = true;
                    if let Err(e) = result {
                        return self.write_failed(&record, "deactivate", e).await;
                    }
                    self.audit_write(
                        &record,
                        "user_deactivated",
                        serde_json::json!({
                            "previous_status": record.previous_status,
                            "previous_role": record.previous_role,
                        }),
                    )
                    .await?;
                    let seats = self.seats_freed();
                    let done = record.done(seats, self.now());
                    self.advance(&done, Some(ActionStep::Started)).await?;
                    return Ok(Flow::Next);
                }
                (ReclaimActionKind::Delete, ActionStep::Started) => {
                    let Some(target) = self.policy.transfer_to().map(str::to_owned) else {
                        return Err(ReclaimError::Invalid(
                            "a delete job without transfer_to".to_owned(),
                        ));
                    };
                    let result = self
                        .client
                        .transfer_owned_content(&id, &target, notify)
                        .await;
                    self.progressed = true;
                    let folder = match result {
                        Ok(folder) => folder,
                        Err(e) => return self.write_failed(&record, "transfer", e).await,
                    };
                    self.audit_write(
                        &record,
                        "user_content_transferred",
                        serde_json::json!({ "to": target, "folder_id": folder.id }),
                    )
                    .await?;
                    let transferred = record.transferred(&target, self.now());
                    match self
                        .advance(&transferred, Some(ActionStep::Started))
                        .await?
                    {
                        Some(next) => record = next,
                        None => return Ok(Flow::Next),
                    }
                }
                (ReclaimActionKind::Delete, ActionStep::Transferred) => {
                    let result = self.client.delete_user(&id, notify).await;
                    self.progressed = true;
                    let outcome = match result {
                        Ok(outcome) => outcome,
                        Err(e) => return self.write_failed(&record, "delete", e).await,
                    };
                    self.audit_write(
                        &record,
                        "user_deleted",
                        serde_json::json!({
                            "outcome": match outcome {
                                DeleteOutcome::Deleted => "deleted",
                                // The delete's first answer was lost: it went through.
                                DeleteOutcome::AlreadyGone => "already_gone",
                            },
                            "content_transferred_to": record.transferred_to,
                        }),
                    )
                    .await?;
                    let seats = self.seats_freed();
                    let done = record.done(seats, self.now());
                    self.advance(&done, Some(ActionStep::Transferred)).await?;
                    self.mark_deleted(&record.external_id).await?;
                    return Ok(Flow::Next);
                }
                _ => return Ok(Flow::Next),
            }
        }
    }

    /// The deleted user leaves the stored roster now, not at the next sync: otherwise a
    /// large delete job would look like a roster cut short to that sync (vanish ratio).
    async fn mark_deleted(&self, external_id: &str) -> Result<(), ReclaimError> {
        let store = &self.reclaimer.store;
        let ids = [external_id.to_owned()];
        let now = self.now();
        let mut accounts = store.get_accounts(&self.integration.id, &ids).await?;
        for account in &mut accounts {
            if account.vanished_at.is_none() {
                account.vanished_at = Some(now);
            }
        }
        if !accounts.is_empty() {
            store.put_accounts(&self.integration.id, &accounts).await?;
        }
        Ok(())
    }

    /// Before every provider write: the job still acts, and there is time for the write.
    async fn before_write(&mut self, record: &ActionRecord) -> Result<Option<Flow>, ReclaimError> {
        if self.stopping().await? {
            tracing::info!(user_id = %record.external_id, step = %record.step, "job cancelled; no more writes");
            return Ok(Some(Flow::Stop { done: true }));
        }
        let headroom = self.headroom_for(record.step);
        self.out_of_time(headroom)
    }

    /// A transfer needs its client timeout left; anything else the account headroom.
    fn headroom_for(&self, step: ActionStep) -> Duration {
        let options = &self.reclaimer.options;
        if self.policy.action() == ReclaimActionKind::Delete && step == ActionStep::Started {
            options.transfer_headroom()
        } else {
            options.account_headroom
        }
    }

    /// `Some(Stop)` when the deadline is too near for a step that needs `headroom`. An
    /// invocation that never had that much time would loop for ever: refused instead.
    fn out_of_time(&self, headroom: Duration) -> Result<Option<Flow>, ReclaimError> {
        if self.time_left(headroom) {
            return Ok(None);
        }
        if !self.progressed && self.started_with.is_some_and(|had| had <= headroom) {
            return Err(ReclaimError::Invalid(format!(
                "the invocation had {}s, less than the {}s a step of this job needs (a delete's \
                 content transfer can take {}s): give the reclaim function a longer timeout",
                self.started_with.unwrap_or_default().as_secs(),
                headroom.as_secs(),
                crate::provider::box_client::TRANSFER_TIMEOUT.as_secs()
            )));
        }
        Ok(Some(Flow::Stop { done: false }))
    }

    /// A provider write that did not go through: transient errors leave the account at its
    /// step for a retry; a refusal of this account is recorded and the batch goes on.
    async fn write_failed(
        &mut self,
        record: &ActionRecord,
        operation: &str,
        err: ProviderError,
    ) -> Result<Flow, ReclaimError> {
        match reach(&err) {
            ErrorReach::Transient => {
                tracing::warn!(user_id = %record.external_id, operation, error = %err, "provider write to retry");
                // What Box may have done (an answer lost) or refused for now is on the
                // trail too; a rate limit or a missing token means nothing was sent.
                let audited = match &err {
                    ProviderError::Unavailable { .. } => Some("reclaim_write_unconfirmed"),
                    ProviderError::TransferPending { .. } => Some("reclaim_write_refused"),
                    _ => None,
                };
                if let Some(action) = audited {
                    self.audit_write(
                        record,
                        action,
                        serde_json::json!({
                            "operation": operation,
                            "error": provider_detail(&err),
                        }),
                    )
                    .await?;
                }
                if matches!(err, ProviderError::TransferPending { .. }) {
                    self.transfer_pending.get_or_insert(err);
                    return Ok(Flow::Next);
                }
                Err(err.into())
            }
            ErrorReach::Job => Err(err.into()),
            ErrorReach::Account => {
                let detail = provider_detail(&err);
                tracing::warn!(user_id = %record.external_id, operation, error = %err, "provider refused a write");
                self.audit_write(
                    record,
                    "reclaim_write_refused",
                    serde_json::json!({ "operation": operation, "error": detail }),
                )
                .await?;
                let failed = record.failed(format!("{operation} refused: {detail}"), self.now());
                self.advance(&failed, Some(record.step)).await?;
                Ok(Flow::Next)
            }
        }
    }

    /// Whether the job stops acting: cancelled (or finished) as stored now.
    async fn stopping(&self) -> Result<bool, ReclaimError> {
        let job = self.reclaimer.load_job(&self.job.id).await?;
        Ok(stops(&job))
    }

    /// Writes a step; `None` when another writer moved the account first (it is theirs).
    async fn advance(
        &mut self,
        record: &ActionRecord,
        expected: Option<ActionStep>,
    ) -> Result<Option<ActionRecord>, ReclaimError> {
        match self.reclaimer.store.advance_action(record, expected).await {
            Ok(stored) => {
                self.progressed = true;
                Ok(Some(stored))
            }
            Err(StoreError::StepConflict { current, .. }) => {
                tracing::warn!(
                    user_id = %record.external_id,
                    expected = ?expected,
                    found = ?current,
                    "another writer moved this account first"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn skip_before_start(
        &mut self,
        candidate: &Candidate,
        skip: Skip,
    ) -> Result<(), ReclaimError> {
        let now = self.now();
        let mut record =
            ActionRecord::skipped_before_start(candidate, self.policy.action(), skip.reason, now);
        if let Some(detail) = skip.detail {
            record.reason = Some(format!("{} ({detail})", skip.reason.describe()));
        }
        self.advance(&record, None).await?;
        Ok(())
    }

    fn first_record(
        &self,
        candidate: &Candidate,
        status: Option<String>,
        role: Option<String>,
    ) -> ActionRecord {
        ActionRecord::started(candidate, self.policy.action(), status, role, self.now())
    }

    async fn lock(&self, candidate: &Candidate) -> Result<(), ReclaimError> {
        let now = self.now();
        self.reclaimer
            .store
            .acquire_account_lock(
                &self.integration.id,
                &candidate.external_id,
                self.job.id.as_str(),
                now,
                now + self.reclaimer.options.lock_ttl,
            )
            .await?;
        Ok(())
    }

    /// Releases the account lock; a failure only delays the next writer until it expires.
    async fn unlock(&self, candidate: &Candidate) {
        if let Err(e) = self
            .reclaimer
            .store
            .release_account_lock(
                &self.integration.id,
                &candidate.external_id,
                self.job.id.as_str(),
            )
            .await
        {
            tracing::error!(user_id = %candidate.external_id, error = %e, "could not release an account lock");
        }
    }

    async fn audit_write(
        &self,
        record: &ActionRecord,
        action: &str,
        mut detail: serde_json::Value,
    ) -> Result<(), ReclaimError> {
        if let Some(map) = detail.as_object_mut() {
            map.insert("job_id".into(), serde_json::json!(self.job.id));
            map.insert("login".into(), serde_json::json!(record.login));
        }
        self.reclaimer
            .audit(
                AuditEntry::new(
                    self.integration.id.clone(),
                    self.now(),
                    self.actor.clone(),
                    action,
                )
                .with_target(record.external_id.clone())
                .with_detail(detail),
            )
            .await
    }

    fn seats_freed(&self) -> u32 {
        self.policy.action().seats_freed(self.integration.provider)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.reclaimer.clock.now()
    }
}
