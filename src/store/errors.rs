//! What can go wrong with the sidecar and its lock, and the exit code each
//! maps to (74 for the sidecar, 75 for a lock held by another tick).

use std::fmt;
use std::path::{Path, PathBuf};

use super::file::{canonical, sidecar_file};

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
    /// SQLite cannot write the file or its directory.
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

    pub(super) fn new(path: &Path, kind: SidecarErrorKind, message: impl Into<String>) -> Self {
        SidecarError {
            path: path.to_path_buf(),
            kind,
            message: message.into(),
        }
    }

    /// An SQLite error while doing `what` (e.g. "recording an unblock").
    pub(super) fn sqlite(path: &Path, what: &str, err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let kind = match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                SidecarErrorKind::NotADatabase
            }
            Some(ErrorCode::ReadOnly) => SidecarErrorKind::ReadOnly,
            _ => SidecarErrorKind::Sqlite,
        };
        let mut message = if what.is_empty() {
            err.to_string()
        } else {
            format!("{what}: {err}")
        };
        if let Some(detail) = io_detail(path, &err) {
            message.push_str("; ");
            message.push_str(&detail);
        }
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

/// SQLite says only "disk I/O error" or "database or disk is full": name
/// the file its extended code points at, and find the cause by asking the
/// file system itself (a small probe write beside the sidecar).
fn io_detail(path: &Path, err: &rusqlite::Error) -> Option<String> {
    use rusqlite::{ErrorCode, ffi};
    let rusqlite::Error::SqliteFailure(e, _) = err else {
        return None;
    };
    if !matches!(
        e.code,
        ErrorCode::SystemIoFailure | ErrorCode::DiskFull | ErrorCode::CannotOpen
    ) {
        return None;
    }
    let real = canonical(path);
    let named = |suffix: &str| sidecar_file(&real, suffix).display().to_string();
    let file = match e.extended_code {
        ffi::SQLITE_IOERR_SHMOPEN | ffi::SQLITE_IOERR_SHMSIZE | ffi::SQLITE_IOERR_SHMMAP => {
            format!("the shared-memory index {}", named("-shm"))
        }
        ffi::SQLITE_IOERR_READ | ffi::SQLITE_IOERR_SHORT_READ => {
            format!("reading {}", real.display())
        }
        _ => format!(
            "{} or its write-ahead log {}",
            real.display(),
            named("-wal")
        ),
    };
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cause = match space_probe(&dir) {
        Ok(()) => format!("SQLite code {}", e.extended_code),
        Err(io) => format!("{} in {}", io_cause(&io), dir.display()),
    };
    Some(format!("file: {file}; cause: {cause}"))
}

/// Writes and syncs 64 KiB in `dir`, then removes it: what a transaction
/// or a growing WAL needs at least.
fn space_probe(dir: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    // O_EXCL: never follows a planted symlink; the pid keeps two
    // processes apart, and a leftover of a killed one is replaced.
    let probe = dir.join(format!(".reconcile-space-probe.{}", std::process::id()));
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
    };
    let mut file = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(&probe)?;
            create()?
        }
        other => other?,
    };
    let written = file
        .write_all(&[0u8; 64 * 1024])
        .and_then(|()| file.sync_all());
    drop(file);
    let _ = std::fs::remove_file(&probe);
    written
}

fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull => "the file system is full (no space left on device)".into(),
        ErrorKind::QuotaExceeded => "the disk quota is exceeded".into(),
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
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

/// A stop signal came while waiting for the lock: nothing was done (exit
/// 75, like a tick a signal stopped).
#[derive(Debug, Clone)]
pub struct LockStopped {
    /// The lock file another tick holds.
    pub path: PathBuf,
}

impl fmt::Display for LockStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stopped by a signal while waiting for the lock {} (another tick holds it); \
             nothing was done",
            self.path.display()
        )
    }
}

impl std::error::Error for LockStopped {}

/// Why [`TickLock::acquire`] failed.
#[derive(Debug)]
pub enum LockError {
    /// Held by another tick after the wait (exit 75).
    Busy(LockBusy),
    /// A stop signal ended the wait (exit 75).
    Stopped(LockStopped),
    /// The lock file cannot be created or locked (exit 74).
    Sidecar(SidecarError),
}

impl LockError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LockError::Busy(_) | LockError::Stopped(_) => LockBusy::EXIT_CODE,
            LockError::Sidecar(_) => SidecarError::EXIT_CODE,
        }
    }

    /// Unwrap into an `anyhow::Error` holding the inner error itself, so
    /// `downcast_ref::<LockBusy>()` / `downcast_ref::<SidecarError>()` work.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            LockError::Busy(e) => anyhow::Error::new(e),
            LockError::Stopped(e) => anyhow::Error::new(e),
            LockError::Sidecar(e) => anyhow::Error::new(e),
        }
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Busy(e) => e.fmt(f),
            LockError::Stopped(e) => e.fmt(f),
            LockError::Sidecar(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Busy(e) => Some(e),
            LockError::Stopped(e) => Some(e),
            LockError::Sidecar(e) => Some(e),
        }
    }
}

pub type Result<T, E = SidecarError> = std::result::Result<T, E>;
