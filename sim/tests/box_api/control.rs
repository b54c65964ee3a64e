use reqwest::StatusCode;
use seatkeeper_sim::{Faults, SimStats};
use serde_json::{Value, json};

use crate::support::{client, get, start_tenant, token};

#[tokio::test]
async fn faults_can_be_set_over_http_and_never_hit_the_control_plane() {
    let sim = start_tenant(5).await;
    let client = client();
    let response = client
        .put(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({ "drop_connection_ratio": 1.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let faults: Faults = response.json().await.unwrap();
    assert_eq!(
        faults,
        Faults {
            drop_connection_ratio: 1.0,
            ..Faults::default()
        }
    );

    assert!(
        client
            .post(format!("{}/oauth2/token", sim.base_url()))
            .send()
            .await
            .is_err()
    );
    let stats: SimStats = client
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        SimStats {
            total: 1,
            token: 1,
            dropped: 1,
            ..SimStats::default()
        }
    );
}

#[tokio::test]
async fn info_describes_the_tenant_and_stats_count_requests() {
    let sim = start_tenant(20).await;
    let client = client();
    let info: Value = client
        .get(format!("{}/_sim/info", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["enterprise_id"], sim.enterprise_id().as_str());
    assert_eq!(info["client_id"], sim.client_id().as_str());
    assert_eq!(info["client_secret"], sim.client_secret().as_str());
    assert_eq!(
        info["service_account_id"],
        sim.service_account_id().as_str()
    );
    assert_eq!(info["admin_user_id"], sim.admin_user_id().as_str());
    assert_eq!(info["users"], 22);
    assert_eq!(info["events"], 200);

    let token = token(&client, &sim).await;
    get(&client, &sim, &token, "/2.0/users", &[]).await;
    get(
        &client,
        &sim,
        &token,
        "/2.0/events",
        &[("stream_type", "admin_logs")],
    )
    .await;
    get(&client, &sim, &token, "/2.0/users/me", &[]).await;
    get(&client, &sim, &token, "/2.0/nothing-here", &[]).await;
    assert_eq!(
        sim.stats(),
        SimStats {
            total: 5,
            token: 1,
            users_pages: 1,
            events_pages: 1,
            other: 2,
            ..SimStats::default()
        }
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = start_tenant(5).await;
    let url = format!("{}/_sim/info", sim.base_url());
    sim.shutdown().await;
    assert!(client().get(url).send().await.is_err());
}
