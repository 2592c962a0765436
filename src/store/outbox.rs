//! The outbox: messages waiting for Telegram, delivered at least once.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::errors::Result;
use super::ticks::{C_DROPPED, add_counter};
use super::{Sidecar, SidecarReader, format_ts, select};

/// Failed delivery attempts after which a queued message is dropped.
pub const MAX_ATTEMPTS: i64 = 20;

/// How many dropped messages [`SidecarReader::list_outbox`] shows.
const RECENT_DROPPED: i64 = 50;

/// What an outbox message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Unblock,
    Cycle,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Unblock => "unblock",
            MessageKind::Cycle => "cycle",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "unblock" => Some(MessageKind::Unblock),
            "cycle" => Some(MessageKind::Cycle),
            _ => None,
        }
    }
}

/// Where an outbox message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Queued,
    Sent,
    Dropped,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dropped => "dropped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(OutboxStatus::Queued),
            "sent" => Some(OutboxStatus::Sent),
            "dropped" => Some(OutboxStatus::Dropped),
            _ => None,
        }
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub created_at: String,
    pub kind: MessageKind,
    pub text: String,
    pub digest_line: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub status: OutboxStatus,
    pub sent_at: Option<String>,
    pub dropped_at: Option<String>,
    pub history_id: Option<i64>,
}

pub(super) fn insert_message(
    tx: &Connection,
    kind: MessageKind,
    text: &str,
    digest_line: &str,
    now: &str,
    history_id: Option<i64>,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO outbox(created_at, kind, text, digest_line, next_attempt_at, history_id)
         VALUES (?1, ?2, ?3, ?4, ?1, ?5)",
        params![now, kind.as_str(), text, digest_line, history_id],
    )?;
    Ok(tx.last_insert_rowid())
}

const OUTBOX_COLUMNS: &str = "id, created_at, kind, text, digest_line, attempts, next_attempt_at, \
     last_error, status, sent_at, dropped_at, history_id";

fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxMessage> {
    let kind: String = r.get(2)?;
    let status: String = r.get(8)?;
    let bad = |i: usize, v: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown value {v:?}").into(),
        )
    };
    Ok(OutboxMessage {
        id: r.get(0)?,
        created_at: r.get(1)?,
        kind: MessageKind::parse(&kind).ok_or_else(|| bad(2, kind.clone()))?,
        text: r.get(3)?,
        digest_line: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
        status: OutboxStatus::parse(&status).ok_or_else(|| bad(8, status.clone()))?,
        sent_at: r.get(9)?,
        dropped_at: r.get(10)?,
        history_id: r.get(11)?,
    })
}

impl SidecarReader {
    /// Queued messages due at `now`, oldest first.
    pub fn due_messages(&self, now: OffsetDateTime) -> Result<Vec<OutboxMessage>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox
             WHERE status = 'queued' AND next_attempt_at <= ?1 ORDER BY id"
        );
        self.query_outbox(&sql, params![format_ts(now)])
    }

    /// Every queued message plus the most recent dropped ones (newest 50),
    /// oldest first (`reconcile outbox list`).
    pub fn list_outbox(&self) -> Result<Vec<OutboxMessage>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued'
             UNION ALL
             SELECT * FROM (SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'dropped'
                            ORDER BY id DESC LIMIT ?1)
             ORDER BY id"
        );
        self.query_outbox(&sql, params![RECENT_DROPPED])
    }

    fn query_outbox(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<OutboxMessage>> {
        let conn = self.conn()?;
        select(&conn, sql, args, outbox_row).map_err(self.err("reading the outbox"))
    }

    /// Queued messages (`notifications_pending`).
    pub fn pending_count(&self) -> Result<i64> {
        self.conn()?
            .query_row(
                "SELECT count(*) FROM outbox WHERE status = 'queued'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("reading the outbox"))
    }
}

impl Sidecar {
    /// Queue a message that is not an unblock (cycle alerts). Returns its id.
    pub fn queue_message(
        &mut self,
        kind: MessageKind,
        text: &str,
        digest_line: &str,
        now: OffsetDateTime,
    ) -> Result<i64> {
        let now = format_ts(now);
        self.write("queue a message", |tx| {
            insert_message(tx, kind, text, digest_line, &now, None)
        })
    }

    /// Mark delivered messages sent, in one transaction (only queued ones
    /// change). Returns how many changed.
    pub fn mark_sent(&mut self, ids: &[i64], now: OffsetDateTime) -> Result<usize> {
        let now = format_ts(now);
        self.write("mark messages sent", |tx| {
            let mut stmt = tx.prepare(
                "UPDATE outbox SET status = 'sent', sent_at = ?1
                 WHERE id = ?2 AND status = 'queued'",
            )?;
            let mut n = 0;
            for id in ids {
                n += stmt.execute(params![now, id])?;
            }
            Ok(n)
        })
    }

    /// A transient delivery failure: attempts += 1; at [`MAX_ATTEMPTS`] the
    /// message is dropped (notifications_dropped_total += 1) and this
    /// returns true; otherwise it is retried at `retry_at` (a Retry-After),
    /// or on the next tick when `None`. A message that is not queued is left
    /// alone (false). `error` is stored as is: redact secrets first.
    pub fn mark_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let next = format_ts(retry_at.unwrap_or(now).max(now));
        let now = format_ts(now);
        self.write("record a failed delivery", |tx| {
            let attempts: Option<i64> = tx
                .query_row(
                    "SELECT attempts FROM outbox WHERE id = ?1 AND status = 'queued'",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(attempts) = attempts.map(|a| a + 1) else {
                return Ok(false);
            };
            if attempts >= MAX_ATTEMPTS {
                tx.execute(
                    "UPDATE outbox SET attempts = ?1, last_error = ?2, status = 'dropped',
                         dropped_at = ?3 WHERE id = ?4",
                    params![attempts, error, now, id],
                )?;
                add_counter(tx, C_DROPPED, 1)?;
                Ok(true)
            } else {
                tx.execute(
                    "UPDATE outbox SET attempts = ?1, last_error = ?2, next_attempt_at = ?3
                     WHERE id = ?4",
                    params![attempts, error, next, id],
                )?;
                Ok(false)
            }
        })
    }

    /// A permanent refusal (400/401/403/404): drop the queued message,
    /// notifications_dropped_total += 1. False when it was not queued.
    pub fn mark_dropped(&mut self, id: i64, error: &str, now: OffsetDateTime) -> Result<bool> {
        let now = format_ts(now);
        self.write("drop a message", |tx| {
            let n = tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?1,
                     status = 'dropped', dropped_at = ?2
                 WHERE id = ?3 AND status = 'queued'",
                params![error, now, id],
            )?;
            if n > 0 {
                add_counter(tx, C_DROPPED, 1)?;
            }
            Ok(n > 0)
        })
    }

    /// `reconcile outbox drop <ID>`: the operator drops a queued message
    /// (kept as `dropped`, last_error "dropped by operator"; not counted in
    /// notifications_dropped_total, which counts delivery failures). False
    /// when no queued message has that id.
    pub fn drop_outbox(&mut self, id: i64, now: OffsetDateTime) -> Result<bool> {
        let now = format_ts(now);
        self.write("drop a message", |tx| {
            Ok(tx.execute(
                "UPDATE outbox SET last_error = 'dropped by operator', status = 'dropped',
                     dropped_at = ?1
                 WHERE id = ?2 AND status = 'queued'",
                params![now, id],
            )? > 0)
        })
    }
}
