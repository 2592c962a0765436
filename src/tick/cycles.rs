//! The dependency-cycle backstop (docs/decisions.md, "Dependencies and
//! cycles"): every cycle in the graph
//! is alerted once, its members' Plane issues moved to Blocked, and a
//! cycle that is gone is forgotten so that a recurrence alerts again.

use std::collections::HashSet;

use super::{Store, Tick};
use crate::core::deps::{Cycle, DepGraph};
use crate::core::states::StateKey;
use crate::peers::orchestrator::Task;
use crate::peers::plane::PlaneFailure;
use crate::tick::notify;
use crate::tick::outcome::{CycleOutcome, CycleReport};

impl<'a> Tick<'a> {
    pub(super) fn cycle_backstop(
        &mut self,
        graph: &DepGraph,
        tasks: &[Task],
    ) -> anyhow::Result<Vec<CycleReport>> {
        let mut reports = Vec::new();
        let known: HashSet<String> = match self.store.reader() {
            Some(s) => s.known_cycles()?.into_iter().map(|c| c.key).collect(),
            None => HashSet::new(),
        };
        if !self.opts.dry_run {
            // Started with the gate pass (`start_member_reads`); back by
            // now unless the deadline came first.
            let pids: Vec<&str> = self
                .member_projects(graph, tasks)
                .iter()
                .map(|p| p.plane_project_id.as_str())
                .collect();
            self.await_reads(&pids)?;
        }
        // Cut before it could act: the next tick alerts and blocks in
        // full, rather than this one alerting and leaving the moves.
        if self.cut_units("cycle alerts and Blocked moves") {
            return Ok(Vec::new());
        }
        for cycle in graph.cycles() {
            let members: Vec<String> = cycle.members.iter().map(|id| graph.label(*id)).collect();
            let rendered = graph.render(cycle);
            let mut report = CycleReport {
                members,
                cycle: rendered.clone(),
                outcome: CycleOutcome::Known,
                blocked: Vec::new(),
                error: None,
            };
            if !known.contains(&cycle.key) {
                report.outcome = if self.opts.dry_run {
                    CycleOutcome::WouldAlert
                } else {
                    CycleOutcome::Alerted
                };
                if let Store::Live(store) = &mut self.store {
                    let template = self
                        .cfg
                        .telegram
                        .as_ref()
                        .map_or(crate::config::DEFAULT_CYCLE_TEMPLATE, |t| {
                            t.cycle_template.as_str()
                        });
                    let text = notify::cycle_text(template, &rendered);
                    log::warn!("gate: dependency cycle {rendered}");
                    store.record_cycle(
                        &cycle.key,
                        &text,
                        self.cfg.telegram.is_some(),
                        self.clock.now,
                    )?;
                }
            }
            if !self.opts.dry_run {
                self.block_members(cycle, graph, tasks, &mut report);
            }
            reports.push(report);
        }
        if let Store::Live(store) = &mut self.store {
            let present: Vec<String> = graph.cycles().iter().map(|c| c.key.clone()).collect();
            store.forget_cycles_except(&present)?;
        }
        Ok(reports)
    }

    /// Starts the reads of the projects of every cycle member (a live
    /// tick only: a dry run moves nothing), so that moving them to Blocked
    /// decides on data already fetched. Returns those projects' ids: the
    /// gate pass is not over until they are back.
    pub(super) fn start_member_reads(
        &mut self,
        graph: &DepGraph,
        tasks: &[Task],
    ) -> anyhow::Result<Vec<&'a str>> {
        if self.opts.dry_run {
            return Ok(Vec::new());
        }
        let projects = self.member_projects(graph, tasks);
        let needed: Vec<crate::config::Project> = projects.iter().map(|p| (*p).clone()).collect();
        self.start_reads(&needed)?;
        Ok(projects
            .iter()
            .map(|p| p.plane_project_id.as_str())
            .collect())
    }

    /// The enabled projects of the cycle members that name an issue.
    fn member_projects(&self, graph: &DepGraph, tasks: &[Task]) -> Vec<&'a crate::config::Project> {
        let config: &'a crate::config::Config = self.cfg;
        let mut needed: Vec<&'a crate::config::Project> = Vec::new();
        for cycle in graph.cycles() {
            for id in &cycle.members {
                let Some(task) = tasks.iter().find(|t| t.id == *id) else {
                    continue;
                };
                if task.issue_id().is_none() {
                    continue;
                }
                if let Some(p) = config.project_by_repo(&task.repo).filter(|p| p.enabled)
                    && !needed
                        .iter()
                        .any(|n| n.plane_project_id == p.plane_project_id)
                {
                    needed.push(p);
                }
            }
        }
        needed
    }

    /// Moves each member's issue to its project's Blocked state, when the
    /// project has one and the issue is not there already.
    fn block_members(
        &mut self,
        cycle: &Cycle,
        graph: &DepGraph,
        tasks: &[Task],
        report: &mut CycleReport,
    ) {
        let config = self.cfg;
        for id in &cycle.members {
            let Some(task) = tasks.iter().find(|t| t.id == *id) else {
                continue;
            };
            let Some(project) = config.project_by_repo(&task.repo).filter(|p| p.enabled) else {
                continue;
            };
            let Some(issue_id) = task.issue_id() else {
                continue;
            };
            if self.patched.contains(issue_id) {
                continue;
            }
            // No PATCH starts after the deadline or a stop signal.
            if self.cut_units("Blocked moves") {
                return;
            }
            let view = match self.reads.view(project) {
                Ok(v) => v,
                Err(b) => {
                    report.error = Some(b.message);
                    continue;
                }
            };
            let Some(blocked) = view.states.uuid(StateKey::Blocked).map(str::to_string) else {
                continue;
            };
            // Judged from the freshly synced mirror: no request per member.
            let current = view.issue(issue_id).and_then(|i| i.state.clone());
            if current.as_deref() == Some(blocked.as_str()) {
                continue;
            }
            match self
                .peers
                .plane
                .set_state(&project.plane_project_id, issue_id, &blocked)
            {
                Ok(()) => {
                    self.patched.insert(issue_id.to_string());
                    report.blocked.push(graph.label(*id));
                }
                // The tick was cut (the signal came during a 429's wait).
                Err(PlaneFailure::Deadline(m)) => {
                    log::warn!("gate: moving {} to Blocked deferred: {m}", graph.label(*id));
                    self.cut.units = true;
                }
                // Out of budget: not a failure; the next tick moves it.
                Err(PlaneFailure::Reserve | PlaneFailure::RateLimited(_)) => {
                    log::warn!(
                        "gate: moving {} to Blocked deferred: Plane budget",
                        graph.label(*id)
                    );
                }
                Err(f) => {
                    log::error!("gate: moving {} to Blocked failed: {f}", graph.label(*id));
                    report.error = Some(f.to_string());
                }
            }
        }
    }
}
