//! The gate pass over the orchestrator's task list: start the Plane reads
//! the decisions need, decide each task (`core::gate`) as its project's
//! view is back, carry out the verdict.

use std::collections::HashSet;

use super::{Slot, Tick};
use crate::core::deps::{DepGraph, Readiness};
use crate::core::gate::{self, PlaneView, Unresolved};
use crate::core::outcome::{Outcome, Reason, Verdict};
use crate::core::plane::ListedTasks;
use crate::peers::orchestrator::{Advance, BadTask, Task};
use crate::store::{self, Announcement};
use crate::tick::Command;
use crate::tick::outcome::{CycleReport, GatePass, GateUnit, NotRun, SharedCause};

/// A gate pass under way: its units so far, in report order, and the
/// tasks set aside until their projects' reads are back.
pub(super) struct GateRun<'a> {
    pass: GatePass,
    tasks: Vec<Task>,
    graph: Option<DepGraph>,
    units: Vec<Option<GateUnit>>,
    /// Report position, task index, the project awaited.
    aside: Vec<(usize, usize, &'a str)>,
    /// The projects' failed reads already logged.
    logged: HashSet<String>,
    /// `PlaneReads::ended` when the set-aside tasks were last looked at.
    looked: u64,
    /// The projects the cycle backstop needs read.
    members: Vec<&'a str>,
    /// The task the cursor names (report position 0) waits aside, with
    /// an action held for it (`ActionCap::hold`).
    holding: bool,
}

impl GateRun<'_> {
    fn not_run(pass: GatePass) -> Self {
        GateRun {
            pass,
            tasks: Vec::new(),
            graph: None,
            units: Vec::new(),
            aside: Vec::new(),
            logged: HashSet::new(),
            looked: 0,
            members: Vec::new(),
            holding: false,
        }
    }
}

impl<'a> Tick<'a> {
    /// The gate pass over the orchestrator's task list, up to the tasks
    /// whose projects are still being read: those wait aside
    /// (`gate_step`) while the others go on.
    pub(super) fn gate_begin(&mut self) -> anyhow::Result<GateRun<'a>> {
        let mut pass = GatePass {
            ran: true,
            ..GatePass::default()
        };
        if !self.cfg.reconcile.enabled {
            pass.ran = false;
            pass.reason = Some(NotRun::Disabled);
            return Ok(GateRun::not_run(pass));
        }
        let list = match self.peers.orchestrator.tasks() {
            Ok(list) => list,
            Err(e) => {
                log::error!("gate pass cannot start: {e}");
                pass.ran = false;
                pass.reason = Some(NotRun::Unavailable);
                pass.error = Some(e.to_string());
                return Ok(GateRun::not_run(pass));
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
        // The Plane pass of `all` checks its no-op memos against this list
        // instead of reading each issue's task (docs/plane.md).
        if self.opts.command == Command::All && self.cfg.reconcile.plane_enabled {
            let complete = order.iter().all(Result::is_ok);
            self.listed = Some(ListedTasks::new(&tasks, complete));
        }
        // Actions an earlier tick left unconfirmed, before any new one.
        self.recheck_gate_intents(&tasks)?;
        self.start_reads_for_gate(&tasks)?;
        // Start where the action cap stopped the last tick.
        let mut from_cursor = false;
        if let Some(cursor) = self.cursor("gate")?
            && let Some(at) = order
                .iter()
                .position(|o| o.as_ref().is_ok_and(|i| tasks[*i].id.to_string() == cursor))
        {
            order.rotate_left(at);
            from_cursor = true;
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
        // A task that needs its project's Plane view waits aside while the
        // project is being read; the others go on. Set-aside tasks are
        // decided as their projects come back, before any later task, so
        // a project's tasks keep their order (and the action cap its
        // turns); each unit keeps its place in the report.
        let members = match &graph {
            Some(g) => self.start_member_reads(g, &tasks)?,
            None => Vec::new(),
        };
        let mut run = GateRun {
            pass,
            units: Vec::with_capacity(order.len()),
            tasks,
            graph,
            aside: Vec::new(),
            logged: HashSet::new(),
            looked: 0,
            members,
            holding: false,
        };
        for item in order {
            self.pump_reads()?;
            self.gate_step(&mut run, false)?;
            let at = run.units.len();
            run.units.push(None);
            let unit = match item {
                Ok(i) => match self.awaited_project(&run.tasks[i]) {
                    Some(pid) if !self.cut.units => {
                        run.aside.push((at, i, pid));
                        if at == 0 && from_cursor {
                            self.cap.hold(&mut run.holding);
                        }
                        continue;
                    }
                    _ => self.gate_unit(&run.tasks[i], run.graph.as_ref(), at)?,
                },
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
                    shared: None,
                },
            };
            run.units[at] = Some(log_unit(unit, &mut run.logged));
        }
        Ok(run)
    }

    /// Whether the gate pass waits for reads: tasks set aside, or the
    /// projects the cycle backstop needs (unless the tick is cut: the
    /// backstop does not run then).
    pub(super) fn gate_waits(&self, run: &GateRun<'a>) -> bool {
        !run.aside.is_empty() || run.members.iter().any(|p| self.still_awaits(p))
    }

    /// Decides the set-aside tasks whose projects are back (all of them
    /// once the tick is cut, they are deferred; or when `all`), in report
    /// order. True when it decided any.
    pub(super) fn gate_step(&mut self, run: &mut GateRun<'a>, all: bool) -> anyhow::Result<bool> {
        let GateRun {
            tasks,
            graph,
            units,
            aside,
            logged,
            looked,
            holding,
            ..
        } = run;
        if !self.set_aside_changed(looked, !aside.is_empty(), all) {
            return Ok(false);
        }
        let before = aside.len();
        let mut k = 0;
        while k < aside.len() {
            let (at, i, pid) = aside[k];
            if !all && self.still_awaits(pid) {
                k += 1;
                continue;
            }
            aside.remove(k);
            if at == 0 {
                self.cap.release(holding);
            }
            let unit = self.gate_unit(&tasks[i], graph.as_ref(), at)?;
            units[at] = Some(log_unit(unit, logged));
        }
        Ok(aside.len() < before)
    }

    /// The gate pass once every task is decided: its report, then the
    /// cycle backstop.
    pub(super) fn gate_end(
        &mut self,
        run: GateRun<'a>,
    ) -> anyhow::Result<(GatePass, Vec<CycleReport>)> {
        let mut pass = run.pass;
        pass.units = run.units.into_iter().flatten().collect();
        let cycles = match &run.graph {
            Some(graph) if !self.cut.units => self.cycle_backstop(graph, &run.tasks)?,
            _ => Vec::new(),
        };
        Ok((pass, cycles))
    }

    /// The project a task waits for: it needs its Plane view (it passes
    /// the local guards, its project is enabled and it names an issue) and
    /// the project's reads are queued or running.
    fn awaited_project(&self, task: &Task) -> Option<&'a str> {
        let config: &'a crate::config::Config = self.cfg;
        let project = config.project_by_repo(&task.repo).filter(|p| p.enabled)?;
        task.issue_id()?;
        let pid = project.plane_project_id.as_str();
        let needs =
            gate::local_guards(task, &config.reconcile, true, self.clock.now) == Verdict::Proceed;
        (needs && self.reads.awaits(pid)).then_some(pid)
    }

    /// One task's unit at report position `at`: cut by the deadline, or
    /// decided and carried out.
    fn gate_unit(
        &mut self,
        task: &Task,
        graph: Option<&DepGraph>,
        at: usize,
    ) -> anyhow::Result<GateUnit> {
        if self.cut_units("tasks") {
            let mut u = unit_for(task, Outcome::Deferred);
            u.reason = Some(self.clock.cut_reason());
            return Ok(u);
        }
        let readiness = graph.map(|g| g.readiness(task.id));
        let (unit, queued) = self.gate_task(task, readiness.as_ref())?;
        if let Some(id) = queued {
            self.queued.push((id, Slot::Gate(at)));
        }
        Ok(unit)
    }

    /// Starts the reads of every project the gate pass will ask about:
    /// those of the tasks that pass the local guards (in `all`, every
    /// enabled project, which the Plane pass needs anyway).
    pub(super) fn start_reads_for_gate(&mut self, tasks: &[Task]) -> anyhow::Result<()> {
        let config = self.cfg;
        let every = self.opts.command == Command::All && config.reconcile.plane_enabled;
        // One pass over the tasks, not one per project.
        let asked: std::collections::HashSet<&str> = if every {
            std::collections::HashSet::new()
        } else {
            tasks
                .iter()
                .filter(|t| {
                    gate::local_guards(t, &config.reconcile, true, self.clock.now)
                        == Verdict::Proceed
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
        self.start_reads(&needed)
    }

    /// One task's unit, and the outbox row its announcement was queued in.
    fn gate_task(
        &mut self,
        task: &Task,
        deps: Option<&Readiness>,
    ) -> anyhow::Result<(GateUnit, Option<i64>)> {
        let config = self.cfg;
        let cfg = &config.reconcile;
        let project = config.project_by_repo(&task.repo);
        let project_enabled = project.is_none_or(|p| p.enabled);
        let mut resolved: Option<PlaneView> = None;
        let mut blind_message: Option<String> = None;
        let mut blind_shared: Option<SharedCause> = None;
        let verdict = gate::decide(
            task,
            cfg,
            project_enabled,
            self.clock.now,
            self.cap.used(),
            deps,
            || {
                let (view, message, shared) = self.resolve_plane(task);
                blind_message = message;
                blind_shared = shared;
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
                    u.shared = blind_shared.filter(|_| read_failed);
                }
                Ok((u, None))
            }
            Verdict::Defer(reason) => {
                // A project read the deadline stopped: the tick was cut.
                if matches!(reason, Reason::Deadline | Reason::Signal) {
                    self.cut.reads = true;
                }
                let mut u = unit_for(task, Outcome::Deferred);
                u.reason = Some(reason);
                u.detail = blind_message;
                Ok((u, None))
            }
            Verdict::Proceed if self.opts.dry_run => {
                Ok((self.evaluate_gate(task, state_uuid)?, None))
            }
            Verdict::Proceed => self.advance(task, state_uuid),
        }
    }

    /// Dry-run: the read-only gate evaluation instead of the advance.
    fn evaluate_gate(
        &mut self,
        task: &Task,
        state_uuid: Option<String>,
    ) -> anyhow::Result<GateUnit> {
        match self.peers.orchestrator.gate(task.id) {
            Ok(g) if g.passed => {
                self.cap.taken += 1;
                let mut u = unit_for(task, Outcome::WouldAdvance);
                u.detail = g.detail;
                u.notification = Some(self.note_unblock(gate_unblock(task, state_uuid))?.0);
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

    fn advance(
        &mut self,
        task: &Task,
        state_uuid: Option<String>,
    ) -> anyhow::Result<(GateUnit, Option<i64>)> {
        let unit = format!("gate:{}", task.id);
        self.begin_intent(&unit, &task.stage, &gate_unblock(task, state_uuid.clone()))?;
        let result = self.peers.orchestrator.advance(task.id, &task.stage);
        // Unless the gate was red, the task moved (or may have, or had
        // since the list): the Plane pass reads it fresh.
        if !matches!(result, Ok(Advance::GateRed { .. }))
            && let (Some(listed), Some(issue)) = (&mut self.listed, task.issue_id())
        {
            listed.forget(issue);
        }
        // A transport error leaves the effect unknown: the intent stays for
        // the next tick to re-check. Any answer resolves it.
        match &result {
            Ok(Advance::Advanced { .. }) => self.resolving = Some(unit),
            Err(e) if e.status().is_none() => {}
            _ => self.end_intent(&unit)?,
        }
        match result {
            Ok(Advance::Advanced {
                stage_after,
                detail,
            }) => {
                self.cap.taken += 1;
                log::info!(
                    "gate: task {} advanced {} → {stage_after}",
                    task.id,
                    task.stage
                );
                let mut u = unit_for(task, Outcome::Advanced);
                u.stage_after = Some(stage_after);
                u.detail = Some(detail).filter(|d| !d.is_empty());
                let (notification, queued) = self.note_unblock(gate_unblock(task, state_uuid))?;
                u.notification = Some(notification);
                Ok((u, queued))
            }
            Ok(Advance::GateRed { detail }) => {
                let mut u = unit_for(task, Outcome::GateRed);
                u.detail = Some(detail).filter(|d| !d.is_empty());
                Ok((u, None))
            }
            Ok(Advance::Refused { detail }) => {
                let mut u = unit_for(task, Outcome::NotAdvanced);
                u.detail = Some(detail);
                Ok((u, None))
            }
            Err(e) => Ok((error_unit(task, e.to_string()), None)),
        }
    }

    /// Row 7: the task's project, its states and its issue's state. Never
    /// fails: what cannot be resolved says why.
    /// The task's Plane view; when unresolved, why (and the cause it shares
    /// with the project's other tasks when the project's read failed).
    fn resolve_plane(&mut self, task: &Task) -> (PlaneView, Option<String>, Option<SharedCause>) {
        let config = self.cfg;
        let Some(project) = config.project_by_repo(&task.repo) else {
            let m = format!("repo {:?} is not in [[projects]]", task.repo);
            return (PlaneView::Unresolved(Unresolved::NotAsked), Some(m), None);
        };
        let Some(issue_id) = task.issue_id() else {
            return (
                PlaneView::Unresolved(Unresolved::NotAsked),
                Some("task has no plane_issue_id".into()),
                None,
            );
        };
        let view = match self.reads.view(project) {
            Ok(v) => v,
            Err(b) => {
                let shared = b.shared(&project.repo);
                return (PlaneView::Unresolved(b.cause), Some(b.message), shared);
            }
        };
        match view.issue(issue_id).map(|i| i.state.clone()) {
            Some(Some(state)) => (
                PlaneView::Resolved {
                    states: view.states.clone(),
                    state,
                },
                None,
                None,
            ),
            Some(None) => (
                PlaneView::Unresolved(Unresolved::ReadFailed),
                Some(format!("plane issue {issue_id} has no state")),
                None,
            ),
            // Deleted or moved in Plane: nothing to ask, not a failed read.
            None => (
                PlaneView::Unresolved(Unresolved::NotAsked),
                Some(format!(
                    "plane issue {issue_id} is not listed in project {}",
                    project.plane_project_id
                )),
                None,
            ),
        }
    }
}

/// The gate pass's de-dup key: the work item id, else the task id.
fn gate_unblock(task: &Task, state_uuid: Option<String>) -> Announcement {
    Announcement {
        pass: store::Pass::Gate,
        key: task
            .work_item()
            .map(str::to_string)
            .unwrap_or_else(|| task.id.to_string()),
        task_id: Some(task.id),
        issue_id: task.issue_id().map(str::to_string),
        work_item_id: task.work_item().map(str::to_string),
        stage: task.stage.clone(),
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
        shared: None,
    }
}

fn error_unit(task: &Task, detail: String) -> GateUnit {
    let mut u = unit_for(task, Outcome::Error);
    u.detail = Some(detail);
    u.failed = true;
    u
}

/// Logs a failed unit (a project's failed read once, not once per task).
fn log_unit(unit: GateUnit, logged: &mut HashSet<String>) -> GateUnit {
    if unit.failed {
        let id = unit
            .task_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into());
        let detail = unit.detail.as_deref().unwrap_or("");
        match &unit.shared {
            Some(c) => {
                if logged.insert(c.summary.clone()) {
                    log::error!("gate: {}: {detail}", c.summary);
                }
                log::debug!("gate: task {id} failed: {detail}");
            }
            None => log::error!("gate: task {id} failed: {detail}"),
        }
    }
    unit
}
