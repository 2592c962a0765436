//! Exit codes and their precedence end to end (docs/report.md): the deadline,
//! a busy lock, 69 over 1, and one oversized peer answer.

mod support;

use support::*;

#[test]
fn the_deadline_defers_the_rest_and_keeps_what_was_done() {
    // The first advance takes 0.7 s against a 1 s deadline, of which the
    // last half is kept for delivery: no action starts after 0.5 s, so task
    // 1 advances and the two others are deferred.
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .stuck(3, "testing", "In Progress")
        .fault(Route::OrchAdvance, Fault::Latency { ms: 700 })
        .start();
    let run = stack.tick(&["gate", "--deadline", "1"]);
    run.code(75);
    assert_eq!(run.json()["exit_code"], 75, "the report is on stdout");
    assert_eq!(run.gate_outcome(1), "advanced");
    assert_eq!(run.gate_outcome(2), "deferred/deadline");
    assert_eq!(run.gate_outcome(3), "deferred/deadline");
    assert_eq!(stack.count(Route::OrchAdvance), 1);
    assert_eq!(stack.stage(1), "review");
    assert_eq!(stack.stage(2), "testing");
    // A cut tick still delivers, in the reserve kept for it.
    assert_eq!(run.gate_unit(1)["notification"], "sent");
    assert_eq!(run.json()["notifications"]["queued"], 0);
    assert_eq!(stack.count(Route::TelegramSend), 1);
    // What was done is persisted.
    let status = stack.status();
    assert_eq!(status["unblocked_total"], 1);
    assert_eq!(status["last_unblocked"], "ET-1");
    assert_eq!(status["notifications_pending"], 0);
    assert_eq!(status["ticks_total"], 1);
    assert_eq!(status["last_success_ts"], serde_json::Value::Null);

    // The next tick, with time to spare, finishes the job and delivers.
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(2), "advanced");
    assert_eq!(run.gate_outcome(3), "advanced");
    assert_eq!(stack.messages().len(), 3);
}

#[test]
fn the_deadline_report_is_printed_as_text_too() {
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .fault(Route::OrchAdvance, Fault::Latency { ms: 700 })
        .start();
    let run = stack.run(&["gate", "--deadline", "1"]);
    run.code(75)
        .stdout_has("gate: advanced task 1 (ET-1) testing → review")
        .stdout_has("gate: deferred/deadline task 2 (ET-2) testing")
        .stdout_has("notifications: 1 sent, 0 deduped, 0 queued, 0 dropped");
}

#[test]
fn a_busy_lock_prints_one_line_on_stderr_and_nothing_on_stdout() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let lock_path = stack.dir.path().join("state.sqlite.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    file.try_lock().unwrap();
    for format in ["text", "json"] {
        let run = stack.run(&["gate", "-o", format, "-v"]);
        run.code(75)
            .stdout_empty()
            .stderr_one_line(&["lock", lock_path.to_str().unwrap()]);
    }
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn task_list_down_beats_telegram_down() {
    // A message queued by an earlier tick cannot be delivered (Telegram is
    // down: 1) and the task list is unreachable (69): 69 wins.
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::TelegramSend, Fault::status(502))
        .start();
    stack.tick(&["gate"]).code(1);
    assert_eq!(stack.status()["notifications_pending"], 1);
    stack.sim.update(|w| {
        w.set_always_fault(Route::OrchTasks, Some(Fault::status(503)));
        w.set_always_fault(Route::TelegramSend, Some(Fault::status(502)));
    });
    let run = stack.tick(&["gate"]);
    run.code(69);
    assert_eq!(run.json()["gate"]["ran"], false);
    assert_eq!(stack.count(Route::TelegramSend), 2, "delivery was tried");
    assert_eq!(run.json()["notifications"]["queued"], 1);
    assert_eq!(stack.status()["notifications_pending"], 1);
}

#[test]
fn a_33_mib_answer_fails_one_unit_and_the_memory_stays_bounded() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .stuck(8, "testing", "In Progress")
        .fault(
            Route::OrchAdvance,
            Fault::Oversized {
                bytes: 33 * 1024 * 1024,
            },
        )
        .start();
    let (run, max_rss_kib) = stack.run_measured(&["gate", "-o", "json"]);
    run.code(1);
    assert_eq!(run.gate_outcome(7), "error");
    assert!(
        run.gate_unit(7)["detail"]
            .as_str()
            .unwrap()
            .contains("32 MiB"),
        "{run}"
    );
    assert_eq!(run.gate_outcome(8), "advanced");
    eprintln!("max RSS {max_rss_kib} KiB");
    assert!(max_rss_kib > 1024, "implausible max RSS {max_rss_kib} KiB");
    assert!(
        max_rss_kib < 100 * 1024,
        "peak RSS {} MiB, over 100 MiB",
        max_rss_kib / 1024
    );
}

#[test]
fn the_deadline_beats_a_failed_unit() {
    // Task 1's advance hangs up after 1.5 s (a failure), then the deadline
    // cuts the tick: 75 wins over 1.
    let stack = Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
        .fault(Route::OrchAdvance, Fault::Hang { ms: 1500 })
        .start();
    let run = stack.tick(&["gate", "--deadline", "1"]);
    run.code(75);
    assert_eq!(run.gate_outcome(1), "error");
    assert_eq!(run.gate_outcome(2), "deferred/deadline");
}

#[test]
fn a_broken_sidecar_beats_the_task_list_down() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| s.set_always_fault(Route::OrchTasks, Some(Fault::status(503))))
        .start();
    std::fs::write(stack.state_path(), b"not a database at all").unwrap();
    stack.run(&["gate"]).code(74).stdout_empty();
}

#[test]
fn a_config_error_beats_a_broken_sidecar() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set("reconcile", "max_actions", "\"many\"")
        .start();
    std::fs::write(stack.state_path(), b"not a database at all").unwrap();
    stack
        .run(&["gate"])
        .code(78)
        .stdout_empty()
        .stderr_one_line(&["max_actions"]);
}
