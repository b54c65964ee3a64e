//! `seatkeeper connect box --oauth`: the browser flow, through a local server started by the
//! command itself. The admin opens the printed link, signs in to Box and consents; Box sends
//! the browser back to the local server, whose OAuth callback stores the tokens, creates (or
//! repairs) the integration and starts its first sync in this process. The command waits for
//! that, then prints the integration's id.

use crate::app::LocalApp;
use crate::serve::{self, CallbackOutcome, LocalServer};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use seatkeeper_shared::domain::{BoxPlan, Integration, IntegrationId, IntegrationStatus, Provider};
use seatkeeper_shared::secrets::{OAuthAppCredentials, SecretsError};
use seatkeeper_shared::services::oauth_connect::{OAuthTicketRequest, issue_ticket};
use seatkeeper_shared::store::Store;
use secrecy::ExposeSecret;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the command waits for the admin to finish in the browser.
const WAIT_FOR_BROWSER: Duration = Duration::from_secs(10 * 60);
/// How often the store is checked while waiting (the callback also wakes the wait).
const POLL: Duration = Duration::from_secs(1);

pub struct Request {
    pub plan: Option<BoxPlan>,
    pub purchased_seats: Option<u64>,
    pub name: Option<String>,
    /// Repair this integration instead of creating one.
    pub integration: Option<IntegrationId>,
    pub port: u16,
    pub open_browser: bool,
}

pub async fn run(app: &LocalApp, request: Request) -> Result<()> {
    match OAuthAppCredentials::load(app.secrets.as_ref(), Provider::Box).await {
        Ok(_) => {}
        Err(SecretsError::NotFound(_)) => bail!(
            "no Box OAuth app is set: create one in the Box Developer Console (User \
             Authentication (OAuth 2.0), redirect URI http://127.0.0.1:{}/oauth/box/callback), \
             then `seatkeeper apps set box --client-id ... --client-secret-env VAR`",
            serve::DEFAULT_PORT
        ),
        Err(e) => return Err(e).context("cannot read the Box OAuth app's credentials"),
    }
    let listener = serve::bind(request.port).await?;
    let (callbacks, mut callback_rx) = mpsc::unbounded_channel();
    let server = LocalServer::start(app, listener, Some(callbacks)).await?;
    let outcome = connect_through(app, &server, &request, &mut callback_rx).await;
    if outcome.is_ok() {
        // The callback started the first sync on this process: let it finish.
        eprintln!("Running the first sync…");
        server.trigger.wait_idle().await;
    }
    server.stop().await?;
    let integration = outcome?;
    let synced = app.store.get_integration(&integration.id).await?;
    match synced.as_ref().and_then(|i| i.last_sync.as_ref()) {
        Some(last) if last.succeeded => eprintln!("First sync done."),
        Some(last) => eprintln!(
            "warning: the integration is connected, but the first sync failed: {}\nRun `seatkeeper sync --integration {}` to try again.",
            last.error.as_deref().unwrap_or("unknown error"),
            integration.id
        ),
        None => eprintln!(
            "The first sync did not run; run `seatkeeper sync --integration {}`.",
            integration.id
        ),
    }
    println!("{}", integration.id);
    Ok(())
}

async fn connect_through(
    app: &LocalApp,
    server: &LocalServer,
    request: &Request,
    callbacks: &mut mpsc::UnboundedReceiver<CallbackOutcome>,
) -> Result<Integration> {
    let started = chrono::Utc::now();
    let issued = issue_ticket(
        &server.context,
        OAuthTicketRequest {
            provider: Provider::Box,
            name: request.name.clone(),
            plan: request.plan,
            purchased_seats: request.purchased_seats,
            integration_id: request.integration.clone(),
        },
        &serve::local_actor(),
    )
    .await?;
    let url = issued.start_url.expose_secret();
    eprintln!(
        "Open this link in your browser and authorize Seatkeeper in Box as an admin (it works once, until {}):",
        issued.expires_at.format("%H:%M UTC")
    );
    // The link alone on its line, so it can be copied (or read by a script).
    eprintln!("{url}");
    if request.open_browser {
        open_browser(url);
    }
    eprintln!(
        "Waiting for Box to send the browser back to {}…",
        server.base_url
    );

    let deadline = tokio::time::Instant::now() + WAIT_FOR_BROWSER;
    loop {
        if let Some(found) = connected(app, request.integration.as_ref(), started).await? {
            eprintln!("Connected integration {} ({})", found.id, found.name);
            return Ok(found);
        }
        tokio::select! {
            outcome = callbacks.recv() => match outcome {
                Some(outcome) if !outcome.status.is_success() => {
                    // One more look: a page answer other than 200 means nothing was stored.
                    if let Some(found) = connected(app, request.integration.as_ref(), started).await? {
                        return Ok(found);
                    }
                    bail!(
                        "Box did not connect (the callback answered {}); the browser page says why. Nothing was stored; run the command again to retry.",
                        outcome.status
                    );
                }
                Some(_) => {}
                None => bail!("the local server stopped"),
            },
            () = tokio::time::sleep(POLL) => {}
            () = tokio::time::sleep_until(deadline) => bail!(
                "gave up waiting after {} minutes; the link has expired. Run the command again.",
                WAIT_FOR_BROWSER.as_secs() / 60
            ),
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    }
}

/// The integration this connect produced, once the callback stored it: connected and
/// written since the command started. That is a new integration, or the existing one of the
/// same tenant that the callback repaired (with or without `--integration`). Nothing else
/// writes integrations meanwhile: the store is this process's alone.
async fn connected(
    app: &LocalApp,
    repairing: Option<&IntegrationId>,
    started: DateTime<Utc>,
) -> Result<Option<Integration>> {
    let fresh = |i: &Integration| {
        i.status == IntegrationStatus::Connected
            && i.updated_at >= started
            && repairing.is_none_or(|id| *id == i.id)
    };
    Ok(app
        .store
        .list_integrations()
        .await?
        .into_iter()
        .filter(fresh)
        .max_by_key(|i| i.updated_at))
}

/// Best effort: the link is printed anyway. The URL is passed as one argument, never
/// through a shell.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        // Reap it in the background so no zombie is left.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
    }
}
