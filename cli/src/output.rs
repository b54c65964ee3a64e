//! Rendering reports: a table for people, JSON and CSV for tools. Accounts are streamed.

use crate::Format;
use crate::app::LocalApp;
use anyhow::Result;
use seatkeeper_shared::domain::{InactiveDays, IntegrationId};
use seatkeeper_shared::services::report::{
    AccountRow, LicenseSummary, for_each_account, license_summary,
};
use seatkeeper_shared::store::Store;
use std::io::{BufWriter, Write};

pub async fn print_report(
    app: &LocalApp,
    id: &IntegrationId,
    days: InactiveDays,
    format: Format,
) -> Result<()> {
    let summary = license_summary(app.store.as_ref(), id, days).await?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match format {
        Format::Table => write_table(&mut out, &summary)?,
        Format::Json => {
            // The summary's fields, then the accounts one by one: a large tenant is never
            // held in memory as a whole.
            let head = serde_json::to_string(&summary)?;
            let head = head.strip_suffix('}').unwrap_or(&head);
            write!(out, "{head},\"accounts\":[")?;
            let mut first = true;
            for_each_account(app.store.as_ref(), id, |row| {
                if !first {
                    out.write_all(b",")?;
                }
                first = false;
                serde_json::to_writer(&mut out, &row)?;
                Ok(())
            })
            .await?;
            writeln!(out, "]}}")?;
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

pub fn write_table(out: &mut impl Write, s: &LicenseSummary) -> std::io::Result<()> {
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
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
    let all = app.store.list_integrations().await?;
    if all.is_empty() {
        println!(
            "No integrations yet. Connect one with `seatkeeper connect box ...`, or try `seatkeeper demo`."
        );
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
        println!(
            "{}  {:<10} {:<30} {:?}  {last}",
            i.id, i.provider, i.name, i.status
        );
    }
    Ok(())
}

pub async fn print_tasks(app: &LocalApp, id: &IntegrationId, limit: usize) -> Result<()> {
    let runs = app.store.list_task_runs(id, None, limit).await?;
    if runs.is_empty() {
        println!("No task has run yet: `seatkeeper sync` runs them.");
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<20} {:>9}  details",
        "Task", "Status", "Started", "Seconds"
    );
    for run in runs {
        let counts: Vec<String> = run.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let details = run.error.unwrap_or_else(|| counts.join(" "));
        println!(
            "{:<24} {:<10} {:<20} {:>9.1}  {details}",
            run.kind.as_str(),
            format!("{:?}", run.status).to_lowercase(),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.duration_ms as f64 / 1000.0,
        );
    }
    Ok(())
}
