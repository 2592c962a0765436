//! `reconcile outbox list | drop <ID>`: the queued notifications. `drop`
//! takes the tick lock and honours --dry-run.

use crate::output::escape as esc;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use time::OffsetDateTime;

use super::{Context, done, open_locked};
use crate::cli::Format;
use crate::store::{OutboxStatus, SidecarReader};

pub(super) fn list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let cfg = ctx.optional_config("outbox list");
    let path = ctx.state_path(cfg.as_ref());
    let messages = match SidecarReader::open(&path)? {
        Some(s) => s.list_outbox()?,
        None => Vec::new(),
    };
    match ctx.format {
        Format::Json => super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({ "messages": messages }))
                .context("serializing the outbox")?
        )),
        Format::Text => {
            let mut out = String::new();
            let queued = messages
                .iter()
                .filter(|m| m.status == OutboxStatus::Queued)
                .count();
            let _ = writeln!(
                out,
                "{queued} queued, {} recently dropped",
                messages.len() - queued
            );
            for m in &messages {
                let _ = write!(
                    out,
                    "{:>5}  {:<7}  {:<7}  {}  attempts {}",
                    m.id,
                    m.status.as_str(),
                    m.kind.as_str(),
                    m.created_at,
                    m.attempts
                );
                if m.status == OutboxStatus::Queued {
                    let _ = write!(out, "  next {}", m.next_attempt_at);
                }
                let _ = writeln!(out, "  {}", esc(&m.digest_line));
                if let Some(e) = &m.last_error {
                    let _ = writeln!(out, "       last error: {}", esc(e));
                }
            }
            super::emit(&out);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Drops one queued message. Exit 1 when no queued message has that id.
pub(super) fn drop(ctx: &Context, id: i64) -> anyhow::Result<ExitCode> {
    let path = ctx.writable_state_path()?;
    let queued = |s: &SidecarReader| -> anyhow::Result<bool> {
        Ok(s.list_outbox()?
            .iter()
            .any(|m| m.id == id && m.status == OutboxStatus::Queued))
    };
    let (found, dropped) = if ctx.dry_run {
        let found = match SidecarReader::open(&path)? {
            Some(s) => queued(&s)?,
            None => false,
        };
        (found, false)
    } else {
        match open_locked(ctx, &path)? {
            Some((_lock, mut s)) => {
                let dropped = s.drop_outbox(id, OffsetDateTime::now_utc())?;
                s.close()?;
                (dropped, dropped)
            }
            None => (false, false),
        }
    };
    let text = match (found, ctx.dry_run) {
        (false, _) => format!("outbox: no queued message {id}"),
        (true, true) => format!("outbox: would drop message {id} (dry-run)"),
        (true, false) => format!("outbox: dropped message {id}"),
    };
    if found && !ctx.dry_run {
        log::info!("outbox message {id} dropped by the operator");
    }
    let value =
        serde_json::json!({"id": id, "found": found, "dropped": dropped, "dry_run": ctx.dry_run});
    Ok(done(ctx, value, text, found))
}
