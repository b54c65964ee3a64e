//! `seatkeeper`: Seatkeeper's services run locally, with an embedded store and file secrets;
//! or, with `--api URL`, the read commands against a deployed stack.

mod app;
mod demo;
mod oauth_connect;
mod output;
mod reclaim;
mod remote;
mod remote_commands;
mod serve;

use anyhow::{Context, Result, bail};
use app::LocalApp;
use clap::{Parser, Subcommand, ValueEnum};
use seatkeeper_shared::domain::{BoxPlan, InactiveDays, IntegrationId, Provider};
use seatkeeper_shared::secrets::{OAuthAppCredentials, Secrets};
use seatkeeper_shared::services::connect::BoxCcgConnect;
use secrecy::SecretString;
use std::path::{Path, PathBuf};

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
    /// A deployed stack's API (e.g. https://abc123.execute-api.eu-west-1.amazonaws.com):
    /// `integrations`, `report` and `tasks` read from it instead of the local store, signing
    /// each request with SigV4 from the standard AWS credential chain.
    #[arg(long, global = true, env = "SEATKEEPER_API_URL", value_name = "URL")]
    api: Option<String>,
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
    /// Serve the JSON API and the OAuth connect routes on 127.0.0.1 (this machine only).
    Serve {
        #[arg(long, default_value_t = serve::DEFAULT_PORT)]
        port: u16,
    },
    /// Your own OAuth apps at the providers (for `connect box --oauth` and `serve`).
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Give back the seats of inactive users: plan (a dry run), or run in this process.
    Reclaim {
        #[command(subcommand)]
        command: ReclaimCommand,
    },
}

#[derive(Subcommand)]
enum ReclaimCommand {
    /// A dry run: the candidates, the accounts left out and why, and what a run would need.
    Plan {
        #[command(flatten)]
        job: ReclaimJobArgs,
        /// deactivate (restorable; a Box user keeps the seat) or delete (permanent).
        #[arg(long, value_enum, default_value_t = reclaim::Action::Deactivate)]
        action: reclaim::Action,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Act on the candidates. Without --yes this is a dry run (the same as `plan`).
    Run {
        #[command(flatten)]
        job: ReclaimJobArgs,
        #[arg(long, value_enum)]
        action: reclaim::Action,
        /// The most accounts this job may act on. Locally it is also the approval of a job
        /// above the integration's approval threshold; a job with more candidates acts on
        /// nobody.
        #[arg(long)]
        max_actions: Option<u32>,
        /// Box e-mails each user about the change.
        #[arg(long)]
        notify: bool,
        /// Confirm: act (not an approval: see --max-actions).
        #[arg(long)]
        yes: bool,
        /// First wait before retrying a rate-limited or failing Box call (doubles each time).
        #[arg(long, hide = true, default_value_t = 60_000)]
        retry_base_ms: u64,
    },
}

#[derive(clap::Args)]
struct ReclaimJobArgs {
    #[arg(long)]
    integration: Option<String>,
    /// Days without a login after which a seat holder is a candidate.
    #[arg(long, default_value_t = 90)]
    inactive_days: u32,
    /// Accounts created more recently are never candidates (the integration's grace period
    /// applies if longer).
    #[arg(long, default_value_t = 30)]
    grace_days: u32,
    /// delete only: the active user who receives each deleted user's content.
    #[arg(long)]
    transfer_to: Option<String>,
}

impl ReclaimJobArgs {
    fn request(
        self,
        action: reclaim::Action,
        notify: bool,
        max_actions: Option<u32>,
    ) -> reclaim::Request {
        reclaim::Request {
            integration: self.integration,
            inactive_days: self.inactive_days,
            grace_days: self.grace_days,
            action,
            transfer_to: self.transfer_to,
            notify,
            max_actions,
        }
    }
}

#[derive(Subcommand)]
enum ConnectProvider {
    /// Box: with a Client Credentials Grant app (App + Enterprise Access), or with --oauth
    /// through the browser (an admin authorizes your OAuth app).
    Box {
        /// Connect through the browser with the OAuth app set by `seatkeeper apps set box`.
        #[arg(long)]
        oauth: bool,
        #[arg(long, required_unless_present = "oauth", conflicts_with = "oauth")]
        client_id: Option<String>,
        /// Name of the environment variable holding the client secret (never the secret itself).
        #[arg(long, required_unless_present = "oauth", conflicts_with = "oauth")]
        client_secret_env: Option<String>,
        #[arg(long, required_unless_present = "oauth", conflicts_with = "oauth")]
        enterprise_id: Option<String>,
        /// business-starter, business, business-plus, enterprise or enterprise-plus.
        #[arg(long, required_unless_present_any = ["oauth"])]
        plan: Option<String>,
        /// Seats bought (Box's API cannot tell).
        #[arg(long)]
        seats: Option<u64>,
        #[arg(long)]
        name: Option<String>,
        /// Do not run the first sync after connecting.
        #[arg(long, conflicts_with = "oauth")]
        no_sync: bool,
        /// With --oauth: repair this integration (same tenant) instead of creating one.
        #[arg(long, requires = "oauth")]
        integration: Option<String>,
        /// With --oauth: the local port the browser comes back to (your Box app's redirect
        /// URI is http://127.0.0.1:<port>/oauth/box/callback). 0 picks a free port.
        #[arg(long, requires = "oauth")]
        port: Option<u16>,
        /// With --oauth: print the link but do not open a browser.
        #[arg(long, requires = "oauth")]
        no_browser: bool,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Store the client id and secret of your OAuth app at a provider.
    Set {
        #[arg(value_enum)]
        provider: AppProvider,
        #[arg(long)]
        client_id: String,
        /// Name of the environment variable holding the client secret (never the secret itself).
        #[arg(long)]
        client_secret_env: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AppProvider {
    Box,
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
    if let Some(api) = cli.api.as_deref().filter(|a| !a.trim().is_empty()) {
        return run_remote(api, cli.command, &cli.data_dir).await;
    }
    let open = || LocalApp::open(&cli.data_dir, seatkeeper_shared::config::box_api_url());
    match cli.command {
        Command::Demo {
            users,
            seed,
            format,
        } => demo::run(&cli.data_dir, users, seed, format).await,
        Command::Connect {
            provider:
                ConnectProvider::Box {
                    oauth: true,
                    plan,
                    seats,
                    name,
                    integration,
                    port,
                    no_browser,
                    ..
                },
        } => {
            let request = oauth_connect::Request {
                plan: plan.as_deref().map(BoxPlan::parse).transpose()?,
                purchased_seats: seats,
                name,
                integration: integration
                    .as_deref()
                    .map(parse_integration_id)
                    .transpose()?,
                port: port.unwrap_or(serve::DEFAULT_PORT),
                open_browser: !no_browser,
            };
            oauth_connect::run(&open()?, request).await
        }
        Command::Connect {
            provider:
                ConnectProvider::Box {
                    client_id,
                    client_secret_env,
                    enterprise_id,
                    plan,
                    seats,
                    name,
                    no_sync,
                    ..
                },
        } => {
            // clap requires these without --oauth; the `context`s only guard that promise.
            let client_id = client_id.context("--client-id is required")?;
            let client_secret_env = client_secret_env.context("--client-secret-env is required")?;
            let enterprise_id = enterprise_id.context("--enterprise-id is required")?;
            let plan = plan.context("--plan is required")?;
            let app = open()?;
            let secret = secret_from_env(&client_secret_env)?;
            let integration = app
                .connect_box(BoxCcgConnect {
                    client_id,
                    client_secret: secret,
                    enterprise_id,
                    plan: BoxPlan::parse(&plan)?,
                    purchased_seats: seats,
                    name,
                })
                .await?;
            println!("{}", integration.id);
            if !no_sync {
                first_sync(&app, &integration.id).await;
            }
            Ok(())
        }
        Command::Sync { integration } => {
            let app = open()?;
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
            let app = open()?;
            let id = app.resolve_integration(integration.as_deref()).await?;
            let days = InactiveDays::try_from(inactive_days)?;
            output::print_report(&app, &id, days, format).await
        }
        Command::Tasks { integration, limit } => {
            let app = open()?;
            let id = app.resolve_integration(integration.as_deref()).await?;
            output::print_tasks(&app, &id, limit.clamp(1, 1_000)).await
        }
        Command::Integrations => output::print_integrations(&open()?).await,
        Command::Serve { port } => serve::run(open()?, port).await,
        Command::Apps {
            command:
                AppsCommand::Set {
                    provider: AppProvider::Box,
                    client_id,
                    client_secret_env,
                },
        } => set_box_app(&open()?, &cli.data_dir, client_id, &client_secret_env).await,
        Command::Reclaim {
            command:
                ReclaimCommand::Plan {
                    job,
                    action,
                    format,
                },
        } => reclaim::plan(&open()?, &job.request(action, false, None), format).await,
        Command::Reclaim {
            command:
                ReclaimCommand::Run {
                    job,
                    action,
                    max_actions,
                    notify,
                    yes,
                    retry_base_ms,
                },
        } => {
            let request = job.request(action, notify, max_actions);
            if yes {
                let backoff = reclaim::Backoff(std::time::Duration::from_millis(retry_base_ms));
                reclaim::run(&open()?, &request, backoff).await
            } else {
                eprintln!("Dry run: nothing is changed. Add --yes to act.");
                reclaim::plan(&open()?, &request, Format::Table).await
            }
        }
    }
}

/// With `--api`: the read commands go to the deployed stack; the others work on local
/// state only and say so rather than silently using the local store.
async fn run_remote(api_url: &str, command: Command, data_dir: &Path) -> Result<()> {
    let name = match command {
        Command::Demo {
            users,
            seed,
            format,
        } => return demo::run(data_dir, users, seed, format).await,
        Command::Integrations => {
            let api = remote::RemoteApi::connect(api_url).await?;
            return remote_commands::integrations(&api).await;
        }
        Command::Report {
            integration,
            inactive_days,
            format,
        } => {
            let days = InactiveDays::try_from(inactive_days)?;
            let api = remote::RemoteApi::connect(api_url).await?;
            return remote_commands::report(&api, integration.as_deref(), days, format).await;
        }
        Command::Tasks { integration, limit } => {
            let api = remote::RemoteApi::connect(api_url).await?;
            return remote_commands::tasks(&api, integration.as_deref(), limit.clamp(1, 1_000))
                .await;
        }
        Command::Connect { .. } => "connect",
        Command::Sync { .. } => "sync",
        Command::Serve { .. } => "serve",
        Command::Apps { .. } => "apps",
        // Reclamation through a deployed stack goes through its workflow and approvals
        // (the API's reclamation routes), not through this in-process runner.
        Command::Reclaim { .. } => "reclaim",
    };
    bail!(
        "`seatkeeper {name}` works on the local data directory and cannot be used with --api / SEATKEEPER_API_URL"
    )
}

fn secret_from_env(variable: &str) -> Result<SecretString> {
    let secret = std::env::var(variable)
        .ok()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("environment variable {variable} is not set"))?;
    Ok(SecretString::from(secret))
}

/// The first sync right after a connect, in this process. The integration exists whatever
/// happens here, so a failed sync is reported but does not fail the command.
async fn first_sync(app: &LocalApp, id: &IntegrationId) {
    eprintln!("Connected; running the first sync…");
    match app.sync(id).await {
        Ok(summary) => eprintln!(
            "First sync done: {} accounts and {} login events read with {} requests",
            summary.stats.accounts_read,
            summary.stats.login_events_read,
            summary.stats.provider_requests
        ),
        Err(e) => eprintln!(
            "warning: the integration is connected, but the first sync failed: {e:#}\nRun `seatkeeper sync --integration {id}` to try again."
        ),
    }
}

/// `apps set box`: the OAuth app's credentials, in the local secrets file under the same
/// name the deployed stack uses in Secrets Manager (`seatkeeper/apps/box`).
async fn set_box_app(
    app: &LocalApp,
    data_dir: &Path,
    client_id: String,
    client_secret_env: &str,
) -> Result<()> {
    let valid_id = !client_id.is_empty()
        && client_id.len() <= 128
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_id {
        bail!("--client-id must be 1-128 letters, digits, '-' or '_'");
    }
    let secret = secret_from_env(client_secret_env)?;
    let name = OAuthAppCredentials::secret_name(Provider::Box);
    let value = {
        use secrecy::ExposeSecret;
        serde_json::json!({ "client_id": client_id, "client_secret": secret.expose_secret() })
            .to_string()
    };
    app.secrets.put(&name, SecretString::from(value)).await?;
    // Read back through the loader the handlers use, so a bad value shows up now.
    OAuthAppCredentials::load(app.secrets.as_ref(), Provider::Box).await?;
    println!(
        "Saved the Box OAuth app {client_id} as {name} in {}.",
        data_dir.join("secrets.json").display()
    );
    println!(
        "Register http://127.0.0.1:{}/oauth/box/callback as a redirect URI of the app in the Box Developer Console.",
        serve::DEFAULT_PORT
    );
    Ok(())
}

/// Parses an `--integration` value.
pub fn parse_integration_id(raw: &str) -> Result<IntegrationId> {
    match IntegrationId::parse(raw) {
        Ok(id) => Ok(id),
        Err(e) => bail!("--integration {e}"),
    }
}
