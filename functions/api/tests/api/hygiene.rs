//! Input hygiene: every bad request is a 4xx JSON error, never a panic or a 5xx.

use serde_json::json;

use crate::support::{Event, TestApp};

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields_are_400s_naming_what_is_wrong() {
    let app = TestApp::start(5).await;
    let malformed = app
        .send(
            Event::post("/integrations")
                .header("content-type", "application/json")
                .body("{\"provider\": \"box\","),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.error_code(), "malformed_json");

    let mut wrong_type = app.connect_body();
    wrong_type["seats"] = json!("many");
    let response = app
        .send(Event::post("/integrations").json(&wrong_type))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "invalid_body");
    assert_eq!(response.error_field().as_deref(), Some("seats"));

    let mut unknown = app.connect_body();
    unknown["admin"] = json!(true);
    let response = app.send(Event::post("/integrations").json(&unknown)).await;
    assert_eq!(response.status, 400);
    assert!(
        response.error_message().contains("unknown field `admin`"),
        "{}",
        response.text()
    );

    for body in ["", "null", "[]", "42", "\"box\"", "{} {}"] {
        let response = app
            .send(
                Event::post("/integrations")
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(response.status, 400, "{body:?}: {}", response.text());
    }
    assert!(
        app.store()
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413s() {
    let app = TestApp::start(5).await;
    let padding = "x".repeat(seatkeeper_api::MAX_BODY_BYTES + 1 - r#"{"name":""}"#.len());
    let body = format!(r#"{{"name":"{padding}"}}"#);
    assert_eq!(body.len(), seatkeeper_api::MAX_BODY_BYTES + 1);
    for event in [
        Event::post("/integrations")
            .header("content-type", "application/json")
            .body(&body),
        Event::post("/integrations")
            .header("content-type", "application/json")
            .body(&body)
            .without_content_length(),
        Event::patch("/integrations/some-id")
            .header("content-type", "application/json")
            .body(&body),
    ] {
        let response = app.send(event).await;
        assert_eq!(response.status, 413);
        assert_eq!(response.error_code(), "payload_too_large");
    }
    // Exactly the limit is read (and then judged on its content).
    let at_limit = format!("{}\"}}", &body[..body.len() - 3]);
    assert_eq!(at_limit.len(), seatkeeper_api::MAX_BODY_BYTES);
    let response = app
        .send(
            Event::post("/integrations")
                .header("content-type", "application/json")
                .body(&at_limit),
        )
        .await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn bodies_not_sent_as_json_are_415s() {
    let app = TestApp::start(5).await;
    let body = app.connect_body().to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut event = Event::post("/integrations").body(&body);
        if let Some(ct) = content_type {
            event = event.header("content-type", ct);
        }
        let response = app.send(event).await;
        assert_eq!(response.status, 415, "{content_type:?}");
        assert_eq!(response.error_code(), "unsupported_media_type");
    }
    assert!(
        app.store()
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );
    // A base64-encoded JSON body (API Gateway's binary handling) is read as such.
    let response = app
        .send(
            Event::post("/integrations")
                .header("content-type", "application/json; charset=utf-8")
                .base64_body(body.as_bytes()),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
}

#[tokio::test]
async fn unknown_routes_are_404s_and_wrong_methods_405s() {
    let app = TestApp::start(5).await;
    for path in [
        "/",
        "/nope",
        "/integrations/",
        "/integrations/x/y",
        "/integrations/x/licenses/z",
    ] {
        let response = app.send(Event::get(path)).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.error_code(), "route_not_found");
    }
    for (method, path) in [
        ("PUT", "/integrations"),
        ("DELETE", "/integrations"),
        ("GET", "/integrations/oauth"),
        ("POST", "/integrations/x"),
        ("PUT", "/integrations/x"),
        ("POST", "/integrations/x/licenses"),
        ("GET", "/integrations/x/sync"),
        ("POST", "/openapi.json"),
    ] {
        let response = app.send(Event::new(method, path)).await;
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.error_code(), "method_not_allowed");
    }
}

#[tokio::test]
async fn a_request_without_a_caller_is_a_401() {
    let app = TestApp::start(5).await;
    for event in [
        Event::get("/integrations"),
        Event::post("/integrations").json(&app.connect_body()),
        Event::get("/integrations/x/accounts"),
        Event::post("/integrations/x/sync"),
    ] {
        let response = app.send(event.anonymous()).await;
        assert_eq!(response.status, 401);
        assert_eq!(response.error_code(), "unauthenticated");
    }
    assert!(
        app.store()
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );
    let doc = app.send(Event::get("/openapi.json").anonymous()).await;
    assert_eq!(doc.status, 200, "the document is public");
}

#[tokio::test]
async fn bad_path_ids_and_query_values_are_400s() {
    let app = TestApp::start(5).await;
    for path in [
        "/integrations/UPPER",
        "/integrations/semi;colon",
        "/integrations/%F0%9F%92%A5",
        "/integrations/%ZZ",
        &format!("/integrations/{}", "a".repeat(65)),
    ] {
        let response = app.send(Event::get(path)).await;
        assert_eq!(response.status, 400, "{path}: {}", response.text());
    }
    let id = app.connect().await;
    for (route, query) in [
        ("accounts", "limit=-1"),
        ("accounts", "limit=99999999999999999999999"),
        ("accounts", "inactive_days=1.5"),
        ("licenses", "inactive_days="),
        ("snapshots", "from=01/11/2026"),
        ("tasks", "kind=APPLICATION_ROSTER"),
        ("audit", "cursor="),
    ] {
        let response = app
            .send(Event::get(&format!("/integrations/{id}/{route}")).query(query))
            .await;
        assert_eq!(response.status, 400, "{route}?{query}: {}", response.text());
    }
}
