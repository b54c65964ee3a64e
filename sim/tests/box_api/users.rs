use std::collections::HashSet;

use reqwest::StatusCode;
use seatkeeper_sim::BoxSimConfig;

use crate::support::{client, get, ids, list_all_users, spec, start, start_tenant, token};

#[tokio::test]
async fn marker_paging_lists_every_user_exactly_once() {
    let sim = start_tenant(250).await;
    let client = client();
    let token = token(&client, &sim).await;
    let listed = ids(&list_all_users(&client, &sim, &token, "100").await);
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no user twice");
    let expected = ids(&sim.users());
    assert_eq!(listed, expected, "every user, in a stable order");
    // 250 managed users + 1 app user + the service account.
    assert_eq!(listed.len(), 252);
    assert!(listed.contains(&sim.service_account_id()));
    assert_eq!(sim.stats().users_pages, 3);
}

#[tokio::test]
async fn marker_pages_carry_only_entries_limit_and_next_marker() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (_, page) = get(
        &client,
        &sim,
        &token,
        "/2.0/users",
        &[("usemarker", "true"), ("limit", "1000")],
    )
    .await;
    let mut keys: Vec<_> = page.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["entries", "limit", "next_marker"]);
    assert!(page["next_marker"].is_null());
    assert_eq!(page["entries"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn offset_paging_reports_total_count() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let mut listed = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = get(
            &client,
            &sim,
            &token,
            "/2.0/users",
            &[("offset", &offset.to_string()), ("limit", "7")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total_count"], 32);
        listed.extend(page["entries"].as_array().unwrap().iter().cloned());
        offset += page["limit"].as_u64().unwrap();
        if offset >= page["total_count"].as_u64().unwrap() {
            break;
        }
    }
    assert_eq!(ids(&listed), ids(&sim.users()));
}

#[tokio::test]
async fn offset_above_10000_is_rejected() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    let (status, body) = get(&client, &sim, &token, "/2.0/users", &[("offset", "10001")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "error");
    assert_eq!(body["code"], "invalid_offset");
    let (status, _) = get(&client, &sim, &token, "/2.0/users", &[("offset", "10000")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn limit_above_1000_is_rejected() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;
    for usemarker in ["true", "false"] {
        let (status, body) = get(
            &client,
            &sim,
            &token,
            "/2.0/users",
            &[("usemarker", usemarker), ("limit", "1001")],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_limit");
        assert_eq!(body["status"], 400);
    }
}

#[tokio::test]
async fn fields_replace_the_standard_fields_with_mini_plus_those_named() {
    let sim = start_tenant(5).await;
    let client = client();
    let token = token(&client, &sim).await;

    let (_, standard) = get(
        &client,
        &sim,
        &token,
        "/2.0/users",
        &[("usemarker", "true")],
    )
    .await;
    let user = &standard["entries"][0];
    assert!(user.get("status").is_some() && user.get("created_at").is_some());
    assert!(user.get("role").is_none(), "role is a full field");

    let (_, chosen) = get(
        &client,
        &sim,
        &token,
        "/2.0/users",
        &[
            ("usemarker", "true"),
            ("fields", "role,is_platform_access_only"),
        ],
    )
    .await;
    let user = chosen["entries"][0].as_object().unwrap();
    let mut keys: Vec<_> = user.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "id",
            "is_platform_access_only",
            "login",
            "name",
            "role",
            "type"
        ]
    );
    assert_eq!(user["role"], "admin");
}

#[tokio::test]
async fn app_without_enterprise_access_sees_no_managed_users() {
    let mut config = BoxSimConfig::new(spec(40));
    config.tenant.app_users = 3;
    config.app_has_enterprise_access = false;
    let sim = start(config).await;
    let client = client();
    let token = token(&client, &sim).await;
    let listed = list_all_users(&client, &sim, &token, "1000").await;
    assert_eq!(listed.len(), 4, "the service account and its app users");
    let managed = sim
        .users()
        .into_iter()
        .find(|user| user["role"] == "user" && user["is_platform_access_only"] == false)
        .unwrap();
    let (status, _) = get(
        &client,
        &sim,
        &token,
        &format!("/2.0/users/{}", managed["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn removed_users_leave_the_roster_and_status_changes_show() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    let all = ids(&sim.users());
    sim.remove_user(&all[3]);
    sim.set_user_status(&all[4], "inactive");

    let listed = ids(&list_all_users(&client, &sim, &token, "1000").await);
    assert!(!listed.contains(&all[3]));
    assert_eq!(listed.len(), all.len() - 1);
    let (status, _) = get(
        &client,
        &sim,
        &token,
        &format!("/2.0/users/{}", all[3]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, user) = get(
        &client,
        &sim,
        &token,
        &format!("/2.0/users/{}", all[4]),
        &[("fields", "status")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["status"], "inactive");
}

#[tokio::test]
async fn user_objects_look_like_box_users() {
    let sim = start_tenant(300).await;
    let users = sim.users();
    let managed: Vec<_> = users
        .iter()
        .filter(|user| user["login"].as_str().unwrap().ends_with("@example.com"))
        .collect();
    assert_eq!(managed.len(), 300);
    assert_eq!(
        managed
            .iter()
            .filter(|user| user["role"] == "admin")
            .count(),
        1
    );
    assert!(managed.iter().any(|user| user["role"] == "coadmin"));
    assert!(managed.iter().any(|user| user["status"] == "inactive"));
    for user in &users {
        assert!(user["name"].as_str().unwrap().chars().count() <= 50);
        assert_eq!(user["enterprise"]["id"], sim.enterprise_id().as_str());
        chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().unwrap()).unwrap();
    }
    let app_users: Vec<_> = users
        .iter()
        .filter(|user| user["is_platform_access_only"] == true)
        .collect();
    assert_eq!(app_users.len(), 1);
    assert!(
        app_users[0]["login"]
            .as_str()
            .unwrap()
            .starts_with("AppUser_")
    );
}
