//! The dependency cycles already alerted, so each is alerted once while it
//! lasts (docs/decisions.md).

use rusqlite::params;
use time::OffsetDateTime;

use super::errors::Result;
use super::outbox::{MessageKind, insert_message};
use super::{Sidecar, SidecarReader, format_ts, select};

/// A dependency cycle already alerted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCycle {
    pub key: String,
    pub alerted_at: String,
}

impl SidecarReader {
    /// The cycles alerted so far, by key.
    pub fn known_cycles(&self) -> Result<Vec<KnownCycle>> {
        let conn = self.conn()?;
        select(
            &conn,
            "SELECT key, alerted_at FROM cycles ORDER BY key",
            [],
            |r| {
                Ok(KnownCycle {
                    key: r.get(0)?,
                    alerted_at: r.get(1)?,
                })
            },
        )
        .map_err(self.err("reading the known cycles"))
    }
}

impl Sidecar {
    /// Remembers a cycle and, when `queue`, queues its alert: one
    /// transaction, so a cycle is never remembered without its alert.
    pub fn record_cycle(
        &mut self,
        key: &str,
        text: &str,
        queue: bool,
        now: OffsetDateTime,
    ) -> Result<Option<i64>> {
        let now = format_ts(now);
        self.write("record a dependency cycle", |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO cycles (key, alerted_at, text) VALUES (?1, ?2, ?3)",
                params![key, now, text],
            )?;
            if queue {
                insert_message(tx, MessageKind::Cycle, text, text, &now, None).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Forgets every known cycle not in `present`, so a recurrence alerts
    /// again. Call only after a successfully fetched task list.
    pub fn forget_cycles_except(&mut self, present: &[String]) -> Result<usize> {
        let known = self.known_cycles()?;
        let gone: Vec<String> = known
            .into_iter()
            .map(|c| c.key)
            .filter(|k| !present.contains(k))
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.write("forget dependency cycles", |tx| {
            let mut n = 0;
            for k in &gone {
                n += tx.execute("DELETE FROM cycles WHERE key = ?1", [k])?;
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);

    use crate::store::tests::open;

    #[test]
    fn cycles_are_remembered_with_their_alert_and_forgotten_when_gone() {
        let (_d, mut s) = open();
        let id = s.record_cycle("1,2", "⛔ cycle", true, T0).unwrap();
        assert!(id.is_some());
        assert_eq!(s.pending_count().unwrap(), 1);
        s.record_cycle("5,6", "⛔ other", false, T0).unwrap();
        assert_eq!(s.known_cycles().unwrap().len(), 2);
        assert_eq!(s.forget_cycles_except(&["5,6".into()]).unwrap(), 1);
        let known: Vec<String> = s
            .known_cycles()
            .unwrap()
            .into_iter()
            .map(|c| c.key)
            .collect();
        assert_eq!(known, vec!["5,6".to_string()]);
    }
}
