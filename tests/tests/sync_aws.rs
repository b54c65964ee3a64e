//! The same sync with the AWS adapters: DynamoDB and Secrets Manager on a local emulator.

mod support;

use chrono::Duration;
use seatkeeper_shared::services::license_sync::SyncRunStatus;
use seatkeeper_sim::{BoxSimConfig, Faults};
use seatkeeper_tests::{Moto, dynamo_store, secrets_manager};
use std::sync::{Arc, LazyLock};
use support::{Local, start_sim, tenant};

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

async fn aws_local(sim: &seatkeeper_sim::SimHandle) -> Local {
    Local::with_adapters(
        sim,
        Arc::new(dynamo_store(&MOTO).await),
        Arc::new(secrets_manager(&MOTO).await),
        tempfile::tempdir().expect("dir"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_into_dynamodb_reports_what_the_embedded_store_does() {
    let embedded_sim = start_sim(BoxSimConfig::new(tenant(21, 1_500))).await;
    let embedded = Local::new(&embedded_sim);
    let embedded_id = embedded.connect_sim(&embedded_sim).await;
    embedded.sync(&embedded_id).await.expect("embedded sync");
    let (mut want_summary, want_rows) = embedded.report(&embedded_id).await;

    let sim = start_sim(BoxSimConfig::new(tenant(21, 1_500))).await;
    let aws = aws_local(&sim).await;
    let id = aws.connect_sim(&sim).await;
    sim.set_faults(Faults {
        rate_limit_ratio: 0.05,
        server_error_ratio: 0.05,
        token_lifetime_requests: Some(7),
        seed: 3,
        ..Faults::default()
    });
    // Hand over after every page, so the checkpoint travels through the DynamoDB lease.
    let step = aws.sync_page_by_page(&id, |_| false).await;
    assert_eq!(step.status, SyncRunStatus::Completed);
    assert!(step.stats.invocations > 2);

    let (got_summary, got_rows) = aws.report(&id).await;
    assert_eq!(got_rows, want_rows);
    want_summary.integration = got_summary.integration.clone();
    assert_eq!(got_summary, want_summary);

    aws.clock.advance(Duration::hours(24));
    sim.set_faults(Faults::default());
    let second = aws.sync(&id).await.expect("second sync");
    assert_eq!(
        second.stats.accounts_written, 0,
        "unchanged tenant: no account writes"
    );
    let runs = aws
        .store
        .list_task_runs(&id, None, 8)
        .await
        .expect("task runs");
    assert_eq!(runs.len(), 8, "four task kinds, two syncs");
}
