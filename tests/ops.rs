//! Operations (issue #6): man page, completions, history, outbox, forget,
//! the metrics textfile and `check`, each against the real binary.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_PROXY", "127.0.0.1");
    cmd
}

fn out(cmd: &mut Command) -> Run {
    let o = cmd.output().expect("the binary runs");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

// -- man page and completions ------------------------------------------------

#[test]
fn committed_man_page_is_what_reconcile_man_generates() {
    let run = out(bin().arg("man"));
    run.code(0);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/reconcile.1"))
            .expect("man/reconcile.1 is committed");
    assert!(
        committed == run.stdout,
        "man/reconcile.1 is stale: the clap definitions changed.\n\
         Regenerate it with:  cargo run --quiet -- man > man/reconcile.1"
    );
    for section in [
        ".SH SYNOPSIS",
        ".SH COMMANDS",
        ".SH EXIT STATUS",
        ".SH ENVIRONMENT",
    ] {
        assert!(run.stdout.contains(section), "{section}");
    }
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = out(bin().args(["completions", shell]));
        run.code(0);
        assert!(run.stdout.len() > 200, "{shell}: too short:\n{run}");
        for sub in [
            "gate",
            "history",
            "check",
            "outbox",
            "forget",
            "completions",
        ] {
            assert!(run.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    out(bin().args(["completions", "tcsh"])).code(2);
}

#[test]
fn hand_written_config_page_names_every_key() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/reconcile.toml.5"))
            .unwrap();
    let extra = [
        "ORCH_RECONCILE_GRACE_OVERRIDES_JSON",
        "CREDENTIALS_DIRECTORY",
        "RECONCILE_TELEGRAM_BOT_TOKEN",
    ];
    // A key is documented where it stands in bold, as a term of its own.
    for key in CONFIG_KEYS {
        let term = format!("\\fB{key}\\fR");
        assert!(page.contains(&term), "reconcile.toml.5 lacks {term}");
    }
    for name in extra {
        assert!(page.contains(name), "reconcile.toml.5 lacks {name}");
    }
}

// -- history -----------------------------------------------------------------

#[test]
fn history_shows_three_live_ticks_and_their_unblocks() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .stuck(8, "review", "In Progress")
        .start();
    stack.tick(&["gate"]).code(0);
    stack.tick(&["gate"]).code(0);
    stack.tick(&["all"]).code(0);

    let run = stack.run(&["history", "-o", "json"]);
    run.code(0);
    let v = run.json();
    let ticks = v["ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 3, "{run}");
    assert_eq!(ticks[0]["command"], "all", "newest first");
    assert_eq!(ticks[2]["counts"]["advanced"], 2);
    assert_eq!(ticks[2]["exit_code"], 0);
    let unblocks = v["unblocks"].as_array().unwrap();
    assert_eq!(unblocks.len(), 2, "{run}");
    let mut items: Vec<_> = unblocks
        .iter()
        .map(|u| {
            format!(
                "{} {} {} {}",
                u["pass"].as_str().unwrap(),
                u["work_item_id"].as_str().unwrap(),
                u["stage"].as_str().unwrap(),
                u["notification"].as_str().unwrap()
            )
        })
        .collect();
    items.sort();
    assert_eq!(items, ["gate ET-7 testing sent", "gate ET-8 review sent"]);

    let run = stack.run(&["history"]);
    run.code(0)
        .stdout_has("unblocks (2, newest first)")
        .stdout_has("ticks (3, newest first)")
        .stdout_has("ET-7")
        .stdout_has("advanced=2");

    let run = stack.run(&["history", "--limit", "1", "-o", "json"]);
    assert_eq!(run.json()["ticks"].as_array().unwrap().len(), 1);
    let run = stack.run(&["history", "--since", "2h", "-o", "json"]);
    assert_eq!(run.json()["ticks"].as_array().unwrap().len(), 3);
    stack.run(&["history", "--since", "soon"]).code(2);
}

#[test]
fn history_without_a_sidecar_is_empty_and_creates_nothing() {
    let stack = Test::new().start();
    let run = stack.run(&["history", "-o", "json"]);
    run.code(0);
    assert_eq!(run.json()["ticks"], serde_json::json!([]));
    assert_eq!(run.json()["unblocks"], serde_json::json!([]));
    assert!(!stack.state_path().exists());
}

// -- outbox and forget -------------------------------------------------------

#[test]
fn a_queued_message_is_listed_and_dropped_and_never_sent() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::TelegramSend, Fault::status(502))
        .start();
    stack.tick(&["gate"]).code(1);

    let run = stack.run(&["outbox", "list", "-o", "json"]);
    run.code(0);
    let msgs = run.json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 1, "{run}");
    assert_eq!(msgs[0]["status"], "queued");
    assert!(msgs[0]["text"].as_str().unwrap().contains("ET-7"));
    let id = msgs[0]["id"].as_i64().unwrap().to_string();
    stack
        .run(&["outbox", "list"])
        .code(0)
        .stdout_has("1 queued")
        .stdout_has("ET-7");

    // Dry-run changes nothing.
    stack
        .run(&["outbox", "drop", &id, "--dry-run"])
        .code(0)
        .stdout_has("would drop");
    assert_eq!(stack.status()["notifications_pending"], 1);

    stack
        .run(&["outbox", "drop", &id])
        .code(0)
        .stdout_has(&format!("dropped message {id}"));
    assert_eq!(stack.status()["notifications_pending"], 0);
    stack
        .run(&["outbox", "drop", &id])
        .code(1)
        .stderr_has("no queued message");

    let before = stack.count(Route::TelegramSend);
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.count(Route::TelegramSend), before, "nothing sent");
    assert!(stack.messages().is_empty());
    let run = stack.run(&["outbox", "list", "-o", "json"]);
    assert_eq!(run.json()["messages"][0]["status"], "dropped");
}

#[test]
fn forget_makes_the_next_identical_unblock_announced_again() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let stuck_again = |stack: &Stack| {
        stack.sim.update(|w| {
            let t = w.task_mut(7).unwrap();
            t.stage = "testing".into();
            t.gate_passed = true;
            t.updated_ago_s = 2 * HOUR;
        })
    };
    stack.tick(&["gate"]).code(0);
    stuck_again(&stack);
    let run = stack.tick(&["gate"]);
    assert_eq!(run.gate_unit(7)["notification"], "deduped");
    assert_eq!(stack.messages().len(), 1);

    stack
        .run(&["forget", "ET-7", "-n"])
        .code(0)
        .stdout_has("would forget");
    stack
        .run(&["forget", "ET-7"])
        .code(0)
        .stdout_has("forgotten");
    stack
        .run(&["forget", "ET-7"])
        .code(1)
        .stderr_has("no de-dup key");

    stuck_again(&stack);
    let run = stack.tick(&["gate"]);
    assert_eq!(run.gate_unit(7)["notification"], "sent", "{run}");
    assert_eq!(stack.messages().len(), 2);
}

#[test]
fn writing_commands_respect_a_running_tick_s_lock() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    let _held = reconcile::store::TickLock::acquire(&stack.state_path(), std::time::Duration::ZERO)
        .unwrap();
    let run = stack.run(&["forget", "ET-7"]);
    run.code(75).stdout_empty();
    stack.run(&["outbox", "drop", "1"]).code(75);
    // Reads need no lock.
    stack.run(&["outbox", "list"]).code(0);
    stack.run(&["history"]).code(0);
}

// -- metrics -------------------------------------------------------------------

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
    assert_eq!(
        get(r#"reconcile_units_total{pass="gate",outcome="advanced",reason=""}"#),
        1.0
    );
    assert_eq!(
        get(r#"reconcile_units_total{pass="gate",outcome="skipped",reason="terminal_state"}"#),
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

// -- check ---------------------------------------------------------------------

#[test]
fn check_against_the_simulator_passes_and_prints_the_state_table() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .task(reconcile::sim::SimTask::new(9, "testing").repo("other/repo"))
        .task(reconcile::sim::SimTask::new(10, "review").repo(REPO))
        .start();
    let run = stack.run(&["check"]);
    run.code(0)
        .stdout_has("ok    orchestrator")
        .stdout_has("ok    plane")
        .stdout_has("ok    telegram")
        .stdout_has(&format!("project {REPO} ({})", pid()))
        .stdout_has("in_progress")
        .stdout_has("check: all");
    assert!(
        run.stdout.contains("task 9") && run.stdout.contains("repo not configured"),
        "{run}"
    );
    assert!(
        run.stdout.contains("task 10") && run.stdout.contains("no plane_issue_id"),
        "{run}"
    );
    assert!(!run.stdout.contains("task 7 "), "{run}");
    assert_eq!(stack.count(Route::TelegramSend), 0, "check sends nothing");
    assert_eq!(stack.count(Route::TelegramGetMe), 1);
    assert!(
        stack.sim.requests().iter().all(|r| r.method == "GET"),
        "read-only"
    );
    assert!(!stack.state_path().exists(), "the sidecar is not created");

    let v = stack.run(&["check", "-o", "json"]).json();
    assert_eq!(v["ok"], true);
    let states = v["projects"][0]["states"].as_array().unwrap();
    assert_eq!(states.len(), 18);
    let key = |k: &str| states.iter().find(|s| s["key"] == k).unwrap().clone();
    assert_eq!(key("in_progress")["source"], "folded");
}

#[test]
fn check_with_a_wrong_plane_key_names_plane_and_the_project() {
    let stack = Test::new().start();
    std::fs::write(stack.dir.path().join("plane.key"), "wrong-key").unwrap();
    let run = stack.run(&["check"]);
    run.code(1)
        .stdout_has("FAIL  plane")
        .stdout_has(REPO)
        .stdout_has(&pid());
    assert!(
        run.stdout.contains("401") || run.stdout.contains("403"),
        "{run}"
    );
    assert!(!run.stdout.contains("wrong-key") && !run.stderr.contains("wrong-key"));
}

#[test]
fn check_offline_contacts_nothing_and_reads_no_secret() {
    let stack = Test::new().start();
    // A secret file that cannot be read: offline does not care.
    std::fs::remove_file(stack.dir.path().join("plane.key")).unwrap();
    let run = stack.run(&["check", "--offline"]);
    run.code(0)
        .stdout_has("ok    config")
        .stdout_has("ok    sidecar");
    assert!(stack.sim.requests().is_empty(), "no peer contacted");
    // Online, the missing key file is a configuration error.
    stack.run(&["check"]).code(78);
}

#[test]
fn check_of_an_invalid_config_is_78() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[reconcile]\nenabeld = true\n").unwrap();
    let run = out(bin().args(["check", "--offline", "--config"]).arg(&cfg));
    run.code(78).stderr_has("enabeld").stdout_empty();
}
