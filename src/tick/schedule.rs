//! The fair Plane budget's pure decisions (docs/plane.md, "the fair
//! schedule"): in which order projects are read, what their reads cost,
//! whether they fit above the reserve, and which cached states serve or are
//! refreshed from what the reads leave over. `fetch::start_reads` and
//! `fetch/reads.rs` carry them out.

use time::OffsetDateTime;

use super::Blind;
use crate::config::Project;
use crate::core::states::StateMap;
use crate::store::MirrorIssue;

/// What `start_reads` knows of a project before reading it.
pub(super) struct Plan {
    pub project: Project,
    pub last_synced: Option<OffsetDateTime>,
    /// When its cached states were fetched, and how they serve this tick.
    pub states_at: Option<OffsetDateTime>,
    pub states: StatesAge,
    /// The Plane requests its reads are expected to cost.
    pub cost: u64,
}

/// How a project's cached states serve this tick (docs/plane.md, "the
/// fair schedule"): listings come first, states refreshes take what they
/// leave over, and no states older than the hard bound are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatesAge {
    /// Younger than `states_cache_ttl_s`: the cache serves.
    Fresh,
    /// Older, within the hard bound: the cache serves the read, and a
    /// refresh follows if the budget the reads leave over pays for it.
    Stale,
    /// None cached, older than the hard bound, or outdated by an issue in
    /// a state they lack: fetched with the read, which costs one more.
    Expired,
}

/// A project's hard bound for its cached states: `ttl` plus between half
/// of `full_every` and all of it, fixed per project by a hash of its id.
/// The projects read in one tick have their states fetched together; with
/// one bound for all they would all pass it in one tick, each read then
/// costing two requests (docs/performance.md, waves at the hard bound).
pub(super) fn hard_bound(
    pid: &str,
    ttl: time::Duration,
    full_every: time::Duration,
) -> time::Duration {
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = pid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // A share of the second half of full_every, in 1/1024ths.
    let share = i32::try_from(hash % 1024).unwrap_or(0);
    let cut = (full_every / 2) * share / 1024;
    ttl.saturating_add(full_every - cut)
}

/// `fetched_at` against `ttl` and the hard bound `hard` (`hard_bound`).
pub(super) fn states_age(
    fetched_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    ttl: time::Duration,
    hard: time::Duration,
) -> StatesAge {
    match fetched_at.map(|at| now - at) {
        Some(age) if age < ttl => StatesAge::Fresh,
        Some(age) if age < hard => StatesAge::Stale,
        _ => StatesAge::Expired,
    }
}

/// The stale states to refresh from what the reads leave over: oldest
/// first, ties in read order.
pub(super) fn refresh_queue(plans: &[Plan]) -> Vec<String> {
    let mut stale: Vec<&Plan> = plans
        .iter()
        .filter(|p| p.states == StatesAge::Stale)
        .collect();
    stale.sort_by_key(|p| p.states_at);
    stale
        .into_iter()
        .map(|p| p.project.plane_project_id.clone())
        .collect()
}

/// Whether an issue just listed is in a state `map` lacks and moved there
/// after the states were fetched (`cached_at`): the states changed in
/// Plane. One in an unknown state since before then would not be helped by
/// a refresh, and must not cost one on every read.
pub(super) fn names_new_state(
    map: &StateMap,
    cached_at: OffsetDateTime,
    seen: &[MirrorIssue],
) -> bool {
    seen.iter().any(|i| {
        i.state
            .as_deref()
            .is_some_and(|s| !s.is_empty() && map.name_of(s).is_none())
            && i.updated_at
                .as_deref()
                .and_then(crate::core::timestamp::parse)
                .is_some_and(|u| u > cached_at)
    })
}

/// Oldest successful sync first, never synced before all; ties keep the
/// configured order.
pub(super) fn order(plans: &mut [Plan]) {
    plans.sort_by_key(|p| p.last_synced);
}

/// The requests a project's reads cost: its states when the cache cannot
/// serve (`states_cached` false: none, or past the hard bound), then one page for an incremental sync, or the pages of a full
/// listing as the mirror last counted them (one when it never did).
pub(super) fn cost(states_cached: bool, full: bool, mirrored: u64, per_page: u32) -> u64 {
    let states = u64::from(!states_cached);
    let listing = if full {
        mirrored.div_ceil(u64::from(per_page.max(1))).max(1)
    } else {
        1
    };
    states + listing
}

/// Whether reads costing `cost` may start: with `remaining` the last
/// X-RateLimit-Remaining (None before Plane answered once), `reserve` the
/// requests kept for the orchestrator and `committed` what the reads in
/// flight may still spend. A 429 this tick (`limited`) stops every read.
pub(super) fn fits(
    cost: u64,
    remaining: Option<i64>,
    reserve: i64,
    committed: u64,
    limited: bool,
) -> Result<(), Blind> {
    if limited {
        return Err(Blind::new(
            crate::core::gate::Unresolved::RateLimited,
            "not read: Plane answered 429 earlier in this tick".into(),
        ));
    }
    let Some(remaining) = remaining else {
        return Ok(());
    };
    let left = remaining - reserve - i64::try_from(committed).unwrap_or(i64::MAX);
    if left >= i64::try_from(cost).unwrap_or(i64::MAX) {
        return Ok(());
    }
    let message = if left <= 0 {
        "not read: the Plane request budget is at the reserve".to_string()
    } else {
        format!(
            "not read: its reads (~{cost} requests) do not fit in the {left} left above the reserve"
        )
    };
    Err(Blind::new(crate::core::gate::Unresolved::Reserve, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::states::PlaneState;
    use time::macros::datetime;

    fn plan(name: &str, last: Option<OffsetDateTime>) -> Plan {
        Plan {
            project: Project {
                repo: name.into(),
                plane_project_id: name.into(),
                enabled: true,
                state_names: Default::default(),
            },
            last_synced: last,
            states_at: None,
            states: StatesAge::Fresh,
            cost: 1,
        }
    }

    fn with_states(mut p: Plan, at: Option<OffsetDateTime>, states: StatesAge) -> Plan {
        p.states_at = at;
        p.states = states;
        p
    }

    #[test]
    fn states_serve_until_the_ttl_then_stale_until_the_hard_bound() {
        let now = datetime!(2026-12-01 10:00 UTC);
        let (ttl, hard) = (time::Duration::seconds(300), time::Duration::seconds(2100));
        let ago = |s: i64| Some(now - time::Duration::seconds(s));
        let rows = [
            (None, StatesAge::Expired),
            (ago(0), StatesAge::Fresh),
            (ago(299), StatesAge::Fresh),
            (ago(300), StatesAge::Stale),
            (ago(2099), StatesAge::Stale),
            (ago(2100), StatesAge::Expired),
            // Outdated by an issue in an unknown state.
            (Some(OffsetDateTime::UNIX_EPOCH), StatesAge::Expired),
            // A clock that went back: younger than the TTL.
            (ago(-60), StatesAge::Fresh),
        ];
        for (at, want) in rows {
            assert_eq!(states_age(at, now, ttl, hard), want, "{at:?}");
        }
        // full_resync_s 0: the hard bound is the TTL itself.
        assert_eq!(states_age(ago(300), now, ttl, ttl), StatesAge::Expired);
    }

    #[test]
    fn stale_states_are_refreshed_oldest_first_fresh_and_expired_never() {
        let t = |m: u8| Some(datetime!(2026-12-01 10:00 UTC) + time::Duration::minutes(m.into()));
        let plans = vec![
            with_states(plan("a", t(9)), t(3), StatesAge::Stale),
            with_states(plan("b", t(1)), t(8), StatesAge::Fresh),
            with_states(plan("c", t(2)), t(1), StatesAge::Stale),
            with_states(plan("d", None), None, StatesAge::Expired),
            with_states(plan("e", t(4)), t(3), StatesAge::Stale),
            with_states(plan("f", t(4)), t(0), StatesAge::Expired),
        ];
        assert_eq!(refresh_queue(&plans), ["c", "a", "e"]);
    }

    #[test]
    fn an_issue_moved_into_a_state_the_cache_lacks_outdates_it() {
        let cached = datetime!(2026-12-01 10:00 UTC);
        let states = vec![PlaneState {
            id: "s-todo".into(),
            name: "Todo".into(),
            group: Some("unstarted".into()),
            sequence: None,
        }];
        let map = StateMap::build(&states, &Default::default());
        let issue = |state: Option<&str>, updated: Option<&str>| MirrorIssue {
            id: "i".into(),
            state: state.map(Into::into),
            updated_at: updated.map(Into::into),
            sequence_id: Some(1),
            raw: None,
        };
        let after = Some("2026-12-01T10:05:00Z");
        let before = Some("2026-12-01T09:55:00Z");
        let rows = [
            (issue(Some("s-new"), after), true),
            (issue(Some("s-todo"), after), false),
            // In that state since before the cache: a refresh cannot help.
            (issue(Some("s-new"), before), false),
            (issue(Some("s-new"), None), false),
            (issue(Some("s-new"), Some("garbage")), false),
            (issue(None, after), false),
            (issue(Some(""), after), false),
        ];
        for (i, want) in rows {
            assert_eq!(
                names_new_state(&map, cached, std::slice::from_ref(&i)),
                want,
                "{i:?}"
            );
        }
        assert!(!names_new_state(&map, cached, &[]));
    }

    #[test]
    fn never_synced_first_then_oldest_sync_ties_in_config_order() {
        let t = |m: u8| Some(datetime!(2026-12-01 10:00 UTC) + time::Duration::minutes(m.into()));
        let mut plans = vec![
            plan("a", t(5)),
            plan("b", None),
            plan("c", t(1)),
            plan("d", t(5)),
            plan("e", None),
        ];
        order(&mut plans);
        let names: Vec<&str> = plans.iter().map(|p| p.project.repo.as_str()).collect();
        assert_eq!(names, ["b", "e", "c", "a", "d"]);
    }

    #[test]
    fn cost_counts_states_and_the_pages_the_mirror_last_held() {
        // Cached states (fresh or stale) cost nothing; none, or past the
        // hard bound, one request.
        assert_eq!(cost(true, false, 5000, 1000), 1, "incremental: one page");
        assert_eq!(cost(false, false, 5000, 1000), 2, "+ states");
        assert_eq!(cost(true, true, 0, 1000), 1, "never counted: one page");
        assert_eq!(cost(true, true, 1000, 1000), 1);
        assert_eq!(cost(true, true, 1001, 1000), 2);
        assert_eq!(cost(false, true, 2500, 100), 26);
    }

    #[test]
    fn reads_start_while_they_fit_above_the_reserve() {
        // Before Plane answered once, nothing is known: read.
        assert!(fits(5, None, 10, 0, false).is_ok());
        assert!(fits(1, Some(11), 10, 0, false).is_ok());
        let e = fits(1, Some(10), 10, 0, false).unwrap_err();
        assert_eq!(e.cause, crate::core::gate::Unresolved::Reserve);
        assert!(e.message.contains("at the reserve"), "{}", e.message);
        // A full listing of 3 pages does not fit in 2; a single page does.
        let e = fits(3, Some(12), 10, 0, false).unwrap_err();
        assert!(e.message.contains("~3 requests"), "{}", e.message);
        assert!(fits(2, Some(12), 10, 0, false).is_ok());
        // What the reads in flight may still spend is not available.
        assert!(fits(1, Some(12), 10, 2, false).is_err());
        assert!(fits(1, Some(13), 10, 2, false).is_ok());
        let e = fits(1, Some(50), 10, 0, true).unwrap_err();
        assert_eq!(e.cause, crate::core::gate::Unresolved::RateLimited);
    }

    #[test]
    fn each_project_passes_its_hard_bound_at_its_own_point_of_the_second_half() {
        let (ttl, full) = (time::Duration::seconds(300), time::Duration::seconds(1800));
        let ids: Vec<String> = (0..200).map(|i| format!("project-{i:03}")).collect();
        let bounds: Vec<time::Duration> = ids.iter().map(|p| hard_bound(p, ttl, full)).collect();
        for (id, b) in ids.iter().zip(&bounds) {
            // Between TTL + half of full_resync_s and TTL + full_resync_s.
            assert!(
                *b > time::Duration::seconds(1200) && *b <= time::Duration::seconds(2100),
                "{id}: {b}"
            );
            // The same every run.
            assert_eq!(hard_bound(id, ttl, full), *b);
        }
        // Spread: 200 projects land in every fifth of the range.
        for fifth in 0..5 {
            let lo = time::Duration::seconds(1200 + 180 * fifth);
            let n = bounds
                .iter()
                .filter(|b| **b > lo && **b <= lo + time::Duration::seconds(180))
                .count();
            assert!(n >= 20, "fifth {fifth}: {n} of 200");
        }
        // full_resync_s 0: the bound is the TTL itself.
        assert_eq!(hard_bound("p", ttl, time::Duration::ZERO), ttl);
        // Saturates instead of overflowing.
        let huge = time::Duration::MAX;
        assert_eq!(hard_bound("p", huge, full), huge);
    }
}
