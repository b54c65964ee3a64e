//! The state machine (`infra/statemachines/reclaim.asl.json`) against this handler and the
//! reclaim service: every Task's payload is one the handler accepts, every action the
//! handler accepts is used, and every error name the function can raise is retried where
//! it is worth retrying and caught everywhere else. `infra/check` runs asl-validator on the
//! same file; `tests/tests/reclaim_workflow.rs` runs it on moto's interpreter.

use reclaim::{
    HANDLER_ERROR_NAMES, INTERNAL, INVALID_REQUEST, ReclaimRequest, WORKFLOW_UNAVAILABLE,
};
use seatkeeper_shared::domain::{IntegrationId, JobCounts, JobState, ReclaimJobId};
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::services::reclaim::{
    BatchOutcome, ERROR_NAMES, JobSummary, PlanSummary, ReclaimError,
};
use seatkeeper_shared::store::StoreError;
use seatkeeper_shared::workflow::TaskFailure;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use support::{Bindings, definition, resolve};

mod support;

/// Retryable errors each action can raise, and so must retry. A new retryable name in the
/// service fails `every_retryable_error_has_a_task_that_retries_it` until it is placed here
/// and in the definition.
const EXPECTED_RETRIES: &[(&str, &[&str])] = &[
    // A sync holds the lease; Box rate limits or is down while plan reads memberships.
    (
        "plan",
        &[
            "Seatkeeper.SyncRunning",
            "Seatkeeper.RateLimited",
            "Seatkeeper.ProviderUnavailable",
        ],
    ),
    // Step Functions did not take the auto-approval's answer: the retried wait brings a
    // new token for the same, still approved job.
    ("await_approval", &[WORKFLOW_UNAVAILABLE]),
    // Box rate limits, is down, or still moves a user's content; another job or a restore
    // holds an account's lock.
    (
        "reclaim_batch",
        &[
            "Seatkeeper.RateLimited",
            "Seatkeeper.ProviderUnavailable",
            "Seatkeeper.TransferPending",
            "Seatkeeper.Busy",
        ],
    ),
    // Reads and writes the table only.
    ("finalize", &[]),
];

/// Lambda's own transient failures, retried on every Task (AWS's recommendation for
/// `lambda:invoke`).
const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_task_action_in_the_definition_is_one_the_handler_accepts() {
    let definition = definition();
    let mut used = BTreeSet::new();
    for task in lambda_tasks(&definition) {
        assert_eq!(
            task.state["Parameters"]["FunctionName"].as_str(),
            Some("${ReclaimFunctionArn}"),
            "{}: every Task invokes the reclaim function",
            task.name
        );
        let payload = concrete_payload(&task.name, &task.state["Parameters"]["Payload"]);
        let request = ReclaimRequest::parse(&payload).unwrap_or_else(|e| {
            panic!(
                "{}: the handler refuses the payload {payload}: {e}",
                task.name
            )
        });
        assert_eq!(
            Some(request.action()),
            payload["action"].as_str(),
            "{}: parsed as another action",
            task.name
        );
        assert_eq!(
            request.job_id().as_str(),
            SAMPLE_JOB_ID,
            "{}: job_id",
            task.name
        );
        used.insert(request.action());
    }
    let handled: BTreeSet<&str> = ReclaimRequest::ACTIONS.iter().copied().collect();
    assert_eq!(
        used, handled,
        "the definition uses exactly the actions the handler accepts"
    );
}

#[test]
fn only_the_approval_waits_for_a_task_token_and_it_passes_the_token() {
    let definition = definition();
    for task in lambda_tasks(&definition) {
        let resource = task.state["Resource"].as_str().unwrap_or_default();
        let payload = &task.state["Parameters"]["Payload"];
        let action = payload["action"].as_str().unwrap_or_default();
        if action == "await_approval" {
            assert_eq!(
                resource, "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "{}: the approval waits for its token",
                task.name
            );
            assert_eq!(payload["task_token.$"], "$$.Task.Token", "{}", task.name);
            assert_eq!(
                task.state["TimeoutSeconds"].as_u64(),
                Some(7 * 24 * 3600),
                "{}: an unanswered approval expires after 7 days",
                task.name
            );
        } else {
            assert_eq!(
                resource, "arn:aws:states:::lambda:invoke",
                "{}: only the approval waits for a token",
                task.name
            );
        }
    }
}

#[test]
fn every_error_name_in_the_definition_is_one_something_raises() {
    let known: BTreeSet<&str> = ERROR_NAMES
        .iter()
        .chain(HANDLER_ERROR_NAMES)
        .chain(TaskFailure::ERROR_NAMES)
        .copied()
        .collect();
    let definition = definition();
    for state in all_states(&definition) {
        for (kind, name) in error_names(state.state) {
            assert!(
                known.contains(name.as_str())
                    || name.starts_with("States.")
                    || name.starts_with("Lambda."),
                "{}: {kind} names {name}, which neither the reclaim service, the handler nor \
                 an approval answer raises",
                state.name
            );
        }
    }
    // The handler's own names are ones the service documents or ones listed here.
    assert!(ERROR_NAMES.contains(&INVALID_REQUEST));
    assert!(ERROR_NAMES.contains(&INTERNAL));
    for name in HANDLER_ERROR_NAMES {
        assert!(
            !ERROR_NAMES.contains(name),
            "{name} is the service's already"
        );
    }
}

#[test]
fn retryable_errors_are_retried_where_they_arise_and_no_other_error_is() {
    let retryable = retryable_names();
    let expected: BTreeMap<&str, BTreeSet<&str>> = EXPECTED_RETRIES
        .iter()
        .map(|(action, names)| (*action, names.iter().copied().collect()))
        .collect();
    let definition = definition();
    for task in lambda_tasks(&definition) {
        let action = task.state["Parameters"]["Payload"]["action"]
            .as_str()
            .unwrap_or_default();
        let retried: BTreeSet<String> = retried_names(task.state);
        let ours: BTreeSet<&str> = retried
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("Seatkeeper."))
            .collect();
        for name in &ours {
            assert!(
                retryable.contains(name),
                "{}: retries {name}, which a retry cannot fix",
                task.name
            );
        }
        assert_eq!(
            ours, expected[action],
            "{}: retries exactly the retryable errors `{action}` can raise",
            task.name
        );
        for name in LAMBDA_SERVICE_ERRORS {
            assert!(
                retried.contains(*name),
                "{}: Lambda's transient {name} is not retried",
                task.name
            );
        }
        // Never retried: an approval answer, a timeout, or a failure of the function itself.
        for name in TaskFailure::ERROR_NAMES.iter().chain(&[
            "States.ALL",
            "States.Timeout",
            "States.TaskFailed",
        ]) {
            assert!(!retried.contains(*name), "{}: retries {name}", task.name);
        }
    }
}

#[test]
fn every_retryable_error_has_a_task_that_retries_it() {
    let placed: BTreeSet<&str> = EXPECTED_RETRIES
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .collect();
    for name in retryable_names() {
        assert!(
            placed.contains(name),
            "{name} is retryable but no action is expected to raise it: add it to \
             EXPECTED_RETRIES and to the Task's Retry"
        );
    }
}

#[test]
fn failures_that_are_not_retried_are_caught_and_reach_finalize() {
    let definition = definition();
    let top = &definition["States"];
    for task in lambda_tasks(&definition) {
        let catchers = task.state["Catch"].as_array().cloned().unwrap_or_default();
        let all = catchers
            .iter()
            .find(|c| names_of(&c["ErrorEquals"]).contains(&"States.ALL".to_owned()))
            .unwrap_or_else(|| panic!("{}: no Catch of States.ALL", task.name));
        let next = all["Next"].as_str().unwrap_or_default();
        let action = task.state["Parameters"]["Payload"]["action"]
            .as_str()
            .unwrap_or_default();
        match action {
            // A failed batch is caught inside its own iteration: the other batches go on.
            "reclaim_batch" => {
                assert!(
                    task.in_map,
                    "{}: reclaim_batch runs inside the Map",
                    task.name
                );
                assert!(
                    top.get(next).is_none(),
                    "{}: a failed batch must end its own iteration, not leave the Map",
                    task.name
                );
            }
            "finalize" => assert_ne!(next, task.name, "finalize cannot catch into itself"),
            _ => assert_eq!(
                top[next]["Parameters"]["Payload"]["action"], "finalize",
                "{}: its failures go to Finalize",
                task.name
            ),
        }
    }
    // A rejection, a cancel and an expired approval end in Finalize, which records them.
    let approval = lambda_tasks(&definition)
        .into_iter()
        .find(|t| t.state["Parameters"]["Payload"]["action"] == "await_approval")
        .expect("an approval task");
    for name in TaskFailure::ERROR_NAMES.iter().chain(&["States.Timeout"]) {
        let catcher = approval.state["Catch"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| names_of(&c["ErrorEquals"]).iter().any(|n| n == name))
            .unwrap_or_else(|| panic!("{name} is not caught by name on the approval"));
        assert_eq!(
            top[catcher["Next"].as_str().unwrap_or_default()]["Parameters"]["Payload"]["action"],
            "finalize",
            "{name} goes to Finalize"
        );
    }
    // The Map itself drains to Finalize whatever happens inside it.
    let (map_name, map) = top
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, s)| s["Type"] == "Map")
        .expect("a Map state");
    assert_eq!(
        top[map["Next"].as_str().unwrap_or_default()]["Parameters"]["Payload"]["action"],
        "finalize",
        "{map_name}: then Finalize"
    );
    let map_catch = map["Catch"].as_array().expect("the Map catches");
    assert!(
        map_catch.iter().any(|c| {
            names_of(&c["ErrorEquals"]).contains(&"States.ALL".to_owned())
                && top[c["Next"].as_str().unwrap_or_default()]["Parameters"]["Payload"]["action"]
                    == "finalize"
        }),
        "{map_name}: a failure of the Map goes to Finalize"
    );
}

#[test]
fn retries_of_provider_trouble_back_off_for_long() {
    let definition = definition();
    for task in lambda_tasks(&definition) {
        for retrier in task.state["Retry"].as_array().into_iter().flatten() {
            let names = names_of(&retrier["ErrorEquals"]);
            if !names.iter().any(|n| {
                [
                    "Seatkeeper.TransferPending",
                    "Seatkeeper.RateLimited",
                    "Seatkeeper.ProviderUnavailable",
                    "Seatkeeper.SyncRunning",
                ]
                .contains(&n.as_str())
            }) {
                continue;
            }
            let interval = retrier["IntervalSeconds"].as_u64().unwrap_or(1);
            let rate = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
            let attempts = retrier["MaxAttempts"].as_u64().unwrap_or(3);
            assert!(
                interval >= 60 && rate >= 2.0 && attempts >= 6,
                "{}: {names:?} need a long backoff (a transfer of a large account takes \
                 minutes), got {interval} s × {rate}, {attempts} attempts",
                task.name
            );
        }
    }
}

#[test]
fn the_state_keeps_ids_counts_and_batch_numbers_only() {
    // What each action answers, as the service serialises it: the ResultSelectors must
    // pick fields that exist (a renamed field would fail the execution at run time).
    let job_id = ReclaimJobId::parse(SAMPLE_JOB_ID).expect("job id");
    let answers: BTreeMap<&str, Value> = BTreeMap::from([
        (
            "plan",
            serde_json::to_value(PlanSummary {
                job_id: job_id.clone(),
                candidates: 3,
                excluded: 1,
                batches: vec![1],
                dry_run: false,
                needs_approval: true,
                permanent: false,
            })
            .expect("json"),
        ),
        (
            "reclaim_batch",
            serde_json::to_value(BatchOutcome {
                job_id: job_id.clone(),
                batch: 1,
                done: true,
                acted: 1,
                skipped: 0,
                failed: 0,
            })
            .expect("json"),
        ),
        (
            "finalize",
            serde_json::to_value(JobSummary {
                job_id,
                state: JobState::Done,
                counts: JobCounts::default(),
            })
            .expect("json"),
        ),
    ]);
    let definition = definition();
    for task in lambda_tasks(&definition) {
        let action = task.state["Parameters"]["Payload"]["action"]
            .as_str()
            .unwrap_or_default();
        if action == "await_approval" {
            // The approval's answer (whatever the approver sent) is dropped.
            assert!(
                task.state["ResultPath"].is_null(),
                "{}: ResultPath null",
                task.name
            );
            assert!(
                task.state.get("ResultPath").is_some(),
                "{}: ResultPath null",
                task.name
            );
            continue;
        }
        let selector = task.state["ResultSelector"].as_object().unwrap_or_else(|| {
            panic!(
                "{}: no ResultSelector: Lambda's metadata would stay in the state",
                task.name
            )
        });
        let answer = &answers[action];
        for (key, path) in selector {
            let field = path
                .as_str()
                .and_then(|p| p.strip_prefix("$.Payload."))
                .unwrap_or_else(|| panic!("{}: {key} should select $.Payload.<field>", task.name));
            assert!(
                key.ends_with(".$") && answer.get(field).is_some(),
                "{}: selects {field}, which `{action}` does not answer ({answer})",
                task.name
            );
            assert!(
                !["accounts", "candidates_list", "task_token"].contains(&field),
                "{}: keeps {field} in the state",
                task.name
            );
        }
    }

    let top = &definition["States"];
    let map = top
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
        .find(|s| s["Type"] == "Map")
        .expect("a Map state");
    assert_eq!(
        map["ItemsPath"], "$.plan.batches",
        "one iteration per batch number"
    );
    let concurrency = map["MaxConcurrency"].as_u64().unwrap_or(0);
    assert!(
        (2..=4).contains(&concurrency),
        "MaxConcurrency {concurrency}: bounded (Box rate limits are per enterprise)"
    );
    assert!(map["ResultPath"].is_null() && map.get("ResultPath").is_some());
    assert_eq!(
        map["ItemSelector"],
        json!({ "job_id.$": "$.job_id", "batch.$": "$$.Map.Item.Value" }),
        "an iteration gets the job id and its batch number, nothing else"
    );
}

#[test]
fn the_handler_refuses_payloads_the_definition_does_not_send() {
    let job = SAMPLE_JOB_ID;
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAc2ecret-task-token";
    for (payload, why) in [
        (json!({ "job_id": job }), "no action"),
        (
            json!({ "action": "delete_everyone", "job_id": job }),
            "unknown action",
        ),
        (json!({ "action": "plan" }), "no job id"),
        (
            json!({ "action": "plan", "job_id": "not-a-uuid" }),
            "a malformed job id",
        ),
        (
            json!({ "action": "plan", "job_id": job, "extra": 1 }),
            "an unknown field",
        ),
        (
            json!({ "action": "reclaim_batch", "job_id": job }),
            "no batch",
        ),
        (
            json!({ "action": "reclaim_batch", "job_id": job, "batch": -1 }),
            "a negative batch",
        ),
        (
            json!({ "action": "await_approval", "job_id": job }),
            "no task token",
        ),
        (
            json!({ "action": "await_approval", "job_id": job, "task_token": token, "batch": token }),
            "an unknown field carrying the token",
        ),
        (
            json!({ "action": "reclaim_batch", "job_id": job, "batch": token, "task_token": token }),
            "the token where a number belongs",
        ),
        (json!("plan"), "not an object"),
    ] {
        let error = ReclaimRequest::parse(&payload)
            .err()
            .unwrap_or_else(|| panic!("{why}: accepted {payload}"));
        assert_eq!(error.error_name(), INVALID_REQUEST, "{why}");
        let diagnostic = lambda_runtime::Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, INVALID_REQUEST, "{why}");
        assert!(
            !diagnostic.error_message.contains(token),
            "{why}: the error repeats the task token: {}",
            diagnostic.error_message
        );
    }
}

#[test]
fn the_task_token_never_shows_in_a_parsed_request() {
    let token = "AQCEAAAAKgAAAAMAAAAAAAAAAc2ecret-task-token";
    let request = ReclaimRequest::parse(&json!({
        "action": "await_approval",
        "job_id": SAMPLE_JOB_ID,
        "task_token": token,
    }))
    .expect("parses");
    assert!(!format!("{request:?}").contains(token), "{request:?}");
}

// ---------------------------------------------------------------------------------------------
// The definition
// ---------------------------------------------------------------------------------------------

const SAMPLE_JOB_ID: &str = "0b0e7c5e-6a4f-4c1e-9d55-1a2b3c4d5e6f";

struct State<'a> {
    name: String,
    state: &'a Value,
    /// Inside a Map's iteration (or a Parallel branch).
    in_map: bool,
}

/// Every state, at the top and inside Map iterations and Parallel branches.
fn all_states(definition: &Value) -> Vec<State<'_>> {
    fn walk<'a>(machine: &'a Value, nested: bool, out: &mut Vec<State<'a>>) {
        for (name, state) in machine["States"].as_object().into_iter().flatten() {
            out.push(State {
                name: name.clone(),
                state,
                in_map: nested,
            });
            for inner in ["ItemProcessor", "Iterator"] {
                if state.get(inner).is_some() {
                    walk(&state[inner], true, out);
                }
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(branch, true, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(definition, false, &mut out);
    assert!(out.len() > 5, "the definition has states");
    out
}

/// The Tasks that invoke a Lambda function.
fn lambda_tasks(definition: &Value) -> Vec<State<'_>> {
    let tasks: Vec<State<'_>> = all_states(definition)
        .into_iter()
        .filter(|s| s.state["Type"] == "Task")
        .filter(|s| {
            s.state["Resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("arn:aws:states:::lambda:invoke"))
        })
        .collect();
    assert!(!tasks.is_empty(), "the definition invokes the function");
    tasks
}

/// A Task's payload as the function receives it.
fn concrete_payload(task: &str, template: &Value) -> Value {
    resolve(
        task,
        template,
        &Bindings {
            job_id: SAMPLE_JOB_ID,
            task_token: "AQCEAAAAKgAAAAMAAAAAAAAAAc2ecret",
            batch: 1,
        },
    )
}

fn names_of(error_equals: &Value) -> Vec<String> {
    error_equals
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// `(Retry|Catch, name)` of every ErrorEquals of a state.
fn error_names(state: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for kind in ["Retry", "Catch"] {
        for entry in state[kind].as_array().into_iter().flatten() {
            out.extend(
                names_of(&entry["ErrorEquals"])
                    .into_iter()
                    .map(|n| (kind, n)),
            );
        }
    }
    out
}

fn retried_names(state: &Value) -> BTreeSet<String> {
    state["Retry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| names_of(&r["ErrorEquals"]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The errors
// ---------------------------------------------------------------------------------------------

/// The names worth retrying, as the service classifies them (one error of each name is
/// built and asked), and the handler's own.
fn retryable_names() -> BTreeSet<&'static str> {
    let integration = IntegrationId::parse("acme").expect("integration id");
    let samples = [
        ReclaimError::NotFound("job".into()),
        ReclaimError::Invalid("policy".into()),
        ReclaimError::NotEligible("coverage".into()),
        ReclaimError::SyncRunning(integration.clone()),
        ReclaimError::Busy {
            integration_id: integration,
            holder: "another job".into(),
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
        ReclaimError::Store(StoreError::Corrupt("item".into())),
    ];
    let built: BTreeSet<&str> = samples.iter().map(ReclaimError::error_name).collect();
    let listed: BTreeSet<&str> = ERROR_NAMES.iter().copied().collect();
    assert_eq!(
        built, listed,
        "one sample error per name of ERROR_NAMES: extend the samples"
    );
    let mut retryable: BTreeSet<&str> = samples
        .iter()
        .filter(|e| e.is_retryable())
        .map(ReclaimError::error_name)
        .collect();
    retryable.insert(WORKFLOW_UNAVAILABLE);
    retryable
}
