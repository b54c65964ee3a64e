//! The local wiring: embedded store, file secrets, one HTTP client, the system clock.

use anyhow::{Context, Result, bail};
use seatkeeper_shared::clock::SystemClock;
use seatkeeper_shared::domain::{Integration, IntegrationId};
use seatkeeper_shared::provider::box_client::BoxConfig;
use seatkeeper_shared::provider::http::{HttpClient, HttpConfig};
use seatkeeper_shared::secrets::file::FileSecrets;
use seatkeeper_shared::services::connect::{BoxCcgConnect, Connector};
use seatkeeper_shared::services::{
    Deadline, LicenseSync, ProviderSources, SyncOptions, SyncRunSummary,
};
use seatkeeper_shared::store::Store;
use seatkeeper_shared::store::embedded::EmbeddedStore;
use std::path::Path;
use std::sync::Arc;

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
        let store = EmbeddedStore::open(data_dir.join("store.redb"))
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
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

    /// Runs a sync to completion (locally there is no invocation deadline).
    pub async fn sync(&self, id: &IntegrationId) -> Result<SyncRunSummary> {
        let sources = ProviderSources {
            secrets: self.secrets.clone(),
            http: self.http.clone(),
            box_config: self.box_config.clone(),
        };
        let sync = LicenseSync {
            store: self.store.as_ref(),
            sources: &sources,
            clock: &self.clock,
            options: SyncOptions::default(),
        };
        Ok(sync.run(id, None, Deadline::none()).await?)
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
        match all.as_slice() {
            [] => bail!(
                "no integration yet: connect one with `seatkeeper connect box ...`, or try `seatkeeper demo`"
            ),
            [only] => Ok(only.id.clone()),
            _ => bail!(
                "{} integrations exist; choose one with --integration ({})",
                all.len(),
                all.iter()
                    .map(|i| i.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}
