//! `reconcile check`: validate the configuration, look at the
//! sidecar, probe the orchestrator, Plane and Telegram read-only, show how
//! each project's Plane states map to logical keys, and list the tasks that
//! can never be resolved. `--offline`: config and sidecar only, no secret
//! read, no peer contacted.
//!
//! Read-only everywhere: the sidecar is opened read-only and never created;
//! the lock is probed on an existing lock file only (opening it read-only),
//! so a `check` run as root never leaves a root-owned lock file behind.
//! Exit 0 when every probe passed, 1 otherwise; an invalid config is 78.

use std::fmt::Write as _;
use std::fs::TryLockError;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use super::Context;
use crate::cli::Format;
use crate::config::Config;
use crate::core::states::{Source, StateKey, StateMap, merge_state_names};
use crate::peers::http::{Client, Peer};
use crate::peers::orchestrator::{Orchestrator, Task};
use crate::peers::plane::{Plane, PlaneFailure, Refusal};
use crate::peers::telegram::Telegram;
use crate::store::{self, SidecarReader};

/// The keys the Plane pass acts on: a project without them cannot start, resume or
/// apply a verdict.
const TRIGGERS: [StateKey; 3] = [StateKey::ToAnalyse, StateKey::Approved, StateKey::Rejected];

#[derive(Debug, Serialize)]
pub struct Probe {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct StateRow {
    pub key: &'static str,
    pub state: Option<String>,
    pub uuid: Option<String>,
    /// "named" | "folded" | "alias" | "missing".
    pub source: &'static str,
    /// The key it borrows its state from (source "alias").
    pub alias_of: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ProjectCheck {
    pub repo: String,
    pub plane_project_id: String,
    pub enabled: bool,
    pub error: Option<String>,
    pub states: Vec<StateRow>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Unresolvable {
    pub task_id: i64,
    pub work_item_id: Option<String>,
    pub repo: String,
    pub reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub offline: bool,
    pub ok: bool,
    pub probes: Vec<Probe>,
    pub warnings: Vec<String>,
    pub projects: Vec<ProjectCheck>,
    pub unresolvable: Vec<Unresolvable>,
}

pub fn run(ctx: &Context, offline: bool) -> anyhow::Result<ExitCode> {
    let cfg = ctx.config_unlogged(!offline)?;
    let report = check(&cfg, &ctx.config_path, offline);
    match ctx.format {
        Format::Json => super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )),
        Format::Text => super::emit(&text(&report)),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn check(cfg: &Config, config_path: &Path, offline: bool) -> CheckReport {
    let mut probes = vec![Probe {
        name: "config",
        ok: true,
        detail: format!(
            "{}: valid; {} project(s), telegram {}",
            config_path.display(),
            cfg.projects.len(),
            if cfg.telegram.is_some() {
                "configured"
            } else {
                "not configured (no messages)"
            }
        ),
    }];
    probes.push(sidecar_probe(&cfg.state.path));
    probes.push(lock_probe(&cfg.state.path));
    let mut report = CheckReport {
        offline,
        ok: true,
        probes,
        warnings: cfg.warnings.clone(),
        projects: Vec::new(),
        unresolvable: Vec::new(),
    };
    if offline {
        report.projects = cfg
            .projects
            .iter()
            .map(|p| ProjectCheck {
                repo: p.repo.clone(),
                plane_project_id: p.plane_project_id.clone(),
                enabled: p.enabled,
                error: None,
                states: Vec::new(),
                warnings: Vec::new(),
            })
            .collect();
    } else {
        online(cfg, &mut report);
    }
    report.ok = report.probes.iter().all(|p| p.ok);
    report
}

fn online(cfg: &Config, report: &mut CheckReport) {
    let secrets = cfg.secrets();

    // Orchestrator: the task list (the token is accepted when it answers).
    let orchestrator = Orchestrator::new(
        &cfg.orchestrator,
        Client::new(
            Peer::Orchestrator,
            cfg.orchestrator.timeout,
            secrets.clone(),
        ),
    );
    let tasks: Option<Vec<Task>> = match orchestrator.tasks() {
        Ok(list) => {
            let total = list.len();
            let bad: Vec<String> = list
                .iter()
                .filter_map(|t| t.as_ref().err())
                .map(|b| match b.id {
                    Some(id) => format!("task {id}: {}", b.error),
                    None => b.error.clone(),
                })
                .collect();
            report.probes.push(Probe {
                name: "orchestrator",
                ok: true,
                detail: format!(
                    "reachable, token accepted; {total} task(s) not done{}",
                    if bad.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unreadable", bad.len())
                    }
                ),
            });
            report.warnings.extend(bad);
            Some(list.into_iter().filter_map(Result::ok).collect())
        }
        Err(e) => {
            report.probes.push(Probe {
                name: "orchestrator",
                ok: false,
                detail: e.to_string(),
            });
            None
        }
    };
    // Its read-only endpoints answer as docs/orchestrator-api.yaml says.
    if let Some(tasks) = &tasks {
        let (ok, detail) = match super::conformance::check(&orchestrator, tasks) {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        report.probes.push(Probe {
            name: "orchestrator API",
            ok,
            detail,
        });
    }

    // Plane: each project's states, mapped to logical keys.
    let plane = Plane::new(
        &cfg.plane,
        Client::new(Peer::Plane, cfg.plane.timeout, secrets.clone()),
    );
    let mut failures = Vec::new();
    let mut probed = 0;
    for p in &cfg.projects {
        let mut pc = ProjectCheck {
            repo: p.repo.clone(),
            plane_project_id: p.plane_project_id.clone(),
            enabled: p.enabled,
            error: None,
            states: Vec::new(),
            warnings: Vec::new(),
        };
        if p.enabled {
            probed += 1;
            match plane.states(&p.plane_project_id) {
                Ok(states) => {
                    let names = merge_state_names(&cfg.plane.state_names, &p.state_names);
                    let map = StateMap::build(&states, &names);
                    pc.states = state_rows(&map);
                    pc.warnings = map.warnings.clone();
                    for key in TRIGGERS {
                        if map.uuid(key).is_none() {
                            pc.warnings.push(format!(
                                "no state for `{key}`: the Plane pass ignores that trigger in this project"
                            ));
                        }
                    }
                }
                Err(e) => {
                    let refusal = match &e {
                        PlaneFailure::Failed(pe) => Refusal::of(pe),
                        _ => None,
                    };
                    let what = refusal.map_or_else(|| e.to_string(), |r| r.label().to_string());
                    failures.push((format!("project {}: {what}", p.repo), refusal));
                    pc.error = Some(e.to_string());
                }
            }
        }
        report.projects.push(pc);
    }
    report.probes.push(if failures.is_empty() {
        Probe {
            name: "plane",
            ok: true,
            detail: format!("reachable, key accepted; states of {probed} enabled project(s) read"),
        }
    } else {
        Probe {
            name: "plane",
            ok: false,
            detail: plane_failures(&failures, probed),
        }
    });

    // Telegram: getMe validates the token; nothing is sent.
    match &cfg.telegram {
        None => report.probes.push(Probe {
            name: "telegram",
            ok: true,
            detail: "not configured: no messages are sent".into(),
        }),
        Some(t) => {
            let tg = Telegram::new(t, Client::new(Peer::Telegram, t.timeout, secrets));
            report.probes.push(match tg.get_me() {
                Ok(()) => Probe {
                    name: "telegram",
                    ok: true,
                    detail: "token accepted (getMe); nothing sent".into(),
                },
                Err(e) => Probe {
                    name: "telegram",
                    ok: false,
                    detail: e.to_string(),
                },
            });
        }
    }

    if let Some(tasks) = tasks {
        report.unresolvable = unresolvable(cfg, &tasks);
    }
}

/// The Plane probe's failures, each likely cause and its fix said once:
/// a key Plane rejects fails every project alike, so it is one line.
fn plane_failures(failures: &[(String, Option<Refusal>)], probed: usize) -> String {
    let key_level = |r: &Option<Refusal>| matches!(r, Some(Refusal::NoKey | Refusal::KeyRejected));
    if let Some((_, Some(r))) = failures.first()
        && failures.len() == probed
        && failures.iter().all(|(_, x)| key_level(x) && x == &Some(*r))
    {
        return format!("{} for every project; {}", r.label(), r.hint());
    }
    let mut parts: Vec<String> = failures.iter().map(|(f, _)| f.clone()).collect();
    let mut hints: Vec<&str> = Vec::new();
    for r in failures.iter().filter_map(|(_, r)| *r) {
        if !hints.contains(&r.hint()) {
            hints.push(r.hint());
        }
    }
    parts.extend(hints.into_iter().map(str::to_string));
    parts.join("; ")
}

/// Tasks the gate pass can never place in Plane: their repo is not in
/// [[projects]], or they have no Plane issue.
pub fn unresolvable(cfg: &Config, tasks: &[Task]) -> Vec<Unresolvable> {
    tasks
        .iter()
        .filter(|t| t.stage != "done" && t.stage != "cancelled")
        .filter_map(|t| {
            let reason = if cfg.project_by_repo(&t.repo).is_none() {
                "repo not configured in [[projects]]"
            } else if t.issue_id().is_none() {
                "no plane_issue_id"
            } else {
                return None;
            };
            Some(Unresolvable {
                task_id: t.id,
                work_item_id: t.work_item().map(str::to_string),
                repo: t.repo.clone(),
                reason,
            })
        })
        .collect()
}

pub fn state_rows(map: &StateMap) -> Vec<StateRow> {
    StateKey::ALL
        .into_iter()
        .map(|k| (k, k.as_str()))
        .map(|(k, key)| match map.resolved(k) {
            Some(r) => StateRow {
                key,
                state: Some(r.name.clone()),
                uuid: Some(r.uuid.clone()),
                source: match r.source {
                    Source::Named => "named",
                    Source::Folded => "folded",
                    Source::Alias(_) => "alias",
                },
                alias_of: match r.source {
                    Source::Alias(of) => Some(of.as_str()),
                    _ => None,
                },
            },
            None => StateRow {
                key,
                state: None,
                uuid: None,
                source: "missing",
                alias_of: None,
            },
        })
        .collect()
}

fn sidecar_probe(path: &Path) -> Probe {
    match SidecarReader::open(path) {
        Ok(Some(s)) => match s.snapshot() {
            Ok(snap) => Probe {
                name: "sidecar",
                ok: true,
                detail: format!(
                    "{}: readable; {} tick(s), {} message(s) queued",
                    path.display(),
                    snap.ticks_total,
                    snap.notifications_pending
                ),
            },
            Err(e) => Probe {
                name: "sidecar",
                ok: false,
                detail: e.to_string(),
            },
        },
        Ok(None) => match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Probe {
                name: "sidecar",
                ok: false,
                detail: format!(
                    "{}: absent, and its directory {} does not exist",
                    path.display(),
                    dir.display()
                ),
            },
            _ => Probe {
                name: "sidecar",
                ok: true,
                detail: format!("{}: absent; the first live tick creates it", path.display()),
            },
        },
        Err(e) => Probe {
            name: "sidecar",
            ok: false,
            detail: e.to_string(),
        },
    }
}

fn lock_probe(state_path: &Path) -> Probe {
    let path = store::lock_path(state_path);
    // A FIFO would block the open below for ever.
    if let Err(e) = store::refuse_special(&path) {
        return Probe {
            name: "lock",
            ok: false,
            detail: e.to_string(),
        };
    }
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Probe {
                name: "lock",
                ok: true,
                detail: format!("{}: absent; the first live tick creates it", path.display()),
            };
        }
        Err(e) => {
            return Probe {
                name: "lock",
                ok: false,
                detail: format!("{}: cannot open: {e}", path.display()),
            };
        }
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Probe {
                name: "lock",
                ok: true,
                detail: format!("{}: free (taken and released)", path.display()),
            }
        }
        Err(TryLockError::WouldBlock) => Probe {
            name: "lock",
            ok: true,
            detail: format!("{}: held by a running tick", path.display()),
        },
        Err(TryLockError::Error(e)) => Probe {
            name: "lock",
            ok: false,
            detail: format!("{}: cannot lock: {e}", path.display()),
        },
    }
}

pub fn text(r: &CheckReport) -> String {
    use crate::output::escape as esc;
    let mut out = String::new();
    for p in &r.probes {
        let _ = writeln!(
            out,
            "{:<4}  {:<12}  {}",
            if p.ok { "ok" } else { "FAIL" },
            p.name,
            esc(&p.detail)
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {}", esc(w));
    }
    for p in &r.projects {
        let _ = writeln!(out);
        let _ = write!(out, "project {} ({})", p.repo, p.plane_project_id);
        if !p.enabled {
            let _ = writeln!(out, ": disabled, not probed");
            continue;
        }
        if r.offline {
            let _ = writeln!(out, ": offline, states not read");
            continue;
        }
        if let Some(e) = &p.error {
            let _ = writeln!(out, ": FAIL {}", esc(e));
            continue;
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<16}  {:<24}  {:<36}  note",
            "key", "state", "uuid"
        );
        for s in &p.states {
            let note = match (s.source, s.alias_of) {
                ("alias", Some(of)) => format!("alias of {of}"),
                ("missing", _) => "missing".to_string(),
                ("named", _) => "state_names".to_string(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<16}  {:<24}  {:<36}  {note}",
                s.key,
                esc(s.state.as_deref().unwrap_or("-")),
                esc(s.uuid.as_deref().unwrap_or("-")),
            );
        }
        for w in &p.warnings {
            let _ = writeln!(out, "  warning: {}", esc(w));
        }
    }
    if !r.offline {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "tasks that can never be resolved: {}",
            r.unresolvable.len()
        );
        for u in &r.unresolvable {
            let _ = write!(out, "  task {}", u.task_id);
            if let Some(w) = &u.work_item_id {
                let _ = write!(out, " ({w})");
            }
            let _ = writeln!(out, " repo {:?}: {}", u.repo, u.reason);
        }
    }
    let failed = r.probes.iter().filter(|p| !p.ok).count();
    let _ = writeln!(out);
    if failed == 0 {
        let _ = writeln!(out, "check: all {} probes passed", r.probes.len());
    } else {
        let _ = writeln!(out, "check: {failed} of {} probes failed", r.probes.len());
    }
    out
}
