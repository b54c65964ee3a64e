//! Re-verification right before acting (design §8): one pass over the LOGIN events since
//! the sync, then per account the user as Box has it now, their groups (when the job
//! excludes any) and their own recent events (Box Drive and mobile users never "log in").
//! Any sign of activity, or anything that cannot be read, leaves the account alone.

use super::ReclaimError;
use super::act::Batch;
use super::eligibility::Skip;
use super::error::{ErrorReach, reach};
use super::plan::provider_detail;
use crate::domain::{Candidate, SkipReason};
use crate::provider::ProviderError;

/// What re-verification concluded about one account.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Still eligible, with the user's status and role as Box has them now (saved for
    /// `restore`).
    Act {
        status: Option<String>,
        role: Option<String>,
    },
    Skip(Skip),
    /// Box refused to tell (other than for groups or activity, which have their own
    /// reasons): recorded as failed with this description.
    Fail(String),
}

impl Batch<'_> {
    /// The one LOGIN pass per invocation (from the coverage high-water mark minus the
    /// overlap, up to now) and the stored accounts of the accounts not started yet.
    pub(super) async fn load_verification(
        &mut self,
        external_ids: &[String],
    ) -> Result<(), ReclaimError> {
        let store = &self.reclaimer.store;
        let coverage = store
            .get_event_coverage(&self.integration.id)
            .await?
            .ok_or_else(|| {
                ReclaimError::NotEligible("the integration has no login event coverage".into())
            })?;
        let now = self.now();
        let since = (coverage.to - self.reclaimer.options.login_overlap).min(now);
        self.logins = self.client.login_events_since(since, now).await?;
        self.planned = store
            .get_accounts(&self.integration.id, external_ids)
            .await?
            .into_iter()
            .map(|account| (account.external_id.clone(), account))
            .collect();
        tracing::debug!(
            logins = self.logins.len(),
            accounts = self.planned.len(),
            "re-verification data loaded"
        );
        Ok(())
    }

    /// Re-verifies one account that nothing was done to yet.
    pub(super) async fn verify(&self, candidate: &Candidate) -> Result<Verdict, ReclaimError> {
        let id = candidate.external_id.as_str();
        if let Some(at) = self.logins.get(id) {
            return Ok(Verdict::Skip(Skip::with_detail(
                SkipReason::RecentLogin,
                at.to_rfc3339(),
            )));
        }
        let Some(planned) = self.planned.get(id).filter(|a| a.vanished_at.is_none()) else {
            return Ok(Verdict::Skip(Skip::with_detail(
                SkipReason::Gone,
                "no longer in the roster",
            )));
        };
        let user = match self.client.get_user(id).await {
            Ok(Some(user)) => user,
            Ok(None) => return Ok(Verdict::Skip(Skip::new(SkipReason::Gone))),
            Err(e) => {
                return account_error(e)
                    .map(|detail| Verdict::Fail(format!("the user could not be read: {detail}")));
            }
        };
        let rules = self.rules();
        if let Err(skip) = rules.live_user(&user, planned) {
            return Ok(Verdict::Skip(skip));
        }
        if self.policy.exclusions().has_groups() {
            match self.client.user_group_ids(id).await {
                Ok(groups) => {
                    if let Err(skip) = rules.excluded_group(&groups) {
                        return Ok(Verdict::Skip(skip));
                    }
                }
                Err(e) => {
                    let detail = account_error(e)?;
                    return Ok(Verdict::Skip(Skip::with_detail(
                        SkipReason::GroupsUnreadable,
                        detail,
                    )));
                }
            }
        }
        match self
            .client
            .user_recent_activity(id, rules.inactive_since())
            .await
        {
            Ok(Some(at)) => Ok(Verdict::Skip(Skip::with_detail(
                SkipReason::RecentActivity,
                at.to_rfc3339(),
            ))),
            Ok(None) => Ok(Verdict::Act {
                status: user.status,
                role: user.role,
            }),
            Err(e) => {
                let detail = account_error(e)?;
                Ok(Verdict::Skip(Skip::with_detail(
                    SkipReason::ActivityUnreadable,
                    detail,
                )))
            }
        }
    }
}

/// A read error about one account: its description when it concerns that account (a 403
/// or 404), the error itself when the batch should stop and be retried (rate limits, Box
/// unavailable) or when nothing will work (the grant refused).
fn account_error(err: ProviderError) -> Result<String, ReclaimError> {
    match reach(&err) {
        ErrorReach::Account => Ok(provider_detail(&err)),
        ErrorReach::Transient | ErrorReach::Job => Err(err.into()),
    }
}
