//! What a tick knows of each Plane project: its states (cached for
//! `states_cache_ttl_s`, DESIGN §6.4) and its issues (the mirror, synced in
//! full every `full_resync_s` and incrementally in between, §6.5). Reads of
//! different projects run on up to `[plane] concurrency` threads; what they
//! bring back is written to the sidecar by the tick's own thread.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use time::OffsetDateTime;

use super::{Blind, Store, Tick};
use crate::config::{Config, Project};
use crate::peers::plane::{Issue, Plane};
use crate::sidecar::{Mirror, MirrorIssue};
use crate::states::{PlaneState, StateMap, merge_state_names};

/// One project as this tick sees it.
#[derive(Debug)]
pub(crate) struct ProjectView {
    pub states: Arc<StateMap>,
    /// Every issue of the project, by sequence id.
    pub issues: Vec<Issue>,
    by_id: HashMap<String, usize>,
    /// Listed entries that are not issues (no id …), for the report.
    pub bad: Vec<String>,
}

impl ProjectView {
    pub fn issue(&self, id: &str) -> Option<&Issue> {
        self.by_id.get(id).map(|i| &self.issues[*i])
    }
}

/// What the sidecar already holds for a project.
struct Known {
    project: Project,
    states: Option<Vec<PlaneState>>,
    mirror: Option<Mirror>,
}

/// What one project's reads brought back.
struct Fetched {
    project: Project,
    result: Result<Sync, Blind>,
    requests: u64,
}

struct Sync {
    /// Fresh from Plane (to be cached), or None when the cache served.
    fresh_states: Option<Vec<PlaneState>>,
    states: Vec<PlaneState>,
    full: bool,
    started: OffsetDateTime,
    /// What an incremental listing returned (empty on a full sync, whose
    /// listing is `issues`).
    seen: Vec<Issue>,
    /// The mirror after this sync.
    issues: Vec<Issue>,
    bad: Vec<String>,
}

/// Fields Plane returns that a replay does not need and the mirror should
/// not carry (they can be large).
const HEAVY_FIELDS: [&str; 3] = ["description_html", "description_binary", "description"];

fn slim(mut issue: Issue) -> Issue {
    if let Value::Object(m) = &mut issue.raw {
        for f in HEAVY_FIELDS {
            m.remove(f);
        }
    }
    issue
}

fn sequence(i: &Issue) -> (i64, String) {
    (
        i.raw
            .get("sequence_id")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX),
        i.id.clone(),
    )
}

fn from_mirror(m: &MirrorIssue) -> Issue {
    Issue {
        id: m.id.clone(),
        state: m.state.clone(),
        updated_at: m.updated_at.clone(),
        raw: m.raw.clone(),
    }
}

fn to_mirror(i: &Issue) -> MirrorIssue {
    MirrorIssue {
        id: i.id.clone(),
        state: i.state.clone(),
        updated_at: i.updated_at.clone(),
        raw: i.raw.clone(),
    }
}

/// The reads for one project; no sidecar access (runs on a worker).
fn fetch(plane: &Plane, cfg: &Config, known: Known, now: OffsetDateTime) -> Fetched {
    let (plane, counter) = plane.counting();
    let pid = known.project.plane_project_id.clone();
    let result = (|| {
        let (states, fresh_states) = match known.states {
            Some(s) => (s, None),
            None => {
                let s = plane.states(&pid).map_err(Blind::from)?;
                (s.clone(), Some(s))
            }
        };
        let full_every = time::Duration::seconds(cfg.plane.full_resync_s as i64);
        let mirror = known.mirror.filter(|m| now - m.last_full_at < full_every);
        let (full, listed) = match &mirror {
            None => (true, plane.issues(&pid).map_err(Blind::from)?),
            Some(m) => {
                let boundary =
                    m.last_started_at - time::Duration::seconds(cfg.plane.resync_overlap_s as i64);
                (
                    false,
                    plane.issues_since(&pid, boundary).map_err(Blind::from)?,
                )
            }
        };
        let mut bad = Vec::new();
        let seen: Vec<Issue> = listed
            .into_iter()
            .filter_map(|r| {
                r.map_err(|e| bad.push(format!("plane issue list: {e}")))
                    .ok()
            })
            .map(slim)
            .collect();
        // A full sync replaces the mirror with the listing: `issues` is
        // `seen`, not a copy of it (50 × 400 issues held twice doubled the
        // cold tick's peak heap).
        let (seen, mut issues): (Vec<Issue>, Vec<Issue>) = match &mirror {
            None => (Vec::new(), seen),
            Some(m) => {
                let mut merged: HashMap<String, Issue> = m
                    .issues
                    .iter()
                    .map(|i| (i.id.clone(), from_mirror(i)))
                    .collect();
                for i in &seen {
                    merged.insert(i.id.clone(), i.clone());
                }
                (seen, merged.into_values().collect())
            }
        };
        issues.sort_by_key(sequence);
        Ok(Sync {
            fresh_states,
            states,
            full,
            started: now,
            seen,
            issues,
            bad,
        })
    })();
    Fetched {
        project: known.project,
        result,
        requests: counter.load(Ordering::Relaxed),
    }
}

impl Tick<'_> {
    /// The project's view, fetching it now if no prefetch did.
    pub(super) fn project_view(&mut self, project: &Project) -> Result<Arc<ProjectView>, Blind> {
        if !self.projects.contains_key(&project.plane_project_id) {
            self.prefetch(std::slice::from_ref(project))
                .map_err(|e| Blind {
                    cause: crate::gate::Unresolved::ReadFailed,
                    message: format!("{e:#}"),
                })?;
        }
        self.projects
            .get(&project.plane_project_id)
            .cloned()
            .unwrap_or_else(|| Err(Blind::not_reached()))
    }

    /// Reads every project of `projects` not yet known this tick, up to
    /// `[plane] concurrency` at once; writes what they brought back to the
    /// sidecar (live) in one transaction per project.
    pub(super) fn prefetch(&mut self, projects: &[Project]) -> anyhow::Result<()> {
        let ttl = time::Duration::seconds(self.cfg.state.states_cache_ttl_s as i64);
        let mut todo = Vec::new();
        for p in projects {
            if self.projects.contains_key(&p.plane_project_id)
                || todo.iter().any(|k: &Known| k.project.repo == p.repo)
            {
                continue;
            }
            let (states, mirror) = match self.store.reader() {
                Some(s) => (
                    s.cached_states(&p.plane_project_id)?
                        .filter(|(at, _)| self.now - *at < ttl)
                        .map(|(_, st)| st),
                    s.mirror(&p.plane_project_id)?,
                ),
                None => (None, None),
            };
            todo.push(Known {
                project: p.clone(),
                states,
                mirror,
            });
        }
        if todo.is_empty() {
            return Ok(());
        }
        let workers = (self.cfg.plane.concurrency.max(1) as usize).min(todo.len());
        let deadline = self.deadline;
        let (plane, cfg, now) = (&self.plane, self.cfg, self.now);
        let order: Vec<String> = todo
            .iter()
            .map(|k| k.project.plane_project_id.clone())
            .collect();
        let queue = Mutex::new(todo.into_iter());
        let done = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(known) = next else { break };
                        // No new project once the deadline passed.
                        if Instant::now() >= deadline {
                            continue;
                        }
                        let f = fetch(plane, cfg, known, now);
                        if let Ok(mut d) = done.lock() {
                            d.push(f);
                        }
                    }
                });
            }
        });
        let mut done = done.into_inner().unwrap_or_default();
        done.sort_by_key(|f| order.iter().position(|o| *o == f.project.plane_project_id));
        for f in done {
            let pid = f.project.plane_project_id.clone();
            self.project_requests.insert(pid.clone(), f.requests);
            let view = match f.result {
                Ok(sync) => Ok(Arc::new(self.keep(&f.project, sync)?)),
                Err(b) => Err(b),
            };
            self.projects.insert(pid, view);
        }
        Ok(())
    }

    /// Stores a project's sync (live) or keeps it for this dry-run, and
    /// builds its view.
    fn keep(&mut self, project: &Project, sync: Sync) -> anyhow::Result<ProjectView> {
        let pid = &project.plane_project_id;
        match &mut self.store {
            Store::Live(store) => {
                if let Some(s) = &sync.fresh_states {
                    store.store_states(pid, s, self.now)?;
                }
                let seen = if sync.full { &sync.issues } else { &sync.seen };
                let seen: Vec<MirrorIssue> = seen.iter().map(to_mirror).collect();
                store.store_mirror(pid, sync.full, sync.started, &seen)?;
            }
            Store::ReadOnly(_) => {}
        }
        let names = merge_state_names(&self.cfg.plane.state_names, &project.state_names);
        let map = StateMap::build(&sync.states, &names);
        for w in &map.warnings {
            log::warn!("project {}: {w}", project.repo);
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
}
