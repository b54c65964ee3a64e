//! The read commands with `--api`: the same output as the local commands, from the
//! deployed API's routes.

use crate::Format;
use crate::app::only_integration;
use crate::output::{self, IntegrationView, JsonAccounts, SummaryView, TaskRow};
use crate::remote::RemoteApi;
use anyhow::{Context, Result};
use seatkeeper_shared::domain::{InactiveDays, IntegrationId};
use seatkeeper_shared::services::report::AccountRow;
use serde::Deserialize;
use std::io::{BufWriter, Write};

/// Accounts asked for per page (the API's maximum).
const ACCOUNTS_PAGE: u32 = 1_000;
/// Runs asked for per task kind (the API's maximum).
const MAX_RUNS_PER_KIND: usize = 100;

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Tasks {
    tasks: Vec<TaskKindRuns>,
}

#[derive(Deserialize)]
struct TaskKindRuns {
    kind: String,
    runs: Vec<serde_json::Map<String, serde_json::Value>>,
}

async fn list(api: &RemoteApi) -> Result<Vec<IntegrationView>> {
    let list: Items<IntegrationView> = api.get_json(api.url(&["integrations"], &[])).await?;
    Ok(list.items)
}

/// The integration named by `--integration`, or the only one the stack has.
async fn resolve(api: &RemoteApi, raw: Option<&str>) -> Result<IntegrationId> {
    match raw {
        Some(raw) => crate::parse_integration_id(raw),
        None => {
            let ids = list(api)
                .await?
                .into_iter()
                .map(|i| crate::parse_integration_id(&i.id))
                .collect::<Result<Vec<_>>>()?;
            only_integration(ids)
        }
    }
}

pub async fn integrations(api: &RemoteApi) -> Result<()> {
    let all = list(api).await?;
    output::write_integrations(&mut std::io::stdout().lock(), &all)?;
    Ok(())
}

pub async fn report(
    api: &RemoteApi,
    integration: Option<&str>,
    days: InactiveDays,
    format: Format,
) -> Result<()> {
    let id = resolve(api, integration).await?;
    let id = id.to_string();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Table => {
            let summary = summary(api, &id, days).await?;
            output::write_table(&mut out, &summary)?;
        }
        Format::Json => {
            let summary = summary(api, &id, days).await?;
            let mut accounts = JsonAccounts::start(&mut out, &summary)?;
            each_account_page(api, &id, |rows| {
                rows.iter().try_for_each(|row| accounts.push(row))
            })
            .await?;
            accounts.finish()?;
        }
        Format::Csv => {
            writeln!(out, "{}", AccountRow::CSV_HEADER)?;
            each_account_page(api, &id, |rows| {
                rows.iter()
                    .try_for_each(|row| writeln!(out, "{}", row.csv_line()))
            })
            .await?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn summary(api: &RemoteApi, id: &str, days: InactiveDays) -> Result<SummaryView> {
    let url = api.url(
        &["integrations", id, "licenses"],
        &[("inactive_days", days.get().to_string())],
    );
    Ok(api.get_json(url).await?)
}

/// Every current account, a page at a time, in the API's order (never all in memory).
async fn each_account_page(
    api: &RemoteApi,
    id: &str,
    mut visit: impl FnMut(&[AccountRow]) -> std::io::Result<()>,
) -> Result<()> {
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", ACCOUNTS_PAGE.to_string())];
        if let Some(c) = cursor.take() {
            query.push(("cursor", c));
        }
        let url = api.url(&["integrations", id, "accounts"], &query);
        let page: Page<AccountRow> = api.get_json(url).await?;
        visit(&page.items).context("cannot write the report")?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

pub async fn tasks(api: &RemoteApi, integration: Option<&str>, limit: usize) -> Result<()> {
    let id = resolve(api, integration).await?.to_string();
    let per_kind = limit.min(MAX_RUNS_PER_KIND);
    let url = api.url(
        &["integrations", &id, "tasks"],
        &[("limit", per_kind.to_string())],
    );
    let tasks: Tasks = api.get_json(url).await?;
    // The API groups runs by task kind; the CLI lists them newest first, like the store.
    let mut rows: Vec<TaskRow> = Vec::new();
    for group in tasks.tasks {
        for mut run in group.runs {
            run.insert(
                "kind".to_owned(),
                serde_json::Value::String(group.kind.clone()),
            );
            rows.push(serde_json::from_value(serde_json::Value::Object(run))?);
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    rows.truncate(limit);
    output::write_tasks(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}
