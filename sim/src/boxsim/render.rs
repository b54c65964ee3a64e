//! JSON shapes of Box objects, rendered on demand from the compact tenant.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::hashing::mix64;
use super::tenant::{Enterprise, LoginEvent, Role, User};

/// Box renders times in Pacific time with an explicit offset; a fixed -08:00 keeps clients
/// honest about offsets without needing a time-zone database.
const BOX_OFFSET: FixedOffset = match FixedOffset::west_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("-08:00 is a valid offset"),
};

pub(crate) fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

pub(crate) fn box_time(secs: i64) -> String {
    utc(secs)
        .with_timezone(&BOX_OFFSET)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

const MINI_FIELDS: &[&str] = &["type", "id", "name", "login"];

/// What Box returns without `fields=`.
const STANDARD_FIELDS: &[&str] = &[
    "type",
    "id",
    "name",
    "login",
    "created_at",
    "modified_at",
    "language",
    "timezone",
    "space_amount",
    "space_used",
    "max_upload_size",
    "status",
    "job_title",
    "phone",
    "address",
    "avatar_url",
    "notification_email",
];

/// Only returned when asked for by name.
const FULL_ONLY_FIELDS: &[&str] = &[
    "role",
    "enterprise",
    "is_sync_enabled",
    "is_exempt_from_device_limits",
    "is_exempt_from_login_verification",
    "is_external_collab_restricted",
    "can_see_managed_users",
    "is_platform_access_only",
    "external_app_user_id",
    "hostname",
    "my_tags",
    "tracking_codes",
];

/// Box's `fields` rule: naming any field drops the standard set down to the mini fields
/// plus the ones named.
pub(crate) enum FieldSelection {
    Standard,
    Requested(Vec<String>),
    /// Every field, for test oracles.
    All,
}

impl FieldSelection {
    pub(crate) fn from_query(fields: Option<&str>) -> Self {
        let requested: Vec<String> = fields
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|field| !field.is_empty())
            .map(str::to_owned)
            .collect();
        if requested.is_empty() {
            Self::Standard
        } else {
            Self::Requested(requested)
        }
    }
}

pub(crate) fn user(user: &User, enterprise: &Enterprise, selection: &FieldSelection) -> Value {
    let mut object = Map::new();
    let mut add = |name: &str| {
        if let Some(value) = user_field(user, enterprise, name) {
            object.insert(name.to_owned(), value);
        }
    };
    match selection {
        FieldSelection::Standard => STANDARD_FIELDS.iter().copied().for_each(&mut add),
        FieldSelection::Requested(names) => {
            MINI_FIELDS.iter().copied().for_each(&mut add);
            names.iter().map(String::as_str).for_each(&mut add);
        }
        FieldSelection::All => STANDARD_FIELDS
            .iter()
            .chain(FULL_ONLY_FIELDS)
            .copied()
            .for_each(&mut add),
    }
    Value::Object(object)
}

/// Unknown field names give `None`: Box ignores them.
fn user_field(user: &User, enterprise: &Enterprise, name: &str) -> Option<Value> {
    let is_admin_like = user.role != Role::User;
    Some(match name {
        "type" => json!("user"),
        "id" => json!(user.id.to_string()),
        "name" => json!(user.name),
        "login" => json!(user.login),
        "created_at" => json!(box_time(user.created_at)),
        "modified_at" => json!(box_time(user.modified_at)),
        "language" => json!(user.language),
        "timezone" => json!(user.timezone),
        "space_amount" => json!(user.space_amount),
        "space_used" => json!(user.space_used),
        "max_upload_size" => json!(user.max_upload_size),
        "status" => json!(user.status),
        "job_title" => json!(user.job_title),
        "phone" => json!(user.phone),
        "address" => json!(""),
        "avatar_url" => json!(format!("https://app.box.com/api/avatar/large/{}", user.id)),
        "notification_email" => Value::Null,
        "role" => json!(user.role.as_str()),
        "enterprise" => json!({
            "id": enterprise.id,
            "type": "enterprise",
            "name": enterprise.name,
        }),
        "is_sync_enabled" => json!(user.is_sync_enabled),
        "is_exempt_from_device_limits" => json!(user.is_exempt_from_device_limits),
        "is_exempt_from_login_verification" => json!(false),
        "is_external_collab_restricted" => json!(false),
        "can_see_managed_users" => json!(is_admin_like),
        "is_platform_access_only" => json!(user.is_platform_access_only()),
        "external_app_user_id" => Value::Null,
        "hostname" => json!("https://app.box.com/"),
        "my_tags" => json!([]),
        "tracking_codes" => json!([]),
        _ => return None,
    })
}

/// `User--Mini`, as in an event's `created_by`.
#[derive(Serialize)]
pub(crate) struct UserMini<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    name: &'a str,
    login: &'a str,
}

impl<'a> UserMini<'a> {
    pub(crate) fn of(user: &'a User) -> Self {
        Self {
            kind: "user",
            id: user.id.to_string(),
            name: &user.name,
            login: &user.login,
        }
    }
}

/// An enterprise event. Typed rather than a `Value`: event pages are the bulk of a
/// benchmark's traffic (a million events is two thousand pages).
#[derive(Serialize)]
pub(crate) struct EventJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event_id: String,
    event_type: &'static str,
    created_at: String,
    recorded_at: String,
    created_by: UserMini<'a>,
    action_by: Option<UserMini<'a>>,
    source: Option<UserMini<'a>>,
    session_id: Option<String>,
    ip_address: String,
    additional_details: Option<Value>,
}

pub(crate) fn login_event<'a>(event: &LoginEvent, user: &'a User, salt: u64) -> EventJson<'a> {
    let hash = mix64(salt ^ u64::from(event.serial));
    let created_at = box_time(event.at);
    EventJson {
        kind: "event",
        event_id: event_id(hash),
        event_type: "LOGIN",
        recorded_at: created_at.clone(),
        created_at,
        created_by: UserMini::of(user),
        action_by: None,
        source: None,
        session_id: None,
        ip_address: format!(
            "10.{}.{}.{}",
            (hash >> 8) & 0xff,
            (hash >> 16) & 0xff,
            (hash >> 24) & 0xff
        ),
        additional_details: None,
    }
}

/// UUID-shaped. The first 64 bits are a bijective hash of the serial, so ids never repeat.
fn event_id(hash: u64) -> String {
    let tail = mix64(hash);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hash >> 32,
        (hash >> 16) & 0xffff,
        hash & 0xffff,
        tail >> 48,
        tail & 0xffff_ffff_ffff
    )
}
