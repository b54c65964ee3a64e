//! `seatkeeper-sim box ...`: a Box simulator in its own process, for benchmarks and the demo.
//!
//! Prints one JSON line once listening (`base_url`, `enterprise_id`, `client_id`,
//! `client_secret`), then serves until interrupted. Logs go to stderr (`RUST_LOG`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use seatkeeper_sim::{AppScopes, BoxSim, BoxSimConfig, BoxTenantSpec, Faults};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "seatkeeper-sim",
    version,
    about = "Stateful SaaS API simulators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a Box enterprise and its app (Client Credentials and OAuth 2.0 user flows).
    Box(BoxArgs),
}

#[derive(Debug, Args)]
struct BoxArgs {
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// 0 picks a free port; read it from the printed `base_url`.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Managed users, admin and co-admins included.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Default: users / 200, at least 1.
    #[arg(long)]
    app_users: Option<usize>,
    /// LOGIN events over the history. Default: users * 10.
    #[arg(long)]
    events: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    history_days: Option<u32>,
    #[arg(long)]
    inactive_share: Option<f64>,
    #[arg(long)]
    never_logged_in_share: Option<f64>,
    #[arg(long)]
    enterprise_id: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    /// The simulated "now" (RFC 3339). Default: the current time.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 0.0)]
    rate_limit_ratio: f64,
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    #[arg(long, default_value_t = 0.0)]
    server_error_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    drop_connection_ratio: f64,
    #[arg(long)]
    token_lifetime_requests: Option<u64>,
    #[arg(long, default_value_t = 0.0)]
    roster_drop_ratio: f64,
    /// Share of refreshes whose response is lost after the refresh token was rotated.
    #[arg(long, default_value_t = 0.0)]
    refresh_lost_response_ratio: f64,
    /// Milliseconds every refresh-token grant takes (to overlap concurrent refreshes).
    #[arg(long, default_value_t = 0)]
    refresh_delay_ms: u64,
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// The app lacks "App + Enterprise Access": it sees no managed users.
    #[arg(long)]
    no_enterprise_access: bool,
    /// The app is not authorized in the Admin Console: token requests fail.
    #[arg(long)]
    unauthorized_app: bool,
    /// The app lacks "Manage enterprise properties": enterprise events answer 403.
    #[arg(long)]
    no_events_permission: bool,
    /// A redirect URI registered for the OAuth 2.0 flow (repeatable). None: any http(s) URI
    /// is accepted.
    #[arg(long = "oauth-redirect-uri")]
    oauth_redirect_uris: Vec<String>,
    /// Authorization-code lifetime in seconds (Box: 30).
    #[arg(long, default_value_t = 30)]
    oauth_code_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (Box: 60 days).
    #[arg(long, default_value_t = 60 * 86_400)]
    oauth_refresh_token_ttl_secs: u64,
}

impl BoxArgs {
    fn config(&self) -> BoxSimConfig {
        let mut tenant = BoxTenantSpec::new(self.seed, self.users);
        if let Some(app_users) = self.app_users {
            tenant.app_users = app_users;
        }
        if let Some(events) = self.events {
            tenant.login_events = events;
        }
        if let Some(days) = self.history_days {
            tenant.history_days = days;
        }
        if let Some(share) = self.inactive_share {
            tenant.inactive_share = share;
        }
        if let Some(share) = self.never_logged_in_share {
            tenant.never_logged_in_share = share;
        }
        if let Some(id) = &self.enterprise_id {
            tenant.enterprise_id.clone_from(id);
        }
        if let Some(id) = &self.client_id {
            tenant.client_id.clone_from(id);
        }
        if let Some(secret) = &self.client_secret {
            tenant.client_secret.clone_from(secret);
        }
        if let Some(now) = self.now {
            tenant.now = now;
        }
        BoxSimConfig {
            tenant,
            faults: Faults {
                rate_limit_ratio: self.rate_limit_ratio,
                retry_after_secs: self.retry_after_secs,
                server_error_ratio: self.server_error_ratio,
                drop_connection_ratio: self.drop_connection_ratio,
                token_lifetime_requests: self.token_lifetime_requests,
                roster_drop_ratio: self.roster_drop_ratio,
                refresh_lost_response_ratio: self.refresh_lost_response_ratio,
                refresh_delay_ms: self.refresh_delay_ms,
                seed: self.fault_seed,
                // The reclaim faults are set at run time: `PUT /_sim/faults`.
                ..Faults::default()
            },
            app_has_enterprise_access: !self.no_enterprise_access,
            app_authorized: !self.unauthorized_app,
            app_can_read_events: !self.no_events_permission,
            // Changed at run time: `PUT /_sim/scopes`.
            app_scopes: AppScopes::default(),
            oauth_redirect_uris: self.oauth_redirect_uris.clone(),
            oauth_code_ttl: Duration::from_secs(self.oauth_code_ttl_secs),
            oauth_refresh_token_ttl: Duration::from_secs(self.oauth_refresh_token_ttl_secs),
        }
    }
}

/// The single stdout line; field order is part of the interface.
#[derive(Serialize)]
struct Ready {
    base_url: String,
    enterprise_id: String,
    client_id: String,
    client_secret: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let Command::Box(args) = Cli::parse().command;
    match run_box(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("seatkeeper-sim: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run_box(args: BoxArgs) -> std::io::Result<()> {
    let addr = SocketAddr::new(args.host, args.port);
    let sim = BoxSim::start_on(args.config(), addr).await?;
    let ready = Ready {
        base_url: sim.base_url(),
        enterprise_id: sim.enterprise_id(),
        client_id: sim.client_id(),
        client_secret: sim.client_secret(),
    };
    let line = serde_json::to_string(&ready).map_err(std::io::Error::other)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);

    if let Err(err) = tokio::signal::ctrl_c().await {
        // Without a signal handler, serve until killed.
        tracing::warn!(error = %err, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
    sim.shutdown().await;
    Ok(())
}
