//! Hostile peers and hosts (issue "Reliability II"): each test holds one
//! promise against a peer or a host that misbehaves on purpose. The table
//! `HOSTILE` below names each condition, its promise and the test; it is
//! rendered into docs/reliability.md ("Hostile conditions"), which must
//! match (`RECONCILE_BLESS=1 cargo test --test hostile` rewrites it).

mod support;

use std::time::{Duration, Instant};

use reconcile::sim::{SimProject, SimTask, sim_uuid};
use support::*;

/// Condition, promise, the test below that holds it.
const HOSTILE: &[(&str, &str, &str)] = &[
    (
        "a Plane listing that never ends (a new cursor on every page)",
        "the listing stops at `[plane] max_pages` with that project's error; the other projects' tasks still advance",
        "endless_pagination_stops_at_max_pages_and_the_healthy_project_advances",
    ),
    (
        "a Plane listing that never ends, under `--deadline 5`",
        "the tick exits 75 within the deadline plus 1 s; the healthy project's task advances and is announced; the lock is released",
        "endless_pagination_under_a_deadline_exits_75_in_time_and_the_healthy_project_acts",
    ),
    (
        "a Plane project whose listing never ends and answers each page 1 s late, under `--deadline 6` in `all`",
        "the other project's advance and replay are sent while its first page is still awaited (reads run in the background; each unit waits only for its own project); it is read once for both passes, its units are deferred, exit 75",
        "a_slow_endless_project_holds_only_its_own_units",
    ),
    (
        "the same project configured first, under `plane --deadline 6`",
        "the next project's replay is sent while its first page is still awaited; the report keeps the configured order",
        "a_slow_endless_project_configured_first_holds_only_its_own_replays",
    ),
    (
        "SIGTERM while an advance is in flight",
        "the request finishes and is recorded, no new action starts, the message stays queued, exit 75",
        "sigterm_mid_tick_finishes_the_request_in_flight_and_exits_75",
    ),
    (
        "a second SIGTERM",
        "the process ends at once; the sidecar stays consistent",
        "a_second_signal_ends_the_tick_at_once",
    ),
    (
        "a kill -9 while the advance POST is in flight (the orchestrator advanced, the answer never came)",
        "the intent committed before the request makes the next tick find the stage moved: announced exactly once",
        "kill.rs: killed_while_the_advance_post_is_in_flight_announces_once",
    ),
    (
        "a kill -9 while the webhook replay is in flight",
        "the next tick re-reads the issue's task and announces the unblock exactly once",
        "kill.rs: killed_while_the_replay_is_in_flight_announces_once",
    ),
    (
        "the Plane issue listing fails for every project (the states read fine)",
        "the error says the Plane read failed and each project's error names the listing, never that the states were unreachable",
        "a_failed_listing_is_not_called_unreachable_states",
    ),
    (
        "a task id listed twice by the orchestrator",
        "one unit: the first entry wins, advanced and announced once, one warning naming the id",
        "a_task_listed_twice_is_advanced_and_announced_once",
    ),
    (
        "a slow Telegram (every call hangs) with 5 messages queued",
        "each call is clipped to the time left: the tick ends within the deadline plus 1 s; unsent messages stay queued",
        "a_slow_telegram_cannot_hold_the_tick_past_its_deadline",
    ),
    (
        "control characters (newline, ESC) in stages, ids and details",
        "escaped (`\\n`, `\\x1b`) in the text report and the log lines: one line per unit, no forged line",
        "control_characters_from_peers_are_escaped_in_text_and_logs",
    ),
    (
        "a peer echoing a secret percent-encoded or JSON-escaped",
        "redacted in every form: stderr, report, `outbox list`, the sidecar",
        "a_peer_echoing_the_token_encoded_never_leaks_it",
    ),
    (
        "`user:password@` in a peer URL",
        "redacted everywhere: stderr, report, `outbox list`",
        "url_userinfo_is_redacted_everywhere",
    ),
    (
        "the report written to a closed pipe or a full disk after the tick acted",
        "no panic, the exit code is the tick's",
        "a_closed_pipe_or_a_full_disk_never_panics_nor_changes_the_exit_code",
    ),
    (
        "a symlink planted at the metrics temp file's old predictable name",
        "never followed: the temp name is random and created exclusively",
        "a_symlink_at_the_old_metrics_temp_name_is_not_followed",
    ),
    (
        "the intent of an advance or a replay cannot be written (the sidecar refuses the insert)",
        "exit 74 naming the sidecar; the advance POST and the webhook replay are never sent",
        "an_action_whose_intent_cannot_be_written_is_not_sent",
    ),
    (
        "megabytes in a Plane issue's name or a state's name, an issue id or state over 256 bytes, a task's work item id over 256 bytes",
        "nothing over a few KiB reaches the sidecar: names cut to 4 KiB at a character boundary, an over-long id or state is a bad entry that fails only its unit; the other issues and tasks advance, no panic",
        "huge_peer_strings_never_reach_the_sidecar_and_fail_only_their_unit",
    ),
    (
        "SIGTERM while a Plane read hangs (a page answered only after Plane's timeout) or waits out a 429's Retry-After",
        "the tick exits 75 at once, not when the read would end; the read is not stored, no action after the signal",
        "background.rs: a_stop_signal_does_not_wait_for_a_plane_read_that_hangs",
    ),
    (
        "a project whose listing hangs past the deadline, its sync the oldest (so read first, alone until Plane answers), under `gate --deadline 6`",
        "the other projects' reads start after one second: their tasks advance; its task is deferred, exit 75 within the deadline plus 1 s",
        "background.rs: a_first_read_plane_never_answers_does_not_hold_the_other_projects",
    ),
    (
        "SIGTERM while a Blocked PATCH waits out a 429's Retry-After",
        "the wait ends at once: exit 75, the PATCH not retried, nothing else sent",
        "background.rs: a_stop_signal_ends_a_429_wait_before_a_patch_at_once",
    ),
    (
        "SIGTERM while the cycle backstop waits for its projects' reads",
        "the backstop is deferred whole (no alert without its Blocked moves, no error): exit 75; the next tick runs it",
        "background.rs: a_stop_signal_while_the_cycle_backstop_awaits_its_reads_defers_it_whole",
    ),
    (
        "SIGTERM while `--wait-lock 60` waits for another tick's lock",
        "the wait ends at once: exit 75 saying so, no request sent, the lock not taken",
        "a_signal_ends_the_wait_for_the_lock_at_once",
    ),
    (
        "SIGTERM while `forget --wait-lock 60` (or `outbox drop`) waits for a tick's lock",
        "the wait ends at once: exit 75, nothing forgotten or dropped",
        "a_signal_ends_forget_s_wait_for_the_lock_at_once",
    ),
];

/// Project BAD (repo acme/bad), whose issue listing never ends, with one
/// stuck task; project ET with stuck task 1.
fn endless() -> Test {
    let mut bad = SimProject::new(&sim_uuid(&["project", "BAD"]), "BAD", "acme/bad");
    let issue = bad.add_issue(50, "In Progress", 2 * HOUR);
    bad.endless_pages = true;
    Test::new()
        // BAD's task first: it must not hold ET's.
        .task(
            SimTask::new(50, "testing")
                .repo("acme/bad")
                .green()
                .issue(&issue),
        )
        .stuck(1, "testing", "In Progress")
        .scenario(|s| {
            s.projects.push(bad);
            // Plenty of budget: the listing, not the rate limit, is the subject.
            s.rate_limit.remaining = i64::MAX / 2;
        })
}

/// Project BAD's entry in the Plane pass's report.
fn bad_entry(run: &Run) -> serde_json::Value {
    let projects = run.json()["plane"]["projects"].clone();
    projects
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["repo"] == "acme/bad")
        .cloned()
        .unwrap()
}

#[test]
fn endless_pagination_stops_at_max_pages_and_the_healthy_project_advances() {
    let stack = endless().set("plane", "max_pages", "5").start();
    let run = stack.tick(&["all"]);
    run.code(1);
    assert_eq!(run.gate_outcome(1), "advanced");
    assert_eq!(run.gate_outcome(50), "skipped/plane_unresolved");
    let bad = bad_entry(&run);
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(error.contains("max_pages"), "{run}");
    // One listing per project and pass, five pages each at most.
    assert!(
        stack.sim.count(Route::PlaneItems) <= 5 + 1,
        "{}",
        stack.sim.count(Route::PlaneItems)
    );
}

#[test]
fn endless_pagination_under_a_deadline_exits_75_in_time_and_the_healthy_project_acts() {
    let stack = endless().set("plane", "max_pages", "100000").start();
    let started = Instant::now();
    let run = stack.tick(&["gate", "--deadline", "5"]);
    let took = started.elapsed();
    run.code(75);
    assert!(took < Duration::from_secs(6), "took {took:?}:\n{run}");
    assert_eq!(run.gate_outcome(1), "advanced");
    assert_eq!(run.gate_outcome(50), "deferred/deadline");
    assert_eq!(stack.stage(1), "review");
    assert_eq!(stack.messages().len(), 1, "announced in the reserve");
    // The lock is free: the next tick runs at once.
    stack.run(&["outbox", "list", "--wait-lock", "0"]).code(0);
    stack
        .tick(&["gate", "--deadline", "5", "--wait-lock", "0"])
        .code(75);
}

/// Project BAD as in `endless`, each page of its listing answered 1 s
/// late; project ET with stuck task 1, and issue ET-3 Approved with its
/// task in review (a verdict to replay).
fn slow_endless() -> Test {
    let bad = sim_uuid(&["project", "BAD"]);
    endless()
        .issue_with_task(3, "Approved", "review")
        .scenario(move |s| {
            let p = s.projects.iter_mut().find(|p| p.id == bad).unwrap();
            p.page_delay_ms = 1000;
        })
        .set("plane", "max_pages", "100000")
}

#[test]
fn a_slow_endless_project_holds_only_its_own_units() {
    let stack = slow_endless().start();
    let started = Instant::now();
    let run = stack.tick(&["all", "--deadline", "6"]);
    let took = started.elapsed();
    run.code(75);
    assert!(took < Duration::from_secs(7), "took {took:?}:\n{run}");
    assert_eq!(run.gate_outcome(1), "advanced", "{run}");
    assert_eq!(run.plane_outcome(3), "verdict_applied", "{run}");
    assert_eq!(run.gate_outcome(50), "deferred/deadline", "{run}");
    assert_eq!(stack.stage(1), "review");
    assert_eq!(stack.messages().len(), 2, "announced in the reserve");
    // ET's advance and replay were sent while BAD's listing was still on
    // its first page: they did not wait for BAD's read. (Reading first,
    // the advance came after BAD's reads ended, half the action window.)
    let bad = sim_uuid(&["project", "BAD"]);
    let log = stack.sim.requests();
    let pages: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].route == Some(Route::PlaneItems) && log[*i].path.contains(&bad))
        .collect();
    let first = |route: Route| log.iter().position(|r| r.route == Some(route)).unwrap();
    assert!(pages.len() >= 2, "BAD read for the whole window: {pages:?}");
    assert!(first(Route::OrchAdvance) < pages[1], "{pages:?}");
    assert!(first(Route::OrchWebhook) < pages[1], "{pages:?}");
    // Both passes used the one read of BAD: a single listing, one first page.
    let starts = pages
        .iter()
        .filter(|i| !log[**i].query.contains("cursor="))
        .count();
    assert_eq!(starts, 1, "BAD listed once in the tick");
    assert_eq!(bad_entry(&run)["deferred"], "deadline", "{run}");
    // Each unit and project entry keeps its place: task-list order (BAD's
    // task first), configured project order.
    let ids: Vec<i64> = run
        .gate_units()
        .iter()
        .map(|u| u["task_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [50, 1, 3], "{run}");
    let repos: Vec<String> = run.json()["plane"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["repo"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(repos, [REPO, "acme/bad"], "{run}");
}

#[test]
fn a_slow_endless_project_configured_first_holds_only_its_own_replays() {
    let bad = sim_uuid(&["project", "BAD"]);
    let stack = slow_endless()
        .scenario(|s| {
            // BAD first in the configuration: the Plane pass's first project.
            let at = s
                .projects
                .iter()
                .position(|p| p.identifier == "BAD")
                .unwrap();
            let p = s.projects.remove(at);
            s.projects.insert(0, p);
        })
        .start();
    let run = stack.tick(&["plane", "--deadline", "6"]);
    run.code(75);
    assert_eq!(run.plane_outcome(3), "verdict_applied", "{run}");
    assert_eq!(bad_entry(&run)["deferred"], "deadline", "{run}");
    let log = stack.sim.requests();
    let pages: Vec<usize> = (0..log.len())
        .filter(|i| log[*i].route == Some(Route::PlaneItems) && log[*i].path.contains(&bad))
        .collect();
    let replay = log
        .iter()
        .position(|r| r.route == Some(Route::OrchWebhook))
        .unwrap();
    assert!(pages.len() >= 2, "{pages:?}");
    assert!(
        replay < pages[1],
        "replayed at {replay}, BAD's pages {pages:?}"
    );
    // The report keeps the configured order: BAD's entry first.
    assert_eq!(
        run.json()["plane"]["projects"][0]["repo"],
        "acme/bad",
        "{run}"
    );
}

/// Runs a gate tick in the background; returns the child once the tick
/// has listed its tasks and its first advance (held `hold_ms` by the
/// simulator) is in flight.
fn tick_in_flight(stack: &Stack, hold_ms: u64) -> std::process::Child {
    let _ = hold_ms;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .args([
            "--config",
            stack.config.to_str().unwrap(),
            "gate",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while stack.count(Route::OrchTasks) < 1 {
        assert!(start.elapsed() < Duration::from_secs(20), "no task list");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The Plane reads take milliseconds; the advance is then held.
    std::thread::sleep(Duration::from_millis(400));
    child
}

fn signal(child: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

fn three_stuck() -> Test {
    Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .stuck(3, "testing", "In Progress")
}

#[test]
fn sigterm_mid_tick_finishes_the_request_in_flight_and_exits_75() {
    let stack = three_stuck()
        .fault(Route::OrchAdvance, Fault::Latency { ms: 1500 })
        .start();
    let child = tick_in_flight(&stack, 1500);
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a report");
    let units = report["gate"]["units"].as_array().unwrap().clone();
    let outcome = |id: i64| {
        let u = units.iter().find(|u| u["task_id"] == id).unwrap();
        format!(
            "{}/{}",
            u["outcome"].as_str().unwrap(),
            u["reason"].as_str().unwrap_or("-")
        )
    };
    assert_eq!(outcome(1), "advanced/-", "the request in flight finished");
    assert_eq!(outcome(2), "deferred/signal");
    assert_eq!(outcome(3), "deferred/signal");
    assert_eq!(stack.count(Route::OrchAdvance), 1, "no new action");
    assert_eq!(stack.stage(2), "testing");
    assert_eq!(stack.count(Route::TelegramSend), 0, "messages stay queued");
    let status = stack.status();
    assert_eq!(status["unblocked_total"], 1, "what happened is recorded");
    assert_eq!(status["notifications_pending"], 1);
    assert_eq!(status["ticks_total"], 1);
}

#[test]
fn a_second_signal_ends_the_tick_at_once() {
    let stack = three_stuck()
        .fault(Route::OrchAdvance, Fault::Latency { ms: 8000 })
        .start();
    let mut child = tick_in_flight(&stack, 8000);
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    let second = Instant::now();
    signal(&child, "INT");
    let status = child.wait().unwrap();
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(75));
    // The sidecar is consistent: the next tick runs and does the work.
    stack.sim.update(|w| w.faults.clear());
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.status()["unblocked_total"], 3);
}

#[test]
fn a_failed_listing_is_not_called_unreachable_states() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .scenario(|s| s.set_always_fault(Route::PlaneItems, Some(Fault::status(500))))
        .start();
    let run = stack.tick(&["plane"]);
    let report = run.json();
    let error = report["plane"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!error.contains("states"), "{run}");
    assert!(error.contains("every project"), "{run}");
    let project_error = report["plane"]["projects"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(project_error.contains("work-items"), "{run}");
    assert!(!run.stdout.contains("states of every project"), "{run}");
}

#[test]
fn a_task_listed_twice_is_advanced_and_announced_once() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| s.listed_twice = vec![7])
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(stack.count(Route::OrchAdvance), 1, "{run}");
    assert_eq!(run.gate_units().len(), 1, "{run}");
    assert_eq!(stack.messages().len(), 1, "{:?}", stack.messages());
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("more than once"))
        .collect();
    assert_eq!(warnings.len(), 1, "{run}");
    assert!(warnings[0].contains("task 7"), "{run}");
}

#[test]
fn a_slow_telegram_cannot_hold_the_tick_past_its_deadline() {
    let mut t = Test::new()
        .set("telegram", "timeout_s", "10")
        .set("telegram", "digest_over", "10");
    for id in 1..=5 {
        t = t.stuck(id, "testing", "In Progress");
    }
    // Five unblocks, then every Telegram call hangs 10 s: 50 s unclipped.
    let stack = t
        .scenario(|s| s.set_always_fault(Route::TelegramSend, Some(Fault::Latency { ms: 10_000 })))
        .start();
    let started = Instant::now();
    let run = stack.tick(&["gate", "--deadline", "5"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}:\n{run}");
    assert_ne!(run.code, 0, "{run}");
    assert_eq!(run.json()["notifications"]["queued"], 5, "{run}");
    run.stderr_has("telegram");
    assert_eq!(stack.status()["notifications_pending"], 5, "none lost");
}

#[test]
fn control_characters_from_peers_are_escaped_in_text_and_logs() {
    let evil = "\x1b[2J\nFORGED line\r<0>";
    let mut task = SimTask::new(7, "testing").repo(REPO).green();
    task.work_item_id = Some(format!("ET-7{evil}"));
    task.gate_detail = Some(format!("ok{evil}"));
    let mut red = SimTask::new(8, "testing").repo(REPO);
    red.gate_detail = Some(format!("red{evil}"));
    let stack = Test::new()
        .task_in(task, "In Progress")
        .task_in(red, "In Progress")
        .start();
    let run = stack.run(&["gate", "-v"]);
    run.code(0);
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{name} has a raw control character:\n{run}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("FORGED")),
            "{name} has a forged line:\n{run}"
        );
    }
    // One line per unit: two units, then the summary and notification lines.
    let unit_lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("gate: ") && l.contains("task "))
        .count();
    assert_eq!(unit_lines, 2, "{run}");
    assert!(run.stdout.contains("\\x1b[2J\\nFORGED line\\r<0>"), "{run}");
    // history and outbox list print the same strings escaped.
    for args in [&["history"][..], &["outbox", "list"][..]] {
        let out = stack.run(args);
        out.code(0);
        assert!(
            !out.stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?}:\n{out}"
        );
        assert!(
            !out.stdout.lines().any(|l| l.starts_with("FORGED")),
            "{out}"
        );
    }
}

/// Every form a peer may echo `secret` in.
fn forms(secret: &str) -> Vec<String> {
    let pct: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![secret.to_string(), pct.clone(), pct.to_lowercase()]
}

#[test]
fn a_peer_echoing_the_token_encoded_never_leaks_it() {
    let token = Scenario_token();
    let pct = forms(&token)[1].clone();
    let body = format!(
        "{{\"ok\": false, \"error_code\": 500, \"description\": \"bot {pct} and \\\"{token}\\\" broke\"}}"
    );
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(
            Route::TelegramSend,
            Fault::Status {
                code: 500,
                body: Some(body),
                retry_after: None,
            },
        )
        .start();
    let run = stack.run(&["gate"]);
    run.code(1);
    let list = stack.run(&["outbox", "list", "-o", "json"]);
    let sidecar = std::fs::read(stack.state_path()).unwrap();
    let wal = std::fs::read(stack.state_path().with_extension("sqlite-wal")).unwrap_or_default();
    for f in forms(&token) {
        for (name, text) in [
            ("stdout", &run.stdout),
            ("stderr", &run.stderr),
            ("outbox list", &list.stdout),
        ] {
            assert!(!text.contains(&f), "{name} leaks {f}:\n{run}\n{list}");
        }
        for bytes in [&sidecar, &wal] {
            assert!(
                !bytes.windows(f.len()).any(|w| w == f.as_bytes()),
                "the sidecar holds {f}"
            );
        }
    }
    assert!(list.stdout.contains("***"), "{list}");
}

#[allow(non_snake_case)]
fn Scenario_token() -> String {
    reconcile::sim::Scenario::default().telegram_bot_token
}

#[test]
fn url_userinfo_is_redacted_everywhere() {
    let probe = Test::new().start();
    let url = probe
        .sim
        .telegram_url()
        .replace("http://", "http://bob:hunter2@");
    drop(probe);
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    // The Telegram URL carries user:password and Telegram is down.
    let config = std::fs::read_to_string(&stack.config).unwrap();
    let config = config.replace(
        &format!("api_url = {:?}", stack.sim.telegram_url()),
        &format!("api_url = {url:?}"),
    );
    std::fs::write(&stack.config, config).unwrap();
    let run = stack.tick(&["gate"]);
    run.code(1);
    let list = stack.run(&["outbox", "list"]);
    let list_json = stack.run(&["outbox", "list", "-o", "json"]);
    let check = stack.run(&["check"]);
    for (name, text) in [
        ("report", &run.stdout),
        ("stderr", &run.stderr),
        ("outbox list", &list.stdout),
        ("outbox list -o json", &list_json.stdout),
        ("check", &check.stdout),
        ("check stderr", &check.stderr),
    ] {
        assert!(
            !text.contains("hunter2"),
            "{name} leaks the password:\n{text}"
        );
    }
    assert!(list_json.stdout.contains("***@"), "{list_json}");
}

#[test]
fn a_closed_pipe_or_a_full_disk_never_panics_nor_changes_the_exit_code() {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_reconcile");
    let acting = || {
        Test::new()
            .stuck(7, "testing", "In Progress")
            .fault(Route::OrchTasks, Fault::Latency { ms: 300 })
            .start()
    };
    // `reconcile -o json gate | head -c 10`: the reader is gone before the
    // report is written.
    let stack = acting();
    let mut child = Command::new(bin)
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .args([
            "--config",
            stack.config.to_str().unwrap(),
            "-o",
            "json",
            "gate",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stack.stage(7), "review", "the tick acted");
    // The same to /dev/full.
    let stack = acting();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = Command::new(bin)
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .args(["--config", stack.config.to_str().unwrap(), "gate"])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
    assert_eq!(stack.stage(7), "review", "the tick acted");
}

#[test]
fn a_symlink_at_the_old_metrics_temp_name_is_not_followed() {
    use std::process::{Command, Stdio};
    let probe = tempfile::tempdir().unwrap();
    let prom = probe.path().join("reconcile.prom");
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set(
            "metrics",
            "textfile",
            &format!("{:?}", prom.display().to_string()),
        )
        // The tick waits on its task list long enough to plant the link.
        .fault(Route::OrchTasks, Fault::Latency { ms: 1500 })
        .start();
    let victim = stack.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .args(["--config", stack.config.to_str().unwrap(), "gate"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The name the old code used: `.<name>.<pid>.tmp`.
    let planted = probe
        .path()
        .join(format!(".reconcile.prom.{}.tmp", child.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("reconcile_last_run_timestamp_seconds"),
        "{metrics}"
    );
    assert!(
        std::fs::symlink_metadata(&prom)
            .unwrap()
            .file_type()
            .is_file(),
        "the textfile is a file of its own"
    );
}

#[test]
fn an_action_whose_intent_cannot_be_written_is_not_sent() {
    // Task 1 is stuck (the gate pass would advance it); issue 3 is Approved
    // with its task still in review (the Plane pass would replay it).
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .issue_with_task(3, "Approved", "review")
        .start();
    // Only the intent's insert fails: everything else in the sidecar
    // (locking, reading, the tick's own records) still works, so the one
    // refusal is the write this test is about.
    let path = stack.refuse_inserts("intent", "intent refused by the test");
    let arg = path.to_str().unwrap();
    for (pass, route) in [("plane", Route::OrchWebhook), ("gate", Route::OrchAdvance)] {
        let run = stack.run(&[pass]);
        assert_eq!(stack.count(route), 0, "{pass}: the action was sent\n{run}");
        run.code(74)
            .stderr_one_line(&["sidecar", arg, "intent refused by the test"]);
        assert!(!run.stderr.contains("panicked"), "{run}");
    }
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert_eq!(stack.count(Route::OrchWebhook), 0);
    assert_eq!(stack.stage(1), "testing");
    assert_eq!(stack.stage(3), "review");
    assert!(stack.messages().is_empty(), "{:?}", stack.messages());
    // The refusal was the only obstacle: without it, both actions go.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TRIGGER refuse_intent;").unwrap();
    drop(conn);
    stack.tick(&["plane"]).code(0);
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.count(Route::OrchWebhook), 1);
    assert_eq!(stack.count(Route::OrchAdvance), 1);
    assert_eq!(stack.stage(1), "review");
}

#[test]
fn the_hostile_conditions_table_is_current() {
    for (_, _, test) in HOSTILE {
        let (source, name) = match test.split_once(": ") {
            Some(("kill.rs", name)) => (include_str!("kill.rs"), name),
            Some(("background.rs", name)) => (include_str!("background.rs"), name),
            _ => (include_str!("hostile.rs"), *test),
        };
        assert!(
            source.contains(&format!("fn {name}()")),
            "HOSTILE names {test}, which is not a test there"
        );
    }
    let mut table = String::from(
        "## Hostile conditions\n\n\
         Peers and hosts that misbehave on purpose, the promise that holds, and\n\
         the test that holds it, in `tests/hostile.rs` unless named (generated from its\n\
         `HOSTILE` table; `RECONCILE_BLESS=1 cargo test --test hostile`).\n\n\
         | condition | promise | test |\n|---|---|---|\n",
    );
    for (condition, promise, test) in HOSTILE {
        table.push_str(&format!("| {condition} | {promise} | `{test}` |\n"));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reliability.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let marker = "## Hostile conditions\n";
    let head = doc.split(marker).next().unwrap_or("").to_string();
    let want = format!("{head}{table}");
    if std::env::var_os("RECONCILE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == want,
        "docs/reliability.md's hostile conditions are out of date; run RECONCILE_BLESS=1 cargo test --test hostile and commit it"
    );
}

/// The longest value of every column of every table of the sidecar, with
/// where it is.
fn longest_sidecar_value(path: &std::path::Path) -> (i64, String) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut longest = (0, String::new());
    for t in tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for c in columns {
            let n: Option<i64> = conn
                .query_row(
                    &format!("SELECT max(length(CAST(\"{c}\" AS BLOB))) FROM \"{t}\""),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if n.unwrap_or(0) > longest.0 {
                longest = (n.unwrap_or(0), format!("{t}.{c}"));
            }
        }
    }
    longest
}

#[test]
fn huge_peer_strings_never_reach_the_sidecar_and_fail_only_their_unit() {
    // 2 MB each: well over any cap, well under the 32 MiB body limit.
    let huge_name = "ж".repeat(1 << 20);
    let long_id = "i".repeat(1000);
    let mut bad_task = SimTask::new(5, "testing").repo(REPO).green();
    bad_task.work_item_id = Some("W".repeat(2 << 20));
    let name = huge_name.clone();
    let (id, state) = (long_id.clone(), "s".repeat(2 << 20));
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .issue(3, "In Progress")
        .issue(4, "In Progress")
        .task_in(bad_task, "In Progress")
        .scenario(move |s| {
            let p = &mut s.projects[0];
            p.issues[1].name = name.clone();
            p.issues[2].id = id;
            p.issues[3].state = state;
            let mut extra = p.states[0].clone();
            extra.id = sim_uuid(&["state", "huge"]);
            extra.name = name;
            p.states.push(extra);
        })
        .start();
    let run = stack.tick(&["all"]);
    run.code(1);
    // The healthy tasks advance, task 2 despite its issue's huge name.
    assert_eq!(run.gate_outcome(1), "advanced", "{run}");
    assert_eq!(run.gate_outcome(2), "advanced", "{run}");
    assert_eq!(stack.stage(2), "review");
    // The over-long ids are bad entries naming the limit, nothing else.
    let failed: Vec<String> = run.json()["plane"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["outcome"] == "error")
        .map(|u| u["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        failed
            .iter()
            .any(|d| d.contains("issue id is 1000 bytes long")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|d| d.contains("over the 256-byte limit") && d.contains("state")),
        "{failed:?}"
    );
    let bad = run.gate_unit(5);
    assert_eq!(bad["outcome"], "error", "{run}");
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("work_item_id is 2097152 bytes long")
    );
    assert_eq!(stack.stage(5), "testing");
    assert!(
        run.stdout.len() < 64 * 1024,
        "the report is bounded too: {} bytes",
        run.stdout.len()
    );

    let path = stack.state_path();
    let (len, at) = longest_sidecar_value(&path);
    assert!(len <= 8 * 1024, "{at} holds {len} bytes");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let raw: String = conn
        .query_row(
            "SELECT raw_json FROM mirror_issue WHERE issue_id = ?1",
            [issue_id(2)],
            |r| r.get(0),
        )
        .unwrap();
    let kept: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let kept = kept["name"].as_str().unwrap();
    assert!(kept.len() <= 4096 && kept.len() > 4000, "{}", kept.len());
    assert!(huge_name.starts_with(kept.trim_end_matches('…')));
    let stored: i64 = conn
        .query_row(
            "SELECT count(*) FROM mirror_issue WHERE issue_id = ?1 OR issue_id = ?2",
            [long_id.as_str(), issue_id(4).as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0, "the bad entries are not mirrored");
    drop(conn);
    // The next tick (incremental) still works and keeps the bound.
    let again = stack.tick(&["all"]);
    again.code(1);
    assert_eq!(again.gate_outcome(5), "error");
    let (len, at) = longest_sidecar_value(&path);
    assert!(len <= 8 * 1024, "{at} holds {len} bytes");
}

#[test]
fn a_signal_ends_the_wait_for_the_lock_at_once() {
    let stack = Test::new().stuck(1, "testing", "In Progress").start();
    let held = hold_the_tick_lock(&stack);
    let seen = signal_while_waiting_for_the_lock(&stack, &["gate", "--wait-lock", "60"]);
    assert!(
        stack.sim.requests().is_empty(),
        "{:?}",
        stack.sim.requests()
    );
    assert_eq!(stack.stage(1), "testing", "{seen:?}");
    // The lock was not taken: once the other tick is done, the next one
    // runs at once and acts.
    drop(held);
    stack.tick(&["gate", "--wait-lock", "0"]).code(0);
    assert_eq!(stack.stage(1), "review");
}

#[test]
fn a_signal_ends_forget_s_wait_for_the_lock_at_once() {
    let stack = Test::new().stuck(1, "testing", "In Progress").start();
    // A tick announces ET-1's unblock: there is something to forget.
    stack.tick(&["gate"]).code(0);
    let held = hold_the_tick_lock(&stack);
    signal_while_waiting_for_the_lock(&stack, &["forget", "ET-1", "--wait-lock", "60"]);
    // Nothing was forgotten: once the lock is free, forget finds the key.
    drop(held);
    stack.run(&["forget", "ET-1"]).code(0);
    stack.run(&["forget", "ET-1"]).code(1);
}

/// Another tick's lock: the lock file beside the sidecar, every symlink of
/// its path resolved, as the tool names it.
fn hold_the_tick_lock(stack: &support::Stack) -> std::fs::File {
    let dir = std::fs::canonicalize(stack.dir.path()).unwrap();
    let held = std::fs::File::create(dir.join("state.sqlite.lock")).unwrap();
    held.lock().unwrap();
    held
}

/// Runs `args` while the lock is held, sends SIGTERM once it says it
/// waits, and checks it ends at once with 75 and says nothing was done.
/// Returns its stderr lines.
fn signal_while_waiting_for_the_lock(stack: &support::Stack, args: &[&str]) -> Vec<String> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .args(["--config", stack.config.to_str().unwrap()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr, line by line: the handlers are installed before the wait
    // says it is waiting, so the signal cannot kill it outright.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("waiting up to 60 s"))
    {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("{args:?} never said it waits ({e}): {seen:?}"),
        }
    }
    let signalled = Instant::now();
    signal(&child, "TERM");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still waiting {:?} after SIGTERM",
            signalled.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(75), "{seen:?}");
    assert!(
        seen.iter().any(
            |l| l.contains("stopped by a signal while waiting for the lock")
                && l.contains("nothing was done")
        ),
        "{seen:?}"
    );
    seen
}
