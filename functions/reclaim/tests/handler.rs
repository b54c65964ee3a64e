//! The reclaim handler fed the payloads the state machine sends (built from the real
//! definition), over the embedded store and a simulated Box tenant on loopback: a job is
//! planned, approved, acted on batch by batch and finalised; failures leave the function
//! with the error type the definition's Retry and Catch match.

use async_trait::async_trait;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use reclaim::{Deps, HandlerError, handle};
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{
    Actor, BoxPlan, IntegrationId, JobState, ReclaimActionKind, ReclaimJob, ReclaimPolicy,
    TaskToken,
};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::connect::{BoxCcgConnect, Connector};
use seatkeeper_shared::services::reclaim::{
    BatchOutcome, JobSummary, Notice, Notifier, NotifyError, PlanSummary, ReclaimOptions, Reclaimer,
};
use seatkeeper_shared::services::{Deadline, LicenseSync, ProviderSources, SyncOptions};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::workflow::{
    ExecutionId, ExecutionInput, TaskFailure, Workflow, WorkflowError,
};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Bindings, definition, task_payload};

mod support;

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_auto_approved_job_is_planned_acted_on_batch_by_batch_and_finalised() {
    // 240 users, 30 % dormant: more candidates than one batch of 50 holds.
    let fixture = Fixture::new(240, Rails::AutoApprove).await;
    let job = fixture
        .start_job(ReclaimActionKind::Deactivate, false)
        .await;
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-auto";

    let plan: PlanSummary = fixture.call_ok("plan", &job, token, 0).await;
    assert_eq!(plan.job_id, job.id);
    assert!(
        plan.candidates > 0,
        "the tenant has dormant users: {plan:?}"
    );
    assert!(
        !plan.dry_run && !plan.needs_approval && !plan.permanent,
        "{plan:?}"
    );
    assert_eq!(
        plan.batches,
        (1..=plan.candidates.div_ceil(50)).collect::<Vec<u32>>()
    );
    assert!(plan.batches.len() >= 2, "several batches: {plan:?}");

    // The approval wait answers itself: the integration auto-approves under its threshold.
    let wait: Value = fixture.call_ok("await_approval", &job, token, 0).await;
    assert_eq!(wait, json!({ "auto_approved": true }));
    assert_eq!(
        fixture.workflow.successes(),
        vec![token.to_owned()],
        "the handler answered its own task token once"
    );

    let mut acted = 0;
    let mut skipped = 0;
    let mut failed = 0;
    for batch in &plan.batches {
        let mut rounds = 0;
        let outcome = loop {
            rounds += 1;
            assert!(rounds <= 20, "batch {batch} never finished");
            let outcome: BatchOutcome = fixture.call_ok("reclaim_batch", &job, token, *batch).await;
            assert_eq!(
                (outcome.job_id.clone(), outcome.batch),
                (job.id.clone(), *batch)
            );
            if outcome.done {
                break outcome;
            }
        };
        acted += outcome.acted;
        skipped += outcome.skipped;
        failed += outcome.failed;
    }
    assert!(acted > 0, "some dormant users were deactivated");
    assert_eq!(
        acted + skipped + failed,
        plan.candidates,
        "every candidate has a result"
    );

    let summary: JobSummary = fixture.call_ok("finalize", &job, token, 0).await;
    assert_eq!(summary.job_id, job.id);
    assert_eq!(summary.state, JobState::Done);
    assert_eq!(summary.counts.acted, acted);
    assert_eq!(
        summary.counts.seats_freed, 0,
        "a deactivated Box user keeps a seat"
    );

    // What Box saw: exactly `acted` users set inactive, nothing deleted, never `force`.
    let writes = fixture.sim.user_writes();
    assert!(writes.iter().all(|w| !w.force), "force is never sent");
    assert_eq!(fixture.sim.force_deletes(), 0);
    let inactive_now = fixture
        .sim
        .users()
        .iter()
        .filter(|u| u["status"] == "inactive")
        .count();
    assert_eq!(
        inactive_now,
        fixture.inactive_before + acted as usize,
        "one deactivation per acted account"
    );

    // Finalize is idempotent: a retried invocation answers the same summary.
    let again: JobSummary = fixture.call_ok("finalize", &job, token, 0).await;
    assert_eq!(again, summary);
}

#[tokio::test]
async fn an_auto_approval_step_functions_did_not_take_fails_with_a_retried_name() {
    let fixture = Fixture::new(40, Rails::AutoApprove).await;
    let job = fixture
        .start_job(ReclaimActionKind::Deactivate, false)
        .await;
    let _: PlanSummary = fixture.call_ok("plan", &job, "unused", 0).await;

    fixture.workflow.fail_with(Some(|| WorkflowError::Service {
        operation: "send a task success",
        source: "throttled".into(),
    }));
    let failed = fixture
        .call_err(
            "await_approval",
            &job,
            "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-first",
            0,
        )
        .await;
    assert_eq!(
        failed.error_type,
        reclaim::WORKFLOW_UNAVAILABLE,
        "{failed:?}"
    );

    // The state machine retries the wait with a new token; the job is still approved.
    fixture.workflow.fail_with(None);
    let second = "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-second";
    let wait: Value = fixture.call_ok("await_approval", &job, second, 0).await;
    assert_eq!(wait, json!({ "auto_approved": true }));
    assert_eq!(fixture.workflow.successes(), vec![second.to_owned()]);

    // A repeated delivery whose token was answered already is not an error.
    fixture
        .workflow
        .fail_with(Some(|| WorkflowError::TaskClosed));
    let again: Value = fixture.call_ok("await_approval", &job, second, 0).await;
    assert_eq!(again, json!({ "auto_approved": true }));
}

#[tokio::test]
async fn a_job_that_needs_an_approval_stores_its_token_and_waits() {
    let fixture = Fixture::new(60, Rails::NeedApproval).await;
    let job = fixture
        .start_job(ReclaimActionKind::Deactivate, false)
        .await;
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-wait";

    let plan: PlanSummary = fixture.call_ok("plan", &job, token, 0).await;
    assert!(plan.needs_approval && plan.candidates > 0, "{plan:?}");

    // Nothing is acted on before an approval.
    let early = fixture.call_err("reclaim_batch", &job, token, 1).await;
    assert_eq!(early.error_type, "Seatkeeper.NotEligible", "{early:?}");

    let wait: Value = fixture.call_ok("await_approval", &job, token, 0).await;
    assert_eq!(wait, json!({ "auto_approved": false }));
    assert!(
        fixture.workflow.successes().is_empty(),
        "the handler does not answer a wait a person must answer"
    );
    let notices = fixture.notifier.notices();
    assert_eq!(notices.len(), 1, "the admins are told once: {notices:?}");
    assert!(
        !notices[0].message.contains(token) && !notices[0].subject.contains(token),
        "a notice never carries the task token"
    );

    // The approver (not the requester) gets the stored token back to answer the wait with.
    let approved = fixture
        .reclaimer()
        .approve(
            &job.id,
            &Actor::Iam {
                arn: "arn:aws:iam::123456789012:user/approver".into(),
            },
        )
        .await
        .expect("approved");
    assert_eq!(approved.task_token, Some(TaskToken::new(token)));

    let outcome: BatchOutcome = fixture.call_ok("reclaim_batch", &job, token, 1).await;
    assert_eq!(outcome.batch, 1);
}

#[tokio::test]
async fn errors_leave_the_function_with_the_names_the_state_machine_matches() {
    let fixture = Fixture::new(30, Rails::NeedApproval).await;
    let job = fixture
        .start_job(ReclaimActionKind::Deactivate, false)
        .await;
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-errors";

    // A payload the definition never sends.
    let refused = fixture
        .invoke(json!({ "action": "reclaim_everything", "job_id": job.id }))
        .await
        .expect_err("refused");
    assert_eq!(refused.error_type, "Seatkeeper.Invalid");

    // A job that does not exist.
    let other = ReclaimJob::new(
        job.integration_id.clone(),
        ReclaimPolicy::default(),
        Actor::System,
        chrono::Utc::now(),
    );
    let missing = fixture.call_err("plan", &other, token, 0).await;
    assert_eq!(missing.error_type, "Seatkeeper.NotFound", "{missing:?}");

    // Box keeps answering 429: retryable, and the job is still there to plan again.
    fixture.sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let limited = fixture.call_err("plan", &job, token, 0).await;
    assert_eq!(limited.error_type, "Seatkeeper.RateLimited", "{limited:?}");
    fixture.sim.set_faults(Faults::default());
    let plan: PlanSummary = fixture.call_ok("plan", &job, token, 0).await;
    assert!(plan.candidates > 0, "the retried plan works: {plan:?}");

    // A batch the plan did not write.
    fixture
        .reclaimer()
        .approve(
            &job.id,
            &Actor::Iam {
                arn: "arn:aws:iam::123456789012:user/approver".into(),
            },
        )
        .await
        .expect("approved");
    let outside = fixture.call_err("reclaim_batch", &job, token, 999).await;
    assert_eq!(outside.error_type, "Seatkeeper.Invalid", "{outside:?}");
    assert!(
        !outside.error_message.contains(token),
        "errors never carry the task token"
    );
}

#[tokio::test]
async fn a_plan_without_login_coverage_is_refused_and_finalize_records_it() {
    let fixture = Fixture::unsynced(20).await;
    let job = fixture
        .start_job(ReclaimActionKind::Deactivate, false)
        .await;
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAtoken-coverage";

    let refused = fixture.call_err("plan", &job, token, 0).await;
    assert_eq!(refused.error_type, "Seatkeeper.NotEligible", "{refused:?}");
    // The definition catches it and goes to Finalize, which closes the job.
    let summary: JobSummary = fixture.call_ok("finalize", &job, token, 0).await;
    assert_eq!(summary.state, JobState::Failed);
    assert_eq!(summary.counts.acted, 0);
    assert!(fixture.sim.user_writes().is_empty(), "nobody was touched");
}

#[tokio::test]
async fn a_dry_run_is_planned_and_finished_by_plan_alone() {
    let fixture = Fixture::new(40, Rails::AutoApprove).await;
    let job = fixture.start_job(ReclaimActionKind::Deactivate, true).await;
    let plan: PlanSummary = fixture.call_ok("plan", &job, "unused", 0).await;
    assert!(plan.dry_run && plan.candidates > 0, "{plan:?}");
    let stored = fixture
        .store
        .get_reclaim_job(&job.id)
        .await
        .expect("read")
        .expect("job");
    // The state machine ends at its Choice (Succeed) without Finalize: plan finished it.
    assert_eq!(stored.state, JobState::Done);
    // Plan's capability probes write to a user id that does not exist (Box answers 404);
    // no real user is written to.
    let writes = fixture.sim.user_writes();
    assert!(
        writes.iter().all(|w| w.status == Some(404)),
        "a dry run changes nobody in Box: {writes:?}"
    );
    let inactive_now = fixture
        .sim
        .users()
        .iter()
        .filter(|u| u["status"] == "inactive")
        .count();
    assert_eq!(inactive_now, fixture.inactive_before);
}

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

enum Rails {
    /// Auto-approve, with a threshold far above the tenant's size.
    AutoApprove,
    /// The default guard-rails: every job waits for a person.
    NeedApproval,
}

struct Fixture {
    deps: Deps,
    store: Arc<EmbeddedStore>,
    sources: Arc<ProviderSources>,
    workflow: Arc<RecordingWorkflow>,
    notifier: Arc<RecordingNotifier>,
    sim: SimHandle,
    integration: IntegrationId,
    definition: Value,
    /// Users Box had as inactive before the job.
    inactive_before: usize,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A connected, synced tenant of `users` managed users (30 % dormant).
    async fn new(users: usize, rails: Rails) -> Fixture {
        let fixture = Self::unsynced(users).await;
        LicenseSync {
            store: fixture.store.as_ref(),
            sources: fixture.sources.as_ref(),
            clock: &SystemClock,
            options: SyncOptions::default(),
        }
        .run(&fixture.integration, None, Deadline::none())
        .await
        .expect("sync");
        if let Rails::AutoApprove = rails {
            fixture
                .store
                .modify_integration(&fixture.integration, &|i| {
                    i.reclaim.auto_approve = true;
                    i.reclaim.approval_threshold = Some(100_000);
                })
                .await
                .expect("guard-rails");
        }
        fixture
    }

    /// Connected, never synced: no login coverage.
    async fn unsynced(users: usize) -> Fixture {
        let sim = BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(11, users)))
            .await
            .expect("sim");
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(EmbeddedStore::in_memory().expect("store"));
        let secrets = Arc::new(FileSecrets::new(dir.path().join("secrets.json")));
        let http = HttpClient::for_tests().expect("http");
        let box_config = BoxConfig {
            api_base: sim.base_url(),
            retry: RetryPolicy::fast_for_tests(),
            ..BoxConfig::default()
        };
        let integration = Connector {
            store: store.as_ref(),
            secrets: secrets.as_ref(),
            clock: &SystemClock,
            http: http.clone(),
            box_config: box_config.clone(),
        }
        .connect_box_ccg(BoxCcgConnect {
            client_id: sim.client_id(),
            client_secret: SecretString::from(sim.client_secret()),
            enterprise_id: sim.enterprise_id(),
            plan: BoxPlan::Enterprise,
            purchased_seats: None,
            name: None,
        })
        .await
        .expect("connect");
        let sources = Arc::new(ProviderSources::new(
            store.clone(),
            secrets,
            Arc::new(SystemClock),
            http,
            box_config,
        ));
        let workflow = Arc::new(RecordingWorkflow::default());
        let notifier = Arc::new(RecordingNotifier::default());
        let inactive_before = sim
            .users()
            .iter()
            .filter(|u| u["status"] == "inactive")
            .count();
        let deps = Deps {
            reclaimer: Reclaimer {
                store: store.clone(),
                sources: sources.clone(),
                clock: Arc::new(SystemClock),
                notifier: notifier.clone(),
                options: ReclaimOptions {
                    sync_wait: Duration::from_millis(200),
                    sync_poll: Duration::from_millis(20),
                    ..ReclaimOptions::default()
                },
            },
            workflow: workflow.clone(),
            deadline_margin: Duration::from_secs(60),
        };
        Fixture {
            deps,
            store,
            sources,
            workflow,
            notifier,
            sim,
            integration: integration.id,
            definition: definition(),
            inactive_before,
            _dir: dir,
        }
    }

    /// A second `Reclaimer` on the same store and tenant: what the API runs.
    fn reclaimer(&self) -> Reclaimer {
        Reclaimer {
            store: self.store.clone(),
            sources: self.sources.clone(),
            clock: Arc::new(SystemClock),
            notifier: self.notifier.clone(),
            options: ReclaimOptions::default(),
        }
    }

    async fn start_job(&self, action: ReclaimActionKind, dry_run: bool) -> ReclaimJob {
        assert_eq!(
            action,
            ReclaimActionKind::Deactivate,
            "these tests deactivate"
        );
        self.reclaimer()
            .start_job(
                &self.integration,
                ReclaimPolicy {
                    action,
                    dry_run,
                    ..ReclaimPolicy::default()
                },
                &Actor::Iam {
                    arn: "arn:aws:iam::123456789012:user/requester".into(),
                },
            )
            .await
            .expect("job started")
    }

    /// Invokes the handler as Lambda does, with 15 minutes left.
    async fn invoke(&self, payload: Value) -> Result<Value, Diagnostic> {
        let mut context = Context::default();
        context.deadline = now_ms() + 15 * 60 * 1000;
        handle(LambdaEvent::new(payload, context), &self.deps)
            .await
            .map_err(|e: HandlerError| Diagnostic::from(e))
    }

    /// The definition's payload for `action`.
    fn payload(&self, action: &str, job: &ReclaimJob, token: &str, batch: u32) -> Value {
        task_payload(
            &self.definition,
            action,
            &Bindings {
                job_id: job.id.as_str(),
                task_token: token,
                batch,
            },
        )
    }

    async fn call_ok<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        job: &ReclaimJob,
        token: &str,
        batch: u32,
    ) -> T {
        let answer = self
            .invoke(self.payload(action, job, token, batch))
            .await
            .unwrap_or_else(|e| panic!("{action} failed: {e:?}"));
        serde_json::from_value(answer.clone())
            .unwrap_or_else(|e| panic!("{action} answered {answer}: {e}"))
    }

    async fn call_err(
        &self,
        action: &str,
        job: &ReclaimJob,
        token: &str,
        batch: u32,
    ) -> Diagnostic {
        match self.invoke(self.payload(action, job, token, batch)).await {
            Ok(answer) => panic!("{action} succeeded: {answer}"),
            Err(e) => e,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Records what the handler tells the workflow (the port's test double); can be told to
/// fail the next answers.
#[derive(Default)]
struct RecordingWorkflow {
    successes: Mutex<Vec<String>>,
    fail_with: Mutex<Option<fn() -> WorkflowError>>,
}

impl RecordingWorkflow {
    fn successes(&self) -> Vec<String> {
        self.successes.lock().expect("lock").clone()
    }

    fn fail_with(&self, error: Option<fn() -> WorkflowError>) {
        *self.fail_with.lock().expect("lock") = error;
    }
}

#[async_trait]
impl Workflow for RecordingWorkflow {
    async fn start(&self, input: &ExecutionInput) -> Result<ExecutionId, WorkflowError> {
        Ok(ExecutionId::new(format!("local:{}", input.job_id)))
    }

    async fn send_task_success(
        &self,
        token: &TaskToken,
        _output: &Value,
    ) -> Result<(), WorkflowError> {
        if let Some(error) = *self.fail_with.lock().expect("lock") {
            return Err(error());
        }
        self.successes
            .lock()
            .expect("lock")
            .push(token.expose().to_owned());
        Ok(())
    }

    async fn send_task_failure(
        &self,
        _token: &TaskToken,
        failure: TaskFailure,
        _cause: &str,
    ) -> Result<(), WorkflowError> {
        panic!("the handler never fails a wait ({failure:?})")
    }

    async fn stop(&self, _execution: &ExecutionId, _cause: &str) -> Result<(), WorkflowError> {
        panic!("the handler never stops an execution")
    }
}

#[derive(Default)]
struct RecordingNotifier {
    notices: Mutex<Vec<Notice>>,
}

impl RecordingNotifier {
    fn notices(&self) -> Vec<Notice> {
        self.notices.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.notices.lock().expect("lock").push(notice.clone());
        Ok(())
    }
}
