//! What the front door notes about each Box API request besides its endpoint: `force` on a
//! delete, an `As-User` header, and which user a write names; and the settling of transfers
//! that returned early, which waits for requests to arrive.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, StatusCode};

use super::access::has_as_user;
use crate::boxsim::faults::Fault;
use crate::boxsim::state::{Shared, lock, read, write};
use crate::boxsim::stats::{Endpoint, UserWrite};

pub(super) struct Observed {
    pub endpoint: Endpoint,
    force: bool,
    as_user: bool,
    /// The `{id}` of a write's path.
    write_target: Option<String>,
}

/// Any value but `false`/`0`/empty counts as sending `force`: the point is to catch a client
/// that sends it at all.
fn sends_force(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, "true"))))
        .filter(|(name, _)| *name == "force")
        .any(|(_, value)| {
            let value = value.trim();
            !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
        })
}

pub(super) fn observe(request: &Request) -> Observed {
    let path = request.uri().path();
    let endpoint = Endpoint::of_request(request.method(), path);
    let write_target = endpoint.write_kind().map(|_| {
        path.trim_start_matches("/2.0/users/")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    Observed {
        endpoint,
        force: request.method() == Method::DELETE
            && endpoint == Endpoint::UserDelete
            && sends_force(request.uri().query()),
        as_user: has_as_user(request.headers()),
        write_target,
    }
}

/// Completes early-returned transfers that are due, counting this request towards them.
/// The tenant is write-locked only while a transfer is pending.
pub(super) fn settle_transfers(shared: &Shared) {
    if !read(&shared.tenant).has_pending_transfers() {
        return;
    }
    write(&shared.tenant).settle_transfers(Instant::now(), true);
}

pub(super) fn record(
    shared: &Shared,
    observed: Observed,
    fault: Option<Fault>,
    status: StatusCode,
) {
    {
        let mut stats = lock(&shared.stats);
        stats.record(observed.endpoint, fault, status);
        if observed.force {
            stats.force_deletes += 1;
        }
        if observed.as_user {
            stats.as_user_requests += 1;
        }
    }
    if let (Some(kind), Some(user_id)) = (observed.endpoint.write_kind(), observed.write_target) {
        lock(&shared.writes).push(UserWrite {
            kind,
            user_id,
            status: (fault != Some(Fault::DropConnection)).then_some(status.as_u16()),
            force: observed.force,
        });
    }
}
