//! Secrets end to end (docs/configuration.md): where they are read from, in which
//! order, the permission warnings, and that none is ever printed. The
//! simulator answers 401 to a wrong credential, so "the tick worked" proves
//! which secret was used.

mod support;

use support::*;

const WRONG: &str = "wrong-orchestrator-token";

/// A stack whose `[orchestrator] token_file` holds a wrong token.
fn with_a_wrong_token_file() -> Stack {
    let mut stack = Test::new().stuck(7, "testing", "In Progress").start();
    std::fs::write(stack.dir.path().join("orchestrator.token"), WRONG).unwrap();
    stack.add_secret(WRONG);
    stack
}

/// `$CREDENTIALS_DIRECTORY` with `orchestrator-token` = the right token.
fn credentials_dir(stack: &Stack) -> String {
    let creds = stack.dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let token = creds.join("orchestrator-token");
    std::fs::write(&token, stack.sim.scenario().orchestrator_token).unwrap();
    set_mode(&token, 0o600);
    creds.display().to_string()
}

#[test]
fn the_wrong_token_file_alone_is_refused_by_the_orchestrator() {
    // The control of the next test: the simulator does check the token.
    let stack = with_a_wrong_token_file();
    let run = stack.tick(&["gate"]);
    run.code(69).stderr_has("401");
    assert_eq!(stack.stage(7), "testing");
}

#[test]
fn the_systemd_credential_beats_the_token_file() {
    let stack = with_a_wrong_token_file();
    let creds = credentials_dir(&stack);
    let run = stack.run_with_env(
        &["gate", "-o", "json"],
        &[("CREDENTIALS_DIRECTORY", creds.as_str())],
    );
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(stack.stage(7), "review");
}

#[test]
fn the_env_token_is_used_when_no_file_is_configured() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .unset("orchestrator", "token_file")
        .env("RECONCILE_ORCHESTRATOR_TOKEN", "orch-secret-token")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn no_token_anywhere_is_a_config_error_naming_every_place_looked() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .unset("orchestrator", "token_file")
        .start();
    stack
        .run(&["gate"])
        .code(78)
        .stdout_empty()
        .stderr_one_line(&["token_file", "RECONCILE_ORCHESTRATOR_TOKEN"]);
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn a_config_file_readable_by_others_draws_a_warning_naming_it() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    set_mode(&stack.config, 0o644);
    let run = stack.tick(&["gate"]);
    run.code(0)
        .stderr_has(stack.config.to_str().unwrap())
        .stderr_has("readable by others");
    assert_eq!(
        run.stderr.matches("readable by others").count(),
        1,
        "one warning, not one per use:\n{run}"
    );
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn group_readable_config_and_secrets_draw_no_warning() {
    // 0640 root:reconcile is the recommended deployment: the group reads,
    // nobody else does, nobody but the owner writes.
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    set_mode(&stack.config, 0o640);
    for secret in ["orchestrator.token", "plane.key", "telegram.token"] {
        set_mode(&stack.dir.path().join(secret), 0o640);
    }
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert!(!run.stderr.contains("WARN"), "{run}");
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn a_group_writable_secret_draws_a_warning_naming_it() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let key = stack.dir.path().join("plane.key");
    set_mode(&key, 0o660);
    let run = stack.tick(&["gate"]);
    run.code(0);
    let warned: Vec<&str> = run.stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warned.len(), 1, "{run}");
    assert!(warned[0].contains(key.to_str().unwrap()), "{run}");
    assert!(warned[0].contains("writable by its group"), "{run}");
}

#[test]
fn check_prints_the_permission_warning_once() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    set_mode(&stack.config, 0o644);
    for args in [&["check", "--offline"][..], &["check"][..]] {
        let run = stack.run(args);
        run.code(0);
        let both = format!("{}{}", run.stdout, run.stderr);
        assert_eq!(
            both.matches("readable by others").count(),
            1,
            "{args:?} prints the warning once:\n{run}"
        );
        run.stdout_has(stack.config.to_str().unwrap());
    }
}

#[test]
fn a_secret_file_readable_by_others_draws_a_warning_naming_it() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let key = stack.dir.path().join("plane.key");
    set_mode(&key, 0o644);
    let run = stack.tick(&["gate"]);
    run.code(0)
        .stderr_has(key.to_str().unwrap())
        .stderr_has("readable by others");
    assert!(
        !run.stderr.contains(stack.config.to_str().unwrap()),
        "the 0600 config is not warned about:\n{run}"
    );
}

#[test]
fn private_files_draw_no_permission_warning() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert!(!run.stderr.contains("readable by"), "{run}");
}

#[test]
fn a_plane_key_rejected_with_403_prints_the_error_but_no_secret() {
    // `Stack::run` asserts on every run that no secret is in the output.
    // Plane answers a wrong key with 403, not 401 (docs/plane.md).
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack
        .sim
        .update(|w| w.plane_api_key = "rotated-plane-key".into());
    let run = stack.tick(&["gate", "-v"]);
    run.code(1);
    assert_eq!(run.gate_outcome(7), "skipped/plane_unresolved");
    let detail = run.gate_unit(7)["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("403"), "{run}");
    assert!(detail.contains(&stack.sim.plane_url()), "{run}");
    let run = stack.run(&["gate", "-v"]);
    run.code(1).stdout_has("403").stderr_has("403");
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

#[test]
fn a_bot_token_rejected_with_401_prints_the_url_redacted() {
    // Telegram rotated its token: sendMessage, whose URL path carries the
    // bot token, answers 401 and the message is dropped.
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack
        .sim
        .update(|w| w.telegram_bot_token = "999:rotated-telegram-token".into());
    let run = stack.tick(&["gate", "-v"]);
    run.code(1);
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.json()["notifications"]["dropped"], 1);
    assert_eq!(stack.count(Route::TelegramSend), 1);
    assert!(stack.messages().is_empty());
    run.stderr_has("401")
        .stderr_has(&format!("{}/bot***/sendMessage", stack.sim.telegram_url()));
    assert_eq!(stack.status()["notifications_dropped_total"], 1);
}

#[test]
fn rust_log_trace_never_prints_a_secret() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .issue(10, "To Analyse")
        .start();
    // The HTTP stack would log URLs (the bot token) and raw headers (the
    // keys) at trace; the builder checks every run's output for secrets.
    let run = stack.run_with_env(&["all"], &[("RUST_LOG", "trace")]);
    run.code(0);
    assert!(run.stderr.contains("unblocked"), "{run}");
}

/// Replaces `path` with a FIFO. Should the binary open it anyway (the bug),
/// a writer comes after 30 s so that the test fails instead of hanging.
fn fifo_at(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let _ = std::fs::OpenOptions::new().write(true).open(&path);
    });
}

#[test]
fn a_fifo_at_the_config_path_is_refused_promptly() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    fifo_at(&stack.config);
    let started = std::time::Instant::now();
    let run = stack.run(&["gate"]);
    run.code(78)
        .stdout_empty()
        .stderr_one_line(&[stack.config.to_str().unwrap(), "FIFO"]);
    // Generous: the point is "not blocked until a writer comes".
    assert!(started.elapsed().as_secs() < 20, "{run}");
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn a_fifo_at_a_secret_file_path_is_refused_promptly_naming_the_key() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let key = stack.dir.path().join("plane.key");
    fifo_at(&key);
    let started = std::time::Instant::now();
    let run = stack.run(&["gate"]);
    run.code(78).stdout_empty().stderr_one_line(&[
        "[plane] api_key_file",
        key.to_str().unwrap(),
        "FIFO",
    ]);
    assert!(started.elapsed().as_secs() < 20, "{run}");
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn a_secret_file_with_a_bad_byte_is_refused_naming_the_file() {
    for (content, why) in [
        (&b"inner-s3cr3t\nsecond-line\n"[..], "line break"),
        (b"inner-s3cr3t\0tail\n", "NUL"),
        (b"inner-s3cr3t\xc3\xa9\n", "non-ASCII"),
        (b"inner-s3cr3t\xff\n", "non-ASCII"),
        (b"inner-s3cr3t tail\n", "whitespace"),
        (b" \n", "empty"),
    ] {
        let mut stack = Test::new().stuck(7, "testing", "In Progress").start();
        stack.add_secret("inner-s3cr3t");
        let token = stack.dir.path().join("orchestrator.token");
        std::fs::write(&token, content).unwrap();
        let run = stack.run(&["gate"]);
        run.code(78).stdout_empty().stderr_one_line(&[
            "[orchestrator] token_file",
            token.to_str().unwrap(),
            why,
        ]);
        assert!(stack.sim.requests().is_empty(), "{why}");
        assert_eq!(stack.stage(7), "testing");
    }
}

#[test]
fn a_trailing_newline_and_spaces_around_a_secret_are_not_part_of_it() {
    // The simulator answers 401 to anything but the exact token.
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let token = stack.dir.path().join("orchestrator.token");
    let value = stack.sim.scenario().orchestrator_token;
    std::fs::write(&token, format!("  {value} \r\n")).unwrap();
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.stage(7), "review");
}

#[test]
fn a_bad_secret_in_the_environment_is_refused_naming_the_variable() {
    let mut stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .unset("orchestrator", "token_file")
        .start();
    stack.add_secret("env-s3cr3t");
    let run = stack.run_with_env(
        &["gate"],
        &[("RECONCILE_ORCHESTRATOR_TOKEN", "env-s3cr3t\u{1b}[2J")],
    );
    run.code(78)
        .stdout_empty()
        .stderr_one_line(&["RECONCILE_ORCHESTRATOR_TOKEN", "control character"]);
    assert!(stack.sim.requests().is_empty());
}

#[test]
fn a_password_in_a_peer_url_is_never_printed() {
    // Port 1 on loopback: nothing listens, so the error names the URL.
    let mut stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set(
            "orchestrator",
            "url",
            "\"http://admin:hunter2-pw@127.0.0.1:1\"",
        )
        .start();
    stack.add_secret("hunter2-pw");
    let run = stack.run(&["gate", "-v"]);
    run.code(69).stderr_has("127.0.0.1:1");
    let run = stack.run(&["check", "-o", "json"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stdout.contains("127.0.0.1:1"), "{run}");
}
