//! License information: summary, accounts (three indexes, JSON and CSV), snapshots, tasks,
//! audit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use seatkeeper_shared::domain::{
    Account, AccountKind, AuthKind, BoxPlan, InactiveDays, Integration, IntegrationId,
    IntegrationStatus, Provider, SnapshotBuilder,
};
use seatkeeper_shared::services::report::{AccountRow, for_each_account, license_summary};
use serde_json::{Value, json};

use crate::support::{Event, TestApp};

/// Every page of an accounts listing, following `next_cursor`; the ids in order.
async fn all_pages(app: &TestApp, id: &IntegrationId, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_owned(),
        };
        let response = app
            .send(Event::get(&format!("/integrations/{id}/accounts")).query(&q))
            .await;
        assert_eq!(response.status, 200, "{q}: {}", response.text());
        let body = response.json();
        items.extend(body["items"].as_array().expect("items").iter().cloned());
        pages += 1;
        assert!(pages < 1000, "paging ends");
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn current_accounts(app: &TestApp, id: &IntegrationId) -> Vec<AccountRow> {
    let mut rows = Vec::new();
    for_each_account(app.store(), id, |row| {
        rows.push(row);
        Ok(())
    })
    .await
    .expect("accounts");
    rows
}

#[tokio::test]
async fn the_license_summary_comes_from_the_snapshot_with_savings_once_priced() {
    let app = TestApp::start(60).await;
    let id = app.connect().await;
    let never = app
        .send(Event::get(&format!("/integrations/{id}/licenses")))
        .await;
    assert_eq!(never.status, 409);
    assert_eq!(never.error_code(), "not_synced");

    app.sync(&id).await;
    let path = format!("/integrations/{id}/licenses");
    let response = app.send(Event::get(&path)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["inactive_days"], 90);
    assert_eq!(body["potential_savings"], Value::Null);
    assert!(body.get("accounts").is_none());
    let expected = license_summary(app.store(), &id, InactiveDays::default())
        .await
        .expect("report");
    assert_eq!(
        body,
        serde_json::to_value(&expected).expect("json"),
        "the CLI report's figures"
    );
    let business = &body["license_types"][0];
    assert_eq!(business["name"], "Business");
    let inactive = business["inactive"].as_u64().expect("inactive");
    assert!(inactive > 0 && inactive < business["assigned"].as_u64().expect("assigned"));

    let at_30 = app.send(Event::get(&path).query("inactive_days=30")).await;
    assert_eq!(at_30.json()["inactive_days"], 30);
    assert!(at_30.json()["license_types"][0]["inactive"].as_u64() >= Some(inactive));

    let priced = app
        .send(Event::patch(&format!("/integrations/{id}")).json(&json!({
            "price_per_seat": {"monthly": 1500, "currency": "USD"}
        })))
        .await;
    assert_eq!(priced.status, 200);
    let savings = app.send(Event::get(&path)).await.json()["potential_savings"].clone();
    assert_eq!(
        savings,
        json!({
            "inactive_seats": inactive,
            "monthly": inactive * 1500,
            "yearly": inactive * 1500 * 12,
            "currency": "USD"
        })
    );

    for bad in [
        "inactive_days=0",
        "inactive_days=366",
        "inactive_days=x",
        "days=3",
    ] {
        let response = app.send(Event::get(&path).query(bad)).await;
        assert_eq!(response.status, 400, "{bad}");
    }
    let missing = app.send(Event::get("/integrations/nope/licenses")).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn accounts_page_through_the_partition_by_id_without_gaps_or_repeats() {
    let app = TestApp::start(45).await;
    let id = app.connected_and_synced().await;
    let (items, pages) = all_pages(&app, &id, "limit=7").await;
    let expected: Vec<String> = current_accounts(&app, &id)
        .await
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids(&items), expected);
    assert!(pages >= expected.len().div_ceil(7), "{pages} pages");
    let first = app
        .send(Event::get(&format!("/integrations/{id}/accounts")))
        .await;
    assert_eq!(
        first.json()["items"].as_array().map(Vec::len),
        Some(expected.len()),
        "default limit 100"
    );
    assert_eq!(first.json()["next_cursor"], Value::Null);
}

#[tokio::test]
async fn dormant_seat_holders_of_a_license_type_come_oldest_first_from_the_index() {
    let app = TestApp::start(60).await;
    let id = app.connected_and_synced().await;
    let (items, _) = all_pages(&app, &id, "license_type=Business&inactive_days=90&limit=4").await;
    let cutoff = app.now() - Duration::days(90);
    let mut previous: Option<String> = None;
    for item in &items {
        assert_eq!(item["license_type"], "Business");
        let login = item["last_login_at"].as_str().map(|s| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        });
        assert!(login.is_none_or(|t| t < cutoff), "{item}");
        let sort = login.map_or("0000".to_owned(), |t| t.to_rfc3339());
        if let Some(p) = &previous {
            assert!(p <= &sort, "oldest first");
        }
        previous = Some(sort);
    }
    let summary = app
        .send(Event::get(&format!("/integrations/{id}/licenses")))
        .await
        .json();
    assert_eq!(
        items.len() as u64,
        summary["license_types"][0]["inactive"]
            .as_u64()
            .expect("inactive"),
        "the listing agrees with the summary"
    );
    // Without a threshold: every seat holder of the type.
    let (holders, _) = all_pages(&app, &id, "license_type=Business&limit=1000").await;
    assert_eq!(
        holders.len() as u64,
        summary["license_types"][0]["assigned"]
            .as_u64()
            .expect("assigned")
    );
    let (none, _) = all_pages(&app, &id, "license_type=Enterprise%20Plus").await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn accounts_of_one_kind_come_from_their_index() {
    let app = TestApp::start(400).await;
    let id = app.connected_and_synced().await;
    let snapshot = app
        .store()
        .latest_snapshot(&id)
        .await
        .expect("read")
        .expect("snapshot");
    for kind in ["app", "human", "service"] {
        let (items, _) = all_pages(&app, &id, &format!("kind={kind}&limit=50")).await;
        assert!(items.iter().all(|a| a["kind"] == kind));
        assert_eq!(
            items.len() as u64,
            snapshot.accounts_by_kind.get(kind).copied().unwrap_or(0),
            "{kind}"
        );
    }
}

/// Accounts of two license types, written directly, with a snapshot naming both.
async fn two_license_types(app: &TestApp) -> (IntegrationId, BTreeSet<String>) {
    let id = IntegrationId::generate();
    let now = app.now();
    app.store()
        .create_integration(&Integration {
            secret_name: Integration::secret_name_for(&id),
            id: id.clone(),
            provider: Provider::Box,
            name: "Two types".into(),
            auth_kind: AuthKind::ClientCredentials,
            tenant_id: "777".into(),
            status: IntegrationStatus::Connected,
            enabled: true,
            plan: Some(BoxPlan::Business),
            purchased_seats: Some(100),
            service_user_id: None,
            sync: Default::default(),
            created_at: now,
            updated_at: now,
            last_sync: None,
            reclaim: Default::default(),
            seat_price: None,
        })
        .await
        .expect("created");
    let account = |n: usize, license: &str, days_ago: Option<i64>| Account {
        external_id: format!("{n:04}"),
        login: format!("user{n}@example.com"),
        name: format!("User {n}"),
        kind: AccountKind::Human,
        status: "active".into(),
        role: Some("user".into()),
        license_type: Some(license.into()),
        last_login_at: days_ago.map(|d| now - Duration::days(d)),
        created_at: None,
        modified_at: None,
        space_amount_bytes: None,
        space_used_bytes: None,
        max_upload_size_bytes: None,
        is_sync_enabled: None,
        is_exempt_from_device_limits: None,
        attributes: BTreeMap::new(),
        vanished_at: None,
    };
    let mut accounts = Vec::new();
    let mut dormant = BTreeSet::new();
    for n in 0..24 {
        let license = if n % 3 == 0 { "Alpha" } else { "Beta" };
        let days = match n % 4 {
            0 => None,
            1 => Some(5),
            2 => Some(120),
            _ => Some(400),
        };
        if days.is_none_or(|d| d >= 90) {
            dormant.insert(format!("{n:04}"));
        }
        accounts.push(account(n, license, days));
    }
    app.store()
        .put_accounts(&id, &accounts)
        .await
        .expect("accounts");
    let mut builder = SnapshotBuilder::new(now, &["Alpha".to_owned(), "Beta".to_owned()]);
    for a in &accounts {
        builder.add(a);
    }
    app.store()
        .put_snapshot(&builder.finish(id.clone(), "sync-1".into(), None, Some(100)))
        .await
        .expect("snapshot");
    (id, dormant)
}

#[tokio::test]
async fn inactive_days_alone_walks_every_license_type_across_pages() {
    let app = TestApp::start(1).await;
    let (id, dormant) = two_license_types(&app).await;
    let (items, pages) = all_pages(&app, &id, "inactive_days=90&limit=5").await;
    let listed: Vec<String> = ids(&items);
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), dormant);
    assert_eq!(listed.len(), dormant.len(), "no repeats");
    assert!(pages >= 3);
    let types: Vec<&str> = items
        .iter()
        .map(|a| a["license_type"].as_str().expect("type"))
        .collect();
    let first_beta = types.iter().position(|t| *t == "Beta").expect("a Beta");
    assert!(types[..first_beta].iter().all(|t| *t == "Alpha"));
    assert!(
        types[first_beta..].iter().all(|t| *t == "Beta"),
        "type after type"
    );
}

#[tokio::test]
async fn csv_pages_stream_rows_and_link_to_the_next_page() {
    let app = TestApp::start(30).await;
    let id = app.connected_and_synced().await;
    let expected = current_accounts(&app, &id).await;
    let mut query = "limit=8".to_owned();
    let mut lines = Vec::new();
    loop {
        let response = app
            .send(
                Event::get(&format!("/integrations/{id}/accounts"))
                    .query(&query)
                    .header("accept", "text/csv"),
            )
            .await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/csv; charset=utf-8")
        );
        let text = response.text();
        let mut page = text.lines();
        assert_eq!(page.next(), Some(AccountRow::CSV_HEADER));
        lines.extend(page.map(str::to_owned));
        let Some(link) = response.header("link") else {
            break;
        };
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(t, _)| t.to_owned())
            .expect("a next link");
        let (path, q) = target.split_once('?').expect("a query");
        assert_eq!(path, format!("/integrations/{id}/accounts"));
        assert!(q.starts_with("limit=8&cursor="), "{q}");
        query = q.to_owned();
    }
    let expected_lines: Vec<String> = expected.iter().map(AccountRow::csv_line).collect();
    assert_eq!(lines, expected_lines);
}

#[tokio::test]
async fn bad_cursors_limits_and_filter_combinations_are_400s() {
    let app = TestApp::start(20).await;
    let id = app.connected_and_synced().await;
    let path = format!("/integrations/{id}/accounts");
    let first = app.send(Event::get(&path).query("limit=2")).await.json();
    let kind_cursor = app
        .send(Event::get(&path).query("kind=human&limit=2"))
        .await
        .json()["next_cursor"]
        .as_str()
        .expect("more humans")
        .to_owned();
    let cursor = first["next_cursor"].as_str().expect("a next page");
    use base64::Engine;
    let forged_inner = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"f":"all","c":"7b2278223a317d"}"#);
    for (query, code, field) in [
        ("cursor=garbage!", "bad_cursor", Some("cursor")),
        ("cursor=bm90IGpzb24", "bad_cursor", Some("cursor")),
        (
            &format!("kind=app&cursor={cursor}") as &str,
            "bad_cursor",
            Some("cursor"),
        ),
        (
            &format!("cursor={kind_cursor}"),
            "bad_cursor",
            Some("cursor"),
        ),
        (
            &format!("cursor={forged_inner}"),
            "bad_cursor",
            Some("cursor"),
        ),
        ("limit=0", "invalid_query", Some("limit")),
        ("limit=1001", "invalid_query", Some("limit")),
        ("limit=ten", "invalid_query", Some("limit")),
        ("limit=1&limit=2", "invalid_query", None),
        ("kind=robot", "invalid_query", Some("kind")),
        (
            "kind=human&license_type=Business",
            "invalid_input",
            Some("kind"),
        ),
        ("kind=human&inactive_days=30", "invalid_input", Some("kind")),
        ("license_type=", "invalid_input", Some("license_type")),
        ("colour=blue", "invalid_query", None),
    ] {
        let response = app.send(Event::get(&path).query(query)).await;
        assert_eq!(response.status, 400, "{query}: {}", response.text());
        assert_eq!(response.error_code(), code, "{query}");
        assert_eq!(response.error_field().as_deref(), field, "{query}");
    }
    let combined = app
        .send(Event::get(&path).query("kind=human&license_type=Business"))
        .await;
    assert!(
        combined
            .error_message()
            .contains("license_type combines with inactive_days")
    );
    let missing = app.send(Event::get("/integrations/nope/accounts")).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn snapshots_are_listed_by_day_within_a_bounded_range() {
    let app = TestApp::start(20).await;
    let id = app.connected_and_synced().await;
    let path = format!("/integrations/{id}/snapshots");
    let today = app.now().date_naive();
    let response = app.send(Event::get(&path)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["to"], today.to_string());
    assert_eq!(body["from"], (today - Duration::days(29)).to_string());
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["date"], today.to_string());
    assert_eq!(items[0]["inactive_days"], 90);

    let earlier = app
        .send(Event::get(&path).query("from=2026-01-01&to=2026-06-30&inactive_days=30"))
        .await;
    assert_eq!(earlier.status, 200);
    assert_eq!(earlier.json()["items"], json!([]));
    for bad in [
        "from=2025-01-01&to=2026-06-30",
        "from=2026-07-01&to=2026-06-30",
        "from=2026-02-30",
        "to=yesterday",
        "inactive_days=0",
    ] {
        let response = app.send(Event::get(&path).query(bad)).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.text());
    }
    let full_year = app
        .send(Event::get(&path).query("from=2025-11-01&to=2026-11-01"))
        .await;
    assert_eq!(full_year.status, 200, "366 days are allowed");
}

#[tokio::test]
async fn tasks_show_the_recent_runs_of_each_kind() {
    let app = TestApp::start(20).await;
    let id = app.connected_and_synced().await;
    app.clock.advance(Duration::hours(1));
    app.sync(&id).await;
    let path = format!("/integrations/{id}/tasks");
    let response = app.send(Event::get(&path)).await;
    assert_eq!(response.status, 200);
    let tasks = response.json()["tasks"].as_array().expect("tasks").clone();
    let kinds: Vec<&str> = tasks
        .iter()
        .map(|t| t["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "application_roster",
            "license_information",
            "license_differentiation",
            "application_access",
            "reclamation"
        ]
    );
    let roster = &tasks[0]["runs"];
    assert_eq!(roster.as_array().map(Vec::len), Some(2));
    assert_eq!(roster[0]["status"], "succeeded");
    assert!(
        roster[0]["started_at"].as_str() > roster[1]["started_at"].as_str(),
        "newest first"
    );
    assert!(
        roster[0]["counts"]
            .as_object()
            .is_some_and(|c| !c.is_empty())
    );

    let one = app
        .send(Event::get(&path).query("kind=application_access&limit=1"))
        .await;
    let tasks = one.json()["tasks"].clone();
    assert_eq!(tasks.as_array().map(Vec::len), Some(1));
    assert_eq!(tasks[0]["kind"], "application_access");
    assert_eq!(tasks[0]["runs"].as_array().map(Vec::len), Some(1));
    for bad in ["kind=bogus", "limit=0", "limit=101"] {
        assert_eq!(
            app.send(Event::get(&path).query(bad)).await.status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first() {
    let app = TestApp::start(10).await;
    let id = app.connect().await;
    for name in ["one", "two", "three"] {
        app.clock.advance(Duration::seconds(1));
        let response = app
            .send(Event::patch(&format!("/integrations/{id}")).json(&json!({"name": name})))
            .await;
        assert_eq!(response.status, 200);
    }
    let path = format!("/integrations/{id}/audit");
    let mut actions = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let response = app.send(Event::get(&path).query(&query)).await;
        assert_eq!(response.status, 200);
        let body = response.json();
        assert!(body["items"].as_array().is_some_and(|i| i.len() <= 1));
        actions.extend(body["items"].as_array().expect("items").iter().map(|e| {
            (
                e["action"].clone(),
                e["at"].as_str().expect("at").to_owned(),
            )
        }));
        match body["next_cursor"].as_str() {
            Some(c) => query = format!("limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(actions.len(), 4);
    assert_eq!(actions[3].0, "integration_connected");
    assert!(actions.windows(2).all(|w| w[0].1 >= w[1].1), "newest first");
    let bad = app.send(Event::get(&path).query("cursor=%25%25")).await;
    assert_eq!(bad.status, 400);
    let bad = app.send(Event::get(&path).query("limit=0")).await;
    assert_eq!(bad.error_field().as_deref(), Some("limit"));
    let missing = app.send(Event::get("/integrations/nope/audit")).await;
    assert_eq!(missing.status, 404);
}
