use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// What kind of account a SaaS user is; only humans can hold a reclaimable seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Human,
    /// Service or integration account (Box `AutomationUser_…`, Salesforce integration users).
    Service,
    /// Box app user (`is_platform_access_only`).
    App,
    External,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Human => "human",
            AccountKind::Service => "service",
            AccountKind::App => "app",
            AccountKind::External => "external",
        }
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SaaS user of an integration, normalised across providers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub external_id: String,
    pub login: String,
    pub name: String,
    pub kind: AccountKind,
    /// The provider's own status word (`active`, `inactive`, …).
    pub status: String,
    pub role: Option<String>,
    /// `None` when the account holds no seat.
    pub license_type: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub space_amount_bytes: Option<i64>,
    pub space_used_bytes: Option<i64>,
    pub max_upload_size_bytes: Option<i64>,
    pub is_sync_enabled: Option<bool>,
    pub is_exempt_from_device_limits: Option<bool>,
    /// Other provider metadata worth filtering by (job title, department, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Set when the account disappeared from a complete roster read.
    #[serde(default)]
    pub vanished_at: Option<DateTime<Utc>>,
}

impl Account {
    pub fn holds_seat(&self) -> bool {
        self.license_type.is_some() && self.vanished_at.is_none()
    }

    /// A stable digest of everything stored about the account; a sync writes an account
    /// only when this changes.
    pub fn content_hash(&self) -> String {
        // serde_json writes struct fields in declaration order and BTreeMaps sorted,
        // so the bytes are stable for equal values.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Keeps the later of the known and the newly seen login.
    pub fn merge_login(&mut self, seen: Option<DateTime<Utc>>) {
        self.last_login_at = match (self.last_login_at, seen) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn sample() -> Account {
        Account {
            external_id: "1".into(),
            login: "a@example.com".into(),
            name: "A".into(),
            kind: AccountKind::Human,
            status: "active".into(),
            role: Some("user".into()),
            license_type: Some("Business".into()),
            last_login_at: None,
            created_at: None,
            modified_at: None,
            space_amount_bytes: Some(1),
            space_used_bytes: Some(0),
            max_upload_size_bytes: None,
            is_sync_enabled: Some(true),
            is_exempt_from_device_limits: Some(false),
            attributes: BTreeMap::new(),
            vanished_at: None,
        }
    }

    #[test]
    fn content_hash_is_stable_and_sensitive_to_changes() {
        let a = sample();
        assert_eq!(a.content_hash(), sample().content_hash());
        let mut b = sample();
        b.status = "inactive".into();
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn merge_login_keeps_the_latest() {
        let mut a = sample();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t2 = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        a.merge_login(Some(t2));
        a.merge_login(Some(t1));
        a.merge_login(None);
        assert_eq!(a.last_login_at, Some(t2));
    }

    #[test]
    fn vanished_accounts_hold_no_seat() {
        let mut a = sample();
        assert!(a.holds_seat());
        a.vanished_at = Some(Utc::now());
        assert!(!a.holds_seat());
    }
}
