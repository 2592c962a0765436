//! What a tick knows of each Plane project: its states (cached for
//! `states_cache_ttl_s`) and its issues (the mirror, synced in full every
//! `full_resync_s` and incrementally in between; docs/plane.md), or why it
//! has none (`Blind`). Reads of different projects run in the background
//! on up to `[plane] concurrency` threads (`fetch/reads.rs`) while the
//! passes decide the units whose projects are back; what they bring back
//! is written to the sidecar by the tick's own thread.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use time::OffsetDateTime;

use super::outcome::PlanePass;
use super::outcome::SharedCause;
use super::schedule::{
    Plan, StatesAge, cost, hard_bound, names_new_state, order, refresh_queue, states_age,
};
use super::{Store, Tick};
use crate::config::{Config, Project};
use crate::core::gate::Unresolved;
use crate::core::states::{PlaneState, StateMap, merge_state_names};
use crate::peers::http::ErrorKind;
use crate::peers::plane::{ISSUE_FIELDS, Issue, Plane, PlaneFailure, Refusal};
use crate::store::{Mirror, MirrorIssue};

mod reads;
use reads::Jobs;

/// What this tick's Plane reads know: the projects it means to read,
/// those still being read and what came back. The passes ask it for a
/// project's view; `fetch/reads.rs` runs the jobs and records here what
/// they bring back.
pub(super) struct PlaneReads {
    /// The read jobs queued and running.
    jobs: Jobs,
    /// The projects whose reads are queued or running: a pass asks once
    /// per unit.
    awaited: HashSet<String>,
    /// Reads ended so far (a view or a reason there is none): a pass
    /// looks at its set-aside units again only when this moved.
    ended: u64,
    /// Each project read this tick, by project id: its view, or why there
    /// is none.
    views: HashMap<String, Result<Arc<ProjectView>, Blind>>,
    /// Plane requests each project's reads cost, for its report entry.
    requests: HashMap<String, u64>,
    /// The projects this tick meant to read, and when each last synced
    /// successfully (this tick's own sync included), for the staleness
    /// the tick reports.
    wanted: BTreeSet<String>,
    last_synced: HashMap<String, Option<OffsetDateTime>>,
}

/// A Plane-side resolution that failed, remembered for the tick.
#[derive(Debug, Clone)]
pub(crate) struct Blind {
    pub cause: Unresolved,
    pub message: String,
    /// A failed read's cause in a few words ("HTTP 502").
    pub short: Option<String>,
    /// Why Plane refused the read, when it did.
    pub refusal: Option<Refusal>,
}

impl From<PlaneFailure> for Blind {
    fn from(f: PlaneFailure) -> Blind {
        let message = f.to_string();
        match f {
            PlaneFailure::Reserve => Blind::new(Unresolved::Reserve, message),
            PlaneFailure::RateLimited(_) => Blind::new(Unresolved::RateLimited, message),
            PlaneFailure::Deadline(_) => Blind::new(Unresolved::Deadline, message),
            PlaneFailure::Failed(e) => {
                let refusal = Refusal::of(&e);
                let short = match (&refusal, &e.kind) {
                    (Some(r), _) => r.label().to_string(),
                    (None, ErrorKind::Status { code, .. }) => format!("HTTP {code}"),
                    (None, ErrorKind::Transport(m)) => m.clone(),
                    (None, ErrorKind::TooLarge) => "answer too large".into(),
                    (None, ErrorKind::Body(_)) => "unreadable answer".into(),
                };
                Blind {
                    short: Some(short),
                    refusal,
                    ..Blind::new(Unresolved::ReadFailed, message)
                }
            }
        }
    }
}

impl Blind {
    pub fn new(cause: Unresolved, message: String) -> Blind {
        Blind {
            cause,
            message,
            short: None,
            refusal: None,
        }
    }

    pub fn not_reached() -> Blind {
        Blind::new(Unresolved::Deadline, "not read: the deadline passed".into())
    }

    /// What every unit this failed read of `repo` leaves blind shares: the
    /// text report names it once with their count (docs/report.md).
    pub fn shared(&self, repo: &str) -> Option<SharedCause> {
        (self.cause == Unresolved::ReadFailed).then(|| SharedCause {
            summary: format!(
                "project {repo} unreadable ({})",
                self.short.as_deref().unwrap_or("read failed")
            ),
            hint: self.refusal.map(|r| r.hint().to_string()),
        })
    }
}

/// One project as this tick sees it. Issues carry no raw JSON (a replay
/// reads its issue's from the sidecar): 20,000 parsed issues would
/// dominate a tick's memory.
#[derive(Debug)]
pub(crate) struct ProjectView {
    pub states: Arc<StateMap>,
    /// Every issue of the project, by sequence id.
    pub issues: Vec<MirrorIssue>,
    by_id: HashMap<String, usize>,
    /// Listed entries that are not issues (no id …), for the report.
    pub bad: Vec<String>,
}

impl ProjectView {
    pub fn issue(&self, id: &str) -> Option<&MirrorIssue> {
        self.by_id.get(id).map(|i| &self.issues[*i])
    }
}

/// What the sidecar already holds for a project.
struct Known {
    project: Project,
    /// The cached states that serve this read and when they were fetched;
    /// None when the read fetches them.
    states: Option<(OffsetDateTime, Vec<PlaneState>)>,
    mirror: Option<Mirror>,
}

/// One job of a worker: a project's read, or only a refresh of its
/// states from the budget the reads left over.
enum Job {
    Read(Known),
    States(Project),
}

/// What one job brought back.
struct Fetched {
    project: Project,
    result: Result<Got, Blind>,
    requests: u64,
    /// A states refresh alone (the project was read already).
    refresh: bool,
}

enum Got {
    Sync(Sync),
    States(Vec<PlaneState>),
}

struct Sync {
    /// Fresh from Plane (to be cached), or None when the cache served.
    fresh_states: Option<Vec<PlaneState>>,
    /// When the cached states that served were fetched.
    cached_at: Option<OffsetDateTime>,
    states: Vec<PlaneState>,
    full: bool,
    started: OffsetDateTime,
    /// What the listing returned (a full sync: everything), raw JSON text
    /// included, for the sidecar.
    seen: Vec<MirrorIssue>,
    /// The mirror after this sync, without raw JSON.
    issues: Vec<MirrorIssue>,
    bad: Vec<String>,
}

/// An issue as listed, ready for the sidecar: its raw JSON as text, cut
/// to the fields asked for (a server that ignores `fields=` must not
/// bloat the mirror).
fn to_mirror(mut issue: Issue) -> MirrorIssue {
    if let Value::Object(m) = &mut issue.raw {
        m.retain(|k, _| ISSUE_FIELDS.contains(&k.as_str()));
    }
    MirrorIssue {
        sequence_id: issue.raw.get("sequence_id").and_then(Value::as_i64),
        raw: Some(issue.raw.to_string()),
        id: issue.id,
        state: issue.state,
        updated_at: issue.updated_at,
    }
}

fn light(i: &MirrorIssue) -> MirrorIssue {
    MirrorIssue {
        raw: None,
        ..i.clone()
    }
}

/// A configured number of seconds as a time span, saturating.
fn seconds(s: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1_000_000_000))
}

/// What a worker needs of `[plane]` to sync a mirror.
#[derive(Debug, Clone, Copy)]
struct Resync {
    /// `full_resync_s`.
    full_every: time::Duration,
    /// `resync_overlap_s`.
    overlap: time::Duration,
}

impl Resync {
    fn of(cfg: &Config) -> Resync {
        Resync {
            full_every: seconds(cfg.plane.full_resync_s),
            overlap: seconds(cfg.plane.resync_overlap_s),
        }
    }
}

/// The reads for one project; no sidecar access (runs on a worker).
/// `plane` counts this project's requests in `counter` (the scheduler
/// watches it to know what the reads in flight may still spend).
fn fetch(
    (plane, counter): (&Plane, &AtomicU64),
    resync: Resync,
    known: Known,
    now: OffsetDateTime,
) -> Fetched {
    let pid = known.project.plane_project_id.clone();
    let result = (|| {
        let (states, fresh_states, cached_at) = match known.states {
            Some((at, s)) => (s, None, Some(at)),
            None => {
                let s = plane.states(&pid).map_err(Blind::from)?;
                (s.clone(), Some(s), None)
            }
        };
        let mirror = known
            .mirror
            .filter(|m| now - m.last_full_at < resync.full_every);
        let (full, listed) = match &mirror {
            None => (true, plane.issues(&pid).map_err(Blind::from)?),
            Some(m) => {
                let boundary = m
                    .last_started_at
                    .checked_sub(resync.overlap)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                (
                    false,
                    plane.issues_since(&pid, boundary).map_err(Blind::from)?,
                )
            }
        };
        let mut bad = Vec::new();
        let seen: Vec<MirrorIssue> = listed
            .into_iter()
            .filter_map(|r| {
                r.map_err(|e| bad.push(format!("plane issue list: {e}")))
                    .ok()
            })
            .map(to_mirror)
            .collect();
        // By id: a listing may repeat an issue (pages shifting while they
        // are read); each issue is one unit.
        let mut merged: HashMap<String, MirrorIssue> = match mirror {
            None => HashMap::new(),
            Some(m) => m.issues.into_iter().map(|i| (i.id.clone(), i)).collect(),
        };
        for i in &seen {
            merged.insert(i.id.clone(), light(i));
        }
        let mut issues: Vec<MirrorIssue> = merged.into_values().collect();
        issues.sort_by(|a, b| {
            (a.sequence_id.unwrap_or(i64::MAX), &a.id)
                .cmp(&(b.sequence_id.unwrap_or(i64::MAX), &b.id))
        });
        Ok(Got::Sync(Sync {
            fresh_states,
            cached_at,
            states,
            full,
            started: now,
            seen,
            issues,
            bad,
        }))
    })();
    Fetched {
        project: known.project,
        result,
        requests: counter.load(Ordering::Relaxed),
        refresh: false,
    }
}

/// A refresh of a project's states alone (runs on a worker).
fn fetch_states((plane, counter): (&Plane, &AtomicU64), project: Project) -> Fetched {
    let result = plane
        .states(&project.plane_project_id)
        .map(Got::States)
        .map_err(Blind::from);
    Fetched {
        project,
        result,
        requests: counter.load(Ordering::Relaxed),
        refresh: true,
    }
}

/// Stores a project's sync (live; a dry-run keeps it in memory only) and
/// builds its view.
fn keep(
    store: &mut Store,
    cfg: &Config,
    now: OffsetDateTime,
    project: &Project,
    sync: Sync,
) -> anyhow::Result<ProjectView> {
    let pid = &project.plane_project_id;
    if let Store::Live(store) = store {
        if let Some(s) = &sync.fresh_states {
            store.store_states(pid, s, now)?;
        }
        store.store_mirror(pid, sync.full, sync.started, &sync.seen)?;
    }
    let names = merge_state_names(&cfg.plane.state_names, &project.state_names);
    let map = StateMap::build(&sync.states, &names);
    for w in &map.warnings {
        log::warn!("project {}: {w}", project.repo);
    }
    if let (Some(at), Store::Live(store)) = (sync.cached_at, &mut *store)
        && names_new_state(&map, at, &sync.seen)
    {
        // States changed in Plane since they were cached: the next read
        // fetches them whatever their age (docs/plane.md, "the fair
        // schedule").
        log::info!(
            "project {}: an issue is in a state the cached states lack; they are refreshed on the next read",
            project.repo
        );
        store.outdate_states(pid)?;
    }
    let by_id = sync
        .issues
        .iter()
        .enumerate()
        .map(|(i, x)| (x.id.clone(), i))
        .collect();
    Ok(ProjectView {
        states: Arc::new(map),
        issues: sync.issues,
        by_id,
        bad: sync.bad,
    })
}

impl PlaneReads {
    pub fn new(cfg: &Config) -> PlaneReads {
        PlaneReads {
            jobs: Jobs::new(cfg),
            awaited: HashSet::new(),
            ended: 0,
            views: HashMap::new(),
            requests: HashMap::new(),
            wanted: BTreeSet::new(),
            last_synced: HashMap::new(),
        }
    }

    /// Whether the project's reads are queued or running.
    pub fn awaits(&self, pid: &str) -> bool {
        self.awaited.contains(pid)
    }

    /// How many reads have ended this tick.
    pub fn ended(&self) -> u64 {
        self.ended
    }

    /// The project's view as this tick's reads left it. A project not
    /// here was not reached (the deadline) or is still being read.
    pub fn view(&self, project: &Project) -> Result<Arc<ProjectView>, Blind> {
        self.views
            .get(&project.plane_project_id)
            .cloned()
            .unwrap_or_else(|| Err(Blind::not_reached()))
    }

    /// The Plane requests the project's reads cost so far.
    pub fn requests(&self, pid: &str) -> u64 {
        self.requests.get(pid).copied().unwrap_or(0)
    }

    /// Whether the project was neither read nor queued yet this tick.
    fn untouched(&self, pid: &str) -> bool {
        !self.views.contains_key(pid) && !self.awaits(pid)
    }

    /// Plans in the fair order, then the refreshes of stale states: the
    /// projects are wanted (with their last successful sync) and awaited
    /// until their reads end.
    fn queue(&mut self, plans: Vec<Plan>, refreshes: Vec<String>) {
        for p in &plans {
            let pid = &p.project.plane_project_id;
            self.last_synced.insert(pid.clone(), p.last_synced);
            self.wanted.insert(pid.clone());
            self.awaited.insert(pid.clone());
        }
        self.jobs.queue(plans, refreshes);
    }

    /// What a job left: its requests counted to its project and, when it
    /// was a read, the project's view (a successful one is its latest
    /// sync, at `now`).
    fn record(&mut self, kept: Kept, now: OffsetDateTime) {
        let Kept {
            pid,
            view,
            requests,
        } = kept;
        *self.requests.entry(pid.clone()).or_default() += requests;
        let Some(view) = view else { return };
        self.awaited.remove(&pid);
        self.ended += 1;
        if view.is_ok() {
            self.last_synced.insert(pid.clone(), Some(now));
        }
        self.views.insert(pid, view.map(Arc::new));
    }

    /// Once per tick, after the passes: each project's requests and last
    /// successful sync into its report entry, and one warning when projects were left
    /// unread. Returns how stale the Plane side is.
    pub fn finish(&self, pass: &mut PlanePass, now: OffsetDateTime) -> Staleness {
        for p in &mut pass.projects {
            // The refreshes of stale states run after the pass: a project's
            // requests count its refresh.
            if let Some(n) = self.requests.get(&p.plane_project_id) {
                p.requests = *n;
            }
            p.last_synced_at = self
                .last_synced
                .get(&p.plane_project_id)
                .copied()
                .flatten()
                .map(crate::core::timestamp::format);
        }
        let s = self.staleness(now);
        if s.unread > 0 {
            let oldest = match s.oldest_sync_age_s {
                Some(age) => format!("the oldest sync is {age} s old"),
                None => "none of them was ever synced".into(),
            };
            log::warn!(
                "{} of {} Plane projects not read this tick (request budget, deadline or errors); {oldest}",
                s.unread,
                self.wanted.len()
            );
        }
        s
    }

    /// The projects this tick meant to read and did not, and the oldest
    /// last successful sync among them all (never-synced ones aside: they
    /// count as unread).
    fn staleness(&self, now: OffsetDateTime) -> Staleness {
        let mut unread = 0;
        let mut oldest: Option<OffsetDateTime> = None;
        for pid in &self.wanted {
            if !matches!(self.views.get(pid), Some(Ok(_))) {
                unread += 1;
            }
            if let Some(Some(at)) = self.last_synced.get(pid) {
                oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
            }
        }
        Staleness {
            unread,
            oldest_sync_at: oldest,
            oldest_sync_age_s: oldest.map(|o| (now - o).whole_seconds().max(0)),
        }
    }
}

impl Tick<'_> {
    /// Starts the reads of the projects of `projects` not yet read nor
    /// queued this tick, in the background: oldest successful sync first
    /// (never synced first), up to `[plane] concurrency` at once, while
    /// Plane's budget above the reserve lasts (docs/performance.md, "fair
    /// budget"): a project whose reads no longer fit in what is left is
    /// deferred, and a later one whose single request still fits is read;
    /// stale states are refreshed from what the reads leave over. What they
    /// bring back is written to the sidecar (live) in one transaction per
    /// project, by this thread, as the passes pump them (`fetch/reads.rs`).
    pub(super) fn start_reads(&mut self, projects: &[Project]) -> anyhow::Result<()> {
        let mut todo: Vec<&Project> = Vec::new();
        for p in projects {
            let pid = &p.plane_project_id;
            if self.reads.untouched(pid) && !todo.iter().any(|q| q.plane_project_id == *pid) {
                todo.push(p);
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let ttl = seconds(self.cfg.state.states_cache_ttl_s);
        let full_every = seconds(self.cfg.plane.full_resync_s);
        let full_per_page = self.peers.plane.full_per_page();
        let syncs = match self.store.reader() {
            Some(s) => s.mirror_syncs()?,
            None => HashMap::new(),
        };
        let mut plans = Vec::with_capacity(todo.len());
        for p in todo {
            let pid = &p.plane_project_id;
            let sync = syncs.get(pid);
            let states_at = match self.store.reader() {
                Some(s) => s.states_fetched_at(pid)?,
                None => None,
            };
            let hard = hard_bound(pid, ttl, full_every);
            let states = states_age(states_at, self.clock.now, ttl, hard);
            let full = sync.is_none_or(|m| full_every <= self.clock.now - m.last_full_at);
            plans.push(Plan {
                project: p.clone(),
                last_synced: sync.map(|m| m.last_started_at),
                states_at,
                states,
                cost: cost(
                    states != StatesAge::Expired,
                    full,
                    sync.map_or(0, |m| m.issues),
                    full_per_page,
                ),
            });
        }
        order(&mut plans);
        let refreshes = refresh_queue(&plans);
        self.reads.queue(plans, refreshes);
        self.pump_reads()
    }
}

/// What a job left for the tick: a project's view (None for a states
/// refresh alone) and the requests it made.
struct Kept {
    pid: String,
    view: Option<Result<ProjectView, Blind>>,
    requests: u64,
}

/// One job's result as it comes back: stored (live) and, for a read,
/// turned into its view.
fn take(f: Fetched, store: &mut Store, cfg: &Config, now: OffsetDateTime) -> anyhow::Result<Kept> {
    let pid = f.project.plane_project_id.clone();
    let view = match f.result {
        Ok(Got::Sync(sync)) => Some(Ok(keep(store, cfg, now, &f.project, sync)?)),
        Ok(Got::States(states)) => {
            if let Store::Live(s) = store {
                s.store_states(&pid, &states, now)?;
            }
            None
        }
        // The project was read with its cached states: a refresh that
        // failed leaves them as they were.
        Err(b) if f.refresh => {
            log::debug!(
                "project {}: states not refreshed: {}",
                f.project.repo,
                b.message
            );
            None
        }
        Err(b) => Some(Err(b)),
    };
    Ok(Kept {
        pid,
        view,
        requests: f.requests,
    })
}

/// How stale the Plane side of this tick is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Staleness {
    pub unread: u64,
    pub oldest_sync_at: Option<OffsetDateTime>,
    pub oldest_sync_age_s: Option<i64>,
}
