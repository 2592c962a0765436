//! The schema and its migrations, and the checks that keep this tool off a
//! database that is not its own.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::errors::{Result, SidecarError, SidecarErrorKind};

/// Schema migrations, oldest first; entry `i` takes `user_version` from `i`
/// to `i + 1`. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[
    MIGRATION_V1,
    MIGRATION_V2,
    MIGRATION_V3,
    MIGRATION_V4,
    super::intents::MIGRATION_V5,
];

/// The schema version this binary writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of a reconcile sidecar: "RCN1".
pub const APPLICATION_ID: u32 = 0x5243_4E31;

pub(super) const MIGRATION_V1: &str = "
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE dedup (
    key        TEXT PRIMARY KEY,
    stage      TEXT NOT NULL,
    state_uuid TEXT,
    touched_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedup_touched_at ON dedup(touched_at);

CREATE TABLE history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    pass         TEXT NOT NULL CHECK (pass IN ('gate', 'plane')),
    key          TEXT NOT NULL,
    task_id      INTEGER,
    issue_id     TEXT,
    work_item_id TEXT,
    stage        TEXT NOT NULL,
    state_uuid   TEXT,
    text         TEXT NOT NULL,
    outbox_id    INTEGER REFERENCES outbox(id) ON DELETE SET NULL
);
CREATE INDEX history_at ON history(at);
CREATE INDEX history_outbox_id ON history(outbox_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('unblock', 'cycle')),
    text            TEXT NOT NULL,
    digest_line     TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'dropped')),
    sent_at         TEXT,
    dropped_at      TEXT,
    history_id      INTEGER REFERENCES history(id) ON DELETE SET NULL
);
CREATE INDEX outbox_status ON outbox(status, next_attempt_at);
CREATE INDEX outbox_history_id ON outbox(history_id);

CREATE TABLE ticks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    command     TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    counts      TEXT NOT NULL,
    exit_code   INTEGER NOT NULL
);
CREATE INDEX ticks_started_at ON ticks(started_at);
";

/// What a warm tick needs so that it costs Plane about one request per
/// project (the states cache and the issue mirror), and the dependency cycles
/// already alerted.
const MIGRATION_V2: &str = "
CREATE TABLE states_cache (
    project_id  TEXT PRIMARY KEY,
    fetched_at  TEXT NOT NULL,
    states_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mirror_sync (
    project_id      TEXT PRIMARY KEY,
    last_full_at    TEXT NOT NULL,
    last_started_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mirror_issue (
    project_id  TEXT NOT NULL,
    issue_id    TEXT NOT NULL,
    state       TEXT,
    updated_at  TEXT,
    sequence_id INTEGER,
    raw_json    TEXT NOT NULL,
    PRIMARY KEY (project_id, issue_id)
) WITHOUT ROWID;

CREATE TABLE cycles (
    key        TEXT PRIMARY KEY,
    alerted_at TEXT NOT NULL,
    text       TEXT NOT NULL
) WITHOUT ROWID;
";

/// The labelled counters of the metrics textfile, cumulative since the
/// sidecar was created (see `metrics.rs`).
pub(super) const MIGRATION_V3: &str = "
CREATE TABLE metric_series (
    family TEXT NOT NULL,
    labels TEXT NOT NULL,
    value  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (family, labels)
) WITHOUT ROWID;
";

/// The Plane pass's no-op memo (docs/plane.md): per issue, what it and its
/// task looked like when a replay last changed nothing.
pub(super) const MIGRATION_V4: &str = "
CREATE TABLE noop_memo (
    issue_id         TEXT PRIMARY KEY,
    issue_updated_at TEXT,
    issue_state      TEXT NOT NULL,
    task_stage       TEXT,
    task_updated_at  TEXT,
    recorded_at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX noop_memo_recorded_at ON noop_memo(recorded_at);
";

pub(super) fn user_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| SidecarError::sqlite(path, "reading the schema version", e))
}

pub(super) fn check_version(path: &Path, found: i64) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            },
            format!(
                "schema version {found} is newer than this reconcile understands \
                 ({SCHEMA_VERSION}); refusing to touch it"
            ),
        ));
    }
    if found < 0 {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::Foreign,
            format!("schema version {found} is not a reconcile sidecar's; refusing to touch it"),
        ));
    }
    Ok(())
}

/// A database stamped with another application's id is not ours, whatever
/// it contains.
fn check_application_id(path: &Path, id: u32) -> Result<()> {
    if id == 0 || id == APPLICATION_ID {
        return Ok(());
    }
    Err(SidecarError::new(
        path,
        SidecarErrorKind::Foreign,
        format!(
            "an SQLite database of another application (application_id {id:#010x}, \
             not reconcile's {APPLICATION_ID:#010x}); refusing to touch it"
        ),
    ))
}

/// A database without our application id is ours only when it is a
/// sidecar made before the id existed: its tables are exactly those its
/// `user_version` had. Anything else (another application's database at
/// user_version 1 or 2, say) is refused, untouched.
pub(super) fn check_ownership(conn: &Connection, path: &Path, version: i64) -> Result<()> {
    let sql = |what: &'static str| move |e: rusqlite::Error| SidecarError::sqlite(path, what, e);
    let id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql("reading the application id"))?;
    let id = u32::try_from(id & 0xFFFF_FFFF).unwrap_or(0);
    check_application_id(path, id)?;
    if id == APPLICATION_ID || version <= 0 {
        return Ok(());
    }
    let found = table_names(conn).map_err(sql("reading the schema"))?;
    let expected = tables_at(version).map_err(sql("building the expected schema"))?;
    if found == expected {
        return Ok(());
    }
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    Err(SidecarError::new(
        path,
        SidecarErrorKind::Foreign,
        format!(
            "an SQLite database that is not a reconcile sidecar (no application id; \
             user_version {version} with tables {}); refusing to touch it",
            found.join(", ")
        ),
    ))
}

/// The user tables of a database (SQLite's own `sqlite_*` left out).
fn table_names(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    super::select(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        [],
        |r| r.get(0),
    )
}

/// The tables a sidecar at `version` has: its migrations, run on an empty
/// in-memory database.
fn tables_at(version: i64) -> rusqlite::Result<BTreeSet<String>> {
    let conn = Connection::open_in_memory()?;
    let steps = usize::try_from(version).unwrap_or(0).min(MIGRATIONS.len());
    for step in &MIGRATIONS[..steps] {
        conn.execute_batch(step)?;
    }
    table_names(&conn)
}

/// Migrate forward to [`SCHEMA_VERSION`] in one IMMEDIATE transaction:
/// every step or none. The same transaction stamps our application id: a
/// new sidecar, or one made before the id existed (adopted once).
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let sql = |what: &'static str| move |e: rusqlite::Error| SidecarError::sqlite(path, what, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("starting the migration"))?;
    let from = user_version(&tx, path)?;
    check_version(path, from)?;
    let id: i64 = tx
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql("reading the application id"))?;
    let stamp = id != i64::from(APPLICATION_ID);
    if from == SCHEMA_VERSION && !stamp {
        return Ok(());
    }
    if stamp {
        tx.pragma_update(None, "application_id", i64::from(APPLICATION_ID))
            .map_err(sql("setting the application id"))?;
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(step).map_err(|e| {
            SidecarError::sqlite(path, &format!("migrating to schema version {}", i + 1), e)
        })?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql("setting the schema version"))?;
    tx.commit().map_err(sql("committing the migration"))?;
    if from != SCHEMA_VERSION {
        log::info!(
            "sidecar {}: migrated schema {from} → {SCHEMA_VERSION}",
            path.display()
        );
    }
    if stamp && from > 0 {
        log::info!(
            "sidecar {}: adopted (made before reconcile stamped its application id)",
            path.display()
        );
    }
    Ok(())
}
