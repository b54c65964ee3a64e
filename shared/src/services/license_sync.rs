//! The license-information sync of one integration (design §7, "Sync").
//!
//! Phases: roster (stream user pages, write changed accounts) → vanished accounts (only after
//! a complete roster) → logins (stream events from the coverage high-water mark) → coverage,
//! snapshot, task runs. A lease keeps one sync per integration; near the deadline the sync
//! saves a checkpoint in the lease and returns, and a new invocation continues it.

use crate::clock::Clock;
use crate::domain::{
    Account, EventCoverage, Integration, IntegrationId, SnapshotBuilder, SyncSummary, TaskKind,
    TaskRun, TaskStatus,
};
use crate::provider::{LicenseSource, ProviderError};
use crate::services::sources::{SourceError, SourceFactory};
use crate::store::{Lease, LeaseKind, Store, StoreError, for_each_account_page};
use crate::trigger::ContinueFrom;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Ids saved per roster chunk item: keeps each item far below DynamoDB's 400 KB.
const ROSTER_CHUNK_IDS: usize = 10_000;
/// Accounts read or written per store round trip.
const ACCOUNT_BATCH: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("integration {0} not found")]
    NotFound(IntegrationId),
    #[error("integration {0} is disabled")]
    Disabled(IntegrationId),
    #[error("a sync of integration {integration_id} is already running (until {until})")]
    Busy {
        integration_id: IntegrationId,
        until: DateTime<Utc>,
    },
    #[error("the checkpoint of sync {0} is gone; start a new sync")]
    CheckpointLost(String),
    #[error(
        "the roster looked cut short: {missing} of {known} known accounts were missing \
         (more than {max_percent}% allowed); nothing was marked vanished"
    )]
    RosterIncomplete {
        missing: usize,
        known: usize,
        max_percent: f64,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When the current invocation must stop and hand over.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    pub fn none() -> Self {
        Self { at: None }
    }

    pub fn at(at: Instant) -> Self {
        Self { at: Some(at) }
    }

    fn passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left before the deadline (zero once it passed); `None` without a deadline.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub lease_ttl: Duration,
    /// How long a handed-over sync waits for its continuation (an asynchronous invocation
    /// can be queued for a while) before another sync may take the lease.
    pub handover_grace: Duration,
    /// Distinct users whose logins are held in memory before they are written.
    pub login_flush_threshold: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::minutes(5),
            handover_grace: Duration::minutes(30),
            login_flush_threshold: 250_000,
        }
    }
}

/// What a sync did, for logs, the CLI and the Lambda's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    pub accounts_read: u64,
    pub accounts_written: u64,
    pub accounts_vanished: u64,
    pub login_events_read: u64,
    pub logins_updated: u64,
    /// Items other than accounts: coverage, snapshot, task runs, checkpoints, integration.
    pub other_items_written: u64,
    pub provider_requests: u64,
    pub invocations: u32,
    pub roster_ms: u64,
    pub logins_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum SyncPhase {
    Roster {
        cursor: Option<String>,
    },
    /// The roster was read completely; vanished accounts are decided next.
    Reconcile,
    Logins {
        read_from: DateTime<Utc>,
        read_to: DateTime<Utc>,
        position: Option<String>,
    },
    /// Every login was read; coverage, snapshot and task runs remain.
    Finish {
        read_from: DateTime<Utc>,
        read_to: DateTime<Utc>,
    },
}

/// Saved in the sync lease when an invocation hands over to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncCheckpoint {
    pub sync_id: String,
    pub data_as_of: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub phase: SyncPhase,
    pub roster_chunks: u32,
    pub stats: SyncStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRunStatus {
    Completed,
    /// Cut short by the deadline; continue with `{"integration_id", "sync_id"}`.
    Continued,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRunSummary {
    pub integration_id: IntegrationId,
    pub sync_id: String,
    pub status: SyncRunStatus,
    pub data_as_of: DateTime<Utc>,
    pub stats: SyncStats,
}

impl SyncRunSummary {
    /// What the next invocation needs to continue a handed-over sync.
    pub fn continue_from(&self) -> Option<ContinueFrom> {
        (self.status == SyncRunStatus::Continued).then(|| ContinueFrom {
            sync_id: self.sync_id.clone(),
            handover: self.stats.invocations,
        })
    }

    /// Every item the sync wrote, accounts included.
    pub fn store_writes(&self) -> u64 {
        self.stats.accounts_written + self.stats.other_items_written
    }
}

pub struct LicenseSync<'a> {
    pub store: &'a dyn Store,
    pub sources: &'a dyn SourceFactory,
    pub clock: &'a dyn Clock,
    pub options: SyncOptions,
}

/// The state of one invocation of one sync.
struct Run<'a> {
    store: &'a dyn Store,
    source: Box<dyn LicenseSource>,
    clock: &'a dyn Clock,
    options: &'a SyncOptions,
    integration: Integration,
    lease: Lease,
    lease_renewed: DateTime<Utc>,
    /// The last checkpoint that matches what is written; lease renewals keep it, so a
    /// replayed invocation never starts past unsaved work.
    saved_checkpoint: Option<serde_json::Value>,
    deadline: Deadline,
    /// Provider pages fetched by this invocation.
    pages_fetched: u32,
    checkpoint: SyncCheckpoint,
    requests_before: u64,
}

enum Step {
    Done,
    HandOver,
}

impl LicenseSync<'_> {
    /// Starts a sync, or continues the handed-over one named by `continue_from`.
    #[tracing::instrument(skip(self, deadline), fields(integration_id = %integration_id))]
    pub async fn run(
        &self,
        integration_id: &IntegrationId,
        continue_from: Option<&ContinueFrom>,
        deadline: Deadline,
    ) -> Result<SyncRunSummary, SyncError> {
        let integration = self
            .store
            .get_integration(integration_id)
            .await?
            .ok_or_else(|| SyncError::NotFound(integration_id.clone()))?;
        if !integration.enabled {
            return Err(SyncError::Disabled(integration_id.clone()));
        }
        // Whole seconds: Box's event window bounds are whole seconds, and the coverage must
        // end exactly where the read ended.
        let now = self.clock.now().trunc_subsecs(0);
        let (lease, checkpoint) = match continue_from {
            None => self.start_lease(integration_id, now).await?,
            Some(from) => {
                self.take_handed_over_lease(integration_id, from, now)
                    .await?
            }
        };
        let saved_checkpoint = lease.checkpoint.clone();
        let source = match self.sources.source_for(&integration).await {
            Ok(source) => source,
            Err(e) => {
                let err = SyncError::Source(e);
                self.fail(
                    &integration,
                    &checkpoint,
                    &lease,
                    TaskKind::ApplicationRoster,
                    &err,
                )
                .await;
                return Err(err);
            }
        };
        let mut run = Run {
            store: self.store,
            requests_before: source.requests_sent(),
            source,
            clock: self.clock,
            options: &self.options,
            integration,
            lease,
            lease_renewed: now,
            saved_checkpoint,
            deadline,
            pages_fetched: 0,
            checkpoint,
        };
        run.checkpoint.stats.invocations += 1;
        tracing::info!(sync_id = %run.checkpoint.sync_id, phase = ?run.checkpoint.phase, "sync invocation started");
        match run.drive().await {
            Ok(status) => {
                let summary = run.summary(status);
                tracing::info!(summary = ?summary, "sync invocation finished");
                Ok(summary)
            }
            // Another invocation owns the sync now: it records the outcome, not us.
            Err((_, err @ SyncError::Store(StoreError::LeaseLost { .. }))) => {
                tracing::warn!(error = %err, "sync lease lost; stopping");
                Err(err)
            }
            Err((task, err)) => {
                tracing::warn!(error = %err, task = %task, "sync failed");
                run.record_provider_requests();
                self.fail(&run.integration, &run.checkpoint, &run.lease, task, &err)
                    .await;
                Err(err)
            }
        }
    }

    /// A new sync: a fresh id, the lease if nobody holds it.
    async fn start_lease(
        &self,
        id: &IntegrationId,
        now: DateTime<Utc>,
    ) -> Result<(Lease, SyncCheckpoint), SyncError> {
        let sync_id = uuid::Uuid::new_v4().to_string();
        let lease = self
            .store
            .acquire_lease(
                id,
                LeaseKind::Sync,
                &owner(&sync_id, 1),
                now,
                now + self.options.lease_ttl,
            )
            .await
            .map_err(|e| match e {
                StoreError::LeaseHeld { expires_at, .. } => SyncError::Busy {
                    integration_id: id.clone(),
                    until: expires_at,
                },
                other => SyncError::Store(other),
            })?;
        let checkpoint = SyncCheckpoint {
            sync_id,
            data_as_of: now,
            started_at: now,
            phase: SyncPhase::Roster { cursor: None },
            roster_chunks: 0,
            stats: SyncStats::default(),
        };
        Ok((lease, checkpoint))
    }

    /// A continuation takes the lease its predecessor handed over, in one conditional write:
    /// a duplicate delivery of the same continuation finds it taken.
    async fn take_handed_over_lease(
        &self,
        id: &IntegrationId,
        from: &ContinueFrom,
        now: DateTime<Utc>,
    ) -> Result<(Lease, SyncCheckpoint), SyncError> {
        let sync_id = from.sync_id.as_str();
        let busy = |lease: &Lease| SyncError::Busy {
            integration_id: id.clone(),
            until: lease.expires_at,
        };
        let lease = self
            .store
            .get_lease(id, LeaseKind::Sync)
            .await?
            .ok_or_else(|| SyncError::CheckpointLost(sync_id.to_owned()))?;
        let invocation = from.handover;
        if lease.owner != handover_owner(sync_id, invocation) {
            // Running already (a duplicate delivery), or another sync took over.
            let running = lease.owner.starts_with(&format!("{sync_id}#"));
            return Err(if running || lease.expires_at > now {
                busy(&lease)
            } else {
                SyncError::CheckpointLost(sync_id.to_owned())
            });
        }
        let checkpoint = lease
            .checkpoint
            .clone()
            .and_then(|v| serde_json::from_value::<SyncCheckpoint>(v).ok())
            .filter(|c| c.sync_id == sync_id)
            .ok_or_else(|| SyncError::CheckpointLost(sync_id.to_owned()))?;
        let lease = self
            .store
            .transfer_lease(
                &lease,
                &owner(sync_id, invocation + 1),
                now + self.options.lease_ttl,
                lease.checkpoint.clone(),
            )
            .await
            .map_err(|e| match e {
                StoreError::LeaseLost { .. } => busy(&lease),
                other => SyncError::Store(other),
            })?;
        Ok((lease, checkpoint))
    }

    /// Records a failed sync: the task that failed, the ones it kept from running, and the
    /// integration's last-sync line. The previous snapshot stays the reported figures.
    async fn fail(
        &self,
        integration: &Integration,
        checkpoint: &SyncCheckpoint,
        lease: &Lease,
        failed: TaskKind,
        err: &SyncError,
    ) {
        let now = self.clock.now();
        let message = err.to_string();
        // Each task needs the ones before it in this order.
        const ORDER: [TaskKind; 4] = [
            TaskKind::ApplicationRoster,
            TaskKind::ApplicationAccess,
            TaskKind::LicenseDifferentiation,
            TaskKind::LicenseInformation,
        ];
        let upstream = ORDER.iter().position(|k| *k == failed).unwrap_or(0);
        // The roster read completed before a later task failed: it is recorded as done.
        if upstream > 0 {
            let mut run = task_run(
                integration,
                checkpoint,
                TaskKind::ApplicationRoster,
                now,
                TaskStatus::Succeeded,
                roster_counts(&checkpoint.stats),
                None,
            );
            run.duration_ms = checkpoint.stats.roster_ms;
            if let Err(e) = self.store.put_task_run(&run).await {
                tracing::error!(error = %e, "could not record the roster task run");
            }
        }
        for (i, kind) in ORDER.iter().enumerate().skip(upstream) {
            let error = if i == upstream {
                message.clone()
            } else {
                format!("not run: the {failed} task failed")
            };
            let run = task_run(
                integration,
                checkpoint,
                *kind,
                now,
                TaskStatus::Failed,
                BTreeMap::new(),
                Some(error),
            );
            if let Err(e) = self.store.put_task_run(&run).await {
                tracing::error!(error = %e, "could not record a failed task run");
            }
        }
        let last_sync = SyncSummary {
            sync_id: checkpoint.sync_id.clone(),
            started_at: checkpoint.started_at,
            finished_at: now,
            succeeded: false,
            error: Some(message),
        };
        // Only the last-sync line changes: settings edited meanwhile are kept.
        let change = move |i: &mut Integration| {
            i.last_sync = Some(last_sync.clone());
            i.updated_at = now;
        };
        if let Err(e) = self
            .store
            .modify_integration(&integration.id, &change)
            .await
        {
            tracing::error!(error = %e, "could not record the failed sync on the integration");
        }
        if checkpoint.roster_chunks > 0
            && let Err(e) = self
                .store
                .delete_roster_chunks(&integration.id, &checkpoint.sync_id)
                .await
        {
            tracing::error!(error = %e, "could not delete roster chunks");
        }
        if let Err(e) = self.store.release_lease(lease).await {
            tracing::error!(error = %e, "could not release the sync lease");
        }
    }
}

type RunError = (TaskKind, SyncError);

fn at(task: TaskKind) -> impl Fn(SyncError) -> RunError {
    move |e| (task, e)
}

impl Run<'_> {
    async fn drive(&mut self) -> Result<SyncRunStatus, RunError> {
        loop {
            let (task, step) = match self.checkpoint.phase.clone() {
                SyncPhase::Roster { cursor } => {
                    let started = Instant::now();
                    let step = self.roster(cursor).await;
                    self.checkpoint.stats.roster_ms += started.elapsed().as_millis() as u64;
                    (TaskKind::ApplicationRoster, step)
                }
                SyncPhase::Reconcile => {
                    let step = self.reconcile(None).await;
                    (TaskKind::ApplicationRoster, step)
                }
                SyncPhase::Logins { .. } => {
                    let started = Instant::now();
                    let step = self.logins().await;
                    self.checkpoint.stats.logins_ms += started.elapsed().as_millis() as u64;
                    (TaskKind::ApplicationAccess, step)
                }
                SyncPhase::Finish { read_from, read_to } => {
                    self.finish(read_from, read_to)
                        .await
                        .map_err(at(TaskKind::LicenseInformation))?;
                    return Ok(SyncRunStatus::Completed);
                }
            };
            // Between phases, as between pages: hand over when the deadline has passed.
            if let Step::HandOver = step.map_err(at(task))? {
                return self.hand_over().await.map_err(at(task));
            }
            if self.deadline.passed() {
                return self.hand_over().await.map_err(at(task));
            }
        }
    }

    /// How long the next provider page may take: until the deadline, except that the first
    /// page of an invocation is always awaited, so every invocation makes progress.
    fn next_fetch_bound(&mut self) -> Option<Instant> {
        self.pages_fetched += 1;
        self.deadline.at.filter(|_| self.pages_fetched > 1)
    }

    /// Streams the roster, writing only accounts whose content changed.
    async fn roster(&mut self, mut cursor: Option<String>) -> Result<Step, SyncError> {
        let mut seen = self.load_seen().await?;
        let mut unsaved: Vec<String> = Vec::new();
        loop {
            let bound = self.next_fetch_bound();
            let Some(page) = within(bound, self.source.roster_page(cursor.as_deref())).await?
            else {
                self.save_roster_chunks(&unsaved).await?;
                return Ok(Step::HandOver);
            };
            self.checkpoint.stats.accounts_read += page.accounts.len() as u64;
            for account in &page.accounts {
                if seen.insert(account.external_id.clone()) {
                    unsaved.push(account.external_id.clone());
                }
            }
            self.write_roster_page(page.accounts).await?;
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
            self.checkpoint.phase = SyncPhase::Roster {
                cursor: cursor.clone(),
            };
            if self.deadline.passed() {
                self.save_roster_chunks(&unsaved).await?;
                return Ok(Step::HandOver);
            }
            self.keep_lease().await?;
        }
        self.checkpoint.phase = SyncPhase::Reconcile;
        if self.deadline.passed() {
            self.save_roster_chunks(&unsaved).await?;
            return Ok(Step::HandOver);
        }
        self.reconcile(Some(seen)).await
    }

    /// The ids the roster read saw, as saved by earlier invocations of this sync.
    async fn load_seen(&self) -> Result<HashSet<String>, SyncError> {
        if self.checkpoint.roster_chunks == 0 {
            return Ok(HashSet::new());
        }
        let ids = self
            .store
            .roster_chunks(&self.integration.id, &self.checkpoint.sync_id)
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// After a complete roster: vanished accounts, then the login window.
    async fn reconcile(&mut self, seen: Option<HashSet<String>>) -> Result<Step, SyncError> {
        let seen = match seen {
            Some(seen) => seen,
            None => self.load_seen().await?,
        };
        self.mark_vanished(&seen).await?;
        drop(seen);
        let (read_from, read_to) = self.login_window().await?;
        self.checkpoint.phase = SyncPhase::Logins {
            read_from,
            read_to,
            position: None,
        };
        Ok(Step::Done)
    }

    async fn write_roster_page(&mut self, fresh: Vec<Account>) -> Result<(), SyncError> {
        let id = self.integration.id.clone();
        for batch in fresh.chunks(ACCOUNT_BATCH) {
            let ids: Vec<String> = batch.iter().map(|a| a.external_id.clone()).collect();
            let stored: HashMap<String, Account> = self
                .store
                .get_accounts(&id, &ids)
                .await?
                .into_iter()
                .map(|a| (a.external_id.clone(), a))
                .collect();
            let changed: Vec<Account> = batch
                .iter()
                .filter_map(|account| {
                    let mut account = account.clone();
                    let previous = stored.get(&account.external_id);
                    // Activity comes from the login phase; the roster never forgets it.
                    account.merge_login(previous.and_then(|p| p.last_login_at));
                    match previous {
                        Some(p) if p.content_hash() == account.content_hash() => None,
                        _ => Some(account),
                    }
                })
                .collect();
            if !changed.is_empty() {
                self.store.put_accounts(&id, &changed).await?;
                self.checkpoint.stats.accounts_written += changed.len() as u64;
            }
        }
        Ok(())
    }

    async fn save_roster_chunks(&mut self, unsaved: &[String]) -> Result<(), SyncError> {
        for ids in unsaved.chunks(ROSTER_CHUNK_IDS) {
            self.store
                .put_roster_chunk(
                    &self.integration.id,
                    &self.checkpoint.sync_id,
                    self.checkpoint.roster_chunks,
                    ids,
                )
                .await?;
            self.checkpoint.roster_chunks += 1;
            self.checkpoint.stats.other_items_written += 1;
        }
        Ok(())
    }

    /// Marks accounts missing from a complete roster, unless so many are missing that the
    /// roster itself is more likely wrong than the tenant.
    async fn mark_vanished(&mut self, seen: &HashSet<String>) -> Result<(), SyncError> {
        let id = self.integration.id.clone();
        // Ids only: a roster that came back nearly empty must not fill memory to be refused.
        let mut missing: Vec<String> = Vec::new();
        let mut known = 0usize;
        for_each_account_page(self.store, &id, |page| {
            for account in page.into_iter().filter(|a| a.vanished_at.is_none()) {
                known += 1;
                if !seen.contains(&account.external_id) {
                    missing.push(account.external_id);
                }
            }
            Ok::<(), SyncError>(())
        })
        .await?;
        let max_ratio = self.integration.sync.sanitized().max_vanish_ratio;
        if known > 0 && missing.len() as f64 / known as f64 > max_ratio {
            return Err(SyncError::RosterIncomplete {
                missing: missing.len(),
                known,
                max_percent: max_ratio * 100.0,
            });
        }
        for ids in missing.chunks(ACCOUNT_BATCH) {
            let mut batch = self.store.get_accounts(&id, ids).await?;
            for account in &mut batch {
                account.vanished_at = Some(self.checkpoint.data_as_of);
            }
            self.store.put_accounts(&id, &batch).await?;
            self.checkpoint.stats.accounts_vanished += batch.len() as u64;
            self.checkpoint.stats.accounts_written += batch.len() as u64;
            self.keep_lease().await?;
        }
        Ok(())
    }

    /// From the coverage high-water mark (minus an overlap for late events) to the sync
    /// time; the first sync, or one after a long gap, reads back the backfill window.
    async fn login_window(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), SyncError> {
        let to = self.checkpoint.data_as_of;
        let settings = self.integration.sync.sanitized();
        let backfill_from = to - Duration::days(i64::from(settings.event_backfill_days));
        let overlap = Duration::hours(i64::from(settings.event_overlap_hours));
        let from = match self.store.get_event_coverage(&self.integration.id).await? {
            Some(c) if c.to >= backfill_from => (c.to - overlap).max(backfill_from),
            _ => backfill_from,
        };
        Ok((from.min(to), to))
    }

    /// Streams login events page by page, keeping each user's latest login.
    async fn logins(&mut self) -> Result<Step, SyncError> {
        let SyncPhase::Logins {
            read_from,
            read_to,
            mut position,
        } = self.checkpoint.phase.clone()
        else {
            return Ok(Step::Done);
        };
        let high_water = self
            .store
            .get_event_coverage(&self.integration.id)
            .await?
            .map(|c| c.to);
        // Events before the old high-water mark were probably read by the previous sync (the
        // overlap). A user's last login is a maximum, so re-reading them changes nothing; their
        // ids are remembered only so an event seen twice in this invocation counts once.
        let mut overlap_ids: HashSet<String> = HashSet::new();
        let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
        loop {
            let bound = self.next_fetch_bound();
            let fetched = within(
                bound,
                self.source
                    .login_page(read_from, read_to, position.as_deref()),
            )
            .await?;
            let Some(page) = fetched else {
                self.apply_logins(&mut latest).await?;
                return Ok(Step::HandOver);
            };
            if page.exhausted {
                break;
            }
            for login in page.logins {
                if high_water.is_some_and(|hw| login.at < hw)
                    && !overlap_ids.insert(login.event_id.clone())
                {
                    continue;
                }
                self.checkpoint.stats.login_events_read += 1;
                latest
                    .entry(login.external_id)
                    .and_modify(|t| *t = (*t).max(login.at))
                    .or_insert(login.at);
            }
            position = Some(page.next_position.ok_or_else(|| ProviderError::Malformed {
                provider: self.integration.provider.as_str(),
                detail: "an event page without a next position".to_owned(),
            })?);
            self.checkpoint.phase = SyncPhase::Logins {
                read_from,
                read_to,
                position: position.clone(),
            };
            if latest.len() >= self.options.login_flush_threshold {
                self.apply_logins(&mut latest).await?;
            }
            if self.deadline.passed() {
                self.apply_logins(&mut latest).await?;
                return Ok(Step::HandOver);
            }
            self.keep_lease().await?;
        }
        self.apply_logins(&mut latest).await?;
        self.checkpoint.phase = SyncPhase::Finish { read_from, read_to };
        Ok(Step::Done)
    }

    /// Writes the logins held in memory into the accounts whose last login they advance.
    async fn apply_logins(
        &mut self,
        latest: &mut HashMap<String, DateTime<Utc>>,
    ) -> Result<(), SyncError> {
        if latest.is_empty() {
            return Ok(());
        }
        let id = self.integration.id.clone();
        let mut ids: Vec<String> = latest.keys().cloned().collect();
        ids.sort_unstable();
        for batch in ids.chunks(ACCOUNT_BATCH) {
            let changed: Vec<Account> = self
                .store
                .get_accounts(&id, batch)
                .await?
                .into_iter()
                .filter_map(|mut account| {
                    let seen = latest.get(&account.external_id).copied();
                    let before = account.last_login_at;
                    account.merge_login(seen);
                    (account.last_login_at != before).then_some(account)
                })
                .collect();
            if !changed.is_empty() {
                self.store.put_accounts(&id, &changed).await?;
                self.checkpoint.stats.accounts_written += changed.len() as u64;
                self.checkpoint.stats.logins_updated += changed.len() as u64;
            }
            self.keep_lease().await?;
        }
        latest.clear();
        Ok(())
    }

    /// Only now is the read complete: extend the coverage, write the snapshot and task runs.
    async fn finish(
        &mut self,
        read_from: DateTime<Utc>,
        read_to: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let id = self.integration.id.clone();
        // Idempotent: a replayed finish extends the coverage by the same read again.
        let current = self.store.get_event_coverage(&id).await?;
        let coverage = EventCoverage::extended(current.as_ref(), read_from, read_to);
        self.store.put_event_coverage(&id, &coverage).await?;
        self.checkpoint.stats.other_items_written += 1;
        let coverage = Some(coverage);
        let declared: Vec<String> = self
            .integration
            .plan
            .map(|p| vec![p.license_type().to_owned()])
            .unwrap_or_default();
        let mut builder = SnapshotBuilder::new(self.checkpoint.data_as_of, &declared);
        for_each_account_page(self.store, &id, |page| {
            page.iter().for_each(|a| builder.add(a));
            Ok::<(), SyncError>(())
        })
        .await?;
        let snapshot = builder.finish(
            id.clone(),
            self.checkpoint.sync_id.clone(),
            coverage,
            self.integration.purchased_seats,
        );
        self.store.put_snapshot(&snapshot).await?;
        self.checkpoint.stats.other_items_written += 1;
        self.record_provider_requests();

        let now = self.clock.now();
        let stats = self.checkpoint.stats.clone();
        let runs = [
            (
                TaskKind::ApplicationRoster,
                stats.roster_ms,
                roster_counts(&stats),
            ),
            (
                TaskKind::LicenseDifferentiation,
                0,
                counts(&[("license_types", snapshot.license_types.len() as u64)]),
            ),
            (
                TaskKind::LicenseInformation,
                0,
                counts(&[
                    ("seats_assigned", snapshot.seats.assigned),
                    ("seats_purchased", snapshot.seats.purchased.unwrap_or(0)),
                ]),
            ),
            (
                TaskKind::ApplicationAccess,
                stats.logins_ms,
                counts(&[
                    ("login_events_read", stats.login_events_read),
                    ("logins_updated", stats.logins_updated),
                ]),
            ),
        ];
        for (kind, ms, counts) in runs {
            let mut run = task_run(
                &self.integration,
                &self.checkpoint,
                kind,
                now,
                TaskStatus::Succeeded,
                counts,
                None,
            );
            if ms > 0 {
                run.duration_ms = ms;
            }
            self.store.put_task_run(&run).await?;
            self.checkpoint.stats.other_items_written += 1;
        }

        // Only the last-sync line changes: settings edited while the sync ran are kept.
        let last_sync = SyncSummary {
            sync_id: self.checkpoint.sync_id.clone(),
            started_at: self.checkpoint.started_at,
            finished_at: now,
            succeeded: true,
            error: None,
        };
        let change = move |i: &mut Integration| {
            i.last_sync = Some(last_sync.clone());
            i.updated_at = now;
        };
        let integration = self.store.modify_integration(&id, &change).await?;
        self.checkpoint.stats.other_items_written += 1;
        self.integration = integration;
        if self.checkpoint.roster_chunks > 0 {
            self.store
                .delete_roster_chunks(&id, &self.checkpoint.sync_id)
                .await?;
        }
        self.store.release_lease(&self.lease).await?;
        Ok(())
    }

    /// Saves the checkpoint in the lease for the invocation that continues.
    async fn hand_over(&mut self) -> Result<SyncRunStatus, SyncError> {
        self.record_provider_requests();
        self.checkpoint.stats.other_items_written += 1;
        let checkpoint = serde_json::to_value(&self.checkpoint)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the checkpoint: {e}")))?;
        let handed_over =
            handover_owner(&self.checkpoint.sync_id, self.checkpoint.stats.invocations);
        let expires_at = self.clock.now() + self.options.handover_grace;
        self.lease = self
            .store
            .transfer_lease(&self.lease, &handed_over, expires_at, Some(checkpoint))
            .await?;
        Ok(SyncRunStatus::Continued)
    }

    /// Extends the lease while work goes on; the saved checkpoint stays as it was.
    async fn keep_lease(&mut self) -> Result<(), SyncError> {
        let now = self.clock.now();
        if now < self.lease_renewed + self.options.lease_ttl / 3 {
            return Ok(());
        }
        self.lease = self
            .store
            .renew_lease(
                &self.lease,
                now,
                now + self.options.lease_ttl,
                self.saved_checkpoint.clone(),
            )
            .await?;
        self.lease_renewed = now;
        Ok(())
    }

    fn record_provider_requests(&mut self) {
        let sent = self.source.requests_sent();
        self.checkpoint.stats.provider_requests += sent - self.requests_before;
        self.requests_before = sent;
    }

    fn summary(&self, status: SyncRunStatus) -> SyncRunSummary {
        SyncRunSummary {
            integration_id: self.integration.id.clone(),
            sync_id: self.checkpoint.sync_id.clone(),
            status,
            data_as_of: self.checkpoint.data_as_of,
            stats: self.checkpoint.stats.clone(),
        }
    }
}

/// A provider call, abandoned (`None`: hand over) if `bound` passes first. A page that was
/// not received changed nothing, so the checkpoint before it stays consistent.
async fn within<T>(
    bound: Option<Instant>,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<Option<T>, SyncError> {
    match bound {
        Some(at) => match tokio::time::timeout_at(tokio::time::Instant::from_std(at), call).await {
            Ok(result) => Ok(Some(result?)),
            Err(_) => Ok(None),
        },
        None => Ok(Some(call.await?)),
    }
}

/// The lease owner while a sync waits for the continuation of its `invocation`-th run.
fn handover_owner(sync_id: &str, invocation: u32) -> String {
    format!("{sync_id}#handover-{invocation}")
}

/// The lease owner of one invocation of one sync.
fn owner(sync_id: &str, invocation: u32) -> String {
    format!("{sync_id}#{invocation}")
}

fn roster_counts(stats: &SyncStats) -> BTreeMap<String, u64> {
    counts(&[
        ("accounts_read", stats.accounts_read),
        (
            "accounts_written",
            stats.accounts_written.saturating_sub(stats.logins_updated),
        ),
        ("accounts_vanished", stats.accounts_vanished),
    ])
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn task_run(
    integration: &Integration,
    checkpoint: &SyncCheckpoint,
    kind: TaskKind,
    now: DateTime<Utc>,
    status: TaskStatus,
    counts: BTreeMap<String, u64>,
    error: Option<String>,
) -> TaskRun {
    TaskRun {
        integration_id: integration.id.clone(),
        kind,
        sync_id: checkpoint.sync_id.clone(),
        started_at: checkpoint.started_at,
        finished_at: now,
        status,
        duration_ms: (now - checkpoint.started_at).num_milliseconds().max(0) as u64,
        counts,
        error,
    }
}
