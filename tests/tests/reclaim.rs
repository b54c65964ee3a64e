//! Reclamation end to end: the reclaim service's steps, in the order the workflow runs
//! them, against the Box simulator over real HTTP; the embedded store, and DynamoDB on the
//! local emulator for one whole job. The safety rules of design §8 are checked against the
//! simulator's ground truth, never against what the service says it did.

mod support;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use seatkeeper_shared::clock::{Clock, FixedClock, SystemClock};
use seatkeeper_shared::domain::{
    Account, AccountKind, ActionRecord, ActionStep, Actor, AuditEntry, Candidate, EventCoverage,
    Exclusion, Integration, IntegrationId, JobState, Provider, ReclaimActionKind,
    ReclaimGuardRails, ReclaimJob, ReclaimJobId, ReclaimPolicy, SkipReason, Snapshot, TaskKind,
    TaskRun, TaskStatus, TaskToken,
};
use seatkeeper_shared::services::reclaim::{
    BatchOutcome, JobSummary, Notice, Notifier, NotifyError, PlanSummary, ReclaimOptions, Reclaimer,
};
use seatkeeper_shared::services::{Deadline, ProviderSources};
use seatkeeper_shared::store::{
    JobChange, Lease, LeaseKind, OneTimeItem, OneTimeKind, OneTimeTake, Page, Store, StoreError,
};
use seatkeeper_sim::{AppScopes, BoxSimConfig, Faults, SimHandle, UserWrite, WriteKind};
use seatkeeper_tests::{Moto, dynamo_store, secrets_manager};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use support::{Local, start_sim, tenant};

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

fn alice() -> Actor {
    Actor::Iam {
        arn: "arn:aws:iam::123456789012:user/alice".into(),
    }
}

fn bob() -> Actor {
    Actor::Iam {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    }
}

/// The notices the admins would have received.
#[derive(Default)]
struct Notices(Mutex<Vec<Notice>>);

#[async_trait]
impl Notifier for Notices {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

/// A simulated tenant, connected and synced, with a reclaimer over it.
struct Rig {
    sim: SimHandle,
    local: Local,
    id: IntegrationId,
    clock: Arc<FixedClock>,
    notices: Arc<Notices>,
    reclaimer: Reclaimer,
}

impl Rig {
    /// Connected, not yet synced (so a test can shape the tenant first).
    async fn connected(config: BoxSimConfig) -> Rig {
        let sim = start_sim(config).await;
        let local = Local::new(&sim);
        Self::over(sim, local, |store| store).await
    }

    async fn over(
        sim: SimHandle,
        local: Local,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> Rig {
        let id = local.connect_sim(&sim).await;
        let store = wrap(local.store.clone());
        let clock = Arc::new(FixedClock::new(local.clock_now() + Duration::minutes(5)));
        let notices = Arc::new(Notices::default());
        let sources = ProviderSources::new(
            store.clone(),
            local.secrets.clone(),
            Arc::new(SystemClock),
            local.http.clone(),
            local.box_config.clone(),
        );
        let reclaimer = Reclaimer {
            store,
            sources: Arc::new(sources),
            clock: clock.clone(),
            notifier: notices.clone(),
            options: ReclaimOptions {
                sync_wait: std::time::Duration::from_millis(300),
                sync_poll: std::time::Duration::from_millis(20),
                ..ReclaimOptions::default()
            },
        };
        Rig {
            sim,
            local,
            id,
            clock,
            notices,
            reclaimer,
        }
    }

    async fn synced(config: BoxSimConfig) -> Rig {
        let rig = Self::connected(config).await;
        rig.sync().await;
        rig
    }

    async fn sync(&self) {
        self.local.sync(&self.id).await.expect("sync");
    }

    fn store(&self) -> &dyn Store {
        self.reclaimer.store.as_ref()
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn integration(&self) -> Integration {
        self.store()
            .get_integration(&self.id)
            .await
            .unwrap()
            .expect("integration")
    }

    async fn change_integration(&self, change: impl Fn(&mut Integration) + Send + Sync) {
        self.store()
            .modify_integration(&self.id, &change)
            .await
            .expect("integration changed");
    }

    async fn set_rails(&self, rails: ReclaimGuardRails) {
        self.change_integration(move |i| i.reclaim = rails.clone())
            .await;
    }

    async fn job(&self, id: &ReclaimJobId) -> ReclaimJob {
        self.store()
            .get_reclaim_job(id)
            .await
            .unwrap()
            .expect("job")
    }

    async fn start(&self, policy: ReclaimPolicy) -> ReclaimJob {
        self.reclaimer
            .start_job(&self.id, policy, &alice())
            .await
            .expect("job starts")
    }

    /// Started, planned, and approved by someone other than the requester if it needs it.
    async fn approved(&self, policy: ReclaimPolicy) -> (ReclaimJob, PlanSummary) {
        let job = self.start(policy).await;
        let plan = self.reclaimer.plan(&job.id).await.expect("plan");
        assert!(!plan.batches.is_empty(), "something to do: {plan:?}");
        if plan.needs_approval {
            let wait = self
                .reclaimer
                .await_approval(&job.id, TaskToken::new("token-1"))
                .await
                .expect("approval wait");
            assert!(!wait.auto_approved);
            self.reclaimer
                .approve(&job.id, &bob())
                .await
                .expect("approved");
        }
        (self.job(&job.id).await, plan)
    }

    /// Every batch until done, retrying what Step Functions would retry.
    async fn run_batches(&self, job_id: &ReclaimJobId, batches: &[u32]) -> Vec<BatchOutcome> {
        let mut outcomes = Vec::new();
        for &batch in batches {
            outcomes.push(self.run_batch(job_id, batch).await);
        }
        outcomes
    }

    async fn run_batch(&self, job_id: &ReclaimJobId, batch: u32) -> BatchOutcome {
        let mut retries = 0;
        loop {
            match self
                .reclaimer
                .reclaim_batch(job_id, batch, Deadline::none())
                .await
            {
                Ok(outcome) if outcome.done => return outcome,
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    retries += 1;
                    assert!(retries < 60, "still failing after {retries} retries: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("batch {batch} failed: {e} ({})", e.error_name()),
            }
        }
    }

    /// The whole workflow of one job.
    async fn run(&self, policy: ReclaimPolicy) -> (ReclaimJob, JobSummary) {
        let (job, plan) = self.approved(policy).await;
        self.run_batches(&job.id, &plan.batches).await;
        let summary = self.reclaimer.finalize(&job.id).await.expect("finalize");
        (job, summary)
    }

    async fn records(&self, job_id: &ReclaimJobId) -> Vec<ActionRecord> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store()
                .list_actions(job_id, cursor.as_deref(), 500)
                .await
                .unwrap();
            all.extend(page.items);
            cursor = page.next;
            if cursor.is_none() {
                return all;
            }
        }
    }

    async fn at_step(&self, job_id: &ReclaimJobId, step: ActionStep) -> BTreeSet<String> {
        self.records(job_id)
            .await
            .into_iter()
            .filter(|r| r.step == step)
            .map(|r| r.external_id)
            .collect()
    }

    async fn skips(&self, job_id: &ReclaimJobId) -> BTreeMap<String, SkipReason> {
        self.records(job_id)
            .await
            .into_iter()
            .filter_map(|r| r.skip.map(|s| (r.external_id, s)))
            .collect()
    }

    async fn exclusions(&self, job_id: &ReclaimJobId) -> BTreeMap<String, SkipReason> {
        let mut all = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store()
                .list_exclusions(job_id, cursor.as_deref(), 500)
                .await
                .unwrap();
            all.extend(page.items.into_iter().map(|e| (e.external_id, e.reason)));
            cursor = page.next;
            if cursor.is_none() {
                return all;
            }
        }
    }

    async fn candidates(&self, job_id: &ReclaimJobId, batches: &[u32]) -> Vec<Candidate> {
        let mut all = Vec::new();
        for &batch in batches {
            all.extend(self.store().list_candidates(job_id, batch).await.unwrap());
        }
        all
    }

    /// Writes to real users (the capability probes address user 0, who does not exist).
    fn user_writes(&self) -> Vec<UserWrite> {
        self.sim
            .user_writes()
            .into_iter()
            .filter(|w| w.user_id != "0")
            .collect()
    }

    fn written_users(&self) -> BTreeSet<String> {
        self.user_writes().into_iter().map(|w| w.user_id).collect()
    }

    fn status_of(&self, user_id: &str) -> Option<String> {
        self.sim
            .users()
            .into_iter()
            .find(|u| u["id"] == user_id)
            .map(|u| u["status"].as_str().unwrap_or_default().to_owned())
    }

    /// The accounts a job with `policy` may act on, from the simulator's ground truth
    /// (design §8), independently of the service's own rules.
    async fn eligible(&self, policy: &ReclaimPolicy) -> BTreeSet<String> {
        let integration = self.integration().await;
        let rails = &integration.reclaim;
        let now = self.now();
        let inactive_since = now - Duration::days(i64::from(policy.inactive_days));
        let grace = i64::from(policy.grace_days.max(rails.grace_period_days));
        let mut last_login: HashMap<String, DateTime<Utc>> = HashMap::new();
        for (user, at) in self.sim.login_events() {
            let seen = last_login.entry(user).or_insert(at);
            *seen = (*seen).max(at);
        }
        let excluded_ids: BTreeSet<&String> = rails
            .excluded_user_ids
            .iter()
            .chain(&policy.excluded_user_ids)
            .collect();
        let excluded_logins: BTreeSet<String> = rails
            .excluded_logins
            .iter()
            .chain(&policy.excluded_logins)
            .map(|l| l.to_lowercase())
            .collect();
        let excluded_groups: BTreeSet<&String> = rails
            .excluded_group_ids
            .iter()
            .chain(&policy.excluded_group_ids)
            .collect();
        self.sim
            .users()
            .into_iter()
            .filter(|u| {
                let id = u["id"].as_str().unwrap().to_owned();
                let login = u["login"].as_str().unwrap_or_default().to_lowercase();
                let created = DateTime::parse_from_rfc3339(u["created_at"].as_str().unwrap())
                    .unwrap()
                    .to_utc();
                let human =
                    u["is_platform_access_only"] == false && !login.starts_with("automationuser_");
                human
                    && u["role"] == "user"
                    && (policy.action == ReclaimActionKind::Delete || u["status"] != "inactive")
                    && integration.service_user_id.as_deref() != Some(id.as_str())
                    && policy.transfer_to.as_deref() != Some(id.as_str())
                    && created + Duration::days(grace) <= now
                    && last_login.get(&id).is_none_or(|at| *at < inactive_since)
                    && !self
                        .sim
                        .user_events(&id)
                        .iter()
                        .any(|(_, at)| *at >= inactive_since)
                    && !excluded_ids.contains(&id)
                    && !excluded_logins.contains(&login)
                    && !self
                        .sim
                        .user_group_ids(&id)
                        .iter()
                        .any(|g| excluded_groups.contains(g))
            })
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A regular user who logged in recently: fit to receive deleted users' content.
    fn active_regular_user(&self) -> String {
        let since = self.now() - Duration::days(30);
        let recent: BTreeSet<String> = self
            .sim
            .login_events()
            .into_iter()
            .filter(|(_, at)| *at >= since)
            .map(|(user, _)| user)
            .collect();
        self.sim
            .users()
            .into_iter()
            .find(|u| {
                u["role"] == "user"
                    && u["status"] == "active"
                    && u["is_platform_access_only"] == false
                    && recent.contains(u["id"].as_str().unwrap())
            })
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .expect("an active regular user")
    }

    async fn reclaim_lease(&self) -> Option<Lease> {
        self.store()
            .get_lease(&self.id, LeaseKind::Reclaim)
            .await
            .unwrap()
    }

    async fn audit_actions(&self) -> Vec<AuditEntry> {
        self.store()
            .list_audit(&self.id, None, 10_000)
            .await
            .unwrap()
            .items
    }
}

fn deactivate() -> ReclaimPolicy {
    ReclaimPolicy::default()
}

fn delete_to(target: &str) -> ReclaimPolicy {
    ReclaimPolicy {
        action: ReclaimActionKind::Delete,
        transfer_to: Some(target.to_owned()),
        ..ReclaimPolicy::default()
    }
}

fn writes_of(writes: &[UserWrite], user: &str, kind: WriteKind) -> Vec<UserWrite> {
    writes
        .iter()
        .filter(|w| w.user_id == user && w.kind == kind)
        .cloned()
        .collect()
}

// Safety ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivate_job_acts_on_exactly_the_eligible_set_and_never_on_a_protected_account() {
    let rig = Rig::connected(BoxSimConfig::new(tenant(41, 600))).await;
    // Five dormant regular users, each protected by another rule.
    let dormant: Vec<String> = rig.eligible(&deactivate()).await.into_iter().collect();
    let [by_id, by_login, by_group, coadmin, own] = [0, 1, 2, 3, 4].map(|i| dormant[i].clone());
    let login_of = |id: &str| {
        rig.sim
            .users()
            .into_iter()
            .find(|u| u["id"] == id)
            .map(|u| u["login"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let group = rig.sim.groups()[0]["id"].as_str().unwrap().to_owned();
    rig.sim.add_group_membership(&by_group, &group);
    rig.sim.set_user_role(&coadmin, "coadmin");
    rig.set_rails(ReclaimGuardRails {
        excluded_user_ids: vec![by_id.clone()],
        excluded_logins: vec![login_of(&by_login).to_uppercase()],
        excluded_group_ids: vec![group.clone()],
        ..ReclaimGuardRails::default()
    })
    .await;
    rig.sync().await;
    // An OAuth integration acts as the admin who authorised it: a person with a seat.
    let own_user = own.clone();
    rig.change_integration(move |i| i.service_user_id = Some(own_user.clone()))
        .await;

    let want = rig.eligible(&deactivate()).await;
    let protected = [&by_id, &by_login, &by_group, &coadmin, &own];
    assert!(protected.iter().all(|p| !want.contains(*p)));
    assert!(want.len() > 50, "more than one batch: {}", want.len());
    let (job, summary) = rig.run(deactivate()).await;

    let done = rig.at_step(&job.id, ActionStep::Done).await;
    assert_eq!(done, want, "exactly the eligible set");
    let excluded = rig.exclusions(&job.id).await;
    assert_eq!(excluded[&by_id], SkipReason::ExcludedId);
    assert_eq!(excluded[&by_login], SkipReason::ExcludedLogin);
    assert_eq!(excluded[&by_group], SkipReason::ExcludedGroup);
    assert_eq!(excluded[&coadmin], SkipReason::CoAdmin);
    assert_eq!(excluded[&own], SkipReason::OwnUser);

    // Box's side: one status write per acted account, nothing else, nobody else.
    let writes = rig.user_writes();
    assert!(writes.iter().all(|w| w.kind == WriteKind::UpdateUser));
    assert_eq!(writes.len(), done.len());
    assert_eq!(rig.written_users(), done);
    for id in &done {
        assert_eq!(rig.status_of(id).as_deref(), Some("inactive"));
    }
    for id in protected {
        assert_eq!(rig.status_of(id).as_deref(), Some("active"), "{id}");
    }
    assert_eq!(rig.sim.force_deletes(), 0);

    assert_eq!(summary.state, JobState::Done);
    assert_eq!(summary.counts.acted as usize, done.len());
    assert_eq!(
        summary.counts.seats_freed, 0,
        "a deactivated Box user holds a seat"
    );
    assert_eq!(summary.counts.failed, 0);
    let runs = rig
        .store()
        .list_task_runs(&rig.id, Some(TaskKind::Reclamation), 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, TaskStatus::Succeeded);
    assert_eq!(runs[0].counts["acted"] as usize, done.len());
    let audit = rig.audit_actions().await;
    let count = |action: &str| audit.iter().filter(|e| e.action == action).count();
    assert_eq!(count("user_deactivated"), done.len());
    assert!(
        audit
            .iter()
            .any(|e| e.action == "reclaim_approved" && e.actor == bob())
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "reclaim_requested" && e.actor == alice())
    );
    assert_eq!(count("reclaim_finished"), 1);
    assert!(rig.reclaim_lease().await.is_none(), "lease released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_or_a_change_between_plan_and_act_leaves_the_account_alone() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(42, 300))).await;
    let (job, plan) = rig.approved(deactivate()).await;
    let candidates = rig.candidates(&job.id, &plan.batches).await;
    let [
        logged_in,
        drive_user,
        promoted,
        deactivated,
        removed,
        excluded,
    ] = [0, 1, 2, 3, 4, 5].map(|i| candidates[i].external_id.clone());
    let now = rig.now();
    rig.sim.add_login(&logged_in, now - Duration::hours(1));
    rig.sim
        .add_user_event(&drive_user, "ITEM_UPLOAD", now - Duration::hours(2));
    rig.sim.set_user_role(&promoted, "coadmin");
    rig.sim.set_user_status(&deactivated, "inactive");
    rig.sim.remove_user(&removed);
    // An exclusion added to the integration after the plan applies at once.
    rig.set_rails(ReclaimGuardRails {
        excluded_user_ids: vec![excluded.clone()],
        ..ReclaimGuardRails::default()
    })
    .await;

    rig.run_batches(&job.id, &plan.batches).await;
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();
    let skips = rig.skips(&job.id).await;
    assert_eq!(skips[&logged_in], SkipReason::RecentLogin);
    assert_eq!(skips[&drive_user], SkipReason::RecentActivity);
    assert_eq!(skips[&promoted], SkipReason::CoAdmin);
    assert_eq!(skips[&deactivated], SkipReason::StatusChanged);
    assert_eq!(skips[&removed], SkipReason::Gone);
    assert_eq!(skips[&excluded], SkipReason::ExcludedId);
    let written = rig.written_users();
    for id in [
        &logged_in,
        &drive_user,
        &promoted,
        &deactivated,
        &removed,
        &excluded,
    ] {
        assert!(!written.contains(id), "{id} was written to");
    }
    assert!(summary.counts.skipped >= 6);
    assert_eq!(
        summary.counts.acted + summary.counts.skipped,
        summary.counts.candidates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_batch_input_acts_on_nobody_outside_the_approved_set() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(43, 300))).await;
    let job = rig.start(deactivate()).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    assert!(plan.needs_approval);
    // Not approved yet: nothing runs, whatever the input.
    let early = rig
        .reclaimer
        .reclaim_batch(&job.id, 1, Deadline::none())
        .await
        .unwrap_err();
    assert_eq!(early.error_name(), "Seatkeeper.NotEligible");
    rig.reclaimer.approve(&job.id, &bob()).await.unwrap();
    let last = *plan.batches.last().unwrap();
    for batch in [0, last + 1, 999_999, u32::MAX] {
        let err = rig
            .reclaimer
            .reclaim_batch(&job.id, batch, Deadline::none())
            .await
            .unwrap_err();
        assert_eq!(err.error_name(), "Seatkeeper.Invalid", "batch {batch}");
    }
    let unknown = rig
        .reclaimer
        .reclaim_batch(&ReclaimJobId::generate(), 1, Deadline::none())
        .await
        .unwrap_err();
    assert_eq!(unknown.error_name(), "Seatkeeper.NotFound");
    // Nor can anything join the approved set once planned.
    let outsider = Candidate {
        job_id: job.id.clone(),
        batch: 1,
        external_id: rig.sim.admin_user_id(),
        login: "admin@example.com".into(),
        last_login_at: None,
        created_at: None,
    };
    assert!(
        rig.store()
            .put_candidates(&job.id, &[outsider])
            .await
            .is_err()
    );
    assert!(rig.user_writes().is_empty());

    rig.run_batches(&job.id, &plan.batches).await;
    let candidates: BTreeSet<String> = rig
        .candidates(&job.id, &plan.batches)
        .await
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    let written = rig.written_users();
    assert!(!written.is_empty());
    assert!(written.is_subset(&candidates), "only the approved set");
    assert!(!written.contains(&rig.sim.admin_user_id()));
    assert!(!written.contains(&rig.sim.service_account_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_transfer_resumes_with_the_delete_and_repeats_no_step() {
    let sim = start_sim(BoxSimConfig::new(tenant(44, 300))).await;
    let local = Local::new(&sim);
    let crashing = Arc::new(Mutex::new(None::<Arc<CrashingStore>>));
    let keep = crashing.clone();
    let rig = Rig::over(sim, local, move |inner| {
        let store = Arc::new(CrashingStore {
            inner,
            crash_after: ActionStep::Transferred,
            armed: AtomicBool::new(false),
            crashed_on: Mutex::new(None),
        });
        *keep.lock().unwrap() = Some(store.clone());
        store
    })
    .await;
    rig.sync().await;
    let crashing = crashing.lock().unwrap().clone().unwrap();
    let target = rig.active_regular_user();
    let items_before = rig.sim.owned_items_total();
    let (job, plan) = rig.approved(delete_to(&target)).await;

    crashing.armed.store(true, Ordering::SeqCst);
    let crash = rig
        .reclaimer
        .reclaim_batch(&job.id, plan.batches[0], Deadline::none())
        .await
        .unwrap_err();
    assert!(crash.to_string().contains("injected crash"), "{crash}");
    let victim = crashing.crashed_on.lock().unwrap().clone().unwrap();
    let record = rig
        .store()
        .get_action(&job.id, &victim)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.step, ActionStep::Transferred);
    assert_eq!(rig.sim.owned_items(&victim), Some(0), "content moved");

    rig.run_batches(&job.id, &plan.batches).await;
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();
    let done = rig.at_step(&job.id, ActionStep::Done).await;
    assert!(done.contains(&victim));
    let writes = rig.user_writes();
    for id in &done {
        assert_eq!(
            writes_of(&writes, id, WriteKind::TransferContent).len(),
            1,
            "{id}"
        );
        assert_eq!(
            writes_of(&writes, id, WriteKind::DeleteUser).len(),
            1,
            "{id}"
        );
        assert_eq!(rig.status_of(id), None, "{id} deleted");
    }
    assert_eq!(summary.counts.seats_freed as usize, done.len());
    assert_eq!(rig.sim.force_deletes(), 0);
    assert_eq!(rig.sim.items_destroyed(), 0);
    assert_eq!(rig.sim.owned_items_total(), items_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_returns_early_ends_in_a_retried_successful_delete() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(45, 200))).await;
    let target = rig.active_regular_user();
    let items_before = rig.sim.owned_items_total();
    let target_before = rig.sim.owned_items(&target).unwrap();
    let (job, plan) = rig.approved(delete_to(&target)).await;
    rig.sim.set_faults(Faults {
        transfer_early_return_ratio: 1.0,
        transfer_completion_ms: 300,
        ..Faults::default()
    });

    let first = rig
        .reclaimer
        .reclaim_batch(&job.id, plan.batches[0], Deadline::none())
        .await
        .unwrap_err();
    assert_eq!(first.error_name(), "Seatkeeper.TransferPending");
    assert!(first.is_retryable());
    rig.run_batches(&job.id, &plan.batches).await;
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();
    assert_eq!(summary.state, JobState::Done);
    assert_eq!(summary.counts.failed, 0);

    let done = rig.at_step(&job.id, ActionStep::Done).await;
    let writes = rig.user_writes();
    let mut retried = 0;
    for id in &done {
        assert_eq!(writes_of(&writes, id, WriteKind::TransferContent).len(), 1);
        let deletes = writes_of(&writes, id, WriteKind::DeleteUser);
        assert_eq!(deletes.last().unwrap().status, Some(204), "{id}");
        retried += usize::from(deletes.len() > 1);
        assert!(deletes.iter().all(|d| !d.force));
    }
    assert!(retried > 0, "some deletes met an unfinished transfer");
    assert_eq!(rig.sim.force_deletes(), 0);
    assert_eq!(rig.sim.items_destroyed(), 0);
    assert_eq!(rig.sim.owned_items_total(), items_before);
    assert!(rig.sim.owned_items(&target).unwrap() >= target_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_job_under_faults_deletes_the_eligible_set_once_and_loses_no_content() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(46, 400))).await;
    let target = rig.active_regular_user();
    let policy = delete_to(&target);
    let want = rig.eligible(&policy).await;
    let items_before = rig.sim.owned_items_total();
    let (job, plan) = rig.approved(policy).await;
    rig.sim.set_faults(Faults {
        rate_limit_ratio: 0.05,
        retry_after_secs: 0,
        server_error_ratio: 0.05,
        drop_connection_ratio: 0.02,
        write_lost_response_ratio: 0.2,
        transfer_early_return_ratio: 0.3,
        transfer_completion_ms: 100,
        seed: 5,
        ..Faults::default()
    });
    rig.run_batches(&job.id, &plan.batches).await;
    rig.sim.set_faults(Faults::default());
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();

    let done = rig.at_step(&job.id, ActionStep::Done).await;
    assert_eq!(done, want);
    assert_eq!(summary.counts.acted as usize, want.len());
    let remaining: BTreeSet<String> = rig
        .sim
        .users()
        .into_iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        done.is_disjoint(&remaining),
        "every acted account is deleted"
    );
    let writes = rig.user_writes();
    assert!(writes.iter().all(|w| done.contains(&w.user_id)));
    let stats = rig.sim.stats();
    assert!(stats.write_responses_lost > 0 && stats.transfers_returned_early > 0);
    assert_eq!(rig.sim.force_deletes(), 0);
    assert_eq!(rig.sim.items_destroyed(), 0);
    assert_eq!(rig.sim.owned_items_total(), items_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_for_one_integration_cannot_run_at_once() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(47, 200))).await;
    let (requester_a, requester_b) = (alice(), bob());
    let (a, b) = tokio::join!(
        rig.reclaimer.start_job(&rig.id, deactivate(), &requester_a),
        rig.reclaimer.start_job(&rig.id, deactivate(), &requester_b),
    );
    let (first, refused) = match (a, b) {
        (Ok(job), Err(e)) | (Err(e), Ok(job)) => (job, e),
        other => panic!("exactly one job starts: {other:?}"),
    };
    assert_eq!(refused.error_name(), "Seatkeeper.Busy");
    rig.reclaimer.plan(&first.id).await.unwrap();
    let still = rig
        .reclaimer
        .start_job(&rig.id, deactivate(), &alice())
        .await
        .unwrap_err();
    assert_eq!(still.error_name(), "Seatkeeper.Busy");
    // Once the first job is over, the integration is free again.
    rig.reclaimer.reject(&first.id, &bob()).await.unwrap();
    assert!(rig.reclaim_lease().await.is_none());
    rig.start(deactivate()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stops_before_the_deadline_and_never_starts_a_transfer_without_time() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(48, 200))).await;
    let target = rig.active_regular_user();
    let (job, plan) = rig.approved(delete_to(&target)).await;
    let batch = plan.batches[0];
    let passed = rig
        .reclaimer
        .reclaim_batch(&job.id, batch, Deadline::at(std::time::Instant::now()))
        .await
        .unwrap();
    assert!(!passed.done);
    assert_eq!(passed.acted + passed.skipped + passed.failed, 0);
    // A minute is enough to re-verify but not to start a transfer (12 minutes).
    let short = Deadline::at(std::time::Instant::now() + std::time::Duration::from_secs(60));
    let err = rig
        .reclaimer
        .reclaim_batch(&job.id, batch, short)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.Invalid", "{err}");
    assert!(rig.user_writes().is_empty());
    let long = Deadline::at(std::time::Instant::now() + std::time::Duration::from_secs(14 * 60));
    let outcome = rig
        .reclaimer
        .reclaim_batch(&job.id, batch, long)
        .await
        .unwrap();
    assert!(outcome.done && outcome.acted > 0, "{outcome:?}");
}

// Approval -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_the_threshold_waits_for_someone_other_than_the_requester() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(49, 200))).await;
    rig.set_rails(ReclaimGuardRails {
        auto_approve: true,
        approval_threshold: Some(5),
        ..ReclaimGuardRails::default()
    })
    .await;
    let job = rig.start(deactivate()).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    assert!(plan.candidates > 5 && plan.needs_approval);
    let wait = rig
        .reclaimer
        .await_approval(&job.id, TaskToken::new("secret-task-token"))
        .await
        .unwrap();
    assert!(!wait.auto_approved);
    let notices = rig.notices.0.lock().unwrap().clone();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].subject.contains(job.id.as_str()));
    assert!(!format!("{notices:?}").contains("secret-task-token"));
    let waiting = rig
        .reclaimer
        .reclaim_batch(&job.id, 1, Deadline::none())
        .await
        .unwrap_err();
    assert_eq!(waiting.error_name(), "Seatkeeper.NotEligible");

    let own = rig.reclaimer.approve(&job.id, &alice()).await.unwrap_err();
    assert_eq!(own.error_name(), "Seatkeeper.Invalid");
    assert!(own.to_string().contains("own job"), "{own}");
    assert_eq!(rig.job(&job.id).await.state, JobState::AwaitingApproval);
    let approved = rig.reclaimer.approve(&job.id, &bob()).await.unwrap();
    assert_eq!(approved.state, JobState::Approved);
    assert_eq!(
        approved.task_token.as_ref().map(TaskToken::expose),
        Some("secret-task-token")
    );
    rig.run_batches(&job.id, &plan.batches).await;
    assert!(!rig.user_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_within_the_threshold_is_approved_by_the_integration() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(50, 200))).await;
    rig.set_rails(ReclaimGuardRails {
        auto_approve: true,
        approval_threshold: Some(10_000),
        ..ReclaimGuardRails::default()
    })
    .await;
    let job = rig.start(deactivate()).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    assert!(!plan.needs_approval);
    let approved = rig.job(&job.id).await;
    assert_eq!(approved.state, JobState::Approved);
    assert_eq!(approved.approved_by, Some(Actor::System));
    let wait = rig
        .reclaimer
        .await_approval(&job.id, TaskToken::new("t"))
        .await
        .unwrap();
    assert!(wait.auto_approved);
    assert!(rig.notices.0.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_or_expired_job_acts_on_nobody() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(51, 200))).await;
    let job = rig.start(deactivate()).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    rig.reclaimer
        .await_approval(&job.id, TaskToken::new("t"))
        .await
        .unwrap();
    let rejected = rig.reclaimer.reject(&job.id, &bob()).await.unwrap();
    assert_eq!(rejected.state, JobState::Rejected);
    for &batch in &plan.batches {
        let outcome = rig
            .reclaimer
            .reclaim_batch(&job.id, batch, Deadline::none())
            .await
            .unwrap();
        assert!(outcome.done && outcome.acted == 0);
    }
    assert!(rig.reclaim_lease().await.is_none());
    assert!(
        rig.audit_actions()
            .await
            .iter()
            .any(|e| e.action == "reclaim_rejected" && e.actor == bob())
    );

    // Nobody answered in 7 days: the workflow's timeout goes to finalize.
    let job = rig.start(deactivate()).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    rig.reclaimer
        .await_approval(&job.id, TaskToken::new("t2"))
        .await
        .unwrap();
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();
    assert_eq!(summary.state, JobState::Expired);
    let late = rig.reclaimer.approve(&job.id, &bob()).await.unwrap_err();
    assert_eq!(late.error_name(), "Seatkeeper.Invalid", "{late}");
    assert!(
        rig.reclaim_lease().await.is_none(),
        "a late approval takes nothing"
    );
    for &batch in &plan.batches {
        let outcome = rig
            .reclaimer
            .reclaim_batch(&job.id, batch, Deadline::none())
            .await
            .unwrap();
        assert_eq!(outcome.acted, 0);
    }
    assert!(rig.user_writes().is_empty());
    let runs = rig
        .store()
        .list_task_runs(&rig.id, Some(TaskKind::Reclamation), 10)
        .await
        .unwrap();
    assert!(runs.iter().any(|r| r.status == TaskStatus::Failed));
}

// Cancel and restore ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_stops_acting_and_still_finalises() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(52, 400))).await;
    let (job, plan) = rig.approved(deactivate()).await;
    assert!(plan.batches.len() >= 2);
    let first = rig.run_batch(&job.id, plan.batches[0]).await;
    assert!(first.acted > 0);
    let written = rig.written_users();
    let cancelled = rig.reclaimer.cancel(&job.id, &bob()).await.unwrap();
    assert!(cancelled.cancelled);
    for &batch in &plan.batches[1..] {
        let outcome = rig
            .reclaimer
            .reclaim_batch(&job.id, batch, Deadline::none())
            .await
            .unwrap();
        assert!(outcome.done);
        assert_eq!(outcome.acted, 0);
    }
    assert_eq!(
        rig.written_users(),
        written,
        "nothing written after the cancel"
    );
    let summary = rig.reclaimer.finalize(&job.id).await.unwrap();
    assert_eq!(summary.state, JobState::Cancelled);
    assert_eq!(summary.counts.acted, first.acted);
    let later = rig.candidates(&job.id, &plan.batches[1..]).await;
    let skips = rig.skips(&job.id).await;
    assert!(
        later
            .iter()
            .all(|c| skips.get(&c.external_id) == Some(&SkipReason::Cancelled))
    );
    assert!(rig.reclaim_lease().await.is_none());
    assert!(
        rig.audit_actions()
            .await
            .iter()
            .any(|e| e.action == "reclaim_cancel_requested" && e.actor == bob())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_before_it_acts_finishes_at_once() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(61, 200))).await;
    let planning = rig.start(deactivate()).await;
    let cancelled = rig.reclaimer.cancel(&planning.id, &bob()).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(rig.reclaim_lease().await.is_none());
    let plan = rig.reclaimer.plan(&planning.id).await.unwrap();
    assert!(plan.batches.is_empty());

    let waiting = rig.start(deactivate()).await;
    rig.reclaimer.plan(&waiting.id).await.unwrap();
    rig.reclaimer
        .await_approval(&waiting.id, TaskToken::new("wait-token"))
        .await
        .unwrap();
    let cancelled = rig.reclaimer.cancel(&waiting.id, &bob()).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    // The caller ends the execution's wait with it.
    assert_eq!(
        cancelled.task_token.as_ref().map(TaskToken::expose),
        Some("wait-token")
    );
    let late = rig
        .reclaimer
        .approve(&waiting.id, &bob())
        .await
        .unwrap_err();
    assert_eq!(late.error_name(), "Seatkeeper.Invalid");
    let summary = rig.reclaimer.finalize(&waiting.id).await.unwrap();
    assert_eq!(summary.state, JobState::Cancelled);
    assert!(rig.user_writes().is_empty());
    assert!(rig.reclaim_lease().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reactivates_what_a_deactivate_job_changed_once() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(53, 200))).await;
    let (job, _) = rig.run(deactivate()).await;
    let done = rig.at_step(&job.id, ActionStep::Done).await;
    assert!(!done.is_empty());
    let writes_before = rig.user_writes().len();
    let restored = rig.reclaimer.restore(&job.id, &bob()).await.unwrap();
    assert_eq!(restored.counts.acted as usize, done.len());
    assert_eq!(restored.counts.failed, 0);
    for id in &done {
        assert_eq!(rig.status_of(id).as_deref(), Some("active"), "{id}");
    }
    assert_eq!(rig.at_step(&job.id, ActionStep::Restored).await, done);
    assert_eq!(rig.user_writes().len(), writes_before + done.len());
    // Once per account: a second restore writes nothing.
    let again = rig.reclaimer.restore(&job.id, &bob()).await.unwrap();
    assert_eq!(again.counts.acted as usize, done.len());
    assert_eq!(rig.user_writes().len(), writes_before + done.len());
    assert!(rig.reclaim_lease().await.is_none());
    let audit = rig.audit_actions().await;
    assert_eq!(
        audit.iter().filter(|e| e.action == "user_restored").count(),
        done.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_job_cannot_be_restored_and_a_running_job_not_yet() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(54, 200))).await;
    let target = rig.active_regular_user();
    let (job, _) = rig.approved(delete_to(&target)).await;
    let err = rig.reclaimer.restore(&job.id, &bob()).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.Invalid");
    rig.reclaimer.cancel(&job.id, &bob()).await.unwrap();
    let (job, _) = rig.approved(deactivate()).await;
    let err = rig.reclaimer.restore(&job.id, &bob()).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.NotEligible");
}

// Plan ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_and_acts_on_nobody() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(55, 300))).await;
    let policy = ReclaimPolicy {
        dry_run: true,
        ..deactivate()
    };
    let want = rig.eligible(&policy).await;
    let job = rig.start(policy).await;
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    assert!(plan.dry_run && plan.batches.is_empty());
    // Before re-verification, the candidates include the Box Drive users a run would skip.
    assert!(plan.candidates as usize >= want.len());
    assert_eq!(rig.job(&job.id).await.state, JobState::Done);
    let first = rig.store().list_candidates(&job.id, 1).await.unwrap();
    assert_eq!(first.len(), 50);
    assert!(rig.user_writes().is_empty());
    assert!(rig.reclaim_lease().await.is_none());
    // Asked again (a retried task), plan answers the same.
    assert_eq!(rig.reclaimer.plan(&job.id).await.unwrap(), plan);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_without_proof_of_inactivity() {
    let rig = Rig::connected(BoxSimConfig::new(tenant(56, 200))).await;
    let none_yet = rig.start(deactivate()).await;
    let err = rig.reclaimer.plan(&none_yet.id).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.NotEligible");
    assert_eq!(rig.job(&none_yet.id).await.state, JobState::Failed);

    // Only 30 days of login events read: not enough to call anyone 90 days inactive.
    rig.change_integration(|i| i.sync.event_backfill_days = 30)
        .await;
    rig.sync().await;
    let short = rig.start(deactivate()).await;
    let err = rig.reclaimer.plan(&short.id).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.NotEligible");
    assert!(err.to_string().contains("30 days"), "{err}");
    assert!(
        rig.store()
            .list_candidates(&short.id, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        rig.reclaim_lease().await.is_none(),
        "a refused job frees the integration"
    );

    let thirty = ReclaimPolicy {
        inactive_days: 30,
        ..deactivate()
    };
    // Two days after the last sync, the coverage is stale.
    rig.clock.advance(Duration::days(2));
    let stale = rig.start(thirty.clone()).await;
    let err = rig.reclaimer.plan(&stale.id).await.unwrap_err();
    assert!(err.to_string().contains("run a sync first"), "{err}");
    rig.clock.advance(Duration::days(-2));
    let fine = rig.start(thirty).await;
    assert!(rig.reclaimer.plan(&fine.id).await.unwrap().candidates > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_waits_for_a_running_sync_then_gives_up_for_a_retry() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(57, 200))).await;
    let now = rig.now();
    let sync = rig
        .store()
        .acquire_lease(
            &rig.id,
            LeaseKind::Sync,
            "sync-1#1",
            now,
            now + Duration::hours(1),
        )
        .await
        .unwrap();
    let job = rig.start(deactivate()).await;
    let err = rig.reclaimer.plan(&job.id).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.SyncRunning");
    assert!(err.is_retryable());
    assert_eq!(rig.job(&job.id).await.state, JobState::Planning);
    // The sync ends while plan waits.
    let store = rig.reclaimer.store.clone();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        store.release_lease(&sync).await.unwrap();
    });
    let plan = rig.reclaimer.plan(&job.id).await.unwrap();
    release.await.unwrap();
    assert!(plan.candidates > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_what_the_job_cannot_do_safely() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(58, 300))).await;
    // The transfer target must be an active user who uses Box, and exist.
    let dormant = rig
        .eligible(&deactivate())
        .await
        .into_iter()
        .next()
        .unwrap();
    for target in [dormant.as_str(), "99999999999"] {
        let job = rig.start(delete_to(target)).await;
        let err = rig.reclaimer.plan(&job.id).await.unwrap_err();
        assert_eq!(err.error_name(), "Seatkeeper.Invalid", "{target}: {err}");
    }
    // More candidates than max_actions: nobody rather than an arbitrary part.
    let capped = rig
        .start(ReclaimPolicy {
            max_actions: Some(3),
            ..deactivate()
        })
        .await;
    let err = rig.reclaimer.plan(&capped.id).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.NotEligible");
    assert_eq!(rig.job(&capped.id).await.state, JobState::Failed);
    // Without "Perform Actions as Users" Box Drive users could not be told apart.
    rig.sim.set_app_scopes(AppScopes {
        as_user: false,
        ..AppScopes::default()
    });
    let blind = rig.start(deactivate()).await;
    let err = rig.reclaimer.plan(&blind.id).await.unwrap_err();
    assert_eq!(err.error_name(), "Seatkeeper.NotEligible");
    assert!(
        err.to_string().contains("Perform Actions as Users"),
        "{err}"
    );
    assert!(rig.user_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_groups_or_activity_leave_the_account_alone() {
    let rig = Rig::synced(BoxSimConfig::new(tenant(59, 300))).await;
    let group = rig.sim.groups()[0]["id"].as_str().unwrap().to_owned();
    rig.set_rails(ReclaimGuardRails {
        excluded_group_ids: vec![group],
        ..ReclaimGuardRails::default()
    })
    .await;
    let (job, plan) = rig.approved(deactivate()).await;
    let candidates = rig.candidates(&job.id, &plan.batches).await;
    let hidden = candidates[0].external_id.clone();
    rig.sim.set_faults(Faults {
        memberships_forbidden_users: vec![hidden.clone()],
        ..Faults::default()
    });
    rig.sim.set_app_scopes(AppScopes {
        as_user: false,
        ..AppScopes::default()
    });
    rig.run_batches(&job.id, &plan.batches).await;
    let skips = rig.skips(&job.id).await;
    assert_eq!(skips[&hidden], SkipReason::GroupsUnreadable);
    for c in candidates.iter().filter(|c| c.external_id != hidden) {
        assert_eq!(
            skips.get(&c.external_id),
            Some(&SkipReason::ActivityUnreadable),
            "{}",
            c.external_id
        );
    }
    assert!(rig.user_writes().is_empty());
}

// DynamoDB --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivate_job_and_its_restore_run_on_dynamodb() {
    let sim = start_sim(BoxSimConfig::new(tenant(60, 200))).await;
    let local = Local::with_adapters(
        &sim,
        Arc::new(dynamo_store(&MOTO).await),
        Arc::new(secrets_manager(&MOTO).await),
        tempfile::tempdir().expect("dir"),
    );
    let rig = Rig::over(sim, local, |store| store).await;
    rig.sync().await;
    let want = rig.eligible(&deactivate()).await;
    let (job, summary) = rig.run(deactivate()).await;
    assert_eq!(summary.state, JobState::Done);
    assert_eq!(rig.at_step(&job.id, ActionStep::Done).await, want);
    assert_eq!(rig.written_users(), want);
    assert!(rig.reclaim_lease().await.is_none());
    let restored = rig.reclaimer.restore(&job.id, &bob()).await.unwrap();
    assert_eq!(restored.counts.acted as usize, want.len());
    for id in &want {
        assert_eq!(rig.status_of(id).as_deref(), Some("active"));
    }
}

// A store that dies right after one step's write ------------------------------------------

/// Delegates to `inner`; when armed, the first `advance_action` to `crash_after` is written
/// and then answered with an error, as if the invocation died right after the write.
struct CrashingStore {
    inner: Arc<dyn Store>,
    crash_after: ActionStep,
    armed: AtomicBool,
    crashed_on: Mutex<Option<String>>,
}

#[async_trait]
impl Store for CrashingStore {
    async fn create_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        self.inner.create_integration(integration).await
    }
    async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        self.inner.get_integration(id).await
    }
    async fn list_integrations(&self) -> Result<Vec<Integration>, StoreError> {
        self.inner.list_integrations().await
    }
    async fn update_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        self.inner.update_integration(integration).await
    }
    async fn modify_integration(
        &self,
        id: &IntegrationId,
        change: &(dyn for<'i> Fn(&'i mut Integration) + Send + Sync),
    ) -> Result<Integration, StoreError> {
        self.inner.modify_integration(id, change).await
    }
    async fn tenant_owner(
        &self,
        provider: Provider,
        tenant_id: &str,
    ) -> Result<Option<IntegrationId>, StoreError> {
        self.inner.tenant_owner(provider, tenant_id).await
    }
    async fn get_accounts(
        &self,
        id: &IntegrationId,
        external_ids: &[String],
    ) -> Result<Vec<Account>, StoreError> {
        self.inner.get_accounts(id, external_ids).await
    }
    async fn put_accounts(
        &self,
        id: &IntegrationId,
        accounts: &[Account],
    ) -> Result<(), StoreError> {
        self.inner.put_accounts(id, accounts).await
    }
    async fn list_accounts(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        self.inner.list_accounts(id, cursor, limit).await
    }
    async fn accounts_by_license_type(
        &self,
        id: &IntegrationId,
        license_type: &str,
        last_login_before: Option<DateTime<Utc>>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        self.inner
            .accounts_by_license_type(id, license_type, last_login_before, cursor, limit)
            .await
    }
    async fn accounts_by_kind(
        &self,
        id: &IntegrationId,
        kind: AccountKind,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        self.inner.accounts_by_kind(id, kind, cursor, limit).await
    }
    async fn disconnect_integration(
        &self,
        id: &IntegrationId,
        now: DateTime<Utc>,
    ) -> Result<Integration, StoreError> {
        self.inner.disconnect_integration(id, now).await
    }
    async fn get_event_coverage(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<EventCoverage>, StoreError> {
        self.inner.get_event_coverage(id).await
    }
    async fn put_event_coverage(
        &self,
        id: &IntegrationId,
        coverage: &EventCoverage,
    ) -> Result<(), StoreError> {
        self.inner.put_event_coverage(id, coverage).await
    }
    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.put_snapshot(snapshot).await
    }
    async fn latest_snapshot(&self, id: &IntegrationId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.latest_snapshot(id).await
    }
    async fn list_snapshots(
        &self,
        id: &IntegrationId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Snapshot>, StoreError> {
        self.inner.list_snapshots(id, from, to).await
    }
    async fn put_task_run(&self, run: &TaskRun) -> Result<(), StoreError> {
        self.inner.put_task_run(run).await
    }
    async fn list_task_runs(
        &self,
        id: &IntegrationId,
        kind: Option<TaskKind>,
        limit: usize,
    ) -> Result<Vec<TaskRun>, StoreError> {
        self.inner.list_task_runs(id, kind, limit).await
    }
    async fn acquire_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        self.inner
            .acquire_lease(id, kind, owner, now, expires_at)
            .await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError> {
        self.inner
            .renew_lease(lease, now, expires_at, checkpoint)
            .await
    }
    async fn transfer_lease(
        &self,
        lease: &Lease,
        new_owner: &str,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError> {
        self.inner
            .transfer_lease(lease, new_owner, expires_at, checkpoint)
            .await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release_lease(lease).await
    }
    async fn get_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
    ) -> Result<Option<Lease>, StoreError> {
        self.inner.get_lease(id, kind).await
    }
    async fn put_roster_chunk(
        &self,
        id: &IntegrationId,
        sync_id: &str,
        chunk: u32,
        external_ids: &[String],
    ) -> Result<(), StoreError> {
        self.inner
            .put_roster_chunk(id, sync_id, chunk, external_ids)
            .await
    }
    async fn roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.roster_chunks(id, sync_id).await
    }
    async fn delete_roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<(), StoreError> {
        self.inner.delete_roster_chunks(id, sync_id).await
    }
    async fn put_one_time(&self, item: &OneTimeItem) -> Result<(), StoreError> {
        self.inner.put_one_time(item).await
    }
    async fn take_one_time(
        &self,
        kind: OneTimeKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<OneTimeTake, StoreError> {
        self.inner.take_one_time(kind, key, now).await
    }
    async fn create_reclaim_job(&self, job: &ReclaimJob) -> Result<(), StoreError> {
        self.inner.create_reclaim_job(job).await
    }
    async fn get_reclaim_job(&self, id: &ReclaimJobId) -> Result<Option<ReclaimJob>, StoreError> {
        self.inner.get_reclaim_job(id).await
    }
    async fn modify_reclaim_job(
        &self,
        id: &ReclaimJobId,
        change: &JobChange<'_>,
    ) -> Result<ReclaimJob, StoreError> {
        self.inner.modify_reclaim_job(id, change).await
    }
    async fn list_reclaim_jobs(
        &self,
        integration_id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReclaimJob>, StoreError> {
        self.inner
            .list_reclaim_jobs(integration_id, cursor, limit)
            .await
    }
    async fn put_candidates(
        &self,
        job_id: &ReclaimJobId,
        candidates: &[Candidate],
    ) -> Result<(), StoreError> {
        self.inner.put_candidates(job_id, candidates).await
    }
    async fn list_candidates(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
    ) -> Result<Vec<Candidate>, StoreError> {
        self.inner.list_candidates(job_id, batch).await
    }
    async fn get_candidate(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        external_id: &str,
    ) -> Result<Option<Candidate>, StoreError> {
        self.inner.get_candidate(job_id, batch, external_id).await
    }
    async fn put_exclusions(
        &self,
        job_id: &ReclaimJobId,
        exclusions: &[Exclusion],
    ) -> Result<(), StoreError> {
        self.inner.put_exclusions(job_id, exclusions).await
    }
    async fn list_exclusions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Exclusion>, StoreError> {
        self.inner.list_exclusions(job_id, cursor, limit).await
    }
    async fn get_action(
        &self,
        job_id: &ReclaimJobId,
        external_id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        self.inner.get_action(job_id, external_id).await
    }
    async fn advance_action(
        &self,
        record: &ActionRecord,
        expected: Option<ActionStep>,
    ) -> Result<ActionRecord, StoreError> {
        let stored = self.inner.advance_action(record, expected).await?;
        // The write went through; the invocation dies before it hears so.
        if record.step == self.crash_after && self.armed.swap(false, Ordering::SeqCst) {
            *self.crashed_on.lock().unwrap() = Some(record.external_id.clone());
            return Err(StoreError::Backend {
                message: "injected crash".into(),
                source: None,
            });
        }
        Ok(stored)
    }
    async fn list_actions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ActionRecord>, StoreError> {
        self.inner.list_actions(job_id, cursor, limit).await
    }
    async fn acquire_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner
            .acquire_account_lock(id, external_id, owner, now, expires_at)
            .await
    }
    async fn release_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.inner
            .release_account_lock(id, external_id, owner)
            .await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.append_audit(entry).await
    }
    async fn list_audit(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.inner.list_audit(id, cursor, limit).await
    }
}
