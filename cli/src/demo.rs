//! `seatkeeper demo`: a simulated Box tenant, connected, synced and reported, end to end,
//! through exactly the code a real tenant goes through (over real HTTP).

use crate::Format;
use crate::app::LocalApp;
use crate::output;
use anyhow::{Context, Result};
use seatkeeper_shared::domain::{BoxPlan, InactiveDays};
use seatkeeper_shared::services::connect::BoxCcgConnect;
use seatkeeper_sim::{BoxSim, BoxSimConfig, BoxTenantSpec};
use secrecy::SecretString;
use std::path::Path;

pub async fn run(data_dir: &Path, users: usize, seed: u64, format: Format) -> Result<()> {
    // The demo keeps its own store so it never mixes with real integrations.
    let dir = data_dir.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot reset {}", dir.display()))?;
    }
    let sim = BoxSim::start(BoxSimConfig::new(BoxTenantSpec::new(seed, users)))
        .await
        .context("cannot start the Box simulator")?;
    let app = LocalApp::open(&dir, sim.base_url())?;
    let human = format == Format::Table;
    if human {
        eprintln!(
            "Simulated Box tenant with {users} users at {}",
            sim.base_url()
        );
    }
    let integration = app
        .connect_box(BoxCcgConnect {
            client_id: sim.client_id(),
            client_secret: SecretString::from(sim.client_secret()),
            enterprise_id: sim.enterprise_id(),
            plan: BoxPlan::BusinessPlus,
            purchased_seats: Some((users as u64 * 11).div_ceil(10)),
            name: Some("Demo Box tenant".to_owned()),
        })
        .await?;
    if human {
        eprintln!("Connected integration {}; syncing…", integration.id);
    }
    let summary = app.sync(&integration.id).await?;
    if human {
        eprintln!(
            "Synced {} accounts and {} login events with {} Box requests\n",
            summary.stats.accounts_read,
            summary.stats.login_events_read,
            summary.stats.provider_requests
        );
    }
    output::print_report(&app, &integration.id, InactiveDays::default(), format).await?;
    sim.shutdown().await;
    Ok(())
}
