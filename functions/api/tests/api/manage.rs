//! List, get, change, disconnect, and on-demand syncs.

use chrono::Duration;
use reqwest::redirect::Policy;
use seatkeeper_shared::domain::{
    AuthKind, Integration, IntegrationId, IntegrationStatus, Provider,
};
use seatkeeper_shared::provider::box_client::oauth::{
    BOX_OAUTH_SCOPES, BoxOAuthApp, authorize_url, exchange_code, refresh,
};
use seatkeeper_shared::secrets::{IntegrationCredentials, OAuthAppCredentials};
use seatkeeper_shared::store::LeaseKind;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{Event, TestApp};

const BOB: &str = "arn:aws:sts::123456789012:assumed-role/SeatkeeperAdmin/bob";

async fn audit_actions(app: &TestApp, id: &IntegrationId) -> Vec<String> {
    let response = app
        .send(Event::get(&format!("/integrations/{id}/audit")))
        .await;
    assert_eq!(response.status, 200);
    response.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

#[tokio::test]
async fn integrations_are_listed_and_read_one_by_one() {
    let app = TestApp::start(10).await;
    let empty = app.send(Event::get("/integrations")).await;
    assert_eq!(empty.json(), json!({"items": []}));
    let id = app.connect().await;
    let list = app.send(Event::get("/integrations")).await;
    assert_eq!(list.status, 200);
    let items = list.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());

    let one = app.send(Event::get(&format!("/integrations/{id}"))).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["reclaim"]["effective_approval_threshold"], 50);
    assert_eq!(one.json()["inactive_days"], 90);

    let missing = app.send(Event::get("/integrations/no-such-id")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "integration_not_found");

    let invalid = app.send(Event::get("/integrations/NOT_AN_ID")).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.error_field().as_deref(), Some("id"));
}

#[tokio::test]
async fn settings_are_changed_validated_and_audited_by_field() {
    let app = TestApp::start(10).await;
    let id = app.connect().await;
    // Audit entries order by time: the change comes a second after the connect.
    app.clock.advance(Duration::seconds(1));
    let path = format!("/integrations/{id}");
    let response = app
        .send(Event::patch(&path).caller(BOB).json(&json!({
            "name": "Box (prod)",
            "plan": "enterprise",
            "seats": 250,
            "inactive_days": 30,
            "price_per_seat": {"monthly": 1500, "currency": "eur"},
            "reclaim": {
                "excluded_logins": ["ceo@example.com"],
                "excluded_group_ids": ["12345"],
                "approval_threshold": 5,
                "auto_approve": true,
                "grace_period_days": 14
            }
        })))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["name"], "Box (prod)");
    assert_eq!(body["plan"], "enterprise");
    assert_eq!(body["seats"], 250);
    assert_eq!(body["inactive_days"], 30);
    assert_eq!(
        body["price_per_seat"],
        json!({"monthly": 1500, "currency": "EUR"})
    );
    assert_eq!(
        body["reclaim"]["excluded_logins"],
        json!(["ceo@example.com"])
    );
    assert_eq!(body["reclaim"]["effective_approval_threshold"], 5);
    assert_eq!(body["reclaim"]["auto_approve"], true);
    assert_eq!(body["reclaim"]["allow_self_approval"], false);

    let stored = app
        .store()
        .get_integration(&id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.sync.inactive_days, 30);
    assert_eq!(stored.reclaim.grace_period_days, 14);
    assert_eq!(stored.updated_at, app.now());

    let audit = app
        .send(Event::get(&format!("/integrations/{id}/audit")).query("limit=1"))
        .await;
    let entry = &audit.json()["items"][0];
    assert_eq!(entry["action"], "settings_changed");
    assert_eq!(entry["actor"], json!({"type": "iam", "principal": BOB}));
    assert_eq!(
        entry["detail"]["fields"],
        json!([
            "name",
            "plan",
            "seats",
            "inactive_days",
            "price_per_seat",
            "reclaim.excluded_logins",
            "reclaim.excluded_group_ids",
            "reclaim.approval_threshold",
            "reclaim.auto_approve",
            "reclaim.grace_period_days"
        ])
    );

    // null clears the nullable settings; an empty change changes (and audits) nothing.
    let cleared = app
        .send(Event::patch(&path).json(&json!({
            "seats": null, "price_per_seat": null, "reclaim": {"approval_threshold": null}
        })))
        .await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["seats"], Value::Null);
    assert_eq!(cleared.json()["price_per_seat"], Value::Null);
    assert_eq!(cleared.json()["reclaim"]["approval_threshold"], Value::Null);
    let before = audit_actions(&app, &id).await.len();
    let nothing = app.send(Event::patch(&path).json(&json!({}))).await;
    assert_eq!(nothing.status, 200);
    assert_eq!(audit_actions(&app, &id).await.len(), before);
}

#[tokio::test]
async fn invalid_settings_are_400s_naming_the_field_and_change_nothing() {
    let app = TestApp::start(10).await;
    let id = app.connect().await;
    let path = format!("/integrations/{id}");
    let before = app.store().get_integration(&id).await.expect("get");
    for (body, field) in [
        (json!({"inactive_days": 0}), "inactive_days"),
        (json!({"inactive_days": "ninety"}), "inactive_days"),
        (json!({"seats": 20_000_000}), "seats"),
        (json!({"seats": -1}), "seats"),
        (json!({"name": "  "}), "name"),
        (json!({"enabled": null}), "enabled"),
        (json!({"plan": null}), "plan"),
        (
            json!({"price_per_seat": {"monthly": 100, "currency": "EURO"}}),
            "price_per_seat.currency",
        ),
        (
            json!({"price_per_seat": {"monthly": 1_000_000_000, "currency": "EUR"}}),
            "price_per_seat.monthly",
        ),
        (
            json!({"price_per_seat": {"monthly": 100}}),
            "price_per_seat",
        ),
        (
            json!({"reclaim": {"grace_period_days": 4000}}),
            "reclaim.grace_period_days",
        ),
        (
            json!({"reclaim": {"excluded_logins": [""]}}),
            "reclaim.excluded_logins",
        ),
        (
            json!({"reclaim": {"approval_threshold": 1_000_000}}),
            "reclaim.approval_threshold",
        ),
        (
            json!({"reclaim": {"auto_approve": "yes"}}),
            "reclaim.auto_approve",
        ),
    ] {
        let response = app.send(Event::patch(&path).json(&body)).await;
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        assert_eq!(
            response.error_field().as_deref(),
            Some(field),
            "{body}: {}",
            response.text()
        );
    }
    let unknown = app
        .send(Event::patch(&path).json(&json!({"colour": "blue"})))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.error_message().contains("colour"));
    assert_eq!(app.store().get_integration(&id).await.expect("get"), before);
    let missing = app
        .send(Event::patch("/integrations/nope").json(&json!({"name": "x"})))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn disconnecting_releases_the_tenant_deletes_the_secret_and_keeps_the_history() {
    let app = TestApp::start(10).await;
    let id = app.connected_and_synced().await;
    let integration = app
        .store()
        .get_integration(&id)
        .await
        .expect("get")
        .expect("stored");
    let response = app
        .send(Event::delete(&format!("/integrations/{id}")))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["status"], "disconnected");
    assert_eq!(response.json()["enabled"], false);
    assert!(
        app.secrets()
            .get(&integration.secret_name)
            .await
            .expect("get")
            .is_none(),
        "the secret is deleted"
    );
    assert_eq!(
        app.store()
            .tenant_owner(Provider::Box, &integration.tenant_id)
            .await
            .expect("claim"),
        None,
        "the tenant is released"
    );
    // History stays readable.
    let read = app.send(Event::get(&format!("/integrations/{id}"))).await;
    assert_eq!(read.json()["status"], "disconnected");
    let licenses = app
        .send(Event::get(&format!("/integrations/{id}/licenses")))
        .await;
    assert_eq!(licenses.status, 200);

    // Repeating it is harmless and audited once.
    let again = app
        .send(Event::delete(&format!("/integrations/{id}")))
        .await;
    assert_eq!(again.status, 200);
    let actions = audit_actions(&app, &id).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "integration_disconnected")
            .count(),
        1,
        "{actions:?}"
    );

    let patch = app
        .send(Event::patch(&format!("/integrations/{id}")).json(&json!({"name": "x"})))
        .await;
    assert_eq!(patch.status, 409);
    assert_eq!(patch.error_code(), "integration_disconnected");
    let sync = app
        .send(Event::post(&format!("/integrations/{id}/sync")))
        .await;
    assert_eq!(sync.status, 409);
    assert_eq!(sync.error_code(), "integration_disconnected");

    // The tenant can be connected again, as a new integration.
    let new_id = app.connect().await;
    assert_ne!(new_id, id);
    let missing = app.send(Event::delete("/integrations/no-such-id")).await;
    assert_eq!(missing.status, 404);
}

/// An OAuth integration whose grant is live at the simulator, as the callback leaves it.
async fn oauth_integration(app: &TestApp) -> (Integration, SecretString) {
    const REDIRECT_URI: &str = "https://api.seatkeeper.example/oauth/box/callback";
    let app_creds = BoxOAuthApp {
        client_id: app.sim.client_id(),
        client_secret: SecretString::from(app.sim.client_secret()),
    };
    app.secrets()
        .put(
            &OAuthAppCredentials::secret_name(Provider::Box),
            SecretString::from(
                json!({"client_id": app.sim.client_id(), "client_secret": app.sim.client_secret()})
                    .to_string(),
            ),
        )
        .await
        .expect("app secret");
    let url = authorize_url(
        &app.sim.authorize_url(),
        &app.sim.client_id(),
        REDIRECT_URI,
        "state",
        BOX_OAUTH_SCOPES,
    );
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let redirect = browser.get(&url).send().await.expect("authorize");
    let location = redirect.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    let code = reqwest::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens = exchange_code(
        &app.ctx.http,
        &app.ctx.box_config,
        &app_creds,
        &SecretString::from(code),
        REDIRECT_URI,
        app.now(),
    )
    .await
    .expect("tokens");
    let id = IntegrationId::generate();
    let integration = Integration {
        secret_name: Integration::secret_name_for(&id),
        id,
        provider: Provider::Box,
        name: "Box via OAuth".into(),
        auth_kind: AuthKind::OAuth,
        tenant_id: app.sim.enterprise_id(),
        status: IntegrationStatus::Connected,
        enabled: true,
        plan: Some(seatkeeper_shared::domain::BoxPlan::Business),
        purchased_seats: None,
        service_user_id: Some(app.sim.admin_user_id()),
        sync: Default::default(),
        created_at: app.now(),
        updated_at: app.now(),
        last_sync: None,
        reclaim: Default::default(),
        seat_price: None,
    };
    IntegrationCredentials {
        client_id: app.sim.client_id(),
        client_secret: None,
        refresh_token: Some(tokens.refresh_token.clone()),
        access_token: Some(tokens.access_token.clone()),
        access_token_expires_at: Some(tokens.expires_at),
    }
    .save(app.secrets(), &integration.secret_name)
    .await
    .expect("tokens saved");
    app.store()
        .create_integration(&integration)
        .await
        .expect("created");
    (integration, tokens.refresh_token)
}

#[tokio::test]
async fn disconnecting_an_oauth_integration_revokes_its_grant_at_the_provider() {
    let app = TestApp::start(5).await;
    let (integration, refresh_token) = oauth_integration(&app).await;
    let response = app
        .send(Event::delete(&format!("/integrations/{}", integration.id)))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(app.sim.oauth_stats().revocations, 1);
    let app_creds = BoxOAuthApp {
        client_id: app.sim.client_id(),
        client_secret: SecretString::from(app.sim.client_secret()),
    };
    let refused = refresh(
        &app.ctx.http,
        &app.ctx.box_config,
        &app_creds,
        &refresh_token,
        app.now(),
    )
    .await;
    assert!(refused.is_err(), "the revoked grant no longer refreshes");
    assert!(
        app.secrets()
            .get(&integration.secret_name)
            .await
            .expect("get")
            .is_none()
    );
    let audit = app
        .send(Event::get(&format!(
            "/integrations/{}/audit",
            integration.id
        )))
        .await;
    assert_eq!(audit.json()["items"][0]["detail"]["grant_revoked"], true);
    assert!(
        !audit
            .text()
            .contains(secrecy::ExposeSecret::expose_secret(&refresh_token))
    );
}

#[tokio::test]
async fn an_on_demand_sync_is_started_unless_one_runs_or_the_integration_cannot_sync() {
    let app = TestApp::start(10).await;
    let id = app.connect().await;
    let path = format!("/integrations/{id}/sync");
    let started = app.send(Event::post(&path)).await;
    assert_eq!(started.status, 202, "{}", started.text());
    assert_eq!(
        started.json(),
        json!({"integration_id": id.as_str(), "status": "started"})
    );
    assert_eq!(app.trigger.started(), vec![id.clone(), id.clone()]);

    let now = app.now();
    app.store()
        .acquire_lease(
            &id,
            LeaseKind::Sync,
            "running-sync",
            now,
            now + Duration::minutes(5),
        )
        .await
        .expect("lease");
    let running = app.send(Event::post(&path)).await;
    assert_eq!(running.status, 409);
    assert_eq!(running.error_code(), "sync_running");
    app.clock.advance(Duration::minutes(6));
    let after_expiry = app.send(Event::post(&path)).await;
    assert_eq!(after_expiry.status, 202, "an expired lease holds nothing");

    let disabled = app
        .send(Event::patch(&format!("/integrations/{id}")).json(&json!({"enabled": false})))
        .await;
    assert_eq!(disabled.status, 200);
    let refused = app.send(Event::post(&path)).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_code(), "integration_disabled");
    assert!(refused.error_message().contains("\"enabled\": true"));

    app.store()
        .modify_integration(&id, &|i| {
            i.enabled = true;
            i.status = IntegrationStatus::NeedsReauth;
        })
        .await
        .expect("modify");
    let reauth = app.send(Event::post(&path)).await;
    assert_eq!(reauth.status, 409);
    assert_eq!(reauth.error_code(), "needs_reauth");
    assert!(reauth.error_message().contains("/integrations/oauth"));
    assert_eq!(
        app.trigger.started().len(),
        3,
        "refused syncs start nothing"
    );
    let actions = audit_actions(&app, &id).await;
    assert_eq!(actions.iter().filter(|a| *a == "sync_requested").count(), 2);

    let missing = app.send(Event::post("/integrations/nope/sync")).await;
    assert_eq!(missing.status, 404);
}
