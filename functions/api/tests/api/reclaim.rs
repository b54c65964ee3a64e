//! The reclamation routes: starting a job starts an execution (and only then answers 202),
//! approvals and rejections end the execution's wait through the `Workflow` port, no view
//! ever carries the task token, and every input is checked.
//!
//! Jobs are moved into their approval wait by calling the service steps directly (what the
//! reclaim function does for the state machine), against the Box simulator tenant.

use std::sync::atomic::Ordering;

use seatkeeper_shared::domain::{IntegrationId, JobState, ReclaimJobId, TaskToken};
use seatkeeper_shared::services::Deadline;
use seatkeeper_shared::workflow::TaskFailure;
use serde_json::{Value, json};

use crate::support::{ALICE, Event, TestApp};

const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const TOKEN: &str = "AAAAsecret-task-token-of-the-wait";

fn reclamations(id: &IntegrationId) -> String {
    format!("/integrations/{id}/reclamations")
}

fn deactivate() -> Value {
    json!({ "policy": { "inactive_days": 90, "action": "deactivate" } })
}

/// An app whose integration sends every job with more than 5 candidates to approval.
async fn with_threshold() -> (TestApp, IntegrationId) {
    let app = TestApp::start(200).await;
    let id = app.connected_and_synced().await;
    let patched = app
        .send(
            Event::patch(&format!("/integrations/{id}"))
                .json(&json!({ "reclaim": { "approval_threshold": 5, "auto_approve": true } })),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    (app, id)
}

async fn start(app: &TestApp, id: &IntegrationId, body: &Value) -> ReclaimJobId {
    let response = app.send(Event::post(&reclamations(id)).json(body)).await;
    assert_eq!(response.status, 202, "{}", response.text());
    ReclaimJobId::parse(response.json()["job_id"].as_str().expect("job_id")).expect("job id")
}

/// Started through the API (as Alice), planned and waiting for approval with [`TOKEN`].
async fn awaiting_approval(app: &TestApp, id: &IntegrationId) -> ReclaimJobId {
    let job = start(app, id, &deactivate()).await;
    let reclaimer = app.ctx.reclaimer();
    let plan = reclaimer.plan(&job).await.expect("plan");
    assert!(plan.needs_approval && plan.candidates > 5, "{plan:?}");
    let wait = reclaimer
        .await_approval(&job, TaskToken::new(TOKEN))
        .await
        .expect("wait");
    assert!(!wait.auto_approved);
    job
}

async fn state_of(app: &TestApp, job: &ReclaimJobId) -> JobState {
    app.store()
        .get_reclaim_job(job)
        .await
        .expect("read")
        .expect("job")
        .state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_answers_202_with_an_execution_and_a_second_job_is_refused() {
    let app = TestApp::start(50).await;
    let id = app.connected_and_synced().await;
    let response = app
        .send(
            Event::post(&reclamations(&id))
                .json(&json!({ "policy": { "dry_run": true }, "notice_seconds": 3600 })),
        )
        .await;
    assert_eq!(response.status, 202, "{}", response.text());
    let body = response.json();
    assert_eq!(body["state"], "planning");
    let job = ReclaimJobId::parse(body["job_id"].as_str().unwrap()).unwrap();
    let started = app.workflow.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].job_id, job);
    assert_eq!(started[0].notice_seconds, Some(3600));
    assert!(
        body["execution"]
            .as_str()
            .unwrap()
            .ends_with(&format!("job-{job}"))
    );
    let stored = app.store().get_reclaim_job(&job).await.unwrap().unwrap();
    assert_eq!(stored.execution_arn.as_deref(), body["execution"].as_str());
    assert_eq!(stored.requested_by.principal(), ALICE);

    let again = app
        .send(Event::post(&reclamations(&id)).json(&deactivate()))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "reclaim_running");
    assert_eq!(app.workflow.started().len(), 1, "no second execution");

    let listed = app.send(Event::get(&reclamations(&id))).await;
    assert_eq!(listed.status, 200);
    let items = listed.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], job.as_str());
    assert_eq!(items[0]["requested_by"]["principal"], ALICE);
    assert_eq!(items[0]["policy"]["dry_run"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_validated_field_by_field_before_anything_starts() {
    let app = TestApp::start(20).await;
    let id = app.connected_and_synced().await;
    let cases = [
        (
            json!({ "policy": { "inactive_days": 0 } }),
            "policy.inactive_days",
        ),
        (
            json!({ "policy": { "inactive_days": 400 } }),
            "policy.inactive_days",
        ),
        (
            json!({ "policy": { "action": "delete" } }),
            "policy.transfer_to",
        ),
        (
            json!({ "policy": { "action": "deactivate", "transfer_to": "123" } }),
            "policy.transfer_to",
        ),
        (
            json!({ "policy": { "max_actions": 0 } }),
            "policy.max_actions",
        ),
        (
            json!({ "policy": { "grace_days": 4000 } }),
            "policy.grace_days",
        ),
        (json!({ "policy": { "dryrun": true } }), "policy"),
        (json!({ "policy": { "action": "shred" } }), "policy.action"),
        (
            json!({ "policy": {}, "notice_seconds": 99_999_999 }),
            "notice_seconds",
        ),
    ];
    for (body, field) in cases {
        let response = app.send(Event::post(&reclamations(&id)).json(&body)).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        let got = response.error_field().unwrap_or_default();
        assert!(
            got.starts_with(field),
            "{body}: field {got:?}, expected {field}"
        );
    }
    let missing = app
        .send(Event::post(&reclamations(&id)).json(&json!({})))
        .await;
    assert_eq!(missing.status, 400);
    assert!(app.workflow.started().is_empty());
    assert!(
        app.store()
            .list_reclaim_jobs(&id, None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "no job was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_cannot_start_leaves_no_job_holding_the_integration() {
    let app = TestApp::start(20).await;
    let id = app.connected_and_synced().await;
    app.workflow.fail_start.store(true, Ordering::SeqCst);
    let response = app
        .send(Event::post(&reclamations(&id)).json(&deactivate()))
        .await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.error_code(), "workflow_unavailable");
    let jobs = app.store().list_reclaim_jobs(&id, None, 10).await.unwrap();
    assert_eq!(jobs.items.len(), 1);
    assert_eq!(jobs.items[0].state, JobState::Cancelled);
    // The lease was released: the next start goes through.
    app.workflow.fail_start.store(false, Ordering::SeqCst);
    start(&app, &id, &deactivate()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_by_the_requester_is_refused_and_by_another_ends_the_wait() {
    let (app, id) = with_threshold().await;
    let job = awaiting_approval(&app, &id).await;

    let own = app
        .send(Event::post(&format!("/reclamations/{job}/approve")))
        .await;
    assert_eq!(own.status, 403, "{}", own.text());
    assert_eq!(own.error_code(), "self_approval_refused");
    assert!(app.workflow.successes().is_empty());
    assert_eq!(state_of(&app, &job).await, JobState::AwaitingApproval);

    // Every view while the job holds its token: none shows it.
    for path in [
        format!("/reclamations/{job}"),
        reclamations(&id),
        format!("/reclamations/{job}/accounts"),
        format!("/reclamations/{job}/accounts?skipped=true"),
    ] {
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        let mut event = Event::get(path);
        if !query.is_empty() {
            event = event.query(query);
        }
        let response = app.send(event).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert!(
            !response.text().contains(TOKEN),
            "{path} shows the task token"
        );
        assert!(!response.text().contains("task_token"), "{path}");
    }
    let one = app
        .send(Event::get(&format!("/reclamations/{job}")))
        .await
        .json();
    assert_eq!(one["state"], "awaiting_approval");
    assert!(one["counts"]["candidates"].as_u64().unwrap() > 5);
    let skipped = app
        .send(Event::get(&format!("/reclamations/{job}/accounts")).query("skipped=true&limit=3"))
        .await
        .json();
    let items = skipped["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| i["reason"].is_string() && i["description"].is_string())
    );
    let next = skipped["next_cursor"].as_str().expect("more pages");
    let page2 = app
        .send(
            Event::get(&format!("/reclamations/{job}/accounts"))
                .query(&format!("skipped=true&limit=3&cursor={next}")),
        )
        .await;
    assert_eq!(page2.status, 200);
    assert_ne!(page2.json()["items"][0], items[0]);
    // A skipped listing's cursor is not an actions listing's.
    let mixed = app
        .send(Event::get(&format!("/reclamations/{job}/accounts")).query(&format!("cursor={next}")))
        .await;
    assert_eq!(mixed.error_code(), "bad_cursor");

    let approved = app
        .send(Event::post(&format!("/reclamations/{job}/approve")).caller(BOB))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert_eq!(approved.json()["state"], "approved");
    assert_eq!(approved.json()["approved_by"]["principal"], BOB);
    assert!(!approved.text().contains(TOKEN));
    assert_eq!(
        app.workflow.successes(),
        vec![(TOKEN.to_owned(), json!({ "approved": true }))]
    );
    let twice = app
        .send(Event::post(&format!("/reclamations/{job}/approve")).caller(BOB))
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.error_code(), "not_awaiting_approval");
    assert_eq!(app.workflow.successes().len(), 1);

    // The approved job acts; its per-account results are listed.
    let reclaimer = app.ctx.reclaimer();
    let stored = app.store().get_reclaim_job(&job).await.unwrap().unwrap();
    for batch in 1..=stored.batches {
        while !reclaimer
            .reclaim_batch(&job, batch, Deadline::none())
            .await
            .expect("batch")
            .done
        {}
    }
    reclaimer.finalize(&job).await.expect("finalize");
    let acted = app
        .send(Event::get(&format!("/reclamations/{job}/accounts")).query("limit=1000"))
        .await
        .json();
    let results = acted["items"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().any(|r| r["step"] == "done"));

    // A deactivate job is restorable, by anyone allowed to call the API.
    let restored = app
        .send(Event::post(&format!("/reclamations/{job}/restore")).caller(BOB))
        .await;
    assert_eq!(restored.status, 200, "{}", restored.text());
    let done = results.iter().filter(|r| r["step"] == "done").count() as u64;
    assert_eq!(restored.json()["counts"]["acted"].as_u64(), Some(done));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_cancel_end_the_wait_with_their_failure() {
    let (app, id) = with_threshold().await;
    let job = awaiting_approval(&app, &id).await;
    let rejected = app
        .send(Event::post(&format!("/reclamations/{job}/reject")).caller(BOB))
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    assert_eq!(rejected.json()["state"], "rejected");
    assert_eq!(
        app.workflow.failures(),
        vec![(TOKEN.to_owned(), TaskFailure::Rejected)]
    );
    let late = app
        .send(Event::post(&format!("/reclamations/{job}/approve")).caller(BOB))
        .await;
    assert_eq!(late.status, 409);

    // The rejected job released the integration: the next one can start and be cancelled.
    let job = awaiting_approval(&app, &id).await;
    let cancelled = app
        .send(Event::post(&format!("/reclamations/{job}/cancel")))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    assert_eq!(cancelled.json()["state"], "cancelled");
    assert_eq!(cancelled.json()["cancelled"], true);
    assert_eq!(
        app.workflow.failures().last(),
        Some(&(TOKEN.to_owned(), TaskFailure::Cancelled))
    );
    let again = app
        .send(Event::post(&format!("/reclamations/{job}/cancel")))
        .await;
    assert_eq!(again.status, 409, "a finished job cannot be cancelled");
    assert!(app.workflow.successes().is_empty(), "nothing was approved");

    // A cancelled deactivate job acted on nobody: restoring it changes nobody.
    let restore = app
        .send(Event::post(&format!("/reclamations/{job}/restore")))
        .await;
    assert_eq!(restore.status, 200, "{}", restore.text());
    assert_eq!(restore.json()["counts"]["acted"], 0);
    assert!(
        app.sim.user_writes().iter().all(|w| w.user_id == "0"),
        "no account was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_jobs_are_not_restorable() {
    let app = TestApp::start(50).await;
    let id = app.connected_and_synced().await;
    let job = start(
        &app,
        &id,
        &json!({ "policy": { "action": "delete", "transfer_to": "999999" } }),
    )
    .await;
    let response = app
        .send(Event::post(&format!("/reclamations/{job}/restore")))
        .await;
    assert_eq!(response.status, 409);
    assert_eq!(response.error_code(), "not_restorable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_jobs_are_404_and_malformed_ids_400() {
    let app = TestApp::start(5).await;
    let unknown = ReclaimJobId::generate();
    for (method, suffix) in [
        ("GET", ""),
        ("GET", "/accounts"),
        ("POST", "/approve"),
        ("POST", "/reject"),
        ("POST", "/cancel"),
        ("POST", "/restore"),
    ] {
        let path = format!("/reclamations/{unknown}{suffix}");
        let response = app.send(Event::new(method, &path)).await;
        assert_eq!(response.status, 404, "{method} {path}: {}", response.text());
        assert_eq!(
            response.error_code(),
            "reclamation_not_found",
            "{method} {path}"
        );

        let bad = format!("/reclamations/NOT-A-UUID{suffix}");
        let response = app.send(Event::new(method, &bad)).await;
        assert_eq!(response.status, 400, "{method} {bad}");
        assert_eq!(response.error_field().as_deref(), Some("job"));
    }
    let nobody = IntegrationId::generate();
    let response = app.send(Event::get(&reclamations(&nobody))).await;
    assert_eq!(response.status, 404);
    let response = app
        .send(Event::post(&reclamations(&nobody)).json(&deactivate()))
        .await;
    assert_eq!(response.status, 404);
    let response = app
        .send(Event::get(&format!("/reclamations/{unknown}/accounts")).query("skipped=maybe"))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_field().as_deref(), Some("skipped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_cancels_the_job_and_ends_its_wait() {
    let (app, id) = with_threshold().await;
    let job = awaiting_approval(&app, &id).await;
    let response = app
        .send(Event::delete(&format!("/integrations/{id}")))
        .await;
    assert!(response.status < 300, "{}", response.text());
    let stored = app.store().get_reclaim_job(&job).await.unwrap().unwrap();
    assert!(stored.cancelled);
    assert_eq!(stored.state, JobState::Cancelled);
    assert_eq!(
        app.workflow.failures(),
        vec![(TOKEN.to_owned(), TaskFailure::Cancelled)]
    );
    assert!(app.workflow.successes().is_empty());
}

/// The local server's workflow runs the steps in the ASL's order on a task: plan, the
/// approval wait (answered through the port), the batches, finalize.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_workflow_runs_a_job_through_its_approval_to_the_end() {
    use seatkeeper_shared::services::local_workflow::LocalWorkflow;
    use seatkeeper_shared::workflow::{ExecutionInput, Workflow};
    use std::sync::Arc;

    let (app, id) = with_threshold().await;
    let local = LocalWorkflow::new(Arc::new(app.ctx.reclaimer()));
    let alice = seatkeeper_shared::domain::Actor::Iam { arn: ALICE.into() };
    let bob = seatkeeper_shared::domain::Actor::Iam { arn: BOB.into() };
    let job = app
        .ctx
        .reclaimer()
        .start_job(
            &id,
            seatkeeper_shared::domain::ReclaimPolicy::default(),
            &alice,
        )
        .await
        .expect("job");
    local
        .start(&ExecutionInput::new(job.id.clone()))
        .await
        .expect("started");
    let token = wait_for(&app, &job.id, |j| j.task_token.clone()).await;
    let approved = app
        .ctx
        .reclaimer()
        .approve(&job.id, &bob)
        .await
        .expect("approve");
    assert_eq!(approved.state, JobState::Approved);
    local
        .send_task_success(&token, &json!({ "approved": true }))
        .await
        .expect("the wait ends");
    let done = wait_for(&app, &job.id, |j| {
        (j.state == JobState::Done).then_some(j.counts)
    })
    .await;
    assert!(done.acted > 0, "{done:?}");
    assert_eq!(done.acted + done.skipped + done.failed, done.candidates);
    // The wait is over: its token no longer answers.
    assert!(local.send_task_success(&token, &json!({})).await.is_err());
}

/// A rejected wait goes to finalize: the job acts on nobody and the integration is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_workflow_ends_a_rejected_job_without_acting() {
    use seatkeeper_shared::services::local_workflow::LocalWorkflow;
    use seatkeeper_shared::workflow::{ExecutionInput, Workflow};
    use std::sync::Arc;

    let (app, id) = with_threshold().await;
    let local = LocalWorkflow::new(Arc::new(app.ctx.reclaimer()));
    let alice = seatkeeper_shared::domain::Actor::Iam { arn: ALICE.into() };
    let bob = seatkeeper_shared::domain::Actor::Iam { arn: BOB.into() };
    let job = app
        .ctx
        .reclaimer()
        .start_job(
            &id,
            seatkeeper_shared::domain::ReclaimPolicy::default(),
            &alice,
        )
        .await
        .expect("job");
    local
        .start(&ExecutionInput::new(job.id.clone()))
        .await
        .expect("started");
    let token = wait_for(&app, &job.id, |j| j.task_token.clone()).await;
    app.ctx
        .reclaimer()
        .reject(&job.id, &bob)
        .await
        .expect("reject");
    local
        .send_task_failure(&token, TaskFailure::Rejected, "rejected")
        .await
        .expect("the wait ends");
    let counts = wait_for(&app, &job.id, |j| {
        (j.state == JobState::Rejected).then_some(j.counts)
    })
    .await;
    assert_eq!(counts.acted, 0);
    assert!(
        app.sim.user_writes().iter().all(|w| w.user_id == "0"),
        "no account was written"
    );
    // The integration is free for the next job.
    start(&app, &id, &deactivate()).await;
}

/// Polls the job until `ready` picks something from it (at most 60 s).
async fn wait_for<T>(
    app: &TestApp,
    job: &ReclaimJobId,
    ready: impl Fn(&seatkeeper_shared::domain::ReclaimJob) -> Option<T>,
) -> T {
    for _ in 0..600 {
        let stored = app.store().get_reclaim_job(job).await.unwrap().unwrap();
        if let Some(found) = ready(&stored) {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("job {job} did not get there in time");
}
