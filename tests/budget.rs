//! The fair Plane budget (docs/performance.md): projects are read oldest
//! successful sync first while the budget above the reserve lasts; a read
//! that does not fit waits while later one-request syncs proceed; what was
//! left unread is reported, counted in `status` and warned about once.

mod support;

use reconcile::sim::{Peer, SimProject, SimState, sim_uuid};
use serde_json::Value;
use support::*;

fn project(name: &str, issues: i64) -> SimProject {
    let mut p = SimProject::new(
        &sim_uuid(&["project", name]),
        name,
        &format!("acme/{}", name.to_lowercase()),
    );
    for seq in 1..=issues {
        p.add_issue(seq, "Backlog", 3 * HOUR);
    }
    p
}

/// `names` as the only projects, in this configured order, read one at a
/// time (so that the counts are exact), reserve 10.
fn fleet(projects: Vec<SimProject>) -> Test {
    Test::new()
        .scenario(move |s| s.projects = projects)
        .set("plane", "concurrency", "1")
        .set("plane", "rate_reserve", "10")
}

/// A new minute of the simulator's clock with `limit` requests in it.
fn new_minute(stack: &Stack, limit: i64) {
    stack.sim.update(|w| {
        w.rate_limit.limit = limit;
        w.rate_limit.remaining = limit;
        w.advance_clock(60);
    });
    stack.sim.clear_requests();
}

/// The repos read this tick, in report order, and the ones deferred.
fn read_and_deferred(run: &Run) -> (Vec<String>, Vec<String>) {
    let projects = run.json()["plane"]["projects"].as_array().unwrap().clone();
    let repo = |p: &Value| {
        p["repo"]
            .as_str()
            .unwrap()
            .trim_start_matches("acme/")
            .to_string()
    };
    let read = projects
        .iter()
        .filter(|p| p["deferred"].is_null() && p["error"].is_null())
        .map(repo)
        .collect();
    let deferred = projects
        .iter()
        .filter(|p| p["deferred"] == "rate_reserve")
        .map(repo)
        .collect();
    (read, deferred)
}

fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.contains("not read this tick"))
        .collect()
}

#[test]
fn six_projects_and_three_requests_a_tick_each_project_is_read_every_second_tick() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let stack = fleet(
        names
            .iter()
            .map(|n| project(&n.to_uppercase(), 3))
            .collect(),
    )
    .start();
    // 13 a minute, reserve 10: 3 requests a tick. A cold project costs 2
    // (states + one page), a warm one 1 (its states stay cached).
    let want: [(&[&str], usize); 12] = [
        (&["a"], 2),
        (&["b", "a"], 3),
        (&["c", "a"], 3),
        (&["d", "b"], 3),
        (&["e", "a"], 3),
        (&["f", "c"], 3),
        // Warm from here: the three oldest syncs each tick.
        (&["b", "d", "a"], 3),
        (&["e", "c", "f"], 3),
        (&["b", "d", "a"], 3),
        (&["e", "c", "f"], 3),
        (&["b", "d", "a"], 3),
        (&["e", "c", "f"], 3),
    ];
    let mut last_read: Vec<usize> = vec![0; names.len()];
    for (i, (read_want, requests)) in want.iter().enumerate() {
        new_minute(&stack, 13);
        let run = stack.tick(&["plane"]);
        run.code(0);
        let (read, deferred) = read_and_deferred(&run);
        let mut sorted_read = read.clone();
        sorted_read.sort();
        let mut sorted_want: Vec<String> = read_want.iter().map(|s| s.to_string()).collect();
        sorted_want.sort();
        assert_eq!(sorted_read, sorted_want, "tick {}: {run}", i + 1);
        assert_eq!(read.len() + deferred.len(), 6, "tick {}: {run}", i + 1);
        assert_eq!(
            stack.sim.count_peer(Peer::Plane),
            *requests,
            "tick {}",
            i + 1
        );
        assert!(
            stack.sim.requests().iter().all(|r| r.status != Some(429)),
            "no 429"
        );
        // Each read project's last sync is this tick's start.
        let v = run.json();
        for p in v["plane"]["projects"].as_array().unwrap() {
            if p["deferred"].is_null() {
                assert_eq!(p["last_synced_at"], v["started_at"], "{p}");
            }
        }
        assert_eq!(v["counters"]["plane_projects_unread"], 6 - read.len());
        assert_eq!(warnings(&run).len(), 1, "one warning a tick:\n{run}");
        assert!(
            warnings(&run)[0].contains(&format!("{} of 6 Plane projects", 6 - read.len())),
            "{run}"
        );
        for r in &read {
            let at = names.iter().position(|n| n == r).unwrap();
            // Warm-up: every project synced once by tick 6; from the
            // round after it (tick 9 on), every project is read every
            // second tick (⌈6 / 3⌉), never skipped twice in a row.
            if i + 1 >= 9 {
                assert_eq!(i + 1 - last_read[at], 2, "{r} at tick {}", i + 1);
            }
            last_read[at] = i + 1;
        }
    }
}

#[test]
fn a_full_listing_that_does_not_fit_waits_while_one_request_syncs_proceed() {
    // B and C small, A 250 issues: at per_page 100 A's full listing is
    // 3 pages; the incremental syncs are one page each.
    let stack = fleet(vec![project("B", 3), project("A", 250), project("C", 3)])
        .set("plane", "per_page", "100")
        .start();
    stack.tick(&["plane"]).code(0);
    // A's full resync falls due; B and C stay incremental.
    let db = rusqlite::Connection::open(stack.state_path()).unwrap();
    let a = sim_uuid(&["project", "A"]);
    db.execute(
        "UPDATE mirror_sync SET last_full_at = '2020-01-01T00:00:00Z' WHERE project_id = ?1",
        [&a],
    )
    .unwrap();
    drop(db);

    // 3 requests: B (1), then A's 3 pages do not fit in the 2 left, C (1) does.
    new_minute(&stack, 13);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(
        read_and_deferred(&run),
        (vec!["b".into(), "c".into()], vec!["a".into()])
    );
    assert_eq!(stack.sim.count_peer(Peer::Plane), 2);
    assert!(
        stack.sim.requests().iter().all(|r| !r.path.contains(&a)),
        "A's listing was not started"
    );
    assert_eq!(warnings(&run).len(), 1, "{run}");

    // The next tick A's sync is the oldest: it goes first, in full.
    new_minute(&stack, 13);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(
        read_and_deferred(&run),
        (vec!["a".into()], vec!["b".into(), "c".into()])
    );
    let projects = run.json()["plane"]["projects"].clone();
    let a_report = projects
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["repo"] == "acme/a")
        .unwrap()
        .clone();
    assert_eq!(
        (
            a_report["requests"].clone(),
            a_report["issues_listed"].clone()
        ),
        (3.into(), 250.into())
    );
    for r in stack.sim.requests_to(Route::PlaneItems) {
        assert!(!r.query.contains("order_by"), "a full listing: {}", r.query);
    }
}

#[test]
fn a_project_never_read_is_reported_counted_and_warned() {
    let stack = fleet(vec![project("P", 2), project("Q", 2)]).start();
    // 12 a minute, reserve 10: P's cold reads (states + page) use both.
    new_minute(&stack, 12);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(
        read_and_deferred(&run),
        (vec!["p".into()], vec!["q".into()])
    );
    let v = run.json();
    let q = v["plane"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["repo"] == "acme/q")
        .unwrap()
        .clone();
    assert_eq!(q["last_synced_at"], Value::Null);
    assert_eq!(q["requests"], 0);
    assert_eq!(v["counters"]["plane_projects_unread"], 1);
    // P's sync is the oldest (and only) one: it just happened.
    assert_eq!(v["counters"]["plane_oldest_sync_at"], v["started_at"]);
    assert!(v["counters"]["plane_oldest_sync_age_s"].as_i64().unwrap() <= 1);
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{run}");
    assert!(
        w[0].contains("1 of 2 Plane projects not read this tick"),
        "{run}"
    );
    assert!(w[0].contains("the oldest sync is"), "{run}");
    let status = stack.status();
    assert_eq!(status["plane_projects_unread"], 1);
    assert_eq!(status["plane_oldest_sync_at"], v["started_at"]);
    let text = stack.run(&["status"]);
    text.code(0).stdout_has("plane_projects_unread: 1");

    // A budget for both: Q is read first (never synced), nothing unread,
    // no warning.
    new_minute(&stack, 60);
    let run = stack.tick(&["plane"]);
    run.code(0);
    let (read, _) = read_and_deferred(&run);
    assert_eq!(read, ["p", "q"]);
    let order: Vec<String> = stack
        .sim
        .requests_to(Route::PlaneStates)
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(order.len(), 1, "only Q's states were not cached");
    assert!(order[0].contains(&sim_uuid(&["project", "Q"])));
    assert_eq!(run.json()["counters"]["plane_projects_unread"], 0);
    assert!(warnings(&run).is_empty(), "{run}");
}

/// The Plane requests of the last tick in order: `S` and the project for
/// a states listing, `L` for an issue listing.
fn plane_calls(stack: &Stack, names: &[&str]) -> Vec<String> {
    stack
        .sim
        .requests()
        .iter()
        .filter(|r| r.peer == Peer::Plane)
        .map(|r| {
            let name = names
                .iter()
                .find(|n| r.path.contains(&sim_uuid(&["project", &n.to_uppercase()])))
                .unwrap();
            let kind = if r.path.contains("/states/") {
                "S"
            } else {
                "L"
            };
            format!("{kind}{name}")
        })
        .collect()
}

#[test]
fn stale_states_wait_for_the_budget_the_listings_leave_over() {
    let names = ["a", "b", "c", "d"];
    // A TTL of 0: cached states are stale as soon as they are stored, and
    // stay usable up to the hard bound (0 + full_resync_s, 1800 s).
    let stack = fleet(
        names
            .iter()
            .map(|n| project(&n.to_uppercase(), 3))
            .collect(),
    )
    .set("state", "states_cache_ttl_s", "0")
    .start();
    // Cold: no states cached, each read fetches them (states + page).
    new_minute(&stack, 60);
    stack.tick(&["plane"]).code(0);
    assert_eq!(
        plane_calls(&stack, &names),
        ["Sa", "La", "Sb", "Lb", "Sc", "Lc", "Sd", "Ld"]
    );

    // A budget for everything: every listing first, then the stale states,
    // oldest first (all fetched in the same tick: in read order).
    new_minute(&stack, 60);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(
        plane_calls(&stack, &names),
        ["La", "Lb", "Lc", "Ld", "Sa", "Sb", "Sc", "Sd"]
    );
    // A project's requests count its refresh.
    for p in run.json()["plane"]["projects"].as_array().unwrap() {
        assert_eq!(p["requests"], 2, "{p}");
    }

    // 3 above the reserve: three listings with their cached states, and no
    // refresh (before, a read with stale states cost two: one project).
    new_minute(&stack, 13);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(plane_calls(&stack, &names), ["La", "Lb", "Lc"]);
    assert_eq!(
        read_and_deferred(&run),
        (vec!["a".into(), "b".into(), "c".into()], vec!["d".into()])
    );

    // 5 above the reserve: D (the oldest sync) and the three others, then
    // one refresh: D's states are not older than the others', and D was
    // read first.
    new_minute(&stack, 15);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(plane_calls(&stack, &names), ["Ld", "La", "Lb", "Lc", "Sd"]);
    assert!(
        stack.sim.requests().iter().all(|r| r.status != Some(429)),
        "no 429"
    );
    let (read, deferred) = read_and_deferred(&run);
    assert_eq!((read.len(), deferred.len()), (4, 0), "{run}");
}

#[test]
fn an_issue_in_a_state_the_cache_lacks_refreshes_the_states_on_the_next_read() {
    let stack = fleet(vec![project("A", 3)]).start();
    new_minute(&stack, 60);
    stack.tick(&["plane"]).code(0);
    assert_eq!(plane_calls(&stack, &["a"]), ["Sa", "La"]);

    // Plane gains a state and issue 2 moves into it.
    let a = sim_uuid(&["project", "A"]);
    let new_state = sim_uuid(&["state", &a, "Parked"]);
    let issue = sim_uuid(&["issue", &a, "2"]);
    stack.sim.update(|w| {
        w.project_mut(&a).unwrap().states.push(SimState {
            id: new_state.clone(),
            name: "Parked".into(),
            group: "backlog".into(),
            sequence: 99_999.0,
        });
        let now = w.now_ago();
        let i = w.issue_mut(&issue).unwrap();
        i.state = new_state.clone();
        i.updated_ago_s = now;
    });

    // The states are fresh (TTL 300 s): this read lists only, and sees the
    // issue in a state it cannot name.
    new_minute(&stack, 60);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(plane_calls(&stack, &["a"]), ["La"]);
    assert!(run.stderr.contains("refreshed on the next read"), "{run}");

    // The next read fetches them first, still within the TTL.
    new_minute(&stack, 60);
    stack.tick(&["plane"]).code(0);
    assert_eq!(plane_calls(&stack, &["a"]), ["Sa", "La"]);

    // Once they name it, nothing more: one listing.
    new_minute(&stack, 60);
    stack.tick(&["plane"]).code(0);
    assert_eq!(plane_calls(&stack, &["a"]), ["La"]);
}

#[test]
fn four_reads_at_once_never_spend_past_the_budget_above_the_reserve() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let stack = fleet(
        names
            .iter()
            .map(|n| project(&n.to_uppercase(), 3))
            .collect(),
    )
    .set("plane", "concurrency", "4")
    .start();
    // Warm-up: every project read once (states + one page each).
    new_minute(&stack, 60);
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(read_and_deferred(&run).0.len(), 8, "{run}");
    assert_eq!(stack.sim.count_peer(Peer::Plane), 16);

    // N requests above the reserve of 10, one per warm project: exactly N
    // projects read, the oldest syncs first (ties in configured order),
    // though four reads run at once and the tick starts not knowing the
    // budget.
    let want: [(usize, &[&str]); 6] = [
        (3, &["a", "b", "c"]),
        (3, &["d", "e", "f"]),
        (3, &["a", "g", "h"]),
        // Five: four reads in flight at the edge of the budget.
        (5, &["b", "c", "d", "e", "f"]),
        (3, &["a", "g", "h"]),
        (5, &["b", "c", "d", "e", "f"]),
    ];
    for (i, (n, read_want)) in want.iter().enumerate() {
        new_minute(&stack, 10 + *n as i64);
        let run = stack.tick(&["plane"]);
        run.code(0);
        let (mut read, mut deferred) = read_and_deferred(&run);
        read.sort();
        deferred.sort();
        assert_eq!(read, *read_want, "tick {}: {run}", i + 1);
        let rest: Vec<&str> = names
            .iter()
            .filter(|x| !read_want.contains(x))
            .copied()
            .collect();
        assert_eq!(deferred, rest, "tick {}: {run}", i + 1);
        assert_eq!(stack.sim.count_peer(Peer::Plane), *n, "tick {}", i + 1);
        assert!(
            stack.sim.requests().iter().all(|r| r.status != Some(429)),
            "no 429"
        );
        // The orchestrator's share is untouched.
        let left = stack.sim.inspect(|w| w.rate_limit.remaining);
        assert!(left >= 10, "tick {}: {left} left", i + 1);
        assert_eq!(
            run.json()["counters"]["plane_projects_unread"],
            8 - n,
            "tick {}",
            i + 1
        );
    }
}

/// `n` projects of 3 issues each, read 4 at a time, reserve 10.
fn four_at_once(n: usize) -> Test {
    let projects = (0..n).map(|i| project(&format!("P{i}"), 3)).collect();
    Test::new()
        .scenario(move |s| s.projects = projects)
        .set("plane", "concurrency", "4")
        .set("plane", "rate_reserve", "10")
}

/// Plane requests of the last tick per project (states, listings), in
/// configured order.
fn requests_per_project(stack: &Stack, n: usize) -> Vec<(usize, usize)> {
    let log = stack.sim.requests();
    (0..n)
        .map(|i| {
            let id = sim_uuid(&["project", &format!("P{i}")]);
            let of = |states: bool| {
                log.iter()
                    .filter(|r| r.peer == Peer::Plane && r.path.contains(&id))
                    .filter(|r| r.path.contains("/states/") == states)
                    .count()
            };
            (of(true), of(false))
        })
        .collect()
}

#[test]
fn a_plane_without_rate_headers_is_read_whole_once_per_project_and_shows_no_budget() {
    let probe = tempfile::tempdir().unwrap();
    let prom = probe.path().join("reconcile.prom");
    let stack = four_at_once(6)
        .no_rate_headers()
        .set(
            "metrics",
            "textfile",
            &format!("{:?}", prom.display().to_string()),
        )
        .start();
    // Cold: states and one listing each, every project, nothing deferred.
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(requests_per_project(&stack, 6), vec![(1, 1); 6], "{run}");
    let (read, deferred) = read_and_deferred(&run);
    assert_eq!(read.len(), 6, "{run}");
    assert!(deferred.is_empty(), "{run}");
    let v = run.json();
    assert_eq!(v["counters"]["plane_projects_unread"], 0, "{run}");
    assert!(warnings(&run).is_empty(), "{run}");
    // No budget figure is made up: nothing in the report speaks of one.
    assert!(!run.stdout.contains("rate_reserve"), "{run}");
    assert!(!run.stdout.contains("rate_limited"), "{run}");
    for p in v["plane"]["projects"].as_array().unwrap() {
        assert_eq!(p["requests"], 2, "{p}");
        assert!(p["last_synced_at"].is_string(), "{p}");
    }
    // Warm: one incremental listing each, states cached.
    stack.sim.update(|w| w.advance_clock(60));
    stack.sim.clear_requests();
    let run = stack.tick(&["plane"]);
    run.code(0);
    assert_eq!(requests_per_project(&stack, 6), vec![(0, 1); 6], "{run}");
    assert_eq!(run.json()["counters"]["plane_projects_unread"], 0, "{run}");
    // The metrics: every project read, the oldest sync this tick's.
    let metrics = std::fs::read_to_string(&prom).unwrap();
    let series = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
            .to_string()
    };
    assert_eq!(
        series("reconcile_plane_projects_unread "),
        "reconcile_plane_projects_unread 0"
    );
    let age = series("reconcile_plane_oldest_sync_age_seconds ");
    let age: f64 = age.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&age), "{metrics}");
}

#[test]
fn a_first_answer_that_is_a_429_holds_the_other_reads_until_it_was_waited_out() {
    // Plane's window is full for 2 s: the first read's first request gets
    // a 429 with Retry-After 2 and waits it out, past its one second of
    // solitude; the other three must not start meanwhile (each would only
    // get a 429 of its own).
    let stack = four_at_once(4).plane_window_full_for(2).start();
    let run = stack.tick(&["plane"]);
    run.code(0);
    let log = stack.sim.requests();
    let limited: Vec<_> = log.iter().filter(|r| r.status == Some(429)).collect();
    assert_eq!(limited.len(), 1, "{run}");
    // Every project read once after it: states and one listing each, plus
    // the first project's request sent again.
    let mut counts = requests_per_project(&stack, 4);
    let first = counts.iter().position(|c| *c != (1, 1)).unwrap_or(0);
    assert!(
        counts[first] == (2, 1) || counts[first] == (1, 2),
        "{counts:?}"
    );
    counts[first] = (1, 1);
    assert_eq!(counts, vec![(1, 1); 4], "{run}");
    let (read, deferred) = read_and_deferred(&run);
    assert_eq!(read.len(), 4, "{run}");
    assert!(deferred.is_empty(), "{run}");
    assert_eq!(run.json()["counters"]["plane_projects_unread"], 0, "{run}");
}
