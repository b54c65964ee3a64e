//! Plan (design §7, §8): proof that "inactive" means something (event coverage), the
//! candidates in batches, and a reason for every dormant seat holder left out.

use super::eligibility::{Rules, Skip};
use super::{PlanSummary, ReclaimError, Reclaimer};
use crate::domain::{
    Account, AccountKind, AuditEntry, BoxUserFacts, CANDIDATES_PER_BATCH, Candidate,
    EffectivePolicy, Exclusion, Integration, JobState, ReclaimActionKind, ReclaimJob, ReclaimJobId,
    SkipReason, classify_box_user,
};
use crate::provider::box_client::{BoxClient, Capability};
use crate::store::LeaseKind;
use chrono::Duration;
use std::collections::HashSet;
use std::time::Instant;

/// Dormant accounts read from the store per page.
const SCAN_PAGE: usize = 500;
/// Exclusions written per store call.
const EXCLUSION_FLUSH: usize = 100;

impl Reclaimer {
    /// Step Functions "plan". Waits while a sync runs (then `SyncRunning`, retryable);
    /// refuses (`NotEligible`) when the event coverage is shorter than `inactive_days` or
    /// older than a day, or the Box app lacks what the job needs. Writes the candidates in
    /// batches of at most 50 and a reason for each dormant seat holder left out.
    ///
    /// A dry run, a job with nothing to do and a cancelled job finish here (the workflow
    /// ends without `finalize`); a job within the integration's auto-approval is approved
    /// here; any other waits for approval. A refusal fails the job and releases its lease.
    /// Called again after it finished, it answers the same summary.
    #[tracing::instrument(skip(self), fields(job_id = %job_id))]
    pub async fn plan(&self, job_id: &ReclaimJobId) -> Result<PlanSummary, ReclaimError> {
        let job = self.load_job(job_id).await?;
        if job.state != JobState::Planning {
            return Ok(summary_of(&job));
        }
        if job.cancelled {
            self.finish(job_id, None).await?;
            return Ok(summary_of(&self.load_job(job_id).await?));
        }
        match self.plan_job(job).await {
            Ok(summary) => Ok(summary),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                // Nothing more can come of this job: it must not hold the integration.
                if let Err(finish) = self.finish(job_id, Some(e.to_string())).await {
                    tracing::error!(error = %finish, "could not finish the refused job");
                }
                Err(e)
            }
        }
    }

    async fn plan_job(&self, job: ReclaimJob) -> Result<PlanSummary, ReclaimError> {
        self.hold_lease(&job).await?;
        let integration = self.load_integration(&job.integration_id).await?;
        let policy = Self::rules_of(&job, &integration)?;
        let Some(plan) = integration.plan else {
            return Err(ReclaimError::Invalid(
                "the integration declares no Box plan (license type)".to_owned(),
            ));
        };
        self.wait_for_sync(&integration).await?;
        self.check_coverage(&integration, &policy).await?;
        self.check_fresh(&job).await?;

        let client = self.sources.box_client(&integration).await?;
        check_capabilities(&client, &policy).await?;
        let now = self.clock.now();
        let rules = Rules {
            policy: &policy,
            own_user_id: integration.service_user_id.as_deref(),
            enterprise_id: &integration.tenant_id,
            now,
        };
        if let Some(target) = policy.transfer_to() {
            self.check_transfer_target(&client, &integration, &rules, target)
                .await?;
        }

        let mut scan = Scan::new(job.id.clone());
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .accounts_by_license_type(
                    &integration.id,
                    plan.license_type(),
                    Some(rules.inactive_since()),
                    cursor.as_deref(),
                    SCAN_PAGE,
                )
                .await?;
            for account in page.items {
                // An account whose index key moved during the scan can come twice.
                if !scan.seen.insert(account.external_id.clone()) {
                    continue;
                }
                match consider(&client, &rules, &account).await {
                    Ok(()) => scan.candidate(&account),
                    Err(skip) => scan.exclusion(&account, skip),
                }
                self.flush(&mut scan, false).await?;
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        self.flush(&mut scan, true).await?;
        self.record_plan(job, &integration, &policy, &scan).await
    }

    /// Waits (bounded) while a sync holds its lease: plan must read the accounts a
    /// completed sync wrote, not a roster half-way through.
    async fn wait_for_sync(&self, integration: &Integration) -> Result<(), ReclaimError> {
        let give_up = Instant::now() + self.options.sync_wait;
        loop {
            let lease = self
                .store
                .get_lease(&integration.id, LeaseKind::Sync)
                .await?;
            match lease {
                Some(lease) if lease.expires_at > self.clock.now() => {
                    if Instant::now() >= give_up {
                        return Err(ReclaimError::SyncRunning(integration.id.clone()));
                    }
                    tracing::info!(owner = %lease.owner, "waiting for a sync to finish");
                    tokio::time::sleep(self.options.sync_poll).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// "Never logged in" needs proof: login events read without a gap for at least
    /// `inactive_days`, up to less than a day ago.
    async fn check_coverage(
        &self,
        integration: &Integration,
        policy: &EffectivePolicy,
    ) -> Result<(), ReclaimError> {
        let Some(coverage) = self.store.get_event_coverage(&integration.id).await? else {
            return Err(ReclaimError::NotEligible(
                "no login events were read yet: run a sync first".to_owned(),
            ));
        };
        let needed = Duration::days(i64::from(policy.inactive_days()));
        if coverage.span() < needed {
            return Err(ReclaimError::NotEligible(format!(
                "login events cover {} days ({} to {}), fewer than the {} inactive days the \
                 job needs to prove inactivity",
                coverage.span().num_days(),
                coverage.from.to_rfc3339(),
                coverage.to.to_rfc3339(),
                policy.inactive_days()
            )));
        }
        let age = self.clock.now() - coverage.to;
        if age > self.options.max_coverage_age {
            return Err(ReclaimError::NotEligible(format!(
                "login events were last read at {} ({} hours ago): run a sync first",
                coverage.to.to_rfc3339(),
                age.num_hours()
            )));
        }
        Ok(())
    }

    /// The approved set is written once: a plan that stopped part-way (its invocation
    /// died) cannot tell which of its items are stale, so the job fails instead of
    /// guessing, and a new job starts clean.
    async fn check_fresh(&self, job: &ReclaimJob) -> Result<(), ReclaimError> {
        let candidates = self.store.list_candidates(&job.id, 1).await?;
        let exclusions = self.store.list_exclusions(&job.id, None, 1).await?;
        if !candidates.is_empty() || !exclusions.items.is_empty() {
            return Err(ReclaimError::NotEligible(
                "an earlier attempt of this plan stopped part-way; start a new job".to_owned(),
            ));
        }
        Ok(())
    }

    /// A delete job's `transfer_to`: an active managed user of the integration's
    /// enterprise, a regular seat holder, not excluded, and not inactive itself (it would
    /// be a candidate).
    pub(super) async fn check_transfer_target(
        &self,
        client: &BoxClient,
        integration: &Integration,
        rules: &Rules<'_>,
        target: &str,
    ) -> Result<(), ReclaimError> {
        let refuse = |why: String| ReclaimError::Invalid(format!("transfer_to {target}: {why}"));
        let user = client
            .get_user(target)
            .await?
            .ok_or_else(|| refuse("Box has no such user".to_owned()))?;
        let login = user.login.clone().unwrap_or_default();
        let enterprise = user.enterprise.as_ref().map(|e| e.id.as_str());
        if enterprise != Some(integration.tenant_id.as_str()) {
            return Err(refuse(
                "not a user of the integration's enterprise".to_owned(),
            ));
        }
        let (kind, holds_seat) = classify_box_user(BoxUserFacts {
            id: &user.id,
            login: &login,
            is_platform_access_only: user.is_platform_access_only.unwrap_or(false),
            enterprise_id: enterprise,
            integration_enterprise_id: &integration.tenant_id,
            service_user_id: None,
        });
        if kind != AccountKind::Human || !holds_seat {
            return Err(refuse(format!("a {kind} account, not a managed user")));
        }
        if user.status.as_deref() != Some("active") {
            return Err(refuse(format!(
                "status {}, not active",
                user.status.as_deref().unwrap_or("unknown")
            )));
        }
        if let Some(reason) = rules.policy.exclusions().reason_for(&user.id, &login) {
            return Err(refuse(format!("excluded ({})", reason.describe())));
        }
        if rules.policy.exclusions().has_groups() {
            let groups = client.user_group_ids(target).await?;
            if let Err(skip) = rules.excluded_group(&groups) {
                return Err(refuse(format!(
                    "in an excluded group ({})",
                    skip.detail.unwrap_or_default()
                )));
            }
        }
        let stored = self
            .store
            .get_accounts(&integration.id, &[target.to_owned()])
            .await?;
        let Some(known) = stored.first() else {
            return Err(refuse(
                "not among the accounts the last sync read".to_owned(),
            ));
        };
        if known
            .last_login_at
            .is_none_or(|at| at < rules.inactive_since())
        {
            return Err(refuse(format!(
                "no login in the last {} days: the content of deleted users must go to \
                 someone who uses Box",
                rules.policy.inactive_days()
            )));
        }
        Ok(())
    }

    /// Writes full candidate batches (all at the end) and exclusions in chunks.
    async fn flush(&self, scan: &mut Scan, all: bool) -> Result<(), ReclaimError> {
        if scan.batch.len() >= CANDIDATES_PER_BATCH || (all && !scan.batch.is_empty()) {
            self.store.put_candidates(&scan.job_id, &scan.batch).await?;
            scan.batch.clear();
        }
        if scan.skipped.len() >= EXCLUSION_FLUSH || (all && !scan.skipped.is_empty()) {
            self.store
                .put_exclusions(&scan.job_id, &scan.skipped)
                .await?;
            scan.skipped.clear();
        }
        Ok(())
    }

    /// Freezes the approved set: the counts, and the state that says what happens next.
    async fn record_plan(
        &self,
        job: ReclaimJob,
        integration: &Integration,
        policy: &EffectivePolicy,
        scan: &Scan,
    ) -> Result<PlanSummary, ReclaimError> {
        let candidates = scan.candidates;
        // A dry run acts on nobody anyway: it reports what it found whatever the cap.
        if !policy.dry_run() && !policy.allows_count(u64::from(candidates)) {
            return Err(ReclaimError::NotEligible(format!(
                "{candidates} candidates, more than the job's max_actions ({}); it acts on \
                 nobody rather than on an arbitrary part of them",
                policy.max_actions().unwrap_or_default()
            )));
        }
        let batches = candidates.div_ceil(CANDIDATES_PER_BATCH as u32);
        let finishes = candidates == 0 || policy.dry_run();
        let needs_approval = !finishes && policy.needs_approval(u64::from(candidates));
        let now = self.clock.now();
        let (excluded, dry_run) = (scan.excluded, policy.dry_run());
        let change = |j: &mut ReclaimJob| {
            j.counts.candidates = candidates;
            j.counts.excluded = excluded;
            j.batches = batches;
            if j.cancelled {
                j.move_to(JobState::Cancelled, now)
            } else if finishes {
                j.move_to(JobState::Done, now)
            } else if needs_approval {
                j.move_to(JobState::AwaitingApproval, now)
            } else {
                j.auto_approve(now)
            }
        };
        let planned = self.change_job(&job.id, &change).await?;
        self.audit(
            AuditEntry::new(
                integration.id.clone(),
                now,
                planned.requested_by.clone(),
                "reclaim_planned",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({
                "candidates": candidates,
                "excluded": excluded,
                "batches": batches,
                "dry_run": dry_run,
                "action": policy.action(),
                "state": planned.state,
            })),
        )
        .await?;
        if planned.approved_by.is_some() {
            self.audit(
                AuditEntry::new(
                    integration.id.clone(),
                    now,
                    crate::domain::Actor::System,
                    "reclaim_auto_approved",
                )
                .with_target(job.id.to_string())
                .with_detail(serde_json::json!({
                    "candidates": candidates,
                    "threshold": policy.approval_threshold(),
                })),
            )
            .await?;
        }
        if planned.state.is_final() {
            self.finish(&job.id, None).await?;
        }
        tracing::info!(candidates, excluded, batches, state = %planned.state, "reclaim plan recorded");
        Ok(summary_of(&planned))
    }
}

/// Whether a dormant seat holder becomes a candidate: the rules on what is stored, then
/// its groups read live when the job excludes any (unreadable: left out).
async fn consider(client: &BoxClient, rules: &Rules<'_>, account: &Account) -> Result<(), Skip> {
    rules.plan_account(account)?;
    if rules.policy.exclusions().has_groups() {
        match client.user_group_ids(&account.external_id).await {
            Ok(groups) => rules.excluded_group(&groups)?,
            Err(e) => {
                tracing::info!(user_id = %account.external_id, error = %e, "groups unreadable at plan");
                return Err(Skip::with_detail(
                    SkipReason::GroupsUnreadable,
                    provider_detail(&e),
                ));
            }
        }
    }
    Ok(())
}

/// A short fact about a provider error for a skip's detail (Box's code, never a body).
pub(super) fn provider_detail(err: &crate::provider::ProviderError) -> String {
    use crate::provider::ProviderError as E;
    match err {
        E::Forbidden { status, code, .. } | E::Rejected { status, code, .. } => {
            format!("Box answered {status} {code}")
        }
        E::NotFound { .. } => "Box answered 404".to_owned(),
        E::RateLimited { .. } => "Box kept rate-limiting".to_owned(),
        E::Unavailable { .. } => "Box was unavailable".to_owned(),
        E::Malformed { .. } => "Box answered something unreadable".to_owned(),
        E::Auth { code, .. } => format!("Box refused the credentials ({code})"),
        E::TokenHandling { .. } => "no access token".to_owned(),
        E::TransferPending { code, .. } => format!("transfer pending ({code})"),
        E::InvalidInput { .. } => "not a Box user id".to_owned(),
    }
}

/// The app must be able to do what the job needs, or the plan says what is missing:
/// update users always, read each user's own events always (Box Drive users), read groups
/// when the job excludes any, transfer content for a delete.
async fn check_capabilities(
    client: &BoxClient,
    policy: &EffectivePolicy,
) -> Result<(), ReclaimError> {
    let mut granted = client.granted_capabilities().await?;
    if !policy.exclusions().has_groups() {
        granted.read_groups = Capability::Granted;
    }
    let missing = granted.missing(policy.action() == ReclaimActionKind::Delete);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ReclaimError::NotEligible(missing.join("; ")))
    }
}

/// The summary of a job that has planned (or the plan it finished with).
fn summary_of(job: &ReclaimJob) -> PlanSummary {
    let acts = matches!(
        job.state,
        JobState::AwaitingApproval | JobState::Approved | JobState::Running
    ) || (job.state == JobState::Done && job.approved_by.is_some());
    PlanSummary {
        job_id: job.id.clone(),
        candidates: job.counts.candidates,
        excluded: job.counts.excluded,
        batches: if acts {
            (1..=job.batches).collect()
        } else {
            Vec::new()
        },
        dry_run: job.policy.dry_run,
        needs_approval: job.state == JobState::AwaitingApproval
            || (acts
                && job
                    .approved_by
                    .as_ref()
                    .is_some_and(|a| *a != crate::domain::Actor::System)),
        permanent: job.policy.action == ReclaimActionKind::Delete,
    }
}

/// What the scan has found so far.
struct Scan {
    job_id: ReclaimJobId,
    candidates: u32,
    excluded: u32,
    batch: Vec<Candidate>,
    skipped: Vec<Exclusion>,
    seen: HashSet<String>,
}

impl Scan {
    fn new(job_id: ReclaimJobId) -> Self {
        Self {
            job_id,
            candidates: 0,
            excluded: 0,
            batch: Vec::with_capacity(CANDIDATES_PER_BATCH),
            skipped: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn candidate(&mut self, account: &Account) {
        let batch = self.candidates / CANDIDATES_PER_BATCH as u32 + 1;
        self.candidates += 1;
        self.batch.push(Candidate {
            job_id: self.job_id.clone(),
            batch,
            external_id: account.external_id.clone(),
            login: account.login.clone(),
            last_login_at: account.last_login_at,
            created_at: account.created_at,
        });
    }

    fn exclusion(&mut self, account: &Account, skip: Skip) {
        self.excluded += 1;
        self.skipped.push(Exclusion {
            job_id: self.job_id.clone(),
            external_id: account.external_id.clone(),
            login: account.login.clone(),
            reason: skip.reason,
            detail: skip.detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, IntegrationId, ReclaimPolicy};
    use chrono::{TimeZone, Utc};

    fn job(state: JobState, approved_by: Option<Actor>) -> ReclaimJob {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let mut job = ReclaimJob::new(
            IntegrationId::parse("acme").unwrap(),
            ReclaimPolicy::default(),
            Actor::System,
            now,
        );
        job.state = state;
        job.approved_by = approved_by;
        job.batches = 3;
        job.counts.candidates = 120;
        job
    }

    #[test]
    fn a_summary_lists_batches_only_for_a_job_that_acts() {
        let person = Actor::Local { user: "bob".into() };
        let waiting = summary_of(&job(JobState::AwaitingApproval, None));
        assert_eq!(waiting.batches, vec![1, 2, 3]);
        assert!(waiting.needs_approval);
        let auto = summary_of(&job(JobState::Approved, Some(Actor::System)));
        assert_eq!(auto.batches, vec![1, 2, 3]);
        assert!(!auto.needs_approval);
        let approved = summary_of(&job(JobState::Running, Some(person)));
        assert!(approved.needs_approval, "it waited for a person");
        for state in [JobState::Done, JobState::Failed, JobState::Cancelled] {
            let finished = summary_of(&job(state, None));
            assert!(finished.batches.is_empty(), "{state}");
            assert!(!finished.needs_approval);
        }
    }
}
