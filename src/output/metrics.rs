//! The Prometheus textfile: written after every non-dry-run gate/plane/all
//! tick, atomically (a temp file in the same directory, then a rename), for
//! node_exporter's textfile collector. Every `_total` is a true counter,
//! cumulative since the sidecar was created and kept in it; last-tick values
//! are gauges. The file passes `promtool check metrics`; the series are
//! listed with their meaning in the README and the man page.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;

use crate::core::timestamp;
use crate::output::report::Report;
use crate::store::{REQUESTS_TOTAL, TICKS_TOTAL, UNITS_TOTAL};
use crate::tick::outcome::{requests, units};

const LAST_RUN: &str = "reconcile_last_run_timestamp_seconds";
const DURATION: &str = "reconcile_tick_duration_seconds";
const EXIT_CODE: &str = "reconcile_last_exit_code";
/// The last tick's values, which a sidecar error (exit 74) drops.
const LAST_TICK_PREFIX: &str = "reconcile_last_tick_";

/// Every series the textfile can hold, in the order written: name (with its
/// labels), type, meaning. The HELP lines, the man page and the README's
/// list come from here.
pub const SERIES: &[(&str, &str, &str)] = &[
    (LAST_RUN, "gauge", "Unix time the last live tick finished."),
    (DURATION, "gauge", "Wall time of the last tick, in seconds."),
    (
        EXIT_CODE,
        "gauge",
        "Exit code of the last tick (0, 1, 69, 75; 74 when the sidecar could not be used).",
    ),
    (
        "reconcile_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last tick that exited 0 finished.",
    ),
    (
        "reconcile_notifications_pending",
        "gauge",
        "Messages queued in the outbox after the last tick.",
    ),
    (
        "reconcile_last_tick_units{outcome,pass,reason}",
        "gauge",
        "Units (tasks, issues) of the last tick by outcome, pass and reason.",
    ),
    (
        "reconcile_last_tick_requests{peer}",
        "gauge",
        "HTTP requests of the last tick by peer.",
    ),
    (
        "reconcile_plane_projects_unread",
        "gauge",
        "Plane projects the last tick meant to read and could not (budget, deadline or error).",
    ),
    (
        "reconcile_plane_oldest_sync_age_seconds",
        "gauge",
        "Age of the oldest successful Plane sync among those projects, at the end of the last tick.",
    ),
    (
        "reconcile_ticks_total{exit_code}",
        "counter",
        "Live ticks that reported, by exit code (a tick stopped by its sidecar cannot count itself).",
    ),
    (
        "reconcile_units_total{outcome,pass,reason}",
        "counter",
        "Units (tasks, issues) by outcome, pass and reason.",
    ),
    (
        "reconcile_requests_total{peer}",
        "counter",
        "HTTP requests by peer (orchestrator, plane, telegram).",
    ),
    (
        "reconcile_unblocked_total",
        "counter",
        "Unblocks announced (or recorded).",
    ),
    (
        "reconcile_deduped_total",
        "counter",
        "Unblocks suppressed as duplicates.",
    ),
    (
        "reconcile_notifications_dropped_total",
        "counter",
        "Messages given up (refused by Telegram for good, or 20 failed attempts).",
    ),
];

/// The metrics of one finished tick, in the text exposition format. The
/// counters come from the sidecar's snapshot taken after the tick was
/// recorded, so they include this tick.
pub fn render(report: &Report, duration: Duration) -> String {
    let mut out = String::new();
    let snap = &report.counters.snapshot;
    let finished = Some(report.finished_at);
    let ts = |s: Option<&str>| {
        s.and_then(timestamp::parse)
            .map(OffsetDateTime::unix_timestamp)
    };
    let last_run = finished
        .map(OffsetDateTime::unix_timestamp)
        .or_else(|| ts(snap.last_run_ts.as_deref()))
        .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    // The snapshot holds this tick's time when it exited 0, the previous
    // success otherwise.
    let last_success = match ts(snap.last_success_ts.as_deref()) {
        None if report.exit_code == 0 => Some(last_run),
        t => t,
    };

    last_run_gauges(&mut out, last_run, report.exit_code, duration);
    if let Some(t) = last_success {
        family(
            &mut out,
            "reconcile_last_success_timestamp_seconds",
            &[(String::new(), t.to_string())],
        );
    }
    family(
        &mut out,
        "reconcile_notifications_pending",
        &[(String::new(), snap.notifications_pending.to_string())],
    );
    let last_units: Vec<_> = units(&report.gate, &report.plane)
        .into_iter()
        .map(|((pass, outcome, reason), n)| {
            // Sorted by name, as Prometheus shows them.
            let labels = [
                ("outcome", outcome.as_str()),
                ("pass", pass),
                ("reason", &reason),
            ];
            (labels_text(&labels), n.to_string())
        })
        .collect();
    family(&mut out, "reconcile_last_tick_units", &last_units);
    let last_requests: Vec<_> = requests(&report.requests)
        .into_iter()
        .map(|(peer, n)| (labels_text(&[("peer", peer)]), n.to_string()))
        .collect();
    family(&mut out, "reconcile_last_tick_requests", &last_requests);
    plane_fleet(&mut out, report, finished);

    for name in [TICKS_TOTAL, UNITS_TOTAL, REQUESTS_TOTAL] {
        let samples: Vec<_> = snap
            .series
            .iter()
            .filter(|(k, _)| k.family == name)
            .map(|(k, v)| {
                let labels: Vec<(&str, &str)> = k
                    .labels
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                (labels_text(&labels), v.to_string())
            })
            .collect();
        family(&mut out, name, &samples);
    }
    for (name, value) in [
        ("reconcile_unblocked_total", snap.unblocked_total),
        ("reconcile_deduped_total", snap.deduped_total),
        (
            "reconcile_notifications_dropped_total",
            snap.notifications_dropped_total,
        ),
    ] {
        family(&mut out, name, &[(String::new(), value.to_string())]);
    }
    out
}

/// The gauges every tick that ran rewrites, the one stopped by its sidecar
/// included.
fn last_run_gauges(out: &mut String, last_run: i64, exit_code: u8, duration: Duration) {
    family(out, LAST_RUN, &[(String::new(), last_run.to_string())]);
    family(
        out,
        DURATION,
        &[(String::new(), format!("{:.3}", duration.as_secs_f64()))],
    );
    family(out, EXIT_CODE, &[(String::new(), exit_code.to_string())]);
}

/// The fair Plane budget's view of the last tick: how many of the projects
/// it meant to read it could not (deferred by the budget or the deadline,
/// or failed), and how old the least recent successful sync among them was
/// when it finished (none when none of them ever synced, or the tick needed
/// no project).
fn plane_fleet(out: &mut String, report: &Report, now: Option<OffsetDateTime>) {
    let snap = &report.counters.snapshot;
    family(
        out,
        "reconcile_plane_projects_unread",
        &[(String::new(), snap.plane_projects_unread.max(0).to_string())],
    );
    let oldest = snap
        .plane_oldest_sync_at
        .as_deref()
        .and_then(timestamp::parse);
    let age = match (now, oldest) {
        (Some(now), Some(oldest)) => Some((now - oldest).whole_seconds().max(0)),
        _ => snap.plane_oldest_sync_age_s,
    };
    if let Some(age) = age {
        family(
            out,
            "reconcile_plane_oldest_sync_age_seconds",
            &[(String::new(), age.to_string())],
        );
    }
}

/// One metric family: HELP and TYPE from [`SERIES`], and its samples
/// (label text, value). A family without samples is left out: a TYPE with
/// nothing under it tells a scraper nothing.
fn family(out: &mut String, name: &str, samples: &[(String, String)]) {
    let Some((_, kind, help)) = SERIES
        .iter()
        .find(|(n, _, _)| n.split('{').next() == Some(name))
    else {
        debug_assert!(false, "{name} is not in SERIES");
        return;
    };
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `{a="x",b="y"}` with the values escaped; "" for no labels.
fn labels_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
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

/// After a tick that stopped because its sidecar could not be used (exit
/// 74): the last-run gauges say so, and the rest of the previous file (the
/// counters, the last success) stays as it was, since the sidecar that
/// holds them cannot be read. Without this the file would keep showing
/// the last good tick and no alert could tell the two apart.
pub fn write_after_sidecar_error(
    path: &Path,
    exit_code: u8,
    duration: Duration,
) -> anyhow::Result<()> {
    let mut previous = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        // Our own file is a few KiB; a cap keeps a stray huge file harmless.
        let _ = f.take(1 << 20).read_to_string(&mut previous);
    }
    let mut out = String::new();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    last_run_gauges(&mut out, now, exit_code, duration);
    out.push_str(&carried_over(&previous));
    write_atomically(path, out.as_bytes())
}

/// The families of a previous textfile that a sidecar error leaves as they
/// were: all but the last-run gauges and the last tick's values.
fn carried_over(previous: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in previous.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            keep = ![LAST_RUN, DURATION, EXIT_CODE].contains(&name)
                && !name.starts_with(LAST_TICK_PREFIX);
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A temp file beside `path` (a dot name without `.prom`, so the textfile
/// collector never reads it half-written), synced, then renamed over it.
/// The temp name is random and created exclusively (`O_EXCL`, so a symlink
/// planted there is never followed): anyone who can write the textfile
/// directory cannot make the service overwrite another file
/// (docs/reliability.md, hostile conditions). `tempfile` is the standard
/// crate for exactly this.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = path
        .file_name()
        .context("the path has no file name")?
        .to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let result = (|| -> std::io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(&dir)?;
        f.write_all(bytes)?;
        // node_exporter runs as another user; the unit's UMask would
        // otherwise leave the file 0640.
        f.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.as_file().sync_all()?;
        // On failure the temp file is removed when `f` drops.
        f.persist(path).map(|_| ()).map_err(|e| e.error)
    })();
    result.map_err(|e| anyhow::Error::new(e).context("cannot write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(labels_text(&[]), "");
        assert_eq!(
            labels_text(&[("peer", "plane"), ("x", "\"")]),
            "{peer=\"plane\",x=\"\\\"\"}"
        );
    }

    #[test]
    fn a_sidecar_error_keeps_the_counters_and_replaces_the_last_tick() {
        let previous = "\
# HELP reconcile_last_run_timestamp_seconds t
# TYPE reconcile_last_run_timestamp_seconds gauge
reconcile_last_run_timestamp_seconds 100
# HELP reconcile_last_tick_units u
# TYPE reconcile_last_tick_units gauge
reconcile_last_tick_units{pass=\"gate\"} 3
# HELP reconcile_last_success_timestamp_seconds s
# TYPE reconcile_last_success_timestamp_seconds gauge
reconcile_last_success_timestamp_seconds 90
# HELP reconcile_units_total u
# TYPE reconcile_units_total counter
reconcile_units_total{pass=\"gate\"} 7
# HELP reconcile_last_exit_code e
# TYPE reconcile_last_exit_code gauge
reconcile_last_exit_code 0
";
        assert_eq!(
            carried_over(previous),
            "\
# HELP reconcile_last_success_timestamp_seconds s
# TYPE reconcile_last_success_timestamp_seconds gauge
reconcile_last_success_timestamp_seconds 90
# HELP reconcile_units_total u
# TYPE reconcile_units_total counter
reconcile_units_total{pass=\"gate\"} 7
"
        );
        assert_eq!(carried_over(""), "");
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
