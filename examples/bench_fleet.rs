//! A fleet-sized tick against the loopback simulator (issue #7): 50 Plane
//! projects × 400 issues, 5,000 active tasks. Run in release:
//!
//!     cargo run --release --example bench_fleet
//!
//! (it builds `target/release/reconcile` first through the same cargo).
//!
//! Measures, and prints each target with PASS/FAIL (the targets live in
//! docs/performance.md):
//! * per tick — cold (no sidecar), warm (cache and mirror fresh, a handful
//!   of issues changed since), full resync — for `gate`, `plane` and `all`,
//!   with 20 ms and 0 ms per Plane request: Plane / orchestrator / Telegram
//!   requests, wall time, CPU time and peak RSS of the real binary (a
//!   separate process, measured by `python3` through getrusage);
//! * 30 one-minute ticks replayed in-process (`tick::run_at`, the tool's
//!   clock advancing a minute per tick) with the default TTLs: Plane
//!   requests per project per tick;
//! * the pure gate-pass decisions for 5,000 tasks (no I/O);
//! * the kill switch: no peer contacted, wall time;
//! * `[plane] concurrency` 4 against 1 on a cold `all` at 20 ms.
//!
//! Loopback only; every loop is bounded.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reconcile::core::deps::DepGraph;
use reconcile::core::gate::{self, PlaneView};
use reconcile::core::outcome::Verdict;
use reconcile::core::states::{PlaneState, StateMap};
use reconcile::core::task::{Dependency, Task};
use reconcile::harness::{self as config, Config};
use reconcile::harness::{self as tick, TickCommand, TickOptions as Options};
use reconcile::sim::{Fault, Peer, Route, Scenario, SimProject, SimTask, Simulator, sim_uuid};
use serde_json::Value;
use time::OffsetDateTime;

const PROJECTS: usize = 50;
const ISSUES: i64 = 400;
const TASKS_PER_PROJECT: i64 = 100;
/// `[plane] per_page`: the default, Plane's maximum.
const PER_PAGE: i64 = 1000;
const LATENCY_MS: u64 = 20;
/// Issues changed in Plane between the cold and the warm tick.
const CHANGED: usize = 10;
const REPLAY_TICKS: i64 = 30;
const DECISION_RUNS: usize = 15;
const KILL_RUNS: usize = 5;
const HOUR: i64 = 3600;

// ------------------------------------------------------------------ world

/// What a task of the mix is; `k` is its index in its project (0..100).
fn kind(k: i64) -> &'static str {
    match k {
        0..=4 => "stuck",      // 5%: green gate, idle, old
        5..=24 => "young",     // 20%: green, changed a minute ago
        25..=44 => "busy",     // 20%: a job runs
        45..=69 => "red",      // 25%: gate red
        70..=79 => "done",     // 10%: its issue is Done in Plane
        80..=84 => "blocked",  // 5%: its issue is Blocked (a human waits)
        85..=89 => "deps",     // 5%: waits for a red task
        90..=92 => "escal",    // 3%: escalated
        93..=96 => "analysis", // 4%: human gate (stage analysis)
        _ => "nogate",         // 3%: stage without a gate
    }
}

fn project_id(p: usize) -> String {
    sim_uuid(&["project", &format!("P{p:02}")])
}

fn repo(p: usize) -> String {
    format!("acme/p{p:02}")
}

/// 50 projects × 400 issues; 5,000 tasks, each with its own issue (seq
/// 1–100 of its project); issues 101–400 have no task. Per project one old
/// To Analyse issue without a task (a lost start), one young one, and the
/// issue of one analysis task Approved (a lost verdict).
fn scenario(latency_ms: u64) -> Scenario {
    let mut projects = Vec::new();
    let mut tasks = Vec::new();
    for p in 0..PROJECTS {
        let ident = format!("P{p:02}");
        let mut proj = SimProject::new(&project_id(p), &ident, &repo(p));
        for k in 0..TASKS_PER_PROJECT {
            let seq = k + 1;
            let id = p as i64 * TASKS_PER_PROJECT + seq;
            let old = 2 * HOUR + k * 60;
            let (state, stage) = match kind(k) {
                "done" => ("Done", "review"),
                "blocked" => ("Blocked", "development"),
                "analysis" if k == 93 => ("Approved", "analysis"),
                "analysis" => ("In Review", "analysis"),
                "nogate" => ("Todo", "created"),
                "red" if k % 2 == 0 => ("In Review", "review"),
                _ => (
                    "In Progress",
                    ["development", "testing", "review"][k as usize % 3],
                ),
            };
            let issue = proj.add_issue(seq, state, old);
            let mut t = SimTask::new(id, stage)
                .repo(&repo(p))
                .issue(&issue)
                .ago(old);
            t.work_item_id = Some(format!("{ident}-{seq}"));
            t = match kind(k) {
                "stuck" | "done" | "blocked" | "analysis" | "nogate" => t.green(),
                "young" => t.green().ago(60),
                "busy" => t.green().active(),
                "deps" => t.green().depends(&[p as i64 * TASKS_PER_PROJECT + 46]),
                "escal" => SimTask {
                    escalated: Some(true),
                    developer_retry_count: 3,
                    ..t.green()
                },
                _ => t,
            };
            tasks.push(t);
        }
        for seq in TASKS_PER_PROJECT + 1..=ISSUES {
            let (state, ago) = match seq {
                101 => ("To Analyse", 3 * HOUR),
                102 => ("To Analyse", 60),
                _ => (
                    [
                        "Backlog",
                        "Todo",
                        "In Progress",
                        "In Review",
                        "Done",
                        "Cancelled",
                    ][seq as usize % 6],
                    HOUR * (3 + seq % 700),
                ),
            };
            proj.add_issue(seq, state, ago);
        }
        projects.push(proj);
    }
    let mut s = Scenario {
        tasks,
        projects,
        ..Scenario::default()
    };
    s.rate_limit.remaining = 100_000_000;
    s.rate_limit.limit = 100_000_000;
    if latency_ms > 0 {
        for route in [Route::PlaneStates, Route::PlaneItems] {
            s.set_always_fault(route, Some(Fault::Latency { ms: latency_ms }));
        }
    }
    s
}

/// Between the cold and the warm tick: the issues of `CHANGED / 2` stuck
/// tasks go Blocked and `CHANGED / 2` issues without a task go To Analyse,
/// all changed just now (per the simulator's clock, or `at` when given).
/// Round 0 picks stuck tasks of the last projects: the cold tick's action
/// cap (50) has advanced those of the first ten.
fn change_issues(sim: &Simulator, round: usize, at: Option<i64>) {
    sim.update(|w| {
        let now = at.unwrap_or_else(|| w.now_ago());
        for n in 0..CHANGED {
            let (p, seq, name) = if n % 2 == 0 {
                let p = (PROJECTS - 1 - n / 2 + round * CHANGED) % PROJECTS;
                (p, (round % 5) as i64 + 1, "Blocked")
            } else {
                let p = (round * CHANGED + n) % PROJECTS;
                (p, 200 + round as i64, "To Analyse")
            };
            let proj = &mut w.scenario.projects[p];
            let state = proj.state_id(name).expect("typical states");
            let issue = proj
                .issues
                .iter_mut()
                .find(|i| i.sequence_id == seq)
                .expect("issue exists");
            issue.state = state;
            issue.updated_ago_s = now;
        }
    });
}

// ------------------------------------------------------------------ config

/// Where the benchmark's configs, secrets and sidecars live.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(dir: &Path, _s: &Scenario) -> anyhow::Result<Files> {
        Ok(Files {
            dir: dir.to_path_buf(),
        })
    }

    /// A config for `sim` with its own sidecar; `plane_extra` goes under [plane].
    fn config(&self, sim: &Simulator, name: &str, plane_extra: &str) -> anyhow::Result<PathBuf> {
        sim.write_config(
            &self.dir,
            name,
            &format!("per_page = {PER_PAGE}\n{plane_extra}"),
        )
    }
}

// ------------------------------------------------------------------ the binary

/// The release binary next to this example (target/release/examples/..),
/// built first when run by cargo.
fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("no target directory above the example")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--bin", "reconcile"]);
        if profile == "release" {
            cmd.arg("--release");
        }
        if let Some(manifest) = option_env!("CARGO_MANIFEST_DIR") {
            cmd.arg("--manifest-path")
                .arg(Path::new(manifest).join("Cargo.toml"));
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --bin reconcile failed");
        }
    }
    let bin = dir.join("reconcile");
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs the binary under python3, which reports its wall time, CPU time
/// (user + system) and peak RSS from getrusage(RUSAGE_CHILDREN).
const WRAPPER: &str = "import resource, subprocess, sys, time\n\
t = time.perf_counter()\n\
rc = subprocess.call(sys.argv[2:])\n\
wall = time.perf_counter() - t\n\
r = resource.getrusage(resource.RUSAGE_CHILDREN)\n\
open(sys.argv[1], 'w').write('%d %.6f %.6f %d' % (rc, wall, r.ru_utime + r.ru_stime, r.ru_maxrss))\n";

struct Measured {
    code: i32,
    wall: Duration,
    cpu: Duration,
    rss_kib: u64,
    report: Value,
}

fn run_binary(
    bin: &Path,
    dir: &Path,
    config: &Path,
    command: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<Measured> {
    let metrics = dir.join("metrics.txt");
    let out = dir.join("stdout.json");
    let err = dir.join("stderr.txt");
    let mut cmd = Command::new("python3");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_PROXY", "127.0.0.1")
        .arg("-c")
        .arg(WRAPPER)
        .arg(&metrics)
        .arg(bin)
        .arg("--config")
        .arg(config)
        .args(["--output", "json", command])
        .stdout(Stdio::from(std::fs::File::create(&out)?))
        .stderr(Stdio::from(std::fs::File::create(&err)?));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().context("running python3")?;
    let text = std::fs::read_to_string(&metrics).unwrap_or_default();
    let f: Vec<&str> = text.split_whitespace().collect();
    if !status.success() || f.len() != 4 {
        bail!(
            "the measuring wrapper failed ({status}): {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    let m = Measured {
        code: f[0].parse()?,
        wall: Duration::from_secs_f64(f[1].parse()?),
        cpu: Duration::from_secs_f64(f[2].parse()?),
        rss_kib: f[3].parse()?,
        report: serde_json::from_str(&std::fs::read_to_string(&out)?).unwrap_or(Value::Null),
    };
    if !matches!(m.code, 0 | 1) {
        bail!(
            "{command} exited {}:\n{}",
            m.code,
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    Ok(m)
}

// ------------------------------------------------------------------ per tick

struct Row {
    latency_ms: u64,
    command: &'static str,
    tick: &'static str,
    plane: usize,
    /// Plane response body bytes on the wire (gzipped).
    plane_bytes: usize,
    items: usize,
    orchestrator: usize,
    telegram: usize,
    m: Measured,
}

fn counts(sim: &Simulator) -> (usize, usize, usize, usize) {
    (
        sim.count_peer(Peer::Plane),
        sim.count(Route::PlaneItem),
        sim.count_peer(Peer::Orchestrator),
        sim.count_peer(Peer::Telegram),
    )
}

fn plane_bytes(sim: &Simulator) -> usize {
    sim.requests_where(|r| r.peer == Peer::Plane)
        .iter()
        .filter_map(|r| r.response_bytes)
        .sum()
}

fn reason_count(report: &Value, pass: &str, reason: &str) -> usize {
    report[pass]["units"]
        .as_array()
        .map_or(0, |u| u.iter().filter(|u| u["reason"] == reason).count())
}

fn plane_units(report: &Value) -> usize {
    report["plane"]["units"].as_array().map_or(0, Vec::len)
}

/// Cold, warm and full-resync ticks of `command` on a fresh simulator.
fn ticks_of(
    bin: &Path,
    files: &Files,
    latency_ms: u64,
    command: &'static str,
    rows: &mut Vec<Row>,
    checks: &mut Vec<String>,
) -> anyhow::Result<()> {
    let sim = Simulator::start(scenario(latency_ms))?;
    let name = format!("{command}-{latency_ms}ms");
    let cfg = files.config(&sim, &name, "")?;
    let mut tick = |label: &'static str, cfg: &Path| -> anyhow::Result<Value> {
        sim.clear_requests();
        let m = run_binary(bin, &files.dir, cfg, command, &[])?;
        let (plane, items, orchestrator, telegram) = counts(&sim);
        let report = m.report.clone();
        rows.push(Row {
            latency_ms,
            command,
            tick: label,
            plane,
            plane_bytes: plane_bytes(&sim),
            items,
            orchestrator,
            telegram,
            m,
        });
        Ok(report)
    };
    let cold = tick("cold", &cfg)?;
    change_issues(&sim, 0, None);
    let warm = tick("warm", &cfg)?;
    // The warm tick must have seen what changed (a mirror that missed an
    // update would make the request count meaningless).
    if command != "plane" {
        let (a, b) = (
            reason_count(&cold, "gate", "human_wait"),
            reason_count(&warm, "gate", "human_wait"),
        );
        if b != a + CHANGED / 2 {
            checks.push(format!(
                "{command} {latency_ms}ms: warm tick human_wait {a} → {b}, expected +{}",
                CHANGED / 2
            ));
        }
    }
    if command != "gate" {
        let (a, b) = (plane_units(&cold), plane_units(&warm));
        if b != a + CHANGED / 2 {
            checks.push(format!(
                "{command} {latency_ms}ms: warm tick Plane pass units {a} → {b}, expected +{}",
                CHANGED / 2
            ));
        }
    }
    let full = files.config(&sim, &name, "full_resync_s = 0")?;
    tick("full", &full)?;
    Ok(())
}

// ------------------------------------------------------------------ replay

struct Replay {
    per_tick: Vec<usize>,
    warm_per_project: Vec<f64>,
    items: usize,
    cold: usize,
    walls: Vec<Duration>,
}

/// 30 one-minute `all` ticks in-process, default TTLs; between ticks a
/// handful of issues change "now" by the tool's clock.
fn replay(files: &Files) -> anyhow::Result<Replay> {
    let sim = Simulator::start(scenario(0))?;
    let path = files.config(&sim, "replay", "")?;
    let cfg = config::load_config(&path, true, &|_| None)?;
    let opts = Options {
        command: TickCommand::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let epoch = sim.inspect(|w| w.epoch());
    let start = OffsetDateTime::now_utc();
    let mut r = Replay {
        per_tick: Vec::new(),
        warm_per_project: Vec::new(),
        items: 0,
        cold: 0,
        walls: Vec::new(),
    };
    for i in 0..REPLAY_TICKS {
        let now = start + time::Duration::minutes(i);
        if i > 0 {
            // "Just now" on the tool's clock, as the simulator counts it.
            let ago = (epoch - now).whole_seconds() + 5;
            change_issues(&sim, i as usize, Some(ago));
        }
        sim.clear_requests();
        let t = Instant::now();
        let report = tick::run_tick_at(&cfg, &opts, now)?;
        r.walls.push(t.elapsed());
        let plane = sim.count_peer(Peer::Plane);
        r.items += sim.count(Route::PlaneItem);
        if report.requests.plane as usize != plane {
            bail!(
                "tick {i}: the report counts {} Plane requests, the simulator {plane}",
                report.requests.plane
            );
        }
        if i == 0 {
            r.cold = plane;
        } else if sim.count(Route::PlaneStates) == 0 {
            r.warm_per_project.push(plane as f64 / PROJECTS as f64);
        }
        r.per_tick.push(plane);
    }
    Ok(r)
}

// ------------------------------------------------------------------ fair budget

const FLEET_ISSUES: i64 = 100;
const FLEET_TICKS: usize = 40;

struct Window {
    per_tick: Vec<usize>,
    read_per_tick: Vec<usize>,
    rate_limited: usize,
    /// The tick (from 1) by which every project had been read once.
    warm_tick: Option<usize>,
    /// After it, the most ticks any project went between two reads (or
    /// from its last read to the end).
    max_gap: usize,
}

/// `projects` × `FLEET_ISSUES` (no tasks), Plane's real budget (60 a
/// minute), reserve 10: `FLEET_TICKS` `plane` ticks in-process, one per
/// minute of a clock the tool and the simulator share.
fn fleet_window(files: &Files, projects: usize, states_ttl: Option<u64>) -> anyhow::Result<Window> {
    let mut s = Scenario::default();
    for p in 0..projects {
        let id = sim_uuid(&["project", &format!("F{p:03}")]);
        let mut proj = SimProject::new(&id, &format!("F{p:03}"), &format!("acme/f{p:03}"));
        for seq in 1..=FLEET_ISSUES {
            proj.add_issue(seq, ["Backlog", "Todo", "Done"][seq as usize % 3], 3 * HOUR);
        }
        s.projects.push(proj);
    }
    let sim = Simulator::start(s)?;
    let path = files.config(&sim, &format!("window{projects}"), "rate_reserve = 10")?;
    let mut cfg = config::load_config(&path, true, &|_| None)?;
    if let Some(ttl) = states_ttl {
        cfg.state.states_cache_ttl_s = ttl;
    }
    let opts = Options {
        command: TickCommand::Plane,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let mut w = Window {
        per_tick: Vec::new(),
        read_per_tick: Vec::new(),
        rate_limited: 0,
        warm_tick: None,
        max_gap: 0,
    };
    let mut reads: HashMap<String, Vec<usize>> = HashMap::new();
    for tick in 1..=FLEET_TICKS {
        sim.update(|w| w.advance_clock(60));
        sim.clear_requests();
        let now = sim.inspect(|w| w.now());
        let out = tick::run_tick_at(&cfg, &opts, now)?;
        w.per_tick.push(sim.count_peer(Peer::Plane));
        w.rate_limited += sim
            .requests_where(|r| r.peer == Peer::Plane && r.status == Some(429))
            .len();
        let read: Vec<&str> = out
            .plane
            .projects
            .iter()
            .filter(|p| p.deferred.is_none() && p.error.is_none())
            .map(|p| p.plane_project_id.as_str())
            .collect();
        w.read_per_tick.push(read.len());
        for pid in read {
            reads.entry(pid.to_string()).or_default().push(tick);
        }
        if w.warm_tick.is_none() && reads.len() == projects {
            w.warm_tick = Some(tick);
        }
    }
    // After warm-up every run of `bound` ticks must hold a read of each
    // project: count from the warm-up tick (the projects read first waited
    // through the warm-up itself), between reads, and to the end.
    if let Some(warm) = w.warm_tick {
        for ticks in reads.values() {
            let mut last = warm;
            for t in ticks.iter().filter(|t| **t > warm) {
                w.max_gap = w.max_gap.max(t - last);
                last = *t;
            }
            w.max_gap = w.max_gap.max(FLEET_TICKS - last);
        }
    }
    Ok(w)
}

/// Two projects in sync (every Approved issue's verdict applied, every To
/// Analyse task idle): per `all` tick, 5 ticks, the replays sent and the
/// tasks read one issue at a time.
fn in_sync(files: &Files) -> anyhow::Result<Vec<(usize, usize)>> {
    let mut s = Scenario::default();
    let mut id = 0;
    for p in 0..2 {
        let pid = sim_uuid(&["project", &format!("S{p}")]);
        let mut proj = SimProject::new(&pid, &format!("S{p}"), &format!("acme/s{p}"));
        for seq in 1..=10 {
            id += 1;
            // Approved with the task already done; To Analyse with an idle task.
            let (state, stage) = if seq % 2 == 0 {
                ("Approved", "done")
            } else {
                ("To Analyse", "analysis")
            };
            let issue = proj.add_issue(seq, state, 3 * HOUR);
            s.tasks.push(
                SimTask::new(id, stage)
                    .repo(&format!("acme/s{p}"))
                    .issue(&issue)
                    .ago(3 * HOUR),
            );
        }
        s.projects.push(proj);
    }
    let sim = Simulator::start(s)?;
    let path = files.config(&sim, "insync", "")?;
    let cfg = config::load_config(&path, true, &|_| None)?;
    let opts = Options {
        command: TickCommand::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let mut out = Vec::new();
    for _ in 0..5 {
        sim.clear_requests();
        tick::run_tick(&cfg, &opts)?;
        out.push((
            sim.count(Route::OrchWebhook),
            sim.count(Route::OrchTaskByIssue),
        ));
    }
    Ok(out)
}

// ------------------------------------------------------------------ decisions

/// The facts one tick decides from, as fetched (outside the timing).
struct Facts {
    sim_tasks: Vec<SimTask>,
    states: Vec<(String, Vec<PlaneState>)>,
    /// Per project: issue id → state uuid (the mirror).
    issues: Vec<Vec<(String, String)>>,
}

fn facts() -> Facts {
    let s = scenario(0);
    Facts {
        sim_tasks: s.tasks.clone(),
        states: s
            .projects
            .iter()
            .map(|p| {
                let st = p
                    .states
                    .iter()
                    .map(|s| PlaneState {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        group: Some(s.group.clone()),
                        sequence: Some(s.sequence),
                    })
                    .collect();
                (p.repo.clone(), st)
            })
            .collect(),
        issues: s
            .projects
            .iter()
            .map(|p| {
                p.issues
                    .iter()
                    .map(|i| (i.id.clone(), i.state.clone()))
                    .collect()
            })
            .collect(),
    }
}

fn to_task(t: &SimTask, all: &HashMap<i64, &SimTask>) -> Task {
    Task {
        id: t.id,
        stage: t.stage.clone(),
        repo: t.repo.clone(),
        work_item_id: t.work_item_id.clone(),
        branch: t.branch.clone(),
        plane_issue_id: t.plane_issue_id.clone(),
        updated_at: None,
        age_s: Some(t.updated_ago_s as f64),
        gate: t.gate.clone(),
        active_job: t.active_job,
        developer_retry_count: t.developer_retry_count,
        escalated: t.escalated,
        depends_on: t
            .depends_on
            .iter()
            .map(|d| Dependency {
                id: *d,
                work_item_id: all.get(d).and_then(|o| o.work_item_id.clone()),
                stage: all.get(d).map(|o| o.stage.clone()),
            })
            .collect(),
    }
}

/// Everything the gate pass decides for 5,000 tasks, no I/O: the tasks, every
/// project's StateMap and issue index, the DepGraph, `gate::decide` each.
fn decide_all(f: &Facts, now: OffsetDateTime) -> (usize, Duration) {
    let cfg = reconcile::harness::Reconcile::default();
    let by_id: HashMap<i64, &SimTask> = f.sim_tasks.iter().map(|t| (t.id, t)).collect();
    let tasks: Vec<Task> = f.sim_tasks.iter().map(|t| to_task(t, &by_id)).collect();
    let names = Default::default();
    let maps: HashMap<&str, Arc<StateMap>> = f
        .states
        .iter()
        .map(|(repo, st)| (repo.as_str(), Arc::new(StateMap::build(st, &names))))
        .collect();
    let index: HashMap<&str, &str> = f
        .issues
        .iter()
        .flatten()
        .map(|(i, s)| (i.as_str(), s.as_str()))
        .collect();
    let graph = DepGraph::build(&tasks);
    let t0 = Instant::now();
    let mut proceed = 0;
    let mut actions = 0;
    for t in &tasks {
        let readiness = graph.readiness(t.id);
        let v = gate::decide(t, &cfg, true, now, actions, Some(&readiness), || {
            let states = maps.get(t.repo.as_str()).cloned();
            match (states, t.issue_id().and_then(|i| index.get(i))) {
                (Some(states), Some(state)) => PlaneView::Resolved {
                    states,
                    state: (*state).to_string(),
                },
                _ => PlaneView::Unresolved(gate::Unresolved::NotAsked),
            }
        });
        if v == Verdict::Proceed {
            proceed += 1;
            actions += 1;
        }
        black_box(&v);
    }
    (proceed, t0.elapsed())
}

// ------------------------------------------------------------------ report

struct Targets(Vec<(String, bool, String)>);

impl Targets {
    fn check(&mut self, name: impl Into<String>, pass: bool, measured: impl Into<String>) {
        self.0.push((name.into(), pass, measured.into()));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let bin = binary()?;
    let dir = tempfile::tempdir()?;
    let files = Files::new(dir.path(), &Scenario::default())?;
    let mut targets = Targets(Vec::new());
    let mut checks = Vec::new();

    println!(
        "bench_fleet: {PROJECTS} projects × {ISSUES} issues, {} tasks (5% stuck), per_page {PER_PAGE}",
        PROJECTS as i64 * TASKS_PER_PROJECT
    );
    println!();

    // Per-tick table: the binary, separate sidecars per command and latency.
    let mut rows = Vec::new();
    for latency in [LATENCY_MS, 0] {
        for command in ["gate", "plane", "all"] {
            ticks_of(&bin, &files, latency, command, &mut rows, &mut checks)?;
        }
    }
    println!(
        "{:<8} {:<6} {:<5} {:>6} {:>8} {:>9} {:>9} {:>5} {:>9} {:>9} {:>9} {:>8} {:>4}",
        "latency",
        "cmd",
        "tick",
        "plane",
        "/project",
        "plane KiB",
        "item GETs",
        "orch",
        "telegram",
        "wall ms",
        "cpu ms",
        "rss MiB",
        "exit"
    );
    for r in &rows {
        println!(
            "{:<8} {:<6} {:<5} {:>6} {:>8.2} {:>9.1} {:>9} {:>5} {:>9} {:>9.1} {:>9.1} {:>8.1} {:>4}",
            format!("{} ms", r.latency_ms),
            r.command,
            r.tick,
            r.plane,
            r.plane as f64 / PROJECTS as f64,
            r.plane_bytes as f64 / 1024.0,
            r.items,
            r.orchestrator,
            r.telegram,
            ms(r.m.wall),
            ms(r.m.cpu),
            r.m.rss_kib as f64 / 1024.0,
            r.m.code
        );
    }
    println!();

    // Targets from the table.
    let pages = (ISSUES + PER_PAGE - 1) / PER_PAGE;
    let cold_max = PROJECTS * (1 + pages as usize);
    for r in rows.iter().filter(|r| r.tick == "cold") {
        targets.check(
            format!(
                "cold {} ({} ms): Plane ≤ {cold_max} (states + {pages} pages per project)",
                r.command, r.latency_ms
            ),
            r.plane <= cold_max,
            r.plane.to_string(),
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.tick == "warm" && r.command == "all")
    {
        targets.check(
            format!(
                "warm all ({} ms): exactly 1 Plane request per project, 0 item GETs",
                r.latency_ms
            ),
            r.plane == PROJECTS && r.items == 0,
            format!(
                "{} requests, {} item GETs, {:.1} KiB of Plane bodies (gzipped)",
                r.plane,
                r.items,
                r.plane_bytes as f64 / 1024.0
            ),
        );
    }
    let item_gets: usize = rows.iter().map(|r| r.items).sum();
    targets.check(
        "no per-task issue GET in any tick",
        item_gets == 0,
        item_gets.to_string(),
    );
    let rss = rows
        .iter()
        .filter(|r| r.command == "all")
        .map(|r| r.m.rss_kib)
        .max()
        .unwrap_or(0);
    targets.check(
        "peak RSS of the all ticks < 40 MB",
        rss * 1024 < 40_000_000,
        format!(
            "{:.1} MiB ({:.1} MB)",
            rss as f64 / 1024.0,
            rss as f64 * 1.024 / 1000.0
        ),
    );

    // 30 one-minute ticks.
    let rp = replay(&files)?;
    let total: usize = rp.per_tick.iter().sum();
    let per = total as f64 / (REPLAY_TICKS as f64 * PROJECTS as f64);
    println!(
        "replay: {REPLAY_TICKS} one-minute all ticks in-process (0 ms), default TTLs (states 300 s, full resync 1800 s)"
    );
    println!("  Plane requests per tick: {:?}", rp.per_tick);
    println!(
        "  total {total}, per project per tick {per:.3}; tick wall median {:.0} ms, max {:.0} ms",
        ms(median(rp.walls.clone())),
        ms(rp.walls.iter().max().copied().unwrap_or_default())
    );
    println!();
    targets.check(
        "30 one-minute ticks: Plane requests per project per tick ≤ 1.4",
        per <= 1.4,
        format!("{per:.3} ({total} in {REPLAY_TICKS} ticks)"),
    );
    let warm_ok = rp.warm_per_project.iter().all(|w| (*w - 1.0).abs() < 1e-9);
    targets.check(
        "30 one-minute ticks: every tick without a states refresh costs 1 per project",
        warm_ok && !rp.warm_per_project.is_empty(),
        format!("{} such ticks", rp.warm_per_project.len()),
    );
    targets.check(
        "30 one-minute ticks: 0 per-task issue GETs",
        rp.items == 0,
        rp.items.to_string(),
    );
    targets.check(
        format!("30 one-minute ticks: cold ≤ {cold_max}"),
        rp.cold <= cold_max,
        rp.cold.to_string(),
    );

    // The fair budget under Plane's minute window.
    for (projects, ttl, bound) in [(500, Some(3600), 11), (120, None, 4)] {
        let w = fleet_window(&files, projects, ttl)?;
        let ttl_text = ttl.map_or("default states TTL (300 s)".to_string(), |t| {
            format!("states TTL {t} s")
        });
        println!(
            "fleet window: {projects} projects × {FLEET_ISSUES} issues, {FLEET_TICKS} minute ticks, 60 requests a minute, reserve 10, {ttl_text}"
        );
        println!("  Plane requests per tick: {:?}", w.per_tick);
        println!("  projects read per tick: {:?}", w.read_per_tick);
        println!(
            "  every project read by tick {:?}; after it, the longest run of ticks without a read of some project {}; 429s {}",
            w.warm_tick, w.max_gap, w.rate_limited
        );
        println!();
        targets.check(
            format!("fleet window {projects}: zero 429s"),
            w.rate_limited == 0,
            w.rate_limited.to_string(),
        );
        targets.check(
            format!(
                "fleet window {projects}: after warm-up every project read at least every {bound} ticks"
            ),
            w.warm_tick.is_some() && w.max_gap <= bound,
            format!(
                "warm at tick {}, longest wait {} ticks",
                w.warm_tick.map_or("-".into(), |t| t.to_string()),
                w.max_gap
            ),
        );
    }

    // A fleet in sync: no replay after the first tick.
    let per_tick = in_sync(&files)?;
    let replays: Vec<usize> = per_tick.iter().map(|t| t.0).collect();
    let reads: Vec<usize> = per_tick.iter().map(|t| t.1).collect();
    println!("in sync: replays per tick {replays:?}, per-issue task reads per tick {reads:?}");
    println!();
    targets.check(
        "a fleet in sync: zero replays per tick after the first",
        replays.len() > 1 && replays[0] > 0 && replays[1..].iter().all(|n| *n == 0),
        format!("{replays:?}"),
    );
    // The gate pass's task list answers the memo: no task read per issue.
    targets.check(
        "a fleet in sync: zero per-issue task reads per tick after the first",
        reads.len() > 1 && reads[1..].iter().all(|n| *n == 0),
        format!("{reads:?}"),
    );

    // Pure decisions.
    let f = facts();
    let now = OffsetDateTime::now_utc();
    let mut whole = Vec::new();
    let mut decide_only = Vec::new();
    let mut proceed = 0;
    for _ in 0..DECISION_RUNS {
        let t = Instant::now();
        let (p, d) = black_box(decide_all(black_box(&f), now));
        whole.push(t.elapsed());
        decide_only.push(d);
        proceed = p;
    }
    let (dw, dd) = (median(whole), median(decide_only));
    println!(
        "decisions: 5,000 tasks → {proceed} proceed; median of {DECISION_RUNS}: {:.2} ms in all (tasks, StateMaps, issue index, DepGraph, decide), {:.2} ms of it gate::decide",
        ms(dw),
        ms(dd)
    );
    targets.check(
        "decision time for 5,000 tasks, no I/O < 20 ms",
        dw < Duration::from_millis(20),
        format!("{:.2} ms", ms(dw)),
    );

    // Kill switch: in-process and the binary, on the warm `all` sidecar.
    let sim = Simulator::start(scenario(0))?;
    let path = files.config(&sim, "kill", "")?;
    let off = |k: &str| (k == "ORCH_RECONCILE_ENABLED").then(|| "false".to_string());
    let cfg: Config = config::load_config(&path, true, &off)?;
    let opts = Options {
        command: TickCommand::All,
        dry_run: false,
        wait_lock: Duration::ZERO,
    };
    let mut walls = Vec::new();
    for _ in 0..KILL_RUNS {
        let t = Instant::now();
        tick::run_tick(&cfg, &opts)?;
        walls.push(t.elapsed());
    }
    let mut procs = Vec::new();
    for _ in 0..KILL_RUNS {
        let m = run_binary(
            &bin,
            &files.dir,
            &path,
            "all",
            &[("ORCH_RECONCILE_ENABLED", "false")],
        )?;
        procs.push(m.wall);
    }
    let contacted = sim.requests().len();
    let (kin, kproc) = (median(walls), median(procs));
    println!(
        "kill switch: tick::run median {:.2} ms; the whole process (exec to exit) median {:.2} ms; requests {contacted}",
        ms(kin),
        ms(kproc)
    );
    targets.check(
        "kill switch off: tick < 5 ms wall",
        kin < Duration::from_millis(5),
        format!("{:.2} ms (process {:.2} ms)", ms(kin), ms(kproc)),
    );
    targets.check(
        "kill switch off: no peer contacted",
        contacted == 0,
        format!("{contacted} requests"),
    );
    drop(sim);

    // Concurrency 4 against 1, cold `all`, 20 ms.
    let mut walls = Vec::new();
    for c in [1, 4] {
        let sim = Simulator::start(scenario(LATENCY_MS))?;
        let path = files.config(&sim, &format!("conc{c}"), &format!("concurrency = {c}"))?;
        let m = run_binary(&bin, &files.dir, &path, "all", &[])?;
        println!(
            "cold all, {LATENCY_MS} ms, concurrency {c}: wall {:.0} ms, cpu {:.0} ms, {} Plane requests",
            ms(m.wall),
            ms(m.cpu),
            sim.count_peer(Peer::Plane)
        );
        walls.push(m.wall);
    }
    targets.check(
        "cold all at 20 ms: concurrency 4 < half the wall of concurrency 1",
        walls[1] * 2 < walls[0],
        format!(
            "{:.0} ms vs {:.0} ms (×{:.2})",
            ms(walls[1]),
            ms(walls[0]),
            walls[0].as_secs_f64() / walls[1].as_secs_f64()
        ),
    );
    println!();

    for c in &checks {
        println!("CHECK FAILED: {c}");
    }
    targets.check(
        "warm ticks saw every issue changed since the cold tick",
        checks.is_empty(),
        format!("{} mismatches", checks.len()),
    );
    let mut failed = 0;
    for (name, pass, measured) in &targets.0 {
        if !pass {
            failed += 1;
        }
        println!(
            "{}  {name}: {measured}",
            if *pass { "PASS" } else { "FAIL" }
        );
    }
    println!();
    println!(
        "{} of {} targets pass",
        targets.0.len() - failed,
        targets.0.len()
    );
    Ok(())
}
