//! Configuration end to end (docs/configuration.md): every error is exit 78 with one
//! line on stderr naming the key and nothing on stdout; the grace
//! overrides JSON never raises.

mod support;

use reconcile::sim::SimTask;
use support::*;

/// A config error: exit 78, one stderr line naming `parts`, no report, and
/// no peer contacted.
fn refused(stack: &Stack, parts: &[&str]) {
    refused_with_env(stack, &[], parts);
}

fn refused_with_env(stack: &Stack, env: &[(&str, &str)], parts: &[&str]) {
    let run = stack.run_with_env(&["gate"], env);
    run.code(78).stdout_empty().stderr_one_line(parts);
    assert!(stack.sim.requests().is_empty(), "a peer was contacted");
    assert!(!stack.state_path().exists(), "the sidecar was created");
}

#[test]
fn an_unknown_top_level_key_is_refused_by_name() {
    let stack = Test::new().set("colour", "shade", "1").start();
    refused(&stack, &["colour"]);
}

#[test]
fn an_unknown_key_in_reconcile_is_refused_by_name() {
    let stack = Test::new()
        .set("reconcile", "grace_defualt_s", "60")
        .start();
    refused(&stack, &["grace_defualt_s", "reconcile"]);
}

#[test]
fn an_unknown_key_in_a_project_is_refused_by_name() {
    let stack = Test::new()
        .append("[[projects]]\nrepo = \"acme/web\"\nplane_project_id = \"p2\"\ncolour = \"red\"\n")
        .start();
    refused(&stack, &["colour", "projects"]);
}

#[test]
fn a_missing_orchestrator_url_is_refused_by_name() {
    let stack = Test::new().unset("orchestrator", "url").start();
    refused(&stack, &["url", "orchestrator"]);
}

#[test]
fn a_missing_plane_workspace_is_refused_by_name() {
    let stack = Test::new().unset("plane", "workspace").start();
    refused(&stack, &["workspace", "plane"]);
}

#[test]
fn a_non_integer_default_grace_is_refused_by_name() {
    let stack = Test::new()
        .set("reconcile", "grace_default_s", "\"15m\"")
        .start();
    refused(&stack, &["grace_default_s"]);
}

#[test]
fn a_non_integer_grace_override_in_the_file_is_refused_by_name() {
    let stack = Test::new()
        .append("[reconcile.grace_overrides]\nreview = \"abc\"\n")
        .start();
    refused(&stack, &["grace_overrides", "review"]);
}

#[test]
fn an_unreadable_token_file_is_refused_by_name() {
    let stack = Test::new()
        .set(
            "orchestrator",
            "token_file",
            "\"/nonexistent/orchestrator.token\"",
        )
        .start();
    refused(&stack, &["token_file", "/nonexistent/orchestrator.token"]);
}

#[test]
fn a_missing_config_file_is_refused_by_path() {
    let stack = Test::new().start();
    std::fs::remove_file(&stack.config).unwrap();
    refused(&stack, &[stack.config.to_str().unwrap()]);
}

#[test]
fn a_bad_env_boolean_is_refused_naming_the_variable() {
    let stack = Test::new().start();
    refused_with_env(
        &stack,
        &[("ORCH_RECONCILE_ENABLED", "maybe")],
        &["ORCH_RECONCILE_ENABLED", "maybe"],
    );
}

#[test]
fn a_bad_value_in_the_grace_overrides_json_only_warns_and_the_good_key_applies() {
    // Both tasks are two hours old (default grace 900 s): review's override
    // from the env keeps task 8 young; testing's bad value is dropped, so
    // task 7 falls back to the default and is advanced.
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .stuck(8, "review", "In Progress")
        .append("[reconcile.grace_overrides]\ntesting = 99999\n")
        .env(
            "ORCH_RECONCILE_GRACE_OVERRIDES_JSON",
            r#"{"testing": "abc", "review": 99999}"#,
        )
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0)
        .stderr_has("ORCH_RECONCILE_GRACE_OVERRIDES_JSON")
        .stderr_has("testing");
    assert_eq!(run.gate_outcome(7), "advanced");
    assert_eq!(run.gate_outcome(8), "skipped/young");
}

#[test]
fn invalid_grace_overrides_json_only_warns_and_replaces_the_file_table() {
    // The env variable, set, replaces the file table even when it is not
    // JSON: the file's 99999 s for testing no longer applies.
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .append("[reconcile.grace_overrides]\ntesting = 99999\n")
        .env("ORCH_RECONCILE_GRACE_OVERRIDES_JSON", "{testing: 1")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0)
        .stderr_has("ORCH_RECONCILE_GRACE_OVERRIDES_JSON")
        .stderr_has("not valid JSON");
    assert_eq!(run.gate_outcome(7), "advanced");
}

#[test]
fn the_file_grace_override_applies_without_the_env() {
    // The control for the two tests above: the same file table keeps the
    // task young when the env variable is unset.
    let stack = Test::new()
        .task_in(SimTask::new(7, "testing").repo(REPO).green(), "In Progress")
        .append("[reconcile.grace_overrides]\ntesting = 99999\n")
        .start();
    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "skipped/young");
}

/// Every bounded key, one value out of its range: exit 78 naming the key
/// (values ≥ 2^63 used to panic with exit 101).
#[test]
fn out_of_range_numbers_are_refused_by_name_never_a_panic() {
    for (section, key, value) in [
        ("orchestrator", "timeout_s", "9223372036854775808"),
        ("orchestrator", "timeout_s", "301"),
        ("orchestrator", "webhook_timeout_s", "0"),
        ("plane", "timeout_s", "18446744073709551615"),
        ("telegram", "timeout_s", "301"),
        ("reconcile", "deadline_s", "3601"),
        ("reconcile", "max_actions", "9223372036854775808"),
        ("reconcile", "max_developer_retries", "-1"),
        ("reconcile", "interval_s", "9223372036854775808"),
        ("state", "states_cache_ttl_s", "9223372036854775808"),
        ("plane", "per_page", "1001"),
        ("plane", "max_pages", "0"),
        ("plane", "concurrency", "33"),
        ("plane", "rate_reserve", "9223372036854775808"),
        ("plane", "full_resync_s", "9223372036854775808"),
        ("plane", "resync_overlap_s", "9223372036854775808"),
        ("telegram", "digest_over", "1001"),
        // Not below the deadline (50 s by default).
        ("telegram", "delivery_reserve_s", "50"),
    ] {
        let stack = Test::new().set(section, key, value).start();
        let run = stack.run(&["gate"]);
        assert_eq!(run.code, 78, "{section}.{key} = {value}: {run}");
        run.stdout_empty()
            .stderr_one_line(&[&format!("[{section}] {key}"), "between"]);
        assert!(stack.sim.requests().is_empty(), "a peer was contacted");
    }
}

#[test]
fn a_delivery_reserve_below_the_deadline_is_accepted() {
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .set("telegram", "delivery_reserve_s", "0")
        .set("plane", "max_pages", "1")
        .start();
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.stage(7), "review");
}

#[test]
fn an_out_of_range_env_deadline_is_refused_by_name() {
    let stack = Test::new().start();
    refused_with_env(
        &stack,
        &[("ORCH_RECONCILE_DEADLINE_S", "9000000000000000000")],
        &["ORCH_RECONCILE_DEADLINE_S", "between"],
    );
}

/// `--wait-lock` and `--deadline` out of range: 78 naming the option on
/// every command that takes them (9300000000000000000 used to panic).
#[test]
fn out_of_range_options_are_refused_by_name_never_a_panic() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    for args in [
        &["gate", "--wait-lock", "9300000000000000000"][..],
        &["forget", "ET-7", "--wait-lock", "9300000000000000000"],
        &["outbox", "drop", "1", "--wait-lock", "9300000000000000000"],
        &["all", "--wait-lock", "86401"],
        &["gate", "--deadline", "3601"],
        &["gate", "--deadline", "0"],
    ] {
        let run = stack.run(args);
        assert_eq!(run.code, 78, "{args:?}: {run}");
        let option = if args.contains(&"--deadline") {
            "--deadline"
        } else {
            "--wait-lock"
        };
        run.stdout_empty().stderr_one_line(&[option, "between"]);
    }
    // The bounds themselves are accepted.
    stack
        .run(&["forget", "ET-7", "--wait-lock", "86400"])
        .code(0);
}

#[test]
fn a_workspace_that_is_not_a_slug_is_refused_by_name() {
    for bad in ["\"a#b\"", "\"a?b\"", "\"a%2Fb\"", "\"a/b\"", "\"a b\""] {
        let stack = Test::new().set("plane", "workspace", bad).start();
        refused(&stack, &["[plane] workspace", "slug"]);
    }
}

#[test]
fn an_empty_template_is_refused_by_name() {
    for key in ["unblock_template", "cycle_template"] {
        let stack = Test::new().set("telegram", key, "\" \"").start();
        refused(&stack, &[&format!("[telegram] {key}"), "empty"]);
    }
}
