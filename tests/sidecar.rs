//! Sidecar faults end to end (docs/sidecar.md, docs/report.md): a sidecar that cannot
//! be opened, migrated or written is exit 74, one line on stderr naming the
//! path, no report, no peer contacted, and the file left byte for byte.

mod support;

use std::path::Path;

use support::*;

/// Exit 74 with one stderr line naming `path`, nothing on stdout, no peer
/// contacted.
fn refused_at(stack: &Stack, args: &[&str], path: &Path) {
    let run = stack.run(args);
    run.code(74)
        .stdout_empty()
        .stderr_one_line(&["sidecar", path.to_str().unwrap()]);
    assert!(
        stack.sim.requests().is_empty(),
        "a peer was contacted:\n{run}"
    );
}

/// An SQLite database at `path` whose `user_version` is `version`.
fn database_with_version(path: &Path, version: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE future (x INTEGER); PRAGMA user_version = {version};"
    ))
    .unwrap();
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_state_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let garbage = b"this is not a database, it is a shopping list\n".repeat(10);
    std::fs::write(stack.state_path(), &garbage).unwrap();
    refused_at(&stack, &["gate"], &stack.state_path());
    assert_eq!(std::fs::read(stack.state_path()).unwrap(), garbage);
    assert_eq!(stack.stage(7), "testing");
}

#[test]
fn a_sidecar_from_a_newer_binary_is_refused_and_left_alone() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    database_with_version(&stack.state_path(), 999);
    let before = std::fs::read(stack.state_path()).unwrap();
    refused_at(&stack, &["gate"], &stack.state_path());
    let run = stack.run(&["gate"]);
    run.stderr_has("newer");
    assert_eq!(std::fs::read(stack.state_path()).unwrap(), before);
    let files = files_in(stack.dir.path());
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with("-wal") || f.ends_with("-shm")),
        "{files:?}"
    );
}

#[test]
fn a_dry_run_against_a_newer_sidecar_is_refused_too() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    database_with_version(&stack.state_path(), 999);
    let before = std::fs::read(stack.state_path()).unwrap();
    let files = files_in(stack.dir.path());
    refused_at(&stack, &["gate", "--dry-run"], &stack.state_path());
    assert_eq!(std::fs::read(stack.state_path()).unwrap(), before);
    assert_eq!(files_in(stack.dir.path()), files, "dry-run wrote a file");
}

#[test]
fn a_dry_run_against_a_state_file_that_is_not_sqlite_is_refused() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    std::fs::write(stack.state_path(), b"garbage garbage garbage").unwrap();
    refused_at(&stack, &["gate", "-n"], &stack.state_path());
    assert_eq!(
        std::fs::read(stack.state_path()).unwrap(),
        b"garbage garbage garbage"
    );
}

#[test]
fn a_state_path_in_a_missing_directory_is_refused() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let path = stack.dir.path().join("no-such-dir").join("state.sqlite");
    refused_at(&stack, &["--state", path.to_str().unwrap(), "gate"], &path);
    assert!(!stack.dir.path().join("no-such-dir").exists());
    assert_eq!(stack.stage(7), "testing");
}

#[test]
fn a_state_path_under_a_regular_file_is_refused() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let file = stack.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("state.sqlite");
    refused_at(&stack, &["--state", path.to_str().unwrap(), "gate"], &path);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_state_path_in_a_read_only_directory_is_refused() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let dir = stack.dir.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o555);
    // Root (CI containers) writes through the mode bits: nothing to test.
    if std::fs::write(dir.join("probe"), b"").is_ok() {
        eprintln!("skipped: this user can write into a 0555 directory");
        return;
    }
    let path = dir.join("state.sqlite");
    refused_at(&stack, &["--state", path.to_str().unwrap(), "gate"], &path);
    set_mode(&dir, 0o755);
}

#[test]
fn a_healthy_sidecar_is_reused_across_ticks() {
    // The control: the same stack with a good (or no) sidecar ticks fine.
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.status()["ticks_total"], 2);
}

#[test]
fn root_refuses_to_write_into_the_service_user_s_state_directory() {
    use std::os::unix::fs::MetadataExt as _;
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("not root: nothing to refuse");
        return;
    }
    let state_dir = stack.dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    std::os::unix::fs::chown(&state_dir, Some(65534), Some(65534)).unwrap();
    let state = state_dir.join("state.sqlite");
    let run = stack.run(&["--state", state.to_str().unwrap(), "gate"]);
    run.code(74);
    run.stderr_has("sudo -u");
    assert!(
        std::fs::read_dir(&state_dir).unwrap().next().is_none(),
        "nothing created"
    );
    assert_eq!(stack.count(Route::OrchTasks), 0);
    // Reading is fine: status and a dry-run write nothing.
    stack
        .run(&["--state", state.to_str().unwrap(), "gate", "--dry-run"])
        .code(0);
}
