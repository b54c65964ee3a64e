//! Injected failures: what to break, and the seeded dice that decide each request.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::hashing::{mix64, unit_interval};

/// Failures to inject. Ratios are shares of requests in `[0, 1]`; out-of-range values are
/// clamped. Missing JSON fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_ratio: f64,
    pub retry_after_secs: u64,
    /// Answered 500 with an `internal_server_error` ClientError.
    pub server_error_ratio: f64,
    /// The TCP connection is closed without any response.
    pub drop_connection_ratio: f64,
    /// A token answers 401 once it has been used for this many API requests (requests
    /// answered by another fault never reach the token check and do not count).
    pub token_lifetime_requests: Option<u64>,
    /// Share of users silently missing from `/2.0/users` listings (they still exist).
    pub roster_drop_ratio: f64,
    /// Share of successful `refresh_token` grants whose response is lost: the server has
    /// already rotated the refresh token (the old one is dead) when it closes the connection
    /// unanswered. This is Box's worst case for a client that does not persist the rotated
    /// token before anything else, or that retries with the old one.
    pub refresh_lost_response_ratio: f64,
    /// Milliseconds every `refresh_token` grant takes before the token is rotated, so tests
    /// can make concurrent refreshes overlap.
    pub refresh_delay_ms: u64,
    /// Share of content transfers (`PUT /2.0/users/{id}/folders/0`) that answer 200 before
    /// anything moved, as Box does when a transfer outlasts 10 minutes. The source keeps its
    /// items (so a delete is refused for owning content) until the transfer is due: after
    /// `transfer_completion_ms` and after `transfer_completion_requests` further API requests.
    /// With both at 0 it is due by the next request, so set at least one.
    pub transfer_early_return_ratio: f64,
    pub transfer_completion_ms: u64,
    pub transfer_completion_requests: u64,
    /// Share of successful user writes (update, delete, transfer) whose response is lost: the
    /// change is made, then the connection is closed unanswered. A retry meets the new state.
    pub write_lost_response_ratio: f64,
    /// Share of users whose group memberships cannot be read (403), decided by user id.
    pub memberships_forbidden_ratio: f64,
    /// Users (by id) whose group memberships cannot be read (403), whatever the ratio.
    pub memberships_forbidden_users: Vec<String>,
    pub seed: u64,
}

/// The outcome of the dice for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    DropConnection,
    ServerError,
    RateLimit { retry_after_secs: u64 },
}

pub(crate) struct FaultState {
    faults: Faults,
    dice: StdRng,
    /// Separate from `dice` so that refreshes do not shift the per-request fault sequence.
    refresh_dice: StdRng,
    /// Separate again, for the same reason: transfers and user writes.
    transfer_dice: StdRng,
    write_dice: StdRng,
}

fn ratio(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        let dice = StdRng::seed_from_u64(faults.seed);
        let refresh_dice = StdRng::seed_from_u64(mix64(faults.seed ^ 0x0007_e1f5));
        let transfer_dice = StdRng::seed_from_u64(mix64(faults.seed ^ 0x007a_05fe));
        let write_dice = StdRng::seed_from_u64(mix64(faults.seed ^ 0x0000_0317_e105));
        Self {
            faults,
            dice,
            refresh_dice,
            transfer_dice,
            write_dice,
        }
    }

    /// Reseeds too, so a run is reproducible from the moment the faults are set.
    pub(crate) fn set(&mut self, faults: Faults) {
        *self = Self::new(faults);
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// One roll per request, whatever the ratios, so the sequence of outcomes depends only
    /// on the seed and the order of requests.
    pub(crate) fn roll(&mut self) -> Option<Fault> {
        let roll: f64 = self.dice.random();
        let faults = &self.faults;
        let mut edge = ratio(faults.drop_connection_ratio);
        if roll < edge {
            return Some(Fault::DropConnection);
        }
        edge += ratio(faults.server_error_ratio);
        if roll < edge {
            return Some(Fault::ServerError);
        }
        edge += ratio(faults.rate_limit_ratio);
        if roll < edge {
            return Some(Fault::RateLimit {
                retry_after_secs: faults.retry_after_secs,
            });
        }
        None
    }

    /// Whether this successful refresh loses its response. One roll per successful refresh,
    /// whatever the ratio, so outcomes depend only on the seed and the order of refreshes.
    pub(crate) fn refresh_response_lost(&mut self) -> bool {
        let roll: f64 = self.refresh_dice.random();
        roll < ratio(self.faults.refresh_lost_response_ratio)
    }

    /// Whether this transfer returns before its items move. One roll per transfer.
    pub(crate) fn transfer_returns_early(&mut self) -> bool {
        let roll: f64 = self.transfer_dice.random();
        roll < ratio(self.faults.transfer_early_return_ratio)
    }

    /// Whether this successful user write loses its response. One roll per successful write.
    pub(crate) fn write_response_lost(&mut self) -> bool {
        let roll: f64 = self.write_dice.random();
        roll < ratio(self.faults.write_lost_response_ratio)
    }

    /// Whether the user's memberships answer 403: a function of the user id alone, so every
    /// read of one user agrees.
    pub(crate) fn memberships_forbidden(&self, user_id: u64) -> bool {
        let faults = &self.faults;
        let by_ratio = ratio(faults.memberships_forbidden_ratio);
        let salt = mix64(faults.seed ^ 0x0063_0b5e);
        (by_ratio > 0.0 && unit_interval(mix64(salt ^ user_id)) < by_ratio)
            || faults
                .memberships_forbidden_users
                .iter()
                .any(|id| id.trim() == user_id.to_string())
    }

    pub(crate) fn roster(&self) -> RosterDrop {
        RosterDrop {
            ratio: ratio(self.faults.roster_drop_ratio),
            salt: mix64(self.faults.seed ^ 0x0005_7e12),
        }
    }
}

/// Which users a listing leaves out. A function of the user id alone, so every page and
/// every paging method agree on the same cut-short roster.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RosterDrop {
    ratio: f64,
    salt: u64,
}

impl RosterDrop {
    pub(crate) fn hides(&self, user_id: u64) -> bool {
        self.ratio > 0.0 && unit_interval(mix64(self.salt ^ user_id)) < self.ratio
    }
}
