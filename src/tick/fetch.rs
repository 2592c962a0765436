//! What a tick knows of each Plane project: its states (cached for
//! `states_cache_ttl_s`) and its issues (the mirror, synced in full every
//! `full_resync_s` and incrementally in between; docs/plane.md). Reads of
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
use crate::core::states::{PlaneState, StateMap, merge_state_names};
use crate::peers::plane::{ISSUE_FIELDS, Issue, Plane};
use crate::store::{Mirror, MirrorIssue};

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
        let full_every = seconds(cfg.plane.full_resync_s);
        let mirror = known.mirror.filter(|m| now - m.last_full_at < full_every);
        let (full, listed) = match &mirror {
            None => (true, plane.issues(&pid).map_err(Blind::from)?),
            Some(m) => {
                let boundary = m
                    .last_started_at
                    .checked_sub(seconds(cfg.plane.resync_overlap_s))
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

impl Tick<'_> {
    /// The project's view as this tick's prefetch left it: every pass
    /// fetches what it will ask about before it decides, so a project not
    /// here was not reached (the deadline).
    pub(super) fn project_view(&self, project: &Project) -> Result<Arc<ProjectView>, Blind> {
        self.projects
            .get(&project.plane_project_id)
            .cloned()
            .unwrap_or_else(|| Err(Blind::not_reached()))
    }

    /// Reads every project of `projects` not yet known this tick, up to
    /// `[plane] concurrency` at once; writes what they brought back to the
    /// sidecar (live) in one transaction per project.
    pub(super) fn prefetch(&mut self, projects: &[Project]) -> anyhow::Result<()> {
        let ttl = seconds(self.cfg.state.states_cache_ttl_s);
        let mut todo = Vec::new();
        for p in projects {
            if self.projects.contains_key(&p.plane_project_id)
                || todo
                    .iter()
                    .any(|k: &Known| k.project.plane_project_id == p.plane_project_id)
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
        let (plane, cfg, now, deadline) = (&self.plane, self.cfg, self.now, self.deadline);
        let store = &mut self.store;
        let queue = Mutex::new(todo.into_iter());
        let (tx, rx) = std::sync::mpsc::channel::<Fetched>();
        // Each result is stored and slimmed as it arrives, so that no more
        // than `workers` projects' listings are held at once.
        let mut kept: Vec<(String, Result<ProjectView, Blind>, u64)> = Vec::new();
        let mut failure: Option<anyhow::Error> = None;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let queue = &queue;
                scope.spawn(move || {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(known) = next else { break };
                        // No new project once the deadline passed.
                        if Instant::now() >= deadline {
                            continue;
                        }
                        if tx.send(fetch(plane, cfg, known, now)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for f in rx {
                let pid = f.project.plane_project_id.clone();
                let view = match f.result {
                    Ok(sync) if failure.is_none() => {
                        match keep(store, cfg, now, &f.project, sync) {
                            Ok(v) => Ok(v),
                            Err(e) => {
                                failure = Some(e);
                                continue;
                            }
                        }
                    }
                    Ok(_) => continue,
                    Err(b) => Err(b),
                };
                kept.push((pid, view, f.requests));
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        for (pid, view, requests) in kept {
            self.project_requests.insert(pid.clone(), requests);
            self.projects.insert(pid, view.map(Arc::new));
        }
        Ok(())
    }
}
