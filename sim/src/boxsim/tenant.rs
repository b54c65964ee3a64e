//! The simulated enterprise: users and LOGIN history, generated deterministically from a seed.
//!
//! Sized for benchmarks (100 000 users, 1 000 000 events): users are plain structs and
//! events are 16-byte records; JSON is only rendered per page.

use std::borrow::Cow;

use chrono::{DateTime, SubsecRound, Utc};
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::seq::{SliceRandom, index};
use rand::{Rng, SeedableRng};

use super::hashing::mix64;
use super::names::{FIRST_NAMES, JOB_TITLES, LANGUAGES, LAST_NAMES, TIMEZONES};

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
const GIB: i64 = 1 << 30;
const FIRST_USER_ID: u64 = 10_000_000;
/// The app's name, which Box also gives to its service account.
const APP_NAME: &str = "Seatkeeper License Sync";
const ACTIVE_WITHIN_DAYS: i64 = 90;
/// Generated logins stay a day clear of the 90-day line and of the history edge, so an
/// oracle does not depend on `<` versus `<=` or on a client clock a few seconds past `now`.
const BOUNDARY_MARGIN: i64 = DAY;

/// How to generate a tenant. `BoxTenantSpec::new(seed, users)` fills in sensible defaults.
#[derive(Clone, Debug)]
pub struct BoxTenantSpec {
    pub seed: u64,
    /// Managed users, including the admin and co-admins; app users and the service account
    /// come on top.
    pub users: usize,
    /// Users with `is_platform_access_only: true`.
    pub app_users: usize,
    /// Total LOGIN events over the history. Every user who has logged in gets at least one,
    /// so the total is raised if it is smaller than that.
    pub login_events: usize,
    /// Events lie in `(now - history_days, now]` (the newest `history_days - 1` days, in fact).
    pub history_days: u32,
    /// Share of managed users with no LOGIN in the last 90 days. It includes the
    /// never-logged-in users (it is raised to `never_logged_in_share` if lower).
    pub inactive_share: f64,
    /// Share of managed users without any LOGIN event.
    pub never_logged_in_share: f64,
    pub enterprise_id: String,
    pub enterprise_name: String,
    pub client_id: String,
    pub client_secret: String,
    /// The simulated "now". Fix it for a tenant that is identical across runs.
    pub now: DateTime<Utc>,
}

impl BoxTenantSpec {
    pub fn new(seed: u64, users: usize) -> Self {
        Self {
            seed,
            users,
            app_users: (users / 200).max(1),
            login_events: users.saturating_mul(10),
            history_days: 365,
            inactive_share: 0.30,
            never_logged_in_share: 0.05,
            enterprise_id: "1000001".to_owned(),
            enterprise_name: "Simulated Enterprise".to_owned(),
            client_id: "sim-client-id".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            now: Utc::now().trunc_subsecs(0),
        }
    }

    /// Rejects sizes the compact storage cannot index.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let users = self
            .users
            .checked_add(self.app_users)
            .and_then(|n| n.checked_add(1));
        if users.is_none_or(|n| u32::try_from(n).is_err()) {
            return Err("too many users for the simulator (at most u32::MAX)".to_owned());
        }
        if u32::try_from(self.login_events).is_err() {
            return Err("too many login events for the simulator (at most u32::MAX)".to_owned());
        }
        if self.now.timestamp() < 0 || self.now.timestamp() >= 1 << 32 {
            return Err("`now` must lie between 1970 and 2106".to_owned());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserKind {
    Managed,
    AppUser,
    ServiceAccount,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Admin,
    Coadmin,
    User,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coadmin => "coadmin",
            Role::User => "user",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: u64,
    pub kind: UserKind,
    /// Deleted users stay in place so that event records keep pointing at them.
    pub removed: bool,
    pub name: String,
    pub login: String,
    pub role: Role,
    pub status: Cow<'static, str>,
    pub created_at: i64,
    pub modified_at: i64,
    pub space_amount: i64,
    pub space_used: i64,
    pub max_upload_size: i64,
    pub is_sync_enabled: bool,
    pub is_exempt_from_device_limits: bool,
    pub job_title: &'static str,
    pub language: &'static str,
    pub timezone: &'static str,
    pub phone: String,
}

impl User {
    pub(crate) fn is_platform_access_only(&self) -> bool {
        self.kind == UserKind::AppUser
    }
}

/// One LOGIN, ordered by `(at, serial)`; `serial` is unique and gives the event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoginEvent {
    pub at: i64,
    pub serial: u32,
    pub user: u32,
}

impl LoginEvent {
    /// The stream position just after this event. It grows with `(at, serial)` and exceeds
    /// 2^53, which catches clients that push positions through a float.
    pub(crate) fn position(&self) -> u64 {
        ((self.at.clamp(0, u32::MAX.into()) as u64) << 32) | u64::from(self.serial)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Enterprise {
    pub id: String,
    pub name: String,
}

pub(crate) struct Tenant {
    pub enterprise: Enterprise,
    /// Sorted by id, which never changes, so ids can be binary-searched and used as markers.
    pub users: Vec<User>,
    pub service_account: usize,
    /// Sorted by `(at, serial)`.
    pub events: Vec<LoginEvent>,
    pub event_salt: u64,
    next_serial: u32,
}

impl Tenant {
    /// Callers must have checked `spec.validate()`.
    pub(crate) fn generate(spec: &BoxTenantSpec) -> Self {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let now = spec.now.timestamp();
        let profiles = draw_profiles(&mut rng, spec);

        let mut users = Vec::with_capacity(spec.users + spec.app_users + 1);
        let mut next_id = FIRST_USER_ID;
        let mut take_id = |rng: &mut StdRng| {
            // Gaps, as in a real id space, so nobody relies on consecutive ids.
            next_id += rng.random_range(1..=40);
            next_id
        };
        for (ordinal, profile) in profiles.iter().enumerate() {
            let id = take_id(&mut rng);
            users.push(managed_user(&mut rng, id, ordinal, profile, now));
        }
        let service_id: u32 = rng.random_range(1_000_000..10_000_000);
        let service_account = users.len();
        let id = take_id(&mut rng);
        users.push(service_account_user(&mut rng, id, service_id, now));
        for n in 0..spec.app_users {
            let id = take_id(&mut rng);
            users.push(app_user(&mut rng, id, n, service_id, now));
        }

        let events = login_events(&mut rng, spec, &users, &profiles);
        Self {
            enterprise: Enterprise {
                id: spec.enterprise_id.clone(),
                name: spec.enterprise_name.clone(),
            },
            users,
            service_account,
            next_serial: events.len() as u32,
            events,
            event_salt: mix64(spec.seed ^ 0x00e7_e275),
        }
    }

    /// The enterprise's admin: the first managed user. A tenant without managed users has
    /// no human admin, and the service account stands in.
    pub(crate) fn admin(&self) -> usize {
        self.users
            .iter()
            .position(|user| user.kind == UserKind::Managed && user.role == Role::Admin)
            .unwrap_or(self.service_account)
    }

    pub(crate) fn user_index(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.users.binary_search_by_key(&id, |user| user.id).ok()
    }

    /// Inserts after every event at the same second, so appending "now" keeps positions
    /// already handed out valid.
    pub(crate) fn add_login(&mut self, user: usize, at: i64) {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.saturating_add(1);
        let event = LoginEvent {
            at,
            serial,
            user: user as u32,
        };
        let at_index = self
            .events
            .partition_point(|e| (e.at, e.serial) <= (at, serial));
        self.events.insert(at_index, event);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    /// Last LOGIN within the last 90 days.
    Active,
    /// Logged in before, but not in the last 90 days.
    Dormant,
    Never,
}

#[derive(Clone, Copy, Debug)]
struct Profile {
    activity: Activity,
    role: Role,
    status: &'static str,
}

fn share(total: usize, ratio: f64) -> usize {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    (total as f64 * ratio).round() as usize
}

/// Decides who is active, dormant or never logged in, and roles and statuses, with exact
/// counts so that the configured shares hold even for small tenants.
fn draw_profiles(rng: &mut StdRng, spec: &BoxTenantSpec) -> Vec<Profile> {
    let total = spec.users;
    let mut profiles = vec![
        Profile {
            activity: Activity::Active,
            role: Role::User,
            status: "active",
        };
        total
    ];
    let Some(admin) = profiles.first_mut() else {
        return profiles;
    };
    // The enterprise's own admin is in daily use.
    admin.role = Role::Admin;

    let mut others: Vec<usize> = (1..total).collect();
    others.shuffle(rng);
    let never = share(total, spec.never_logged_in_share).min(others.len());
    let inactive = share(total, spec.inactive_share)
        .max(never)
        .min(others.len());
    let (quiet, busy) = others.split_at(inactive);
    for (rank, &user) in quiet.iter().enumerate() {
        profiles[user].activity = if rank < never {
            Activity::Never
        } else {
            Activity::Dormant
        };
    }
    // A deactivated account cannot sign in, so deactivated users come from the quiet ones.
    let deactivated = share(total, 0.05).min(quiet.len());
    for pick in index::sample(rng, quiet.len(), deactivated) {
        profiles[quiet[pick]].status = "inactive";
    }
    let locked = share(total, 0.01).min(busy.len());
    for pick in index::sample(rng, busy.len(), locked) {
        profiles[busy[pick]].status = "cannot_delete_edit";
    }
    // Co-admins are drawn from everyone, so some are inactive: reclaim must still skip them.
    let coadmins = share(total, 0.005)
        .max(usize::from(total >= 20))
        .min(others.len());
    for pick in index::sample(rng, others.len(), coadmins) {
        profiles[others[pick]].role = Role::Coadmin;
    }
    profiles
}

fn pick<'a>(rng: &mut StdRng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

fn random_suffix(rng: &mut StdRng) -> String {
    rng.sample_iter(Alphanumeric)
        .take(10)
        .map(char::from)
        .collect()
}

fn managed_user(rng: &mut StdRng, id: u64, ordinal: usize, profile: &Profile, now: i64) -> User {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    let created_at = if ordinal == 0 {
        now - 3 * YEAR
    } else if profile.activity == Activity::Dormant {
        // Old enough to have a login older than 90 days.
        rng.random_range(now - 3 * YEAR..=now - 120 * DAY)
    } else if rng.random_bool(0.02) {
        rng.random_range(now - 30 * DAY..=now - 3600)
    } else {
        rng.random_range(now - 3 * YEAR..=now - 30 * DAY)
    };
    let space_amount = if profile.role != Role::User || rng.random_bool(0.15) {
        -1
    } else {
        10 * GIB
    };
    let space_used = if profile.activity == Activity::Never {
        0
    } else {
        rng.random_range(
            0..=if space_amount < 0 {
                50 * GIB
            } else {
                space_amount
            },
        )
    };
    let phone = if rng.random_bool(0.6) {
        format!("+1 555 01{:02}", rng.random_range(0..100))
    } else {
        String::new()
    };
    User {
        id,
        kind: UserKind::Managed,
        removed: false,
        name: format!("{first} {last}"),
        login: format!(
            "{}.{}.{}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
            ordinal + 1
        ),
        role: profile.role,
        status: Cow::Borrowed(profile.status),
        created_at,
        modified_at: rng.random_range(created_at..=now),
        space_amount,
        space_used,
        max_upload_size: if profile.role == Role::User {
            5 * GIB
        } else {
            15 * GIB
        },
        is_sync_enabled: rng.random_bool(0.85),
        is_exempt_from_device_limits: rng.random_bool(0.03),
        job_title: pick(rng, JOB_TITLES),
        language: pick(rng, LANGUAGES),
        timezone: pick(rng, TIMEZONES),
        phone,
    }
}

fn platform_user(id: u64, kind: UserKind, name: String, login: String, created_at: i64) -> User {
    User {
        id,
        kind,
        removed: false,
        name,
        login,
        role: Role::User,
        status: Cow::Borrowed("active"),
        created_at,
        modified_at: created_at,
        space_amount: -1,
        space_used: 0,
        max_upload_size: 5 * GIB,
        is_sync_enabled: false,
        is_exempt_from_device_limits: false,
        job_title: "",
        language: "en",
        timezone: "America/Los_Angeles",
        phone: String::new(),
    }
}

/// Reported as an admin (what integrations such as baton-box expect of a CCG enterprise
/// token) and not as platform-access-only: clients must recognise it by id or login.
fn service_account_user(rng: &mut StdRng, id: u64, service_id: u32, now: i64) -> User {
    let login = format!(
        "AutomationUser_{service_id}_{}@boxdevedition.com",
        random_suffix(rng)
    );
    let mut user = platform_user(
        id,
        UserKind::ServiceAccount,
        APP_NAME.to_owned(),
        login,
        now - 400 * DAY,
    );
    user.role = Role::Admin;
    user
}

fn app_user(rng: &mut StdRng, id: u64, n: usize, service_id: u32, now: i64) -> User {
    let login = format!(
        "AppUser_{service_id}_{}@boxdevedition.com",
        random_suffix(rng)
    );
    let created_at = rng.random_range(now - 400 * DAY..=now - DAY);
    platform_user(
        id,
        UserKind::AppUser,
        format!("Sim App User {}", n + 1),
        login,
        created_at,
    )
}

/// A user's allowed LOGIN times, inclusive.
struct Window {
    user: u32,
    from: i64,
    to: i64,
    /// Where the guaranteed first event goes: recent for active users.
    first_from: i64,
}

fn login_events(
    rng: &mut StdRng,
    spec: &BoxTenantSpec,
    users: &[User],
    profiles: &[Profile],
) -> Vec<LoginEvent> {
    if spec.history_days == 0 {
        return Vec::new();
    }
    let now = spec.now.timestamp();
    let oldest = now - i64::from(spec.history_days) * DAY + BOUNDARY_MARGIN;
    let recent_from = now - ACTIVE_WITHIN_DAYS * DAY + BOUNDARY_MARGIN;
    let dormant_to = now - ACTIVE_WITHIN_DAYS * DAY - BOUNDARY_MARGIN;

    let windows: Vec<Window> = profiles
        .iter()
        .zip(users)
        .enumerate()
        .filter_map(|(index, (profile, user))| {
            let from = user.created_at.max(oldest);
            let (to, first_from) = match profile.activity {
                Activity::Active => (now, from.max(recent_from)),
                // With a history shorter than 90 days a dormant user has nowhere to log in.
                Activity::Dormant => (dormant_to, from),
                Activity::Never => return None,
            };
            (from <= to && first_from <= to).then_some(Window {
                user: index as u32,
                from,
                to,
                first_from,
            })
        })
        .collect();
    if windows.is_empty() {
        return Vec::new();
    }

    let total = spec.login_events.max(windows.len());
    let mut events = Vec::with_capacity(total);
    for window in &windows {
        events.push(LoginEvent {
            at: rng.random_range(window.first_from..=window.to),
            serial: 0,
            user: window.user,
        });
    }
    for _ in windows.len()..total {
        let window = &windows[rng.random_range(0..windows.len())];
        events.push(LoginEvent {
            at: rng.random_range(window.from..=window.to),
            serial: 0,
            user: window.user,
        });
    }
    events.sort_unstable_by_key(|event| (event.at, event.user));
    for (serial, event) in events.iter_mut().enumerate() {
        event.serial = serial as u32;
    }
    events
}
