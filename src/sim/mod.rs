//! The loopback simulator of the three peers: the orchestrator's
//! reconcile API and webhook endpoint (with a tiny stage engine), the Plane v1
//! subset (pagination, rate-limit headers, 429s) and Telegram's sendMessage.
//!
//! Each peer listens on its own `127.0.0.1:0` port. Every request is recorded;
//! faults are injected per route. Scenario times are relative to the
//! simulator's start, so tests never fake the clock.
//!
//! ```no_run
//! use reconcile::sim::{Scenario, SimTask, Simulator};
//! let sim = Simulator::start(Scenario {
//!     tasks: vec![SimTask::new(7, "testing").green()],
//!     ..Scenario::default()
//! })?;
//! // point the binary at sim.orchestrator_url() … then:
//! assert_eq!(sim.task(7).unwrap().stage, "review");
//! # Ok::<(), anyhow::Error>(())
//! ```

mod http;
mod orchestrator;
mod plane;
mod scenario;
mod world;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use scenario::{
    Fault, FaultPlan, Peer, RateLimit, ReplayEffect, Route, Scenario, SimIssue, SimProject,
    SimState, SimTask, sim_uuid,
};
pub use world::{RecordedRequest, SentMessage, World, webhook_signature};

pub use http::percent_decode;
use http::{Handler, Server, lock};
use world::Shared;

/// A running simulator. Dropping it (or `shutdown`) stops all three listeners.
pub struct Simulator {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    servers: Vec<Server>,
}

impl Simulator {
    /// Binds three loopback listeners (orchestrator, Plane, Telegram) on
    /// OS-picked ports and starts serving `scenario`.
    pub fn start(mut scenario: Scenario) -> anyhow::Result<Simulator> {
        for p in &mut scenario.projects {
            p.normalize();
        }
        let shared = Arc::new(Mutex::new(Shared {
            world: World::new(scenario),
            log: Vec::new(),
            messages: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut servers = Vec::new();
        for peer in [Peer::Orchestrator, Peer::Plane, Peer::Telegram] {
            let (sh, st) = (shared.clone(), stop.clone());
            let handler: Handler = Arc::new(move |req| world::handle(&sh, &st, peer, req));
            servers.push(Server::start(handler, stop.clone())?);
        }
        Ok(Simulator {
            shared,
            stop,
            servers,
        })
    }

    fn url(&self, i: usize) -> String {
        format!("http://{}", self.servers[i].addr)
    }

    /// Writes into `dir` the secret files and `<name>.toml`, a config for a
    /// client of this simulator with its own sidecar `<name>.sqlite` and
    /// every scenario project; `plane_extra` lines go under `[plane]`.
    /// `reconcile demo` and the fleet benchmark run on it.
    pub fn write_config(
        &self,
        dir: &Path,
        name: &str,
        plane_extra: &str,
    ) -> anyhow::Result<PathBuf> {
        let s = self.scenario();
        let write = |file: &str, value: &str| -> anyhow::Result<PathBuf> {
            use std::os::unix::fs::PermissionsExt as _;
            let p = dir.join(file);
            std::fs::write(&p, value).with_context(|| format!("writing {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            Ok(p)
        };
        let orch = write("orchestrator.token", &s.orchestrator_token)?;
        let plane = write("plane.key", &s.plane_api_key)?;
        let bot = write("telegram.token", &s.telegram_bot_token)?;
        let mut toml = format!(
            "[state]\npath = {state:?}\n\n\
             [orchestrator]\nurl = {orch_url:?}\ntoken_file = {orch:?}\n\n\
             [plane]\nurl = {plane_url:?}\nworkspace = {ws:?}\napi_key_file = {plane:?}\n{plane_extra}\n\n\
             [telegram]\nbot_token_file = {bot:?}\nchat_id = \"-1001234567890\"\napi_url = {tg_url:?}\n\
             link_template = \"https://plane.example.com/acme/browse/{{work_item_id}}/\"\n",
            state = dir.join(format!("{name}.sqlite")).display().to_string(),
            orch_url = self.orchestrator_url(),
            orch = orch.display().to_string(),
            plane_url = self.plane_url(),
            ws = s.plane_workspace,
            plane = plane.display().to_string(),
            bot = bot.display().to_string(),
            tg_url = self.telegram_url(),
        );
        for p in &s.projects {
            toml.push_str(&format!(
                "\n[[projects]]\nrepo = {:?}\nplane_project_id = {:?}\n",
                p.repo, p.id
            ));
        }
        write(&format!("{name}.toml"), &toml)
    }

    /// Base URL for `[orchestrator] url`, e.g. `http://127.0.0.1:41234`.
    pub fn orchestrator_url(&self) -> String {
        self.url(0)
    }

    /// Base URL for `[plane] url`.
    pub fn plane_url(&self) -> String {
        self.url(1)
    }

    /// Base URL for `[telegram] api_url`.
    pub fn telegram_url(&self) -> String {
        self.url(2)
    }

    /// Changes the live world between ticks (tasks, issues, stages, faults,
    /// rate limit, credentials); requests wait while `f` runs.
    pub fn update<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut lock(&self.shared).world)
    }

    /// Reads the live world without changing it.
    pub fn inspect<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&lock(&self.shared).world)
    }

    /// A snapshot of the live scenario.
    pub fn scenario(&self) -> Scenario {
        self.inspect(|w| w.scenario.clone())
    }

    pub fn task(&self, id: i64) -> Option<SimTask> {
        self.inspect(|w| w.tasks.iter().find(|t| t.id == id).cloned())
    }

    pub fn tasks(&self) -> Vec<SimTask> {
        self.inspect(|w| w.tasks.clone())
    }

    /// The issue `issue_id` of project `project_id`.
    pub fn issue(&self, project_id: &str, issue_id: &str) -> Option<SimIssue> {
        self.inspect(|w| {
            w.projects
                .iter()
                .find(|p| p.id == project_id)?
                .issues
                .iter()
                .find(|i| i.id == issue_id)
                .cloned()
        })
    }

    /// The name of the state the issue is in now.
    pub fn issue_state_name(&self, project_id: &str, issue_id: &str) -> Option<String> {
        self.inspect(|w| {
            let p = w.projects.iter().find(|p| p.id == project_id)?;
            let i = p.issues.iter().find(|i| i.id == issue_id)?;
            p.states
                .iter()
                .find(|s| s.id == i.state)
                .map(|s| s.name.clone())
        })
    }

    /// Every request so far, in arrival order (faulted and refused ones too).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).log.clone()
    }

    pub fn requests_to(&self, route: Route) -> Vec<RecordedRequest> {
        self.requests_where(|r| r.route == Some(route))
    }

    pub fn requests_where(&self, f: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        lock(&self.shared)
            .log
            .iter()
            .filter(|r| f(r))
            .cloned()
            .collect()
    }

    /// Requests seen on `route` (whatever was answered).
    pub fn count(&self, route: Route) -> usize {
        lock(&self.shared)
            .log
            .iter()
            .filter(|r| r.route == Some(route))
            .count()
    }

    /// Requests seen by `peer`, matched to a route or not.
    pub fn count_peer(&self, peer: Peer) -> usize {
        lock(&self.shared)
            .log
            .iter()
            .filter(|r| r.peer == peer)
            .count()
    }

    /// Forgets recorded requests (not messages), e.g. between two ticks.
    pub fn clear_requests(&self) {
        lock(&self.shared).log.clear();
    }

    /// Texts Telegram accepted, in order.
    pub fn telegram_messages(&self) -> Vec<String> {
        lock(&self.shared)
            .messages
            .iter()
            .map(|m| m.text.clone())
            .collect()
    }

    /// The accepted sendMessage calls with chat, thread and preview options.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        lock(&self.shared).messages.clone()
    }

    /// Stops the listeners and joins their threads; in-flight hangs end early.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in &mut self.servers {
            s.stop();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
