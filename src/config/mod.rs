//! Configuration (docs/configuration.md): the TOML file, the environment
//! overrides of the original Python reconciler and the secrets. Loading never panics; every error names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub reconcile: Reconcile,
    pub state: State,
    pub orchestrator: Orchestrator,
    pub plane: Plane,
    /// None: no `[telegram]` section, nothing is queued.
    pub telegram: Option<Telegram>,
    pub metrics: Metrics,
    pub projects: Vec<Project>,
    /// Warnings met while loading (bad grace-override JSON entries, secret
    /// files readable by others …), logged by the caller.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reconcile {
    pub enabled: bool,
    pub plane_enabled: bool,
    pub skip_blocked_enabled: bool,
    pub notify_unblock: bool,
    pub task_deps_enabled: bool,
    pub grace_default_s: i64,
    pub grace_overrides: BTreeMap<String, i64>,
    pub max_developer_retries: i64,
    /// 0 = no cap.
    pub max_actions: u64,
    pub skip_work_items: Vec<String>,
    pub interval_s: Option<u64>,
    pub deadline_s: u64,
}

impl Reconcile {
    /// The grace of a stage: its override, else the default.
    pub fn grace_for_stage(&self, stage: &str) -> i64 {
        self.grace_overrides
            .get(stage)
            .copied()
            .unwrap_or(self.grace_default_s)
    }
}

impl Default for Reconcile {
    fn default() -> Self {
        Reconcile {
            enabled: true,
            plane_enabled: true,
            skip_blocked_enabled: true,
            notify_unblock: true,
            task_deps_enabled: true,
            grace_default_s: 900,
            grace_overrides: BTreeMap::new(),
            max_developer_retries: 3,
            max_actions: 50,
            skip_work_items: Vec::new(),
            interval_s: None,
            deadline_s: 50,
        }
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub path: PathBuf,
    pub states_cache_ttl_s: u64,
}

#[derive(Debug, Clone)]
pub struct Orchestrator {
    pub url: String,
    pub token: Option<Secret>,
    pub webhook_path: String,
    pub webhook_secret: Option<Secret>,
    pub timeout: Duration,
    pub webhook_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Plane {
    pub url: String,
    pub workspace: String,
    pub api_key: Option<Secret>,
    pub items_path: String,
    pub per_page: u32,
    pub rate_reserve: u32,
    pub concurrency: u32,
    pub full_resync_s: u64,
    pub resync_overlap_s: u64,
    pub timeout: Duration,
    /// logical key → Plane state names, first present wins.
    pub state_names: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Telegram {
    /// None only when secrets were not read (`check --offline`).
    pub bot_token: Option<Secret>,
    pub chat_id: String,
    pub message_thread_id: Option<i64>,
    pub api_url: String,
    pub link_template: Option<String>,
    pub unblock_template: String,
    pub cycle_template: String,
    pub digest_over: usize,
    /// Not in the original reconciler: Telegram calls need a bound like
    /// the other peers.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub repo: String,
    pub plane_project_id: String,
    pub enabled: bool,
    /// Overrides `[plane.state_names]` key by key for this project.
    pub state_names: BTreeMap<String, Vec<String>>,
}

impl Config {
    pub fn project_by_repo(&self, repo: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.repo == repo)
    }
}

/// A configuration error: the process exits 78 and prints this message.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where the config file is: `--config`, else `$RECONCILE_CONFIG`, else
/// /etc/reconcile/reconcile.toml.
pub fn default_path() -> PathBuf {
    std::env::var_os("RECONCILE_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/reconcile/reconcile.toml"))
}

/// Reads and validates the configuration at `path`, applying the process
/// environment (env overrides, `$CREDENTIALS_DIRECTORY`, secret env vars).
/// `read_secrets = false` (`check --offline`, `status`) reads no secret at
/// all and leaves every secret `None`.
pub fn load(path: &Path, read_secrets: bool) -> Result<Config, ConfigError> {
    load_with_env(path, read_secrets, &|name| std::env::var(name).ok())
}

/// As `load`, with the environment given as a lookup (tests). Every
/// environment read of the loader goes through `env`.
///
/// Order: the file (syntax, unknown keys, types, validation), then the
/// environment overrides, then the secrets; the first error wins.
pub fn load_with_env(
    path: &Path,
    read_secrets: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let at = path.display().to_string();
    let file_err = |msg: String| ConfigError(one_line(&format!("config {at}: {msg}")));
    let mut warnings = Vec::new();

    let text =
        read_limited(path, MAX_CONFIG_BYTES).map_err(|e| file_err(format!("cannot read: {e}")))?;
    if let Some(w) = permission_warning(&text.mode, &format!("config file {at}")) {
        warnings.push(w);
    }
    let raw: RawFile =
        toml::from_str(&text.content).map_err(|e| file_err(toml_error(&text.content, &e)))?;
    let (mut config, files) = build(raw, env).map_err(file_err)?;
    apply_env(&mut config.reconcile, env, &mut warnings)?;
    if read_secrets {
        read_all_secrets(&mut config, &files, &at, env, &mut warnings)?;
    }
    config.warnings = warnings;
    Ok(config)
}

// ---------------------------------------------------------------------------
// The file: raw serde structs (every key optional, unknown keys refused), then
// defaults and validation.

/// The logical state keys (docs/decisions.md, state mapping), the only keys `state_names` takes.
pub use crate::core::states::KEYS as LOGICAL_KEYS;

/// Default `[telegram] unblock_template`.
pub const DEFAULT_UNBLOCK_TEMPLATE: &str =
    "🔧 reconciler: {link} {stage} разблокирована (потерян webhook)";
/// Default `[telegram] cycle_template`.
pub const DEFAULT_CYCLE_TEMPLATE: &str = "⛔ reconciler: dependency cycle {cycle}";
/// Default `[telegram] api_url`.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// The env variable of the grace overrides (the original reconciler's name).
pub const GRACE_OVERRIDES_ENV: &str = "ORCH_RECONCILE_GRACE_OVERRIDES_JSON";

const MAX_CONFIG_BYTES: u64 = 4 << 20;
const MAX_SECRET_BYTES: u64 = 64 << 10;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    reconcile: RawReconcile,
    #[serde(default)]
    state: RawState,
    orchestrator: Option<RawOrchestrator>,
    plane: Option<RawPlane>,
    telegram: Option<RawTelegram>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    projects: Vec<RawProject>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    enabled: Option<bool>,
    plane_enabled: Option<bool>,
    skip_blocked_enabled: Option<bool>,
    notify_unblock: Option<bool>,
    task_deps_enabled: Option<bool>,
    grace_default_s: Option<i64>,
    grace_overrides: Option<BTreeMap<String, i64>>,
    max_developer_retries: Option<i64>,
    max_actions: Option<u64>,
    skip_work_items: Option<Vec<String>>,
    interval_s: Option<u64>,
    deadline_s: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    path: Option<PathBuf>,
    states_cache_ttl_s: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrchestrator {
    url: Option<String>,
    token_file: Option<PathBuf>,
    webhook_path: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    timeout_s: Option<u64>,
    webhook_timeout_s: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlane {
    url: Option<String>,
    workspace: Option<String>,
    api_key_file: Option<PathBuf>,
    items_path: Option<String>,
    per_page: Option<u64>,
    rate_reserve: Option<u64>,
    concurrency: Option<u64>,
    full_resync_s: Option<u64>,
    resync_overlap_s: Option<u64>,
    timeout_s: Option<u64>,
    state_names: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelegram {
    bot_token_file: Option<PathBuf>,
    chat_id: Option<ChatId>,
    message_thread_id: Option<i64>,
    api_url: Option<String>,
    link_template: Option<String>,
    unblock_template: Option<String>,
    cycle_template: Option<String>,
    digest_over: Option<u64>,
    timeout_s: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    textfile: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    repo: Option<String>,
    plane_project_id: Option<String>,
    enabled: Option<bool>,
    state_names: Option<BTreeMap<String, Vec<String>>>,
}

/// `chat_id`: an integer or a string in TOML, kept as a string.
struct ChatId(String);

impl<'de> serde::Deserialize<'de> for ChatId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ChatId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ChatId, E> {
                Ok(ChatId(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ChatId, E> {
                Ok(ChatId(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChatId, E> {
                Ok(ChatId(v.trim().to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

type Checked<T> = Result<T, String>;

fn required(section: &str, key: &str, value: Option<String>) -> Checked<String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(format!("{section} {key}: must not be empty")),
        None => Err(format!("{section} {key}: required key missing")),
    }
}

/// `http(s)://host…`, trailing slashes removed. The value is never echoed
/// (a URL may carry credentials).
fn check_url(section: &str, key: &str, value: String) -> Checked<String> {
    let lower = value.get(..8).unwrap_or(&value).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &value[7..]
    } else if lower.starts_with("https://") {
        &value[8..]
    } else {
        return Err(format!(
            "{section} {key}: must start with http:// or https://"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') || value.chars().any(char::is_whitespace) {
        return Err(format!("{section} {key}: not a valid http(s) URL"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

fn positive(section: &str, key: &str, value: Option<u64>, default: u64) -> Checked<u64> {
    match value.unwrap_or(default) {
        0 => Err(format!("{section} {key}: must be greater than 0")),
        v => Ok(v),
    }
}

fn in_range(section: &str, key: &str, value: u64, lo: u64, hi: u64) -> Checked<u64> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{section} {key}: must be between {lo} and {hi}, found {value}"
        ))
    }
}

fn check_state_names(
    section: &str,
    names: Option<BTreeMap<String, Vec<String>>>,
) -> Checked<BTreeMap<String, Vec<String>>> {
    let names = names.unwrap_or_default();
    for (key, list) in &names {
        if !LOGICAL_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "{section} {key:?}: not a logical state key (one of {})",
                LOGICAL_KEYS.join(", ")
            ));
        }
        if list.iter().any(|n| n.trim().is_empty()) {
            return Err(format!("{section} {key}: a state name must not be empty"));
        }
    }
    Ok(names)
}

/// `$STATE_DIRECTORY/state.sqlite` (first entry) under systemd, else
/// /var/lib/reconcile/state.sqlite.
fn default_state_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("STATE_DIRECTORY")
        .and_then(|dirs| {
            dirs.split(':')
                .next()
                .filter(|d| !d.trim().is_empty())
                .map(|d| Path::new(d).join("state.sqlite"))
        })
        .unwrap_or_else(|| PathBuf::from("/var/lib/reconcile/state.sqlite"))
}

/// The `*_file` keys, kept out of the public types: only the loader reads
/// them.
#[derive(Default)]
struct SecretFiles {
    orchestrator_token: Option<PathBuf>,
    webhook_secret: Option<PathBuf>,
    plane_api_key: Option<PathBuf>,
    telegram_bot_token: Option<PathBuf>,
}

fn build(raw: RawFile, env: &dyn Fn(&str) -> Option<String>) -> Checked<(Config, SecretFiles)> {
    let mut files = SecretFiles::default();
    let r = raw.reconcile;
    let d = Reconcile::default();
    let deadline_s = positive("[reconcile]", "deadline_s", r.deadline_s, d.deadline_s)?;
    let reconcile = Reconcile {
        enabled: r.enabled.unwrap_or(d.enabled),
        plane_enabled: r.plane_enabled.unwrap_or(d.plane_enabled),
        skip_blocked_enabled: r.skip_blocked_enabled.unwrap_or(d.skip_blocked_enabled),
        notify_unblock: r.notify_unblock.unwrap_or(d.notify_unblock),
        task_deps_enabled: r.task_deps_enabled.unwrap_or(d.task_deps_enabled),
        grace_default_s: r.grace_default_s.unwrap_or(d.grace_default_s),
        grace_overrides: r.grace_overrides.unwrap_or_default(),
        max_developer_retries: r.max_developer_retries.unwrap_or(d.max_developer_retries),
        max_actions: r.max_actions.unwrap_or(d.max_actions),
        skip_work_items: r.skip_work_items.unwrap_or_default(),
        interval_s: r.interval_s,
        deadline_s,
    };

    let state = State {
        path: match raw.state.path {
            Some(p) if p.as_os_str().is_empty() => {
                return Err("[state] path: must not be empty".into());
            }
            Some(p) => p,
            None => default_state_path(env),
        },
        states_cache_ttl_s: raw.state.states_cache_ttl_s.unwrap_or(300),
    };

    let o = raw
        .orchestrator
        .ok_or("[orchestrator] url: required key missing (no [orchestrator] section)")?;
    files.orchestrator_token = o.token_file;
    files.webhook_secret = o.webhook_secret_file;
    let webhook_path = o.webhook_path.unwrap_or_else(|| "/webhooks/plane".into());
    if !webhook_path.starts_with('/') || webhook_path.chars().any(char::is_whitespace) {
        return Err("[orchestrator] webhook_path: must be a path starting with /".into());
    }
    let orchestrator = Orchestrator {
        url: check_url(
            "[orchestrator]",
            "url",
            required("[orchestrator]", "url", o.url)?,
        )?,
        token: None,
        webhook_path,
        webhook_secret: None,
        timeout: Duration::from_secs(positive("[orchestrator]", "timeout_s", o.timeout_s, 10)?),
        webhook_timeout: Duration::from_secs(positive(
            "[orchestrator]",
            "webhook_timeout_s",
            o.webhook_timeout_s,
            30,
        )?),
    };

    let p = raw
        .plane
        .ok_or("[plane] url: required key missing (no [plane] section)")?;
    files.plane_api_key = p.api_key_file;
    let url = check_url("[plane]", "url", required("[plane]", "url", p.url)?)?;
    let workspace = required("[plane]", "workspace", p.workspace)?;
    if workspace.contains('/') || workspace.chars().any(char::is_whitespace) {
        return Err("[plane] workspace: must be a slug (no / or spaces)".into());
    }
    let items_path = p.items_path.unwrap_or_else(|| "work-items".into());
    if items_path != "work-items" && items_path != "issues" {
        return Err(format!(
            "[plane] items_path: must be \"work-items\" or \"issues\", found {items_path:?}"
        ));
    }
    let u32_max = u64::from(u32::MAX);
    let plane = Plane {
        url,
        workspace,
        api_key: None,
        items_path,
        per_page: in_range("[plane]", "per_page", p.per_page.unwrap_or(100), 1, 1000)? as u32,
        rate_reserve: in_range(
            "[plane]",
            "rate_reserve",
            p.rate_reserve.unwrap_or(10),
            0,
            u32_max,
        )? as u32,
        concurrency: in_range("[plane]", "concurrency", p.concurrency.unwrap_or(4), 1, 64)? as u32,
        full_resync_s: p.full_resync_s.unwrap_or(1800),
        resync_overlap_s: p.resync_overlap_s.unwrap_or(120),
        timeout: Duration::from_secs(positive("[plane]", "timeout_s", p.timeout_s, 10)?),
        state_names: check_state_names("[plane.state_names]", p.state_names)?,
    };

    let telegram = match raw.telegram {
        None => None,
        Some(t) => {
            files.telegram_bot_token = t.bot_token_file;
            let chat_id = match t.chat_id {
                Some(ChatId(c)) if !c.is_empty() => c,
                Some(_) => return Err("[telegram] chat_id: must not be empty".into()),
                None => return Err("[telegram] chat_id: required key missing".into()),
            };
            let api_url = check_url(
                "[telegram]",
                "api_url",
                t.api_url.unwrap_or_else(|| DEFAULT_TELEGRAM_API_URL.into()),
            )?;
            let digest_over = in_range(
                "[telegram]",
                "digest_over",
                t.digest_over.unwrap_or(5),
                1,
                u32_max,
            )? as usize;
            Some(Telegram {
                bot_token: None,
                chat_id,
                message_thread_id: t.message_thread_id,
                api_url,
                link_template: t.link_template.filter(|l| !l.trim().is_empty()),
                unblock_template: t
                    .unblock_template
                    .unwrap_or_else(|| DEFAULT_UNBLOCK_TEMPLATE.into()),
                cycle_template: t
                    .cycle_template
                    .unwrap_or_else(|| DEFAULT_CYCLE_TEMPLATE.into()),
                digest_over,
                timeout: Duration::from_secs(positive("[telegram]", "timeout_s", t.timeout_s, 10)?),
            })
        }
    };

    let mut projects: Vec<Project> = Vec::new();
    for (i, rp) in raw.projects.into_iter().enumerate() {
        let section = format!("[[projects]] #{}", i + 1);
        let repo = required(&section, "repo", rp.repo)?;
        let plane_project_id = required(&section, "plane_project_id", rp.plane_project_id)?;
        if projects.iter().any(|p| p.repo == repo) {
            return Err(format!("{section} repo: {repo:?} is listed twice"));
        }
        projects.push(Project {
            repo,
            plane_project_id,
            enabled: rp.enabled.unwrap_or(true),
            state_names: check_state_names(&format!("{section} state_names"), rp.state_names)?,
        });
    }

    let config = Config {
        reconcile,
        state,
        orchestrator,
        plane,
        telegram,
        metrics: Metrics {
            textfile: raw.metrics.textfile.filter(|p| !p.as_os_str().is_empty()),
        },
        projects,
        warnings: Vec::new(),
    };
    Ok((config, files))
}

/// One line, whatever went in.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A toml/serde error as one line naming the key: `[section] key: …` or
/// `unknown key `x` in [section]`, plus the line and column when known.
/// Values are not echoed (only their type).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    // The key path is private in toml 0.9; its Display shows it as a last
    // line "in `a.b`" when no input is attached.
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let keys: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')))
        .map(|k| k.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    let message = e.message().trim();
    let at = e
        .span()
        .map(|s| {
            let start = s.start.min(text.len());
            let before = text.get(..start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" (line {line}, column {col})")
        })
        .unwrap_or_default();

    // `[reconcile]`, `[plane.state_names]`, `[[projects]]` (toml does not
    // give the index of an array-of-tables entry; the line does).
    let section_of = |keys: &[String]| -> String {
        let joined = keys.join(".");
        if keys.first().map(String::as_str) == Some("projects") {
            format!("[[{joined}]]")
        } else {
            format!("[{joined}]")
        }
    };

    if message == "duplicate key"
        && let Some(name) = e.span().and_then(|s| text.get(s))
    {
        return one_line(&format!("duplicate key `{}`{at}", name.trim()));
    }

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| format!(" (expected {})", e.replace('`', "")))
            .unwrap_or_default();
        let place = if keys.is_empty() {
            "at the top level".to_string()
        } else {
            // The key path may end with the unknown key itself.
            let mut k = keys.clone();
            if k.last().map(String::as_str) == Some(name) {
                k.pop();
            }
            if k.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {}", section_of(&k))
            }
        };
        return one_line(&format!("unknown key `{name}` {place}{expected}{at}"));
    }

    let detail = describe_serde_message(message);
    let location = match keys.len() {
        0 => String::new(),
        1 => format!("{}: ", keys[0]),
        n => format!("{} {}: ", section_of(&keys[..n - 1]), keys[n - 1]),
    };
    one_line(&format!("{location}{detail}{at}"))
}

/// "invalid type: string \"x\", expected i64" → "expected an integer, found
/// string" (no value: it could be anything).
fn describe_serde_message(message: &str) -> String {
    let (found, expected) = match message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "))
    {
        Some(pair) => pair,
        None => return message.to_string(),
    };
    let found_kind = found.split([' ', '`', '"']).next().unwrap_or(found).trim();
    let found_kind = match found_kind {
        "floating" => "float",
        "sequence" => "array",
        "map" => "table",
        "integer" if message.starts_with("invalid value") => {
            // Show the number: it is the point (e.g. negative for u64).
            return format!(
                "expected {}, found {}",
                describe_expected(expected),
                found.trim_start_matches("integer ").replace('`', "")
            );
        }
        other => other,
    };
    format!(
        "expected {}, found {found_kind}",
        describe_expected(expected)
    )
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "i64" | "i32" => "an integer".into(),
        "u64" | "u32" | "usize" => "a non-negative integer".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "path string" => "a path string".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Environment overrides (the original reconciler's names).

/// The original reconciler's boolean spellings, case-insensitive, trimmed.
pub fn parse_env_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Shown in an env error: the start of the value, on one line.
fn shown_value(v: &str) -> String {
    let cut: String = v.chars().take(40).collect();
    format!("{cut:?}")
}

fn env_int(name: &str, raw: &str) -> Result<i64, ConfigError> {
    parse_python_int(raw).map_err(|why| {
        ConfigError(format!(
            "env {name}: expected an integer, found {} ({why})",
            shown_value(raw)
        ))
    })
}

fn env_uint(name: &str, raw: &str) -> Result<u64, ConfigError> {
    let v = env_int(name, raw)?;
    u64::try_from(v).map_err(|_| {
        ConfigError(format!(
            "env {name}: expected a non-negative integer, found {v}"
        ))
    })
}

/// Applies the original reconciler's env variables over the file. Blank or whitespace-only
/// values of the boolean and integer variables are errors ("anything else",
/// docs/configuration.md). A blank `ORCH_RECONCILE_GRACE_OVERRIDES_JSON` is treated as
/// UNSET (the file table stays): the original read a blank value as "no
/// overrides", which was its default; here the default is the file table,
/// and an empty `VAR=` line in an environment file should not silently wipe
/// it. Any non-blank value replaces the file table, even when it parses to
/// {} with warnings.
fn apply_env(
    r: &mut Reconcile,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let bools: [(&str, &mut bool); 5] = [
        ("ORCH_RECONCILE_ENABLED", &mut r.enabled),
        ("ORCH_RECONCILE_PLANE_ENABLED", &mut r.plane_enabled),
        (
            "ORCH_RECONCILE_SKIP_BLOCKED_ENABLED",
            &mut r.skip_blocked_enabled,
        ),
        ("ORCH_RECONCILE_NOTIFY_UNBLOCK", &mut r.notify_unblock),
        ("ORCH_TASK_DEPS_ENABLED", &mut r.task_deps_enabled),
    ];
    for (name, slot) in bools {
        if let Some(v) = env(name) {
            *slot = parse_env_bool(&v).ok_or_else(|| {
                ConfigError(format!(
                    "env {name}: expected a boolean (true/false/1/0/yes/no/on/off), found {}",
                    shown_value(&v)
                ))
            })?;
        }
    }
    if let Some(v) = env("ORCH_RECONCILE_GRACE_DEFAULT_S") {
        r.grace_default_s = env_int("ORCH_RECONCILE_GRACE_DEFAULT_S", &v)?;
    }
    if let Some(v) = env("ORCH_MAX_DEVELOPER_RETRIES") {
        r.max_developer_retries = env_int("ORCH_MAX_DEVELOPER_RETRIES", &v)?;
    }
    if let Some(v) = env("ORCH_RECONCILE_MAX_ACTIONS") {
        r.max_actions = env_uint("ORCH_RECONCILE_MAX_ACTIONS", &v)?;
    }
    if let Some(v) = env("ORCH_RECONCILE_INTERVAL_S") {
        r.interval_s = Some(env_interval(&v)?);
    }
    if let Some(v) = env("ORCH_RECONCILE_DEADLINE_S") {
        let d = env_uint("ORCH_RECONCILE_DEADLINE_S", &v)?;
        if d == 0 {
            return Err(ConfigError(
                "env ORCH_RECONCILE_DEADLINE_S: must be greater than 0".into(),
            ));
        }
        r.deadline_s = d;
    }
    if let Some(v) = env(GRACE_OVERRIDES_ENV)
        && !v.trim().is_empty()
    {
        let (table, w) = parse_grace_overrides_json(&v);
        r.grace_overrides = table;
        warnings.extend(w);
    }
    Ok(())
}

/// The original reconciler's `reconcile_interval_s` was a float setting: accept a
/// non-negative number and round it up to whole seconds (it is only shown).
fn env_interval(raw: &str) -> Result<u64, ConfigError> {
    const NAME: &str = "ORCH_RECONCILE_INTERVAL_S";
    if let Ok(v) = parse_python_int(raw) {
        return u64::try_from(v).map_err(|_| {
            ConfigError(format!(
                "env {NAME}: expected a non-negative number, found {v}"
            ))
        });
    }
    match raw.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..1e15).contains(&f) => Ok(f.ceil() as u64),
        _ => Err(ConfigError(format!(
            "env {NAME}: expected a non-negative number of seconds, found {}",
            shown_value(raw)
        ))),
    }
}

// ---------------------------------------------------------------------------
// Python `int()` of a string and the grace-overrides JSON.

/// Python's `str.isspace`: Rust's Unicode White_Space plus U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `int(s)` for base 10, limited to i64: surrounding whitespace, an
/// optional sign, ASCII digits with single `_` between digits; leading zeros
/// are fine ("007" → 7). (Python also takes non-ASCII decimal digits such as
/// "١٢"; those are refused here.) The error says why, without the value.
pub fn parse_python_int(s: &str) -> Result<i64, &'static str> {
    let t = s.trim_matches(py_space);
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let b = body.as_bytes();
    if b.is_empty() {
        return Err("no digits");
    }
    if !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return Err("not a decimal integer");
    }
    let mut acc: i64 = 0;
    let mut prev_underscore = false;
    for &c in b {
        if c == b'_' {
            if prev_underscore {
                return Err("not a decimal integer");
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        if !c.is_ascii_digit() {
            return Err("not a decimal integer");
        }
        let d = i64::from(c - b'0');
        // Accumulate negatively so that i64::MIN fits.
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(d))
            .ok_or("out of the 64-bit range")?;
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or("out of the 64-bit range")
    }
}

/// Parses the original reconciler's `reconcile_grace_overrides_json` with its never-raise
/// contract and Python `int()` semantics (docs/configuration.md): {stage: seconds} and
/// the warnings (they name the variable and the key, never a value).
///
/// Blank → {} without a warning (as the original). Invalid JSON or a non-object →
/// one warning, {}. Per value: integers (outside i64 → ignored), finite
/// floats truncated toward zero (outside i64 → ignored), true/false → 1/0,
/// integer strings as Python `int()` reads them; anything else (null,
/// arrays, objects, other strings, NaN, ±Infinity) → warning, key ignored.
/// Duplicate keys: the last one wins, as in Python (even if it is invalid).
///
/// JSON is read by a small parser of Python's `json.loads` grammar rather
/// than serde_json: Python accepts the NaN / Infinity / -Infinity literals
/// (and lone surrogate escapes, and numbers beyond f64 as ±inf), serde_json
/// rejects them, which would turn one bad value into "invalid JSON" and lose
/// every other key. With this parser only that key is dropped.
pub fn parse_grace_overrides_json(raw: &str) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    if raw.trim().is_empty() {
        return (out, warnings);
    }
    let value = match json::parse(raw) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!(
                "{GRACE_OVERRIDES_ENV} is not valid JSON ({e}); ignoring it"
            ));
            return (out, warnings);
        }
    };
    let members = match value {
        json::Value::Object(m) => m,
        other => {
            warnings.push(format!(
                "{GRACE_OVERRIDES_ENV} must be a JSON object, found {}; ignoring it",
                other.kind()
            ));
            return (out, warnings);
        }
    };
    // Last duplicate wins, before conversion (Python builds the dict first).
    let mut last: BTreeMap<String, json::Value> = BTreeMap::new();
    for (k, v) in members {
        last.insert(k, v);
    }
    for (key, v) in last {
        match python_int_of(&v) {
            Ok(n) => {
                out.insert(key, n);
            }
            Err(why) => warnings.push(format!(
                "{GRACE_OVERRIDES_ENV}[{key:?}] is not an integer ({why}); ignoring that key"
            )),
        }
    }
    (out, warnings)
}

/// Python `int(v)` of a decoded JSON value, limited to i64.
fn python_int_of(v: &json::Value) -> Result<i64, String> {
    use json::Value;
    match v {
        Value::Int(Some(n)) => Ok(*n),
        Value::Int(None) => Err("an integer out of the 64-bit range".into()),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Float(f) if f.is_nan() => Err("NaN".into()),
        Value::Float(f) if f.is_infinite() => Err("an infinite float".into()),
        Value::Float(f) => {
            let t = f.trunc();
            // i64::MIN is exactly representable; i64::MAX + 1 = 2^63 is not in range.
            if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
                Ok(t as i64)
            } else {
                Err("a float out of the 64-bit range".into())
            }
        }
        Value::Str(s) => parse_python_int(s).map_err(|why| format!("a string, {why}")),
        other => Err(other.kind().to_string()),
    }
}

/// A parser of the JSON Python's `json.loads` accepts (strict mode).
mod json {
    pub enum Value {
        Null,
        Bool(bool),
        /// None: an integer outside i64.
        Int(Option<i64>),
        Float(f64),
        Str(String),
        Array,
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn kind(&self) -> &'static str {
            match self {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Int(_) => "an integer",
                Value::Float(_) => "a float",
                Value::Str(_) => "a string",
                Value::Array => "an array",
                Value::Object(_) => "an object",
            }
        }
    }

    /// Deeper nesting is refused (Python raises RecursionError near 1000).
    const MAX_DEPTH: usize = 256;

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text,
            b: text.as_bytes(),
            pos: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.pos != p.b.len() {
            return Err(p.err("extra data"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a str,
        b: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            let before = self.s.get(..self.pos).unwrap_or("");
            format!("{what} at character {}", before.chars().count() + 1)
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.pos).copied()
        }

        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.b[self.pos..].starts_with(lit.as_bytes()) {
                self.pos += lit.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err(self.err("nesting too deep"));
            }
            match self.peek() {
                None => Err(self.err("expecting a value")),
                Some(b'{') => self.object(depth),
                Some(b'[') => self.array(depth),
                Some(b'"') => self.string().map(Value::Str),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => {
                    for (lit, v) in [
                        ("null", Value::Null),
                        ("true", Value::Bool(true)),
                        ("false", Value::Bool(false)),
                        ("NaN", Value::Float(f64::NAN)),
                        ("Infinity", Value::Float(f64::INFINITY)),
                    ] {
                        if self.eat(lit) {
                            return Ok(v);
                        }
                    }
                    Err(self.err("expecting a value"))
                }
            }
        }

        fn object(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1; // {
            let mut members = Vec::new();
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(members));
            }
            loop {
                self.ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expecting a property name in double quotes"));
                }
                let key = self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return Err(self.err("expecting ':'"));
                }
                self.pos += 1;
                self.ws();
                let v = self.value(depth + 1)?;
                members.push((key, v));
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Value::Object(members));
                    }
                    _ => return Err(self.err("expecting ',' or '}'")),
                }
            }
        }

        fn array(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1; // [
            self.ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array);
            }
            loop {
                self.ws();
                self.value(depth + 1)?;
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Value::Array);
                    }
                    _ => return Err(self.err("expecting ',' or ']'")),
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self
                .s
                .get(self.pos..self.pos + 4)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| self.err("invalid \\uXXXX escape"))?;
            let v = u32::from_str_radix(h, 16).map_err(|_| self.err("invalid \\uXXXX escape"))?;
            self.pos += 4;
            Ok(v)
        }

        /// A string; lone surrogates (Python keeps them) become U+FFFD.
        fn string(&mut self) -> Result<String, String> {
            self.pos += 1; // "
            let mut out = String::new();
            loop {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == b'"' || c == b'\\' || c < 0x20 {
                        break;
                    }
                    self.pos += 1;
                }
                // Split only at ASCII bytes: always a char boundary.
                out.push_str(self.s.get(start..self.pos).unwrap_or(""));
                match self.peek() {
                    None => return Err(self.err("unterminated string")),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.pos += 1;
                        let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                        self.pos += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut cp = self.hex4()?;
                                if (0xD800..0xDC00).contains(&cp)
                                    && self.b[self.pos..].starts_with(b"\\u")
                                {
                                    let save = self.pos;
                                    self.pos += 2;
                                    match self.hex4() {
                                        Ok(lo) if (0xDC00..0xE000).contains(&lo) => {
                                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        }
                                        _ => self.pos = save,
                                    }
                                }
                                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            }
                            _ => {
                                self.pos -= 1;
                                return Err(self.err("invalid escape"));
                            }
                        }
                    }
                    Some(_) => return Err(self.err("invalid control character in string")),
                }
            }
        }

        /// Python's NUMBER_RE `(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?`,
        /// plus `-Infinity`.
        fn number(&mut self) -> Result<Value, String> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
                if self.eat("Infinity") {
                    return Ok(Value::Float(f64::NEG_INFINITY));
                }
            }
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => {
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.pos += 1;
                    }
                }
                _ => {
                    self.pos = start;
                    return Err(self.err("expecting a value"));
                }
            }
            let mut float = false;
            if self.peek() == Some(b'.') && matches!(self.b.get(self.pos + 1), Some(b'0'..=b'9')) {
                float = true;
                self.pos += 1;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                let mut p = self.pos + 1;
                if matches!(self.b.get(p), Some(b'+' | b'-')) {
                    p += 1;
                }
                if matches!(self.b.get(p), Some(b'0'..=b'9')) {
                    float = true;
                    while matches!(self.b.get(p), Some(b'0'..=b'9')) {
                        p += 1;
                    }
                    self.pos = p;
                }
            }
            let text = self.s.get(start..self.pos).unwrap_or("");
            if float {
                // Rust, like Python's float(), gives ±inf beyond f64.
                text.parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| self.err("invalid number"))
            } else {
                Ok(Value::Int(text.parse::<i64>().ok()))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Files and secrets.

struct FileText {
    content: String,
    /// Unix permission bits of the opened file.
    mode: Option<u32>,
}

/// Reads a UTF-8 text file of at most `limit` bytes (a config pointed at
/// /dev/zero must not eat the memory). Errors never contain the content.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<FileText> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let mode = {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            Some(meta.permissions().mode())
        }
        #[cfg(not(unix))]
        {
            None
        }
    };
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    let content = String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))?;
    Ok(FileText { content, mode })
}

fn permission_warning(mode: &Option<u32>, what: &str) -> Option<String> {
    match mode {
        Some(m) if m & 0o077 != 0 => Some(format!(
            "{what} is readable by group/others (mode {:04o}); chmod 600",
            m & 0o7777
        )),
        _ => None,
    }
}

/// One secret's sources (docs/configuration.md, "Secrets").
struct SecretSpec<'a> {
    /// What it is, for messages.
    label: &'a str,
    /// `$CREDENTIALS_DIRECTORY/<credential>`.
    credential: &'a str,
    /// The `*_file` key, e.g. "[orchestrator] token_file".
    key: &'a str,
    file: Option<&'a Path>,
    env_var: &'a str,
}

/// The first non-empty value of: the systemd credential, the `*_file` key,
/// the env variable. A credential file or `*_file` that exists/is set but
/// cannot be read is an error naming it; trailing whitespace is trimmed; an
/// empty value counts as missing. `Ok(None)`: found nowhere; the error for
/// a required secret is the caller's (see `missing_secret`).
fn read_secret(
    spec: &SecretSpec<'_>,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Secret>, ConfigError> {
    let mut take = |path: &Path, what: String| -> Result<Option<Secret>, ConfigError> {
        let text = read_limited(path, MAX_SECRET_BYTES).map_err(|e| {
            ConfigError(one_line(&format!(
                "config {config_at}: {what}: cannot read {}: {e}",
                path.display()
            )))
        })?;
        let value = text.content.trim_end();
        if value.is_empty() {
            return Ok(None);
        }
        if let Some(w) = permission_warning(&text.mode, &format!("{what} {}", path.display())) {
            warnings.push(w);
        }
        Ok(Some(Secret::new(value)))
    };
    if let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty()) {
        let path = Path::new(&dir).join(spec.credential);
        if path.exists()
            && let Some(s) = take(&path, format!("credential {}", spec.credential))?
        {
            return Ok(Some(s));
        }
    }
    if let Some(path) = spec.file
        && let Some(s) = take(path, spec.key.to_string())?
    {
        return Ok(Some(s));
    }
    if let Some(v) = env(spec.env_var) {
        let v = v.trim_end();
        if !v.is_empty() {
            return Ok(Some(Secret::new(v)));
        }
    }
    Ok(None)
}

fn missing_secret(
    spec: &SecretSpec<'_>,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> ConfigError {
    let cred = match env("CREDENTIALS_DIRECTORY").filter(|d| !d.trim().is_empty()) {
        Some(dir) => format!("{}", Path::new(&dir).join(spec.credential).display()),
        None => format!(
            "$CREDENTIALS_DIRECTORY/{} (CREDENTIALS_DIRECTORY unset)",
            spec.credential
        ),
    };
    let file = match spec.file {
        Some(p) => format!("{} = {}", spec.key, p.display()),
        None => format!("{} (unset)", spec.key),
    };
    ConfigError(one_line(&format!(
        "config {config_at}: no {}: looked in {cred}, {file}, env {}",
        spec.label, spec.env_var
    )))
}

fn read_all_secrets(
    config: &mut Config,
    files: &SecretFiles,
    config_at: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let token = SecretSpec {
        label: "orchestrator token",
        credential: "orchestrator-token",
        key: "[orchestrator] token_file",
        file: files.orchestrator_token.as_deref(),
        env_var: "RECONCILE_ORCHESTRATOR_TOKEN",
    };
    config.orchestrator.token = Some(
        read_secret(&token, config_at, env, warnings)?
            .ok_or_else(|| missing_secret(&token, config_at, env))?,
    );

    let webhook = SecretSpec {
        label: "webhook secret",
        credential: "plane-webhook-secret",
        key: "[orchestrator] webhook_secret_file",
        file: files.webhook_secret.as_deref(),
        env_var: "RECONCILE_PLANE_WEBHOOK_SECRET",
    };
    config.orchestrator.webhook_secret = read_secret(&webhook, config_at, env, warnings)?;

    let key = SecretSpec {
        label: "Plane API key",
        credential: "plane-api-key",
        key: "[plane] api_key_file",
        file: files.plane_api_key.as_deref(),
        env_var: "RECONCILE_PLANE_API_KEY",
    };
    config.plane.api_key = Some(
        read_secret(&key, config_at, env, warnings)?
            .ok_or_else(|| missing_secret(&key, config_at, env))?,
    );

    if let Some(telegram) = config.telegram.as_mut() {
        let bot = SecretSpec {
            label: "Telegram bot token",
            credential: "telegram-bot-token",
            key: "[telegram] bot_token_file",
            file: files.telegram_bot_token.as_deref(),
            env_var: "RECONCILE_TELEGRAM_BOT_TOKEN",
        };
        telegram.bot_token = Some(
            read_secret(&bot, config_at, env, warnings)?
                .ok_or_else(|| missing_secret(&bot, config_at, env))?,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    const MINIMAL: &str = r#"
[orchestrator]
url = "http://127.0.0.1:8000/"

[plane]
url = "https://plane.example.com"
workspace = "acme"
"#;

    struct Fixture {
        dir: tempfile::TempDir,
        env: HashMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                env: HashMap::new(),
            }
        }
        fn set(mut self, k: &str, v: &str) -> Self {
            self.env.insert(k.into(), v.into());
            self
        }
        /// A file in the temp dir with mode 0600; returns its path.
        fn file(&self, name: &str, content: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        }
        fn load(&self, toml: &str, read_secrets: bool) -> Result<Config, ConfigError> {
            let path = self.file("reconcile.toml", toml);
            let env = self.env.clone();
            load_with_env(&path, read_secrets, &move |k| env.get(k).cloned())
        }
        fn ok(&self, toml: &str) -> Config {
            self.load(toml, false).unwrap_or_else(|e| panic!("{e}"))
        }
        fn err(&self, toml: &str) -> String {
            match self.load(toml, false) {
                Ok(_) => panic!("should fail:\n{toml}"),
                Err(e) => {
                    assert!(!e.0.contains('\n'), "one line: {e}");
                    e.0
                }
            }
        }
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}\n{extra}")
    }

    #[test]
    fn minimal_defaults() {
        let c = Fixture::new().ok(MINIMAL);
        assert_eq!(c.reconcile, Reconcile::default());
        assert_eq!(c.reconcile.grace_for_stage("testing"), 900);
        assert_eq!(
            c.state.path,
            PathBuf::from("/var/lib/reconcile/state.sqlite")
        );
        assert_eq!(c.state.states_cache_ttl_s, 300);
        assert_eq!(c.orchestrator.url, "http://127.0.0.1:8000");
        assert_eq!(c.orchestrator.webhook_path, "/webhooks/plane");
        assert_eq!(c.orchestrator.timeout, Duration::from_secs(10));
        assert_eq!(c.orchestrator.webhook_timeout, Duration::from_secs(30));
        assert!(c.orchestrator.token.is_none() && c.orchestrator.webhook_secret.is_none());
        assert_eq!(c.plane.url, "https://plane.example.com");
        assert_eq!(c.plane.workspace, "acme");
        assert_eq!(c.plane.items_path, "work-items");
        assert_eq!(
            (c.plane.per_page, c.plane.rate_reserve, c.plane.concurrency),
            (100, 10, 4)
        );
        assert_eq!(
            (c.plane.full_resync_s, c.plane.resync_overlap_s),
            (1800, 120)
        );
        assert_eq!(c.plane.timeout, Duration::from_secs(10));
        assert!(c.plane.state_names.is_empty() && c.plane.api_key.is_none());
        assert!(c.telegram.is_none());
        assert!(c.metrics.textfile.is_none());
        assert!(c.projects.is_empty());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn full_file() {
        let c = Fixture::new().ok(&with(
            r#"
[reconcile]
enabled = false
plane_enabled = false
skip_blocked_enabled = false
notify_unblock = false
task_deps_enabled = false
grace_default_s = 60
max_developer_retries = 5
max_actions = 0
skip_work_items = ["ET-1"]
interval_s = 60
deadline_s = 20
[reconcile.grace_overrides]
testing = -1
review = 1800

[state]
path = "/tmp/x.sqlite"
states_cache_ttl_s = 5

[telegram]
chat_id = -1001234567890
message_thread_id = 42
link_template = "https://plane.example.com/acme/browse/{work_item_id}/"

[metrics]
textfile = "/tmp/r.prom"

[[projects]]
repo = "acme/shop"
plane_project_id = "p1"
state_names = { blocked = ["On Hold"] }

[[projects]]
repo = "acme/api"
plane_project_id = "p2"
enabled = false
"#,
        ));
        let r = &c.reconcile;
        assert!(!r.enabled && !r.plane_enabled && !r.skip_blocked_enabled);
        assert!(!r.notify_unblock && !r.task_deps_enabled);
        assert_eq!((r.grace_default_s, r.max_developer_retries), (60, 5));
        assert_eq!(
            (r.max_actions, r.interval_s, r.deadline_s),
            (0, Some(60), 20)
        );
        assert_eq!(r.skip_work_items, vec!["ET-1"]);
        assert_eq!(r.grace_for_stage("testing"), -1);
        assert_eq!(r.grace_for_stage("review"), 1800);
        assert_eq!(r.grace_for_stage("development"), 60);
        assert_eq!(c.state.path, PathBuf::from("/tmp/x.sqlite"));
        let t = c.telegram.as_ref().unwrap();
        assert_eq!(t.chat_id, "-1001234567890");
        assert_eq!(t.message_thread_id, Some(42));
        assert_eq!(t.api_url, "https://api.telegram.org");
        assert_eq!(t.unblock_template, DEFAULT_UNBLOCK_TEMPLATE);
        assert_eq!(t.cycle_template, DEFAULT_CYCLE_TEMPLATE);
        assert_eq!(t.digest_over, 5);
        assert!(
            t.link_template
                .as_deref()
                .unwrap()
                .contains("{work_item_id}")
        );
        assert_eq!(c.metrics.textfile, Some(PathBuf::from("/tmp/r.prom")));
        assert_eq!(c.projects.len(), 2);
        let shop = c.project_by_repo("acme/shop").unwrap();
        assert_eq!(shop.state_names["blocked"], vec!["On Hold"]);
        assert!(shop.enabled);
        assert!(!c.project_by_repo("acme/api").unwrap().enabled);
    }

    #[test]
    fn telegram_chat_id_string_and_defaults() {
        let c = Fixture::new().ok(&with(
            "[telegram]\nchat_id = \" @chan \"\napi_url = \"http://127.0.0.1:9/\"\n",
        ));
        let t = c.telegram.unwrap();
        assert_eq!(t.chat_id, "@chan");
        assert_eq!(t.api_url, "http://127.0.0.1:9");
        assert!(t.link_template.is_none());
        let e = Fixture::new().err(&with("[telegram]\nmessage_thread_id = 1\n"));
        assert!(e.contains("[telegram] chat_id"), "{e}");
    }

    #[test]
    fn state_directory_default() {
        let f = Fixture::new().set("STATE_DIRECTORY", "/var/lib/reconcile-x:/other");
        assert_eq!(
            f.ok(MINIMAL).state.path,
            PathBuf::from("/var/lib/reconcile-x/state.sqlite")
        );
        // An explicit path wins.
        assert_eq!(
            f.ok(&with("[state]\npath = \"/x.sqlite\"")).state.path,
            PathBuf::from("/x.sqlite")
        );
    }

    #[test]
    fn env_overrides() {
        let f = Fixture::new()
            .set("ORCH_RECONCILE_ENABLED", "false")
            .set("ORCH_RECONCILE_PLANE_ENABLED", " OFF ")
            .set("ORCH_RECONCILE_SKIP_BLOCKED_ENABLED", "0")
            .set("ORCH_RECONCILE_NOTIFY_UNBLOCK", "No")
            .set("ORCH_TASK_DEPS_ENABLED", "no")
            .set("ORCH_RECONCILE_GRACE_DEFAULT_S", " 1_200 ")
            .set("ORCH_MAX_DEVELOPER_RETRIES", "7")
            .set("ORCH_RECONCILE_MAX_ACTIONS", "+3")
            .set("ORCH_RECONCILE_INTERVAL_S", "60.0")
            .set("ORCH_RECONCILE_DEADLINE_S", "40")
            .set(GRACE_OVERRIDES_ENV, r#"{"testing": 5, "review": "x"}"#);
        let c = f.ok(&with(
            "[reconcile]\nenabled = true\ninterval_s = 5\n[reconcile.grace_overrides]\ndevelopment = 1\n",
        ));
        let r = &c.reconcile;
        assert!(!r.enabled && !r.plane_enabled && !r.skip_blocked_enabled);
        assert!(!r.notify_unblock && !r.task_deps_enabled);
        assert_eq!(r.grace_default_s, 1200);
        assert_eq!(r.max_developer_retries, 7);
        assert_eq!(r.max_actions, 3);
        assert_eq!(r.interval_s, Some(60));
        assert_eq!(r.deadline_s, 40);
        // The env JSON replaces the file table entirely.
        assert_eq!(
            r.grace_overrides,
            BTreeMap::from([("testing".to_string(), 5)])
        );
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains(GRACE_OVERRIDES_ENV) && c.warnings[0].contains("review"));

        // Switching things on from env.
        let c = Fixture::new()
            .set("ORCH_RECONCILE_ENABLED", "YES")
            .set("ORCH_TASK_DEPS_ENABLED", "on")
            .ok(&with(
                "[reconcile]\nenabled = false\ntask_deps_enabled = false\n",
            ));
        assert!(c.reconcile.enabled && c.reconcile.task_deps_enabled);
    }

    #[test]
    fn blank_grace_json_keeps_the_file_table() {
        let c = Fixture::new()
            .set(GRACE_OVERRIDES_ENV, "  ")
            .ok(&with("[reconcile.grace_overrides]\ntesting = 7\n"));
        assert_eq!(c.reconcile.grace_for_stage("testing"), 7);
        // Set but invalid: replaces with {} and warns.
        let c = Fixture::new()
            .set(GRACE_OVERRIDES_ENV, "{oops")
            .ok(&with("[reconcile.grace_overrides]\ntesting = 7\n"));
        assert!(c.reconcile.grace_overrides.is_empty());
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn env_bool_parsing() {
        for t in ["true", "TRUE", "1", "yes", "On", " true\n"] {
            assert_eq!(parse_env_bool(t), Some(true), "{t:?}");
        }
        for f in ["false", "False", "0", "no", "OFF", "\toff "] {
            assert_eq!(parse_env_bool(f), Some(false), "{f:?}");
        }
        for bad in ["", " ", "2", "enabled", "t", "y", "nope"] {
            assert_eq!(parse_env_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        for (var, value) in [
            ("ORCH_RECONCILE_ENABLED", "maybe"),
            ("ORCH_RECONCILE_PLANE_ENABLED", ""),
            ("ORCH_RECONCILE_SKIP_BLOCKED_ENABLED", "2"),
            ("ORCH_RECONCILE_NOTIFY_UNBLOCK", "y"),
            ("ORCH_TASK_DEPS_ENABLED", "enable"),
            ("ORCH_RECONCILE_GRACE_DEFAULT_S", "15m"),
            ("ORCH_MAX_DEVELOPER_RETRIES", "1.5"),
            ("ORCH_RECONCILE_MAX_ACTIONS", "-1"),
            ("ORCH_RECONCILE_INTERVAL_S", "soon"),
            ("ORCH_RECONCILE_DEADLINE_S", "0"),
            ("ORCH_RECONCILE_DEADLINE_S", "99999999999999999999"),
        ] {
            let e = Fixture::new().set(var, value).err(MINIMAL);
            assert!(e.contains(var), "{var}={value:?}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = Fixture::new();
        let e = f.err(&with("gracee = 1"));
        // After [plane] in MINIMAL: put a top-level key first instead.
        assert!(e.contains("unknown key `gracee`"), "{e}");
        let e = f.err(&format!("bogus = 1\n{MINIMAL}"));
        assert!(e.contains("unknown key `bogus` at the top level"), "{e}");
        let e = f.err(&with("[reconcile]\ngracee_default_s = 5"));
        assert!(
            e.contains("unknown key `gracee_default_s` in [reconcile]"),
            "{e}"
        );
        assert!(e.starts_with("config "), "{e}");
        let e = f.err(&with(
            "[[projects]]\nrepo = \"a\"\nplane_project_id = \"b\"\nenable = false",
        ));
        assert!(e.contains("unknown key `enable` in [[projects]]"), "{e}");
        let e = f.err(&with("[telegram]\nchat_id = 1\ntoken = \"s3cr3t\""));
        assert!(e.contains("unknown key `token` in [telegram]"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = f.err(&with("[state]\npth = \"/x\""));
        assert!(e.contains("unknown key `pth` in [state]"), "{e}");
    }

    #[test]
    fn required_keys_are_named() {
        let f = Fixture::new();
        let e = f.err("[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n");
        assert!(e.contains("[orchestrator] url"), "{e}");
        let e = f.err("[orchestrator]\nurl = \"http://o\"\n");
        assert!(e.contains("[plane] url"), "{e}");
        let e = f
            .err("[orchestrator]\ntimeout_s = 5\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n");
        assert!(e.contains("[orchestrator] url: required"), "{e}");
        let e = f.err("[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\n");
        assert!(e.contains("[plane] workspace: required"), "{e}");
        let e =
            f.err("[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"\"\nworkspace = \"w\"\n");
        assert!(e.contains("[plane] url"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let f = Fixture::new();
        let e = f.err(&with("[reconcile]\ngrace_default_s = \"900\""));
        assert!(
            e.contains("[reconcile] grace_default_s: expected an integer, found string"),
            "{e}"
        );
        let e = f.err(&with("[reconcile.grace_overrides]\ntesting = \"x\""));
        assert!(e.contains("[reconcile.grace_overrides] testing"), "{e}");
        let e = f.err(&with("[reconcile.grace_overrides]\ntesting = 1.5"));
        assert!(e.contains("[reconcile.grace_overrides] testing"), "{e}");
        let e = f.err(&with("[reconcile]\nenabled = \"yes\""));
        assert!(e.contains("[reconcile] enabled: expected a boolean"), "{e}");
        let e = f.err(&with("[reconcile]\nmax_actions = -1"));
        assert!(e.contains("[reconcile] max_actions"), "{e}");
        let e = f.err("[orchestrator\nurl = 1");
        assert!(e.contains("line 1"), "{e}");
        let e = f.err(&with("[plane]\nper_page = 5"));
        assert!(e.contains("duplicate key `plane`"), "{e}");
    }

    #[test]
    fn validation() {
        let f = Fixture::new();
        let cases = [
            (
                "[orchestrator]\nurl = \"ftp://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
                "[orchestrator] url",
            ),
            (
                "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"plane.example.com\"\nworkspace = \"w\"\n",
                "[plane] url",
            ),
            (
                "[orchestrator]\nurl = \"http://\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
                "[orchestrator] url",
            ),
        ];
        for (toml, key) in cases {
            let e = f.err(toml);
            assert!(e.contains(key), "{e}");
        }
        for (extra, key) in [
            ("[reconcile]\ndeadline_s = 0", "[reconcile] deadline_s"),
            (
                "[telegram]\nchat_id = 1\napi_url = \"x\"",
                "[telegram] api_url",
            ),
            (
                "[telegram]\nchat_id = 1\ndigest_over = 0",
                "[telegram] digest_over",
            ),
            ("[telegram]\nchat_id = \"\"", "[telegram] chat_id"),
            ("[orchestrator.x]", "unknown key `x`"),
            (
                "[[projects]]\nrepo = \"a\"",
                "[[projects]] #1 plane_project_id",
            ),
            (
                "[[projects]]\nrepo = \" \"\nplane_project_id = \"p\"",
                "[[projects]] #1 repo",
            ),
            (
                "[[projects]]\nrepo = \"a\"\nplane_project_id = \"p\"\n[[projects]]\nrepo = \"a\"\nplane_project_id = \"q\"",
                "[[projects]] #2 repo",
            ),
            (
                "[[projects]]\nrepo = \"a\"\nplane_project_id = \"p\"\nstate_names = { blokced = [\"On Hold\"] }",
                "blokced",
            ),
        ] {
            let e = f.err(&with(extra));
            assert!(e.contains(key), "{extra}: {e}");
        }
        for (plane_extra, key) in [
            ("items_path = \"issue\"", "[plane] items_path"),
            ("per_page = 0", "[plane] per_page"),
            ("per_page = 1001", "[plane] per_page"),
            ("timeout_s = 0", "[plane] timeout_s"),
            ("concurrency = 0", "[plane] concurrency"),
            ("workspace2 = 1", "unknown key `workspace2` in [plane]"),
        ] {
            let toml = format!(
                "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n{plane_extra}\n"
            );
            let e = f.err(&toml);
            assert!(e.contains(key), "{plane_extra}: {e}");
        }
        let e = f.err(
            "[orchestrator]\nurl = \"http://o\"\ntimeout_s = 0\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
        );
        assert!(e.contains("[orchestrator] timeout_s"), "{e}");
        let e = f.err(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n[plane.state_names]\ntoanalyse = [\"x\"]\n",
        );
        assert!(
            e.contains("[plane.state_names]") && e.contains("toanalyse"),
            "{e}"
        );
        let c = f.ok(
            "[orchestrator]\nurl = \"HTTPS://o//\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\nitems_path = \"issues\"\nper_page = 1000\n[plane.state_names]\nto_analyse = [\"To Analyse\", \"Ready\"]\n",
        );
        assert_eq!(c.orchestrator.url, "HTTPS://o");
        assert_eq!(c.plane.items_path, "issues");
        assert_eq!(c.plane.per_page, 1000);
        assert_eq!(
            c.plane.state_names["to_analyse"],
            vec!["To Analyse", "Ready"]
        );
    }

    #[test]
    fn missing_config_file_names_the_path() {
        let path = Path::new("/nonexistent/dir/reconcile.toml");
        let e = load_with_env(path, false, &|_| None).unwrap_err();
        assert!(e.0.contains("/nonexistent/dir/reconcile.toml"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = load_with_env(dir.path(), false, &|_| None).unwrap_err();
        assert!(e.0.contains(&dir.path().display().to_string()), "{e}");
    }

    /// Secrets: credential dir > *_file > env; never in messages.
    #[test]
    fn secret_sources_in_order() {
        let f = Fixture::new();
        let creds = f.dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        let token_file = f.file("orch.token", "from-file\n");
        let key_file = f.file("plane.key", "key-from-file \n");
        let toml = format!(
            "[orchestrator]\nurl = \"http://o\"\ntoken_file = {:?}\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = {:?}\n[telegram]\nchat_id = 1\n",
            token_file.display().to_string(),
            key_file.display().to_string()
        );
        std::fs::write(creds.join("orchestrator-token"), "from-creds\n").unwrap();
        std::fs::set_permissions(
            creds.join("orchestrator-token"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        let f = f
            .set("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
            .set("RECONCILE_ORCHESTRATOR_TOKEN", "from-env")
            .set("RECONCILE_PLANE_API_KEY", "key-from-env")
            .set("RECONCILE_TELEGRAM_BOT_TOKEN", "bot-from-env\n")
            .set("RECONCILE_PLANE_WEBHOOK_SECRET", "");
        let c = f.load(&toml, true).unwrap();
        assert_eq!(
            c.orchestrator.token.as_ref().unwrap().expose(),
            "from-creds"
        );
        assert_eq!(c.plane.api_key.as_ref().unwrap().expose(), "key-from-file");
        assert_eq!(
            c.telegram
                .as_ref()
                .unwrap()
                .bot_token
                .as_ref()
                .unwrap()
                .expose(),
            "bot-from-env"
        );
        // Empty env value counts as missing; the webhook secret is optional.
        assert!(c.orchestrator.webhook_secret.is_none());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let shown = format!("{c:?}");
        for s in ["from-creds", "key-from-file", "bot-from-env"] {
            assert!(!shown.contains(s), "Debug leaks {s}");
        }

        // Without the credential: the file; an empty credential counts as missing.
        std::fs::write(creds.join("orchestrator-token"), "\n").unwrap();
        let c = f.load(&toml, true).unwrap();
        assert_eq!(c.orchestrator.token.as_ref().unwrap().expose(), "from-file");
        // Without credentials dir and file: env.
        let f = f.set("CREDENTIALS_DIRECTORY", "");
        let toml_no_files = with("[telegram]\nchat_id = 1\n");
        let c = f.load(&toml_no_files, true).unwrap();
        assert_eq!(c.orchestrator.token.as_ref().unwrap().expose(), "from-env");
        assert_eq!(c.plane.api_key.as_ref().unwrap().expose(), "key-from-env");
    }

    #[test]
    fn required_secrets_missing() {
        let f = Fixture::new().set("RECONCILE_PLANE_API_KEY", "k");
        let e = f.load(MINIMAL, true).unwrap_err().0;
        assert!(e.contains("orchestrator token"), "{e}");
        assert!(e.contains("orchestrator-token"), "{e}");
        assert!(e.contains("[orchestrator] token_file"), "{e}");
        assert!(e.contains("RECONCILE_ORCHESTRATOR_TOKEN"), "{e}");
        let f = Fixture::new().set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
        let e = f.load(MINIMAL, true).unwrap_err().0;
        assert!(
            e.contains("Plane API key") && e.contains("RECONCILE_PLANE_API_KEY"),
            "{e}"
        );
        assert!(!e.contains("\"t\""), "{e}");
        let f = f.set("RECONCILE_PLANE_API_KEY", "k");
        assert!(f.load(MINIMAL, true).is_ok());
        let e = f
            .load(&with("[telegram]\nchat_id = 1"), true)
            .unwrap_err()
            .0;
        assert!(e.contains("Telegram bot token"), "{e}");
    }

    #[test]
    fn unreadable_token_file_names_the_key() {
        let f = Fixture::new().set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
        let toml = "[orchestrator]\nurl = \"http://o\"\ntoken_file = \"/nonexistent/orch.token\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n";
        let e = f.load(toml, true).unwrap_err().0;
        assert!(e.contains("[orchestrator] token_file"), "{e}");
        assert!(e.contains("/nonexistent/orch.token"), "{e}");
        // A directory is unreadable as a secret too.
        let toml = format!(
            "[orchestrator]\nurl = \"http://o\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = {:?}\n",
            f.dir.path().display().to_string()
        );
        let e = f.load(&toml, true).unwrap_err().0;
        assert!(e.contains("[plane] api_key_file"), "{e}");
    }

    #[test]
    fn read_secrets_false_reads_nothing() {
        let f = Fixture::new()
            .set("CREDENTIALS_DIRECTORY", "/nonexistent/creds")
            .set("RECONCILE_ORCHESTRATOR_TOKEN", "t");
        let toml = "[orchestrator]\nurl = \"http://o\"\ntoken_file = \"/nonexistent/orch.token\"\nwebhook_secret_file = \"/nonexistent/w\"\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\napi_key_file = \"/nonexistent/k\"\n[telegram]\nchat_id = 1\nbot_token_file = \"/nonexistent/b\"\n";
        let c = f.load(toml, false).unwrap();
        assert!(c.orchestrator.token.is_none());
        assert!(c.orchestrator.webhook_secret.is_none());
        assert!(c.plane.api_key.is_none());
        assert!(c.telegram.unwrap().bot_token.is_none());
    }

    #[test]
    fn permission_warnings() {
        let f = Fixture::new().set("RECONCILE_PLANE_API_KEY", "k");
        let token = f.file("orch.token", "secret-value\n");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let toml = format!(
            "[orchestrator]\nurl = \"http://o\"\ntoken_file = {:?}\n[plane]\nurl = \"http://p\"\nworkspace = \"w\"\n",
            token.display().to_string()
        );
        let c = f.load(&toml, true).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains(&token.display().to_string()));
        assert!(c.warnings[0].contains("chmod 600"));
        assert!(!c.warnings[0].contains("secret-value"));

        // The config file itself.
        let path = f.file("open.toml", MINIMAL);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let c = load_with_env(&path, false, &|_| None).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains(&path.display().to_string()));
    }

    // --- the grace-overrides JSON parser ---------------------------------

    fn g(raw: &str) -> (BTreeMap<String, i64>, Vec<String>) {
        parse_grace_overrides_json(raw)
    }

    fn map(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn json_blank_invalid_and_non_objects() {
        assert_eq!(g(""), (BTreeMap::new(), vec![]));
        assert_eq!(g("  \n"), (BTreeMap::new(), vec![]));
        for raw in [
            "{",
            "{'a': 1}",
            "{\"a\": 1,}",
            "{\"a\" 1}",
            "nope",
            "{\"a\": 1} x",
            "{\"a\": 01}",
            "{\"a\": -}",
            "{\"a\": +1}",
            "{\"a\": .5}",
            "{\"a\": \"\u{1}\"}",
            "\u{feff}{}",
            "{\"a\": -NaN}",
            "{\"a\": nan}",
        ] {
            let (m, w) = g(raw);
            assert!(m.is_empty(), "{raw:?}");
            assert_eq!(w.len(), 1, "{raw:?}");
            assert!(w[0].contains(GRACE_OVERRIDES_ENV) && w[0].contains("not valid JSON"));
        }
        for raw in ["[1,2]", "\"x\"", "5", "null", "true", "1.5", "NaN"] {
            let (m, w) = g(raw);
            assert!(m.is_empty(), "{raw:?}");
            assert_eq!(w.len(), 1, "{raw:?}");
            assert!(w[0].contains("must be a JSON object"), "{raw:?}: {w:?}");
        }
        assert_eq!(g(" {} "), (BTreeMap::new(), vec![]));
    }

    #[test]
    fn json_values_as_python_int() {
        let (m, w) = g(r#"{"testing": 600, "review": "x", "development": 1800}"#);
        assert_eq!(m, map(&[("testing", 600), ("development", 1800)]));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains(GRACE_OVERRIDES_ENV) && w[0].contains("\"review\""));

        let (m, w) = g(r#"{"a": 2.9, "b": -2.9, "c": 1e3, "d": -0.0, "e": 1E-400, "f": 2.5e2}"#);
        assert_eq!(
            m,
            map(&[
                ("a", 2),
                ("b", -2),
                ("c", 1000),
                ("d", 0),
                ("e", 0),
                ("f", 250)
            ])
        );
        assert!(w.is_empty());

        let (m, w) = g(
            r#"{"a": " 12 ", "b": "+3", "c": "-4", "d": "1_000", "e": "007", "f": "\t5\n",
                "g": "1__0", "h": "_1", "i": "1_", "j": "1.5", "k": "", "l": "0x10", "m": "- 1",
                "n": "\u00a012\u3000"}"#,
        );
        assert_eq!(
            m,
            map(&[
                ("a", 12),
                ("b", 3),
                ("c", -4),
                ("d", 1000),
                ("e", 7),
                ("f", 5),
                ("n", 12)
            ])
        );
        assert_eq!(w.len(), 7, "{w:?}");

        let (m, w) = g(r#"{"t": true, "f": false, "n": null, "a": [1], "o": {"x": 1}}"#);
        assert_eq!(m, map(&[("t", 1), ("f", 0)]));
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn json_range_and_non_finite() {
        let (m, w) = g(r#"{"max": 9223372036854775807, "min": -9223372036854775808,
                "big": 9223372036854775808, "huge": 123456789012345678901234567890,
                "fbig": 1e19, "fneg": -9.3e18, "inf": 1e400, "s": "99999999999999999999",
                "ok": 5}"#);
        assert_eq!(m, map(&[("max", i64::MAX), ("min", i64::MIN), ("ok", 5)]));
        assert_eq!(w.len(), 6, "{w:?}");

        let (m, w) = g(r#"{"a": NaN, "b": Infinity, "c": -Infinity, "d": 7, "e": [NaN]}"#);
        assert_eq!(m, map(&[("d", 7)]));
        assert_eq!(w.len(), 4, "{w:?}");
        for (w, k) in w.iter().zip(["\"a\"", "\"b\"", "\"c\"", "\"e\""]) {
            assert!(w.contains(k) && w.contains(GRACE_OVERRIDES_ENV), "{w}");
        }
    }

    #[test]
    fn json_duplicates_escapes_and_nesting() {
        // Last duplicate wins, even an invalid one (Python builds the dict first).
        assert_eq!(g(r#"{"a": 1, "a": 2}"#).0, map(&[("a", 2)]));
        let (m, w) = g(r#"{"a": 1, "a": "x"}"#);
        assert!(m.is_empty() && w.len() == 1);
        // Escapes, surrogate pairs, lone surrogates.
        let (m, w) = g(r#"{"te\u0073ting": 1, "\ud83d\ude00": 2, "\ud800": 3, "a\/b\n": 4}"#);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            m,
            map(&[("testing", 1), ("😀", 2), ("\u{fffd}", 3), ("a/b\n", 4)])
        );
        // Warnings stay on one line even for odd keys.
        let (_, w) = g("{\"line\\nbreak\": null}");
        assert!(!w[0].contains('\n'), "{w:?}");
        // Deep nesting: invalid, no stack overflow.
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let (m, w) = g(&deep);
        assert!(m.is_empty() && w.len() == 1);
        let ok_nested = format!(
            "{{\"a\": {}{}, \"b\": 1}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(g(&ok_nested).0, map(&[("b", 1)]));
    }

    #[test]
    fn python_int_strings() {
        assert_eq!(parse_python_int("0"), Ok(0));
        assert_eq!(parse_python_int("-0"), Ok(0));
        assert_eq!(parse_python_int("0_0"), Ok(0));
        assert_eq!(parse_python_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_python_int("9_223_372_036_854_775_807"), Ok(i64::MAX));
        assert!(parse_python_int("9223372036854775808").is_err());
        assert!(parse_python_int("+-1").is_err());
        assert!(parse_python_int("+").is_err());
        assert!(parse_python_int("1 2").is_err());
        assert!(parse_python_int("١٢").is_err());
    }

    proptest! {
        #[test]
        fn grace_json_never_panics(s in "\\PC*") {
            let _ = parse_grace_overrides_json(&s);
        }

        #[test]
        fn grace_json_never_panics_near_grammar(s in r#"[{}\[\]":, 0-9a-zA-Z_.eE+\\-]{0,60}"#) {
            let (_, w) = parse_grace_overrides_json(&s);
            for w in w {
                prop_assert!(!w.contains('\n'));
            }
        }

        #[test]
        fn grace_json_objects_of_ints(pairs in proptest::collection::vec(("[a-z]{1,8}", any::<i64>()), 0..8)) {
            let raw = format!(
                "{{{}}}",
                pairs.iter().map(|(k, v)| format!("{k:?}: {v}")).collect::<Vec<_>>().join(", ")
            );
            let (m, w) = parse_grace_overrides_json(&raw);
            prop_assert!(w.is_empty());
            let want: BTreeMap<String, i64> = pairs.into_iter().collect();
            prop_assert_eq!(m, want);
        }

        #[test]
        fn python_int_never_panics(s in "\\PC*") {
            let _ = parse_python_int(&s);
        }

        #[test]
        fn toml_never_panics(s in "\\PC{0,200}") {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, &s).unwrap();
            let _ = load_with_env(&p, true, &|_| None);
        }
    }
}
