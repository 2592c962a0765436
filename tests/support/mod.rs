//! The integration-test builder: a scenario and a config in, the real
//! binary run against the loopback simulator, and assertions on its exit
//! code, its report and what the simulator recorded. Every run is checked
//! for leaked secrets.
#![allow(dead_code)]

pub mod api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use reconcile::sim::{Scenario, SimProject, SimTask, Simulator, sim_uuid};
use serde_json::Value;

pub use reconcile::sim::{Fault, Route};

pub const HOUR: i64 = 3600;
pub const REPO: &str = "acme/shop";
pub const SEED_TEXT: &str = "разблокирована (потерян webhook)";

/// Every configuration key of docs/configuration.md, as
/// the example config and reconcile.toml(5) must name them.
pub const CONFIG_KEYS: &[&str] = &[
    "enabled",
    "plane_enabled",
    "skip_blocked_enabled",
    "notify_unblock",
    "task_deps_enabled",
    "grace_default_s",
    "grace_overrides",
    "max_developer_retries",
    "max_actions",
    "skip_work_items",
    "interval_s",
    "deadline_s",
    "path",
    "states_cache_ttl_s",
    "url",
    "token_file",
    "webhook_path",
    "webhook_secret_file",
    "timeout_s",
    "webhook_timeout_s",
    "workspace",
    "api_key_file",
    "items_path",
    "per_page",
    "max_pages",
    "rate_reserve",
    "concurrency",
    "full_resync_s",
    "resync_overlap_s",
    "state_names",
    "bot_token_file",
    "chat_id",
    "message_thread_id",
    "api_url",
    "link_template",
    "unblock_template",
    "cycle_template",
    "digest_over",
    "delivery_reserve_s",
    "textfile",
    "repo",
    "plane_project_id",
];

/// The id of the default project ET.
pub fn pid() -> String {
    sim_uuid(&["project", "ET"])
}

/// The id of issue ET-`seq` of project ET.
pub fn issue_id(seq: i64) -> String {
    sim_uuid(&["issue", &pid(), &seq.to_string()])
}

/// A test being set up.
pub struct Test {
    webhook_secret: Option<String>,
    scenario: Scenario,
    settings: BTreeMap<String, Vec<(String, String)>>,
    telegram: bool,
    extra_projects: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<(String, String)>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// One project ET (repo acme/shop) with Plane's typical states, no tasks.
    pub fn new() -> Test {
        let project = SimProject::new(&pid(), "ET", REPO);
        Test {
            webhook_secret: None,
            scenario: Scenario {
                projects: vec![project],
                ..Scenario::default()
            },
            settings: BTreeMap::new(),
            telegram: true,
            extra_projects: Vec::new(),
            env: Vec::new(),
            unset: Vec::new(),
        }
    }

    /// A task idle for two hours with a green gate, its issue in `state`.
    pub fn stuck(self, id: i64, stage: &str, state: &str) -> Test {
        self.task_in(SimTask::new(id, stage).repo(REPO).green(), state)
    }

    /// `task`, with a new issue of project ET in `state` (two hours old).
    pub fn task_in(mut self, task: SimTask, state: &str) -> Test {
        let issue = self.scenario.projects[0].add_issue(task.id, state, 2 * HOUR);
        self.scenario.tasks.push(task.issue(&issue));
        self
    }

    /// Issue ET-`seq` in `state`, two hours old, without a task.
    pub fn issue(mut self, seq: i64, state: &str) -> Test {
        self.scenario.projects[0].add_issue(seq, state, 2 * HOUR);
        self
    }

    /// Issue ET-`seq` in `state` with task `seq` in `stage` (idle, red gate).
    pub fn issue_with_task(self, seq: i64, state: &str, stage: &str) -> Test {
        self.task_in(SimTask::new(seq, stage).repo(REPO), state)
    }

    /// The simulator checks signatures with `sim`; our config carries `ours`.
    pub fn webhook_secrets(mut self, sim: Option<&str>, ours: Option<&str>) -> Test {
        self.scenario.webhook_secret = sim.map(str::to_string);
        self.webhook_secret = ours.map(str::to_string);
        self
    }

    /// A task without a Plane issue.
    pub fn task(mut self, task: SimTask) -> Test {
        self.scenario.tasks.push(task);
        self
    }

    pub fn scenario(mut self, f: impl FnOnce(&mut Scenario)) -> Test {
        f(&mut self.scenario);
        self
    }

    /// Plane's answers carry no `X-RateLimit-*` headers (a proxy strips
    /// them); Plane still counts.
    pub fn no_rate_headers(mut self) -> Test {
        self.scenario.rate_limit.headers = false;
        self
    }

    /// Plane's window is full (someone else spent it) for `secs` from the
    /// tick's first counted request: 429s with the seconds left as
    /// Retry-After.
    pub fn plane_window_full_for(mut self, secs: u64) -> Test {
        self.scenario.rate_limit.full_for_s = secs;
        self
    }

    pub fn fault(mut self, route: Route, fault: Fault) -> Test {
        self.scenario.push_fault(route, fault);
        self
    }

    /// `key = value` (value in TOML syntax) in `[section]`.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Test {
        self.settings
            .entry(section.to_string())
            .or_default()
            .push((key.to_string(), value.to_string()));
        self
    }

    /// Leaves `key` of `[section]` out of the config (even a required one).
    pub fn unset(mut self, section: &str, key: &str) -> Test {
        self.unset.push((section.to_string(), key.to_string()));
        self
    }

    pub fn no_telegram(mut self) -> Test {
        self.telegram = false;
        self
    }

    /// Raw TOML appended to the config (extra [[projects]] …).
    pub fn append(mut self, toml: &str) -> Test {
        self.extra_projects.push(toml.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts the simulator and writes config and secrets into a temp dir.
    pub fn start(self) -> Stack {
        let sim = Simulator::start(self.scenario.clone()).expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let s = &self.scenario;
        let secret = |name: &str, value: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, value).unwrap();
            set_mode(&p, 0o600);
            p
        };
        let orch = secret("orchestrator.token", &s.orchestrator_token);
        let plane = secret("plane.key", &s.plane_api_key);
        let bot = secret("telegram.token", &s.telegram_bot_token);
        let webhook = self
            .webhook_secret
            .as_ref()
            .map(|w| secret("webhook.secret", w));
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut put = |section: &str, key: &str, value: String| {
            sections
                .entry(section.into())
                .or_default()
                .push((key.into(), value));
        };
        put("state", "path", q(&dir.path().join("state.sqlite")));
        put(
            "orchestrator",
            "url",
            format!("{:?}", sim.orchestrator_url()),
        );
        put("orchestrator", "token_file", q(&orch));
        put("orchestrator", "timeout_s", "3".into());
        put("orchestrator", "webhook_timeout_s", "3".into());
        if let Some(w) = &webhook {
            put("orchestrator", "webhook_secret_file", q(w));
        }
        put("plane", "url", format!("{:?}", sim.plane_url()));
        put("plane", "workspace", format!("{:?}", s.plane_workspace));
        put("plane", "api_key_file", q(&plane));
        put("plane", "timeout_s", "3".into());
        if self.telegram {
            put("telegram", "bot_token_file", q(&bot));
            put("telegram", "chat_id", "\"-1001234567890\"".into());
            put("telegram", "api_url", format!("{:?}", sim.telegram_url()));
        }
        for (section, kvs) in &self.settings {
            for (k, v) in kvs {
                let entry = sections.entry(section.clone()).or_default();
                entry.retain(|(key, _)| key != k);
                entry.push((k.clone(), v.clone()));
            }
        }
        for (section, key) in &self.unset {
            if let Some(kvs) = sections.get_mut(section) {
                kvs.retain(|(k, _)| k != key);
            }
        }
        let mut toml = String::new();
        for (section, kvs) in &sections {
            toml.push_str(&format!("[{section}]\n"));
            for (k, v) in kvs {
                toml.push_str(&format!("{k} = {v}\n"));
            }
            toml.push('\n');
        }
        for p in &s.projects {
            toml.push_str(&format!(
                "[[projects]]\nrepo = {:?}\nplane_project_id = {:?}\n\n",
                p.repo, p.id
            ));
        }
        for extra in &self.extra_projects {
            toml.push_str(extra);
            toml.push('\n');
        }
        let config = dir.path().join("reconcile.toml");
        std::fs::write(&config, &toml).unwrap();
        set_mode(&config, 0o600);
        let mut secrets = vec![
            s.orchestrator_token.clone(),
            s.plane_api_key.clone(),
            s.telegram_bot_token.clone(),
        ];
        secrets.extend(self.webhook_secret.clone());
        let webhook_path = sections
            .get("orchestrator")
            .and_then(|kvs| kvs.iter().find(|(k, _)| k == "webhook_path"))
            .map(|(_, v)| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "/webhooks/plane".into());
        Stack {
            sim,
            dir,
            config,
            secrets,
            env: self.env,
            webhook_path,
            api_checked: AtomicUsize::new(0),
        }
    }
}

fn q(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A started test: the simulator, the temp dir, the config.
pub struct Stack {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    secrets: Vec<String>,
    env: Vec<(String, String)>,
    /// `[orchestrator] webhook_path` as the config says.
    webhook_path: String,
    /// Recorded requests already checked against the API document.
    api_checked: AtomicUsize,
}

impl Stack {
    /// Also checks every later run's output for `secret`.
    pub fn add_secret(&mut self, secret: &str) {
        self.secrets.push(secret.to_string());
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.sqlite")
    }

    /// Makes SQLite refuse every insert into `table` of the sidecar
    /// (created first, as a live tick would) with `message`: the one write
    /// a test is about fails while everything else in the sidecar works.
    /// Returns its path.
    pub fn refuse_inserts(&self, table: &str, message: &str) -> PathBuf {
        let path = self.state_path();
        create_sidecar(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}
             BEGIN SELECT RAISE(ABORT, '{message}'); END;"
        ))
        .unwrap();
        path
    }

    /// Runs `reconcile --config <cfg> ARGS…` with a clean environment.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(env);
        cmd.arg("--config").arg(&self.config).args(args);
        self.finish(&mut cmd)
    }

    /// Runs `reconcile ARGS…` without `--config` (the config comes from
    /// `$RECONCILE_CONFIG` or the default path).
    pub fn run_bare(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(env);
        cmd.args(args);
        self.finish(&mut cmd)
    }

    /// As `run_with_env`, through a python3 wrapper that also reports the
    /// child's peak resident set size (ru_maxrss, KiB on Linux).
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        const WRAPPER: &str = "import resource, subprocess, sys\n\
            rc = subprocess.call(sys.argv[2:])\n\
            open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
            sys.exit(rc)\n";
        let rss_file = self.dir.path().join("maxrss.txt");
        let mut cmd = Command::new("python3");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_PROXY", "127.0.0.1")
            .arg("-c")
            .arg(WRAPPER)
            .arg(&rss_file)
            .arg(env!("CARGO_BIN_EXE_reconcile"))
            .arg("--config")
            .arg(&self.config)
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let run = self.finish(&mut cmd);
        let kib = std::fs::read_to_string(&rss_file)
            .unwrap_or_else(|e| panic!("no max RSS from the wrapper ({e}):\n{run}"))
            .trim()
            .parse()
            .expect("max RSS is a number");
        (run, kib)
    }

    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reconcile"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_PROXY", "127.0.0.1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cmd` and checks that no secret leaked.
    fn finish(&self, cmd: &mut Command) -> Run {
        let out = cmd.output().expect("the binary runs");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for s in &self.secrets {
            assert!(
                !run.stdout.contains(s.as_str()) && !run.stderr.contains(s.as_str()),
                "a secret leaked into the output:\n{run}"
            );
        }
        self.check_api(&run);
        run
    }

    /// Every orchestrator exchange since the last run is one that
    /// docs/orchestrator-api.yaml describes (see `api`).
    fn check_api(&self, run: &Run) {
        let log = self.sim.requests();
        let from = self.api_checked.load(Ordering::SeqCst);
        let from = if from > log.len() { 0 } else { from };
        if let Err(e) = api::spec().check_all(&log[from..], &self.webhook_path) {
            panic!("an exchange outside docs/orchestrator-api.yaml: {e}\n{run}");
        }
        self.api_checked.store(log.len(), Ordering::SeqCst);
    }

    /// Starts `reconcile --config <cfg> ARGS…` and SIGKILLs it as soon as
    /// the simulator has received a request to `route` (`nth`, from 1).
    pub fn kill_at(&self, args: &[&str], route: Route, nth: usize) {
        let mut child = self
            .command(&[])
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        let start = std::time::Instant::now();
        while self.count(route) < nth {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the tick ended ({status}) before request {nth} to {route:?}");
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "no request to {route:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    /// A JSON tick: `args` plus `-o json`.
    pub fn tick(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        self.run(&all)
    }

    pub fn messages(&self) -> Vec<String> {
        self.sim.telegram_messages()
    }

    pub fn count(&self, route: Route) -> usize {
        self.sim.count(route)
    }

    pub fn stage(&self, task: i64) -> String {
        self.sim.task(task).expect("task exists").stage
    }

    /// `status -o json` as a value.
    pub fn status(&self) -> Value {
        let run = self.run(&["status", "-o", "json"]);
        run.code(0);
        run.json()
    }
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code:\n{self}");
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}:\n{self}");
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}:\n{self}");
        self
    }

    /// stderr is exactly one line containing each of `parts`.
    pub fn stderr_one_line(&self, parts: &[&str]) -> &Run {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "stderr should be one line:\n{self}");
        for p in parts {
            assert!(lines[0].contains(p), "stderr lacks {p:?}:\n{self}");
        }
        self
    }

    pub fn stdout_empty(&self) -> &Run {
        assert!(self.stdout.is_empty(), "stdout should be empty:\n{self}");
        self
    }

    /// The gate pass units of a JSON report.
    pub fn gate_units(&self) -> Vec<Value> {
        self.json()["gate"]["units"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The gate pass unit of `task`.
    pub fn gate_unit(&self, task: i64) -> Value {
        self.gate_units()
            .into_iter()
            .find(|u| u["task_id"] == task)
            .unwrap_or_else(|| panic!("no unit for task {task}:\n{self}"))
    }

    /// The Plane pass units of a JSON report.
    pub fn plane_units(&self) -> Vec<Value> {
        self.json()["plane"]["units"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Plane pass unit of issue ET-`seq`.
    pub fn plane_unit(&self, seq: i64) -> Value {
        let id = issue_id(seq);
        self.plane_units()
            .into_iter()
            .find(|u| u["issue_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no unit for issue ET-{seq}:\n{self}"))
    }

    /// "outcome" or "outcome/reason" of issue ET-`seq`'s unit.
    pub fn plane_outcome(&self, seq: i64) -> String {
        outcome_of(&self.plane_unit(seq))
    }

    /// "outcome" or "outcome/reason" of task's unit.
    pub fn gate_outcome(&self, task: i64) -> String {
        outcome_of(&self.gate_unit(task))
    }
}

fn outcome_of(u: &Value) -> String {
    match u["reason"].as_str() {
        Some(r) => format!("{}/{r}", u["outcome"].as_str().unwrap()),
        None => u["outcome"].as_str().unwrap().to_string(),
    }
}

/// Creates a sidecar at `path` (its schema, nothing in it), as the first
/// live tick would.
pub fn create_sidecar(path: &Path) {
    reconcile::harness::Sidecar::open(path)
        .unwrap()
        .close()
        .unwrap();
}
