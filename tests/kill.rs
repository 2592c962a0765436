//! kill -9 at any instant leaves the sidecar consistent: the next tick
//! loses no queued message and repeats one only when Telegram accepted it
//! but the tick died before marking it sent (docs/sidecar.md).

mod support;

use support::*;

/// A request that is recorded at once and never answered: the tick is
/// killed while it waits.
fn hang() -> Fault {
    Fault::Hang { ms: 30_000 }
}

/// Answered normally (a zero delay).
fn pass() -> Fault {
    Fault::Latency { ms: 0 }
}

fn two_stuck() -> Test {
    Test::new()
        .stuck(1, "testing", "In Progress")
        .stuck(2, "testing", "In Progress")
}

fn assert_consistent(stack: &Stack) {
    let run = stack.tick(&["gate"]);
    run.code(0);
    let status = stack.status();
    assert_eq!(status["notifications_pending"], 0, "{status}");
    assert_eq!(status["unblocked_total"], 2, "{status}");
}

#[test]
fn killed_before_the_advance_answers_the_next_tick_does_it_all() {
    let stack = two_stuck().fault(Route::OrchAdvance, hang()).start();
    stack.kill_at(&["gate"], Route::OrchAdvance, 1);
    assert!(stack.messages().is_empty());
    assert_consistent(&stack);
    let mut messages = stack.messages();
    messages.sort();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("ET-1") && messages[1].contains("ET-2"));
}

#[test]
fn killed_between_recording_an_unblock_and_sending_it_loses_nothing() {
    // Task 1 advances and is recorded; the tick dies during task 2's advance.
    let stack = two_stuck()
        .fault(Route::OrchAdvance, pass())
        .fault(Route::OrchAdvance, hang())
        .start();
    stack.kill_at(&["gate"], Route::OrchAdvance, 2);
    assert!(stack.messages().is_empty());
    let status = stack.status();
    assert_eq!(status["unblocked_total"], 1);
    assert_eq!(status["notifications_pending"], 1);
    assert_consistent(&stack);
    let mut messages = stack.messages();
    messages.sort();
    assert_eq!(messages.len(), 2, "each message exactly once: {messages:?}");
    assert!(messages[0].contains("ET-1") && messages[1].contains("ET-2"));
}

#[test]
fn killed_during_the_send_delivers_on_the_next_tick() {
    let stack = two_stuck().fault(Route::TelegramSend, hang()).start();
    stack.kill_at(&["gate"], Route::TelegramSend, 1);
    assert!(stack.messages().is_empty());
    assert_eq!(stack.status()["notifications_pending"], 2);
    assert_consistent(&stack);
    assert_eq!(stack.messages().len(), 2, "{:?}", stack.messages());
}

#[test]
fn lost_between_telegrams_ok_and_the_mark_repeats_that_message_once() {
    // Telegram accepts the first message but the answer never arrives.
    let stack = two_stuck()
        .fault(Route::TelegramSend, Fault::ResetAfterEffect)
        .start();
    stack.tick(&["gate"]).code(1);
    assert_eq!(stack.messages().len(), 2);
    assert_consistent(&stack);
    let messages = stack.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(
        messages[2], messages[0],
        "only the unconfirmed one is repeated"
    );
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.messages().len(), 3, "and only once");
}

#[test]
fn killed_while_holding_the_lock_leaves_no_stale_lock() {
    let stack = two_stuck().fault(Route::OrchTasks, hang()).start();
    stack.kill_at(&["gate"], Route::OrchTasks, 1);
    // The lock died with the process: the next tick is not blocked.
    assert_consistent(&stack);
    assert_eq!(stack.messages().len(), 2);
}

#[test]
fn killed_while_the_advance_post_is_in_flight_announces_once() {
    // The orchestrator advances task 1 and holds its answer: the tick dies
    // with the effect done and unknown to it. Its intent was committed
    // before the request, so the next tick finds the stage moved.
    let stack = two_stuck()
        .fault(Route::OrchAdvance, Fault::HangAfterEffect { ms: 30_000 })
        .start();
    stack.kill_at(&["gate"], Route::OrchAdvance, 1);
    assert_eq!(stack.stage(1), "review", "the advance happened");
    assert!(stack.messages().is_empty());
    assert_consistent(&stack);
    let mut messages = stack.messages();
    messages.sort();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("ET-1") && messages[1].contains("ET-2"));
    // Exactly once: a further tick announces nothing more.
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.messages().len(), 2, "{:?}", stack.messages());
}

#[test]
fn killed_while_the_replay_is_in_flight_announces_once() {
    // The lost Approved verdict is replayed; the orchestrator applies it
    // and holds its answer while the tick is killed.
    let stack = Test::new()
        .issue_with_task(3, "Approved", "review")
        .fault(Route::OrchWebhook, Fault::HangAfterEffect { ms: 30_000 })
        .start();
    stack.kill_at(&["plane"], Route::OrchWebhook, 1);
    assert_ne!(stack.stage(3), "review", "the replay took effect");
    assert!(stack.messages().is_empty());
    stack.tick(&["plane"]).code(0);
    let status = stack.status();
    assert_eq!(status["unblocked_total"], 1, "{status}");
    assert_eq!(status["notifications_pending"], 0, "{status}");
    let messages = stack.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("ET-3"), "{messages:?}");
    stack.tick(&["plane"]).code(0);
    assert_eq!(stack.messages().len(), 1, "{:?}", stack.messages());
}
