//! `check`'s look at the orchestrator's answers: the read-only endpoints
//! (the task list, the lookup by Plane issue, the gate evaluation) must
//! answer 200 with every field docs/orchestrator-api.yaml marks required,
//! of its type. The client itself is lenient (a missing field reads as
//! null/false/0/[]); this names the endpoint that would make it guess. The
//! advance is never probed: it is not read-only. tests/orchestrator_api.rs
//! holds these tables equal to the document.

use serde_json::Value;

use crate::core::task::Task;
use crate::peers::orchestrator::{Orchestrator, encode};

/// The JSON type of a documented field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    String,
    Boolean,
    Array,
    /// Number, string or boolean, or null.
    NullableNumber,
    NullableString,
    NullableBoolean,
}

impl Kind {
    fn admits(self, v: &Value) -> bool {
        match self {
            Kind::Integer => v.is_i64() || v.is_u64(),
            Kind::String => v.is_string(),
            Kind::Boolean => v.is_boolean(),
            Kind::Array => v.is_array(),
            Kind::NullableNumber => v.is_null() || v.is_number(),
            Kind::NullableString => v.is_null() || v.is_string(),
            Kind::NullableBoolean => v.is_null() || v.is_boolean(),
        }
    }
}

/// (field, type, required) of the document's Task.
pub const TASK: &[(&str, Kind, bool)] = &[
    ("id", Kind::Integer, true),
    ("stage", Kind::String, true),
    ("repo", Kind::NullableString, true),
    ("work_item_id", Kind::NullableString, true),
    ("branch", Kind::NullableString, true),
    ("plane_issue_id", Kind::NullableString, true),
    ("updated_at", Kind::NullableString, true),
    ("age_s", Kind::NullableNumber, false),
    ("gate", Kind::NullableString, true),
    ("active_job", Kind::Boolean, true),
    ("developer_retry_count", Kind::Integer, true),
    ("escalated", Kind::NullableBoolean, false),
    ("depends_on", Kind::Array, true),
];

/// The document's Dependency.
pub const DEPENDENCY: &[(&str, Kind, bool)] = &[
    ("id", Kind::Integer, true),
    ("work_item_id", Kind::NullableString, true),
    ("stage", Kind::NullableString, true),
];

/// The document's GateResult.
pub const GATE_RESULT: &[(&str, Kind, bool)] = &[
    ("task_id", Kind::Integer, true),
    ("stage", Kind::String, true),
    ("gate", Kind::NullableString, true),
    ("passed", Kind::Boolean, true),
    ("detail", Kind::NullableString, true),
];

/// At most this many problems are named per endpoint.
const MAX_NAMED: usize = 3;

fn object(v: &Value, fields: &[(&str, Kind, bool)], at: &str, out: &mut Vec<String>) {
    let Some(o) = v.as_object() else {
        out.push(format!("{at}: not an object"));
        return;
    };
    for (name, kind, required) in fields {
        match o.get(*name) {
            None if *required => out.push(format!("{at}: `{name}` missing")),
            Some(value) if !kind.admits(value) => {
                out.push(format!("{at}: `{name}` is not {kind:?}: {value}"))
            }
            _ => {}
        }
    }
}

/// The problems of a `{"tasks": [Task, ...]}` answer.
fn task_list(body: &Value, out: &mut Vec<String>) {
    let Some(tasks) = body.get("tasks").and_then(Value::as_array) else {
        out.push("no `tasks` array".into());
        return;
    };
    for (i, t) in tasks.iter().enumerate() {
        let at = match t.get("id").and_then(Value::as_i64) {
            Some(id) => format!("task {id}"),
            None => format!("tasks[{i}]"),
        };
        object(t, TASK, &at, out);
        for d in t
            .get("depends_on")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            object(d, DEPENDENCY, &format!("{at} depends_on"), out);
        }
    }
}

/// GETs `path` and checks the answer with `shape`; the problems, if any,
/// as one line naming the endpoint.
fn probe(
    orch: &Orchestrator,
    endpoint: &str,
    path: &str,
    shape: impl Fn(&Value, &mut Vec<String>),
) -> Option<String> {
    let mut problems = Vec::new();
    match orch.probe(path) {
        Err(e) => problems.push(e.to_string()),
        Ok((200, body)) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => shape(&v, &mut problems),
            Err(e) => problems.push(format!("not JSON: {e}")),
        },
        Ok((status, _)) => problems.push(format!("answered {status}, not 200")),
    }
    if problems.is_empty() {
        return None;
    }
    let more = problems.len().saturating_sub(MAX_NAMED);
    problems.truncate(MAX_NAMED);
    if more > 0 {
        problems.push(format!("{more} more"));
    }
    Some(format!("{endpoint}: {}", problems.join(", ")))
}

/// Probes the read-only endpoints, the lookup and the gate with a task of
/// `tasks` (the list as the client read it). Ok: what was probed; Err: each
/// endpoint that answers outside the document, with why.
pub fn check(orch: &Orchestrator, tasks: &[Task]) -> Result<String, String> {
    let mut probed = vec!["GET /reconcile/v1/tasks"];
    let mut failures: Vec<String> = probe(orch, probed[0], "/reconcile/v1/tasks", task_list)
        .into_iter()
        .collect();
    if let Some(issue) = tasks.iter().find_map(Task::issue_id) {
        probed.push("?plane_issue_id=");
        let path = format!("/reconcile/v1/tasks?plane_issue_id={}", encode(issue));
        let endpoint = "GET /reconcile/v1/tasks?plane_issue_id=";
        failures.extend(probe(orch, endpoint, &path, task_list));
    }
    // A task whose stage has a gate, else any: the gate answers either way.
    if let Some(t) = tasks.iter().find(|t| t.gate.is_some()).or(tasks.first()) {
        probed.push("/{id}/gate");
        let path = format!("/reconcile/v1/tasks/{}/gate", t.id);
        let endpoint = "GET /reconcile/v1/tasks/{id}/gate";
        failures.extend(probe(orch, endpoint, &path, |v, out| {
            object(v, GATE_RESULT, &format!("task {}", t.id), out)
        }));
    }
    if failures.is_empty() {
        Ok(format!(
            "{} answer as docs/orchestrator-api.yaml says (the advance is not probed: it is not read-only)",
            probed.join(", ")
        ))
    } else {
        Err(format!(
            "outside docs/orchestrator-api.yaml: {}",
            failures.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(body: Value) -> Vec<String> {
        let mut out = Vec::new();
        task_list(&body, &mut out);
        out
    }

    #[test]
    fn a_complete_task_has_no_problem_and_optionals_may_be_absent() {
        let t = json!({"id": 7, "stage": "testing", "repo": "a/b", "work_item_id": null,
            "branch": null, "plane_issue_id": "u", "updated_at": null, "gate": null,
            "active_job": false, "developer_retry_count": 0,
            "depends_on": [{"id": 3, "work_item_id": null, "stage": "done"}]});
        assert!(problems(json!({"tasks": [t]})).is_empty());
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named_with_its_task() {
        let t = json!({"id": 7, "stage": "testing", "repo": "a/b", "work_item_id": null,
            "branch": null, "plane_issue_id": "u", "updated_at": null, "gate": null,
            "has_active_job": false, "developer_retry_count": "0", "escalated": 1,
            "depends_on": [{"id": 3, "stage": "done"}]});
        let p = problems(json!({"tasks": [t]}));
        assert_eq!(
            p,
            [
                "task 7: `active_job` missing",
                "task 7: `developer_retry_count` is not Integer: \"0\"",
                "task 7: `escalated` is not NullableBoolean: 1",
                "task 7 depends_on: `work_item_id` missing",
            ]
        );
        assert_eq!(problems(json!({"task": []})), ["no `tasks` array"]);
    }
}
