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
        Self {
            faults,
            dice,
            refresh_dice,
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
