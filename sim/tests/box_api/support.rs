use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Client, StatusCode};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use serde_json::Value;

pub const NOW: &str = "2026-03-01T12:00:00Z";

pub fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

/// A small tenant with a fixed "now", so it is identical on every run.
pub fn spec(users: usize) -> BoxTenantSpec {
    let mut spec = BoxTenantSpec::new(7, users);
    spec.now = now();
    spec
}

pub async fn start(config: BoxSimConfig) -> SimHandle {
    BoxSim::start(config).await.unwrap()
}

pub async fn start_tenant(users: usize) -> SimHandle {
    start(BoxSimConfig::new(spec(users))).await
}

pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub async fn token_response(
    client: &Client,
    sim: &SimHandle,
    secret: &str,
    enterprise_id: &str,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &sim.client_id()),
            ("client_secret", secret),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", enterprise_id),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

pub async fn token(client: &Client, sim: &SimHandle) -> String {
    let (status, body) =
        token_response(client, sim, &sim.client_secret(), &sim.enterprise_id()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET with a bearer token; the body is JSON, or `Null` when empty.
pub async fn get(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = client
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    (status, body)
}

/// All users listed by marker paging with the given page size.
pub async fn list_all_users(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    limit: &str,
) -> Vec<Value> {
    let mut users = Vec::new();
    let mut marker = String::new();
    loop {
        let (status, page) = get(
            client,
            sim,
            token,
            "/2.0/users",
            &[
                ("user_type", "managed"),
                ("usemarker", "true"),
                ("limit", limit),
                ("marker", &marker),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        users.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_marker"].as_str() {
            Some(next) if !next.is_empty() => marker = next.to_owned(),
            _ => return users,
        }
    }
}

/// All events of an `admin_logs` LOGIN stream, paging until an empty page.
pub async fn read_stream(
    client: &Client,
    sim: &SimHandle,
    token: &str,
    extra: &[(&str, &str)],
) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut position: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![
            ("stream_type", "admin_logs"),
            ("event_type", "LOGIN"),
            ("limit", "100"),
        ];
        query.extend_from_slice(extra);
        if let Some(position) = &position {
            query.push(("stream_position", position));
        }
        let (status, page) = get(client, sim, token, "/2.0/events", &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let next = page["next_stream_position"]
            .as_str()
            .expect("position is a string")
            .to_owned();
        let entries = page["entries"].as_array().unwrap();
        assert_eq!(page["chunk_size"].as_u64().unwrap() as usize, entries.len());
        if entries.is_empty() {
            if let Some(position) = &position {
                assert_eq!(&next, position, "an exhausted stream keeps its position");
            }
            return (events, pages);
        }
        events.extend(entries.iter().cloned());
        position = Some(next);
    }
}

pub fn ids(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .map(|user| user["id"].as_str().unwrap().to_owned())
        .collect()
}
