//! The no-op memo of the Plane pass (docs/plane.md): a replay that changed
//! nothing is not sent again while the issue and its task stay as they were.

mod support;

use reconcile::sim::ReplayEffect;
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
