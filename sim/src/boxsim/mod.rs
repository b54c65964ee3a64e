//! A Box API simulator: one enterprise, one app, served on a real socket.
//!
//! Served endpoints (see `docs/box-sim-contract.md`):
//! - `POST /oauth2/token`: `client_credentials` (enterprise subject), `authorization_code`
//!   and `refresh_token` (single use, rotated on every refresh)
//! - `GET /api/oauth2/authorize`: Box's authorize page (`account.box.com` in production). In
//!   place of a login and consent page it decides from `sim_decision=approve|deny` (default
//!   approve) and `sim_user=<user id>` (default the admin), then redirects. Faults never apply
//!   to it and it is not counted in [`SimStats`].
//! - `POST /oauth2/revoke`: ends the grant of the access or refresh token named
//! - `GET /2.0/users` (marker and offset paging), `GET /2.0/users/me`, `GET /2.0/users/{user_id}`
//! - `GET /2.0/events` (`admin_logs` LOGIN events)
//! - `GET /_sim/stats`, `GET|PUT /_sim/faults`, `GET /_sim/info`, `GET /_sim/oauth`
//!   ([`OAuthStats`]), `POST /_sim/oauth/revoke-refresh-tokens`: control plane for a simulator
//!   running in another process. Faults never apply to it and it is not counted in [`SimStats`].
//!
//! Modelling choices worth knowing when writing test oracles:
//! - The service account (`AutomationUser_…@boxdevedition.com`) is listed by
//!   `user_type=managed` along with the app users, reports `role: "admin"` and
//!   `is_platform_access_only: false`; it is what `/users/me` returns. Clients must recognise
//!   it by id (from `/users/me`) or login, not by a flag.
//! - Timestamps are rendered with a fixed `-08:00` offset and whole seconds, as Box does;
//!   event times are stored with one-second precision.
//! - One app answers both the server-auth (CCG) and the OAuth 2.0 user flows, so a test can
//!   run both against one tenant; on Box an app has a single authentication method.
//! - Access tokens from the authorization-code flow act as the user who authorized, but carry
//!   the app's permissions whatever that user's role.
//! - Dropping the [`SimHandle`] stops the server.

mod errors;
mod faults;
mod hashing;
mod names;
mod oauth;
mod render;
mod routes;
mod server;
mod state;
mod stats;
mod tenant;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use stats::{OAuthStats, SimStats};
pub use tenant::BoxTenantSpec;

use render::FieldSelection;
use state::{Shared, lock, read, write};

/// Everything needed to start a simulated Box enterprise and its app.
#[derive(Clone, Debug)]
pub struct BoxSimConfig {
    pub tenant: BoxTenantSpec,
    pub faults: Faults,
    /// "App + Enterprise Access": without it the app sees only its service account and app users.
    pub app_has_enterprise_access: bool,
    /// Authorized in the Admin Console: without it the token endpoint answers `unauthorized_client`.
    pub app_authorized: bool,
    /// The "manage enterprise properties" scope: without it `/2.0/events` answers 403.
    pub app_can_read_events: bool,
    /// Redirect URIs registered for the OAuth 2.0 flow, matched exactly. When empty, any
    /// absolute http(s) URI without a fragment is accepted (a simulator convenience: Box
    /// requires registered URIs), and the authorize request must then name one.
    pub oauth_redirect_uris: Vec<String>,
    /// How long an authorization code can be exchanged (Box: 30 s).
    pub oauth_code_ttl: Duration,
    /// How long an unused refresh token stays valid (Box: 60 days).
    pub oauth_refresh_token_ttl: Duration,
}

impl BoxSimConfig {
    /// A healthy, fully authorized app over `tenant`, without faults.
    pub fn new(tenant: BoxTenantSpec) -> Self {
        Self {
            tenant,
            faults: Faults::default(),
            app_has_enterprise_access: true,
            app_authorized: true,
            app_can_read_events: true,
            oauth_redirect_uris: Vec::new(),
            oauth_code_ttl: oauth::DEFAULT_CODE_TTL,
            oauth_refresh_token_ttl: oauth::DEFAULT_REFRESH_TOKEN_TTL,
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.tenant.validate()?;
        match self
            .oauth_redirect_uris
            .iter()
            .find(|uri| !oauth::is_web_uri(uri))
        {
            Some(uri) => Err(format!(
                "redirect URI {uri:?} is not an absolute http(s) URI without a fragment"
            )),
            None => Ok(()),
        }
    }
}

/// Entry point: `BoxSim::start(config).await?` gives a running simulator.
pub struct BoxSim;

impl BoxSim {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(config: BoxSimConfig) -> std::io::Result<SimHandle> {
        Self::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Fails with `InvalidInput` for a tenant too large to index or an unusable redirect URI,
    /// or when binding fails.
    pub async fn start_on(config: BoxSimConfig, addr: SocketAddr) -> std::io::Result<SimHandle> {
        config
            .validate()
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let router = routes::router(Arc::clone(&shared));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, router, shutdown_rx));
        Ok(SimHandle {
            shared,
            local_addr,
            shutdown,
            task,
        })
    }
}

/// A running simulator. Dropping it stops the server (the shutdown channel closes).
pub struct SimHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        // A wildcard bind address is not something a client can connect to.
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// `{base_url}/api/oauth2/authorize`: where Box serves `https://account.box.com/api/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}{}", self.base_url(), routes::AUTHORIZE_PATH)
    }

    pub fn stats(&self) -> SimStats {
        lock(&self.shared.stats).clone()
    }

    pub fn oauth_stats(&self) -> OAuthStats {
        lock(&self.shared.oauth).stats.clone()
    }

    /// Invalidates every refresh token, as when an admin revokes the app's access: the next
    /// refresh of any grant answers `invalid_grant`. Access tokens already issued keep working
    /// until they expire.
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.shared.oauth).revoke_all_refresh_tokens();
    }

    /// Replaces the faults and reseeds the fault dice with `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).set(faults);
    }

    pub fn enterprise_id(&self) -> String {
        self.shared.app.enterprise_id.clone()
    }

    pub fn client_id(&self) -> String {
        self.shared.app.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared.app.client_secret.clone()
    }

    /// The enterprise's admin, who authorizes by default on the authorize page. With
    /// `users: 0` there is none and this is the service account, which cannot authorize.
    pub fn admin_user_id(&self) -> String {
        let tenant = read(&self.shared.tenant);
        tenant.users[tenant.admin()].id.to_string()
    }

    pub fn service_account_id(&self) -> String {
        let tenant = read(&self.shared.tenant);
        tenant.users[tenant.service_account].id.to_string()
    }

    /// Records a LOGIN by `user_id` at `at` (truncated to whole seconds), kept in
    /// chronological order. Unknown user ids are ignored with a warning.
    pub fn add_login(&self, user_id: &str, at: DateTime<Utc>) {
        let mut tenant = write(&self.shared.tenant);
        match tenant.user_index(user_id) {
            Some(index) => tenant.add_login(index, at.timestamp()),
            None => tracing::warn!(user_id, "add_login: no such user"),
        }
    }

    /// Deletes the user: gone from listings and lookups, while its past events stay in the log.
    pub fn remove_user(&self, user_id: &str) {
        let mut tenant = write(&self.shared.tenant);
        match tenant.user_index(user_id) {
            Some(index) => tenant.users[index].removed = true,
            None => tracing::warn!(user_id, "remove_user: no such user"),
        }
    }

    pub fn set_user_status(&self, user_id: &str, status: &str) {
        let mut tenant = write(&self.shared.tenant);
        match tenant.user_index(user_id) {
            Some(index) => {
                let user = &mut tenant.users[index];
                user.status = status.to_owned().into();
                user.modified_at = user.modified_at.max(Utc::now().timestamp());
            }
            None => tracing::warn!(user_id, "set_user_status: no such user"),
        }
    }

    /// Every existing user (managed, app users and the service account) with all fields.
    pub fn users(&self) -> Vec<serde_json::Value> {
        let tenant = read(&self.shared.tenant);
        tenant
            .users
            .iter()
            .filter(|user| !user.removed)
            .map(|user| render::user(user, &tenant.enterprise, &FieldSelection::All))
            .collect()
    }

    /// Ground truth: every LOGIN event as (user id, time), oldest first.
    pub fn login_events(&self) -> Vec<(String, DateTime<Utc>)> {
        let tenant = read(&self.shared.tenant);
        tenant
            .events
            .iter()
            .map(|event| {
                let user = &tenant.users[event.user as usize];
                (user.id.to_string(), render::utc(event.at))
            })
            .collect()
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(self) {
        // The receiver is gone only if the server task already ended, which is the goal anyway.
        let _ = self.shutdown.send(());
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "simulator task ended abnormally");
        }
    }
}
