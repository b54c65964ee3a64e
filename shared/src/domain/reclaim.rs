//! Reclamation (design §4, §7, §8): the job, its policy, its candidates, what it left out
//! and why, and the step each account reached. Only types and pure rules: the reclaim
//! service does the I/O, the store keeps these items.
//!
//! The rules that make reclamation safe and that need no I/O live here, in one place:
//! - the job's policy can only tighten the integration's guard-rails ([`ReclaimPolicy::tightened_by`]);
//! - a job moves through its states in one direction only ([`JobState::can_move_to`]);
//! - the approver is someone else unless the integration allows self-approval ([`check_approver`]);
//! - each account goes `started → transferred → done` (delete) or `started → done`
//!   (deactivate), never back, never past a final step ([`ActionStep::allows`]).

use super::{Actor, InactiveDays, IntegrationId, InvalidInput, Provider, ReclaimGuardRails};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

// Ids -------------------------------------------------------------------------------------

/// A reclaim job's id: a UUID in its canonical lowercase hyphenated form, so one job has
/// exactly one key in the store and in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReclaimJobId(String);

impl ReclaimJobId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match uuid::Uuid::try_parse(raw) {
            Ok(id) if id.hyphenated().to_string() == raw => Ok(Self(raw.to_owned())),
            _ => Err(InvalidInput::new(
                "job_id",
                "must be a lowercase hyphenated UUID",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReclaimJobId {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ReclaimJobId> for String {
    fn from(id: ReclaimJobId) -> Self {
        id.0
    }
}

impl fmt::Display for ReclaimJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Step Functions task token (the approval wait). Not a tenant credential, but whoever
/// holds it and may call `SendTaskSuccess` can resume the execution, so it never shows in
/// Debug output (and so never in logs or error messages). API responses must not carry it:
/// build a response type instead of serialising a whole [`ReclaimJob`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskToken(String);

impl TaskToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for `SendTaskSuccess` / `SendTaskFailure` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskToken(<redacted>)")
    }
}

// Policy ----------------------------------------------------------------------------------

/// What a job does to each account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReclaimActionKind {
    /// Status `inactive`: content kept, restorable. In Box the user still holds a seat.
    Deactivate,
    /// Transfer owned content to `transfer_to`, then delete the user: permanent.
    Delete,
}

impl ReclaimActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimActionKind::Deactivate => "deactivate",
            ReclaimActionKind::Delete => "delete",
        }
    }

    /// Seats one completed action gives back (design §8): a deactivated Box user still
    /// holds a seat; a deactivated Salesforce user does not.
    pub fn seats_freed(self, provider: Provider) -> u32 {
        match (self, provider) {
            (ReclaimActionKind::Deactivate, Provider::Box) => 0,
            (ReclaimActionKind::Deactivate, Provider::Salesforce) => 1,
            (ReclaimActionKind::Delete, _) => 1,
        }
    }

    /// Whether the action can be undone by `restore`.
    pub fn is_restorable(self) -> bool {
        matches!(self, ReclaimActionKind::Deactivate)
    }
}

impl fmt::Display for ReclaimActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a requester asks of one job. On its own it decides nothing: the integration's
/// guard-rails are the floor, and [`ReclaimPolicy::tightened_by`] gives the rules in force.
///
/// Unknown fields are refused: a misspelt `dry_run` must not silently become a real run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReclaimPolicy {
    /// Accounts without a login for this many days are candidates (1..=365).
    pub inactive_days: u32,
    /// Accounts created more recently than this are never candidates; the integration's
    /// grace period applies if it is longer.
    pub grace_days: u32,
    pub action: ReclaimActionKind,
    /// Who receives a deleted user's content; required for `delete`, refused otherwise.
    pub transfer_to: Option<String>,
    /// Whether the provider e-mails the user about the change (Box's `notify`).
    pub notify: bool,
    /// Plan only: nothing is ever acted on.
    pub dry_run: bool,
    /// The most accounts this job may act on; a job with more candidates acts on none.
    pub max_actions: Option<u32>,
    /// Exclusions this job adds to the integration's (never removes any).
    pub excluded_logins: Vec<String>,
    pub excluded_user_ids: Vec<String>,
    pub excluded_group_ids: Vec<String>,
}

impl Default for ReclaimPolicy {
    fn default() -> Self {
        Self {
            inactive_days: 90,
            grace_days: 30,
            action: ReclaimActionKind::Deactivate,
            transfer_to: None,
            notify: false,
            dry_run: false,
            max_actions: None,
            excluded_logins: Vec::new(),
            excluded_user_ids: Vec::new(),
            excluded_group_ids: Vec::new(),
        }
    }
}

impl ReclaimPolicy {
    pub const MAX_GRACE_DAYS: u32 = 3650;
    pub const MAX_ACTIONS: u32 = 1_000_000;
    /// Per list: the job item carries them, and items stay small (design §4).
    pub const MAX_EXCLUSIONS: usize = 100;

    pub fn validate(&self) -> Result<(), InvalidInput> {
        InactiveDays::try_from(self.inactive_days)?;
        if self.grace_days > Self::MAX_GRACE_DAYS {
            return Err(InvalidInput::new(
                "grace_days",
                format!("must be at most {}", Self::MAX_GRACE_DAYS),
            ));
        }
        match (self.action, &self.transfer_to) {
            (ReclaimActionKind::Delete, None) => {
                return Err(InvalidInput::new(
                    "transfer_to",
                    "is required for delete: the user whose content is kept",
                ));
            }
            (ReclaimActionKind::Delete, Some(to)) if !is_user_id(to) => {
                return Err(InvalidInput::new(
                    "transfer_to",
                    "must be a provider user id (1-64 letters and digits)",
                ));
            }
            // Content stays with a deactivated user: a transfer target would suggest
            // otherwise.
            (ReclaimActionKind::Deactivate, Some(_)) => {
                return Err(InvalidInput::new(
                    "transfer_to",
                    "applies to delete only; a deactivated user keeps their content",
                ));
            }
            _ => {}
        }
        if self
            .max_actions
            .is_some_and(|m| m == 0 || m > Self::MAX_ACTIONS)
        {
            return Err(InvalidInput::new(
                "max_actions",
                format!("must be between 1 and {}", Self::MAX_ACTIONS),
            ));
        }
        let lists = [
            ("excluded_logins", &self.excluded_logins),
            ("excluded_user_ids", &self.excluded_user_ids),
            ("excluded_group_ids", &self.excluded_group_ids),
        ];
        for (field, list) in lists {
            if list.len() > Self::MAX_EXCLUSIONS {
                return Err(InvalidInput::new(
                    field,
                    format!("at most {} entries", Self::MAX_EXCLUSIONS),
                ));
            }
            if list.iter().any(|v| !is_exclusion_entry(v)) {
                return Err(InvalidInput::new(
                    field,
                    "entries must be 1-254 printable characters",
                ));
            }
        }
        Ok(())
    }

    /// The rules in force for this job: the integration's guard-rails, tightened by this
    /// policy and never loosened (the longer grace period, the union of the exclusions;
    /// threshold, auto-approval and self-approval come from the integration alone). Both
    /// are validated, so the result can be trusted as it is.
    pub fn tightened_by(
        &self,
        rails: &ReclaimGuardRails,
        purchased_seats: Option<u64>,
    ) -> Result<EffectivePolicy, InvalidInput> {
        self.validate()?;
        rails.validate()?;
        let logins = rails
            .excluded_logins
            .iter()
            .chain(&self.excluded_logins)
            .map(|l| normalise_login(l))
            .collect();
        let user_ids = rails
            .excluded_user_ids
            .iter()
            .chain(&self.excluded_user_ids)
            .map(|i| i.trim().to_owned())
            .collect();
        let group_ids = rails
            .excluded_group_ids
            .iter()
            .chain(&self.excluded_group_ids)
            .map(|g| g.trim().to_owned())
            .collect();
        Ok(EffectivePolicy {
            inactive_days: self.inactive_days,
            grace_days: self.grace_days.max(rails.grace_period_days),
            action: self.action,
            transfer_to: self.transfer_to.as_ref().map(|t| t.trim().to_owned()),
            notify: self.notify,
            dry_run: self.dry_run,
            max_actions: self.max_actions,
            exclusions: Exclusions {
                logins,
                user_ids,
                group_ids,
            },
            approval_threshold: rails.effective_threshold(purchased_seats),
            auto_approve: rails.auto_approve,
            allow_self_approval: rails.allow_self_approval,
        })
    }
}

fn is_user_id(raw: &str) -> bool {
    (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The entry rule of the integration's exclusion lists, so both accept the same values.
fn is_exclusion_entry(raw: &str) -> bool {
    !raw.trim().is_empty() && raw.len() <= 254 && !raw.chars().any(char::is_control)
}

fn normalise_login(login: &str) -> String {
    login.trim().to_lowercase()
}

/// The exclusions in force for a job: the integration's and the job's together.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Exclusions {
    /// Lower case.
    logins: BTreeSet<String>,
    user_ids: BTreeSet<String>,
    group_ids: BTreeSet<String>,
}

impl Exclusions {
    /// The reason an account is excluded by its id or login, if it is (case-insensitive
    /// for logins).
    pub fn reason_for(&self, external_id: &str, login: &str) -> Option<SkipReason> {
        if self.user_ids.contains(external_id.trim()) {
            Some(SkipReason::ExcludedId)
        } else if self.logins.contains(&normalise_login(login)) {
            Some(SkipReason::ExcludedLogin)
        } else {
            None
        }
    }

    /// The first excluded group among an account's groups (read live, design §8).
    pub fn excluded_group<'g>(&self, group_ids: &'g [String]) -> Option<&'g str> {
        group_ids
            .iter()
            .map(String::as_str)
            .find(|g| self.group_ids.contains(g.trim()))
    }

    /// Whether group memberships matter at all for this job (if not, none need reading).
    pub fn has_groups(&self) -> bool {
        !self.group_ids.is_empty()
    }
}

/// A job's policy as it applies: built only by [`ReclaimPolicy::tightened_by`], so every
/// value in it is valid and no looser than the integration's guard-rails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectivePolicy {
    inactive_days: u32,
    grace_days: u32,
    action: ReclaimActionKind,
    transfer_to: Option<String>,
    notify: bool,
    dry_run: bool,
    max_actions: Option<u32>,
    exclusions: Exclusions,
    approval_threshold: u32,
    auto_approve: bool,
    allow_self_approval: bool,
}

impl EffectivePolicy {
    pub fn inactive_days(&self) -> u32 {
        self.inactive_days
    }

    /// The longer of the job's and the integration's grace periods.
    pub fn grace_days(&self) -> u32 {
        self.grace_days
    }

    pub fn action(&self) -> ReclaimActionKind {
        self.action
    }

    /// Set exactly when the action is `delete`.
    pub fn transfer_to(&self) -> Option<&str> {
        self.transfer_to.as_deref()
    }

    pub fn notify(&self) -> bool {
        self.notify
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn max_actions(&self) -> Option<u32> {
        self.max_actions
    }

    pub fn exclusions(&self) -> &Exclusions {
        &self.exclusions
    }

    pub fn approval_threshold(&self) -> u32 {
        self.approval_threshold
    }

    pub fn auto_approve(&self) -> bool {
        self.auto_approve
    }

    pub fn allow_self_approval(&self) -> bool {
        self.allow_self_approval
    }

    /// Whether a job with this many candidates waits for an approval: always, unless the
    /// integration auto-approves and the job is at or under the threshold.
    pub fn needs_approval(&self, candidates: u64) -> bool {
        !(self.auto_approve && candidates <= u64::from(self.approval_threshold))
    }

    /// Whether `max_actions`, if set, allows this many candidates (a job above it acts on
    /// nobody rather than on an arbitrary part of its candidates).
    pub fn allows_count(&self, candidates: u64) -> bool {
        self.max_actions
            .is_none_or(|max| candidates <= u64::from(max))
    }
}

// Jobs ------------------------------------------------------------------------------------

/// Where a job is. Final states (`done`, `cancelled`, `rejected`, `expired`, `failed`)
/// never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Planning,
    AwaitingApproval,
    Approved,
    Running,
    Done,
    Cancelled,
    Rejected,
    Expired,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Planning => "planning",
            JobState::AwaitingApproval => "awaiting_approval",
            JobState::Approved => "approved",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
            JobState::Rejected => "rejected",
            JobState::Expired => "expired",
            JobState::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done
                | JobState::Cancelled
                | JobState::Rejected
                | JobState::Expired
                | JobState::Failed
        )
    }

    /// Whether a job may move from `self` to `next`. Staying put is allowed (a retried
    /// step changes nothing). Nothing runs without passing `approved`; only a job awaiting
    /// approval can be rejected or expire; any unfinished job can be cancelled or fail.
    pub fn can_move_to(self, next: JobState) -> bool {
        use JobState::*;
        if self == next {
            return true;
        }
        if self.is_final() {
            return false;
        }
        match next {
            Planning => false,
            // Plan found more than the integration lets through on its own.
            AwaitingApproval => self == Planning,
            // Auto-approved at plan, or approved by a person.
            Approved => matches!(self, Planning | AwaitingApproval),
            Running => self == Approved,
            // Nothing to do or a dry run (from planning), or every batch finished.
            Done => matches!(self, Planning | Approved | Running),
            Rejected | Expired => self == AwaitingApproval,
            Cancelled | Failed => true,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's figures. Small numbers only: the accounts themselves are separate items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobCounts {
    /// Accounts in the approved set (`CAND#` items).
    pub candidates: u32,
    /// Accounts left out at plan (`SKIP#` items).
    pub excluded: u32,
    pub acted: u32,
    /// Candidates skipped when re-verified right before acting.
    pub skipped: u32,
    pub failed: u32,
    pub seats_freed: u32,
}

/// One reclaim job (the `RJOB#<id>`/`META` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimJob {
    pub id: ReclaimJobId,
    pub integration_id: IntegrationId,
    /// As requested; the rules in force are `policy.tightened_by(<the integration's
    /// guard-rails>)`. The store refuses to change it once the job exists.
    pub policy: ReclaimPolicy,
    /// The store refuses to change it once the job exists.
    pub requested_by: Actor,
    pub approved_by: Option<Actor>,
    pub state: JobState,
    /// Set by a cancel request; checked before every provider write.
    pub cancelled: bool,
    #[serde(default)]
    pub counts: JobCounts,
    /// How many candidate batches plan wrote (numbered `1..=batches`).
    pub batches: u32,
    pub task_token: Option<TaskToken>,
    pub execution_arn: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
}

impl ReclaimJob {
    /// A new job in `planning`.
    pub fn new(
        integration_id: IntegrationId,
        policy: ReclaimPolicy,
        requested_by: Actor,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: ReclaimJobId::generate(),
            integration_id,
            policy,
            requested_by,
            approved_by: None,
            state: JobState::Planning,
            cancelled: false,
            counts: JobCounts::default(),
            batches: 0,
            task_token: None,
            execution_arn: None,
            created_at: now,
            updated_at: now,
            error: None,
        }
    }

    /// Moves the job to `next` if [`JobState::can_move_to`] allows it. A cancelled job can
    /// no longer be approved or start running.
    pub fn move_to(&mut self, next: JobState, now: DateTime<Utc>) -> Result<(), JobChangeRefused> {
        if !self.state.can_move_to(next) {
            return Err(JobChangeRefused::Transition {
                from: self.state,
                to: next,
            });
        }
        if self.cancelled && matches!(next, JobState::Approved | JobState::Running) {
            return Err(JobChangeRefused::Cancelled);
        }
        self.state = next;
        self.updated_at = now;
        Ok(())
    }

    /// Records an approval by a person ([`check_approver`] decides whether they may).
    pub fn approve(
        &mut self,
        approver: &Actor,
        rails: &ReclaimGuardRails,
        now: DateTime<Utc>,
    ) -> Result<(), JobChangeRefused> {
        check_approver(self, approver, rails)?;
        self.move_to(JobState::Approved, now)?;
        self.approved_by = Some(approver.clone());
        Ok(())
    }

    /// Approves a job that plan found within what the integration lets through on its own.
    pub fn auto_approve(&mut self, now: DateTime<Utc>) -> Result<(), JobChangeRefused> {
        if self.state != JobState::Planning {
            return Err(JobChangeRefused::Transition {
                from: self.state,
                to: JobState::Approved,
            });
        }
        self.move_to(JobState::Approved, now)?;
        self.approved_by = Some(Actor::System);
        Ok(())
    }

    /// Sets the cancel flag (a finished job cannot be cancelled). The state moves to
    /// `cancelled` when the job finalises.
    pub fn request_cancel(&mut self, now: DateTime<Utc>) -> Result<(), JobChangeRefused> {
        if self.state.is_final() {
            return Err(JobChangeRefused::Transition {
                from: self.state,
                to: JobState::Cancelled,
            });
        }
        self.cancelled = true;
        self.updated_at = now;
        Ok(())
    }
}

/// Why a change to a job was refused (by the job's own rules or by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobChangeRefused {
    #[error("a job cannot move from {from} to {to}")]
    Transition { from: JobState, to: JobState },
    #[error("the job was cancelled")]
    Cancelled,
    #[error(transparent)]
    Approval(#[from] ApprovalRefused),
    /// The job is not in the shape the change expects (a caller's own check).
    #[error("{0}")]
    NotApplicable(String),
}

/// Why someone may not approve a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    #[error("the job is {0}, not awaiting approval")]
    NotAwaitingApproval(JobState),
    #[error("the job was cancelled")]
    Cancelled,
    #[error(
        "the requester cannot approve their own job (the integration does not allow self-approval)"
    )]
    SelfApproval,
    #[error("an approval must come from a person, not from Seatkeeper itself")]
    NotAPerson,
}

/// Whether `approver` may approve `job` now (design §8): only while it awaits approval and
/// is not cancelled, only a person, and someone other than the requester unless the
/// integration allows self-approval. Principals compare case-insensitively (IAM names are
/// unique regardless of case).
pub fn check_approver(
    job: &ReclaimJob,
    approver: &Actor,
    rails: &ReclaimGuardRails,
) -> Result<(), ApprovalRefused> {
    if job.state != JobState::AwaitingApproval {
        return Err(ApprovalRefused::NotAwaitingApproval(job.state));
    }
    if job.cancelled {
        return Err(ApprovalRefused::Cancelled);
    }
    if *approver == Actor::System {
        return Err(ApprovalRefused::NotAPerson);
    }
    let same = approver
        .principal()
        .eq_ignore_ascii_case(&job.requested_by.principal());
    if same && !rails.allow_self_approval {
        return Err(ApprovalRefused::SelfApproval);
    }
    Ok(())
}

// Candidates and exclusions -----------------------------------------------------------------

/// Accounts per candidate batch: one `reclaim_batch` invocation's work.
pub const CANDIDATES_PER_BATCH: usize = 50;

/// One account in a job's approved set (`RJOB#<job>`/`CAND#<batch>#<external id>`):
/// nothing outside this set is ever acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub job_id: ReclaimJobId,
    pub batch: u32,
    pub external_id: String,
    pub login: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Why an account is not acted on. Every rule of design §8 has its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Admin,
    CoAdmin,
    /// Salesforce Modify All Data / Manage Users.
    AdminPermissions,
    Service,
    App,
    External,
    /// The integration's own user (CCG service account, OAuth authoriser, run-as user).
    OwnUser,
    /// The delete job's `transfer_to` user.
    TransferTarget,
    ExcludedLogin,
    ExcludedId,
    ExcludedGroup,
    GroupsUnreadable,
    GracePeriod,
    /// Never logged in and no creation date: the grace period cannot be proven over.
    CreationUnknown,
    RecentLogin,
    RecentActivity,
    ActivityUnreadable,
    NoSeat,
    /// A deactivate job's account that is inactive already.
    AlreadyInactive,
    NotInApprovedSet,
    RoleChanged,
    /// The provider names a role other than its known ones (or none): not provably a
    /// regular user.
    UnknownRole,
    StatusChanged,
    /// The provider no longer has the user.
    Gone,
    Cancelled,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Admin => "admin",
            SkipReason::CoAdmin => "co_admin",
            SkipReason::AdminPermissions => "admin_permissions",
            SkipReason::Service => "service",
            SkipReason::App => "app",
            SkipReason::External => "external",
            SkipReason::OwnUser => "own_user",
            SkipReason::TransferTarget => "transfer_target",
            SkipReason::ExcludedLogin => "excluded_login",
            SkipReason::ExcludedId => "excluded_id",
            SkipReason::ExcludedGroup => "excluded_group",
            SkipReason::GroupsUnreadable => "groups_unreadable",
            SkipReason::GracePeriod => "grace_period",
            SkipReason::CreationUnknown => "creation_unknown",
            SkipReason::RecentLogin => "recent_login",
            SkipReason::RecentActivity => "recent_activity",
            SkipReason::ActivityUnreadable => "activity_unreadable",
            SkipReason::NoSeat => "no_seat",
            SkipReason::AlreadyInactive => "already_inactive",
            SkipReason::NotInApprovedSet => "not_in_approved_set",
            SkipReason::RoleChanged => "role_changed",
            SkipReason::UnknownRole => "unknown_role",
            SkipReason::StatusChanged => "status_changed",
            SkipReason::Gone => "gone",
            SkipReason::Cancelled => "cancelled",
        }
    }

    /// A sentence for reports and the CLI.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Admin => "an administrator is never reclaimed",
            SkipReason::CoAdmin => "a co-administrator is never reclaimed",
            SkipReason::AdminPermissions => {
                "a user with administrative permissions is never reclaimed"
            }
            SkipReason::Service => "a service or integration account is never reclaimed",
            SkipReason::App => "an app user is never reclaimed",
            SkipReason::External => "an external user is never reclaimed",
            SkipReason::OwnUser => "the user Seatkeeper acts as is never reclaimed",
            SkipReason::TransferTarget => {
                "the user receiving transferred content is never reclaimed"
            }
            SkipReason::ExcludedLogin => "the login is excluded",
            SkipReason::ExcludedId => "the user id is excluded",
            SkipReason::ExcludedGroup => "a member of an excluded group",
            SkipReason::GroupsUnreadable => {
                "group memberships could not be read, so an exclusion cannot be ruled out"
            }
            SkipReason::GracePeriod => "created within the grace period",
            SkipReason::CreationUnknown => {
                "never logged in and the creation date is unknown, so the grace period cannot be proven"
            }
            SkipReason::RecentLogin => "logged in recently",
            SkipReason::RecentActivity => "active recently (own event stream)",
            SkipReason::ActivityUnreadable => {
                "recent activity could not be read, so inactivity cannot be proven"
            }
            SkipReason::NoSeat => "holds no seat",
            SkipReason::AlreadyInactive => "already inactive",
            SkipReason::NotInApprovedSet => "not in the job's approved set",
            SkipReason::RoleChanged => "the role changed since the plan",
            SkipReason::UnknownRole => "the role is not known to be a regular user's",
            SkipReason::StatusChanged => "the status changed since the plan",
            SkipReason::Gone => "the user no longer exists",
            SkipReason::Cancelled => "the job was cancelled before acting",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account plan left out, and why (`RJOB#<job>`/`SKIP#<external id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusion {
    pub job_id: ReclaimJobId,
    pub external_id: String,
    pub login: String,
    pub reason: SkipReason,
    /// A fact behind the reason (the excluded group's id, …); never a secret.
    #[serde(default)]
    pub detail: Option<String>,
}

// Actions ---------------------------------------------------------------------------------

/// The step an account reached in a job (`RJOB#<job>`/`ACT#<external id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStep {
    /// About to write to the provider (the values needed to restore are saved).
    Started,
    /// Delete only: the owned content was transferred.
    Transferred,
    Done,
    Skipped,
    Failed,
    /// A deactivation undone by `restore`.
    Restored,
}

/// Whether a failed account may be tried again: only when the caller says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedRetry {
    Refuse,
    Allow,
}

impl ActionStep {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStep::Started => "started",
            ActionStep::Transferred => "transferred",
            ActionStep::Done => "done",
            ActionStep::Skipped => "skipped",
            ActionStep::Failed => "failed",
            ActionStep::Restored => "restored",
        }
    }

    /// A job never acts on the account again (`restore` may still undo a `done`
    /// deactivation).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionStep::Done | ActionStep::Skipped | ActionStep::Restored
        )
    }

    /// Whether an account of a `kind` job may go from `from` (`None`: nothing recorded
    /// yet) to `to`:
    /// - delete: `started → transferred → done` (never done without the transfer);
    /// - deactivate: `started → done`, and `done → restored`;
    /// - anything unfinished may be skipped or fail; `failed → started` only with
    ///   [`FailedRetry::Allow`];
    /// - no step is entered twice, and nothing leaves `done`, `skipped` or `restored`
    ///   except the restore of a deactivation.
    pub fn allows(
        kind: ReclaimActionKind,
        from: Option<ActionStep>,
        to: ActionStep,
        retry: FailedRetry,
    ) -> bool {
        use ActionStep::*;
        match (from, to) {
            (Some(Done), Restored) => kind == ReclaimActionKind::Deactivate,
            (Some(f), _) if f.is_final() => false,
            (None, Started) => true,
            (Some(Failed), Started) => retry == FailedRetry::Allow,
            (Some(Started), Transferred) => kind == ReclaimActionKind::Delete,
            (Some(Started), Done) => kind == ReclaimActionKind::Deactivate,
            (Some(Transferred), Done) => kind == ReclaimActionKind::Delete,
            (Some(f), Skipped | Failed) => f != to,
            (None, Skipped | Failed) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ActionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job did to one account, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub job_id: ReclaimJobId,
    pub external_id: String,
    pub login: String,
    pub action: ReclaimActionKind,
    pub step: ActionStep,
    /// Why it was skipped (set with `step = skipped`).
    #[serde(default)]
    pub skip: Option<SkipReason>,
    /// A sentence for reports: the skip's description or what failed.
    pub reason: Option<String>,
    /// The provider's status and role before the job acted, for `restore`.
    pub previous_status: Option<String>,
    pub previous_role: Option<String>,
    pub transferred_to: Option<String>,
    pub seats_freed: u32,
    /// When this step was reached.
    pub at: DateTime<Utc>,
}

impl ActionRecord {
    /// The first record of an account: `started`, with what `restore` needs.
    pub fn started(
        candidate: &Candidate,
        action: ReclaimActionKind,
        previous_status: Option<String>,
        previous_role: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            job_id: candidate.job_id.clone(),
            external_id: candidate.external_id.clone(),
            login: candidate.login.clone(),
            action,
            step: ActionStep::Started,
            skip: None,
            reason: None,
            previous_status,
            previous_role,
            transferred_to: None,
            seats_freed: 0,
            at,
        }
    }

    /// An account skipped before anything was written to the provider.
    pub fn skipped_before_start(
        candidate: &Candidate,
        action: ReclaimActionKind,
        reason: SkipReason,
        at: DateTime<Utc>,
    ) -> Self {
        Self::started(candidate, action, None, None, at).skipped(reason, at)
    }

    /// The same account at its next step (saved values kept, reason cleared).
    pub fn advanced(&self, step: ActionStep, at: DateTime<Utc>) -> Self {
        Self {
            step,
            skip: None,
            reason: None,
            at,
            ..self.clone()
        }
    }

    pub fn transferred(&self, to: &str, at: DateTime<Utc>) -> Self {
        Self {
            transferred_to: Some(to.to_owned()),
            ..self.advanced(ActionStep::Transferred, at)
        }
    }

    pub fn done(&self, seats_freed: u32, at: DateTime<Utc>) -> Self {
        Self {
            seats_freed,
            ..self.advanced(ActionStep::Done, at)
        }
    }

    pub fn skipped(&self, reason: SkipReason, at: DateTime<Utc>) -> Self {
        Self {
            skip: Some(reason),
            reason: Some(reason.describe().to_owned()),
            ..self.advanced(ActionStep::Skipped, at)
        }
    }

    /// `reason` is shown to admins: a description, never a secret or a raw response.
    pub fn failed(&self, reason: impl Into<String>, at: DateTime<Utc>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..self.advanced(ActionStep::Failed, at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn iam(name: &str) -> Actor {
        Actor::Iam {
            arn: format!("arn:aws:iam::123456789012:user/{name}"),
        }
    }

    fn job() -> ReclaimJob {
        ReclaimJob::new(
            IntegrationId::parse("acme").unwrap(),
            ReclaimPolicy::default(),
            iam("alice"),
            now(),
        )
    }

    fn awaiting() -> ReclaimJob {
        let mut job = job();
        job.move_to(JobState::AwaitingApproval, now()).unwrap();
        job
    }

    fn delete_policy() -> ReclaimPolicy {
        ReclaimPolicy {
            action: ReclaimActionKind::Delete,
            transfer_to: Some("1001".into()),
            ..ReclaimPolicy::default()
        }
    }

    fn candidate() -> Candidate {
        Candidate {
            job_id: ReclaimJobId::generate(),
            batch: 1,
            external_id: "42".into(),
            login: "bob@example.com".into(),
            last_login_at: None,
            created_at: None,
        }
    }

    #[test]
    fn job_ids_are_canonical_uuids() {
        let id = ReclaimJobId::generate();
        assert_eq!(ReclaimJobId::parse(id.as_str()).unwrap(), id);
        let upper = id.as_str().to_uppercase();
        for bad in ["", "acme", upper.as_str(), &id.as_str().replace('-', "")] {
            assert_eq!(ReclaimJobId::parse(bad).unwrap_err().field, "job_id");
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ReclaimJobId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ReclaimJobId>("\"RJOB#x\"").is_err());
    }

    #[test]
    fn policy_defaults_are_ninety_and_thirty_days_deactivate() {
        let policy: ReclaimPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy.inactive_days, 90);
        assert_eq!(policy.grace_days, 30);
        assert_eq!(policy.action, ReclaimActionKind::Deactivate);
        assert!(!policy.dry_run);
        assert!(policy.validate().is_ok());
    }

    #[test]
    fn a_misspelt_policy_field_is_refused() {
        let typo = serde_json::from_str::<ReclaimPolicy>(r#"{"dryrun": true}"#);
        assert!(typo.is_err());
    }

    #[test]
    fn delete_needs_a_transfer_target_and_deactivate_refuses_one() {
        let no_target = ReclaimPolicy {
            transfer_to: None,
            ..delete_policy()
        };
        assert_eq!(no_target.validate().unwrap_err().field, "transfer_to");
        let bad_target = ReclaimPolicy {
            transfer_to: Some("12 34".into()),
            ..delete_policy()
        };
        assert_eq!(bad_target.validate().unwrap_err().field, "transfer_to");
        assert!(delete_policy().validate().is_ok());
        let deactivate_with_target = ReclaimPolicy {
            transfer_to: Some("1001".into()),
            ..ReclaimPolicy::default()
        };
        assert_eq!(
            deactivate_with_target.validate().unwrap_err().field,
            "transfer_to"
        );
    }

    #[test]
    fn policy_ranges_are_checked() {
        let cases = [
            (
                ReclaimPolicy {
                    inactive_days: 0,
                    ..ReclaimPolicy::default()
                },
                "inactive_days",
            ),
            (
                ReclaimPolicy {
                    inactive_days: 366,
                    ..ReclaimPolicy::default()
                },
                "inactive_days",
            ),
            (
                ReclaimPolicy {
                    grace_days: 3651,
                    ..ReclaimPolicy::default()
                },
                "grace_days",
            ),
            (
                ReclaimPolicy {
                    max_actions: Some(0),
                    ..ReclaimPolicy::default()
                },
                "max_actions",
            ),
            (
                ReclaimPolicy {
                    excluded_logins: vec!["\u{7}".into()],
                    ..ReclaimPolicy::default()
                },
                "excluded_logins",
            ),
            (
                ReclaimPolicy {
                    excluded_group_ids: vec!["7".into(); ReclaimPolicy::MAX_EXCLUSIONS + 1],
                    ..ReclaimPolicy::default()
                },
                "excluded_group_ids",
            ),
        ];
        for (policy, field) in cases {
            assert_eq!(policy.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn a_job_policy_only_tightens_the_guard_rails() {
        let rails = ReclaimGuardRails {
            excluded_logins: vec!["CEO@Example.com".into()],
            excluded_user_ids: vec!["1".into()],
            excluded_group_ids: vec!["g-legal".into()],
            approval_threshold: Some(10),
            auto_approve: true,
            allow_self_approval: false,
            grace_period_days: 60,
        };
        let policy = ReclaimPolicy {
            grace_days: 14,
            excluded_logins: vec!["cfo@example.com".into()],
            excluded_user_ids: vec!["2".into()],
            excluded_group_ids: vec!["g-board".into()],
            ..ReclaimPolicy::default()
        };
        let rules = policy.tightened_by(&rails, Some(1000)).unwrap();
        // The longer grace period wins, whichever side sets it.
        assert_eq!(rules.grace_days(), 60);
        let longer = ReclaimPolicy {
            grace_days: 90,
            ..policy.clone()
        };
        assert_eq!(longer.tightened_by(&rails, None).unwrap().grace_days(), 90);
        // Both sides' exclusions apply; logins regardless of case.
        let ex = rules.exclusions();
        assert_eq!(
            ex.reason_for("9", "ceo@EXAMPLE.com"),
            Some(SkipReason::ExcludedLogin)
        );
        assert_eq!(
            ex.reason_for("9", "cfo@example.com"),
            Some(SkipReason::ExcludedLogin)
        );
        assert_eq!(ex.reason_for("1", "a@b.c"), Some(SkipReason::ExcludedId));
        assert_eq!(ex.reason_for("2", "a@b.c"), Some(SkipReason::ExcludedId));
        assert_eq!(ex.reason_for("3", "a@b.c"), None);
        let groups = vec!["g-sales".to_owned(), "g-board".to_owned()];
        assert_eq!(ex.excluded_group(&groups), Some("g-board"));
        assert_eq!(ex.excluded_group(&["g-sales".to_owned()]), None);
        assert!(ex.has_groups());
        // Threshold and approvals come from the integration.
        assert_eq!(rules.approval_threshold(), 10);
        assert!(!rules.needs_approval(10));
        assert!(rules.needs_approval(11));
        assert!(!rules.allow_self_approval());
    }

    #[test]
    fn without_auto_approve_every_job_waits_for_approval() {
        let rails = ReclaimGuardRails::default();
        let rules = ReclaimPolicy::default()
            .tightened_by(&rails, Some(100))
            .unwrap();
        assert_eq!(rules.approval_threshold(), 10);
        assert!(rules.needs_approval(1));
    }

    #[test]
    fn an_invalid_policy_or_rails_gives_no_rules() {
        let rails = ReclaimGuardRails::default();
        let no_target = ReclaimPolicy {
            transfer_to: None,
            ..delete_policy()
        };
        assert!(no_target.tightened_by(&rails, None).is_err());
        let bad_rails = ReclaimGuardRails {
            grace_period_days: 99_999,
            ..rails
        };
        assert!(
            ReclaimPolicy::default()
                .tightened_by(&bad_rails, None)
                .is_err()
        );
        let rules = delete_policy().tightened_by(&ReclaimGuardRails::default(), None);
        assert_eq!(rules.unwrap().transfer_to(), Some("1001"));
    }

    #[test]
    fn max_actions_caps_the_whole_job() {
        let capped = ReclaimPolicy {
            max_actions: Some(5000),
            ..ReclaimPolicy::default()
        }
        .tightened_by(&ReclaimGuardRails::default(), None)
        .unwrap();
        assert!(capped.allows_count(5000));
        assert!(!capped.allows_count(5001));
        let uncapped = ReclaimPolicy::default()
            .tightened_by(&ReclaimGuardRails::default(), None)
            .unwrap();
        assert!(uncapped.allows_count(u64::MAX));
    }

    #[test]
    fn a_box_deactivation_frees_no_seat() {
        assert_eq!(ReclaimActionKind::Deactivate.seats_freed(Provider::Box), 0);
        assert_eq!(ReclaimActionKind::Delete.seats_freed(Provider::Box), 1);
        assert_eq!(
            ReclaimActionKind::Deactivate.seats_freed(Provider::Salesforce),
            1
        );
    }

    #[test]
    fn nothing_runs_without_approval() {
        use JobState::*;
        for from in [Planning, AwaitingApproval, Running, Done, Failed] {
            assert!(!from.can_move_to(Running) || from == Running, "{from}");
        }
        assert!(Approved.can_move_to(Running));
        assert!(Planning.can_move_to(Approved));
        assert!(AwaitingApproval.can_move_to(Approved));
        assert!(!Running.can_move_to(Approved));
    }

    #[test]
    fn final_states_never_change() {
        use JobState::*;
        let all = [
            Planning,
            AwaitingApproval,
            Approved,
            Running,
            Done,
            Cancelled,
            Rejected,
            Expired,
            Failed,
        ];
        for from in all.into_iter().filter(|s| s.is_final()) {
            for to in all {
                assert_eq!(from.can_move_to(to), from == to, "{from} -> {to}");
            }
        }
        for from in all.into_iter().filter(|s| !s.is_final()) {
            assert!(from.can_move_to(Cancelled), "{from}");
            assert!(from.can_move_to(Failed), "{from}");
            assert!(from.can_move_to(from), "{from}");
            assert!(!from.can_move_to(Planning) || from == Planning);
        }
        assert!(AwaitingApproval.can_move_to(Rejected));
        assert!(AwaitingApproval.can_move_to(Expired));
        assert!(!Running.can_move_to(Rejected));
        assert!(!Planning.can_move_to(Expired));
    }

    #[test]
    fn a_cancelled_job_cannot_be_approved_or_start() {
        let mut job = awaiting();
        job.request_cancel(now()).unwrap();
        assert_eq!(
            check_approver(&job, &iam("bob"), &ReclaimGuardRails::default()),
            Err(ApprovalRefused::Cancelled)
        );
        assert_eq!(
            job.move_to(JobState::Approved, now()),
            Err(JobChangeRefused::Cancelled)
        );
        assert!(job.move_to(JobState::Cancelled, now()).is_ok());
        assert!(job.request_cancel(now()).is_err(), "already finished");
    }

    #[test]
    fn self_approval_is_refused_by_default() {
        let rails = ReclaimGuardRails::default();
        let job = awaiting();
        assert_eq!(
            check_approver(&job, &iam("alice"), &rails),
            Err(ApprovalRefused::SelfApproval)
        );
        // The same principal in another case is the same IAM identity.
        assert_eq!(
            check_approver(&job, &iam("ALICE"), &rails),
            Err(ApprovalRefused::SelfApproval)
        );
        assert_eq!(check_approver(&job, &iam("bob"), &rails), Ok(()));
        let allowing = ReclaimGuardRails {
            allow_self_approval: true,
            ..rails.clone()
        };
        assert_eq!(check_approver(&job, &iam("alice"), &allowing), Ok(()));
        assert_eq!(
            check_approver(&job, &Actor::System, &allowing),
            Err(ApprovalRefused::NotAPerson)
        );
    }

    #[test]
    fn only_a_job_awaiting_approval_can_be_approved() {
        let rails = ReclaimGuardRails::default();
        let mut planning = job();
        assert_eq!(
            check_approver(&planning, &iam("bob"), &rails),
            Err(ApprovalRefused::NotAwaitingApproval(JobState::Planning))
        );
        let mut job = awaiting();
        job.approve(&iam("bob"), &rails, now()).unwrap();
        assert_eq!(job.state, JobState::Approved);
        assert_eq!(job.approved_by, Some(iam("bob")));
        // A second approval finds the job approved already.
        assert!(matches!(
            job.approve(&iam("carol"), &rails, now()),
            Err(JobChangeRefused::Approval(
                ApprovalRefused::NotAwaitingApproval(JobState::Approved)
            ))
        ));
        planning.auto_approve(now()).unwrap();
        assert_eq!(planning.approved_by, Some(Actor::System));
        assert!(job.auto_approve(now()).is_err());
    }

    #[test]
    fn the_task_token_never_shows_in_debug_output() {
        let mut job = job();
        job.task_token = Some(TaskToken::new("AAAAKgAAAAIAAAAA-secret-token"));
        let debug = format!("{job:?}");
        assert!(!debug.contains("secret-token"), "{debug}");
        assert!(debug.contains("<redacted>"));
        // It is stored, though: the approval needs it.
        let json = serde_json::to_string(&job).unwrap();
        let back: ReclaimJob = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.task_token.as_ref().map(TaskToken::expose),
            Some("AAAAKgAAAAIAAAAA-secret-token")
        );
    }

    #[test]
    fn job_state_and_reasons_serialise_as_they_display() {
        let state = serde_json::to_value(JobState::AwaitingApproval).unwrap();
        assert_eq!(state, serde_json::json!("awaiting_approval"));
        for reason in [
            SkipReason::CoAdmin,
            SkipReason::NotInApprovedSet,
            SkipReason::GroupsUnreadable,
        ] {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, serde_json::json!(reason.as_str()));
            assert!(!reason.describe().is_empty());
        }
        for step in [ActionStep::Started, ActionStep::Transferred] {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                serde_json::json!(step.as_str())
            );
        }
    }

    #[test]
    fn delete_is_started_then_transferred_then_done() {
        use ActionStep::*;
        let kind = ReclaimActionKind::Delete;
        let r = FailedRetry::Refuse;
        assert!(ActionStep::allows(kind, None, Started, r));
        assert!(ActionStep::allows(kind, Some(Started), Transferred, r));
        assert!(ActionStep::allows(kind, Some(Transferred), Done, r));
        // Never deleted before the transfer.
        assert!(!ActionStep::allows(kind, Some(Started), Done, r));
        assert!(!ActionStep::allows(kind, None, Done, r));
        assert!(!ActionStep::allows(kind, None, Transferred, r));
        // No going back, no step twice.
        assert!(!ActionStep::allows(kind, Some(Transferred), Started, r));
        assert!(!ActionStep::allows(kind, Some(Transferred), Transferred, r));
        assert!(!ActionStep::allows(kind, Some(Started), Started, r));
        // A deleted user cannot be restored.
        assert!(!ActionStep::allows(kind, Some(Done), Restored, r));
    }

    #[test]
    fn deactivate_is_started_then_done_and_restorable() {
        use ActionStep::*;
        let kind = ReclaimActionKind::Deactivate;
        let r = FailedRetry::Refuse;
        assert!(ActionStep::allows(kind, Some(Started), Done, r));
        assert!(!ActionStep::allows(kind, Some(Started), Transferred, r));
        assert!(ActionStep::allows(kind, Some(Done), Restored, r));
        assert!(!ActionStep::allows(kind, Some(Restored), Restored, r));
        assert!(!ActionStep::allows(kind, Some(Restored), Started, r));
    }

    #[test]
    fn final_steps_are_final_and_failed_is_retried_only_when_asked() {
        use ActionStep::*;
        for kind in [ReclaimActionKind::Delete, ReclaimActionKind::Deactivate] {
            for from in [None, Some(Started), Some(Transferred)] {
                assert!(ActionStep::allows(kind, from, Skipped, FailedRetry::Refuse));
                assert!(ActionStep::allows(kind, from, Failed, FailedRetry::Refuse));
            }
            for from in [Done, Skipped] {
                for to in [Started, Transferred, Done, Skipped, Failed] {
                    assert!(
                        !ActionStep::allows(kind, Some(from), to, FailedRetry::Allow),
                        "{kind} {from} -> {to}"
                    );
                }
            }
            assert!(!ActionStep::allows(
                kind,
                Some(Failed),
                Started,
                FailedRetry::Refuse
            ));
            assert!(ActionStep::allows(
                kind,
                Some(Failed),
                Started,
                FailedRetry::Allow
            ));
            assert!(!ActionStep::allows(
                kind,
                Some(Failed),
                Failed,
                FailedRetry::Allow
            ));
            assert!(ActionStep::allows(
                kind,
                Some(Failed),
                Skipped,
                FailedRetry::Refuse
            ));
        }
    }

    #[test]
    fn records_keep_what_restore_needs_across_steps() {
        let c = candidate();
        let started = ActionRecord::started(
            &c,
            ReclaimActionKind::Delete,
            Some("active".into()),
            Some("user".into()),
            now(),
        );
        let transferred = started.transferred("1001", now());
        let done = transferred.done(1, now());
        assert_eq!(done.step, ActionStep::Done);
        assert_eq!(done.previous_status.as_deref(), Some("active"));
        assert_eq!(done.previous_role.as_deref(), Some("user"));
        assert_eq!(done.transferred_to.as_deref(), Some("1001"));
        assert_eq!(done.seats_freed, 1);
        let skipped = ActionRecord::skipped_before_start(
            &c,
            ReclaimActionKind::Delete,
            SkipReason::RecentLogin,
            now(),
        );
        assert_eq!(skipped.step, ActionStep::Skipped);
        assert_eq!(skipped.skip, Some(SkipReason::RecentLogin));
        assert_eq!(skipped.reason.as_deref(), Some("logged in recently"));
        let failed = started.failed("Box answered 403", now());
        assert_eq!(failed.reason.as_deref(), Some("Box answered 403"));
        assert_eq!(failed.skip, None);
    }
}
