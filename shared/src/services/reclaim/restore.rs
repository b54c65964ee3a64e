//! Restore: puts back what a finished deactivate job changed (status, then role), once
//! per account (`done → restored`). A delete is permanent and cannot be restored.

use super::error::{ErrorReach, reach};
use super::{JobSummary, ReclaimError, Reclaimer};
use crate::domain::{
    ActionRecord, ActionStep, Actor, AuditEntry, Integration, JobCounts, ReclaimActionKind,
    ReclaimJob, ReclaimJobId,
};
use crate::provider::ProviderError;
use crate::provider::box_client::BoxClient;
use crate::store::{Lease, StoreError};

/// Records read per page.
const ACTIONS_PAGE: usize = 200;
/// Roles a client may set back (the primary admin's role is never in play: admins are
/// never acted on).
const SETTABLE_ROLES: [&str; 2] = ["user", "coadmin"];

impl Reclaimer {
    /// Reverses a finished deactivate job: each account it deactivated gets its previous
    /// status and role back, once. Holds the integration's reclaim lease meanwhile (`Busy`
    /// while a job runs) and each account's lock. The summary counts the accounts restored
    /// so far (`acted`, this and earlier restores) and those that could not be (`failed`:
    /// gone, locked, or refused by Box; a later restore tries them again).
    #[tracing::instrument(skip(self, actor), fields(job_id = %job_id))]
    pub async fn restore(
        &self,
        job_id: &ReclaimJobId,
        actor: &Actor,
    ) -> Result<JobSummary, ReclaimError> {
        let job = self.load_job(job_id).await?;
        if job.policy.action != ReclaimActionKind::Deactivate {
            return Err(ReclaimError::Invalid(format!(
                "job {job_id} deleted users: a delete is permanent and cannot be restored"
            )));
        }
        if !job.state.is_final() {
            return Err(ReclaimError::NotEligible(format!(
                "job {job_id} is {}: restore it once it has finished (cancel it first to stop it)",
                job.state
            )));
        }
        let integration = self.load_integration(&job.integration_id).await?;
        let owner = format!("restore#{job_id}");
        let now = self.clock.now();
        let lease = self
            .take_lease(&integration.id, &owner, now, now + self.options.lock_ttl)
            .await?;
        let result = self.restore_all(&job, &integration, actor, lease).await;
        if let Err(e) = self.release_lease_of(&integration.id, &owner).await {
            tracing::error!(error = %e, "could not release the reclaim lease after a restore");
        }
        let (restored, failed) = result?;
        self.audit(
            AuditEntry::new(
                integration.id.clone(),
                self.clock.now(),
                actor.clone(),
                "reclaim_restored",
            )
            .with_target(job_id.to_string())
            .with_detail(serde_json::json!({ "restored": restored, "failed": failed })),
        )
        .await?;
        Ok(JobSummary {
            job_id: job.id.clone(),
            state: job.state,
            counts: JobCounts {
                candidates: job.counts.candidates,
                excluded: job.counts.excluded,
                acted: restored,
                skipped: 0,
                failed,
                seats_freed: 0,
            },
        })
    }

    async fn restore_all(
        &self,
        job: &ReclaimJob,
        integration: &Integration,
        actor: &Actor,
        mut lease: Lease,
    ) -> Result<(u32, u32), ReclaimError> {
        let client = self.sources.box_client(integration).await?;
        let (mut restored, mut failed) = (0u32, 0u32);
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_actions(&job.id, cursor.as_deref(), ACTIONS_PAGE)
                .await?;
            for record in page.items {
                match record.step {
                    ActionStep::Restored => restored += 1,
                    ActionStep::Done if record.action == ReclaimActionKind::Deactivate => {
                        lease = self.keep_restore_lease(lease).await?;
                        let ok = self
                            .restore_account(
                                &client,
                                job,
                                integration,
                                &lease.owner,
                                actor,
                                &record,
                            )
                            .await?;
                        if ok {
                            restored += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    _ => {}
                }
            }
            cursor = page.next;
            if cursor.is_none() {
                return Ok((restored, failed));
            }
        }
    }

    /// Renews the restore's lease once half of it has run out.
    async fn keep_restore_lease(&self, lease: Lease) -> Result<Lease, ReclaimError> {
        let now = self.clock.now();
        if lease.expires_at - now > self.options.lock_ttl / 2 {
            return Ok(lease);
        }
        Ok(self
            .store
            .renew_lease(&lease, now, now + self.options.lock_ttl, None)
            .await?)
    }

    /// One account, under its lock; `false` when it cannot be restored now.
    async fn restore_account(
        &self,
        client: &BoxClient,
        job: &ReclaimJob,
        integration: &Integration,
        owner: &str,
        actor: &Actor,
        record: &ActionRecord,
    ) -> Result<bool, ReclaimError> {
        let id = record.external_id.as_str();
        let now = self.clock.now();
        match self
            .store
            .acquire_account_lock(&integration.id, id, owner, now, now + self.options.lock_ttl)
            .await
        {
            Ok(()) => {}
            Err(StoreError::AccountLocked { owner, .. }) => {
                tracing::warn!(user_id = id, %owner, "account locked; not restored now");
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        let result = self.put_back(client, job, integration, actor, record).await;
        if let Err(e) = self
            .store
            .release_account_lock(&integration.id, id, owner)
            .await
        {
            tracing::error!(user_id = id, error = %e, "could not release an account lock");
        }
        result
    }

    async fn put_back(
        &self,
        client: &BoxClient,
        job: &ReclaimJob,
        integration: &Integration,
        actor: &Actor,
        record: &ActionRecord,
    ) -> Result<bool, ReclaimError> {
        let id = record.external_id.as_str();
        let user = match client.get_user(id).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                tracing::warn!(user_id = id, "the user is gone; nothing to restore");
                return Ok(false);
            }
            Err(e) => return refused(id, e),
        };
        let status = record.previous_status.as_deref().unwrap_or("active");
        if user.status.as_deref() != Some(status)
            && let Err(e) = client.set_user_status(id, status, job.policy.notify).await
        {
            return refused(id, e);
        }
        let role = record
            .previous_role
            .as_deref()
            .filter(|role| SETTABLE_ROLES.contains(role) && user.role.as_deref() != Some(role));
        if let Some(role) = role
            && let Err(e) = client.set_user_role(id, role).await
        {
            return refused(id, e);
        }
        let now = self.clock.now();
        self.audit(
            AuditEntry::new(integration.id.clone(), now, actor.clone(), "user_restored")
                .with_target(id.to_owned())
                .with_detail(serde_json::json!({
                    "job_id": job.id,
                    "login": record.login,
                    "status": status,
                    "role": record.previous_role,
                })),
        )
        .await?;
        match self
            .store
            .advance_action(
                &record.advanced(ActionStep::Restored, now),
                Some(ActionStep::Done),
            )
            .await
        {
            // Restored by a concurrent restore: restored all the same.
            Ok(_) | Err(StoreError::StepConflict { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}

/// A provider error while restoring one account: that account is not restored now (a
/// later restore tries again), unless the error stops everything.
fn refused(user_id: &str, err: ProviderError) -> Result<bool, ReclaimError> {
    match reach(&err) {
        ErrorReach::Account => {
            tracing::warn!(user_id, error = %err, "could not restore the account");
            Ok(false)
        }
        ErrorReach::Transient | ErrorReach::Job => Err(err.into()),
    }
}
