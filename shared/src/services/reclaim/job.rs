//! A job's life outside the provider: start (the reclaim lease), the approval wait,
//! approve, reject, cancel; and the helpers every step shares.

use super::{ApprovalWait, Notice, ReclaimError, Reclaimer};
use crate::domain::{
    Actor, ApprovalRefused, AuditEntry, EffectivePolicy, Integration, IntegrationId,
    IntegrationStatus, JobChangeRefused, JobState, Provider, ReclaimActionKind, ReclaimJob,
    ReclaimJobId, ReclaimPolicy, TaskToken, check_approver,
};
use crate::store::{JobChange, Lease, LeaseKind, StoreError};
use chrono::{DateTime, Utc};

impl Reclaimer {
    /// Validates the policy against the integration's guard-rails, takes the reclaim lease
    /// (`Busy` if another job holds it) and creates the job (`planning`).
    #[tracing::instrument(skip(self, policy, requester), fields(integration_id = %integration_id))]
    pub async fn start_job(
        &self,
        integration_id: &IntegrationId,
        policy: ReclaimPolicy,
        requester: &Actor,
    ) -> Result<ReclaimJob, ReclaimError> {
        let integration = self.load_integration(integration_id).await?;
        if integration.provider != Provider::Box {
            return Err(ReclaimError::Invalid(format!(
                "reclaiming {} seats is not supported yet",
                integration.provider
            )));
        }
        if !integration.enabled || integration.status != IntegrationStatus::Connected {
            return Err(ReclaimError::NotEligible(format!(
                "integration {integration_id} is {} and {}",
                integration.status.as_str(),
                if integration.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            )));
        }
        policy
            .tightened_by(&integration.reclaim, integration.purchased_seats)
            .map_err(|e| ReclaimError::Invalid(e.to_string()))?;
        let now = self.clock.now();
        let job = ReclaimJob::new(integration_id.clone(), policy, requester.clone(), now);
        let lease = self
            .take_lease(
                integration_id,
                job.id.as_str(),
                now,
                now + self.options.lease_ttl,
            )
            .await?;
        if let Err(e) = self.store.create_reclaim_job(&job).await {
            if let Err(release) = self.store.release_lease(&lease).await {
                tracing::error!(error = %release, "could not release the reclaim lease");
            }
            return Err(e.into());
        }
        self.audit(
            AuditEntry::new(
                integration_id.clone(),
                now,
                requester.clone(),
                "reclaim_requested",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({ "policy": job.policy })),
        )
        .await?;
        tracing::info!(job_id = %job.id, "reclaim job started");
        Ok(job)
    }

    /// Step Functions "await_approval": stores the task token and tells the admins, or,
    /// when the job is approved already (plan auto-approved it, or a person was faster),
    /// says so, and the caller sends task success itself.
    #[tracing::instrument(skip(self, task_token), fields(job_id = %job_id))]
    pub async fn await_approval(
        &self,
        job_id: &ReclaimJobId,
        task_token: TaskToken,
    ) -> Result<ApprovalWait, ReclaimError> {
        let job = self.load_job(job_id).await?;
        match job.state {
            JobState::Approved | JobState::Running if !job.cancelled => {
                return Ok(ApprovalWait {
                    auto_approved: true,
                });
            }
            JobState::AwaitingApproval if !job.cancelled => {}
            state => {
                return Err(ReclaimError::NotEligible(format!(
                    "job {job_id} is {state}{}: there is nothing to approve",
                    if job.cancelled { " (cancelled)" } else { "" }
                )));
            }
        }
        let now = self.clock.now();
        let change = |j: &mut ReclaimJob| {
            if j.state != JobState::AwaitingApproval || j.cancelled {
                return Err(JobChangeRefused::NotApplicable(format!(
                    "the job is {}, no longer awaiting approval",
                    j.state
                )));
            }
            // A retried wait replaces the token: only the newest one resumes the execution.
            j.task_token = Some(task_token.clone());
            j.updated_at = now;
            Ok(())
        };
        let job = match self.store.modify_reclaim_job(job_id, &change).await {
            Ok(job) => job,
            // Approved meanwhile: the same answer as above.
            Err(StoreError::JobChangeRefused { .. }) => {
                let job = self.load_job(job_id).await?;
                if matches!(job.state, JobState::Approved | JobState::Running) && !job.cancelled {
                    return Ok(ApprovalWait {
                        auto_approved: true,
                    });
                }
                return Err(ReclaimError::NotEligible(format!(
                    "job {job_id} is {}: there is nothing to approve",
                    job.state
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let integration = self.load_integration(&job.integration_id).await?;
        self.audit(
            AuditEntry::new(
                job.integration_id.clone(),
                now,
                Actor::System,
                "reclaim_approval_requested",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({ "candidates": job.counts.candidates })),
        )
        .await?;
        self.send_notice(approval_notice(&job, &integration)).await;
        Ok(ApprovalWait {
            auto_approved: false,
        })
    }

    /// Approves a job awaiting approval: a person, someone other than the requester unless
    /// the integration allows self-approval. The job returned carries the task token for
    /// `SendTaskSuccess`.
    #[tracing::instrument(skip(self, approver), fields(job_id = %job_id))]
    pub async fn approve(
        &self,
        job_id: &ReclaimJobId,
        approver: &Actor,
    ) -> Result<ReclaimJob, ReclaimError> {
        let job = self.load_job(job_id).await?;
        let integration = self.load_integration(&job.integration_id).await?;
        let rails = integration.reclaim.clone();
        check_approver(&job, approver, &rails).map_err(|reason| ReclaimError::Refused {
            job_id: job_id.clone(),
            reason: reason.into(),
        })?;
        // A job that lost its lease could never act: refuse before recording an approval.
        self.hold_lease(&job).await?;
        let now = self.clock.now();
        let change = |j: &mut ReclaimJob| j.approve(approver, &rails, now);
        let job = self.store.modify_reclaim_job(job_id, &change).await?;
        self.audit(
            AuditEntry::new(
                job.integration_id.clone(),
                now,
                approver.clone(),
                "reclaim_approved",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({
                "requested_by": job.requested_by.principal(),
                "candidates": job.counts.candidates,
                "action": job.policy.action,
            })),
        )
        .await?;
        tracing::info!("reclaim job approved");
        Ok(job)
    }

    /// Rejects a job awaiting approval: it acts on nobody and finishes now. The job
    /// returned carries the task token for `SendTaskFailure`.
    #[tracing::instrument(skip(self, approver), fields(job_id = %job_id))]
    pub async fn reject(
        &self,
        job_id: &ReclaimJobId,
        approver: &Actor,
    ) -> Result<ReclaimJob, ReclaimError> {
        if *approver == Actor::System {
            return Err(ReclaimError::Refused {
                job_id: job_id.clone(),
                reason: ApprovalRefused::NotAPerson.into(),
            });
        }
        let now = self.clock.now();
        let change = |j: &mut ReclaimJob| {
            if j.state != JobState::AwaitingApproval {
                return Err(ApprovalRefused::NotAwaitingApproval(j.state).into());
            }
            j.move_to(JobState::Rejected, now)
        };
        let job = self.store.modify_reclaim_job(job_id, &change).await?;
        self.audit(
            AuditEntry::new(
                job.integration_id.clone(),
                now,
                approver.clone(),
                "reclaim_rejected",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({
                "requested_by": job.requested_by.principal(),
                "candidates": job.counts.candidates,
            })),
        )
        .await?;
        self.finish(job_id, None).await?;
        self.load_job(job_id).await
    }

    /// Sets the job's cancel flag: nothing more is written to the provider for it. A job
    /// not yet acting (planning, awaiting approval, or approved and waiting for its notice
    /// period) finishes at once (a plan still running then finds its writes refused); a
    /// running one finishes when its batches drain to `finalize`. The job returned carries
    /// the task token, if the execution waits for an approval: the caller ends that wait.
    #[tracing::instrument(skip(self, actor), fields(job_id = %job_id))]
    pub async fn cancel(
        &self,
        job_id: &ReclaimJobId,
        actor: &Actor,
    ) -> Result<ReclaimJob, ReclaimError> {
        let now = self.clock.now();
        let change = |j: &mut ReclaimJob| j.request_cancel(now);
        let job = self.store.modify_reclaim_job(job_id, &change).await?;
        self.audit(
            AuditEntry::new(
                job.integration_id.clone(),
                now,
                actor.clone(),
                "reclaim_cancel_requested",
            )
            .with_target(job.id.to_string())
            .with_detail(serde_json::json!({ "state": job.state })),
        )
        .await?;
        if matches!(
            job.state,
            JobState::Planning | JobState::AwaitingApproval | JobState::Approved
        ) {
            self.finalize(job_id).await?;
            return self.load_job(job_id).await;
        }
        Ok(job)
    }

    // Shared helpers -------------------------------------------------------------------------

    pub(super) async fn load_job(&self, id: &ReclaimJobId) -> Result<ReclaimJob, ReclaimError> {
        self.store
            .get_reclaim_job(id)
            .await?
            .ok_or_else(|| ReclaimError::NotFound(format!("reclaim job {id}")))
    }

    pub(super) async fn load_integration(
        &self,
        id: &IntegrationId,
    ) -> Result<Integration, ReclaimError> {
        self.store
            .get_integration(id)
            .await?
            .ok_or_else(|| ReclaimError::NotFound(format!("integration {id}")))
    }

    /// The rules in force for `job` now: its policy over the integration's current
    /// guard-rails (an exclusion added since the plan applies at once).
    pub(super) fn rules_of(
        job: &ReclaimJob,
        integration: &Integration,
    ) -> Result<EffectivePolicy, ReclaimError> {
        job.policy
            .tightened_by(&integration.reclaim, integration.purchased_seats)
            .map_err(|e| ReclaimError::Invalid(e.to_string()))
    }

    pub(super) async fn change_job(
        &self,
        id: &ReclaimJobId,
        change: &JobChange<'_>,
    ) -> Result<ReclaimJob, ReclaimError> {
        Ok(self.store.modify_reclaim_job(id, change).await?)
    }

    /// Every change in a tenant and every approval is audited: a failure to record it
    /// fails the step (which is retried; the provider writes it repeats are idempotent).
    pub(super) async fn audit(&self, entry: AuditEntry) -> Result<(), ReclaimError> {
        Ok(self.store.append_audit(&entry).await?)
    }

    /// Notices are best effort: the job is visible in the API whether or not one arrives.
    pub(super) async fn send_notice(&self, notice: Notice) {
        if let Err(e) = self.notifier.notify(&notice).await {
            tracing::error!(error = %e, subject = %notice.subject, "could not notify the admins");
        }
    }

    /// Takes the reclaim lease for `owner`: free, expired, or held by a job that has
    /// finished (its execution ended without releasing it). `Busy` otherwise.
    pub(super) async fn take_lease(
        &self,
        integration_id: &IntegrationId,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Lease, ReclaimError> {
        match self
            .store
            .acquire_lease(integration_id, LeaseKind::Reclaim, owner, now, expires_at)
            .await
        {
            Ok(lease) => Ok(lease),
            Err(StoreError::LeaseHeld { .. }) => {
                let held = self
                    .store
                    .get_lease(integration_id, LeaseKind::Reclaim)
                    .await?;
                let Some(held) = held else {
                    // Released meanwhile: one more try.
                    return Ok(self
                        .store
                        .acquire_lease(integration_id, LeaseKind::Reclaim, owner, now, expires_at)
                        .await?);
                };
                if !self.holder_finished(&held.owner).await? {
                    return Err(ReclaimError::Busy {
                        integration_id: integration_id.clone(),
                        holder: held.owner,
                    });
                }
                tracing::warn!(holder = %held.owner, "taking over the reclaim lease of a finished job");
                self.store
                    .transfer_lease(&held, owner, expires_at, None)
                    .await
                    .map_err(|e| match e {
                        StoreError::LeaseLost { .. } => ReclaimError::Busy {
                            integration_id: integration_id.clone(),
                            holder: "another job".to_owned(),
                        },
                        other => other.into(),
                    })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the lease holder is a job that has finished. A restore never counts, nor a
    /// job not stored (yet: a job takes the lease before it is written).
    async fn holder_finished(&self, owner: &str) -> Result<bool, ReclaimError> {
        let Ok(job_id) = ReclaimJobId::parse(owner) else {
            return Ok(false);
        };
        Ok(self
            .store
            .get_reclaim_job(&job_id)
            .await?
            .is_some_and(|job| job.state.is_final()))
    }

    /// Renews the job's reclaim lease; a job that no longer holds it may not act.
    pub(super) async fn hold_lease(&self, job: &ReclaimJob) -> Result<(), ReclaimError> {
        if job.state.is_final() {
            return Err(ReclaimError::NotEligible(format!(
                "job {} is {}: it holds nothing any more",
                job.id, job.state
            )));
        }
        let now = self.clock.now();
        let held = self
            .store
            .get_lease(&job.integration_id, LeaseKind::Reclaim)
            .await?;
        let lost = |holder: &str| {
            ReclaimError::NotEligible(format!(
                "job {} no longer holds the integration's reclaim lease (held by {holder})",
                job.id
            ))
        };
        match held {
            Some(lease) if lease.owner == job.id.as_str() => {
                self.store
                    .renew_lease(
                        &lease,
                        now,
                        now + self.options.lease_ttl,
                        lease.checkpoint.clone(),
                    )
                    .await
                    .map_err(|e| match e {
                        StoreError::LeaseLost { .. } => lost("another job"),
                        other => other.into(),
                    })?;
                Ok(())
            }
            Some(lease) if lease.expires_at > now => Err(lost(&lease.owner)),
            // Expired or gone, and nobody else took it: the job takes it again.
            _ => {
                self.store
                    .acquire_lease(
                        &job.integration_id,
                        LeaseKind::Reclaim,
                        job.id.as_str(),
                        now,
                        now + self.options.lease_ttl,
                    )
                    .await
                    .map_err(|e| match e {
                        StoreError::LeaseHeld { owner, .. } => lost(&owner),
                        other => other.into(),
                    })?;
                Ok(())
            }
        }
    }

    /// Releases the reclaim lease if `owner` holds it.
    pub(super) async fn release_lease_of(
        &self,
        integration_id: &IntegrationId,
        owner: &str,
    ) -> Result<(), ReclaimError> {
        if let Some(lease) = self
            .store
            .get_lease(integration_id, LeaseKind::Reclaim)
            .await?
            && lease.owner == owner
        {
            self.store.release_lease(&lease).await?;
        }
        Ok(())
    }
}

/// The admins' notice that a job waits for them. Never the task token.
fn approval_notice(job: &ReclaimJob, integration: &Integration) -> Notice {
    let what = match job.policy.action {
        ReclaimActionKind::Deactivate => {
            "deactivate (content kept, restorable; a deactivated Box user still holds a seat)"
        }
        ReclaimActionKind::Delete => {
            "delete after transferring their content: PERMANENT, cannot be undone"
        }
    };
    Notice {
        subject: format!(
            "Seatkeeper: reclaim job {} on {} awaits approval",
            job.id, integration.name
        ),
        message: format!(
            "Reclaim job {job_id} of integration {name} ({integration_id}) would {what} for {n} \
             account(s) inactive for {days} days. Requested by {requester}. Review the \
             candidates with GET /reclamations/{job_id}, then POST /reclamations/{job_id}/approve \
             or /reject. Without an answer the job expires in 7 days and acts on nobody.",
            job_id = job.id,
            name = integration.name,
            integration_id = integration.id,
            n = job.counts.candidates,
            days = job.policy.inactive_days,
            requester = job.requested_by.principal(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AuthKind, IntegrationStatus, ReclaimGuardRails, SyncSettings};
    use chrono::TimeZone;

    fn integration() -> Integration {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        Integration {
            id: IntegrationId::parse("acme").unwrap(),
            provider: Provider::Box,
            name: "Acme Box".into(),
            auth_kind: AuthKind::ClientCredentials,
            tenant_id: "1000".into(),
            secret_name: "seatkeeper/integrations/acme".into(),
            status: IntegrationStatus::Connected,
            enabled: true,
            plan: None,
            purchased_seats: None,
            service_user_id: None,
            sync: SyncSettings::default(),
            created_at: now,
            updated_at: now,
            last_sync: None,
            reclaim: ReclaimGuardRails::default(),
            seat_price: None,
        }
    }

    #[test]
    fn the_approval_notice_never_carries_the_task_token_and_says_a_delete_is_permanent() {
        let i = integration();
        let policy = ReclaimPolicy {
            action: ReclaimActionKind::Delete,
            transfer_to: Some("77".into()),
            ..ReclaimPolicy::default()
        };
        let mut job = ReclaimJob::new(i.id.clone(), policy, Actor::System, i.created_at);
        job.task_token = Some(TaskToken::new("AAAA-very-secret-token"));
        job.counts.candidates = 12;
        let notice = approval_notice(&job, &i);
        let text = format!("{} {}", notice.subject, notice.message);
        assert!(!text.contains("very-secret-token"), "{text}");
        assert!(text.contains("PERMANENT"), "{text}");
        assert!(text.contains(job.id.as_str()) && text.contains("12 account"));
    }
}
