//! A local Seatkeeper over a simulated Box tenant: embedded store, file secrets, real HTTP.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use seatkeeper_shared::clock::FixedClock;
use seatkeeper_shared::domain::{BoxPlan, InactiveDays, Integration, IntegrationId};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, RetryPolicy};
use seatkeeper_shared::secrets::Secrets;
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::connect::{BoxCcgConnect, ConnectError, Connector};
use seatkeeper_shared::services::report::{
    AccountRow, LicenseSummary, for_each_account, license_summary,
};
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, SyncError, SyncOptions, SyncRunSummary,
};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::trigger::ContinueFrom;
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec, SimHandle};
use secrecy::SecretString;
use std::sync::Arc;

/// The simulated "now" of every tenant in these tests, so two tenants from one seed match.
pub fn tenant_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn tenant(seed: u64, users: usize) -> BoxTenantSpec {
    let mut spec = BoxTenantSpec::new(seed, users);
    spec.now = tenant_now();
    spec
}

pub async fn start_sim(config: BoxSimConfig) -> SimHandle {
    BoxSim::start(config).await.expect("simulator starts")
}

pub struct Local {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn Secrets>,
    pub clock: FixedClock,
    pub http: HttpClient,
    pub box_config: BoxConfig,
    pub dir: tempfile::TempDir,
}

impl Local {
    /// The CLI's adapters: embedded store and file secrets.
    pub fn new(sim: &SimHandle) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("store.redb")).expect("store opens");
        let secrets = FileSecrets::new(dir.path().join("secrets.json"));
        Self::with_adapters(sim, Arc::new(store), Arc::new(secrets), dir)
    }

    /// Any adapters (the AWS ones, against the local emulator).
    pub fn with_adapters(
        sim: &SimHandle,
        store: Arc<dyn Store>,
        secrets: Arc<dyn Secrets>,
        dir: tempfile::TempDir,
    ) -> Self {
        Self {
            store,
            secrets,
            clock: FixedClock::new(tenant_now() + Duration::minutes(5)),
            http: HttpClient::for_tests().expect("http client"),
            box_config: BoxConfig {
                api_base: sim.base_url(),
                retry: RetryPolicy::fast_for_tests(),
                ..BoxConfig::default()
            },
            dir,
        }
    }

    pub fn connect_request(sim: &SimHandle) -> BoxCcgConnect {
        BoxCcgConnect {
            client_id: sim.client_id(),
            client_secret: SecretString::from(sim.client_secret()),
            enterprise_id: sim.enterprise_id(),
            plan: BoxPlan::Business,
            purchased_seats: Some(1_000_000),
            name: Some("Test tenant".to_owned()),
        }
    }

    pub async fn connect(&self, request: BoxCcgConnect) -> Result<Integration, ConnectError> {
        Connector {
            store: self.store.as_ref(),
            secrets: self.secrets.as_ref(),
            clock: &self.clock,
            http: self.http.clone(),
            box_config: self.box_config.clone(),
        }
        .connect_box_ccg(request)
        .await
    }

    /// Connects the simulated tenant with its own credentials; the new integration's id.
    pub async fn connect_sim(&self, sim: &SimHandle) -> IntegrationId {
        self.connect(Self::connect_request(sim))
            .await
            .expect("connect")
            .id
    }

    /// A sync whose deadline has always passed: each invocation reads one page and hands
    /// over, until the sync completes or `stop` says so.
    pub async fn sync_page_by_page(
        &self,
        id: &IntegrationId,
        stop: impl Fn(&SyncRunSummary) -> bool,
    ) -> SyncRunSummary {
        let mut step = self
            .sync_step(id, None, Deadline::at(std::time::Instant::now()))
            .await
            .expect("first invocation");
        while step.continue_from().is_some() && !stop(&step) {
            step = self
                .sync_step(
                    id,
                    step.continue_from().as_ref(),
                    Deadline::at(std::time::Instant::now()),
                )
                .await
                .expect("continuation");
        }
        step
    }

    pub async fn sync_step(
        &self,
        id: &IntegrationId,
        continue_from: Option<&ContinueFrom>,
        deadline: Deadline,
    ) -> Result<SyncRunSummary, SyncError> {
        let sources = ProviderSources::new(
            self.store.clone(),
            self.secrets.clone(),
            Arc::new(seatkeeper_shared::clock::SystemClock),
            self.http.clone(),
            self.box_config.clone(),
        );
        LicenseSync {
            store: self.store.as_ref(),
            sources: &sources,
            clock: &self.clock,
            options: SyncOptions::default(),
        }
        .run(id, continue_from, deadline)
        .await
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        seatkeeper_shared::clock::Clock::now(&self.clock)
    }

    pub async fn sync(&self, id: &IntegrationId) -> Result<SyncRunSummary, SyncError> {
        self.sync_step(id, None, Deadline::none()).await
    }

    /// The whole report: the summary and every account row.
    pub async fn report(&self, id: &IntegrationId) -> (LicenseSummary, Vec<AccountRow>) {
        let summary = license_summary(self.store.as_ref(), id, InactiveDays::default())
            .await
            .expect("report");
        let mut rows = Vec::new();
        for_each_account(self.store.as_ref(), id, |row| {
            rows.push(row);
            Ok(())
        })
        .await
        .expect("accounts");
        (summary, rows)
    }
}
