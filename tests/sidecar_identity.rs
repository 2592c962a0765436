//! Whose file the sidecar is, and which lock guards it (docs/sidecar.md):
//! two paths to one database share one lock; another application's SQLite
//! file is refused byte for byte untouched while today's sidecars are
//! adopted; a FIFO or device where the sidecar or its lock should be fails
//! fast; a full disk is reported with the file and the cause.

mod support;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

/// "RCN1", as `PRAGMA application_id` stores it in bytes 68..72.
const RCN1: u32 = 0x5243_4E31;

/// The schema a sidecar had before the application id, exactly as the
/// binary of that time created it (user_version 2).
const OLD_SCHEMA_V2: &str = "
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE dedup (
    key        TEXT PRIMARY KEY,
    stage      TEXT NOT NULL,
    state_uuid TEXT,
    touched_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX dedup_touched_at ON dedup(touched_at);

CREATE TABLE history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    pass         TEXT NOT NULL CHECK (pass IN ('gate', 'plane')),
    key          TEXT NOT NULL,
    task_id      INTEGER,
    issue_id     TEXT,
    work_item_id TEXT,
    stage        TEXT NOT NULL,
    state_uuid   TEXT,
    text         TEXT NOT NULL,
    outbox_id    INTEGER REFERENCES outbox(id) ON DELETE SET NULL
);
CREATE INDEX history_at ON history(at);
CREATE INDEX history_outbox_id ON history(outbox_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('unblock', 'cycle')),
    text            TEXT NOT NULL,
    digest_line     TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'dropped')),
    sent_at         TEXT,
    dropped_at      TEXT,
    history_id      INTEGER REFERENCES history(id) ON DELETE SET NULL
);
CREATE INDEX outbox_status ON outbox(status, next_attempt_at);
CREATE INDEX outbox_history_id ON outbox(history_id);

CREATE TABLE ticks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    command     TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    counts      TEXT NOT NULL,
    exit_code   INTEGER NOT NULL
);
CREATE INDEX ticks_started_at ON ticks(started_at);

CREATE TABLE states_cache (
    project_id  TEXT PRIMARY KEY,
    fetched_at  TEXT NOT NULL,
    states_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mirror_sync (
    project_id      TEXT PRIMARY KEY,
    last_full_at    TEXT NOT NULL,
    last_started_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mirror_issue (
    project_id  TEXT NOT NULL,
    issue_id    TEXT NOT NULL,
    state       TEXT,
    updated_at  TEXT,
    sequence_id INTEGER,
    raw_json    TEXT NOT NULL,
    PRIMARY KEY (project_id, issue_id)
) WITHOUT ROWID;

CREATE TABLE cycles (
    key        TEXT PRIMARY KEY,
    alerted_at TEXT NOT NULL,
    text       TEXT NOT NULL
) WITHOUT ROWID;
";

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `PRAGMA application_id` and `user_version`, read from the header bytes.
fn header_ids(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(68), be(60))
}

/// Runs `args` on another thread and fails the test if the binary has not
/// exited within 30 s (a FIFO open blocks for ever).
fn run_bounded(stack: &Stack, args: &[&str]) -> Run {
    let (tx, rx) = mpsc::channel();
    let config = stack.config.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reconcile"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_PROXY", "127.0.0.1")
            .arg("--config")
            .arg(config)
            .args(&args)
            .output()
            .unwrap();
        let _ = tx.send(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the binary blocked instead of refusing the file")
}

// -- lock identity -----------------------------------------------------------

#[test]
fn a_symlink_to_the_sidecar_shares_its_lock() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    // Warm: the sidecar exists, the task is stuck again afterwards.
    stack.tick(&["gate", "--dry-run"]).code(0);
    let real = stack.state_path();
    let link = stack.dir.path().join("link.sqlite");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let link_arg = link.to_str().unwrap();

    {
        // A tick through the real path holds the lock…
        // (A wait, not one attempt: a child another test forks may hold
        // a copy of a just-closed lock fd until it execs.)
        let _held = reconcile::harness::TickLock::acquire(&real, Duration::from_secs(10)).unwrap();
        // …so a tick through the link must wait, and acts on nothing.
        let run = stack.run(&["--state", link_arg, "gate"]);
        run.code(75).stdout_empty().stderr_has("lock");
        assert_eq!(stack.count(Route::OrchAdvance), 0, "{run}");
    }
    {
        // The other way round: held through the link, refused on the path.
        let _held = reconcile::harness::TickLock::acquire(&link, Duration::from_secs(10)).unwrap();
        stack.run(&["gate"]).code(75);
        assert_eq!(stack.count(Route::OrchAdvance), 0);
    }
    // Released: one tick through the link advances once, the next has
    // nothing left to do.
    stack.tick(&["--state", link_arg, "gate"]).code(0);
    assert_eq!(stack.count(Route::OrchAdvance), 1);
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.count(Route::OrchAdvance), 1);
    assert_eq!(stack.messages().len(), 1);
    // One lock file, beside the real sidecar.
    let files = files_in(stack.dir.path());
    assert!(
        files.contains(&"state.sqlite.lock".to_string()),
        "{files:?}"
    );
    assert!(
        !files.contains(&"link.sqlite.lock".to_string()),
        "{files:?}"
    );
}

#[test]
fn a_symlinked_directory_and_a_not_yet_created_sidecar_share_the_lock() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let real_dir = stack.dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let alias_dir = stack.dir.path().join("alias");
    std::os::unix::fs::symlink(&real_dir, &alias_dir).unwrap();
    // Neither file exists yet: the first tick creates it.
    let real = real_dir.join("state.sqlite");
    let via_alias: PathBuf = alias_dir.join("state.sqlite");
    let _held = reconcile::harness::TickLock::acquire(&real, Duration::ZERO).unwrap();
    stack
        .run(&["--state", via_alias.to_str().unwrap(), "gate"])
        .code(75);
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    assert!(
        !real.exists(),
        "a tick that did not get the lock made no sidecar"
    );
}

// -- application id ------------------------------------------------------------

/// Another application's database at `path`: a table of its own, rollback
/// journal, the given user_version and application id.
fn foreign_db(path: &Path, user_version: i64, application_id: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes (body) VALUES ('keep me');",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", user_version)
        .unwrap();
    conn.pragma_update(None, "application_id", application_id)
        .unwrap();
    conn.close().unwrap();
}

#[test]
fn another_application_s_database_is_refused_byte_for_byte_untouched() {
    for (version, app_id) in [(1, 0), (2, 0), (2, 0x1234_5678)] {
        let stack = Test::new().stuck(7, "testing", "In Progress").start();
        let path = stack.state_path();
        foreign_db(&path, version, app_id);
        let before = std::fs::read(&path).unwrap();
        let listing = files_in(stack.dir.path());
        for args in [
            &["gate"][..],
            &["gate", "--dry-run"],
            &["status"],
            &["forget", "ET-7"],
        ] {
            let run = stack.run(args);
            run.code(74)
                .stdout_empty()
                .stderr_one_line(&["sidecar", path.to_str().unwrap()]);
            assert!(
                run.stderr.contains("not a reconcile sidecar")
                    || run.stderr.contains("another application"),
                "user_version {version}, {args:?}:\n{run}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "user_version {version}, {args:?}: the file changed"
            );
            // The lock file of a live command may appear; nothing of SQLite's.
            let mut now = files_in(stack.dir.path());
            now.retain(|f| f != "state.sqlite.lock");
            assert_eq!(
                now, listing,
                "user_version {version}, {args:?}: a -wal/-shm/-journal appeared"
            );
        }
        assert_eq!(stack.count(Route::OrchAdvance), 0);
        assert!(stack.sim.requests().is_empty(), "a peer was contacted");
    }
}

#[test]
fn a_sidecar_made_before_the_application_id_is_adopted_once() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let path = stack.state_path();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(OLD_SCHEMA_V2).unwrap();
        conn.execute_batch(
            "INSERT INTO counters (name, value) VALUES ('unblocked_total', 5);
             INSERT INTO counters (name, value) VALUES ('ticks_total', 9);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        conn.close().unwrap();
    }
    assert_eq!(header_ids(&path), (0, 2));
    // Reading it before adoption is fine and changes nothing.
    let before = std::fs::read(&path).unwrap();
    assert_eq!(stack.status()["ticks_total"], 9);
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let run = stack.tick(&["gate"]);
    run.code(0);
    assert_eq!(run.gate_outcome(7), "advanced", "{run}");
    let (app_id, version) = header_ids(&path);
    assert_eq!(app_id, RCN1, "adopted: stamped with reconcile's id");
    assert!(version > 2, "migrated forward, user_version {version}");
    let status = stack.status();
    assert_eq!(status["ticks_total"], 10, "{status}");
    assert_eq!(status["unblocked_total"], 6, "{status}");
    stack.tick(&["gate"]).code(0);
}

#[test]
fn a_new_sidecar_gets_the_application_id() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack.tick(&["gate"]).code(0);
    let (app_id, version) = header_ids(&stack.state_path());
    assert_eq!(app_id, RCN1);
    assert!(version >= 3, "user_version {version}");
    // What the new binary wrote it reads again.
    stack.tick(&["gate"]).code(0);
    assert_eq!(stack.status()["ticks_total"], 2);
}

// -- special files -------------------------------------------------------------

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn a_fifo_at_the_sidecar_path_fails_fast_naming_it() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let path = stack.state_path();
    mkfifo(&path);
    for args in [&["gate"][..], &["gate", "--dry-run"], &["status"]] {
        let run = run_bounded(&stack, args);
        run.code(74)
            .stderr_one_line(&[path.to_str().unwrap(), "FIFO"]);
    }
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

#[test]
fn a_fifo_behind_a_symlinked_sidecar_path_fails_fast_too() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let fifo = stack.dir.path().join("pipe");
    mkfifo(&fifo);
    let link = stack.dir.path().join("state-link.sqlite");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let run = run_bounded(&stack, &["--state", link.to_str().unwrap(), "gate"]);
    run.code(74).stderr_has("FIFO");
}

#[test]
fn a_fifo_at_the_lock_path_fails_fast_naming_it() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let lock = stack.dir.path().join("state.sqlite.lock");
    mkfifo(&lock);
    let run = run_bounded(&stack, &["gate"]);
    run.code(74)
        .stderr_one_line(&[lock.to_str().unwrap(), "FIFO"]);
    assert_eq!(stack.count(Route::OrchAdvance), 0);
    // `check` probes the lock without blocking on it either.
    let run = run_bounded(&stack, &["check"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stdout.contains("FIFO"), "{run}");
}

#[test]
fn a_character_device_at_the_sidecar_path_is_refused() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    for args in [
        &["--state", "/dev/zero", "gate"][..],
        &["--state", "/dev/zero", "gate", "-n"],
    ] {
        let run = run_bounded(&stack, args);
        run.code(74)
            .stderr_one_line(&["/dev/zero", "character device"]);
    }
    assert!(
        !Path::new("/dev/zero.lock").exists(),
        "no lock file beside a device"
    );
    assert_eq!(stack.count(Route::OrchAdvance), 0);
}

// -- full disk -------------------------------------------------------------------

/// A tiny tmpfs at `dir`, unmounted when dropped. `None` where this user
/// cannot mount (not root, or no CAP_SYS_ADMIN in the container).
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> Option<TinyDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(dir.to_path_buf()))
    }

    /// Writes a filler file until the disk refuses another byte.
    fn fill(&self) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|()| f.sync_all()).is_ok() {}
        let mut byte = 0u8;
        while f
            .write_all(std::slice::from_mut(&mut byte))
            .and_then(|()| f.sync_all())
            .is_ok()
        {
            byte = byte.wrapping_add(1);
        }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_the_sidecar_and_the_cause() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    let Some(disk) = TinyDisk::mount(&stack.dir.path().join("disk")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let path = disk.0.join("state.sqlite");
    let arg = path.to_str().unwrap();
    create_sidecar(&path);
    disk.fill();
    let run = stack.run(&["--state", arg, "gate"]);
    run.code(74)
        .stderr_one_line(&["sidecar", arg, "no space left on device"]);
    // The file SQLite failed on is named, not just "disk I/O error".
    assert!(run.stderr.contains("file: "), "{run}");
    // Nothing was advanced that could not be recorded.
    assert_eq!(stack.count(Route::OrchAdvance), 0, "{run}");
    // The probe that found the cause left nothing behind.
    let files = files_in(&disk.0);
    assert!(!files.iter().any(|f| f.contains("probe")), "{files:?}");
    // Space again: the next tick works and acts.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    stack.tick(&["--state", arg, "gate"]).code(0);
    assert_eq!(stack.count(Route::OrchAdvance), 1);
}
