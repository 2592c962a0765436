use super::*;
use crate::core::outcome::Reason;
use std::collections::BTreeMap;

use super::dedup::*;
use super::file::SQLITE_MAGIC;
use super::outbox::*;
use super::schema::SCHEMA_VERSION;
use super::ticks::*;
use rusqlite::Connection;
use std::time::Instant;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-27 10:00:00 UTC);

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    (dir, path)
}

/// A fresh live sidecar in a temp dir (for the unit tests of every table).
pub(super) fn open() -> (tempfile::TempDir, Sidecar) {
    let (dir, path) = tmp();
    let s = Sidecar::open(&path).unwrap();
    (dir, s)
}

/// Sorted file names in a directory.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn unblock(key: &str, stage: &str, state: Option<&str>, queue: bool) -> Unblock {
    Unblock {
        announcement: Announcement {
            key: key.to_string(),
            pass: Pass::Gate,
            task_id: Some(7),
            issue_id: Some("issue-7".to_string()),
            work_item_id: Some(key.to_string()),
            stage: stage.to_string(),
            state_uuid: state.map(str::to_string),
        },
        text: format!("🔧 reconciler: {key} {stage} разблокирована"),
        digest_line: format!("{key} {stage}"),
        queue,
    }
}

fn tick(command: &str, exit_code: i32) -> TickRecord {
    TickRecord {
        command: command.to_string(),
        started_at: T0,
        duration_ms: 1200,
        counts: BTreeMap::new(),
        skips: BTreeMap::new(),
        exit_code,
        errors: 0,
        skipped_terminal: 0,
        deduped_keys: vec![],
        cursors: vec![],
        series: BTreeMap::new(),
        plane_projects_unread: 0,
        plane_oldest_sync_at: None,
    }
}

fn counter(sc: &Sidecar, name: &str) -> i64 {
    sc.conn
        .borrow()
        .query_row(
            "SELECT COALESCE((SELECT value FROM counters WHERE name = ?1), 0)",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

fn count(sc: &Sidecar, table: &str) -> i64 {
    sc.conn
        .borrow()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A plain SQLite file with the given user_version (rollback journal).
fn foreign_db(path: &Path, version: i64, wal: bool) {
    let conn = Connection::open(path).unwrap();
    if wal {
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.close().unwrap();
}

// -- formats ------------------------------------------------------------------

#[test]
fn timestamps_are_rfc3339_utc_seconds() {
    assert_eq!(format_ts(T0), "2026-11-27T10:00:00Z");
    let local = datetime!(2026-11-27 13:00:00.750 +03:00);
    assert_eq!(format_ts(local), "2026-11-27T10:00:00Z");
}

#[test]
fn lock_path_appends_suffix() {
    assert_eq!(
        lock_path(Path::new("/var/lib/reconcile/state.sqlite")),
        PathBuf::from("/var/lib/reconcile/state.sqlite.lock")
    );
}

#[test]
fn file_uri_escapes_specials() {
    let uri = file_uri(Path::new("/tmp/a b?c#d%e.sqlite"), "mode=ro").unwrap();
    assert_eq!(uri, "file:/tmp/a%20b%3Fc%23d%25e.sqlite?mode=ro");
}

// -- open, migrate ---------------------------------------------------------------

#[test]
fn migrates_from_empty_and_reopen_keeps_data() {
    let (dir, path) = tmp();
    {
        let mut sc = Sidecar::open(&path).unwrap();
        assert_eq!(
            user_version(&sc.conn.borrow(), &path).unwrap(),
            SCHEMA_VERSION
        );
        let mode: String = sc
            .conn
            .borrow()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sc
            .conn
            .borrow()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        let fk: i64 = sc
            .conn
            .borrow()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        for table in ["counters", "kv", "dedup", "outbox", "history", "ticks"] {
            assert_eq!(count(&sc, table), 0, "{table}");
        }
        sc.record_unblock(&unblock("ET-7", "testing", Some("s1"), true), T0)
            .unwrap();
        sc.close().unwrap();
    }
    // A clean close leaves only the database file.
    assert_eq!(listing(dir.path()), vec!["state.sqlite"]);
    let sc = Sidecar::open(&path).unwrap();
    assert_eq!(
        sc.last_announced("ET-7").unwrap(),
        Some(("testing".to_string(), Some("s1".to_string())))
    );
    assert_eq!(sc.snapshot().unwrap().unblocked_total, 1);
    assert_eq!(sc.pending_count().unwrap(), 1);
}

#[test]
fn missing_directory_is_named() {
    let (dir, _) = tmp();
    let path = dir.path().join("nope").join("state.sqlite");
    let err = Sidecar::open(&path).unwrap_err();
    assert_eq!(err.kind(), &SidecarErrorKind::MissingDirectory);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("sidecar {}: ", path.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}", dir.path().join("nope").display())),
        "{msg}"
    );
    assert!(!dir.path().join("nope").exists());
}

fn assert_untouched(dir: &Path, path: &Path, before_list: &[String], before: &[u8]) {
    assert_eq!(listing(dir), before_list);
    assert_eq!(std::fs::read(path).unwrap(), before);
}

#[test]
fn newer_schema_is_refused_untouched() {
    for wal in [false, true] {
        let (dir, path) = tmp();
        foreign_db(&path, SCHEMA_VERSION + 98, wal);
        let list = listing(dir.path());
        let bytes = std::fs::read(&path).unwrap();

        let err = Sidecar::open(&path).unwrap_err();
        assert_eq!(
            err.kind(),
            &SidecarErrorKind::NewerSchema {
                found: SCHEMA_VERSION + 98,
                known: SCHEMA_VERSION
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "sidecar {}: schema version {} is newer than this reconcile understands ({}); \
                 refusing to touch it",
                path.display(),
                SCHEMA_VERSION + 98,
                SCHEMA_VERSION
            )
        );
        assert_untouched(dir.path(), &path, &list, &bytes);

        let err = SidecarReader::open(&path).unwrap_err();
        assert!(matches!(err.kind(), SidecarErrorKind::NewerSchema { .. }));
        assert_untouched(dir.path(), &path, &list, &bytes);
    }
}

#[test]
fn non_sqlite_file_is_refused_untouched() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut fake_header = SQLITE_MAGIC.to_vec();
    fake_header.extend_from_slice(&[0xff; 4080]);
    for content in [b"hello, I am a text file\n".to_vec(), garbage, fake_header] {
        let (dir, path) = tmp();
        std::fs::write(&path, &content).unwrap();
        let list = listing(dir.path());

        let err = Sidecar::open(&path).unwrap_err();
        assert_eq!(err.kind(), &SidecarErrorKind::NotADatabase, "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("sidecar {}: ", path.display())),
            "{err}"
        );
        assert!(err.to_string().contains("not a database"), "{err}");
        assert_untouched(dir.path(), &path, &list, &content);

        let err = SidecarReader::open(&path).unwrap_err();
        assert_eq!(err.kind(), &SidecarErrorKind::NotADatabase, "{err}");
        assert_untouched(dir.path(), &path, &list, &content);
    }
}

#[test]
fn corrupt_database_is_refused_untouched() {
    let (dir, path) = tmp();
    foreign_db(&path, 0, false);
    // Grow it to several pages, then smash a page past the header.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i FROM n;",
        )
        .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096);
    for b in &mut bytes[4096..8192] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let list = listing(dir.path());
    let err = Sidecar::open(&path).unwrap_err();
    // user_version 0 with tables: foreign; either way it is refused untouched.
    assert!(
        matches!(
            err.kind(),
            SidecarErrorKind::Foreign | SidecarErrorKind::NotADatabase
        ),
        "{err}"
    );
    assert_untouched(dir.path(), &path, &list, &bytes);
}

#[test]
fn corrupt_sidecar_is_refused_untouched() {
    let (dir, path) = tmp();
    {
        let mut sc = Sidecar::open(&path).unwrap();
        for i in 0..300 {
            let mut u = unblock(&format!("ET-{i}"), "testing", Some("s"), true);
            u.text = "x".repeat(200);
            sc.record_unblock(&u, T0).unwrap();
        }
        sc.close().unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 20 * 4096, "{}", bytes.len());
    let at = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[at..at + 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let list = listing(dir.path());
    let err = Sidecar::open(&path).unwrap_err();
    assert_eq!(err.kind(), &SidecarErrorKind::NotADatabase, "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_untouched(dir.path(), &path, &list, &bytes);
}

#[test]
fn foreign_database_is_refused_untouched() {
    let (dir, path) = tmp();
    foreign_db(&path, 0, false);
    let list = listing(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let err = Sidecar::open(&path).unwrap_err();
    assert_eq!(err.kind(), &SidecarErrorKind::Foreign, "{err}");
    assert_untouched(dir.path(), &path, &list, &bytes);
}

#[test]
fn empty_file_is_an_empty_sidecar() {
    let (_dir, path) = tmp();
    std::fs::write(&path, b"").unwrap();
    assert!(SidecarReader::open(&path).unwrap().is_none());
    let sc = Sidecar::open(&path).unwrap();
    assert_eq!(sc.snapshot().unwrap(), Snapshot::default());
}

// -- read-only --------------------------------------------------------------------

#[test]
fn read_only_missing_file_creates_nothing() {
    let (dir, path) = tmp();
    assert!(SidecarReader::open(&path).unwrap().is_none());
    assert!(listing(dir.path()).is_empty());
    // Nor does a missing directory.
    let deeper = dir.path().join("no").join("state.sqlite");
    assert!(SidecarReader::open(&deeper).unwrap().is_none());
    assert!(listing(dir.path()).is_empty());
}

fn populated(path: &Path) {
    let mut sc = Sidecar::open(path).unwrap();
    sc.record_unblock(&unblock("ET-1", "testing", Some("s1"), true), T0)
        .unwrap();
    sc.record_unblock(&unblock("ET-2", "review", None, false), T0)
        .unwrap();
    let mut rec = tick("all", 0);
    rec.counts.insert("skipped/young".into(), 3);
    rec.skips.insert(Reason::Young, 3);
    sc.finish_tick(&rec, T0).unwrap();
    sc.close().unwrap();
}

#[test]
fn read_only_open_leaves_directory_and_bytes_identical() {
    let (dir, path) = tmp();
    populated(&path);
    let list = listing(dir.path());
    assert_eq!(list, vec!["state.sqlite"]);
    let bytes = std::fs::read(&path).unwrap();

    {
        let sc = SidecarReader::open(&path).unwrap().unwrap();
        // Every read works.
        let snap = sc.snapshot().unwrap();
        assert_eq!(snap.unblocked_total, 2);
        assert_eq!(snap.ticks_total, 1);
        assert_eq!(snap.skips.get("young"), Some(&3));
        assert_eq!(snap.notifications_pending, 1);
        assert_eq!(
            sc.last_announced("ET-1").unwrap(),
            Some(("testing".into(), Some("s1".into())))
        );
        assert_eq!(sc.due_messages(T0).unwrap().len(), 1);
        assert_eq!(sc.list_outbox().unwrap().len(), 1);
        let (h, t) = sc.history(10, None).unwrap();
        assert_eq!((h.len(), t.len()), (2, 1));

        // Writes do not compile on a reader (see the `compile_fail` example
        // on `SidecarReader`); even raw SQL on its connection fails.
        assert!(sc.conn.borrow().execute("DELETE FROM dedup", []).is_err());

        // While open: still nothing new in the directory.
        assert_eq!(listing(dir.path()), list);
        sc.close().unwrap();
    }
    assert_eq!(listing(dir.path()), list);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn read_only_open_during_a_live_tick_sees_committed_data() {
    let (dir, path) = tmp();
    populated(&path);
    let mut live = Sidecar::open(&path).unwrap();
    live.record_unblock(&unblock("ET-3", "testing", Some("s3"), false), T0)
        .unwrap();
    // The live connection has -wal/-shm; the reader uses them.
    let before = listing(dir.path());
    assert!(before.contains(&"state.sqlite-wal".to_string()));
    let ro = SidecarReader::open(&path).unwrap().unwrap();
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 3);
    drop(ro);
    assert_eq!(listing(dir.path()), before);
    live.close().unwrap();
    assert_eq!(listing(dir.path()), vec!["state.sqlite"]);
}

// -- lock -------------------------------------------------------------------------

#[test]
fn lock_is_exclusive_until_dropped() {
    let (dir, path) = tmp();
    let held = TickLock::acquire(&path, Duration::ZERO).unwrap();
    assert_eq!(held.path(), lock_path(&path));
    let err = TickLock::acquire(&path, Duration::ZERO).unwrap_err();
    assert_eq!(err.exit_code(), 75);
    assert_eq!(
        err.to_string(),
        format!("another tick holds the lock {}.lock", path.display())
    );
    assert!(err.into_anyhow().downcast_ref::<LockBusy>().is_some());

    // Waiting polls, then gives up.
    let start = Instant::now();
    let err = TickLock::acquire(&path, Duration::from_millis(250)).unwrap_err();
    assert!(matches!(err, LockError::Busy(_)));
    assert!(start.elapsed() >= Duration::from_millis(250));

    // Released by a waiter's deadline.
    let waiter = {
        let path = path.clone();
        std::thread::spawn(move || TickLock::acquire(&path, Duration::from_secs(5)).is_ok())
    };
    std::thread::sleep(Duration::from_millis(150));
    drop(held);
    assert!(waiter.join().unwrap());
    assert!(TickLock::acquire(&path, Duration::ZERO).is_ok());
    drop(dir);
}

#[test]
fn a_stop_ends_the_wait_for_the_lock_without_taking_it() {
    let (dir, path) = tmp();
    let held = TickLock::acquire(&path, Duration::ZERO).unwrap();
    let asked = std::sync::atomic::AtomicUsize::new(0);
    // The third look at the flag finds a stop: the wait ends there, long
    // before its 60 s.
    let stop = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2;
    let err = TickLock::acquire_or_stop(&path, Duration::from_secs(60), &stop).unwrap_err();
    assert!(matches!(err, LockError::Stopped(_)), "{err}");
    assert_eq!(err.exit_code(), 75);
    assert!(err.to_string().contains("stopped by a signal"), "{err}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 3);
    // A free lock is taken whatever the flag says: the tick itself obeys it.
    drop(held);
    assert!(TickLock::acquire_or_stop(&path, Duration::ZERO, &|| true).is_ok());
    drop(dir);
}

#[test]
fn lock_in_missing_directory_is_a_sidecar_error() {
    let (dir, _) = tmp();
    let path = dir.path().join("nope").join("state.sqlite");
    let err = TickLock::acquire(&path, Duration::ZERO).unwrap_err();
    assert_eq!(err.exit_code(), 74);
    assert!(err.into_anyhow().downcast_ref::<SidecarError>().is_some());
}

// -- de-dup --------------------------------------------------------------------------

#[test]
fn is_duplicate_table() {
    let last = ("testing".to_string(), Some("s1".to_string()));
    // Same stage and state → duplicate.
    assert!(is_duplicate(Some(&last), "testing", Some("s1")));
    // Other stage → not.
    assert!(!is_duplicate(Some(&last), "review", Some("s1")));
    // Same stage, another state → not.
    assert!(!is_duplicate(Some(&last), "testing", Some("s2")));
    // No state uuid → never.
    assert!(!is_duplicate(Some(&last), "testing", None));
    let stateless = ("testing".to_string(), None);
    assert!(!is_duplicate(Some(&stateless), "testing", None));
    assert!(!is_duplicate(Some(&stateless), "testing", Some("s1")));
    // Nothing announced → not.
    assert!(!is_duplicate(None, "testing", Some("s1")));
}

#[test]
fn dedup_rows_follow_the_last_announcement() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    let announce = |sc: &mut Sidecar, stage: &str, state: Option<&str>| -> bool {
        let last = sc.last_announced("ET-7").unwrap();
        if is_duplicate(last.as_ref(), stage, state) {
            return false;
        }
        sc.record_unblock(&unblock("ET-7", stage, state, false), T0)
            .unwrap();
        true
    };
    assert!(announce(&mut sc, "testing", Some("s1")));
    assert!(!announce(&mut sc, "testing", Some("s1")), "restart symptom");
    assert!(announce(&mut sc, "review", Some("s1")), "another stage");
    assert!(announce(&mut sc, "review", Some("s2")), "another state");
    assert!(
        announce(&mut sc, "review", Some("s1")),
        "same stage after another state"
    );
    assert!(!announce(&mut sc, "review", Some("s1")));
    assert!(
        announce(&mut sc, "review", None),
        "no state: never a duplicate"
    );
    assert!(announce(&mut sc, "review", None));
    assert_eq!(
        sc.last_announced("ET-7").unwrap(),
        Some(("review".into(), None))
    );
    assert_eq!(count(&sc, "dedup"), 1);
    assert_eq!(sc.snapshot().unwrap().unblocked_total, 6);
    assert_eq!(
        sc.snapshot().unwrap().last_unblocked.as_deref(),
        Some("ET-7")
    );

    assert!(sc.forget("ET-7").unwrap());
    assert!(!sc.forget("ET-7").unwrap());
    assert_eq!(sc.last_announced("ET-7").unwrap(), None);
}

#[test]
fn record_unblock_writes_history_and_outbox() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    let r = sc
        .record_unblock(&unblock("ET-1", "testing", Some("s1"), true), T0)
        .unwrap();
    let outbox_id = r.outbox_id.unwrap();
    let quiet = sc
        .record_unblock(&unblock("ET-2", "review", None, false), T0)
        .unwrap();
    assert_eq!(quiet.outbox_id, None);

    let msgs = sc.due_messages(T0).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.id, outbox_id);
    assert_eq!(m.kind, MessageKind::Unblock);
    assert_eq!(m.status, OutboxStatus::Queued);
    assert_eq!(m.history_id, Some(r.history_id));
    assert_eq!(m.created_at, "2026-11-27T10:00:00Z");
    assert_eq!(m.digest_line, "ET-1 testing");

    let (h, _) = sc.history(10, None).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].key, "ET-2");
    assert_eq!(h[0].notification, "off");
    assert_eq!(h[1].key, "ET-1");
    assert_eq!(h[1].notification, "queued");
    assert_eq!(h[1].outbox_id, Some(outbox_id));
    assert_eq!(h[1].pass, "gate");
    assert_eq!(h[1].task_id, Some(7));
    assert_eq!(h[1].state_uuid.as_deref(), Some("s1"));

    sc.mark_sent(&[outbox_id], T0).unwrap();
    let (h, _) = sc.history(10, None).unwrap();
    assert_eq!(h[1].notification, "sent");
}

// -- outbox ---------------------------------------------------------------------------

#[test]
fn outbox_lifecycle() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    let a = sc
        .queue_message(MessageKind::Cycle, "⛔ cycle", "cycle line", T0)
        .unwrap();
    let b = sc
        .record_unblock(&unblock("ET-1", "testing", Some("s1"), true), T0)
        .unwrap()
        .outbox_id
        .unwrap();
    let c = sc
        .queue_message(MessageKind::Cycle, "⛔ cycle 2", "line 2", T0)
        .unwrap();
    assert_eq!(sc.pending_count().unwrap(), 3);
    let due: Vec<i64> = sc.due_messages(T0).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(due, vec![a, b, c], "oldest first");

    // a: sent.
    assert_eq!(sc.mark_sent(&[a], T0).unwrap(), 1);
    assert_eq!(
        sc.mark_sent(&[a], T0).unwrap(),
        0,
        "only queued ones change"
    );

    // b: a 429 with Retry-After → not due until then.
    let later = T0 + time::Duration::seconds(30);
    assert!(!sc.mark_failed(b, "429", Some(later), T0).unwrap());
    let due: Vec<i64> = sc.due_messages(T0).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(due, vec![c]);
    let due: Vec<i64> = sc
        .due_messages(later)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(due, vec![b, c]);

    // b: 20 failed attempts → dropped.
    let mut now = later;
    for attempt in 2..=MAX_ATTEMPTS {
        now += time::Duration::minutes(1);
        let dropped = sc.mark_failed(b, "transport error", None, now).unwrap();
        assert_eq!(dropped, attempt == MAX_ATTEMPTS, "attempt {attempt}");
    }
    assert!(
        !sc.mark_failed(b, "again", None, now).unwrap(),
        "no longer queued"
    );
    let snap = sc.snapshot().unwrap();
    assert_eq!(snap.notifications_dropped_total, 1);
    assert_eq!(snap.notifications_pending, 1);

    // c: permanent refusal.
    assert!(sc.mark_dropped(c, "403 Forbidden", now).unwrap());
    assert!(!sc.mark_dropped(c, "403 Forbidden", now).unwrap());
    let snap = sc.snapshot().unwrap();
    assert_eq!(snap.notifications_dropped_total, 2);
    assert_eq!(snap.notifications_pending, 0);

    let list = sc.list_outbox().unwrap();
    let ids: Vec<(i64, OutboxStatus)> = list.iter().map(|m| (m.id, m.status)).collect();
    assert_eq!(
        ids,
        vec![(b, OutboxStatus::Dropped), (c, OutboxStatus::Dropped)]
    );
    let mb = &list[0];
    assert_eq!(mb.attempts, MAX_ATTEMPTS);
    assert_eq!(mb.last_error.as_deref(), Some("transport error"));
    assert!(mb.dropped_at.is_some());
    let (h, _) = sc.history(10, None).unwrap();
    assert_eq!(h[0].notification, "dropped");

    // Operator drop: not a delivery failure.
    let d = sc.queue_message(MessageKind::Cycle, "d", "d", now).unwrap();
    assert!(sc.drop_outbox(d, now).unwrap());
    assert!(!sc.drop_outbox(d, now).unwrap());
    assert!(!sc.drop_outbox(9999, now).unwrap());
    assert_eq!(sc.snapshot().unwrap().notifications_dropped_total, 2);
    assert_eq!(sc.pending_count().unwrap(), 0);
}

// -- ticks, counters, retention ------------------------------------------------------

#[test]
fn finish_tick_counts_and_status() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    assert_eq!(sc.snapshot().unwrap(), Snapshot::default());
    sc.record_unblock(&unblock("ET-1", "testing", Some("s1"), false), T0)
        .unwrap();

    let mut rec = tick("all", 0);
    rec.counts.insert("advanced".into(), 1);
    rec.counts.insert("skipped/young".into(), 3);
    rec.counts.insert("skipped/terminal_stage".into(), 2);
    rec.skips.insert(Reason::Young, 3);
    rec.skips.insert(Reason::TerminalStage, 2);
    rec.skipped_terminal = 2;
    rec.deduped_keys = vec!["ET-1".into(), "ET-unknown".into()];
    let id = sc
        .finish_tick(&rec, T0 + time::Duration::seconds(1))
        .unwrap();

    let mut failed = tick("gate", 1);
    failed.errors = 2;
    failed.counts.insert("skipped/young".into(), 1);
    failed.skips.insert(Reason::Young, 1);
    failed.counts.insert("error".into(), 2);
    let t2 = T0 + time::Duration::minutes(1);
    sc.finish_tick(&failed, t2).unwrap();

    let snap = sc.snapshot().unwrap();
    assert_eq!(snap.ticks_total, 2);
    assert_eq!(snap.errors_total, 2);
    assert_eq!(snap.skipped_terminal_total, 2);
    assert_eq!(snap.deduped_total, 2);
    assert_eq!(snap.unblocked_total, 1);
    assert_eq!(snap.last_run_ts.as_deref(), Some("2026-11-27T10:01:00Z"));
    assert_eq!(
        snap.last_success_ts.as_deref(),
        Some("2026-11-27T10:00:01Z")
    );
    assert_eq!(
        snap.skips,
        BTreeMap::from([("terminal_stage".to_string(), 2), ("young".to_string(), 4)])
    );
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["unblocked_total"], 1);
    assert_eq!(json["skips"]["young"], 4);

    let (_, ticks) = sc.history(10, None).unwrap();
    assert_eq!(ticks.len(), 2);
    assert_eq!(ticks[1].id, id);
    assert_eq!(ticks[1].command, "all");
    assert_eq!(ticks[1].duration_ms, 1200);
    assert_eq!(ticks[1].counts["skipped/young"], 3);
    assert_eq!(ticks[1].started_at, "2026-11-27T10:00:00Z");
    assert_eq!(ticks[1].finished_at, "2026-11-27T10:00:01Z");
    assert_eq!(ticks[0].exit_code, 1);

    // `since` and `limit`.
    let (h, t) = sc.history(1, Some(T0)).unwrap();
    assert_eq!((h.len(), t.len()), (1, 1));
    let (h, t) = sc.history(10, Some(T0 + time::Duration::hours(1))).unwrap();
    assert_eq!((h.len(), t.len()), (0, 0));
}

#[test]
fn retention_drops_old_rows_and_keeps_queued() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    let old = T0 - time::Duration::days(91);
    let recent = T0 - time::Duration::days(89);

    // Old: a tick, an announced key with a sent message, one still queued,
    // one dropped; a key kept alive by a duplicate.
    let mut rec = tick("all", 0);
    rec.started_at = old;
    sc.finish_tick(&rec, old).unwrap();
    let sent = sc
        .record_unblock(&unblock("OLD", "testing", Some("s"), true), old)
        .unwrap();
    sc.mark_sent(&[sent.outbox_id.unwrap()], old).unwrap();
    let queued = sc
        .record_unblock(&unblock("OLD-Q", "testing", Some("s"), true), old)
        .unwrap();
    let dropped = sc.queue_message(MessageKind::Cycle, "c", "c", old).unwrap();
    sc.mark_dropped(dropped, "400", old).unwrap();
    sc.record_unblock(&unblock("ALIVE", "testing", Some("s"), false), old)
        .unwrap();
    let mut touch = tick("all", 0);
    touch.started_at = recent;
    touch.deduped_keys = vec!["ALIVE".into()];
    sc.finish_tick(&touch, recent).unwrap();
    // Recent.
    sc.record_unblock(&unblock("NEW", "review", Some("s"), true), recent)
        .unwrap();

    let mut now_tick = tick("all", 0);
    now_tick.started_at = T0;
    sc.finish_tick(&now_tick, T0).unwrap();

    let mut keys: Vec<String> = sc
        .conn
        .borrow()
        .prepare("SELECT key FROM dedup ORDER BY key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["ALIVE", "NEW"]);
    let (h, t) = sc.history(100, None).unwrap();
    assert_eq!(
        h.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["NEW"]
    );
    assert_eq!(t.len(), 2);
    let outbox: Vec<i64> = sc
        .conn
        .borrow()
        .prepare("SELECT id FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    // The old queued message stays (its history row is gone: history_id NULL).
    let q = queued.outbox_id.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0], q);
    let m = sc.due_messages(T0).unwrap();
    assert_eq!(m[0].id, q);
    assert_eq!(m[0].history_id, None);
    // Counters are never pruned.
    assert_eq!(sc.snapshot().unwrap().unblocked_total, 4);
    assert_eq!(sc.snapshot().unwrap().ticks_total, 3);
}

// -- crash consistency -------------------------------------------------------------------

#[test]
fn failed_record_unblock_leaves_nothing_partial() {
    let (_dir, path) = tmp();
    let mut sc = Sidecar::open(&path).unwrap();
    sc.record_unblock(&unblock("ET-1", "testing", Some("s1"), true), T0)
        .unwrap();
    let before = sc.snapshot().unwrap();
    // Make the LAST statement of the transaction (the outbox insert) fail.
    sc.conn
        .borrow()
        .execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.outbox
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let err = sc
        .record_unblock(&unblock("ET-1", "review", Some("s2"), true), T0)
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(err.to_string().contains("record an unblock"), "{err}");
    assert_eq!(sc.snapshot().unwrap(), before);
    assert_eq!(
        sc.last_announced("ET-1").unwrap(),
        Some(("testing".into(), Some("s1".into())))
    );
    assert_eq!(count(&sc, "history"), 1);
    assert_eq!(count(&sc, "outbox"), 1);
    assert_eq!(counter(&sc, "unblocked_total"), 1);

    // Same for finish_tick failing at its end (retention).
    sc.conn
        .borrow()
        .execute_batch(
            "CREATE TEMP TRIGGER boom2 BEFORE DELETE ON main.ticks
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let mut old = tick("all", 0);
    old.started_at = T0 - time::Duration::days(100);
    sc.finish_tick(&old, T0 - time::Duration::days(100))
        .unwrap();
    let before = sc.snapshot().unwrap();
    assert!(sc.finish_tick(&tick("all", 0), T0).is_err());
    assert_eq!(sc.snapshot().unwrap(), before);
    assert_eq!(count(&sc, "ticks"), 1);
}

#[test]
fn dropped_transaction_is_rolled_back_on_disk() {
    let (_dir, path) = tmp();
    {
        let mut sc = Sidecar::open(&path).unwrap();
        let tx = sc
            .db
            .conn
            .get_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        write_unblock(
            &tx,
            &unblock("ET-1", "testing", Some("s1"), true),
            "2026-11-27T10:00:00Z",
        )
        .unwrap();
        // Dropped mid-way (a crash before commit): nothing reaches the file.
        drop(tx);
    }
    let sc = Sidecar::open(&path).unwrap();
    assert_eq!(sc.snapshot().unwrap(), Snapshot::default());
    assert_eq!(sc.last_announced("ET-1").unwrap(), None);
    assert_eq!(count(&sc, "history"), 0);
    assert_eq!(count(&sc, "outbox"), 0);
}

#[test]
fn errors_name_the_path() {
    let e = SidecarError::new(
        Path::new("/var/lib/reconcile/state.sqlite"),
        SidecarErrorKind::NotADatabase,
        "file is not a database",
    );
    assert_eq!(
        e.to_string(),
        "sidecar /var/lib/reconcile/state.sqlite: file is not a database"
    );
    assert_eq!(SidecarError::EXIT_CODE, 74);
}

#[test]
fn read_only_follows_a_live_tick_that_writes_meanwhile() {
    let (dir, path) = tmp();
    populated(&path);
    let ro = SidecarReader::open(&path).unwrap().unwrap();
    assert!(ro.ro_stamp.get().is_some(), "immutable");
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 2);

    // A whole live tick runs and closes (checkpoint into the main file).
    {
        let mut live = Sidecar::open(&path).unwrap();
        live.record_unblock(&unblock("ET-3", "testing", Some("s3"), false), T0)
            .unwrap();
        live.close().unwrap();
    }
    assert_eq!(listing(dir.path()), vec!["state.sqlite"]);
    // The immutable reader notices and reopens: no stale page cache.
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 3);
    assert!(ro.ro_stamp.get().is_some(), "immutable again");

    // A live tick in progress: the reader switches to its WAL.
    let mut live = Sidecar::open(&path).unwrap();
    live.record_unblock(&unblock("ET-4", "testing", Some("s4"), false), T0)
        .unwrap();
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 4);
    assert!(ro.ro_stamp.get().is_none(), "a proper WAL reader now");
    assert_eq!(
        ro.last_announced("ET-4").unwrap(),
        Some(("testing".into(), Some("s4".into())))
    );
    live.record_unblock(&unblock("ET-5", "testing", Some("s5"), false), T0)
        .unwrap();
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 5);
    drop(ro);
    live.close().unwrap();
    assert_eq!(listing(dir.path()), vec!["state.sqlite"]);
}

#[test]
fn live_close_while_a_reader_is_attached() {
    let (dir, path) = tmp();
    populated(&path);
    let mut live = Sidecar::open(&path).unwrap();
    live.record_unblock(&unblock("ET-3", "testing", Some("s3"), false), T0)
        .unwrap();
    let ro = SidecarReader::open(&path).unwrap().unwrap();
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 3);
    // The reader's shared lock keeps the live close from checkpointing:
    // the live tick's -wal/-shm stay (the reader created neither) ...
    live.close().unwrap();
    let wal_files = vec!["state.sqlite", "state.sqlite-shm", "state.sqlite-wal"];
    assert_eq!(listing(dir.path()), wal_files);
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 3);
    drop(ro);
    // ... a later reader uses them as they are ...
    let ro = SidecarReader::open(&path).unwrap().unwrap();
    assert_eq!(ro.snapshot().unwrap().unblocked_total, 3);
    drop(ro);
    assert_eq!(listing(dir.path()), wal_files);
    // ... and the next live tick's clean close removes them.
    Sidecar::open(&path).unwrap().close().unwrap();
    assert_eq!(listing(dir.path()), vec!["state.sqlite"]);
}

#[test]
fn lock_path_resolves_symlinks_even_before_the_file_exists() {
    let (dir, real) = tmp();
    let real_lock = lock_path(&real);
    assert_eq!(
        real_lock,
        file::canonical(dir.path()).join("state.sqlite.lock")
    );
    // A dangling link at the leaf, and a link to that link.
    let link = dir.path().join("link.sqlite");
    std::os::unix::fs::symlink("state.sqlite", &link).unwrap();
    let link2 = dir.path().join("link2.sqlite");
    std::os::unix::fs::symlink(&link, &link2).unwrap();
    assert_eq!(lock_path(&link), real_lock);
    assert_eq!(lock_path(&link2), real_lock);
    // A symlinked directory.
    let alias = dir.path().join("alias");
    std::os::unix::fs::symlink(dir.path(), &alias).unwrap();
    assert_eq!(lock_path(&alias.join("state.sqlite")), real_lock);
    // Once the file exists, the same.
    Sidecar::open(&real).unwrap().close().unwrap();
    assert_eq!(lock_path(&link2), real_lock);
    // A loop ends (as given), it does not spin.
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    assert_eq!(lock_path(&a), dir.path().join("a.lock"));
}
