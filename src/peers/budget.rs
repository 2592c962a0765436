//! Plane's request budget as one tick sees it (docs/plane.md, "the request
//! budget"): the ledger of requests and answers, and the 429s, shared by
//! every clone of the `peers::plane` client.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A longer Retry-After defers the unit instead of holding the tick.
pub(super) const MAX_RATE_WAIT_S: u64 = 30;

/// The tick's Plane budget, shared by every clone of the client.
#[derive(Default)]
pub(super) struct Budget {
    ledger: Mutex<Ledger>,
    /// A 429 was not waited out: Plane is done for this tick.
    limited: AtomicBool,
    /// Calls waiting out a 429 (and sending again). Meanwhile no new read
    /// starts: Plane's window is full, and each would only spend a 429.
    waiting: AtomicUsize,
}

impl Budget {
    pub(super) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Never half written (single assignments): a panic cannot poison it.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn limited(&self) -> bool {
        self.limited.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) {
        self.limited.store(true, Ordering::Relaxed);
    }

    pub(super) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Counts a call as waiting out a 429 until the returned guard drops
    /// (an unwinding worker's too).
    pub(super) fn hold(&self) -> Hold<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Hold(self)
    }
}

/// A call waiting out a 429 (`Budget::hold`).
pub(super) struct Hold<'a>(&'a Budget);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long to wait out a 429 whose Retry-After says `retry_after`
/// seconds: None when it says nothing, is longer than `MAX_RATE_WAIT_S`
/// or ends past `deadline` (the unit is deferred instead).
pub(super) fn rate_wait(retry_after: Option<u64>, deadline: Option<Instant>) -> Option<Duration> {
    let secs = retry_after.filter(|s| *s <= MAX_RATE_WAIT_S)?;
    let wait = Duration::from_secs(secs);
    deadline
        .is_none_or(|d| Instant::now() + wait < d)
        .then_some(wait)
}

/// What the tool knows of Plane's budget this tick (docs/plane.md, "the
/// request budget"). Each request is counted before it goes out, so the
/// budget left never depends on the order in which concurrent answers
/// come back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ledger {
    /// Plane's budget before the tick's first request, as the first
    /// counted answer tells it: that X-RateLimit-Remaining plus one (it
    /// counts its own request). Exact when that request was alone on the
    /// wire; otherwise low (requests sent alongside may already be in it).
    /// None: no counted answer yet.
    base: Option<i64>,
    /// Requests sent this tick, counted before they go out.
    pub(super) sent: i64,
    /// Requests someone else (the orchestrator, sharing the key) spent
    /// meanwhile, as the answers showed.
    others: i64,
    /// A success came without X-RateLimit-Remaining: this Plane does not
    /// count, and the budget will not become known this tick.
    uncounted: bool,
}

impl Ledger {
    /// Plane's budget once every request sent so far has arrived.
    pub(super) fn remaining(&self) -> Option<i64> {
        self.base.map(|b| b - self.sent - self.others)
    }

    /// Whether the budget may still become known: no counted answer yet,
    /// and no success without the count.
    pub(super) fn awaits_first_answer(&self) -> bool {
        self.base.is_none() && !self.uncounted
    }

    /// An answer: its status and X-RateLimit-Remaining. 401 and 403 are
    /// never counted (Plane checks the key first): they say nothing.
    pub(super) fn answer(&mut self, status: u16, remaining: Option<i64>) {
        match remaining {
            Some(r) => self.answered(r),
            None if (200..300).contains(&status) => self.uncounted = true,
            None => {}
        }
    }

    /// An answer's X-RateLimit-Remaining (counting its own request). At
    /// most `sent` of ours reached Plane before it, so a value below what
    /// they alone leave is someone else's spending. A higher one (the
    /// window moved on) is ignored: stopping early is the safe error.
    fn answered(&mut self, remaining: i64) {
        match self.base {
            None => self.base = Some(remaining + 1),
            Some(b) => self.others = self.others.max(b - self.sent - remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Budget, Ledger, rate_wait};
    use std::time::{Duration, Instant};

    #[test]
    fn a_429_is_waited_out_only_when_its_retry_after_is_short_and_ends_before_the_deadline() {
        let later = Some(Instant::now() + Duration::from_secs(3600));
        assert_eq!(rate_wait(Some(2), None), Some(Duration::from_secs(2)));
        assert_eq!(rate_wait(Some(30), later), Some(Duration::from_secs(30)));
        assert_eq!(rate_wait(Some(31), later), None);
        assert_eq!(rate_wait(None, later), None);
        let soon = Some(Instant::now() + Duration::from_secs(1));
        assert_eq!(rate_wait(Some(5), soon), None);
    }

    #[test]
    fn new_reads_are_held_while_any_call_waits_out_a_429() {
        let b = Budget::default();
        assert!(!b.waiting());
        let one = b.hold();
        let two = b.hold();
        drop(one);
        assert!(b.waiting());
        drop(two);
        assert!(!b.waiting());
        assert!(!b.limited());
        b.limit();
        assert!(b.limited());
    }

    /// (requests sent before the answer came back, its Remaining)
    type Answers = &'static [(i64, i64)];

    fn after(answers: Answers) -> Ledger {
        let mut l = Ledger::default();
        for (sent, r) in answers {
            l.sent = *sent;
            l.answered(*r);
        }
        l
    }

    #[test]
    fn the_budget_left_counts_every_request_sent_whatever_the_answer_order() {
        // Nothing known before Plane's first counted answer.
        assert_eq!(Ledger::default().remaining(), None);
        let rows: [(Answers, Option<i64>, i64); 7] = [
            // The first request alone: 13 before it, 12 after.
            (&[(1, 12)], Some(12), 0),
            // Three more sent, one answered: the two on the wire count.
            (&[(1, 12), (4, 11)], Some(9), 0),
            // Answers out of order (the last sent answered first, 9): the
            // earlier one's 11 is no news.
            (&[(1, 12), (4, 9), (4, 11)], Some(9), 0),
            // The first answer came with three of ours on the wire: they
            // may be in it already; counted as if not (low, never high).
            (&[(4, 12)], Some(9), 0),
            // Someone else spent 5: the answer is below what ours leave.
            (&[(1, 12), (2, 6)], Some(6), 5),
            // A new window (more than before) changes nothing.
            (&[(1, 12), (2, 59)], Some(11), 0),
            // Others' spending is kept even when a later answer is higher.
            (&[(1, 12), (2, 6), (3, 9)], Some(5), 5),
        ];
        for (answers, remaining, others) in rows {
            let l = after(answers);
            assert_eq!(
                (l.remaining(), l.others),
                (remaining, others),
                "{answers:?}"
            );
        }
    }

    #[test]
    fn the_budget_is_awaited_until_a_counted_answer_or_a_success_without_the_count() {
        // (answers, each one request: status and Remaining), still awaited,
        // the budget left.
        type Rows = [(&'static [(u16, Option<i64>)], bool, Option<i64>); 6];
        let rows: Rows = [
            (&[], true, None),
            // Not counted, no news: still awaited.
            (&[(403, None), (401, None), (502, None)], true, None),
            // The 403 stays counted as sent: low by one, never high.
            (&[(403, None), (200, Some(40))], false, Some(39)),
            // A counted error carries the count too.
            (&[(404, Some(30))], false, Some(30)),
            // A Plane that does not count: never known, no longer awaited.
            (&[(200, None)], false, None),
            (&[(200, None), (200, Some(20))], false, Some(19)),
        ];
        for (answers, awaited, remaining) in rows {
            let mut l = Ledger::default();
            for (status, r) in answers {
                l.sent += 1;
                l.answer(*status, *r);
            }
            assert_eq!(l.awaits_first_answer(), awaited, "{answers:?}");
            assert_eq!(l.remaining(), remaining, "{answers:?}");
        }
    }
}
