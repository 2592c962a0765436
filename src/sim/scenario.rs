//! What the simulated world starts as. A scenario is plain data (JSON-loadable,
//! or built in Rust); the running simulator mutates its own copy of it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// One endpoint of one peer: the unit faults and request counts are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `GET /reconcile/v1/tasks`
    OrchTasks,
    /// `GET /reconcile/v1/tasks?plane_issue_id=U`
    OrchTaskByIssue,
    /// `GET /reconcile/v1/tasks/{id}/gate`
    OrchGate,
    /// `POST /reconcile/v1/tasks/{id}/advance`
    OrchAdvance,
    /// `POST {webhook_path}`
    OrchWebhook,
    /// `GET …/projects/{p}/states/`
    PlaneStates,
    /// `GET …/projects/{p}/{work-items|issues}/`
    PlaneItems,
    /// `GET …/projects/{p}/{work-items|issues}/{id}/`
    PlaneItem,
    /// `PATCH …/projects/{p}/{work-items|issues}/{id}/`
    PlanePatch,
    /// `POST /bot{token}/sendMessage`
    TelegramSend,
    /// `GET /bot{token}/getMe`
    TelegramGetMe,
}

impl Route {
    /// The peer serving this route.
    pub fn peer(self) -> Peer {
        match self {
            Route::OrchTasks
            | Route::OrchTaskByIssue
            | Route::OrchGate
            | Route::OrchAdvance
            | Route::OrchWebhook => Peer::Orchestrator,
            Route::PlaneStates | Route::PlaneItems | Route::PlaneItem | Route::PlanePatch => {
                Peer::Plane
            }
            Route::TelegramSend | Route::TelegramGetMe => Peer::Telegram,
        }
    }
}

/// The three simulated services, each on its own listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    Orchestrator,
    Plane,
    Telegram,
}

/// A misbehaviour injected into one request instead of (or around) the normal answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer `code` with `body` (default: the peer's own error envelope for that
    /// code, e.g. Plane's 5900 body or Telegram's `parameters.retry_after` on 429)
    /// and a `Retry-After` header when `retry_after` is set.
    Status {
        code: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait, then answer normally (the effect happens after the wait).
    Latency { ms: u64 },
    /// Wait, then close without answering: drives client timeouts.
    Hang { ms: u64 },
    /// Close the connection without any response, no effect applied.
    Reset,
    /// Apply the normal effect, then close without answering: "effect unknown".
    ResetAfterEffect,
    /// Apply the normal effect, then hold the answer for `ms` and close
    /// without answering: the client is killed (or times out) with the
    /// effect done and unknown to it.
    HangAfterEffect { ms: u64 },
    /// 200 with a body that is not JSON.
    Garbage,
    /// An HTML error page (a proxy in front of the peer) with this status.
    Html {
        #[serde(default = "default_html_code")]
        code: u16,
    },
    /// A Content-Length larger than the bytes sent, then close.
    Truncated,
    /// A 200 JSON body `bytes` long, streamed (never held in memory).
    Oversized { bytes: u64 },
    /// 200 JSON of the right shape but a key field of the wrong type.
    WrongType,
}

impl Fault {
    /// A plain status fault with the peer's default error body.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            body: None,
            retry_after: None,
        }
    }

    /// A status fault carrying `Retry-After: secs` (and Telegram's `retry_after`).
    pub fn status_retry(code: u16, secs: u64) -> Fault {
        Fault::Status {
            code,
            body: None,
            retry_after: Some(secs),
        }
    }
}

fn default_html_code() -> u16 {
    502
}

/// Faults for one route: the queue is consumed one per request, then `always`
/// (if any) applies to every further request, else normal behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    pub queue: VecDeque<Fault>,
    pub always: Option<Fault>,
}

/// Plane's per-key budget as the simulator reports it: `limit` requests
/// per minute of the simulator's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per minute; `remaining` is set back to it when a
    /// new minute of the simulator's clock starts.
    pub limit: i64,
    /// Requests still allowed in this minute; each allowed Plane request
    /// decrements it and reports the new value in `X-RateLimit-Remaining`
    /// (so the first of a fresh minute reads 59); at 0 Plane answers 429
    /// with `Retry-After` (the seconds to the next minute) and no rate
    /// headers.
    pub remaining: i64,
    /// Explicit values to report, one per allowed request, before the countdown
    /// resumes from the last one (e.g. `[11, 10]` to trip a reserve of 10).
    pub sequence: VecDeque<i64>,
    /// `X-RateLimit-Reset` = now + this (Plane: always now + 60, not a
    /// reset time).
    pub reset_in_s: u64,
    /// False: answers carry no `X-RateLimit-*` headers (a proxy in front
    /// of Plane strips them); the budget is still kept and still ends in
    /// 429s.
    pub headers: bool,
    /// The window is full (someone else spent it) for this many seconds
    /// from the first counted request: each request meanwhile is answered
    /// 429 with `Retry-After` the seconds left, rounded up.
    pub full_for_s: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            limit: 60,
            remaining: 60,
            sequence: VecDeque::new(),
            reset_in_s: 60,
            headers: true,
            full_for_s: 0,
        }
    }
}

/// What a replayed webhook for one issue does, overriding the default engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplayEffect {
    /// The handler refuses: nothing changes.
    Nothing,
    /// Create the issue's task when it has none.
    CreateTask {
        stage: String,
        #[serde(default)]
        work_item_id: Option<String>,
    },
    /// Move the issue's task to this stage.
    SetStage(String),
    /// The issue's task gets an active job.
    StartJob,
}

/// One orchestrator task. `updated_ago_s` counts seconds before the simulator
/// started (negative: after it), so ages need no clock faking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimTask {
    pub id: i64,
    pub stage: String,
    pub repo: String,
    pub work_item_id: Option<String>,
    pub branch: Option<String>,
    pub plane_issue_id: Option<String>,
    pub updated_ago_s: i64,
    /// false: omit `age_s` so the client must use `updated_at`.
    pub send_age_s: bool,
    pub gate: Option<String>,
    pub gate_passed: bool,
    pub gate_detail: Option<String>,
    pub active_job: bool,
    pub developer_retry_count: i64,
    /// None: the field is absent from the JSON.
    pub escalated: Option<bool>,
    pub depends_on: Vec<i64>,
}

impl Default for SimTask {
    fn default() -> Self {
        SimTask {
            id: 0,
            stage: "development".into(),
            repo: "acme/shop".into(),
            work_item_id: None,
            branch: None,
            plane_issue_id: None,
            updated_ago_s: 7200,
            send_age_s: true,
            gate: Some("ci_green".into()),
            gate_passed: false,
            gate_detail: None,
            active_job: false,
            developer_retry_count: 0,
            escalated: Some(false),
            depends_on: Vec::new(),
        }
    }
}

impl SimTask {
    /// A task `ET-{id}` in `stage`, two hours old, red gate, repo `acme/shop`.
    pub fn new(id: i64, stage: &str) -> SimTask {
        SimTask {
            id,
            stage: stage.into(),
            work_item_id: Some(format!("ET-{id}")),
            branch: Some(format!("feature/et-{id}")),
            gate: SimTask::default_gate(stage),
            ..SimTask::default()
        }
    }

    /// The gate the sim assumes a stage has: none for created/done/cancelled.
    pub fn default_gate(stage: &str) -> Option<String> {
        match stage {
            "created" | "done" | "cancelled" => None,
            _ => Some("ci_green".into()),
        }
    }

    pub fn repo(mut self, repo: &str) -> Self {
        self.repo = repo.into();
        self
    }
    pub fn ago(mut self, secs: i64) -> Self {
        self.updated_ago_s = secs;
        self
    }
    pub fn green(mut self) -> Self {
        self.gate_passed = true;
        self
    }
    pub fn active(mut self) -> Self {
        self.active_job = true;
        self
    }
    pub fn issue(mut self, plane_issue_id: &str) -> Self {
        self.plane_issue_id = Some(plane_issue_id.into());
        self
    }
    pub fn depends(mut self, ids: &[i64]) -> Self {
        self.depends_on = ids.to_vec();
        self
    }
}

/// A Plane workflow state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimState {
    pub id: String,
    pub name: String,
    pub group: String,
    #[serde(default)]
    pub sequence: f64,
}

/// A Plane issue. `state` is a state uuid (a state *name* is accepted in
/// scenario files and resolved at start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimIssue {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub sequence_id: i64,
    pub state: String,
    #[serde(default = "default_issue_ago")]
    pub updated_ago_s: i64,
    #[serde(default)]
    pub on_replay: Option<ReplayEffect>,
}

fn default_issue_ago() -> i64 {
    7200
}

/// A Plane project and the orchestrator repo it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimProject {
    pub id: String,
    pub identifier: String,
    #[serde(default = "default_repo")]
    pub repo: String,
    /// Empty: the typical set (`SimProject::typical_states`) is filled in at start.
    #[serde(default)]
    pub states: Vec<SimState>,
    #[serde(default)]
    pub issues: Vec<SimIssue>,
    /// A hostile listing: every page says there is a next one, under a new
    /// cursor, for ever.
    #[serde(default)]
    pub endless_pages: bool,
    /// A slow listing: each page of this project's issues is answered
    /// this many milliseconds after it was asked for (and recorded).
    #[serde(default)]
    pub page_delay_ms: u64,
}

fn default_repo() -> String {
    "acme/shop".into()
}

/// A deterministic uuid-shaped id, so scenarios and logs are reproducible.
pub fn sim_uuid(parts: &[&str]) -> String {
    // FNV-1a 64, twice with different seeds, is plenty for test ids.
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h1 = (h1 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            h2 = (h2 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h1 >> 32,
        (h1 >> 16) & 0xffff,
        h1 & 0xfff,
        h2 >> 52,
        h2 & 0xffff_ffff_ffff
    )
}

impl SimProject {
    /// A project with the typical states and no issues.
    pub fn new(id: &str, identifier: &str, repo: &str) -> SimProject {
        SimProject {
            id: id.into(),
            identifier: identifier.into(),
            repo: repo.into(),
            states: SimProject::typical_states(id),
            issues: Vec::new(),
            endless_pages: false,
            page_delay_ms: 0,
        }
    }

    /// Backlog, Todo, To Analyse, In Progress, In Review, Approved, Rejected,
    /// Blocked, Needs Input, Done, Cancelled, with Plane's groups; ids derive
    /// from the project id.
    pub fn typical_states(project_id: &str) -> Vec<SimState> {
        [
            ("Backlog", "backlog"),
            ("Todo", "unstarted"),
            ("To Analyse", "unstarted"),
            ("In Progress", "started"),
            ("In Review", "started"),
            ("Approved", "started"),
            ("Rejected", "started"),
            ("Blocked", "started"),
            ("Needs Input", "started"),
            ("Done", "completed"),
            ("Cancelled", "cancelled"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (name, group))| SimState {
            id: sim_uuid(&["state", project_id, name]),
            name: (*name).into(),
            group: (*group).into(),
            sequence: 15000.0 + 10000.0 * i as f64,
        })
        .collect()
    }

    /// The id of the state called `name`, if any.
    pub fn state_id(&self, name: &str) -> Option<String> {
        self.states
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.id.clone())
    }

    /// Adds issue `{identifier}-{seq}` in the state named `state_name` (or a
    /// state uuid); returns its deterministic id.
    pub fn add_issue(&mut self, seq: i64, state_name: &str, updated_ago_s: i64) -> String {
        let id = sim_uuid(&["issue", &self.id, &seq.to_string()]);
        let state = self
            .state_id(state_name)
            .unwrap_or_else(|| state_name.into());
        self.issues.push(SimIssue {
            id: id.clone(),
            name: format!("Work item {}-{seq}", self.identifier),
            sequence_id: seq,
            state,
            updated_ago_s,
            on_replay: None,
        });
        id
    }

    /// Resolves issue states given by name into ids (scenario-file convenience).
    pub(crate) fn normalize(&mut self) {
        if self.states.is_empty() {
            self.states = SimProject::typical_states(&self.id);
        }
        let states = self.states.clone();
        for issue in &mut self.issues {
            if !states.iter().any(|s| s.id == issue.state)
                && let Some(s) = states.iter().find(|s| s.name == issue.state)
            {
                issue.state = s.id.clone();
            }
        }
    }
}

/// The whole simulated world at start. Credentials default to fixed test values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub orchestrator_token: String,
    pub plane_api_key: String,
    pub telegram_bot_token: String,
    /// Some: webhooks must carry a valid `X-Plane-Signature`.
    pub webhook_secret: Option<String>,
    pub webhook_path: String,
    pub plane_workspace: String,
    pub plane_workspace_id: String,
    /// Some: sendMessage to any other chat_id is 400 "chat not found".
    pub telegram_chat_id: Option<String>,
    pub tasks: Vec<SimTask>,
    pub stages: Vec<String>,
    pub projects: Vec<SimProject>,
    pub faults: BTreeMap<Route, FaultPlan>,
    pub rate_limit: RateLimit,
    /// Task ids the task list names twice (a broken orchestrator).
    pub listed_twice: Vec<i64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            orchestrator_token: "orch-secret-token".into(),
            plane_api_key: "plane-secret-key".into(),
            telegram_bot_token: "123456:telegram-secret-token".into(),
            webhook_secret: None,
            webhook_path: "/webhooks/plane".into(),
            plane_workspace: "acme".into(),
            plane_workspace_id: sim_uuid(&["workspace", "acme"]),
            telegram_chat_id: None,
            tasks: Vec::new(),
            stages: [
                "created",
                "analysis",
                "architecture",
                "development",
                "testing",
                "review",
                "done",
            ]
            .iter()
            .map(|s| (*s).to_string())
            .collect(),
            projects: Vec::new(),
            faults: BTreeMap::new(),
            rate_limit: RateLimit::default(),
            listed_twice: Vec::new(),
        }
    }
}

impl Scenario {
    /// Parses a JSON scenario file's text; unknown keys are errors.
    pub fn from_json(text: &str) -> anyhow::Result<Scenario> {
        Ok(serde_json::from_str(text)?)
    }

    /// Queues `fault` for the next request to `route` (after any already queued).
    pub fn push_fault(&mut self, route: Route, fault: Fault) {
        self.faults.entry(route).or_default().queue.push_back(fault);
    }

    /// Makes every request to `route` fail with `fault` (None: stop).
    pub fn set_always_fault(&mut self, route: Route, fault: Option<Fault>) {
        self.faults.entry(route).or_default().always = fault;
    }

    pub fn task_mut(&mut self, id: i64) -> Option<&mut SimTask> {
        self.tasks.iter_mut().find(|t| t.id == id)
    }

    pub fn project_mut(&mut self, id: &str) -> Option<&mut SimProject> {
        self.projects.iter_mut().find(|p| p.id == id)
    }

    pub fn issue_mut(&mut self, issue_id: &str) -> Option<&mut SimIssue> {
        self.projects
            .iter_mut()
            .flat_map(|p| p.issues.iter_mut())
            .find(|i| i.id == issue_id)
    }

    /// The Plane project id used by [`Scenario::demo`].
    pub fn demo_project_id() -> String {
        sim_uuid(&["project", "ET"])
    }

    /// A small world of stuck and healthy tasks for `reconcile demo`:
    /// project `ET` (repo acme/shop, id from `sim_uuid(["project","ET"])`) with
    /// task 1 stuck in testing (green gate), 2 red gate, 3 young, 4 busy,
    /// 5 escalated, 6 waiting on 2; issue ET-10 in To Analyse with no task
    /// (a lost start), ET-11 Approved with task 11 still in analysis (a lost
    /// verdict), ET-12 Blocked with task 12 (green, but a human waits).
    pub fn demo() -> Scenario {
        let pid = Scenario::demo_project_id();
        let mut p = SimProject::new(&pid, "ET", "acme/shop");
        let mut tasks = Vec::new();
        for seq in 1..=6 {
            let iid = p.add_issue(seq, "In Progress", 7200);
            let t = SimTask::new(seq, "testing").issue(&iid);
            tasks.push(match seq {
                1 => SimTask {
                    gate_detail: Some("CI success on 3f2a9c1".into()),
                    ..t.green()
                },
                2 => SimTask {
                    gate_detail: Some("CI failure on 77b0e1d".into()),
                    ..t
                },
                3 => t.green().ago(60),
                4 => t.green().active(),
                5 => SimTask {
                    escalated: Some(true),
                    developer_retry_count: 3,
                    ..t.green()
                },
                _ => t.green().depends(&[2]),
            });
        }
        p.add_issue(10, "To Analyse", 7200);
        let i11 = p.add_issue(11, "Approved", 7200);
        tasks.push(SimTask::new(11, "analysis").issue(&i11));
        let i12 = p.add_issue(12, "Blocked", 7200);
        tasks.push(SimTask::new(12, "development").issue(&i12).green());
        Scenario {
            tasks,
            projects: vec![p],
            ..Scenario::default()
        }
    }
}
