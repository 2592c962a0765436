//! Plane reads in the background, tried as an attacker and a broken
//! network would (docs/architecture.md, "one tick"): a stop signal while a
//! read hangs or waits out a 429, the action cap's turns across projects,
//! a sidecar that fails while reads are in flight, a dry run.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reconcile::sim::{SimProject, SimTask, sim_uuid};
use support::*;

/// Starts `reconcile --config <cfg> ARGS… -o json` in the background.
fn spawn(stack: &Stack, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_reconcile"))
        .env_clear()
        .env("NO_PROXY", "127.0.0.1")
        .arg("--config")
        .arg(&stack.config)
        .args(args)
        .args(["-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// Polls `ready` until it holds (the child must not end first).
fn when(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the tick ended ({status}) before {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// SIGTERM to a tick that waits (for a held read, a 429's Retry-After):
/// it ends at once with 75, not when the wait would; its JSON report and
/// stderr.
fn stop_now(child: Child) -> (serde_json::Value, String) {
    // Let it settle into the wait first.
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    sigterm(&child);
    let (code, report, stderr, took) = finish(child, signalled);
    assert_eq!(code, Some(75), "{report}\n{stderr}");
    assert!(
        took < Duration::from_secs(3),
        "the tick waited {took:?} after the signal"
    );
    (report, stderr)
}

/// Waits for the child; its exit code, JSON report and stderr, and how long
/// it took from `since`.
fn finish(child: Child, since: Instant) -> (Option<i32>, serde_json::Value, String, Duration) {
    let out = child.wait_with_output().unwrap();
    let took = since.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    (out.status.code(), report, stderr, took)
}

fn outcome(report: &serde_json::Value, task: i64) -> String {
    let u = report["gate"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["task_id"] == task)
        .unwrap_or_else(|| panic!("no unit for task {task}: {report}"))
        .clone();
    match u["reason"].as_str() {
        Some(r) => format!("{}/{r}", u["outcome"].as_str().unwrap()),
        None => u["outcome"].as_str().unwrap().to_string(),
    }
}

fn mirrored(stack: &Stack, project: &str) -> i64 {
    let db = rusqlite::Connection::open(stack.state_path()).unwrap();
    db.query_row(
        "SELECT count(*) FROM mirror_issue WHERE project_id = ?1",
        [project],
        |r| r.get(0),
    )
    .unwrap()
}

fn slow_id() -> String {
    sim_uuid(&["project", "SLOW"])
}

/// Project ET with stuck task 1, then project SLOW (repo acme/slow) with
/// stuck task 50, whose Plane reads `hold` (a fault on its listing, or a
/// delay) for far longer than any promptness bound below; Plane's timeout
/// is 20 s, so only the signal can end the wait early.
fn held(hold: impl FnOnce(&mut SimProject) + 'static) -> Test {
    let mut slow = SimProject::new(&slow_id(), "SLOW", "acme/slow");
    let issue = slow.add_issue(50, "In Progress", 2 * HOUR);
    hold(&mut slow);
    Test::new()
        .stuck(1, "testing", "In Progress")
        .task(
            SimTask::new(50, "testing")
                .repo("acme/slow")
                .green()
                .issue(&issue),
        )
        .scenario(move |s| s.projects.push(slow))
        .set("plane", "timeout_s", "20")
}

/// SIGTERM once task 1 was advanced and SLOW's listing is held: the tick
/// ends at once (not when the read would), exit 75, task 50 deferred, no
/// other action, SLOW's mirror as it was (`slow_before` issues).
fn stop_while_held(stack: &Stack, slow_before: i64) {
    let slow = slow_id();
    let mut child = spawn(stack, &["gate"]);
    when(&mut child, "task 1 advanced and SLOW listed", || {
        stack.count(Route::OrchAdvance) == 1
            && !stack
                .sim
                .requests_where(|r| r.route == Some(Route::PlaneItems) && r.path.contains(&slow))
                .is_empty()
    });
    let (report, stderr) = stop_now(child);
    assert_eq!(outcome(&report, 1), "advanced", "{report}");
    assert_eq!(outcome(&report, 50), "deferred/signal", "{report}");
    assert_eq!(
        stack.count(Route::OrchAdvance),
        1,
        "no action after the signal"
    );
    assert_eq!(stack.stage(50), "testing");
    assert_eq!(
        mirrored(stack, &slow),
        slow_before,
        "SLOW's read not stored"
    );
    assert!(mirrored(stack, &pid()) > 0, "ET's read was stored");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_stop_signal_does_not_wait_for_a_plane_read_that_hangs() {
    let stack = held(|p| p.page_delay_ms = 30_000).start();
    stop_while_held(&stack, 0);
}

#[test]
fn a_stop_signal_does_not_wait_for_a_read_waiting_out_a_429() {
    let stack = held(|_| {}).start();
    // A first tick caches both projects' states and mirrors (nothing to
    // do in the Plane pass): the gate tick then lists each once, ET first
    // and alone until Plane answers, so the 429 queued second is SLOW's.
    stack.tick(&["plane"]).code(0);
    assert_eq!(mirrored(&stack, &slow_id()), 1);
    stack.sim.update(|w| {
        w.scenario
            .push_fault(Route::PlaneItems, Fault::Latency { ms: 0 });
        // Within the deadline: the read sleeps the 20 s Plane asks for.
        w.scenario
            .push_fault(Route::PlaneItems, Fault::status_retry(429, 20));
    });
    stop_while_held(&stack, 1);
}

#[test]
fn a_stop_signal_while_the_cycle_backstop_awaits_its_reads_defers_it_whole() {
    // Tasks 1 and 2 of project SLOW wait on each other (a cycle: the
    // backstop would alert it and move both issues to Blocked); both are
    // busy, so their units are decided at once, and the gate pass then
    // waits only for SLOW's read, which the backstop needs.
    let mut slow = SimProject::new(&slow_id(), "SLOW", "acme/slow");
    let mut test = Test::new().set("plane", "timeout_s", "20");
    for (id, dep) in [(1, 2), (2, 1)] {
        let issue = slow.add_issue(id, "In Progress", 2 * HOUR);
        let task = SimTask::new(id, "testing")
            .repo("acme/slow")
            .green()
            .active()
            .depends(&[dep])
            .issue(&issue);
        test = test.task(task);
    }
    slow.page_delay_ms = 30_000;
    let stack = test.scenario(move |s| s.projects.push(slow)).start();
    let mut child = spawn(&stack, &["gate"]);
    when(&mut child, "SLOW listed", || {
        stack.count(Route::PlaneItems) == 1
    });
    let (report, _) = stop_now(child);
    assert_eq!(outcome(&report, 1), "skipped/in_flight", "{report}");
    // Not half done: no alert without its Blocked moves, no error for a
    // read the signal cut.
    assert_eq!(report["cycles"], serde_json::json!([]), "{report}");
    assert_eq!(report["counters"]["errors_total"], 0, "{report}");
    assert_eq!(stack.count(Route::PlanePatch), 0);
    // Nothing is lost: the next tick runs the backstop in full.
    stack.sim.update(|w| w.projects[1].page_delay_ms = 0);
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.json()["cycles"][0]["outcome"], "alerted", "{run}");
    assert_eq!(stack.count(Route::PlanePatch), 2, "{run}");
}

#[test]
fn a_stop_signal_ends_a_429_wait_before_a_patch_at_once() {
    // The backstop's PATCH runs on the tick's own thread: Plane asks it to
    // wait 20 s, and a signal must end that wait, with nothing sent after.
    let stuck_on =
        |id: i64, deps: &[i64]| SimTask::new(id, "testing").repo(REPO).green().depends(deps);
    let stack = Test::new()
        .task_in(stuck_on(1, &[2]), "In Progress")
        .task_in(stuck_on(2, &[1]), "In Progress")
        .fault(Route::PlanePatch, Fault::status_retry(429, 20))
        .start();
    let mut child = spawn(&stack, &["gate"]);
    when(&mut child, "the first PATCH answered 429", || {
        stack.count(Route::PlanePatch) == 1
    });
    stop_now(child);
    assert_eq!(
        stack.count(Route::PlanePatch),
        1,
        "nothing sent after the signal"
    );
}

/// Projects ET, P2 and P3 (no To Analyse: In Progress starts or resumes),
/// each with issue N in In Progress and its idle task N in development: a
/// resume each, whose replay changes nothing.
fn three_projects_one_resume_each() -> Test {
    let mut test = Test::new()
        .set("reconcile", "max_actions", "1")
        .scenario(|s| s.projects[0].states.retain(|st| st.name != "To Analyse"))
        .issue_with_task(1, "In Progress", "development");
    for n in [2, 3] {
        let name = format!("P{n}");
        let repo = format!("acme/p{n}");
        let mut p = SimProject::new(&sim_uuid(&["project", &name]), &name, &repo);
        p.states.retain(|st| st.name != "To Analyse");
        let issue = p.add_issue(n, "In Progress", 2 * HOUR);
        test = test
            .task(SimTask::new(n, "development").repo(&repo).issue(&issue))
            .scenario(move |s| s.projects.push(p));
    }
    test
}

/// Runs `ticks` Plane ticks; after each, the tasks change (their no-op
/// memos no longer hold: every issue is to be replayed again). Returns the
/// task replayed in each tick; every other is deferred by the cap.
fn served(stack: &Stack, ticks: usize) -> Vec<i64> {
    let mut served = Vec::new();
    for _ in 0..ticks {
        let run = stack.tick(&["plane"]);
        run.code(0);
        let mut replayed = Vec::new();
        for u in run.plane_units() {
            let task = u["task_id"].as_i64().unwrap();
            match (u["outcome"].as_str().unwrap(), u["reason"].as_str()) {
                ("resume_noop", None) => replayed.push(task),
                ("deferred", Some("action_cap")) => {}
                other => panic!("tick {}: task {task}: {other:?}\n{run}", served.len()),
            }
        }
        assert_eq!(replayed.len(), 1, "{run}");
        served.push(replayed[0]);
        stack.sim.update(|w| {
            // A minute later on the simulator's clock: a new updated_at.
            w.advance_clock(60);
            (1..=3).for_each(|id| w.touch_task(id));
        });
    }
    served
}

#[test]
fn the_action_cap_serves_the_projects_in_turn() {
    // One read at a time, in the fair order (ET first: all synced alike):
    // ET's view is always back first, yet each tick starts where the cap
    // stopped the last one.
    let stack = three_projects_one_resume_each()
        .set("plane", "concurrency", "1")
        .start();
    assert_eq!(served(&stack, 4), [1, 2, 3, 1]);
}

#[test]
fn the_action_cap_serves_a_slow_project_in_its_turn() {
    // ET answers each page 300 ms late: the others' reads are back first.
    let stack = three_projects_one_resume_each()
        .scenario(|s| s.projects[0].page_delay_ms = 300)
        .start();
    let served = served(&stack, 4);
    // The first tick has no cursor: whichever project is back first acts.
    assert!(served[0] != 1, "{served:?}");
    // Then ET's turn (the cap's cursor) waits for ET, and the others follow.
    assert_eq!(served[1..], [1, 2, 3], "{served:?}");
}

#[test]
fn the_gate_pass_serves_the_projects_in_turn_under_the_action_cap() {
    // Stuck tasks 1, 2, 3 in projects ET, P2, P3; ET read first, alone.
    let mut test = Test::new()
        .set("reconcile", "max_actions", "1")
        .set("plane", "concurrency", "1")
        .stuck(1, "testing", "In Progress");
    for n in [2, 3] {
        let name = format!("P{n}");
        let repo = format!("acme/p{n}");
        let mut p = SimProject::new(&sim_uuid(&["project", &name]), &name, &repo);
        let issue = p.add_issue(n, "In Progress", 2 * HOUR);
        test = test
            .task(SimTask::new(n, "testing").repo(&repo).green().issue(&issue))
            .scenario(move |s| s.projects.push(p));
    }
    let stack = test.start();
    let mut served = Vec::new();
    for _ in 0..4 {
        let run = stack.tick(&["gate"]);
        run.code(0);
        let advanced: Vec<i64> = (1..=3)
            .filter(|t| run.gate_outcome(*t) == "advanced")
            .collect();
        assert_eq!(advanced.len(), 1, "{run}");
        let capped = (1..=3)
            .filter(|t| run.gate_outcome(*t) == "deferred/action_cap")
            .count();
        assert_eq!(capped, 2, "{run}");
        served.push(advanced[0]);
        // Stuck again, as before: the next tick has the same three to do.
        stack.sim.update(|w| {
            let t = w.task_mut(advanced[0]).unwrap();
            t.stage = "testing".into();
            t.gate_passed = true;
            t.updated_ago_s = 2 * HOUR;
        });
    }
    assert_eq!(served, [1, 2, 3, 1]);
}

#[test]
fn a_sidecar_refusing_a_read_while_others_are_in_flight_exits_74_at_once() {
    let stack = held(|p| p.page_delay_ms = 20_000).start();
    // A full disk, as SQLite says it, on the first mirror write: ET's,
    // while SLOW's listing is held.
    let path = stack.refuse_inserts("mirror_issue", "database or disk is full");
    let started = Instant::now();
    let run = stack.run(&["gate"]);
    let took = started.elapsed();
    run.code(74)
        .stderr_one_line(&["sidecar", path.to_str().unwrap(), "disk is full"]);
    assert!(took < Duration::from_secs(10), "took {took:?}:\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    assert_eq!(stack.count(Route::OrchAdvance), 0, "nothing acted");
}

#[test]
fn a_dry_run_with_reads_in_the_background_writes_nothing() {
    let stack = held(|p| p.page_delay_ms = 200)
        .issue_with_task(3, "Approved", "review")
        .start();
    // A dry run only reads the sidecar: one must exist.
    let path = stack.state_path();
    create_sidecar(&path);
    let bytes = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
    let before = bytes(&path);
    let run = stack.tick(&["all", "--dry-run"]);
    run.code(0);
    assert_eq!(run.gate_outcome(1), "would_advance", "{run}");
    assert_eq!(run.gate_outcome(50), "would_advance", "{run}");
    assert_eq!(run.plane_outcome(3), "would_apply_verdict", "{run}");
    assert!(bytes(&path) == before, "the dry run changed the sidecar");
    assert_eq!(mirrored(&stack, &pid()), 0, "no mirror stored");
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert_eq!(stack.count(Route::OrchWebhook), 0);
    // The live tick decides the same.
    let live = stack.tick(&["all"]);
    live.code(0);
    assert_eq!(live.gate_outcome(1), "advanced", "{live}");
    assert_eq!(live.gate_outcome(50), "advanced", "{live}");
    assert_eq!(live.plane_outcome(3), "verdict_applied", "{live}");
}

#[test]
fn in_all_the_gate_pass_decides_a_project_s_tasks_before_the_plane_pass_handles_it() {
    // ET-3 is Approved and its task 3, stuck in review with a green gate,
    // is the gate pass's to advance; the Plane pass would replay the
    // verdict. The gate pass comes first, as when the passes ran one after
    // the other: its advance, then the Plane pass reads the task (done).
    let stack = Test::new()
        .task_in(SimTask::new(3, "review").repo(REPO).green(), "Approved")
        .fault(Route::OrchWebhook, Fault::Reset)
        .start();
    // A replay whose effect is unknown: its intent is re-checked at the
    // start of the next Plane pass.
    stack.tick(&["plane"]);
    assert_eq!(stack.count(Route::OrchWebhook), 1);
    assert_eq!(stack.stage(3), "review");
    // That re-check is slow: ET's read, which task 3 was set aside for,
    // is back before the Plane pass looks at its first project.
    stack.sim.update(|w| {
        w.scenario
            .push_fault(Route::OrchTaskByIssue, Fault::Latency { ms: 500 })
    });
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.gate_outcome(3), "advanced", "{run}");
    // The verdict is replayed against the task as the advance left it.
    assert_eq!(run.plane_outcome(3), "verdict_noop", "{run}");
    assert_eq!(stack.stage(3), "done");
}

#[test]
fn a_tick_waiting_for_a_slow_read_does_not_spin() {
    // SLOW's listing is answered 3 s late and task 50 waits for it: the
    // tick's thread blocks on the reads' channel meanwhile. Spinning would
    // cost ~3 s of CPU; blocking costs a few wake-ups a second.
    let stack = held(|p| p.page_delay_ms = 3_000).start();
    const WRAPPER: &str = "import resource, subprocess, sys\n\
        rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
        r = resource.getrusage(resource.RUSAGE_CHILDREN)\n\
        print(rc, r.ru_utime + r.ru_stime)\n";
    let out = Command::new("python3")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_PROXY", "127.0.0.1")
        .args(["-c", WRAPPER, env!("CARGO_BIN_EXE_reconcile"), "--config"])
        .arg(&stack.config)
        .arg("gate")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rc, cpu) = text.trim().split_once(' ').expect("rc and CPU time");
    assert_eq!(rc, "0", "{text}");
    let cpu: f64 = cpu.parse().unwrap();
    assert!(cpu < 1.0, "{cpu} s of CPU while waiting 3 s");
    assert_eq!(stack.stage(50), "review", "task 50 waited for SLOW");
}

#[test]
fn a_first_read_plane_never_answers_does_not_hold_the_other_projects() {
    // SLOW configured first; both projects synced once (a first tick), so
    // SLOW, tied for the oldest sync, is read first: alone, while the
    // budget waits for Plane's first answer. Its listing then hangs past
    // the deadline: that wait must not hold ET's read for the whole tick.
    let stack = held(|_| {})
        .no_telegram()
        .scenario(|s| s.projects.reverse())
        .start();
    stack.tick(&["plane"]).code(0);
    stack.sim.update(|w| w.projects[0].page_delay_ms = 30_000);
    let started = Instant::now();
    let run = stack.tick(&["gate", "--deadline", "6"]);
    let took = started.elapsed();
    run.code(75);
    assert!(took < Duration::from_secs(7), "took {took:?}:\n{run}");
    assert_eq!(run.gate_outcome(1), "advanced", "{run}");
    assert_eq!(run.gate_outcome(50), "deferred/deadline", "{run}");
}

/// This process's threads named `plane-read` (the tick's read workers).
fn read_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "plane-read")
        .count()
}

#[test]
fn a_tick_run_in_process_leaves_no_read_thread_behind() {
    // The benchmark runs ticks in its own process. A second tick, a minute
    // later, serves ET's read from its stale cached states and refreshes
    // them after the passes from what the budget leaves over: that
    // refresh hangs past the 2 s deadline. Its thread must end with the
    // tick. (The only in-process tick of this file.)
    let stack = Test::new()
        .no_telegram()
        .set("reconcile", "deadline_s", "2")
        .set("state", "states_cache_ttl_s", "30")
        .start();
    let cfg = reconcile::harness::load_config(&stack.config, true, &|_| None).unwrap();
    let opts = reconcile::harness::TickOptions {
        command: reconcile::harness::TickCommand::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let now = time::OffsetDateTime::now_utc();
    let first = reconcile::harness::run_tick_at(&cfg, &opts, now).unwrap();
    assert_eq!(first.exit_code(), 0);
    stack.sim.update(|w| {
        w.scenario
            .set_always_fault(Route::PlaneStates, Some(Fault::Hang { ms: 30_000 }))
    });
    let started = Instant::now();
    let later = now + time::Duration::minutes(1);
    let second = reconcile::harness::run_tick_at(&cfg, &opts, later).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(second.exit_code(), 0, "the passes were done in time");
    assert_eq!(stack.count(Route::PlaneStates), 2, "the refresh was sent");
    assert_eq!(read_threads(), 0, "a read thread outlived its tick");
}
