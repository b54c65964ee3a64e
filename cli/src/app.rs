//! The local wiring: embedded store, file secrets, one HTTP client, the system clock; and
//! the in-process sync trigger that `seatkeeper serve` hands to the API and OAuth handlers.

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{Integration, IntegrationId};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, HttpConfig};
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::connect::{BoxCcgConnect, Connector};
use seatkeeper_shared::services::local_workflow::LocalWorkflow;
use seatkeeper_shared::services::reclaim::{LogNotifier, ReclaimOptions, Reclaimer};
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, ServiceContext, SyncError, SyncOptions, SyncRunSummary,
};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::trigger::{SyncRequest, SyncTrigger, TriggerError};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;

pub struct LocalApp {
    pub store: Arc<EmbeddedStore>,
    pub secrets: Arc<FileSecrets>,
    pub http: HttpClient,
    pub box_config: BoxConfig,
    pub clock: SystemClock,
}

impl LocalApp {
    pub fn open(data_dir: &Path, box_api_url: String) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let store = EmbeddedStore::open(data_dir.join("store.redb")).with_context(|| {
            format!(
                "cannot open the store in {} (is a `seatkeeper serve` using it?)",
                data_dir.display()
            )
        })?;
        Ok(Self {
            store: Arc::new(store),
            secrets: Arc::new(FileSecrets::new(data_dir.join("secrets.json"))),
            http: HttpClient::new(&HttpConfig::default())
                .context("cannot build the HTTP client")?,
            box_config: BoxConfig {
                api_base: box_api_url,
                ..BoxConfig::default()
            },
            clock: SystemClock,
        })
    }

    pub async fn connect_box(&self, request: BoxCcgConnect) -> Result<Integration> {
        let connector = Connector {
            store: self.store.as_ref(),
            secrets: self.secrets.as_ref(),
            clock: &self.clock,
            http: self.http.clone(),
            box_config: self.box_config.clone(),
        };
        Ok(connector.connect_box_ccg(request).await?)
    }

    pub fn sources(&self) -> ProviderSources {
        ProviderSources::new(
            self.store.clone(),
            self.secrets.clone(),
            Arc::new(self.clock),
            self.http.clone(),
            self.box_config.clone(),
        )
    }

    /// Runs a sync to completion (locally there is no invocation deadline).
    pub async fn sync(&self, id: &IntegrationId) -> Result<SyncRunSummary> {
        let sources = self.sources();
        let sync = LicenseSync {
            store: self.store.as_ref(),
            sources: &sources,
            clock: &self.clock,
            options: SyncOptions::default(),
        };
        Ok(sync.run(id, None, Deadline::none()).await?)
    }

    /// A sync trigger that runs each requested sync on a task of this process.
    pub fn in_process_trigger(&self) -> Arc<InProcessSyncTrigger> {
        Arc::new(InProcessSyncTrigger {
            store: self.store.clone(),
            sources: Arc::new(self.sources()),
            running: Mutex::new(JoinSet::new()),
        })
    }

    /// What the API and OAuth handlers run on locally: this store, these secrets, syncs
    /// in-process, and redirect URIs built from the local server's own address.
    pub fn service_context(
        &self,
        public_base_url: String,
        trigger: Arc<InProcessSyncTrigger>,
    ) -> ServiceContext {
        ServiceContext {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            clock: Arc::new(self.clock),
            http: self.http.clone(),
            box_config: self.box_config.clone(),
            box_authorize_url: seatkeeper_shared::config::box_authorize_url(),
            public_base_url,
            sync_trigger: trigger,
            workflow: Arc::new(LocalWorkflow::new(Arc::new(Reclaimer {
                store: self.store.clone(),
                sources: Arc::new(self.sources()),
                clock: Arc::new(self.clock),
                notifier: Arc::new(LogNotifier),
                options: ReclaimOptions::default(),
            }))),
            notifier: Arc::new(LogNotifier),
        }
    }

    /// The integration named by `--integration`, or the only one there is.
    pub async fn resolve_integration(&self, raw: Option<&str>) -> Result<IntegrationId> {
        if let Some(raw) = raw {
            let id = crate::parse_integration_id(raw)?;
            if self.store.get_integration(&id).await?.is_none() {
                bail!("integration {id} not found (see `seatkeeper integrations`)");
            }
            return Ok(id);
        }
        let all = self.store.list_integrations().await?;
        only_integration(all.iter().map(|i| i.id.clone()).collect())
    }
}

/// The one integration there is, or an error that says what to do.
pub fn only_integration(ids: Vec<IntegrationId>) -> Result<IntegrationId> {
    match ids.as_slice() {
        [] => bail!(
            "no integration yet: connect one with `seatkeeper connect box ...`, or try `seatkeeper demo`"
        ),
        [only] => Ok(only.clone()),
        _ => bail!(
            "{} integrations exist; choose one with --integration ({})",
            ids.len(),
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs requested syncs on tasks of this process: the local stand-in for an asynchronous
/// invocation of the license-sync function. A sync runs to completion (no deadline), so it
/// never hands over.
pub struct InProcessSyncTrigger {
    store: Arc<EmbeddedStore>,
    sources: Arc<ProviderSources>,
    running: Mutex<JoinSet<()>>,
}

impl InProcessSyncTrigger {
    /// Waits until every sync started so far (and any started meanwhile) has ended.
    pub async fn wait_idle(&self) {
        loop {
            let mut set = std::mem::take(&mut *self.lock_running());
            if set.is_empty() {
                return;
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Syncs started and not finished yet.
    pub fn running(&self) -> usize {
        let mut running = self.lock_running();
        while running.try_join_next().is_some() {}
        running.len()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SyncTrigger for InProcessSyncTrigger {
    async fn trigger(&self, request: &SyncRequest) -> Result<(), TriggerError> {
        let store = self.store.clone();
        let sources = self.sources.clone();
        let id = request.integration_id.clone();
        let mut running = self.lock_running();
        // Reap finished tasks so a long-running server does not accumulate them.
        while running.try_join_next().is_some() {}
        running.spawn(async move {
            let sync = LicenseSync {
                store: store.as_ref(),
                sources: sources.as_ref(),
                clock: &SystemClock,
                options: SyncOptions::default(),
            };
            match sync.run(&id, None, Deadline::none()).await {
                Ok(summary) => tracing::info!(
                    integration_id = %id,
                    sync_id = %summary.sync_id,
                    accounts_read = summary.stats.accounts_read,
                    login_events_read = summary.stats.login_events_read,
                    provider_requests = summary.stats.provider_requests,
                    "sync completed"
                ),
                Err(SyncError::Busy { until, .. }) => {
                    tracing::info!(integration_id = %id, %until, "a sync is already running");
                }
                Err(e) => tracing::warn!(integration_id = %id, error = %e, "sync failed"),
            }
        });
        Ok(())
    }
}
