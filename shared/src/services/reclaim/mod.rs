//! Reclamation (design §7 "Reclaim", §8): the steps Step Functions (or the CLI, in the same
//! order) runs for one job.
//!
//! - [`Reclaimer::start_job`]: the reclaim lease (one job per integration), the job.
//! - [`Reclaimer::plan`] (`plan.rs`): coverage proof, the candidates (`CAND#` items in
//!   batches) and what was left out and why (`SKIP#` items).
//! - [`Reclaimer::await_approval`], [`Reclaimer::approve`], [`Reclaimer::reject`],
//!   [`Reclaimer::cancel`] (`job.rs`).
//! - [`Reclaimer::reclaim_batch`] (`act.rs`, re-verification in `verify.rs`): one batch,
//!   step by step, each step at most once.
//! - [`Reclaimer::finalize`] (`finalize.rs`) and [`Reclaimer::restore`] (`restore.rs`).
//!
//! Whether an account may be reclaimed at all is decided in one place: `eligibility.rs`.
//!
//! Decisions where the design and the issue are silent:
//! - Plan finishes a dry run, a job with no candidates and a cancelled job itself (the
//!   workflow ends there without `finalize`): state, task run, lease released. A refused
//!   plan (`NotEligible`, `Invalid`) fails the job the same way; a retryable one
//!   (`SyncRunning`, Box unavailable) leaves it planning for the retry.
//! - A plan that stopped part-way (its invocation died after writing items) cannot be
//!   resumed: the approved set is written once, so the job fails and a new one starts.
//! - `transfer_to` must pass at plan and before each batch: an active managed user of the
//!   integration's enterprise, holding a seat, not excluded by id, login or group, and with
//!   a login within `inactive_days` (a dormant target would itself be a candidate).
//! - A role other than `user` (admin, co-admin, or one Box did not name or this code does
//!   not know) is never acted on.
//! - Reads that concern one account and are refused (403, 404) skip it with a reason;
//!   reads that fail for a while (429, 5xx, dropped connections) stop the batch with a
//!   retryable error, so a Box hiccup never turns into a skipped (or acted on) account. At
//!   plan, any failure to read a candidate's groups leaves it out.
//! - The reclaim lease of a job in a final state is taken over by the next job (its
//!   execution ended without `finalize`); a lease whose job does not exist yet is not.
//! - `restore` holds the reclaim lease too (short, renewed), so it never runs beside a job.

mod act;
mod eligibility;
mod error;
mod finalize;
mod job;
mod plan;
mod restore;
mod verify;

pub use error::{ERROR_NAMES, ReclaimError};

use crate::clock::Clock;
use crate::domain::{JobCounts, JobState, ReclaimJobId};
use crate::provider::box_client::TRANSFER_TIMEOUT;
use crate::services::sources::ProviderSources;
use crate::store::Store;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Runs the steps of reclaim jobs. Cheap to share: everything is behind `Arc`s.
pub struct Reclaimer {
    pub store: Arc<dyn Store>,
    pub sources: Arc<ProviderSources>,
    pub clock: Arc<dyn Clock>,
    /// Admins' notices (approval waiting, failures).
    pub notifier: Arc<dyn Notifier>,
    pub options: ReclaimOptions,
}

/// Timings of reclaim jobs; the defaults suit the Lambda functions.
#[derive(Debug, Clone)]
pub struct ReclaimOptions {
    /// How long the reclaim lease lasts after each step renews it. Longer than the
    /// approval wait (7 days) plus a notice period, so a job waiting for a person never
    /// loses the integration to another job.
    pub lease_ttl: chrono::Duration,
    /// How long an account lock lasts: longer than the longest provider write (a
    /// transfer), so a lock never expires under a write in flight.
    pub lock_ttl: chrono::Duration,
    /// How long plan waits for a running sync before giving up with `SyncRunning`.
    pub sync_wait: std::time::Duration,
    /// How often plan looks at the sync lease while waiting.
    pub sync_poll: std::time::Duration,
    /// Re-verification reads LOGIN events from the coverage high-water mark minus this,
    /// for events Box records late.
    pub login_overlap: chrono::Duration,
    /// Plan refuses event coverage whose end is older than this.
    pub max_coverage_age: chrono::Duration,
    /// The least time left before the deadline to start on another account (its reads
    /// and one write). A transfer needs [`TRANSFER_TIMEOUT`] on top.
    pub account_headroom: std::time::Duration,
}

impl Default for ReclaimOptions {
    fn default() -> Self {
        Self {
            lease_ttl: chrono::Duration::days(14),
            lock_ttl: chrono::Duration::minutes(20),
            sync_wait: std::time::Duration::from_secs(5 * 60),
            sync_poll: std::time::Duration::from_secs(5),
            login_overlap: chrono::Duration::hours(24),
            max_coverage_age: chrono::Duration::days(1),
            account_headroom: std::time::Duration::from_secs(30),
        }
    }
}

impl ReclaimOptions {
    /// The least time left to start a content transfer: the client's own timeout and the
    /// account headroom (never less than [`TRANSFER_TIMEOUT`]).
    pub fn transfer_headroom(&self) -> std::time::Duration {
        TRANSFER_TIMEOUT + self.account_headroom
    }
}

/// A notice to the integration's admins. Never carries a secret or a task token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub subject: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the notice could not be sent: {message}")]
    Send {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Where admins' notices go: SNS in AWS, the log or the terminal locally.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError>;
}

/// Writes notices to the log (the CLI and tests; the Lambda functions use SNS).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        tracing::warn!(subject = %notice.subject, message = %notice.message, "notice to admins");
        Ok(())
    }
}

/// What plan found; small whatever the tenant's size (Step Functions state stays far below
/// 256 KB): counts and batch numbers, never accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub job_id: ReclaimJobId,
    pub candidates: u32,
    pub excluded: u32,
    /// The batch numbers to run `reclaim_batch` for (empty when there is nothing to do).
    pub batches: Vec<u32>,
    pub dry_run: bool,
    /// Whether the job waits for a person's approval (otherwise plan approved it).
    pub needs_approval: bool,
    /// A delete job: permanent, said before anyone approves it.
    pub permanent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalWait {
    /// The job is approved already (by the integration's auto-approval, or by a person
    /// faster than the wait started): the caller sends task success itself.
    pub auto_approved: bool,
}

/// One `reclaim_batch` invocation's outcome. The counts are the batch's so far (all
/// invocations), so a retried or resumed batch reports the same figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub job_id: ReclaimJobId,
    pub batch: u32,
    /// `false`: accounts remain; call again.
    pub done: bool,
    pub acted: u32,
    pub skipped: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: ReclaimJobId,
    pub state: JobState,
    pub counts: JobCounts,
}
