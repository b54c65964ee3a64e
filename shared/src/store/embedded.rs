//! Embedded adapter of the [`Store`](super::Store) port: one redb file, for the CLI.
//!
//! It mirrors the DynamoDB single-table layout (design §4) so both adapters behave alike:
//! - `items`: `"{pk}\u{1f}{sk}"` → the domain value as JSON. Prefix range scans serve queries;
//!   `\u{1f}` sorts below every printable character, so keys order like `(pk, sk)` pairs.
//! - `gsi1`: `"INTS\u{1f}{integration id}"` → pk, listing integrations without scanning
//!   their accounts.
//! - `gsi2`: `"{gsi2pk}\u{1f}{gsi2sk}\u{1f}{external id}"` → external id: "accounts of a license
//!   type, oldest login first", kept up to date on every account write.
//!
//! Every conditional write (tenant claim, leases) reads and writes inside one write
//! transaction; redb runs one write transaction at a time, so the check cannot race.

use super::{Keys, Lease, LeaseKind, Page, Store, StoreError};
use crate::domain::{
    Account, EventCoverage, Integration, IntegrationId, Provider, Snapshot, TaskKind, TaskRun,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<&str, &str> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<&str, &str> = TableDefinition::new("gsi2");

/// Separates the parts of a composite key.
const SEP: char = '\u{1f}';

/// redb's page cache defaults to 1 GiB; a sync of a 100 000-user tenant must stay well
/// under 100 MiB RSS, and the OS page cache serves re-reads anyway.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// The embedded store. Cheap to clone (the database is shared).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

/// Who claimed a tenant (the `TENANT#…`/`META` item).
#[derive(Debug, Serialize, Deserialize)]
struct TenantClaim {
    integration_id: IntegrationId,
    provider: Provider,
    tenant_id: String,
}

/// The fields of a stored account that decide its `gsi2` entry; parsing only these keeps
/// index maintenance cheap when a sync rewrites many accounts.
#[derive(Deserialize)]
struct Gsi2Fields {
    external_id: String,
    license_type: Option<String>,
    last_login_at: Option<DateTime<Utc>>,
    #[serde(default)]
    vanished_at: Option<DateTime<Utc>>,
}

impl EmbeddedStore {
    /// Writes `next` over the lease if `held_by` still holds it (expired or not), in one
    /// write transaction; `LeaseLost` otherwise.
    async fn replace_held_lease(&self, held_by: String, next: Lease) -> Result<Lease, StoreError> {
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(
                &Keys::integration(&next.integration_id),
                &Keys::lease(next.kind),
            );
            match get_json::<Lease>(&items, &item_key)? {
                Some(held) if held.owner == held_by => {
                    insert_json(&mut items, &item_key, &next)?;
                    Ok(next)
                }
                _ => Err(StoreError::LeaseLost {
                    integration_id: next.integration_id,
                    kind: next.kind,
                }),
            }
        })
        .await
    }

    /// Opens (or creates) the store file, creating its parent directories.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::backend(format!("cannot create {}", dir.display()), e))?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::backend(format!("cannot open {}", path.display()), e))?;
        Self::with_tables(db)
    }

    /// A store that lives in memory only (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::backend("cannot create an in-memory store", e))?;
        Self::with_tables(db)
    }

    /// Creates the tables up front, so read transactions never meet a missing table.
    fn with_tables(db: Database) -> Result<Self, StoreError> {
        write_txn(&db, |txn| {
            txn.open_table(ITEMS).map_err(redb_err)?;
            txn.open_table(GSI1).map_err(redb_err)?;
            txn.open_table(GSI2).map_err(redb_err)?;
            Ok(())
        })?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Seat holders of one license type, oldest login first (never-logged-in ones first of
    /// all), `limit` at a time. Vanished accounts are left out.
    pub async fn accounts_by_license_type(
        &self,
        id: &IntegrationId,
        license_type: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let prefix = format!("{}{SEP}", Keys::license_type_partition(id, license_type));
        let start = match cursor {
            Some(c) => Bound::Excluded(format!("{prefix}{}", gsi2_suffix_from_cursor(c)?)),
            None => Bound::Included(prefix.clone()),
        };
        let pk = Keys::integration(id);
        let limit = limit.max(1);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let gsi2 = txn.open_table(GSI2).map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut accounts = Vec::with_capacity(limit);
            let mut next = None;
            for entry in scan_index(&gsi2, &prefix, start)? {
                let (index_key, external_id) = entry?;
                if accounts.len() == limit {
                    next = accounts.last().map(gsi2_cursor);
                    break;
                }
                let item_key = key(&pk, &Keys::account(&external_id));
                match get_json::<Account>(&items, &item_key)? {
                    Some(account) => accounts.push(account),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "index entry {index_key:?} points to a missing account"
                        )));
                    }
                }
            }
            Ok(Page {
                items: accounts,
                next,
            })
        })
        .await
    }

    /// Runs blocking redb work off the async worker threads.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::backend("embedded store task failed", e))?
    }

    /// Runs `work` in one write transaction: committed if it succeeds, rolled back if not.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.run(move |db| write_txn(db, work)).await
    }

    async fn get_item<T>(&self, item_key: String) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            get_json(&items, &item_key)
        })
        .await
    }

    async fn put_item<T: Serialize>(&self, item_key: String, value: &T) -> Result<(), StoreError> {
        let bytes = to_json(value)?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            items
                .insert(item_key.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
            Ok(())
        })
        .await
    }

    /// Every value under `pk`/`sk_prefix`, in key order.
    async fn query<T>(&self, pk: String, sk_prefix: String) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let prefix = key(&pk, &sk_prefix);
            let start = Bound::Included(prefix.clone());
            scan(&items, &prefix, start)?
                .map(|entry| entry.and_then(|(k, v)| decode(&k, &v)))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let integration = integration.clone();
        let bytes = to_json(&integration)?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let claim_key = key(
                &Keys::tenant(integration.provider, &integration.tenant_id),
                Keys::META,
            );
            if let Some(claim) = get_json::<TenantClaim>(&items, &claim_key)? {
                return Err(StoreError::TenantClaimed {
                    provider: integration.provider,
                    tenant_id: integration.tenant_id,
                    integration_id: claim.integration_id.to_string(),
                });
            }
            let pk = Keys::integration(&integration.id);
            let item_key = key(&pk, Keys::META);
            if items.get(item_key.as_str()).map_err(redb_err)?.is_some() {
                return Err(StoreError::AlreadyExists(integration.id));
            }
            let claim = to_json(&TenantClaim {
                integration_id: integration.id.clone(),
                provider: integration.provider,
                tenant_id: integration.tenant_id.clone(),
            })?;
            items
                .insert(claim_key.as_str(), claim.as_slice())
                .map_err(redb_err)?;
            items
                .insert(item_key.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
            let mut gsi1 = txn.open_table(GSI1).map_err(redb_err)?;
            gsi1.insert(gsi1_key(&integration.id).as_str(), pk.as_str())
                .map_err(redb_err)?;
            Ok(())
        })
        .await
    }

    async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        self.get_item(key(&Keys::integration(id), Keys::META)).await
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let gsi1 = txn.open_table(GSI1).map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let prefix = format!("{}{SEP}", Keys::INTEGRATIONS_GSI);
            let mut out = Vec::new();
            for entry in scan_index(&gsi1, &prefix, Bound::Included(prefix.clone()))? {
                let (_, pk) = entry?;
                if let Some(integration) = get_json(&items, &key(&pk, Keys::META))? {
                    out.push(integration);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn update_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let id = integration.id.clone();
        let bytes = to_json(integration)?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(&Keys::integration(&id), Keys::META);
            if items.get(item_key.as_str()).map_err(redb_err)?.is_none() {
                return Err(StoreError::NotFound(id));
            }
            items
                .insert(item_key.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
            Ok(())
        })
        .await
    }

    async fn modify_integration(
        &self,
        id: &IntegrationId,
        change: &(dyn for<'i> Fn(&'i mut Integration) + Send + Sync),
    ) -> Result<Integration, StoreError> {
        // Read, change and write in one write transaction: redb runs one at a time, so no
        // other write can slip in between. `change` is borrowed, so this transaction runs
        // on the calling thread (see `write_here`).
        write_here(&self.db, |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let pk = Keys::integration(id);
            let item_key = key(&pk, Keys::META);
            let Some(mut integration) = get_json::<Integration>(&items, &item_key)? else {
                return Err(StoreError::NotFound(id.clone()));
            };
            change(&mut integration);
            if integration.id != *id {
                return Err(id_changed(id));
            }
            insert_json(&mut items, &item_key, &integration)?;
            let mut gsi1 = txn.open_table(GSI1).map_err(redb_err)?;
            gsi1.insert(gsi1_key(id).as_str(), pk.as_str())
                .map_err(redb_err)?;
            Ok(integration)
        })
    }

    async fn tenant_owner(
        &self,
        provider: Provider,
        tenant_id: &str,
    ) -> Result<Option<IntegrationId>, StoreError> {
        let claim: Option<TenantClaim> = self
            .get_item(key(&Keys::tenant(provider, tenant_id), Keys::META))
            .await?;
        Ok(claim.map(|c| c.integration_id))
    }

    async fn get_accounts(
        &self,
        id: &IntegrationId,
        external_ids: &[String],
    ) -> Result<Vec<Account>, StoreError> {
        let pk = Keys::integration(id);
        let external_ids = external_ids.to_vec();
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for external_id in external_ids.iter().filter(|e| seen.insert(e.as_str())) {
                if let Some(account) = get_json(&items, &key(&pk, &Keys::account(external_id)))? {
                    out.push(account);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_accounts(
        &self,
        id: &IntegrationId,
        accounts: &[Account],
    ) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let id = id.clone();
        // Encoded here so the blocking task only writes.
        let encoded = accounts
            .iter()
            .map(|a| Ok((a.external_id.clone(), gsi2_key(&id, a), to_json(a)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut gsi2 = txn.open_table(GSI2).map_err(redb_err)?;
            let pk = Keys::integration(&id);
            for (external_id, new_index, bytes) in &encoded {
                let item_key = key(&pk, &Keys::account(external_id));
                let old_index = items
                    .insert(item_key.as_str(), bytes.as_slice())
                    .map_err(redb_err)?
                    .map(|old| old_gsi2_key(&id, &item_key, old.value()))
                    .transpose()?
                    .flatten();
                reindex(&mut gsi2, old_index, new_index.as_deref(), external_id)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_accounts(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let pk = Keys::integration(id);
        let prefix = key(&pk, Keys::ACCOUNT_PREFIX);
        let start = match cursor {
            Some(c) => Bound::Excluded(key(&pk, &Keys::account(c))),
            None => Bound::Included(prefix.clone()),
        };
        let limit = limit.max(1);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut accounts: Vec<Account> = Vec::with_capacity(limit);
            let mut next = None;
            for entry in scan(&items, &prefix, start)? {
                let (k, v) = entry?;
                if accounts.len() == limit {
                    next = accounts.last().map(|a| a.external_id.clone());
                    break;
                }
                accounts.push(decode(&k, &v)?);
            }
            Ok(Page {
                items: accounts,
                next,
            })
        })
        .await
    }

    async fn get_event_coverage(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<EventCoverage>, StoreError> {
        self.get_item(key(&Keys::integration(id), Keys::COVERAGE))
            .await
    }

    async fn put_event_coverage(
        &self,
        id: &IntegrationId,
        coverage: &EventCoverage,
    ) -> Result<(), StoreError> {
        self.put_item(key(&Keys::integration(id), Keys::COVERAGE), coverage)
            .await
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let item_key = key(
            &Keys::integration(&snapshot.integration_id),
            &Keys::snapshot(snapshot.date),
        );
        self.put_item(item_key, snapshot).await
    }

    async fn latest_snapshot(&self, id: &IntegrationId) -> Result<Option<Snapshot>, StoreError> {
        let prefix = key(&Keys::integration(id), Keys::SNAPSHOT_PREFIX);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            match scan(&items, &prefix, Bound::Included(prefix.clone()))?.next_back() {
                Some(entry) => entry.and_then(|(k, v)| decode(&k, &v)).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_snapshots(
        &self,
        id: &IntegrationId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Snapshot>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let pk = Keys::integration(id);
        let first = key(&pk, &Keys::snapshot(from));
        let last = key(&pk, &Keys::snapshot(to));
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            items
                .range::<&str>(first.as_str()..=last.as_str())
                .map_err(redb_err)?
                .map(|entry| {
                    let (k, v) = entry.map_err(redb_err)?;
                    decode(k.value(), v.value())
                })
                .collect()
        })
        .await
    }

    async fn put_task_run(&self, run: &TaskRun) -> Result<(), StoreError> {
        let item_key = key(
            &Keys::integration(&run.integration_id),
            &Keys::task_run(run.kind, run.started_at),
        );
        self.put_item(item_key, run).await
    }

    async fn list_task_runs(
        &self,
        id: &IntegrationId,
        kind: Option<TaskKind>,
        limit: usize,
    ) -> Result<Vec<TaskRun>, StoreError> {
        let pk = Keys::integration(id);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            // Keys sort by kind first, so "newest first across kinds" takes the newest
            // `limit` of each kind and merges them.
            let mut runs: Vec<TaskRun> = Vec::new();
            for kind in kind.map_or_else(|| all_task_kinds().to_vec(), |k| vec![k]) {
                let prefix = key(&pk, &Keys::task_prefix(Some(kind)));
                for entry in scan(&items, &prefix, Bound::Included(prefix.clone()))?
                    .rev()
                    .take(limit)
                {
                    let (k, v) = entry?;
                    runs.push(decode(&k, &v)?);
                }
            }
            runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
            runs.truncate(limit);
            Ok(runs)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        let id = id.clone();
        let owner = owner.to_owned();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(&Keys::integration(&id), &Keys::lease(kind));
            let checkpoint = match get_json::<Lease>(&items, &item_key)? {
                // A continuation keeps the checkpoint it saved.
                Some(held) if held.owner == owner => held.checkpoint,
                Some(held) if held.expires_at >= now => {
                    return Err(StoreError::LeaseHeld {
                        integration_id: id,
                        kind,
                        owner: held.owner,
                        expires_at: held.expires_at,
                    });
                }
                // Free, or taken over after expiry: a new holder starts afresh.
                _ => None,
            };
            let lease = Lease {
                integration_id: id,
                kind,
                owner,
                expires_at,
                checkpoint,
            };
            insert_json(&mut items, &item_key, &lease)?;
            Ok(lease)
        })
        .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        _now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError> {
        let renewed = Lease {
            expires_at,
            checkpoint,
            ..lease.clone()
        };
        self.replace_held_lease(lease.owner.clone(), renewed).await
    }

    async fn transfer_lease(
        &self,
        lease: &Lease,
        new_owner: &str,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError> {
        let handed_over = Lease {
            owner: new_owner.to_owned(),
            expires_at,
            checkpoint,
            ..lease.clone()
        };
        // Expired or not: only who holds it counts.
        self.replace_held_lease(lease.owner.clone(), handed_over)
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let item_key = key(
            &Keys::integration(&lease.integration_id),
            &Keys::lease(lease.kind),
        );
        let owner = lease.owner.clone();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let ours = matches!(
                get_json::<Lease>(&items, &item_key)?,
                Some(held) if held.owner == owner
            );
            if ours {
                items.remove(item_key.as_str()).map_err(redb_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
    ) -> Result<Option<Lease>, StoreError> {
        self.get_item(key(&Keys::integration(id), &Keys::lease(kind)))
            .await
    }

    async fn put_roster_chunk(
        &self,
        id: &IntegrationId,
        sync_id: &str,
        chunk: u32,
        external_ids: &[String],
    ) -> Result<(), StoreError> {
        let item_key = key(&Keys::integration(id), &Keys::roster_chunk(sync_id, chunk));
        self.put_item(item_key, &external_ids).await
    }

    async fn roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let chunks: Vec<Vec<String>> = self
            .query(Keys::integration(id), Keys::roster_prefix(sync_id))
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    async fn delete_roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<(), StoreError> {
        let prefix = key(&Keys::integration(id), &Keys::roster_prefix(sync_id));
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let keys = scan(&items, &prefix, Bound::Included(prefix.clone()))?
                .map(|entry| entry.map(|(k, _)| k))
                .collect::<Result<Vec<_>, _>>()?;
            for k in keys {
                items.remove(k.as_str()).map_err(redb_err)?;
            }
            Ok(())
        })
        .await
    }
}

/// Every task kind, for "newest runs of any kind". The match makes a new kind a compile
/// error here instead of runs that silently never list.
pub(crate) fn all_task_kinds() -> [TaskKind; 5] {
    let all = [
        TaskKind::ApplicationRoster,
        TaskKind::LicenseInformation,
        TaskKind::LicenseDifferentiation,
        TaskKind::ApplicationAccess,
        TaskKind::Reclamation,
    ];
    for kind in all {
        match kind {
            TaskKind::ApplicationRoster
            | TaskKind::LicenseInformation
            | TaskKind::LicenseDifferentiation
            | TaskKind::ApplicationAccess
            | TaskKind::Reclamation => {}
        }
    }
    all
}

/// The opaque cursor of `accounts_by_license_type`: `"{gsi2sk}|{external id}"`, shared
/// with the DynamoDB adapter (`gsi2sk` never contains `|`).
pub(crate) fn gsi2_cursor(account: &Account) -> String {
    format!(
        "{}|{}",
        Keys::last_login_sort(account.last_login_at),
        account.external_id
    )
}

/// Splits a `gsi2_cursor` into `(gsi2sk, external id)`.
pub(crate) fn parse_gsi2_cursor(cursor: &str) -> Result<(&str, &str), StoreError> {
    cursor
        .split_once('|')
        .ok_or_else(|| StoreError::Corrupt(format!("invalid cursor {cursor:?}")))
}

fn gsi2_suffix_from_cursor(cursor: &str) -> Result<String, StoreError> {
    let (sort, external_id) = parse_gsi2_cursor(cursor)?;
    Ok(format!("{sort}{SEP}{external_id}"))
}

fn key(pk: &str, sk: &str) -> String {
    format!("{pk}{SEP}{sk}")
}

fn gsi1_key(id: &IntegrationId) -> String {
    format!("{}{SEP}{id}", Keys::INTEGRATIONS_GSI)
}

/// The `gsi2` entry of an account: only seat holders are listed by license type.
fn gsi2_key(id: &IntegrationId, account: &Account) -> Option<String> {
    let license_type = account.license_type.as_deref()?;
    account.vanished_at.is_none().then(|| {
        gsi2_entry(
            id,
            license_type,
            account.last_login_at,
            &account.external_id,
        )
    })
}

fn gsi2_entry(
    id: &IntegrationId,
    license_type: &str,
    last_login: Option<DateTime<Utc>>,
    external_id: &str,
) -> String {
    format!(
        "{}{SEP}{}{SEP}{external_id}",
        Keys::license_type_partition(id, license_type),
        Keys::last_login_sort(last_login)
    )
}

fn old_gsi2_key(
    id: &IntegrationId,
    item_key: &str,
    old: &[u8],
) -> Result<Option<String>, StoreError> {
    let old: Gsi2Fields = serde_json::from_slice(old)
        .map_err(|e| StoreError::Corrupt(format!("{item_key:?}: {e}")))?;
    Ok(match (old.license_type, old.vanished_at) {
        (Some(lt), None) => Some(gsi2_entry(id, &lt, old.last_login_at, &old.external_id)),
        _ => None,
    })
}

/// Moves an account's `gsi2` entry when its license type, last login or seat changed.
fn reindex(
    gsi2: &mut Table<&str, &str>,
    old: Option<String>,
    new: Option<&str>,
    external_id: &str,
) -> Result<(), StoreError> {
    if old.as_deref() == new {
        return Ok(());
    }
    if let Some(old) = old {
        gsi2.remove(old.as_str()).map_err(redb_err)?;
    }
    if let Some(new) = new {
        gsi2.insert(new, external_id).map_err(redb_err)?;
    }
    Ok(())
}

/// The entries of `table` from `start` while their keys begin with `prefix`.
fn open_range<'t, V: redb::Value + 'static>(
    table: &'t impl ReadableTable<&'static str, V>,
    prefix: &str,
    start: &Bound<String>,
) -> Result<redb::Range<'t, &'static str, V>, StoreError> {
    let end = prefix_end(prefix);
    let lower = start.as_ref().map(String::as_str);
    let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    table.range::<&str>((lower, upper)).map_err(redb_err)
}

/// [`open_range`] over `items`, as owned `(key, JSON bytes)` pairs.
fn scan<'t>(
    table: &'t impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    start: Bound<String>,
) -> Result<impl DoubleEndedIterator<Item = Result<(String, Vec<u8>), StoreError>> + 't, StoreError>
{
    Ok(open_range(table, prefix, &start)?.map(|entry| {
        let (k, v) = entry.map_err(redb_err)?;
        Ok((k.value().to_owned(), v.value().to_vec()))
    }))
}

/// [`open_range`] over an index table, as owned `(index key, target)` pairs.
fn scan_index<'t>(
    table: &'t impl ReadableTable<&'static str, &'static str>,
    prefix: &str,
    start: Bound<String>,
) -> Result<impl DoubleEndedIterator<Item = Result<(String, String), StoreError>> + 't, StoreError>
{
    Ok(open_range(table, prefix, &start)?.map(|entry| {
        let (k, v) = entry.map_err(redb_err)?;
        Ok((k.value().to_owned(), v.value().to_owned()))
    }))
}

/// The smallest string above every string starting with `prefix` (our prefixes end in
/// `#` or the separator, so bumping the last character is enough).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut end = prefix.to_owned();
    let last = end.pop()?;
    let bumped = char::from_u32(u32::from(last) + 1)?;
    end.push(bumped);
    Some(end)
}

fn write_txn<T>(
    db: &Database,
    work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write().map_err(redb_err)?;
    match work(&txn) {
        Ok(value) => {
            txn.commit().map_err(redb_err)?;
            Ok(value)
        }
        Err(e) => {
            // Nothing of a refused or failed write may stay behind.
            txn.abort().map_err(redb_err)?;
            Err(e)
        }
    }
}

/// [`write_txn`] on the calling thread, for work that borrows from the caller (so cannot
/// move to `spawn_blocking`). On a multi-threaded runtime the worker hands its other tasks
/// off while it blocks; a current-thread runtime simply waits for the (short) transaction.
fn write_here<T>(
    db: &Database,
    work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| write_txn(db, work))
    } else {
        write_txn(db, work)
    }
}

/// `modify_integration` may change anything but which integration it is.
pub(crate) fn id_changed(id: &IntegrationId) -> StoreError {
    StoreError::Backend {
        message: format!("a modification of integration {id} tried to change its id"),
        source: None,
    }
}

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    item_key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(item_key).map_err(redb_err)? {
        Some(bytes) => decode(item_key, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn insert_json<T: Serialize>(
    table: &mut Table<&str, &[u8]>,
    item_key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = to_json(value)?;
    table.insert(item_key, bytes.as_slice()).map_err(redb_err)?;
    Ok(())
}

fn decode<T: DeserializeOwned>(item_key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{item_key:?}: {e}")))
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::backend("cannot encode an item", e))
}

fn redb_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::backend("embedded store failed", e.into())
}
