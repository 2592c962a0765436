//! The notification de-dup map: an unblock is announced once per (stage,
//! state) of its key, across restarts.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::errors::Result;
use super::outbox::{MessageKind, insert_message};
use super::ticks::{C_UNBLOCKED, K_LAST_UNBLOCKED, add_counter, set_kv};
use super::{Sidecar, SidecarReader, format_ts};

/// Which pass produced an unblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    Gate,
    Plane,
}

impl Pass {
    pub fn as_str(self) -> &'static str {
        match self {
            Pass::Gate => "gate",
            Pass::Plane => "plane",
        }
    }
}

/// What an unblock announces and is de-duped by (docs/decisions.md):
/// the same whether it is recorded at once or kept in an intent until its
/// action is confirmed (docs/reliability.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The de-dup key (issue id for a start, else work item id, else
    /// task id / issue id).
    pub key: String,
    pub pass: Pass,
    pub task_id: Option<i64>,
    pub issue_id: Option<String>,
    pub work_item_id: Option<String>,
    /// The stage announced (the stage before the transition).
    pub stage: String,
    pub state_uuid: Option<String>,
}

/// A non-duplicate unblock to record, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unblock {
    pub announcement: Announcement,
    /// The full message (rendered `unblock_template`).
    pub text: String,
    /// Its one-line form for a digest.
    pub digest_line: String,
    /// Queue an outbox row (false: notify_unblock off or no Telegram).
    pub queue: bool,
}

/// Ids written by [`Sidecar::record_unblock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordedUnblock {
    pub history_id: i64,
    pub outbox_id: Option<i64>,
}

/// An unblock is a duplicate when it has a state uuid and its
/// (stage, state) equals the last one announced for its key.
pub fn is_duplicate(
    last: Option<&(String, Option<String>)>,
    stage: &str,
    state: Option<&str>,
) -> bool {
    match (last, state) {
        (Some((last_stage, Some(last_state))), Some(state)) => {
            last_stage == stage && last_state == state
        }
        _ => false,
    }
}

/// The body of [`Sidecar::record_unblock`], inside the caller's transaction.
pub(super) fn write_unblock(
    tx: &Connection,
    u: &Unblock,
    now: &str,
) -> rusqlite::Result<RecordedUnblock> {
    let a = &u.announcement;
    tx.execute(
        "INSERT INTO dedup(key, stage, state_uuid, touched_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(key) DO UPDATE SET stage = excluded.stage,
             state_uuid = excluded.state_uuid, touched_at = excluded.touched_at",
        params![a.key, a.stage, a.state_uuid, now],
    )?;
    add_counter(tx, C_UNBLOCKED, 1)?;
    set_kv(tx, K_LAST_UNBLOCKED, &a.key)?;
    tx.execute(
        "INSERT INTO history(at, pass, key, task_id, issue_id, work_item_id, stage,
                             state_uuid, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            now,
            a.pass.as_str(),
            a.key,
            a.task_id,
            a.issue_id,
            a.work_item_id,
            a.stage,
            a.state_uuid,
            u.text
        ],
    )?;
    let history_id = tx.last_insert_rowid();
    let outbox_id = if u.queue {
        let id = insert_message(
            tx,
            MessageKind::Unblock,
            &u.text,
            &u.digest_line,
            now,
            Some(history_id),
        )?;
        tx.execute(
            "UPDATE history SET outbox_id = ?1 WHERE id = ?2",
            params![id, history_id],
        )?;
        Some(id)
    } else {
        None
    };
    Ok(RecordedUnblock {
        history_id,
        outbox_id,
    })
}

impl SidecarReader {
    /// The last (stage, state uuid) announced for `key`.
    pub fn last_announced(&self, key: &str) -> Result<Option<(String, Option<String>)>> {
        self.conn()?
            .query_row(
                "SELECT stage, state_uuid FROM dedup WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading the de-dup map"))
    }
}

impl Sidecar {
    /// Drop one de-dup key (`reconcile forget`); false when it was absent.
    pub fn forget(&mut self, key: &str) -> Result<bool> {
        self.write("forget a de-dup key", |tx| {
            Ok(tx.execute("DELETE FROM dedup WHERE key = ?1", [key])? > 0)
        })
    }

    /// Record a non-duplicate unblock in ONE transaction: the key's
    /// (stage, state), unblocked_total += 1, last_unblocked, a history row
    /// and, when `u.queue`, an outbox row. Call [`is_duplicate`] first;
    /// duplicates go to [`TickRecord::deduped_keys`].
    pub fn record_unblock(&mut self, u: &Unblock, now: OffsetDateTime) -> Result<RecordedUnblock> {
        let now = format_ts(now);
        self.write("record an unblock", |tx| write_unblock(tx, u, &now))
    }
}
