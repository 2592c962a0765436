//! The validated configuration: its types and their defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// A listing longer than this many pages is that project's error.
    pub max_pages: u32,
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
    /// Seconds of the deadline kept for delivery, below `[reconcile]
    /// deadline_s` (validated); see `Config::delivery_reserve` for the
    /// value to use under any deadline.
    pub delivery_reserve_s: u64,
    /// Not in the original Python reconciler: Telegram calls need a bound
    /// like the other peers.
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
    /// The delivery reserve to use under the deadline in force (a
    /// `--deadline` may be shorter than the file's): `delivery_reserve_s`,
    /// but never more than half the deadline, so the passes keep time too.
    /// Zero without a `[telegram]` section.
    pub fn delivery_reserve(&self) -> Duration {
        let reserve = self.telegram.as_ref().map_or(0, |t| t.delivery_reserve_s);
        // Half in milliseconds: a 1 s deadline keeps 0.5 s, not 0.
        Duration::from_secs(reserve).min(Duration::from_secs(self.reconcile.deadline_s) / 2)
    }

    /// Every string that must never be printed: the secrets read (none
    /// when secrets were not read) and the `user:password` of any peer URL,
    /// with its password alone as well. For redaction; longest first, so
    /// that a redactor replacing them in order never leaves a tail of a
    /// longer one.
    pub fn secrets(&self) -> Vec<String> {
        let telegram = self.telegram.as_ref();
        let mut out: Vec<String> = [
            self.orchestrator.token.as_ref(),
            self.orchestrator.webhook_secret.as_ref(),
            self.plane.api_key.as_ref(),
            telegram.and_then(|t| t.bot_token.as_ref()),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
        let urls = [
            Some(self.orchestrator.url.as_str()),
            Some(self.plane.url.as_str()),
            telegram.map(|t| t.api_url.as_str()),
            telegram.and_then(|t| t.link_template.as_deref()),
        ];
        for url in urls.into_iter().flatten() {
            if let Some(userinfo) = url_userinfo(url) {
                out.push(userinfo.to_string());
                if let Some((_, password)) = userinfo.split_once(':') {
                    out.push(password.to_string());
                }
            }
        }
        out.retain(|s| !s.is_empty());
        out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        out.dedup();
        out
    }

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

/// Default `[telegram] unblock_template`.
pub const DEFAULT_UNBLOCK_TEMPLATE: &str =
    "🔧 reconciler: {link} {stage} разблокирована (потерян webhook)";
/// Default `[telegram] cycle_template`.
pub const DEFAULT_CYCLE_TEMPLATE: &str = "⛔ reconciler: dependency cycle {cycle}";
/// Default `[telegram] api_url`.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// Default `[telegram] delivery_reserve_s`.
pub const DEFAULT_DELIVERY_RESERVE_S: u64 = 10;
/// Default `[plane] max_pages`.
pub const DEFAULT_MAX_PAGES: u64 = 100;
/// The env variable of the grace overrides (the original Python reconciler's name).
pub const GRACE_OVERRIDES_ENV: &str = "ORCH_RECONCILE_GRACE_OVERRIDES_JSON";

/// The `user:password` (or `user`) before the host of an `http(s)://`
/// URL, if any.
pub fn url_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

/// The sane range of every duration and count (docs/configuration.md,
/// "Validation"): a value outside is EX_CONFIG naming the key, so no later
/// arithmetic (deadlines, timeouts, `Instant + Duration`) can overflow.
pub mod bounds {
    use std::ops::RangeInclusive;

    /// Every peer timeout (`timeout_s`, `webhook_timeout_s`).
    pub const TIMEOUT_S: RangeInclusive<u64> = 1..=300;
    pub const DEADLINE_S: RangeInclusive<u64> = 1..=3600;
    /// `--wait-lock`.
    pub const WAIT_LOCK_S: RangeInclusive<u64> = 0..=86_400;
    pub const PER_PAGE: RangeInclusive<u64> = 1..=1000;
    pub const MAX_PAGES: RangeInclusive<u64> = 1..=100_000;
    pub const CONCURRENCY: RangeInclusive<u64> = 1..=32;
    pub const RATE_RESERVE: RangeInclusive<u64> = 0..=100_000;
    pub const DIGEST_OVER: RangeInclusive<u64> = 1..=1000;
    pub const STATES_CACHE_TTL_S: RangeInclusive<u64> = 0..=86_400;
    /// 0: a full listing every tick.
    pub const FULL_RESYNC_S: RangeInclusive<u64> = 0..=604_800;
    pub const RESYNC_OVERLAP_S: RangeInclusive<u64> = 0..=86_400;
    pub const INTERVAL_S: RangeInclusive<u64> = 0..=86_400;
    /// 0: no cap.
    pub const MAX_ACTIONS: RangeInclusive<u64> = 0..=1_000_000;
    pub const MAX_DEVELOPER_RETRIES: RangeInclusive<i64> = 0..=1000;
    /// Below the deadline as well (checked against `deadline_s`).
    pub const DELIVERY_RESERVE_S: RangeInclusive<u64> = 0..=3599;
}
