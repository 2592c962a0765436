//! What one tick did: the value `tick::run` returns. The exit code, the
//! sidecar's tick record and the action-cap cursors are pure functions of
//! it (tested below); the report and the metrics are rendered from it by
//! `output`, after the tick.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::Command;
use crate::core::outcome::{Outcome, Reason};
use crate::store::{REQUESTS_TOTAL, SeriesKey, TICKS_TOTAL, TickRecord, UNITS_TOTAL};

/// What became of a unit's announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The cause this unit shares with others (a project's failed Plane
    /// read): the text report prints it once with the count.
    #[serde(skip)]
    pub shared: Option<SharedCause>,
}

/// A cause many units can share, and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCause {
    /// "project acme/shop unreadable (HTTP 403: API key rejected)".
    pub summary: String,
    pub hint: Option<String>,
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
    /// As `GateUnit::shared`: the orchestrator down for every lookup.
    #[serde(skip)]
    pub shared: Option<SharedCause>,
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
            state_key: Some(trigger.key().as_str().to_string()),
            outcome,
            reason,
            detail: None,
            notification: None,
            failed: false,
            shared: None,
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
            shared: None,
        }
    }

    pub fn with_trigger(mut self, trigger: crate::core::plane::Trigger) -> PlaneUnit {
        self.state_key = Some(trigger.key().as_str().to_string());
        self
    }

    pub fn with_task(mut self, task: Option<&crate::core::task::Task>) -> PlaneUnit {
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
    /// The error's cause in a few words and what to fix, for the text report.
    #[serde(skip)]
    pub shared: Option<SharedCause>,
    /// Not reached: the deadline, the rate reserve or a Plane 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<Reason>,
    pub issues_listed: usize,
    pub requests: u64,
    /// When its last successful sync started (this tick's, when it was
    /// read); None: never.
    pub last_synced_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GatePass {
    pub ran: bool,
    pub reason: Option<NotRun>,
    pub error: Option<String>,
    pub units: Vec<GateUnit>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanePass {
    pub ran: bool,
    pub reason: Option<NotRun>,
    pub error: Option<String>,
    pub projects: Vec<ProjectReport>,
    pub units: Vec<PlaneUnit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    pub members: Vec<String>,
    pub cycle: String,
    /// `alerted`, `known`, or in a dry-run `would_alert`.
    pub outcome: CycleOutcome,
    /// Members whose Plane issue was moved to Blocked this tick.
    pub blocked: Vec<String>,
    /// A failed PATCH (retried on the next tick, without a new alert).
    pub error: Option<String>,
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

/// Why a pass did not run (the report's `reason` of a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// The command did not ask for it.
    NotRequested,
    /// A kill switch (`enabled`, `plane_enabled`) is off.
    Disabled,
    /// It could not start: the task list, or every project, unreadable.
    Unavailable,
}

impl NotRun {
    pub fn as_str(self) -> &'static str {
        match self {
            NotRun::NotRequested => "not_requested",
            NotRun::Disabled => "disabled",
            NotRun::Unavailable => "unavailable",
        }
    }
}

/// What became of a dependency cycle this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleOutcome {
    /// First seen: its alert was queued.
    Alerted,
    /// Alerted on an earlier tick: nothing sent.
    Known,
    /// Dry-run: it would be alerted.
    WouldAlert,
}

impl CycleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleOutcome::Alerted => "alerted",
            CycleOutcome::Known => "known",
            CycleOutcome::WouldAlert => "would_alert",
        }
    }
}

impl GatePass {
    pub fn not_requested() -> GatePass {
        GatePass {
            reason: Some(NotRun::NotRequested),
            ..GatePass::default()
        }
    }
}

impl PlanePass {
    pub fn not_requested() -> PlanePass {
        PlanePass {
            reason: Some(NotRun::NotRequested),
            ..PlanePass::default()
        }
    }
}

/// The value of one tick.
#[derive(Debug, Clone)]
pub struct TickOutcome {
    pub command: Command,
    pub dry_run: bool,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub elapsed: Duration,
    pub gate: GatePass,
    pub plane: PlanePass,
    pub cycles: Vec<CycleReport>,
    pub notifications: Notifications,
    pub requests: Requests,
    /// The deadline stopped the tick before every unit was reached.
    pub cut_by_deadline: bool,
    /// Delivery ran (live, enabled, Telegram configured, not cut).
    pub delivery_ran: bool,
    /// Keys of the unblocks suppressed as duplicates.
    pub deduped_keys: Vec<String>,
    /// The sidecar's counters after this tick was recorded.
    pub snapshot: crate::store::Snapshot,
}

impl TickOutcome {
    /// The exit code; when several apply the first wins: 69, 75, 1, 0
    /// (78 and 74 stop a tick before it has an outcome). docs/report.md,
    /// exit codes.
    pub fn exit_code(&self) -> u8 {
        if self.gate.error.is_some() || self.plane.error.is_some() {
            69
        } else if self.cut_by_deadline {
            75
        } else if self.failures() > 0 || self.undelivered() {
            1
        } else {
            0
        }
    }

    /// Failed units, cycles whose Blocked move failed, and unreadable
    /// projects: what `errors_total` counts.
    pub fn failures(&self) -> usize {
        self.gate.units.iter().filter(|u| u.failed).count()
            + self.plane.units.iter().filter(|u| u.failed).count()
            + self.cycles.iter().filter(|c| c.error.is_some()).count()
            + self
                .plane
                .projects
                .iter()
                .filter(|p| p.error.is_some())
                .count()
    }

    /// A message still queued or dropped after this tick's delivery.
    fn undelivered(&self) -> bool {
        self.delivery_ran && (self.notifications.queued > 0 || self.notifications.dropped > 0)
    }

    /// Every unit's outcome and reason, gate pass first.
    fn unit_outcomes(&self) -> impl Iterator<Item = (Outcome, Option<Reason>)> + '_ {
        let gate = self.gate.units.iter().map(|u| (u.outcome, u.reason));
        gate.chain(self.plane.units.iter().map(|u| (u.outcome, u.reason)))
    }

    /// Outcome counts over both passes, keyed "outcome" or "outcome/reason".
    pub fn counts(&self) -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        for (outcome, reason) in self.unit_outcomes() {
            *counts.entry(count_key(outcome, reason)).or_insert(0) += 1;
        }
        counts
    }

    /// Skipped units per reason, over both passes.
    pub fn skips(&self) -> BTreeMap<Reason, i64> {
        let mut skips = BTreeMap::new();
        for (outcome, reason) in self.unit_outcomes() {
            if let (Outcome::Skipped, Some(r)) = (outcome, reason) {
                *skips.entry(r).or_insert(0) += 1;
            }
        }
        skips
    }

    /// What the sidecar keeps of this tick.
    pub fn record(&self) -> TickRecord {
        let skipped_terminal = self
            .gate
            .units
            .iter()
            .map(|u| (u.outcome, u.reason))
            .chain(self.plane.units.iter().map(|u| (u.outcome, u.reason)))
            .filter(|(o, r)| *o == Outcome::Skipped && r.is_some_and(Reason::is_terminal))
            .count();
        TickRecord {
            command: self.command.as_str().to_string(),
            started_at: self.started_at,
            duration_ms: self.elapsed.as_millis() as u64,
            counts: self.counts(),
            skips: self.skips(),
            exit_code: i32::from(self.exit_code()),
            errors: self.failures() as i64,
            skipped_terminal: skipped_terminal as i64,
            deduped_keys: self.deduped_keys.clone(),
            cursors: self.cursors(),
            series: self.series(),
            plane_projects_unread: self.snapshot.plane_projects_unread.max(0) as u64,
            plane_oldest_sync_at: self
                .snapshot
                .plane_oldest_sync_at
                .as_deref()
                .and_then(crate::core::timestamp::parse),
        }
    }

    /// This tick's increments of the labelled counters the sidecar keeps:
    /// one per unit by pass, outcome and reason, its requests by peer (zero
    /// included, so every peer's series exists from the first tick on) and
    /// the tick itself by exit code.
    pub fn series(&self) -> BTreeMap<SeriesKey, i64> {
        let mut out = BTreeMap::new();
        for ((pass, outcome, reason), n) in units(&self.gate, &self.plane) {
            let labels = [
                ("pass", pass),
                ("outcome", outcome.as_str()),
                ("reason", reason.as_str()),
            ];
            out.insert(SeriesKey::new(UNITS_TOTAL, &labels), n);
        }
        for (peer, n) in requests(&self.requests) {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            out.insert(SeriesKey::new(REQUESTS_TOTAL, &[("peer", peer)]), n);
        }
        let code = self.exit_code().to_string();
        out.insert(SeriesKey::new(TICKS_TOTAL, &[("exit_code", &code)]), 1);
        out
    }

    /// Per pass that ran, the first unit the action cap deferred: the next
    /// tick starts there, so the cap serves every unit in turn.
    pub fn cursors(&self) -> Vec<(String, Option<String>)> {
        let capped =
            |o: Outcome, r: Option<Reason>| o == Outcome::Deferred && r == Some(Reason::ActionCap);
        let mut out = Vec::new();
        if self.gate.ran {
            let at = self.gate.units.iter().find(|u| capped(u.outcome, u.reason));
            out.push((
                "gate".into(),
                at.and_then(|u| u.task_id).map(|id| id.to_string()),
            ));
        }
        if self.plane.ran {
            let at = self
                .plane
                .units
                .iter()
                .find(|u| capped(u.outcome, u.reason));
            out.push(("plane".into(), at.map(|u| u.issue_id.clone())));
        }
        out
    }

    pub(super) fn set_notification(&mut self, slot: super::Slot, n: Notification) {
        match slot {
            super::Slot::Gate(i) => {
                if let Some(u) = self.gate.units.get_mut(i) {
                    u.notification = Some(n);
                }
            }
            super::Slot::Plane(i) => {
                if let Some(u) = self.plane.units.get_mut(i) {
                    u.notification = Some(n);
                }
            }
        }
    }
}

/// Units of a tick by (pass, outcome, reason); no reason is "".
pub fn units(gate: &GatePass, plane: &PlanePass) -> BTreeMap<(&'static str, String, String), i64> {
    let mut units = BTreeMap::new();
    let gate = gate.units.iter().map(|u| ("gate", u.outcome, u.reason));
    let plane = plane.units.iter().map(|u| ("plane", u.outcome, u.reason));
    for (pass, outcome, reason) in gate.chain(plane) {
        let reason = reason.map(|r| r.to_string()).unwrap_or_default();
        *units
            .entry((pass, outcome.to_string(), reason))
            .or_default() += 1;
    }
    units
}

pub fn requests(r: &Requests) -> [(&'static str, u64); 3] {
    [
        ("orchestrator", r.orchestrator),
        ("plane", r.plane),
        ("telegram", r.telegram),
    ]
}

/// "outcome" or "outcome/reason": the key counted in summaries and in the
/// sidecar's tick record.
pub fn count_key(outcome: Outcome, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{outcome}/{r}"),
        None => outcome.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> TickOutcome {
        TickOutcome {
            command: Command::All,
            dry_run: false,
            started_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: OffsetDateTime::UNIX_EPOCH,
            elapsed: Duration::from_millis(1500),
            gate: GatePass {
                ran: true,
                ..GatePass::default()
            },
            plane: PlanePass {
                ran: true,
                ..PlanePass::default()
            },
            cycles: Vec::new(),
            notifications: Notifications::default(),
            requests: Requests::default(),
            cut_by_deadline: false,
            delivery_ran: true,
            deduped_keys: Vec::new(),
            snapshot: crate::store::Snapshot::default(),
        }
    }

    fn gate_unit(id: i64, outcome: Outcome, reason: Option<Reason>, failed: bool) -> GateUnit {
        GateUnit {
            task_id: Some(id),
            work_item_id: None,
            stage: Some("testing".into()),
            outcome,
            reason,
            detail: None,
            stage_after: None,
            notification: None,
            failed,
            shared: None,
        }
    }

    fn plane_unit(id: &str, outcome: Outcome, reason: Option<Reason>) -> PlaneUnit {
        PlaneUnit {
            issue_id: id.into(),
            task_id: None,
            work_item_id: None,
            state_key: Some("approved".into()),
            outcome,
            reason,
            detail: None,
            notification: None,
            failed: outcome == Outcome::Error,
            shared: None,
        }
    }

    fn project(error: Option<&str>) -> ProjectReport {
        ProjectReport {
            plane_project_id: "p".into(),
            repo: "acme/shop".into(),
            error: error.map(str::to_string),
            shared: None,
            deferred: None,
            issues_listed: 0,
            requests: 1,
            last_synced_at: None,
        }
    }

    #[test]
    fn a_quiet_tick_exits_0() {
        let mut o = outcome();
        o.gate
            .units
            .push(gate_unit(1, Outcome::Skipped, Some(Reason::Young), false));
        o.gate
            .units
            .push(gate_unit(2, Outcome::GateRed, None, false));
        o.plane
            .units
            .push(plane_unit("i", Outcome::Deferred, Some(Reason::ActionCap)));
        assert_eq!(o.exit_code(), 0);
    }

    #[test]
    fn a_failed_unit_project_or_cycle_exits_1() {
        let mut o = outcome();
        o.gate.units.push(gate_unit(1, Outcome::Error, None, true));
        assert_eq!(o.exit_code(), 1);

        let mut o = outcome();
        // A blind Plane skip counts as failed although it is a skip.
        o.gate.units.push(gate_unit(
            1,
            Outcome::Skipped,
            Some(Reason::PlaneUnresolved),
            true,
        ));
        assert_eq!(o.exit_code(), 1);

        let mut o = outcome();
        o.plane.projects.push(project(Some("HTTP 403")));
        assert_eq!(o.exit_code(), 1);

        let mut o = outcome();
        o.cycles.push(CycleReport {
            members: vec!["ET-1".into(), "ET-2".into()],
            cycle: "ET-1 → ET-2 → ET-1".into(),
            outcome: CycleOutcome::Known,
            blocked: Vec::new(),
            error: Some("PATCH failed".into()),
        });
        assert_eq!(o.exit_code(), 1);
    }

    #[test]
    fn undelivered_messages_exit_1_only_when_delivery_ran() {
        let mut o = outcome();
        o.notifications.queued = 2;
        assert_eq!(o.exit_code(), 1);
        o.delivery_ran = false;
        assert_eq!(o.exit_code(), 0);
        o.delivery_ran = true;
        o.notifications.queued = 0;
        o.notifications.dropped = 1;
        assert_eq!(o.exit_code(), 1);
    }

    #[test]
    fn the_first_matching_exit_code_wins_69_then_75_then_1() {
        let mut o = outcome();
        o.gate.units.push(gate_unit(1, Outcome::Error, None, true));
        o.cut_by_deadline = true;
        assert_eq!(o.exit_code(), 75);
        o.plane.error = Some("every project unreachable".into());
        assert_eq!(o.exit_code(), 69);
        o.plane.error = None;
        o.gate.error = Some("task list unreachable".into());
        assert_eq!(o.exit_code(), 69);
    }

    #[test]
    fn the_record_counts_units_errors_and_terminal_skips() {
        let mut o = outcome();
        o.gate
            .units
            .push(gate_unit(1, Outcome::Advanced, None, false));
        o.gate
            .units
            .push(gate_unit(2, Outcome::Skipped, Some(Reason::Young), false));
        o.gate
            .units
            .push(gate_unit(3, Outcome::Skipped, Some(Reason::Young), false));
        o.gate.units.push(gate_unit(
            4,
            Outcome::Skipped,
            Some(Reason::TerminalStage),
            false,
        ));
        o.plane.units.push(plane_unit(
            "a",
            Outcome::Skipped,
            Some(Reason::TerminalState),
        ));
        o.plane.units.push(plane_unit("b", Outcome::Error, None));
        o.plane.projects.push(project(Some("HTTP 500")));
        o.deduped_keys = vec!["ET-9".into()];
        let rec = o.record();
        assert_eq!(rec.command, "all");
        assert_eq!(rec.duration_ms, 1500);
        assert_eq!(rec.exit_code, 1);
        assert_eq!(rec.errors, 2);
        assert_eq!(rec.skipped_terminal, 2);
        assert_eq!(rec.deduped_keys, vec!["ET-9".to_string()]);
        assert_eq!(rec.counts["advanced"], 1);
        assert_eq!(rec.counts["skipped/young"], 2);
        assert_eq!(
            rec.skips,
            BTreeMap::from([
                (Reason::TerminalStage, 1),
                (Reason::TerminalState, 1),
                (Reason::Young, 2)
            ])
        );
        assert_eq!(rec.counts["error"], 1);
        assert_eq!(rec.counts.values().sum::<i64>(), 6);
    }

    #[test]
    fn cursors_point_at_the_first_unit_the_action_cap_deferred() {
        let mut o = outcome();
        o.gate
            .units
            .push(gate_unit(1, Outcome::Advanced, None, false));
        o.gate.units.push(gate_unit(
            2,
            Outcome::Deferred,
            Some(Reason::ActionCap),
            false,
        ));
        o.gate.units.push(gate_unit(
            3,
            Outcome::Deferred,
            Some(Reason::ActionCap),
            false,
        ));
        o.plane
            .units
            .push(plane_unit("x", Outcome::Deferred, Some(Reason::Deadline)));
        assert_eq!(
            o.cursors(),
            vec![
                ("gate".to_string(), Some("2".to_string())),
                ("plane".to_string(), None)
            ]
        );
        // A pass that did not run keeps its cursor: no entry for it.
        o.plane.ran = false;
        assert_eq!(
            o.cursors(),
            vec![("gate".to_string(), Some("2".to_string()))]
        );
    }

    #[test]
    fn delivery_results_reach_the_unit_they_belong_to() {
        let mut o = outcome();
        o.gate
            .units
            .push(gate_unit(1, Outcome::Advanced, None, false));
        o.plane
            .units
            .push(plane_unit("a", Outcome::VerdictApplied, None));
        o.set_notification(super::super::Slot::Plane(0), Notification::Sent);
        o.set_notification(super::super::Slot::Gate(0), Notification::Digest);
        o.set_notification(super::super::Slot::Gate(7), Notification::Sent);
        assert_eq!(o.plane.units[0].notification, Some(Notification::Sent));
        assert_eq!(o.gate.units[0].notification, Some(Notification::Digest));
    }
}

crate::core::serialize_as_str!(Notification, NotRun, CycleOutcome);
