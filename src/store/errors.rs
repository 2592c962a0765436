//! What can go wrong with the sidecar and its lock, and the exit code each
//! maps to (74 for the sidecar, 75 for a lock held by another tick).

use std::fmt;
use std::path::{Path, PathBuf};

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
