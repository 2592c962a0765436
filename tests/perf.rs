//! The Plane request budget (docs/plane.md): exact request counts per
//! tick, and the mirror's correctness.

mod support;

use reconcile::sim::{SimProject, SimTask, sim_uuid};
use support::*;

/// 2 projects × 250 issues, one stuck task in each; `[plane] per_page`
/// left at its default (1000, Plane's maximum).
fn fleet() -> Test {
    let mut t = Test::new();
    let mut ops = SimProject::new(&sim_uuid(&["project", "OPS"]), "OPS", "acme/ops");
    let stuck_ops = ops.add_issue(1, "In Progress", 2 * HOUR);
    for seq in 2..=250 {
        ops.add_issue(seq, "In Review", 3 * HOUR);
    }
    t = t.stuck(1, "testing", "In Progress");
    t = t.scenario(|s| {
        for seq in 2..=250 {
            s.projects[0].add_issue(seq, "In Review", 3 * HOUR);
        }
    });
    t.task(
        SimTask::new(1001, "testing")
            .repo("acme/ops")
            .issue(&stuck_ops),
    )
    .scenario(|s| s.projects.push(ops))
}

fn plane_requests(stack: &Stack) -> usize {
    stack.sim.count_peer(reconcile::sim::Peer::Plane)
}

fn set_full_resync(stack: &Stack, secs: u64) {
    let cfg = std::fs::read_to_string(&stack.config).unwrap();
    let cfg = cfg.replace("[plane]\n", &format!("[plane]\nfull_resync_s = {secs}\n"));
    std::fs::write(&stack.config, cfg).unwrap();
}

#[test]
fn cold_warm_and_full_resync_ticks_cost_exactly_what_the_design_says() {
    let stack = fleet().start();
    stack.tick(&["all"]).code(0);
    // At per_page 1000 a project of 250 issues is one page (it was 3 at 100).
    assert_eq!(plane_requests(&stack), 4, "cold: 2 states + 2 × 1 page");
    assert_eq!(stack.count(Route::PlaneItem), 0, "no per-task issue GETs");
    for r in stack.sim.requests_to(Route::PlaneItems) {
        assert!(r.query.contains("per_page=1000"), "{}", r.query);
        assert!(
            r.query
                .contains("fields=id,name,sequence_id,state,updated_at,project,workspace"),
            "{}",
            r.query
        );
        assert!(!r.query.contains("expand="), "{}", r.query);
        assert_eq!(r.header("accept-encoding"), Some("gzip"));
    }

    stack.sim.clear_requests();
    stack.tick(&["all"]).code(0);
    assert_eq!(
        plane_requests(&stack),
        2,
        "warm: one incremental page per project"
    );
    for r in stack.sim.requests_to(Route::PlaneItems) {
        assert!(r.query.contains("per_page=100&"), "{}", r.query);
        assert!(r.query.contains("order_by=-updated_at"), "{}", r.query);
        assert!(r.query.contains("fields="), "{}", r.query);
    }

    set_full_resync(&stack, 0);
    stack.sim.clear_requests();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(
        plane_requests(&stack),
        2,
        "full resync: 2 × 1 page, states cached"
    );
    let projects = run.json()["plane"]["projects"].clone();
    assert_eq!(projects[0]["requests"], 1);
    assert_eq!(projects[0]["issues_listed"], 250);
}

#[test]
fn an_issue_changed_between_ticks_is_seen_on_the_next_warm_tick_and_acted_on() {
    let stack = fleet().start();
    stack.tick(&["all"]).code(0);
    // Issue ET-200 moves into Approved while its task sits in review.
    let id = issue_id(200);
    let approved = stack
        .sim
        .inspect(|w| w.projects[0].state_id("Approved").unwrap());
    stack.sim.update(|w| {
        let i = w.issue_mut(&id).unwrap();
        i.state = approved.clone();
        i.updated_ago_s = 2 * HOUR - 1; // changed now, but older than the grace
        w.tasks
            .push(SimTask::new(200, "review").repo(REPO).issue(&id));
    });
    stack.sim.clear_requests();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(plane_requests(&stack), 2);
    assert_eq!(run.plane_outcome(200), "verdict_applied");
    assert_eq!(stack.stage(200), "done");
}

#[test]
fn a_full_listing_honours_a_smaller_per_page_and_the_replay_has_what_it_needs() {
    let stack = fleet()
        .set("plane", "per_page", "100")
        .issue_with_task(300, "Approved", "review")
        .start();
    let run = stack.tick(&["all"]);
    run.code(0);
    assert_eq!(
        plane_requests(&stack),
        8,
        "cold: 2 states + 2 × 3 pages of 100"
    );
    // ET-300 is Approved, its task still in review: the Plane pass replays the
    // verdict from the mirror's copy of the issue.
    assert_eq!(run.plane_outcome(300), "verdict_applied");
    let hook = stack.sim.requests_to(Route::OrchWebhook).pop().unwrap();
    let data = hook.json().unwrap()["data"].clone();
    let approved = stack
        .sim
        .inspect(|w| w.projects[0].state_id("Approved").unwrap());
    assert_eq!(data["id"], issue_id(300).as_str());
    assert_eq!(data["name"], "Work item ET-300");
    assert_eq!(data["sequence_id"], 300);
    assert_eq!(data["project"], pid().as_str());
    let ws = stack.sim.scenario().plane_workspace_id;
    assert_eq!(data["workspace"], ws.as_str());
    assert_eq!(hook.json().unwrap()["workspace_id"], ws.as_str());
    assert_eq!(
        data["state"],
        serde_json::json!({"id": approved, "name": "Approved", "group": "started"})
    );
    assert!(data["updated_at"].is_string());
    let mut keys: Vec<String> = data.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "project",
            "sequence_id",
            "state",
            "updated_at",
            "workspace"
        ]
    );
}

#[test]
fn a_deleted_issue_leaves_the_mirror_at_the_next_full_sync() {
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .issue(4, "Approved")
        .scenario(|s| {
            s.issue_mut(&issue_id(3)).unwrap().on_replay =
                Some(reconcile::sim::ReplayEffect::Nothing)
        })
        .start();
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_units().len(), 2);
    stack
        .sim
        .update(|w| w.projects[0].issues.retain(|i| i.id != issue_id(4)));
    // An incremental sync cannot see a deletion; the full one drops it.
    set_full_resync(&stack, 0);
    let run = stack.tick(&["plane"]);
    assert_eq!(run.plane_units().len(), 1, "{run}");
    assert_eq!(run.json()["plane"]["projects"][0]["issues_listed"], 1);
}

#[test]
fn a_failed_sync_never_lets_either_pass_act_on_stale_states() {
    let stack = Test::new()
        .stuck(7, "testing", "Blocked")
        .issue_with_task(3, "In Review", "review")
        .start();
    let run = stack.tick(&["all"]);
    assert_eq!(run.gate_outcome(7), "skipped/human_wait");
    // In Plane, ET-7 is unblocked and ET-3 approved — but the next sync fails.
    let (in_progress, approved) = stack.sim.inspect(|w| {
        (
            w.projects[0].state_id("In Progress").unwrap(),
            w.projects[0].state_id("Approved").unwrap(),
        )
    });
    stack.sim.update(|w| {
        w.issue_mut(&issue_id(7)).unwrap().state = in_progress.clone();
        w.issue_mut(&issue_id(3)).unwrap().state = approved.clone();
        w.set_always_fault(Route::PlaneItems, Some(Fault::status(500)));
    });
    stack.sim.clear_requests();
    let run = stack.tick(&["all"]);
    // The only project cannot be read: the Plane pass cannot start at all.
    run.code(69);
    assert_eq!(run.gate_outcome(7), "skipped/plane_unresolved");
    assert!(run.plane_units().is_empty());
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert_eq!(stack.count(Route::OrchWebhook), 0);
}

#[test]
fn dry_run_syncs_into_memory_only() {
    let stack = fleet().start();
    stack.tick(&["all"]).code(0);
    let before = std::fs::read(stack.state_path()).unwrap();
    stack.sim.clear_requests();
    stack.tick(&["all", "--dry-run"]).code(0);
    assert_eq!(
        plane_requests(&stack),
        2,
        "the dry-run syncs incrementally too"
    );
    assert_eq!(std::fs::read(stack.state_path()).unwrap(), before);
}

#[test]
fn a_gate_tick_reads_only_the_projects_it_needs() {
    let stack = fleet().scenario(|s| s.tasks.retain(|t| t.id == 1)).start();
    stack.tick(&["gate"]).code(0);
    // Only ET has a task that passed the local guards.
    assert_eq!(plane_requests(&stack), 2, "ET: states + 1 page");
}
