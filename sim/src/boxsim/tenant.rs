//! The simulated enterprise: users and LOGIN history, generated deterministically from a seed,
//! plus what the reclaim endpoints need: owned content, groups and memberships, and each
//! user's own event stream (Box Drive and mobile activity that never shows as a LOGIN).
//!
//! Sized for benchmarks (100 000 users, 1 000 000 events): users are plain structs and
//! events are 16-byte records; JSON is only rendered per page.

use std::borrow::Cow;
use std::time::Instant;

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
const FIRST_GROUP_ID: u64 = 8_000_000;
const FIRST_MEMBERSHIP_ID: u64 = 60_000_000;
const FIRST_FOLDER_ID: u64 = 300_000_000_000;
/// Generated activity in a user's own stream lies within this many days of `now`, well inside
/// Box's 21-day retention of `all`/`changes` streams.
const USER_STREAM_DAYS: i64 = 14;
const GROUP_NAMES: &[&str] = &[
    "Engineering",
    "Sales",
    "Finance",
    "Legal",
    "Marketing",
    "Support",
    "Contractors",
    "Executives",
    "IT Operations",
    "Reclaim Exempt",
];
/// What Box Drive, mobile and web use leave in a user's own stream.
const USER_EVENT_TYPES: &[&str] = &[
    "ITEM_PREVIEW",
    "ITEM_DOWNLOAD",
    "ITEM_UPLOAD",
    "ITEM_MODIFY",
    "ITEM_SYNC",
];
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
    /// Share of the quiet managed users (no LOGIN in the last 90 days, never-logged-in ones
    /// included) whose own event stream (`stream_type=all` with `As-User`) still shows recent
    /// activity: Box Drive and mobile users who never sign in on the web. Such users look
    /// inactive in the enterprise LOGIN log and must not be reclaimed.
    pub drive_only_share: f64,
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
            drive_only_share: 0.02,
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

    /// The roles a user can be given: an enterprise has exactly one primary admin.
    pub(crate) fn assignable(text: &str) -> Option<Self> {
        match text {
            "coadmin" => Some(Role::Coadmin),
            "user" => Some(Role::User),
            _ => None,
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
    pub job_title: Cow<'static, str>,
    pub language: &'static str,
    pub timezone: &'static str,
    pub phone: String,
    /// Files and folders the user owns (what a transfer moves and a forced delete destroys).
    pub owned_items: u64,
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
pub(crate) struct Group {
    pub id: u64,
    pub name: &'static str,
    pub created_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupRole {
    Member,
    Admin,
}

impl GroupRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GroupRole::Member => "member",
            GroupRole::Admin => "admin",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Membership {
    pub id: u64,
    pub user: u32,
    /// Index into [`Tenant::groups`].
    pub group: u32,
    pub role: GroupRole,
    pub created_at: i64,
}

/// One event in a user's own stream, ordered per user by `(at, serial)`.
#[derive(Clone, Debug)]
pub(crate) struct UserEvent {
    pub at: i64,
    pub serial: u32,
    pub user: u32,
    pub event_type: Cow<'static, str>,
}

impl UserEvent {
    /// Same scheme as [`LoginEvent::position`], over the user streams' own serials.
    pub(crate) fn position(&self) -> u64 {
        ((self.at.clamp(0, u32::MAX.into()) as u64) << 32) | u64::from(self.serial)
    }
}

/// A transfer that answered 200 before moving anything (Box runs large transfers
/// asynchronously and offers no way to see when they end). The source keeps its items
/// until the transfer is due.
#[derive(Clone, Debug)]
pub(crate) struct PendingTransfer {
    pub from: usize,
    pub to: usize,
    ready_at: Instant,
    requests_to_wait: u64,
    requests_seen: u64,
}

/// When a transfer's items move.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TransferTiming {
    Immediate,
    /// Not before `ready_at`, and not before `requests` further API requests were received.
    Later {
        ready_at: Instant,
        requests: u64,
    },
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
    pub groups: Vec<Group>,
    /// Sorted by `(user, id)`.
    pub memberships: Vec<Membership>,
    next_membership_id: u64,
    /// Every user's own stream, sorted by `(user, at, serial)`.
    pub user_events: Vec<UserEvent>,
    next_user_event_serial: u32,
    pending_transfers: Vec<PendingTransfer>,
    next_folder_id: u64,
    /// Items destroyed with their owner (forced deletes, [`crate::SimHandle::remove_user`]).
    pub items_destroyed: u64,
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
        // Everything below draws from its own generator, so the users and LOGIN events above
        // stay exactly what they were before content, groups and user streams existed.
        let mut extra = StdRng::seed_from_u64(mix64(spec.seed ^ 0x0c0f_fee5));
        assign_owned_items(&mut extra, &mut users, &profiles);
        let (groups, memberships) = groups_and_memberships(&mut extra, spec, &users, &profiles);
        let user_events = own_stream_events(&mut extra, spec, &profiles);
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
            groups,
            next_membership_id: memberships
                .iter()
                .map(|membership| membership.id)
                .max()
                .unwrap_or(FIRST_MEMBERSHIP_ID),
            memberships,
            next_user_event_serial: user_events.len() as u32,
            user_events,
            pending_transfers: Vec::new(),
            next_folder_id: FIRST_FOLDER_ID,
            items_destroyed: 0,
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

    /// Items owned by the users that exist. With [`Self::items_destroyed`] it is constant
    /// unless a test sets a user's items directly: transfers only move items.
    pub(crate) fn owned_items_total(&self) -> u64 {
        self.users
            .iter()
            .filter(|user| !user.removed)
            .map(|user| user.owned_items)
            .sum()
    }

    /// The user's memberships, by membership id.
    pub(crate) fn memberships_of(&self, user: usize) -> &[Membership] {
        let user = user as u32;
        let start = self.memberships.partition_point(|m| m.user < user);
        let end = self.memberships.partition_point(|m| m.user <= user);
        &self.memberships[start..end]
    }

    /// Adds `user` to the group at `group` (an index) as a member; false if already in it.
    pub(crate) fn add_membership(&mut self, user: usize, group: usize, at: i64) -> bool {
        if self
            .memberships_of(user)
            .iter()
            .any(|membership| membership.group as usize == group)
        {
            return false;
        }
        self.next_membership_id += 1;
        let membership = Membership {
            id: self.next_membership_id,
            user: user as u32,
            group: group as u32,
            role: GroupRole::Member,
            created_at: at,
        };
        let index = self
            .memberships
            .partition_point(|m| (m.user, m.id) < (membership.user, membership.id));
        self.memberships.insert(index, membership);
        true
    }

    pub(crate) fn group_index(&self, id: &str) -> Option<usize> {
        let id: u64 = id.parse().ok()?;
        self.groups.binary_search_by_key(&id, |group| group.id).ok()
    }

    /// The user's own stream, oldest first.
    pub(crate) fn user_events_of(&self, user: usize) -> &[UserEvent] {
        let user = user as u32;
        let start = self.user_events.partition_point(|e| e.user < user);
        let end = self.user_events.partition_point(|e| e.user <= user);
        &self.user_events[start..end]
    }

    /// Appends to the user's own stream; like [`Self::add_login`], after every event at the
    /// same second so positions already handed out stay valid.
    pub(crate) fn add_user_event(&mut self, user: usize, event_type: String, at: i64) {
        let serial = self.next_user_event_serial;
        self.next_user_event_serial = self.next_user_event_serial.saturating_add(1);
        let event = UserEvent {
            at,
            serial,
            user: user as u32,
            event_type: Cow::Owned(event_type),
        };
        let index = self
            .user_events
            .partition_point(|e| (e.user, e.at, e.serial) <= (event.user, at, serial));
        self.user_events.insert(index, event);
    }

    pub(crate) fn new_folder_id(&mut self) -> u64 {
        self.next_folder_id += 1;
        self.next_folder_id
    }

    pub(crate) fn has_pending_transfers(&self) -> bool {
        !self.pending_transfers.is_empty()
    }

    pub(crate) fn pending_transfer_count(&self) -> usize {
        self.pending_transfers.len()
    }

    pub(crate) fn transfer_pending_from(&self, user: usize) -> bool {
        self.pending_transfers
            .iter()
            .any(|transfer| transfer.from == user)
    }

    /// Moves everything `from` owns to `to`, now or later.
    pub(crate) fn start_transfer(&mut self, from: usize, to: usize, timing: TransferTiming) {
        match timing {
            TransferTiming::Immediate => self.complete_transfer(from, to),
            TransferTiming::Later { ready_at, requests } => {
                self.pending_transfers.push(PendingTransfer {
                    from,
                    to,
                    ready_at,
                    requests_to_wait: requests,
                    requests_seen: 0,
                })
            }
        }
    }

    /// What the source owns when the transfer runs moves, space included. Nothing moves when
    /// either side was deleted meanwhile: the items stay with (or died with) their owner.
    fn complete_transfer(&mut self, from: usize, to: usize) {
        if from == to || self.users[from].removed || self.users[to].removed {
            return;
        }
        let items = std::mem::take(&mut self.users[from].owned_items);
        let space = std::mem::take(&mut self.users[from].space_used);
        let destination = &mut self.users[to];
        destination.owned_items = destination.owned_items.saturating_add(items);
        destination.space_used = destination.space_used.saturating_add(space);
    }

    /// Completes the transfers that are due. `counts_request`: called for an API request,
    /// which counts towards the requests a pending transfer waits for; a transfer is due
    /// for the first request after it waited long enough and saw enough requests.
    pub(crate) fn settle_transfers(&mut self, now: Instant, counts_request: bool) {
        let pending = std::mem::take(&mut self.pending_transfers);
        for mut transfer in pending {
            let due =
                transfer.requests_seen >= transfer.requests_to_wait && now >= transfer.ready_at;
            if due {
                self.complete_transfer(transfer.from, transfer.to);
            } else {
                if counts_request {
                    transfer.requests_seen += 1;
                }
                self.pending_transfers.push(transfer);
            }
        }
    }

    /// Control plane: sets a managed user's role (`coadmin` or `user`; never the primary
    /// admin's). False when there is no such managed user or the role is not assignable.
    pub(crate) fn set_role(&mut self, user_id: &str, role: &str, now: i64) -> bool {
        let admin = self.admin();
        let (Some(index), Some(role)) = (self.user_index(user_id), Role::assignable(role)) else {
            return false;
        };
        let user = &mut self.users[index];
        if index == admin || user.kind != UserKind::Managed {
            return false;
        }
        user.role = role;
        user.modified_at = user.modified_at.max(now);
        true
    }

    /// Control plane: sets a user's status. False when there is no such user.
    pub(crate) fn set_status(&mut self, user_id: &str, status: &str, now: i64) -> bool {
        let Some(index) = self.user_index(user_id) else {
            return false;
        };
        let user = &mut self.users[index];
        user.status = Cow::Owned(status.to_owned());
        user.modified_at = user.modified_at.max(now);
        true
    }

    /// Control plane: sets what a user owns (changes [`Self::owned_items_total`]).
    pub(crate) fn set_owned_items(&mut self, user_id: &str, items: u64) -> bool {
        match self.user_index(user_id) {
            Some(index) if !self.users[index].removed => {
                self.users[index].owned_items = items;
                true
            }
            _ => false,
        }
    }

    /// Deletes the user with everything it owns (counted in [`Self::items_destroyed`]);
    /// a transfer still pending from it dies with it, and so do its group memberships.
    pub(crate) fn delete_user(&mut self, index: usize) {
        let user = &mut self.users[index];
        if user.removed {
            return;
        }
        user.removed = true;
        let destroyed = std::mem::take(&mut user.owned_items);
        self.items_destroyed = self.items_destroyed.saturating_add(destroyed);
        self.pending_transfers
            .retain(|transfer| transfer.from != index);
        self.memberships
            .retain(|membership| membership.user as usize != index);
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
        job_title: Cow::Borrowed(pick(rng, JOB_TITLES)),
        language: pick(rng, LANGUAGES),
        timezone: pick(rng, TIMEZONES),
        phone,
        owned_items: 0,
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
        job_title: Cow::Borrowed(""),
        language: "en",
        timezone: "America/Los_Angeles",
        phone: String::new(),
        owned_items: 0,
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

/// Most users own content; never-logged-in users own nothing, and so does a tenth of the
/// others (their work lives in folders other people own). Owning nothing means using no space.
fn assign_owned_items(rng: &mut StdRng, users: &mut [User], profiles: &[Profile]) {
    for (user, profile) in users.iter_mut().zip(profiles) {
        let owns = profile.activity != Activity::Never && !rng.random_bool(0.10);
        if owns {
            user.owned_items = rng.random_range(1..=1200);
        } else {
            user.owned_items = 0;
            user.space_used = 0;
        }
    }
}

/// A few managed groups; each managed user is in zero to three of them.
fn groups_and_memberships(
    rng: &mut StdRng,
    spec: &BoxTenantSpec,
    users: &[User],
    profiles: &[Profile],
) -> (Vec<Group>, Vec<Membership>) {
    let now = spec.now.timestamp();
    if profiles.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let count = (3 + profiles.len() / 500).min(GROUP_NAMES.len());
    let mut next_id = FIRST_GROUP_ID;
    let groups: Vec<Group> = GROUP_NAMES[..count]
        .iter()
        .map(|&name| {
            next_id += rng.random_range(1..=20);
            Group {
                id: next_id,
                name,
                created_at: rng.random_range(now - 3 * YEAR..=now - 30 * DAY),
            }
        })
        .collect();

    let mut memberships = Vec::new();
    let mut next_id = FIRST_MEMBERSHIP_ID;
    for (index, user) in users.iter().enumerate().take(profiles.len()) {
        let roll: f64 = rng.random();
        let joined = match roll {
            r if r < 0.30 => 0,
            r if r < 0.75 => 1,
            r if r < 0.95 => 2,
            _ => 3,
        };
        let mut picks = index::sample(rng, groups.len(), joined.min(groups.len())).into_vec();
        picks.sort_unstable();
        for group in picks {
            next_id += rng.random_range(1..=9);
            memberships.push(Membership {
                id: next_id,
                user: index as u32,
                group: group as u32,
                role: if rng.random_bool(0.05) {
                    GroupRole::Admin
                } else {
                    GroupRole::Member
                },
                created_at: rng.random_range(user.created_at.min(now)..=now),
            });
        }
    }
    (groups, memberships)
}

/// Recent activity in users' own streams: half the active users, plus the drive-only share
/// of the quiet ones (exact counts, as for the other shares).
fn own_stream_events(
    rng: &mut StdRng,
    spec: &BoxTenantSpec,
    profiles: &[Profile],
) -> Vec<UserEvent> {
    let now = spec.now.timestamp();
    let mut counts = vec![0u32; profiles.len()];
    let mut quiet = Vec::new();
    for (index, profile) in profiles.iter().enumerate() {
        if profile.activity == Activity::Active {
            if rng.random_bool(0.5) {
                counts[index] = rng.random_range(1..=5);
            }
        } else {
            quiet.push(index);
        }
    }
    let drive_only = share(quiet.len(), spec.drive_only_share).min(quiet.len());
    for pick in index::sample(rng, quiet.len(), drive_only) {
        counts[quiet[pick]] = rng.random_range(1..=3);
    }

    let mut events = Vec::new();
    for (user, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            events.push(UserEvent {
                at: rng.random_range(now - USER_STREAM_DAYS * DAY..=now - 60),
                serial: 0,
                user: user as u32,
                event_type: Cow::Borrowed(pick(rng, USER_EVENT_TYPES)),
            });
        }
    }
    events.sort_unstable_by_key(|event| (event.user, event.at));
    for (serial, event) in events.iter_mut().enumerate() {
        event.serial = serial as u32;
    }
    events
}
