//! Dependencies end to end (docs/decisions.md, gate pass row 11 and
//! "Dependencies and cycles"): waiting tasks are left alone, a cycle is
//! alerted once and its issues moved to Blocked.

mod support;

use reconcile::sim::SimTask;
use support::*;

fn stuck_on(id: i64, deps: &[i64]) -> SimTask {
    SimTask::new(id, "testing").repo(REPO).green().depends(deps)
}

fn assert_blocked(stack: &Stack, seqs: &[i64]) {
    for seq in seqs {
        let state = stack.sim.issue_state_name(&pid(), &issue_id(*seq));
        assert_eq!(state.as_deref(), Some("Blocked"), "ET-{seq}");
    }
}

fn two_cycle() -> Test {
    Test::new()
        .task_in(stuck_on(1, &[2]), "In Progress")
        .task_in(stuck_on(2, &[1]), "In Progress")
}

#[test]
fn a_task_waiting_on_an_unfinished_dependency_is_not_advanced() {
    let stack = Test::new()
        .task_in(stuck_on(1, &[2]), "In Progress")
        .task_in(SimTask::new(2, "development").repo(REPO), "In Progress")
        .task_in(stuck_on(3, &[99]), "In Progress")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(1), "skipped/waiting_deps");
    // An unknown dependency does not block (fail open), with a warning.
    assert_eq!(run.gate_outcome(3), "advanced");
    assert!(run.stderr.contains("99"), "{run}");
}

#[test]
fn a_two_cycle_alerts_once_and_blocks_both_issues_over_three_ticks() {
    let stack = two_cycle().start();
    let first = stack.tick(&["gate"]);
    first.code(0);
    assert_eq!(first.gate_outcome(1), "skipped/cycle");
    assert_eq!(first.gate_outcome(2), "skipped/cycle");
    let cycles = first.json()["cycles"].clone();
    assert_eq!(cycles[0]["outcome"], "alerted");
    assert_eq!(cycles[0]["cycle"], "ET-1 → ET-2 → ET-1");
    assert_eq!(cycles[0]["members"], serde_json::json!(["ET-1", "ET-2"]));
    for _ in 0..2 {
        let run = stack.tick(&["gate"]);
        run.code(0);
        assert_eq!(run.json()["cycles"][0]["outcome"], "known");
    }
    assert_eq!(
        stack.messages(),
        vec!["⛔ reconciler: dependency cycle ET-1 → ET-2 → ET-1".to_string()]
    );
    assert_eq!(stack.count(Route::PlanePatch), 2);
    assert_blocked(&stack, &[1, 2]);
}

#[test]
fn a_cycle_broken_and_formed_again_is_alerted_again() {
    let stack = two_cycle().start();
    stack.tick(&["gate"]).code(0);
    stack
        .sim
        .update(|w| w.task_mut(2).unwrap().depends_on.clear());
    let run = stack.tick(&["gate"]);
    assert!(run.json()["cycles"].as_array().unwrap().is_empty());
    stack
        .sim
        .update(|w| w.task_mut(2).unwrap().depends_on = vec![1]);
    let run = stack.tick(&["gate"]);
    assert_eq!(run.json()["cycles"][0]["outcome"], "alerted");
    assert_eq!(stack.messages().len(), 2);
}

#[test]
fn a_project_without_blocked_gets_the_alert_and_no_patch() {
    let stack = two_cycle()
        .scenario(|s| s.projects[0].states.retain(|st| st.name != "Blocked"))
        .start();
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.messages().len(), 1);
    assert_eq!(stack.count(Route::PlanePatch), 0);
}

#[test]
fn a_failed_patch_is_retried_next_tick_without_a_new_alert() {
    let stack = two_cycle()
        .fault(Route::PlanePatch, Fault::status(500))
        .start();
    let run = stack.tick(&["gate"]);
    run.code(1);
    assert!(
        run.json()["cycles"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.json()["cycles"][0]["outcome"], "known");
    assert_eq!(stack.messages().len(), 1);
    assert_blocked(&stack, &[1, 2]);
}

#[test]
fn the_backstop_finds_cycles_among_busy_tasks() {
    let busy = |id, deps: &[i64]| {
        SimTask::new(id, "testing")
            .repo(REPO)
            .active()
            .depends(deps)
    };
    let stack = Test::new()
        .task_in(busy(1, &[2]), "In Progress")
        .task_in(busy(2, &[3]), "In Progress")
        .task_in(busy(3, &[1]), "In Progress")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(1), "skipped/in_flight");
    assert_eq!(
        run.json()["cycles"][0]["cycle"],
        "ET-1 → ET-2 → ET-3 → ET-1"
    );
    assert_eq!(stack.messages().len(), 1);
}

#[test]
fn dry_run_would_alert_and_changes_nothing() {
    let stack = two_cycle().start();
    let run = stack.tick(&["gate", "--dry-run"]);
    run.code(0);
    assert_eq!(run.json()["cycles"][0]["outcome"], "would_alert");
    assert_eq!(stack.count(Route::PlanePatch), 0);
    assert!(stack.messages().is_empty());
    assert!(!stack.state_path().exists());
}

#[test]
fn task_deps_disabled_turns_all_of_it_off() {
    let stack = two_cycle()
        .set("reconcile", "task_deps_enabled", "false")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(1), "advanced");
    assert!(run.json()["cycles"].as_array().unwrap().is_empty());
    assert_eq!(stack.count(Route::PlanePatch), 0);
}
