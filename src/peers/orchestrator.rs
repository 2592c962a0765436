//! The orchestrator's reconcile API v1 and the webhook replay endpoint
//! (docs/orchestrator-api.md).

use serde::Deserialize;

pub use crate::core::task::Task;

use super::http::{Client, PeerError};
use crate::config::Secret;
use crate::core::bounds::{MAX_ID, MAX_TEXT, cut};

/// One element of the task list that could not be read as a Task.
#[derive(Debug, Clone)]
pub struct BadTask {
    pub id: Option<i64>,
    pub error: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GateReport {
    #[serde(default)]
    pub passed: bool,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Advance {
    /// 200 advanced: true.
    Advanced { stage_after: String, detail: String },
    /// 200 advanced: false — the gate was red after all.
    GateRed { detail: String },
    /// 409: a job or a stage change appeared since the list was read.
    Refused { detail: String },
}

#[derive(Deserialize)]
struct AdvanceBody {
    #[serde(default)]
    advanced: bool,
    #[serde(default)]
    stage_after: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

pub struct Orchestrator {
    http: Client,
    webhook_http: Client,
    base: String,
    webhook_path: String,
    auth: String,
    webhook_secret: Option<Secret>,
}

impl Orchestrator {
    pub fn new(cfg: &crate::config::Orchestrator, http: Client) -> Orchestrator {
        let token = cfg
            .token
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        Orchestrator {
            webhook_http: http.with_timeout(cfg.webhook_timeout),
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            webhook_path: cfg.webhook_path.clone(),
            auth: format!("Bearer {token}"),
            webhook_secret: cfg.webhook_secret.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.http
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, PeerError> {
        let url = format!("{}{path}", self.base);
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Accept", "application/json"),
        ];
        self.http.json("GET", &url, &headers, None).map(|(v, _)| v)
    }

    /// A GET answered with any status: (status, body). `check` reads the
    /// answers of the read-only endpoints with it (docs/orchestrator-api.yaml).
    pub fn probe(&self, path: &str) -> Result<(u16, Vec<u8>), PeerError> {
        let url = format!("{}{path}", self.base);
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Accept", "application/json"),
        ];
        self.http
            .send("GET", &url, &headers, None)
            .map(|r| (r.status, r.body))
    }

    /// Every task not done. The list must be readable as a whole; a single
    /// bad element fails only that task.
    pub fn tasks(&self) -> Result<Vec<Result<Task, BadTask>>, PeerError> {
        /// Each element straight into a Task when it is one: 5,000 tasks
        /// are never all held as generic JSON at once.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Task(Task),
            Other(serde_json::Value),
        }
        #[derive(Deserialize)]
        struct List {
            tasks: Vec<Entry>,
        }
        let list: List = self.get("/reconcile/v1/tasks")?;
        let entries: Vec<Result<Task, BadTask>> = list
            .tasks
            .into_iter()
            .map(|e| match e {
                Entry::Task(t) => bounded(t),
                Entry::Other(v) => parse_task(v),
            })
            .collect();
        let (kept, repeated) = crate::core::gate::first_entry_wins(entries, |e| match e {
            Ok(t) => Some(t.id),
            Err(b) => b.id,
        });
        for id in repeated {
            log::warn!("the task list names task {id} more than once; the first entry is used");
        }
        Ok(kept)
    }

    /// The task of one Plane issue, any stage.
    pub fn task_by_issue(&self, issue_id: &str) -> Result<Option<Task>, PeerError> {
        #[derive(Deserialize)]
        struct List {
            tasks: Vec<Task>,
        }
        let path = format!("/reconcile/v1/tasks?plane_issue_id={}", encode(issue_id));
        let list: List = self.get(&path)?;
        match list.tasks.into_iter().next().map(bounded).transpose() {
            Ok(task) => Ok(task),
            Err(bad) => Err(PeerError {
                peer: self.http.peer(),
                endpoint: self.http.redact(&format!("GET {}{path}", self.base)),
                kind: super::http::ErrorKind::Body(bad.error),
            }),
        }
    }

    /// Read-only evaluation of the stage's gate (dry-run).
    pub fn gate(&self, task_id: i64) -> Result<GateReport, PeerError> {
        let mut g: GateReport = self.get(&format!("/reconcile/v1/tasks/{task_id}/gate"))?;
        g.detail = g.detail.map(|d| cut(d, MAX_TEXT));
        Ok(g)
    }

    /// Advance if the gate passes, under the orchestrator's own claim.
    pub fn advance(&self, task_id: i64, expected_stage: &str) -> Result<Advance, PeerError> {
        let url = format!("{}/reconcile/v1/tasks/{task_id}/advance", self.base);
        let body = serde_json::to_vec(&serde_json::json!({ "expected_stage": expected_stage }))
            .unwrap_or_default();
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Accept", "application/json"),
        ];
        let resp = self.http.send("POST", &url, &headers, Some(&body))?;
        match resp.status {
            200..=299 => {
                let b: AdvanceBody = self.http.decode("POST", &url, &resp.body)?;
                let detail = cut(b.detail.unwrap_or_default(), MAX_TEXT);
                if b.advanced {
                    // Only reported: cut rather than refused.
                    let stage_after = cut(b.stage_after.unwrap_or_default(), MAX_ID);
                    Ok(Advance::Advanced {
                        stage_after,
                        detail,
                    })
                } else {
                    Ok(Advance::GateRed { detail })
                }
            }
            409 => {
                let detail = serde_json::from_slice::<AdvanceBody>(&resp.body)
                    .ok()
                    .and_then(|b| b.detail)
                    .map_or_else(|| "conflict".into(), |d| cut(d, MAX_TEXT));
                Ok(Advance::Refused { detail })
            }
            _ => Err(self.http.status_error("POST", &url, &resp)),
        }
    }

    /// Re-delivers a Plane webhook; Ok only on a 2xx (the handler ran).
    pub fn replay(&self, body: &[u8]) -> Result<(), PeerError> {
        let url = format!("{}{}", self.base, self.webhook_path);
        let delivery = uuid::Uuid::new_v4().to_string();
        let signature = self
            .webhook_secret
            .as_ref()
            .map(|s| sign(s.expose().as_bytes(), body));
        let mut headers = vec![
            ("X-Plane-Event", "issue"),
            ("X-Plane-Delivery", delivery.as_str()),
            ("X-Reconcile-Replay", "1"),
        ];
        if let Some(sig) = &signature {
            headers.push(("X-Plane-Signature", sig.as_str()));
        }
        let resp = self.webhook_http.send("POST", &url, &headers, Some(body))?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(self.webhook_http.status_error("POST", &url, &resp))
        }
    }
}

fn parse_task(v: serde_json::Value) -> Result<Task, BadTask> {
    let id = v.get("id").and_then(|i| i.as_i64());
    Task::deserialize(&v)
        .map_err(|e| BadTask {
            id,
            // serde quotes the offending string, which may be megabytes.
            error: cut(format!("orchestrator task list: {e}"), MAX_TEXT),
        })
        .and_then(bounded)
}

/// A task whose identifiers fit (docs/sidecar.md), else a bad entry.
fn bounded(t: Task) -> Result<Task, BadTask> {
    match t.check_bounds() {
        Ok(()) => Ok(t),
        Err(e) => Err(BadTask {
            id: Some(t.id),
            error: format!("orchestrator task list: {e}"),
        }),
    }
}

/// Lowercase hex HMAC-SHA256 of the exact body bytes (X-Plane-Signature).
pub fn sign(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub use super::http::encode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_matches_rfc4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn task_missing_optionals_default_and_nulls_are_accepted() {
        let t = parse_task(
            serde_json::json!({"id": 7, "stage": "testing", "active_job": null,
            "depends_on": null, "extra": 1}),
        )
        .unwrap();
        assert_eq!(t.id, 7);
        assert!(!t.active_job);
        assert_eq!(t.escalated, None);
        assert!(t.depends_on.is_empty());
    }

    #[test]
    fn a_wrong_typed_task_is_a_bad_unit_naming_its_id() {
        let bad = parse_task(serde_json::json!({"id": 9, "stage": 5})).unwrap_err();
        assert_eq!(bad.id, Some(9));
        assert!(bad.error.contains("orchestrator"));
    }

    #[test]
    fn encode_escapes_reserved_characters() {
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
