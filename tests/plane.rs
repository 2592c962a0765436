//! The Plane pass and `all` end to end: lost starts, resumes and verdicts replayed
//! through the orchestrator's webhook endpoint of the simulator.

mod support;

use reconcile::sim::{ReplayEffect, SimProject, SimState, SimTask, sim_uuid};
use support::*;

fn on_replay(seq: i64, effect: ReplayEffect) -> impl FnOnce(&mut reconcile::sim::Scenario) {
    move |s| s.issue_mut(&issue_id(seq)).unwrap().on_replay = Some(effect)
}

#[test]
fn lost_start_creates_the_task_and_announces_analysis() {
    let stack = Test::new().issue(10, "To Analyse").start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "started");
    assert_eq!(run.plane_unit(10)["state_key"], "to_analyse");
    assert_eq!(run.plane_unit(10)["notification"], "sent");
    assert_eq!(
        stack.messages(),
        vec![format!("🔧 reconciler: ET-10 analysis {SEED_TEXT}")]
    );
    assert_eq!(stack.count(Route::OrchWebhook), 1);
    assert_eq!(run.json()["gate"]["reason"], "not_requested");
}

#[test]
fn a_start_that_creates_nothing_is_silent() {
    let stack = Test::new()
        .issue(10, "To Analyse")
        .scenario(on_replay(10, ReplayEffect::Nothing))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "start_noop");
    assert!(stack.messages().is_empty());
}

#[test]
fn lost_resume_that_moves_the_task_is_announced_with_the_stage_before() {
    let stack = Test::new()
        .issue_with_task(5, "To Analyse", "analysis")
        .scenario(on_replay(5, ReplayEffect::StartJob))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(5), "resumed");
    assert_eq!(
        stack.messages(),
        vec![format!("🔧 reconciler: ET-5 analysis {SEED_TEXT}")]
    );
}

#[test]
fn approved_and_rejected_verdicts_move_the_stage_and_name_the_stage_before() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .issue_with_task(4, "Rejected", "review")
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_applied");
    assert_eq!(run.plane_outcome(4), "verdict_applied");
    assert_eq!(stack.stage(3), "done");
    assert_eq!(stack.stage(4), "testing");
    let messages = stack.messages();
    assert_eq!(messages.len(), 2);
    assert!(
        messages.iter().all(|m| m.contains(" review ")),
        "{messages:?}"
    );
}

#[test]
fn a_verdict_that_moves_nothing_is_silent() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .scenario(on_replay(3, ReplayEffect::Nothing))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_noop");
    assert!(stack.messages().is_empty());
}

#[test]
fn approved_without_a_task_is_no_task() {
    let stack = Test::new().issue(3, "Approved").start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "skipped/no_task");
    assert_eq!(stack.count(Route::OrchWebhook), 0);
}

#[test]
fn a_young_issue_waits() {
    let stack = Test::new()
        .issue(10, "To Analyse")
        .scenario(|s| s.issue_mut(&issue_id(10)).unwrap().updated_ago_s = 60)
        .start();
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(10), "skipped/young");
    assert_eq!(stack.count(Route::OrchWebhook), 0);
}

#[test]
fn an_issue_whose_trigger_state_is_terminal_is_skipped_and_counted() {
    // A project whose "Approved" lives in the completed group.
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .scenario(|s| {
            for st in &mut s.projects[0].states {
                if st.name == "Approved" {
                    st.group = "completed".into();
                }
            }
        })
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "skipped/terminal_state");
    assert_eq!(stack.status()["skipped_terminal_total"], 1);
}

#[test]
fn excluded_and_in_flight_tasks_are_left_alone() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .task_in(SimTask::new(4, "review").repo(REPO).active(), "Approved")
        .set("reconcile", "skip_work_items", "[\"ET-3\"]")
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "skipped/excluded");
    assert_eq!(run.plane_outcome(4), "skipped/in_flight");
    assert_eq!(stack.count(Route::OrchWebhook), 0);
}

#[test]
fn the_action_cap_defers_replays() {
    let stack = Test::new()
        .issue(10, "To Analyse")
        .issue(11, "To Analyse")
        .set("reconcile", "max_actions", "1")
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "started");
    assert_eq!(run.plane_outcome(11), "deferred/action_cap");
    assert_eq!(stack.count(Route::OrchWebhook), 1);
}

/// A project without To Analyse, like the "enduro" project of the original reconciler.
fn without_to_analyse(s: &mut reconcile::sim::Scenario) {
    s.projects[0].states.retain(|st| st.name != "To Analyse");
}

#[test]
fn without_to_analyse_in_progress_is_the_start_trigger_and_idle_tasks_stay_silent() {
    let stack = Test::new()
        .scenario(without_to_analyse)
        .issue(10, "In Progress")
        .issue_with_task(5, "In Progress", "development")
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "started");
    assert_eq!(run.plane_outcome(5), "resume_noop");
    assert_eq!(
        stack.count(Route::PlaneItems),
        1,
        "each project is listed once per tick"
    );
    assert_eq!(stack.messages().len(), 1);
    // The resume changed nothing: remembered, it is not replayed again
    // while the issue and the task stay as they are (tests/memo.rs).
    let hooks = stack.count(Route::OrchWebhook);
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(5), "skipped/replayed_noop");
    // ET-10's new task is idle now: one resume that changes nothing …
    assert_eq!(run.plane_outcome(10), "resume_noop");
    let run = stack.tick(&["plane"]);
    // … and then both are remembered.
    assert_eq!(run.plane_outcome(5), "skipped/replayed_noop");
    assert_eq!(run.plane_outcome(10), "skipped/replayed_noop");
    assert_eq!(stack.count(Route::OrchWebhook), hooks + 1);
    assert_eq!(stack.messages().len(), 1, "an idle task is never announced");
}

#[test]
fn pagination_walks_every_page_with_per_page() {
    let mut t = Test::new().set("plane", "per_page", "2");
    for seq in 1..=5 {
        t = t.issue(seq, "Approved");
    }
    let stack = t.start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_units().len(), 5);
    let lists = stack.sim.requests_to(Route::PlaneItems);
    assert_eq!(lists.len(), 3);
    assert!(
        lists.iter().all(|r| r.query.contains("per_page=2")),
        "{:?}",
        lists[0].query
    );
    assert_eq!(run.json()["plane"]["projects"][0]["issues_listed"], 5);
}

#[test]
fn the_legacy_issues_path_works_too() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .set("plane", "items_path", "\"issues\"")
        .start();
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_outcome(3), "verdict_applied");
    assert!(
        stack.sim.requests_to(Route::PlaneItems)[0]
            .path
            .contains("/issues/")
    );
}

#[test]
fn replays_are_signed_when_a_secret_is_configured() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .webhook_secrets(Some("s3cret-hook"), Some("s3cret-hook"))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(3), "verdict_applied");
    let hook = &stack.sim.requests_to(Route::OrchWebhook)[0];
    let sig = hook.header("x-plane-signature").expect("signed");
    assert_eq!(
        sig,
        reconcile::sim::webhook_signature("s3cret-hook", hook.body.as_bytes())
    );
    assert_eq!(hook.header("x-reconcile-replay"), Some("1"));
    assert_eq!(hook.header("x-plane-event"), Some("issue"));
    assert!(
        hook.header("x-plane-delivery")
            .is_some_and(|d| d.len() == 36)
    );
    let body = hook.json().unwrap();
    assert_eq!(body["data"]["state"]["name"], "Approved");
    assert_eq!(
        body["activity"]["new_identifier"],
        body["data"]["state"]["id"]
    );
}

#[test]
fn a_wrong_signature_is_rejected_and_fails_the_issue() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .webhook_secrets(Some("right"), Some("wrong"))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(1);
    assert_eq!(run.plane_outcome(3), "error");
    assert_eq!(stack.stage(3), "review");
}

#[test]
fn without_a_secret_no_signature_is_sent() {
    let stack = Test::new().issue_with_task(3, "Approved", "review").start();
    stack.tick(&["plane"]).code(0);
    let hook = &stack.sim.requests_to(Route::OrchWebhook)[0];
    assert!(hook.header("x-plane-signature").is_none());
}

#[test]
fn one_project_failing_does_not_stop_the_next() {
    let second = sim_uuid(&["project", "OPS"]);
    let mut ops = SimProject::new(&second, "OPS", "acme/ops");
    ops.add_issue(1, "To Analyse", 2 * HOUR);
    let stack = Test::new()
        .issue(10, "To Analyse")
        .scenario(|s| {
            s.projects.push(ops);
            s.push_fault(Route::PlaneStates, Fault::status(500));
        })
        // One project read at a time, so the fault meets the first.
        .set("plane", "concurrency", "1")
        .start();
    let run = stack.tick(&["plane"]);
    run.code(1);
    let report = run.json();
    let projects = report["plane"]["projects"].as_array().unwrap();
    assert_eq!(projects.len(), 2);
    assert!(
        projects[0]["error"].as_str().unwrap().contains("500"),
        "{run}"
    );
    assert!(projects[1]["error"].is_null());
    assert_eq!(run.plane_units().len(), 1);
    assert_eq!(run.plane_units()[0]["outcome"], "started");
}

#[test]
fn every_project_unreachable_exits_69() {
    let stack = Test::new()
        .issue(10, "To Analyse")
        .scenario(|s| s.set_always_fault(Route::PlaneStates, Some(Fault::status(503))))
        .start();
    let run = stack.tick(&["plane"]);
    run.code(69);
    assert_eq!(run.json()["plane"]["ran"], false);
}

#[test]
fn dry_run_sends_no_webhook_and_says_what_it_would_do() {
    let stack = Test::new()
        .issue(10, "To Analyse")
        .issue_with_task(5, "To Analyse", "analysis")
        .issue_with_task(3, "Approved", "review")
        .start();
    let run = stack.tick(&["plane", "--dry-run"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "would_start");
    assert_eq!(run.plane_outcome(5), "would_resume");
    assert_eq!(run.plane_outcome(3), "would_apply_verdict");
    assert_eq!(stack.count(Route::OrchWebhook), 0);
    assert!(stack.sim.requests().iter().all(|r| r.method == "GET"));
    assert!(!stack.state_path().exists());
}

#[test]
fn all_runs_both_passes_and_counts_both_unblocks() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue_with_task(3, "Approved", "review")
        .start();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.plane_outcome(3), "verdict_applied");
    assert_eq!(stack.messages().len(), 2);
    assert_eq!(stack.status()["unblocked_total"], 2);
}

#[test]
fn all_with_the_task_list_down_still_runs_f2() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue_with_task(3, "Approved", "review")
        .scenario(|s| s.set_always_fault(Route::OrchTasks, Some(Fault::status(502))))
        .start();
    let run = stack.tick(&["all"]);
    run.code(69);
    assert_eq!(run.json()["gate"]["ran"], false);
    assert_eq!(run.plane_outcome(3), "verdict_applied");
}

#[test]
fn kill_switches_behave_as_the_original() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue_with_task(3, "Approved", "review")
        .set("reconcile", "plane_enabled", "false")
        .start();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.json()["plane"]["ran"], false);
    assert_eq!(run.json()["plane"]["reason"], "disabled");
    assert_eq!(stack.count(Route::OrchWebhook), 0);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.json()["plane"]["reason"], "disabled");

    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue(10, "To Analyse")
        .set("reconcile", "enabled", "false")
        .start();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.json()["gate"]["reason"], "disabled");
    assert_eq!(run.json()["plane"]["reason"], "disabled");
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn a_disabled_project_is_touched_by_neither_pass() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue(10, "To Analyse")
        .scenario(|s| s.projects[0].repo = "acme/off".into())
        .append("[[projects]]\nrepo = \"acme/elsewhere\"\nplane_project_id = \"nope\"\nenabled = false\n")
        .start();
    // Rewrite: the default project is written as enabled; flip it.
    let cfg = std::fs::read_to_string(&stack.config).unwrap().replace(
        "repo = \"acme/off\"\n",
        "repo = \"acme/shop\"\nenabled = false\n",
    );
    std::fs::write(&stack.config, cfg).unwrap();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "skipped/excluded");
    assert!(run.plane_units().is_empty());
    assert_eq!(stack.count(Route::PlaneStates), 0);
    assert_eq!(stack.count(Route::PlaneItems), 0);
}

#[test]
fn per_project_state_names_pick_the_trigger() {
    let stack = Test::new()
        .scenario(|s| {
            let p = &mut s.projects[0];
            p.states.push(SimState {
                id: sim_uuid(&["state", "ready"]),
                name: "Ready for analysis".into(),
                group: "unstarted".into(),
                sequence: 99_999.0,
            });
            p.add_issue(10, "Ready for analysis", 2 * HOUR);
            p.add_issue(11, "To Analyse", 2 * HOUR);
        })
        .scenario(on_replay(
            10,
            ReplayEffect::CreateTask {
                stage: "analysis".into(),
                work_item_id: Some("ET-10".into()),
            },
        ))
        .start();
    let cfg = std::fs::read_to_string(&stack.config).unwrap()
        + "state_names = { to_analyse = [\"Ready for analysis\"] }\n";
    std::fs::write(&stack.config, cfg).unwrap();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(run.plane_outcome(10), "started");
    assert!(
        run.plane_units()
            .iter()
            .all(|u| u["issue_id"] != issue_id(11).as_str())
    );
}

#[test]
fn two_repos_sharing_one_plane_project_replay_each_issue_once() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .append(&format!(
            "[[projects]]\nrepo = \"acme/shop-web\"\nplane_project_id = \"{}\"\n",
            pid()
        ))
        .start();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(stack.count(Route::OrchWebhook), 1);
    assert_eq!(run.plane_units().len(), 1);
    assert_eq!(
        stack.count(Route::PlaneItems),
        1,
        "the shared project is listed once"
    );
}

#[test]
fn the_action_cap_serves_every_issue_in_turn() {
    // Three idle tasks whose resumes change nothing: each tick replays one.
    let stack = Test::new()
        .scenario(without_to_analyse)
        .issue_with_task(1, "In Progress", "development")
        .issue_with_task(2, "In Progress", "development")
        .issue_with_task(3, "In Progress", "development")
        .set("reconcile", "max_actions", "1")
        .start();
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let run = stack.tick(&["plane"]);
        run.code(0);
        let noop: Vec<i64> = (1..=3)
            .filter(|s| run.plane_outcome(*s) == "resume_noop")
            .collect();
        assert_eq!(noop.len(), 1, "{run}");
        replayed.push(noop[0]);
    }
    assert_eq!(
        replayed,
        [1, 2, 3],
        "round robin, not the first issue every tick"
    );
}
