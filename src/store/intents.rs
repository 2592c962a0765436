//! Intents (docs/reliability.md, hostile conditions): an advance or a
//! replay is committed as an intent before its request is sent, and the
//! outcome (with the unblock record, when there is one) resolves it in one
//! transaction. A tick that finds an unresolved intent (the process died
//! with the request in flight, or the disk filled before the outcome was
//! written) re-reads that task first, so a kill at any instant loses no
//! announcement.

use rusqlite::params;
use time::OffsetDateTime;

use super::dedup::{Announcement, Pass, RecordedUnblock, Unblock, write_unblock};
use super::errors::Result;
use super::{Sidecar, SidecarReader, format_ts, select};

/// An action sent or about to be sent, whose outcome is not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The unit: `gate:<task id>` or `plane:<issue id>`.
    pub unit: String,
    /// The task's stage before the action ("" when the issue had no task).
    pub stage_before: String,
    pub at: String,
    /// The unblock to announce if the action turns out to have happened;
    /// its text is rendered again then.
    pub announcement: Announcement,
}

pub(super) const MIGRATION_V5: &str = "
CREATE TABLE intent (
    unit         TEXT PRIMARY KEY,
    stage_before TEXT NOT NULL,
    at           TEXT NOT NULL,
    pass         TEXT NOT NULL CHECK (pass IN ('gate', 'plane')),
    key          TEXT NOT NULL,
    task_id      INTEGER,
    issue_id     TEXT,
    work_item_id TEXT,
    stage        TEXT NOT NULL,
    state_uuid   TEXT
) WITHOUT ROWID;
";

impl Sidecar {
    /// Commits the intent before its request is sent. An error means the
    /// action must not be sent.
    pub fn record_intent(&mut self, i: &Intent) -> Result<()> {
        let a = &i.announcement;
        self.write("record an intent", |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO intent(unit, stage_before, at, pass, key, task_id,
                     issue_id, work_item_id, stage, state_uuid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    i.unit,
                    i.stage_before,
                    i.at,
                    a.pass.as_str(),
                    a.key,
                    a.task_id,
                    a.issue_id,
                    a.work_item_id,
                    a.stage,
                    a.state_uuid
                ],
            )?;
            Ok(())
        })
    }

    /// Resolves an intent whose outcome announces nothing.
    pub fn drop_intent(&mut self, unit: &str) -> Result<bool> {
        self.write("resolve an intent", |tx| {
            Ok(tx.execute("DELETE FROM intent WHERE unit = ?1", [unit])? > 0)
        })
    }

    /// As `record_unblock`, resolving `unit`'s intent in the same
    /// transaction.
    pub fn record_unblock_resolving(
        &mut self,
        u: &Unblock,
        unit: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<RecordedUnblock> {
        let now = format_ts(now);
        self.write("record an unblock", |tx| {
            let rec = write_unblock(tx, u, &now)?;
            if let Some(unit) = unit {
                tx.execute("DELETE FROM intent WHERE unit = ?1", [unit])?;
            }
            Ok(rec)
        })
    }
}

impl SidecarReader {
    /// Every unresolved intent, oldest first.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let conn = self.conn()?;
        select(
            &conn,
            "SELECT unit, stage_before, at, pass, key, task_id, issue_id, work_item_id,
                    stage, state_uuid
             FROM intent ORDER BY at, unit",
            [],
            |r| {
                let pass: String = r.get(3)?;
                Ok(Intent {
                    unit: r.get(0)?,
                    stage_before: r.get(1)?,
                    at: r.get(2)?,
                    announcement: Announcement {
                        pass: if pass == "plane" {
                            Pass::Plane
                        } else {
                            Pass::Gate
                        },
                        key: r.get(4)?,
                        task_id: r.get(5)?,
                        issue_id: r.get(6)?,
                        work_item_id: r.get(7)?,
                        stage: r.get(8)?,
                        state_uuid: r.get(9)?,
                    },
                })
            },
        )
        .map_err(self.err("reading the intents"))
    }
}

/// The time an intent is written with.
pub fn intent_time(now: OffsetDateTime) -> String {
    format_ts(now)
}
