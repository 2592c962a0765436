//! The SQLite sidecar (docs/sidecar.md): what must survive between ticks.
//!
//! One file (default `/var/lib/reconcile/state.sqlite`) holds the
//! notification de-dup map, the outbox, counters, key/value facts, history
//! and the tick log. Two ways in:
//!
//! * [`Sidecar::open`] — live mode: creates the file if missing, switches to
//!   WAL with `synchronous=FULL`, migrates forward. Every write method is one
//!   transaction, so a crash at any instant leaves everything consistent.
//! * [`Sidecar::open_read_only`] — dry-run and `status`: never creates or
//!   modifies anything (not the database, not `-wal`/`-shm` files).
//!
//! The one-tick-at-a-time guard is [`TickLock`], an exclusive lock on
//! `<state path>.lock`.
//!
//! No function here reads the wall clock: whatever needs "now" takes it.

use std::cell::{Cell, Ref, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

mod cache;
mod metrics;
#[cfg(test)]
mod tests;

pub use cache::{KnownCycle, Mirror, MirrorIssue};
pub use metrics::SeriesKey;

/// Schema migrations, oldest first; entry `i` takes `user_version` from `i`
/// to `i + 1`. Append new versions; never edit a released one.
const MIGRATIONS: &[&str] = &[MIGRATION_V1, cache::MIGRATION_V2, metrics::MIGRATION_V3];

/// The schema version this binary writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Failed delivery attempts after which a queued message is dropped (docs/decisions.md).
pub const MAX_ATTEMPTS: i64 = 20;

/// How long ticks, history, idle de-dup keys and finished outbox rows are
/// kept (docs/sidecar.md).
pub const RETENTION: time::Duration = time::Duration::days(90);

/// SQLite busy timeout (a `status` reader can briefly hold a lock).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`TickLock::acquire`] retries while waiting.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// How many dropped messages [`Sidecar::list_outbox`] shows.
const RECENT_DROPPED: i64 = 50;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const MIGRATION_V1: &str = "
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

// ---------------------------------------------------------------------------
// Counter and kv names
// ---------------------------------------------------------------------------

const C_UNBLOCKED: &str = "unblocked_total";
const C_DEDUPED: &str = "deduped_total";
const C_SKIPPED_TERMINAL: &str = "skipped_terminal_total";
const C_TICKS: &str = "ticks_total";
const C_ERRORS: &str = "errors_total";
const C_DROPPED: &str = "notifications_dropped_total";
/// Per-reason skip counters are `skipped_<reason>`.
const C_SKIP_PREFIX: &str = "skipped_";
/// Keys of [`TickRecord::counts`] that feed the per-reason skip counters.
pub const SKIP_COUNT_PREFIX: &str = "skipped/";

const K_LAST_RUN: &str = "last_run_ts";
const K_LAST_SUCCESS: &str = "last_success_ts";
const K_LAST_UNBLOCKED: &str = "last_unblocked";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What went wrong with the sidecar (for tests and callers that care).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarErrorKind {
    /// The file is not an SQLite database, or is corrupt.
    NotADatabase,
    /// `user_version` is newer than [`SCHEMA_VERSION`].
    NewerSchema { found: i64, known: i64 },
    /// An SQLite database that is not a reconcile sidecar.
    Foreign,
    /// The directory that should hold the file does not exist.
    MissingDirectory,
    /// A write method was called on a read-only sidecar.
    ReadOnly,
    /// A file-system error (open, read, lock file).
    Io,
    /// Any other SQLite error.
    Sqlite,
}

/// The sidecar cannot be opened, migrated, read or written: exit 74.
#[derive(Debug)]
pub struct SidecarError {
    path: PathBuf,
    kind: SidecarErrorKind,
    message: String,
}

impl SidecarError {
    /// EX_IOERR (docs/report.md).
    pub const EXIT_CODE: i32 = 74;

    fn new(path: &Path, kind: SidecarErrorKind, message: impl Into<String>) -> Self {
        SidecarError {
            path: path.to_path_buf(),
            kind,
            message: message.into(),
        }
    }

    /// An SQLite error while doing `what` (e.g. "recording an unblock").
    fn sqlite(path: &Path, what: &str, err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let kind = match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                SidecarErrorKind::NotADatabase
            }
            Some(ErrorCode::ReadOnly) => SidecarErrorKind::ReadOnly,
            _ => SidecarErrorKind::Sqlite,
        };
        let message = if what.is_empty() {
            err.to_string()
        } else {
            format!("{what}: {err}")
        };
        SidecarError::new(path, kind, message)
    }

    /// The sidecar file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> &SidecarErrorKind {
        &self.kind
    }

    /// The message without the `sidecar <path>: ` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SidecarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sidecar {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for SidecarError {}

/// Another tick holds the lock: exit 75.
#[derive(Debug, Clone)]
pub struct LockBusy {
    /// The lock file (`<state path>.lock`).
    pub path: PathBuf,
}

impl LockBusy {
    /// EX_TEMPFAIL (docs/report.md).
    pub const EXIT_CODE: i32 = 75;
}

impl fmt::Display for LockBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "another tick holds the lock {}", self.path.display())
    }
}

impl std::error::Error for LockBusy {}

/// Why [`TickLock::acquire`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Held by another tick after the wait (exit 75).
    Busy(LockBusy),
    /// The lock file cannot be created or locked (exit 74).
    Sidecar(SidecarError),
}

impl LockError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LockError::Busy(_) => LockBusy::EXIT_CODE,
            LockError::Sidecar(_) => SidecarError::EXIT_CODE,
        }
    }

    /// Unwrap into an `anyhow::Error` holding the inner error itself, so
    /// `downcast_ref::<LockBusy>()` / `downcast_ref::<SidecarError>()` work.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            LockError::Busy(e) => anyhow::Error::new(e),
            LockError::Sidecar(e) => anyhow::Error::new(e),
        }
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy(e) => e.fmt(f),
            LockError::Sidecar(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Busy(e) => Some(e),
            LockError::Sidecar(e) => Some(e),
        }
    }
}

pub type Result<T, E = SidecarError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// RFC 3339 UTC with whole seconds ("2026-11-27T10:00:00Z"): the one format
/// the sidecar stores. Fixed width, so TEXT comparison is time order.
pub fn format_ts(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(TS_FORMAT).unwrap_or_else(|_| utc.to_string())
}

// ---------------------------------------------------------------------------
// The lock
// ---------------------------------------------------------------------------

/// `<state path>.lock`.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// One tick at a time (docs/sidecar.md): an exclusive lock on
/// `<state path>.lock`, held until dropped.
#[derive(Debug)]
pub struct TickLock {
    _file: File,
    path: PathBuf,
}

impl TickLock {
    /// Take the lock, retrying every 100 ms for up to `wait`
    /// (`Duration::ZERO`: one attempt). Creates the lock file if missing;
    /// its directory must exist.
    pub fn acquire(state_path: &Path, wait: Duration) -> Result<TickLock, LockError> {
        let path = lock_path(state_path);
        check_parent(&path).map_err(LockError::Sidecar)?;
        refuse_root_in_foreign_dir(&path).map_err(LockError::Sidecar)?;
        // flock needs no write access: an existing lock file is only read,
        // so a lock file made by another user does not get in the way.
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .or_else(|_| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
            })
            .map_err(|e| {
                LockError::Sidecar(SidecarError::new(
                    &path,
                    SidecarErrorKind::Io,
                    format!("cannot open the lock file: {e}"),
                ))
            })?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(TickLock { _file: file, path }),
                Err(TryLockError::WouldBlock) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(LockError::Busy(LockBusy { path }));
                    }
                    std::thread::sleep(LOCK_POLL.min(deadline - now));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(LockError::Sidecar(SidecarError::new(
                        &path,
                        SidecarErrorKind::Io,
                        format!("cannot lock the lock file: {e}"),
                    )));
                }
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

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

/// A non-duplicate unblock to record (docs/decisions.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unblock {
    /// The de-dup key (docs/decisions.md: issue id for a start, else work item id, else
    /// task id / issue id).
    pub key: String,
    pub pass: Pass,
    pub task_id: Option<i64>,
    pub issue_id: Option<String>,
    pub work_item_id: Option<String>,
    /// The stage announced (the stage before the transition).
    pub stage: String,
    pub state_uuid: Option<String>,
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

/// What a finished (non-dry-run) tick hands to [`Sidecar::finish_tick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRecord {
    /// "gate" | "plane" | "all".
    pub command: String,
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    /// Units per outcome / outcome+reason, as the report's summary line:
    /// `{"advanced": 1, "skipped/young": 3}`. Stored as JSON with the tick;
    /// every `skipped/<reason>` entry also adds to the counter
    /// `skipped_<reason>` (the per-reason skip counts of `status`).
    pub counts: BTreeMap<String, i64>,
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
    /// When each Plane project's mirror last started a sync, by project id
    /// (for the metrics textfile only).
    #[serde(skip)]
    pub synced: BTreeMap<String, String>,
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

/// docs/decisions.md: an unblock is a duplicate when it has a state uuid and its
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

// ---------------------------------------------------------------------------
// The sidecar
// ---------------------------------------------------------------------------

/// An open sidecar, live or read-only.
#[derive(Debug)]
pub struct Sidecar {
    conn: RefCell<Connection>,
    path: PathBuf,
    read_only: bool,
    /// Read-only `immutable=1` connections only: the database file as it
    /// was when opened. Reads reopen when it changed (see [`Sidecar::conn`]).
    ro_stamp: Cell<Option<FileStamp>>,
}

/// Identity and last change of the database file, and whether a `-wal`
/// exists: what decides whether an immutable connection is still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime: SystemTime,
    wal: bool,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            ino: m.ino(),
            len: m.len(),
            mtime: m.modified().ok()?,
            wal: sidecar_file(path, "-wal").exists(),
        })
    }
}

/// What the first 100 bytes of an existing file say.
struct Header {
    /// 0-byte file: an empty database.
    empty: bool,
    /// Read/write format versions 2/2: WAL mode.
    wal: bool,
}

/// Root writing into a state directory that belongs to the service user
/// would leave root-owned files (the sidecar, its lock, -wal/-shm) that
/// break every later tick of that user: refuse, and say how to run it.
fn refuse_root_in_foreign_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The owner of /proc/self is the effective uid (Linux).
    let (Ok(me), Ok(dir)) = (std::fs::metadata("/proc/self"), std::fs::metadata(parent)) else {
        return Ok(());
    };
    if me.uid() == 0 && dir.uid() != 0 {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            format!(
                "refusing to write as root into {}, which belongs to uid {}: run as that user \
                 (e.g. sudo -u reconcile reconcile …) so its files stay its own",
                parent.display(),
                dir.uid()
            ),
        ));
    }
    Ok(())
}

fn check_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SidecarError::new(
            path,
            SidecarErrorKind::MissingDirectory,
            format!("{} is not a directory", parent.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SidecarError::new(
            path,
            SidecarErrorKind::MissingDirectory,
            format!("directory {} does not exist", parent.display()),
        )),
        Err(e) => Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            format!("cannot access directory {}: {e}", parent.display()),
        )),
    }
}

/// `Ok(None)`: the file does not exist.
fn read_header(path: &Path) -> Result<Option<Header>> {
    let io_err = |e: std::io::Error| SidecarError::new(path, SidecarErrorKind::Io, e.to_string());
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::Io,
            "is a directory",
        ));
    }
    let mut buf = Vec::with_capacity(100);
    (&mut file)
        .take(100)
        .read_to_end(&mut buf)
        .map_err(io_err)?;
    if buf.is_empty() {
        return Ok(Some(Header {
            empty: true,
            wal: false,
        }));
    }
    if buf.len() < 100 || &buf[..16] != SQLITE_MAGIC {
        return Err(SidecarError::new(
            path,
            SidecarErrorKind::NotADatabase,
            "file is not a database",
        ));
    }
    Ok(Some(Header {
        empty: false,
        wal: buf[18] == 2 && buf[19] == 2,
    }))
}

fn sidecar_file(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `file:` URI for `path` (absolute, percent-encoded) with `query`.
fn file_uri(path: &Path, query: &str) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path)
        .map_err(|e| SidecarError::new(path, SidecarErrorKind::Io, e.to_string()))?;
    let mut uri = String::from("file:");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push('?');
    uri.push_str(query);
    Ok(uri)
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| SidecarError::sqlite(path, "", e))
}

fn check_version(path: &Path, found: i64) -> Result<()> {
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

/// The read-only connection for [`Sidecar::open_read_only`], and the file's
/// stamp when it is `immutable=1`. `None`: nothing to read.
fn open_ro_conn(path: &Path) -> Result<Option<(Connection, Option<FileStamp>)>> {
    // Stamp first: a change after this point is seen by the next read.
    let stamp = FileStamp::of(path);
    let header = match read_header(path)? {
        None => return Ok(None),
        Some(h) if h.empty => return Ok(None),
        Some(h) => h,
    };
    let wal_exists = sidecar_file(path, "-wal").exists();
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

fn add_counter(tx: &Connection, name: &str, by: i64) -> rusqlite::Result<()> {
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

fn set_kv(tx: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO kv(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The body of [`Sidecar::record_unblock`], inside the caller's transaction.
fn write_unblock(tx: &Connection, u: &Unblock, now: &str) -> rusqlite::Result<RecordedUnblock> {
    tx.execute(
        "INSERT INTO dedup(key, stage, state_uuid, touched_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(key) DO UPDATE SET stage = excluded.stage,
             state_uuid = excluded.state_uuid, touched_at = excluded.touched_at",
        params![u.key, u.stage, u.state_uuid, now],
    )?;
    add_counter(tx, C_UNBLOCKED, 1)?;
    set_kv(tx, K_LAST_UNBLOCKED, &u.key)?;
    tx.execute(
        "INSERT INTO history(at, pass, key, task_id, issue_id, work_item_id, stage,
                             state_uuid, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            now,
            u.pass.as_str(),
            u.key,
            u.task_id,
            u.issue_id,
            u.work_item_id,
            u.stage,
            u.state_uuid,
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

fn insert_message(
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

impl Sidecar {
    /// Live mode (docs/sidecar.md): open `path`, creating the file if missing
    /// (its directory must exist), WAL + `synchronous=FULL` + busy timeout +
    /// foreign keys, migrated forward to [`SCHEMA_VERSION`] in one
    /// transaction. A file that is not a database, is corrupt, belongs to
    /// something else, or has a newer schema is refused before anything is
    /// written to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Sidecar> {
        let path = path.as_ref().to_path_buf();
        check_parent(&path)?;
        let header = read_header(&path)?;
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

        let mut sidecar = Sidecar {
            conn: RefCell::new(conn),
            path,
            read_only: false,
            ro_stamp: Cell::new(None),
        };
        sidecar.migrate()?;
        Ok(sidecar)
    }

    /// Read-only mode (dry-run, `status`, `history`): never creates or
    /// modifies a file. A missing or empty file, or one never migrated, is
    /// `Ok(None)` (callers treat it as empty). A newer schema is the same
    /// error as in live mode.
    ///
    /// A WAL database whose `-wal` file is absent (a live tick closed it
    /// cleanly: every committed byte is in the main file) is opened
    /// `immutable=1`, which reads without locks and without creating
    /// `-wal`/`-shm` (plain `mode=ro` would create both and leave them
    /// behind). When a `-wal` exists (a live tick is running, or crashed)
    /// it is opened `mode=ro` and shares that tick's WAL index properly.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Option<Sidecar>> {
        let path = path.as_ref().to_path_buf();
        Ok(open_ro_conn(&path)?.map(|(conn, stamp)| Sidecar {
            conn: RefCell::new(conn),
            path,
            read_only: true,
            ro_stamp: Cell::new(stamp),
        }))
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let sql = |what: &'static str| {
            let path = path.clone();
            move |e: rusqlite::Error| SidecarError::sqlite(&path, what, e)
        };
        let tx = self
            .conn
            .get_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("starting the migration"))?;
        let from = user_version(&tx, &path)?;
        check_version(&path, from)?;
        if from == SCHEMA_VERSION {
            return Ok(());
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            tx.execute_batch(step).map_err(|e| {
                SidecarError::sqlite(&path, &format!("migrating to schema version {}", i + 1), e)
            })?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sql("setting the schema version"))?;
        tx.commit().map_err(sql("committing the migration"))?;
        log::info!(
            "sidecar {}: migrated schema {from} → {SCHEMA_VERSION}",
            path.display()
        );
        Ok(())
    }

    /// The sidecar file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
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

    fn writable(&self, what: &str) -> Result<()> {
        if self.read_only {
            return Err(SidecarError::new(
                &self.path,
                SidecarErrorKind::ReadOnly,
                format!("opened read-only; cannot {what}"),
            ));
        }
        Ok(())
    }

    /// Run `f` in one IMMEDIATE transaction; commit on success, roll back
    /// (nothing written) on error.
    fn write<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.writable(what)?;
        let path = self.path.clone();
        let err = |e| SidecarError::sqlite(&path, what, e);
        let tx = self
            .conn
            .get_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let value = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(value)
    }

    // -- de-dup -------------------------------------------------------------

    /// The last (stage, state uuid) announced for `key` (docs/decisions.md).
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

    /// Drop one de-dup key (`reconcile forget`); false when it was absent.
    pub fn forget(&mut self, key: &str) -> Result<bool> {
        self.write("forget a de-dup key", |tx| {
            Ok(tx.execute("DELETE FROM dedup WHERE key = ?1", [key])? > 0)
        })
    }

    /// Record a non-duplicate unblock in ONE transaction (docs/decisions.md): the key's
    /// (stage, state), unblocked_total += 1, last_unblocked, a history row
    /// and, when `u.queue`, an outbox row. Call [`is_duplicate`] first;
    /// duplicates go to [`TickRecord::deduped_keys`].
    pub fn record_unblock(&mut self, u: &Unblock, now: OffsetDateTime) -> Result<RecordedUnblock> {
        let now = format_ts(now);
        self.write("record an unblock", |tx| write_unblock(tx, u, &now))
    }

    // -- outbox -------------------------------------------------------------

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
        let err = self.err("reading the outbox");
        let conn = self.conn()?;
        let mut stmt = conn.prepare(sql).map_err(&err)?;
        let rows = stmt.query_map(args, outbox_row).map_err(&err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)
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

    // -- ticks, counters ------------------------------------------------------

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
            for (name, n) in &rec.counts {
                if let Some(reason) = name.strip_prefix(SKIP_COUNT_PREFIX) {
                    add_counter(tx, &format!("{C_SKIP_PREFIX}{reason}"), *n)?;
                }
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
            set_kv(tx, K_LAST_RUN, &now)?;
            if rec.exit_code == 0 {
                set_kv(tx, K_LAST_SUCCESS, &now)?;
            }
            retain(tx, &cutoff)?;
            Ok(id)
        })
    }

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
        {
            let mut stmt = conn
                .prepare("SELECT name, value FROM counters")
                .map_err(&err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(&err)?;
            for row in rows {
                let (name, value) = row.map_err(&err)?;
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
        }
        {
            let mut stmt = conn.prepare("SELECT key, value FROM kv").map_err(&err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(&err)?;
            for row in rows {
                let (key, value) = row.map_err(&err)?;
                match key.as_str() {
                    K_LAST_RUN => snap.last_run_ts = Some(value),
                    K_LAST_SUCCESS => snap.last_success_ts = Some(value),
                    K_LAST_UNBLOCKED => snap.last_unblocked = Some(value),
                    _ => {}
                }
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
        snap.synced = metrics::synced(&conn).map_err(&err)?;
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
        let mut stmt = conn
            .prepare(
                "SELECT h.id, h.at, h.pass, h.key, h.task_id, h.issue_id, h.work_item_id,
                        h.stage, h.state_uuid, h.text, h.outbox_id,
                        COALESCE(o.status, 'off')
                 FROM history h LEFT JOIN outbox o ON o.id = h.outbox_id
                 WHERE h.at >= ?1 ORDER BY h.id DESC LIMIT ?2",
            )
            .map_err(&err)?;
        let unblocks = stmt
            .query_map(params![since, limit], |r| {
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
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        let mut stmt = conn
            .prepare(
                "SELECT id, started_at, finished_at, command, duration_ms, counts, exit_code
                 FROM ticks WHERE started_at >= ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(&err)?;
        let ticks = stmt
            .query_map(params![since, limit], |r| {
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
            })
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
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
    tx.execute(
        "DELETE FROM outbox WHERE (status = 'sent' AND COALESCE(sent_at, created_at) < ?1)
            OR (status = 'dropped' AND COALESCE(dropped_at, created_at) < ?1)",
        [cutoff],
    )?;
    Ok(())
}
