//! The report of one tick (docs/report.md): JSON for machines, text for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::core::outcome::{Outcome, Reason};
use crate::store::Snapshot;

/// What became of a unit's announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notification {
    Sent,
    Queued,
    Deduped,
    Digest,
    Off,
    Dropped,
}

impl Notification {
    pub fn as_str(self) -> &'static str {
        match self {
            Notification::Sent => "sent",
            Notification::Queued => "queued",
            Notification::Deduped => "deduped",
            Notification::Digest => "digest",
            Notification::Off => "off",
            Notification::Dropped => "dropped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GateUnit {
    pub task_id: Option<i64>,
    pub work_item_id: Option<String>,
    pub stage: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub detail: Option<String>,
    pub stage_after: Option<String>,
    pub notification: Option<Notification>,
    /// Counts against the exit code (an error, or a blind Plane skip).
    #[serde(skip)]
    pub failed: bool,
    /// The outbox row holding this unit's message, to follow its delivery.
    #[serde(skip)]
    pub outbox_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlaneUnit {
    pub issue_id: String,
    pub task_id: Option<i64>,
    pub work_item_id: Option<String>,
    pub state_key: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub detail: Option<String>,
    pub notification: Option<Notification>,
    #[serde(skip)]
    pub failed: bool,
    #[serde(skip)]
    pub outbox_id: Option<i64>,
}

impl PlaneUnit {
    pub fn new(
        issue_id: &str,
        trigger: crate::core::plane::Trigger,
        outcome: Outcome,
        reason: Option<Reason>,
    ) -> PlaneUnit {
        PlaneUnit {
            issue_id: issue_id.to_string(),
            task_id: None,
            work_item_id: None,
            state_key: Some(trigger.key().to_string()),
            outcome,
            reason,
            detail: None,
            notification: None,
            failed: false,
            outbox_id: None,
        }
    }

    /// A unit that failed before its trigger was known.
    pub fn failed(issue_id: String, detail: String) -> PlaneUnit {
        PlaneUnit {
            issue_id,
            task_id: None,
            work_item_id: None,
            state_key: None,
            outcome: Outcome::Error,
            reason: None,
            detail: Some(detail),
            notification: None,
            failed: true,
            outbox_id: None,
        }
    }

    pub fn with_trigger(mut self, trigger: crate::core::plane::Trigger) -> PlaneUnit {
        self.state_key = Some(trigger.key().to_string());
        self
    }

    pub fn with_task(mut self, task: Option<&crate::peers::orchestrator::Task>) -> PlaneUnit {
        if let Some(t) = task {
            self.task_id = Some(t.id);
            self.work_item_id = t.work_item().map(str::to_string);
        }
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectReport {
    pub plane_project_id: String,
    pub repo: String,
    pub error: Option<String>,
    /// Not reached: the deadline, the rate reserve or a Plane 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Reason>,
    pub issues_listed: usize,
    pub requests: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GatePass {
    pub ran: bool,
    pub reason: Option<&'static str>,
    pub error: Option<String>,
    pub units: Vec<GateUnit>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanePass {
    pub ran: bool,
    pub reason: Option<&'static str>,
    pub error: Option<String>,
    pub projects: Vec<ProjectReport>,
    pub units: Vec<PlaneUnit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub members: Vec<String>,
    pub cycle: String,
    /// `alerted`, `known`, or in a dry-run `would_alert`.
    pub outcome: &'static str,
    /// Members whose Plane issue was moved to Blocked this tick.
    pub blocked: Vec<String>,
    /// A failed PATCH (retried on the next tick, without a new alert).
    pub error: Option<String>,
    #[serde(skip)]
    pub outbox_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Notifications {
    pub sent: u64,
    pub deduped: u64,
    pub queued: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Requests {
    pub orchestrator: u64,
    pub plane: u64,
    pub telegram: u64,
}

/// The status snapshot (`reconcile status`) as of the end of the tick.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub enabled: bool,
    pub plane_enabled: bool,
    pub interval: Option<u64>,
    #[serde(flatten)]
    pub snapshot: Snapshot,
}

impl std::ops::Deref for Counters {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub dry_run: bool,
    pub version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub exit_code: u8,
    pub gate: GatePass,
    pub plane: PlanePass,
    pub cycles: Vec<CycleReport>,
    pub notifications: Notifications,
    pub requests: Requests,
    pub counters: Counters,
}

/// "outcome" or "outcome/reason": the key counted in summaries and in the
/// sidecar's tick record.
pub fn count_key(outcome: Outcome, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{outcome}/{r}"),
        None => outcome.to_string(),
    }
}

impl Report {
    /// Outcome counts over both passes.
    pub fn counts(&self) -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        let keys = self
            .gate
            .units
            .iter()
            .map(|u| count_key(u.outcome, u.reason))
            .chain(
                self.plane
                    .units
                    .iter()
                    .map(|u| count_key(u.outcome, u.reason)),
            );
        for k in keys {
            *counts.entry(k).or_insert(0) += 1;
        }
        counts
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// One line per acted-on or failed unit (`verbose`: every unit), then
    /// unless `quiet` a summary per pass and the notification line.
    pub fn text(&self, verbose: bool, quiet: bool) -> String {
        let mut out = String::new();
        let dry = if self.dry_run { " (dry-run)" } else { "" };
        for u in &self.gate.units {
            if !verbose && !shown(u.outcome, u.failed) {
                continue;
            }
            let _ = write!(out, "gate: {}", u.outcome);
            if let Some(r) = u.reason {
                let _ = write!(out, "/{r}");
            }
            match (u.task_id, &u.work_item_id) {
                (Some(id), Some(w)) => {
                    let _ = write!(out, " task {id} ({w})");
                }
                (Some(id), None) => {
                    let _ = write!(out, " task {id}");
                }
                _ => {}
            }
            if let Some(s) = &u.stage {
                let _ = write!(out, " {s}");
            }
            if let Some(a) = &u.stage_after {
                let _ = write!(out, " → {a}");
            }
            if let Some(d) = u.detail.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(out, ": {d}");
            }
            if let Some(n) = u.notification {
                let _ = write!(out, " [notification: {}]", n.as_str());
            }
            out.push('\n');
        }
        for u in &self.plane.units {
            if !verbose && !shown(u.outcome, u.failed) {
                continue;
            }
            let _ = write!(out, "plane: {}", u.outcome);
            if let Some(r) = u.reason {
                let _ = write!(out, "/{r}");
            }
            let _ = write!(out, " issue {}", u.issue_id);
            if let Some(w) = &u.work_item_id {
                let _ = write!(out, " ({w})");
            }
            if let Some(k) = &u.state_key {
                let _ = write!(out, " {k}");
            }
            if let Some(d) = u.detail.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(out, ": {d}");
            }
            if let Some(n) = u.notification {
                let _ = write!(out, " [notification: {}]", n.as_str());
            }
            out.push('\n');
        }
        for p in &self.plane.projects {
            if let Some(e) = &p.error {
                let _ = writeln!(
                    out,
                    "plane: project {} ({}) failed: {e}",
                    p.repo, p.plane_project_id
                );
            }
        }
        for c in &self.cycles {
            let _ = write!(out, "cycle: {} {}", c.outcome, c.cycle);
            if !c.blocked.is_empty() {
                let _ = write!(out, " [moved to Blocked: {}]", c.blocked.join(", "));
            }
            if let Some(e) = &c.error {
                let _ = write!(out, ": {e}");
            }
            out.push('\n');
        }
        if quiet {
            return out;
        }
        let pass_line = |name: &str,
                         ran: bool,
                         reason: Option<&str>,
                         error: &Option<String>,
                         units: Vec<String>| {
            if let Some(e) = error {
                return format!("{name}{dry}: could not run: {e}\n");
            }
            if !ran {
                return format!("{name}{dry}: not run ({})\n", reason.unwrap_or("-"));
            }
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for k in units {
                *counts.entry(k).or_insert(0) += 1;
            }
            if counts.is_empty() {
                return format!("{name}{dry}: nothing to do\n");
            }
            let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!("{name}{dry}: {}\n", parts.join(", "))
        };
        if self.gate.ran || self.gate.error.is_some() || self.command != "plane" {
            out.push_str(&pass_line(
                "gate",
                self.gate.ran,
                self.gate.reason,
                &self.gate.error,
                self.gate
                    .units
                    .iter()
                    .map(|u| count_key(u.outcome, u.reason))
                    .collect(),
            ));
        }
        if self.plane.ran || self.plane.error.is_some() || self.command != "gate" {
            out.push_str(&pass_line(
                "plane",
                self.plane.ran,
                self.plane.reason,
                &self.plane.error,
                self.plane
                    .units
                    .iter()
                    .map(|u| count_key(u.outcome, u.reason))
                    .collect(),
            ));
        }
        let n = &self.notifications;
        let _ = writeln!(
            out,
            "notifications: {} sent, {} deduped, {} queued, {} dropped",
            n.sent, n.deduped, n.queued, n.dropped
        );
        out
    }
}

/// Skips are shown only with -v; everything acted on or failed always.
fn shown(outcome: Outcome, failed: bool) -> bool {
    failed || !matches!(outcome, Outcome::Skipped)
}
