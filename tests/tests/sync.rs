//! The license-information sync, end to end: simulator over HTTP, embedded store.

mod support;

use chrono::Duration;
use seatkeeper_shared::domain::TaskKind;
use seatkeeper_shared::services::license_sync::SyncRunStatus;
use seatkeeper_shared::services::{Deadline, SyncError};
use seatkeeper_sim::{BoxSimConfig, Faults};
use std::time::Instant;
use support::{Local, start_sim, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_under_faults_reports_exactly_what_a_clean_sync_does() {
    let clean_sim = start_sim(BoxSimConfig::new(tenant(7, 10_000))).await;
    let clean = Local::new(&clean_sim);
    let id = clean.connect_sim(&clean_sim).await;
    clean.sync(&id).await.expect("clean sync");
    let expected = clean.report(&id).await;

    let faulty_sim = start_sim(BoxSimConfig::new(tenant(7, 10_000))).await;
    let faulty = Local::new(&faulty_sim);
    let faulty_id = faulty.connect_sim(&faulty_sim).await;
    faulty_sim.set_faults(Faults {
        rate_limit_ratio: 0.10,
        retry_after_secs: 0,
        server_error_ratio: 0.05,
        drop_connection_ratio: 0.02,
        token_lifetime_requests: Some(500),
        seed: 11,
        ..Faults::default()
    });
    faulty.sync(&faulty_id).await.expect("sync under faults");
    let stats = faulty_sim.stats();
    assert!(
        stats.rate_limited > 0 && stats.server_errors > 0 && stats.dropped > 0,
        "faults happened: {stats:?}"
    );

    let (mut got_summary, got_rows) = faulty.report(&faulty_id).await;
    let (mut want_summary, want_rows) = expected;
    assert_eq!(
        want_rows.len(),
        10_000 + 10_000 / 200 + 1,
        "every user synced"
    );
    assert_eq!(got_rows, want_rows);
    // Only the integration's own identity differs between the two runs.
    got_summary.integration = want_summary.integration.clone();
    want_summary.integration = got_summary.integration.clone();
    assert_eq!(got_summary, want_summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_of_an_unchanged_tenant_writes_no_accounts() {
    let sim = start_sim(BoxSimConfig::new(tenant(3, 2_500))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    let first = local.sync(&id).await.expect("first sync");
    assert!(first.stats.accounts_written >= 2_500);

    local.clock.advance(Duration::hours(24));
    let second = local.sync(&id).await.expect("second sync");
    assert_eq!(second.stats.accounts_read, first.stats.accounts_read);
    assert_eq!(second.stats.accounts_written, 0, "{second:?}");
    assert!(
        second.stats.other_items_written > 0,
        "snapshot and task runs are still written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_login_and_a_changed_user_are_picked_up_by_the_next_sync() {
    let sim = start_sim(BoxSimConfig::new(tenant(4, 300))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    local.sync(&id).await.expect("first sync");
    let (_, before) = local.report(&id).await;
    let dormant = before
        .iter()
        .find(|r| r.kind == "human" && r.last_login_at.is_none())
        .expect("someone never logged in")
        .clone();
    let changed = before
        .iter()
        .find(|r| r.kind == "human" && r.status == "active" && r.id != dormant.id)
        .expect("active user")
        .clone();

    local.clock.advance(Duration::hours(24));
    let login_at = local.clock_now() - Duration::hours(1);
    sim.add_login(&dormant.id, login_at);
    sim.set_user_status(&changed.id, "inactive");
    let second = local.sync(&id).await.expect("second sync");
    assert_eq!(second.stats.accounts_written, 2, "{second:?}");

    let (summary, after) = local.report(&id).await;
    let row = after
        .iter()
        .find(|r| r.id == dormant.id)
        .expect("still there");
    assert_eq!(row.last_login_at, Some(login_at));
    assert_eq!(
        after
            .iter()
            .find(|r| r.id == changed.id)
            .map(|r| r.status.as_str()),
        Some("inactive")
    );
    let coverage = summary.event_coverage.expect("coverage");
    assert_eq!(coverage.to, local.clock_now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_short_roster_marks_nothing_vanished_and_keeps_the_previous_figures() {
    let sim = start_sim(BoxSimConfig::new(tenant(5, 2_000))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    local.sync(&id).await.expect("first sync");
    let before = local.report(&id).await;

    local.clock.advance(Duration::hours(24));
    sim.set_faults(Faults {
        roster_drop_ratio: 0.30,
        ..Faults::default()
    });
    let err = local
        .sync(&id)
        .await
        .expect_err("a cut-short roster fails the sync");
    assert!(matches!(err, SyncError::RosterIncomplete { .. }), "{err}");

    assert_eq!(
        local.report(&id).await,
        before,
        "reported figures and accounts unchanged"
    );
    let runs = local
        .store
        .list_task_runs(&id, Some(TaskKind::ApplicationRoster), 1)
        .await
        .expect("runs");
    assert!(
        runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cut short")),
        "{runs:?}"
    );
    let integration = local
        .store
        .get_integration(&id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(integration.last_sync.map(|s| s.succeeded), Some(false));
    // The lease was released: the next sync can run.
    sim.set_faults(Faults::default());
    local.sync(&id).await.expect("a later clean sync runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_removed_from_the_tenant_are_marked_vanished() {
    let sim = start_sim(BoxSimConfig::new(tenant(6, 400))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    local.sync(&id).await.expect("first sync");
    let (before_summary, before) = local.report(&id).await;
    let gone: Vec<String> = before
        .iter()
        .filter(|r| r.kind == "human")
        .take(3)
        .map(|r| r.id.clone())
        .collect();
    for user in &gone {
        sim.remove_user(user);
    }
    local.clock.advance(Duration::hours(24));
    let summary = local.sync(&id).await.expect("second sync");
    assert_eq!(summary.stats.accounts_vanished, 3);
    let (after_summary, after) = local.report(&id).await;
    assert_eq!(after.len(), before.len() - 3);
    assert_eq!(
        after_summary.seats.assigned,
        before_summary.seats.assigned - 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_continues_from_its_checkpoint_to_the_same_report() {
    let whole_sim = start_sim(BoxSimConfig::new(tenant(8, 3_500))).await;
    let whole = Local::new(&whole_sim);
    let whole_id = whole.connect_sim(&whole_sim).await;
    whole.sync(&whole_id).await.expect("uninterrupted sync");
    let (mut want_summary, want_rows) = whole.report(&whole_id).await;

    let sim = start_sim(BoxSimConfig::new(tenant(8, 3_500))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    // A deadline already passed: every invocation does one page and hands over.
    let mut step = local
        .sync_step(&id, None, Deadline::at(Instant::now()))
        .await
        .expect("first invocation");
    let mut invocations = 1;
    while step.status == SyncRunStatus::Continued {
        // A second sync cannot start while the first holds the lease.
        assert!(matches!(local.sync(&id).await, Err(SyncError::Busy { .. })));
        step = local
            .sync_step(
                &id,
                step.continue_from().as_ref(),
                Deadline::at(Instant::now()),
            )
            .await
            .expect("continuation");
        invocations += 1;
    }
    assert!(
        invocations > 4,
        "roster pages and event pages each handed over ({invocations})"
    );
    assert_eq!(step.stats.invocations, invocations);

    let (got_summary, got_rows) = local.report(&id).await;
    assert_eq!(got_rows, want_rows);
    want_summary.integration = got_summary.integration.clone();
    assert_eq!(got_summary, want_summary);
    let chunks = local
        .store
        .roster_chunks(&id, &step.sync_id)
        .await
        .expect("chunks");
    assert!(chunks.is_empty(), "roster chunks are cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncing_an_unknown_integration_is_a_clear_error() {
    let sim = start_sim(BoxSimConfig::new(tenant(9, 10))).await;
    let local = Local::new(&sim);
    let id =
        seatkeeper_shared::domain::IntegrationId::parse("no-such-integration").expect("valid id");
    let err = local.sync(&id).await.expect_err("unknown integration");
    assert!(matches!(err, SyncError::NotFound(_)));
    assert_eq!(err.to_string(), "integration no-such-integration not found");
    assert_eq!(sim.stats().total, 0, "nothing was asked of Box");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_box_fails_during_the_login_read_the_roster_task_still_counts_as_done() {
    let sim = start_sim(BoxSimConfig::new(tenant(12, 1_200))).await;
    let local = Local::new(&sim);
    let id = local.connect_sim(&sim).await;
    // Hand over after every page until the roster and the vanish check are done.
    let step = local
        .sync_page_by_page(&id, |step| step.stats.login_events_read > 0)
        .await;
    sim.set_faults(Faults {
        server_error_ratio: 1.0,
        ..Faults::default()
    });
    let err = local
        .sync_step(&id, step.continue_from().as_ref(), Deadline::none())
        .await
        .expect_err("Box is down");
    assert!(matches!(err, SyncError::Provider(_)), "{err}");

    let roster = local
        .store
        .list_task_runs(&id, Some(TaskKind::ApplicationRoster), 1)
        .await
        .expect("runs");
    assert_eq!(
        roster[0].status,
        seatkeeper_shared::domain::TaskStatus::Succeeded
    );
    assert_eq!(
        roster[0].counts.get("accounts_read"),
        Some(&(1_200 + 6 + 1))
    );
    let access = local
        .store
        .list_task_runs(&id, Some(TaskKind::ApplicationAccess), 1)
        .await
        .expect("runs");
    assert_eq!(
        access[0].status,
        seatkeeper_shared::domain::TaskStatus::Failed
    );
    assert!(
        local
            .store
            .latest_snapshot(&id)
            .await
            .expect("snapshot")
            .is_none(),
        "no figures from a failed sync"
    );
    assert!(
        local
            .store
            .get_lease(&id, seatkeeper_shared::store::LeaseKind::Sync)
            .await
            .expect("lease")
            .is_none()
    );
}
