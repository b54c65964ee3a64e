//! The user's own event stream read with `As-User` (`GET /2.0/events?stream_type=all`), and
//! the rules for who may impersonate whom.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use seatkeeper_sim::{AppScopes, BoxSimConfig, SimHandle};
use serde_json::{Value, json};

use crate::support::{client, get, now, spec, start, start_tenant, token};
use crate::writes::{get_as, regular_users, user_token};

const ALL: [(&str, &str); 1] = [("stream_type", "all")];

fn id_of(user: &Value) -> String {
    user["id"].as_str().unwrap().to_owned()
}

fn created_at(event: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(event["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A regular active user whose own stream is empty.
fn quiet_user(sim: &SimHandle) -> String {
    regular_users(sim)
        .iter()
        .map(id_of)
        .find(|id| sim.user_events(id).is_empty())
        .expect("some users have no recent activity")
}

#[tokio::test]
async fn as_user_reads_the_users_own_stream() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = quiet_user(&sim);
    let upload = now() - Duration::days(2);
    let preview = now() - Duration::hours(3);
    sim.add_user_event(&user, "ITEM_PREVIEW", preview);
    sim.add_user_event(&user, "ITEM_UPLOAD", upload);

    let (status, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(page["chunk_size"], 2);
    assert_eq!(entries[0]["event_type"], "ITEM_UPLOAD");
    assert_eq!(entries[1]["event_type"], "ITEM_PREVIEW");
    assert_eq!(
        (created_at(&entries[0]), created_at(&entries[1])),
        (upload, preview)
    );
    for entry in entries {
        assert_eq!(entry["type"], "event");
        assert_eq!(entry["created_by"]["id"], user.as_str());
        assert!(!entry["event_id"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        sim.user_events(&user),
        [
            ("ITEM_UPLOAD".to_owned(), upload),
            ("ITEM_PREVIEW".to_owned(), preview)
        ]
    );

    // Paging on from the position given: nothing more, then a new event shows up.
    let position = page["next_stream_position"].as_str().unwrap().to_owned();
    let from_position = [
        ("stream_type", "all"),
        ("stream_position", position.as_str()),
    ];
    let (_, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &from_position).await;
    assert_eq!(page["chunk_size"], 0);
    assert_eq!(page["next_stream_position"], position.as_str());
    sim.add_user_event(&user, "ITEM_DOWNLOAD", now() - Duration::minutes(1));
    let (_, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &from_position).await;
    assert_eq!(page["chunk_size"], 1);
    assert_eq!(page["entries"][0]["event_type"], "ITEM_DOWNLOAD");
    assert_eq!(sim.stats().as_user_requests, 3);
}

#[tokio::test]
async fn limit_and_now_work_on_the_users_stream() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = quiet_user(&sim);
    for hours in 1..=5 {
        sim.add_user_event(&user, "ITEM_SYNC", now() - Duration::hours(hours));
    }
    let query = [("stream_type", "all"), ("limit", "2")];
    let (_, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &query).await;
    assert_eq!(page["chunk_size"], 2);

    let query = [("stream_type", "all"), ("stream_position", "now")];
    let (_, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &query).await;
    assert_eq!(page["chunk_size"], 0);
    let latest = page["next_stream_position"].as_str().unwrap().to_owned();
    sim.add_user_event(&user, "ITEM_UPLOAD", now());
    let query = [
        ("stream_type", "changes"),
        ("stream_position", latest.as_str()),
    ];
    let (_, page) = get_as(&client, &sim, &token, &user, "/2.0/events", &query).await;
    assert_eq!(page["chunk_size"], 1, "{page}");
}

#[tokio::test]
async fn without_as_user_the_stream_is_the_service_accounts_own_and_empty() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = quiet_user(&sim);
    sim.add_user_event(&user, "ITEM_UPLOAD", now());
    let (status, page) = get(&client, &sim, &token, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["chunk_size"], 0);
    assert_eq!(sim.stats().as_user_requests, 0);
}

#[tokio::test]
async fn as_user_needs_the_app_setting() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = quiet_user(&sim);
    sim.set_app_scopes(AppScopes {
        as_user: false,
        ..AppScopes::default()
    });
    let (status, body) = get_as(&client, &sim, &token, &user, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
    let (status, _) = get_as(&client, &sim, &token, &user, "/2.0/users/me", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(sim.stats().as_user_requests, 2);
}

#[tokio::test]
async fn only_regular_users_can_be_impersonated_and_only_by_admins() {
    let sim = start_tenant(40).await;
    let client = client();
    let token = token(&client, &sim).await;
    let coadmin = sim
        .users()
        .into_iter()
        .find(|user| user["role"] == "coadmin")
        .map(|user| id_of(&user))
        .unwrap();
    for target in [sim.admin_user_id(), coadmin, sim.service_account_id()] {
        let (status, body) = get_as(&client, &sim, &token, &target, "/2.0/events", &ALL).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{target}");
        assert_eq!(body["code"], "access_denied_insufficient_permissions");
    }
    let (status, _) = get_as(&client, &sim, &token, "1", "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get_as(&client, &sim, &token, "bob", "/2.0/events", &ALL).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );

    // A regular user's token cannot impersonate anyone.
    let users = regular_users(&sim);
    let (me, other) = (id_of(&users[0]), id_of(&users[1]));
    let user_token = user_token(&sim, &me).await;
    let (status, _) = get_as(&client, &sim, &user_token, &other, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Impersonated users are not admins: the enterprise log is refused.
    let query = [("stream_type", "admin_logs")];
    let (status, _) = get_as(&client, &sim, &token, &other, "/2.0/events", &query).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn users_me_answers_the_impersonated_user() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = id_of(&regular_users(&sim)[0]);
    let (status, me) = get_as(&client, &sim, &token, &user, "/2.0/users/me", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], user.as_str());
    let (_, me) = get(&client, &sim, &token, "/2.0/users/me", &[]).await;
    assert_eq!(me["id"], sim.service_account_id().as_str());
}

#[tokio::test]
async fn an_oauth_users_own_stream_is_theirs() {
    let sim = start_tenant(20).await;
    let client = client();
    let user = quiet_user(&sim);
    sim.add_user_event(&user, "ITEM_PREVIEW", now());
    let token = user_token(&sim, &user).await;
    let (status, page) = get(&client, &sim, &token, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["chunk_size"], 1);
}

#[tokio::test]
async fn drive_only_users_look_inactive_in_the_login_log_but_not_in_their_own_stream() {
    let mut tenant = spec(400);
    tenant.drive_only_share = 0.2;
    let sim = start(BoxSimConfig::new(tenant)).await;
    let last_login: std::collections::HashMap<String, DateTime<Utc>> =
        sim.login_events().into_iter().collect();
    let quiet: Vec<String> = sim
        .users()
        .iter()
        .filter(|user| user["login"].as_str().unwrap().ends_with("@example.com"))
        .map(id_of)
        .filter(|id| {
            last_login
                .get(id)
                .is_none_or(|at| *at < now() - Duration::days(90))
        })
        .collect();
    assert_eq!(quiet.len(), 120);
    let drive_only: Vec<&String> = quiet
        .iter()
        .filter(|id| !sim.user_events(id).is_empty())
        .collect();
    assert_eq!(drive_only.len(), 24, "a fifth of the quiet users");
    for id in &drive_only {
        for (_, at) in sim.user_events(id) {
            assert!(at > now() - Duration::days(21) && at <= now());
        }
    }

    // Seen over HTTP, for one that can be impersonated.
    let client = client();
    let token = token(&client, &sim).await;
    let regular: Vec<String> = regular_users(&sim).iter().map(id_of).collect();
    let user = drive_only
        .iter()
        .find(|id| regular.contains(id))
        .expect("a regular drive-only user");
    let (status, page) = get_as(&client, &sim, &token, user, "/2.0/events", &ALL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["chunk_size"], sim.user_events(user).len());
}

#[tokio::test]
async fn the_control_plane_adds_user_events() {
    let sim = start_tenant(20).await;
    let client = client();
    let user = quiet_user(&sim);
    let at = now() - Duration::hours(1);
    let response = client
        .post(format!("{}/_sim/users/{user}/events", sim.base_url()))
        .json(&json!({"event_type": "ITEM_UPLOAD", "at": at}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.user_events(&user), [("ITEM_UPLOAD".to_owned(), at)]);
    let response = client
        .post(format!("{}/_sim/users/1/events", sim.base_url()))
        .json(&json!({"event_type": "ITEM_UPLOAD", "at": at}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_enterprise_log_needs_the_enterprise_properties_scope() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_app_scopes(AppScopes {
        manage_enterprise_properties: false,
        ..AppScopes::default()
    });
    let query = [("stream_type", "admin_logs")];
    let (status, body) = get(&client, &sim, &token, "/2.0/events", &query).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");

    // The older config switch takes the same scope away.
    let mut config = BoxSimConfig::new(spec(10));
    config.app_can_read_events = false;
    let sim = start(config).await;
    assert!(!sim.app_scopes().manage_enterprise_properties);
}

#[tokio::test]
async fn writes_made_as_a_regular_user_are_refused() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let users = regular_users(&sim);
    let (acting, target) = (id_of(&users[0]), id_of(&users[1]));
    let response = client
        .put(format!("{}/2.0/users/{target}", sim.base_url()))
        .bearer_auth(&token)
        .header("As-User", &acting)
        .json(&json!({"status": "inactive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client
        .delete(format!("{}/2.0/users/{target}", sim.base_url()))
        .bearer_auth(&token)
        .header("As-User", &acting)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let still = sim
        .users()
        .into_iter()
        .find(|u| id_of(u) == target)
        .unwrap();
    assert_eq!(still["status"], "active");
}
