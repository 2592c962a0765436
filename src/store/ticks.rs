//! The tick log, the history of unblocks, the counters `status` shows, and
//! retention.

use std::collections::BTreeMap;

use crate::core::outcome::Reason;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::errors::Result;
use super::metrics::{self, SeriesKey};
use super::{Sidecar, SidecarReader, format_ts, select};

/// How long ticks, history, idle de-dup keys and finished outbox rows are
/// kept.
pub const RETENTION: time::Duration = time::Duration::days(90);

pub(super) const C_UNBLOCKED: &str = "unblocked_total";
pub(super) const C_DEDUPED: &str = "deduped_total";
pub(super) const C_SKIPPED_TERMINAL: &str = "skipped_terminal_total";
pub(super) const C_TICKS: &str = "ticks_total";
pub(super) const C_ERRORS: &str = "errors_total";
pub(super) const C_DROPPED: &str = "notifications_dropped_total";
/// Per-reason skip counters are `skipped_<reason>`.
pub(super) const C_SKIP_PREFIX: &str = "skipped_";

pub(super) const K_LAST_RUN: &str = "last_run_ts";
pub(super) const K_LAST_SUCCESS: &str = "last_success_ts";
pub(super) const K_LAST_UNBLOCKED: &str = "last_unblocked";
const K_PLANE_UNREAD: &str = "plane_projects_unread";
const K_PLANE_OLDEST_SYNC: &str = "plane_oldest_sync_at";

/// What a finished (non-dry-run) tick hands to [`Sidecar::finish_tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    /// "gate" | "plane" | "all".
    pub command: String,
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// Units per outcome / outcome+reason, as the report's summary line:
    /// `{"advanced": 1, "skipped/young": 3}`. Stored as JSON with the tick
    /// (what `history` shows).
    pub counts: BTreeMap<String, i64>,
    /// Skipped units per reason: each adds to the counter
    /// `skipped_<reason>` (the per-reason skip counts of `status`).
    pub skips: BTreeMap<Reason, i64>,
    pub exit_code: i32,
    /// Failed units (→ errors_total).
    pub errors: i64,
    /// Terminal skips (→ skipped_terminal_total, the original reconciler's counter).
    pub skipped_terminal: i64,
    /// Keys of the unblocks suppressed as duplicates this tick: deduped_total
    /// grows by their number and each key's de-dup row is touched (kept
    /// alive for retention).
    pub deduped_keys: Vec<String>,
    /// Where the next tick's pass starts (the first unit the action cap
    /// deferred), per pass that ran: `None` clears it.
    pub cursors: Vec<(String, Option<String>)>,
    /// Increments of the labelled metric counters (units, requests, ticks).
    pub series: BTreeMap<SeriesKey, i64>,
    /// Plane projects this tick meant to read and did not.
    pub plane_projects_unread: u64,
    /// The oldest last successful sync among the projects this tick meant
    /// to read (None: none of them ever synced, or none was needed).
    pub plane_oldest_sync_at: Option<OffsetDateTime>,
}

/// The persisted counters (`status`, docs/report.md). The config-derived keys
/// (`enabled`, `plane_enabled`, `interval`) are the caller's to add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub last_run_ts: Option<String>,
    pub last_success_ts: Option<String>,
    pub unblocked_total: i64,
    pub last_unblocked: Option<String>,
    pub skipped_terminal_total: i64,
    pub deduped_total: i64,
    pub ticks_total: i64,
    pub errors_total: i64,
    pub notifications_pending: i64,
    pub notifications_dropped_total: i64,
    /// Per-reason skip counts, reason → units.
    pub skips: BTreeMap<String, i64>,
    /// The labelled metric counters (for the metrics textfile only).
    #[serde(skip)]
    pub series: BTreeMap<SeriesKey, i64>,
    /// Plane projects the last tick meant to read and did not (the fair
    /// budget's deferrals, the deadline, failures).
    pub plane_projects_unread: i64,
    /// The oldest last successful sync among the projects the last tick
    /// meant to read.
    pub plane_oldest_sync_at: Option<String>,
    /// Seconds from that sync to now (see `Snapshot::at`).
    pub plane_oldest_sync_age_s: Option<i64>,
}

impl Snapshot {
    /// Fills in the ages that depend on the time of asking.
    pub fn at(mut self, now: OffsetDateTime) -> Snapshot {
        self.plane_oldest_sync_age_s = self
            .plane_oldest_sync_at
            .as_deref()
            .and_then(crate::core::timestamp::parse)
            .map(|t| (now - t).whole_seconds().max(0));
        self
    }
}

/// One recorded unblock (for `history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub at: String,
    pub pass: String,
    pub key: String,
    pub task_id: Option<i64>,
    pub issue_id: Option<String>,
    pub work_item_id: Option<String>,
    pub stage: String,
    pub state_uuid: Option<String>,
    pub text: String,
    pub outbox_id: Option<i64>,
    /// "sent" | "queued" | "dropped" from its outbox row, "off" when none.
    pub notification: String,
}

/// One recorded tick (for `history`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickRow {
    pub id: i64,
    pub started_at: String,
    pub finished_at: String,
    pub command: String,
    pub duration_ms: i64,
    pub counts: serde_json::Value,
    pub exit_code: i64,
}

pub(super) fn add_counter(tx: &Connection, name: &str, by: i64) -> rusqlite::Result<()> {
    if by == 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO counters(name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        params![name, by],
    )?;
    Ok(())
}

pub(super) fn set_kv(tx: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO kv(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

impl Sidecar {
    /// Record a finished non-dry-run tick in ONE transaction: the ticks row,
    /// ticks_total, errors_total, skipped_terminal_total, deduped_total (and
    /// touch the de-dup keys), the per-reason skip counters, last_run_ts,
    /// last_success_ts (exit 0 only), then retention (docs/sidecar.md). Returns the
    /// tick's id.
    pub fn finish_tick(&mut self, rec: &TickRecord, now: OffsetDateTime) -> Result<i64> {
        let counts = serde_json::to_string(&rec.counts).unwrap_or_else(|_| "{}".to_string());
        let started = format_ts(rec.started_at);
        let cutoff = format_ts(now - RETENTION);
        let now = format_ts(now);
        self.write("record the tick", |tx| {
            tx.execute(
                "INSERT INTO ticks(started_at, finished_at, command, duration_ms, counts,
                                   exit_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    started,
                    now,
                    rec.command,
                    i64::try_from(rec.duration_ms).unwrap_or(i64::MAX),
                    counts,
                    rec.exit_code
                ],
            )?;
            let id = tx.last_insert_rowid();
            add_counter(tx, C_TICKS, 1)?;
            add_counter(tx, C_ERRORS, rec.errors)?;
            add_counter(tx, C_SKIPPED_TERMINAL, rec.skipped_terminal)?;
            add_counter(tx, C_DEDUPED, rec.deduped_keys.len() as i64)?;
            for key in &rec.deduped_keys {
                tx.execute(
                    "UPDATE dedup SET touched_at = ?1 WHERE key = ?2",
                    params![now, key],
                )?;
            }
            for (reason, n) in &rec.skips {
                add_counter(tx, &format!("{C_SKIP_PREFIX}{}", reason.as_str()), *n)?;
            }
            for (pass, at) in &rec.cursors {
                let key = format!("cursor/{pass}");
                match at {
                    Some(v) => set_kv(tx, &key, v)?,
                    None => {
                        tx.execute("DELETE FROM kv WHERE key = ?1", [&key])?;
                    }
                }
            }
            metrics::add(tx, &rec.series)?;
            set_kv(tx, K_PLANE_UNREAD, &rec.plane_projects_unread.to_string())?;
            match rec.plane_oldest_sync_at {
                Some(at) => set_kv(tx, K_PLANE_OLDEST_SYNC, &format_ts(at))?,
                None => {
                    tx.execute("DELETE FROM kv WHERE key = ?1", [K_PLANE_OLDEST_SYNC])?;
                }
            }
            set_kv(tx, K_LAST_RUN, &now)?;
            if rec.exit_code == 0 {
                set_kv(tx, K_LAST_SUCCESS, &now)?;
            }
            retain(tx, &cutoff)?;
            Ok(id)
        })
    }
}

impl SidecarReader {
    /// Where a pass should start this tick, so that the action cap never
    /// starves the same units tick after tick (see `TickRecord::cursors`).
    pub fn cursor(&self, pass: &str) -> Result<Option<String>> {
        self.conn()?
            .query_row(
                "SELECT value FROM kv WHERE key = ?1",
                [format!("cursor/{pass}")],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading a cursor"))
    }

    /// The persisted counters for `status`.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let err = self.err("reading the counters");
        let conn = self.conn()?;
        let mut snap = Snapshot::default();
        let counters: Vec<_> = select(&conn, "SELECT name, value FROM counters", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(&err)?;
        for (name, value) in counters {
            match name.as_str() {
                C_UNBLOCKED => snap.unblocked_total = value,
                C_DEDUPED => snap.deduped_total = value,
                C_SKIPPED_TERMINAL => snap.skipped_terminal_total = value,
                C_TICKS => snap.ticks_total = value,
                C_ERRORS => snap.errors_total = value,
                C_DROPPED => snap.notifications_dropped_total = value,
                other => {
                    if let Some(reason) = other.strip_prefix(C_SKIP_PREFIX) {
                        snap.skips.insert(reason.to_string(), value);
                    }
                }
            }
        }
        let kv: Vec<_> = select(&conn, "SELECT key, value FROM kv", [], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(&err)?;
        for (key, value) in kv {
            match key.as_str() {
                K_LAST_RUN => snap.last_run_ts = Some(value),
                K_LAST_SUCCESS => snap.last_success_ts = Some(value),
                K_LAST_UNBLOCKED => snap.last_unblocked = Some(value),
                K_PLANE_UNREAD => snap.plane_projects_unread = value.parse().unwrap_or(0),
                K_PLANE_OLDEST_SYNC => snap.plane_oldest_sync_at = Some(value),
                _ => {}
            }
        }
        snap.notifications_pending = conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE status = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(&err)?;
        snap.series = metrics::read(&conn).map_err(&err)?;
        Ok(snap)
    }

    /// The newest `limit` unblocks and the newest `limit` ticks, at or after
    /// `since` when given, newest first.
    pub fn history(
        &self,
        limit: usize,
        since: Option<OffsetDateTime>,
    ) -> Result<(Vec<HistoryRow>, Vec<TickRow>)> {
        let err = self.err("reading the history");
        let since = since.map(format_ts).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        let unblocks = select(
            &conn,
            "SELECT h.id, h.at, h.pass, h.key, h.task_id, h.issue_id, h.work_item_id,
                    h.stage, h.state_uuid, h.text, h.outbox_id,
                    COALESCE(o.status, 'off')
             FROM history h LEFT JOIN outbox o ON o.id = h.outbox_id
             WHERE h.at >= ?1 ORDER BY h.id DESC LIMIT ?2",
            params![since, limit],
            |r| {
                Ok(HistoryRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    pass: r.get(2)?,
                    key: r.get(3)?,
                    task_id: r.get(4)?,
                    issue_id: r.get(5)?,
                    work_item_id: r.get(6)?,
                    stage: r.get(7)?,
                    state_uuid: r.get(8)?,
                    text: r.get(9)?,
                    outbox_id: r.get(10)?,
                    notification: r.get(11)?,
                })
            },
        )
        .map_err(&err)?;
        let ticks = select(
            &conn,
            "SELECT id, started_at, finished_at, command, duration_ms, counts, exit_code
             FROM ticks WHERE started_at >= ?1 ORDER BY id DESC LIMIT ?2",
            params![since, limit],
            |r| {
                let counts: String = r.get(5)?;
                Ok(TickRow {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    command: r.get(3)?,
                    duration_ms: r.get(4)?,
                    counts: serde_json::from_str(&counts).unwrap_or(serde_json::Value::Null),
                    exit_code: r.get(6)?,
                })
            },
        )
        .map_err(&err)?;
        Ok((unblocks, ticks))
    }
}

/// Retention (docs/sidecar.md): ticks and history older than the cutoff, de-dup keys
/// untouched since, sent/dropped outbox rows finished before it. Queued
/// messages are always kept.
fn retain(tx: &Connection, cutoff: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM ticks WHERE started_at < ?1", [cutoff])?;
    tx.execute("DELETE FROM history WHERE at < ?1", [cutoff])?;
    tx.execute("DELETE FROM dedup WHERE touched_at < ?1", [cutoff])?;
    // A memo still matching is never rewritten: past retention it costs
    // one more replay, which records it afresh.
    tx.execute("DELETE FROM noop_memo WHERE recorded_at < ?1", [cutoff])?;
    tx.execute(
        "DELETE FROM outbox WHERE (status = 'sent' AND COALESCE(sent_at, created_at) < ?1)
            OR (status = 'dropped' AND COALESCE(dropped_at, created_at) < ?1)",
        [cutoff],
    )?;
    Ok(())
}
