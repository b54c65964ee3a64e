//! State shared by the handlers and the [`super::SimHandle`].
//!
//! Separate locks, held only for the length of a synchronous step: the tenant (read-mostly)
//! must not be serialised behind the fault dice or the counters.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::BoxSimConfig;
use super::faults::FaultState;
use super::hashing::mix64;
use super::stats::SimStats;
use super::tenant::Tenant;

/// Box's access-token lifetime.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The simulated CCG app and how the enterprise admin configured it.
pub(crate) struct AppSettings {
    pub client_id: String,
    pub client_secret: String,
    pub enterprise_id: String,
    pub enterprise_access: bool,
    pub authorized: bool,
    pub can_read_events: bool,
}

pub(crate) struct Shared {
    pub app: AppSettings,
    pub tenant: RwLock<Tenant>,
    pub tokens: Mutex<TokenStore>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<SimStats>,
}

impl Shared {
    /// Callers must have checked `config.tenant.validate()`.
    pub(crate) fn new(config: BoxSimConfig) -> Self {
        let spec = &config.tenant;
        Self {
            app: AppSettings {
                client_id: spec.client_id.clone(),
                client_secret: spec.client_secret.clone(),
                enterprise_id: spec.enterprise_id.clone(),
                enterprise_access: config.app_has_enterprise_access,
                authorized: config.app_authorized,
                can_read_events: config.app_can_read_events,
            },
            tenant: RwLock::new(Tenant::generate(spec)),
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

struct IssuedToken {
    user: usize,
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
        let now = Instant::now();
        // Clients that fetch a token per run would otherwise grow this map without bound.
        self.issued.retain(|_, token| token.expires_at > now);
        let token: String = (&mut self.rng)
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        self.issued.insert(
            token.clone(),
            IssuedToken {
                user,
                expires_at: now + TOKEN_LIFETIME,
                uses: 0,
            },
        );
        token
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
