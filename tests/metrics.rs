//! The metrics textfile (issue 16) against the real binary: what a tick
//! writes, that every counter is cumulative in the sidecar (never down,
//! across ticks and restarts), what a sidecar error leaves, and that
//! Prometheus' own tools accept it: `promtool check metrics` on the file,
//! node_exporter's textfile collector serving it, the shipped alert rules
//! and dashboard naming only series the tool writes. The Prometheus tools
//! (Debian packages `prometheus` and `prometheus-node-exporter`, which
//! `.ci/observability` installs) are optional: where one is missing, its
//! test says so on stderr and skips that part.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program on `$PATH`, or `None` after saying on stderr what is skipped.
fn tool(name: &str, skipped: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!(
            "SKIP {skipped}: {name} is not installed (apt-get install prometheus prometheus-node-exporter, or run .ci/observability)"
        );
    }
    found
}

/// `promtool ARGS…` with `stdin`; panics with its output unless it exits 0.
/// A crash of promtool itself (a Go panic: 2.42 panics where it should
/// report an internal error of its test storage, as in
/// prometheus/prometheus#13703) says nothing about our files: it is
/// retried once, and said so.
fn promtool(promtool: &Path, args: &[&str], dir: &Path, stdin: &str) -> String {
    let run = || {
        let mut child = Command::new(promtool)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (mut ok, mut text) = run();
    if !ok && text.contains("panic: runtime error") {
        eprintln!("promtool {args:?} crashed; once more:\n{text}");
        (ok, text) = run();
    }
    assert!(ok, "promtool {args:?}:\n{text}\n{stdin}");
    text
}

/// The families (metric names) a textfile holds.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// The counters of a parsed textfile: every series of a `counter` family.
fn counters(text: &str, m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    m.iter()
        .filter(|(k, _)| names.contains(k.split('{').next().unwrap()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn with_textfile(test: Test, prom: &Path) -> Test {
    test.set(
        "metrics",
        "textfile",
        &format!("{:?}", prom.display().to_string()),
    )
}

/// A strict check of the Prometheus text exposition format: HELP and TYPE
/// before the samples of each family, names and labels well formed, values
/// numbers, no family twice. Returns name{labels} → value.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    use std::collections::{BTreeMap, HashSet};
    let name_ok = |n: &str| {
        let mut c = n.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    };
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut samples = BTreeMap::new();
    let mut typed: HashSet<String> = HashSet::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut done_families: HashSet<String> = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(name_ok(name) && !help.is_empty(), "bad HELP: {line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {name}");
            if let Some(c) = current.replace(name.to_string()) {
                done_families.insert(c);
            }
            assert!(!done_families.contains(name), "family split: {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(name_ok(name), "bad TYPE: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type: {line}"
            );
            assert_eq!(current.as_deref(), Some(name), "TYPE after its HELP");
            assert!(typed.insert(name.to_string()), "TYPE twice: {name}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.trim().is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad metric name: {line}");
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {line}"
        );
        assert!(typed.contains(name), "sample before TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line}"));
            // label="value" pairs, values without raw quotes or newlines.
            let mut rest = inner;
            while !rest.is_empty() {
                let (lname, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(name_ok(lname), "bad label name: {line}");
                let mut end = None;
                let mut esc = false;
                for (i, ch) in after.char_indices() {
                    match (esc, ch) {
                        (true, '\\' | '"' | 'n') => esc = false,
                        (true, _) => panic!("bad escape: {line}"),
                        (false, '\\') => esc = true,
                        (false, '"') => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let end = end.unwrap_or_else(|| panic!("unterminated label: {line}"));
                rest = &after[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "dup: {line}"
        );
    }
    samples
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn metrics_textfile_is_written_after_live_ticks_only() {
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .stuck(8, "review", "Done")
        .set(
            "metrics",
            "textfile",
            &format!("{:?}", prom.display().to_string()),
        )
        .start();

    stack.tick(&["gate", "--dry-run"]).code(0);
    assert!(
        dir_names(metrics.path()).is_empty(),
        "no metrics in dry-run"
    );
    stack.run(&["status"]).code(0);
    assert!(
        dir_names(metrics.path()).is_empty(),
        "only ticks write metrics"
    );

    stack.tick(&["gate"]).code(0);
    assert_eq!(
        dir_names(metrics.path()),
        ["reconcile.prom"],
        "no temp file left"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    let m = parse_prometheus(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing:\n{text}"));
    let last_run = get("reconcile_last_run_timestamp_seconds");
    assert!(last_run > 1.7e9);
    assert_eq!(get("reconcile_last_success_timestamp_seconds"), last_run);
    assert!(get("reconcile_tick_duration_seconds") >= 0.0);
    assert_eq!(get("reconcile_last_exit_code"), 0.0);
    assert_eq!(
        get(r#"reconcile_units_total{outcome="advanced",pass="gate",reason=""}"#),
        1.0
    );
    assert_eq!(
        get(r#"reconcile_units_total{outcome="skipped",pass="gate",reason="terminal_state"}"#),
        1.0
    );
    assert_eq!(get("reconcile_unblocked_total"), 1.0);
    assert_eq!(get("reconcile_deduped_total"), 0.0);
    assert_eq!(get("reconcile_notifications_pending"), 0.0);
    assert!(get(r#"reconcile_requests_total{peer="orchestrator"}"#) >= 2.0);
    assert_eq!(get(r#"reconcile_requests_total{peer="telegram"}"#), 1.0);

    // A failing tick keeps the previous success time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stack.sim.update(|w| {
        w.scenario
            .set_always_fault(Route::OrchTasks, Some(Fault::status(503)))
    });
    stack.tick(&["gate"]).code(69);
    let m = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert!(m["reconcile_last_run_timestamp_seconds"] > last_run);
    assert_eq!(m["reconcile_last_success_timestamp_seconds"], last_run);
    assert_eq!(dir_names(metrics.path()), ["reconcile.prom"]);
}

#[test]
fn a_metrics_write_failure_is_logged_and_the_exit_code_stands() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set(
            "metrics",
            "textfile",
            "\"/nonexistent-reconcile-dir/x.prom\"",
        )
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0).stderr_has("metrics textfile");
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn counters_never_go_down_across_three_ticks_and_survive_restarts() {
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = with_textfile(
        Test::new()
            .stuck(7, "testing", "In Progress")
            .issue_with_task(8, "Approved", "review"),
        &prom,
    )
    .start();
    let mut seen: Vec<BTreeMap<String, f64>> = Vec::new();
    for (n, expect) in [(1, 0), (2, 69), (3, 0)] {
        let failing = n == 2;
        stack.sim.update(|w| {
            w.scenario
                .set_always_fault(Route::OrchTasks, failing.then(|| Fault::status(503)))
        });
        stack.tick(&["all"]).code(expect);
        let text = std::fs::read_to_string(&prom).unwrap();
        let m = parse_prometheus(&text);
        assert_eq!(m["reconcile_last_exit_code"], f64::from(expect), "{text}");
        let now = counters(&text, &m);
        if let Some(before) = seen.last() {
            for (series, v) in before {
                let after = now
                    .get(series)
                    .unwrap_or_else(|| panic!("tick {n}: {series} disappeared:\n{text}"));
                assert!(after >= v, "tick {n}: {series} went down: {v} → {after}");
            }
        }
        seen.push(now);
        // Each tick is a new process, and the file is gone before the next:
        // what it writes can only come from the sidecar.
        std::fs::remove_file(&prom).unwrap();
    }
    let ticks = |i: usize, code: &str| {
        seen[i]
            .get(&format!(r#"reconcile_ticks_total{{exit_code="{code}"}}"#))
            .copied()
    };
    assert_eq!(
        [ticks(0, "0"), ticks(1, "0"), ticks(2, "0")],
        [Some(1.0), Some(1.0), Some(2.0)]
    );
    assert_eq!(
        [ticks(0, "69"), ticks(1, "69"), ticks(2, "69")],
        [None, Some(1.0), Some(1.0)]
    );
    let orch = |i: usize| seen[i][r#"reconcile_requests_total{peer="orchestrator"}"#];
    assert!(orch(0) < orch(1) && orch(1) < orch(2), "{seen:?}");
    // The advance of task 7 happened once; the counter keeps it.
    let advanced = r#"reconcile_units_total{outcome="advanced",pass="gate",reason=""}"#;
    assert_eq!(
        [seen[0][advanced], seen[1][advanced], seen[2][advanced]],
        [1.0, 1.0, 1.0]
    );
    assert_eq!(
        seen[2]["reconcile_unblocked_total"],
        seen[0]["reconcile_unblocked_total"]
    );
}

#[test]
fn a_sidecar_error_reports_exit_74_and_keeps_the_counters() {
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = with_textfile(Test::new().stuck(7, "testing", "In Progress"), &prom).start();
    stack.tick(&["gate"]).code(0);
    let good_text = std::fs::read_to_string(&prom).unwrap();
    let good = parse_prometheus(&good_text);

    let state = stack.state_path();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", state.display()));
    }
    std::fs::write(&state, b"not a database at all").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    stack.run(&["gate"]).code(74).stdout_empty();

    let text = std::fs::read_to_string(&prom).unwrap();
    let m = parse_prometheus(&text);
    assert_eq!(m["reconcile_last_exit_code"], 74.0, "{text}");
    assert!(
        m["reconcile_last_run_timestamp_seconds"] > good["reconcile_last_run_timestamp_seconds"]
    );
    assert_eq!(
        m["reconcile_last_success_timestamp_seconds"],
        good["reconcile_last_success_timestamp_seconds"]
    );
    assert_eq!(counters(&text, &m), counters(&good_text, &good), "{text}");
    assert!(
        !m.keys().any(|k| k.starts_with("reconcile_last_tick_")),
        "no units this tick: {text}"
    );
    if let Some(p) = tool("promtool", "promtool check metrics after exit 74") {
        promtool(&p, &["check", "metrics"], metrics.path(), &text);
    }
}

/// Two `all` ticks that fill every family: units of both passes, skips,
/// messages Telegram refuses for good (dropped), Plane projects, then a
/// success. The textfile, and how many messages the first tick dropped.
fn full_textfile() -> (String, u64) {
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = with_textfile(
        Test::new()
            .stuck(7, "testing", "In Progress")
            .stuck(9, "review", "Done")
            .issue_with_task(8, "Approved", "review"),
        &prom,
    )
    .start();
    stack.sim.update(|w| {
        w.scenario
            .set_always_fault(Route::TelegramSend, Some(Fault::status(400)))
    });
    let first = stack.tick(&["all"]);
    first.code(1);
    let dropped = first.json()["notifications"]["dropped"].as_u64().unwrap();
    stack
        .sim
        .update(|w| w.scenario.set_always_fault(Route::TelegramSend, None));
    stack.tick(&["all"]).code(0);
    (std::fs::read_to_string(&prom).unwrap(), dropped)
}

#[test]
fn promtool_accepts_the_textfile_of_a_tick() {
    let (text, dropped) = full_textfile();
    let m = parse_prometheus(&text);
    assert!(dropped > 0);
    assert_eq!(
        m["reconcile_notifications_dropped_total"], dropped as f64,
        "{text}"
    );
    assert_eq!(m[r#"reconcile_ticks_total{exit_code="1"}"#], 1.0, "{text}");
    assert_eq!(m["reconcile_plane_projects_unread"], 0.0, "{text}");
    assert!(
        m["reconcile_plane_oldest_sync_age_seconds"] < 60.0,
        "{text}"
    );
    let Some(p) = tool("promtool", "promtool check metrics") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // promtool prints every complaint and exits 0 only when there is none.
    let out = promtool(&p, &["check", "metrics"], dir.path(), &text);
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn the_plane_gauges_count_unread_projects_and_age_the_oldest_sync() {
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = with_textfile(Test::new().issue_with_task(8, "Approved", "review"), &prom).start();
    stack.tick(&["plane"]).code(0);
    let m = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(m["reconcile_plane_projects_unread"], 0.0);
    assert!(m["reconcile_plane_oldest_sync_age_seconds"] < 60.0, "{m:?}");

    // The last sync moved years back, then the listing fails: the project
    // is unread and its sync as old as it is.
    let db = rusqlite::Connection::open(stack.state_path()).unwrap();
    let synced: String = db
        .query_row("SELECT last_started_at FROM mirror_sync", [], |r| r.get(0))
        .unwrap();
    let old = format!("2020{}", &synced[4..]);
    db.execute("UPDATE mirror_sync SET last_started_at = ?1", [&old])
        .unwrap();
    drop(db);
    stack.sim.update(|w| {
        w.scenario
            .set_always_fault(Route::PlaneItems, Some(Fault::status(503)))
    });
    stack.tick(&["plane"]);
    let text = std::fs::read_to_string(&prom).unwrap();
    let m = parse_prometheus(&text);
    assert_eq!(m["reconcile_plane_projects_unread"], 1.0, "{text}");
    assert!(
        m["reconcile_plane_oldest_sync_age_seconds"] > 365.0 * 86_400.0,
        "{text}"
    );
    // A tick that needed no Plane project (the gate pass, its one task's
    // gate red) left none unread and has no sync to age.
    stack
        .sim
        .update(|w| w.scenario.set_always_fault(Route::PlaneItems, None));
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.json()["requests"]["plane"], 0);
    let m = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(m["reconcile_plane_projects_unread"], 0.0, "{m:?}");
    assert!(
        !m.contains_key("reconcile_plane_oldest_sync_age_seconds"),
        "{m:?}"
    );
}

/// Every `reconcile_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("reconcile_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // A word that only ends in reconcile_ (e.g. "my_reconcile_x") is not ours.
        let word_start = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if word_start {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_and_the_alert_rules_use_only_series_the_tool_writes() {
    let written = families(&full_textfile().0);
    let listed: BTreeSet<String> = reconcile::harness::METRIC_SERIES
        .iter()
        .map(|(name, _, _)| name.split('{').next().unwrap().to_string())
        .collect();
    assert_eq!(
        written, listed,
        "a full tick writes every series the docs list"
    );
    let dashboard_text =
        std::fs::read_to_string(root().join("packaging/grafana/reconcile-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a $datasource variable"
    );
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for t in panel["targets"].as_array().unwrap() {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let used = metric_names(&exprs.join("\n"));
    assert!(used.len() >= 12, "{used:?}");
    let unknown: Vec<_> = used.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard reads series nothing writes: {unknown:?}"
    );

    let rules_path = root().join("packaging/prometheus/reconcile-alerts.yml");
    let rules: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&rules_path).unwrap()).unwrap();
    let mut alert_exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            alert_exprs.push(rule["expr"].as_str().unwrap().to_string());
            assert!(rule["for"].as_str().is_some(), "{:?}", rule["alert"]);
            assert!(
                ["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap()),
                "{:?}",
                rule["alert"]
            );
        }
    }
    let used = metric_names(&alert_exprs.join("\n"));
    let unknown: Vec<_> = used.difference(&written).collect();
    assert!(
        unknown.is_empty(),
        "an alert reads series nothing writes: {unknown:?}"
    );

    let Some(p) = tool("promtool", "promtool on the rules and the dashboard") else {
        return;
    };
    let prom_dir = root().join("packaging/prometheus");
    promtool(
        &p,
        &["check", "rules", "reconcile-alerts.yml"],
        &prom_dir,
        "",
    );
    promtool(
        &p,
        &["test", "rules", "reconcile-alerts.test.yml"],
        &prom_dir,
        "",
    );
    // The dashboard's queries, with Grafana's variables filled in, must be
    // PromQL that Prometheus parses: checked as recording rules.
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        yaml.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yml"), yaml).unwrap();
    promtool(&p, &["check", "rules", "dashboard.yml"], dir.path(), "");
}

#[test]
fn the_readme_lists_every_series_with_its_type() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (name, kind, _) in reconcile::harness::METRIC_SERIES {
        assert!(
            readme.contains(&format!("| `{name}` | {kind} |")),
            "README.md's Metrics table lacks `{name}` ({kind})"
        );
    }
}

/// Stops the child (node_exporter) when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /metrics` from 127.0.0.1:`port`, the body; `None` until it listens.
fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

#[test]
fn node_exporter_serves_the_series_of_a_tick() {
    let Some(exporter) = tool("prometheus-node-exporter", "the node_exporter scrape") else {
        return;
    };
    let metrics = tempfile::tempdir().unwrap();
    let prom = metrics.path().join("reconcile.prom");
    let stack = with_textfile(Test::new().stuck(7, "testing", "In Progress"), &prom).start();
    stack.tick(&["all"]).code(0);
    let file = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());

    // A port the OS picked: free a moment ago; node_exporter takes it next.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _exporter = Child(
        Command::new(exporter)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                metrics.path().display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter starts"),
    );
    // A generous bound for a loaded machine: it listens within milliseconds.
    let started = std::time::Instant::now();
    let body = loop {
        if let Some(body) = scrape(port) {
            break body;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "node_exporter never answered on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let served: BTreeMap<String, f64> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect();
    assert_eq!(
        served.get("node_textfile_scrape_error"),
        Some(&0.0),
        "{body}"
    );
    for (series, value) in &file {
        // node_exporter writes a float's exponent form; the values are equal.
        assert_eq!(
            served.get(series),
            Some(value),
            "{series} not served as in the file:\n{body}"
        );
    }
    assert_eq!(
        served[r#"reconcile_units_total{outcome="advanced",pass="gate",reason=""}"#],
        1.0
    );
}
