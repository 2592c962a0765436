//! Operations (issue #6): man page, completions, history, outbox, forget
//! and `check`, each against the real binary (the metrics textfile:
//! tests/metrics.rs).

mod support;

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
    let _held =
        reconcile::harness::TickLock::acquire(&stack.state_path(), std::time::Duration::ZERO)
            .unwrap();
    let run = stack.run(&["forget", "ET-7"]);
    run.code(75).stdout_empty();
    stack.run(&["outbox", "drop", "1"]).code(75);
    // Reads need no lock.
    stack.run(&["outbox", "list"]).code(0);
    stack.run(&["history"]).code(0);
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
    // Plane says 403 for a bad key and for a hidden project: the body
    // tells them apart, and check says which it is and what to fix, once.
    run.stdout_has("HTTP 403: API key rejected for every project")
        .stdout_has("api_key_file");
    assert_eq!(
        run.stdout.matches("invalid, inactive or expired").count(),
        1,
        "{run}"
    );
    assert!(!run.stdout.contains("not visible"), "{run}");
    assert!(!run.stdout.contains("wrong-key") && !run.stderr.contains("wrong-key"));
}

#[test]
fn check_names_a_project_the_key_cannot_see() {
    let hidden = reconcile::sim::sim_uuid(&["project", "hidden"]);
    let stack = Test::new()
        .append(&format!(
            "[[projects]]\nrepo = \"acme/hidden\"\nplane_project_id = {hidden:?}\n"
        ))
        .start();
    let run = stack.run(&["check"]);
    run.code(1)
        .stdout_has("FAIL  plane")
        .stdout_has("project acme/hidden: HTTP 403: project not visible to this key")
        .stdout_has("is a member of the project");
    assert!(!run.stdout.contains("API key rejected"), "{run}");
    // The readable project's states are still mapped.
    run.stdout_has(&format!("project {REPO} ({})\n", pid()));
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
