//! The Box client against the Box simulator over real HTTP: tokens, paging, faults.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::provider::box_client::{BoxCcgCredentials, BoxClient, BoxConfig, BoxUser};
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle};

/// Attempts per call under [`RetryPolicy::fast_for_tests`].
fn attempts() -> u32 {
    RetryPolicy::fast_for_tests().max_attempts
}

fn sim_config(seed: u64, users: usize) -> BoxSimConfig {
    BoxSimConfig::new(BoxTenantSpec::new(seed, users))
}

async fn start(config: BoxSimConfig) -> SimHandle {
    BoxSim::start(config).await.expect("simulator starts")
}

fn box_config(sim: &SimHandle) -> BoxConfig {
    BoxConfig {
        api_base: sim.base_url(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    }
}

fn creds(sim: &SimHandle) -> BoxCcgCredentials {
    BoxCcgCredentials {
        client_id: sim.client_id(),
        client_secret: sim.client_secret().into(),
        enterprise_id: sim.enterprise_id(),
    }
}

fn client_with(config: BoxConfig, creds: BoxCcgCredentials) -> BoxClient {
    BoxClient::new(config, HttpClient::for_tests().expect("http client"), creds)
}

fn client(sim: &SimHandle) -> BoxClient {
    client_with(box_config(sim), creds(sim))
}

/// Every user of the roster, in listing order, and the number of pages read.
async fn all_users(client: &BoxClient) -> Result<(Vec<BoxUser>, usize), ProviderError> {
    let mut users = Vec::new();
    let mut pages = 0;
    let mut marker: Option<String> = None;
    loop {
        let page = client.users_page(marker.as_deref()).await?;
        pages += 1;
        users.extend(page.users);
        match page.next_marker {
            Some(next) => marker = Some(next),
            None => return Ok((users, pages)),
        }
        assert!(pages < 10_000, "paging does not end");
    }
}

/// (user id, time) of every LOGIN in the window, paging until an empty page.
async fn all_logins(
    client: &BoxClient,
    after: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Result<(Vec<(String, DateTime<Utc>)>, Vec<String>), ProviderError> {
    let mut logins = Vec::new();
    let mut positions = Vec::new();
    let mut position: Option<String> = None;
    loop {
        let page = client
            .login_events_page(after, before, position.as_deref())
            .await?;
        if page.events.is_empty() {
            return Ok((logins, positions));
        }
        assert_eq!(page.chunk_size, page.events.len() as u64);
        for event in page.events {
            assert_eq!(event.event_type.as_deref(), Some("LOGIN"));
            let by = event.created_by.expect("created_by").id;
            let at = event.created_at.expect("created_at").to_utc();
            logins.push((by, at));
        }
        let next = page.next_stream_position.expect("a position after a page");
        positions.push(next.clone());
        position = Some(next);
        assert!(positions.len() < 10_000, "paging does not end");
    }
}

fn ids(users: &[BoxUser]) -> Vec<String> {
    users.iter().map(|user| user.id.clone()).collect()
}

fn sim_ids(sim: &SimHandle) -> BTreeSet<String> {
    sim.users()
        .iter()
        .map(|user| user["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Moves the bounds off any event time, so the oracle does not depend on whether Box's
/// bounds are inclusive.
fn clear_window(
    events: &[(String, DateTime<Utc>)],
    mut after: DateTime<Utc>,
    mut before: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    while events.iter().any(|(_, at)| *at == after) {
        after += Duration::seconds(1);
    }
    while events.iter().any(|(_, at)| *at == before) {
        before += Duration::seconds(1);
    }
    (after, before)
}

fn within(
    events: &[(String, DateTime<Utc>)],
    after: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    events
        .iter()
        .filter(|(_, at)| *at > after && *at < before)
        .cloned()
        .collect()
}

#[tokio::test]
async fn token_and_current_user_with_enterprise() {
    let sim = start(sim_config(1, 20)).await;
    let client = client(&sim);

    let me = client.current_user().await.expect("current user");
    assert_eq!(me.id, sim.service_account_id());
    assert!(me.login.starts_with("AutomationUser_"), "{}", me.login);
    assert!(me.login.ends_with("@boxdevedition.com"), "{}", me.login);
    assert!(!me.name.is_empty());
    assert_eq!(me.enterprise_id, Some(sim.enterprise_id()));
    assert_eq!(me.enterprise_name.as_deref(), Some("Simulated Enterprise"));
    assert!(me.role.is_some());

    // The token is cached: a second call does not ask for another.
    client.current_user().await.expect("current user again");
    let stats = sim.stats();
    assert_eq!(stats.token, 1);
    assert_eq!(stats.total, 3);
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let sim = start(sim_config(2, 5)).await;
    let mut creds = creds(&sim);
    creds.client_secret = "not-the-secret".to_owned().into();
    let client = client_with(box_config(&sim), creds);

    let err = client.current_user().await.expect_err("refused");
    match &err {
        ProviderError::Auth {
            code, description, ..
        } => {
            assert_eq!(code, "invalid_client");
            assert!(!description.is_empty());
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(!shown.contains("not-the-secret"), "{shown}");
    assert!(!shown.contains(&sim.client_secret()), "{shown}");
    // Refusals are not retried.
    assert_eq!(sim.stats().total, 1);
}

#[tokio::test]
async fn unauthorized_app_is_unauthorized_client() {
    let sim = start(BoxSimConfig {
        app_authorized: false,
        ..sim_config(3, 5)
    })
    .await;
    let err = client(&sim).users_page(None).await.expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Auth { code, .. } if code == "unauthorized_client"),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_enterprise_is_invalid_grant() {
    let sim = start(sim_config(4, 5)).await;
    let mut creds = creds(&sim);
    creds.enterprise_id = "999".to_owned();
    let err = client_with(box_config(&sim), creds)
        .current_user()
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ProviderError::Auth { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
}

#[tokio::test]
async fn users_paging_visits_every_user_once() {
    let sim = start(sim_config(5, 2_500)).await;
    let client = client(&sim);

    let (users, pages) = all_users(&client).await.expect("roster");
    assert_eq!(
        pages, 3,
        "2 500 managed users + app users + service account at 1 000 a page"
    );
    let listed = ids(&users);
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a user was listed twice");
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        sim_ids(&sim)
    );
    assert_eq!(sim.stats().users_pages, 3);
    assert_eq!(client.requests_sent(), sim.stats().total);
}

#[tokio::test]
async fn users_carry_the_requested_fields() {
    let sim = start(sim_config(6, 50)).await;
    let (users, _) = all_users(&client(&sim)).await.expect("roster");
    let truth = sim.users();
    for user in &users {
        let expected = truth
            .iter()
            .find(|candidate| candidate["id"] == user.id.as_str())
            .expect("known user");
        assert_eq!(user.login.as_deref(), expected["login"].as_str());
        assert_eq!(user.name.as_deref(), expected["name"].as_str());
        assert_eq!(user.status.as_deref(), expected["status"].as_str());
        assert_eq!(user.role.as_deref(), expected["role"].as_str());
        assert_eq!(user.space_used, expected["space_used"].as_i64());
        assert_eq!(user.space_amount, expected["space_amount"].as_i64());
        assert_eq!(
            user.is_platform_access_only,
            expected["is_platform_access_only"].as_bool()
        );
        let created = user.created_at.expect("created_at");
        assert_eq!(
            Some(created.to_rfc3339().as_str()),
            expected["created_at"].as_str()
        );
        assert!(user.modified_at.is_some());
        assert_eq!(
            user.enterprise.as_ref().map(|e| e.id.clone()),
            Some(sim.enterprise_id())
        );
        assert!(user.timezone.is_some() && user.language.is_some());
    }
    assert!(
        users
            .iter()
            .any(|u| u.is_platform_access_only == Some(true))
    );
    assert!(users.iter().any(|u| u.role.as_deref() == Some("admin")));
}

#[tokio::test]
async fn probe_managed_users_depends_on_enterprise_access() {
    let sim = start(sim_config(7, 30)).await;
    assert_eq!(client(&sim).probe_managed_users().await.expect("probe"), 30);

    let restricted = start(BoxSimConfig {
        app_has_enterprise_access: false,
        ..sim_config(7, 30)
    })
    .await;
    assert_eq!(
        client(&restricted)
            .probe_managed_users()
            .await
            .expect("probe"),
        0
    );
}

#[tokio::test]
async fn probe_events_depends_on_the_scope() {
    let sim = start(sim_config(8, 10)).await;
    client(&sim).probe_events().await.expect("events readable");

    let no_scope = start(BoxSimConfig {
        app_can_read_events: false,
        ..sim_config(8, 10)
    })
    .await;
    let err = client(&no_scope)
        .probe_events()
        .await
        .expect_err("forbidden");
    assert!(
        matches!(&err, ProviderError::Forbidden { status: 403, code, .. }
            if code == "access_denied_insufficient_permissions"),
        "{err:?}"
    );
}

#[tokio::test]
async fn login_events_paging_returns_exactly_the_window() {
    let sim = start(sim_config(9, 300)).await;
    let client = client_with(
        BoxConfig {
            page_size_events: 97,
            ..box_config(&sim)
        },
        creds(&sim),
    );
    let truth = sim.login_events();
    let now = Utc::now();
    let (after, before) = clear_window(&truth, now - Duration::days(200), now - Duration::days(20));
    let expected = within(&truth, after, before);
    assert!(expected.len() > 97 * 3, "the window spans several pages");

    let (logins, positions) = all_logins(&client, after, before).await.expect("logins");
    assert_eq!(logins, expected);
    assert_eq!(positions.len(), expected.len().div_ceil(97));
    // Positions are kept as strings, exactly: these exceed 2^53 and would lose digits in f64.
    for position in &positions {
        let value: u64 = position.parse().expect("numeric position");
        assert!(value > 1 << 53, "{position}");
        assert_eq!(value.to_string(), *position);
    }
}

#[tokio::test]
async fn login_events_from_a_saved_position_resume_without_gaps() {
    let sim = start(sim_config(10, 100)).await;
    let client = client_with(
        BoxConfig {
            page_size_events: 50,
            ..box_config(&sim)
        },
        creds(&sim),
    );
    let truth = sim.login_events();
    let now = Utc::now();
    let (after, before) = clear_window(&truth, now - Duration::days(400), now + Duration::days(1));
    let first = client
        .login_events_page(after, before, None)
        .await
        .expect("first page");
    let saved = first.next_stream_position.clone().expect("position");

    // A second client (another Lambda run) continues from the saved string.
    let other = client_with(
        BoxConfig {
            page_size_events: 50,
            ..box_config(&sim)
        },
        creds(&sim),
    );
    let mut seen: Vec<String> = first.events.iter().map(|e| e.event_id.clone()).collect();
    let mut position = Some(saved);
    loop {
        let page = other
            .login_events_page(after, before, position.as_deref())
            .await
            .expect("page");
        if page.events.is_empty() {
            break;
        }
        seen.extend(page.events.iter().map(|e| e.event_id.clone()));
        position = page.next_stream_position;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was returned twice");
    assert_eq!(seen.len(), within(&truth, after, before).len());
}

/// Roster and a year of logins, read fault-free and then under `faults`: same results.
async fn same_results_under(faults: Faults) {
    let sim = start(sim_config(11, 1_200)).await;
    let config = BoxConfig {
        page_size_users: 500,
        page_size_events: 400,
        ..box_config(&sim)
    };
    let truth = sim.login_events();
    let now = Utc::now();
    let (after, before) = clear_window(&truth, now - Duration::days(366), now + Duration::days(1));

    let clean = client_with(config.clone(), creds(&sim));
    let (clean_users, _) = all_users(&clean).await.expect("clean roster");
    let (clean_logins, _) = all_logins(&clean, after, before)
        .await
        .expect("clean logins");
    assert_eq!(clean_logins, within(&truth, after, before));

    sim.set_faults(faults.clone());
    let before_faults = sim.stats();
    let faulty = client_with(config, creds(&sim));
    let (users, _) = all_users(&faulty).await.expect("roster under faults");
    let (logins, _) = all_logins(&faulty, after, before)
        .await
        .expect("logins under faults");
    let me = faulty
        .current_user()
        .await
        .expect("current user under faults");

    assert_eq!(ids(&users), ids(&clean_users), "{faults:?}");
    assert_eq!(users, clean_users);
    assert_eq!(logins, clean_logins, "{faults:?}");
    assert_eq!(me.id, sim.service_account_id());

    let stats = sim.stats();
    // Every request the client sent reached the simulator, and nothing else did.
    assert_eq!(
        faulty.requests_sent(),
        stats.total - before_faults.total,
        "{stats:?}"
    );
    let injected = (stats.rate_limited - before_faults.rate_limited)
        + (stats.server_errors - before_faults.server_errors)
        + (stats.dropped - before_faults.dropped)
        + (stats.unauthorized - before_faults.unauthorized);
    assert!(injected > 0, "the faults were exercised: {stats:?}");
}

#[tokio::test]
async fn rate_limits_with_retry_after_zero() {
    same_results_under(Faults {
        rate_limit_ratio: 0.3,
        retry_after_secs: 0,
        seed: 1,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn rate_limits_with_retry_after_one() {
    same_results_under(Faults {
        rate_limit_ratio: 0.3,
        retry_after_secs: 1,
        seed: 2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn server_errors() {
    same_results_under(Faults {
        server_error_ratio: 0.3,
        seed: 3,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn dropped_connections() {
    same_results_under(Faults {
        drop_connection_ratio: 0.3,
        seed: 4,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn tokens_expiring_every_few_requests() {
    same_results_under(Faults {
        token_lifetime_requests: Some(3),
        seed: 5,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn all_faults_at_once() {
    same_results_under(Faults {
        rate_limit_ratio: 0.1,
        retry_after_secs: 0,
        server_error_ratio: 0.1,
        drop_connection_ratio: 0.1,
        token_lifetime_requests: Some(2),
        seed: 6,
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn expired_token_is_replaced_once_per_call() {
    let sim = start(sim_config(12, 10)).await;
    let client = client(&sim);
    client.current_user().await.expect("first call");
    // From now on every token is rejected at its first use: the client must try a fresh
    // token once, then give up instead of looping.
    sim.set_faults(Faults {
        token_lifetime_requests: Some(0),
        ..Faults::default()
    });
    let before = sim.stats();
    let err = client.users_page(None).await.expect_err("401 twice");
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let after = sim.stats();
    assert_eq!(after.token - before.token, 1, "one new token");
    assert_eq!(
        after.users_pages - before.users_pages,
        2,
        "the call and one retry"
    );
    assert_eq!(after.unauthorized - before.unauthorized, 2);
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let sim = start(sim_config(13, 10)).await;
    let client = client(&sim);
    client.current_user().await.expect("token and first call");
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let before = sim.stats();
    let err = client.users_page(None).await.expect_err("gives up");
    match &err {
        ProviderError::Unavailable {
            attempts: n,
            detail,
            ..
        } => {
            assert_eq!(*n, attempts());
            assert_eq!(detail, "HTTP 500");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let after = sim.stats();
    assert_eq!(after.total - before.total, u64::from(attempts()));
    assert_eq!(
        after.server_errors - before.server_errors,
        u64::from(attempts())
    );
    assert_eq!(client.requests_sent(), after.total);
}

#[tokio::test]
async fn token_endpoint_failures_exhaust_the_retries() {
    let sim = start(sim_config(14, 10)).await;
    sim.set_faults(Faults {
        drop_connection_ratio: 1.0,
        ..Faults::default()
    });
    let client = client(&sim);
    let err = client.current_user().await.expect_err("gives up");
    assert!(
        matches!(&err, ProviderError::Unavailable { attempts: n, .. } if *n == attempts()),
        "{err:?}"
    );
    let stats = sim.stats();
    assert_eq!(stats.token, u64::from(attempts()));
    assert_eq!(stats.dropped, u64::from(attempts()));
    assert_eq!(client.requests_sent(), stats.total);
}

#[tokio::test]
async fn persistent_rate_limiting_is_rate_limited() {
    let sim = start(sim_config(15, 10)).await;
    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let client = client(&sim);
    let err = client.probe_events().await.expect_err("gives up");
    assert!(
        matches!(err, ProviderError::RateLimited { attempts: n, .. } if n == attempts()),
        "{err:?}"
    );
    assert_eq!(sim.stats().rate_limited, u64::from(attempts()));
}

#[tokio::test]
async fn concurrent_callers_share_one_token() {
    let sim = start(sim_config(16, 10)).await;
    let client = Arc::new(client(&sim));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.current_user().await })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("current user");
    }
    let stats = sim.stats();
    assert_eq!(stats.token, 1);
    assert_eq!(stats.total, 17);
    assert_eq!(client.requests_sent(), 17);
}
