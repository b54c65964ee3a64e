//! The OAuth connect on the AWS adapters: DynamoDB and Secrets Manager on a local emulator
//! (moto), the Box simulator over real HTTP.

mod support;

use std::sync::{Arc, LazyLock};

use seatkeeper_shared::domain::{AuthKind, IntegrationStatus, Provider};
use seatkeeper_sim::BoxSim;
use seatkeeper_tests::{Moto, dynamo_store, secrets_manager};
use secrecy::ExposeSecret;
use support::{Harness, new_box_request, requester, sim_config};

static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_box_oauth_connect_works_on_dynamodb_and_secrets_manager() {
    let sim = BoxSim::start(sim_config(11)).await.expect("simulator");
    let h = Harness::with_adapters(
        sim,
        Arc::new(dynamo_store(&MOTO).await),
        Arc::new(secrets_manager(&MOTO).await),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    let ticket = h.ticket(new_box_request()).await;
    let start = h.start(&ticket).await;
    let back = h.authorize(&start, "approve").await;
    let cookies = [start.cookie.clone()];
    let reply = h.callback(&back, &cookies).await;
    reply.assert_callback_page(200);

    let all = h.store.list_integrations().await.expect("list");
    assert_eq!(all.len(), 1);
    let integration = &all[0];
    assert_eq!(integration.auth_kind, AuthKind::OAuth);
    assert_eq!(integration.status, IntegrationStatus::Connected);
    assert_eq!(
        h.store
            .tenant_owner(Provider::Box, &h.sim.enterprise_id())
            .await
            .expect("claim"),
        Some(integration.id.clone())
    );
    let creds = h.credentials(integration).await;
    assert!(creds.refresh_token.is_some() && creds.access_token.is_some());
    let audit = h
        .store
        .list_audit(&integration.id, None, 10)
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].actor, requester());
    assert_eq!(h.trigger.requests().len(), 1);

    // The conditional delete on DynamoDB makes the state single use, and the ticket too.
    h.callback(&back, &cookies).await.assert_callback_page(400);
    h.get(
        "/oauth/box/start",
        &format!("ticket={}", ticket.expose_secret()),
        &[],
    )
    .await
    .assert_page(400);
    assert_eq!(h.store.list_integrations().await.expect("list").len(), 1);
    assert_eq!(h.sim.oauth_stats().authorization_code_grants, 1);
}
