//! The domain: what Seatkeeper knows about integrations, accounts, seats and activity,
//! and the pure rules over them. Nothing here does I/O or knows about AWS or HTTP.

mod account;
mod activity;
mod audit;
mod integration;
mod reclaim;
mod seats;
mod snapshot;
mod task;

pub use account::{Account, AccountKind};
pub use activity::{EventCoverage, InactiveDays, LoginAge};
pub use audit::{Actor, AuditEntry};
pub use integration::{
    AuthKind, BoxPlan, Integration, IntegrationId, IntegrationStatus, Provider, ReclaimGuardRails,
    SeatPrice, SyncSettings, SyncSummary,
};
pub use reclaim::{
    ActionRecord, ActionStep, ApprovalRefused, CANDIDATES_PER_BATCH, Candidate, EffectivePolicy,
    Exclusion, Exclusions, FailedRetry, JobChangeRefused, JobCounts, JobState, ReclaimActionKind,
    ReclaimJob, ReclaimJobId, ReclaimPolicy, SkipReason, TaskToken, check_approver,
};
pub use seats::{BoxUserFacts, classify_box_user};
pub use snapshot::{LicenseTypeCounts, LicenseTypeStats, Seats, Snapshot, SnapshotBuilder};
pub use task::{TaskKind, TaskRun, TaskStatus};

/// Why a value from outside could not become a domain value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct InvalidInput {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
