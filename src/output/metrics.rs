//! The Prometheus textfile: written after every non-dry-run
//! gate/plane/all tick, atomically (a temp file in the same directory, then
//! a rename), for node_exporter's textfile collector.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;

use crate::core::timestamp;
use crate::output::report::Report;

/// The metrics of one finished tick, in the text exposition format.
pub fn render(report: &Report, duration: Duration) -> String {
    let mut out = String::new();
    let ts = |s: Option<&str>| {
        s.and_then(timestamp::parse)
            .map(OffsetDateTime::unix_timestamp)
    };
    let last_run = ts(Some(report.finished_at.as_str()))
        .or_else(|| ts(report.counters.last_run_ts.as_deref()))
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    // The sidecar's snapshot was taken after this tick was recorded: it holds
    // this tick's time when it exited 0, the previous success otherwise.
    let last_success = if report.exit_code == 0 {
        ts(report.counters.last_success_ts.as_deref()).or(Some(last_run))
    } else {
        ts(report.counters.last_success_ts.as_deref())
    };

    header(
        &mut out,
        "reconcile_last_run_timestamp_seconds",
        "gauge",
        "Unix time the last non-dry-run tick finished.",
    );
    let _ = writeln!(out, "reconcile_last_run_timestamp_seconds {last_run}");
    header(
        &mut out,
        "reconcile_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last tick that exited 0 finished.",
    );
    if let Some(t) = last_success {
        let _ = writeln!(out, "reconcile_last_success_timestamp_seconds {t}");
    }
    header(
        &mut out,
        "reconcile_tick_duration_seconds",
        "gauge",
        "Wall time of the last tick.",
    );
    let _ = writeln!(
        out,
        "reconcile_tick_duration_seconds {:.3}",
        duration.as_secs_f64()
    );
    header(
        &mut out,
        "reconcile_exit_code",
        "gauge",
        "Exit code of the last tick.",
    );
    let _ = writeln!(out, "reconcile_exit_code {}", report.exit_code);

    header(
        &mut out,
        "reconcile_units_total",
        "gauge",
        "Units of the last tick by pass, outcome and reason.",
    );
    let mut units: BTreeMap<(&str, String, String), u64> = BTreeMap::new();
    for u in &report.gate.units {
        let key = (
            "gate",
            u.outcome.to_string(),
            u.reason.map(|r| r.to_string()).unwrap_or_default(),
        );
        *units.entry(key).or_default() += 1;
    }
    for u in &report.plane.units {
        let key = (
            "plane",
            u.outcome.to_string(),
            u.reason.map(|r| r.to_string()).unwrap_or_default(),
        );
        *units.entry(key).or_default() += 1;
    }
    for ((pass, outcome, reason), n) in &units {
        let _ = writeln!(
            out,
            "reconcile_units_total{{pass=\"{}\",outcome=\"{}\",reason=\"{}\"}} {n}",
            label(pass),
            label(outcome),
            label(reason)
        );
    }

    header(
        &mut out,
        "reconcile_unblocked_total",
        "counter",
        "Unblocks announced (or recorded) since the sidecar was created.",
    );
    let _ = writeln!(
        out,
        "reconcile_unblocked_total {}",
        report.counters.unblocked_total
    );
    header(
        &mut out,
        "reconcile_deduped_total",
        "counter",
        "Unblocks suppressed as duplicates since the sidecar was created.",
    );
    let _ = writeln!(
        out,
        "reconcile_deduped_total {}",
        report.counters.deduped_total
    );
    header(
        &mut out,
        "reconcile_notifications_pending",
        "gauge",
        "Messages queued in the outbox after the last tick.",
    );
    let _ = writeln!(
        out,
        "reconcile_notifications_pending {}",
        report.counters.notifications_pending
    );
    header(
        &mut out,
        "reconcile_requests_total",
        "gauge",
        "HTTP requests of the last tick by peer.",
    );
    for (peer, n) in [
        ("orchestrator", report.requests.orchestrator),
        ("plane", report.requests.plane),
        ("telegram", report.requests.telegram),
    ] {
        let _ = writeln!(out, "reconcile_requests_total{{peer=\"{peer}\"}} {n}");
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics of `report` to `path` atomically.
pub fn write(path: &Path, report: &Report, duration: Duration) -> anyhow::Result<()> {
    write_atomically(path, render(report, duration).as_bytes())
}

/// A temp file beside `path` (a dot name without `.prom`, so the textfile
/// collector never reads it half-written), synced, then renamed over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .context("the path has no file name")?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // node_exporter runs as another user; the unit's UMask would
        // otherwise leave the file 0640.
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context("cannot write"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The temp file is written, then the rename fails: the target is a
        // non-empty directory.
        let target = dir.path().join("busy");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), b"").unwrap();
        assert!(write_atomically(&target, b"x 1\n").is_err());
        std::fs::remove_dir_all(&target).unwrap();
        let target = dir.path().join("x.prom");
        write_atomically(&target, b"x 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x 1\n");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "readable by node_exporter");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
