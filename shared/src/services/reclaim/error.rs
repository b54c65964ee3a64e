//! What a reclaim step can fail with, and the stable names Step Functions matches.

use crate::domain::{IntegrationId, JobChangeRefused, ReclaimJobId};
use crate::provider::ProviderError;
use crate::services::sources::SourceError;
use crate::store::StoreError;
use chrono::{DateTime, Utc};

const RATE_LIMITED: &str = "Seatkeeper.RateLimited";
const PROVIDER_UNAVAILABLE: &str = "Seatkeeper.ProviderUnavailable";
const TRANSFER_PENDING: &str = "Seatkeeper.TransferPending";
const SYNC_RUNNING: &str = "Seatkeeper.SyncRunning";
const BUSY: &str = "Seatkeeper.Busy";
const INVALID: &str = "Seatkeeper.Invalid";
const NOT_ELIGIBLE: &str = "Seatkeeper.NotEligible";
const NOT_FOUND: &str = "Seatkeeper.NotFound";
const INTERNAL: &str = "Seatkeeper.Internal";

/// Every name [`ReclaimError::error_name`] can return (the ASL test reads it).
pub const ERROR_NAMES: &[&str] = &[
    RATE_LIMITED,
    PROVIDER_UNAVAILABLE,
    TRANSFER_PENDING,
    SYNC_RUNNING,
    BUSY,
    INVALID,
    NOT_ELIGIBLE,
    NOT_FOUND,
    INTERNAL,
];

/// The names worth retrying: the same call later can succeed without anyone changing
/// anything (the provider recovers, a transfer finishes, a sync or another holder ends).
const RETRYABLE: &[&str] = &[
    RATE_LIMITED,
    PROVIDER_UNAVAILABLE,
    TRANSFER_PENDING,
    SYNC_RUNNING,
    BUSY,
];

#[derive(Debug, thiserror::Error)]
pub enum ReclaimError {
    /// A job, an integration or a user named by the caller does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request cannot be valid (a policy out of range, a batch outside the job, a
    /// transfer target that may not receive content, …). Retrying changes nothing.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The job may not go on as things are (event coverage too short or stale, a missing
    /// capability, not approved, more candidates than `max_actions`, …).
    #[error("not eligible: {0}")]
    NotEligible(String),
    /// Another reclaim job (or a restore) holds the integration's reclaim lease.
    #[error("a reclaim job of integration {integration_id} is already running ({holder})")]
    Busy {
        integration_id: IntegrationId,
        holder: String,
    },
    /// Another job or restore holds the lock on this account.
    #[error("account {external_id} is locked by {owner} until {until}")]
    AccountLocked {
        external_id: String,
        owner: String,
        until: DateTime<Utc>,
    },
    /// A sync of the integration is running: plan waits for it, then gives up for now.
    #[error("a sync of integration {0} is still running; plan again when it has finished")]
    SyncRunning(IntegrationId),
    /// The job's own rules refused the change (self-approval, a cancelled job, …).
    #[error("reclaim job {job_id} was not changed: {reason}")]
    Refused {
        job_id: ReclaimJobId,
        #[source]
        reason: JobChangeRefused,
    },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ReclaimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ReclaimJobNotFound(id) => {
                ReclaimError::NotFound(format!("reclaim job {id}"))
            }
            StoreError::NotFound(id) => ReclaimError::NotFound(format!("integration {id}")),
            StoreError::JobChangeRefused { job_id, reason } => {
                ReclaimError::Refused { job_id, reason }
            }
            StoreError::AccountLocked {
                external_id,
                owner,
                expires_at,
                ..
            } => ReclaimError::AccountLocked {
                external_id,
                owner,
                until: expires_at,
            },
            StoreError::LeaseHeld {
                integration_id,
                owner,
                ..
            } => ReclaimError::Busy {
                integration_id,
                holder: owner,
            },
            other => ReclaimError::Store(other),
        }
    }
}

impl ReclaimError {
    /// The stable error name Step Functions matches (and the API maps to a status).
    pub fn error_name(&self) -> &'static str {
        match self {
            ReclaimError::NotFound(_) => NOT_FOUND,
            ReclaimError::Invalid(_) | ReclaimError::Refused { .. } => INVALID,
            ReclaimError::NotEligible(_) => NOT_ELIGIBLE,
            ReclaimError::Busy { .. } | ReclaimError::AccountLocked { .. } => BUSY,
            ReclaimError::SyncRunning(_) => SYNC_RUNNING,
            ReclaimError::Provider(e) => provider_error_name(e),
            ReclaimError::Source(e) => match e {
                SourceError::NeedsReauth(_) => NOT_ELIGIBLE,
                SourceError::Misconfigured(..) | SourceError::Unsupported(_) => INVALID,
                SourceError::Credentials { .. } | SourceError::AppCredentials { .. } => INTERNAL,
            },
            ReclaimError::Store(_) => INTERNAL,
        }
    }

    /// Whether Step Functions should try the same step again later.
    pub fn is_retryable(&self) -> bool {
        RETRYABLE.contains(&self.error_name())
    }
}

fn provider_error_name(err: &ProviderError) -> &'static str {
    match err {
        ProviderError::RateLimited { .. } => RATE_LIMITED,
        // A lock held by another container's token refresh, or an answer that did not
        // make sense (Box showing a change it did not apply): both pass.
        ProviderError::Unavailable { .. }
        | ProviderError::TokenHandling { .. }
        | ProviderError::Malformed { .. } => PROVIDER_UNAVAILABLE,
        ProviderError::TransferPending { .. } => TRANSFER_PENDING,
        // The grant or the app's permissions: an admin must act first.
        ProviderError::Auth { .. } | ProviderError::Forbidden { .. } => NOT_ELIGIBLE,
        ProviderError::NotFound { .. }
        | ProviderError::Rejected { .. }
        | ProviderError::InvalidInput { .. } => INVALID,
    }
}

/// How far a provider error reaches while acting on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorReach {
    /// The same call later may work: stop the batch and let Step Functions retry it.
    Transient,
    /// The integration's grant is refused: nothing else will work either.
    Job,
    /// This account only: record it and go on with the next.
    Account,
}

pub(super) fn reach(err: &ProviderError) -> ErrorReach {
    match err {
        ProviderError::RateLimited { .. }
        | ProviderError::Unavailable { .. }
        | ProviderError::TokenHandling { .. }
        | ProviderError::TransferPending { .. } => ErrorReach::Transient,
        ProviderError::Auth { .. } => ErrorReach::Job,
        ProviderError::Forbidden { .. }
        | ProviderError::NotFound { .. }
        | ProviderError::Rejected { .. }
        | ProviderError::Malformed { .. }
        | ProviderError::InvalidInput { .. } => ErrorReach::Account,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_listed_and_the_retryable_ones_are_the_transient_ones() {
        let id = IntegrationId::parse("acme").unwrap();
        let errors = [
            ReclaimError::NotFound("x".into()),
            ReclaimError::Invalid("x".into()),
            ReclaimError::NotEligible("x".into()),
            ReclaimError::SyncRunning(id.clone()),
            ReclaimError::Busy {
                integration_id: id,
                holder: "job".into(),
            },
            ReclaimError::Provider(ProviderError::RateLimited {
                provider: "box",
                attempts: 3,
            }),
            ReclaimError::Provider(ProviderError::Unavailable {
                provider: "box",
                attempts: 3,
                detail: "HTTP 503".into(),
            }),
            ReclaimError::Provider(ProviderError::TransferPending {
                provider: "box",
                user_id: "7".into(),
                code: "user_delete_failed_owns_content".into(),
                message: "owns content".into(),
            }),
            ReclaimError::Store(StoreError::Corrupt("x".into())),
        ];
        for err in &errors {
            assert!(ERROR_NAMES.contains(&err.error_name()), "{err}");
        }
        let retryable: Vec<&str> = errors
            .iter()
            .filter(|e| e.is_retryable())
            .map(ReclaimError::error_name)
            .collect();
        assert_eq!(
            retryable,
            [
                SYNC_RUNNING,
                BUSY,
                RATE_LIMITED,
                PROVIDER_UNAVAILABLE,
                TRANSFER_PENDING
            ]
        );
        let names: std::collections::HashSet<&str> = ERROR_NAMES.iter().copied().collect();
        assert_eq!(names.len(), ERROR_NAMES.len(), "no name twice");
    }

    #[test]
    fn store_conflicts_keep_their_meaning() {
        let job_id = ReclaimJobId::generate();
        let refused: ReclaimError = StoreError::JobChangeRefused {
            job_id: job_id.clone(),
            reason: JobChangeRefused::Cancelled,
        }
        .into();
        assert_eq!(refused.error_name(), INVALID);
        let missing: ReclaimError = StoreError::ReclaimJobNotFound(job_id).into();
        assert_eq!(missing.error_name(), NOT_FOUND);
    }
}
