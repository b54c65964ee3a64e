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
//! - `PUT /2.0/users/{user_id}` (status, role, profile), `DELETE /2.0/users/{user_id}` (refused
//!   while the user owns content, unless `force`), `PUT /2.0/users/{user_id}/folders/0`
//!   (content transfer, sometimes answered before it finishes), `GET /2.0/users/{user_id}/memberships`
//! - `GET /2.0/events` (`admin_logs` LOGIN events; with `As-User`, the user's own stream)
//! - `GET /_sim/stats`, `GET|PUT /_sim/faults`, `GET /_sim/info`, `GET /_sim/oauth`
//!   ([`OAuthStats`]), `POST /_sim/oauth/revoke-refresh-tokens`, `GET /_sim/content`,
//!   `GET|PUT /_sim/scopes`, `GET /_sim/writes`, `PUT /_sim/users/{id}`,
//!   `POST /_sim/users/{id}/events`: control plane for a simulator running in another
//!   process. Faults never apply to it and it is not counted in [`SimStats`].
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
//! - User writes need an admin-like caller (admin, co-admin, service account) besides the
//!   app's scopes ([`AppScopes`]); nobody but the primary admin changes the primary admin.
//! - Content is counted in items per user ([`SimHandle::owned_items`]): transfers move them,
//!   forced deletes destroy them ([`SimHandle::items_destroyed`]); nothing else changes the
//!   tenant's total ([`SimHandle::owned_items_total`]) but [`SimHandle::set_owned_items`].
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
pub use state::AppScopes;
pub use stats::{OAuthStats, SimStats, UserWrite, WriteKind};
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
    /// `false` takes the scope away whatever `app_scopes` says.
    pub app_can_read_events: bool,
    /// The app's scopes and "Perform Actions as Users"; all granted by default.
    pub app_scopes: AppScopes,
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
            app_scopes: AppScopes::default(),
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

    /// How many API requests presented `access_token` as their bearer token so far; `None`
    /// when it is not a live access token. Lets a test tell whether a token was used yet.
    pub fn access_token_uses(&self, access_token: &str) -> Option<u64> {
        lock(&self.shared.tokens).uses(access_token)
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

    /// Deletes the user, as an admin would in the Admin Console: gone from listings and
    /// lookups, while its past events stay in the log. What it owned is destroyed (counted
    /// in [`Self::items_destroyed`]); this is not an API request and is not counted as one.
    pub fn remove_user(&self, user_id: &str) {
        let mut tenant = write(&self.shared.tenant);
        match tenant.user_index(user_id) {
            Some(index) => tenant.delete_user(index),
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

    /// The app's scopes and "Perform Actions as Users" setting, as granted now.
    pub fn app_scopes(&self) -> AppScopes {
        lock(&self.shared.scopes).clone()
    }

    /// Changes what the app was granted; takes effect on the next request.
    pub fn set_app_scopes(&self, scopes: AppScopes) {
        *lock(&self.shared.scopes) = scopes;
    }

    /// Makes a managed user a co-admin (`"coadmin"`) or a regular user (`"user"`). Unknown
    /// users, other roles and the primary admin are ignored with a warning.
    pub fn set_user_role(&self, user_id: &str, role: &str) {
        let now = Utc::now().timestamp();
        if !write(&self.shared.tenant).set_role(user_id, role, now) {
            tracing::warn!(user_id, role, "set_user_role: no such managed user or role");
        }
    }

    /// Records activity in the user's own stream (what `GET /2.0/events?stream_type=all`
    /// answers with `As-User`), e.g. `ITEM_UPLOAD` from Box Drive or `ITEM_PREVIEW` from
    /// mobile, at `at` (whole seconds). Unknown user ids are ignored with a warning.
    pub fn add_user_event(&self, user_id: &str, event_type: &str, at: DateTime<Utc>) {
        let mut tenant = write(&self.shared.tenant);
        match tenant.user_index(user_id) {
            Some(index) => tenant.add_user_event(index, event_type.to_owned(), at.timestamp()),
            None => tracing::warn!(user_id, "add_user_event: no such user"),
        }
    }

    /// Ground truth: the user's own stream as (event type, time), oldest first; empty for
    /// an unknown user.
    pub fn user_events(&self, user_id: &str) -> Vec<(String, DateTime<Utc>)> {
        let tenant = read(&self.shared.tenant);
        let Some(index) = tenant.user_index(user_id) else {
            return Vec::new();
        };
        tenant
            .user_events_of(index)
            .iter()
            .map(|event| (event.event_type.to_string(), render::utc(event.at)))
            .collect()
    }

    /// Completes the early-returned transfers that are due by time and requests seen, so
    /// that content figures read between requests are current.
    fn settled(&self) -> std::sync::RwLockWriteGuard<'_, tenant::Tenant> {
        let mut tenant = write(&self.shared.tenant);
        tenant.settle_transfers(std::time::Instant::now(), false);
        tenant
    }

    /// Items the user owns now; `None` for an unknown or deleted user.
    pub fn owned_items(&self, user_id: &str) -> Option<u64> {
        let tenant = self.settled();
        tenant
            .user_index(user_id)
            .map(|index| &tenant.users[index])
            .filter(|user| !user.removed)
            .map(|user| user.owned_items)
    }

    /// Gives the user exactly `items` (so a test can set up who owns what). It changes
    /// [`Self::owned_items_total`]; unknown or deleted users are ignored with a warning.
    pub fn set_owned_items(&self, user_id: &str, items: u64) {
        if !write(&self.shared.tenant).set_owned_items(user_id, items) {
            tracing::warn!(user_id, "set_owned_items: no such user");
        }
    }

    /// Items owned across the tenant by the users that exist. Transfers never change it;
    /// only deleting a user who owns content does (see [`Self::items_destroyed`]).
    pub fn owned_items_total(&self) -> u64 {
        self.settled().owned_items_total()
    }

    /// Items destroyed with their owner: `DELETE` with `force`, or [`Self::remove_user`].
    pub fn items_destroyed(&self) -> u64 {
        self.settled().items_destroyed
    }

    /// Transfers that answered early and have not moved their items yet.
    pub fn pending_transfers(&self) -> usize {
        self.settled().pending_transfer_count()
    }

    /// `DELETE /2.0/users/{id}` requests that carried `force` (see [`SimStats::force_deletes`]).
    pub fn force_deletes(&self) -> u64 {
        lock(&self.shared.stats).force_deletes
    }

    /// Every user write request received so far, in order, whatever its outcome.
    pub fn user_writes(&self) -> Vec<UserWrite> {
        lock(&self.shared.writes).clone()
    }

    /// The enterprise's groups: `{"type":"group","id","name","group_type","created_at"}`.
    pub fn groups(&self) -> Vec<serde_json::Value> {
        let tenant = read(&self.shared.tenant);
        tenant
            .groups
            .iter()
            .map(|group| {
                serde_json::json!({
                    "type": "group",
                    "id": group.id.to_string(),
                    "name": group.name,
                    "group_type": "managed_group",
                    "created_at": render::box_time(group.created_at),
                })
            })
            .collect()
    }

    /// Ground truth: the ids of the groups the user is in, by membership id.
    pub fn user_group_ids(&self, user_id: &str) -> Vec<String> {
        let tenant = read(&self.shared.tenant);
        let Some(index) = tenant.user_index(user_id) else {
            return Vec::new();
        };
        tenant
            .memberships_of(index)
            .iter()
            .map(|membership| tenant.groups[membership.group as usize].id.to_string())
            .collect()
    }

    /// Adds the user to the group as a member (no-op if already in it). Unknown users or
    /// groups are ignored with a warning.
    pub fn add_group_membership(&self, user_id: &str, group_id: &str) {
        let now = Utc::now().timestamp();
        let mut tenant = write(&self.shared.tenant);
        match (tenant.user_index(user_id), tenant.group_index(group_id)) {
            (Some(user), Some(group)) => {
                tenant.add_membership(user, group, now);
            }
            _ => tracing::warn!(
                user_id,
                group_id,
                "add_group_membership: no such user or group"
            ),
        }
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
