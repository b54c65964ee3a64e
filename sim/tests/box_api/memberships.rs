//! `GET /2.0/users/{id}/memberships`: a user's groups, offset-paged, with the 403 fault that
//! makes "cannot read the groups: skip the account" testable.

use reqwest::StatusCode;
use seatkeeper_sim::{AppScopes, BoxSimConfig, Faults};
use serde_json::{Value, json};

use crate::support::{client, get, spec, start, start_tenant, token};
use crate::writes::{regular_users, user_token};

fn managed_ids(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .filter(|user| user["login"].as_str().unwrap().ends_with("@example.com"))
        .map(|user| user["id"].as_str().unwrap().to_owned())
        .collect()
}

fn path(user: &str) -> String {
    format!("/2.0/users/{user}/memberships")
}

#[tokio::test]
async fn memberships_page_by_offset_and_match_the_ground_truth() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = managed_ids(&sim.users())[3].clone();
    // In every group, so that paging has several pages.
    for group in sim.groups() {
        sim.add_group_membership(&user, group["id"].as_str().unwrap());
    }
    let expected = sim.user_group_ids(&user);
    assert_eq!(expected.len(), sim.groups().len());

    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = get(
            &client,
            &sim,
            &token,
            &path(&user),
            &[("limit", "2"), ("offset", &offset.to_string())],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total_count"], expected.len());
        assert_eq!(
            (page["limit"].as_u64(), page["offset"].as_u64()),
            (Some(2), Some(offset))
        );
        let entries = page["entries"].as_array().unwrap();
        for entry in entries {
            assert_eq!(entry["type"], "group_membership");
            assert!(!entry["id"].as_str().unwrap().is_empty());
            assert_eq!(entry["user"]["id"], user.as_str());
            assert_eq!(entry["user"]["type"], "user");
            assert_eq!(entry["group"]["type"], "group");
            assert!(!entry["group"]["name"].as_str().unwrap().is_empty());
            assert!(["member", "admin"].contains(&entry["role"].as_str().unwrap()));
            seen.push(entry["group"]["id"].as_str().unwrap().to_owned());
        }
        offset += 2;
        if offset >= page["total_count"].as_u64().unwrap() {
            break;
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(
        sim.stats().memberships_pages as usize,
        expected.len().div_ceil(2)
    );
}

#[tokio::test]
async fn groups_are_seeded_deterministically_and_not_everyone_is_in_one() {
    let first = start(BoxSimConfig::new(spec(200))).await;
    let second = start(BoxSimConfig::new(spec(200))).await;
    assert_eq!(first.groups(), second.groups());
    assert!(first.groups().len() >= 3);
    let managed = managed_ids(&first.users());
    let memberships: Vec<Vec<String>> = managed.iter().map(|id| first.user_group_ids(id)).collect();
    let again: Vec<Vec<String>> = managed.iter().map(|id| second.user_group_ids(id)).collect();
    assert_eq!(memberships, again);
    let without = memberships
        .iter()
        .filter(|groups| groups.is_empty())
        .count();
    assert!(
        (20..120).contains(&without),
        "some users are in no group: {without}"
    );

    let client = client();
    let token = token(&client, &first).await;
    let lonely = &managed[memberships.iter().position(Vec::is_empty).unwrap()];
    let (status, page) = get(&client, &first, &token, &path(lonely), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            page["total_count"].as_u64(),
            page["entries"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn bad_paging_unknown_users_and_missing_scope_are_refused() {
    let sim = start_tenant(20).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = managed_ids(&sim.users())[1].clone();

    let (status, body) = get(&client, &sim, &token, &path(&user), &[("limit", "1001")]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_limit"))
    );
    let (status, body) = get(&client, &sim, &token, &path(&user), &[("offset", "10001")]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_offset"))
    );
    let (status, body) = get(&client, &sim, &token, &path("1"), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );

    sim.set_app_scopes(AppScopes {
        manage_groups: false,
        ..AppScopes::default()
    });
    let (status, body) = get(&client, &sim, &token, &path(&user), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );
}

#[tokio::test]
async fn a_regular_user_reads_only_their_own_memberships() {
    let sim = start_tenant(30).await;
    let users = regular_users(&sim);
    let (me, other) = (
        users[0]["id"].as_str().unwrap().to_owned(),
        users[1]["id"].as_str().unwrap().to_owned(),
    );
    let client = client();
    let token = user_token(&sim, &me).await;
    let (status, _) = get(&client, &sim, &token, &path(&me), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&client, &sim, &token, &path(&other), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
}

#[tokio::test]
async fn chosen_users_memberships_are_unreadable() {
    let sim = start_tenant(30).await;
    let client = client();
    let token = token(&client, &sim).await;
    let managed = managed_ids(&sim.users());
    let (blocked, open) = (managed[2].clone(), managed[3].clone());
    sim.set_faults(Faults {
        memberships_forbidden_users: vec![blocked.clone()],
        ..Faults::default()
    });
    let (status, body) = get(&client, &sim, &token, &path(&blocked), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "access_denied_insufficient_permissions");
    let (status, _) = get(&client, &sim, &token, &path(&open), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_share_of_users_memberships_are_unreadable_and_stay_so() {
    let sim = start_tenant(100).await;
    let client = client();
    let token = token(&client, &sim).await;
    sim.set_faults(Faults {
        memberships_forbidden_ratio: 0.3,
        seed: 5,
        ..Faults::default()
    });
    let managed = managed_ids(&sim.users());
    let mut forbidden = Vec::new();
    for user in &managed {
        let (status, _) = get(&client, &sim, &token, &path(user), &[]).await;
        assert!(matches!(status, StatusCode::OK | StatusCode::FORBIDDEN));
        if status == StatusCode::FORBIDDEN {
            forbidden.push(user.clone());
        }
    }
    assert!(
        (15..=45).contains(&forbidden.len()),
        "about 30 %: {}",
        forbidden.len()
    );
    for user in &forbidden {
        let (status, _) = get(&client, &sim, &token, &path(user), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "the same users every time");
    }
}

#[tokio::test]
async fn request_faults_apply_to_memberships() {
    let sim = start_tenant(10).await;
    let client = client();
    let token = token(&client, &sim).await;
    let user = managed_ids(&sim.users())[1].clone();
    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 2,
        ..Faults::default()
    });
    let (status, body) = get(&client, &sim, &token, &path(&user), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::TOO_MANY_REQUESTS, &json!("rate_limit_exceeded"))
    );
    let stats = sim.stats();
    assert_eq!((stats.memberships_pages, stats.rate_limited), (1, 1));
}
