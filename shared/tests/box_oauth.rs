//! Box's authorization-code flow (authorize URL, code exchange, refresh, revoke) against
//! the Box simulator over real HTTP.

use std::collections::HashMap;

use chrono::Utc;
use reqwest::Url;
use reqwest::redirect::Policy;
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::box_client::oauth::{
    BOX_OAUTH_SCOPES, BoxOAuthApp, BoxTokenSet, authorize_url, exchange_code, refresh, revoke,
};
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle};
use secrecy::{ExposeSecret, SecretString};

const REDIRECT_URI: &str = "https://seatkeeper.example/oauth/box/callback?tenant=t1";

async fn start() -> SimHandle {
    let mut config = BoxSimConfig::new(BoxTenantSpec::new(7, 5));
    config.oauth_redirect_uris = vec![REDIRECT_URI.to_owned()];
    BoxSim::start(config).await.expect("simulator starts")
}

fn box_config(sim: &SimHandle) -> BoxConfig {
    BoxConfig {
        api_base: sim.base_url(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    }
}

fn app(sim: &SimHandle) -> BoxOAuthApp {
    BoxOAuthApp {
        client_id: sim.client_id(),
        client_secret: sim.client_secret().into(),
    }
}

fn http() -> HttpClient {
    HttpClient::for_tests().expect("http client")
}

/// A plain client standing in for the browser and for API calls outside the Box client.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(Policy::none())
        .build()
        .expect("reqwest client")
}

fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The admin signs in and approves; returns the code from the redirect.
async fn approve(sim: &SimHandle) -> SecretString {
    let state = "csrf state/1";
    let url = authorize_url(
        &sim.authorize_url(),
        &sim.client_id(),
        REDIRECT_URI,
        state,
        BOX_OAUTH_SCOPES,
    );
    let response = browser().get(&url).send().await.expect("authorize");
    assert_eq!(response.status(), reqwest::StatusCode::FOUND);
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("ascii location")
        .to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let params = query(&location);
    assert_eq!(params.get("state").map(String::as_str), Some(state));
    params.get("code").expect("a code").clone().into()
}

async fn grant(sim: &SimHandle) -> BoxTokenSet {
    let code = approve(sim).await;
    exchange_code(
        &http(),
        &box_config(sim),
        &app(sim),
        &code,
        REDIRECT_URI,
        Utc::now(),
    )
    .await
    .expect("code exchange")
}

/// `GET /2.0/users/me` with `token`: the user id, or the HTTP status on failure.
async fn me(sim: &SimHandle, token: &SecretString) -> Result<String, u16> {
    let response = browser()
        .get(format!("{}/2.0/users/me", sim.base_url()))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .expect("users/me");
    if !response.status().is_success() {
        return Err(response.status().as_u16());
    }
    let body: serde_json::Value = response.json().await.expect("json");
    Ok(body["id"].as_str().expect("an id").to_owned())
}

fn assert_invalid_grant(result: Result<BoxTokenSet, ProviderError>) -> ProviderError {
    match result {
        Err(err @ ProviderError::Auth { .. }) => {
            let ProviderError::Auth { code, .. } = &err else {
                unreachable!()
            };
            assert_eq!(code, "invalid_grant", "{err:?}");
            err
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

#[test]
fn authorize_url_carries_every_parameter_encoded() {
    let url = authorize_url(
        "https://account.box.com/api/oauth2/authorize",
        "client id&x=1",
        REDIRECT_URI,
        "a b&c=d/é~+",
        BOX_OAUTH_SCOPES,
    );
    assert!(
        url.starts_with("https://account.box.com/api/oauth2/authorize?response_type=code&"),
        "{url}"
    );
    // Nothing but the separators is left unencoded.
    let raw_query = url.split_once('?').unwrap().1;
    assert_eq!(raw_query.matches('&').count(), 4, "{url}");
    assert_eq!(raw_query.matches('=').count(), 5, "{url}");
    assert!(
        !raw_query.contains(' ') && !raw_query.contains('+'),
        "{url}"
    );

    let params = query(&url);
    assert_eq!(params.len(), 5);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], "client id&x=1");
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert_eq!(params["state"], "a b&c=d/é~+");
    assert_eq!(
        params["scope"],
        "manage_managed_users manage_groups manage_enterprise_properties root_readwrite"
    );
}

#[test]
fn requested_scopes_are_box_scope_names() {
    // From the OpenAPI `securitySchemes` list in shared/reference/box-api.md §2.
    let known = [
        "root_readonly",
        "root_readwrite",
        "manage_app_users",
        "manage_managed_users",
        "manage_groups",
        "manage_webhook",
        "manage_enterprise_properties",
        "manage_data_retention",
        "manage_legal_hold",
    ];
    for scope in BOX_OAUTH_SCOPES {
        assert!(known.contains(scope), "{scope}");
    }
}

#[tokio::test]
async fn exchanged_tokens_act_as_the_admin() {
    let sim = start().await;
    let before = Utc::now();
    let tokens = grant(&sim).await;
    assert_eq!(
        me(&sim, &tokens.access_token).await,
        Ok(sim.admin_user_id())
    );
    assert!(!tokens.refresh_token.expose_secret().is_empty());
    let lifetime = tokens.expires_at - before;
    assert!(
        lifetime > chrono::Duration::minutes(1) && lifetime <= chrono::Duration::hours(24),
        "{lifetime}"
    );
    assert_eq!(sim.oauth_stats().authorization_code_grants, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_code_is_single_use() {
    let sim = start().await;
    let code = approve(&sim).await;
    let (http, config, app) = (http(), box_config(&sim), app(&sim));
    exchange_code(&http, &config, &app, &code, REDIRECT_URI, Utc::now())
        .await
        .expect("first exchange");
    assert_invalid_grant(
        exchange_code(&http, &config, &app, &code, REDIRECT_URI, Utc::now()).await,
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_code_needs_its_redirect_uri() {
    let sim = start().await;
    let code = approve(&sim).await;
    assert_invalid_grant(
        exchange_code(
            &http(),
            &box_config(&sim),
            &app(&sim),
            &code,
            "https://elsewhere.example/cb",
            Utc::now(),
        )
        .await,
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let sim = start().await;
    let first = grant(&sim).await;
    let (http, config, app) = (http(), box_config(&sim), app(&sim));
    let second = refresh(&http, &config, &app, &first.refresh_token, Utc::now())
        .await
        .expect("refresh");
    assert_ne!(
        second.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    assert_eq!(
        me(&sim, &second.access_token).await,
        Ok(sim.admin_user_id())
    );

    // The old refresh token is spent; the new one still works.
    assert_invalid_grant(refresh(&http, &config, &app, &first.refresh_token, Utc::now()).await);
    refresh(&http, &config, &app, &second.refresh_token, Utc::now())
        .await
        .expect("the rotated token refreshes");
    assert_eq!(sim.oauth_stats().refresh_token_grants, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn revoked_refresh_tokens_are_invalid_grant() {
    let sim = start().await;
    let tokens = grant(&sim).await;
    sim.revoke_refresh_tokens();
    assert_invalid_grant(
        refresh(
            &http(),
            &box_config(&sim),
            &app(&sim),
            &tokens.refresh_token,
            Utc::now(),
        )
        .await,
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn revoke_ends_the_grant() {
    let sim = start().await;
    let tokens = grant(&sim).await;
    let (http, config, app) = (http(), box_config(&sim), app(&sim));
    revoke(&http, &config, &app, &tokens.access_token)
        .await
        .expect("revoke");
    assert_eq!(sim.oauth_stats().revocations, 1);
    assert_eq!(me(&sim, &tokens.access_token).await, Err(401));
    assert_invalid_grant(refresh(&http, &config, &app, &tokens.refresh_token, Utc::now()).await);
    // Revoking a dead token again is harmless.
    revoke(&http, &config, &app, &tokens.refresh_token)
        .await
        .expect("second revoke");
    sim.shutdown().await;
}

#[tokio::test]
async fn revoke_with_a_wrong_secret_is_invalid_client() {
    let sim = start().await;
    let tokens = grant(&sim).await;
    let wrong = BoxOAuthApp {
        client_id: sim.client_id(),
        client_secret: "not-the-secret".into(),
    };
    let err = revoke(&http(), &box_config(&sim), &wrong, &tokens.refresh_token)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Auth { code, .. } if code == "invalid_client"),
        "{err:?}"
    );
    sim.shutdown().await;
}

/// Box rotates the refresh token before answering. If the answer is lost, the request is
/// not retried (the old token is spent anyway) and the grant is gone: callers must persist
/// new tokens before using them and treat a lost refresh as "needs re-authorization".
#[tokio::test]
async fn a_lost_refresh_response_is_not_retried_and_spends_the_token() {
    let sim = start().await;
    let tokens = grant(&sim).await;
    let (http, config, app) = (http(), box_config(&sim), app(&sim));
    sim.set_faults(Faults {
        refresh_lost_response_ratio: 1.0,
        ..Faults::default()
    });
    let err = refresh(&http, &config, &app, &tokens.refresh_token, Utc::now())
        .await
        .expect_err("response lost");
    assert!(
        matches!(err, ProviderError::Unavailable { attempts: 1, .. }),
        "{err:?}"
    );
    let stats = sim.oauth_stats();
    assert_eq!(stats.refresh_token_grants, 1, "{stats:?}");
    assert_eq!(stats.refresh_responses_lost, 1, "{stats:?}");

    sim.set_faults(Faults::default());
    assert_invalid_grant(refresh(&http, &config, &app, &tokens.refresh_token, Utc::now()).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn no_secret_appears_in_errors_or_debug() {
    let sim = start().await;
    let tokens = grant(&sim).await;
    let (http, config, app) = (http(), box_config(&sim), app(&sim));
    let wrong_secret = "wrong-secret-5f2a";
    let wrong_app = BoxOAuthApp {
        client_id: sim.client_id(),
        client_secret: wrong_secret.into(),
    };
    let spent_code = approve(&sim).await;
    exchange_code(&http, &config, &app, &spent_code, REDIRECT_URI, Utc::now())
        .await
        .expect("exchange");

    let mut errors = vec![
        refresh(
            &http,
            &config,
            &wrong_app,
            &tokens.refresh_token,
            Utc::now(),
        )
        .await
        .expect_err("invalid_client"),
        exchange_code(&http, &config, &app, &spent_code, REDIRECT_URI, Utc::now())
            .await
            .expect_err("spent code"),
        revoke(&http, &config, &wrong_app, &tokens.access_token)
            .await
            .expect_err("invalid_client"),
    ];
    sim.set_faults(Faults {
        refresh_lost_response_ratio: 1.0,
        ..Faults::default()
    });
    errors.push(
        refresh(&http, &config, &app, &tokens.refresh_token, Utc::now())
            .await
            .expect_err("lost"),
    );
    sim.set_faults(Faults::default());
    errors.push(
        refresh(&http, &config, &app, &tokens.refresh_token, Utc::now())
            .await
            .expect_err("spent"),
    );

    let secrets = [
        sim.client_secret(),
        wrong_secret.to_owned(),
        tokens.access_token.expose_secret().to_owned(),
        tokens.refresh_token.expose_secret().to_owned(),
        spent_code.expose_secret().to_owned(),
    ];
    let mut texts: Vec<String> = errors
        .iter()
        .flat_map(|err| [err.to_string(), format!("{err:?}")])
        .collect();
    texts.push(format!("{app:?}"));
    texts.push(format!("{wrong_app:?}"));
    texts.push(format!("{tokens:?}"));
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "secret leaked in {text}");
        }
    }
    assert!(format!("{tokens:?}").contains("[redacted]"));
    sim.shutdown().await;
}
