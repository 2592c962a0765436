//! The gate pass (docs/decisions.md): which tasks may have their quality
//! gate evaluated. Pure: a task and the facts about it in, a verdict out.
//! The Plane facts are fetched lazily so that busy, young and escalated
//! tasks never cost a Plane request (the original reconciler's ordering).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::Reconcile;
use crate::core::deps::Readiness;
use crate::core::outcome::{Reason, Verdict};
use crate::core::states::StateMap;
use crate::core::task::Task;

/// A task id listed twice is one unit: the first entry wins for every
/// decision, the later ones are dropped (the gate pass would otherwise
/// advance and announce the task twice in one tick). Returns the kept
/// entries, in order, and each repeated id once, in order of first repeat.
pub fn first_entry_wins<T>(entries: Vec<T>, id: impl Fn(&T) -> Option<i64>) -> (Vec<T>, Vec<i64>) {
    let mut seen = std::collections::HashSet::new();
    let mut repeated = Vec::new();
    let kept = entries
        .into_iter()
        .filter(|e| match id(e) {
            Some(i) if !seen.insert(i) => {
                if !repeated.contains(&i) {
                    repeated.push(i);
                }
                false
            }
            _ => true,
        })
        .collect();
    (kept, repeated)
}

/// Why the Plane side of a task could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// Nothing could be asked: repo not in [[projects]], no plane_issue_id.
    NotAsked,
    /// A Plane read failed: the tool is blind, a unit failure.
    ReadFailed,
    /// The request budget reached the reserve.
    Reserve,
    /// Plane answered 429.
    RateLimited,
    /// The tick's deadline passed before the project was read.
    Deadline,
}

impl Unresolved {
    /// The budget or the clock, not a failure: the unit is deferred, with
    /// this reason. `None` for the causes that are not deferrals.
    pub fn deferral(self) -> Option<Reason> {
        match self {
            Unresolved::Reserve => Some(Reason::RateReserve),
            Unresolved::RateLimited => Some(Reason::RateLimited),
            Unresolved::Deadline => Some(Reason::Deadline),
            Unresolved::NotAsked | Unresolved::ReadFailed => None,
        }
    }
}

/// Row 7: the task's Plane issue, as far as it could be resolved.
#[derive(Debug, Clone)]
pub enum PlaneView {
    Resolved {
        states: Arc<StateMap>,
        state: String,
    },
    Unresolved(Unresolved),
}

/// The task's age: the orchestrator's `age_s` when given, else now −
/// updated_at, else 0 (the original's `or 0`: unknown age is young).
pub fn age_seconds(task: &Task, now: OffsetDateTime) -> f64 {
    if let Some(age) = task.age_s.filter(|a| a.is_finite()) {
        return age;
    }
    task.updated_at
        .as_deref()
        .and_then(|ts| crate::core::timestamp::age_seconds(ts, now))
        .unwrap_or(0.0)
}

/// Escalated: the orchestrator's own verdict when it gives one, else the
/// retry count against the cap.
pub fn is_escalated(task: &Task, cfg: &Reconcile) -> bool {
    match task.escalated {
        Some(e) => e,
        None => task.developer_retry_count >= cfg.max_developer_retries,
    }
}

/// Rows 0–6: the local guards, no I/O.
pub fn local_guards(
    task: &Task,
    cfg: &Reconcile,
    project_enabled: bool,
    now: OffsetDateTime,
) -> Verdict {
    let excluded = task
        .work_item()
        .is_some_and(|w| cfg.skip_work_items.iter().any(|s| s == w));
    if excluded || !project_enabled {
        return Verdict::Skip(Reason::Excluded);
    }
    if task.stage == "analysis" {
        return Verdict::Skip(Reason::HumanGate);
    }
    if task.stage == "done" || task.stage == "cancelled" {
        return Verdict::Skip(Reason::TerminalStage);
    }
    if task.gate.as_deref().is_none_or(str::is_empty) {
        return Verdict::Skip(Reason::NoGate);
    }
    if task.active_job {
        return Verdict::Skip(Reason::InFlight);
    }
    let grace = cfg.grace_for_stage(&task.stage);
    if age_seconds(task, now) < grace as f64 {
        return Verdict::Skip(Reason::Young);
    }
    if is_escalated(task, cfg) {
        return Verdict::Skip(Reason::Escalated);
    }
    Verdict::Proceed
}

/// Rows 8–10: what the Plane state says.
pub fn plane_guards(view: &PlaneView, cfg: &Reconcile) -> Verdict {
    match view {
        PlaneView::Resolved { states, state } => {
            if states.is_terminal(state) {
                Verdict::Skip(Reason::TerminalState)
            } else if cfg.skip_blocked_enabled && states.is_human_wait(state) {
                Verdict::Skip(Reason::HumanWait)
            } else {
                Verdict::Proceed
            }
        }
        // The escape hatch for a Plane outage: go on without Guard 2.
        PlaneView::Unresolved(_) if !cfg.skip_blocked_enabled => Verdict::Proceed,
        PlaneView::Unresolved(u) if let Some(r) = u.deferral() => Verdict::Defer(r),
        PlaneView::Unresolved(_) => Verdict::Skip(Reason::PlaneUnresolved),
    }
}

/// Row 12: `actions` advances (or would-advances) already made this tick.
pub fn action_cap(actions: u64, cfg: &Reconcile) -> Verdict {
    if cfg.max_actions > 0 && actions >= cfg.max_actions {
        Verdict::Defer(Reason::ActionCap)
    } else {
        Verdict::Proceed
    }
}

/// Row 11: a task waiting for an unfinished dependency is not stuck.
/// `None`: task_deps_enabled is off.
pub fn dependency_guard(readiness: Option<&Readiness>) -> Verdict {
    match readiness {
        Some(Readiness::Waiting { .. }) => Verdict::Skip(Reason::WaitingDeps),
        Some(Readiness::Cycle { .. }) => Verdict::Skip(Reason::Cycle),
        Some(Readiness::Ready) | None => Verdict::Proceed,
    }
}

/// Rows 0–12 in order; `resolve` is called only when the local guards pass.
pub fn decide(
    task: &Task,
    cfg: &Reconcile,
    project_enabled: bool,
    now: OffsetDateTime,
    actions: u64,
    deps: Option<&Readiness>,
    resolve: impl FnOnce() -> PlaneView,
) -> Verdict {
    match local_guards(task, cfg, project_enabled, now) {
        Verdict::Proceed => {}
        v => return v,
    }
    match plane_guards(&resolve(), cfg) {
        Verdict::Proceed => {}
        v => return v,
    }
    match dependency_guard(deps) {
        Verdict::Proceed => {}
        v => return v,
    }
    action_cap(actions, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::states::PlaneState;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-09 12:00 UTC);

    fn stuck() -> Task {
        Task {
            id: 7,
            stage: "testing".into(),
            repo: "acme/shop".into(),
            work_item_id: Some("ET-7".into()),
            plane_issue_id: Some("issue-7".into()),
            age_s: Some(5400.0),
            gate: Some("ci_green".into()),
            ..Task::default()
        }
    }

    fn cfg() -> Reconcile {
        Reconcile::default()
    }

    fn states(with_waits: bool) -> Arc<StateMap> {
        let mut s = vec![
            ("u-todo", "Todo", "unstarted"),
            ("u-prog", "In Progress", "started"),
            ("u-review", "In Review", "started"),
            ("u-block", "Blocked", "started"),
            ("u-need", "Needs Input", "started"),
            ("u-done", "Done", "completed"),
            ("u-canc", "Cancelled", "cancelled"),
        ];
        if with_waits {
            s.extend([
                ("u-await", "Awaiting Deploy", "started"),
                ("u-depl", "Deploying", "started"),
                ("u-mon", "Monitoring", "started"),
            ]);
        }
        let s: Vec<PlaneState> = s
            .into_iter()
            .enumerate()
            .map(|(i, (id, name, group))| PlaneState {
                id: id.into(),
                name: name.into(),
                group: Some(group.into()),
                sequence: Some(i as f64),
            })
            .collect();
        Arc::new(StateMap::build(&s, &BTreeMap::new()))
    }

    fn run(task: &Task, cfg: &Reconcile, state: &str, with_waits: bool) -> Verdict {
        let m = states(with_waits);
        decide(task, cfg, true, NOW, 0, None, || PlaneView::Resolved {
            states: m,
            state: state.into(),
        })
    }

    /// A resolver that must not be reached.
    fn unreachable_resolver() -> PlaneView {
        panic!("Plane must not be consulted for a locally skipped task")
    }

    #[test]
    fn stuck_task_in_progress_proceeds() {
        assert_eq!(run(&stuck(), &cfg(), "u-prog", false), Verdict::Proceed);
    }

    #[test]
    fn row0_excluded_work_item_or_disabled_project() {
        let mut c = cfg();
        c.skip_work_items = vec!["ET-7".into()];
        assert_eq!(
            decide(&stuck(), &c, true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::Excluded)
        );
        assert_eq!(
            decide(&stuck(), &cfg(), false, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::Excluded)
        );
    }

    #[test]
    fn row1_analysis_is_a_human_gate() {
        let t = Task {
            stage: "analysis".into(),
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::HumanGate)
        );
    }

    #[test]
    fn row2_done_and_cancelled_are_terminal_stages() {
        for stage in ["done", "cancelled"] {
            let t = Task {
                stage: stage.into(),
                ..stuck()
            };
            assert_eq!(
                decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
                Verdict::Skip(Reason::TerminalStage)
            );
        }
    }

    #[test]
    fn row3_no_gate() {
        let t = Task {
            gate: None,
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::NoGate)
        );
    }

    #[test]
    fn row4_active_job_is_in_flight() {
        let t = Task {
            active_job: true,
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::InFlight)
        );
    }

    #[test]
    fn row5_young_by_age_s_preferred_over_updated_at() {
        // age_s says young even though updated_at is old.
        let t = Task {
            age_s: Some(60.0),
            updated_at: Some("2026-06-01T00:00:00Z".into()),
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::Young)
        );
        // age_s says old even though updated_at is fresh.
        let t = Task {
            age_s: Some(5400.0),
            updated_at: Some("2026-06-09T11:59:00Z".into()),
            ..stuck()
        };
        assert_eq!(run(&t, &cfg(), "u-prog", false), Verdict::Proceed);
    }

    #[test]
    fn row5_updated_at_used_without_age_s_and_unknown_age_is_young() {
        let old = Task {
            age_s: None,
            updated_at: Some("2026-06-09T13:00:00+03:00".into()),
            ..stuck()
        };
        assert_eq!(run(&old, &cfg(), "u-prog", false), Verdict::Proceed);
        let fresh = Task {
            age_s: None,
            updated_at: Some("2026-06-09T11:55:00Z".into()),
            ..stuck()
        };
        assert_eq!(
            run(&fresh, &cfg(), "u-prog", false),
            Verdict::Skip(Reason::Young)
        );
        let unknown = Task {
            age_s: None,
            updated_at: Some("garbage".into()),
            ..stuck()
        };
        assert_eq!(
            run(&unknown, &cfg(), "u-prog", false),
            Verdict::Skip(Reason::Young)
        );
    }

    #[test]
    fn row5_grace_overrides_per_stage_and_negative_means_always_old() {
        let mut c = cfg();
        c.grace_overrides.insert("testing".into(), 10_000);
        assert_eq!(
            run(&stuck(), &c, "u-prog", false),
            Verdict::Skip(Reason::Young)
        );
        c.grace_overrides.insert("testing".into(), -1);
        let t = Task {
            age_s: None,
            updated_at: None,
            ..stuck()
        };
        assert_eq!(run(&t, &c, "u-prog", false), Verdict::Proceed);
    }

    #[test]
    fn row6_escalated_flag_preferred_over_retry_count() {
        let t = Task {
            escalated: Some(true),
            developer_retry_count: 0,
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::Escalated)
        );
        let t = Task {
            escalated: Some(false),
            developer_retry_count: 9,
            ..stuck()
        };
        assert_eq!(run(&t, &cfg(), "u-prog", false), Verdict::Proceed);
        let t = Task {
            escalated: None,
            developer_retry_count: 3,
            ..stuck()
        };
        assert_eq!(
            decide(&t, &cfg(), true, NOW, 0, None, unreachable_resolver),
            Verdict::Skip(Reason::Escalated)
        );
        let t = Task {
            escalated: None,
            developer_retry_count: 2,
            ..stuck()
        };
        assert_eq!(run(&t, &cfg(), "u-prog", false), Verdict::Proceed);
    }

    #[test]
    fn row8_terminal_state_by_group_unconditionally() {
        assert_eq!(
            run(&stuck(), &cfg(), "u-done", false),
            Verdict::Skip(Reason::TerminalState)
        );
        assert_eq!(
            run(&stuck(), &cfg(), "u-canc", false),
            Verdict::Skip(Reason::TerminalState)
        );
        let mut c = cfg();
        c.skip_blocked_enabled = false;
        assert_eq!(
            run(&stuck(), &c, "u-done", false),
            Verdict::Skip(Reason::TerminalState)
        );
    }

    #[test]
    fn row9_unresolved_skips_and_the_escape_hatch_goes_on() {
        for cause in [Unresolved::NotAsked, Unresolved::ReadFailed] {
            let v = decide(&stuck(), &cfg(), true, NOW, 0, None, || {
                PlaneView::Unresolved(cause)
            });
            assert_eq!(v, Verdict::Skip(Reason::PlaneUnresolved));
        }
        let mut c = cfg();
        c.skip_blocked_enabled = false;
        let v = decide(&stuck(), &c, true, NOW, 0, None, || {
            PlaneView::Unresolved(Unresolved::ReadFailed)
        });
        assert_eq!(v, Verdict::Proceed);
    }

    #[test]
    fn row9_budget_exhaustion_defers_instead_of_failing() {
        let v = decide(&stuck(), &cfg(), true, NOW, 0, None, || {
            PlaneView::Unresolved(Unresolved::Reserve)
        });
        assert_eq!(v, Verdict::Defer(Reason::RateReserve));
        let v = decide(&stuck(), &cfg(), true, NOW, 0, None, || {
            PlaneView::Unresolved(Unresolved::RateLimited)
        });
        assert_eq!(v, Verdict::Defer(Reason::RateLimited));
    }

    #[test]
    fn row10_human_wait_enduro_vs_project_with_wait_states() {
        // Blocked / Needs Input everywhere.
        assert_eq!(
            run(&stuck(), &cfg(), "u-block", false),
            Verdict::Skip(Reason::HumanWait)
        );
        assert_eq!(
            run(&stuck(), &cfg(), "u-need", false),
            Verdict::Skip(Reason::HumanWait)
        );
        // Enduro: the aliased waits land on In Progress / In Review: not skipped.
        assert_eq!(run(&stuck(), &cfg(), "u-prog", false), Verdict::Proceed);
        assert_eq!(run(&stuck(), &cfg(), "u-review", false), Verdict::Proceed);
        // A project with real wait states skips tasks in them.
        for s in ["u-await", "u-depl", "u-mon"] {
            assert_eq!(
                run(&stuck(), &cfg(), s, true),
                Verdict::Skip(Reason::HumanWait),
                "{s}"
            );
        }
        // Guard 2 off: a blocked task goes on.
        let mut c = cfg();
        c.skip_blocked_enabled = false;
        assert_eq!(run(&stuck(), &c, "u-block", false), Verdict::Proceed);
    }

    #[test]
    fn row11_waiting_and_cycle_skip_and_off_goes_on() {
        let m = states(false);
        let go = |deps: Option<&Readiness>| {
            decide(&stuck(), &cfg(), true, NOW, 0, deps, || {
                PlaneView::Resolved {
                    states: m.clone(),
                    state: "u-prog".into(),
                }
            })
        };
        assert_eq!(
            go(Some(&Readiness::Waiting { on: vec![3] })),
            Verdict::Skip(Reason::WaitingDeps)
        );
        assert_eq!(
            go(Some(&Readiness::Cycle { component: 0 })),
            Verdict::Skip(Reason::Cycle)
        );
        assert_eq!(go(Some(&Readiness::Ready)), Verdict::Proceed);
        assert_eq!(go(None), Verdict::Proceed);
        // Plane guards come first: a blocked task is human_wait, not waiting_deps.
        let v = decide(
            &stuck(),
            &cfg(),
            true,
            NOW,
            0,
            Some(&Readiness::Waiting { on: vec![3] }),
            || PlaneView::Resolved {
                states: m.clone(),
                state: "u-block".into(),
            },
        );
        assert_eq!(v, Verdict::Skip(Reason::HumanWait));
    }

    #[test]
    fn row12_action_cap_defers_and_zero_means_no_cap() {
        let m = states(false);
        let mut c = cfg();
        c.max_actions = 2;
        let go = |actions, c: &Reconcile| {
            decide(&stuck(), c, true, NOW, actions, None, || {
                PlaneView::Resolved {
                    states: m.clone(),
                    state: "u-prog".into(),
                }
            })
        };
        assert_eq!(go(1, &c), Verdict::Proceed);
        assert_eq!(go(2, &c), Verdict::Defer(Reason::ActionCap));
        c.max_actions = 0;
        assert_eq!(go(10_000, &c), Verdict::Proceed);
    }

    #[test]
    fn a_task_listed_twice_is_one_unit_and_the_first_entry_wins() {
        let entries = vec![
            (7, "testing"),
            (8, "review"),
            (7, "review"),
            (9, "x"),
            (7, "done"),
            (8, "y"),
        ];
        let (kept, repeated) = first_entry_wins(entries, |e| Some(e.0));
        assert_eq!(kept, vec![(7, "testing"), (8, "review"), (9, "x")]);
        assert_eq!(repeated, vec![7, 8]);
        // Entries without an id (unreadable ones) are all kept.
        let (kept, repeated) = first_entry_wins(vec![None, None, Some(1)], |e: &Option<i64>| *e);
        assert_eq!(kept.len(), 3);
        assert!(repeated.is_empty());
    }
}
