//! The labelled counters of the metrics textfile
//! (`reconcile_units_total{pass,outcome,reason}`, `reconcile_requests_total{peer}`,
//! `reconcile_ticks_total{exit_code}`), cumulative since the sidecar was
//! created. They live here, not in the textfile, so that a counter never goes
//! down: not across restarts, not when the file is deleted, not when a
//! scrape misses a tick.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

/// The labelled counter families the sidecar keeps.
pub const UNITS_TOTAL: &str = "reconcile_units_total";
pub const REQUESTS_TOTAL: &str = "reconcile_requests_total";
pub const TICKS_TOTAL: &str = "reconcile_ticks_total";

/// One series: a metric family and its label pairs, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub family: String,
    pub labels: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(family: &str, labels: &[(&str, &str)]) -> SeriesKey {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        SeriesKey {
            family: family.to_string(),
            labels,
        }
    }

    /// The label pairs as stored: a JSON object, keys sorted, so one series
    /// is always one row.
    fn labels_json(&self) -> String {
        let map: BTreeMap<&str, &str> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Adds each increment to its series, creating it at 0 first: a series
/// with a zero increment exists from then on, so `increase()` sees its
/// first real step.
pub(super) fn add(tx: &Connection, series: &BTreeMap<SeriesKey, i64>) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO metric_series(family, labels, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(family, labels) DO UPDATE SET value = value + excluded.value",
    )?;
    for (key, by) in series {
        // A counter only goes up, whatever a caller hands in.
        stmt.execute(params![key.family, key.labels_json(), (*by).max(0)])?;
    }
    Ok(())
}

/// `status` and dry-run read a sidecar an older binary wrote without
/// migrating it: a table that is not there yet reads as empty.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Every stored series. A row whose labels are not a JSON object of
/// strings (a hand-edited file) is left out rather than failing the tick.
pub(super) fn read(conn: &Connection) -> rusqlite::Result<BTreeMap<SeriesKey, i64>> {
    if !has_table(conn, "metric_series")? {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<_> = super::select(
        conn,
        "SELECT family, labels, value FROM metric_series",
        [],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    let mut out = BTreeMap::new();
    for (family, labels, value) in rows {
        let Ok(labels) = serde_json::from_str::<BTreeMap<String, String>>(&labels) else {
            log::warn!("sidecar: metric series {family} has unreadable labels; left out");
            continue;
        };
        out.insert(
            SeriesKey {
                family,
                labels: labels.into_iter().collect(),
            },
            value,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::schema::MIGRATION_V3).unwrap();
        c
    }

    #[test]
    fn increments_add_up_per_series_and_never_subtract() {
        let c = conn();
        let a = SeriesKey::new("t_total", &[("pass", "gate"), ("outcome", "advanced")]);
        let b = SeriesKey::new("t_total", &[("outcome", "advanced"), ("pass", "plane")]);
        add(&c, &BTreeMap::from([(a.clone(), 2), (b.clone(), 0)])).unwrap();
        add(&c, &BTreeMap::from([(a.clone(), 3), (b.clone(), -5)])).unwrap();
        let got = read(&c).unwrap();
        assert_eq!(got, BTreeMap::from([(a, 5), (b, 0)]));
    }

    #[test]
    fn label_order_does_not_make_a_second_series() {
        let c = conn();
        let a = SeriesKey::new("t_total", &[("a", "1"), ("b", "2")]);
        let b = SeriesKey::new("t_total", &[("b", "2"), ("a", "1")]);
        assert_eq!(a, b);
        add(&c, &BTreeMap::from([(a, 1)])).unwrap();
        add(&c, &BTreeMap::from([(b.clone(), 1)])).unwrap();
        assert_eq!(read(&c).unwrap(), BTreeMap::from([(b, 2)]));
    }

    #[test]
    fn a_finished_tick_adds_its_series_and_a_reopened_sidecar_keeps_them() {
        use crate::store::{Sidecar, TickRecord};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let t0 = time::macros::datetime!(2026-01-01 00:00 UTC);
        let ok = SeriesKey::new("reconcile_ticks_total", &[("exit_code", "0")]);
        let rec = TickRecord {
            command: "all".into(),
            started_at: t0,
            duration_ms: 5,
            counts: BTreeMap::new(),
            skips: BTreeMap::new(),
            exit_code: 0,
            errors: 0,
            skipped_terminal: 0,
            deduped_keys: vec![],
            cursors: vec![],
            series: BTreeMap::from([(ok.clone(), 1)]),
            plane_projects_unread: 0,
            plane_oldest_sync_at: None,
        };
        for _ in 0..2 {
            let mut sc = Sidecar::open(&path).unwrap();
            sc.finish_tick(&rec, t0).unwrap();
            sc.close().unwrap();
        }
        let sc = crate::store::SidecarReader::open(&path).unwrap().unwrap();
        assert_eq!(sc.snapshot().unwrap().series, BTreeMap::from([(ok, 2)]));
    }

    #[test]
    fn an_older_schema_reads_as_no_series() {
        let c = Connection::open_in_memory().unwrap();
        assert!(read(&c).unwrap().is_empty());
    }

    #[test]
    fn a_row_with_garbage_labels_is_left_out() {
        let c = conn();
        c.execute(
            "INSERT INTO metric_series VALUES ('x_total', 'not json', 3)",
            [],
        )
        .unwrap();
        let ok = SeriesKey::new("y_total", &[]);
        add(&c, &BTreeMap::from([(ok.clone(), 1)])).unwrap();
        assert_eq!(read(&c).unwrap(), BTreeMap::from([(ok, 1)]));
    }
}
