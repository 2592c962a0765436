//! The Plane pass's shell: list each project's trigger issues, read each issue's
//! task fresh, replay the lost webhook, confirm what it changed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{ProjectView, Slot, Tick};
use crate::config::Project;
use crate::core::outcome::Outcome;
use crate::core::plane::{self as plane_pass, Action, Decision, NoopMemo, Trigger, Wanted};
use crate::core::states::StateMap;
use crate::peers::http::{ErrorKind, PeerError};
use crate::peers::orchestrator::Task;
use crate::peers::plane::Issue;
use crate::store;
use crate::store::{Announcement, MirrorIssue};
use crate::tick::outcome::{NotRun, PlanePass, PlaneUnit, ProjectReport, SharedCause};

/// One project's part of the Plane pass, before it takes its place in the
/// report: its entry, its units, and the messages queued for them (outbox
/// row, unit index within the project).
struct Entry {
    report: ProjectReport,
    units: Vec<PlaneUnit>,
    queued: Vec<(i64, usize)>,
}

/// A Plane pass under way: the projects in the order of the report, the
/// entries handled so far, and the projects set aside until their reads
/// are back.
pub(super) struct PlaneRun<'a> {
    pass: PlanePass,
    projects: Vec<&'a Project>,
    entries: Vec<Option<Entry>>,
    /// Positions in `projects`.
    aside: Vec<usize>,
    cursor: Option<String>,
    memos: HashMap<String, NoopMemo>,
    /// `PlaneReads::ended` when the set-aside projects were last looked
    /// at (`u64::MAX`: never).
    looked: u64,
    /// The cursor's project (position 0) waits aside, with an action held
    /// for it (`ActionCap::hold`).
    holding: bool,
}

impl PlaneRun<'_> {
    /// Whether projects wait for their reads.
    pub fn waiting(&self) -> bool {
        !self.aside.is_empty()
    }
}

impl<'a> Tick<'a> {
    /// The Plane pass's start: open replays re-checked, the reads
    /// started, every project set aside for `plane_step` to handle once
    /// its reads are back.
    pub(super) fn plane_begin(&mut self) -> anyhow::Result<PlaneRun<'a>> {
        let mut run = PlaneRun {
            pass: PlanePass {
                ran: true,
                ..PlanePass::default()
            },
            projects: Vec::new(),
            entries: Vec::new(),
            aside: Vec::new(),
            cursor: None,
            memos: HashMap::new(),
            looked: 0,
            holding: false,
        };
        if !self.cfg.reconcile.enabled || !self.cfg.reconcile.plane_enabled {
            run.pass.ran = false;
            run.pass.reason = Some(NotRun::Disabled);
            return Ok(run);
        }
        // Replays an earlier tick left unconfirmed, before any new one.
        self.recheck_plane_intents()?;
        let config: &'a crate::config::Config = self.cfg;
        // One pass per Plane project, even when several repos share it.
        let mut projects: Vec<&'a Project> = Vec::new();
        for p in config.projects.iter().filter(|p| p.enabled) {
            if !projects
                .iter()
                .any(|q| q.plane_project_id == p.plane_project_id)
            {
                projects.push(p);
            }
        }
        let owned: Vec<Project> = projects.iter().map(|p| (*p).clone()).collect();
        self.start_reads(&owned)?;
        run.memos = match self.store.reader() {
            Some(s) => s.noop_memos()?,
            None => HashMap::new(),
        };
        // Start where the action cap stopped the last tick: its project
        // first (as the mirror last placed the issue: this tick's reads are
        // not back yet), and in it, its issue.
        run.cursor = self.cursor("plane")?;
        let cursor_project = match (&run.cursor, self.store.reader()) {
            (Some(c), Some(s)) => s.mirror_project_of(c)?,
            _ => None,
        };
        let mut from_cursor = false;
        if let Some(pid) = cursor_project
            && let Some(at) = projects.iter().position(|p| p.plane_project_id == pid)
        {
            projects.rotate_left(at);
            from_cursor = true;
        }
        run.projects = projects;
        // Every project waits aside: `plane_step` handles each once its
        // reads are back, before any later one still waiting. It steps
        // after the gate pass, so in `all` the gate pass decides its tasks
        // of a project before the Plane pass looks at it, as when the
        // passes ran one after the other. The report keeps the order.
        run.entries = std::iter::repeat_with(|| None)
            .take(run.projects.len())
            .collect();
        run.aside = (0..run.projects.len()).collect();
        run.looked = u64::MAX;
        if from_cursor {
            self.cap.hold(&mut run.holding);
        }
        Ok(run)
    }

    /// Handles the set-aside projects whose reads are back (all of them
    /// once the tick is cut, they are deferred; or when `all`), in order.
    /// True when it handled any.
    pub(super) fn plane_step(&mut self, run: &mut PlaneRun<'a>, all: bool) -> anyhow::Result<bool> {
        let PlaneRun {
            projects,
            entries,
            aside,
            cursor,
            memos,
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
            let project = projects[aside[k]];
            if !all && self.still_awaits(&project.plane_project_id) {
                k += 1;
                continue;
            }
            let at = aside.remove(k);
            if at == 0 {
                self.cap.release(holding);
            }
            entries[at] = Some(self.plane_entry(project, (cursor.as_deref(), memos))?);
        }
        Ok(aside.len() < before)
    }

    /// The Plane pass once every project is handled: its report, in order.
    pub(super) fn plane_end(&mut self, run: PlaneRun<'a>) -> PlanePass {
        let mut pass = run.pass;
        let mut unreachable = 0;
        for entry in run.entries.into_iter().flatten() {
            let offset = pass.units.len();
            for (id, i) in entry.queued {
                self.queued.push((id, Slot::Plane(offset + i)));
            }
            if entry.report.error.is_some() {
                unreachable += 1;
            }
            pass.units.extend(entry.units);
            pass.projects.push(entry.report);
        }
        if !run.projects.is_empty() && unreachable == run.projects.len() {
            pass.ran = false;
            pass.reason = Some(NotRun::Unavailable);
            // Not "the states": the listing (or a stopped one) may be
            // what failed; each project's error says which.
            pass.error =
                Some("the Plane read of every project failed (see each project's error)".into());
        }
        pass
    }

    /// One project's report entry and units, its reads being back (or the
    /// tick cut).
    fn plane_entry(
        &mut self,
        project: &Project,
        (cursor, memos): (Option<&str>, &HashMap<String, NoopMemo>),
    ) -> anyhow::Result<Entry> {
        let cut = self.cut_units("projects");
        let mut report = ProjectReport {
            plane_project_id: project.plane_project_id.clone(),
            repo: project.repo.clone(),
            error: None,
            shared: None,
            deferred: None,
            issues_listed: 0,
            requests: 0,
            last_synced_at: None,
        };
        let mut units = Vec::new();
        if cut {
            report.deferred = Some(self.clock.cut_reason());
            return Ok(Entry {
                report,
                units,
                queued: Vec::new(),
            });
        }
        // The messages this project queues, by unit within it.
        let first_queued = self.queued.len();
        match self.reads.view(project) {
            Ok(view) => {
                self.plane_project(project, &view, (cursor, memos), &mut report, &mut units)?
            }
            Err(b) => {
                if let Some(reason) = b.cause.deferral() {
                    if b.cause == crate::core::gate::Unresolved::Deadline {
                        self.cut.reads = true;
                    }
                    report.deferred = Some(reason);
                } else {
                    log::error!("plane: project {} failed: {}", project.repo, b.message);
                    report.shared = b.shared(&project.repo);
                    report.error = Some(match b.refusal {
                        Some(r) => format!("{} ({}; {})", b.message, r.label(), r.hint()),
                        None => b.message,
                    });
                }
            }
        }
        report.requests = self.reads.requests(&project.plane_project_id);
        let queued = self
            .queued
            .drain(first_queued..)
            .filter_map(|(id, slot)| match slot {
                Slot::Plane(i) => Some((id, i)),
                Slot::Gate(_) => None,
            })
            .collect();
        Ok(Entry {
            report,
            units,
            queued,
        })
    }

    fn plane_project(
        &mut self,
        project: &Project,
        view: &ProjectView,
        (cursor, memos): (Option<&str>, &HashMap<String, NoopMemo>),
        report: &mut ProjectReport,
        units: &mut Vec<PlaneUnit>,
    ) -> anyhow::Result<()> {
        let states = view.states.as_ref();
        let wanted = Wanted::from_states(states);
        let missing = wanted.missing();
        if !missing.is_empty() {
            log::warn!(
                "project {}: no Plane state for {}; that branch is off for this project",
                project.repo,
                missing.join(", ")
            );
        }
        for bad in &view.bad {
            units.push(PlaneUnit::failed(String::new(), bad.clone()));
        }
        let issues = &view.issues;
        report.issues_listed = issues.len();
        let start = cursor
            .and_then(|c| issues.iter().position(|i| i.id == c))
            .unwrap_or(0);
        let mut logged: std::collections::HashSet<String> = std::collections::HashSet::new();
        for issue in issues[start..].iter().chain(&issues[..start]) {
            let Some(state) = issue.state.clone() else {
                continue;
            };
            let Some(trigger) = wanted.trigger(&state) else {
                continue;
            };
            let unit = if self.cut_units("issues") {
                PlaneUnit::new(
                    &issue.id,
                    trigger,
                    Outcome::Deferred,
                    Some(self.clock.cut_reason()),
                )
            } else {
                let memo = memos.get(&issue.id);
                let (unit, queued) =
                    self.plane_issue(project, states, (issue, memo), &state, trigger)?;
                if let Some(id) = queued {
                    self.queued.push((id, Slot::Plane(units.len())));
                }
                unit
            };
            if unit.failed {
                let detail = unit.detail.as_deref().unwrap_or("");
                match &unit.shared {
                    // An outage: said once, not once per issue.
                    Some(c) => {
                        if logged.insert(c.summary.clone()) {
                            log::error!("plane: {}: {detail}", c.summary);
                        }
                        log::debug!("plane: issue {} failed: {detail}", unit.issue_id);
                    }
                    None => log::error!("plane: issue {} failed: {detail}", unit.issue_id),
                }
            }
            units.push(unit);
        }
        Ok(())
    }

    fn plane_issue(
        &mut self,
        project: &Project,
        states: &StateMap,
        (issue, memo): (&MirrorIssue, Option<&NoopMemo>),
        state: &str,
        trigger: Trigger,
    ) -> anyhow::Result<(PlaneUnit, Option<i64>)> {
        let cfg = &self.cfg.reconcile;
        if let Some(reason) = plane_pass::issue_guards(
            state,
            states,
            issue.updated_at.as_deref(),
            cfg,
            self.clock.now,
        ) {
            return Ok((
                PlaneUnit::new(&issue.id, trigger, Outcome::Skipped, Some(reason)),
                None,
            ));
        }
        // A memo the task list still shows holding costs no request; any
        // other issue's task is read fresh (docs/plane.md).
        let listed = match (memo, &self.listed) {
            (Some(m), Some(l)) => l
                .unchanged(&issue.id, m, issue.updated_at.as_deref(), state)
                .map(|t| t.cloned()),
            _ => None,
        };
        let held = listed.is_some();
        let read = match listed {
            Some(t) => Ok(t),
            None => self.peers.orchestrator.task_by_issue(&issue.id),
        };
        let task = match read {
            Ok(t) => t,
            Err(e) => {
                let mut unit =
                    PlaneUnit::failed(issue.id.clone(), e.to_string()).with_trigger(trigger);
                unit.shared = outage(&e);
                return Ok((unit, None));
            }
        };
        let mut unit =
            PlaneUnit::new(&issue.id, trigger, Outcome::Skipped, None).with_task(task.as_ref());
        let seen = NoopMemo::of(issue.updated_at.as_deref(), state, task.as_ref());
        // Held by the list: a task it leaves out (a done one) is None here.
        let remembered = held || memo.is_some_and(|m| m.matches(&seen));
        let action =
            match plane_pass::decide(trigger, task.as_ref(), cfg, self.cap.used(), remembered) {
                Decision::Skip(r) => {
                    unit.reason = Some(r);
                    return Ok((unit, None));
                }
                Decision::Defer(r) => {
                    unit.outcome = Outcome::Deferred;
                    unit.reason = Some(r);
                    return Ok((unit, None));
                }
                Decision::Replay(a) => a,
            };
        self.cap.taken += 1;
        if self.opts.dry_run {
            unit.outcome = action.dry_run_outcome();
            let stage = announced_stage(action, task.as_ref());
            let u = plane_unblock(
                action,
                &issue.id,
                state,
                task.as_ref(),
                task.as_ref(),
                &stage,
            );
            unit.notification = Some(self.note_unblock(u)?.0);
            return Ok((unit, None));
        }
        let issue = &self.full_issue(project, issue)?;
        let workspace = issue.raw.get("workspace").cloned().unwrap_or(Value::Null);
        let body = replay_body(project, states, issue, state, workspace);
        let intent = format!("plane:{}", issue.id);
        let stage = announced_stage(action, task.as_ref());
        let before = task.as_ref();
        let planned = plane_unblock(action, &issue.id, state, before, before, &stage);
        self.begin_intent(&intent, before.map_or("", |t| t.stage.as_str()), &planned)?;
        if let Err(e) = self.peers.orchestrator.replay(&body) {
            // An answer resolves the intent; a transport error leaves the
            // effect unknown, for the next tick to re-check.
            if e.status().is_some() {
                self.end_intent(&intent)?;
            }
            unit.outcome = Outcome::Error;
            unit.detail = Some(format!("replay failed, its effect is unknown: {e}"));
            unit.failed = true;
            return Ok((unit, None));
        }
        let after = match self.peers.orchestrator.task_by_issue(&issue.id) {
            Ok(t) => t,
            Err(e) => {
                unit.outcome = Outcome::Error;
                unit.detail = Some(format!(
                    "replayed, but the task could not be read back: {e}"
                ));
                unit.failed = true;
                return Ok((unit, None));
            }
        };
        unit.outcome = plane_pass::confirm(action, task.as_ref(), after.as_ref());
        if matches!(
            unit.outcome,
            Outcome::Started | Outcome::Resumed | Outcome::VerdictApplied
        ) {
            self.resolving = Some(intent);
        } else {
            self.end_intent(&intent)?;
        }
        // Remember a no-op with the task as it is after the replay (its
        // handler may have touched it); an effect re-arms the issue.
        if let store::Handle::Live(s) = &mut self.store {
            if plane_pass::is_noop(unit.outcome) {
                let m = NoopMemo::of(issue.updated_at.as_deref(), state, after.as_ref());
                s.set_noop_memo(&issue.id, Some(&m), self.clock.now)?;
            } else if memo.is_some() {
                s.set_noop_memo(&issue.id, None, self.clock.now)?;
            }
        }
        log::info!(
            "plane: issue {} {} → {}",
            issue.id,
            trigger.key(),
            unit.outcome
        );
        if matches!(
            unit.outcome,
            Outcome::Started | Outcome::Resumed | Outcome::VerdictApplied
        ) {
            if unit.task_id.is_none() {
                unit = unit.with_task(after.as_ref());
            }
            let stage = announced_stage(action, task.as_ref());
            let u = plane_unblock(
                action,
                &issue.id,
                state,
                task.as_ref(),
                after.as_ref(),
                &stage,
            );
            let (notification, queued) = self.note_unblock(u)?;
            unit.notification = Some(notification);
            return Ok((unit, queued));
        }
        Ok((unit, None))
    }

    /// The issue as Plane returned it, from the mirror just synced.
    fn full_issue(&self, project: &Project, issue: &MirrorIssue) -> anyhow::Result<Issue> {
        let raw = match self.store.reader() {
            Some(s) => s.mirror_raw(&project.plane_project_id, &issue.id)?,
            None => None,
        };
        Ok(Issue {
            id: issue.id.clone(),
            state: issue.state.clone(),
            updated_at: issue.updated_at.clone(),
            raw: raw.unwrap_or_else(|| json!({ "id": issue.id })),
        })
    }
}

/// The stage a message names: "analysis" for a start, else the stage the
/// task was in before the replay.
fn announced_stage(action: Action, before: Option<&Task>) -> String {
    match (action, before) {
        (Action::Start, _) | (_, None) => "analysis".into(),
        (_, Some(t)) => t.stage.clone(),
    }
}

/// The Plane pass's de-dup key: the issue id for a start, else the work item id, else
/// the issue id.
fn plane_unblock(
    action: Action,
    issue_id: &str,
    state: &str,
    before: Option<&Task>,
    after: Option<&Task>,
    stage: &str,
) -> Announcement {
    let key = match (action, before.and_then(Task::work_item)) {
        (Action::Start, _) | (_, None) => issue_id.to_string(),
        (_, Some(w)) => w.to_string(),
    };
    let task = after.or(before);
    Announcement {
        pass: store::Pass::Plane,
        key,
        task_id: task.map(|t| t.id),
        issue_id: Some(issue_id.to_string()),
        work_item_id: task.and_then(Task::work_item).map(str::to_string),
        stage: stage.to_string(),
        state_uuid: Some(state.to_string()),
    }
}

/// The replay body (docs/orchestrator-api.md): the issue as Plane returned it, with the state expanded
/// and the project id, wrapped as Plane wraps a state-change delivery.
pub fn replay_body(
    project: &Project,
    states: &StateMap,
    issue: &Issue,
    state: &str,
    workspace: Value,
) -> Vec<u8> {
    let name = states.name_of(state).unwrap_or_default();
    let group = states.group_of(state).unwrap_or_default();
    let mut data = match &issue.raw {
        Value::Object(m) => Value::Object(m.clone()),
        _ => json!({ "id": issue.id }),
    };
    data["state"] = json!({ "id": state, "name": name, "group": group });
    data["project"] = Value::from(project.plane_project_id.clone());
    let body = json!({
        "event": "issue",
        "action": "updated",
        "webhook_id": "reconcile",
        "workspace_id": workspace,
        "data": data,
        "activity": {
            "field": "state",
            "new_value": name,
            "old_value": null,
            "actor": null,
            "old_identifier": null,
            "new_identifier": state,
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An orchestrator that cannot be reached, or answers 5xx, fails every
/// issue's task lookup alike: one cause for the text report.
fn outage(e: &PeerError) -> Option<SharedCause> {
    let short = match &e.kind {
        ErrorKind::Transport(m) => m.clone(),
        ErrorKind::Status { code, .. } if *code >= 500 => format!("HTTP {code}"),
        _ => return None,
    };
    Some(SharedCause {
        summary: format!("orchestrator task lookup failed ({short})"),
        hint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::states::PlaneState;
    use std::collections::BTreeMap;

    #[test]
    fn the_replay_is_plane_s_state_change_delivery() {
        let project = Project {
            repo: "acme/shop".into(),
            plane_project_id: "p-1".into(),
            enabled: true,
            state_names: BTreeMap::new(),
        };
        let states = StateMap::build(
            &[PlaneState {
                id: "s-appr".into(),
                name: "Approved".into(),
                group: Some("started".into()),
                sequence: Some(1.0),
            }],
            &BTreeMap::new(),
        );
        let issue = Issue::from_value(json!({
            "id": "i-1", "name": "Fix it", "sequence_id": 7, "state": "s-old",
            "workspace": "w-1", "description_stripped": "why"
        }))
        .unwrap();
        let body = replay_body(&project, &states, &issue, "s-appr", json!("w-1"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "event": "issue",
                "action": "updated",
                "webhook_id": "reconcile",
                "workspace_id": "w-1",
                "data": {
                    "id": "i-1", "name": "Fix it", "sequence_id": 7,
                    "workspace": "w-1", "description_stripped": "why",
                    "state": {"id": "s-appr", "name": "Approved", "group": "started"},
                    "project": "p-1"
                },
                "activity": {
                    "field": "state", "new_value": "Approved", "old_value": null,
                    "actor": null, "old_identifier": null, "new_identifier": "s-appr"
                }
            })
        );
    }
}
