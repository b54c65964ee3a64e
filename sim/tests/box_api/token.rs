use reqwest::StatusCode;
use seatkeeper_sim::BoxSimConfig;

use crate::support::{client, get, spec, start, start_tenant, token, token_response};

#[tokio::test]
async fn client_credentials_for_the_enterprise_give_a_bearer_token() {
    let sim = start_tenant(10).await;
    let (status, body) =
        token_response(&client(), &sim, &sim.client_secret(), &sim.enterprise_id()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body["access_token"].as_str().unwrap().is_empty());
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["restricted_to"], serde_json::json!([]));
    assert_eq!(sim.stats().token, 1);
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let sim = start_tenant(10).await;
    let (status, body) = token_response(&client(), &sim, "nope", &sim.enterprise_id()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn another_enterprise_is_invalid_grant() {
    let sim = start_tenant(10).await;
    let (status, body) = token_response(&client(), &sim, &sim.client_secret(), "999").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn app_not_authorized_by_the_admin_is_unauthorized_client() {
    let mut config = BoxSimConfig::new(spec(10));
    config.app_authorized = false;
    let sim = start(config).await;
    let (status, body) =
        token_response(&client(), &sim, &sim.client_secret(), &sim.enterprise_id()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn api_calls_need_a_known_bearer_token() {
    let sim = start_tenant(10).await;
    let client = client();
    let no_token = client
        .get(format!("{}/2.0/users/me", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = get(&client, &sim, "made-up", "/2.0/users", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(
        &client,
        &sim,
        "made-up",
        "/2.0/events",
        &[("stream_type", "admin_logs")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.stats().unauthorized, 3);
}

#[tokio::test]
async fn the_token_acts_as_the_service_account() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (status, me) = get(
        &client,
        &sim,
        &token,
        "/2.0/users/me",
        &[("fields", "enterprise,role")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], sim.service_account_id().as_str());
    let login = me["login"].as_str().unwrap();
    assert!(
        login.starts_with("AutomationUser_") && login.ends_with("@boxdevedition.com"),
        "{login}"
    );
    assert_eq!(me["enterprise"]["id"], sim.enterprise_id().as_str());
    assert_eq!(me["enterprise"]["type"], "enterprise");
    assert!(
        me.get("status").is_none(),
        "fields= drops the standard fields"
    );
}
