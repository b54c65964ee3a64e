//! The license-sync handler fed real event shapes: an EventBridge scheduled event fans out,
//! a direct invocation syncs one integration and hands over near its deadline.

use async_trait::async_trait;
use lambda_runtime::{Context, LambdaEvent};
use license_sync::{Deps, SyncEvent, handle};
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{BoxPlan, IntegrationId, IntegrationStatus};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::connect::{BoxCcgConnect, Connector};
use seatkeeper_shared::services::{ProviderSources, SyncOptions};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger, TriggerError};
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records what would have been invoked asynchronously.
#[derive(Default)]
struct RecordingTrigger(Mutex<Vec<SyncRequest>>);

#[async_trait]
impl SyncTrigger for RecordingTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        self.0.lock().expect("lock").push(request.clone());
        Ok(())
    }
}

struct Fixture {
    deps: Deps,
    trigger: Arc<RecordingTrigger>,
    store: Arc<EmbeddedStore>,
    _sim: SimHandle,
    _dir: tempfile::TempDir,
}

async fn fixture(users: usize) -> (Fixture, IntegrationId) {
    let sim = BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(5, users)))
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(EmbeddedStore::in_memory().expect("store"));
    let secrets = Arc::new(FileSecrets::new(dir.path().join("secrets.json")));
    let http = HttpClient::for_tests().expect("http");
    let box_config = BoxConfig {
        api_base: sim.base_url(),
        retry: RetryPolicy::fast_for_tests(),
        ..BoxConfig::default()
    };
    let integration = Connector {
        store: store.as_ref(),
        secrets: secrets.as_ref(),
        clock: &SystemClock,
        http: http.clone(),
        box_config: box_config.clone(),
    }
    .connect_box_ccg(BoxCcgConnect {
        client_id: sim.client_id(),
        client_secret: SecretString::from(sim.client_secret()),
        enterprise_id: sim.enterprise_id(),
        plan: BoxPlan::Enterprise,
        purchased_seats: None,
        name: None,
    })
    .await
    .expect("connect");
    let trigger = Arc::new(RecordingTrigger::default());
    let deps = Deps {
        store: store.clone(),
        sources: Arc::new(ProviderSources::new(
            store.clone(),
            secrets,
            Arc::new(SystemClock),
            http,
            box_config,
        )),
        trigger: trigger.clone(),
        clock: Arc::new(SystemClock),
        options: SyncOptions::default(),
        deadline_margin: Duration::from_secs(60),
    };
    (
        Fixture {
            deps,
            trigger,
            store,
            _sim: sim,
            _dir: dir,
        },
        integration.id,
    )
}

fn event(payload: Value, deadline_ms: u64) -> LambdaEvent<SyncEvent> {
    let mut context = Context::default();
    context.deadline = deadline_ms;
    LambdaEvent::new(
        serde_json::from_value(payload).expect("event parses"),
        context,
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// An EventBridge "Scheduled Event", as AWS delivers it.
fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T03:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/seatkeeper-daily-sync"],
        "detail": {}
    })
}

#[tokio::test]
async fn the_schedule_fans_out_one_invocation_per_enabled_integration() {
    let (f, id) = fixture(20).await;
    // A disabled and a needs-reauth integration are skipped.
    let mut other = f
        .store
        .get_integration(&id)
        .await
        .expect("get")
        .expect("exists");
    for (n, (enabled, status)) in [
        (false, IntegrationStatus::Connected),
        (true, IntegrationStatus::NeedsReauth),
    ]
    .into_iter()
    .enumerate()
    {
        other.id = IntegrationId::parse(&format!("skipped-{n}")).expect("id");
        other.tenant_id = format!("77{n}");
        other.enabled = enabled;
        other.status = status;
        f.store.create_integration(&other).await.expect("create");
    }
    let out = handle(event(scheduled_event(), now_ms() + 900_000), &f.deps)
        .await
        .expect("fan-out");
    assert_eq!(out["started"], json!([id.to_string()]));
    assert_eq!(out["skipped"].as_array().map(Vec::len), Some(2));
    let sent = f.trigger.0.lock().expect("lock").clone();
    assert_eq!(
        sent,
        vec![SyncRequest {
            integration_id: id,
            checkpoint: None
        }]
    );
    // The schedule itself synced nothing.
    assert!(
        f.store
            .latest_snapshot(&sent[0].integration_id)
            .await
            .expect("snap")
            .is_none()
    );
}

#[tokio::test]
async fn a_direct_invocation_syncs_and_returns_a_summary() {
    let (f, id) = fixture(50).await;
    let out = handle(
        event(json!({ "integration_id": id }), now_ms() + 900_000),
        &f.deps,
    )
    .await
    .expect("sync");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["stats"]["accounts_read"], 50 + 1 + 1);
    assert!(f.store.latest_snapshot(&id).await.expect("snap").is_some());
    assert!(
        f.trigger.0.lock().expect("lock").is_empty(),
        "no continuation needed"
    );
}

#[tokio::test]
async fn near_the_deadline_the_sync_hands_over_to_a_new_invocation() {
    let (f, id) = fixture(2_500).await;
    // The deadline is within the margin already: one page, then hand over.
    let out = handle(
        event(json!({ "integration_id": id }), now_ms() + 1_000),
        &f.deps,
    )
    .await
    .expect("first invocation");
    assert_eq!(out["status"], "continued");
    let mut next = f
        .trigger
        .0
        .lock()
        .expect("lock")
        .pop()
        .expect("re-invoked itself");
    let sync_id = next
        .checkpoint
        .as_ref()
        .expect("checkpoint")
        .sync_id
        .clone();
    assert_eq!(out["sync_id"], sync_id.as_str());
    let mut rounds = 1;
    loop {
        let payload = serde_json::to_value(&next).expect("payload");
        let out = handle(event(payload, now_ms() + 900_000), &f.deps)
            .await
            .expect("continuation");
        rounds += 1;
        if out["status"] == "completed" {
            assert_eq!(out["sync_id"], sync_id.as_str());
            break;
        }
        next = f.trigger.0.lock().expect("lock").pop().expect("re-invoked");
        assert!(rounds < 10);
    }
    assert!(f.store.latest_snapshot(&id).await.expect("snap").is_some());
}

#[tokio::test]
async fn an_unknown_integration_is_answered_not_retried() {
    let (f, _) = fixture(5).await;
    let out = handle(event(json!({ "integration_id": "nope" }), 0), &f.deps)
        .await
        .expect("answered, so Lambda does not retry");
    assert_eq!(out["status"], "failed");
    assert_eq!(out["error"], "integration nope not found");
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_continuation_does_not_run_twice() {
    let (f, id) = fixture(2_500).await;
    let out = handle(
        event(json!({ "integration_id": id }), now_ms() + 1_000),
        &f.deps,
    )
    .await
    .expect("first invocation");
    assert_eq!(out["status"], "continued");
    let next = f
        .trigger
        .0
        .lock()
        .expect("lock")
        .pop()
        .expect("continuation");
    let payload = serde_json::to_value(&next).expect("payload");
    // The first delivery takes the lease and hands over again; the second finds it taken.
    let first = handle(event(payload.clone(), now_ms() + 1_000), &f.deps)
        .await
        .expect("first delivery");
    assert_eq!(first["status"], "continued");
    let second = handle(event(payload, now_ms() + 900_000), &f.deps)
        .await
        .expect("second delivery");
    assert_eq!(second["status"], "busy", "{second}");
}

#[test]
fn malformed_payloads_are_rejected_with_the_reason() {
    let err = serde_json::from_value::<SyncEvent>(json!({ "integration_id": "UPPER" }))
        .expect_err("bad id");
    assert!(err.to_string().contains("integration_id: must be"), "{err}");
    let err = serde_json::from_value::<SyncEvent>(json!({ "integration": "x" }))
        .expect_err("unknown shape");
    assert!(err.to_string().contains("expected"), "{err}");
}
