//! SIGTERM, SIGINT and SIGHUP during a tick (systemd's stop, Ctrl-C, a
//! closed terminal): the first one asks the tick to stop, so no new action
//! starts, the request in flight finishes (bounded by its timeout), what
//! happened is recorded, queued messages stay queued, and the tick exits 75;
//! Plane reads still running and 429 waits are not waited for.
//! A second one ends the process at once; the sidecar's transactions keep
//! it consistent (docs/reliability.md, hostile conditions).
//!
//! `signal-hook` is the standard crate for this: its handlers only store to
//! an atomic flag (async-signal-safe), and its conditional shutdown gives the
//! "second signal exits now" behaviour without a handler of our own.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The exit status of a process ended by a second signal (EX_TEMPFAIL,
/// like a tick the first signal cut short).
const SECOND_SIGNAL_EXIT: i32 = 75;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process). Only ticks install them: the
/// other commands keep the default, dying on the first signal.
pub fn install() -> std::io::Result<()> {
    let flag = STOP.get_or_init(|| Arc::new(AtomicBool::new(false)));
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    for sig in [SIGTERM, SIGINT, SIGHUP] {
        // Order matters: the shutdown must be registered first, so that it
        // sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, SECOND_SIGNAL_EXIT, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    let _ = DONE.set(());
    Ok(())
}

/// A stop was asked: start nothing new.
pub fn stop_requested() -> bool {
    STOP.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Sleeps for `d`, or until a stop is asked (looked at every 50 ms): a
/// wait Plane asked for must not hold a stopping process. False when
/// the stop ended it.
pub fn sleep_unless_stopped(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop_requested() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
