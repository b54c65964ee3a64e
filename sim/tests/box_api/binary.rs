use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_binary_prints_one_ready_line_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper-sim"))
        .args([
            "box", "--port", "0", "--users", "50", "--events", "500", "--seed", "42",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let keys: Vec<_> = ready.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 4, "{line}");
    let base_url = ready["base_url"].as_str().unwrap();
    assert!(base_url.starts_with("http://127.0.0.1:"));

    let client = crate::support::client();
    let response = client
        .post(format!("{base_url}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ready["client_id"].as_str().unwrap()),
            ("client_secret", ready["client_secret"].as_str().unwrap()),
            ("box_subject_type", "enterprise"),
            ("box_subject_id", ready["enterprise_id"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = client
        .get(format!("{base_url}/_sim/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["events"], 500);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_registers_oauth_redirect_uris() {
    let callback = "https://app.example.com/box/callback";
    let mut child = Command::new(env!("CARGO_BIN_EXE_seatkeeper-sim"))
        .args([
            "box",
            "--users",
            "5",
            "--oauth-redirect-uri",
            callback,
            "--oauth-redirect-uri",
            "http://127.0.0.1:9/other",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let base_url = ready["base_url"].as_str().unwrap();
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = |redirect_uri: &'static str| {
        browser
            .get(format!("{base_url}/api/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", ready["client_id"].as_str().unwrap()),
                ("redirect_uri", redirect_uri),
            ])
            .send()
    };
    let approved = authorize(callback).await.unwrap();
    assert_eq!(approved.status(), StatusCode::FOUND);
    let location = approved.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{callback}?code=")),
        "{location}"
    );
    let refused = authorize("https://elsewhere.example.com/cb").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    child.kill().await.unwrap();
}
