//! docs/orchestrator-api.yaml against the binary and the simulator: every
//! endpoint is exercised and conforms, and the check that every other
//! integration test runs (tests/support/api.rs) catches a renamed field or
//! a changed path on either side.

mod support;

use reconcile::sim::{Peer, RecordedRequest, SimTask};
use serde_json::{Value, json};
use support::api::spec;
use support::*;

const WEBHOOK: &str = "/webhooks/plane";

/// A dry-run and a live tick touching all five operations.
fn exchanges() -> Vec<RecordedRequest> {
    let stack = Test::new()
        .webhook_secrets(Some("whsec"), Some("whsec"))
        .stuck(7, "testing", "In Progress")
        .task_in(
            SimTask {
                send_age_s: true,
                escalated: Some(false),
                ..SimTask::new(8, "development").repo(REPO).depends(&[7])
            },
            "In Progress",
        )
        .issue_with_task(9, "Approved", "review")
        .start();
    stack.tick(&["--dry-run", "all"]).code(0);
    stack.tick(&["all"]).code(0);
    assert_eq!(stack.stage(7), "review");
    assert_eq!(stack.stage(9), "done");
    stack
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.peer == Peer::Orchestrator)
        .collect()
}

#[test]
fn every_endpoint_is_exercised_and_answers_as_documented() {
    let log = exchanges();
    let mut seen = spec().check_all(&log, WEBHOOK).expect("conforms");
    seen.sort();
    assert_eq!(
        seen,
        [
            "advanceTask",
            "evaluateGate",
            "listTasks",
            "replayPlaneWebhook",
            "taskByPlaneIssue"
        ]
    );
}

/// The first exchange of operation `op`, changed by `f`, must fail the check.
fn fails_when(log: &[RecordedRequest], op: &str, f: impl Fn(&mut RecordedRequest)) -> String {
    let mut r = log
        .iter()
        .find(|r| spec().check(r, WEBHOOK).as_deref() == Ok(op))
        .unwrap_or_else(|| panic!("no {op} exchange"))
        .clone();
    f(&mut r);
    spec()
        .check(&r, WEBHOOK)
        .expect_err("a changed exchange must not conform")
}

/// Renames `from` in the object at `pointer`; "/tasks/*" is the first task
/// that has the field.
fn rename(json: &mut Option<String>, pointer: &str, from: &str, to: &str) {
    let mut v: Value = serde_json::from_str(json.as_deref().unwrap_or("")).unwrap();
    let pointer = match pointer.strip_prefix("/tasks/*") {
        Some(rest) => {
            let i = v["tasks"]
                .as_array()
                .and_then(|ts| {
                    ts.iter()
                        .position(|t| t.pointer(rest).and_then(|o| o.get(from)).is_some())
                })
                .unwrap_or_else(|| panic!("no task with {from}"));
            format!("/tasks/{i}{rest}")
        }
        None => pointer.to_string(),
    };
    let obj = v
        .pointer_mut(&pointer)
        .and_then(Value::as_object_mut)
        .unwrap();
    let value = obj.remove(from).unwrap_or_else(|| panic!("no {from}"));
    obj.insert(to.into(), value);
    *json = Some(v.to_string());
}

#[test]
fn a_renamed_field_or_a_changed_path_fails_the_check() {
    let log = exchanges();
    // The simulator's answers.
    for field in ["active_job", "age_s", "escalated", "gate", "depends_on"] {
        let e = fails_when(&log, "listTasks", |r| {
            rename(&mut r.response, "/tasks/*", field, "renamed")
        });
        assert!(e.contains("listTasks"), "{e}");
    }
    fails_when(&log, "listTasks", |r| {
        rename(&mut r.response, "/tasks/*/depends_on/0", "stage", "state")
    });
    fails_when(&log, "taskByPlaneIssue", |r| {
        rename(&mut r.response, "/tasks/0", "plane_issue_id", "plane_id")
    });
    fails_when(&log, "evaluateGate", |r| {
        rename(&mut r.response, "", "passed", "ok")
    });
    fails_when(&log, "advanceTask", |r| {
        rename(&mut r.response, "", "stage_after", "stage")
    });
    // What the client sends.
    let e = fails_when(&log, "advanceTask", |r| {
        let mut body = Some(r.body.clone());
        rename(&mut body, "", "expected_stage", "stage");
        r.body = body.unwrap();
    });
    assert!(e.contains("request body"), "{e}");
    fails_when(&log, "replayPlaneWebhook", |r| {
        let mut body = Some(r.body.clone());
        rename(&mut body, "/activity", "new_identifier", "state_id");
        r.body = body.unwrap();
    });
    fails_when(&log, "replayPlaneWebhook", |r| {
        r.headers.retain(|(k, _)| k != "x-plane-delivery")
    });
    fails_when(&log, "taskByPlaneIssue", |r| {
        r.query = r.query.replace("plane_issue_id", "issue_id")
    });
    let e = fails_when(&log, "evaluateGate", |r| {
        r.path = r.path.replace("/gate", "/quality-gate")
    });
    assert!(e.contains("not an endpoint"), "{e}");
    fails_when(&log, "listTasks", |r| {
        r.headers.retain(|(k, _)| k != "authorization")
    });
}

#[test]
fn a_409_is_documented_and_an_undocumented_status_is_not() {
    let log = exchanges();
    let advance = log
        .iter()
        .find(|r| spec().check(r, WEBHOOK).as_deref() == Ok("advanceTask"))
        .unwrap();
    let mut conflict = advance.clone();
    conflict.status = Some(409);
    conflict.response = Some(json!({"advanced": false, "detail": "active job"}).to_string());
    assert_eq!(
        spec().check(&conflict, WEBHOOK).as_deref(),
        Ok("advanceTask")
    );
    conflict.response = Some(json!({"advanced": true, "detail": "active job"}).to_string());
    assert!(spec().check(&conflict, WEBHOOK).is_err());
    let mut teapot = advance.clone();
    teapot.status = Some(418);
    assert!(spec().check(&teapot, WEBHOOK).unwrap_err().contains("418"));
}

#[test]
fn check_probes_the_read_only_endpoints_and_names_one_outside_the_document() {
    let stack = Test::new().stuck(7, "testing", "In Progress").start();
    stack
        .run(&["check"])
        .code(0)
        .stdout_has("ok    orchestrator API")
        .stdout_has("GET /reconcile/v1/tasks, ?plane_issue_id=, /{id}/gate answer as");
    assert!(
        stack.sim.requests().iter().all(|r| r.method == "GET"),
        "read-only"
    );

    // The gate answers with wrong types; the list lacks fields the client
    // would quietly default (both list reads of the check get it).
    let thin = r#"{"tasks": [{"id": 7, "stage": "testing", "repo": "acme/shop"}]}"#;
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .fault(Route::OrchGate, Fault::WrongType)
        .start();
    let run = stack.run(&["check"]);
    run.code(1)
        .stdout_has("FAIL  orchestrator API")
        .stdout_has("GET /reconcile/v1/tasks/{id}/gate: task 7: `task_id` is not Integer");
    let stack = Test::new()
        .stuck(7, "testing", "In Progress")
        .scenario(|s| {
            for _ in 0..2 {
                s.push_fault(
                    Route::OrchTasks,
                    Fault::Status {
                        code: 200,
                        body: Some(thin.into()),
                        retry_after: None,
                    },
                );
            }
        })
        .start();
    stack
        .run(&["check"])
        .code(1)
        .stdout_has("ok    orchestrator  ")
        .stdout_has("GET /reconcile/v1/tasks: task 7: `work_item_id` missing");
}

#[test]
fn check_s_field_tables_are_the_document_s_schemas() {
    use reconcile::harness::{DEPENDENCY, FieldKind as Kind, GATE_RESULT, TASK};
    let schemas = &spec().doc()["components"]["schemas"];
    for (name, table) in [
        ("Task", TASK),
        ("Dependency", DEPENDENCY),
        ("GateResult", GATE_RESULT),
    ] {
        let s = &schemas[name];
        let props = s["properties"].as_object().unwrap();
        let names: Vec<&str> = table.iter().map(|(n, _, _)| *n).collect();
        let mut documented: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut ours = names.clone();
        documented.sort();
        ours.sort();
        assert_eq!(ours, documented, "{name}: fields");
        let required: Vec<&str> = table
            .iter()
            .filter(|(_, _, r)| *r)
            .map(|(n, _, _)| *n)
            .collect();
        let mut doc_required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut required = required;
        required.sort();
        doc_required.sort();
        assert_eq!(required, doc_required, "{name}: required");
        for (field, kind, _) in table {
            let want = match kind {
                Kind::Integer => json!("integer"),
                Kind::String => json!("string"),
                Kind::Boolean => json!("boolean"),
                Kind::Array => json!("array"),
                Kind::NullableNumber => json!(["number", "null"]),
                Kind::NullableString => json!(["string", "null"]),
                Kind::NullableBoolean => json!(["boolean", "null"]),
            };
            assert_eq!(props[*field]["type"], want, "{name}.{field}");
        }
    }
}
