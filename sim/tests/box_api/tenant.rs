use std::collections::HashMap;

use chrono::Duration;
use seatkeeper_sim::BoxSimConfig;

use crate::support::{now, spec, start};

#[tokio::test]
async fn same_seed_same_tenant_and_another_seed_another() {
    let first = start(BoxSimConfig::new(spec(200))).await;
    let second = start(BoxSimConfig::new(spec(200))).await;
    assert_eq!(first.users(), second.users());
    assert_eq!(first.login_events(), second.login_events());

    let mut other = spec(200);
    other.seed = 8;
    let third = start(BoxSimConfig::new(other)).await;
    assert_ne!(first.users(), third.users());
    assert_ne!(first.login_events(), third.login_events());
}

#[tokio::test]
async fn activity_shares_hold() {
    let users = 1000;
    let sim = start(BoxSimConfig::new(spec(users))).await;
    let mut last_login = HashMap::new();
    for (user, at) in sim.login_events() {
        assert!(at > now() - Duration::days(365) && at <= now());
        last_login.insert(user, at);
    }
    let managed: Vec<String> = sim
        .users()
        .iter()
        .filter(|user| user["login"].as_str().unwrap().ends_with("@example.com"))
        .map(|user| user["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(managed.len(), users);
    let never = managed
        .iter()
        .filter(|id| !last_login.contains_key(*id))
        .count();
    let inactive = managed
        .iter()
        .filter(|id| {
            last_login
                .get(*id)
                .is_none_or(|at| *at < now() - Duration::days(90))
        })
        .count();
    assert_eq!(never, 50);
    assert_eq!(inactive, 300);
    assert!(
        last_login.keys().all(|id| managed.contains(id)),
        "app users and the service account do not log in"
    );
}
