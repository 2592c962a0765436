//! The Plane pass (docs/decisions.md): which issues in To Analyse, Approved
//! or Rejected get their lost webhook replayed, and what a replay changed.
//! Pure: facts in, verdicts out; the tick fetches and replays.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::config::Reconcile;
use crate::core::outcome::{Outcome, Reason};
use crate::core::states::{StateKey, StateMap};
use crate::core::task::Task;

/// Which lost webhook an issue's state stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    ToAnalyse,
    Approved,
    Rejected,
}

impl Trigger {
    pub fn key(self) -> StateKey {
        match self {
            Trigger::ToAnalyse => StateKey::ToAnalyse,
            Trigger::Approved => StateKey::Approved,
            Trigger::Rejected => StateKey::Rejected,
        }
    }
}

/// The project's trigger states. A key without a state (even aliased)
/// turns its branch off for the project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub to_analyse: Option<String>,
    pub approved: Option<String>,
    pub rejected: Option<String>,
}

impl Wanted {
    pub fn from_states(states: &StateMap) -> Wanted {
        Wanted {
            to_analyse: states.uuid(StateKey::ToAnalyse).map(str::to_string),
            approved: states.uuid(StateKey::Approved).map(str::to_string),
            rejected: states.uuid(StateKey::Rejected).map(str::to_string),
        }
    }

    /// The keys with no state, for the warning.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (Trigger::ToAnalyse, &self.to_analyse),
            (Trigger::Approved, &self.approved),
            (Trigger::Rejected, &self.rejected),
        ]
        .into_iter()
        .filter(|(_, u)| u.is_none())
        .map(|(t, _)| t.key().as_str())
        .collect()
    }

    /// The first matching key wins when aliasing made two equal.
    pub fn trigger(&self, state: &str) -> Option<Trigger> {
        if self.to_analyse.as_deref() == Some(state) {
            Some(Trigger::ToAnalyse)
        } else if self.approved.as_deref() == Some(state) {
            Some(Trigger::Approved)
        } else if self.rejected.as_deref() == Some(state) {
            Some(Trigger::Rejected)
        } else {
            None
        }
    }
}

/// What a replay is meant to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// To Analyse, no task: the lost start.
    Start,
    /// To Analyse, an idle task: the lost resume.
    Resume,
    /// Approved / Rejected with a task: the lost verdict.
    Verdict,
}

impl Action {
    pub fn dry_run_outcome(self) -> Outcome {
        match self {
            Action::Start => Outcome::WouldStart,
            Action::Resume => Outcome::WouldResume,
            Action::Verdict => Outcome::WouldApplyVerdict,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Skip(Reason),
    Defer(Reason),
    Replay(Action),
}

/// Rows 1–2, which need no task: a terminal issue, a young issue. A
/// missing or unparseable `updated_at` counts as old enough (as the original).
pub fn issue_guards(
    state: &str,
    states: &StateMap,
    updated_at: Option<&str>,
    cfg: &Reconcile,
    now: OffsetDateTime,
) -> Option<Reason> {
    if states.is_terminal(state) {
        return Some(Reason::TerminalState);
    }
    let age = updated_at.and_then(|ts| crate::core::timestamp::age_seconds(ts, now));
    if age.is_some_and(|a| a < cfg.grace_default_s as f64) {
        return Some(Reason::Young);
    }
    None
}

/// What an issue and its task looked like around a replay that changed
/// nothing (`start_noop`, `resume_noop`, `verdict_noop`). While both still
/// look the same, replaying again would change nothing again (row 3a, the
/// no-op memo of docs/plane.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoopMemo {
    pub issue_updated_at: Option<String>,
    pub issue_state: String,
    /// None: the issue had no task.
    pub task_stage: Option<String>,
    pub task_updated_at: Option<String>,
}

impl NoopMemo {
    /// The facts of an issue (as listed) and of its task (as read).
    pub fn of(issue_updated_at: Option<&str>, issue_state: &str, task: Option<&Task>) -> NoopMemo {
        NoopMemo {
            issue_updated_at: issue_updated_at.map(str::to_string),
            issue_state: issue_state.to_string(),
            task_stage: task.map(|t| t.stage.clone()),
            task_updated_at: task.and_then(|t| t.updated_at.clone()),
        }
    }

    /// All four facts unchanged. Timestamps compare as instants when both
    /// parse (a peer may render one instant in another offset), else as
    /// text.
    pub fn matches(&self, now: &NoopMemo) -> bool {
        fn same(a: &Option<String>, b: &Option<String>) -> bool {
            use crate::core::timestamp::parse;
            match (a.as_deref(), b.as_deref()) {
                (Some(x), Some(y)) => match (parse(x), parse(y)) {
                    (Some(p), Some(q)) => p == q,
                    _ => x == y,
                },
                (x, y) => x == y,
            }
        }
        self.issue_state == now.issue_state
            && self.task_stage == now.task_stage
            && same(&self.issue_updated_at, &now.issue_updated_at)
            && same(&self.task_updated_at, &now.task_updated_at)
    }
}

/// The task list read this tick (every task not done), by Plane issue id:
/// lets the no-op memo hold without reading each issue's task
/// (docs/plane.md, the no-op memo). Skips only: a replay is always decided
/// on a fresh read.
#[derive(Debug, Default)]
pub struct ListedTasks {
    /// None: two listed tasks name the issue, or the tick wrote to its
    /// task after the list was read. The list cannot say; read it fresh.
    by_issue: HashMap<String, Option<Task>>,
    /// Every element of the list was a readable task. Only then does an
    /// issue the list does not name have no task or a done one; a bad
    /// element could be any issue's task.
    complete: bool,
}

impl ListedTasks {
    pub fn new<'t>(tasks: impl IntoIterator<Item = &'t Task>, complete: bool) -> ListedTasks {
        let mut by_issue: HashMap<String, Option<Task>> = HashMap::new();
        for t in tasks {
            let Some(issue) = t.issue_id() else {
                continue;
            };
            by_issue
                .entry(issue.to_string())
                .and_modify(|e| *e = None)
                // The memo does not look at dependencies: not kept.
                .or_insert_with(|| {
                    Some(Task {
                        depends_on: Vec::new(),
                        ..t.clone()
                    })
                });
        }
        ListedTasks { by_issue, complete }
    }

    /// The tick wrote to (or may have changed) this issue's task.
    pub fn forget(&mut self, issue_id: &str) {
        self.by_issue.insert(issue_id.to_string(), None);
    }

    /// Some(the task as listed; None when not listed) when `memo` still
    /// holds for the issue as listed now and its task as the list shows it;
    /// None when it does not or the list cannot tell: read the task fresh.
    pub fn unchanged(
        &self,
        issue_id: &str,
        memo: &NoopMemo,
        issue_updated_at: Option<&str>,
        issue_state: &str,
    ) -> Option<Option<&Task>> {
        match self.by_issue.get(issue_id) {
            Some(Some(t)) => memo
                .matches(&NoopMemo::of(issue_updated_at, issue_state, Some(t)))
                .then_some(Some(t)),
            Some(None) => None,
            // Not listed: no task, or a done one (the list leaves those
            // out, and done is terminal). That is what the memo saw when it
            // saw no task or a done one. A task created and done between two
            // lists, or a done task touched or deleted, goes unseen until
            // the issue changes.
            None if self.complete && memo.task_stage.as_deref().is_none_or(|s| s == DONE_STAGE) => {
                let seen = NoopMemo {
                    task_stage: memo.task_stage.clone(),
                    task_updated_at: memo.task_updated_at.clone(),
                    ..NoopMemo::of(issue_updated_at, issue_state, None)
                };
                memo.matches(&seen).then_some(None)
            }
            None => None,
        }
    }
}

/// The one stage the task list leaves out (docs/orchestrator-api.md).
const DONE_STAGE: &str = "done";

/// The outcomes the no-op memo remembers.
pub fn is_noop(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::StartNoop | Outcome::ResumeNoop | Outcome::VerdictNoop
    )
}

/// Rows 0 and 3–8, once the issue's task has been read; `remembered`:
/// the no-op memo matches the issue and its task as they are now (3a).
pub fn decide(
    trigger: Trigger,
    task: Option<&Task>,
    cfg: &Reconcile,
    actions: u64,
    remembered: bool,
) -> Decision {
    if let Some(w) = task.and_then(Task::work_item)
        && cfg.skip_work_items.iter().any(|s| s == w)
    {
        return Decision::Skip(Reason::Excluded);
    }
    if task.is_some_and(|t| t.active_job) {
        return Decision::Skip(Reason::InFlight);
    }
    // 3a: before the cap, so that a remembered no-op costs no slot.
    if remembered {
        return Decision::Skip(Reason::ReplayedNoop);
    }
    // Row 4 comes before the rows that pick the replay (5–8).
    if cfg.max_actions > 0 && actions >= cfg.max_actions {
        return Decision::Defer(Reason::ActionCap);
    }
    match (trigger, task) {
        (Trigger::ToAnalyse, None) => Decision::Replay(Action::Start),
        (Trigger::ToAnalyse, Some(_)) => Decision::Replay(Action::Resume),
        (Trigger::Approved | Trigger::Rejected, Some(_)) => Decision::Replay(Action::Verdict),
        (Trigger::Approved | Trigger::Rejected, None) => Decision::Skip(Reason::NoTask),
    }
}

/// After a replay, from the task as read before and after: did it change
/// anything worth announcing?
pub fn confirm(action: Action, before: Option<&Task>, after: Option<&Task>) -> Outcome {
    match action {
        Action::Start if after.is_some() => Outcome::Started,
        Action::Start => Outcome::StartNoop,
        Action::Resume => {
            let changed = match (before, after) {
                (Some(b), Some(a)) => a.stage != b.stage || (a.active_job && !b.active_job),
                _ => false,
            };
            if changed {
                Outcome::Resumed
            } else {
                Outcome::ResumeNoop
            }
        }
        Action::Verdict => {
            let changed = match (before, after) {
                (Some(b), Some(a)) => a.stage != b.stage,
                _ => false,
            };
            if changed {
                Outcome::VerdictApplied
            } else {
                Outcome::VerdictNoop
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::states::PlaneState;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-09 12:00 UTC);

    fn states(names: &[(&str, &str)]) -> StateMap {
        let s: Vec<PlaneState> = names
            .iter()
            .enumerate()
            .map(|(i, (name, group))| PlaneState {
                id: format!("u-{}", crate::core::states::fold(name)),
                name: (*name).into(),
                group: Some((*group).into()),
                sequence: Some(i as f64),
            })
            .collect();
        StateMap::build(&s, &BTreeMap::new())
    }

    fn full() -> StateMap {
        states(&[
            ("To Analyse", "unstarted"),
            ("In Progress", "started"),
            ("Approved", "started"),
            ("Rejected", "started"),
            ("Done", "completed"),
            ("Cancelled", "cancelled"),
        ])
    }

    fn task(stage: &str) -> Task {
        Task {
            id: 7,
            stage: stage.into(),
            work_item_id: Some("ET-7".into()),
            ..Task::default()
        }
    }

    #[test]
    fn wanted_uses_aliases_and_reports_missing_keys() {
        let m = states(&[
            ("In Progress", "started"),
            ("Approved", "started"),
            ("Done", "completed"),
        ]);
        let w = Wanted::from_states(&m);
        assert_eq!(w.to_analyse.as_deref(), Some("u-inprogress"));
        assert_eq!(w.missing(), vec!["rejected"]);
        assert_eq!(w.trigger("u-inprogress"), Some(Trigger::ToAnalyse));
        assert_eq!(w.trigger("u-done"), None);
    }

    #[test]
    fn first_matching_key_wins_when_two_are_equal() {
        let w = Wanted {
            to_analyse: Some("x".into()),
            approved: Some("x".into()),
            rejected: Some("y".into()),
        };
        assert_eq!(w.trigger("x"), Some(Trigger::ToAnalyse));
    }

    #[test]
    fn row1_terminal_issue() {
        let m = full();
        let r = issue_guards("u-done", &m, None, &Reconcile::default(), NOW);
        assert_eq!(r, Some(Reason::TerminalState));
        let r = issue_guards("u-cancelled", &m, None, &Reconcile::default(), NOW);
        assert_eq!(r, Some(Reason::TerminalState));
    }

    #[test]
    fn row2_young_issue_and_unknown_age_is_old_enough() {
        let m = full();
        let cfg = Reconcile::default();
        assert_eq!(
            issue_guards("u-approved", &m, Some("2026-06-09T11:58:00Z"), &cfg, NOW),
            Some(Reason::Young)
        );
        assert_eq!(
            issue_guards("u-approved", &m, Some("2026-06-09T10:00:00Z"), &cfg, NOW),
            None
        );
        assert_eq!(issue_guards("u-approved", &m, None, &cfg, NOW), None);
        assert_eq!(
            issue_guards("u-approved", &m, Some("garbage"), &cfg, NOW),
            None
        );
    }

    #[test]
    fn row0_excluded_work_item() {
        let cfg = Reconcile {
            skip_work_items: vec!["ET-7".into()],
            ..Reconcile::default()
        };
        let t = task("review");
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &cfg, 0, false),
            Decision::Skip(Reason::Excluded)
        );
    }

    #[test]
    fn row3_in_flight() {
        let t = Task {
            active_job: true,
            ..task("review")
        };
        let d = decide(Trigger::Approved, Some(&t), &Reconcile::default(), 0, false);
        assert_eq!(d, Decision::Skip(Reason::InFlight));
    }

    #[test]
    fn row4_action_cap() {
        let mut cfg = Reconcile {
            max_actions: 1,
            ..Reconcile::default()
        };
        assert_eq!(
            decide(Trigger::ToAnalyse, None, &cfg, 1, false),
            Decision::Defer(Reason::ActionCap)
        );
        cfg.max_actions = 0;
        assert_eq!(
            decide(Trigger::ToAnalyse, None, &cfg, 99, false),
            Decision::Replay(Action::Start)
        );
    }

    #[test]
    fn rows5_to_8_pick_the_replay() {
        let cfg = Reconcile::default();
        let t = task("analysis");
        assert_eq!(
            decide(Trigger::ToAnalyse, None, &cfg, 0, false),
            Decision::Replay(Action::Start)
        );
        assert_eq!(
            decide(Trigger::ToAnalyse, Some(&t), &cfg, 0, false),
            Decision::Replay(Action::Resume)
        );
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &cfg, 0, false),
            Decision::Replay(Action::Verdict)
        );
        assert_eq!(
            decide(Trigger::Rejected, Some(&t), &cfg, 0, false),
            Decision::Replay(Action::Verdict)
        );
        assert_eq!(
            decide(Trigger::Approved, None, &cfg, 0, false),
            Decision::Skip(Reason::NoTask)
        );
        assert_eq!(
            decide(Trigger::Rejected, None, &cfg, 0, false),
            Decision::Skip(Reason::NoTask)
        );
    }

    fn memo(issue_at: &str, state: &str, task: Option<&Task>) -> NoopMemo {
        NoopMemo::of(Some(issue_at), state, task)
    }

    fn dated(stage: &str, at: &str) -> Task {
        Task {
            updated_at: Some(at.into()),
            ..task(stage)
        }
    }

    #[test]
    fn row3a_a_remembered_noop_is_skipped_before_the_action_cap() {
        let cfg = Reconcile {
            max_actions: 1,
            ..Reconcile::default()
        };
        let t = task("review");
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &cfg, 1, true),
            Decision::Skip(Reason::ReplayedNoop),
            "no cap slot spent"
        );
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &cfg, 0, true),
            Decision::Skip(Reason::ReplayedNoop)
        );
        assert_eq!(
            decide(Trigger::ToAnalyse, None, &cfg, 0, true),
            Decision::Skip(Reason::ReplayedNoop)
        );
        // Rows 0 and 3 still come first.
        let busy = Task {
            active_job: true,
            ..task("review")
        };
        assert_eq!(
            decide(Trigger::Approved, Some(&busy), &cfg, 0, true),
            Decision::Skip(Reason::InFlight)
        );
        let skip = Reconcile {
            skip_work_items: vec!["ET-7".into()],
            ..Reconcile::default()
        };
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &skip, 0, true),
            Decision::Skip(Reason::Excluded)
        );
        // Not remembered: the replay as before.
        assert_eq!(
            decide(Trigger::Approved, Some(&t), &cfg, 0, false),
            Decision::Replay(Action::Verdict)
        );
    }

    #[test]
    fn the_memo_matches_while_all_four_facts_are_unchanged() {
        let t = dated("review", "2026-06-09T10:00:00+03:00");
        let m = memo("2026-06-09T09:00:00.000000Z", "u-approved", Some(&t));
        assert!(m.matches(&m.clone()));
        // The same instants written otherwise still match.
        let same = NoopMemo::of(
            Some("2026-06-09T12:00:00+03:00"),
            "u-approved",
            Some(&dated("review", "2026-06-09T07:00:00Z")),
        );
        assert!(m.matches(&same));
        // Any one change re-arms it.
        let later = memo("2026-06-09T09:00:01Z", "u-approved", Some(&t));
        assert!(!m.matches(&later), "issue updated_at");
        let moved = memo("2026-06-09T09:00:00Z", "u-rejected", Some(&t));
        assert!(!m.matches(&moved), "issue state");
        let staged = memo(
            "2026-06-09T09:00:00Z",
            "u-approved",
            Some(&dated("done", "2026-06-09T10:00:00+03:00")),
        );
        assert!(!m.matches(&staged), "task stage");
        let touched = memo(
            "2026-06-09T09:00:00Z",
            "u-approved",
            Some(&dated("review", "2026-06-09T10:00:05+03:00")),
        );
        assert!(!m.matches(&touched), "task updated_at");
        // A start that created nothing: no task then, one now.
        let none = memo("2026-06-09T09:00:00Z", "u-toanalyse", None);
        assert!(none.matches(&none.clone()));
        let created = memo("2026-06-09T09:00:00Z", "u-toanalyse", Some(&t));
        assert!(!none.matches(&created), "a task appeared");
        // Unparseable timestamps compare as text.
        let odd = NoopMemo::of(Some("garbage"), "s", None);
        assert!(odd.matches(&NoopMemo::of(Some("garbage"), "s", None)));
        assert!(!odd.matches(&NoopMemo::of(None, "s", None)));
    }

    fn of_issue(t: Task, issue: &str) -> Task {
        Task {
            plane_issue_id: Some(issue.into()),
            ..t
        }
    }

    #[test]
    fn the_task_list_holds_a_memo_only_where_it_can_tell() {
        let at = "2026-06-09T09:00:00Z";
        let review = of_issue(dated("review", "2026-06-09T10:00:00Z"), "i-1");
        let m = memo(at, "u-approved", Some(&review));
        let listed = ListedTasks::new([&review], true);
        let held = listed.unchanged("i-1", &m, Some(at), "u-approved");
        assert_eq!(held, Some(Some(&review)));
        // Any change the list shows: read fresh.
        assert_eq!(
            listed.unchanged("i-1", &m, Some("2026-06-09T09:00:01Z"), "u-approved"),
            None
        );
        assert_eq!(listed.unchanged("i-1", &m, Some(at), "u-rejected"), None);
        let moved = of_issue(dated("testing", "2026-06-09T10:00:00Z"), "i-1");
        let listed_moved = ListedTasks::new([&moved], true);
        assert_eq!(
            listed_moved.unchanged("i-1", &m, Some(at), "u-approved"),
            None
        );
        // A task the tick wrote to since: read fresh.
        let mut written = ListedTasks::new([&review], true);
        written.forget("i-1");
        assert_eq!(written.unchanged("i-1", &m, Some(at), "u-approved"), None);
        // Two tasks name the issue, the first of them unchanged: read fresh.
        let other = Task {
            id: 8,
            ..review.clone()
        };
        let twice = ListedTasks::new([&review, &other], true);
        assert_eq!(twice.unchanged("i-1", &m, Some(at), "u-approved"), None);
        // A memo of a listed task whose task is gone from the list (done
        // now): read fresh.
        assert_eq!(
            ListedTasks::new([], true).unchanged("i-1", &m, Some(at), "u-approved"),
            None
        );
    }

    #[test]
    fn an_unlisted_issue_holds_a_memo_of_no_task_or_a_done_one() {
        let at = "2026-06-09T09:00:00Z";
        let done = of_issue(dated("done", "2026-06-09T10:00:00Z"), "i-1");
        let of_done = memo(at, "u-approved", Some(&done));
        let of_none = memo(at, "u-toanalyse", None);
        let empty = ListedTasks::new([], true);
        assert_eq!(
            empty.unchanged("i-1", &of_done, Some(at), "u-approved"),
            Some(None)
        );
        assert_eq!(
            empty.unchanged("i-1", &of_none, Some(at), "u-toanalyse"),
            Some(None)
        );
        // The issue itself changed: read fresh.
        assert_eq!(
            empty.unchanged("i-1", &of_done, Some("2026-06-09T09:05:00Z"), "u-approved"),
            None
        );
        // A list with a bad element may have hidden the issue's task.
        let partial = ListedTasks::new([], false);
        assert_eq!(
            partial.unchanged("i-1", &of_done, Some(at), "u-approved"),
            None
        );
        assert_eq!(
            partial.unchanged("i-1", &of_none, Some(at), "u-toanalyse"),
            None
        );
        // The task was done, now it is listed (reopened): read fresh.
        let reopened = of_issue(dated("review", "2026-06-09T11:00:00Z"), "i-1");
        let listed = ListedTasks::new([&reopened], true);
        assert_eq!(
            listed.unchanged("i-1", &of_done, Some(at), "u-approved"),
            None
        );
        // No task then, one now: read fresh.
        assert_eq!(
            listed.unchanged("i-1", &of_none, Some(at), "u-toanalyse"),
            None
        );
    }

    #[test]
    fn only_confirmed_noops_are_remembered() {
        for o in [
            Outcome::StartNoop,
            Outcome::ResumeNoop,
            Outcome::VerdictNoop,
        ] {
            assert!(is_noop(o), "{o}");
        }
        for o in [
            Outcome::Started,
            Outcome::Resumed,
            Outcome::VerdictApplied,
            Outcome::Error,
            Outcome::Skipped,
            Outcome::Deferred,
            Outcome::WouldApplyVerdict,
        ] {
            assert!(!is_noop(o), "{o}");
        }
    }

    #[test]
    fn confirm_start_needs_a_task_afterwards() {
        let t = task("analysis");
        assert_eq!(confirm(Action::Start, None, Some(&t)), Outcome::Started);
        assert_eq!(confirm(Action::Start, None, None), Outcome::StartNoop);
    }

    #[test]
    fn confirm_resume_needs_a_stage_change_or_a_new_job() {
        let before = task("analysis");
        assert_eq!(
            confirm(Action::Resume, Some(&before), Some(&before)),
            Outcome::ResumeNoop
        );
        let moved = task("architecture");
        assert_eq!(
            confirm(Action::Resume, Some(&before), Some(&moved)),
            Outcome::Resumed
        );
        let busy = Task {
            active_job: true,
            ..task("analysis")
        };
        assert_eq!(
            confirm(Action::Resume, Some(&before), Some(&busy)),
            Outcome::Resumed
        );
    }

    #[test]
    fn confirm_verdict_needs_a_stage_change() {
        let before = task("review");
        assert_eq!(
            confirm(Action::Verdict, Some(&before), Some(&before)),
            Outcome::VerdictNoop
        );
        assert_eq!(
            confirm(Action::Verdict, Some(&before), Some(&task("done"))),
            Outcome::VerdictApplied
        );
        assert_eq!(
            confirm(Action::Verdict, Some(&before), None),
            Outcome::VerdictNoop
        );
    }
}
