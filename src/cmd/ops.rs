//! Operator commands on the sidecar: `outbox list`, `outbox drop <ID>` and
//! `forget <KEY>`. The writing ones take the tick lock like a live tick
//! (busy → 75) and honour --dry-run (say what would change, change nothing).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;

use crate::cli::{Cli, Format};
use crate::cmd;
use crate::store::{self, OutboxStatus, Sidecar, SidecarReader, TickLock};

/// The sidecar path for a command that may write: a config that exists
/// must be valid (78), as for a tick.
fn writable_state_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if cli.state.is_some() {
        return Ok(cmd::state_path(cli, None));
    }
    let path = cmd::config_path(cli);
    if path.exists() || cli.config_given() {
        let cfg = cmd::load_config(cli, false)?;
        Ok(cmd::state_path(cli, Some(&cfg)))
    } else {
        Ok(cmd::state_path(cli, None))
    }
}

/// Lock, then open live; `None` when there is no sidecar yet (nothing to
/// change, and nothing is created).
fn open_locked(cli: &Cli, path: &std::path::Path) -> anyhow::Result<Option<(TickLock, Sidecar)>> {
    if SidecarReader::open(path)?.is_none() {
        return Ok(None);
    }
    let lock = TickLock::acquire(path, Duration::from_secs(cli.wait_lock))
        .map_err(store::LockError::into_anyhow)?;
    Ok(Some((lock, Sidecar::open(path)?)))
}

pub fn outbox_list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cfg = cmd::optional_config(cli, "outbox list");
    let path = cmd::state_path(cli, cfg.as_ref());
    let messages = match SidecarReader::open(&path)? {
        Some(s) => s.list_outbox()?,
        None => Vec::new(),
    };
    match cli.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "messages": messages }))
                .context("serializing the outbox")?
        ),
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
                let _ = writeln!(out, "  {}", m.digest_line);
                if let Some(e) = &m.last_error {
                    let _ = writeln!(out, "       last error: {e}");
                }
            }
            print!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn done(cli: &Cli, value: serde_json::Value, text: String, ok: bool) -> ExitCode {
    match cli.output {
        Format::Json => println!("{value}"),
        Format::Text if ok => println!("{text}"),
        Format::Text => eprintln!("reconcile: {text}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Drops one queued message. Exit 1 when no queued message has that id.
pub fn outbox_drop(cli: &Cli, id: i64) -> anyhow::Result<ExitCode> {
    let path = writable_state_path(cli)?;
    let queued = |s: &SidecarReader| -> anyhow::Result<bool> {
        Ok(s.list_outbox()?
            .iter()
            .any(|m| m.id == id && m.status == OutboxStatus::Queued))
    };
    let (found, dropped) = if cli.dry_run {
        let found = match SidecarReader::open(&path)? {
            Some(s) => queued(&s)?,
            None => false,
        };
        (found, false)
    } else {
        match open_locked(cli, &path)? {
            Some((_lock, mut s)) => {
                let dropped = s.drop_outbox(id, OffsetDateTime::now_utc())?;
                s.close()?;
                (dropped, dropped)
            }
            None => (false, false),
        }
    };
    let text = match (found, cli.dry_run) {
        (false, _) => format!("outbox: no queued message {id}"),
        (true, true) => format!("outbox: would drop message {id} (dry-run)"),
        (true, false) => format!("outbox: dropped message {id}"),
    };
    if found && !cli.dry_run {
        log::info!("outbox message {id} dropped by the operator");
    }
    let value =
        serde_json::json!({"id": id, "found": found, "dropped": dropped, "dry_run": cli.dry_run});
    Ok(done(cli, value, text, found))
}

/// Drops one de-dup key. Exit 1 when the key is not in the map.
pub fn forget(cli: &Cli, key: &str) -> anyhow::Result<ExitCode> {
    let path = writable_state_path(cli)?;
    let (found, forgotten) = if cli.dry_run {
        let found = match SidecarReader::open(&path)? {
            Some(s) => s.last_announced(key)?.is_some(),
            None => false,
        };
        (found, false)
    } else {
        match open_locked(cli, &path)? {
            Some((_lock, mut s)) => {
                let gone = s.forget(key)?;
                s.close()?;
                (gone, gone)
            }
            None => (false, false),
        }
    };
    let text = match (found, cli.dry_run) {
        (false, _) => format!("forget: no de-dup key {key:?}"),
        (true, true) => format!("forget: would forget {key:?} (dry-run)"),
        (true, false) => format!("forget: {key:?} forgotten; its next unblock is announced"),
    };
    let value = serde_json::json!({"key": key, "found": found, "forgotten": forgotten, "dry_run": cli.dry_run});
    Ok(done(cli, value, text, found))
}
