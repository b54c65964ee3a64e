//! The reads that re-verify an account right before reclamation acts on it (design §8):
//! the user as Box has it now, their groups, their own recent events (read with `As-User`,
//! so Box Drive and mobile users who never "log in" are seen), and the LOGIN events of the
//! re-verify window. Plus probes of what the app was granted that reclamation needs.
//!
//! None of these ever answers "nothing" for "could not tell": a 403 on a user's groups or
//! on their own stream is an error, never "no groups" or "no activity".

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::model::{BOX_USER_FIELDS, BoxUser, ClientError, EventsResponse, MembershipsResponse};
use super::writes::{ApiRequest, box_user_id, decode, user_path};
use super::{BoxClient, PROVIDER, response_error};
use crate::provider::ProviderError;
use crate::provider::http::HttpResponse;

/// A user id no Box user has. The capability probes address it, so that a request Box lets
/// through its permission checks then stops at "not found" and can change nothing.
const ABSENT_USER_ID: &str = "0";

/// Whether Box let a probe through its permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Granted,
    /// Box answered 403 with this code (`insufficient_scope`: the app lacks the scope;
    /// `access_denied_insufficient_permissions`: the acting user lacks the rights, or the
    /// app lacks "Perform Actions as Users").
    Denied {
        code: String,
        message: String,
    },
}

impl Capability {
    pub fn is_granted(&self) -> bool {
        matches!(self, Capability::Granted)
    }
}

/// What reclamation needs beyond what the sync needs, as probed by
/// [`BoxClient::granted_capabilities`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimCapabilities {
    /// Update and delete users: the "Manage users" scope and an admin-like caller
    /// (probe: `PUT /2.0/users/0` with an empty body).
    pub manage_users: Capability,
    /// Transfer content: "Read and write all files and folders" (`root_readwrite`)
    /// (probe: `PUT /2.0/users/0/folders/0` to user 0). Needed for delete jobs only.
    pub transfer_content: Capability,
    /// Read a user's groups: `manage_groups` (probe: `GET /2.0/users/0/memberships`).
    pub read_groups: Capability,
    /// Read a user's own events: "Perform Actions as Users" and an admin-like caller
    /// (probe: `GET /2.0/users/me` with `As-User: 0`).
    pub as_user: Capability,
}

impl ReclaimCapabilities {
    /// One sentence per missing capability, for an admin to act on; empty when everything
    /// a job needs is granted. `transfer` is whether the job transfers content (delete).
    pub fn missing(&self, transfer: bool) -> Vec<String> {
        let mut needed = vec![
            (
                &self.manage_users,
                "update and delete users (the \"Manage users\" scope, and an admin or \
                 co-admin to act as)",
            ),
            (
                &self.read_groups,
                "read group memberships (the \"Manage groups\" scope), needed to honour \
                 group exclusions",
            ),
            (
                &self.as_user,
                "read each user's own events (the \"Perform Actions as Users\" setting), \
                 needed to see Box Drive and mobile activity",
            ),
        ];
        if transfer {
            needed.push((
                &self.transfer_content,
                "transfer content before a delete (the \"Read and write all files and \
                 folders\" scope)",
            ));
        }
        needed
            .into_iter()
            .filter_map(|(capability, what)| match capability {
                Capability::Granted => None,
                Capability::Denied { code, .. } => Some(format!(
                    "the Box app cannot {what}: Box answered 403 {code}"
                )),
            })
            .collect()
    }
}

/// A probe's answer: only a 403 denies; 404 (the absent user) or any success means the
/// request passed the permission checks. Anything else is an error, not a guess.
fn probe_outcome(response: &HttpResponse, path: &str) -> Result<Capability, ProviderError> {
    let status = response.status;
    if status == StatusCode::FORBIDDEN {
        let error = serde_json::from_slice::<ClientError>(&response.body).unwrap_or_default();
        Ok(Capability::Denied {
            code: error.code.unwrap_or_else(|| "http_403".to_owned()),
            message: error.message.unwrap_or_default(),
        })
    } else if status.is_success() || status == StatusCode::NOT_FOUND {
        Ok(Capability::Granted)
    } else {
        Err(response_error(response, path))
    }
}

/// The time of an event in a user's own stream; an event without one is an error, since
/// it might be recent.
fn event_time(
    created_at: Option<DateTime<chrono::FixedOffset>>,
) -> Result<DateTime<Utc>, ProviderError> {
    created_at
        .map(|at| at.to_utc())
        .ok_or_else(|| ProviderError::Malformed {
            provider: PROVIDER,
            detail: "an event without a readable created_at in a user's stream".to_owned(),
        })
}

/// The next position after a non-empty events page; a missing or unchanged one would
/// make paging skip events or never end.
fn next_position(
    page_position: Option<String>,
    current: Option<&str>,
) -> Result<String, ProviderError> {
    match page_position.filter(|p| !p.is_empty()) {
        Some(next) if Some(next.as_str()) != current => Ok(next),
        _ => Err(ProviderError::Malformed {
            provider: PROVIDER,
            detail: "an events page that does not advance the stream position".to_owned(),
        }),
    }
}

/// `at` rounded up to a whole second (Box reads event windows at whole seconds).
fn ceil_to_second(at: DateTime<Utc>) -> DateTime<Utc> {
    if at.timestamp_subsec_nanos() == 0 {
        at
    } else {
        DateTime::from_timestamp(at.timestamp().saturating_add(1), 0).unwrap_or(at)
    }
}

impl BoxClient {
    /// The user as Box has it now, with every field the sync reads ([`BOX_USER_FIELDS`]);
    /// `None` when Box answers 404 (deleted, or out of the app's reach).
    #[tracing::instrument(name = "box.get_user", skip_all, fields(user_id = %user_id))]
    pub async fn get_user(&self, user_id: &str) -> Result<Option<BoxUser>, ProviderError> {
        let request = ApiRequest::new("users.get", Method::GET, user_path(user_id)?)
            .query("fields", BOX_USER_FIELDS);
        let response = self.send_api(&request).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status.is_success() {
            return Err(response_error(&response, request.path()));
        }
        let user: BoxUser = decode(&response, request.path())?;
        if user.id != user_id {
            return Err(ProviderError::Malformed {
                provider: PROVIDER,
                detail: format!("{} answered another user", request.path()),
            });
        }
        Ok(Some(user))
    }

    /// The ids of every group the user is in (all pages of
    /// `GET /2.0/users/{id}/memberships`), in Box's order. A 403 (the app lacks
    /// `manage_groups`, or Box will not show this user's groups) is an error: the caller
    /// must skip the account, never read it as "in no group".
    #[tracing::instrument(name = "box.user_group_ids", skip_all, fields(user_id = %user_id))]
    pub async fn user_group_ids(&self, user_id: &str) -> Result<Vec<String>, ProviderError> {
        let path = format!("{}/memberships", user_path(user_id)?);
        let limit = self.config.page_size_memberships.max(1);
        let mut seen = BTreeSet::new();
        let mut groups = Vec::new();
        let mut offset: u64 = 0;
        loop {
            let request = ApiRequest::new("users.memberships", Method::GET, path.clone())
                .query("limit", limit.to_string())
                .query("offset", offset.to_string());
            let response = self.send_api(&request).await?;
            if !response.status.is_success() {
                return Err(response_error(&response, &path));
            }
            let page: MembershipsResponse = decode(&response, &path)?;
            if page.entries.is_empty() {
                break;
            }
            // Advance by what came back, not by `limit`: a short page must not skip any.
            offset += u64::try_from(page.entries.len()).unwrap_or(u64::MAX);
            for membership in page.entries {
                if seen.insert(membership.group.id.clone()) {
                    groups.push(membership.group.id);
                }
            }
            if page.total_count.is_some_and(|total| offset >= total) {
                break;
            }
        }
        tracing::debug!(groups = groups.len(), "box user memberships");
        Ok(groups)
    }

    /// The user's own activity at or after `since`: their event stream
    /// (`GET /2.0/events?stream_type=all` with `As-User`), which shows Box Drive, mobile
    /// and web use that never appears as a LOGIN.
    ///
    /// `Some(t)`, `t >= since`, when there is any: the latest event time on the first page
    /// that has one (reading stops there, since one event proves activity). Every event in
    /// the stream counts, whoever caused it. `None` when the stream (Box keeps about 21
    /// days of it) holds nothing at or after `since`. A 403 (the user became an admin or
    /// co-admin, or the app lacks "Perform Actions as Users") is an error, never "no
    /// activity".
    #[tracing::instrument(name = "box.user_recent_activity", skip_all, fields(user_id = %user_id))]
    pub async fn user_recent_activity(
        &self,
        user_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ProviderError> {
        let user_id = box_user_id(user_id)?;
        let mut position = "0".to_owned();
        let mut pages = 0u32;
        loop {
            let request =
                ApiRequest::new("events.user_stream", Method::GET, "/2.0/events".to_owned())
                    .query("stream_type", "all")
                    .query("stream_position", position.clone())
                    .query("limit", self.config.page_size_events.max(1).to_string())
                    .acting_as(user_id);
            let response = self.send_api(&request).await?;
            if !response.status.is_success() {
                return Err(response_error(&response, request.path()));
            }
            let page: EventsResponse = decode(&response, request.path())?;
            pages += 1;
            if page.entries.is_empty() {
                tracing::debug!(pages, "no recent activity in the user's stream");
                return Ok(None);
            }
            let mut latest: Option<DateTime<Utc>> = None;
            for event in &page.entries {
                let at = event_time(event.created_at)?;
                if at >= since && latest.is_none_or(|seen| at > seen) {
                    latest = Some(at);
                }
            }
            if latest.is_some() {
                tracing::debug!(pages, "recent activity in the user's stream");
                return Ok(latest);
            }
            position = next_position(
                page.next_stream_position.map(|p| p.0),
                Some(position.as_str()),
            )?;
        }
    }

    /// The latest LOGIN per user id in `[since, until]` of the enterprise log, read in one
    /// pass (the re-verify window: the coverage high-water mark minus an overlap, up to
    /// now). `until` is rounded up to a whole second so that a login in its last second is
    /// not missed. A LOGIN without a readable time counts as one at `since` (Box only
    /// returns events inside the window).
    #[tracing::instrument(name = "box.login_events_since", skip_all)]
    pub async fn login_events_since(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>, ProviderError> {
        let until = ceil_to_second(until);
        let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut position: Option<String> = None;
        loop {
            let page = self
                .login_events_page(since, until, position.as_deref())
                .await?;
            if page.events.is_empty() {
                tracing::debug!(users = latest.len(), "box logins in the re-verify window");
                return Ok(latest);
            }
            for event in page.events {
                let Some(user) = event.created_by else {
                    continue;
                };
                let at = event.created_at.map_or(since, |at| at.to_utc());
                latest
                    .entry(user.id)
                    .and_modify(|seen| *seen = (*seen).max(at))
                    .or_insert(at);
            }
            position = Some(next_position(
                page.next_stream_position,
                position.as_deref(),
            )?);
        }
    }

    /// Probes what reclamation needs beyond the sync, so a plan can refuse early with a
    /// clear message ([`ReclaimCapabilities::missing`]). Box has no endpoint that lists an
    /// app's scopes, so each probe is a request that Box checks for permission first and
    /// that then cannot find its target, user `0`: the two write probes can change
    /// nothing. They are still requests to write endpoints, and the simulator records them
    /// as user writes to `0`. Only a 403 denies (see [`Capability`]).
    #[tracing::instrument(name = "box.granted_capabilities", skip_all)]
    pub async fn granted_capabilities(&self) -> Result<ReclaimCapabilities, ProviderError> {
        let user_path = user_path(ABSENT_USER_ID)?;
        let manage_users =
            ApiRequest::new("probe.manage_users", Method::PUT, user_path.clone()).json(json!({}));
        let transfer = ApiRequest::new(
            "probe.transfer",
            Method::PUT,
            format!("{user_path}/folders/0"),
        )
        .json(json!({ "owned_by": { "id": ABSENT_USER_ID } }));
        let groups = ApiRequest::new(
            "probe.memberships",
            Method::GET,
            format!("{user_path}/memberships"),
        )
        .query("limit", "1");
        let as_user = ApiRequest::new("probe.as_user", Method::GET, "/2.0/users/me".to_owned())
            .query("fields", "id")
            .acting_as(ABSENT_USER_ID);

        let capabilities = ReclaimCapabilities {
            manage_users: self.probe(&manage_users).await?,
            transfer_content: self.probe(&transfer).await?,
            read_groups: self.probe(&groups).await?,
            as_user: self.probe(&as_user).await?,
        };
        tracing::debug!(?capabilities, "box reclaim capabilities");
        Ok(capabilities)
    }

    async fn probe(&self, request: &ApiRequest<'_>) -> Result<Capability, ProviderError> {
        let response = self.send_api(request).await?;
        probe_outcome(&response, request.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: serde_json::Value) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    #[test]
    fn only_a_403_denies_a_probe() {
        let denied = probe_outcome(
            &response(403, json!({"code": "insufficient_scope", "message": "no"})),
            "/2.0/users/0",
        )
        .unwrap();
        assert_eq!(
            denied,
            Capability::Denied {
                code: "insufficient_scope".into(),
                message: "no".into()
            }
        );
        for granted in [200, 204, 404] {
            assert!(
                probe_outcome(&response(granted, json!({})), "/x")
                    .unwrap()
                    .is_granted()
            );
        }
        assert!(matches!(
            probe_outcome(&response(400, json!({"code": "bad_request"})), "/x"),
            Err(ProviderError::Rejected { status: 400, .. })
        ));
    }

    #[test]
    fn missing_capabilities_read_as_sentences_and_transfer_only_for_deletes() {
        let denied = || Capability::Denied {
            code: "insufficient_scope".into(),
            message: String::new(),
        };
        let capabilities = ReclaimCapabilities {
            manage_users: Capability::Granted,
            transfer_content: denied(),
            read_groups: Capability::Granted,
            as_user: Capability::Granted,
        };
        assert!(capabilities.missing(false).is_empty());
        let missing = capabilities.missing(true);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("transfer content"), "{}", missing[0]);
        assert!(missing[0].contains("insufficient_scope"), "{}", missing[0]);
    }

    #[test]
    fn positions_must_advance() {
        assert_eq!(next_position(Some("5".into()), Some("4")).unwrap(), "5");
        assert_eq!(next_position(Some("5".into()), None).unwrap(), "5");
        assert!(next_position(Some("5".into()), Some("5")).is_err());
        assert!(next_position(None, Some("5")).is_err());
        assert!(next_position(Some(String::new()), None).is_err());
    }

    #[test]
    fn window_ends_round_up_to_a_second() {
        let whole = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(ceil_to_second(whole), whole);
        let part = DateTime::from_timestamp(1_700_000_000, 1).unwrap();
        assert_eq!(
            ceil_to_second(part),
            DateTime::from_timestamp(1_700_000_001, 0).unwrap()
        );
    }
}
