//! DynamoDB adapter of the [`Store`](super::Store) port: the single table of design §4.
//!
//! Every item has `pk`, `sk` and, except leases, `data`: the domain value as JSON (the domain
//! types hold no secrets). Attributes that conditions or indexes need are written beside it:
//! - integrations: `gsi1pk = INTS`, `gsi1sk = <id>` (GSI `gsi1` lists them);
//! - reclaim jobs: `gsi1pk = RJOBS#<integration id>`, `gsi1sk = <created_at>#<job id>`
//!   (GSI `gsi1` lists an integration's jobs, newest first when read backwards);
//! - reclaim actions: `step` and `action` (the conditions of `advance_action`);
//! - account locks: `owner`, `expires_at` (epoch millis, in the condition), `ttl`, no `data`;
//! - tenant claims: `integration_id`;
//! - accounts: `content_hash`, `gsi2pk`/`gsi2sk` only while the account holds a seat
//!   (GSI `gsi2`: accounts of a license type, oldest login first), `gsi3pk`/`gsi3sk` unless
//!   it vanished (GSI `gsi3`: accounts of one kind, by external id);
//! - leases: `owner`, `expires_at` (epoch millis, checked in every condition; TTL is only
//!   housekeeping), `checkpoint` (JSON), no `data`, so a continuation can extend the lease
//!   without rewriting its checkpoint;
//! - one-time items (`OAUTH#<digest>`/`TICKET|STATE`): `expires_at` (epoch millis, checked in
//!   the consuming delete's condition);
//! - leases, roster chunks and one-time items: `ttl` (epoch seconds) so forgotten ones are
//!   cleaned up.

use super::embedded::{action_kind_changed, all_task_kinds, id_changed, oversized_batch};
use super::{
    JobChange, Keys, Lease, LeaseKind, OneTimeItem, OneTimeKind, OneTimeTake, Page, Store,
    StoreError, check_advance, check_batch_size, check_candidates, check_exclusions,
    check_job_change, check_lock, cursor, is_digest, mark_disconnected,
};
use crate::domain::{
    Account, AccountKind, ActionRecord, ActionStep, AuditEntry, CANDIDATES_PER_BATCH, Candidate,
    EventCoverage, Exclusion, Integration, IntegrationId, Provider, ReclaimJob, ReclaimJobId,
    Snapshot, TaskKind, TaskRun,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};

type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem takes at most 25 requests, BatchGetItem at most 100 keys.
const WRITE_BATCH: usize = 25;
const GET_BATCH: usize = 100;
/// Batches in flight at once when writing many accounts.
const WRITE_CONCURRENCY: usize = 4;
/// Attempts at a batch whose items DynamoDB left unprocessed (throttling) before giving up.
const BATCH_ATTEMPTS: u32 = 10;
/// How long a lease or roster chunk outlives its use before TTL may clean it up.
const LEASE_TTL_GRACE: Duration = Duration::days(1);
/// How long an expired one-time item stays (a take meanwhile says `Expired`, not `Missing`).
const ONE_TIME_TTL_GRACE: Duration = Duration::days(1);
const ROSTER_TTL: Duration = Duration::days(7);
/// Rounds of read-change-write `modify_integration` tries before giving up. A round only
/// fails because another write won in between, so this many concurrent writers always settle.
const MODIFY_ATTEMPTS: u32 = 5;
/// A job is changed by its batches, which the Map runs side by side: more writers than an
/// integration ever has at once.
const JOB_MODIFY_ATTEMPTS: u32 = 12;
/// How long an account lock outlives its expiry before TTL may clean it up.
const LOCK_TTL_GRACE: Duration = Duration::days(1);

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table with its indexes and TTL, and waits until it is usable
    /// (tests and local runs; production tables come from the SAM template).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_element("pk", KeyType::Hash)?)
            .key_schema(key_element("sk", KeyType::Range)?);
        for name in [
            "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk",
        ] {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_err)?,
            );
        }
        for index in ["gsi1", "gsi2", "gsi3"] {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key_element(&format!("{index}pk"), KeyType::Hash)?)
                    .key_schema(key_element(&format!("{index}sk"), KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build_err)?,
            );
        }
        request
            .send()
            .await
            .map_err(|e| sdk_err("CreateTable", e))?;
        wait_until_active(client, table).await?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .map_err(build_err)?,
            )
            .send()
            .await
            .map_err(|e| sdk_err("UpdateTimeToLive", e))?;
        Ok(())
    }

    // Building blocks ----------------------------------------------------------------------

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("GetItem", e))?;
        Ok(out.item().cloned())
    }

    async fn get_data<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get(pk, sk).await?.as_ref().map(data).transpose()
    }

    async fn put_data<T: Serialize>(
        &self,
        pk: String,
        sk: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        self.put_unconditionally(item(pk, sk, value)?).await
    }

    /// A plain PutItem (no condition): insert or replace.
    async fn put_unconditionally(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_err("PutItem", e))?;
        Ok(())
    }

    /// A query on the table: every item of `pk` whose `sk` begins with `sk_prefix`,
    /// at most `limit` of them, in `sk` order (`forward`) or reversed.
    async fn query_prefix(
        &self,
        pk: String,
        sk_prefix: &str,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .scan_index_forward(forward)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(sk_prefix));
        self.query_all(query, limit).await
    }

    /// Runs a query to the end (or to `limit` items), following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        query: QueryFluentBuilder,
        limit: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut request = query.clone().set_exclusive_start_key(start);
            if let Some(limit) = limit {
                request = request.limit(page_limit(limit - out.len()));
            }
            let page = request.send().await.map_err(|e| sdk_err("Query", e))?;
            out.extend(page.items().iter().cloned());
            if let Some(limit) = limit
                && out.len() >= limit
            {
                out.truncate(limit);
                return Ok(out);
            }
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(out),
            }
        }
    }

    /// Up to `limit` items from `start` on, and whether more follow. Asks for one extra
    /// item so the last page says "no more" instead of returning an empty page after it.
    async fn query_page(
        &self,
        query: QueryFluentBuilder,
        start: Option<Item>,
        limit: usize,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let mut items = Vec::with_capacity(limit + 1);
        let mut start = start;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .limit(page_limit(limit + 1 - items.len()))
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            items.extend(page.items().iter().cloned());
            if items.len() > limit {
                items.truncate(limit);
                return Ok((items, true));
            }
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok((items, false)),
            }
        }
    }

    /// Writes (or deletes) items in batches of 25, a few batches at a time.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut batches = Vec::new();
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            batches.push(requests.by_ref().take(WRITE_BATCH).collect::<Vec<_>>());
        }
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// One BatchWriteItem, retrying what DynamoDB left unprocessed with backoff.
    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| sdk_err("BatchWriteItem", e))?;
            batch = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
        }
        Err(gave_up(format!(
            "{} items stayed unprocessed by BatchWriteItem",
            batch.len()
        )))
    }

    /// One BatchGetItem of at most 100 keys, retrying unprocessed keys with backoff.
    async fn get_batch(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = keys;
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(build_err)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| sdk_err("BatchGetItem", e))?;
            if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                found.extend(items.iter().cloned());
            }
            pending = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
        }
        Err(gave_up(format!(
            "{} keys stayed unprocessed by BatchGetItem",
            pending.len()
        )))
    }

    // Leases -------------------------------------------------------------------------------

    /// The holder extends its own lease, keeping its checkpoint (a continuation).
    async fn extend_own_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
        owner: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(Keys::integration(id)))
            .key("sk", s(Keys::lease(kind)))
            .update_expression("SET expires_at = :exp, #ttl = :ttl")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":exp", millis(expires_at))
            .expression_attribute_values(":ttl", lease_ttl(expires_at))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes().cloned().unwrap_or_default();
                lease_from_item(id, kind, &item).map(Some)
            }
            Err(e) if is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(sdk_err("UpdateItem", e)),
        }
    }

    /// Writes a fresh lease (no checkpoint) if it is free or expired.
    async fn take_free_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease_item(lease)?))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", millis(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn create_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let integration_item = integration_item(integration)?;
        let claim_pk = Keys::tenant(integration.provider, &integration.tenant_id);
        let claim_item = HashMap::from([
            ("pk".to_owned(), s(&claim_pk)),
            ("sk".to_owned(), s(Keys::META)),
            ("integration_id".to_owned(), s(integration.id.as_str())),
            ("provider".to_owned(), s(integration.provider.as_str())),
            ("tenant_id".to_owned(), s(&integration.tenant_id)),
        ]);
        // The order matters: cancellation reasons come back in this order.
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.put_new(integration_item)?)
            .transact_items(self.put_new(claim_item)?)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(());
        };
        let (integration_exists, tenant_claimed) = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                let failed = |i: usize| {
                    cancelled
                        .cancellation_reasons()
                        .get(i)
                        .and_then(|r| r.code())
                        == Some("ConditionalCheckFailed")
                };
                (failed(0), failed(1))
            }
            _ => (false, false),
        };
        if tenant_claimed {
            let owner = self
                .tenant_owner(integration.provider, &integration.tenant_id)
                .await?;
            return Err(StoreError::TenantClaimed {
                provider: integration.provider,
                tenant_id: integration.tenant_id.clone(),
                integration_id: owner.map_or_else(|| "unknown".to_owned(), String::from),
            });
        }
        if integration_exists {
            return Err(StoreError::AlreadyExists(integration.id.clone()));
        }
        Err(sdk_err("TransactWriteItems", err))
    }

    async fn get_integration(&self, id: &IntegrationId) -> Result<Option<Integration>, StoreError> {
        self.get_data(Keys::integration(id), Keys::META).await
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(Keys::INTEGRATIONS_GSI));
        self.query_all(query, None)
            .await?
            .iter()
            .map(data)
            .collect()
    }

    async fn update_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(integration_item(integration)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(StoreError::NotFound(integration.id.clone()))
            }
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    async fn modify_integration(
        &self,
        id: &IntegrationId,
        change: &(dyn for<'i> Fn(&'i mut Integration) + Send + Sync),
    ) -> Result<Integration, StoreError> {
        for attempt in 0..MODIFY_ATTEMPTS {
            if attempt > 0 {
                conflict_pause().await;
            }
            let Some(stored) = self.get(Keys::integration(id), Keys::META).await? else {
                return Err(StoreError::NotFound(id.clone()));
            };
            let old_data = string_attr(&stored, "data")?.to_owned();
            let mut integration: Integration = data(&stored)?;
            change(&mut integration);
            if integration.id != *id {
                return Err(id_changed(id));
            }
            // Written only if nobody wrote the integration since we read it (if it was
            // deleted meanwhile, the next round says NotFound).
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(integration_item(&integration)?))
                .condition_expression("#data = :old_data")
                .expression_attribute_names("#data", "data")
                .expression_attribute_values(":old_data", s(old_data))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(integration),
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(sdk_err("PutItem", e)),
            }
        }
        Err(gave_up(format!(
            "modifying integration {id} kept conflicting with other writes \
             ({MODIFY_ATTEMPTS} attempts)"
        )))
    }

    async fn tenant_owner(
        &self,
        provider: Provider,
        tenant_id: &str,
    ) -> Result<Option<IntegrationId>, StoreError> {
        let Some(claim) = self
            .get(Keys::tenant(provider, tenant_id), Keys::META)
            .await?
        else {
            return Ok(None);
        };
        let raw = string_attr(&claim, "integration_id")?;
        IntegrationId::parse(raw).map(Some).map_err(|e| {
            StoreError::Corrupt(format!("tenant claim of {provider} {tenant_id}: {e}"))
        })
    }

    async fn get_accounts(
        &self,
        id: &IntegrationId,
        external_ids: &[String],
    ) -> Result<Vec<Account>, StoreError> {
        // BatchGetItem refuses repeated keys.
        let mut seen = HashSet::new();
        let unique: Vec<&String> = external_ids
            .iter()
            .filter(|e| seen.insert(e.as_str()))
            .collect();
        let pk = Keys::integration(id);
        let mut found: HashMap<String, Account> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(GET_BATCH) {
            let keys = chunk
                .iter()
                .map(|e| key(pk.clone(), &Keys::account(e)))
                .collect();
            for item in self.get_batch(keys).await? {
                let account: Account = data(&item)?;
                found.insert(account.external_id.clone(), account);
            }
        }
        // In the order asked for, whatever order DynamoDB answered in.
        Ok(unique.iter().filter_map(|e| found.remove(*e)).collect())
    }

    async fn put_accounts(
        &self,
        id: &IntegrationId,
        accounts: &[Account],
    ) -> Result<(), StoreError> {
        // BatchWriteItem refuses two writes of one key in a batch: the last one wins.
        let mut seen = HashSet::new();
        let mut latest: Vec<&Account> = accounts
            .iter()
            .rev()
            .filter(|a| seen.insert(a.external_id.as_str()))
            .collect();
        latest.reverse();
        let requests = latest
            .into_iter()
            .map(|a| {
                let put = PutRequest::builder()
                    .set_item(Some(account_item(id, a)?))
                    .build()
                    .map_err(build_err)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn list_accounts(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let pk = Keys::integration(id);
        let start = match cursor {
            Some(c) => Some(key(pk.clone(), &Keys::account(&cursor::parse_accounts(c)?))),
            None => None,
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(Keys::ACCOUNT_PREFIX));
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        data_page(&items, more, cursor::accounts)
    }

    async fn accounts_by_license_type(
        &self,
        id: &IntegrationId,
        license_type: &str,
        last_login_before: Option<DateTime<Utc>>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let partition = Keys::license_type_partition(id, license_type);
        let start = match cursor {
            Some(c) => {
                let (sort, external_id) = cursor::parse_license_type(c, last_login_before)?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(Keys::integration(id))),
                    ("sk".to_owned(), s(Keys::account(&external_id))),
                    ("gsi2pk".to_owned(), s(&partition)),
                    ("gsi2sk".to_owned(), s(sort)),
                ]))
            }
            None => None,
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .expression_attribute_values(":p", s(partition));
        // A key condition, so DynamoDB reads only the accounts asked for. "0000" (never
        // logged in) sorts below every timestamp, so those always fall under the bound.
        let query = match last_login_before {
            Some(before) => query
                .key_condition_expression("gsi2pk = :p AND gsi2sk < :before")
                .expression_attribute_values(":before", s(Keys::last_login_sort(Some(before)))),
            None => query.key_condition_expression("gsi2pk = :p"),
        };
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        data_page(&items, more, cursor::license_type)
    }

    async fn accounts_by_kind(
        &self,
        id: &IntegrationId,
        kind: AccountKind,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, StoreError> {
        let partition = Keys::kind_partition(id, kind);
        let start = match cursor {
            Some(c) => {
                let external_id = cursor::parse_kind(c)?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(Keys::integration(id))),
                    ("sk".to_owned(), s(Keys::account(&external_id))),
                    ("gsi3pk".to_owned(), s(&partition)),
                    ("gsi3sk".to_owned(), s(external_id)),
                ]))
            }
            None => None,
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi3")
            .key_condition_expression("gsi3pk = :p")
            .expression_attribute_values(":p", s(partition));
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        data_page(&items, more, cursor::kind)
    }

    async fn get_event_coverage(
        &self,
        id: &IntegrationId,
    ) -> Result<Option<EventCoverage>, StoreError> {
        self.get_data(Keys::integration(id), Keys::COVERAGE).await
    }

    async fn put_event_coverage(
        &self,
        id: &IntegrationId,
        coverage: &EventCoverage,
    ) -> Result<(), StoreError> {
        self.put_data(Keys::integration(id), Keys::COVERAGE, coverage)
            .await
    }

    async fn put_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.put_data(
            Keys::integration(&snapshot.integration_id),
            &Keys::snapshot(snapshot.date),
            snapshot,
        )
        .await
    }

    async fn latest_snapshot(&self, id: &IntegrationId) -> Result<Option<Snapshot>, StoreError> {
        let items = self
            .query_prefix(Keys::integration(id), Keys::SNAPSHOT_PREFIX, false, Some(1))
            .await?;
        items.first().map(data).transpose()
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
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(Keys::integration(id)))
            .expression_attribute_values(":from", s(Keys::snapshot(from)))
            .expression_attribute_values(":to", s(Keys::snapshot(to)));
        self.query_all(query, None)
            .await?
            .iter()
            .map(data)
            .collect()
    }

    async fn put_task_run(&self, run: &TaskRun) -> Result<(), StoreError> {
        self.put_data(
            Keys::integration(&run.integration_id),
            &Keys::task_run(run.kind, run.started_at),
            run,
        )
        .await
    }

    async fn list_task_runs(
        &self,
        id: &IntegrationId,
        kind: Option<TaskKind>,
        limit: usize,
    ) -> Result<Vec<TaskRun>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Keys sort by kind first, so "newest first across kinds" reads the newest `limit`
        // of each kind and merges them.
        let kinds = kind.map_or_else(|| all_task_kinds().to_vec(), |k| vec![k]);
        let pk = Keys::integration(id);
        let mut runs: Vec<TaskRun> = Vec::new();
        for kind in kinds {
            let items = self
                .query_prefix(
                    pk.clone(),
                    &Keys::task_prefix(Some(kind)),
                    false,
                    Some(limit),
                )
                .await?;
            for item in &items {
                runs.push(data(item)?);
            }
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        runs.truncate(limit);
        Ok(runs)
    }

    async fn acquire_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Lease, StoreError> {
        // Each step is one conditional write; a step only fails because the lease changed
        // hands in between, so a few rounds settle it.
        for _ in 0..3 {
            if let Some(lease) = self.extend_own_lease(id, kind, owner, expires_at).await? {
                return Ok(lease);
            }
            let fresh = Lease {
                integration_id: id.clone(),
                kind,
                owner: owner.to_owned(),
                expires_at: to_millis(expires_at),
                checkpoint: None,
            };
            if self.take_free_lease(&fresh, now).await? {
                return Ok(fresh);
            }
            if let Some(held) = self.get_lease(id, kind).await?
                && held.owner != owner
                && held.expires_at >= to_millis(now)
            {
                return Err(StoreError::LeaseHeld {
                    integration_id: id.clone(),
                    kind,
                    owner: held.owner,
                    expires_at: held.expires_at,
                });
            }
        }
        Err(gave_up(format!(
            "the {kind} lease of integration {id} kept changing hands"
        )))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        _now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        checkpoint: Option<serde_json::Value>,
    ) -> Result<Lease, StoreError> {
        let renewed = Lease {
            expires_at: to_millis(expires_at),
            checkpoint,
            ..lease.clone()
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease_item(&renewed)?))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(renewed),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::LeaseLost {
                integration_id: lease.integration_id.clone(),
                kind: lease.kind,
            }),
            Err(e) => Err(sdk_err("PutItem", e)),
        }
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
            expires_at: to_millis(expires_at),
            checkpoint,
            ..lease.clone()
        };
        const SET: &str = "SET #owner = :new_owner, expires_at = :exp, #ttl = :ttl";
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(Keys::integration(&lease.integration_id)))
            .key("sk", s(Keys::lease(lease.kind)))
            // Expired or not: only who holds it counts (a missing item fails too).
            .condition_expression("#owner = :old_owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#checkpoint", "checkpoint")
            .expression_attribute_values(":old_owner", s(&lease.owner))
            .expression_attribute_values(":new_owner", s(new_owner))
            .expression_attribute_values(":exp", millis(expires_at))
            .expression_attribute_values(":ttl", lease_ttl(expires_at));
        let update = match &handed_over.checkpoint {
            Some(checkpoint) => update
                .update_expression(format!("{SET}, #checkpoint = :checkpoint"))
                .expression_attribute_values(":checkpoint", s(checkpoint_json(checkpoint)?)),
            None => update.update_expression(format!("{SET} REMOVE #checkpoint")),
        };
        match update.send().await {
            Ok(_) => Ok(handed_over),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::LeaseLost {
                integration_id: lease.integration_id.clone(),
                kind: lease.kind,
            }),
            Err(e) => Err(sdk_err("UpdateItem", e)),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(Keys::integration(&lease.integration_id)))
            .key("sk", s(Keys::lease(lease.kind)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .send()
            .await;
        match result {
            // Gone already, or someone else's now: either way not ours to delete.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(sdk_err("DeleteItem", e)),
            Ok(_) => Ok(()),
        }
    }

    async fn get_lease(
        &self,
        id: &IntegrationId,
        kind: LeaseKind,
    ) -> Result<Option<Lease>, StoreError> {
        match self.get(Keys::integration(id), &Keys::lease(kind)).await? {
            Some(item) => lease_from_item(id, kind, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn put_roster_chunk(
        &self,
        id: &IntegrationId,
        sync_id: &str,
        chunk: u32,
        external_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut chunk_item = item(
            Keys::integration(id),
            &Keys::roster_chunk(sync_id, chunk),
            &external_ids,
        )?;
        chunk_item.insert("ttl".into(), epoch_seconds(Utc::now() + ROSTER_TTL));
        self.put_unconditionally(chunk_item).await
    }

    async fn roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_prefix(
                Keys::integration(id),
                &Keys::roster_prefix(sync_id),
                true,
                None,
            )
            .await?;
        let mut ids = Vec::new();
        for item in &items {
            ids.extend(data::<Vec<String>>(item)?);
        }
        Ok(ids)
    }

    async fn delete_roster_chunks(
        &self,
        id: &IntegrationId,
        sync_id: &str,
    ) -> Result<(), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .projection_expression("pk, sk")
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(Keys::integration(id)))
            .expression_attribute_values(":prefix", s(Keys::roster_prefix(sync_id)));
        let requests = self
            .query_all(query, None)
            .await?
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(build_err)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn disconnect_integration(
        &self,
        id: &IntegrationId,
        now: DateTime<Utc>,
    ) -> Result<Integration, StoreError> {
        // Read, then write both items in one transaction whose conditions say nothing moved
        // in between; a lost race reads again.
        for attempt in 0..MODIFY_ATTEMPTS {
            if attempt > 0 {
                conflict_pause().await;
            }
            let Some(stored) = self.get(Keys::integration(id), Keys::META).await? else {
                return Err(StoreError::NotFound(id.clone()));
            };
            let old_data = string_attr(&stored, "data")?.to_owned();
            let mut integration: Integration = data(&stored)?;
            let changed = mark_disconnected(&mut integration, now);
            let claim_pk = Keys::tenant(integration.provider, &integration.tenant_id);
            let claim_is_ours = self
                .tenant_owner(integration.provider, &integration.tenant_id)
                .await?
                .is_some_and(|owner| owner == *id);
            if !changed && !claim_is_ours {
                return Ok(integration);
            }
            let mut request = self.client.transact_write_items();
            if changed {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(integration_item(&integration)?))
                    .condition_expression("#data = :old_data")
                    .expression_attribute_names("#data", "data")
                    .expression_attribute_values(":old_data", s(old_data))
                    .build()
                    .map_err(build_err)?;
                request = request.transact_items(TransactWriteItem::builder().put(put).build());
            }
            if claim_is_ours {
                // Deleted only while it still names this integration: a claim another
                // integration made meanwhile stays.
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(claim_pk, Keys::META)))
                    .condition_expression("integration_id = :id")
                    .expression_attribute_values(":id", s(id.as_str()))
                    .build()
                    .map_err(build_err)?;
                request =
                    request.transact_items(TransactWriteItem::builder().delete(delete).build());
            }
            match request.send().await {
                Ok(_) => return Ok(integration),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(TransactWriteItemsError::TransactionCanceledException(_))
                    ) => {}
                Err(e) => return Err(sdk_err("TransactWriteItems", e)),
            }
        }
        Err(gave_up(format!(
            "disconnecting integration {id} kept conflicting with other writes \
             ({MODIFY_ATTEMPTS} attempts)"
        )))
    }

    async fn put_one_time(&self, item: &OneTimeItem) -> Result<(), StoreError> {
        if !is_digest(&item.key) {
            return Err(StoreError::InvalidOneTimeKey);
        }
        let mut record = self::item(
            Keys::one_time(&item.key),
            Keys::one_time_sort(item.kind),
            item,
        )?;
        record.insert("expires_at".into(), millis(item.expires_at));
        record.insert(
            "ttl".into(),
            epoch_seconds(item.expires_at + ONE_TIME_TTL_GRACE),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::OneTimeExists(item.kind)),
            Err(e) => Err(sdk_err("PutItem", e)),
        }
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
        // One conditional delete: of two takers only one can delete the item, and the expiry
        // is part of the condition. On failure DynamoDB hands back the item if it exists,
        // which tells an expired item from a missing one without a second read.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(Keys::one_time(key)))
            .key("sk", s(Keys::one_time_sort(kind)))
            .condition_expression("attribute_exists(pk) AND expires_at > :now")
            .expression_attribute_values(":now", millis(now))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(old) if !old.is_empty() => data(old).map(OneTimeTake::Taken),
                // The condition requires the item, so DynamoDB always returns it; an
                // emulator racing two deletes may not: the other taker had it.
                _ => Ok(OneTimeTake::Missing),
            },
            Err(e) => match e.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                    if failed.item().is_some_and(|old| !old.is_empty()) {
                        Ok(OneTimeTake::Expired)
                    } else {
                        Ok(OneTimeTake::Missing)
                    }
                }
                _ => Err(sdk_err("DeleteItem", e)),
            },
        }
    }

    async fn create_reclaim_job(&self, job: &ReclaimJob) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(reclaim_job_item(job)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => {
                Err(StoreError::ReclaimJobExists(job.id.clone()))
            }
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    async fn get_reclaim_job(&self, id: &ReclaimJobId) -> Result<Option<ReclaimJob>, StoreError> {
        self.get_data(Keys::reclaim_job(id), Keys::META).await
    }

    async fn modify_reclaim_job(
        &self,
        id: &ReclaimJobId,
        change: &JobChange<'_>,
    ) -> Result<ReclaimJob, StoreError> {
        for attempt in 0..JOB_MODIFY_ATTEMPTS {
            if attempt > 0 {
                conflict_pause().await;
            }
            let Some(stored) = self.get(Keys::reclaim_job(id), Keys::META).await? else {
                return Err(StoreError::ReclaimJobNotFound(id.clone()));
            };
            let old_data = string_attr(&stored, "data")?.to_owned();
            let mut job: ReclaimJob = data(&stored)?;
            let before = job.clone();
            // A refusal is decided on the job as stored now, and nothing is written.
            change(&mut job).map_err(|reason| StoreError::JobChangeRefused {
                job_id: id.clone(),
                reason,
            })?;
            check_job_change(&before, &job)?;
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(reclaim_job_item(&job)?))
                .condition_expression("#data = :old_data")
                .expression_attribute_names("#data", "data")
                .expression_attribute_values(":old_data", s(old_data))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(job),
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(sdk_err("PutItem", e)),
            }
        }
        Err(gave_up(format!(
            "modifying reclaim job {id} kept conflicting with other writes \
             ({JOB_MODIFY_ATTEMPTS} attempts)"
        )))
    }

    async fn list_reclaim_jobs(
        &self,
        integration_id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ReclaimJob>, StoreError> {
        let partition = Keys::reclaim_jobs_partition(integration_id);
        let start = match cursor {
            Some(c) => {
                let (job_id, sort) = cursor::parse_reclaim_jobs(c)?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(Keys::reclaim_job(&job_id))),
                    ("sk".to_owned(), s(Keys::META)),
                    ("gsi1pk".to_owned(), s(&partition)),
                    ("gsi1sk".to_owned(), s(sort)),
                ]))
            }
            None => None,
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .scan_index_forward(false)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(partition));
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        data_page(&items, more, cursor::reclaim_jobs)
    }

    async fn put_candidates(
        &self,
        job_id: &ReclaimJobId,
        candidates: &[Candidate],
    ) -> Result<(), StoreError> {
        let job = self.get_reclaim_job(job_id).await?;
        check_candidates(job.as_ref(), job_id, candidates)?;
        // BatchWriteItem refuses two writes of one key in a batch: the last one wins.
        let mut latest: BTreeMap<(u32, &str), &Candidate> = BTreeMap::new();
        for c in candidates {
            latest.insert((c.batch, c.external_id.as_str()), c);
        }
        let mut by_batch: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
        for (batch, external_id) in latest.keys() {
            by_batch.entry(*batch).or_default().push(external_id);
        }
        let pk = Keys::reclaim_job(job_id);
        for (batch, new_ids) in by_batch {
            let prefix = Keys::candidate_batch_prefix(batch);
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .projection_expression("sk")
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(&prefix));
            let stored = self
                .query_all(query, Some(CANDIDATES_PER_BATCH + 1))
                .await?
                .iter()
                .map(|k| {
                    let sk = string_attr(k, "sk")?;
                    sk.strip_prefix(prefix.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| corrupt(k, "not a key of this batch"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_batch_size(batch, stored.iter().map(String::as_str), new_ids)?;
        }
        let requests = latest
            .values()
            .map(|c| {
                put_request(item(
                    pk.clone(),
                    &Keys::candidate(c.batch, &c.external_id),
                    c,
                )?)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn list_candidates(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
    ) -> Result<Vec<Candidate>, StoreError> {
        let prefix = Keys::candidate_batch_prefix(batch);
        let items = self
            .query_prefix(
                Keys::reclaim_job(job_id),
                &prefix,
                true,
                Some(CANDIDATES_PER_BATCH + 1),
            )
            .await?;
        oversized_batch(&prefix, items.len())?;
        items.iter().map(data).collect()
    }

    async fn get_candidate(
        &self,
        job_id: &ReclaimJobId,
        batch: u32,
        external_id: &str,
    ) -> Result<Option<Candidate>, StoreError> {
        self.get_data(
            Keys::reclaim_job(job_id),
            &Keys::candidate(batch, external_id),
        )
        .await
    }

    async fn put_exclusions(
        &self,
        job_id: &ReclaimJobId,
        exclusions: &[Exclusion],
    ) -> Result<(), StoreError> {
        let job = self.get_reclaim_job(job_id).await?;
        check_exclusions(job.as_ref(), job_id, exclusions)?;
        let mut latest: BTreeMap<&str, &Exclusion> = BTreeMap::new();
        for e in exclusions {
            latest.insert(e.external_id.as_str(), e);
        }
        let pk = Keys::reclaim_job(job_id);
        let requests = latest
            .values()
            .map(|e| put_request(item(pk.clone(), &Keys::exclusion(&e.external_id), e)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(requests).await
    }

    async fn list_exclusions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Exclusion>, StoreError> {
        let after = cursor.map(cursor::parse_exclusions).transpose()?;
        self.sk_page(
            Keys::reclaim_job(job_id),
            Keys::EXCLUSION_PREFIX,
            after.map(|e| Keys::exclusion(&e)),
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
        self.get_data(Keys::reclaim_job(job_id), &Keys::action(external_id))
            .await
    }

    async fn advance_action(
        &self,
        record: &ActionRecord,
        expected: Option<ActionStep>,
    ) -> Result<ActionRecord, StoreError> {
        check_advance(record, expected)?;
        let mut action_item = item(
            Keys::reclaim_job(&record.job_id),
            &Keys::action(&record.external_id),
            record,
        )?;
        action_item.insert("step".into(), s(record.step.as_str()));
        action_item.insert("action".into(), s(record.action.as_str()));
        // One conditional write per step: of two writers expecting the same step, only the
        // first finds it.
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(action_item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(step) => request
                .condition_expression("#step = :expected AND #action = :action")
                .expression_attribute_names("#step", "step")
                .expression_attribute_names("#action", "action")
                .expression_attribute_values(":expected", s(step.as_str()))
                .expression_attribute_values(":action", s(record.action.as_str())),
        };
        match request.send().await {
            Ok(_) => Ok(record.clone()),
            Err(e) if is_conditional_failure(&e) => {
                let current = self.get_action(&record.job_id, &record.external_id).await?;
                match current {
                    Some(current)
                        if Some(current.step) == expected && current.action != record.action =>
                    {
                        Err(action_kind_changed(record))
                    }
                    current => Err(StoreError::StepConflict {
                        job_id: record.job_id.clone(),
                        external_id: record.external_id.clone(),
                        expected,
                        current: current.map(|c| c.step),
                    }),
                }
            }
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    async fn list_actions(
        &self,
        job_id: &ReclaimJobId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ActionRecord>, StoreError> {
        let after = cursor.map(cursor::parse_actions).transpose()?;
        self.sk_page(
            Keys::reclaim_job(job_id),
            Keys::ACTION_PREFIX,
            after.map(|e| Keys::action(&e)),
            limit,
            cursor::actions,
        )
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
        let pk = Keys::integration(id);
        let sk = Keys::account_lock(external_id);
        // A write fails only because the lock is held, or changed hands in between: a few
        // rounds tell the two apart.
        for _ in 0..3 {
            let mut lock = key(pk.clone(), &sk);
            lock.insert("owner".into(), s(owner));
            lock.insert("expires_at".into(), millis(expires_at));
            lock.insert("ttl".into(), epoch_seconds(expires_at + LOCK_TTL_GRACE));
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(lock))
                .condition_expression(
                    "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
                )
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":now", millis(now))
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => return Err(sdk_err("PutItem", e)),
            }
            if let Some(held) = self.get(pk.clone(), &sk).await? {
                let held_by = string_attr(&held, "owner")?.to_owned();
                let held_until = millis_attr(&held, "expires_at")?;
                if held_by != owner && held_until >= to_millis(now) {
                    return Err(StoreError::AccountLocked {
                        integration_id: id.clone(),
                        external_id: external_id.to_owned(),
                        owner: held_by,
                        expires_at: held_until,
                    });
                }
            }
        }
        Err(gave_up(format!(
            "the lock on account {external_id} of integration {id} kept changing hands"
        )))
    }

    async fn release_account_lock(
        &self,
        id: &IntegrationId,
        external_id: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(Keys::integration(id)))
            .key("sk", s(Keys::account_lock(external_id)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            // Gone already, or someone else's: not ours to delete.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(sdk_err("DeleteItem", e)),
            Ok(_) => Ok(()),
        }
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.put_data(
            Keys::integration(&entry.integration_id),
            &Keys::audit(entry.at, &entry.id),
            entry,
        )
        .await
    }

    async fn list_audit(
        &self,
        id: &IntegrationId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let pk = Keys::integration(id);
        let start = match cursor {
            Some(c) => Some(key(pk.clone(), &cursor::parse_audit(c)?)),
            None => None,
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .scan_index_forward(false)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(Keys::AUDIT_PREFIX));
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        let entries = items
            .iter()
            .map(data::<AuditEntry>)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            entries.last().map(cursor::audit)
        } else {
            None
        };
        Ok(Page {
            items: entries,
            next,
        })
    }
}

impl DynamoStore {
    /// Up to `limit` items of `pk` whose sort key begins with `sk_prefix`, in sort-key
    /// order, from just after the sort key `after` if given, and the cursor after the last
    /// one when more follow.
    async fn sk_page<T: DeserializeOwned>(
        &self,
        pk: String,
        sk_prefix: &str,
        after: Option<String>,
        limit: usize,
        cursor_of: fn(&T) -> String,
    ) -> Result<Page<T>, StoreError> {
        let start = after.map(|sk| key(pk.clone(), &sk));
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(sk_prefix));
        let (items, more) = self.query_page(query, start, limit.max(1)).await?;
        data_page(&items, more, cursor_of)
    }

    /// A transaction step that creates `item` only if nothing is stored under its key.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

// Items ------------------------------------------------------------------------------------

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn item<T: Serialize + ?Sized>(pk: String, sk: &str, value: &T) -> Result<Item, StoreError> {
    let json = serde_json::to_string(value)
        .map_err(|e| StoreError::backend("cannot encode an item", e))?;
    let mut item = key(pk, sk);
    item.insert("data".into(), s(json));
    Ok(item)
}

/// An integration item, with the `gsi1` attributes that list it.
fn integration_item(integration: &Integration) -> Result<Item, StoreError> {
    let mut item = item(Keys::integration(&integration.id), Keys::META, integration)?;
    item.insert("gsi1pk".into(), s(Keys::INTEGRATIONS_GSI));
    item.insert("gsi1sk".into(), s(integration.id.as_str()));
    Ok(item)
}

/// A reclaim job item, with the `gsi1` attributes that list it under its integration.
fn reclaim_job_item(job: &ReclaimJob) -> Result<Item, StoreError> {
    let mut item = item(Keys::reclaim_job(&job.id), Keys::META, job)?;
    item.insert(
        "gsi1pk".into(),
        s(Keys::reclaim_jobs_partition(&job.integration_id)),
    );
    item.insert(
        "gsi1sk".into(),
        s(Keys::reclaim_job_sort(job.created_at, &job.id)),
    );
    Ok(item)
}

fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(build_err)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// A page of domain values from query items, with the cursor after the last one if more
/// follow.
fn data_page<T: DeserializeOwned>(
    items: &[Item],
    more: bool,
    cursor_of: fn(&T) -> String,
) -> Result<Page<T>, StoreError> {
    let values = items.iter().map(data::<T>).collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        values.last().map(cursor_of)
    } else {
        None
    };
    Ok(Page {
        items: values,
        next,
    })
}

fn account_item(id: &IntegrationId, account: &Account) -> Result<Item, StoreError> {
    let mut item = item(
        Keys::integration(id),
        &Keys::account(&account.external_id),
        account,
    )?;
    item.insert("content_hash".into(), s(account.content_hash()));
    // Only seat holders are in gsi2; a PutItem replaces the whole item, so an account that
    // lost its seat drops out of the index by itself.
    if let (Some(license_type), None) = (&account.license_type, account.vanished_at) {
        item.insert(
            "gsi2pk".into(),
            s(Keys::license_type_partition(id, license_type)),
        );
        item.insert(
            "gsi2sk".into(),
            s(Keys::last_login_sort(account.last_login_at)),
        );
    }
    // Every account but a vanished one is listed by its kind in gsi3.
    if account.vanished_at.is_none() {
        item.insert("gsi3pk".into(), s(Keys::kind_partition(id, account.kind)));
        item.insert("gsi3sk".into(), s(&account.external_id));
    }
    Ok(item)
}

fn lease_item(lease: &Lease) -> Result<Item, StoreError> {
    let mut item = key(
        Keys::integration(&lease.integration_id),
        &Keys::lease(lease.kind),
    );
    item.insert("owner".into(), s(&lease.owner));
    item.insert("expires_at".into(), millis(lease.expires_at));
    item.insert("ttl".into(), lease_ttl(lease.expires_at));
    if let Some(checkpoint) = &lease.checkpoint {
        item.insert("checkpoint".into(), s(checkpoint_json(checkpoint)?));
    }
    Ok(item)
}

fn checkpoint_json(checkpoint: &serde_json::Value) -> Result<String, StoreError> {
    serde_json::to_string(checkpoint)
        .map_err(|e| StoreError::backend("cannot encode a checkpoint", e))
}

fn lease_from_item(id: &IntegrationId, kind: LeaseKind, item: &Item) -> Result<Lease, StoreError> {
    let owner = string_attr(item, "owner")?.to_owned();
    let expires_raw = item
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .ok_or_else(|| corrupt(item, "expires_at is missing"))?;
    let expires_at = expires_raw
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| corrupt(item, "expires_at is not epoch millis"))?;
    let checkpoint = match item.get("checkpoint") {
        Some(value) => {
            let json = value
                .as_s()
                .map_err(|_| corrupt(item, "checkpoint is not a string"))?;
            Some(serde_json::from_str(json).map_err(|e| corrupt(item, &e.to_string()))?)
        }
        None => None,
    };
    Ok(Lease {
        integration_id: id.clone(),
        kind,
        owner,
        expires_at,
        checkpoint,
    })
}

fn millis_attr(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| corrupt(item, &format!("{name} is not epoch millis")))
}

fn data<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    let json = string_attr(item, "data")?;
    serde_json::from_str(json).map_err(|e| corrupt(item, &e.to_string()))
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| corrupt(item, &format!("{name} is missing")))
}

/// Names the item by its key only: values never go into messages.
fn corrupt(item: &Item, problem: &str) -> StoreError {
    let part = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map_or("?", String::as_str)
            .to_owned()
    };
    StoreError::Corrupt(format!("item {}/{}: {problem}", part("pk"), part("sk")))
}

fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

fn epoch_seconds(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

fn lease_ttl(expires_at: DateTime<Utc>) -> AttributeValue {
    epoch_seconds(expires_at + LEASE_TTL_GRACE)
}

fn page_limit(n: usize) -> i32 {
    i32::try_from(n.max(1)).unwrap_or(i32::MAX)
}

// Errors and retries -------------------------------------------------------------------------

fn is_conditional_failure<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

fn sdk_err<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::backend(
        format!("DynamoDB {operation} failed: {}", DisplayErrorContext(&err)),
        err,
    )
}

fn build_err(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::backend("invalid DynamoDB request", err)
}

fn gave_up(message: String) -> StoreError {
    StoreError::Backend {
        message,
        source: None,
    }
}

/// Exponential backoff with full jitter: 50 ms, 100 ms, … capped at 5 s.
async fn backoff(attempt: u32) {
    let cap_ms = 50u64.saturating_mul(1 << attempt.min(7)).min(5_000);
    let wait = rand::random_range(cap_ms / 2..=cap_ms);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

/// A short jittered pause before retrying a compare-and-swap another write beat, so
/// contenders spread out instead of colliding again (5–40 ms).
async fn conflict_pause() {
    let wait = rand::random_range(5..=40);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_err)
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_err("DescribeTable", e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(gave_up(format!("table {table} did not become active")))
}
