//! The tick's side of intents (docs/reliability.md, hostile conditions):
//! commit one before an advance or a replay is sent, resolve it with the
//! outcome, and re-check the ones an earlier tick left unresolved.

use anyhow::Context as _;

use super::{Store, Tick};
use crate::peers::orchestrator::Task;
use crate::store::{self, Announcement, Intent, Pass};

impl Tick<'_> {
    /// Commits the intent of an action about to be sent (live ticks only).
    /// An error stops the tick before the request: an action whose intent
    /// could not be written is not sent.
    pub(super) fn begin_intent(
        &mut self,
        unit: &str,
        stage_before: &str,
        u: &Announcement,
    ) -> anyhow::Result<()> {
        let Store::Live(s) = &mut self.store else {
            return Ok(());
        };
        s.record_intent(&Intent {
            unit: unit.to_string(),
            stage_before: stage_before.to_string(),
            at: store::intent_time(self.clock.now),
            announcement: u.clone(),
        })
        .context("recording the intent of an action (it was not sent)")
    }

    /// Resolves an intent whose outcome announces nothing.
    pub(super) fn end_intent(&mut self, unit: &str) -> anyhow::Result<()> {
        if let Store::Live(s) = &mut self.store {
            s.drop_intent(unit)?;
        }
        Ok(())
    }

    fn open_intents(&self, pass: Pass) -> anyhow::Result<Vec<Intent>> {
        Ok(match &self.store {
            Store::Live(s) => s
                .intents()?
                .into_iter()
                .filter(|i| i.announcement.pass == pass)
                .collect(),
            _ => Vec::new(),
        })
    }

    /// The stage moved since the intent: the action happened, announce it
    /// as usual (de-dup included) and resolve the intent with the record.
    fn recover(&mut self, i: &Intent, task: Option<&Task>) -> anyhow::Result<()> {
        log::info!(
            "{}: {} changed while its action was unconfirmed; announcing the unblock",
            i.announcement.pass.as_str(),
            i.unit
        );
        let a = &i.announcement;
        let u = Announcement {
            task_id: a.task_id.or(task.map(|t| t.id)),
            work_item_id: a
                .work_item_id
                .clone()
                .or_else(|| task.and_then(Task::work_item).map(str::to_string)),
            ..a.clone()
        };
        self.resolving = Some(i.unit.clone());
        self.note_unblock(u)?;
        self.resolving = None;
        Ok(())
    }

    /// Gate intents against the task list just read: a task whose stage
    /// moved from the intent's (or that left the list of tasks not done)
    /// was advanced.
    pub(super) fn recheck_gate_intents(&mut self, tasks: &[Task]) -> anyhow::Result<()> {
        for i in self.open_intents(Pass::Gate)? {
            let task = i
                .announcement
                .task_id
                .and_then(|id| tasks.iter().find(|t| t.id == id));
            match task {
                Some(t) if t.stage == i.stage_before => self.end_intent(&i.unit)?,
                _ => self.recover(&i, task)?,
            }
        }
        Ok(())
    }

    /// Plane intents: each issue's task read again; unreadable now, the
    /// intent waits for the next tick.
    pub(super) fn recheck_plane_intents(&mut self) -> anyhow::Result<()> {
        for i in self.open_intents(Pass::Plane)? {
            let Some(issue_id) = i.announcement.issue_id.clone() else {
                self.end_intent(&i.unit)?;
                continue;
            };
            match self.peers.orchestrator.task_by_issue(&issue_id) {
                Ok(Some(t)) if t.stage != i.stage_before => self.recover(&i, Some(&t))?,
                Ok(_) => self.end_intent(&i.unit)?,
                Err(e) => log::warn!("plane: {} not re-checked yet: {e}", i.unit),
            }
        }
        Ok(())
    }
}
