//! The gate pass end to end: the binary against the simulator, with a real sidecar.

mod support;

use reconcile::sim::SimTask;
use support::*;

#[test]
fn stuck_task_with_green_gate_is_advanced_and_announced_once() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.gate_unit(7)["stage_after"], "review");
    assert_eq!(run.gate_unit(7)["notification"], "sent");
    assert_eq!(stack.stage(7), "review");
    assert_eq!(
        stack.messages(),
        vec![format!("🔧 reconciler: ET-7 testing {SEED_TEXT}")]
    );
    let status = stack.status();
    assert_eq!(status["unblocked_total"], 1);
    assert_eq!(status["last_unblocked"], "ET-7");
}

#[test]
fn the_same_unblock_seen_by_a_second_process_is_deduped() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    // The advance did not stick (say the orchestrator rolled back): the
    // same task, stage and Plane state are seen again by a new process.
    stack.sim.update(|w| {
        let t = w.task_mut(7).unwrap();
        t.stage = "testing".into();
        t.gate_passed = true;
        t.updated_ago_s = 2 * HOUR;
    });
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.gate_unit(7)["notification"], "deduped");
    assert_eq!(stack.messages().len(), 1);
    let status = stack.status();
    assert_eq!(status["deduped_total"], 1);
    assert_eq!(status["unblocked_total"], 1);
}

#[test]
fn the_same_task_stuck_again_at_a_later_stage_is_announced() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    // Stuck again in review, Plane still In Progress.
    stack.sim.update(|w| {
        let t = w.task_mut(7).unwrap();
        t.gate_passed = true;
        t.updated_ago_s = 2 * HOUR;
    });
    let run = stack.tick(&["gate"]);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.gate_unit(7)["notification"], "sent");
    assert_eq!(stack.messages().len(), 2);
    assert!(
        stack.messages()[1].contains("ET-7 review"),
        "{:?}",
        stack.messages()
    );
}

#[test]
fn plane_terminal_and_db_terminal_tasks_are_counted_and_silent() {
    let stack = Test::new()
        .stuck(1, "testing", "Done")
        .stuck(2, "review", "Cancelled")
        .task(SimTask::new(3, "cancelled").repo(REPO))
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(1), "skipped/terminal_state");
    assert_eq!(run.gate_outcome(2), "skipped/terminal_state");
    assert_eq!(run.gate_outcome(3), "skipped/terminal_stage");
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert!(stack.messages().is_empty());
    assert_eq!(stack.status()["skipped_terminal_total"], 3);
}

#[test]
fn plane_unreachable_means_no_advance_and_exit_1() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| s.set_always_fault(Route::PlaneStates, Some(Fault::status(500))))
        .start();
    let run = stack.tick(&["gate"]);
    run.code(1);
    assert_eq!(run.gate_outcome(7), "skipped/plane_unresolved");
    assert!(
        run.gate_unit(7)["detail"]
            .as_str()
            .unwrap()
            .contains("plane")
    );
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert!(stack.messages().is_empty());
}

#[test]
fn a_task_whose_repo_is_not_configured_is_a_plain_skip() {
    let stack = Test::new()
        .task(SimTask::new(7, "testing").repo("other/repo").green())
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "skipped/plane_unresolved");
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

#[test]
fn escape_hatch_advances_without_plane() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| s.set_always_fault(Route::PlaneStates, Some(Fault::status(500))))
        .set("reconcile", "skip_blocked_enabled", "false")
        .start();
    let run = stack.tick(&["gate"]);
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn task_list_unreachable_exits_69() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| s.set_always_fault(Route::OrchTasks, Some(Fault::status(503))))
        .start();
    let run = stack.tick(&["gate"]);
    run.code(69);
    let report = run.json();
    assert_eq!(report["gate"]["ran"], false);
    assert!(
        report["gate"]["error"]
            .as_str()
            .unwrap()
            .contains("orchestrator")
    );
}

#[test]
fn many_unblocks_at_once_are_one_digest() {
    let mut t = Test::new().set("telegram", "digest_over", "5");
    for id in 1..=6 {
        t = t.stuck(id, "testing", "In Progress");
    }
    let stack = t.start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    let messages = stack.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    for id in 1..=6 {
        assert!(
            messages[0].contains(&format!("ET-{id} testing")),
            "{}",
            messages[0]
        );
        assert_eq!(run.gate_unit(id)["notification"], "digest");
    }
}

#[test]
fn the_action_cap_defers_the_rest() {
    let mut t = Test::new().set("reconcile", "max_actions", "2");
    for id in 1..=4 {
        t = t.stuck(id, "testing", "In Progress");
    }
    let stack = t.start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    let outcomes: Vec<String> = (1..=4).map(|id| run.gate_outcome(id)).collect();
    assert_eq!(
        outcomes,
        [
            "advanced",
            "advanced",
            "deferred/action_cap",
            "deferred/action_cap"
        ]
    );
    assert_eq!(stack.count(Route::OrchAdvance), 2);
}

#[test]
fn telegram_down_keeps_the_message_queued_until_the_next_tick() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::TelegramSend, Fault::status(502))
        .start();
    let run = stack.tick(&["gate"]);
    run.code(1);
    assert_eq!(run.gate_unit(7)["notification"], "queued");
    assert_eq!(run.json()["notifications"]["queued"], 1);
    assert!(stack.messages().is_empty());
    assert_eq!(stack.status()["unblocked_total"], 1);
    assert_eq!(stack.status()["notifications_pending"], 1);

    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(stack.messages().len(), 1);
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(stack.messages().len(), 1, "delivered exactly once");
}

#[test]
fn dry_run_posts_nothing_and_leaves_no_sidecar() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .task_in(SimTask::new(8, "review").repo(REPO), "In Progress")
        .start();
    let run = stack.tick(&["gate", "--dry-run"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "would_advance");
    assert_eq!(run.gate_outcome(8), "gate_red");
    assert!(
        stack.sim.requests().iter().all(|r| r.method == "GET"),
        "only reads"
    );
    assert!(stack.messages().is_empty());
    assert_eq!(stack.stage(7), "testing");
    let entries: Vec<_> = std::fs::read_dir(stack.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !stack.state_path().exists(),
        "dry-run created the sidecar: {entries:?}"
    );
    assert!(!stack.dir.path().join("state.sqlite.lock").exists());
}

#[test]
fn dry_run_leaves_an_existing_sidecar_byte_for_byte() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    stack.sim.update(|w| {
        let t = w.task_mut(7).unwrap();
        t.gate_passed = true;
        t.updated_ago_s = 2 * HOUR;
    });
    let listing = |dir: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = std::fs::read(stack.state_path()).unwrap();
    let files_before = listing(stack.dir.path());
    let requests_before = stack.sim.requests().len();
    let run = stack.tick(&["gate", "-n"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "would_advance");
    assert_eq!(std::fs::read(stack.state_path()).unwrap(), before);
    assert_eq!(listing(stack.dir.path()), files_before);
    assert!(
        stack.sim.requests()[requests_before..]
            .iter()
            .all(|r| r.method == "GET")
    );
}

#[test]
fn a_second_tick_while_the_lock_is_held_exits_75() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let lock_path = stack.dir.path().join("state.sqlite.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    file.try_lock().unwrap();
    let run = stack.run(&["gate"]);
    run.code(75);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("lock"), "{run}");
    assert_eq!(stack.count(Route::OrchTasks), 0);
    drop(file);
    stack.run(&["gate"]).code(0);
}

#[test]
fn the_kill_switch_contacts_nothing() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set("reconcile", "enabled", "false")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.json()["gate"]["reason"], "disabled");
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn env_kill_switch_overrides_the_file() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .env("ORCH_RECONCILE_ENABLED", "off")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert!(stack.sim.requests().is_empty());
    let status = stack.run_with_env(&["status", "-o", "json"], &[]).json();
    assert_eq!(status["enabled"], false);
}

#[test]
fn in_sync_tick_is_quiet_with_q() {
    let stack = Test::new()
        .task_in(
            SimTask::new(7, "testing").repo(REPO).active(),
            "In Progress",
        )
        .start();
    stack.run(&["gate", "-q"]).code(0).stdout_empty();
    let run = stack.run(&["gate"]);
    run.code(0).stdout_has("gate: 1 skipped/in_flight");
}

#[test]
fn a_task_whose_issue_is_gone_from_plane_is_a_plain_skip() {
    let stack = Test::new()
        .task(
            SimTask::new(7, "testing")
                .repo(REPO)
                .green()
                .issue("00000000-dead-4000-8000-000000000000"),
        )
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "skipped/plane_unresolved");
    assert!(
        run.gate_unit(7)["detail"]
            .as_str()
            .unwrap()
            .contains("not listed")
    );
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

#[test]
fn the_action_cap_serves_every_task_in_turn() {
    // Three stuck tasks, one advance per tick; before each tick all three
    // are stuck again (the test undoes the advances).
    let mut t = Test::new().set("reconcile", "max_actions", "1");
    for id in 1..=3 {
        t = t.task_in(SimTask::new(id, "testing").repo(REPO), "In Progress");
    }
    let stack = t.start();
    let mut advanced = Vec::new();
    for _ in 0..3 {
        stack.sim.update(|w| {
            for id in 1..=3 {
                let task = w.task_mut(id).unwrap();
                task.stage = "testing".into();
                task.gate_passed = true;
                task.updated_ago_s = 2 * HOUR;
            }
        });
        let run = stack.tick(&["gate"]);
        run.code(0);
        let done: Vec<i64> = (1..=3)
            .filter(|id| run.gate_outcome(*id) == "advanced")
            .collect();
        assert_eq!(done.len(), 1, "{run}");
        advanced.push(done[0]);
    }
    assert_eq!(
        advanced,
        [1, 2, 3],
        "round robin, not the first task every tick"
    );
}
