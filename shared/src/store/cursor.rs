//! Page cursors, the same in both adapters: lowercase hex of a JSON array
//! `[listing, parts…]`, so they travel in a URL query as they are and say nothing useful to
//! a reader. Decoding checks the listing and every part, so a garbage cursor, or one handed
//! out by another listing, fails as [`StoreError::BadCursor`] instead of starting a read at
//! a position nobody handed out (DynamoDB would refuse some of those with a server error).

use super::{Keys, StoreError};
use crate::domain::{Account, ActionRecord, AuditEntry, Exclusion, ReclaimJob, ReclaimJobId};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write;

/// Longer input is refused before decoding; real cursors are a few hundred characters.
const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Accounts,
    LicenseType,
    Kind,
    Audit,
    ReclaimJobs,
    Exclusions,
    Actions,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Listing::Accounts => "acc",
            Listing::LicenseType => "lt",
            Listing::Kind => "kind",
            Listing::Audit => "audit",
            Listing::ReclaimJobs => "rjobs",
            Listing::Exclusions => "skip",
            Listing::Actions => "act",
        }
    }
}

/// Where `list_accounts` continues: after this external id.
pub(crate) fn accounts(account: &Account) -> String {
    encode(Listing::Accounts, &[&account.external_id])
}

pub(crate) fn parse_accounts(cursor: &str) -> Result<String, StoreError> {
    let [external_id] = decode(Listing::Accounts, cursor)?;
    Ok(external_id)
}

/// Where `accounts_by_license_type` continues: after this (gsi2sk, external id).
pub(crate) fn license_type(account: &Account) -> String {
    let sort = Keys::last_login_sort(account.last_login_at);
    encode(Listing::LicenseType, &[&sort, &account.external_id])
}

/// `(gsi2sk, external id)`. With a before-bound the position must lie below it: every
/// account a bounded listing hands out does, and DynamoDB refuses a start key outside the
/// key condition.
pub(crate) fn parse_license_type(
    cursor: &str,
    last_login_before: Option<DateTime<Utc>>,
) -> Result<(String, String), StoreError> {
    let [sort, external_id] = decode(Listing::LicenseType, cursor)?;
    if !Keys::is_last_login_sort(&sort) {
        return Err(bad("not a cursor of this listing"));
    }
    if let Some(before) = last_login_before
        && sort >= Keys::last_login_sort(Some(before))
    {
        return Err(bad("the cursor lies outside the requested login range"));
    }
    Ok((sort, external_id))
}

/// Where `accounts_by_kind` continues: after this external id.
pub(crate) fn kind(account: &Account) -> String {
    encode(Listing::Kind, &[&account.external_id])
}

pub(crate) fn parse_kind(cursor: &str) -> Result<String, StoreError> {
    let [external_id] = decode(Listing::Kind, cursor)?;
    Ok(external_id)
}

/// Where `list_audit` continues (newest first): before this entry.
pub(crate) fn audit(entry: &AuditEntry) -> String {
    let at = entry.at.to_rfc3339_opts(SecondsFormat::Micros, true);
    encode(Listing::Audit, &[&at, &entry.id])
}

/// The sort key of the entry the cursor names.
pub(crate) fn parse_audit(cursor: &str) -> Result<String, StoreError> {
    let [at, entry_id] = decode(Listing::Audit, cursor)?;
    let at = DateTime::parse_from_rfc3339(&at)
        .map_err(|_| bad("not a cursor of this listing"))?
        .with_timezone(&Utc);
    Ok(Keys::audit(at, &entry_id))
}

/// Where `list_reclaim_jobs` continues (newest first): before this job.
pub(crate) fn reclaim_jobs(job: &ReclaimJob) -> String {
    let at = job.created_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    encode(Listing::ReclaimJobs, &[&at, job.id.as_str()])
}

/// The job the cursor names and its `gsi1sk`.
pub(crate) fn parse_reclaim_jobs(cursor: &str) -> Result<(ReclaimJobId, String), StoreError> {
    let [at, job_id] = decode(Listing::ReclaimJobs, cursor)?;
    let at = DateTime::parse_from_rfc3339(&at)
        .map_err(|_| bad("not a cursor of this listing"))?
        .with_timezone(&Utc);
    let job_id = ReclaimJobId::parse(&job_id).map_err(|_| bad("not a cursor of this listing"))?;
    let sort = Keys::reclaim_job_sort(at, &job_id);
    Ok((job_id, sort))
}

/// Where `list_exclusions` continues: after this external id.
pub(crate) fn exclusions(exclusion: &Exclusion) -> String {
    encode(Listing::Exclusions, &[&exclusion.external_id])
}

pub(crate) fn parse_exclusions(cursor: &str) -> Result<String, StoreError> {
    let [external_id] = decode(Listing::Exclusions, cursor)?;
    Ok(external_id)
}

/// Where `list_actions` continues: after this external id.
pub(crate) fn actions(record: &ActionRecord) -> String {
    encode(Listing::Actions, &[&record.external_id])
}

pub(crate) fn parse_actions(cursor: &str) -> Result<String, StoreError> {
    let [external_id] = decode(Listing::Actions, cursor)?;
    Ok(external_id)
}

fn encode(listing: Listing, parts: &[&str]) -> String {
    let mut all = Vec::with_capacity(parts.len() + 1);
    all.push(listing.tag());
    all.extend_from_slice(parts);
    // A Vec<&str> always serialises.
    let json = serde_json::to_vec(&all).unwrap_or_default();
    let mut out = String::with_capacity(json.len() * 2);
    for byte in json {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The `N` parts of a cursor of `listing`, each non-empty (DynamoDB keys cannot be empty).
fn decode<const N: usize>(listing: Listing, cursor: &str) -> Result<[String; N], StoreError> {
    if cursor.is_empty() || cursor.len() > MAX_LEN || !cursor.len().is_multiple_of(2) {
        return Err(bad("not a cursor"));
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad("not a cursor"))?;
    let mut parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor"))?;
    if parts.first().map(String::as_str) != Some(listing.tag()) {
        return Err(bad("not a cursor of this listing"));
    }
    parts.remove(0);
    if parts.iter().any(String::is_empty) {
        return Err(bad("not a cursor of this listing"));
    }
    parts
        .try_into()
        .map_err(|_| bad("not a cursor of this listing"))
}

fn bad(reason: &str) -> StoreError {
    StoreError::BadCursor(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountKind, Actor, IntegrationId};
    use chrono::TimeZone;

    fn account(external_id: &str, last_login_at: Option<DateTime<Utc>>) -> Account {
        Account {
            external_id: external_id.into(),
            login: "a@example.com".into(),
            name: "A".into(),
            kind: AccountKind::Human,
            status: "active".into(),
            role: None,
            license_type: Some("Business".into()),
            last_login_at,
            created_at: None,
            modified_at: None,
            space_amount_bytes: None,
            space_used_bytes: None,
            max_upload_size_bytes: None,
            is_sync_enabled: None,
            is_exempt_from_device_limits: None,
            attributes: Default::default(),
            vanished_at: None,
        }
    }

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        let login = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        let a = account("12|34 é", Some(login));
        let c = accounts(&a);
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parse_accounts(&c).unwrap(), "12|34 é");
        assert_eq!(
            parse_license_type(&license_type(&a), None).unwrap(),
            ("2026-03-01T08:00:00Z".to_owned(), "12|34 é".to_owned())
        );
        assert_eq!(parse_kind(&kind(&a)).unwrap(), "12|34 é");
        let entry = AuditEntry::new(
            IntegrationId::parse("acme").unwrap(),
            login,
            Actor::System,
            "x",
        );
        assert_eq!(
            parse_audit(&audit(&entry)).unwrap(),
            Keys::audit(login, &entry.id)
        );
    }

    #[test]
    fn reclaim_cursors_round_trip_and_name_the_listing_key() {
        use crate::domain::{ReclaimJob, ReclaimPolicy};
        let created = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(1_234_567);
        let job = ReclaimJob::new(
            IntegrationId::parse("acme").unwrap(),
            ReclaimPolicy::default(),
            Actor::System,
            created,
        );
        let (job_id, sort) = parse_reclaim_jobs(&reclaim_jobs(&job)).unwrap();
        assert_eq!(job_id, job.id);
        // The key the job is listed under, to the microsecond the keys keep.
        assert_eq!(sort, Keys::reclaim_job_sort(created, &job.id));
        // A job id that is not one is refused, not used as a key.
        let forged = encode(Listing::ReclaimJobs, &["2026-03-01T08:00:00Z", "RJOB#x"]);
        assert!(matches!(
            parse_reclaim_jobs(&forged),
            Err(StoreError::BadCursor(_))
        ));
        let skip = encode(Listing::Exclusions, &["12"]);
        assert_eq!(parse_exclusions(&skip).unwrap(), "12");
        assert!(parse_actions(&skip).is_err());
        let act = encode(Listing::Actions, &["12"]);
        assert_eq!(parse_actions(&act).unwrap(), "12");
        assert!(parse_exclusions(&act).is_err());
    }

    #[test]
    fn garbage_and_foreign_cursors_are_bad() {
        let a = account("1", None);
        for garbage in ["", "zz", "abc", "7b7d", &"0".repeat(MAX_LEN + 2)] {
            assert!(matches!(
                parse_accounts(garbage),
                Err(StoreError::BadCursor(_))
            ));
        }
        // A cursor of one listing is refused by another.
        assert!(matches!(
            parse_kind(&accounts(&a)),
            Err(StoreError::BadCursor(_))
        ));
        assert!(matches!(
            parse_license_type(&kind(&a), None),
            Err(StoreError::BadCursor(_))
        ));
        // A forged sort key, and a position outside the before-bound.
        let forged = encode(Listing::LicenseType, &["yesterday", "1"]);
        assert!(parse_license_type(&forged, None).is_err());
        let late = account(
            "1",
            Some(Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()),
        );
        let bound = Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap();
        assert!(parse_license_type(&license_type(&late), Some(bound)).is_err());
        assert!(parse_license_type(&license_type(&a), Some(bound)).is_ok());
        let message = parse_accounts("secret-looking-input")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"), "the cursor is never echoed");
    }
}
