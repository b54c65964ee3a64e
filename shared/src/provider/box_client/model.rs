//! Box's JSON, read leniently: unknown fields are ignored and a field of an unexpected
//! shape becomes `None` instead of failing a whole page (one odd user must not stop a
//! roster sync). Only identifiers are required.

use chrono::{DateTime, FixedOffset};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The `fields=` list for user listings. With `fields`, Box returns only the mini
/// representation plus what is listed, so everything the sync reads must be here.
pub const BOX_USER_FIELDS: &str = "id,type,name,login,status,role,created_at,modified_at,\
space_amount,space_used,max_upload_size,is_platform_access_only,enterprise,job_title,\
language,timezone,is_sync_enabled,is_exempt_from_device_limits,notification_email";

/// A Box user (`User--Full`, as much of it as [`BOX_USER_FIELDS`] asks for).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxUser {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub login: Option<String>,
    /// `active`, `inactive`, `cannot_delete_edit`, `cannot_delete_edit_upload`, …
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<String>,
    /// `admin`, `coadmin`, `user`, …
    #[serde(default, deserialize_with = "lenient")]
    pub role: Option<String>,
    /// Box sends local offsets, e.g. `2012-12-12T10:53:43-08:00`.
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "lenient")]
    pub modified_at: Option<DateTime<FixedOffset>>,
    /// Bytes; `-1` means unlimited.
    #[serde(default, deserialize_with = "lenient")]
    pub space_amount: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub space_used: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub max_upload_size: Option<i64>,
    /// True for App Users (and not a licensed person).
    #[serde(default, deserialize_with = "lenient")]
    pub is_platform_access_only: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_sync_enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_exempt_from_device_limits: Option<bool>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub enterprise: Option<BoxEnterprise>,
    #[serde(default, deserialize_with = "lenient")]
    pub job_title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub timezone: Option<String>,
    /// An object, `null`, or (seen live) `[]`, which reads as `None`.
    #[serde(default, deserialize_with = "lenient_object")]
    pub notification_email: Option<BoxNotificationEmail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxEnterprise {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxNotificationEmail {
    #[serde(default, deserialize_with = "lenient")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_confirmed: Option<bool>,
}

/// One page of `GET /2.0/users` in marker mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxUserPage {
    pub users: Vec<BoxUser>,
    /// `None` when the listing is complete (Box sends `null` or `""`).
    pub next_marker: Option<String>,
}

/// The user the token acts as (for CCG: the app's service account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxCurrentUser {
    pub id: String,
    pub login: String,
    pub name: String,
    pub role: Option<String>,
    pub enterprise_id: Option<String>,
    pub enterprise_name: Option<String>,
}

/// An enterprise event (`admin_logs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxEvent {
    /// Unique; use it to de-duplicate.
    #[serde(deserialize_with = "id_string")]
    pub event_id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub created_at: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub created_by: Option<BoxEventUser>,
}

/// `created_by` of an event (a `User--Mini`; id `2` is Box's anonymous user).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxEventUser {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
}

/// One page of `GET /2.0/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxEventPage {
    pub events: Vec<BoxEvent>,
    /// Always a string, exactly as Box sent it (positions exceed 2^53).
    pub next_stream_position: Option<String>,
    pub chunk_size: u64,
}

/// A `User--Mini` (`id`, `name`, `login`), as Box embeds users in other objects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BoxUserMini {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub login: Option<String>,
}

/// The folder a content transfer (`PUT /2.0/users/{id}/folders/0`) created in the
/// destination user's root: `"<login> - <name>'s Files and Folders"`. Its 200 does not
/// prove the transfer finished (Box goes on in the background after 10 minutes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TransferredFolder {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// The destination user.
    #[serde(default, deserialize_with = "lenient_object")]
    pub owned_by: Option<BoxUserMini>,
}

// ---- wire shapes (private) -------------------------------------------------------------

/// One page of `GET /2.0/users/{id}/memberships` (offset paging). Each entry must name its
/// group: a membership that cannot be identified fails the page, because an unreadable
/// membership might be in an excluded group.
#[derive(Debug, Deserialize)]
pub(super) struct MembershipsResponse {
    #[serde(default)]
    pub entries: Vec<MembershipEntry>,
    #[serde(default, deserialize_with = "lenient")]
    pub total_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MembershipEntry {
    pub group: GroupRef,
}

#[derive(Debug, Deserialize)]
pub(super) struct GroupRef {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct UsersResponse {
    #[serde(default)]
    pub entries: Vec<BoxUser>,
    #[serde(default, deserialize_with = "lenient")]
    pub next_marker: Option<String>,
}

/// For the App + Enterprise Access probe: only what it needs, so a strange user elsewhere
/// in the record cannot fail it.
#[derive(Debug, Deserialize)]
pub(super) struct ProbeUsersResponse {
    #[serde(default)]
    pub entries: Vec<ProbeUser>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ProbeUser {
    #[serde(default, deserialize_with = "lenient")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub is_platform_access_only: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MeResponse {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub enterprise: Option<BoxEnterprise>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsResponse {
    #[serde(default)]
    pub entries: Vec<BoxEvent>,
    #[serde(default)]
    pub next_stream_position: Option<StreamPosition>,
    #[serde(default, deserialize_with = "lenient")]
    pub chunk_size: Option<u64>,
}

/// Box's `ClientError` (most 4xx). `code` is an open set (`rate_limit_exceeded` vs
/// `too_many_requests`), so it stays a string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ClientError {
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub request_id: Option<String>,
}

/// The token endpoint's `OAuth2Error`.
#[derive(Debug, Deserialize)]
pub(super) struct OAuth2Error {
    pub error: String,
    #[serde(default, deserialize_with = "lenient")]
    pub error_description: Option<String>,
}

/// A stream position read from a JSON string or integer without passing through `f64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamPosition(pub String);

impl<'de> Deserialize<'de> for StreamPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor).map(StreamPosition)
    }
}

// ---- lenient readers -------------------------------------------------------------------

/// Reads `T` if the value has the right shape, `None` otherwise (including `null`, `[]`).
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// Like [`lenient`], but only a JSON object counts: serde would otherwise read a struct
/// from an array (`[]` would become an object with every field empty).
fn lenient_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match serde_json::Value::deserialize(deserializer)? {
        value @ serde_json::Value::Object(_) => Ok(T::deserialize(value).ok()),
        _ => Ok(None),
    }
}

/// Identifiers are strings in Box's schema; accept integers too, exactly.
fn id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(IdVisitor)
}

/// Accepts strings and integers. Floats are refused: an identifier or position that went
/// through `f64` may have lost digits, and a silently wrong position would skip events.
struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_fields_are_a_clean_list() {
        let fields: Vec<&str> = BOX_USER_FIELDS.split(',').collect();
        assert_eq!(fields.len(), 19);
        assert!(
            fields
                .iter()
                .all(|f| !f.is_empty() && !f.contains(char::is_whitespace))
        );
        assert!(
            fields.contains(&"is_platform_access_only") && fields.contains(&"notification_email")
        );
    }

    #[test]
    fn user_reads_full_record_with_offsets() {
        let user: BoxUser = serde_json::from_str(
            r#"{"type":"user","id":"11446498","name":"Aaron Levie","login":"ceo@example.com",
                "created_at":"2012-12-12T10:53:43-08:00","modified_at":"2012-12-12T10:53:43-08:00",
                "language":"en","timezone":"Africa/Bujumbura","space_amount":11345156112,
                "space_used":1237009912,"max_upload_size":2147483648,"status":"active",
                "job_title":"CEO","role":"admin","is_sync_enabled":true,
                "is_exempt_from_device_limits":false,"is_platform_access_only":false,
                "enterprise":{"id":"11446498","type":"enterprise","name":"Acme Inc."},
                "notification_email":{"email":"notifications@example.com","is_confirmed":true},
                "my_tags":["important"],"hostname":"https://example.app.box.com/"}"#,
        )
        .unwrap();
        assert_eq!(user.id, "11446498");
        assert_eq!(user.role.as_deref(), Some("admin"));
        assert_eq!(
            user.created_at.unwrap().to_rfc3339(),
            "2012-12-12T10:53:43-08:00"
        );
        assert_eq!(user.space_amount, Some(11_345_156_112));
        assert_eq!(user.enterprise.unwrap().name.as_deref(), Some("Acme Inc."));
        assert_eq!(
            user.notification_email.unwrap().email.as_deref(),
            Some("notifications@example.com")
        );
    }

    #[test]
    fn user_tolerates_odd_shapes() {
        let user: BoxUser = serde_json::from_str(
            r#"{"id":42,"notification_email":[],"created_at":"yesterday","space_amount":"lots",
                "enterprise":null,"role":null}"#,
        )
        .unwrap();
        assert_eq!(user.id, "42");
        assert_eq!(user.notification_email, None);
        assert_eq!(user.created_at, None);
        assert_eq!(user.space_amount, None);
        assert_eq!(user.enterprise, None);
        assert_eq!(user.role, None);
        assert_eq!(user.login, None);
    }

    #[test]
    fn user_needs_an_id() {
        assert!(serde_json::from_str::<BoxUser>(r#"{"login":"a@b.c"}"#).is_err());
        assert!(serde_json::from_str::<BoxUser>(r#"{"id":1.5}"#).is_err());
    }

    #[test]
    fn stream_position_string_or_integer_exactly() {
        let page: EventsResponse = serde_json::from_str(
            r#"{"chunk_size":0,"next_stream_position":1152922976252290886,"entries":[]}"#,
        )
        .unwrap();
        assert_eq!(
            page.next_stream_position,
            Some(StreamPosition("1152922976252290886".into()))
        );
        let page: EventsResponse =
            serde_json::from_str(r#"{"next_stream_position":"18446744073709551615","entries":[]}"#)
                .unwrap();
        assert_eq!(
            page.next_stream_position,
            Some(StreamPosition("18446744073709551615".into()))
        );
        let page: EventsResponse =
            serde_json::from_str(r#"{"next_stream_position":null,"entries":[]}"#).unwrap();
        assert_eq!(page.next_stream_position, None);
        assert!(
            serde_json::from_str::<EventsResponse>(r#"{"next_stream_position":1.5e20}"#).is_err()
        );
    }

    #[test]
    fn transferred_folder_reads_the_destination() {
        let folder: TransferredFolder = serde_json::from_str(
            r#"{"type":"folder","id":"1234","name":"a@example.com - A's Files and Folders",
                "owned_by":{"type":"user","id":77,"name":"B","login":"b@example.com"},
                "parent":{"type":"folder","id":"0"}}"#,
        )
        .unwrap();
        assert_eq!(folder.id, "1234");
        assert_eq!(folder.owned_by.unwrap().id, "77");
        assert!(serde_json::from_str::<TransferredFolder>(r#"{"name":"x"}"#).is_err());
    }

    #[test]
    fn memberships_need_a_group_id_on_every_entry() {
        let page: MembershipsResponse = serde_json::from_str(
            r#"{"total_count":2,"limit":100,"offset":0,"entries":[
                {"type":"group_membership","id":"1","group":{"type":"group","id":"10"}},
                {"type":"group_membership","id":"2","group":{"type":"group","id":11}}]}"#,
        )
        .unwrap();
        let ids: Vec<&str> = page.entries.iter().map(|m| m.group.id.as_str()).collect();
        assert_eq!(ids, ["10", "11"]);
        assert_eq!(page.total_count, Some(2));
        assert!(
            serde_json::from_str::<MembershipsResponse>(
                r#"{"entries":[{"type":"group_membership","id":"1","group":null}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn event_reads_login() {
        let event: BoxEvent = serde_json::from_str(
            r#"{"type":"event","event_id":"f82c3ba03e41f7e8a7608363cc6c0390183c3f83",
                "event_type":"LOGIN","created_at":"2024-01-02T03:04:05-08:00",
                "created_by":{"type":"user","id":"33","name":"A","login":"a@example.com"},
                "ip_address":"10.1.2.3","additional_details":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(event.event_type.as_deref(), Some("LOGIN"));
        assert_eq!(event.created_by.unwrap().id, "33");
    }
}
