//! `seatkeeper`: Seatkeeper's services run locally, with an embedded store and file secrets.

mod app;
mod demo;
mod output;

use anyhow::{Context, Result, bail};
use app::LocalApp;
use clap::{Parser, Subcommand, ValueEnum};
use seatkeeper_shared::domain::{BoxPlan, InactiveDays, IntegrationId};
use seatkeeper_shared::services::connect::BoxCcgConnect;
use secrecy::SecretString;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "seatkeeper",
    version,
    about = "Find the SaaS seats nobody uses, and give them back safely"
)]
struct Cli {
    /// Where the local store and secrets live.
    #[arg(
        long,
        global = true,
        env = "SEATKEEPER_DATA_DIR",
        default_value = ".seatkeeper"
    )]
    data_dir: PathBuf,
    /// Log more (to stderr).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a simulated Box tenant, connect it, sync it and print the license report.
    Demo {
        /// Users in the simulated tenant.
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Connect a SaaS tenant.
    Connect {
        #[command(subcommand)]
        provider: ConnectProvider,
    },
    /// Sync license information (users, license types, last logins, seats) now.
    Sync {
        #[arg(long)]
        integration: Option<String>,
    },
    /// Print the license report of the last complete sync.
    Report {
        #[arg(long)]
        integration: Option<String>,
        /// Days without a login after which a seat counts as inactive.
        #[arg(long, default_value_t = 90)]
        inactive_days: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the connected integrations.
    Integrations,
    /// Application task tracking: the latest runs of each sync task, newest first.
    Tasks {
        #[arg(long)]
        integration: Option<String>,
        /// Runs to show.
        #[arg(long, default_value_t = 12)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum ConnectProvider {
    /// Box, with a Client Credentials Grant app (App + Enterprise Access).
    Box {
        #[arg(long)]
        client_id: String,
        /// Name of the environment variable holding the client secret (never the secret itself).
        #[arg(long)]
        client_secret_env: String,
        #[arg(long)]
        enterprise_id: String,
        /// business-starter, business, business-plus, enterprise or enterprise-plus.
        #[arg(long)]
        plan: String,
        /// Seats bought (Box's API cannot tell).
        #[arg(long)]
        seats: Option<u64>,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    seatkeeper_shared::logging::init_cli(cli.verbose);
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo {
            users,
            seed,
            format,
        } => demo::run(&cli.data_dir, users, seed, format).await,
        Command::Connect {
            provider:
                ConnectProvider::Box {
                    client_id,
                    client_secret_env,
                    enterprise_id,
                    plan,
                    seats,
                    name,
                },
        } => {
            let app = LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url())?;
            let secret = std::env::var(&client_secret_env)
                .ok()
                .filter(|s| !s.is_empty())
                .with_context(|| format!("environment variable {client_secret_env} is not set"))?;
            let integration = app
                .connect_box(BoxCcgConnect {
                    client_id,
                    client_secret: SecretString::from(secret),
                    enterprise_id,
                    plan: BoxPlan::parse(&plan)?,
                    purchased_seats: seats,
                    name,
                })
                .await?;
            println!("{}", integration.id);
            Ok(())
        }
        Command::Sync { integration } => {
            let app = LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url())?;
            let id = app.resolve_integration(integration.as_deref()).await?;
            let summary = app.sync(&id).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Report {
            integration,
            inactive_days,
            format,
        } => {
            let app = LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url())?;
            let id = app.resolve_integration(integration.as_deref()).await?;
            let days = InactiveDays::try_from(inactive_days)?;
            output::print_report(&app, &id, days, format).await
        }
        Command::Tasks { integration, limit } => {
            let app = LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url())?;
            let id = app.resolve_integration(integration.as_deref()).await?;
            output::print_tasks(&app, &id, limit.clamp(1, 1_000)).await
        }
        Command::Integrations => {
            let app = LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url())?;
            output::print_integrations(&app).await
        }
    }
}

/// Parses an `--integration` value.
pub fn parse_integration_id(raw: &str) -> Result<IntegrationId> {
    match IntegrationId::parse(raw) {
        Ok(id) => Ok(id),
        Err(e) => bail!("--integration {e}"),
    }
}
