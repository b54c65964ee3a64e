//! The state machine's definition, read by the tests: the payloads its Tasks send are built
//! from it, so the handler tests feed exactly what Step Functions would.

use serde_json::{Value, json};
use std::path::PathBuf;

pub fn definition() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/statemachines/reclaim.asl.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// What a Task's `.$` paths select when the state machine runs.
pub struct Bindings<'a> {
    pub job_id: &'a str,
    /// `$$.Task.Token`.
    pub task_token: &'a str,
    /// `$$.Map.Item.Value`, as the Map's ItemSelector hands it on in `$.batch`.
    pub batch: u32,
}

/// The payload the definition's Task for `action` sends, with its paths resolved.
#[allow(dead_code)] // Each test crate uses the part it needs.
pub fn task_payload(definition: &Value, action: &str, bindings: &Bindings<'_>) -> Value {
    let template = task_payloads(definition)
        .into_iter()
        .find(|(_, p)| p["action"] == action)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("the definition has no Task for {action}"));
    resolve("(task)", &template, bindings)
}

/// `(state name, Payload template)` of every Lambda Task, nested states included.
#[allow(dead_code)]
pub fn task_payloads(definition: &Value) -> Vec<(String, Value)> {
    fn walk(machine: &Value, out: &mut Vec<(String, Value)>) {
        for (name, state) in machine["States"].as_object().into_iter().flatten() {
            let lambda = state["Resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("arn:aws:states:::lambda:invoke"));
            if state["Type"] == "Task" && lambda {
                out.push((name.clone(), state["Parameters"]["Payload"].clone()));
            }
            for inner in ["ItemProcessor", "Iterator"] {
                if state.get(inner).is_some() {
                    walk(&state[inner], out);
                }
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(branch, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(definition, &mut out);
    out
}

/// A payload template with its `.$` fields replaced by what their paths select.
pub fn resolve(task: &str, template: &Value, bindings: &Bindings<'_>) -> Value {
    let mut out = serde_json::Map::new();
    for (key, value) in template
        .as_object()
        .unwrap_or_else(|| panic!("{task}: Payload is an object"))
    {
        match key.strip_suffix(".$") {
            None => {
                out.insert(key.clone(), value.clone());
            }
            Some(field) => {
                let selected = match value.as_str().unwrap_or_default() {
                    "$.job_id" => json!(bindings.job_id),
                    "$$.Task.Token" => json!(bindings.task_token),
                    "$.batch" => json!(bindings.batch),
                    other => panic!("{task}: {key} = {other}: extend support::resolve"),
                };
                out.insert(field.to_owned(), selected);
            }
        }
    }
    Value::Object(out)
}
