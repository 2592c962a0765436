//! One tick at a time: an exclusive lock beside the sidecar.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::errors::{LockBusy, LockError, LockStopped, SidecarError, SidecarErrorKind};
use super::file::{canonical, check_parent, refuse_root_in_foreign_dir, refuse_special};

/// How often [`TickLock::acquire`] retries while waiting.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// `<canonical state path>.lock`: every symlink of the state path resolved,
/// so two paths to one database share one lock.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut s = canonical(state_path).into_os_string();
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
        Self::acquire_or_stop(state_path, wait, &|| false)
    }

    /// As [`TickLock::acquire`], but a wait ends as soon as `stop` says so
    /// (a tick passes its stop-signal flag: a stop while waiting is obeyed
    /// at once, not once the tick has started; docs/sidecar.md).
    pub fn acquire_or_stop(
        state_path: &Path,
        wait: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<TickLock, LockError> {
        // A FIFO or device at the sidecar path is refused before a lock
        // file is made beside it.
        refuse_special(state_path).map_err(LockError::Sidecar)?;
        let path = lock_path(state_path);
        check_parent(&path).map_err(LockError::Sidecar)?;
        refuse_root_in_foreign_dir(&path).map_err(LockError::Sidecar)?;
        refuse_special(&path).map_err(LockError::Sidecar)?;
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
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(TickLock { _file: file, path }),
                Err(TryLockError::WouldBlock) => {
                    if stop() {
                        return Err(LockError::Stopped(LockStopped { path }));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(LockError::Busy(LockBusy { path }));
                    }
                    if !announced {
                        announced = true;
                        log::info!(
                            "another tick holds the lock {}; waiting up to {} s (--wait-lock)",
                            path.display(),
                            wait.as_secs()
                        );
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
