//! The live world and the three peers' request handling.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::{format_description, offset};

use super::http::{Plan, Reply, Request, lock, sleep_unless_stopped};
use super::scenario::{Fault, Peer, Route, Scenario, SimIssue, SimTask};

/// The running scenario plus the simulator's clock. Derefs to [`Scenario`],
/// so `world.tasks`, `world.faults`, `world.rate_limit` are the live values.
#[derive(Debug)]
pub struct World {
    pub scenario: Scenario,
    epoch: OffsetDateTime,
    started: Instant,
    /// How far the simulator's clock was moved ahead of the real one.
    offset: Duration,
    /// The minute of the simulator's clock the Plane budget belongs to.
    pub(super) rate_window: Option<u64>,
    /// Until when (the simulator's clock, ms) `rate_limit.full_for_s` holds,
    /// from the first counted request.
    pub(super) full_until_ms: Option<u64>,
}

impl Deref for World {
    type Target = Scenario;
    fn deref(&self) -> &Scenario {
        &self.scenario
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut Scenario {
        &mut self.scenario
    }
}

impl World {
    pub(crate) fn new(scenario: Scenario) -> World {
        let now = OffsetDateTime::now_utc();
        World {
            scenario,
            epoch: now.replace_nanosecond(0).unwrap_or(now),
            started: Instant::now(),
            offset: Duration::ZERO,
            rate_window: None,
            full_until_ms: None,
        }
    }

    /// The simulator's start, whole seconds: `updated_ago_s` counts back from it.
    pub fn epoch(&self) -> OffsetDateTime {
        self.epoch
    }

    /// Whole seconds since the simulator started, by its clock.
    pub fn elapsed_s(&self) -> i64 {
        self.elapsed().as_secs() as i64
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed() + self.offset
    }

    /// Moves the simulator's clock `secs` ahead: ages grow, and a new
    /// minute refills Plane's budget (a benchmark replays minute ticks).
    pub fn advance_clock(&mut self, secs: u64) {
        self.offset += Duration::from_secs(secs);
    }

    /// The simulator's time now.
    pub fn now(&self) -> OffsetDateTime {
        self.epoch + self.elapsed()
    }

    /// Milliseconds since the simulator started, by its clock.
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.elapsed().as_millis() as u64
    }

    /// The minute of the simulator's clock and the milliseconds into it.
    pub(super) fn clock_minute(&self) -> (u64, u64) {
        let ms = self.elapsed().as_millis() as u64;
        (ms / 60_000, ms % 60_000)
    }

    /// The `updated_ago_s` value meaning "just now" (≤ 0).
    pub fn now_ago(&self) -> i64 {
        -self.elapsed_s()
    }

    /// The instant an `updated_ago_s` value denotes.
    pub fn at(&self, ago: i64) -> OffsetDateTime {
        self.epoch - time::Duration::seconds(ago)
    }

    /// Marks a task as changed now.
    pub fn touch_task(&mut self, id: i64) {
        let now = self.now_ago();
        if let Some(t) = self.task_mut(id) {
            t.updated_ago_s = now;
        }
    }

    fn next_fault(&mut self, route: Route) -> Option<Fault> {
        let plan = self.scenario.faults.get_mut(&route)?;
        plan.queue.pop_front().or_else(|| plan.always.clone())
    }

    pub(super) fn task_json(&self, t: &SimTask) -> Value {
        let updated = self.at(t.updated_ago_s).to_offset(offset!(+3));
        let deps: Vec<Value> = t
            .depends_on
            .iter()
            .map(|d| match self.tasks.iter().find(|o| o.id == *d) {
                Some(o) => json!({"id": o.id, "work_item_id": o.work_item_id, "stage": o.stage}),
                None => json!({"id": d, "work_item_id": null, "stage": null}),
            })
            .collect();
        let mut v = json!({
            "id": t.id,
            "stage": t.stage,
            "repo": t.repo,
            "work_item_id": t.work_item_id,
            "branch": t.branch,
            "plane_issue_id": t.plane_issue_id,
            "updated_at": updated
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "gate": t.gate,
            "active_job": t.active_job,
            "developer_retry_count": t.developer_retry_count,
            "depends_on": deps,
        });
        if t.send_age_s {
            v["age_s"] = json!(t.updated_ago_s + self.elapsed_s());
        }
        if let Some(e) = t.escalated {
            v["escalated"] = json!(e);
        }
        v
    }

    fn plane_ts(&self, ago: i64) -> String {
        self.at(ago)
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .unwrap_or_default()
    }

    pub(super) fn issue_json(&self, project: usize, issue: &SimIssue, expand_state: bool) -> Value {
        let p = &self.projects[project];
        let state = match p.states.iter().find(|s| s.id == issue.state) {
            Some(s) if expand_state => {
                json!({"id": s.id, "name": s.name, "group": s.group, "color": "#60646C"})
            }
            _ => json!(issue.state),
        };
        json!({
            "id": issue.id,
            "name": issue.name,
            "sequence_id": issue.sequence_id,
            "state": state,
            "project": p.id,
            "workspace": self.plane_workspace_id,
            "description_stripped": issue.name,
            "priority": "none",
            "created_at": self.plane_ts(issue.updated_ago_s.max(0) + 86_400),
            "updated_at": self.plane_ts(issue.updated_ago_s),
            "completed_at": null,
            "archived_at": null,
            "is_draft": false,
            "parent": null,
            "labels": [],
            "assignees": [],
            "created_by": null,
            "updated_by": null,
        })
    }
}

/// One request as the simulator saw it (header names lowercase).
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub peer: Peer,
    /// None: the path matched no route (answered 404/405).
    pub route: Option<Route>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status answered; None when the connection was closed without one.
    pub status: Option<u16>,
    /// The body bytes sent (compressed when gzipped); None without a body.
    pub response_bytes: Option<usize>,
    /// The orchestrator's complete answer body (None for the other peers,
    /// and when no complete body was sent), for the spec drift test.
    pub response: Option<String>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A sendMessage Telegram accepted.
#[derive(Debug, Clone, Serialize)]
pub struct SentMessage {
    pub message_id: i64,
    pub chat_id: Value,
    pub text: String,
    pub message_thread_id: Option<Value>,
    pub link_preview_options: Option<Value>,
    /// The whole request body.
    pub raw: Value,
}

pub(crate) struct Shared {
    pub world: World,
    pub log: Vec<RecordedRequest>,
    pub messages: Vec<SentMessage>,
}

/// The lowercase hex HMAC-SHA256 the orchestrator expects in `X-Plane-Signature`.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lowercase with every non-alphanumeric removed (the folding of docs/decisions.md).
pub(super) fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) enum Target {
    Tasks,
    TaskByIssue(String),
    Gate(String),
    Advance(String),
    Webhook,
    States {
        ws: String,
        project: String,
    },
    Items {
        ws: String,
        project: String,
    },
    Item {
        ws: String,
        project: String,
        id: String,
    },
    Patch {
        ws: String,
        project: String,
        id: String,
    },
    Send {
        token: String,
    },
    GetMe {
        token: String,
    },
}

impl Target {
    fn route(&self) -> Route {
        match self {
            Target::Tasks => Route::OrchTasks,
            Target::TaskByIssue(_) => Route::OrchTaskByIssue,
            Target::Gate(_) => Route::OrchGate,
            Target::Advance(_) => Route::OrchAdvance,
            Target::Webhook => Route::OrchWebhook,
            Target::States { .. } => Route::PlaneStates,
            Target::Items { .. } => Route::PlaneItems,
            Target::Item { .. } => Route::PlaneItem,
            Target::Patch { .. } => Route::PlanePatch,
            Target::Send { .. } => Route::TelegramSend,
            Target::GetMe { .. } => Route::TelegramGetMe,
        }
    }
}

/// Ok(target) or Err(status) for an unknown path (404) or method (405).
fn match_target(peer: Peer, req: &Request, webhook_path: &str) -> Result<Target, u16> {
    let m = req.method.as_str();
    let want = |ok: bool, t: Target| if ok { Ok(t) } else { Err(405) };
    match peer {
        Peer::Orchestrator => {
            let path = req.path.trim_end_matches('/');
            if path == webhook_path.trim_end_matches('/') {
                return want(m == "POST", Target::Webhook);
            }
            if path == "/reconcile/v1/tasks" {
                return match req.query_param("plane_issue_id") {
                    Some(u) => want(m == "GET", Target::TaskByIssue(u)),
                    None => want(m == "GET", Target::Tasks),
                };
            }
            let rest = path.strip_prefix("/reconcile/v1/tasks/").ok_or(404u16)?;
            match rest.split('/').collect::<Vec<_>>()[..] {
                [id, "gate"] => want(m == "GET", Target::Gate(id.into())),
                [id, "advance"] => want(m == "POST", Target::Advance(id.into())),
                _ => Err(404),
            }
        }
        Peer::Plane => {
            let rest = req.path.strip_prefix("/api/v1/workspaces/").ok_or(404u16)?;
            let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            match parts[..] {
                [ws, "projects", p, "states"] => want(
                    m == "GET",
                    Target::States {
                        ws: ws.into(),
                        project: p.into(),
                    },
                ),
                [ws, "projects", p, "issues" | "work-items"] => want(
                    m == "GET",
                    Target::Items {
                        ws: ws.into(),
                        project: p.into(),
                    },
                ),
                [ws, "projects", p, "issues" | "work-items", id] => {
                    let (ws, project, id) = (ws.into(), p.into(), id.into());
                    match m {
                        "GET" => Ok(Target::Item { ws, project, id }),
                        "PATCH" => Ok(Target::Patch { ws, project, id }),
                        _ => Err(405),
                    }
                }
                _ => Err(404),
            }
        }
        Peer::Telegram => {
            let rest = req.path.strip_prefix("/bot").ok_or(404u16)?;
            let (token, method) = rest.rsplit_once('/').ok_or(404u16)?;
            let token = super::http::percent_decode(token);
            match method {
                "sendMessage" => want(m == "POST", Target::Send { token }),
                "getMe" => want(m == "GET" || m == "POST", Target::GetMe { token }),
                _ => Err(404),
            }
        }
    }
}

fn not_found(peer: Peer, status: u16) -> Reply {
    match peer {
        Peer::Telegram => tg_error(status, "Not Found", None),
        Peer::Plane => Reply::json(status, &json!({"error": "Page not found."})),
        Peer::Orchestrator => Reply::json(status, &json!({"detail": "Not Found"})),
    }
}

fn tg_error(code: u16, description: &str, retry_after: Option<u64>) -> Reply {
    let mut v = json!({"ok": false, "error_code": code, "description": description});
    if let Some(n) = retry_after {
        v["parameters"] = json!({"retry_after": n});
    }
    Reply::json(code, &v)
}

pub(super) fn plane_429() -> Value {
    json!({"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"})
}

/// The whole life of one request: route, fault, auth, effect, record.
pub(crate) fn handle(
    shared: &Arc<Mutex<Shared>>,
    stop: &AtomicBool,
    peer: Peer,
    req: Request,
) -> Plan {
    let mut g = lock(shared);
    let target = match_target(peer, &req, &g.world.webhook_path);
    let route = target.as_ref().ok().map(Target::route);
    let fault = route.and_then(|r| g.world.next_fault(r));
    let mut delay = Duration::ZERO;
    let reply = match (&target, &fault) {
        (Err(status), _) => not_found(peer, *status),
        (Ok(t), None) => respond(&mut g, peer, t, &req),
        (Ok(t), Some(Fault::Latency { ms })) => {
            drop(g);
            sleep_unless_stopped(Duration::from_millis(*ms), stop);
            g = lock(shared);
            respond(&mut g, peer, t, &req)
        }
        (Ok(t), Some(Fault::ResetAfterEffect)) => {
            let _ = respond(&mut g, peer, t, &req);
            Reply::Close
        }
        (Ok(t), Some(Fault::HangAfterEffect { ms })) => {
            let _ = respond(&mut g, peer, t, &req);
            delay = Duration::from_millis(*ms);
            Reply::Close
        }
        (Ok(_), Some(Fault::Hang { ms })) => {
            delay = Duration::from_millis(*ms);
            Reply::Close
        }
        (Ok(t), Some(f)) => fault_reply(peer, t.route(), f),
    };
    // A slow project's listing: the page is answered late.
    if let Ok(Target::Items { project, .. }) = &target
        && let Some(p) = g.world.projects.iter().find(|p| p.id == *project)
    {
        delay = delay.max(Duration::from_millis(p.page_delay_ms));
    }
    // Plane gzips what it answers when asked (Vary: Accept-Encoding).
    let gzip = peer == Peer::Plane
        && req
            .header("accept-encoding")
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let reply = if gzip { reply.gzip() } else { reply };
    g.log.push(RecordedRequest {
        peer,
        route,
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        status: reply.status(),
        response_bytes: reply.body_len(),
        response: match (&reply, peer) {
            (Reply::Full { body, .. }, Peer::Orchestrator) => {
                Some(String::from_utf8_lossy(body).into_owned())
            }
            _ => None,
        },
        fault,
    });
    Plan { delay, reply }
}

fn fault_reply(peer: Peer, route: Route, fault: &Fault) -> Reply {
    match fault {
        Fault::Status {
            code,
            body,
            retry_after,
        } => {
            let reply = match body {
                Some(b) => Reply::Full {
                    status: *code,
                    content_type: if serde_json::from_str::<Value>(b).is_ok() {
                        "application/json"
                    } else {
                        "text/plain"
                    },
                    headers: Vec::new(),
                    body: b.clone().into_bytes(),
                },
                None => default_error(peer, *code, *retry_after),
            };
            match retry_after {
                Some(n) => reply.with_header("Retry-After", n.to_string()),
                None => reply,
            }
        }
        Fault::Reset | Fault::Hang { .. } => Reply::Close,
        Fault::Garbage => Reply::Full {
            status: 200,
            content_type: "application/json",
            headers: Vec::new(),
            body: b"this is not JSON {{{ <<<".to_vec(),
        },
        Fault::Html { code } => Reply::Full {
            status: *code,
            content_type: "text/html",
            headers: Vec::new(),
            body: format!(
                "<html>\r\n<head><title>{code} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{code} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )
            .into_bytes(),
        },
        Fault::Truncated => {
            let body = match peer {
                Peer::Orchestrator => br#"{"tasks": [{"id": 1, "stage": "tes"#.to_vec(),
                Peer::Plane => br#"{"results": [{"id": "a1b2", "na"#.to_vec(),
                Peer::Telegram => br#"{"ok": true, "resu"#.to_vec(),
            };
            Reply::Truncated {
                declared: body.len() + 1000,
                body,
            }
        }
        Fault::Oversized { bytes } => Reply::Oversized { bytes: *bytes },
        Fault::WrongType => Reply::json(200, &wrong_type(route)),
        // Handled by the caller; kept total for safety.
        Fault::Latency { .. } | Fault::ResetAfterEffect | Fault::HangAfterEffect { .. } => {
            Reply::Close
        }
    }
}

fn default_error(peer: Peer, code: u16, retry_after: Option<u64>) -> Reply {
    match peer {
        Peer::Plane if code == 429 => Reply::json(429, &plane_429()),
        Peer::Plane => Reply::json(code, &json!({"error": format!("simulated {code}")})),
        Peer::Orchestrator => Reply::json(code, &json!({"detail": format!("simulated {code}")})),
        Peer::Telegram => {
            let n = retry_after.unwrap_or(5);
            match code {
                429 => tg_error(429, &format!("Too Many Requests: retry after {n}"), Some(n)),
                400 => tg_error(400, "Bad Request: simulated", None),
                401 => tg_error(401, "Unauthorized", None),
                403 => tg_error(
                    403,
                    "Forbidden: bot was kicked from the supergroup chat",
                    None,
                ),
                404 => tg_error(404, "Not Found", None),
                _ => tg_error(code, "Internal Server Error", None),
            }
        }
    }
}

fn wrong_type(route: Route) -> Value {
    match route {
        Route::OrchTasks | Route::OrchTaskByIssue => json!({"tasks": "nope"}),
        Route::OrchGate => {
            json!({"task_id": "x", "stage": 7, "gate": [], "passed": "yes", "detail": null})
        }
        Route::OrchAdvance => json!({"task_id": "x", "advanced": "maybe", "stage_before": 1,
                                     "stage_after": [], "detail": 5}),
        Route::OrchWebhook => json!({"ok": "yes"}),
        Route::PlaneStates | Route::PlaneItems => json!({"results": 5, "next_cursor": 7,
            "next_page_results": "no", "count": "x", "total_pages": null, "total_results": "many"}),
        Route::PlaneItem | Route::PlanePatch => {
            json!({"id": 5, "name": [], "sequence_id": "x", "state": 7, "updated_at": 12})
        }
        Route::TelegramSend => json!({"ok": "true", "result": "nope"}),
        Route::TelegramGetMe => json!({"ok": true, "result": 5}),
    }
}

fn respond(g: &mut Shared, peer: Peer, t: &Target, req: &Request) -> Reply {
    match peer {
        Peer::Orchestrator => super::orchestrator::orchestrator(&mut g.world, t, req),
        Peer::Plane => super::plane::plane(&mut g.world, t, req),
        Peer::Telegram => telegram(g, t, req),
    }
}

// ---------------------------------------------------------------- telegram

fn telegram(g: &mut Shared, t: &Target, req: &Request) -> Reply {
    let token = match t {
        Target::Send { token } | Target::GetMe { token } => token,
        _ => return tg_error(404, "Not Found", None),
    };
    if *token != g.world.telegram_bot_token {
        return tg_error(401, "Unauthorized", None);
    }
    if let Target::GetMe { .. } = t {
        return Reply::json(
            200,
            &json!({"ok": true, "result": {"id": 123456, "is_bot": true,
                    "first_name": "reconcile sim", "username": "reconcile_sim_bot"}}),
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return tg_error(400, "Bad Request: message text is empty", None);
    };
    let chat_id = body.get("chat_id").cloned().unwrap_or(Value::Null);
    let chat_text = match &chat_id {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return tg_error(400, "Bad Request: chat_id is empty", None),
    };
    if g.world
        .telegram_chat_id
        .as_ref()
        .is_some_and(|c| *c != chat_text)
    {
        return tg_error(400, "Bad Request: chat not found", None);
    }
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if text.trim().is_empty() {
        return tg_error(400, "Bad Request: message text is empty", None);
    }
    if text.chars().count() > 4096 {
        return tg_error(400, "Bad Request: message is too long", None);
    }
    let message_id = g.messages.len() as i64 + 1;
    let thread = body.get("message_thread_id").cloned();
    let mut result = json!({"message_id": message_id, "date": g.world.now().unix_timestamp(),
                            "chat": {"id": chat_id, "type": "supergroup"}, "text": text});
    if let Some(th) = &thread {
        result["message_thread_id"] = th.clone();
        result["is_topic_message"] = json!(true);
    }
    g.messages.push(SentMessage {
        message_id,
        chat_id,
        text,
        message_thread_id: thread,
        link_preview_options: body.get("link_preview_options").cloned(),
        raw: Value::Object(body),
    });
    Reply::json(200, &json!({"ok": true, "result": result}))
}
