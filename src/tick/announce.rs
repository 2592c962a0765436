//! Announcing what a tick unblocked: once per (key, stage, state), with
//! its record, its open intent resolved and its message queued in one
//! transaction; then delivery, which follows each message back to the
//! unit it announces (docs/decisions.md, "Announcements, de-dup and
//! delivery").

use std::collections::HashMap;

use anyhow::Context as _;

use super::outcome::{Notification, TickOutcome};
use super::{Store, Tick, notify};
use crate::store::{self, Announcement};

/// The tick's de-dup memory (docs/decisions.md, de-dup).
#[derive(Default)]
pub(super) struct Dedup {
    /// Keys of the unblocks suppressed as duplicates this tick.
    pub keys: Vec<String>,
    /// Dry-run: announcements this tick would have recorded.
    pub dry: HashMap<String, (String, Option<String>)>,
}

/// Where in the outcome a queued message's unit sits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    Gate(usize),
    Plane(usize),
}

impl Tick<'_> {
    /// Announce an unblock once per (key, stage, state)
    /// (docs/decisions.md, "Announcements, de-dup and delivery").
    /// Live: one transaction records it and queues the message.
    /// Returns what became of the announcement and, live, the outbox row
    /// that holds its message.
    pub(super) fn note_unblock(
        &mut self,
        u: Announcement,
    ) -> anyhow::Result<(Notification, Option<i64>)> {
        let last = match self.dedup.dry.get(&u.key) {
            Some(v) => Some(v.clone()),
            None => match self.store.reader() {
                Some(s) => s.last_announced(&u.key)?,
                None => None,
            },
        };
        if store::is_duplicate(last.as_ref(), &u.stage, u.state_uuid.as_deref()) {
            if let Some(unit) = self.resolving.take() {
                self.end_intent(&unit)?;
            }
            self.dedup.keys.push(u.key.clone());
            return Ok((Notification::Deduped, None));
        }
        let queue = self.cfg.reconcile.notify_unblock && self.cfg.telegram.is_some();
        let tcfg = self.cfg.telegram.as_ref();
        let link = notify::link(
            tcfg.and_then(|t| t.link_template.as_deref()),
            u.work_item_id.as_deref(),
            &u.key,
        );
        let template = tcfg
            .map(|t| t.unblock_template.as_str())
            .unwrap_or("🔧 reconciler: {link} {stage} разблокирована (потерян webhook)");
        let text = notify::unblock_text(template, &link, &u.stage);
        log::info!(
            "{}: {} {} unblocked (lost webhook)",
            u.pass.as_str(),
            u.key,
            u.stage
        );
        let mut outbox = None;
        match &mut self.store {
            Store::Live(store) => {
                let rec = store
                    .record_unblock_resolving(
                        &store::Unblock {
                            announcement: u,
                            digest_line: text.clone(),
                            text,
                            queue,
                        },
                        self.resolving.take().as_deref(),
                        self.clock.now,
                    )
                    .context("recording an unblock")?;
                outbox = rec.outbox_id;
            }
            Store::ReadOnly(_) => {
                self.dedup.dry.insert(u.key, (u.stage, u.state_uuid));
            }
        }
        let notification = if queue {
            Notification::Queued
        } else {
            Notification::Off
        };
        Ok((notification, outbox))
    }

    /// Delivers the outbox (not in a dry run, not under the kill switch,
    /// not after a stop signal: the messages stay queued) and follows each
    /// message to its unit. A tick the deadline cut delivers too, in the
    /// reserve kept for it; else, when every tick is cut, messages starve.
    pub(super) fn deliver(&mut self, outcome: &mut TickOutcome) -> anyhow::Result<()> {
        if !self.opts.dry_run
            && self.cfg.reconcile.enabled
            && !crate::signals::stop_requested()
            && let (Store::Live(store), Some(tg), Some(tcfg)) =
                (&mut self.store, &self.peers.telegram, &self.cfg.telegram)
        {
            let d = notify::deliver(store, tg, tcfg.digest_over, self.clock.now)?;
            outcome.delivery_ran = true;
            for (id, slot) in &self.queued {
                if let Some(n) = d.status(*id) {
                    outcome.set_notification(*slot, n);
                }
            }
            outcome.notifications.sent = (d.sent.len() + d.digested.len()) as u64;
            outcome.notifications.dropped = d.dropped.len() as u64;
        }
        outcome.notifications.deduped = outcome.deduped_keys.len() as u64;
        if let Some(s) = self.store.reader() {
            outcome.notifications.queued = s.pending_count()?.max(0) as u64;
        }
        Ok(())
    }
}
