//! A user's own event stream (`GET /2.0/events?stream_type=all`), read with `As-User`: Box
//! Drive, mobile and web activity, which never shows as a LOGIN in the enterprise log.
//!
//! Positions use the same `(seconds << 32) | serial` scheme as the enterprise log, over a
//! separate serial space. `event_type`, `created_after` and `created_before` are ignored, as
//! Box ignores them outside `admin_logs`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::events::Position;
use crate::boxsim::errors::BoxError;
use crate::boxsim::hashing::mix64;
use crate::boxsim::render::{UserMini, box_time};
use crate::boxsim::state::{Shared, read};
use crate::boxsim::tenant::{User, UserEvent};

/// Keeps user-stream event ids apart from the enterprise log's.
const EVENT_SALT: u64 = 0x05e1_f57e_a000_0001;

fn render(event: &UserEvent, user: &User) -> Value {
    let hash = mix64(EVENT_SALT ^ u64::from(event.serial));
    let tail = mix64(hash);
    let created_at = box_time(event.at);
    json!({
        "type": "event",
        "event_id": format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hash >> 32,
            (hash >> 16) & 0xffff,
            hash & 0xffff,
            tail >> 48,
            tail & 0xffff_ffff_ffff
        ),
        "event_type": event.event_type,
        "created_at": created_at,
        "recorded_at": created_at,
        "created_by": UserMini::of(user),
        "session_id": format!("{:x}", tail >> 8),
        "source": {
            "type": "file",
            "id": (hash >> 24).to_string(),
            "name": format!("Document {}.docx", hash % 10_000),
        },
    })
}

pub(super) fn page(
    shared: &Shared,
    user: usize,
    position: Position,
    limit: usize,
    echo: String,
) -> Result<Response, BoxError> {
    let tenant = read(&shared.tenant);
    let events = tenant.user_events_of(user);
    let start = match position {
        Position::Now => {
            let latest = events.last().map_or(0, UserEvent::position);
            return Ok(body(Vec::new(), latest.to_string()));
        }
        Position::Start => 0,
        Position::After(seen) => events.partition_point(|event| event.position() <= seen),
    };
    let chunk = &events[start..events.len().min(start.saturating_add(limit))];
    let next = chunk
        .last()
        .map_or(echo, |event| event.position().to_string());
    let owner = &tenant.users[user];
    let entries = chunk.iter().map(|event| render(event, owner)).collect();
    Ok(body(entries, next))
}

fn body(entries: Vec<Value>, next_stream_position: String) -> Response {
    Json(json!({
        "chunk_size": entries.len(),
        "next_stream_position": next_stream_position,
        "entries": entries,
    }))
    .into_response()
}
