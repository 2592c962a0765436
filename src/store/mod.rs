//! The SQLite sidecar (docs/sidecar.md): what must survive between ticks.
//!
//! One file (default `/var/lib/reconcile/state.sqlite`) holds the
//! notification de-dup map, the outbox, counters, key/value facts, history,
//! the tick log, the states cache and the issue mirror. Two handles:
//!
//! * [`Sidecar`] — live ticks and the operator commands that write: opening
//!   creates the file if missing, switches to WAL with `synchronous=FULL`,
//!   migrates forward. Every write method is one transaction, so a crash at
//!   any instant leaves everything consistent.
//! * [`SidecarReader`] — dry-run, `status`, `history`, `check`: has no write
//!   methods at all, and never creates or modifies anything (not the
//!   database, not `-wal`/`-shm` files). A live [`Sidecar`] derefs to one,
//!   so every read works on both.
//!
//! The one-tick-at-a-time guard is [`TickLock`]. No function here reads the
//! wall clock: whatever needs "now" takes it.

use std::cell::{Cell, Ref, RefCell};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use time::OffsetDateTime;

mod cache;
mod cycles;
mod dedup;
mod errors;
mod file;
mod intents;
mod lock;
mod metrics;
mod outbox;
mod schema;
#[cfg(test)]
mod tests;
mod ticks;

pub use cache::{Mirror, MirrorIssue};
pub use dedup::{Announcement, Pass, Unblock, is_duplicate};
pub use errors::{LockBusy, LockError, LockStopped, Result, SidecarError, SidecarErrorKind};
pub use file::refuse_special;
pub use intents::{Intent, intent_time};
pub use lock::{TickLock, lock_path};
pub use metrics::{REQUESTS_TOTAL, SeriesKey, TICKS_TOTAL, UNITS_TOTAL};
pub use outbox::{OutboxMessage, OutboxStatus};
pub use ticks::{HistoryRow, Snapshot, TickRecord, TickRow};

use file::{FileStamp, check_parent, file_uri, read_header, sidecar_file};
use schema::{check_version, user_version};

/// SQLite busy timeout (a `status` reader can briefly hold a lock).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// RFC 3339 UTC with whole seconds ("2026-11-27T10:00:00Z"): the one format
/// the sidecar stores. Fixed width, so TEXT comparison is time order.
pub fn format_ts(t: OffsetDateTime) -> String {
    crate::core::timestamp::format(t)
}

/// A sidecar opened for reading only: it has no write methods. Dry-run,
/// `status`, `history` and `check` hold one; a live [`Sidecar`] derefs to
/// one for its reads.
///
/// A write through a reader does not compile:
///
/// ```compile_fail
/// fn forget(reader: &mut reconcile::harness::SidecarReader) {
///     let _ = reader.forget("ET-1");
/// }
/// ```
///
/// while the same call on a live sidecar does:
///
/// ```
/// fn forget(live: &mut reconcile::harness::Sidecar) {
///     let _ = live.forget("ET-1");
/// }
/// ```
#[derive(Debug)]
pub struct SidecarReader {
    conn: RefCell<Connection>,
    path: PathBuf,
    /// `immutable=1` connections only: the database file as it was when
    /// opened. Reads reopen when it changed (see [`SidecarReader::conn`]).
    ro_stamp: Cell<Option<FileStamp>>,
}

/// A live sidecar: every read of [`SidecarReader`], plus the writes, each one
/// transaction. Only a tick holding the [`TickLock`] (or an operator command
/// holding it) opens one.
#[derive(Debug)]
pub struct Sidecar {
    db: SidecarReader,
}

impl Deref for Sidecar {
    type Target = SidecarReader;

    fn deref(&self) -> &SidecarReader {
        &self.db
    }
}

/// The sidecar as one tick may use it: live, or read-only for a dry run
/// (nothing at all when no sidecar exists yet).
#[derive(Debug)]
pub enum Handle {
    Live(Sidecar),
    ReadOnly(Option<SidecarReader>),
}

impl Handle {
    /// Whatever can be read: the live sidecar or the read-only one.
    pub fn reader(&self) -> Option<&SidecarReader> {
        match self {
            Handle::Live(s) => Some(s),
            Handle::ReadOnly(s) => s.as_ref(),
        }
    }
}

/// The read-only connection for [`SidecarReader::open`], and the file's
/// stamp when it is `immutable=1`. `None`: nothing to read.
fn open_ro_conn(path: &Path) -> Result<Option<(Connection, Option<FileStamp>)>> {
    // Stamp first: a change after this point is seen by the next read.
    let stamp = FileStamp::of(path);
    let header = match read_header(path)? {
        None => return Ok(None),
        Some(h) if h.empty => return Ok(None),
        Some(h) => h,
    };
    // SQLite keeps the -wal beside the file a symlink points to.
    let wal_exists = sidecar_file(&file::canonical(path), "-wal").exists();
    let immutable = header.wal && !wal_exists;
    let query = if immutable {
        "mode=ro&immutable=1"
    } else {
        "mode=ro"
    };
    let uri = file_uri(path, query)?;
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| SidecarError::sqlite(path, "cannot open read-only", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| SidecarError::sqlite(path, "setting the busy timeout", e))?;
    let version = user_version(&conn, path)?;
    check_version(path, version)?;
    schema::check_ownership(&conn, path, version)?;
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| SidecarError::sqlite(path, "reading the schema", e))?;
        if tables > 0 {
            return Err(SidecarError::new(
                path,
                SidecarErrorKind::Foreign,
                "an SQLite database that is not a reconcile sidecar \
                 (user_version 0 with tables); refusing to touch it",
            ));
        }
        return Ok(None);
    }
    let stamp = if immutable {
        // No stamp (file vanished in between): force a reopen on first read.
        Some(stamp.unwrap_or(FileStamp {
            ino: 0,
            len: 0,
            mtime: SystemTime::UNIX_EPOCH,
            wal: false,
        }))
    } else {
        None
    };
    Ok(Some((conn, stamp)))
}

impl Sidecar {
    /// Live mode: open `path`, creating the file if missing
    /// (its directory must exist), WAL + `synchronous=FULL` + busy timeout +
    /// foreign keys, migrated forward to [`SCHEMA_VERSION`] in one
    /// transaction. A file that is not a database, is corrupt, belongs to
    /// something else, or has a newer schema is refused before anything is
    /// written to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Sidecar> {
        let path = path.as_ref().to_path_buf();
        check_parent(&path)?;
        let header = read_header(&path)?;
        // Whose file this is, decided read-only before anything can write
        // (WAL switch, migration): a file stamped with our id is ours; any
        // other existing database is checked as `status` would read it.
        if let Some(h) = &header
            && !h.empty
            && h.application_id != schema::APPLICATION_ID
        {
            drop(open_ro_conn(&path)?);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| SidecarError::sqlite(&path, "cannot open", e))?;
        let sql = |what: &'static str| {
            let path = path.clone();
            move |e: rusqlite::Error| SidecarError::sqlite(&path, what, e)
        };
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("setting the busy timeout"))?;

        // Verify before anything can write: version, ownership, integrity.
        let version = user_version(&conn, &path)?;
        check_version(&path, version)?;
        if let Some(h) = &header
            && !h.empty
        {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(sql("reading the schema"))?;
            if version == 0 && tables > 0 {
                return Err(SidecarError::new(
                    &path,
                    SidecarErrorKind::Foreign,
                    "an SQLite database that is not a reconcile sidecar \
                     (user_version 0 with tables); refusing to touch it",
                ));
            }
            // Before any write (WAL switch, migration, the tick's own): a
            // corrupt file is refused as is. ~80 ms for 43 MB (90 days of
            // minute ticks), once a minute.
            let verdict: String = conn
                .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
                .map_err(sql("checking integrity"))?;
            if verdict != "ok" {
                return Err(SidecarError::new(
                    &path,
                    SidecarErrorKind::NotADatabase,
                    format!("database is corrupt ({verdict}); refusing to touch it"),
                ));
            }
        }

        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SidecarError::new(
                &path,
                SidecarErrorKind::Sqlite,
                format!("cannot switch to WAL (journal mode stays {mode})"),
            ));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("setting synchronous=FULL"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql("enabling foreign keys"))?;

        let mut conn = conn;
        schema::migrate(&mut conn, &path)?;
        Ok(Sidecar {
            db: SidecarReader {
                conn: RefCell::new(conn),
                path,
                ro_stamp: Cell::new(None),
            },
        })
    }

    /// Close, reporting an error (a live close checkpoints the WAL and
    /// removes `-wal`/`-shm`). Dropping closes too, silently.
    pub fn close(self) -> Result<()> {
        self.db.close()
    }

    /// Run `f` in one IMMEDIATE transaction; commit on success, roll back
    /// (nothing written) on error.
    fn write<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = &self.db.path;
        let err = |e| SidecarError::sqlite(path, what, e);
        let tx = self
            .db
            .conn
            .get_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let value = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(value)
    }
}

impl SidecarReader {
    /// Open for reading only: never creates or modifies a file. A missing
    /// or empty file, or one never migrated, is `Ok(None)` (callers treat it
    /// as empty). A newer schema is the same
    /// error as in live mode.
    ///
    /// A WAL database whose `-wal` file is absent (a live tick closed it
    /// cleanly: every committed byte is in the main file) is opened
    /// `immutable=1`, which reads without locks and without creating
    /// `-wal`/`-shm` (plain `mode=ro` would create both and leave them
    /// behind). When a `-wal` exists (a live tick is running, or crashed)
    /// it is opened `mode=ro` and shares that tick's WAL index properly.
    pub fn open(path: impl AsRef<Path>) -> Result<Option<SidecarReader>> {
        let path = path.as_ref().to_path_buf();
        Ok(open_ro_conn(&path)?.map(|(conn, stamp)| SidecarReader {
            conn: RefCell::new(conn),
            path,
            ro_stamp: Cell::new(stamp),
        }))
    }

    /// The sidecar file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close, reporting an error (a live close checkpoints the WAL and
    /// removes `-wal`/`-shm`). Dropping closes too, silently.
    pub fn close(self) -> Result<()> {
        let path = self.path;
        self.conn
            .into_inner()
            .close()
            .map_err(|(_, e)| SidecarError::sqlite(&path, "closing", e))
    }

    /// The connection for a read. A read-only `immutable=1` connection is
    /// valid only while the file stays as it was: immutable readers take no
    /// locks and trust their page cache, so once a live tick has written
    /// (a `-wal` appeared, or a checkpoint changed the file) it is reopened —
    /// `mode=ro` on the live tick's WAL, or immutable again on the new file.
    fn conn(&self) -> Result<Ref<'_, Connection>> {
        if let Some(stamp) = self.ro_stamp.get()
            && FileStamp::of(&self.path) != Some(stamp)
        {
            log::debug!(
                "sidecar {}: changed on disk, reopening",
                self.path.display()
            );
            match open_ro_conn(&self.path)? {
                Some((conn, stamp)) => {
                    *self.conn.borrow_mut() = conn;
                    self.ro_stamp.set(stamp);
                }
                None => {
                    return Err(SidecarError::new(
                        &self.path,
                        SidecarErrorKind::Io,
                        "the database disappeared while open",
                    ));
                }
            }
        }
        Ok(self.conn.borrow())
    }

    fn err(&self, what: &str) -> impl Fn(rusqlite::Error) -> SidecarError + '_ {
        let what = what.to_string();
        move |e| SidecarError::sqlite(&self.path, &what, e)
    }
}

/// Every row `sql` selects with `args`, each made a value by `row` and
/// gathered into `C`: the prepare, query and collect each of the sidecar's
/// list reads shares, so that a read says only its query and its row.
fn select<C: FromIterator<T>, T>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<C> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, row)?;
    rows.collect()
}
