use reqwest::StatusCode;
use seatkeeper_sim::{BoxSimConfig, Faults};

use crate::support::{client, get, ids, list_all_users, spec, start, start_tenant, token};

#[tokio::test]
async fn rate_limited_requests_get_429_with_retry_after() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    });
    let response = client
        .get(format!("{}/2.0/users", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limit_exceeded");
    assert_eq!(sim.stats().rate_limited, 1);
}

#[tokio::test]
async fn server_errors_are_500_client_errors() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let (status, body) = get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs")],
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], "internal_server_error");
    assert_eq!(sim.stats().server_errors, 1);
}

#[tokio::test]
async fn dropped_connections_close_the_socket_without_a_response() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_faults(Faults {
        drop_connection_ratio: 1.0,
        ..Faults::default()
    });
    for path in ["/2.0/users", "/oauth2/token"] {
        let err = client
            .get(format!("{}{path}", sim.base_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap_err();
        assert!(err.status().is_none(), "no HTTP response: {err:?}");
        assert!(
            err.is_request() || err.is_connect(),
            "a transport error: {err:?}"
        );
        assert!(!err.is_timeout(), "closed, not hung: {err:?}");
    }
    assert_eq!(sim.stats().dropped, 2);

    sim.set_faults(Faults::default());
    let (status, _) = get(&client, &sim, &token, "/2.0/users", &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the client recovers on a new connection"
    );
}

#[tokio::test]
async fn a_token_stops_working_after_its_request_budget() {
    let sim = start_tenant(5).await;
    let client = client();
    sim.set_faults(Faults {
        token_lifetime_requests: Some(2),
        ..Faults::default()
    });
    let token = token(&client, &sim).await;
    for _ in 0..2 {
        let (status, _) = get(&client, &sim, &token, "/2.0/users/me", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = get(&client, &sim, &token, "/2.0/users/me", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let fresh = crate::support::token(&client, &sim).await;
    let (status, _) = get(&client, &sim, &fresh, "/2.0/users/me", &[]).await;
    assert_eq!(status, StatusCode::OK, "a new token works again");
    assert_eq!(sim.stats().unauthorized, 1);
}

#[tokio::test]
async fn roster_drop_silently_cuts_listings_short() {
    let sim = start_tenant(200).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_faults(Faults {
        roster_drop_ratio: 0.2,
        seed: 3,
        ..Faults::default()
    });

    let by_marker = ids(&list_all_users(&client, &sim, &token, "50").await);
    let everyone = ids(&sim.users());
    let missing = everyone.len() - by_marker.len();
    assert!(
        (20..=60).contains(&missing),
        "about a fifth missing, got {missing}"
    );

    let (_, page) = get(&client, &sim, &token, "/2.0/users", &[("limit", "1000")]).await;
    assert_eq!(
        ids(page["entries"].as_array().unwrap()),
        by_marker,
        "both paging methods agree"
    );
    assert_eq!(
        page["total_count"].as_u64().unwrap() as usize,
        by_marker.len()
    );

    let hidden = everyone.iter().find(|id| !by_marker.contains(id)).unwrap();
    let (status, _) = get(&client, &sim, &token, &format!("/2.0/users/{hidden}"), &[]).await;
    assert_eq!(status, StatusCode::OK, "a missing user still exists");
}

#[tokio::test]
async fn fault_outcomes_are_deterministic_for_a_seed() {
    async fn outcomes(seed: u64) -> Vec<StatusCode> {
        let mut config = BoxSimConfig::new(spec(5));
        config.faults = Faults {
            rate_limit_ratio: 0.3,
            server_error_ratio: 0.2,
            seed,
            ..Faults::default()
        };
        let sim = start(config).await;
        let client = client();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let (status, _) = get(&client, &sim, "no-token", "/2.0/users/me", &[]).await;
            statuses.push(status);
        }
        statuses
    }
    let first = outcomes(11).await;
    assert_eq!(first, outcomes(11).await);
    assert_ne!(first, outcomes(12).await);
    assert!(
        first.contains(&StatusCode::TOO_MANY_REQUESTS)
            && first.contains(&StatusCode::INTERNAL_SERVER_ERROR)
    );
}
