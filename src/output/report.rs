//! The report of one tick (docs/report.md): JSON for machines, text for people.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::core::outcome::Outcome;
use time::OffsetDateTime;

use crate::config::Reconcile;
use crate::core::timestamp;
use crate::store::Snapshot;
use crate::tick::outcome::{
    CycleReport, GatePass, NotRun, Notifications, PlanePass, Requests, SharedCause, TickOutcome,
    count_key,
};

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
    #[serde(serialize_with = "rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: OffsetDateTime,
    pub exit_code: u8,
    pub gate: GatePass,
    pub plane: PlanePass,
    pub cycles: Vec<CycleReport>,
    pub notifications: Notifications,
    pub requests: Requests,
    pub counters: Counters,
}

fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp::format(*t))
}

impl Report {
    /// The report of a finished tick, with the switches `status` shows.
    pub fn new(outcome: TickOutcome, cfg: &Reconcile) -> Report {
        Report {
            command: outcome.command.as_str(),
            dry_run: outcome.dry_run,
            version: env!("CARGO_PKG_VERSION"),
            started_at: outcome.started_at,
            finished_at: outcome.finished_at,
            exit_code: outcome.exit_code(),
            counters: Counters {
                enabled: cfg.enabled,
                plane_enabled: cfg.plane_enabled,
                interval: cfg.interval_s,
                snapshot: outcome.snapshot,
            },
            gate: outcome.gate,
            plane: outcome.plane,
            cycles: outcome.cycles,
            notifications: outcome.notifications,
            requests: outcome.requests,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// One line per acted-on or failed unit (`verbose`: every unit), then
    /// unless `quiet` a summary per pass and the notification line.
    pub fn text(&self, verbose: bool, quiet: bool) -> String {
        let mut out = String::new();
        let dry = if self.dry_run { " (dry-run)" } else { "" };
        // A cause many units share (a project's failed Plane read, the
        // orchestrator down) is one line with their count, and its hint is
        // printed once; -v lists every unit instead.
        let gate_shared = tally(self.gate.units.iter().map(|u| u.shared.as_ref()));
        let plane_shared = tally(self.plane.units.iter().map(|u| u.shared.as_ref()));
        let mut hints: BTreeSet<String> = BTreeSet::new();
        let mut hint = |out: &mut String, c: &SharedCause| {
            if let Some(h) = c.hint.as_deref()
                && hints.insert(h.to_string())
            {
                let _ = writeln!(out, "  {}", esc(h));
            }
        };
        let mut grouped: BTreeSet<&str> = BTreeSet::new();
        for u in &self.gate.units {
            if let Some(c) = u.shared.as_ref().filter(|_| !verbose) {
                if grouped.insert(&c.summary) {
                    let n = gate_shared.get(c.summary.as_str()).copied().unwrap_or(1);
                    let tasks = if n == 1 { "task" } else { "tasks" };
                    let _ = writeln!(out, "plane: {}: {n} {tasks} skipped", esc(&c.summary));
                    hint(&mut out, c);
                }
                continue;
            }
            if !verbose && !shown(u.outcome, u.failed) {
                continue;
            }
            let _ = write!(out, "gate: {}", u.outcome);
            if let Some(r) = u.reason {
                let _ = write!(out, "/{r}");
            }
            match (u.task_id, &u.work_item_id) {
                (Some(id), Some(w)) => {
                    let _ = write!(out, " task {id} ({})", esc(w));
                }
                (Some(id), None) => {
                    let _ = write!(out, " task {id}");
                }
                _ => {}
            }
            if let Some(s) = &u.stage {
                let _ = write!(out, " {}", esc(s));
            }
            if let Some(a) = &u.stage_after {
                let _ = write!(out, " → {}", esc(a));
            }
            if let Some(d) = u.detail.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(out, ": {}", esc(d));
            }
            if let Some(n) = u.notification {
                let _ = write!(out, " [notification: {}]", n.as_str());
            }
            out.push('\n');
        }
        let mut grouped: BTreeSet<&str> = BTreeSet::new();
        for u in &self.plane.units {
            if let Some(c) = u.shared.as_ref().filter(|_| !verbose) {
                if grouped.insert(&c.summary) {
                    let n = plane_shared.get(c.summary.as_str()).copied().unwrap_or(1);
                    let issues = if n == 1 { "issue" } else { "issues" };
                    let _ = writeln!(out, "plane: {}: {n} {issues} failed", c.summary);
                    hint(&mut out, c);
                }
                continue;
            }
            if !verbose && !shown(u.outcome, u.failed) {
                continue;
            }
            let _ = write!(out, "plane: {}", u.outcome);
            if let Some(r) = u.reason {
                let _ = write!(out, "/{r}");
            }
            let _ = write!(out, " issue {}", esc(&u.issue_id));
            if let Some(w) = &u.work_item_id {
                let _ = write!(out, " ({})", esc(w));
            }
            if let Some(k) = &u.state_key {
                let _ = write!(out, " {}", esc(k));
            }
            if let Some(d) = u.detail.as_deref().filter(|d| !d.is_empty()) {
                let _ = write!(out, ": {}", esc(d));
            }
            if let Some(n) = u.notification {
                let _ = write!(out, " [notification: {}]", n.as_str());
            }
            out.push('\n');
        }
        for p in &self.plane.projects {
            match (&p.error, &p.shared) {
                (Some(_), Some(c)) if !verbose => {
                    let _ = writeln!(out, "plane: {}: its issues not listed", esc(&c.summary));
                    hint(&mut out, c);
                }
                (Some(e), _) => {
                    let _ = writeln!(
                        out,
                        "plane: project {} ({}) failed: {}",
                        esc(&p.repo),
                        esc(&p.plane_project_id),
                        esc(e)
                    );
                }
                (None, _) => {}
            }
        }
        for c in &self.cycles {
            let _ = write!(out, "cycle: {} {}", c.outcome.as_str(), esc(&c.cycle));
            if !c.blocked.is_empty() {
                let _ = write!(out, " [moved to Blocked: {}]", esc(&c.blocked.join(", ")));
            }
            if let Some(e) = &c.error {
                let _ = write!(out, ": {}", esc(e));
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
                return format!("{name}{dry}: could not run: {}\n", esc(e));
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
                self.gate.reason.map(NotRun::as_str),
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
                self.plane.reason.map(NotRun::as_str),
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

/// How many units share each cause.
fn tally<'a>(causes: impl Iterator<Item = Option<&'a SharedCause>>) -> BTreeMap<&'a str, usize> {
    let mut n = BTreeMap::new();
    for c in causes.flatten() {
        *n.entry(c.summary.as_str()).or_insert(0) += 1;
    }
    n
}

use crate::output::escape as esc;

/// Skips are shown only with -v; everything acted on or failed always.
fn shown(outcome: Outcome, failed: bool) -> bool {
    failed || !matches!(outcome, Outcome::Skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::outcome::Outcome;
    use crate::tick::outcome::{GateUnit, PlaneUnit};
    use proptest::prelude::*;

    fn report(gate: Vec<GateUnit>, plane: Vec<PlaneUnit>) -> Report {
        Report {
            command: "all",
            dry_run: false,
            version: "0",
            started_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            exit_code: 0,
            gate: GatePass {
                ran: true,
                units: gate,
                ..GatePass::default()
            },
            plane: PlanePass {
                ran: true,
                units: plane,
                ..PlanePass::default()
            },
            cycles: Vec::new(),
            notifications: Notifications::default(),
            requests: Requests::default(),
            counters: Counters::default(),
        }
    }

    proptest! {
        /// Whatever bytes a peer sends as a stage, an id or a detail, the
        /// text report has one line per unit (then the two summary lines
        /// and the notification line) and no control character.
        #[test]
        fn peer_bytes_never_forge_report_lines(
            units in proptest::collection::vec(
                (any::<String>(), any::<String>(), any::<String>(), any::<String>()),
                0..6,
            )
        ) {
            let gate: Vec<GateUnit> = units
                .iter()
                .map(|(stage, id, detail, after)| GateUnit {
                    task_id: Some(1),
                    work_item_id: Some(id.clone()),
                    stage: Some(stage.clone()),
                    outcome: Outcome::Error,
                    reason: None,
                    detail: Some(detail.clone()),
                    stage_after: Some(after.clone()),
                    notification: None,
                    failed: true,
                    shared: None,
                })
                .collect();
            let plane: Vec<PlaneUnit> = units
                .iter()
                .map(|(stage, id, detail, _)| {
                    let mut u = PlaneUnit::failed(id.clone(), detail.clone());
                    u.work_item_id = Some(stage.clone());
                    u
                })
                .collect();
            let n = gate.len() + plane.len();
            let text = report(gate, plane).text(true, false);
            prop_assert!(
                !text.chars().any(|c| c != '\n' && (c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))),
                "{:?}", text
            );
            prop_assert_eq!(text.lines().count(), n + 3, "{}", text);
        }
    }
}
