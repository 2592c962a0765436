//! `reconcile history`: recent unblocks and ticks, read-only from the
//! sidecar (a missing sidecar is an empty history, and is not created).

use crate::output::escape as esc;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;

use super::Context;
use crate::cli::Format;
use crate::store::{HistoryRow, SidecarReader, TickRow};

pub fn run(ctx: &Context, limit: usize, since: Option<Duration>) -> anyhow::Result<ExitCode> {
    let cfg = ctx.optional_config("history");
    let path = ctx.state_path(cfg.as_ref());
    let since = match since {
        Some(d) => {
            let d = time::Duration::try_from(d).context("--since: out of range")?;
            Some(
                OffsetDateTime::now_utc()
                    .checked_sub(d)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            )
        }
        None => None,
    };
    let (unblocks, ticks) = match SidecarReader::open(&path)? {
        Some(s) => s.history(limit, since)?,
        None => (Vec::new(), Vec::new()),
    };
    match ctx.format {
        Format::Json => {
            let value = serde_json::json!({
                "state_path": path.display().to_string(),
                "unblocks": unblocks,
                "ticks": ticks,
            });
            super::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&value).context("serializing the history")?
            ));
        }
        Format::Text => super::emit(&text(&unblocks, &ticks)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Two tables, newest first.
pub fn text(unblocks: &[HistoryRow], ticks: &[TickRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "unblocks ({}, newest first):", unblocks.len());
    if unblocks.is_empty() {
        out.push_str("  none\n");
    }
    for u in unblocks {
        let item = match (&u.work_item_id, u.task_id) {
            (Some(w), _) => w.clone(),
            (None, Some(t)) => format!("task {t}"),
            (None, None) => u.key.clone(),
        };
        let _ = writeln!(
            out,
            "  {}  {:<5}  {:<12}  {:<14}  {}",
            esc(&u.at),
            esc(&u.pass),
            esc(&item),
            esc(&u.stage),
            esc(&u.notification)
        );
    }
    let _ = writeln!(out, "ticks ({}, newest first):", ticks.len());
    if ticks.is_empty() {
        out.push_str("  none\n");
    }
    for t in ticks {
        let counts = match &t.counts {
            serde_json::Value::Object(m) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {}  {:<5}  {:>7.2}s  exit {:<2}  {}",
            t.started_at,
            t.command,
            t.duration_ms as f64 / 1000.0,
            t.exit_code,
            counts
        );
    }
    out
}
