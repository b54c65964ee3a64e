use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use seatkeeper_sim::BoxSimConfig;

use crate::support::{client, get, now, read_stream, spec, start, start_tenant, token};

fn created_at(event: &serde_json::Value) -> DateTime<Utc> {
    event["created_at"]
        .as_str()
        .unwrap()
        .parse::<DateTime<chrono::FixedOffset>>()
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn paging_until_empty_returns_the_whole_login_history_in_order() {
    let sim = start_tenant(40).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (events, pages) = read_stream(&client, &sim, &token, &[]).await;

    let truth = sim.login_events();
    assert_eq!(truth.len(), 400);
    assert_eq!(pages, 5, "four full pages, then the empty one");
    let seen: Vec<_> = events
        .iter()
        .map(|event| {
            (
                event["created_by"]["id"].as_str().unwrap().to_owned(),
                created_at(event),
            )
        })
        .collect();
    assert_eq!(seen, truth);
    let unique: HashSet<_> = events
        .iter()
        .map(|event| event["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), events.len(), "event ids are unique");
    assert!(
        events
            .iter()
            .all(|event| event["event_type"] == "LOGIN" && event["type"] == "event")
    );
    assert!(
        events
            .windows(2)
            .all(|pair| created_at(&pair[0]) <= created_at(&pair[1]))
    );
}

#[tokio::test]
async fn created_after_and_before_bound_the_stream() {
    let sim = start_tenant(40).await;
    let client = client();
    let token = token(&client, &sim).await;
    let after = now() - Duration::days(30);
    let before = now() - Duration::days(10);
    // A non-UTC offset, as a client may well send one.
    let after_text = after
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    let (events, _) = read_stream(
        &client,
        &sim,
        &token,
        &[
            ("created_after", &after_text),
            ("created_before", &before.to_rfc3339()),
        ],
    )
    .await;

    let expected = sim
        .login_events()
        .into_iter()
        .filter(|(_, at)| *at >= after && *at <= before)
        .count();
    assert!(expected > 0);
    assert_eq!(events.len(), expected);
    assert!(
        events
            .iter()
            .all(|event| created_at(event) >= after && created_at(event) <= before)
    );
}

#[tokio::test]
async fn limit_above_500_is_rejected() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (status, body) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs"), ("limit", "501")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_limit");
    let (status, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs"), ("limit", "500")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["chunk_size"], 50);
}

#[tokio::test]
async fn app_without_enterprise_properties_scope_gets_403() {
    let mut config = BoxSimConfig::new(spec(5));
    config.app_can_read_events = false;
    let sim = start(config).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (status, body) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
}

#[tokio::test]
async fn other_event_types_are_empty() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (status, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[
            ("stream_type", "admin_logs"),
            ("event_type", "UPLOAD,DOWNLOAD"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["chunk_size"], 0);
    assert!(page["next_stream_position"].is_string());
}

#[tokio::test]
async fn an_added_login_is_picked_up_from_the_saved_position() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (_, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs"), ("limit", "500")],
    )
    .await;
    let position = page["next_stream_position"].as_str().unwrap().to_owned();
    assert!(
        position.parse::<u64>().unwrap() > 1 << 53,
        "positions need the string form"
    );

    let user = sim.users()[2]["id"].as_str().unwrap().to_owned();
    sim.add_login(&user, now() + Duration::minutes(5));
    let (_, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[
            ("stream_type", "admin_logs"),
            ("stream_position", &position),
        ],
    )
    .await;
    assert_eq!(page["chunk_size"], 1);
    assert_eq!(page["entries"][0]["created_by"]["id"], user.as_str());
    assert_eq!(
        sim.login_events().last().unwrap(),
        &(user, now() + Duration::minutes(5))
    );
}

#[tokio::test]
async fn stream_position_now_gives_no_events_and_the_latest_position() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (_, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs"), ("stream_position", "now")],
    )
    .await;
    assert_eq!(page["chunk_size"], 0);
    let position = page["next_stream_position"].as_str().unwrap().to_owned();
    let (_, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[
            ("stream_type", "admin_logs"),
            ("stream_position", &position),
        ],
    )
    .await;
    assert_eq!(page["chunk_size"], 0);
}
