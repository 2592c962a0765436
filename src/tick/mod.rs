//! One tick: lock, the requested passes, delivery, the sidecar record and
//! the report. The decisions live in `gate` (and `plane_pass`); this module
//! is the imperative shell that fetches facts and carries out verdicts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use time::OffsetDateTime;

use crate::config::Config;
use crate::core::deps::{DepGraph, Readiness};
use crate::core::gate::{self, PlaneView, Unresolved};

use crate::core::outcome::{Outcome, Reason, Verdict};
use crate::core::timestamp;
use crate::output::report::{
    Counters, CycleReport, GatePass, GateUnit, Notification, Notifications, PlanePass, Report,
    Requests,
};
use crate::peers::http::{Client, Peer};
use crate::peers::orchestrator::{Advance, BadTask, Orchestrator, Task};
use crate::peers::plane::{Plane, PlaneFailure};
use crate::peers::telegram::Telegram;
use crate::store::{self, Handle as Store, Sidecar, SidecarReader, TickLock};

mod cycles;
mod fetch;
pub mod notify;
mod plane;

use fetch::ProjectView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Gate,
    Plane,
    All,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Gate => "gate",
            Command::Plane => "plane",
            Command::All => "all",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub command: Command,
    pub dry_run: bool,
    pub wait_lock: Duration,
}

/// A Plane-side resolution that failed, remembered for the tick.
#[derive(Debug, Clone)]
struct Blind {
    cause: Unresolved,
    message: String,
}

impl From<PlaneFailure> for Blind {
    fn from(f: PlaneFailure) -> Blind {
        let message = f.to_string();
        let cause = match f {
            PlaneFailure::Reserve => Unresolved::Reserve,
            PlaneFailure::RateLimited(_) => Unresolved::RateLimited,
            PlaneFailure::Failed(_) => Unresolved::ReadFailed,
        };
        Blind { cause, message }
    }
}

impl Blind {
    fn not_reached() -> Blind {
        Blind {
            cause: Unresolved::Deadline,
            message: "not read: the deadline passed".into(),
        }
    }
}

struct Tick<'a> {
    cfg: &'a Config,
    opts: &'a Options,
    now: OffsetDateTime,
    deadline: Instant,
    store: Store,
    orchestrator: Orchestrator,
    plane: Plane,
    telegram: Option<Telegram>,
    telegram_client: Client,
    /// Advances (and would-advances) so far, for the action cap.
    actions: u64,
    /// Keys of the unblocks suppressed as duplicates this tick.
    deduped_keys: Vec<String>,
    /// Dry-run: announcements this tick would have recorded.
    dry_dedup: HashMap<String, (String, Option<String>)>,
    /// Plane projects read this tick, by project id.
    projects: HashMap<String, Result<Arc<ProjectView>, Blind>>,
    /// Plane requests each project's reads cost.
    project_requests: HashMap<String, u64>,
    cut_by_deadline: bool,
    cycles: Vec<CycleReport>,
    /// A sidecar failure met where it could not be returned at once.
    fatal: Option<anyhow::Error>,
    /// Issues moved to Blocked this tick: never PATCHed twice.
    patched: std::collections::HashSet<String>,
}

/// Runs one tick. Errors are the ones that stop a tick before it reports:
/// the sidecar (74) and the lock (75).
pub fn run(cfg: &Config, opts: &Options) -> anyhow::Result<Report> {
    run_at(cfg, opts, OffsetDateTime::now_utc())
}

/// As `run`, with the tick's wall-clock time given: every age, TTL and
/// timestamp of the tick derives from `now` (the benchmark replays a half
/// hour of minute ticks this way). The deadline still runs on the real clock.
pub fn run_at(cfg: &Config, opts: &Options, now: OffsetDateTime) -> anyhow::Result<Report> {
    let started = Instant::now();
    // A deadline beyond what the clock can hold is no deadline (a year).
    let deadline = started
        .checked_add(Duration::from_secs(cfg.reconcile.deadline_s))
        .unwrap_or(started + Duration::from_secs(365 * 86_400));
    let path = &cfg.state.path;

    let (_lock, store) = if opts.dry_run {
        (None, Store::ReadOnly(SidecarReader::open(path)?))
    } else {
        let lock =
            TickLock::acquire(path, opts.wait_lock).map_err(store::LockError::into_anyhow)?;
        (Some(lock), Store::Live(Sidecar::open(path)?))
    };

    let secrets = secrets(cfg);
    let client =
        |peer, timeout| Client::new(peer, timeout, secrets.clone()).with_deadline(deadline);
    let orchestrator = Orchestrator::new(
        &cfg.orchestrator,
        client(Peer::Orchestrator, cfg.orchestrator.timeout),
    );
    let plane = Plane::new(&cfg.plane, client(Peer::Plane, cfg.plane.timeout));
    let telegram_timeout = cfg
        .telegram
        .as_ref()
        .map_or(Duration::from_secs(10), |t| t.timeout);
    let telegram_client = client(Peer::Telegram, telegram_timeout);
    let telegram = cfg
        .telegram
        .as_ref()
        .map(|t| Telegram::new(t, telegram_client.clone()));

    let mut tick = Tick {
        cfg,
        opts,
        now,
        deadline,
        store,
        orchestrator,
        plane,
        telegram,
        telegram_client,
        actions: 0,
        deduped_keys: Vec::new(),
        dry_dedup: HashMap::new(),
        projects: HashMap::new(),
        project_requests: HashMap::new(),
        cut_by_deadline: false,
        cycles: Vec::new(),
        fatal: None,
        patched: std::collections::HashSet::new(),
    };

    let mut report = Report {
        command: opts.command.as_str(),
        dry_run: opts.dry_run,
        version: env!("CARGO_PKG_VERSION"),
        started_at: timestamp::format(now),
        finished_at: String::new(),
        exit_code: 0,
        gate: GatePass {
            reason: Some("not_requested"),
            ..GatePass::default()
        },
        plane: PlanePass {
            reason: Some("not_requested"),
            ..PlanePass::default()
        },
        cycles: Vec::new(),
        notifications: Notifications::default(),
        requests: Requests::default(),
        counters: Counters {
            enabled: cfg.reconcile.enabled,
            plane_enabled: cfg.reconcile.plane_enabled,
            interval: cfg.reconcile.interval_s,
            snapshot: store::Snapshot::default(),
        },
    };

    if matches!(opts.command, Command::Gate | Command::All) {
        report.gate = tick.gate_pass()?;
    }
    report.cycles = std::mem::take(&mut tick.cycles);
    if matches!(opts.command, Command::Plane | Command::All) {
        report.plane = tick.plane_pass()?;
    }
    if let Some(e) = tick.fatal.take() {
        return Err(e);
    }

    // Delivery: not in dry-run, not under the kill switch, not past the deadline.
    let mut delivery_ran = false;
    if !opts.dry_run
        && cfg.reconcile.enabled
        && !tick.cut_by_deadline
        && let (Store::Live(store), Some(tg), Some(tcfg)) =
            (&mut tick.store, &tick.telegram, &cfg.telegram)
    {
        let d = notify::deliver(store, tg, tcfg.digest_over, now)?;
        delivery_ran = true;
        apply_delivery(&mut report, &d);
    }
    report.notifications.deduped = tick.deduped_keys.len() as u64;
    if let Some(s) = tick.store.reader() {
        report.notifications.queued = s.pending_count()?.max(0) as u64;
    }

    report.requests = Requests {
        orchestrator: tick.orchestrator.client().requests(),
        plane: tick.plane.client().requests(),
        telegram: tick.telegram_client.requests(),
    };

    // Exit code, first match wins: 69, 75, 1, 0 (78 and 74 never get here).
    let unit_failed = report.gate.units.iter().any(|u| u.failed)
        || report.plane.units.iter().any(|u| u.failed)
        || report.cycles.iter().any(|c| c.error.is_some());
    let project_failed = report.plane.projects.iter().any(|p| p.error.is_some());
    let undelivered =
        delivery_ran && (report.notifications.queued > 0 || report.notifications.dropped > 0);
    report.exit_code = if report.gate.error.is_some() || report.plane.error.is_some() {
        69
    } else if tick.cut_by_deadline {
        75
    } else if unit_failed || project_failed || undelivered {
        1
    } else {
        0
    };

    let elapsed = started.elapsed();
    let finished = now + time::Duration::try_from(elapsed).unwrap_or(time::Duration::ZERO);
    report.finished_at = timestamp::format(finished);
    match &mut tick.store {
        Store::Live(store) => {
            let rec = tick_record(
                &report,
                now,
                elapsed,
                std::mem::take(&mut tick.deduped_keys),
            );
            store.finish_tick(&rec, finished)?;
            report.counters.snapshot = store.snapshot()?;
        }
        Store::ReadOnly(Some(store)) => report.counters.snapshot = store.snapshot()?,
        Store::ReadOnly(None) => {}
    }
    Ok(report)
}

fn secrets(cfg: &Config) -> Vec<String> {
    [
        cfg.orchestrator.token.as_ref(),
        cfg.orchestrator.webhook_secret.as_ref(),
        cfg.plane.api_key.as_ref(),
        cfg.telegram.as_ref().and_then(|t| t.bot_token.as_ref()),
    ]
    .into_iter()
    .flatten()
    .map(|s| s.expose().to_string())
    .collect()
}

fn apply_delivery(report: &mut Report, d: &notify::Delivery) {
    let status = |id: i64| {
        if d.sent.contains(&id) {
            Some(Notification::Sent)
        } else if d.digested.contains(&id) {
            Some(Notification::Digest)
        } else if d.dropped.contains(&id) {
            Some(Notification::Dropped)
        } else {
            None
        }
    };
    for u in &mut report.gate.units {
        if let Some(n) = u.outbox_id.and_then(status) {
            u.notification = Some(n);
        }
    }
    for u in &mut report.plane.units {
        if let Some(n) = u.outbox_id.and_then(status) {
            u.notification = Some(n);
        }
    }
    report.notifications.sent = (d.sent.len() + d.digested.len()) as u64;
    report.notifications.dropped = d.dropped.len() as u64;
}

fn tick_record(
    report: &Report,
    started_at: OffsetDateTime,
    elapsed: Duration,
    deduped_keys: Vec<String>,
) -> store::TickRecord {
    let units = report
        .gate
        .units
        .iter()
        .map(|u| (u.outcome, u.reason, u.failed))
        .chain(
            report
                .plane
                .units
                .iter()
                .map(|u| (u.outcome, u.reason, u.failed)),
        );
    let mut errors = 0;
    let mut skipped_terminal = 0;
    for (outcome, reason, failed) in units {
        if failed {
            errors += 1;
        }
        if outcome == Outcome::Skipped && reason.is_some_and(Reason::is_terminal) {
            skipped_terminal += 1;
        }
    }
    errors += report.cycles.iter().filter(|c| c.error.is_some()).count() as i64;
    errors += report
        .plane
        .projects
        .iter()
        .filter(|p| p.error.is_some())
        .count() as i64;
    store::TickRecord {
        command: report.command.to_string(),
        started_at,
        duration_ms: elapsed.as_millis() as u64,
        counts: report.counts(),
        exit_code: i32::from(report.exit_code),
        errors,
        skipped_terminal,
        deduped_keys,
        cursors: cursors(report),
        series: crate::output::metrics::tick_series(report),
    }
}

/// Per pass that ran, the first unit the action cap deferred: the next
/// tick starts there, so the cap serves every unit in turn.
fn cursors(report: &Report) -> Vec<(String, Option<String>)> {
    let capped =
        |o: Outcome, r: Option<Reason>| o == Outcome::Deferred && r == Some(Reason::ActionCap);
    let mut out = Vec::new();
    if report.gate.ran {
        let at = report
            .gate
            .units
            .iter()
            .find(|u| capped(u.outcome, u.reason));
        out.push((
            "gate".into(),
            at.and_then(|u| u.task_id).map(|id| id.to_string()),
        ));
    }
    if report.plane.ran {
        let at = report
            .plane
            .units
            .iter()
            .find(|u| capped(u.outcome, u.reason));
        out.push(("plane".into(), at.map(|u| u.issue_id.clone())));
    }
    out
}

/// What a new unblock is, before de-dup.
struct Unblock<'t> {
    pass: store::Pass,
    key: String,
    task_id: Option<i64>,
    issue_id: Option<String>,
    work_item_id: Option<&'t str>,
    stage: &'t str,
    state_uuid: Option<String>,
}

impl Tick<'_> {
    fn cursor(&self, pass: &str) -> anyhow::Result<Option<String>> {
        Ok(match self.store.reader() {
            Some(s) => s.cursor(pass)?,
            None => None,
        })
    }

    fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The gate pass over the orchestrator's task list.
    fn gate_pass(&mut self) -> anyhow::Result<GatePass> {
        let mut pass = GatePass {
            ran: true,
            ..GatePass::default()
        };
        if !self.cfg.reconcile.enabled {
            pass.ran = false;
            pass.reason = Some("disabled");
            return Ok(pass);
        }
        let list = match self.orchestrator.tasks() {
            Ok(list) => list,
            Err(e) => {
                log::error!("gate pass cannot start: {e}");
                pass.ran = false;
                pass.reason = Some("unavailable");
                pass.error = Some(e.to_string());
                return Ok(pass);
            }
        };
        // The good tasks in one list (the graph wants a slice), the order
        // of the units kept beside it: no copy of 5,000 tasks.
        let mut tasks: Vec<Task> = Vec::with_capacity(list.len());
        let mut order: Vec<Result<usize, BadTask>> = Vec::with_capacity(list.len());
        for item in list {
            order.push(item.map(|t| {
                tasks.push(t);
                tasks.len() - 1
            }));
        }
        self.prefetch_for_gate(&tasks)?;
        // Start where the action cap stopped the last tick.
        if let Some(cursor) = self.cursor("gate")?
            && let Some(at) = order
                .iter()
                .position(|o| o.as_ref().is_ok_and(|i| tasks[*i].id.to_string() == cursor))
        {
            order.rotate_left(at);
        }
        let graph = if self.cfg.reconcile.task_deps_enabled {
            let graph = DepGraph::build(&tasks);
            for w in graph.warnings() {
                log::warn!("{w}");
            }
            Some(graph)
        } else {
            None
        };
        for item in order {
            if !self.cut_by_deadline && self.past_deadline() {
                log::warn!("deadline reached; the remaining tasks are deferred");
                self.cut_by_deadline = true;
            }
            let unit = match item.map(|i| &tasks[i]) {
                Err(bad) => GateUnit {
                    task_id: bad.id,
                    work_item_id: None,
                    stage: None,
                    outcome: Outcome::Error,
                    reason: None,
                    detail: Some(bad.error),
                    stage_after: None,
                    notification: None,
                    failed: true,
                    outbox_id: None,
                },
                Ok(task) if self.cut_by_deadline => {
                    let mut u = unit_for(task, Outcome::Deferred);
                    u.reason = Some(Reason::Deadline);
                    u
                }
                Ok(task) => {
                    let readiness = graph.as_ref().map(|g| g.readiness(task.id));
                    self.gate_task(task, readiness.as_ref())?
                }
            };
            if let Some(e) = self.fatal.take() {
                return Err(e);
            }
            if unit.failed {
                log::error!(
                    "gate: task {} failed: {}",
                    unit.task_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "?".into()),
                    unit.detail.as_deref().unwrap_or("")
                );
            }
            pass.units.push(unit);
        }
        if let Some(graph) = &graph
            && !self.cut_by_deadline
        {
            self.cycle_backstop(graph, &tasks)?;
        }
        Ok(pass)
    }

    /// Reads, concurrently, every project the gate pass will ask about: those of the
    /// tasks that pass the local guards (in `all`, every enabled project,
    /// which the Plane pass needs anyway).
    fn prefetch_for_gate(&mut self, tasks: &[Task]) -> anyhow::Result<()> {
        let config = self.cfg;
        let every = self.opts.command == Command::All && config.reconcile.plane_enabled;
        // One pass over the tasks, not one per project.
        let asked: std::collections::HashSet<&str> = if every {
            std::collections::HashSet::new()
        } else {
            tasks
                .iter()
                .filter(|t| {
                    gate::local_guards(t, &config.reconcile, true, self.now) == Verdict::Proceed
                })
                .map(|t| t.repo.as_str())
                .collect()
        };
        let needed: Vec<crate::config::Project> = config
            .projects
            .iter()
            .filter(|p| p.enabled && (every || asked.contains(p.repo.as_str())))
            .cloned()
            .collect();
        self.prefetch(&needed)
    }

    fn gate_task(&mut self, task: &Task, deps: Option<&Readiness>) -> anyhow::Result<GateUnit> {
        let config = self.cfg;
        let cfg = &config.reconcile;
        let project = config.project_by_repo(&task.repo);
        let project_enabled = project.is_none_or(|p| p.enabled);
        let mut resolved: Option<PlaneView> = None;
        let mut blind_message: Option<String> = None;
        let verdict = gate::decide(
            task,
            cfg,
            project_enabled,
            self.now,
            self.actions,
            deps,
            || {
                let (view, message) = self.resolve_plane(task);
                blind_message = message;
                resolved = Some(view.clone());
                view
            },
        );
        let state_uuid = match &resolved {
            Some(PlaneView::Resolved { state, .. }) => Some(state.clone()),
            _ => None,
        };
        match verdict {
            Verdict::Skip(reason) => {
                let mut u = unit_for(task, Outcome::Skipped);
                u.reason = Some(reason);
                if reason == Reason::PlaneUnresolved {
                    let read_failed = matches!(
                        resolved,
                        Some(PlaneView::Unresolved(Unresolved::ReadFailed))
                    );
                    u.failed = read_failed;
                    u.detail = blind_message;
                }
                Ok(u)
            }
            Verdict::Defer(reason) => {
                let mut u = unit_for(task, Outcome::Deferred);
                u.reason = Some(reason);
                u.detail = blind_message;
                Ok(u)
            }
            Verdict::Proceed if self.opts.dry_run => self.evaluate_gate(task, state_uuid),
            Verdict::Proceed => self.advance(task, state_uuid),
        }
    }

    /// Dry-run: the read-only gate evaluation instead of the advance.
    fn evaluate_gate(
        &mut self,
        task: &Task,
        state_uuid: Option<String>,
    ) -> anyhow::Result<GateUnit> {
        match self.orchestrator.gate(task.id) {
            Ok(g) if g.passed => {
                self.actions += 1;
                let mut u = unit_for(task, Outcome::WouldAdvance);
                u.detail = g.detail;
                u.notification =
                    Some(self.note_unblock(&mut None, gate_unblock(task, state_uuid))?);
                Ok(u)
            }
            Ok(g) => {
                let mut u = unit_for(task, Outcome::GateRed);
                u.detail = g.detail;
                Ok(u)
            }
            Err(e) => Ok(error_unit(task, e.to_string())),
        }
    }

    fn advance(&mut self, task: &Task, state_uuid: Option<String>) -> anyhow::Result<GateUnit> {
        match self.orchestrator.advance(task.id, &task.stage) {
            Ok(Advance::Advanced {
                stage_after,
                detail,
            }) => {
                self.actions += 1;
                log::info!(
                    "gate: task {} advanced {} → {stage_after}",
                    task.id,
                    task.stage
                );
                let mut u = unit_for(task, Outcome::Advanced);
                u.stage_after = Some(stage_after);
                u.detail = Some(detail).filter(|d| !d.is_empty());
                let mut outbox = None;
                u.notification =
                    Some(self.note_unblock(&mut outbox, gate_unblock(task, state_uuid))?);
                u.outbox_id = outbox;
                Ok(u)
            }
            Ok(Advance::GateRed { detail }) => {
                let mut u = unit_for(task, Outcome::GateRed);
                u.detail = Some(detail).filter(|d| !d.is_empty());
                Ok(u)
            }
            Ok(Advance::Refused { detail }) => {
                let mut u = unit_for(task, Outcome::NotAdvanced);
                u.detail = Some(detail);
                Ok(u)
            }
            Err(e) => Ok(error_unit(task, e.to_string())),
        }
    }

    /// Row 7: the task's project, its states and its issue's state. Never
    /// fails: what cannot be resolved says why.
    fn resolve_plane(&mut self, task: &Task) -> (PlaneView, Option<String>) {
        let config = self.cfg;
        let Some(project) = config.project_by_repo(&task.repo) else {
            let m = format!("repo {:?} is not in [[projects]]", task.repo);
            return (PlaneView::Unresolved(Unresolved::NotAsked), Some(m));
        };
        let Some(issue_id) = task.issue_id() else {
            return (
                PlaneView::Unresolved(Unresolved::NotAsked),
                Some("task has no plane_issue_id".into()),
            );
        };
        let view = match self.project_view(project) {
            Ok(v) => v,
            Err(b) => return (PlaneView::Unresolved(b.cause), Some(b.message)),
        };
        match view.issue(issue_id).map(|i| i.state.clone()) {
            Some(Some(state)) => (
                PlaneView::Resolved {
                    states: view.states.clone(),
                    state,
                },
                None,
            ),
            Some(None) => (
                PlaneView::Unresolved(Unresolved::ReadFailed),
                Some(format!("plane issue {issue_id} has no state")),
            ),
            // Deleted or moved in Plane: nothing to ask, not a failed read.
            None => (
                PlaneView::Unresolved(Unresolved::NotAsked),
                Some(format!(
                    "plane issue {issue_id} is not listed in project {}",
                    project.plane_project_id
                )),
            ),
        }
    }

    /// Announce an unblock once per (key, stage, state)
    /// (docs/decisions.md, "Announcements, de-dup and delivery").
    /// Live: one transaction records it and queues the message.
    fn note_unblock(
        &mut self,
        outbox: &mut Option<i64>,
        u: Unblock<'_>,
    ) -> anyhow::Result<Notification> {
        let last = match self.dry_dedup.get(&u.key) {
            Some(v) => Some(v.clone()),
            None => match self.store.reader() {
                Some(s) => s.last_announced(&u.key)?,
                None => None,
            },
        };
        if store::is_duplicate(last.as_ref(), u.stage, u.state_uuid.as_deref()) {
            self.deduped_keys.push(u.key.clone());
            return Ok(Notification::Deduped);
        }
        let queue = self.cfg.reconcile.notify_unblock && self.cfg.telegram.is_some();
        let tcfg = self.cfg.telegram.as_ref();
        let link = notify::link(
            tcfg.and_then(|t| t.link_template.as_deref()),
            u.work_item_id,
            &u.key,
        );
        let template = tcfg
            .map(|t| t.unblock_template.as_str())
            .unwrap_or("🔧 reconciler: {link} {stage} разблокирована (потерян webhook)");
        let text = notify::unblock_text(template, &link, u.stage);
        log::info!(
            "{}: {} {} unblocked (lost webhook)",
            u.pass.as_str(),
            u.key,
            u.stage
        );
        match &mut self.store {
            Store::Live(store) => {
                let rec = store
                    .record_unblock(
                        &store::Unblock {
                            key: u.key.clone(),
                            pass: u.pass,
                            task_id: u.task_id,
                            issue_id: u.issue_id.clone(),
                            work_item_id: u.work_item_id.map(str::to_string),
                            stage: u.stage.to_string(),
                            state_uuid: u.state_uuid.clone(),
                            digest_line: text.clone(),
                            text,
                            queue,
                        },
                        self.now,
                    )
                    .context("recording an unblock")?;
                *outbox = rec.outbox_id;
            }
            Store::ReadOnly(_) => {
                self.dry_dedup
                    .insert(u.key.clone(), (u.stage.to_string(), u.state_uuid.clone()));
            }
        }
        Ok(if queue {
            Notification::Queued
        } else {
            Notification::Off
        })
    }
}

/// The gate pass's de-dup key: the work item id, else the task id.
fn gate_unblock(task: &Task, state_uuid: Option<String>) -> Unblock<'_> {
    Unblock {
        pass: store::Pass::Gate,
        key: task
            .work_item()
            .map(str::to_string)
            .unwrap_or_else(|| task.id.to_string()),
        task_id: Some(task.id),
        issue_id: task.issue_id().map(str::to_string),
        work_item_id: task.work_item(),
        stage: &task.stage,
        state_uuid,
    }
}

fn unit_for(task: &Task, outcome: Outcome) -> GateUnit {
    GateUnit {
        task_id: Some(task.id),
        work_item_id: task.work_item().map(str::to_string),
        stage: Some(task.stage.clone()),
        outcome,
        reason: None,
        detail: None,
        stage_after: None,
        notification: None,
        failed: false,
        outbox_id: None,
    }
}

fn error_unit(task: &Task, detail: String) -> GateUnit {
    let mut u = unit_for(task, Outcome::Error);
    u.detail = Some(detail);
    u.failed = true;
    u
}
