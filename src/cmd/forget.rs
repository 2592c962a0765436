//! `reconcile forget <KEY>`: drops one de-dup key, so the next unblock of
//! it is announced. Takes the tick lock and honours --dry-run.

use std::process::ExitCode;

use super::{Context, done, open_locked};
use crate::store::SidecarReader;

/// Drops one de-dup key. Exit 1 when the key is not in the map.
pub(super) fn run(ctx: &Context, key: &str) -> anyhow::Result<ExitCode> {
    let path = ctx.writable_state_path()?;
    let (found, forgotten) = if ctx.dry_run {
        let found = match SidecarReader::open(&path)? {
            Some(s) => s.last_announced(key)?.is_some(),
            None => false,
        };
        (found, false)
    } else {
        match open_locked(ctx, &path)? {
            Some((_lock, mut s)) => {
                let gone = s.forget(key)?;
                s.close()?;
                (gone, gone)
            }
            None => (false, false),
        }
    };
    let text = match (found, ctx.dry_run) {
        (false, _) => format!("forget: no de-dup key {key:?}"),
        (true, true) => format!("forget: would forget {key:?} (dry-run)"),
        (true, false) => format!("forget: {key:?} forgotten; its next unblock is announced"),
    };
    let value = serde_json::json!({"key": key, "found": found, "forgotten": forgotten, "dry_run": ctx.dry_run});
    Ok(done(ctx, value, text, found))
}
