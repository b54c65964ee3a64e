//! The `Store` contract: one suite of cases, run against every adapter (design §3, §10).
//! Each case takes the store as a trait object, so both adapters answer the same questions;
//! `contract_tests!` instantiates every case once per adapter.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use seatkeeper_shared::domain::{
    Account, AccountKind, ActionRecord, ActionStep, Actor, ApprovalRefused, AuditEntry, AuthKind,
    BoxPlan, Candidate, EventCoverage, Exclusion, Integration, IntegrationId, IntegrationStatus,
    JobChangeRefused, JobState, Provider, ReclaimActionKind, ReclaimGuardRails, ReclaimJob,
    ReclaimJobId, ReclaimPolicy, SkipReason, Snapshot, SnapshotBuilder, SyncSettings, SyncSummary,
    TaskKind, TaskRun, TaskStatus, TaskToken,
};
use seatkeeper_shared::store::embedded::EmbeddedStore;
use seatkeeper_shared::store::{
    JobChange, LeaseKind, OneTimeItem, OneTimeKind, OneTimeTake, Page, Store, StoreError,
};
use seatkeeper_tests::{Moto, dynamo_store};
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

/// One emulator for every DynamoDB case of this binary; each case gets its own table.
static MOTO: LazyLock<Moto> = LazyLock::new(Moto::start);

macro_rules! contract_tests {
    ($adapter:ident, $make:expr) => {
        contract_tests!(@cases $adapter, $make, [
            integration_round_trips_and_is_listed,
            second_integration_for_same_tenant_is_refused,
            same_tenant_id_of_another_provider_is_a_different_tenant,
            creating_an_existing_integration_again_is_refused,
            updating_a_missing_integration_is_not_found,
            modify_integration_changes_only_what_it_is_told,
            modify_of_a_missing_integration_is_not_found,
            concurrent_modifications_are_all_kept,
            accounts_are_listed_in_pages_each_seen_once_in_order,
            get_accounts_returns_only_known_accounts,
            put_accounts_replaces_stored_accounts,
            accounts_of_one_integration_are_invisible_to_another,
            accounts_by_license_type_are_listed_oldest_login_first,
            accounts_by_license_type_follow_changes,
            accounts_by_license_type_with_a_login_bound_leave_out_recent_logins,
            accounts_by_kind_are_listed_in_pages_in_external_id_order,
            accounts_by_kind_follow_changes,
            disconnect_releases_the_claim_and_keeps_the_integration,
            disconnect_never_releases_another_integrations_claim,
            disconnect_of_a_missing_integration_is_not_found,
            event_coverage_round_trips,
            snapshot_of_the_same_day_is_replaced,
            snapshots_are_listed_by_date_range,
            task_runs_are_listed_newest_first,
            task_runs_are_filtered_by_kind,
            lease_is_refused_to_a_second_owner_while_held,
            same_owner_reacquires_its_lease_and_keeps_the_checkpoint,
            expired_lease_is_taken_over,
            renew_by_a_non_owner_is_lease_lost,
            release_by_a_non_owner_leaves_the_lease,
            only_one_of_two_holders_can_take_a_handed_over_lease,
            an_expired_lease_can_still_be_handed_over_by_its_owner,
            transfer_by_a_non_owner_is_lease_lost,
            lease_kinds_are_independent,
            checkpoint_json_round_trips,
            roster_chunks_are_read_in_order_and_deleted,
            one_time_item_round_trips,
            replayed_one_time_item_is_missing,
            expired_one_time_item_is_never_taken,
            only_one_of_two_concurrent_takes_gets_the_item,
            putting_an_existing_one_time_key_is_refused,
            one_time_keys_must_be_digests,
            audit_is_listed_newest_first_in_pages,
            audit_of_one_integration_is_invisible_to_another,
            garbage_and_foreign_cursors_are_bad_cursors,
            reclaim_job_round_trips_and_its_id_is_taken_once,
            reclaim_jobs_are_listed_newest_first_per_integration,
            modify_reclaim_job_applies_the_change_or_leaves_the_job,
            modify_reclaim_job_never_touches_what_was_approved,
            concurrent_job_modifications_are_all_kept,
            only_one_of_two_concurrent_approvals_wins,
            candidates_are_read_by_batch_and_only_the_approved_set_is_found,
            candidates_are_written_only_while_the_job_plans,
            a_candidate_batch_never_holds_more_than_fifty,
            exclusions_are_listed_in_pages,
            action_steps_follow_the_order_once_each,
            only_one_of_two_racers_advances_a_step,
            actions_are_listed_in_pages,
            account_lock_is_exclusive_until_released_or_expired,
            reclaim_listings_refuse_garbage_and_foreign_cursors,
        ]);
    };
    (@cases $adapter:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $adapter {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let store = ($make)().await;
                    super::cases::$case(&store).await;
                }
            )*
        }
    };
}

contract_tests!(embedded, || async {
    EmbeddedStore::in_memory().expect("in-memory store")
});
contract_tests!(dynamo, || async { dynamo_store(&MOTO).await });

// Builders -------------------------------------------------------------------------------

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid time")
}

fn iid(raw: &str) -> IntegrationId {
    IntegrationId::parse(raw).expect("valid id")
}

fn integration(id: &str, tenant_id: &str) -> Integration {
    let id = iid(id);
    Integration {
        secret_name: Integration::secret_name_for(&id),
        id,
        provider: Provider::Box,
        name: "Acme Box".into(),
        auth_kind: AuthKind::ClientCredentials,
        tenant_id: tenant_id.into(),
        status: IntegrationStatus::Connected,
        enabled: true,
        plan: Some(BoxPlan::Business),
        purchased_seats: Some(120),
        service_user_id: Some("99".into()),
        sync: SyncSettings::default(),
        created_at: at(2026, 1, 1, 0),
        updated_at: at(2026, 1, 1, 0),
        last_sync: None,
        reclaim: Default::default(),
        seat_price: None,
    }
}

fn account(external_id: &str, license_type: Option<&str>, login: Option<DateTime<Utc>>) -> Account {
    Account {
        external_id: external_id.into(),
        login: format!("{external_id}@example.com"),
        name: format!("User {external_id}"),
        kind: AccountKind::Human,
        status: "active".into(),
        role: Some("user".into()),
        license_type: license_type.map(str::to_owned),
        last_login_at: login,
        created_at: Some(at(2025, 1, 1, 0)),
        modified_at: None,
        space_amount_bytes: Some(10_000_000_000),
        space_used_bytes: Some(1234),
        max_upload_size_bytes: None,
        is_sync_enabled: Some(true),
        is_exempt_from_device_limits: Some(false),
        attributes: BTreeMap::from([("department".to_owned(), "Finance".to_owned())]),
        vanished_at: None,
    }
}

fn snapshot(id: &IntegrationId, data_as_of: DateTime<Utc>, sync_id: &str) -> Snapshot {
    let mut builder = SnapshotBuilder::new(data_as_of, &["Business".to_owned()]);
    builder.add(&account(
        "1",
        Some("Business"),
        Some(data_as_of - Duration::days(3)),
    ));
    builder.add(&account("2", Some("Business"), None));
    builder.finish(id.clone(), sync_id.into(), None, Some(10))
}

fn task_run(id: &IntegrationId, kind: TaskKind, started_at: DateTime<Utc>) -> TaskRun {
    TaskRun {
        integration_id: id.clone(),
        kind,
        sync_id: format!("sync-{}", started_at.timestamp()),
        started_at,
        finished_at: started_at + Duration::seconds(42),
        status: TaskStatus::Succeeded,
        duration_ms: 42_000,
        counts: BTreeMap::from([("accounts_read".to_owned(), 250)]),
        error: None,
    }
}

fn ids(accounts: &[Account]) -> Vec<&str> {
    accounts.iter().map(|a| a.external_id.as_str()).collect()
}

/// Every account of one license type, following the cursor.
async fn all_by_license_type(
    store: &dyn Store,
    id: &IntegrationId,
    license_type: &str,
    limit: usize,
) -> Vec<String> {
    all_by_license_type_before(store, id, license_type, None, limit).await
}

/// Every account of one license type whose last login is before `before` (or missing).
async fn all_by_license_type_before(
    store: &dyn Store,
    id: &IntegrationId,
    license_type: &str,
    before: Option<DateTime<Utc>>,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .accounts_by_license_type(id, license_type, before, cursor.as_deref(), limit)
            .await
            .expect("by license type");
        assert!(page.items.len() <= limit);
        out.extend(page.items.into_iter().map(|a| a.external_id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// Every account of one kind, following the cursor.
async fn all_by_kind(
    store: &dyn Store,
    id: &IntegrationId,
    kind: AccountKind,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .accounts_by_kind(id, kind, cursor.as_deref(), limit)
            .await
            .expect("by kind");
        assert!(page.items.len() <= limit);
        out.extend(page.items.into_iter().map(|a| a.external_id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// The whole audit trail, following the cursor; also returns the page sizes.
async fn all_audit(
    store: &dyn Store,
    id: &IntegrationId,
    limit: usize,
) -> (Vec<AuditEntry>, Vec<usize>) {
    let mut entries = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_audit(id, cursor.as_deref(), limit)
            .await
            .expect("list audit");
        pages.push(page.items.len());
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (entries, pages),
        }
    }
}

/// A stand-in for the hex SHA-256 digest callers compute from a bearer value.
fn digest(n: u64) -> String {
    format!("{n:064x}")
}

fn one_time(kind: OneTimeKind, n: u64, expires_at: DateTime<Utc>) -> OneTimeItem {
    OneTimeItem {
        kind,
        key: digest(n),
        expires_at,
        payload: serde_json::json!({"provider": "box", "n": n, "nested": {"list": [1, 2]}}),
    }
}

fn audit_entry(id: &IntegrationId, at: DateTime<Utc>, action: &str) -> AuditEntry {
    AuditEntry::new(
        id.clone(),
        at,
        Actor::Iam {
            arn: "arn:aws:iam::123456789012:user/admin".into(),
        },
        action,
    )
    .with_target("42")
    .with_detail(serde_json::json!({"seats": 3}))
}

fn next_cursor<T>(page: Page<T>) -> String {
    page.next.expect("a second page")
}

fn is_bad_cursor<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::BadCursor(_)))
}

fn requester() -> Actor {
    Actor::Iam {
        arn: "arn:aws:iam::123456789012:user/alice".into(),
    }
}

fn approver() -> Actor {
    Actor::Iam {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
    }
}

fn reclaim_job(integration_id: &str, created_at: DateTime<Utc>) -> ReclaimJob {
    ReclaimJob::new(
        iid(integration_id),
        ReclaimPolicy {
            action: ReclaimActionKind::Delete,
            transfer_to: Some("1001".into()),
            excluded_logins: vec!["ceo@example.com".into()],
            ..ReclaimPolicy::default()
        },
        requester(),
        created_at,
    )
}

fn candidate(job: &ReclaimJob, batch: u32, external_id: &str) -> Candidate {
    Candidate {
        job_id: job.id.clone(),
        batch,
        external_id: external_id.into(),
        login: format!("{external_id}@example.com"),
        last_login_at: Some(at(2025, 6, 1, 0)),
        created_at: Some(at(2024, 1, 1, 0)),
    }
}

fn exclusion(job: &ReclaimJob, external_id: &str, reason: SkipReason) -> Exclusion {
    Exclusion {
        job_id: job.id.clone(),
        external_id: external_id.into(),
        login: format!("{external_id}@example.com"),
        reason,
        detail: Some("g-legal".into()),
    }
}

/// A job that plans, stored.
async fn planning_job(store: &dyn Store, integration_id: &str) -> ReclaimJob {
    let job = reclaim_job(integration_id, at(2026, 3, 1, 0));
    store.create_reclaim_job(&job).await.expect("create job");
    job
}

async fn all_jobs(
    store: &dyn Store,
    id: &IntegrationId,
    limit: usize,
) -> (Vec<ReclaimJob>, Vec<usize>) {
    let mut jobs = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_reclaim_jobs(id, cursor.as_deref(), limit)
            .await
            .expect("list jobs");
        pages.push(page.items.len());
        jobs.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (jobs, pages),
        }
    }
}

fn is_step_conflict<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    want: Option<ActionStep>,
) -> bool {
    matches!(result, Err(StoreError::StepConflict { current, .. }) if current == want)
}

fn is_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::InvalidItem(_)))
}

mod cases {
    use super::*;

    // Integrations ---------------------------------------------------------------------

    pub async fn integration_round_trips_and_is_listed(store: &dyn Store) {
        let a = integration("acme", "111");
        let b = integration("globex", "222");
        store.create_integration(&a).await.expect("create a");
        store.create_integration(&b).await.expect("create b");

        assert_eq!(
            store.get_integration(&a.id).await.expect("get"),
            Some(a.clone())
        );
        assert_eq!(
            store.get_integration(&iid("nobody")).await.expect("get"),
            None
        );
        let mut listed = store.list_integrations().await.expect("list");
        listed.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(listed, vec![a.clone(), b.clone()]);
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "222")
                .await
                .expect("owner"),
            Some(b.id.clone())
        );

        let updated = Integration {
            name: "Acme (renamed)".into(),
            status: IntegrationStatus::NeedsReauth,
            last_sync: Some(SyncSummary {
                sync_id: "s1".into(),
                started_at: at(2026, 2, 1, 0),
                finished_at: at(2026, 2, 1, 1),
                succeeded: false,
                error: Some("invalid_grant".into()),
            }),
            ..a.clone()
        };
        store.update_integration(&updated).await.expect("update");
        assert_eq!(
            store.get_integration(&a.id).await.expect("get"),
            Some(updated)
        );
        assert_eq!(store.list_integrations().await.expect("list").len(), 2);
    }

    pub async fn second_integration_for_same_tenant_is_refused(store: &dyn Store) {
        let first = integration("first", "4242");
        store.create_integration(&first).await.expect("create");

        let second = integration("second", "4242");
        match store.create_integration(&second).await {
            Err(StoreError::TenantClaimed {
                provider,
                tenant_id,
                integration_id,
            }) => {
                assert_eq!(provider, Provider::Box);
                assert_eq!(tenant_id, "4242");
                assert_eq!(integration_id, "first");
            }
            other => panic!("expected TenantClaimed, got {other:?}"),
        }
        // Nothing of the refused integration was written.
        assert_eq!(store.get_integration(&second.id).await.expect("get"), None);
        assert_eq!(
            store.list_integrations().await.expect("list"),
            vec![first.clone()]
        );
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "4242")
                .await
                .expect("owner"),
            Some(first.id)
        );
    }

    pub async fn same_tenant_id_of_another_provider_is_a_different_tenant(store: &dyn Store) {
        store
            .create_integration(&integration("box-one", "777"))
            .await
            .expect("create box");
        let salesforce = Integration {
            provider: Provider::Salesforce,
            ..integration("sf-one", "777")
        };
        store
            .create_integration(&salesforce)
            .await
            .expect("create salesforce");
        assert_eq!(
            store
                .tenant_owner(Provider::Salesforce, "777")
                .await
                .expect("owner"),
            Some(salesforce.id)
        );
    }

    pub async fn creating_an_existing_integration_again_is_refused(store: &dyn Store) {
        let original = integration("acme", "111");
        store.create_integration(&original).await.expect("create");

        let again = integration("acme", "999");
        match store.create_integration(&again).await {
            Err(StoreError::AlreadyExists(id)) => assert_eq!(id, original.id),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        // The refused create claimed nothing and changed nothing.
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "999")
                .await
                .expect("owner"),
            None
        );
        assert_eq!(
            store.get_integration(&original.id).await.expect("get"),
            Some(original)
        );
    }

    pub async fn updating_a_missing_integration_is_not_found(store: &dyn Store) {
        let ghost = integration("ghost", "1");
        match store.update_integration(&ghost).await {
            Err(StoreError::NotFound(id)) => assert_eq!(id, ghost.id),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(store.get_integration(&ghost.id).await.expect("get"), None);
    }

    pub async fn modify_integration_changes_only_what_it_is_told(store: &dyn Store) {
        let original = integration("acme", "111");
        store.create_integration(&original).await.expect("create");

        // Someone else changes the status after our caller last read the integration…
        let reauth = Integration {
            status: IntegrationStatus::NeedsReauth,
            ..original.clone()
        };
        store.update_integration(&reauth).await.expect("update");

        // …and our caller only renames it: the status change survives.
        let modified = store
            .modify_integration(&original.id, &|i: &mut Integration| {
                i.name = "Acme (renamed)".into();
            })
            .await
            .expect("modify");
        let expected = Integration {
            name: "Acme (renamed)".into(),
            ..reauth
        };
        assert_eq!(modified, expected);
        assert_eq!(
            store.get_integration(&original.id).await.expect("get"),
            Some(expected.clone())
        );
        // Still listed, once.
        assert_eq!(
            store.list_integrations().await.expect("list"),
            vec![expected]
        );
    }

    pub async fn modify_of_a_missing_integration_is_not_found(store: &dyn Store) {
        let ghost = iid("ghost");
        match store
            .modify_integration(&ghost, &|i: &mut Integration| i.enabled = false)
            .await
        {
            Err(StoreError::NotFound(id)) => assert_eq!(id, ghost),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(store.get_integration(&ghost).await.expect("get"), None);
        assert!(store.list_integrations().await.expect("list").is_empty());
    }

    pub async fn concurrent_modifications_are_all_kept(store: &dyn Store) {
        let original = Integration {
            purchased_seats: Some(0),
            ..integration("acme", "111")
        };
        store.create_integration(&original).await.expect("create");

        // Four writers at once, each adding one seat: none may be lost. (Each failed
        // compare-and-swap means another writer succeeded, so four always settle.)
        let add_seat = |i: &mut Integration| {
            i.purchased_seats = i.purchased_seats.map(|n| n + 1);
        };
        let modify = || store.modify_integration(&original.id, &add_seat);
        let (a, b, c, d) = tokio::join!(modify(), modify(), modify(), modify());
        for result in [a, b, c, d] {
            result.expect("modify");
        }
        let stored = store
            .get_integration(&original.id)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored.purchased_seats, Some(4));
    }

    // Accounts -------------------------------------------------------------------------

    pub async fn accounts_are_listed_in_pages_each_seen_once_in_order(store: &dyn Store) {
        let id = iid("acme");
        // Written in reverse so the order of the listing comes from the store.
        let accounts: Vec<Account> = (0..250)
            .rev()
            .map(|n| account(&format!("u{n:04}"), Some("Business"), None))
            .collect();
        store.put_accounts(&id, &accounts).await.expect("put");

        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_accounts(&id, cursor.as_deref(), 100)
                .await
                .expect("list");
            pages.push(page.items.len());
            seen.extend(page.items.into_iter().map(|a| a.external_id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, vec![100, 100, 50]);
        let expected: Vec<String> = (0..250).map(|n| format!("u{n:04}")).collect();
        assert_eq!(seen, expected);
    }

    pub async fn get_accounts_returns_only_known_accounts(store: &dyn Store) {
        let id = iid("acme");
        let accounts: Vec<Account> = (0..150)
            .map(|n| account(&format!("u{n:04}"), Some("Business"), None))
            .collect();
        store.put_accounts(&id, &accounts).await.expect("put");

        // More ids than one DynamoDB BatchGetItem takes, with unknown and repeated ones.
        let mut wanted: Vec<String> = (0..150).map(|n| format!("u{n:04}")).collect();
        wanted.push("missing".into());
        wanted.push("u0001".into());
        let mut got = store.get_accounts(&id, &wanted).await.expect("get");
        got.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        assert_eq!(got, accounts);

        assert!(
            store
                .get_accounts(&id, &[])
                .await
                .expect("get none")
                .is_empty()
        );
        assert!(
            store
                .get_accounts(&id, &["nobody".to_owned()])
                .await
                .expect("get unknown")
                .is_empty()
        );
    }

    pub async fn put_accounts_replaces_stored_accounts(store: &dyn Store) {
        let id = iid("acme");
        store
            .put_accounts(&id, &[account("1", Some("Business"), None)])
            .await
            .expect("put");
        let mut changed = account("1", Some("Business"), Some(at(2026, 3, 1, 9)));
        changed.status = "inactive".into();
        changed.role = None;
        changed.attributes.clear();
        store
            .put_accounts(&id, std::slice::from_ref(&changed))
            .await
            .expect("put again");
        store.put_accounts(&id, &[]).await.expect("put nothing");

        let got = store
            .get_accounts(&id, &["1".to_owned()])
            .await
            .expect("get");
        assert_eq!(got, vec![changed]);
        let page = store.list_accounts(&id, None, 10).await.expect("list");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next, None);
    }

    pub async fn accounts_of_one_integration_are_invisible_to_another(store: &dyn Store) {
        let acme = iid("acme");
        let acme2 = iid("acme-2");
        store
            .put_accounts(&acme, &[account("1", Some("Business"), None)])
            .await
            .expect("put");
        store
            .put_accounts(&acme2, &[account("2", Some("Business"), None)])
            .await
            .expect("put");
        let page = store.list_accounts(&acme, None, 10).await.expect("list");
        assert_eq!(ids(&page.items), vec!["1"]);
        assert!(
            store
                .get_accounts(&acme, &["2".to_owned()])
                .await
                .expect("get")
                .is_empty()
        );
        assert_eq!(
            all_by_license_type(store, &acme2, "Business", 10).await,
            vec!["2"]
        );
    }

    pub async fn accounts_by_license_type_are_listed_oldest_login_first(store: &dyn Store) {
        let id = iid("acme");
        let mut vanished = account("v", Some("Business"), None);
        vanished.vanished_at = Some(at(2026, 3, 2, 0));
        let accounts = vec![
            account("recent", Some("Business"), Some(at(2026, 3, 1, 8))),
            account("never", Some("Business"), None),
            account("old", Some("Business"), Some(at(2025, 6, 1, 8))),
            account("middle", Some("Business"), Some(at(2026, 1, 15, 8))),
            account("plus", Some("Business Plus"), Some(at(2020, 1, 1, 0))),
            Account {
                kind: AccountKind::App,
                ..account("app", None, None)
            },
            vanished,
        ];
        store.put_accounts(&id, &accounts).await.expect("put");

        let expected = vec!["never", "old", "middle", "recent"];
        assert_eq!(
            all_by_license_type(store, &id, "Business", 100).await,
            expected
        );
        // The same order in pages of two and of one.
        assert_eq!(
            all_by_license_type(store, &id, "Business", 2).await,
            expected
        );
        assert_eq!(
            all_by_license_type(store, &id, "Business", 1).await,
            expected
        );
        assert_eq!(
            all_by_license_type(store, &id, "Business Plus", 10).await,
            vec!["plus"]
        );
        assert!(
            all_by_license_type(store, &id, "Enterprise", 10)
                .await
                .is_empty()
        );

        let page = store
            .accounts_by_license_type(&id, "Business", None, None, 4)
            .await
            .expect("page");
        assert_eq!(page.items[0], accounts[1], "whole accounts are returned");
    }

    pub async fn accounts_by_license_type_follow_changes(store: &dyn Store) {
        let id = iid("acme");
        let a = account("a", Some("Business"), Some(at(2026, 1, 1, 0)));
        let b = account("b", Some("Business"), Some(at(2026, 2, 1, 0)));
        let c = account("c", Some("Business"), Some(at(2026, 3, 1, 0)));
        store
            .put_accounts(&id, &[a.clone(), b.clone(), c.clone()])
            .await
            .expect("put");

        // a logs in, b moves to another license type, c vanishes.
        let a2 = account("a", Some("Business"), Some(at(2026, 4, 1, 0)));
        let b2 = account("b", Some("Business Plus"), Some(at(2026, 2, 1, 0)));
        let mut c2 = c.clone();
        c2.vanished_at = Some(at(2026, 4, 2, 0));
        store
            .put_accounts(&id, &[a2, b2, c2])
            .await
            .expect("put changes");

        assert_eq!(
            all_by_license_type(store, &id, "Business", 10).await,
            vec!["a"]
        );
        assert_eq!(
            all_by_license_type(store, &id, "Business Plus", 10).await,
            vec!["b"]
        );

        // b loses its seat entirely; c comes back.
        store
            .put_accounts(&id, &[account("b", None, None), c])
            .await
            .expect("put again");
        assert_eq!(
            all_by_license_type(store, &id, "Business", 10).await,
            vec!["c", "a"]
        );
        assert!(
            all_by_license_type(store, &id, "Business Plus", 10)
                .await
                .is_empty()
        );
    }

    // Coverage and snapshots -------------------------------------------------------------

    pub async fn event_coverage_round_trips(store: &dyn Store) {
        let id = iid("acme");
        assert_eq!(store.get_event_coverage(&id).await.expect("get"), None);
        let first = EventCoverage {
            from: at(2025, 11, 1, 0),
            to: at(2026, 11, 1, 0),
        };
        store.put_event_coverage(&id, &first).await.expect("put");
        assert_eq!(
            store.get_event_coverage(&id).await.expect("get"),
            Some(first.clone())
        );
        let extended =
            EventCoverage::extended(Some(&first), at(2026, 10, 31, 0), at(2026, 11, 2, 0));
        store.put_event_coverage(&id, &extended).await.expect("put");
        assert_eq!(
            store.get_event_coverage(&id).await.expect("get"),
            Some(extended)
        );
        assert_eq!(
            store.get_event_coverage(&iid("other")).await.expect("get"),
            None
        );
    }

    pub async fn snapshot_of_the_same_day_is_replaced(store: &dyn Store) {
        let id = iid("acme");
        assert_eq!(store.latest_snapshot(&id).await.expect("latest"), None);
        let morning = snapshot(&id, at(2026, 11, 1, 6), "morning");
        let evening = snapshot(&id, at(2026, 11, 1, 18), "evening");
        store.put_snapshot(&morning).await.expect("put");
        store.put_snapshot(&evening).await.expect("put");

        let day = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        let listed = store.list_snapshots(&id, day, day).await.expect("list");
        assert_eq!(listed, vec![evening.clone()]);
        assert_eq!(
            store.latest_snapshot(&id).await.expect("latest"),
            Some(evening)
        );
    }

    pub async fn snapshots_are_listed_by_date_range(store: &dyn Store) {
        let id = iid("acme");
        let days: Vec<Snapshot> = [1, 2, 3, 10, 31]
            .into_iter()
            .map(|d| snapshot(&id, at(2026, 10, d, 12), &format!("s{d}")))
            .collect();
        // Out of order, and with another integration's snapshot beside them.
        for s in days.iter().rev() {
            store.put_snapshot(s).await.expect("put");
        }
        store
            .put_snapshot(&snapshot(&iid("acme-2"), at(2026, 12, 1, 0), "other"))
            .await
            .expect("put other");

        let date = |d| NaiveDate::from_ymd_opt(2026, 10, d).expect("date");
        let listed = store
            .list_snapshots(&id, date(2), date(10))
            .await
            .expect("list");
        assert_eq!(listed, days[1..4].to_vec());
        let all = store
            .list_snapshots(&id, date(1), date(31))
            .await
            .expect("list");
        assert_eq!(all, days);
        assert!(
            store
                .list_snapshots(&id, date(4), date(9))
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            store
                .list_snapshots(&id, date(10), date(2))
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            store.latest_snapshot(&id).await.expect("latest"),
            days.last().cloned()
        );
    }

    // Task runs --------------------------------------------------------------------------

    pub async fn task_runs_are_listed_newest_first(store: &dyn Store) {
        let id = iid("acme");
        let kinds = [
            TaskKind::ApplicationRoster,
            TaskKind::LicenseInformation,
            TaskKind::LicenseDifferentiation,
            TaskKind::ApplicationAccess,
            TaskKind::Reclamation,
        ];
        let mut runs = Vec::new();
        for day in 1..=6u32 {
            let kind = kinds[(day as usize) % kinds.len()];
            runs.push(task_run(&id, kind, at(2026, 11, day, 3)));
        }
        for run in &runs {
            store.put_task_run(run).await.expect("put");
        }
        store
            .put_task_run(&task_run(
                &iid("acme-2"),
                TaskKind::Reclamation,
                at(2026, 12, 1, 0),
            ))
            .await
            .expect("put other");

        let newest: Vec<TaskRun> = runs.iter().rev().cloned().collect();
        assert_eq!(
            store.list_task_runs(&id, None, 10).await.expect("list"),
            newest
        );
        assert_eq!(
            store.list_task_runs(&id, None, 3).await.expect("list"),
            newest[..3].to_vec()
        );
    }

    pub async fn task_runs_are_filtered_by_kind(store: &dyn Store) {
        let id = iid("acme");
        let roster: Vec<TaskRun> = (1..=4)
            .map(|d| task_run(&id, TaskKind::ApplicationRoster, at(2026, 11, d, 3)))
            .collect();
        let access = task_run(&id, TaskKind::ApplicationAccess, at(2026, 11, 5, 3));
        for run in roster.iter().chain([&access]) {
            store.put_task_run(run).await.expect("put");
        }
        let listed = store
            .list_task_runs(&id, Some(TaskKind::ApplicationRoster), 3)
            .await
            .expect("list");
        assert_eq!(
            listed,
            vec![roster[3].clone(), roster[2].clone(), roster[1].clone()]
        );
        assert_eq!(
            store
                .list_task_runs(&id, Some(TaskKind::ApplicationAccess), 10)
                .await
                .expect("list"),
            vec![access]
        );
        assert!(
            store
                .list_task_runs(&id, Some(TaskKind::Reclamation), 10)
                .await
                .expect("list")
                .is_empty()
        );
    }

    // Leases -----------------------------------------------------------------------------

    pub async fn lease_is_refused_to_a_second_owner_while_held(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let until = now + Duration::minutes(15);
        let lease = store
            .acquire_lease(&id, LeaseKind::Sync, "run-1", now, until)
            .await
            .expect("acquire");
        assert_eq!(lease.owner, "run-1");
        assert_eq!(lease.expires_at, until);
        assert_eq!(lease.checkpoint, None);

        // Still held at the very instant it expires.
        match store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "run-2",
                until,
                until + Duration::minutes(15),
            )
            .await
        {
            Err(StoreError::LeaseHeld {
                owner,
                expires_at,
                kind,
                integration_id,
            }) => {
                assert_eq!(owner, "run-1");
                assert_eq!(expires_at, until);
                assert_eq!(kind, LeaseKind::Sync);
                assert_eq!(integration_id, id);
            }
            other => panic!("expected LeaseHeld, got {other:?}"),
        }
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(lease)
        );
    }

    pub async fn same_owner_reacquires_its_lease_and_keeps_the_checkpoint(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let lease = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "sync-7",
                now,
                now + Duration::minutes(15),
            )
            .await
            .expect("acquire");
        let checkpoint = serde_json::json!({"roster_marker": "m-123", "chunk": 4});
        store
            .renew_lease(
                &lease,
                now,
                now + Duration::minutes(15),
                Some(checkpoint.clone()),
            )
            .await
            .expect("save checkpoint");

        // The follow-up invocation continues the same run.
        let later = now + Duration::minutes(14);
        let continued = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "sync-7",
                later,
                later + Duration::minutes(15),
            )
            .await
            .expect("re-acquire");
        assert_eq!(continued.owner, "sync-7");
        assert_eq!(continued.expires_at, later + Duration::minutes(15));
        assert_eq!(continued.checkpoint, Some(checkpoint));
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(continued)
        );
    }

    pub async fn expired_lease_is_taken_over(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let until = now + Duration::minutes(15);
        let crashed = store
            .acquire_lease(&id, LeaseKind::Sync, "crashed", now, until)
            .await
            .expect("acquire");
        store
            .renew_lease(&crashed, now, until, Some(serde_json::json!({"chunk": 1})))
            .await
            .expect("checkpoint");

        let later = until + Duration::milliseconds(1);
        let taken = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "next",
                later,
                later + Duration::minutes(15),
            )
            .await
            .expect("take over");
        assert_eq!(taken.owner, "next");
        assert_eq!(taken.checkpoint, None, "a new holder starts afresh");

        // The old holder has lost it.
        match store
            .renew_lease(&crashed, later, later + Duration::minutes(15), None)
            .await
        {
            Err(StoreError::LeaseLost { .. }) => {}
            other => panic!("expected LeaseLost, got {other:?}"),
        }
    }

    pub async fn renew_by_a_non_owner_is_lease_lost(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let lease = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "owner",
                now,
                now + Duration::minutes(15),
            )
            .await
            .expect("acquire");
        let impostor = seatkeeper_shared::store::Lease {
            owner: "impostor".into(),
            ..lease.clone()
        };
        match store
            .renew_lease(&impostor, now, now + Duration::hours(1), None)
            .await
        {
            Err(StoreError::LeaseLost {
                integration_id,
                kind,
            }) => {
                assert_eq!(integration_id, id);
                assert_eq!(kind, LeaseKind::Sync);
            }
            other => panic!("expected LeaseLost, got {other:?}"),
        }
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(lease.clone())
        );

        // Renewing a released lease is lost too.
        store.release_lease(&lease).await.expect("release");
        assert!(matches!(
            store
                .renew_lease(&lease, now, now + Duration::hours(1), None)
                .await,
            Err(StoreError::LeaseLost { .. })
        ));

        // The owner can renew.
        let lease = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "owner",
                now,
                now + Duration::minutes(15),
            )
            .await
            .expect("acquire");
        let renewed = store
            .renew_lease(&lease, now, now + Duration::hours(1), None)
            .await
            .expect("renew");
        assert_eq!(renewed.expires_at, now + Duration::hours(1));
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(renewed)
        );
    }

    pub async fn release_by_a_non_owner_leaves_the_lease(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let lease = store
            .acquire_lease(
                &id,
                LeaseKind::Reclaim,
                "job-1",
                now,
                now + Duration::hours(1),
            )
            .await
            .expect("acquire");
        let other = seatkeeper_shared::store::Lease {
            owner: "job-2".into(),
            ..lease.clone()
        };
        store
            .release_lease(&other)
            .await
            .expect("release by non-owner is not an error");
        assert_eq!(
            store.get_lease(&id, LeaseKind::Reclaim).await.expect("get"),
            Some(lease.clone())
        );

        store.release_lease(&lease).await.expect("release");
        assert_eq!(
            store.get_lease(&id, LeaseKind::Reclaim).await.expect("get"),
            None
        );
        store
            .release_lease(&lease)
            .await
            .expect("releasing again is fine");

        // Free again: anyone may take it.
        store
            .acquire_lease(
                &id,
                LeaseKind::Reclaim,
                "job-2",
                now,
                now + Duration::hours(1),
            )
            .await
            .expect("acquire after release");
    }

    pub async fn only_one_of_two_holders_can_take_a_handed_over_lease(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let lease = store
            .acquire_lease(&id, LeaseKind::Sync, "A", now, now + Duration::minutes(15))
            .await
            .expect("acquire");
        let checkpoint = serde_json::json!({"phase": "events", "chunk": 3});
        let until = now + Duration::minutes(30);

        let to_b = store
            .transfer_lease(&lease, "B", until, Some(checkpoint.clone()))
            .await
            .expect("hand over to B");
        assert_eq!(to_b.owner, "B");
        assert_eq!(to_b.expires_at, until);
        assert_eq!(to_b.checkpoint, Some(checkpoint.clone()));
        assert_eq!(to_b.integration_id, id);
        assert_eq!(to_b.kind, LeaseKind::Sync);

        // A second caller still holding A's lease loses the race.
        match store
            .transfer_lease(&lease, "C", until, Some(serde_json::json!({"chunk": 9})))
            .await
        {
            Err(StoreError::LeaseLost {
                integration_id,
                kind,
            }) => {
                assert_eq!(integration_id, id);
                assert_eq!(kind, LeaseKind::Sync);
            }
            other => panic!("expected LeaseLost, got {other:?}"),
        }
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(to_b.clone())
        );

        // B holds it as its own now: it can renew, A cannot.
        assert!(matches!(
            store.renew_lease(&lease, now, until, None).await,
            Err(StoreError::LeaseLost { .. })
        ));
        store
            .renew_lease(&to_b, now, until, Some(checkpoint))
            .await
            .expect("B renews");
    }

    pub async fn an_expired_lease_can_still_be_handed_over_by_its_owner(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let until = now + Duration::minutes(15);
        let lease = store
            .acquire_lease(&id, LeaseKind::Sync, "A", now, until)
            .await
            .expect("acquire");
        store
            .renew_lease(&lease, now, until, Some(serde_json::json!({"chunk": 1})))
            .await
            .expect("checkpoint");

        // Long expired, but nobody took it over: its owner may still hand it on, and the
        // hand-over without a checkpoint clears the old one.
        let later = until + Duration::hours(2);
        let handed = store
            .transfer_lease(&lease, "B", later + Duration::minutes(15), None)
            .await
            .expect("hand over");
        assert_eq!(handed.owner, "B");
        assert_eq!(handed.checkpoint, None);
        assert_eq!(
            store.get_lease(&id, LeaseKind::Sync).await.expect("get"),
            Some(handed)
        );
    }

    pub async fn transfer_by_a_non_owner_is_lease_lost(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let until = now + Duration::minutes(15);
        let lease = store
            .acquire_lease(&id, LeaseKind::Token, "owner", now, until)
            .await
            .expect("acquire");
        let impostor = seatkeeper_shared::store::Lease {
            owner: "impostor".into(),
            ..lease.clone()
        };
        assert!(matches!(
            store.transfer_lease(&impostor, "B", until, None).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert_eq!(
            store.get_lease(&id, LeaseKind::Token).await.expect("get"),
            Some(lease.clone())
        );

        // A lease that is gone cannot be handed over either, and is not recreated.
        store.release_lease(&lease).await.expect("release");
        assert!(matches!(
            store.transfer_lease(&lease, "B", until, None).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert_eq!(
            store.get_lease(&id, LeaseKind::Token).await.expect("get"),
            None
        );
    }

    pub async fn lease_kinds_are_independent(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let until = now + Duration::minutes(5);
        for kind in [LeaseKind::Sync, LeaseKind::Token, LeaseKind::Reclaim] {
            store
                .acquire_lease(&id, kind, kind.as_str(), now, until)
                .await
                .expect("acquire");
        }
        store
            .acquire_lease(&iid("acme-2"), LeaseKind::Sync, "other", now, until)
            .await
            .expect("another integration's lease is separate");
        let token = store
            .get_lease(&id, LeaseKind::Token)
            .await
            .expect("get")
            .expect("held");
        assert_eq!(token.owner, "token");
        assert_eq!(token.kind, LeaseKind::Token);
    }

    pub async fn checkpoint_json_round_trips(store: &dyn Store) {
        let id = iid("acme");
        let now = at(2026, 11, 1, 3);
        let lease = store
            .acquire_lease(
                &id,
                LeaseKind::Sync,
                "run",
                now,
                now + Duration::minutes(15),
            )
            .await
            .expect("acquire");
        let checkpoint = serde_json::json!({
            "phase": "events",
            "stream_position": "1152922976252290886",
            "roster_chunks": 12,
            "fraction": 0.25,
            "done": false,
            "nothing": null,
            "seen": ["a", "b", "ü → ☃"],
            "nested": {"deep": {"deeper": [1, 2, 3]}}
        });
        let renewed = store
            .renew_lease(
                &lease,
                now,
                now + Duration::minutes(30),
                Some(checkpoint.clone()),
            )
            .await
            .expect("renew");
        assert_eq!(renewed.checkpoint, Some(checkpoint.clone()));
        let stored = store
            .get_lease(&id, LeaseKind::Sync)
            .await
            .expect("get")
            .expect("held");
        assert_eq!(stored.checkpoint, Some(checkpoint));
        assert_eq!(stored.expires_at, now + Duration::minutes(30));

        // Renewing without a checkpoint clears it.
        store
            .renew_lease(&stored, now, now + Duration::minutes(30), None)
            .await
            .expect("renew");
        let cleared = store
            .get_lease(&id, LeaseKind::Sync)
            .await
            .expect("get")
            .expect("held");
        assert_eq!(cleared.checkpoint, None);
    }

    // Roster chunks ----------------------------------------------------------------------

    pub async fn roster_chunks_are_read_in_order_and_deleted(store: &dyn Store) {
        let id = iid("acme");
        let chunk = |range: std::ops::Range<u32>| -> Vec<String> {
            range.map(|n| format!("user-{n}")).collect()
        };
        // Written out of order; chunk 10 must come after chunk 2.
        store
            .put_roster_chunk(&id, "sync-1", 10, &chunk(20..30))
            .await
            .expect("put");
        store
            .put_roster_chunk(&id, "sync-1", 0, &chunk(0..10))
            .await
            .expect("put");
        store
            .put_roster_chunk(&id, "sync-1", 2, &chunk(10..20))
            .await
            .expect("put");
        store
            .put_roster_chunk(&id, "sync-10", 0, &chunk(90..91))
            .await
            .expect("put");
        store
            .put_roster_chunk(&iid("acme-2"), "sync-1", 0, &chunk(80..81))
            .await
            .expect("put");

        assert_eq!(
            store.roster_chunks(&id, "sync-1").await.expect("read"),
            chunk(0..30)
        );
        assert_eq!(
            store.roster_chunks(&id, "sync-10").await.expect("read"),
            chunk(90..91)
        );
        assert!(
            store
                .roster_chunks(&id, "sync-2")
                .await
                .expect("read")
                .is_empty()
        );

        // Rewriting a chunk replaces it.
        store
            .put_roster_chunk(&id, "sync-1", 2, &chunk(10..12))
            .await
            .expect("put");
        let all: HashSet<String> = store
            .roster_chunks(&id, "sync-1")
            .await
            .expect("read")
            .into_iter()
            .collect();
        assert_eq!(all.len(), 22);

        store
            .delete_roster_chunks(&id, "sync-1")
            .await
            .expect("delete");
        assert!(
            store
                .roster_chunks(&id, "sync-1")
                .await
                .expect("read")
                .is_empty()
        );
        assert_eq!(
            store.roster_chunks(&id, "sync-10").await.expect("read"),
            chunk(90..91)
        );
        assert_eq!(
            store
                .roster_chunks(&iid("acme-2"), "sync-1")
                .await
                .expect("read"),
            chunk(80..81)
        );
        store
            .delete_roster_chunks(&id, "sync-1")
            .await
            .expect("deleting again is fine");
    }

    // Account indexes: login bound, kind -----------------------------------------------

    pub async fn accounts_by_license_type_with_a_login_bound_leave_out_recent_logins(
        store: &dyn Store,
    ) {
        let id = iid("acme");
        let bound = at(2026, 2, 1, 0);
        let mut vanished = account("vanished-never", Some("Business"), None);
        vanished.vanished_at = Some(at(2026, 1, 5, 0));
        let accounts = vec![
            account("never-1", Some("Business"), None),
            account("never-2", Some("Business"), None),
            account("old", Some("Business"), Some(at(2025, 6, 1, 8))),
            account("middle", Some("Business"), Some(at(2026, 1, 15, 8))),
            account(
                "just-before",
                Some("Business"),
                Some(bound - Duration::seconds(1)),
            ),
            account("at-bound", Some("Business"), Some(bound)),
            account("recent", Some("Business"), Some(at(2026, 3, 1, 8))),
            account("plus-old", Some("Business Plus"), Some(at(2020, 1, 1, 0))),
            vanished,
        ];
        store.put_accounts(&id, &accounts).await.expect("put");

        let expected = vec!["never-1", "never-2", "old", "middle", "just-before"];
        for limit in [100, 2, 1] {
            assert_eq!(
                all_by_license_type_before(store, &id, "Business", Some(bound), limit).await,
                expected,
                "pages of {limit}"
            );
        }
        // Without a bound, the newer ones follow in the same order.
        assert_eq!(
            all_by_license_type(store, &id, "Business", 3).await,
            vec![
                "never-1",
                "never-2",
                "old",
                "middle",
                "just-before",
                "at-bound",
                "recent"
            ]
        );
        // A bound before every login leaves only the never-logged-in.
        assert_eq!(
            all_by_license_type_before(store, &id, "Business", Some(at(2000, 1, 1, 0)), 1).await,
            vec!["never-1", "never-2"]
        );
        // The bound never lets another license type in.
        assert_eq!(
            all_by_license_type_before(store, &id, "Business Plus", Some(bound), 10).await,
            vec!["plus-old"]
        );
        // The last page of a bounded listing says so itself.
        let page = store
            .accounts_by_license_type(&id, "Business", Some(bound), None, 5)
            .await
            .expect("page");
        assert_eq!(page.items.len(), 5);
        assert_eq!(page.next, None);
    }

    pub async fn accounts_by_kind_are_listed_in_pages_in_external_id_order(store: &dyn Store) {
        let id = iid("acme");
        // Written in reverse so the order comes from the store; kinds interleaved.
        let mut accounts: Vec<Account> = (0..25)
            .rev()
            .map(|n| account(&format!("h{n:03}"), Some("Business"), None))
            .collect();
        for n in 0..3 {
            accounts.push(Account {
                kind: AccountKind::App,
                ..account(&format!("a{n}"), None, None)
            });
        }
        accounts.push(Account {
            kind: AccountKind::Service,
            ..account("AutomationUser_1", None, None)
        });
        store.put_accounts(&id, &accounts).await.expect("put");
        store
            .put_accounts(&iid("acme-2"), &[account("other", Some("Business"), None)])
            .await
            .expect("put other");

        let humans: Vec<String> = (0..25).map(|n| format!("h{n:03}")).collect();
        assert_eq!(
            all_by_kind(store, &id, AccountKind::Human, 10).await,
            humans
        );
        assert_eq!(all_by_kind(store, &id, AccountKind::Human, 1).await, humans);
        assert_eq!(
            all_by_kind(store, &id, AccountKind::App, 2).await,
            vec!["a0", "a1", "a2"]
        );
        assert_eq!(
            all_by_kind(store, &id, AccountKind::Service, 10).await,
            vec!["AutomationUser_1"]
        );
        assert!(
            all_by_kind(store, &id, AccountKind::External, 10)
                .await
                .is_empty()
        );

        let page = store
            .accounts_by_kind(&id, AccountKind::Human, None, 25)
            .await
            .expect("page");
        assert_eq!(page.items.len(), 25);
        assert_eq!(page.next, None, "the last page says so itself");
        assert_eq!(page.items[0], accounts[24], "whole accounts are returned");
    }

    pub async fn accounts_by_kind_follow_changes(store: &dyn Store) {
        let id = iid("acme");
        let a = account("a", Some("Business"), None);
        let b = account("b", Some("Business"), None);
        let c = account("c", Some("Business"), None);
        store
            .put_accounts(&id, &[a.clone(), b.clone(), c.clone()])
            .await
            .expect("put");

        // b turns out to be a service account, c vanishes.
        let b2 = Account {
            kind: AccountKind::Service,
            license_type: None,
            ..b.clone()
        };
        let mut c2 = c.clone();
        c2.vanished_at = Some(at(2026, 4, 2, 0));
        store
            .put_accounts(&id, &[b2, c2])
            .await
            .expect("put changes");
        assert_eq!(
            all_by_kind(store, &id, AccountKind::Human, 10).await,
            vec!["a"]
        );
        assert_eq!(
            all_by_kind(store, &id, AccountKind::Service, 10).await,
            vec!["b"]
        );

        // c comes back; b is a human again.
        store.put_accounts(&id, &[c, b]).await.expect("put again");
        assert_eq!(
            all_by_kind(store, &id, AccountKind::Human, 10).await,
            vec!["a", "b", "c"]
        );
        assert!(
            all_by_kind(store, &id, AccountKind::Service, 10)
                .await
                .is_empty()
        );
    }

    // Disconnect -------------------------------------------------------------------------

    pub async fn disconnect_releases_the_claim_and_keeps_the_integration(store: &dyn Store) {
        let original = integration("acme", "111");
        store.create_integration(&original).await.expect("create");
        let now = at(2026, 5, 1, 12);

        let disconnected = store
            .disconnect_integration(&original.id, now)
            .await
            .expect("disconnect");
        let expected = Integration {
            status: IntegrationStatus::Disconnected,
            enabled: false,
            updated_at: now,
            ..original.clone()
        };
        assert_eq!(disconnected, expected);
        assert_eq!(
            store.get_integration(&original.id).await.expect("get"),
            Some(expected.clone()),
            "the history stays readable"
        );
        assert_eq!(
            store.list_integrations().await.expect("list"),
            vec![expected.clone()]
        );
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "111")
                .await
                .expect("owner"),
            None
        );

        // Disconnecting again changes nothing.
        let again = store
            .disconnect_integration(&original.id, at(2026, 5, 2, 0))
            .await
            .expect("disconnect again");
        assert_eq!(again, expected);
        assert_eq!(
            store.get_integration(&original.id).await.expect("get"),
            Some(expected)
        );

        // The tenant can be connected again, by a new integration.
        let successor = integration("acme-new", "111");
        store
            .create_integration(&successor)
            .await
            .expect("the released tenant can be claimed");
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "111")
                .await
                .expect("owner"),
            Some(successor.id)
        );
    }

    pub async fn disconnect_never_releases_another_integrations_claim(store: &dyn Store) {
        let old = integration("acme", "111");
        store.create_integration(&old).await.expect("create");
        store
            .disconnect_integration(&old.id, at(2026, 5, 1, 0))
            .await
            .expect("disconnect");
        let successor = integration("acme-new", "111");
        store.create_integration(&successor).await.expect("reclaim");
        let bystander = integration("globex", "222");
        store.create_integration(&bystander).await.expect("create");

        // The old integration disconnected once more: the tenant is the successor's now.
        store
            .disconnect_integration(&old.id, at(2026, 5, 3, 0))
            .await
            .expect("disconnect again");
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "111")
                .await
                .expect("owner"),
            Some(successor.id.clone())
        );
        assert_eq!(
            store
                .tenant_owner(Provider::Box, "222")
                .await
                .expect("owner"),
            Some(bystander.id.clone())
        );
        // A third integration for the tenant is still refused.
        match store
            .create_integration(&integration("acme-third", "111"))
            .await
        {
            Err(StoreError::TenantClaimed { integration_id, .. }) => {
                assert_eq!(integration_id, "acme-new");
            }
            other => panic!("expected TenantClaimed, got {other:?}"),
        }
        assert_eq!(
            store.get_integration(&successor.id).await.expect("get"),
            Some(successor)
        );
    }

    pub async fn disconnect_of_a_missing_integration_is_not_found(store: &dyn Store) {
        let ghost = iid("ghost");
        match store
            .disconnect_integration(&ghost, at(2026, 5, 1, 0))
            .await
        {
            Err(StoreError::NotFound(id)) => assert_eq!(id, ghost),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(store.get_integration(&ghost).await.expect("get"), None);
    }

    // One-time items ---------------------------------------------------------------------

    pub async fn one_time_item_round_trips(store: &dyn Store) {
        let now = Utc::now();
        let ticket = one_time(OneTimeKind::OAuthTicket, 1, now + Duration::minutes(10));
        let state = one_time(OneTimeKind::OAuthState, 2, now + Duration::minutes(10));
        store.put_one_time(&ticket).await.expect("put ticket");
        store.put_one_time(&state).await.expect("put state");

        // A ticket never answers for a state of the same key, nor the other way round.
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthState, &ticket.key, now)
                .await
                .expect("take"),
            OneTimeTake::Missing
        );
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthTicket, &ticket.key, now)
                .await
                .expect("take"),
            OneTimeTake::Taken(ticket)
        );
        // Taken a millisecond before it expires.
        assert_eq!(
            store
                .take_one_time(
                    OneTimeKind::OAuthState,
                    &state.key,
                    state.expires_at - Duration::milliseconds(1)
                )
                .await
                .expect("take"),
            OneTimeTake::Taken(state)
        );
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthTicket, &digest(3), now)
                .await
                .expect("take"),
            OneTimeTake::Missing
        );
    }

    pub async fn replayed_one_time_item_is_missing(store: &dyn Store) {
        let now = Utc::now();
        let state = one_time(OneTimeKind::OAuthState, 1, now + Duration::minutes(10));
        store.put_one_time(&state).await.expect("put");
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthState, &state.key, now)
                .await
                .expect("take"),
            OneTimeTake::Taken(state.clone())
        );
        for _ in 0..2 {
            assert_eq!(
                store
                    .take_one_time(OneTimeKind::OAuthState, &state.key, now)
                    .await
                    .expect("replay"),
                OneTimeTake::Missing
            );
        }
    }

    pub async fn expired_one_time_item_is_never_taken(store: &dyn Store) {
        let now = Utc::now();
        let expired = one_time(OneTimeKind::OAuthState, 1, now - Duration::minutes(1));
        let expiring = one_time(OneTimeKind::OAuthState, 2, now + Duration::minutes(10));
        store.put_one_time(&expired).await.expect("put");
        store.put_one_time(&expiring).await.expect("put");

        for _ in 0..2 {
            assert_eq!(
                store
                    .take_one_time(OneTimeKind::OAuthState, &expired.key, now)
                    .await
                    .expect("take"),
                OneTimeTake::Expired
            );
        }
        // At its expiry instant an item is expired already.
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthState, &expiring.key, expiring.expires_at)
                .await
                .expect("take"),
            OneTimeTake::Expired
        );
        // Its key stays taken until it is cleaned up: no second item under it.
        match store.put_one_time(&expired).await {
            Err(StoreError::OneTimeExists(kind)) => assert_eq!(kind, OneTimeKind::OAuthState),
            other => panic!("expected OneTimeExists, got {other:?}"),
        }
    }

    pub async fn only_one_of_two_concurrent_takes_gets_the_item(store: &dyn Store) {
        let now = Utc::now();
        for n in 0..10 {
            let ticket = one_time(OneTimeKind::OAuthTicket, n, now + Duration::minutes(10));
            store.put_one_time(&ticket).await.expect("put");
            let take = || store.take_one_time(OneTimeKind::OAuthTicket, &ticket.key, now);
            let (a, b) = tokio::join!(take(), take());
            let mut outcomes = [a.expect("take a"), b.expect("take b")];
            outcomes.sort_by_key(|o| matches!(o, OneTimeTake::Missing));
            assert_eq!(
                outcomes,
                [OneTimeTake::Taken(ticket), OneTimeTake::Missing],
                "round {n}"
            );
        }
    }

    pub async fn putting_an_existing_one_time_key_is_refused(store: &dyn Store) {
        let now = Utc::now();
        let first = one_time(OneTimeKind::OAuthTicket, 7, now + Duration::minutes(10));
        store.put_one_time(&first).await.expect("put");
        let second = OneTimeItem {
            payload: serde_json::json!({"provider": "salesforce"}),
            expires_at: now + Duration::minutes(20),
            ..first.clone()
        };
        match store.put_one_time(&second).await {
            Err(StoreError::OneTimeExists(kind)) => assert_eq!(kind, OneTimeKind::OAuthTicket),
            other => panic!("expected OneTimeExists, got {other:?}"),
        }
        // The same key of the other kind is another item.
        let state = OneTimeItem {
            kind: OneTimeKind::OAuthState,
            ..first.clone()
        };
        store.put_one_time(&state).await.expect("put state");
        assert_eq!(
            store
                .take_one_time(OneTimeKind::OAuthTicket, &first.key, now)
                .await
                .expect("take"),
            OneTimeTake::Taken(first),
            "the first item is kept"
        );
    }

    pub async fn one_time_keys_must_be_digests(store: &dyn Store) {
        let now = Utc::now();
        for raw in [
            "",
            "a-raw-oauth-state-value",
            &"g".repeat(64),
            &"a".repeat(65),
        ] {
            let item = OneTimeItem {
                key: raw.to_owned(),
                ..one_time(OneTimeKind::OAuthState, 1, now + Duration::minutes(10))
            };
            match store.put_one_time(&item).await {
                Err(StoreError::InvalidOneTimeKey) => {}
                other => panic!("expected InvalidOneTimeKey for {raw:?}, got {other:?}"),
            }
            assert_eq!(
                store
                    .take_one_time(OneTimeKind::OAuthState, raw, now)
                    .await
                    .expect("take"),
                OneTimeTake::Missing
            );
        }
    }

    // Audit ------------------------------------------------------------------------------

    pub async fn audit_is_listed_newest_first_in_pages(store: &dyn Store) {
        let id = iid("acme");
        let start = at(2026, 3, 1, 0);
        // Written oldest first except for a few, so the order comes from the store; two
        // entries share one instant, and some times differ by a microsecond only.
        let mut entries: Vec<AuditEntry> = (0..23)
            .map(|n| audit_entry(&id, start + Duration::minutes(n), &format!("action_{n}")))
            .collect();
        entries.push(audit_entry(
            &id,
            start + Duration::minutes(5),
            "same_instant",
        ));
        entries.push(audit_entry(
            &id,
            start + Duration::minutes(5) + Duration::microseconds(1),
            "a_microsecond_later",
        ));
        entries.swap(0, 20);
        for entry in &entries {
            store.append_audit(entry).await.expect("append");
        }
        // Appending the same entry again (a retry) keeps one copy.
        store.append_audit(&entries[3]).await.expect("append again");

        let mut expected = entries.clone();
        expected.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        let (listed, pages) = all_audit(store, &id, 10).await;
        assert_eq!(pages, vec![10, 10, 5]);
        assert_eq!(listed, expected);
        assert_eq!(listed[0].action, "action_22");
        let (one_by_one, _) = all_audit(store, &id, 1).await;
        assert_eq!(one_by_one, expected);

        let page = store.list_audit(&id, None, 25).await.expect("page");
        assert_eq!(page.items.len(), 25);
        assert_eq!(page.next, None, "the last page says so itself");
    }

    pub async fn audit_of_one_integration_is_invisible_to_another(store: &dyn Store) {
        let acme = iid("acme");
        let acme2 = iid("acme-2");
        let mine = audit_entry(&acme, at(2026, 3, 1, 0), "settings_changed");
        let theirs = audit_entry(&acme2, at(2026, 3, 1, 1), "integration_connected");
        store.append_audit(&mine).await.expect("append");
        store.append_audit(&theirs).await.expect("append");
        // Other items of the integration's partition are not audit entries.
        store
            .put_accounts(&acme, &[account("1", Some("Business"), None)])
            .await
            .expect("put");
        store
            .put_task_run(&task_run(
                &acme,
                TaskKind::ApplicationRoster,
                at(2026, 3, 1, 2),
            ))
            .await
            .expect("put");

        assert_eq!(all_audit(store, &acme, 10).await.0, vec![mine]);
        assert_eq!(all_audit(store, &acme2, 10).await.0, vec![theirs]);
        assert!(all_audit(store, &iid("nobody"), 10).await.0.is_empty());
    }

    // Cursors ----------------------------------------------------------------------------

    pub async fn garbage_and_foreign_cursors_are_bad_cursors(store: &dyn Store) {
        let id = iid("acme");
        let accounts: Vec<Account> = (0..3)
            .map(|n| {
                account(
                    &format!("u{n}"),
                    Some("Business"),
                    Some(at(2026, 1, n + 1, 0)),
                )
            })
            .collect();
        store.put_accounts(&id, &accounts).await.expect("put");
        for n in 0..3 {
            store
                .append_audit(&audit_entry(&id, at(2026, 3, 1, n), "x"))
                .await
                .expect("append");
        }
        let accounts_cursor = next_cursor(store.list_accounts(&id, None, 1).await.expect("list"));
        let license_cursor = next_cursor(
            store
                .accounts_by_license_type(&id, "Business", None, None, 1)
                .await
                .expect("list"),
        );
        let kind_cursor = next_cursor(
            store
                .accounts_by_kind(&id, AccountKind::Human, None, 1)
                .await
                .expect("list"),
        );
        let audit_cursor = next_cursor(store.list_audit(&id, None, 1).await.expect("list"));

        let garbage = ["garbage", "", "%00", "u1", "'; DROP TABLE", "00"];
        for bad in garbage
            .iter()
            .map(|g| g.to_string())
            .chain([kind_cursor.clone(), audit_cursor.clone()])
        {
            assert!(
                is_bad_cursor(store.list_accounts(&id, Some(&bad), 10).await),
                "list_accounts {bad:?}"
            );
        }
        for bad in garbage
            .iter()
            .map(|g| g.to_string())
            .chain([accounts_cursor.clone(), kind_cursor.clone()])
        {
            assert!(
                is_bad_cursor(
                    store
                        .accounts_by_license_type(&id, "Business", None, Some(&bad), 10)
                        .await
                ),
                "accounts_by_license_type {bad:?}"
            );
        }
        for bad in garbage
            .iter()
            .map(|g| g.to_string())
            .chain([license_cursor.clone(), audit_cursor.clone()])
        {
            assert!(
                is_bad_cursor(
                    store
                        .accounts_by_kind(&id, AccountKind::Human, Some(&bad), 10)
                        .await
                ),
                "accounts_by_kind {bad:?}"
            );
        }
        for bad in garbage
            .iter()
            .map(|g| g.to_string())
            .chain([accounts_cursor.clone(), license_cursor.clone()])
        {
            assert!(
                is_bad_cursor(store.list_audit(&id, Some(&bad), 10).await),
                "list_audit {bad:?}"
            );
        }
        // A cursor past the login bound was never handed out by that bounded listing.
        let last = store
            .accounts_by_license_type(&id, "Business", None, None, 2)
            .await
            .expect("list");
        assert!(is_bad_cursor(
            store
                .accounts_by_license_type(
                    &id,
                    "Business",
                    Some(at(2026, 1, 2, 0)),
                    last.next.as_deref(),
                    10
                )
                .await
        ));

        // The cursors handed out work.
        assert_eq!(
            ids(&store
                .list_accounts(&id, Some(&accounts_cursor), 10)
                .await
                .expect("list")
                .items),
            vec!["u1", "u2"]
        );
        assert_eq!(
            ids(&store
                .accounts_by_license_type(&id, "Business", None, Some(&license_cursor), 10)
                .await
                .expect("list")
                .items),
            vec!["u1", "u2"]
        );
        assert_eq!(
            ids(&store
                .accounts_by_kind(&id, AccountKind::Human, Some(&kind_cursor), 10)
                .await
                .expect("list")
                .items),
            vec!["u1", "u2"]
        );
        assert_eq!(
            store
                .list_audit(&id, Some(&audit_cursor), 10)
                .await
                .expect("list")
                .items
                .len(),
            2
        );
    }

    // Reclaim jobs -----------------------------------------------------------------------

    pub async fn reclaim_job_round_trips_and_its_id_is_taken_once(store: &dyn Store) {
        let mut job = reclaim_job("acme", at(2026, 3, 1, 0));
        job.task_token = Some(TaskToken::new("token-from-step-functions"));
        job.execution_arn =
            Some("arn:aws:states:us-east-1:123456789012:execution:reclaim:x".into());
        job.batches = 3;
        job.counts.candidates = 120;
        store.create_reclaim_job(&job).await.expect("create");
        assert_eq!(
            store.get_reclaim_job(&job.id).await.expect("get"),
            Some(job.clone())
        );
        assert_eq!(
            store
                .get_reclaim_job(&ReclaimJobId::generate())
                .await
                .expect("get"),
            None
        );

        let again = ReclaimJob {
            batches: 9,
            ..job.clone()
        };
        match store.create_reclaim_job(&again).await {
            Err(StoreError::ReclaimJobExists(id)) => assert_eq!(id, job.id),
            other => panic!("expected ReclaimJobExists, got {other:?}"),
        }
        assert_eq!(
            store.get_reclaim_job(&job.id).await.expect("get"),
            Some(job),
            "the first job is kept"
        );
    }

    pub async fn reclaim_jobs_are_listed_newest_first_per_integration(store: &dyn Store) {
        let start = at(2026, 3, 1, 0);
        // Written out of order; two jobs share one instant, two differ by a microsecond.
        let mut jobs: Vec<ReclaimJob> = [3, 0, 6, 1, 5, 2, 4]
            .into_iter()
            .map(|n| reclaim_job("acme", start + Duration::hours(n)))
            .collect();
        jobs.push(reclaim_job("acme", start + Duration::hours(2)));
        jobs.push(reclaim_job(
            "acme",
            start + Duration::hours(2) + Duration::microseconds(1),
        ));
        for job in &jobs {
            store.create_reclaim_job(job).await.expect("create");
        }
        let theirs = reclaim_job("acme-2", start + Duration::hours(9));
        store.create_reclaim_job(&theirs).await.expect("create");
        // Other items of the integration's partition and of the jobs' are not jobs.
        store
            .append_audit(&audit_entry(&iid("acme"), start, "reclaim_requested"))
            .await
            .expect("audit");
        store
            .put_candidates(&jobs[0].id, &[candidate(&jobs[0], 1, "7")])
            .await
            .expect("candidates");

        let mut expected = jobs.clone();
        expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let (listed, pages) = all_jobs(store, &iid("acme"), 4).await;
        assert_eq!(pages, vec![4, 4, 1]);
        assert_eq!(listed, expected);
        assert_eq!(listed[0].created_at, start + Duration::hours(6));
        let (one_by_one, _) = all_jobs(store, &iid("acme"), 1).await;
        assert_eq!(one_by_one, expected);
        let whole = store
            .list_reclaim_jobs(&iid("acme"), None, 9)
            .await
            .expect("list");
        assert_eq!(whole.items.len(), 9);
        assert_eq!(whole.next, None, "the last page says so itself");

        assert_eq!(all_jobs(store, &iid("acme-2"), 10).await.0, vec![theirs]);
        assert!(all_jobs(store, &iid("nobody"), 10).await.0.is_empty());
        // Listing jobs leaves the integrations' own listing alone.
        assert!(store.list_integrations().await.expect("list").is_empty());
    }

    pub async fn modify_reclaim_job_applies_the_change_or_leaves_the_job(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let later = at(2026, 3, 1, 1);
        let awaiting = store
            .modify_reclaim_job(&job.id, &|j: &mut ReclaimJob| {
                j.move_to(JobState::AwaitingApproval, later)?;
                j.task_token = Some(TaskToken::new("token-1"));
                j.counts.candidates = 80;
                j.batches = 2;
                Ok(())
            })
            .await
            .expect("modify");
        assert_eq!(awaiting.state, JobState::AwaitingApproval);
        assert_eq!(
            store.get_reclaim_job(&job.id).await.expect("get"),
            Some(awaiting.clone())
        );

        // The requester approving their own job: refused by the job's own rule, and a
        // change made before the refusal is not kept either.
        let rails = ReclaimGuardRails::default();
        let result = store
            .modify_reclaim_job(&job.id, &|j: &mut ReclaimJob| {
                j.counts.acted = 99;
                j.approve(&requester(), &rails, later)
            })
            .await;
        match result {
            Err(StoreError::JobChangeRefused { job_id, reason }) => {
                assert_eq!(job_id, job.id);
                assert_eq!(
                    reason,
                    JobChangeRefused::Approval(ApprovalRefused::SelfApproval)
                );
            }
            other => panic!("expected JobChangeRefused, got {other:?}"),
        }
        // A transition the states do not allow.
        let result = store
            .modify_reclaim_job(&job.id, &|j: &mut ReclaimJob| {
                j.move_to(JobState::Running, later)
            })
            .await;
        assert!(
            matches!(
                result,
                Err(StoreError::JobChangeRefused {
                    reason: JobChangeRefused::Transition { .. },
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(
            store.get_reclaim_job(&job.id).await.expect("get"),
            Some(awaiting),
            "refused changes leave the job as it was"
        );

        let ghost = ReclaimJobId::generate();
        match store
            .modify_reclaim_job(&ghost, &|j: &mut ReclaimJob| {
                j.batches = 1;
                Ok(())
            })
            .await
        {
            Err(StoreError::ReclaimJobNotFound(id)) => assert_eq!(id, ghost),
            other => panic!("expected ReclaimJobNotFound, got {other:?}"),
        }
    }

    pub async fn modify_reclaim_job_never_touches_what_was_approved(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let changes: [&JobChange<'_>; 5] = [
            &|j: &mut ReclaimJob| {
                j.policy.excluded_logins.clear();
                Ok(())
            },
            &|j: &mut ReclaimJob| {
                j.requested_by = approver();
                Ok(())
            },
            &|j: &mut ReclaimJob| {
                j.integration_id = iid("acme-2");
                Ok(())
            },
            &|j: &mut ReclaimJob| {
                j.id = ReclaimJobId::generate();
                Ok(())
            },
            &|j: &mut ReclaimJob| {
                j.created_at += Duration::seconds(1);
                Ok(())
            },
        ];
        for change in changes {
            assert!(is_invalid(store.modify_reclaim_job(&job.id, change).await));
        }
        assert_eq!(
            store.get_reclaim_job(&job.id).await.expect("get"),
            Some(job.clone())
        );
        assert_eq!(all_jobs(store, &iid("acme"), 10).await.0, vec![job]);
    }

    pub async fn concurrent_job_modifications_are_all_kept(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        // Six batches finishing at once, each counting its account: none may be lost.
        let count = |j: &mut ReclaimJob| {
            j.counts.acted += 1;
            j.counts.seats_freed += 1;
            Ok(())
        };
        let modify = || store.modify_reclaim_job(&job.id, &count);
        let (a, b, c, d, e, f) =
            tokio::join!(modify(), modify(), modify(), modify(), modify(), modify());
        for result in [a, b, c, d, e, f] {
            result.expect("modify");
        }
        let stored = store
            .get_reclaim_job(&job.id)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored.counts.acted, 6);
        assert_eq!(stored.counts.seats_freed, 6);
    }

    pub async fn only_one_of_two_concurrent_approvals_wins(store: &dyn Store) {
        let rails = ReclaimGuardRails::default();
        for round in 0..5 {
            let job = reclaim_job("acme", at(2026, 3, 1, round));
            store.create_reclaim_job(&job).await.expect("create");
            store
                .modify_reclaim_job(&job.id, &|j: &mut ReclaimJob| {
                    j.move_to(JobState::AwaitingApproval, at(2026, 3, 2, 0))
                })
                .await
                .expect("await approval");
            let carol = Actor::Local {
                user: "carol".into(),
            };
            let approve_as = |who: Actor| {
                let rails = rails.clone();
                let id = job.id.clone();
                async move {
                    let change =
                        move |j: &mut ReclaimJob| j.approve(&who, &rails, at(2026, 3, 2, 1));
                    store.modify_reclaim_job(&id, &change).await
                }
            };
            let (a, b) = tokio::join!(approve_as(approver()), approve_as(carol.clone()));
            let (won, lost) = match (a, b) {
                (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
                other => panic!("round {round}: expected one approval, got {other:?}"),
            };
            assert!(
                matches!(
                    lost,
                    StoreError::JobChangeRefused {
                        reason: JobChangeRefused::Approval(ApprovalRefused::NotAwaitingApproval(
                            JobState::Approved
                        )),
                        ..
                    }
                ),
                "round {round}: {lost:?}"
            );
            let stored = store
                .get_reclaim_job(&job.id)
                .await
                .expect("get")
                .expect("stored");
            assert_eq!(stored, won);
            assert!(stored.approved_by == Some(approver()) || stored.approved_by == Some(carol));
        }
    }

    // Candidates and exclusions ----------------------------------------------------------

    pub async fn candidates_are_read_by_batch_and_only_the_approved_set_is_found(
        store: &dyn Store,
    ) {
        let job = planning_job(store, "acme").await;
        let other = planning_job(store, "acme").await;
        // Batch 1 full, batch 2 partly, batch 10 (whose key must not mix with batch 1's);
        // written in one call, out of order.
        let mut all: Vec<Candidate> = (0..50)
            .rev()
            .map(|n| candidate(&job, 1, &format!("u{n:03}")))
            .collect();
        all.extend((50..70).map(|n| candidate(&job, 2, &format!("u{n:03}"))));
        all.extend(["x3", "x1", "x2"].map(|e| candidate(&job, 10, e)));
        store.put_candidates(&job.id, &all).await.expect("put");
        store
            .put_candidates(&other.id, &[candidate(&other, 1, "intruder")])
            .await
            .expect("put other");

        let batch1 = store.list_candidates(&job.id, 1).await.expect("batch 1");
        let expected1: Vec<Candidate> = (0..50)
            .map(|n| candidate(&job, 1, &format!("u{n:03}")))
            .collect();
        assert_eq!(batch1, expected1);
        assert_eq!(
            store
                .list_candidates(&job.id, 2)
                .await
                .expect("batch 2")
                .len(),
            20
        );
        let batch10: Vec<String> = store
            .list_candidates(&job.id, 10)
            .await
            .expect("batch 10")
            .into_iter()
            .map(|c| c.external_id)
            .collect();
        assert_eq!(batch10, vec!["x1", "x2", "x3"]);
        assert!(
            store
                .list_candidates(&job.id, 3)
                .await
                .expect("batch 3")
                .is_empty()
        );

        assert_eq!(
            store.get_candidate(&job.id, 1, "u007").await.expect("get"),
            Some(candidate(&job, 1, "u007"))
        );
        // Outside the approved set: another batch, another job's, unknown.
        assert_eq!(
            store.get_candidate(&job.id, 2, "u007").await.expect("get"),
            None
        );
        assert_eq!(
            store
                .get_candidate(&job.id, 1, "intruder")
                .await
                .expect("get"),
            None
        );
        assert_eq!(
            store.get_candidate(&job.id, 1, "").await.expect("get"),
            None
        );
        assert_eq!(
            store
                .get_candidate(&ReclaimJobId::generate(), 1, "u007")
                .await
                .expect("get"),
            None
        );
        // Writing a candidate again (a retried plan) replaces it.
        store
            .put_candidates(&job.id, &[candidate(&job, 1, "u007")])
            .await
            .expect("put again");
        assert_eq!(
            store
                .list_candidates(&job.id, 1)
                .await
                .expect("batch 1")
                .len(),
            50
        );
    }

    pub async fn candidates_are_written_only_while_the_job_plans(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let other = planning_job(store, "acme").await;
        store
            .put_candidates(&job.id, &[candidate(&job, 1, "1")])
            .await
            .expect("put");
        // A candidate of another job, an empty id, a batch the keys cannot hold: refused,
        // and nothing of the call is written.
        for bad in [
            candidate(&other, 1, "2"),
            candidate(&job, 1, ""),
            candidate(&job, 1_000_000, "2"),
        ] {
            let call = [candidate(&job, 1, "3"), bad];
            assert!(is_invalid(store.put_candidates(&job.id, &call).await));
        }
        match store
            .put_candidates(&ReclaimJobId::generate(), &[candidate(&job, 1, "4")])
            .await
        {
            Err(StoreError::ReclaimJobNotFound(_)) => {}
            other => panic!("expected ReclaimJobNotFound, got {other:?}"),
        }

        store
            .modify_reclaim_job(&job.id, &|j: &mut ReclaimJob| {
                j.move_to(JobState::AwaitingApproval, at(2026, 3, 1, 1))
            })
            .await
            .expect("await approval");
        // The approved set never grows after the plan.
        assert!(is_invalid(
            store
                .put_candidates(&job.id, &[candidate(&job, 1, "late")])
                .await
        ));
        assert!(is_invalid(
            store
                .put_exclusions(&job.id, &[exclusion(&job, "late", SkipReason::Admin)])
                .await
        ));
        assert_eq!(
            store.list_candidates(&job.id, 1).await.expect("batch 1"),
            vec![candidate(&job, 1, "1")]
        );
        assert_eq!(
            store.get_candidate(&job.id, 1, "late").await.expect("get"),
            None
        );
    }

    pub async fn a_candidate_batch_never_holds_more_than_fifty(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let first: Vec<Candidate> = (0..30)
            .map(|n| candidate(&job, 1, &format!("a{n:02}")))
            .collect();
        store.put_candidates(&job.id, &first).await.expect("put 30");
        // 30 stored + 21 new is one too many, counted across calls.
        let more: Vec<Candidate> = (0..21)
            .map(|n| candidate(&job, 1, &format!("b{n:02}")))
            .collect();
        assert!(is_invalid(store.put_candidates(&job.id, &more).await));
        assert_eq!(
            store.list_candidates(&job.id, 1).await.expect("list").len(),
            30
        );
        // Twenty more fit, and rewriting stored ones does not count twice.
        let mut fitting = more[..20].to_vec();
        fitting.extend(first[..10].iter().cloned());
        store
            .put_candidates(&job.id, &fitting)
            .await
            .expect("put 20");
        assert_eq!(
            store.list_candidates(&job.id, 1).await.expect("list").len(),
            50
        );
        // In one call, too.
        let too_many: Vec<Candidate> = (0..51)
            .map(|n| candidate(&job, 2, &format!("c{n:02}")))
            .collect();
        assert!(is_invalid(store.put_candidates(&job.id, &too_many).await));
        assert!(
            store
                .list_candidates(&job.id, 2)
                .await
                .expect("list")
                .is_empty()
        );
    }

    pub async fn exclusions_are_listed_in_pages(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let other = planning_job(store, "acme").await;
        let reasons = [
            SkipReason::Admin,
            SkipReason::CoAdmin,
            SkipReason::ExcludedGroup,
            SkipReason::GracePeriod,
        ];
        let exclusions: Vec<Exclusion> = (0..23)
            .rev()
            .map(|n| exclusion(&job, &format!("e{n:02}"), reasons[n % reasons.len()]))
            .collect();
        store
            .put_exclusions(&job.id, &exclusions)
            .await
            .expect("put");
        // A retried plan writes them again: one copy each.
        store
            .put_exclusions(&job.id, &exclusions[..5])
            .await
            .expect("put again");
        store
            .put_exclusions(&other.id, &[exclusion(&other, "zz", SkipReason::Service)])
            .await
            .expect("put other");
        store
            .put_candidates(&job.id, &[candidate(&job, 1, "c1")])
            .await
            .expect("candidates are not exclusions");

        let mut listed = Vec::new();
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_exclusions(&job.id, cursor.as_deref(), 10)
                .await
                .expect("list");
            pages.push(page.items.len());
            listed.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, vec![10, 10, 3]);
        let mut expected = exclusions.clone();
        expected.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        assert_eq!(listed, expected);
        assert_eq!(
            store
                .list_exclusions(&other.id, None, 10)
                .await
                .expect("list")
                .items,
            vec![exclusion(&other, "zz", SkipReason::Service)]
        );
        assert!(is_invalid(
            store
                .put_exclusions(&job.id, &[exclusion(&other, "x", SkipReason::Admin)])
                .await
        ));
    }

    // Actions ----------------------------------------------------------------------------

    pub async fn action_steps_follow_the_order_once_each(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let c = candidate(&job, 1, "42");
        let t = at(2026, 3, 3, 0);
        assert_eq!(store.get_action(&job.id, "42").await.expect("get"), None);

        let started = ActionRecord::started(
            &c,
            ReclaimActionKind::Delete,
            Some("active".into()),
            Some("user".into()),
            t,
        );
        assert_eq!(
            store.advance_action(&started, None).await.expect("start"),
            started
        );
        // Started again (a retried batch that did not read first): refused.
        assert!(is_step_conflict(
            store.advance_action(&started, None).await,
            Some(ActionStep::Started)
        ));
        // A delete is never done before the transfer.
        assert!(is_invalid(
            store
                .advance_action(&started.done(1, t), Some(ActionStep::Started))
                .await
        ));
        let transferred = started.transferred("1001", t + Duration::minutes(1));
        store
            .advance_action(&transferred, Some(ActionStep::Started))
            .await
            .expect("transfer");
        // A replay of the old step finds the account further on.
        assert!(is_step_conflict(
            store
                .advance_action(&transferred, Some(ActionStep::Started))
                .await,
            Some(ActionStep::Transferred)
        ));
        let done = transferred.done(1, t + Duration::minutes(2));
        store
            .advance_action(&done, Some(ActionStep::Transferred))
            .await
            .expect("done");
        // Nothing follows a final step; a deleted user is never "restored".
        assert!(is_invalid(
            store
                .advance_action(&done.failed("late", t), Some(ActionStep::Done))
                .await
        ));
        let restore_as_deactivation = ActionRecord {
            action: ReclaimActionKind::Deactivate,
            ..done.advanced(ActionStep::Restored, t)
        };
        assert!(is_invalid(
            store
                .advance_action(&restore_as_deactivation, Some(ActionStep::Done))
                .await
        ));
        let stored = store
            .get_action(&job.id, "42")
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(stored, done);
        assert_eq!(stored.previous_status.as_deref(), Some("active"));
        assert_eq!(stored.previous_role.as_deref(), Some("user"));
        assert_eq!(stored.transferred_to.as_deref(), Some("1001"));

        // A deactivation: started → done → restored; a skip before starting.
        let d = candidate(&job, 1, "43");
        let deactivating = ActionRecord::started(
            &d,
            ReclaimActionKind::Deactivate,
            Some("active".into()),
            None,
            t,
        );
        store
            .advance_action(&deactivating, None)
            .await
            .expect("start");
        let deactivated = deactivating.done(0, t);
        store
            .advance_action(&deactivated, Some(ActionStep::Started))
            .await
            .expect("done");
        store
            .advance_action(
                &deactivated.advanced(ActionStep::Restored, t),
                Some(ActionStep::Done),
            )
            .await
            .expect("restored");
        let skipped = ActionRecord::skipped_before_start(
            &candidate(&job, 1, "44"),
            ReclaimActionKind::Delete,
            SkipReason::RecentActivity,
            t,
        );
        store.advance_action(&skipped, None).await.expect("skip");
        assert!(is_invalid(
            store
                .advance_action(
                    &skipped.advanced(ActionStep::Started, t),
                    Some(ActionStep::Skipped)
                )
                .await
        ));
        // A failed account is tried again from `started`.
        let e = candidate(&job, 1, "45");
        let first_try = ActionRecord::started(&e, ReclaimActionKind::Delete, None, None, t);
        store.advance_action(&first_try, None).await.expect("start");
        let failed = first_try.failed("Box answered 500", t);
        store
            .advance_action(&failed, Some(ActionStep::Started))
            .await
            .expect("failed");
        store
            .advance_action(
                &failed.advanced(ActionStep::Started, t),
                Some(ActionStep::Failed),
            )
            .await
            .expect("retried");
        assert_eq!(
            store
                .get_action(&job.id, "45")
                .await
                .expect("get")
                .map(|r| r.step),
            Some(ActionStep::Started)
        );
    }

    pub async fn only_one_of_two_racers_advances_a_step(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let t = at(2026, 3, 3, 0);
        for n in 0..8 {
            let c = candidate(&job, 1, &format!("r{n}"));
            let started = ActionRecord::started(&c, ReclaimActionKind::Delete, None, None, t);
            let (a, b) = tokio::join!(
                store.advance_action(&started, None),
                store.advance_action(&started, None)
            );
            let results = [a, b];
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "round {n}: {results:?}"
            );
            assert!(
                results
                    .into_iter()
                    .any(|r| is_step_conflict(r, Some(ActionStep::Started)))
            );

            // Two resumed invocations both about to transfer: one goes ahead.
            let transferred = started.transferred("1001", t);
            let (a, b) = tokio::join!(
                store.advance_action(&transferred, Some(ActionStep::Started)),
                store.advance_action(&transferred, Some(ActionStep::Started))
            );
            let results = [a, b];
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "round {n}: {results:?}"
            );
            assert!(
                results
                    .into_iter()
                    .any(|r| is_step_conflict(r, Some(ActionStep::Transferred)))
            );
        }
    }

    pub async fn actions_are_listed_in_pages(store: &dyn Store) {
        let job = planning_job(store, "acme").await;
        let other = planning_job(store, "acme").await;
        let t = at(2026, 3, 3, 0);
        let mut records = Vec::new();
        for n in (0..12).rev() {
            let c = candidate(&job, 1 + n / 5, &format!("a{n:02}"));
            let record = ActionRecord::started(&c, ReclaimActionKind::Deactivate, None, None, t);
            store.advance_action(&record, None).await.expect("start");
            records.push(record);
        }
        let theirs = ActionRecord::started(
            &candidate(&other, 1, "a00"),
            ReclaimActionKind::Deactivate,
            None,
            None,
            t,
        );
        store
            .advance_action(&theirs, None)
            .await
            .expect("start other");
        store
            .put_exclusions(&job.id, &[exclusion(&job, "a99", SkipReason::Admin)])
            .await
            .expect("exclusions are not actions");

        let mut listed = Vec::new();
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_actions(&job.id, cursor.as_deref(), 5)
                .await
                .expect("list");
            pages.push(page.items.len());
            listed.extend(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, vec![5, 5, 2]);
        records.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        assert_eq!(listed, records);
        assert_eq!(
            store
                .list_actions(&other.id, None, 5)
                .await
                .expect("list")
                .items,
            vec![theirs]
        );
    }

    // Account locks ----------------------------------------------------------------------

    pub async fn account_lock_is_exclusive_until_released_or_expired(store: &dyn Store) {
        let id = iid("acme");
        let now = Utc::now();
        let until = now + Duration::minutes(5);
        store
            .acquire_account_lock(&id, "42", "job-a", now, until)
            .await
            .expect("take");
        match store
            .acquire_account_lock(&id, "42", "job-b", now, until)
            .await
        {
            Err(StoreError::AccountLocked {
                integration_id,
                external_id,
                owner,
                expires_at,
            }) => {
                assert_eq!(integration_id, id);
                assert_eq!(external_id, "42");
                assert_eq!(owner, "job-a");
                assert_eq!(expires_at.timestamp_millis(), until.timestamp_millis());
            }
            other => panic!("expected AccountLocked, got {other:?}"),
        }
        // The holder takes it again (a resumed batch) and extends it.
        store
            .acquire_account_lock(&id, "42", "job-a", now, until + Duration::minutes(5))
            .await
            .expect("take again");
        // Other accounts and other integrations' accounts are other locks.
        store
            .acquire_account_lock(&id, "43", "job-b", now, until)
            .await
            .expect("another account");
        store
            .acquire_account_lock(&iid("acme-2"), "42", "job-b", now, until)
            .await
            .expect("another integration");

        // Releasing someone else's lock does nothing.
        store
            .release_account_lock(&id, "42", "job-b")
            .await
            .expect("release by non-owner");
        assert!(matches!(
            store
                .acquire_account_lock(&id, "42", "job-b", now, until)
                .await,
            Err(StoreError::AccountLocked { .. })
        ));
        store
            .release_account_lock(&id, "42", "job-a")
            .await
            .expect("release");
        store
            .release_account_lock(&id, "42", "job-a")
            .await
            .expect("release again");
        store
            .acquire_account_lock(&id, "42", "job-b", now, until)
            .await
            .expect("free again");

        // An expired lock is taken over (expiry is in the condition, not left to TTL).
        let later = until + Duration::milliseconds(1);
        store
            .acquire_account_lock(&id, "42", "job-c", later, later + Duration::minutes(5))
            .await
            .expect("take over");
        assert!(matches!(
            store
                .acquire_account_lock(&id, "42", "job-b", later, later + Duration::minutes(5))
                .await,
            Err(StoreError::AccountLocked { owner, .. }) if owner == "job-c"
        ));
        // Exactly at its expiry a lock still holds.
        assert!(matches!(
            store
                .acquire_account_lock(&id, "43", "job-c", until, until + Duration::minutes(5))
                .await,
            Err(StoreError::AccountLocked { .. })
        ));
    }

    // Cursors of the reclaim listings ------------------------------------------------------

    pub async fn reclaim_listings_refuse_garbage_and_foreign_cursors(store: &dyn Store) {
        let id = iid("acme");
        let job = planning_job(store, "acme").await;
        store
            .create_reclaim_job(&reclaim_job("acme", at(2026, 2, 1, 0)))
            .await
            .expect("create");
        let t = at(2026, 3, 3, 0);
        for n in 0..2 {
            let e = format!("x{n}");
            store
                .put_exclusions(&job.id, &[exclusion(&job, &e, SkipReason::Admin)])
                .await
                .expect("exclusion");
            let record = ActionRecord::started(
                &candidate(&job, 1, &e),
                ReclaimActionKind::Delete,
                None,
                None,
                t,
            );
            store.advance_action(&record, None).await.expect("action");
        }
        store
            .append_audit(&audit_entry(&id, t, "x"))
            .await
            .expect("audit");
        store
            .append_audit(&audit_entry(&id, t + Duration::hours(1), "y"))
            .await
            .expect("audit");
        let jobs_cursor = next_cursor(store.list_reclaim_jobs(&id, None, 1).await.expect("list"));
        let skip_cursor = next_cursor(store.list_exclusions(&job.id, None, 1).await.expect("list"));
        let act_cursor = next_cursor(store.list_actions(&job.id, None, 1).await.expect("list"));
        let audit_cursor = next_cursor(store.list_audit(&id, None, 1).await.expect("list"));

        let garbage = ["garbage", "", "%00", "x1", "00"];
        let others = |mine: &str| -> Vec<String> {
            garbage
                .iter()
                .map(|g| g.to_string())
                .chain(
                    [&jobs_cursor, &skip_cursor, &act_cursor, &audit_cursor]
                        .into_iter()
                        .filter(|c| c.as_str() != mine)
                        .cloned(),
                )
                .collect()
        };
        for bad in others(&jobs_cursor) {
            assert!(
                is_bad_cursor(store.list_reclaim_jobs(&id, Some(&bad), 10).await),
                "list_reclaim_jobs {bad:?}"
            );
        }
        for bad in others(&skip_cursor) {
            assert!(
                is_bad_cursor(store.list_exclusions(&job.id, Some(&bad), 10).await),
                "list_exclusions {bad:?}"
            );
        }
        for bad in others(&act_cursor) {
            assert!(
                is_bad_cursor(store.list_actions(&job.id, Some(&bad), 10).await),
                "list_actions {bad:?}"
            );
        }
        // The cursors handed out work.
        assert_eq!(
            store
                .list_reclaim_jobs(&id, Some(&jobs_cursor), 10)
                .await
                .expect("list")
                .items
                .iter()
                .map(|j| j.created_at)
                .collect::<Vec<_>>(),
            vec![at(2026, 2, 1, 0)]
        );
        let rest = store
            .list_exclusions(&job.id, Some(&skip_cursor), 10)
            .await
            .expect("list");
        assert_eq!(
            rest.items
                .iter()
                .map(|e| e.external_id.as_str())
                .collect::<Vec<_>>(),
            vec!["x1"]
        );
        let rest = store
            .list_actions(&job.id, Some(&act_cursor), 10)
            .await
            .expect("list");
        assert_eq!(
            rest.items
                .iter()
                .map(|a| a.external_id.as_str())
                .collect::<Vec<_>>(),
            vec!["x1"]
        );
    }
}
