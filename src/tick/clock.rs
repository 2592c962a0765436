//! The tick's time: the wall-clock `now` its ages and timestamps derive
//! from, and the real-clock instants after which it stops starting work.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::Options;
use crate::config::Config;
use crate::core::outcome::Reason;

pub(super) struct Clock {
    /// Every age, TTL and timestamp of the tick derives from this (the
    /// benchmark replays a half hour of minute ticks by giving it).
    pub now: OffsetDateTime,
    /// When the tick started on the real clock, for its elapsed time.
    pub started: Instant,
    /// `deadline_s` after the start, on the real clock: the peers' clients
    /// give up then.
    pub deadline: Instant,
    /// No action (advance, replay, PATCH) starts after this: the deadline
    /// less the delivery reserve.
    pub act_until: Instant,
}

impl Clock {
    /// Starts the tick's clock: before the lock is taken, so a wait for
    /// the lock counts against the deadline.
    pub fn start(cfg: &Config, opts: &Options, now: OffsetDateTime) -> Clock {
        let started = Instant::now();
        // A deadline beyond what the clock can hold is no deadline (a year).
        let deadline = started
            .checked_add(Duration::from_secs(cfg.reconcile.deadline_s))
            .unwrap_or(started + Duration::from_secs(365 * 86_400));
        // Delivery keeps its reserve at the end of the tick (none when
        // nothing can be delivered).
        let reserve = if cfg.reconcile.enabled && !opts.dry_run {
            cfg.delivery_reserve()
        } else {
            Duration::ZERO
        };
        Clock {
            now,
            started,
            deadline,
            act_until: deadline.checked_sub(reserve).unwrap_or(deadline),
        }
    }

    /// No new action may start: the deadline less the delivery reserve
    /// passed, or a stop signal came.
    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.act_until || crate::signals::stop_requested()
    }

    /// Why units are cut: a signal, else the deadline.
    pub fn cut_reason(&self) -> Reason {
        if crate::signals::stop_requested() {
            Reason::Signal
        } else {
            Reason::Deadline
        }
    }
}
