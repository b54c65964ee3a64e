//! The OAuth 2.0 authorization-code flow: authorize redirects, code exchange, refresh-token
//! rotation and revocation.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode, Url};
use seatkeeper_sim::{BoxSimConfig, Faults, OAuthStats, SimHandle, SimStats};
use serde_json::{Value, json};

use crate::support::{client, get, spec, start, start_tenant};

const CALLBACK: &str = "http://127.0.0.1:9/box/callback";

/// A browser that shows us redirects instead of following them.
fn browser() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn authorize(sim: &SimHandle, params: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .get(sim.authorize_url())
        .query(params)
        .send()
        .await
        .unwrap()
}

/// The standard request for `sim`'s app, plus `extra`.
async fn authorize_with(sim: &SimHandle, extra: &[(&str, &str)]) -> reqwest::Response {
    let client_id = sim.client_id();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    params.extend_from_slice(extra);
    authorize(sim, &params).await
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::FOUND);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The redirect target without its query, and its decoded query parameters.
fn redirect_parts(location: &str) -> (String, HashMap<String, String>) {
    let mut url = Url::parse(location).unwrap();
    let params = url.query_pairs().into_owned().collect();
    url.set_query(None);
    (url.to_string(), params)
}

async fn approved_code(sim: &SimHandle, extra: &[(&str, &str)]) -> String {
    let response = authorize_with(sim, extra).await;
    let (_, params) = redirect_parts(&location(&response));
    params["code"].clone()
}

/// POST /oauth2/token with the app's credentials and `form`.
async fn grant(sim: &SimHandle, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let (client_id, secret) = (sim.client_id(), sim.client_secret());
    let mut fields = vec![
        ("client_id", client_id.as_str()),
        ("client_secret", &secret),
    ];
    fields.extend_from_slice(form);
    let response = client()
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(&fields)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn exchange(sim: &SimHandle, code: &str) -> (StatusCode, Value) {
    grant(sim, &[("grant_type", "authorization_code"), ("code", code)]).await
}

async fn refresh(sim: &SimHandle, refresh_token: &str) -> (StatusCode, Value) {
    grant(
        sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Authorizes as the admin and exchanges the code: `(access_token, refresh_token)`.
async fn connect(sim: &SimHandle) -> (String, String) {
    let code = approved_code(sim, &[]).await;
    let (status, body) = exchange(sim, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokens_of(&body)
}

fn tokens_of(body: &Value) -> (String, String) {
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(sim: &SimHandle, secret: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{}/oauth2/revoke", sim.base_url()))
        .form(&[
            ("client_id", sim.client_id().as_str()),
            ("client_secret", secret),
            ("token", token),
        ])
        .send()
        .await
        .unwrap()
}

async fn me(sim: &SimHandle, access_token: &str) -> (StatusCode, Value) {
    get(
        &client(),
        sim,
        access_token,
        "/2.0/users/me",
        &[("fields", "enterprise,role,login")],
    )
    .await
}

fn assert_oauth_error(status: StatusCode, body: &Value, error: &str, description: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        &json!({ "error": error, "error_description": description })
    );
}

async fn assert_error_page(response: reqwest::Response, error: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none(), "no redirect");
    let page = response.text().await.unwrap();
    assert!(page.contains(error), "{page}");
}

#[tokio::test]
async fn approval_redirects_with_a_code_and_the_state() {
    let sim = start_tenant(10).await;
    let state = "csrf token/1 & more";
    let response = authorize_with(
        &sim,
        &[
            ("state", state),
            ("scope", "root_readwrite manage_managed_users"),
            // Box has no PKCE; the parameters are ignored rather than refused.
            ("code_challenge", "abc"),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (target, params) = redirect_parts(&location(&response));
    assert_eq!(target, CALLBACK);
    assert_eq!(params["state"], state);
    assert!(!params["code"].is_empty());
    assert_eq!(params.len(), 2, "{params:?}");
    assert_eq!(sim.oauth_stats().authorizations_approved, 1);
    assert_eq!(
        sim.stats(),
        SimStats::default(),
        "the authorize page is not API traffic"
    );
}

#[tokio::test]
async fn denial_redirects_with_access_denied_and_the_state() {
    let sim = start_tenant(10).await;
    let response = authorize_with(&sim, &[("state", "s1"), ("sim_decision", "deny")]).await;
    let location = location(&response);
    assert!(
        location.contains("error_description=The+user+denied+access+to+your+application"),
        "{location}"
    );
    let (target, params) = redirect_parts(&location);
    assert_eq!(target, CALLBACK);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s1");
    assert!(!params.contains_key("code"));
    assert_eq!(sim.oauth_stats().authorizations_denied, 1);
}

#[tokio::test]
async fn an_unknown_client_gets_an_error_page_and_no_redirect() {
    let sim = start_tenant(10).await;
    let response = authorize(
        &sim,
        &[
            ("response_type", "code"),
            ("client_id", "someone-else"),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_error_page(response, "invalid_client").await;
    let response = authorize(
        &sim,
        &[("response_type", "code"), ("redirect_uri", CALLBACK)],
    )
    .await;
    assert_error_page(response, "invalid_client").await;
}

#[tokio::test]
async fn the_redirect_uri_must_be_registered() {
    let registered = "https://app.example.com/box/callback";
    let mut config = BoxSimConfig::new(spec(10));
    config.oauth_redirect_uris = vec![registered.to_owned()];
    let sim = start(config).await;
    let client_id = sim.client_id();

    let response = authorize_with(&sim, &[]).await;
    assert_error_page(response, "redirect_uri_mismatch").await;

    let response = authorize(
        &sim,
        &[("response_type", "code"), ("client_id", &client_id)],
    )
    .await;
    let (target, params) = redirect_parts(&location(&response));
    assert_eq!(target, registered, "the only registered URI is the default");
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn without_registered_uris_any_web_uri_is_accepted_but_one_is_needed() {
    let sim = start_tenant(10).await;
    let client_id = sim.client_id();
    for bad in ["ftp://example.com/cb", "https://example.com/cb#frag", "/cb"] {
        let response = authorize(
            &sim,
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", bad),
            ],
        )
        .await;
        assert_error_page(response, "redirect_uri_mismatch").await;
    }
    let response = authorize(
        &sim,
        &[("response_type", "code"), ("client_id", &client_id)],
    )
    .await;
    assert_error_page(response, "redirect_uri_missing").await;
}

#[tokio::test]
async fn unusable_registered_redirect_uris_are_refused_at_start() {
    let mut config = BoxSimConfig::new(spec(10));
    config.oauth_redirect_uris = vec!["not a uri".to_owned()];
    let err = seatkeeper_sim::BoxSim::start(config)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn the_response_type_must_be_code() {
    let sim = start_tenant(10).await;
    let client_id = sim.client_id();
    let response = authorize(
        &sim,
        &[
            ("response_type", "token"),
            ("client_id", &client_id),
            ("redirect_uri", CALLBACK),
            ("state", "s"),
        ],
    )
    .await;
    let (_, params) = redirect_parts(&location(&response));
    assert_eq!(params["error"], "unsupported_response_type");
    assert_eq!(params["state"], "s");
}

#[tokio::test]
async fn faults_never_apply_to_the_authorize_page() {
    let sim = start_tenant(10).await;
    sim.set_faults(Faults {
        drop_connection_ratio: 1.0,
        ..Faults::default()
    });
    let response = authorize_with(&sim, &[]).await;
    assert!(redirect_parts(&location(&response)).1.contains_key("code"));
}

#[tokio::test]
async fn the_code_gives_tokens_acting_as_the_admin() {
    let sim = start_tenant(10).await;
    let code = approved_code(&sim, &[]).await;
    let (status, body) = exchange(&sim, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["restricted_to"], json!([]));
    let (access_token, refresh_token) = tokens_of(&body);
    assert!(!access_token.is_empty() && !refresh_token.is_empty());
    assert_ne!(access_token, refresh_token);

    let (status, user) = me(&sim, &access_token).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["id"], sim.admin_user_id().as_str());
    assert_ne!(user["id"], sim.service_account_id().as_str());
    assert_eq!(user["role"], "admin");
    assert_eq!(user["enterprise"]["id"], sim.enterprise_id().as_str());
    assert_eq!(sim.oauth_stats().authorization_code_grants, 1);
}

#[tokio::test]
async fn sim_user_chooses_who_authorizes() {
    let sim = start_tenant(30).await;
    let users = sim.users();
    let member = users
        .iter()
        .find(|user| user["role"] == "user" && user["status"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = approved_code(&sim, &[("sim_user", &member)]).await;
    let (_, body) = exchange(&sim, &code).await;
    let (access_token, _) = tokens_of(&body);
    let (_, user) = me(&sim, &access_token).await;
    assert_eq!(user["id"], member.as_str());
    assert_eq!(user["role"], "user");

    let inactive = users
        .iter()
        .find(|user| user["status"] == "inactive")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for who in [sim.service_account_id(), inactive, "42".to_owned()] {
        let response = authorize_with(&sim, &[("sim_user", &who)]).await;
        assert_error_page(response, "invalid_sim_user").await;
    }
}

#[tokio::test]
async fn a_code_is_single_use() {
    let sim = start_tenant(10).await;
    let code = approved_code(&sim, &[]).await;
    assert_eq!(exchange(&sim, &code).await.0, StatusCode::OK);
    let (status, body) = exchange(&sim, &code).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "Auth code doesn't exist or is invalid for the client",
    );
    let (status, body) = exchange(&sim, "made-up").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    assert_eq!(sim.oauth_stats().invalid_grants, 2);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let mut config = BoxSimConfig::new(spec(10));
    config.oauth_code_ttl = Duration::from_millis(50);
    let sim = start(config).await;
    let code = approved_code(&sim, &[]).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, body) = exchange(&sim, &code).await;
    assert_oauth_error(
        status,
        &body,
        "invalid_grant",
        "The authorization code has expired",
    );
}

#[tokio::test]
async fn the_exchange_must_name_the_redirect_uri_used_to_authorize() {
    let sim = start_tenant(10).await;
    let code = approved_code(&sim, &[]).await;
    let (status, body) = grant(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let code = approved_code(&sim, &[]).await;
    let (status, body) = grant(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_exchange_needs_the_client_secret() {
    let sim = start_tenant(10).await;
    let code = approved_code(&sim, &[]).await;
    let response = client()
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &sim.client_id()),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_oauth_error(
        status,
        &body,
        "invalid_client",
        "The client credentials are invalid.",
    );
    assert_eq!(exchange(&sim, &code).await.0, StatusCode::OK, "not spent");
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token_and_the_old_one_is_refused() {
    let sim = start_tenant(10).await;
    let (first_access, first_refresh) = connect(&sim).await;

    let (status, body) = refresh(&sim, &first_refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "bearer");
    let (access, second_refresh) = tokens_of(&body);
    assert_ne!(access, first_access);
    assert_ne!(second_refresh, first_refresh);
    let (status, user) = me(&sim, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["id"], sim.admin_user_id().as_str());
    assert_eq!(
        me(&sim, &first_access).await.0,
        StatusCode::OK,
        "earlier access tokens live until they expire"
    );

    let (status, body) = refresh(&sim, &first_refresh).await;
    assert_oauth_error(status, &body, "invalid_grant", "Invalid refresh token");
    assert_eq!(refresh(&sim, &second_refresh).await.0, StatusCode::OK);
    let stats = sim.oauth_stats();
    assert_eq!((stats.refresh_token_grants, stats.invalid_grants), (2, 1));
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let mut config = BoxSimConfig::new(spec(10));
    config.oauth_refresh_token_ttl = Duration::from_millis(50);
    let sim = start(config).await;
    let (_, refresh_token) = connect(&sim).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_oauth_error(status, &body, "invalid_grant", "Invalid refresh token");
}

#[tokio::test]
async fn revoking_either_token_ends_the_whole_grant() {
    let sim = start_tenant(10).await;
    for revoke_refresh_token in [true, false] {
        let (old_access, refresh_token) = connect(&sim).await;
        let (_, body) = refresh(&sim, &refresh_token).await;
        let (access, refresh_token) = tokens_of(&body);
        let (_, other_refresh) = connect(&sim).await;

        let named = if revoke_refresh_token {
            &refresh_token
        } else {
            &access
        };
        let response = revoke(&sim, &sim.client_secret(), named).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.bytes().await.unwrap().is_empty());

        for token in [&access, &old_access] {
            assert_eq!(me(&sim, token).await.0, StatusCode::UNAUTHORIZED);
        }
        let (status, body) = refresh(&sim, &refresh_token).await;
        assert_oauth_error(status, &body, "invalid_grant", "Invalid refresh token");
        assert_eq!(
            refresh(&sim, &other_refresh).await.0,
            StatusCode::OK,
            "other grants are untouched"
        );
    }
    assert_eq!(sim.oauth_stats().revocations, 2);

    let response = revoke(&sim, &sim.client_secret(), "unknown").await;
    assert_eq!(response.status(), StatusCode::OK, "nothing left to revoke");
    let response = revoke(&sim, "wrong", "unknown").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn revoke_refresh_tokens_makes_the_next_refresh_invalid_grant() {
    let sim = start_tenant(10).await;
    let (access, refresh_token) = connect(&sim).await;
    sim.revoke_refresh_tokens();
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_oauth_error(status, &body, "invalid_grant", "Invalid refresh token");
    assert_eq!(me(&sim, &access).await.0, StatusCode::OK);

    // The same over the control plane, for a simulator in another process.
    let (_, refresh_token) = connect(&sim).await;
    let response = client()
        .post(format!(
            "{}/_sim/oauth/revoke-refresh-tokens",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        refresh(&sim, &refresh_token).await.0,
        StatusCode::BAD_REQUEST
    );
    let stats: OAuthStats = client()
        .get(format!("{}/_sim/oauth", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, sim.oauth_stats());
    assert_eq!(stats.invalid_grants, 2);
}

#[tokio::test]
async fn a_lost_refresh_response_still_rotated_the_token() {
    let sim = start_tenant(10).await;
    let (_, refresh_token) = connect(&sim).await;
    sim.set_faults(Faults {
        refresh_lost_response_ratio: 1.0,
        ..Faults::default()
    });
    let err = client()
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", &sim.client_id()),
            ("client_secret", &sim.client_secret()),
        ])
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "no HTTP response: {err:?}");
    assert!(!err.is_timeout(), "closed, not hung: {err:?}");
    assert_eq!(sim.stats().dropped, 1);
    let stats = sim.oauth_stats();
    assert_eq!(
        (stats.refresh_token_grants, stats.refresh_responses_lost),
        (1, 1)
    );

    sim.set_faults(Faults::default());
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_oauth_error(status, &body, "invalid_grant", "Invalid refresh token");
}

#[tokio::test]
async fn lost_refresh_responses_follow_the_seed() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let sim = start_tenant(5).await;
        let (_, mut refresh_token) = connect(&sim).await;
        sim.set_faults(Faults {
            refresh_lost_response_ratio: 0.5,
            seed,
            ..Faults::default()
        });
        let mut lost = Vec::new();
        for _ in 0..16 {
            let before = sim.oauth_stats().refresh_responses_lost;
            let (client_id, secret) = (sim.client_id(), sim.client_secret());
            let sent = client()
                .post(format!("{}/oauth2/token", sim.base_url()))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.as_str()),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                ])
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let body: Value = response.json().await.unwrap();
                    refresh_token = tokens_of(&body).1;
                    lost.push(false);
                }
                Err(_) => {
                    assert_eq!(sim.oauth_stats().refresh_responses_lost, before + 1);
                    // The rotated token never arrived: the grant is stranded, so start again
                    // (a code exchange does not roll the refresh dice).
                    refresh_token = connect(&sim).await.1;
                    lost.push(true);
                }
            }
        }
        lost
    }
    let first = outcomes(5).await;
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    assert_eq!(first, outcomes(5).await);
}

#[tokio::test]
async fn token_endpoint_faults_apply_before_the_code_is_spent() {
    let sim = start_tenant(10).await;
    let code = approved_code(&sim, &[]).await;
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let (status, body) = exchange(&sim, &code).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    sim.set_faults(Faults::default());
    assert_eq!(exchange(&sim, &code).await.0, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.token, stats.server_errors), (2, 1));
}
