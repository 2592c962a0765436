//! What the sidecar keeps so that a warm tick costs Plane about one request
//! per project (docs/plane.md): each project's states and a mirror of its
//! issues.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde_json::Value;
use time::OffsetDateTime;

use super::errors::Result;
use super::{Sidecar, SidecarReader, format_ts, select};
use crate::core::plane::NoopMemo;
use crate::core::states::PlaneState;

/// One issue of the mirror: what the passes read, and (when written, or
/// read one at a time for a replay) the issue as Plane returned it, as JSON
/// text. Reading a whole project leaves `raw` out: 20,000 parsed issues
/// would dominate a tick's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorIssue {
    pub id: String,
    pub state: Option<String>,
    pub updated_at: Option<String>,
    pub sequence_id: Option<i64>,
    pub raw: Option<String>,
}

/// A project's mirror and when it was last synced.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub last_full_at: OffsetDateTime,
    /// When the last sync (full or incremental) started.
    pub last_started_at: OffsetDateTime,
    pub issues: Vec<MirrorIssue>,
}

/// A project's last syncs, as the fair budget reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorSync {
    pub last_full_at: OffsetDateTime,
    /// When the last successful sync (full or incremental) started.
    pub last_started_at: OffsetDateTime,
    /// Issues the mirror holds.
    pub issues: u64,
}

fn ts(text: &str) -> OffsetDateTime {
    crate::core::timestamp::parse(text).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl SidecarReader {
    /// A project's cached states and when they were fetched.
    pub fn cached_states(
        &self,
        project_id: &str,
    ) -> Result<Option<(OffsetDateTime, Vec<PlaneState>)>> {
        let row: Option<(String, String)> = self
            .conn()?
            .query_row(
                "SELECT fetched_at, states_json FROM states_cache WHERE project_id = ?1",
                [project_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading the states cache"))?;
        // An unreadable entry is a miss, never an error: it is refetched.
        Ok(row.and_then(|(at, json)| serde_json::from_str(&json).ok().map(|s| (ts(&at), s))))
    }

    /// When a project's states were cached, without reading them.
    pub fn states_fetched_at(&self, project_id: &str) -> Result<Option<OffsetDateTime>> {
        let at: Option<String> = self
            .conn()?
            .query_row(
                "SELECT fetched_at FROM states_cache WHERE project_id = ?1",
                [project_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the states cache"))?;
        Ok(at.map(|a| ts(&a)))
    }

    // -- issue mirror ----------------------------------------------------

    /// Every mirrored project's last syncs and issue count, without the
    /// issues: what the fair budget orders and estimates by.
    pub fn mirror_syncs(&self) -> Result<HashMap<String, MirrorSync>> {
        let conn = self.conn()?;
        let rows: Vec<_> = select(
            &conn,
            "SELECT s.project_id, s.last_full_at, s.last_started_at,
                    (SELECT count(*) FROM mirror_issue i WHERE i.project_id = s.project_id)
             FROM mirror_sync s",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .map_err(self.err("reading the issue mirror"))?;
        Ok(rows
            .into_iter()
            .map(|(pid, full, started, n)| {
                let sync = MirrorSync {
                    last_full_at: ts(&full),
                    last_started_at: ts(&started),
                    issues: u64::try_from(n).unwrap_or(0),
                };
                (pid, sync)
            })
            .collect())
    }

    pub fn mirror(&self, project_id: &str) -> Result<Option<Mirror>> {
        let conn = self.conn()?;
        let sync: Option<(String, String)> = conn
            .query_row(
                "SELECT last_full_at, last_started_at FROM mirror_sync WHERE project_id = ?1",
                [project_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading the issue mirror"))?;
        let Some((full, started)) = sync else {
            return Ok(None);
        };
        let issues = select(
            &conn,
            "SELECT issue_id, state, updated_at, sequence_id FROM mirror_issue WHERE project_id = ?1",
            [project_id],
            |r| {
                Ok(MirrorIssue {
                    id: r.get(0)?,
                    state: r.get(1)?,
                    updated_at: r.get(2)?,
                    sequence_id: r.get(3)?,
                    raw: None,
                })
            },
        )
        .map_err(self.err("reading the issue mirror"))?;
        Ok(Some(Mirror {
            last_full_at: ts(&full),
            last_started_at: ts(&started),
            issues,
        }))
    }

    /// The project whose mirror holds `issue_id` (the Plane pass starts at
    /// its action-cap cursor before this tick's reads are back).
    pub fn mirror_project_of(&self, issue_id: &str) -> Result<Option<String>> {
        self.conn()?
            .query_row(
                "SELECT project_id FROM mirror_issue WHERE issue_id = ?1 LIMIT 1",
                [issue_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the issue mirror"))
    }

    /// One mirrored issue as Plane returned it (a replay re-sends it).
    pub fn mirror_raw(&self, project_id: &str, issue_id: &str) -> Result<Option<Value>> {
        let raw: Option<String> = self
            .conn()?
            .query_row(
                "SELECT raw_json FROM mirror_issue WHERE project_id = ?1 AND issue_id = ?2",
                [project_id, issue_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the issue mirror"))?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }
}

impl Sidecar {
    /// Replaces a project's cached states.
    pub fn store_states(
        &mut self,
        project_id: &str,
        states: &[PlaneState],
        now: OffsetDateTime,
    ) -> Result<()> {
        let json = serde_json::to_string(states).unwrap_or_else(|_| "[]".into());
        let now = format_ts(now);
        self.write("store the states cache", |tx| {
            tx.execute(
                "INSERT INTO states_cache (project_id, fetched_at, states_json) VALUES (?1, ?2, ?3)
                 ON CONFLICT(project_id) DO UPDATE SET fetched_at = ?2, states_json = ?3",
                params![project_id, now, json],
            )?;
            Ok(())
        })
    }

    /// Marks a project's cached states as outdated (an issue named a state
    /// they lack): they still serve, and its next read fetches them again
    /// (docs/plane.md, "the fair schedule").
    pub fn outdate_states(&mut self, project_id: &str) -> Result<()> {
        let epoch = format_ts(OffsetDateTime::UNIX_EPOCH);
        self.write("mark the states cache outdated", |tx| {
            tx.execute(
                "UPDATE states_cache SET fetched_at = ?2 WHERE project_id = ?1",
                params![project_id, epoch],
            )?;
            Ok(())
        })
    }

    /// Records a sync that started at `started`: a full one replaces the
    /// project's mirror (issues no longer listed are dropped), an
    /// incremental one upserts what it saw. One transaction.
    pub fn store_mirror(
        &mut self,
        project_id: &str,
        full: bool,
        started: OffsetDateTime,
        issues: &[MirrorIssue],
    ) -> Result<()> {
        // Microseconds: the fair budget orders projects by this, and ticks
        // (tests, catch-up runs) can start within one second.
        let started = started
            .to_offset(time::UtcOffset::UTC)
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .unwrap_or_else(|_| format_ts(started));
        self.write("store the issue mirror", |tx| {
            if full {
                tx.execute("DELETE FROM mirror_issue WHERE project_id = ?1", [project_id])?;
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO mirror_issue (project_id, issue_id, state, updated_at, sequence_id, raw_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(project_id, issue_id) DO UPDATE
                 SET state = ?3, updated_at = ?4, sequence_id = ?5, raw_json = ?6",
            )?;
            for i in issues {
                let raw = i.raw.as_deref().unwrap_or("null");
                upsert.execute(params![project_id, i.id, i.state, i.updated_at, i.sequence_id, raw])?;
            }
            let full_at = if full { Some(started.as_str()) } else { None };
            tx.execute(
                "INSERT INTO mirror_sync (project_id, last_full_at, last_started_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(project_id) DO UPDATE
                 SET last_full_at = COALESCE(?4, last_full_at), last_started_at = ?3",
                params![project_id, full_at.unwrap_or(started.as_str()), started, full_at],
            )?;
            Ok(())
        })
    }
}

// -- the no-op memo -------------------------------------------------------

impl SidecarReader {
    /// Every remembered no-op replay, by issue id.
    pub fn noop_memos(&self) -> Result<HashMap<String, NoopMemo>> {
        let conn = self.conn()?;
        select(
            &conn,
            "SELECT issue_id, issue_updated_at, issue_state, task_stage, task_updated_at
             FROM noop_memo",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    NoopMemo {
                        issue_updated_at: r.get(1)?,
                        issue_state: r.get(2)?,
                        task_stage: r.get(3)?,
                        task_updated_at: r.get(4)?,
                    },
                ))
            },
        )
        .map_err(self.err("reading the no-op memo"))
    }
}

impl Sidecar {
    /// Remembers that replaying `issue_id` changed nothing (`Some`), or
    /// forgets it (`None`: the replay had an effect).
    pub fn set_noop_memo(
        &mut self,
        issue_id: &str,
        memo: Option<&NoopMemo>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let now = format_ts(now);
        self.write("record the no-op memo", |tx| {
            match memo {
                Some(m) => tx.execute(
                    "INSERT OR REPLACE INTO noop_memo
                     (issue_id, issue_updated_at, issue_state, task_stage, task_updated_at, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        issue_id,
                        m.issue_updated_at,
                        m.issue_state,
                        m.task_stage,
                        m.task_updated_at,
                        now
                    ],
                )?,
                None => tx.execute("DELETE FROM noop_memo WHERE issue_id = ?1", [issue_id])?,
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);

    use crate::store::tests::open;

    fn issue(id: &str, state: &str) -> MirrorIssue {
        MirrorIssue {
            id: id.into(),
            state: Some(state.into()),
            updated_at: Some("2026-11-27T09:00:00Z".into()),
            sequence_id: Some(1),
            raw: Some(serde_json::json!({"id": id, "name": format!("issue {id}")}).to_string()),
        }
    }

    #[test]
    fn states_cache_round_trips_and_is_replaced() {
        let (_d, mut s) = open();
        assert!(s.cached_states("p").unwrap().is_none());
        let st = vec![PlaneState {
            id: "u1".into(),
            name: "Done".into(),
            group: Some("completed".into()),
            sequence: Some(1.0),
        }];
        s.store_states("p", &st, T0).unwrap();
        assert_eq!(s.cached_states("p").unwrap(), Some((T0, st.clone())));
        s.store_states("p", &[], T0 + time::Duration::minutes(5))
            .unwrap();
        assert_eq!(s.cached_states("p").unwrap().unwrap().1, vec![]);
    }

    #[test]
    fn the_noop_memo_is_remembered_replaced_and_forgotten() {
        let (_d, mut s) = open();
        assert!(s.noop_memos().unwrap().is_empty());
        let m = NoopMemo {
            issue_updated_at: Some("2026-11-27T09:00:00.000000Z".into()),
            issue_state: "s1".into(),
            task_stage: Some("review".into()),
            task_updated_at: None,
        };
        s.set_noop_memo("i1", Some(&m), T0).unwrap();
        s.set_noop_memo("i2", Some(&m), T0).unwrap();
        let again = NoopMemo {
            task_stage: None,
            ..m.clone()
        };
        s.set_noop_memo("i1", Some(&again), T0).unwrap();
        s.set_noop_memo("i2", None, T0).unwrap();
        let all = s.noop_memos().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all["i1"], again);
    }

    #[test]
    fn full_sync_replaces_incremental_upserts() {
        let (_d, mut s) = open();
        assert!(s.mirror("p").unwrap().is_none());
        s.store_mirror("p", true, T0, &[issue("a", "s1"), issue("b", "s1")])
            .unwrap();
        let t1 = T0 + time::Duration::minutes(1);
        s.store_mirror("p", false, t1, &[issue("b", "s2"), issue("c", "s1")])
            .unwrap();
        let m = s.mirror("p").unwrap().unwrap();
        assert_eq!(m.last_full_at, T0);
        assert_eq!(m.last_started_at, t1);
        let mut states: Vec<(String, Option<String>)> = m
            .issues
            .iter()
            .map(|i| (i.id.clone(), i.state.clone()))
            .collect();
        states.sort();
        assert_eq!(
            states,
            vec![
                ("a".into(), Some("s1".into())),
                ("b".into(), Some("s2".into())),
                ("c".into(), Some("s1".into()))
            ]
        );
        // A full sync drops what is no longer listed.
        let t2 = T0 + time::Duration::minutes(30);
        s.store_mirror("p", true, t2, &[issue("c", "s1")]).unwrap();
        let m = s.mirror("p").unwrap().unwrap();
        assert_eq!(m.issues.len(), 1);
        assert_eq!(m.last_full_at, t2);
        assert_eq!(
            m.issues[0].raw, None,
            "a project is read without raw issues"
        );
        assert_eq!(s.mirror_raw("p", "c").unwrap().unwrap()["name"], "issue c");
        assert_eq!(s.mirror_raw("p", "a").unwrap(), None);
    }

    #[test]
    fn a_v1_sidecar_migrates_to_v2_keeping_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(crate::store::schema::MIGRATION_V1)
                .unwrap();
            conn.execute(
                "INSERT INTO counters (name, value) VALUES ('unblocked_total', 7)",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let s = Sidecar::open(&path).unwrap();
        assert_eq!(s.snapshot().unwrap().unblocked_total, 7);
        assert!(s.mirror("p").unwrap().is_none());
    }
}
