//! The Box client methods reclamation uses, against the Box simulator over real HTTP:
//! reading one user, deactivate and restore, transfer then delete (never `force`), group
//! memberships, the user's own stream with `As-User`, the re-verify LOGIN pass, the
//! capability probes, and how faults on the write endpoints are (not) retried.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use seatkeeper_shared::provider::ProviderError;
use seatkeeper_shared::provider::box_client::{
    BoxCcgCredentials, BoxClient, BoxConfig, Capability, DeleteOutcome,
};
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_sim::{
    AppScopes, BoxSim, BoxSimConfig, BoxTenantSpec, Faults, SimHandle, UserWrite, WriteKind,
};
use serde_json::Value;

/// Attempts per call under [`RetryPolicy::fast_for_tests`].
fn attempts() -> u32 {
    RetryPolicy::fast_for_tests().max_attempts
}

async fn start(users: usize) -> SimHandle {
    BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(11, users)))
        .await
        .expect("simulator starts")
}

fn box_config(sim: &SimHandle) -> BoxConfig {
    BoxConfig {
        api_base: sim.base_url(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    }
}

fn client_with(sim: &SimHandle, config: BoxConfig) -> BoxClient {
    let creds = BoxCcgCredentials {
        client_id: sim.client_id(),
        client_secret: sim.client_secret().into(),
        enterprise_id: sim.enterprise_id(),
    };
    BoxClient::new(config, HttpClient::for_tests().expect("http client"), creds)
}

fn client(sim: &SimHandle) -> BoxClient {
    client_with(sim, box_config(sim))
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn id_of(user: &Value) -> String {
    user["id"].as_str().expect("id").to_owned()
}

/// Active managed people with the `user` role (not the admin, co-admins, app users or the
/// service account): who reclamation may act on.
fn regular_users(sim: &SimHandle) -> Vec<String> {
    sim.users()
        .iter()
        .filter(|user| {
            user["role"] == "user"
                && user["status"] == "active"
                && user["is_platform_access_only"] == false
                && user["login"]
                    .as_str()
                    .is_some_and(|login| login.ends_with("@example.com"))
        })
        .map(id_of)
        .collect()
}

/// Two distinct regular users who both own content.
fn two_owners(sim: &SimHandle) -> (String, String) {
    let owners: Vec<String> = regular_users(sim)
        .into_iter()
        .filter(|id| sim.owned_items(id).is_some_and(|items| items > 0))
        .take(2)
        .collect();
    assert_eq!(owners.len(), 2, "the tenant has owners");
    (owners[0].clone(), owners[1].clone())
}

fn owner_of_nothing(sim: &SimHandle) -> String {
    regular_users(sim)
        .into_iter()
        .find(|id| sim.owned_items(id) == Some(0))
        .expect("some users own nothing")
}

/// A regular user whose own stream is empty.
fn quiet_user(sim: &SimHandle) -> String {
    regular_users(sim)
        .into_iter()
        .find(|id| sim.user_events(id).is_empty())
        .expect("some users have no recent activity")
}

/// The property every test that writes ends with: no request carried `force`.
fn assert_never_forced(sim: &SimHandle) {
    assert_eq!(sim.force_deletes(), 0, "force was sent");
    assert!(
        sim.user_writes().iter().all(|write| !write.force),
        "{:?}",
        sim.user_writes()
    );
}

fn writes_of(sim: &SimHandle, kind: WriteKind) -> Vec<UserWrite> {
    sim.user_writes()
        .into_iter()
        .filter(|write| write.kind == kind)
        .collect()
}

#[tokio::test]
async fn get_user_reads_the_full_user_and_none_once_removed() {
    let sim = start(30).await;
    let client = client(&sim);
    let user_id = regular_users(&sim)[0].clone();
    let truth = sim
        .users()
        .into_iter()
        .find(|user| id_of(user) == user_id)
        .expect("in the tenant");

    let user = client
        .get_user(&user_id)
        .await
        .expect("get_user")
        .expect("exists");
    assert_eq!(user.id, user_id);
    assert_eq!(user.login.as_deref(), truth["login"].as_str());
    assert_eq!(user.status.as_deref(), Some("active"));
    assert_eq!(user.role.as_deref(), Some("user"), "role needs fields=");
    assert_eq!(user.is_platform_access_only, Some(false));
    assert_eq!(
        user.enterprise.map(|enterprise| enterprise.id),
        Some(sim.enterprise_id())
    );
    assert!(user.created_at.is_some());

    sim.remove_user(&user_id);
    assert_eq!(client.get_user(&user_id).await.expect("get_user"), None);
    assert_eq!(client.get_user("1").await.expect("unknown id"), None);
}

#[tokio::test]
async fn deactivate_then_restore_status_and_role() {
    let sim = start(30).await;
    let client = client(&sim);
    let user_id = regular_users(&sim)[0].clone();

    let user = client
        .set_user_status(&user_id, "inactive", false)
        .await
        .expect("deactivate");
    assert_eq!(user.status.as_deref(), Some("inactive"));
    assert_eq!(user.role.as_deref(), Some("user"), "the role is kept");
    let seen = client.get_user(&user_id).await.unwrap().unwrap();
    assert_eq!(seen.status.as_deref(), Some("inactive"));

    // A role that was changed meanwhile is put back by a restore, with the status.
    let user = client
        .set_user_role(&user_id, "coadmin")
        .await
        .expect("role");
    assert_eq!(user.role.as_deref(), Some("coadmin"));
    let user = client
        .set_user_status(&user_id, "active", false)
        .await
        .expect("reactivate");
    assert_eq!(user.status.as_deref(), Some("active"));
    let user = client
        .set_user_role(&user_id, "user")
        .await
        .expect("role back");
    assert_eq!(user.role.as_deref(), Some("user"));
    let seen = client.get_user(&user_id).await.unwrap().unwrap();
    assert_eq!(
        (seen.status.as_deref(), seen.role.as_deref()),
        (Some("active"), Some("user"))
    );

    assert_eq!(
        sim.user_writes(),
        vec![
            UserWrite {
                kind: WriteKind::UpdateUser,
                user_id: user_id.clone(),
                status: Some(200),
                force: false,
            };
            4
        ]
    );
    assert_never_forced(&sim);
}

#[tokio::test]
async fn values_box_would_refuse_are_not_sent() {
    let sim = start(20).await;
    let client = client(&sim);
    let user_id = regular_users(&sim)[0].clone();

    for status in ["deleted", "", "INACTIVE"] {
        let err = client
            .set_user_status(&user_id, status, false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidInput { .. }),
            "{status}: {err:?}"
        );
    }
    let err = client.set_user_role(&user_id, "admin").await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidInput { .. }), "{err:?}");
    for bad_id in ["me", "1/../2", "12?force=true", ""] {
        let err = client.delete_user(bad_id, false).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidInput { .. }),
            "{bad_id}: {err:?}"
        );
        let err = client
            .user_recent_activity(bad_id, now())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::InvalidInput { .. }), "{err:?}");
    }
    let err = client
        .transfer_owned_content(&user_id, &user_id, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidInput { .. }), "{err:?}");

    assert_eq!(client.requests_sent(), 0, "nothing reached the network");
    assert_eq!(sim.stats().total, 0);
}

#[tokio::test]
async fn delete_is_refused_while_content_is_owned_then_transfer_and_delete_succeed() {
    let sim = start(30).await;
    let client = client(&sim);
    let (from, to) = two_owners(&sim);
    let (from_items, to_items) = (
        sim.owned_items(&from).unwrap(),
        sim.owned_items(&to).unwrap(),
    );
    let total = sim.owned_items_total();

    let err = client.delete_user(&from, false).await.unwrap_err();
    match &err {
        ProviderError::TransferPending { user_id, code, .. } => {
            assert_eq!(user_id, &from);
            assert_eq!(code, "user_delete_failed_owns_content");
        }
        other => panic!("expected TransferPending, got {other:?}"),
    }
    assert!(
        client.get_user(&from).await.unwrap().is_some(),
        "still there"
    );

    let folder = client
        .transfer_owned_content(&from, &to, false)
        .await
        .expect("transfer");
    assert!(!folder.id.is_empty());
    assert_eq!(folder.owned_by.map(|owner| owner.id), Some(to.clone()));
    assert!(
        folder
            .name
            .as_deref()
            .is_some_and(|name| name.ends_with("'s Files and Folders")),
        "{:?}",
        folder.name
    );
    assert_eq!(sim.owned_items(&from), Some(0));
    assert_eq!(sim.owned_items(&to), Some(from_items + to_items));

    assert_eq!(
        client.delete_user(&from, false).await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert_eq!(client.get_user(&from).await.unwrap(), None);
    // A resumed step meets the user already gone.
    assert_eq!(
        client.delete_user(&from, false).await.expect("again"),
        DeleteOutcome::AlreadyGone
    );

    assert_eq!(sim.owned_items_total(), total, "no item lost");
    assert_eq!(sim.items_destroyed(), 0);
    let writes: Vec<(WriteKind, Option<u16>)> = sim
        .user_writes()
        .into_iter()
        .map(|write| (write.kind, write.status))
        .collect();
    assert_eq!(
        writes,
        [
            (WriteKind::DeleteUser, Some(400)),
            (WriteKind::TransferContent, Some(200)),
            (WriteKind::DeleteUser, Some(204)),
            (WriteKind::DeleteUser, Some(404)),
        ]
    );
    assert_never_forced(&sim);
}

#[tokio::test]
async fn an_early_returning_transfer_makes_the_delete_pending_until_it_finishes() {
    let sim = start(30).await;
    let client = client(&sim);
    let (from, to) = two_owners(&sim);
    let items = sim.owned_items(&from).unwrap();
    let total = sim.owned_items_total();
    // Fetch the token first: the transfer then waits for exactly the requests below.
    client.get_user(&to).await.expect("warm up");
    sim.set_faults(Faults {
        transfer_early_return_ratio: 1.0,
        transfer_completion_requests: 2,
        ..Faults::default()
    });

    client
        .transfer_owned_content(&from, &to, false)
        .await
        .expect("answered 200");
    assert_eq!(sim.stats().transfers_returned_early, 1);
    assert_eq!(sim.owned_items(&from), Some(items), "nothing moved yet");

    // A second transfer while the first runs: refused, and a pending transfer to the caller.
    let err = client
        .transfer_owned_content(&from, &to, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::TransferPending { code, user_id, .. }
            if code == "operation_blocked_temporary" && user_id == &from),
        "{err:?}"
    );
    let err = client.delete_user(&from, false).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::TransferPending { code, .. }
            if code == "user_delete_failed_owns_content"),
        "{err:?}"
    );

    // The retried delete (the workflow backs off, then runs the step again) goes through.
    assert_eq!(
        client
            .delete_user(&from, false)
            .await
            .expect("retried delete"),
        DeleteOutcome::Deleted
    );
    assert_eq!(sim.pending_transfers(), 0);
    assert!(sim.owned_items(&to).unwrap() >= items);
    assert_eq!(sim.owned_items_total(), total);
    assert_eq!(sim.items_destroyed(), 0);
    assert_eq!(
        writes_of(&sim, WriteKind::TransferContent).len(),
        2,
        "each transfer call sent once"
    );
    assert_never_forced(&sim);
}

#[tokio::test]
async fn memberships_page_through_every_group() {
    let sim = start(40).await;
    let user_id = regular_users(&sim)[2].clone();
    for group in sim.groups() {
        sim.add_group_membership(&user_id, group["id"].as_str().unwrap());
    }
    let expected = sim.user_group_ids(&user_id);
    assert!(expected.len() >= 3);

    let small_pages = client_with(
        &sim,
        BoxConfig {
            page_size_memberships: 2,
            ..box_config(&sim)
        },
    );
    let groups = small_pages.user_group_ids(&user_id).await.expect("groups");
    assert_eq!(groups, expected);
    assert_eq!(
        sim.stats().memberships_pages as usize,
        expected.len().div_ceil(2)
    );

    let client = client(&sim);
    assert_eq!(client.user_group_ids(&user_id).await.unwrap(), expected);
    let lonely = regular_users(&sim)
        .into_iter()
        .find(|id| sim.user_group_ids(id).is_empty())
        .expect("someone is in no group");
    assert_eq!(
        client.user_group_ids(&lonely).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn unreadable_memberships_are_an_error_never_no_groups() {
    let sim = start(40).await;
    let client = client(&sim);
    let lonely = regular_users(&sim)
        .into_iter()
        .find(|id| sim.user_group_ids(id).is_empty())
        .expect("someone is in no group");
    sim.set_faults(Faults {
        memberships_forbidden_users: vec![lonely.clone()],
        ..Faults::default()
    });
    let err = client.user_group_ids(&lonely).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Forbidden { code, .. }
            if code == "access_denied_insufficient_permissions"),
        "{err:?}"
    );

    sim.set_faults(Faults::default());
    sim.set_app_scopes(AppScopes {
        manage_groups: false,
        ..AppScopes::default()
    });
    let err = client.user_group_ids(&lonely).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Forbidden { code, .. } if code == "insufficient_scope"),
        "{err:?}"
    );
    let err = client.user_group_ids("1").await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Forbidden { .. }),
        "the scope is checked first"
    );
}

#[tokio::test]
async fn as_user_finds_recent_activity_in_the_users_own_stream() {
    let sim = start(40).await;
    let client = client(&sim);
    let user_id = quiet_user(&sim);
    let now = now();
    sim.add_user_event(&user_id, "ITEM_UPLOAD", now - Duration::days(30));
    sim.add_user_event(&user_id, "ITEM_PREVIEW", now - Duration::days(2));
    sim.add_user_event(&user_id, "ITEM_SYNC", now - Duration::hours(3));

    let seen = client
        .user_recent_activity(&user_id, now - Duration::days(7))
        .await
        .expect("activity");
    assert_eq!(seen, Some(now - Duration::hours(3)), "the latest one");
    let seen = client
        .user_recent_activity(&user_id, now - Duration::hours(3))
        .await
        .expect("activity at the bound");
    assert_eq!(seen, Some(now - Duration::hours(3)), "`since` is inclusive");
    let seen = client
        .user_recent_activity(&user_id, now - Duration::hours(1))
        .await
        .expect("none since");
    assert_eq!(seen, None);
    assert!(sim.stats().as_user_requests >= 3);
}

#[tokio::test]
async fn the_users_stream_is_paged_until_activity_or_its_end() {
    let sim = start(40).await;
    let client = client_with(
        &sim,
        BoxConfig {
            page_size_events: 2,
            ..box_config(&sim)
        },
    );
    let user_id = quiet_user(&sim);
    let now = now();
    for days in (40..45).rev() {
        sim.add_user_event(&user_id, "ITEM_PREVIEW", now - Duration::days(days));
    }
    sim.add_user_event(&user_id, "ITEM_UPLOAD", now - Duration::days(1));

    // Five old events fill pages 1, 2 and half of 3; the recent one is on page 3.
    let seen = client
        .user_recent_activity(&user_id, now - Duration::days(14))
        .await
        .expect("activity");
    assert_eq!(seen, Some(now - Duration::days(1)));
    assert_eq!(sim.stats().as_user_requests, 3);

    // With nothing recent, reading goes on to the empty page at the end.
    let seen = client
        .user_recent_activity(&user_id, now - Duration::hours(1))
        .await
        .expect("no activity");
    assert_eq!(seen, None);
    assert_eq!(sim.stats().as_user_requests, 3 + 4);
}

#[tokio::test]
async fn an_as_user_refusal_is_an_error_never_no_activity() {
    let sim = start(40).await;
    let client = client(&sim);
    let user_id = quiet_user(&sim);
    let since = now() - Duration::days(14);
    assert_eq!(
        client.user_recent_activity(&user_id, since).await.unwrap(),
        None
    );

    // Made a co-admin since the plan: Box refuses to impersonate them.
    sim.set_user_role(&user_id, "coadmin");
    let err = client
        .user_recent_activity(&user_id, since)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Forbidden { code, .. }
            if code == "access_denied_insufficient_permissions"),
        "{err:?}"
    );

    // The app lost "Perform Actions as Users".
    sim.set_user_role(&user_id, "user");
    sim.set_app_scopes(AppScopes {
        as_user: false,
        ..AppScopes::default()
    });
    let err = client
        .user_recent_activity(&user_id, since)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Forbidden { .. }), "{err:?}");

    sim.set_app_scopes(AppScopes::default());
    let err = client.user_recent_activity("1", since).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn the_reverify_login_pass_finds_the_latest_login_per_user() {
    let sim = start(60).await;
    let client = client_with(
        &sim,
        BoxConfig {
            page_size_events: 50,
            ..box_config(&sim)
        },
    );
    let user_id = regular_users(&sim)[0].clone();
    let until = Utc::now();
    sim.add_login(&user_id, until);
    let since = (until - Duration::days(30)).trunc_subsecs(0);
    let last_second = until.trunc_subsecs(0);

    let mut expected: HashMap<String, DateTime<Utc>> = HashMap::new();
    for (id, at) in sim.login_events() {
        if at >= since && at <= last_second {
            expected
                .entry(id)
                .and_modify(|seen| *seen = (*seen).max(at))
                .or_insert(at);
        }
    }
    assert!(expected.len() > 5, "the window has logins");

    let logins = client
        .login_events_since(since, until)
        .await
        .expect("logins");
    assert_eq!(logins, expected);
    assert_eq!(
        logins.get(&user_id),
        Some(&last_second),
        "a login in the last second counts"
    );
    assert!(sim.stats().events_pages > 1, "several pages were read");
}

#[tokio::test]
async fn status_updates_are_retried_through_faults() {
    let sim = start(30).await;
    let client = client(&sim);
    let users = regular_users(&sim);
    client.get_user(&users[0]).await.expect("warm up");

    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    });
    let err = client
        .set_user_status(&users[0], "inactive", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::RateLimited { attempts: n, .. } if n == attempts()),
        "{err:?}"
    );
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let err = client
        .set_user_status(&users[0], "inactive", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { attempts: n, .. } if n == attempts()),
        "{err:?}"
    );
    let updates = writes_of(&sim, WriteKind::UpdateUser);
    assert_eq!(updates.len() as u32, 2 * attempts(), "every attempt sent");

    // Some answers fail and some are lost after the change: the retries still end with
    // the state asked for.
    sim.set_faults(Faults {
        server_error_ratio: 0.2,
        drop_connection_ratio: 0.1,
        write_lost_response_ratio: 0.2,
        seed: 3,
        ..Faults::default()
    });
    for user_id in &users[..5] {
        let user = client
            .set_user_status(user_id, "inactive", false)
            .await
            .expect("retried to success");
        assert_eq!(user.status.as_deref(), Some("inactive"));
    }
    sim.set_faults(Faults::default());
    for user_id in &users[..5] {
        let seen = client.get_user(user_id).await.unwrap().unwrap();
        assert_eq!(seen.status.as_deref(), Some("inactive"));
    }
    let faulted = writes_of(&sim, WriteKind::UpdateUser)
        .into_iter()
        .skip(2 * attempts() as usize)
        .filter(|write| write.status != Some(200))
        .count();
    assert!(faulted > 0, "the faults were met and retried");
    assert_never_forced(&sim);
}

#[tokio::test]
async fn a_failed_transfer_is_not_sent_again() {
    let sim = start(30).await;
    let client = client(&sim);
    let (from, to) = two_owners(&sim);
    let total = sim.owned_items_total();
    client.get_user(&from).await.expect("warm up");

    // 429: Box did not act, so it is safe to ask again.
    sim.set_faults(Faults {
        rate_limit_ratio: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    });
    let err = client
        .transfer_owned_content(&from, &to, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        writes_of(&sim, WriteKind::TransferContent).len() as u32,
        attempts()
    );

    // 500 and a dropped connection: Box may have acted; one request each, then the caller.
    for faults in [
        Faults {
            server_error_ratio: 1.0,
            ..Faults::default()
        },
        Faults {
            drop_connection_ratio: 1.0,
            ..Faults::default()
        },
    ] {
        sim.set_faults(faults);
        let before = writes_of(&sim, WriteKind::TransferContent).len();
        let err = client
            .transfer_owned_content(&from, &to, false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::Unavailable { attempts: 1, .. }),
            "{err:?}"
        );
        assert_eq!(
            writes_of(&sim, WriteKind::TransferContent).len(),
            before + 1
        );
    }
    assert!(sim.owned_items(&from).unwrap() > 0, "nothing moved so far");

    // Applied, but the answer lost: still one request, and the caller hears of a failure.
    sim.set_faults(Faults {
        write_lost_response_ratio: 1.0,
        ..Faults::default()
    });
    let before = writes_of(&sim, WriteKind::TransferContent).len();
    let err = client
        .transfer_owned_content(&from, &to, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        writes_of(&sim, WriteKind::TransferContent).len(),
        before + 1
    );
    assert_eq!(sim.owned_items(&from), Some(0), "it did move");

    // The step run again: a transfer with nothing left to move, then the delete.
    sim.set_faults(Faults::default());
    client
        .transfer_owned_content(&from, &to, false)
        .await
        .expect("repeat moves nothing");
    assert_eq!(
        client.delete_user(&from, false).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(sim.owned_items_total(), total);
    assert_eq!(sim.items_destroyed(), 0);
    assert_never_forced(&sim);
}

#[tokio::test]
async fn a_lost_delete_answer_reads_as_already_gone() {
    let sim = start(40).await;
    let client = client(&sim);
    let user_id = owner_of_nothing(&sim);
    client.get_user(&user_id).await.expect("warm up");
    sim.set_faults(Faults {
        write_lost_response_ratio: 1.0,
        ..Faults::default()
    });

    let outcome = client.delete_user(&user_id, false).await.expect("delete");
    assert_eq!(outcome, DeleteOutcome::AlreadyGone);
    assert_eq!(sim.stats().write_responses_lost, 1);
    let statuses: Vec<Option<u16>> = writes_of(&sim, WriteKind::DeleteUser)
        .iter()
        .map(|write| write.status)
        .collect();
    assert_eq!(statuses, [None, Some(404)], "the retry met the new state");
    sim.set_faults(Faults::default());
    assert_eq!(client.get_user(&user_id).await.unwrap(), None);
    assert_never_forced(&sim);
}

#[tokio::test]
async fn capability_probes_tell_what_the_app_was_granted() {
    let sim = start(20).await;
    let client = client(&sim);
    let total = sim.owned_items_total();

    let granted = client.granted_capabilities().await.expect("probes");
    assert!(granted.manage_users.is_granted());
    assert!(granted.transfer_content.is_granted());
    assert!(granted.read_groups.is_granted());
    assert!(granted.as_user.is_granted());
    assert!(granted.missing(true).is_empty());

    let cases: [(AppScopes, &str); 4] = [
        (
            AppScopes {
                manage_users: false,
                ..AppScopes::default()
            },
            "update and delete users",
        ),
        (
            AppScopes {
                root_readwrite: false,
                ..AppScopes::default()
            },
            "transfer content",
        ),
        (
            AppScopes {
                manage_groups: false,
                ..AppScopes::default()
            },
            "read group memberships",
        ),
        (
            AppScopes {
                as_user: false,
                ..AppScopes::default()
            },
            "read each user's own events",
        ),
    ];
    for (scopes, what) in cases {
        sim.set_app_scopes(scopes.clone());
        let probed = client.granted_capabilities().await.expect("probes");
        let flags = [
            (probed.manage_users.is_granted(), scopes.manage_users),
            (probed.transfer_content.is_granted(), scopes.root_readwrite),
            (probed.read_groups.is_granted(), scopes.manage_groups),
            (probed.as_user.is_granted(), scopes.as_user),
        ];
        for (seen, granted) in flags {
            assert_eq!(seen, granted, "{what}: {probed:?}");
        }
        let missing = probed.missing(true);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(missing[0].contains(what), "{}", missing[0]);
    }
    // The missing scope is named by Box's code.
    sim.set_app_scopes(AppScopes {
        root_readwrite: false,
        ..AppScopes::default()
    });
    let probed = client.granted_capabilities().await.unwrap();
    assert!(
        matches!(&probed.transfer_content, Capability::Denied { code, .. }
        if *code == "insufficient_scope")
    );
    assert!(
        probed.missing(false).is_empty(),
        "deactivate needs no transfer"
    );

    // The probes changed nothing: every write went to the absent user 0.
    assert!(sim.user_writes().iter().all(|write| write.user_id == "0"));
    assert!(
        sim.user_writes()
            .iter()
            .all(|write| matches!(write.status, Some(403 | 404)))
    );
    assert_eq!(sim.owned_items_total(), total);
    assert_never_forced(&sim);
}
