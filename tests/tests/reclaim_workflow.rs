//! The reclaim state machine (`infra/statemachines/reclaim.asl.json`) on moto's Step
//! Functions interpreter, driven through the `Workflow` adapter (`SfnWorkflow`), and the SNS
//! `Notifier` adapter.
//!
//! What moto executes, exactly:
//! - the real definition, with the two `${...}` placeholders the template substitutes
//!   replaced by a function ARN and a topic ARN of the test's region. Its Choice, Wait, Map
//!   and loop states, ResultSelector/ResultPath, `.waitForTaskToken` with
//!   `SendTaskSuccess`/`SendTaskFailure`, `TimeoutSeconds` and Catch all run in moto's
//!   interpreter (`{"stepfunctions": {"execute_state_machine": true}}`);
//! - every `lambda:invoke` goes to moto's Lambda without Docker
//!   (`{"lambda": {"use_docker": false}}`), which runs no code: it answers the next
//!   queued result (`/moto-api/static/lambda-simple/response`). The tests queue answers
//!   in the shape the reclaim service serialises (`PlanSummary`, `BatchOutcome`, ...).
//!   The real handler is tested on its own (`functions/reclaim/tests/handler.rs`) with the
//!   payloads this interpreter sent, which the tests here also parse with it;
//! - moto's Lambda cannot fail an invocation, so the Retry/Catch of Lambda errors is
//!   proven statically (`functions/reclaim/tests/asl.rs`), not here. The Catch paths that
//!   run here are the approval's: a rejection and a cancel (`SendTaskFailure`) and an
//!   expiry (`States.Timeout`, with the approval's 7-day timeout lowered to 1 s in a copy
//!   made by the test);
//! - the `NotifyFinalizeFailed` → `FinalizeFailed` end is run on its own: those two
//!   states, copied from the definition, publish to a real (moto) SNS topic.
//!
//! moto 5.2.1 can run one execution per account and region: a second StartExecution
//! deep-copies the backend, running executions included, and fails. Each test uses its
//! own region, which also keeps the queued Lambda answers apart, so the tests run in
//! parallel on one server.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType, StateMachineType};
use reclaim::ReclaimRequest;
use seatkeeper_shared::domain::{JobCounts, JobState, ReclaimJobId, TaskToken};
use seatkeeper_shared::notify::{MAX_SUBJECT_CHARS, SnsNotifier};
use seatkeeper_shared::services::reclaim::{
    ApprovalWait, BatchOutcome, JobSummary, Notice, Notifier, PlanSummary,
};
use seatkeeper_shared::workflow::{
    ExecutionId, ExecutionInput, SfnWorkflow, TaskFailure, Workflow, WorkflowError,
};
use seatkeeper_tests::{Moto, error_chain};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

const ACCOUNT: &str = "123456789012";

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn nothing_to_do_ends_at_the_choice_with_the_plan_summary() {
    let region = TestRegion::new("us-east-2").await;
    let workflow = region.workflow(&region.definition()).await;
    let job = ReclaimJobId::generate();
    region
        .queue_lambda_answers(&[plan_answer(&job, 0, &[], false)])
        .await;

    let execution = start(&workflow, ExecutionInput::new(job.clone())).await;
    let end = region.wait_for_end(&execution).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    assert_eq!(
        end.output,
        json!({ "candidates": 0, "excluded": 2, "batches": [], "dry_run": false,
                "needs_approval": false, "permanent": false }),
        "the execution answers the plan summary"
    );
    let history = region.history(&execution).await;
    assert_eq!(entered(&history), ["Plan", "AnythingToDo", "Planned"]);
    assert_eq!(actions_sent(&history, &job), ["plan"]);
}

#[tokio::test]
async fn a_dry_run_ends_at_the_choice_without_asking_for_approval() {
    let region = TestRegion::new("us-west-1").await;
    let workflow = region.workflow(&region.definition()).await;
    let job = ReclaimJobId::generate();
    region
        .queue_lambda_answers(&[plan_answer(&job, 7, &[1], true)])
        .await;

    let execution = start(&workflow, ExecutionInput::new(job.clone())).await;
    let end = region.wait_for_end(&execution).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    assert_eq!(end.output["dry_run"], true);
    assert_eq!(end.output["candidates"], 7);
    let history = region.history(&execution).await;
    assert_eq!(entered(&history), ["Plan", "AnythingToDo", "Planned"]);
    assert_eq!(actions_sent(&history, &job), ["plan"]);
}

#[tokio::test]
async fn an_approved_job_runs_every_batch_until_done_then_finalizes() {
    let region = TestRegion::new("us-west-2").await;
    let workflow = region.workflow(&region.definition()).await;
    let job = ReclaimJobId::generate();
    let summary = JobSummary {
        job_id: job.clone(),
        state: JobState::Done,
        counts: JobCounts {
            candidates: 60,
            acted: 58,
            skipped: 2,
            ..JobCounts::default()
        },
    };
    // In invocation order: plan, the approval wait, three batch invocations (one batch
    // needs a second round: whichever batch gets the `done: false` answer loops), finalize.
    region
        .queue_lambda_answers(&[
            plan_answer(&job, 60, &[1, 2], false),
            json!(ApprovalWait {
                auto_approved: false
            }),
            batch_answer(&job, 1, false),
            batch_answer(&job, 1, true),
            batch_answer(&job, 2, true),
            json!(summary),
        ])
        .await;

    let input = ExecutionInput::new(job.clone()).with_notice_seconds(0);
    let execution = start(&workflow, input.clone()).await;
    // Starting the same job again while it runs names the same execution.
    assert_eq!(start(&workflow, input.clone()).await, execution);

    // The approval: the API answers the token the function stored.
    let token = region.task_token(&execution).await;
    workflow
        .send_task_success(
            &token,
            &json!({ "approved_by": "arn:aws:iam::123456789012:user/approver" }),
        )
        .await
        .unwrap_or_else(|e| panic!("send_task_success: {}", error_chain(&e)));

    let end = region.wait_for_end(&execution).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    assert_eq!(
        end.output,
        json!(summary),
        "the execution answers Finalize's summary"
    );

    let history = region.history(&execution).await;
    let states = entered(&history);
    assert_eq!(
        states[..6],
        [
            "Plan",
            "AnythingToDo",
            "AwaitApproval",
            "HasNoticePeriod",
            "NoticePeriod",
            "ReclaimBatches"
        ],
        "{states:?}"
    );
    assert_eq!(states.last().map(String::as_str), Some("Finalize"));
    let count = |name: &str| states.iter().filter(|s| *s == name).count();
    assert_eq!(
        count("ReclaimBatch"),
        3,
        "one batch looped once: {states:?}"
    );
    assert_eq!(count("BatchDone"), 3);
    assert_eq!(count("BatchFinished"), 2, "both batches finished");
    assert_eq!(count("BatchFailed"), 0);

    let sent = actions_sent(&history, &job);
    assert_eq!(
        sent,
        [
            "plan",
            "await_approval",
            "reclaim_batch",
            "reclaim_batch",
            "reclaim_batch",
            "finalize"
        ]
    );
    let batches: BTreeSet<u64> = lambda_payloads(&history)
        .iter()
        .filter(|p| p["action"] == "reclaim_batch")
        .filter_map(|p| p["batch"].as_u64())
        .collect();
    assert_eq!(
        batches,
        BTreeSet::from([1, 2]),
        "every batch number of the plan ran"
    );

    // Lambda's response metadata never enters the state; the state stays small.
    for (name, output) in exited_outputs(&history) {
        for metadata in [
            "StatusCode",
            "ExecutedVersion",
            "SdkHttpMetadata",
            "Payload",
        ] {
            assert!(
                !output.contains(metadata),
                "{name} kept {metadata}: {output}"
            );
        }
        assert!(
            output.len() < 2_000,
            "{name}: {} bytes of state",
            output.len()
        );
    }

    // The wait is over: its token answers nothing, and the job cannot start again.
    assert!(matches!(
        workflow.send_task_success(&token, &json!({})).await,
        Err(WorkflowError::TaskClosed)
    ));
    assert!(matches!(
        workflow.start(&input).await,
        Err(WorkflowError::AlreadyStarted(id)) if id == job
    ));
}

#[tokio::test]
async fn a_rejected_job_goes_to_finalize_and_acts_on_nobody() {
    approval_failure_goes_to_finalize("eu-west-1", TaskFailure::Rejected, JobState::Rejected).await;
}

#[tokio::test]
async fn a_job_cancelled_while_it_waits_goes_to_finalize() {
    approval_failure_goes_to_finalize("eu-west-2", TaskFailure::Cancelled, JobState::Cancelled)
        .await;
}

#[tokio::test]
async fn an_unanswered_approval_expires_into_finalize() {
    let region = TestRegion::new("eu-central-1").await;
    // The real definition with the approval's 7-day timeout lowered to 1 second.
    let mut definition = region.definition();
    assert_eq!(
        definition["States"]["AwaitApproval"]["TimeoutSeconds"],
        604_800
    );
    definition["States"]["AwaitApproval"]["TimeoutSeconds"] = json!(1);
    let workflow = region.workflow(&definition).await;
    let job = ReclaimJobId::generate();
    let summary = JobSummary {
        job_id: job.clone(),
        state: JobState::Expired,
        counts: JobCounts::default(),
    };
    region
        .queue_lambda_answers(&[
            plan_answer(&job, 3, &[1], false),
            json!(ApprovalWait {
                auto_approved: false
            }),
            json!(summary),
        ])
        .await;

    let execution = start(&workflow, ExecutionInput::new(job.clone())).await;
    let end = region.wait_for_end(&execution).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    assert_eq!(end.output, json!(summary));
    let history = region.history(&execution).await;
    let timed_out: Vec<&str> = history
        .iter()
        .filter_map(|e| e.task_timed_out_event_details())
        .filter_map(|d| d.error())
        .collect();
    assert_eq!(timed_out, ["States.Timeout"]);
    assert_eq!(
        entered(&history),
        ["Plan", "AnythingToDo", "AwaitApproval", "Finalize"]
    );
    assert_eq!(
        actions_sent(&history, &job),
        ["plan", "await_approval", "finalize"]
    );
}

#[tokio::test]
async fn a_finalize_that_fails_is_reported_on_the_topic_and_fails_the_execution() {
    let region = TestRegion::new("ap-southeast-1").await;
    let topic = region.create_topic("seatkeeper-alarms").await;
    // The definition's last two states, as they are, run from a state that holds what
    // Finalize's Catch leaves (ResultPath $.finalize_failure).
    let full = region.definition_with_topic(&topic);
    let mut states = serde_json::Map::new();
    for name in ["NotifyFinalizeFailed", "FinalizeFailed"] {
        states.insert(name.to_owned(), full["States"][name].clone());
    }
    let tail = json!({ "StartAt": "NotifyFinalizeFailed", "States": states });
    let workflow = region.workflow(&tail).await;
    let job = ReclaimJobId::generate();

    // The input of `NotifyFinalizeFailed` is the execution's input here: an ExecutionInput
    // cannot carry `finalize_failure`, so this one starts through the client directly.
    let arn = region
        .sfn
        .start_execution()
        .state_machine_arn(workflow.state_machine_arn())
        .name(format!("job-{job}"))
        .input(
            json!({
                "job_id": job,
                "plan": { "candidates": 3 },
                "finalize_failure": { "Error": "Seatkeeper.Internal", "Cause": "{\"errorMessage\":\"store\"}" },
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("start: {}", error_chain(&e)))
        .execution_arn;
    let end = region.wait_for_end(&ExecutionId::new(arn)).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    assert_eq!(end.error.as_deref(), Some("Seatkeeper.FinalizeFailed"));

    let published = region.published(&topic).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let (subject, message) = &published[0];
    assert_eq!(subject, "Seatkeeper: a reclaim job could not be finalised");
    assert!(
        message.contains(job.as_str()) && message.contains("Seatkeeper.Internal"),
        "the notice names the job and the error: {message}"
    );
}

#[tokio::test]
async fn the_adapter_stops_an_execution_and_names_unknown_ones() {
    let region = TestRegion::new("ap-northeast-1").await;
    let workflow = region.workflow(&region.definition()).await;
    let job = ReclaimJobId::generate();
    region
        .queue_lambda_answers(&[
            plan_answer(&job, 3, &[1], false),
            json!(ApprovalWait {
                auto_approved: false
            }),
        ])
        .await;
    let execution = start(&workflow, ExecutionInput::new(job.clone())).await;
    region.task_token(&execution).await; // it waits for its approval now
    workflow
        .stop(&execution, "stopped by the test")
        .await
        .unwrap_or_else(|e| panic!("stop: {}", error_chain(&e)));

    let unknown = ExecutionId::new(execution.as_str().replace(
        &format!("job-{job}"),
        &format!("job-{}", ReclaimJobId::generate()),
    ));
    assert!(matches!(
        workflow.stop(&unknown, "no such execution").await,
        Err(WorkflowError::ExecutionNotFound)
    ));
    // A notice period beyond the limit is refused before Step Functions is called.
    let too_long = ExecutionInput::new(ReclaimJobId::generate())
        .with_notice_seconds(seatkeeper_shared::workflow::MAX_NOTICE_SECONDS + 1);
    assert!(matches!(
        workflow.start(&too_long).await,
        Err(WorkflowError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_sns_notifier_publishes_a_subject_sns_accepts() {
    let region = TestRegion::new("ca-central-1").await;
    let topic = region.create_topic("seatkeeper-notices").await;
    let notifier = SnsNotifier::new(region.sns(), topic.clone());
    // An integration's name can be long and hold any character; SNS refuses a subject of
    // 100 characters or more, or with line breaks.
    let subject = format!(
        "Seatkeeper: reclaim job {} on Zürich\nteam {} awaits approval",
        ReclaimJobId::generate(),
        "x".repeat(80)
    );
    let notice = Notice {
        subject: subject.clone(),
        message: "Reclaim job ... would deactivate 12 accounts.".to_owned(),
    };
    notifier
        .notify(&notice)
        .await
        .unwrap_or_else(|e| panic!("notify: {}", error_chain(&e)));
    let published = region.published(&topic).await;
    assert_eq!(published.len(), 1);
    let (sent_subject, sent_message) = &published[0];
    assert_eq!(sent_message, &notice.message);
    assert_eq!(sent_subject.chars().count(), MAX_SUBJECT_CHARS);
    assert!(sent_subject.starts_with("Seatkeeper: reclaim job "));
    assert!(sent_subject.is_ascii() && !sent_subject.contains('\n'));

    let missing = SnsNotifier::new(
        region.sns(),
        format!("arn:aws:sns:{}:{ACCOUNT}:no-such-topic", region.name),
    );
    assert!(
        missing.notify(&notice).await.is_err(),
        "an unknown topic is an error"
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios and answers
// ---------------------------------------------------------------------------------------------

async fn approval_failure_goes_to_finalize(
    region: &'static str,
    failure: TaskFailure,
    recorded: JobState,
) {
    let region = TestRegion::new(region).await;
    let workflow = region.workflow(&region.definition()).await;
    let job = ReclaimJobId::generate();
    let summary = JobSummary {
        job_id: job.clone(),
        state: recorded,
        counts: JobCounts {
            candidates: 3,
            ..JobCounts::default()
        },
    };
    region
        .queue_lambda_answers(&[
            plan_answer(&job, 3, &[1], false),
            json!(ApprovalWait {
                auto_approved: false
            }),
            json!(summary),
        ])
        .await;
    let execution = start(&workflow, ExecutionInput::new(job.clone())).await;
    let token = region.task_token(&execution).await;
    workflow
        .send_task_failure(&token, failure, "answered by the test")
        .await
        .unwrap_or_else(|e| panic!("send_task_failure: {}", error_chain(&e)));

    let end = region.wait_for_end(&execution).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    assert_eq!(end.output, json!(summary));
    let history = region.history(&execution).await;
    let failed: Vec<&str> = history
        .iter()
        .filter_map(|e| e.task_failed_event_details())
        .filter_map(|d| d.error())
        .collect();
    assert_eq!(failed, [failure.error_name()]);
    assert_eq!(
        entered(&history),
        ["Plan", "AnythingToDo", "AwaitApproval", "Finalize"]
    );
    assert_eq!(
        actions_sent(&history, &job),
        ["plan", "await_approval", "finalize"],
        "no batch ran"
    );
}

fn plan_answer(job: &ReclaimJobId, candidates: u32, batches: &[u32], dry_run: bool) -> Value {
    json!(PlanSummary {
        job_id: job.clone(),
        candidates,
        excluded: 2,
        batches: batches.to_vec(),
        dry_run,
        needs_approval: !dry_run && candidates > 0,
        permanent: false,
    })
}

fn batch_answer(job: &ReclaimJobId, batch: u32, done: bool) -> Value {
    json!(BatchOutcome {
        job_id: job.clone(),
        batch,
        done,
        acted: if done { 29 } else { 10 },
        skipped: 1,
        failed: 0,
    })
}

async fn start(workflow: &SfnWorkflow, input: ExecutionInput) -> ExecutionId {
    workflow
        .start(&input)
        .await
        .unwrap_or_else(|e| panic!("start: {}", error_chain(&e)))
}

// ---------------------------------------------------------------------------------------------
// One region of the emulator
// ---------------------------------------------------------------------------------------------

struct TestRegion {
    name: &'static str,
    config: aws_config::SdkConfig,
    sfn: aws_sdk_sfn::Client,
    http: reqwest::Client,
}

struct End {
    status: ExecutionStatus,
    output: Value,
    error: Option<String>,
}

impl std::fmt::Debug for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {} {:?}", self.status, self.output, self.error)
    }
}

impl TestRegion {
    async fn new(name: &'static str) -> TestRegion {
        let moto = &*MOTO;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http client");
        // Idempotent: every test sets the same configuration before it creates anything.
        let response = http
            .post(format!("{}/moto-api/config", moto.endpoint()))
            .json(&json!({
                "stepfunctions": { "execute_state_machine": true },
                "lambda": { "use_docker": false },
            }))
            .send()
            .await
            .expect("moto config");
        assert!(
            response.status().is_success(),
            "moto config: {}",
            response.status()
        );
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(name))
            .credentials_provider(aws_sdk_sfn::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "seatkeeper-tests",
            ))
            .endpoint_url(moto.endpoint())
            .load()
            .await;
        let sfn = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(&config)
                .endpoint_url(moto.endpoint())
                .build(),
        );
        TestRegion {
            name,
            config,
            sfn,
            http,
        }
    }

    fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&self.config)
                .endpoint_url(MOTO.endpoint())
                .build(),
        )
    }

    /// The real definition, with what the template substitutes.
    fn definition(&self) -> Value {
        self.definition_with_topic(&format!(
            "arn:aws:sns:{}:{ACCOUNT}:seatkeeper-alarms",
            self.name
        ))
    }

    fn definition_with_topic(&self, topic: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/statemachines/reclaim.asl.json");
        let text = std::fs::read_to_string(&path).expect("the definition");
        let text = text
            .replace(
                "${ReclaimFunctionArn}",
                &format!(
                    "arn:aws:lambda:{}:{ACCOUNT}:function:seatkeeper-reclaim",
                    self.name
                ),
            )
            .replace("${NotifyTopicArn}", topic);
        assert!(!text.contains("${"), "a placeholder the test does not fill");
        serde_json::from_str(&text).expect("the definition is JSON")
    }

    /// A Standard state machine of `definition`, behind the Workflow adapter.
    async fn workflow(&self, definition: &Value) -> SfnWorkflow {
        let arn = self
            .sfn
            .create_state_machine()
            .name(format!(
                "seatkeeper-reclaim-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .definition(definition.to_string())
            .role_arn(format!(
                "arn:aws:iam::{ACCOUNT}:role/seatkeeper-reclaim-state-machine"
            ))
            .r#type(StateMachineType::Standard)
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto refused the definition: {}", error_chain(&e)))
            .state_machine_arn;
        SfnWorkflow::new(self.sfn.clone(), arn)
    }

    /// What moto's Lambda answers to the next invocations in this region, in order.
    async fn queue_lambda_answers(&self, answers: &[Value]) {
        let results: Vec<String> = answers.iter().map(Value::to_string).collect();
        let response = self
            .http
            .post(format!(
                "{}/moto-api/static/lambda-simple/response",
                MOTO.endpoint()
            ))
            .json(&json!({ "results": results, "region": self.name, "account_id": ACCOUNT }))
            .send()
            .await
            .expect("queue lambda answers");
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn create_topic(&self, name: &str) -> String {
        self.sns()
            .create_topic()
            .name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create_topic: {}", error_chain(&e)))
            .topic_arn
            .expect("topic arn")
    }

    /// `(subject, message)` of everything published to `topic`, from moto's model data.
    async fn published(&self, topic: &str) -> Vec<(String, String)> {
        let data: Value = self
            .http
            .get(format!("{}/moto-api/data.json", MOTO.endpoint()))
            .send()
            .await
            .expect("moto data")
            .json()
            .await
            .expect("moto data is JSON");
        let topics = data["sns"]["Topic"].as_array().expect("sns topics");
        let topic = topics
            .iter()
            .find(|t| t["arn"] == topic)
            .unwrap_or_else(|| panic!("no topic {topic} in moto"));
        topic["sent_notifications"]
            .as_array()
            .expect("sent notifications")
            .iter()
            .map(|n| {
                (
                    n[2].as_str().unwrap_or_default().to_owned(),
                    n[1].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    async fn wait_for_end(&self, execution: &ExecutionId) -> End {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let described = self
                .sfn
                .describe_execution()
                .execution_arn(execution.as_str())
                .send()
                .await
                .unwrap_or_else(|e| panic!("describe_execution: {}", error_chain(&e)));
            if described.status != ExecutionStatus::Running {
                return End {
                    status: described.status,
                    output: described
                        .output
                        .as_deref()
                        .map(|o| serde_json::from_str(o).expect("output is JSON"))
                        .unwrap_or(Value::Null),
                    error: described.error,
                };
            }
            assert!(
                Instant::now() < give_up,
                "{execution} still runs: {:?}",
                entered(&self.history(execution).await)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn history(&self, execution: &ExecutionId) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .sfn
                .get_execution_history()
                .execution_arn(execution.as_str())
                .set_next_token(next.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("get_execution_history: {}", error_chain(&e)));
            events.extend(page.events);
            match page.next_token {
                Some(token) => next = Some(token),
                None => return events,
            }
        }
    }

    /// The token of the approval wait, from the payload the interpreter sent the function
    /// (the function would store it; the API would answer it).
    async fn task_token(&self, execution: &ExecutionId) -> TaskToken {
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            let history = self.history(execution).await;
            let token = lambda_payloads(&history)
                .into_iter()
                .find(|p| p["action"] == "await_approval")
                .and_then(|p| p["task_token"].as_str().map(TaskToken::new));
            let waiting = history
                .iter()
                .any(|e| *e.r#type() == HistoryEventType::TaskSubmitted);
            if let (Some(token), true) = (token, waiting) {
                return token;
            }
            assert!(
                Instant::now() < give_up,
                "no approval wait: {:?}",
                entered(&history)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a history
// ---------------------------------------------------------------------------------------------

fn entered(history: &[HistoryEvent]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect()
}

/// `(state, output)` of every state left.
fn exited_outputs(history: &[HistoryEvent]) -> Vec<(String, String)> {
    history
        .iter()
        .filter_map(|e| e.state_exited_event_details())
        .map(|d| {
            (
                d.name().to_owned(),
                d.output().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The payloads the interpreter sent the function, in order.
fn lambda_payloads(history: &[HistoryEvent]) -> Vec<Value> {
    history
        .iter()
        .filter_map(|e| e.task_scheduled_event_details())
        .filter(|d| d.resource_type() == "lambda")
        .map(|d| {
            let parameters: Value =
                serde_json::from_str(d.parameters()).expect("parameters are JSON");
            parameters["Payload"].clone()
        })
        .collect()
}

/// The actions sent, each payload checked by the handler's own parser.
fn actions_sent(history: &[HistoryEvent], job: &ReclaimJobId) -> Vec<&'static str> {
    lambda_payloads(history)
        .iter()
        .map(|payload| {
            let request = ReclaimRequest::parse(payload)
                .unwrap_or_else(|e| panic!("the handler refuses {payload}: {e}"));
            assert_eq!(request.job_id(), job, "{payload}");
            request.action()
        })
        .collect()
}
