//! `POST /integrations` (CCG) and `POST /integrations/oauth`.

use seatkeeper_shared::domain::{Actor, Provider};
use seatkeeper_sim::BoxSimConfig;
use serde_json::json;

use crate::support::{ALICE, Event, PUBLIC_BASE_URL, TestApp, tenant};

/// No integration, no tenant claim, no integration secret, no sync started.
async fn assert_nothing_stored(app: &TestApp) {
    assert!(
        app.store()
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        app.store()
            .tenant_owner(Provider::Box, &app.sim.enterprise_id())
            .await
            .expect("claim"),
        None
    );
    let secrets = std::fs::read_to_string(app.dir.path().join("secrets.json")).unwrap_or_default();
    assert!(!secrets.contains("seatkeeper/integrations/"), "{secrets}");
    assert!(app.trigger.started().is_empty());
}

#[tokio::test]
async fn ccg_connect_stores_the_integration_and_secret_starts_the_first_sync_and_is_audited() {
    let app = TestApp::start(30).await;
    let response = app
        .send(Event::post("/integrations").json(&app.connect_body()))
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    assert_eq!(body["provider"], "box");
    assert_eq!(body["status"], "connected");
    assert_eq!(body["tenant_id"], app.sim.enterprise_id().as_str());
    assert_eq!(body["plan"], "business");
    assert_eq!(body["seats"], 1000);
    assert_eq!(body["name"], "Simulated Box");
    assert!(
        !response.text().contains(&app.sim.client_secret()),
        "the answer never holds the secret"
    );
    assert!(body.get("secret_name").is_none());

    let id = seatkeeper_shared::domain::IntegrationId::parse(body["id"].as_str().expect("id"))
        .expect("id");
    let stored = app
        .store()
        .get_integration(&id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.service_user_id, Some(app.sim.service_account_id()));
    let secret = app
        .secrets()
        .get(&stored.secret_name)
        .await
        .expect("get")
        .expect("the secret is stored");
    assert!(secrecy::ExposeSecret::expose_secret(&secret).contains(&app.sim.client_secret()));
    assert_eq!(
        app.trigger.started(),
        vec![id.clone()],
        "the first sync was started"
    );

    let audit = app
        .send(Event::get(&format!("/integrations/{id}/audit")))
        .await;
    assert_eq!(audit.status, 200);
    let entries = audit.json()["items"].as_array().expect("items").clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "integration_connected");
    assert_eq!(
        entries[0]["actor"],
        json!({"type": "iam", "principal": ALICE})
    );
    assert_eq!(entries[0]["detail"]["first_sync_started"], true);
    assert!(!audit.text().contains(&app.sim.client_secret()));
}

#[tokio::test]
async fn a_wrong_secret_is_a_400_naming_the_credentials_and_nothing_is_stored() {
    let app = TestApp::start(10).await;
    let mut body = app.connect_body();
    body["client_secret"] = json!("not-the-secret");
    let response = app.send(Event::post("/integrations").json(&body)).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "invalid_credentials");
    assert!(response.error_message().contains("invalid_client"));
    assert!(!response.text().contains("not-the-secret"));
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_missing_capability_is_a_400_saying_what_to_grant() {
    let mut config = BoxSimConfig::new(tenant(1, 10));
    config.app_can_read_events = false;
    let app = TestApp::with_sim(config).await;
    let response = app
        .send(Event::post("/integrations").json(&app.connect_body()))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "missing_capability");
    assert!(
        response
            .error_message()
            .contains("Manage enterprise properties")
    );
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn missing_or_invalid_fields_are_named_and_nothing_is_stored() {
    let app = TestApp::start(10).await;
    let mut missing = app.connect_body();
    missing
        .as_object_mut()
        .expect("object")
        .remove("client_secret");
    let response = app.send(Event::post("/integrations").json(&missing)).await;
    assert_eq!(response.status, 400);
    assert!(
        response.error_message().contains("client_secret"),
        "{}",
        response.text()
    );

    let mut bad_enterprise = app.connect_body();
    bad_enterprise["enterprise_id"] = json!("acme");
    let response = app
        .send(Event::post("/integrations").json(&bad_enterprise))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_field().as_deref(), Some("enterprise_id"));

    let mut other_enterprise = app.connect_body();
    other_enterprise["enterprise_id"] = json!("42");
    let response = app
        .send(Event::post("/integrations").json(&other_enterprise))
        .await;
    assert_eq!(response.status, 400);
    // Box refuses a token for an enterprise the app is not in; a token for another one
    // would be caught by the enterprise check.
    assert!(
        ["invalid_credentials", "wrong_enterprise"].contains(&response.error_code().as_str()),
        "{}",
        response.text()
    );

    let mut salesforce = app.connect_body();
    salesforce["provider"] = json!("salesforce");
    let response = app
        .send(Event::post("/integrations").json(&salesforce))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "unsupported_provider");

    let mut bad_plan = app.connect_body();
    bad_plan["plan"] = json!("platinum");
    let response = app.send(Event::post("/integrations").json(&bad_plan)).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_field().as_deref(), Some("plan"));
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_tenant_already_connected_is_a_409() {
    let app = TestApp::start(10).await;
    let first = app.connect().await;
    let again = app
        .send(Event::post("/integrations").json(&app.connect_body()))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "tenant_claimed");
    assert!(again.error_message().contains(first.as_str()));
    assert_eq!(
        app.store().list_integrations().await.expect("list").len(),
        1
    );
}

#[tokio::test]
async fn the_local_servers_actor_wins_over_the_request_context() {
    let app = TestApp::start(10).await;
    let local = Actor::Local {
        user: "maria".into(),
    };
    let response = app
        .send(
            Event::post("/integrations")
                .json(&app.connect_body())
                .anonymous()
                .local_actor(local.clone()),
        )
        .await;
    assert_eq!(response.status, 201);
    let id = response.json()["id"].as_str().expect("id").to_owned();
    let audit = app
        .send(
            Event::get(&format!("/integrations/{id}/audit"))
                .anonymous()
                .local_actor(local),
        )
        .await;
    assert_eq!(
        audit.json()["items"][0]["actor"],
        json!({"type": "local", "principal": "local:maria"})
    );
}

#[tokio::test]
async fn an_oauth_connect_returns_a_start_url_with_a_ticket() {
    let app = TestApp::start(5).await;
    let response = app
        .send(Event::post("/integrations/oauth").json(&json!({
            "provider": "box", "plan": "business_plus", "seats": 50, "name": "Box via OAuth"
        })))
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    let url = body["start_url"].as_str().expect("start_url");
    assert!(
        url.starts_with(&format!("{PUBLIC_BASE_URL}/oauth/box/start?ticket=")),
        "{url}"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("at"))
        .expect("a time");
    assert!(expires > app.now());
    assert!(
        app.store()
            .list_integrations()
            .await
            .expect("list")
            .is_empty()
    );

    let no_plan = app
        .send(Event::post("/integrations/oauth").json(&json!({"provider": "box"})))
        .await;
    assert_eq!(no_plan.status, 400);
    assert_eq!(no_plan.error_field().as_deref(), Some("plan"));

    let unknown = app
        .send(Event::post("/integrations/oauth").json(&json!({
            "provider": "box", "integration_id": "no-such-integration"
        })))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "integration_not_found");

    let salesforce = app
        .send(
            Event::post("/integrations/oauth")
                .json(&json!({"provider": "salesforce", "plan": "business"})),
        )
        .await;
    assert_eq!(salesforce.status, 400);
    assert_eq!(salesforce.error_field().as_deref(), Some("provider"));
}
