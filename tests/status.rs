//! `status` end to end (docs/report.md): the original reconciler's snapshot from the
//! sidecar alone; the config, when there is one, only adds enabled /
//! plane_enabled / interval.

mod support;

use serde_json::Value;
use support::*;

const NO_CONFIG: (&str, &str) = ("RECONCILE_CONFIG", "/nonexistent/reconcile.toml");

/// `reconcile --state PATH status ARGS…` with no config file anywhere.
fn status_without_config(stack: &Stack, args: &[&str]) -> Run {
    let state = stack.state_path();
    let mut all = vec!["--state", state.to_str().unwrap(), "status"];
    all.extend(args);
    stack.run_bare(&all, &[NO_CONFIG])
}

fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() >= 20 && s.ends_with('Z') && s.contains('T'))
}

#[test]
fn status_needs_only_the_sidecar() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    let run = status_without_config(&stack, &["-o", "json"]);
    run.code(0);
    assert!(
        run.stderr.is_empty(),
        "no config is not worth a warning:\n{run}"
    );
    let status = run.json();
    assert_eq!(status["unblocked_total"], 1, "{run}");
    assert_eq!(status["last_unblocked"], "ET-7");
    assert_eq!(status["ticks_total"], 1);
    assert_eq!(status["enabled"], Value::Null);
    assert_eq!(status["plane_enabled"], Value::Null);
    assert_eq!(status["interval"], Value::Null);
    assert_eq!(status["state_path"], stack.state_path().to_str().unwrap());
}

#[test]
fn status_with_a_config_shows_its_switches() {
    let stack = Test::new()
        .set("reconcile", "plane_enabled", "false")
        .set("reconcile", "interval_s", "60")
        .start();
    let status = stack.status();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["plane_enabled"], false);
    assert_eq!(status["interval"], 60);
}

#[test]
fn status_reads_no_secret() {
    // A token file that cannot be read stops a tick (78) but not status.
    let stack = Test::new()
        .set("orchestrator", "token_file", "\"/nonexistent/token\"")
        .set("reconcile", "interval_s", "60")
        .start();
    stack.run(&["gate"]).code(78);
    let status = stack.status();
    assert_eq!(status["interval"], 60);
}

#[test]
fn two_live_ticks_are_counted_with_their_times() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    stack.tick(&["gate"]).code(0);
    let status = stack.status();
    assert_eq!(status["ticks_total"], 2);
    assert!(is_timestamp(&status["last_run_ts"]), "{status}");
    assert!(is_timestamp(&status["last_success_ts"]), "{status}");
    assert_eq!(status["errors_total"], 0);
    assert_eq!(status["unblocked_total"], 1);
}

#[test]
fn a_failed_tick_sets_the_last_run_but_not_the_last_success() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::OrchAdvance, Fault::status(500))
        .start();
    stack.tick(&["gate"]).code(1);
    let status = stack.status();
    assert_eq!(status["ticks_total"], 1);
    assert!(is_timestamp(&status["last_run_ts"]), "{status}");
    assert_eq!(status["last_success_ts"], Value::Null);
    assert_eq!(status["errors_total"], 1);
}

#[test]
fn dry_runs_are_not_counted_as_ticks() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    stack.tick(&["gate", "-n"]).code(0);
    assert_eq!(stack.status()["ticks_total"], 1);
}

#[test]
fn status_as_text_is_one_line_per_counter() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    stack.tick(&["gate"]).code(0);
    let run = stack.run(&["status"]);
    run.code(0)
        .stdout_has("ticks_total: 2\n")
        .stdout_has("unblocked_total: 1\n")
        .stdout_has("last_unblocked: ET-7\n")
        .stdout_has("enabled: true\n");
    let run = status_without_config(&stack, &[]);
    run.code(0)
        .stdout_has("ticks_total: 2\n")
        .stdout_has("enabled: -\n")
        .stdout_has("interval: -\n");
}

#[test]
fn status_on_a_missing_sidecar_prints_zeros_and_creates_nothing() {
    let stack = Test::new().start();
    let files: Vec<_> = std::fs::read_dir(stack.dir.path()).unwrap().collect();
    for run in [
        stack.run(&["status", "-o", "json"]),
        status_without_config(&stack, &["-o", "json"]),
    ] {
        run.code(0);
        let status = run.json();
        for key in [
            "ticks_total",
            "unblocked_total",
            "deduped_total",
            "skipped_terminal_total",
            "errors_total",
            "notifications_pending",
            "notifications_dropped_total",
        ] {
            assert_eq!(status[key], 0, "{key}: {run}");
        }
        assert_eq!(status["last_run_ts"], Value::Null);
        assert_eq!(status["last_success_ts"], Value::Null);
        assert_eq!(status["last_unblocked"], Value::Null);
    }
    assert!(!stack.state_path().exists());
    assert_eq!(
        std::fs::read_dir(stack.dir.path()).unwrap().count(),
        files.len(),
        "status created a file"
    );
}

#[test]
fn status_without_config_reads_the_switches_as_a_tick_does() {
    let stack = Test::new().start();
    let state = stack.state_path();
    let run = stack.run_bare(
        &["--state", state.to_str().unwrap(), "-o", "json", "status"],
        &[
            NO_CONFIG,
            ("ORCH_RECONCILE_INTERVAL_S", "60.5"),
            ("ORCH_RECONCILE_ENABLED", "off"),
        ],
    );
    run.code(0);
    let status = run.json();
    // A tick rounds a fractional interval up; status agrees.
    assert_eq!(status["interval"], 61, "{run}");
    assert_eq!(status["enabled"], false, "{run}");
    assert_eq!(status["plane_enabled"], Value::Null, "{run}");
}
