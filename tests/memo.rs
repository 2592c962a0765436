//! The no-op memo of the Plane pass (docs/plane.md): a replay that changed
//! nothing is not sent again while the issue and its task stay as they were.

mod support;

use reconcile::sim::{ReplayEffect, SimTask};
use support::*;

fn webhooks(stack: &Stack) -> usize {
    stack.count(Route::OrchWebhook)
}

/// ET-3 Approved with its task in review, whose handler refuses (a verdict
/// already applied elsewhere); ET-4 Approved with its task in review, a
/// verdict the handler applies. One action a tick.
fn fleet() -> Stack {
    Test::new()
        .issue_with_task(3, "Approved", "review")
        .issue_with_task(4, "Approved", "review")
        .scenario(|s| s.issue_mut(&issue_id(3)).unwrap().on_replay = Some(ReplayEffect::Nothing))
        .set("reconcile", "max_actions", "1")
        .start()
}

#[test]
fn a_verdict_noop_is_not_replayed_again_and_costs_no_action_slot() {
    let stack = fleet();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert_eq!(run.plane_outcome(4), "deferred/action_cap");
    assert_eq!(webhooks(&stack), 1);

    stack.sim.clear_requests();
    let run = stack.tick(&["plane"]);
    run.code(0);
    // ET-4 (where the cap stopped) takes the one slot; ET-3 is remembered,
    // which comes before the cap: skipped, not deferred.
    assert_eq!(run.plane_outcome(4), "verdict_applied");
    assert_eq!(run.plane_outcome(3), "skipped/replayed_noop");
    assert_eq!(webhooks(&stack), 1, "only ET-4's replay");
    assert_eq!(stack.stage(4), "done");

    // ET-4's task is done, its issue still Approved: replaying the
    // verdict once more changes nothing, and that is remembered too.
    stack.sim.clear_requests();
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(4), "verdict_noop");
    assert_eq!(webhooks(&stack), 1);

    // In sync: no replay at all, tick after tick.
    for _ in 0..2 {
        stack.sim.clear_requests();
        let run = stack.tick(&["plane"]);
        run.code(0);
        assert_eq!(run.plane_outcome(3), "skipped/replayed_noop");
        assert_eq!(run.plane_outcome(4), "skipped/replayed_noop");
        assert_eq!(webhooks(&stack), 0);
        assert_eq!(stack.count(Route::OrchAdvance), 0);
    }
    assert_eq!(stack.status()["skips"]["replayed_noop"], 6);
}

#[test]
fn the_memo_re_arms_when_the_issue_or_its_task_changes() {
    let stack = fleet();
    for _ in 0..3 {
        stack.tick(&["plane"]).code(0);
    }
    stack.sim.clear_requests();

    // The issue is updated in Plane (still Approved, still old enough).
    stack
        .sim
        .update(|w| w.issue_mut(&issue_id(3)).unwrap().updated_ago_s = 2 * HOUR - 30);
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert_eq!(webhooks(&stack), 1);
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "skipped/replayed_noop");
    assert_eq!(webhooks(&stack), 1);

    // Its task moves on its own (another stage): replayed once more.
    stack
        .sim
        .update(|w| w.task_mut(3).unwrap().stage = "testing".into());
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert_eq!(webhooks(&stack), 2);
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "skipped/replayed_noop");
    assert_eq!(webhooks(&stack), 2);

    // A replay with an effect forgets the memo: the handler now applies
    // the verdict.
    stack.sim.update(|w| {
        w.issue_mut(&issue_id(3)).unwrap().on_replay = None;
        w.issue_mut(&issue_id(3)).unwrap().updated_ago_s = 2 * HOUR - 60;
    });
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "verdict_applied");
    assert_eq!(stack.stage(3), "review");
}

#[test]
fn a_dry_run_reads_the_memo_and_writes_none() {
    let stack = fleet();
    stack.tick(&["plane"]).code(0);
    let run = stack.tick(&["plane", "--dry-run"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "skipped/replayed_noop");
    assert_eq!(run.plane_outcome(4), "would_apply_verdict");
}

/// Each issue's task read alone (`GET /reconcile/v1/tasks?plane_issue_id=`).
fn task_reads(stack: &Stack) -> usize {
    stack.count(Route::OrchTaskByIssue)
}

/// A fleet in sync for `all`: ET-3 Approved with its task in review (the
/// handler refuses), ET-4 Approved with its task done (verdict applied long
/// ago), ET-5 To Analyse with an idle task, ET-6 To Analyse whose start the
/// handler ignores (no task).
fn in_sync() -> Stack {
    Test::new()
        .issue_with_task(3, "Approved", "review")
        .issue_with_task(4, "Approved", "done")
        .issue_with_task(5, "To Analyse", "development")
        .issue(6, "To Analyse")
        .scenario(|s| {
            for seq in [3, 6] {
                s.issue_mut(&issue_id(seq)).unwrap().on_replay = Some(ReplayEffect::Nothing);
            }
        })
        .start()
}

/// The first `all` tick replays each issue once and remembers the no-ops.
fn first_tick(stack: &Stack) {
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert_eq!(run.plane_outcome(4), "verdict_noop");
    assert_eq!(run.plane_outcome(5), "resume_noop");
    assert_eq!(run.plane_outcome(6), "start_noop");
    assert_eq!(webhooks(stack), 4);
    // Each read before its replay and once after it.
    assert_eq!(task_reads(stack), 8);
    stack.sim.clear_requests();
}

fn assert_all_remembered(run: &Run) {
    for seq in [3, 4, 5, 6] {
        assert_eq!(run.plane_outcome(seq), "skipped/replayed_noop", "ET-{seq}");
    }
}

#[test]
fn in_all_a_fleet_in_sync_reads_no_task_per_issue() {
    let stack = in_sync();
    first_tick(&stack);
    for _ in 0..2 {
        let run = stack.tick(&["all"]);
        run.code(0);
        assert_all_remembered(&run);
        assert_eq!(webhooks(&stack), 0);
        assert_eq!(task_reads(&stack), 0, "the gate pass's list answers them");
        assert_eq!(stack.count(Route::OrchTasks), 1, "the gate pass's one list");
        stack.sim.clear_requests();
    }
    // `plane` alone has no list: each remembered issue's task is read.
    let run = stack.tick(&["plane"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 4);
    assert_eq!(stack.count(Route::OrchTasks), 0);
    assert_eq!(webhooks(&stack), 0);
}

#[test]
fn in_all_a_task_or_issue_that_changed_is_read_fresh_and_replayed() {
    let stack = in_sync();
    first_tick(&stack);

    // ET-3's task moves on its own: the list shows it, so it is read fresh
    // (and once more after its replay); the others still cost nothing.
    stack
        .sim
        .update(|w| w.task_mut(3).unwrap().stage = "testing".into());
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert_eq!(webhooks(&stack), 1);
    assert_eq!(task_reads(&stack), 2);
    stack.sim.clear_requests();
    let run = stack.tick(&["all"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 0);
    stack.sim.clear_requests();

    // ET-4 (its task done, so not in the list) is updated in Plane.
    stack
        .sim
        .update(|w| w.issue_mut(&issue_id(4)).unwrap().updated_ago_s = 2 * HOUR - 30);
    let run = stack.tick(&["all"]);
    assert_eq!(run.plane_outcome(4), "verdict_noop");
    assert_eq!(webhooks(&stack), 1);
    assert_eq!(task_reads(&stack), 2);
    stack.sim.clear_requests();

    // ET-6 gets a task (it no longer matches "no task"): read fresh.
    stack.sim.update(|w| {
        w.tasks
            .push(SimTask::new(60, "analysis").repo(REPO).issue(&issue_id(6)))
    });
    let run = stack.tick(&["all"]);
    assert_eq!(run.plane_outcome(6), "resume_noop");
    assert_eq!(task_reads(&stack), 2);
    stack.sim.clear_requests();
    let run = stack.tick(&["all"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 0);
    assert_eq!(webhooks(&stack), 0);
}

#[test]
fn without_a_usable_list_each_remembered_issue_is_read_fresh() {
    let stack = in_sync();
    first_tick(&stack);

    // The gate pass's list fails: the Plane pass reads each task as before.
    stack.sim.update(|w| {
        w.set_always_fault(
            Route::OrchTasks,
            Some(Fault::Status {
                code: 502,
                body: None,
                retry_after: None,
            }),
        )
    });
    let run = stack.tick(&["all"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 4);
    assert_eq!(webhooks(&stack), 0);
    stack.sim.clear_requests();
    stack
        .sim
        .update(|w| w.set_always_fault(Route::OrchTasks, None));

    // The same task listed twice is one task (the first entry): no read.
    stack.sim.update(|w| w.listed_twice.push(3));
    let run = stack.tick(&["all"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 0);
    stack.sim.clear_requests();

    // Two tasks name ET-3's issue: the list cannot say which one a read
    // of the issue returns, so ET-3 alone is read.
    stack.sim.update(|w| {
        w.tasks
            .push(SimTask::new(30, "testing").repo(REPO).issue(&issue_id(3)))
    });
    let run = stack.tick(&["all"]);
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 1);
}

#[test]
fn a_task_the_gate_pass_advanced_is_read_fresh() {
    let stack = in_sync();
    first_tick(&stack);

    // ET-5's gate turns green: the gate pass advances its task after the
    // list was read, so the list no longer shows it; the Plane pass reads
    // it, sees the memo broken and replays.
    stack
        .sim
        .update(|w| w.task_mut(5).unwrap().gate_passed = true);
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.gate_outcome(5), "advanced");
    assert_eq!(stack.stage(5), "testing");
    assert_eq!(run.plane_outcome(5), "resume_noop");
    assert_eq!(task_reads(&stack), 2, "ET-5 before and after its replay");
    assert_eq!(webhooks(&stack), 1);
    stack.sim.clear_requests();

    // The task as it is now is remembered: the list answers again.
    let run = stack.tick(&["all"]);
    assert_eq!(run.gate_outcome(5), "skipped/young");
    assert_all_remembered(&run);
    assert_eq!(task_reads(&stack), 0);
}
