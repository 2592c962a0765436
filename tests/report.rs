//! The text report end to end (docs/report.md): one line per acted-on or failed
//! unit, a summary line, the notification line; `-v` adds the skipped
//! units; `-q` drops the summaries, so an in-sync tick prints nothing.

mod support;

use reconcile::sim::SimTask;
use support::*;

/// Task 1's advance fails, 2 advances, 3 has a red gate, 4 is in flight.
fn a_mixed_tick() -> Stack {
    Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .task_in(SimTask::new(3, "testing").repo(REPO), "In Progress")
        .task_in(
            SimTask::new(4, "testing").repo(REPO).active(),
            "In Progress",
        )
        .fault(Route::OrchAdvance, Fault::status(500))
        .start()
}

fn lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().collect()
}

#[test]
fn the_text_report_has_a_line_per_acted_on_unit_a_summary_and_the_notifications() {
    let stack = a_mixed_tick();
    let run = stack.run(&["gate"]);
    run.code(1);
    let lines = lines(&run);
    assert_eq!(lines.len(), 5, "{run}");
    assert!(
        lines[0].starts_with("gate: error task 1 (ET-1) testing: ") && lines[0].contains("500"),
        "{run}"
    );
    assert!(
        lines[1].starts_with("gate: advanced task 2 (ET-2) testing → review")
            && lines[1].ends_with(" [notification: sent]"),
        "{run}"
    );
    assert!(
        lines[2].starts_with("gate: gate_red task 3 (ET-3) testing"),
        "{run}"
    );
    assert_eq!(
        lines[3],
        "gate: 1 advanced, 1 error, 1 gate_red, 1 skipped/in_flight"
    );
    assert_eq!(
        lines[4],
        "notifications: 1 sent, 0 deduped, 0 queued, 0 dropped"
    );
    assert!(!run.stdout.contains("task 4"), "skips only with -v:\n{run}");
}

#[test]
fn verbose_adds_a_line_per_skipped_unit() {
    let stack = a_mixed_tick();
    let run = stack.run(&["gate", "-v"]);
    run.code(1);
    let lines = lines(&run);
    assert_eq!(lines.len(), 6, "{run}");
    assert!(lines.contains(&"gate: skipped/in_flight task 4 (ET-4) testing"));
    assert!(lines.contains(&"gate: 1 advanced, 1 error, 1 gate_red, 1 skipped/in_flight"));
}

#[test]
fn quiet_keeps_the_unit_lines_and_drops_the_summaries() {
    let stack = a_mixed_tick();
    let run = stack.run(&["gate", "-q"]);
    run.code(1);
    let lines = lines(&run);
    assert_eq!(lines.len(), 3, "{run}");
    assert!(lines[0].starts_with("gate: error task 1"), "{run}");
    assert!(lines[1].starts_with("gate: advanced task 2"), "{run}");
    assert!(lines[2].starts_with("gate: gate_red task 3"), "{run}");
}

#[test]
fn an_in_sync_tick_with_q_prints_nothing_at_all() {
    // Every kind of silence at once: in flight, young, terminal, no gate.
    let stack = Test::new()
        .task_in(
            SimTask::new(1, "testing").repo(REPO).active(),
            "In Progress",
        )
        .task_in(
            SimTask::new(2, "testing").repo(REPO).green().ago(60),
            "In Progress",
        )
        .stuck(3, "testing", "Done")
        .task(SimTask::new(4, "created").repo(REPO))
        .start();
    let run = stack.run(&["gate", "-q"]);
    run.code(0).stdout_empty();
    assert!(run.stderr.is_empty(), "{run}");
    let run = stack.run(&["gate"]);
    run.code(0)
        .stdout_has("gate: 1 skipped/in_flight, 1 skipped/no_gate, 1 skipped/terminal_state, 1 skipped/young\n")
        .stdout_has("notifications: 0 sent, 0 deduped, 0 queued, 0 dropped\n");
    assert_eq!(lines(&run).len(), 2, "{run}");
}

#[test]
fn an_empty_task_list_says_nothing_to_do() {
    let stack = Test::new().start();
    let run = stack.run(&["gate"]);
    run.code(0).stdout_has("gate: nothing to do\n");
    stack.run(&["gate", "-q"]).code(0).stdout_empty();
}

#[test]
fn a_dry_run_report_says_so() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let run = stack.run(&["gate", "-n"]);
    run.code(0)
        .stdout_has("gate: would_advance task 7 (ET-7) testing")
        .stdout_has("gate (dry-run): 1 would_advance\n");
}

#[test]
fn a_task_list_that_cannot_be_read_is_reported_in_text() {
    let stack = Test::new()
        .scenario(|s| s.set_always_fault(Route::OrchTasks, Some(Fault::status(503))))
        .start();
    let run = stack.run(&["gate"]);
    run.code(69).stdout_has("gate: could not run: ");
    assert!(lines(&run)[0].contains("503"), "{run}");
}

#[test]
fn under_journald_logs_carry_a_syslog_priority_and_no_timestamp() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::TelegramSend, Fault::status(502))
        .start();
    let run = stack.run_with_env(&["gate"], &[("JOURNAL_STREAM", "8:12345")]);
    run.code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty(), "{run}");
    for line in &lines {
        let prio = line
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(p, _)| p);
        assert!(
            matches!(prio, Some("3" | "4" | "6" | "7")),
            "no priority: {line:?}"
        );
        assert!(
            !line.contains(" INFO ") && !line.starts_with("20"),
            "a timestamp: {line:?}"
        );
    }
    // The advance is info (6), the failed delivery a warning (4).
    assert!(lines.iter().any(|l| l.starts_with("<6>")), "{run}");
    assert!(lines.iter().any(|l| l.starts_with("<4>")), "{run}");
}

#[test]
fn outside_journald_logs_are_timestamped_lines() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let run = stack.run(&["gate"]);
    run.code(0);
    let first = run.stderr.lines().next().expect("an info line");
    assert!(
        first.starts_with("20") && first.contains("INFO"),
        "{first:?}"
    );
}

/// Tasks 1..=5 of project ET while Plane rejects the key.
fn a_rejected_plane_key() -> Stack {
    let mut t = Test::new();
    for id in 1..=5 {
        t = t.stuck(id, "testing", "In Progress");
    }
    let stack = t.start();
    stack
        .sim
        .update(|w| w.plane_api_key = "rotated-plane-key".into());
    stack
}

#[test]
fn a_shared_cause_is_one_line_with_its_count_and_one_hint() {
    let stack = a_rejected_plane_key();
    let run = stack.run(&["all"]);
    let shared = format!("plane: project {REPO} unreadable (HTTP 403: API key rejected)");
    let lines = lines(&run);
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == format!("{shared}: 5 tasks skipped"))
            .count(),
        1,
        "{run}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("gate: skipped")),
        "no line per task:\n{run}"
    );
    // The Plane pass could not list the project: the same cause, no new hint.
    assert!(
        lines.contains(&format!("{shared}: its issues not listed").as_str()),
        "{run}"
    );
    assert_eq!(
        run.stdout.matches("invalid, inactive or expired").count(),
        1,
        "the fix is said once:\n{run}"
    );
    assert_eq!(run.stdout.matches("403").count(), 2, "{run}");
    assert_eq!(
        run.stderr
            .matches(&format!("gate: project {REPO} unreadable"))
            .count(),
        1,
        "logged once, not per task:\n{run}"
    );
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

#[test]
fn verbose_and_json_keep_every_unit_of_a_shared_cause() {
    let stack = a_rejected_plane_key();
    let run = stack.run(&["gate", "-v"]);
    for id in 1..=5 {
        let line = format!("gate: skipped/plane_unresolved task {id} (ET-{id}) testing: ");
        assert!(
            lines(&run)
                .iter()
                .any(|l| l.starts_with(&line) && l.contains("403")),
            "{line}…\n{run}"
        );
    }
    let run = stack.run(&["gate", "-o", "json"]);
    let units = run.gate_units();
    assert_eq!(units.len(), 5, "{run}");
    for u in units {
        assert_eq!(u["reason"], "plane_unresolved");
        assert!(u["detail"].as_str().unwrap().contains("403"), "{u}");
    }
}

#[test]
fn a_project_the_key_cannot_see_is_told_apart_from_a_bad_key() {
    // The key is good for ET; a second configured project does not exist
    // for it, which Plane also answers with 403 (another body).
    let hidden = reconcile::sim::sim_uuid(&["project", "hidden"]);
    let task = |id: i64| SimTask {
        plane_issue_id: Some(reconcile::sim::sim_uuid(&[
            "issue",
            "hidden",
            &id.to_string(),
        ])),
        ..SimTask::new(id, "testing").repo("acme/hidden").green()
    };
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .task(task(20))
        .task(task(21))
        .append(&format!(
            "[[projects]]\nrepo = \"acme/hidden\"\nplane_project_id = {hidden:?}\n"
        ))
        .start();
    let run = stack.run(&["gate"]);
    run.code(1).stdout_has(
        "plane: project acme/hidden unreadable (HTTP 403: project not visible to this key): 2 tasks skipped",
    );
    run.stdout_has("is a member of the project");
    assert!(!run.stdout.contains("API key rejected"), "{run}");
    assert_eq!(stack.stage(1), "review", "the readable project goes on");
}

#[test]
fn an_orchestrator_outage_in_the_plane_pass_is_one_line_with_its_count() {
    let stack = Test::new()
        .issue_with_task(1, "Approved", "review")
        .issue_with_task(2, "Approved", "review")
        .issue_with_task(3, "Approved", "review")
        .scenario(|s| s.set_always_fault(Route::OrchTaskByIssue, Some(Fault::status(500))))
        .start();
    let run = stack.run(&["plane"]);
    run.code(1)
        .stdout_has("plane: orchestrator task lookup failed (HTTP 500): 3 issues failed\n");
    assert!(!run.stdout.contains("plane: error issue"), "{run}");
    assert_eq!(
        run.stderr
            .matches("orchestrator task lookup failed")
            .count(),
        1,
        "{run}"
    );
    // -v lists each issue, JSON keeps each.
    let run = stack.run(&["plane", "-v"]);
    assert_eq!(run.stdout.matches("plane: error issue").count(), 3, "{run}");
    let run = stack.run(&["plane", "-o", "json"]);
    assert_eq!(run.plane_units().len(), 3, "{run}");
}
