//! Where a Box user becomes an [`Account`]: the Box side of the [`LicenseSource`] port.

use super::box_client::{BoxClient, BoxUser};
use super::{LicenseSource, LoginEvent, LoginPage, ProviderError, RosterPage};
use crate::domain::{Account, BoxPlan, BoxUserFacts, classify_box_user};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

pub struct BoxSource {
    client: BoxClient,
    enterprise_id: String,
    plan: BoxPlan,
    service_user_id: Option<String>,
}

impl BoxSource {
    pub fn new(
        client: BoxClient,
        enterprise_id: String,
        plan: BoxPlan,
        service_user_id: Option<String>,
    ) -> Self {
        Self {
            client,
            enterprise_id,
            plan,
            service_user_id,
        }
    }

    pub fn client(&self) -> &BoxClient {
        &self.client
    }

    /// Box gives no last login on the user: the sync merges it from login events.
    pub fn to_account(&self, user: BoxUser) -> Account {
        let login = user.login.clone().unwrap_or_default();
        let (kind, holds_seat) = classify_box_user(BoxUserFacts {
            id: &user.id,
            login: &login,
            is_platform_access_only: user.is_platform_access_only.unwrap_or(false),
            enterprise_id: user.enterprise.as_ref().map(|e| e.id.as_str()),
            integration_enterprise_id: &self.enterprise_id,
            service_user_id: self.service_user_id.as_deref(),
        });
        let mut attributes = BTreeMap::new();
        for (key, value) in [
            ("job_title", &user.job_title),
            ("language", &user.language),
            ("timezone", &user.timezone),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                attributes.insert(key.to_owned(), v.clone());
            }
        }
        Account {
            external_id: user.id,
            login,
            name: user.name.unwrap_or_default(),
            kind,
            status: user.status.unwrap_or_else(|| "unknown".to_owned()),
            role: user.role,
            license_type: holds_seat.then(|| self.plan.license_type().to_owned()),
            last_login_at: None,
            created_at: user.created_at.map(|t| t.with_timezone(&Utc)),
            modified_at: user.modified_at.map(|t| t.with_timezone(&Utc)),
            space_amount_bytes: user.space_amount,
            space_used_bytes: user.space_used,
            max_upload_size_bytes: user.max_upload_size,
            is_sync_enabled: user.is_sync_enabled,
            is_exempt_from_device_limits: user.is_exempt_from_device_limits,
            attributes,
            vanished_at: None,
        }
    }
}

#[async_trait]
impl LicenseSource for BoxSource {
    async fn roster_page(&self, cursor: Option<&str>) -> Result<RosterPage, ProviderError> {
        let page = self.client.users_page(cursor).await?;
        Ok(RosterPage {
            accounts: page.users.into_iter().map(|u| self.to_account(u)).collect(),
            next: page.next_marker,
        })
    }

    async fn login_page(
        &self,
        created_after: DateTime<Utc>,
        created_before: DateTime<Utc>,
        position: Option<&str>,
    ) -> Result<LoginPage, ProviderError> {
        let page = self
            .client
            .login_events_page(created_after, created_before, position)
            .await?;
        let exhausted = page.events.is_empty();
        let logins = page
            .events
            .into_iter()
            // ADMIN_LOGIN is an admin impersonating the user, not the user.
            .filter(|e| e.event_type.as_deref() == Some("LOGIN"))
            .filter_map(|e| {
                let user = e.created_by?.id;
                let at = e.created_at?.with_timezone(&Utc);
                Some(LoginEvent {
                    event_id: e.event_id,
                    external_id: user,
                    at,
                })
            })
            .collect();
        Ok(LoginPage {
            logins,
            next_position: page.next_stream_position,
            exhausted,
        })
    }

    fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }
}
