//! Rendering reports: a table for people, JSON and CSV for tools. Accounts are streamed.
//!
//! Every renderer works on the JSON shape the API serves (the views below), and the local
//! commands pass their values through the same shape, so `--api` output is identical to the
//! local output by construction.

use crate::Format;
use crate::app::LocalApp;
use anyhow::Result;
use chrono::{DateTime, Utc};
use seatkeeper_shared::domain::{InactiveDays, IntegrationId};
use seatkeeper_shared::services::report::{AccountRow, for_each_account, license_summary};
use seatkeeper_shared::store::Store;
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};

/// The license summary (`GET /integrations/{id}/licenses`): the report without accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryView {
    pub integration: SummaryIntegration,
    pub synced_at: DateTime<Utc>,
    pub inactive_days: u32,
    pub event_coverage: Option<CoverageView>,
    pub seats: SeatsView,
    pub license_types: Vec<LicenseTypeView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub potential_savings: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryIntegration {
    pub id: String,
    pub provider: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoverageView {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeatsView {
    pub purchased: Option<u64>,
    pub assigned: u64,
    pub available: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenseTypeView {
    pub name: String,
    pub assigned: u64,
    pub active: u64,
    pub inactive: u64,
    pub never_logged_in: u64,
}

/// One integration as `seatkeeper integrations` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationView {
    pub id: String,
    pub provider: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub last_sync: Option<LastSyncView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LastSyncView {
    pub finished_at: DateTime<Utc>,
    pub succeeded: bool,
}

/// One task run as `seatkeeper tasks` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskRow {
    pub kind: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    #[serde(default)]
    pub counts: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
}

/// Any serializable value through the API's JSON shape.
pub fn view<T: Serialize, V: for<'de> Deserialize<'de>>(value: &T) -> Result<V> {
    Ok(serde_json::from_value(serde_json::to_value(value)?)?)
}

pub async fn print_report(
    app: &LocalApp,
    id: &IntegrationId,
    days: InactiveDays,
    format: Format,
) -> Result<()> {
    let summary: SummaryView = view(&license_summary(app.store.as_ref(), id, days).await?)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Table => write_table(&mut out, &summary)?,
        Format::Json => {
            // The summary's fields, then the accounts one by one: a large tenant is never
            // held in memory as a whole.
            let mut accounts = JsonAccounts::start(&mut out, &summary)?;
            for_each_account(app.store.as_ref(), id, |row| accounts.push(&row)).await?;
            accounts.finish()?;
        }
        Format::Csv => {
            writeln!(out, "{}", AccountRow::CSV_HEADER)?;
            for_each_account(app.store.as_ref(), id, |row| {
                writeln!(out, "{}", row.csv_line())
            })
            .await?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The JSON report written piece by piece: `{<summary fields>, "accounts": [<rows>]}`.
pub struct JsonAccounts<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<'w, W: Write> JsonAccounts<'w, W> {
    pub fn start(out: &'w mut W, summary: &SummaryView) -> std::io::Result<Self> {
        let head = serde_json::to_string(summary)?;
        let head = head.strip_suffix('}').unwrap_or(&head);
        write!(out, "{head},\"accounts\":[")?;
        Ok(Self { out, first: true })
    }

    pub fn push(&mut self, row: &impl Serialize) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, row)?;
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<()> {
        writeln!(self.out, "]}}")
    }
}

pub fn write_table(out: &mut impl Write, s: &SummaryView) -> std::io::Result<()> {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    writeln!(
        out,
        "{} · {} (integration {})",
        s.integration.provider, s.integration.name, s.integration.id
    )?;
    writeln!(
        out,
        "Data as of {}; inactive = no login in the last {} days",
        time(s.synced_at),
        s.inactive_days
    )?;
    if let Some(c) = &s.event_coverage {
        writeln!(
            out,
            "Login events read from {} to {}",
            time(c.from),
            time(c.to)
        )?;
    }
    let purchased = s
        .seats
        .purchased
        .map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    let available = s
        .seats
        .available
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    writeln!(
        out,
        "Seats: {purchased} purchased, {} assigned, {available} available",
        s.seats.assigned
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>9} {:>16}",
        "License type", "Assigned", "Active", "Inactive", "Never logged in"
    )?;
    for lt in &s.license_types {
        writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>16}",
            lt.name, lt.assigned, lt.active, lt.inactive, lt.never_logged_in
        )?;
    }
    Ok(())
}

pub async fn print_integrations(app: &LocalApp) -> Result<()> {
    let all: Vec<IntegrationView> = view(&app.store.list_integrations().await?)?;
    write_integrations(&mut std::io::stdout().lock(), &all)?;
    Ok(())
}

pub fn write_integrations(out: &mut impl Write, all: &[IntegrationView]) -> std::io::Result<()> {
    if all.is_empty() {
        writeln!(
            out,
            "No integrations yet. Connect one with `seatkeeper connect box ...`, or try `seatkeeper demo`."
        )?;
    }
    for i in all {
        let last = i.last_sync.as_ref().map_or_else(
            || "never synced".to_owned(),
            |s| {
                let outcome = if s.succeeded { "ok" } else { "failed" };
                format!(
                    "last sync {} ({outcome})",
                    s.finished_at.format("%Y-%m-%d %H:%M UTC")
                )
            },
        );
        writeln!(
            out,
            "{}  {:<10} {:<30} {:<12}  {last}",
            i.id, i.provider, i.name, i.status
        )?;
    }
    Ok(())
}

pub async fn print_tasks(app: &LocalApp, id: &IntegrationId, limit: usize) -> Result<()> {
    let runs: Vec<TaskRow> = view(&app.store.list_task_runs(id, None, limit).await?)?;
    write_tasks(&mut std::io::stdout().lock(), &runs)?;
    Ok(())
}

pub fn write_tasks(out: &mut impl Write, runs: &[TaskRow]) -> std::io::Result<()> {
    if runs.is_empty() {
        writeln!(out, "No task has run yet: `seatkeeper sync` runs them.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<10} {:<20} {:>9}  details",
        "Task", "Status", "Started", "Seconds"
    )?;
    for run in runs {
        let counts: Vec<String> = run.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let details = run.error.clone().unwrap_or_else(|| counts.join(" "));
        writeln!(
            out,
            "{:<24} {:<10} {:<20} {:>9.1}  {details}",
            run.kind,
            run.status,
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.duration_ms as f64 / 1000.0,
        )?;
    }
    Ok(())
}
