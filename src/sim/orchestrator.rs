//! The simulated orchestrator: its reconcile API (docs/orchestrator-api.md)
//! and its Plane webhook route with a small stage engine, so a replay has
//! the effect the real handlers would have.

use serde_json::{Value, json};

use super::http::{Reply, Request};
use super::scenario::{ReplayEffect, SimTask};
use super::world::{Target, World, fold, webhook_signature};

pub(super) fn orchestrator(w: &mut World, t: &Target, req: &Request) -> Reply {
    if matches!(t, Target::Webhook) {
        return webhook(w, req);
    }
    let expected = format!("Bearer {}", w.orchestrator_token);
    if req.header("authorization") != Some(expected.as_str()) {
        return Reply::json(401, &json!({"detail": "Not authenticated"}))
            .with_header("WWW-Authenticate", "Bearer".into());
    }
    match t {
        Target::Tasks => {
            let tasks: Vec<Value> = w
                .tasks
                .iter()
                .filter(|t| t.stage != "done")
                .flat_map(|t| {
                    let n = if w.listed_twice.contains(&t.id) { 2 } else { 1 };
                    std::iter::repeat_n(w.task_json(t), n)
                })
                .collect();
            Reply::json(200, &json!({ "tasks": tasks }))
        }
        Target::TaskByIssue(u) => {
            let tasks: Vec<Value> = w
                .tasks
                .iter()
                .filter(|t| t.plane_issue_id.as_deref() == Some(u.as_str()))
                .take(1)
                .map(|t| w.task_json(t))
                .collect();
            Reply::json(200, &json!({ "tasks": tasks }))
        }
        Target::Gate(id) => {
            let Some(t) = id.parse::<i64>().ok().and_then(|id| w.task_mut(id)) else {
                return Reply::json(404, &json!({"detail": "task not found"}));
            };
            let t = t.clone();
            Reply::json(
                200,
                &json!({"task_id": t.id, "stage": t.stage, "gate": t.gate,
                        "passed": t.gate.is_some() && t.gate_passed, "detail": gate_detail(&t)}),
            )
        }
        Target::Advance(id) => advance(w, id, req),
        _ => Reply::json(404, &json!({"detail": "Not Found"})),
    }
}

fn gate_detail(t: &SimTask) -> String {
    match (&t.gate, &t.gate_detail) {
        (None, _) => "stage has no gate".into(),
        (_, Some(d)) => d.clone(),
        (Some(g), None) if t.gate_passed => format!("{g} passed (simulated)"),
        (Some(g), None) => format!("{g} failing (simulated)"),
    }
}

fn advance(w: &mut World, id: &str, req: &Request) -> Reply {
    let expected = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("expected_stage")?.as_str().map(String::from));
    let Some(expected) = expected else {
        return Reply::json(
            422,
            &json!({"detail": "body must be {\"expected_stage\": <string>}"}),
        );
    };
    let now = w.now_ago();
    let stages = w.stages.clone();
    let Some(t) = id.parse::<i64>().ok().and_then(|id| w.task_mut(id)) else {
        return Reply::json(404, &json!({"detail": "task not found"}));
    };
    if t.stage != expected {
        return Reply::json(409, &json!({"advanced": false, "detail": "stage changed"}));
    }
    if t.active_job {
        return Reply::json(409, &json!({"advanced": false, "detail": "active job"}));
    }
    let before = t.stage.clone();
    let not = |detail: String| {
        json!({"task_id": t.id, "advanced": false, "stage_before": before,
               "stage_after": before, "detail": detail})
    };
    if t.gate.is_none() || !t.gate_passed {
        return Reply::json(200, &not(format!("gate red: {}", gate_detail(t))));
    }
    let next = stages
        .iter()
        .position(|s| *s == before)
        .and_then(|i| stages.get(i + 1));
    let Some(next) = next else {
        return Reply::json(200, &not("no next stage".into()));
    };
    let detail = format!("gate green: {}", gate_detail(t));
    t.stage = next.clone();
    t.updated_ago_s = now;
    t.gate_passed = false;
    Reply::json(
        200,
        &json!({"task_id": t.id, "advanced": true, "stage_before": before,
                "stage_after": next, "detail": detail}),
    )
}

fn webhook(w: &mut World, req: &Request) -> Reply {
    if let Some(secret) = &w.webhook_secret {
        let want = webhook_signature(secret, &req.body);
        if req.header("x-plane-signature") != Some(want.as_str()) {
            return Reply::json(403, &json!({"detail": "invalid signature"}));
        }
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Reply::json(400, &json!({"detail": "body is not JSON"}));
    };
    let data = &body["data"];
    let Some(issue_id) = data["id"].as_str() else {
        return Reply::json(400, &json!({"detail": "data.id missing"}));
    };
    let state_id = data["state"]["id"]
        .as_str()
        .or_else(|| data["state"].as_str())
        .or_else(|| body["activity"]["new_identifier"].as_str());
    let found = w.projects.iter().enumerate().find_map(|(pi, p)| {
        p.issues
            .iter()
            .position(|i| i.id == issue_id)
            .map(|ii| (pi, ii))
    });
    let Some((pi, ii)) = found else {
        return Reply::json(200, &json!({"ok": true, "effect": "unknown issue"}));
    };
    let project = w.projects[pi].clone();
    let issue = project.issues[ii].clone();
    let state_name = state_id
        .and_then(|sid| project.states.iter().find(|s| s.id == sid))
        .map(|s| s.name.clone())
        .or_else(|| data["state"]["name"].as_str().map(String::from))
        .unwrap_or_default();
    let task_id = w
        .tasks
        .iter()
        .find(|t| t.plane_issue_id.as_deref() == Some(issue_id))
        .map(|t| t.id);
    let default_wi = format!("{}-{}", project.identifier, issue.sequence_id);
    let effect = match issue.on_replay.clone() {
        Some(e) => e,
        None => match (fold(&state_name).as_str(), task_id) {
            ("toanalyse" | "toanalyze" | "inprogress", None) => ReplayEffect::CreateTask {
                stage: "analysis".into(),
                work_item_id: None,
            },
            ("approved", Some(_)) => step(w, task_id, 1),
            ("rejected", Some(_)) => step(w, task_id, -1),
            _ => ReplayEffect::Nothing,
        },
    };
    let now = w.now_ago();
    let text = match (effect, task_id) {
        (
            ReplayEffect::CreateTask {
                stage,
                work_item_id,
            },
            None,
        ) => {
            let id = w.tasks.iter().map(|t| t.id).max().unwrap_or(0) + 1;
            w.tasks.push(SimTask {
                id,
                gate: SimTask::default_gate(&stage),
                stage,
                repo: project.repo.clone(),
                work_item_id: Some(work_item_id.unwrap_or(default_wi)),
                branch: None,
                plane_issue_id: Some(issue.id.clone()),
                updated_ago_s: now,
                ..SimTask::default()
            });
            format!("created task {id}")
        }
        (ReplayEffect::SetStage(stage), Some(id)) => {
            if let Some(t) = w.task_mut(id) {
                t.stage = stage.clone();
                t.updated_ago_s = now;
                t.gate_passed = false;
            }
            format!("task {id} moved to {stage}")
        }
        (ReplayEffect::StartJob, Some(id)) => {
            if let Some(t) = w.task_mut(id) {
                t.active_job = true;
            }
            format!("task {id} job started")
        }
        _ => "nothing".into(),
    };
    Reply::json(200, &json!({"ok": true, "effect": text}))
}

/// The stage `delta` steps from the task's current one, as an effect.
fn step(w: &World, task_id: Option<i64>, delta: isize) -> ReplayEffect {
    let Some(t) = task_id.and_then(|id| w.tasks.iter().find(|t| t.id == id)) else {
        return ReplayEffect::Nothing;
    };
    let target = w
        .stages
        .iter()
        .position(|s| *s == t.stage)
        .and_then(|i| i.checked_add_signed(delta))
        .and_then(|i| w.stages.get(i));
    match target {
        Some(s) => ReplayEffect::SetStage(s.clone()),
        None => ReplayEffect::Nothing,
    }
}
