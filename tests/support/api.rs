//! The orchestrator exchanges the simulator recorded, checked against
//! docs/orchestrator-api.yaml (OpenAPI 3.1: its schemas are JSON Schema
//! 2020-12). Every `Stack` run checks what it sent and what the simulated
//! orchestrator answered, so the document, the client and the simulator
//! cannot drift apart. Strict: the objects the orchestrator answers with may
//! carry no field the document does not name, so a field renamed in the
//! simulator fails even when the client would have ignored it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reconcile::sim::{Peer, RecordedRequest, percent_decode};
use serde_json::{Value, json};

/// Objects answered by the orchestrator, closed to undocumented fields here.
const CLOSED: [&str; 6] = [
    "TaskList",
    "Task",
    "Dependency",
    "GateResult",
    "AdvanceResult",
    "AdvanceConflict",
];

/// The document's own placeholder for `[orchestrator] webhook_path`.
const WEBHOOK_TEMPLATE: &str = "/webhooks/plane";

pub struct Spec {
    doc: Value,
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The document, parsed once per test binary.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/orchestrator-api.yaml");
        let text = std::fs::read_to_string(path).expect("docs/orchestrator-api.yaml");
        let doc: Value = serde_norway::from_str(&text).expect("the OpenAPI document is YAML");
        let mut components = doc["components"].clone();
        for name in CLOSED {
            components["schemas"][name]["additionalProperties"] = json!(false);
        }
        Spec {
            doc,
            components,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// `a=b&c=d`, percent-decoded (as the simulator reads a query).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(kv), String::new()),
        })
        .collect()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Spec {
    /// The whole document.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Follows `$ref`s inside the document.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// Validates `instance` against `schema` (a schema of the document).
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let validator = {
            let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry(key)
                .or_insert_with(|| {
                    let mut root = schema.clone();
                    root["components"] = self.components.clone();
                    Arc::new(
                        jsonschema::draft202012::new(&root)
                            .unwrap_or_else(|e| panic!("schema {schema}: {e}")),
                    )
                })
                .clone()
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The operation serving `method path`: its path template and object.
    pub fn operation(
        &self,
        method: &str,
        path: &str,
        webhook_path: &str,
    ) -> Result<(&str, &Value), String> {
        let segments = |p: &str| -> Vec<String> {
            p.trim_end_matches('/')
                .split('/')
                .map(String::from)
                .collect()
        };
        let paths = self.doc["paths"].as_object().expect("paths");
        for (template, item) in paths {
            let real = if template == WEBHOOK_TEMPLATE {
                webhook_path
            } else {
                template.as_str()
            };
            let (want, got) = (segments(real), segments(path));
            let matches = want.len() == got.len()
                && want.iter().zip(&got).all(|(w, g)| {
                    (w.starts_with('{') && w.ends_with('}') && !g.is_empty()) || w == g
                });
            if let (true, Some(op)) = (matches, item.get(method.to_ascii_lowercase())) {
                return Ok((template.as_str(), op));
            }
        }
        Err(format!(
            "{method} {path}: not an endpoint of docs/orchestrator-api.yaml"
        ))
    }

    /// Checks one recorded orchestrator exchange: the request always, the
    /// answer unless the simulator injected a fault into it (those answers
    /// are outside the document on purpose). Ok: the operation's id, with
    /// the lookup by Plane issue told apart from the list.
    pub fn check(&self, r: &RecordedRequest, webhook_path: &str) -> Result<String, String> {
        let (_, op) = self.operation(&r.method, &r.path, webhook_path)?;
        let id = op["operationId"].as_str().unwrap_or("?");
        let what = format!("{} {}?{} ({id})", r.method, r.path, r.query);
        let query = query_pairs(&r.query);
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(|p| self.resolve(p)).collect())
            .unwrap_or_default();
        for p in &params {
            let (name, place) = (p["name"].as_str().unwrap_or(""), &p["in"]);
            let value = match place.as_str() {
                Some("query") => query.iter().find(|(k, _)| k == name).map(|(_, v)| v),
                Some("header") => r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v),
                _ => continue,
            };
            let Some(value) = value else {
                if p["required"] == json!(true) {
                    return Err(format!("{what}: {place} {name} missing"));
                }
                continue;
            };
            self.validate(&p["schema"], &json!(value))
                .map_err(|e| format!("{what}: {name}: {e}"))?;
            if p["schema"]["format"] == json!("uuid") && !is_uuid(value) {
                return Err(format!("{what}: {name} {value:?} is not a UUID"));
            }
        }
        for (k, _) in &query {
            if !params
                .iter()
                .any(|p| p["in"] == json!("query") && p["name"] == json!(k))
            {
                return Err(format!("{what}: undocumented query parameter {k}"));
            }
        }
        let security = op.get("security").unwrap_or(&self.doc["security"]);
        if security.as_array().is_some_and(|s| !s.is_empty()) {
            let bearer = r
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|t| !t.trim().is_empty());
            if !bearer {
                return Err(format!("{what}: no Bearer token"));
            }
        }
        if let Some(body) = op.get("requestBody") {
            let schema = &body["content"]["application/json"]["schema"];
            let sent: Value = serde_json::from_str(&r.body)
                .map_err(|e| format!("{what}: request body is not JSON: {e}"))?;
            self.validate(schema, &sent)
                .map_err(|e| format!("{what}: request body: {e}"))?;
            if !r
                .header("content-type")
                .is_some_and(|c| c.contains("application/json"))
            {
                return Err(format!(
                    "{what}: request without Content-Type application/json"
                ));
            }
        }
        if let (None, Some(status)) = (&r.fault, r.status) {
            let responses = &op["responses"];
            let key = [
                status.to_string(),
                format!("{}XX", status / 100),
                "default".into(),
            ]
            .into_iter()
            .find(|k| responses.get(k).is_some())
            .ok_or_else(|| format!("{what}: status {status} is not documented"))?;
            let response = self.resolve(&responses[&key]);
            if let Some(schema) = response.pointer("/content/application~1json/schema") {
                let body = r.response.as_deref().unwrap_or("");
                let answered: Value = serde_json::from_str(body)
                    .map_err(|e| format!("{what}: {status} answer is not JSON: {e}"))?;
                self.validate(schema, &answered)
                    .map_err(|e| format!("{what}: {status} answer: {e}"))?;
            }
        }
        Ok(if query.iter().any(|(k, _)| k == "plane_issue_id") {
            "taskByPlaneIssue".into()
        } else {
            id.into()
        })
    }

    /// Checks every orchestrator exchange in `log`; Ok: the operations seen.
    pub fn check_all(
        &self,
        log: &[RecordedRequest],
        webhook_path: &str,
    ) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for r in log.iter().filter(|r| r.peer == Peer::Orchestrator) {
            let op = self.check(r, webhook_path)?;
            if !seen.contains(&op) {
                seen.push(op);
            }
        }
        Ok(seen)
    }
}
