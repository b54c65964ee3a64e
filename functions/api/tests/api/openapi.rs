//! `openapi.json` and the router agree both ways: every documented operation is routed, and
//! the router serves nothing undocumented.

use std::collections::BTreeSet;

use seatkeeper_api::routes::ROUTES;
use serde_json::Value;

use crate::schema::OpenApi;
use crate::support::{Event, TestApp};

/// A concrete path for a template (`{id}` → an id no integration has).
fn concrete(template: &str) -> String {
    template.replace("{id}", "no-such-integration")
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_route_table() {
    let doc = OpenApi::load();
    assert_eq!(doc.doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc.operations().into_iter().collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[test]
fn every_operation_documents_its_errors_with_the_error_schema() {
    let doc = OpenApi::load();
    let error_ref = Value::String("#/components/schemas/Error".into());
    for (method, path) in doc.operations() {
        let operation = &doc.doc["paths"][&path][method.to_ascii_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.contains_key("default"),
            "{method} {path}: default"
        );
        if path != "/openapi.json" {
            assert!(responses.contains_key("401"), "{method} {path}: 401");
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
        }
        for (status, response) in responses {
            if status.starts_with('2') {
                continue;
            }
            let reference = response["$ref"].as_str().map(|r| r.trim_start_matches('#'));
            let response = reference.map_or(response, |p| doc.doc.pointer(p).expect("ref"));
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"], error_ref,
                "{method} {path} {status}"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let app = TestApp::start(1).await;
    let doc = OpenApi::load();
    let operations: BTreeSet<(String, String)> = doc.operations().into_iter().collect();
    let paths: BTreeSet<String> = operations.iter().map(|(_, p)| p.clone()).collect();
    for (method, template) in &operations {
        let response = app
            .send_unchecked(&Event::new(method, &concrete(template)))
            .await;
        let code = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        assert!(
            !matches!(
                code.as_deref(),
                Some("route_not_found" | "method_not_allowed")
            ),
            "{method} {template} is documented but not routed"
        );
    }
    for template in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if operations.contains(&(method.to_owned(), template.clone())) {
                continue;
            }
            let response = app.send(Event::new(method, &concrete(template))).await;
            assert_eq!(
                response.status, 405,
                "{method} {template} is routed but not documented"
            );
        }
    }
    for path in [
        "/integrations/x/reclamations",
        "/oauth/box/start",
        "/health",
        "/openapi.yaml",
    ] {
        let response = app.send(Event::get(path)).await;
        assert_eq!(response.status, 404, "{path} is routed but not documented");
    }
}

#[tokio::test]
async fn the_document_is_served_as_it_is_in_the_repository() {
    let app = TestApp::start(1).await;
    let response = app.send(Event::get("/openapi.json")).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.json(), OpenApi::load().doc);
}
