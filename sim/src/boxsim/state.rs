//! State shared by the handlers and the [`super::SimHandle`].
//!
//! Separate locks, held only for the length of a synchronous step: the tenant (read-mostly)
//! must not be serialised behind the fault dice or the counters. When `oauth` and `tokens`
//! are both needed they are taken in that order, and held together, so that a refresh cannot
//! slip an access token past a concurrent revocation of its grant.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::BoxSimConfig;
use super::faults::FaultState;
use super::hashing::mix64;
use super::oauth::{GrantId, OAuthStore};
use super::stats::{SimStats, UserWrite};
use super::tenant::Tenant;

/// Box's access-token lifetime.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The simulated app and how the enterprise admin configured it.
pub(crate) struct AppSettings {
    pub client_id: String,
    pub client_secret: String,
    pub enterprise_id: String,
    pub enterprise_access: bool,
    pub authorized: bool,
    /// Empty: any http(s) URI is accepted.
    pub redirect_uris: Vec<String>,
}

/// What the enterprise granted the app: its scopes (Developer Console "Application Scopes",
/// fixed when the admin authorized the app) and the "Perform Actions as Users" setting.
/// Every field defaults to granted; missing JSON fields take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppScopes {
    /// `manage_managed_users` ("Manage users"): list, read, update and delete users.
    pub manage_users: bool,
    /// `manage_enterprise_properties`: the enterprise event log (`admin_logs`).
    pub manage_enterprise_properties: bool,
    /// `root_readwrite` ("Read and write all files and folders"): content transfers.
    pub root_readwrite: bool,
    /// `manage_groups`: group memberships.
    pub manage_groups: bool,
    /// "Perform Actions as Users" (an app setting rather than a scope): the `As-User` header.
    pub as_user: bool,
}

impl Default for AppScopes {
    fn default() -> Self {
        Self {
            manage_users: true,
            manage_enterprise_properties: true,
            root_readwrite: true,
            manage_groups: true,
            as_user: true,
        }
    }
}

pub(crate) struct Shared {
    pub app: AppSettings,
    /// Apart from [`AppSettings`] because tests change it while the simulator runs.
    pub scopes: Mutex<AppScopes>,
    /// Every user write request received, in order.
    pub writes: Mutex<Vec<UserWrite>>,
    pub tenant: RwLock<Tenant>,
    pub oauth: Mutex<OAuthStore>,
    pub tokens: Mutex<TokenStore>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<SimStats>,
}

impl Shared {
    /// Callers must have checked `config.tenant.validate()`.
    pub(crate) fn new(config: BoxSimConfig) -> Self {
        let spec = &config.tenant;
        let mut scopes = config.app_scopes.clone();
        // The older switch for the same scope still works, and can only take it away.
        scopes.manage_enterprise_properties &= config.app_can_read_events;
        Self {
            scopes: Mutex::new(scopes),
            writes: Mutex::new(Vec::new()),
            app: AppSettings {
                client_id: spec.client_id.clone(),
                client_secret: spec.client_secret.clone(),
                enterprise_id: spec.enterprise_id.clone(),
                enterprise_access: config.app_has_enterprise_access,
                authorized: config.app_authorized,
                redirect_uris: config.oauth_redirect_uris.clone(),
            },
            tenant: RwLock::new(Tenant::generate(spec)),
            oauth: Mutex::new(OAuthStore::new(
                mix64(spec.seed ^ 0x0a07_4c0d),
                config.oauth_code_ttl,
                config.oauth_refresh_token_ttl,
            )),
            tokens: Mutex::new(TokenStore::new(mix64(spec.seed ^ 0x0070_4e75))),
            faults: Mutex::new(FaultState::new(config.faults)),
            stats: Mutex::new(SimStats::default()),
        }
    }
}

// A panic while a lock is held can only come from a bug in a handler; the data behind the
// lock is still consistent enough for a simulator, so keep serving rather than cascade.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// `len` random alphanumeric characters: access tokens, refresh tokens and codes.
pub(crate) fn random_token(rng: &mut StdRng, len: usize) -> String {
    rng.sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

struct IssuedToken {
    user: usize,
    /// The authorization-code grant it belongs to; `None` for client-credentials tokens.
    grant: Option<GrantId>,
    expires_at: Instant,
    uses: u64,
}

pub(crate) struct TokenStore {
    issued: HashMap<String, IssuedToken>,
    rng: StdRng,
}

impl TokenStore {
    fn new(seed: u64) -> Self {
        Self {
            issued: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A fresh bearer token acting as the user at `user` (an index into the tenant).
    pub(crate) fn issue(&mut self, user: usize) -> String {
        self.issue_with(user, None)
    }

    /// A fresh bearer token of an authorization-code grant, acting as the user who authorized.
    pub(crate) fn issue_for_grant(&mut self, user: usize, grant: GrantId) -> String {
        self.issue_with(user, Some(grant))
    }

    fn issue_with(&mut self, user: usize, grant: Option<GrantId>) -> String {
        let now = Instant::now();
        // Clients that fetch a token per run would otherwise grow this map without bound.
        self.issued.retain(|_, token| token.expires_at > now);
        let token = random_token(&mut self.rng, 32);
        self.issued.insert(
            token.clone(),
            IssuedToken {
                user,
                grant,
                expires_at: now + TOKEN_LIFETIME,
                uses: 0,
            },
        );
        token
    }

    /// Forgets `token`. `None` if it was not a live access token; otherwise its grant, if any.
    pub(crate) fn revoke(&mut self, token: &str) -> Option<Option<GrantId>> {
        self.issued.remove(token).map(|issued| issued.grant)
    }

    /// Forgets every access token of `grant`, including those from earlier refreshes.
    pub(crate) fn revoke_grant(&mut self, grant: GrantId) {
        self.issued.retain(|_, token| token.grant != Some(grant));
    }

    /// API requests that presented `token` so far (refused ones included); `None` when it is
    /// not a live access token (never issued, revoked, or expired and forgotten).
    pub(crate) fn uses(&self, token: &str) -> Option<u64> {
        self.issued.get(token).map(|issued| issued.uses)
    }

    /// Counts one use and gives the user the token acts as, unless it is unknown, expired,
    /// or used more than `max_uses` times.
    pub(crate) fn authenticate(&mut self, token: &str, max_uses: Option<u64>) -> Option<usize> {
        let issued = self.issued.get_mut(token)?;
        if issued.expires_at <= Instant::now() {
            self.issued.remove(token);
            return None;
        }
        issued.uses += 1;
        if max_uses.is_some_and(|max| issued.uses > max) {
            return None;
        }
        Some(issued.user)
    }
}
