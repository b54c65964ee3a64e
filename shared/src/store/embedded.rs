//! Embedded adapter of the [`Store`](super::Store) port: one redb file, for the CLI.
//!
//! It mirrors the DynamoDB single-table layout (design §4) so both adapters behave alike:
//! - `items`: `"{pk}\u{1f}{sk}"` → the domain value as JSON. Prefix range scans serve queries;
//!   `\u{1f}` sorts below every printable character, so keys order like `(pk, sk)` pairs.
//! - `gsi1`: `"INTS\u{1f}{integration id}"` → pk, listing integrations without scanning
//!   their accounts; `"RJOBS#{integration id}\u{1f}{created}#{job id}"` → pk, listing an
//!   integration's reclaim jobs.
//! - `gsi2`: `"{gsi2pk}\u{1f}{gsi2sk}\u{1f}{external id}"` → external id: "accounts of a license
//!   type, oldest login first", kept up to date on every account write.
//! - `gsi3`: `"{gsi3pk}\u{1f}{external id}"` → external id: "accounts of one kind", likewise.
//!
//! Every conditional write (tenant claim, leases, one-time items, disconnect, reclaim jobs,
//! action steps, account locks) reads and writes
//! inside one write transaction; redb runs one write transaction at a time, so the check
//! cannot race.

use super::{
    AccountLock, JobChange, Keys, Lease, LeaseKind, OneTimeItem, OneTimeKind, OneTimeTake, Page,
    Store, StoreError, check_advance, check_batch_size, check_candidates, check_exclusions,
    check_job_change, check_lock, cursor, is_digest, mark_disconnected,
};
use crate::domain::{
    Account, AccountKind, ActionRecord, ActionStep, AuditEntry, CANDIDATES_PER_BATCH, Candidate,
    EventCoverage, Exclusion, Integration, IntegrationId, Provider, ReclaimJob, ReclaimJobId,
    Snapshot, TaskKind, TaskRun,
};
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use redb::{
    Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<&str, &str> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<&str, &str> = TableDefinition::new("gsi2");
const GSI3: TableDefinition<&str, &str> = TableDefinition::new("gsi3");

/// Separates the parts of a composite key.
const SEP: char = '\u{1f}';

/// redb's page cache defaults to 1 GiB; a sync of a 100 000-user tenant must stay well
/// under 100 MiB RSS, and the OS page cache serves re-reads anyway.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How long an expired one-time item stays before a later `put_one_time` clears it out
/// (the embedded stand-in for DynamoDB TTL); meanwhile a take says `Expired`.
const ONE_TIME_GRACE: Duration = Duration::days(1);

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

/// The fields of a stored account that decide its index entries; parsing only these keeps
/// index maintenance cheap when a sync rewrites many accounts.
#[derive(Deserialize)]
struct IndexFields {
    external_id: String,
    kind: AccountKind,
    license_type: Option<String>,
    last_login_at: Option<DateTime<Utc>>,
    #[serde(default)]
    vanished_at: Option<DateTime<Utc>>,
}

/// Where an account is listed in `gsi2` and `gsi3`: a vanished account in neither, an
/// account without a seat not in `gsi2`.
struct IndexEntries {
    gsi2: Option<String>,
    gsi3: Option<String>,
}

impl IndexFields {
    fn of(account: &Account) -> Self {
        Self {
            external_id: account.external_id.clone(),
            kind: account.kind,
            license_type: account.license_type.clone(),
            last_login_at: account.last_login_at,
            vanished_at: account.vanished_at,
        }
    }

    fn parse(item_key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{item_key:?}: {e}")))
    }

    fn entries(&self, id: &IntegrationId) -> IndexEntries {
        if self.vanished_at.is_some() {
            return IndexEntries {
                gsi2: None,
                gsi3: None,
            };
        }
        IndexEntries {
            gsi2: self.license_type.as_deref().map(|license_type| {
                format!(
                    "{}{SEP}{}{SEP}{}",
                    Keys::license_type_partition(id, license_type),
                    Keys::last_login_sort(self.last_login_at),
                    self.external_id
                )
            }),
            gsi3: Some(format!(
                "{}{SEP}{}",
                Keys::kind_partition(id, self.kind),
                self.external_id
            )),
        }
    }
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
            // gsi3 came after the other tables: a file written before it gets the index built
            // once from the accounts it holds (a sync rewrites only changed accounts, so it
            // would never fill the index by itself).
            let had_gsi3 = txn
                .list_tables()
                .map_err(redb_err)?
                .any(|table| table.name() == GSI3.name());
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            txn.open_table(GSI1).map_err(redb_err)?;
            txn.open_table(GSI2).map_err(redb_err)?;
            let mut gsi3 = txn.open_table(GSI3).map_err(redb_err)?;
            if !had_gsi3 {
                build_gsi3(&items, &mut gsi3)?;
            }
            Ok(())
        })?;
        Ok(Self { db: Arc::new(db) })
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
            .map(|a| {
                let entries = IndexFields::of(a).entries(&id);
                Ok((a.external_id.clone(), entries, to_json(a)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut gsi2 = txn.open_table(GSI2).map_err(redb_err)?;
            let mut gsi3 = txn.open_table(GSI3).map_err(redb_err)?;
            let pk = Keys::integration(&id);
            for (external_id, new, bytes) in &encoded {
                let item_key = key(&pk, &Keys::account(external_id));
                let old = items
                    .insert(item_key.as_str(), bytes.as_slice())
                    .map_err(redb_err)?
                    .map(|old| IndexFields::parse(&item_key, old.value()))
                    .transpose()?
                    .map(|old| old.entries(&id));
                let (old2, old3) = old.map_or((None, None), |o| (o.gsi2, o.gsi3));
                reindex(&mut gsi2, old2, new.gsi2.as_deref(), external_id)?;
                reindex(&mut gsi3, old3, new.gsi3.as_deref(), external_id)?;
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
            Some(c) => Bound::Excluded(key(&pk, &Keys::account(&cursor::parse_accounts(c)?))),
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
                    next = accounts.last().map(cursor::accounts);
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

    async fn accounts_by_license_type(
        &self,
        id: &IntegrationId,
        license_type: &str,
        last_login_before: Option<DateTime<Utc>>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let prefix = format!("{}{SEP}", Keys::license_type_partition(id, license_type));
        let lower = match cursor {
            Some(c) => {
                let (sort, external_id) = cursor::parse_license_type(c, last_login_before)?;
                Bound::Excluded(format!("{prefix}{sort}{SEP}{external_id}"))
            }
            None => Bound::Included(prefix.clone()),
        };
        // Entries are `prefix + gsi2sk + SEP + id`: every one whose gsi2sk sorts below the
        // bound's sorts below `prefix + bound`, and no other does.
        let upper = match last_login_before {
            Some(before) => {
                Bound::Excluded(format!("{prefix}{}", Keys::last_login_sort(Some(before))))
            }
            None => prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let pk = Keys::integration(id);
        let limit = limit.max(1);
        self.run(move |db| index_page(db, GSI2, &pk, (lower, upper), limit, cursor::license_type))
            .await
    }

    async fn accounts_by_kind(
        &self,
        id: &IntegrationId,
        kind: AccountKind,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let prefix = format!("{}{SEP}", Keys::kind_partition(id, kind));
        let lower = match cursor {
            Some(c) => Bound::Excluded(format!("{prefix}{}", cursor::parse_kind(c)?)),
            None => Bound::Included(prefix.clone()),
        };
        let upper = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let pk = Keys::integration(id);
        let limit = limit.max(1);
        self.run(move |db| index_page(db, GSI3, &pk, (lower, upper), limit, cursor::kind))
            .await
    }

    async fn disconnect_integration(
        &self,
        id: &IntegrationId,
        now: DateTime<Utc>,
    ) -> Result<Integration, StoreError> {
        let id = id.clone();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(&Keys::integration(&id), Keys::META);
            let Some(mut integration) = get_json::<Integration>(&items, &item_key)? else {
                return Err(StoreError::NotFound(id));
            };
            if mark_disconnected(&mut integration, now) {
                insert_json(&mut items, &item_key, &integration)?;
            }
            let claim_key = key(
                &Keys::tenant(integration.provider, &integration.tenant_id),
                Keys::META,
            );
            let ours = matches!(
                get_json::<TenantClaim>(&items, &claim_key)?,
                Some(claim) if claim.integration_id == id
            );
            if ours {
                items.remove(claim_key.as_str()).map_err(redb_err)?;
            }
            Ok(integration)
        })
        .await
    }

    async fn put_one_time(&self, item: &OneTimeItem) -> Result<(), StoreError> {
        if !is_digest(&item.key) {
            return Err(StoreError::InvalidOneTimeKey);
        }
        let item_key = one_time_key(item.kind, &item.key);
        let kind = item.kind;
        let bytes = to_json(item)?;
        let now = Utc::now();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            if items.get(item_key.as_str()).map_err(redb_err)?.is_some() {
                return Err(StoreError::OneTimeExists(kind));
            }
            clear_expired_one_time(&mut items, now)?;
            items
                .insert(item_key.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
            Ok(())
        })
        .await
    }

    async fn take_one_time(
        &self,
        kind: OneTimeKind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<OneTimeTake, StoreError> {
        // Nothing is ever stored under anything but a digest.
        if !is_digest(key) {
            return Ok(OneTimeTake::Missing);
        }
        let item_key = one_time_key(kind, key);
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            match get_json::<OneTimeItem>(&items, &item_key)? {
                None => Ok(OneTimeTake::Missing),
                // Millisecond precision, as the DynamoDB adapter's condition compares.
                Some(item) if item.expires_at.timestamp_millis() > now.timestamp_millis() => {
                    items.remove(item_key.as_str()).map_err(redb_err)?;
                    Ok(OneTimeTake::Taken(item))
                }
                Some(_) => Ok(OneTimeTake::Expired),
            }
        })
        .await
    }

    async fn create_reclaim_job(&self, job: &ReclaimJob) -> Result<(), StoreError> {
        let job = job.clone();
        let bytes = to_json(&job)?;
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let pk = Keys::reclaim_job(&job.id);
            let item_key = key(&pk, Keys::META);
            if items.get(item_key.as_str()).map_err(redb_err)?.is_some() {
                return Err(StoreError::ReclaimJobExists(job.id));
            }
            items
                .insert(item_key.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
            let mut gsi1 = txn.open_table(GSI1).map_err(redb_err)?;
            gsi1.insert(job_index_key(&job).as_str(), pk.as_str())
                .map_err(redb_err)?;
            Ok(())
        })
        .await
    }

    async fn get_reclaim_job(&self, id: &ReclaimJobId) -> Result<Option<ReclaimJob>, StoreError> {
        self.get_item(key(&Keys::reclaim_job(id), Keys::META)).await
    }

    async fn modify_reclaim_job(
        &self,
        id: &ReclaimJobId,
        change: &JobChange<'_>,
    ) -> Result<ReclaimJob, StoreError> {
        // As `modify_integration`: one write transaction, on this thread (`change` is
        // borrowed). A refusal rolls the transaction back, so nothing changes. The listing
        // key cannot move: `check_job_change` keeps `created_at`.
        write_here(&self.db, |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(&Keys::reclaim_job(id), Keys::META);
            let Some(mut job) = get_json::<ReclaimJob>(&items, &item_key)? else {
                return Err(StoreError::ReclaimJobNotFound(id.clone()));
            };
            let before = job.clone();
            change(&mut job).map_err(|reason| StoreError::JobChangeRefused {
                job_id: id.clone(),
                reason,
            })?;
            check_job_change(&before, &job)?;
            insert_json(&mut items, &item_key, &job)?;
            Ok(job)
        })
    }

    async fn list_reclaim_jobs(
        &self,
        integration_id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReclaimJob>, StoreError> {
        let prefix = format!("{}{SEP}", Keys::reclaim_jobs_partition(integration_id));
        // Newest first: read the index backwards from just before the cursor's job.
        let upper = match cursor {
            Some(c) => {
                let (_, sort) = cursor::parse_reclaim_jobs(c)?;
                Bound::Excluded(format!("{prefix}{sort}"))
            }
            None => prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let limit = limit.max(1);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let gsi1 = txn.open_table(GSI1).map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let range = (
                Bound::Included(prefix.as_str()),
                upper.as_ref().map(String::as_str),
            );
            let mut jobs: Vec<ReclaimJob> = Vec::with_capacity(limit);
            let mut next = None;
            for entry in gsi1.range::<&str>(range).map_err(redb_err)?.rev() {
                let (index_key, pk) = entry.map_err(redb_err)?;
                if jobs.len() == limit {
                    next = jobs.last().map(cursor::reclaim_jobs);
                    break;
                }
                match get_json(&items, &key(pk.value(), Keys::META))? {
                    Some(job) => jobs.push(job),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "index entry {:?} points to a missing reclaim job",
                            index_key.value()
                        )));
                    }
                }
            }
            Ok(Page { items: jobs, next })
        })
        .await
    }

    async fn put_candidates(
        &self,
        job_id: &ReclaimJobId,
        candidates: &[Candidate],
    ) -> Result<(), StoreError> {
        let job_id = job_id.clone();
        let candidates = candidates.to_vec();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let pk = Keys::reclaim_job(&job_id);
            let job = get_json::<ReclaimJob>(&items, &key(&pk, Keys::META))?;
            check_candidates(job.as_ref(), &job_id, &candidates)?;
            let mut by_batch: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
            for c in &candidates {
                by_batch
                    .entry(c.batch)
                    .or_default()
                    .push(c.external_id.as_str());
            }
            for (batch, new_ids) in by_batch {
                let prefix = key(&pk, &Keys::candidate_batch_prefix(batch));
                let stored = scan(&items, &prefix, Bound::Included(prefix.clone()))?
                    .map(|entry| {
                        let (k, _) = entry?;
                        k.strip_prefix(prefix.as_str())
                            .map(str::to_owned)
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!("{k:?}: not a key of {prefix:?}"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                check_batch_size(batch, stored.iter().map(String::as_str), new_ids)?;
            }
            for c in &candidates {
                insert_json(
                    &mut items,
                    &key(&pk, &Keys::candidate(c.batch, &c.external_id)),
                    c,
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn list_candidates(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
    ) -> Result<Vec<Candidate>, StoreError> {
        let prefix = key(
            &Keys::reclaim_job(job_id),
            &Keys::candidate_batch_prefix(batch),
        );
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let candidates = scan(&items, &prefix, Bound::Included(prefix.clone()))?
                .take(CANDIDATES_PER_BATCH + 1)
                .map(|entry| entry.and_then(|(k, v)| decode(&k, &v)))
                .collect::<Result<Vec<Candidate>, _>>()?;
            oversized_batch(&prefix, candidates.len())?;
            Ok(candidates)
        })
        .await
    }

    async fn get_candidate(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        external_id: &str,
    ) -> Result<Option<Candidate>, StoreError> {
        self.get_item(key(
            &Keys::reclaim_job(job_id),
            &Keys::candidate(batch, external_id),
        ))
        .await
    }

    async fn put_exclusions(
        &self,
        job_id: &ReclaimJobId,
        exclusions: &[Exclusion],
    ) -> Result<(), StoreError> {
        let job_id = job_id.clone();
        let exclusions = exclusions.to_vec();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let pk = Keys::reclaim_job(&job_id);
            let job = get_json::<ReclaimJob>(&items, &key(&pk, Keys::META))?;
            check_exclusions(job.as_ref(), &job_id, &exclusions)?;
            for e in &exclusions {
                insert_json(&mut items, &key(&pk, &Keys::exclusion(&e.external_id)), e)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_exclusions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Exclusion>, StoreError> {
        let pk = Keys::reclaim_job(job_id);
        let after = cursor
            .map(|c| cursor::parse_exclusions(c).map(|e| key(&pk, &Keys::exclusion(&e))))
            .transpose()?;
        self.sk_page(
            key(&pk, Keys::EXCLUSION_PREFIX),
            after,
            limit,
            cursor::exclusions,
        )
        .await
    }

    async fn get_action(
        &self,
        job_id: &ReclaimJobId,
        external_id: &str,
    ) -> Result<Option<ActionRecord>, StoreError> {
        self.get_item(key(&Keys::reclaim_job(job_id), &Keys::action(external_id)))
            .await
    }

    async fn advance_action(
        &self,
        record: &ActionRecord,
        expected: Option<ActionStep>,
    ) -> Result<ActionRecord, StoreError> {
        check_advance(record, expected)?;
        let record = record.clone();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(
                &Keys::reclaim_job(&record.job_id),
                &Keys::action(&record.external_id),
            );
            let current = get_json::<ActionRecord>(&items, &item_key)?;
            let current_step = current.as_ref().map(|r| r.step);
            if current_step != expected {
                return Err(StoreError::StepConflict {
                    job_id: record.job_id,
                    external_id: record.external_id,
                    expected,
                    current: current_step,
                });
            }
            if let Some(current) = current
                && current.action != record.action
            {
                return Err(action_kind_changed(&record));
            }
            insert_json(&mut items, &item_key, &record)?;
            Ok(record)
        })
        .await
    }

    async fn list_actions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ActionRecord>, StoreError> {
        let pk = Keys::reclaim_job(job_id);
        let after = cursor
            .map(|c| cursor::parse_actions(c).map(|e| key(&pk, &Keys::action(&e))))
            .transpose()?;
        self.sk_page(key(&pk, Keys::ACTION_PREFIX), after, limit, cursor::actions)
            .await
    }

    async fn acquire_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        check_lock(external_id, owner)?;
        let integration_id = id.clone();
        let external_id = external_id.to_owned();
        let owner = owner.to_owned();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let item_key = key(
                &Keys::integration(&integration_id),
                &Keys::account_lock(&external_id),
            );
            // Millisecond precision, as the DynamoDB adapter's condition compares.
            if let Some(held) = get_json::<AccountLock>(&items, &item_key)?
                && held.owner != owner
                && held.expires_at.timestamp_millis() >= now.timestamp_millis()
            {
                return Err(StoreError::AccountLocked {
                    integration_id,
                    external_id,
                    owner: held.owner,
                    expires_at: held.expires_at,
                });
            }
            let lock = AccountLock {
                owner,
                expires_at: DateTime::from_timestamp_millis(expires_at.timestamp_millis())
                    .unwrap_or(expires_at),
            };
            insert_json(&mut items, &item_key, &lock)
        })
        .await
    }

    async fn release_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let item_key = key(&Keys::integration(id), &Keys::account_lock(external_id));
        let owner = owner.to_owned();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
            let ours = matches!(
                get_json::<AccountLock>(&items, &item_key)?,
                Some(held) if held.owner == owner
            );
            if ours {
                items.remove(item_key.as_str()).map_err(redb_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let item_key = key(
            &Keys::integration(&entry.integration_id),
            &Keys::audit(entry.at, &entry.id),
        );
        self.put_item(item_key, entry).await
    }

    async fn list_audit(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let pk = Keys::integration(id);
        let prefix = key(&pk, Keys::AUDIT_PREFIX);
        // Newest first: read backwards from just before the cursor's entry.
        let upper = match cursor {
            Some(c) => Bound::Excluded(key(&pk, &cursor::parse_audit(c)?)),
            None => prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let limit = limit.max(1);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let range = (
                Bound::Included(prefix.as_str()),
                upper.as_ref().map(String::as_str),
            );
            let mut entries: Vec<AuditEntry> = Vec::with_capacity(limit);
            let mut next = None;
            for entry in items.range::<&str>(range).map_err(redb_err)?.rev() {
                let (k, v) = entry.map_err(redb_err)?;
                if entries.len() == limit {
                    next = entries.last().map(cursor::audit);
                    break;
                }
                entries.push(decode(k.value(), v.value())?);
            }
            Ok(Page {
                items: entries,
                next,
            })
        })
        .await
    }
}

impl EmbeddedStore {
    /// Up to `limit` items under `prefix` (a `pk` + sort-key prefix) in key order, from
    /// just after `after` if given, and the cursor after the last one when more follow.
    async fn sk_page<T>(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
        cursor_of: fn(&T) -> String,
    ) -> Result<Page<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let start = after.map_or_else(|| Bound::Included(prefix.clone()), Bound::Excluded);
        let limit = limit.max(1);
        self.run(move |db| {
            let txn = db.begin_read().map_err(redb_err)?;
            let items = txn.open_table(ITEMS).map_err(redb_err)?;
            let mut out: Vec<T> = Vec::with_capacity(limit);
            let mut next = None;
            for entry in scan(&items, &prefix, start)? {
                let (k, v) = entry?;
                if out.len() == limit {
                    next = out.last().map(cursor_of);
                    break;
                }
                out.push(decode(&k, &v)?);
            }
            Ok(Page { items: out, next })
        })
        .await
    }
}

/// A job's entry in `gsi1`.
fn job_index_key(job: &ReclaimJob) -> String {
    format!(
        "{}{SEP}{}",
        Keys::reclaim_jobs_partition(&job.integration_id),
        Keys::reclaim_job_sort(job.created_at, &job.id)
    )
}

/// More than a batch's worth of candidates under one batch: never written that way.
pub(crate) fn oversized_batch(batch: &str, found: usize) -> Result<(), StoreError> {
    if found > CANDIDATES_PER_BATCH {
        return Err(StoreError::Corrupt(format!(
            "candidate batch {batch:?} holds more than {CANDIDATES_PER_BATCH} accounts"
        )));
    }
    Ok(())
}

/// An action record keeps the action kind it started with.
pub(crate) fn action_kind_changed(record: &ActionRecord) -> StoreError {
    StoreError::InvalidItem(format!(
        "account {} of reclaim job {} was started with another action than {}",
        record.external_id, record.job_id, record.action
    ))
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

/// Up to `limit` accounts that an index (`gsi2`, `gsi3`) lists within `bounds`, and the
/// cursor after the last one when more follow.
fn index_page(
    db: &Database,
    index: TableDefinition<&str, &str>,
    pk: &str,
    bounds: (Bound<String>, Bound<String>),
    limit: usize,
    cursor_of: fn(&Account) -> String,
) -> Result<Page<Account>, StoreError> {
    let txn = db.begin_read().map_err(redb_err)?;
    let table = txn.open_table(index).map_err(redb_err)?;
    let items = txn.open_table(ITEMS).map_err(redb_err)?;
    let range = (
        bounds.0.as_ref().map(String::as_str),
        bounds.1.as_ref().map(String::as_str),
    );
    let mut accounts = Vec::with_capacity(limit);
    let mut next = None;
    for entry in table.range::<&str>(range).map_err(redb_err)? {
        let (index_key, external_id) = entry.map_err(redb_err)?;
        if accounts.len() == limit {
            next = accounts.last().map(cursor_of);
            break;
        }
        let item_key = key(pk, &Keys::account(external_id.value()));
        match get_json::<Account>(&items, &item_key)? {
            Some(account) => accounts.push(account),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "index entry {:?} points to a missing account",
                    index_key.value()
                )));
            }
        }
    }
    Ok(Page {
        items: accounts,
        next,
    })
}

/// Lists every stored account in `gsi3` (a file from before the index existed).
fn build_gsi3(items: &Table<&str, &[u8]>, gsi3: &mut Table<&str, &str>) -> Result<(), StoreError> {
    for entry in items.iter().map_err(redb_err)? {
        let (k, v) = entry.map_err(redb_err)?;
        let item_key = k.value();
        let Some((pk, sk)) = item_key.split_once(SEP) else {
            continue;
        };
        let Some(raw_id) = pk.strip_prefix(Keys::INTEGRATION_PREFIX) else {
            continue;
        };
        if !sk.starts_with(Keys::ACCOUNT_PREFIX) {
            continue;
        }
        let id = IntegrationId::parse(raw_id)
            .map_err(|e| StoreError::Corrupt(format!("{item_key:?}: {e}")))?;
        let fields = IndexFields::parse(item_key, v.value())?;
        if let Some(entry) = fields.entries(&id).gsi3 {
            gsi3.insert(entry.as_str(), fields.external_id.as_str())
                .map_err(redb_err)?;
        }
    }
    Ok(())
}

fn one_time_key(kind: OneTimeKind, digest: &str) -> String {
    key(&Keys::one_time(digest), Keys::one_time_sort(kind))
}

/// Removes one-time items expired for longer than [`ONE_TIME_GRACE`]: nothing else would,
/// and a local store should not keep every abandoned OAuth attempt forever.
fn clear_expired_one_time(
    items: &mut Table<&str, &[u8]>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let prefix = Keys::ONE_TIME_PREFIX;
    let mut stale = Vec::new();
    for entry in scan(items, prefix, Bound::Included(prefix.to_owned()))? {
        let (k, v) = entry?;
        let item: OneTimeItem = decode(&k, &v)?;
        if item.expires_at + ONE_TIME_GRACE < now {
            stale.push(k);
        }
    }
    for k in stale {
        items.remove(k.as_str()).map_err(redb_err)?;
    }
    Ok(())
}

fn key(pk: &str, sk: &str) -> String {
    format!("{pk}{SEP}{sk}")
}

fn gsi1_key(id: &IntegrationId) -> String {
    format!("{}{SEP}{id}", Keys::INTEGRATIONS_GSI)
}

/// Moves an account's entry in one index (`gsi2` or `gsi3`) when what it is listed by changed.
fn reindex(
    index: &mut Table<&str, &str>,
    old: Option<String>,
    new: Option<&str>,
    external_id: &str,
) -> Result<(), StoreError> {
    if old.as_deref() == new {
        return Ok(());
    }
    if let Some(old) = old {
        index.remove(old.as_str()).map_err(redb_err)?;
    }
    if let Some(new) = new {
        index.insert(new, external_id).map_err(redb_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn account(external_id: &str, kind: AccountKind) -> Account {
        Account {
            external_id: external_id.into(),
            login: format!("{external_id}@example.com"),
            name: external_id.into(),
            kind,
            status: "active".into(),
            role: None,
            license_type: None,
            last_login_at: None,
            created_at: None,
            modified_at: None,
            space_amount_bytes: None,
            space_used_bytes: None,
            max_upload_size_bytes: None,
            is_sync_enabled: None,
            is_exempt_from_device_limits: None,
            attributes: BTreeMap::new(),
            vanished_at: None,
        }
    }

    /// A file written before `gsi3` existed: its accounts are listed by kind once opened.
    #[tokio::test]
    async fn a_store_file_from_before_gsi3_gets_its_kind_index_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.redb");
        let id = IntegrationId::parse("acme").expect("id");
        let mut gone = account("3", AccountKind::Human);
        gone.vanished_at = Some(Utc::now());
        {
            // The tables and items the earlier layout wrote, and nothing else.
            let db = Database::create(&path).expect("create");
            write_txn(&db, |txn| {
                let mut items = txn.open_table(ITEMS).map_err(redb_err)?;
                txn.open_table(GSI1).map_err(redb_err)?;
                txn.open_table(GSI2).map_err(redb_err)?;
                for a in [
                    account("2", AccountKind::Human),
                    account("1", AccountKind::App),
                    gone,
                ] {
                    let item_key = key(&Keys::integration(&id), &Keys::account(&a.external_id));
                    insert_json(&mut items, &item_key, &a)?;
                }
                insert_json(
                    &mut items,
                    &key(&Keys::integration(&id), Keys::COVERAGE),
                    &1,
                )?;
                Ok(())
            })
            .expect("write the old layout");
        }

        let store = EmbeddedStore::open(&path).expect("open");
        let humans = store
            .accounts_by_kind(&id, AccountKind::Human, None, 10)
            .await
            .expect("humans");
        assert_eq!(humans.items, vec![account("2", AccountKind::Human)]);
        let apps = store
            .accounts_by_kind(&id, AccountKind::App, None, 10)
            .await
            .expect("apps");
        assert_eq!(apps.items, vec![account("1", AccountKind::App)]);
        drop(store);

        // From then on writes keep the index, across reopening.
        let store = EmbeddedStore::open(&path).expect("reopen");
        store
            .put_accounts(&id, &[account("4", AccountKind::Human)])
            .await
            .expect("put");
        drop(store);
        let store = EmbeddedStore::open(&path).expect("reopen");
        let humans = store
            .accounts_by_kind(&id, AccountKind::Human, None, 10)
            .await
            .expect("humans");
        let ids: Vec<&str> = humans
            .items
            .iter()
            .map(|a| a.external_id.as_str())
            .collect();
        assert_eq!(ids, vec!["2", "4"]);
    }
}
