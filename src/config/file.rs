//! The TOML file: raw serde structs (every key optional, unknown keys
//! refused), then defaults and validation.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::types::*;
use crate::core::states::StateKey;

pub(super) const MAX_CONFIG_BYTES: u64 = 4 << 20;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
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
    max_pages: Option<u64>,
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
    delivery_reserve_s: Option<u64>,
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

/// `value` (or the default) within `range`, else an error naming the key.
pub(super) fn bounded<T>(
    section: &str,
    key: &str,
    value: Option<T>,
    default: T,
    range: &RangeInclusive<T>,
) -> Checked<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{section} {key}: must be between {} and {}, found {v}",
            range.start(),
            range.end()
        ))
    }
}

/// A timeout key, 1–300 s.
fn timeout(section: &str, key: &str, value: Option<u64>, default: u64) -> Checked<Duration> {
    bounded(section, key, value, default, &bounds::TIMEOUT_S).map(Duration::from_secs)
}

/// A Plane workspace slug: what Plane accepts in its URLs, and nothing that
/// would change the meaning of a URL built with it (`#`, `?`, `%`, `/`).
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A message template: absent → the default; present → not blank (an
/// empty message is refused by Telegram, so every message would be lost).
fn template(key: &str, value: Option<String>, default: &str) -> Checked<String> {
    match value {
        None => Ok(default.to_string()),
        Some(t) if t.trim().is_empty() => Err(format!("[telegram] {key}: must not be empty")),
        Some(t) => Ok(t),
    }
}

fn check_state_names(
    section: &str,
    names: Option<BTreeMap<String, Vec<String>>>,
) -> Checked<BTreeMap<String, Vec<String>>> {
    let names = names.unwrap_or_default();
    for (key, list) in &names {
        if let Err(unknown) = key.parse::<StateKey>() {
            return Err(format!("{section} {unknown}"));
        }
        if list.iter().any(|n| n.trim().is_empty()) {
            return Err(format!("{section} {key}: a state name must not be empty"));
        }
    }
    Ok(names)
}

/// `$STATE_DIRECTORY/state.sqlite` (first entry) under systemd, else
/// /var/lib/reconcile/state.sqlite.
pub(super) fn default_state_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
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
pub(super) struct SecretFiles {
    pub(super) orchestrator_token: Option<PathBuf>,
    pub(super) webhook_secret: Option<PathBuf>,
    pub(super) plane_api_key: Option<PathBuf>,
    pub(super) telegram_bot_token: Option<PathBuf>,
}

pub(super) fn build(
    raw: RawFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Checked<(Config, SecretFiles)> {
    let mut files = SecretFiles::default();
    let r = raw.reconcile;
    let d = Reconcile::default();
    let rec = "[reconcile]";
    let deadline_s = bounded(
        rec,
        "deadline_s",
        r.deadline_s,
        d.deadline_s,
        &bounds::DEADLINE_S,
    )?;
    let reconcile = Reconcile {
        enabled: r.enabled.unwrap_or(d.enabled),
        plane_enabled: r.plane_enabled.unwrap_or(d.plane_enabled),
        skip_blocked_enabled: r.skip_blocked_enabled.unwrap_or(d.skip_blocked_enabled),
        notify_unblock: r.notify_unblock.unwrap_or(d.notify_unblock),
        task_deps_enabled: r.task_deps_enabled.unwrap_or(d.task_deps_enabled),
        grace_default_s: r.grace_default_s.unwrap_or(d.grace_default_s),
        grace_overrides: r.grace_overrides.unwrap_or_default(),
        max_developer_retries: bounded(
            rec,
            "max_developer_retries",
            r.max_developer_retries,
            d.max_developer_retries,
            &bounds::MAX_DEVELOPER_RETRIES,
        )?,
        max_actions: bounded(
            rec,
            "max_actions",
            r.max_actions,
            d.max_actions,
            &bounds::MAX_ACTIONS,
        )?,
        skip_work_items: r.skip_work_items.unwrap_or_default(),
        interval_s: match r.interval_s {
            Some(v) => Some(bounded(rec, "interval_s", Some(v), 0, &bounds::INTERVAL_S)?),
            None => None,
        },
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
        states_cache_ttl_s: bounded(
            "[state]",
            "states_cache_ttl_s",
            raw.state.states_cache_ttl_s,
            300,
            &bounds::STATES_CACHE_TTL_S,
        )?,
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
        timeout: timeout("[orchestrator]", "timeout_s", o.timeout_s, 10)?,
        webhook_timeout: timeout(
            "[orchestrator]",
            "webhook_timeout_s",
            o.webhook_timeout_s,
            30,
        )?,
    };

    let p = raw
        .plane
        .ok_or("[plane] url: required key missing (no [plane] section)")?;
    files.plane_api_key = p.api_key_file;
    let url = check_url("[plane]", "url", required("[plane]", "url", p.url)?)?;
    let workspace = required("[plane]", "workspace", p.workspace)?;
    if !is_slug(&workspace) {
        return Err("[plane] workspace: must be a slug (letters, digits, _ and - only)".into());
    }
    let items_path = p.items_path.unwrap_or_else(|| "work-items".into());
    if items_path != "work-items" && items_path != "issues" {
        return Err(format!(
            "[plane] items_path: must be \"work-items\" or \"issues\", found {items_path:?}"
        ));
    }
    let pl = "[plane]";
    // The bounds fit in u32, so the narrowing below cannot truncate.
    let small = |key: &str, v: Option<u64>, default: u64, range: &RangeInclusive<u64>| {
        bounded(pl, key, v, default, range).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let plane = Plane {
        url,
        workspace,
        api_key: None,
        items_path,
        per_page: small("per_page", p.per_page, 1000, &bounds::PER_PAGE)?,
        max_pages: small(
            "max_pages",
            p.max_pages,
            DEFAULT_MAX_PAGES,
            &bounds::MAX_PAGES,
        )?,
        rate_reserve: small("rate_reserve", p.rate_reserve, 10, &bounds::RATE_RESERVE)?,
        concurrency: small("concurrency", p.concurrency, 4, &bounds::CONCURRENCY)?,
        full_resync_s: bounded(
            pl,
            "full_resync_s",
            p.full_resync_s,
            1800,
            &bounds::FULL_RESYNC_S,
        )?,
        resync_overlap_s: bounded(
            pl,
            "resync_overlap_s",
            p.resync_overlap_s,
            120,
            &bounds::RESYNC_OVERLAP_S,
        )?,
        timeout: timeout(pl, "timeout_s", p.timeout_s, 10)?,
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
            let digest_over = bounded(
                "[telegram]",
                "digest_over",
                t.digest_over,
                5,
                &bounds::DIGEST_OVER,
            )?;
            let delivery_reserve_s = bounded(
                "[telegram]",
                "delivery_reserve_s",
                t.delivery_reserve_s,
                DEFAULT_DELIVERY_RESERVE_S,
                &bounds::DELIVERY_RESERVE_S,
            )?;
            Some(Telegram {
                bot_token: None,
                chat_id,
                message_thread_id: t.message_thread_id,
                api_url,
                link_template: t.link_template.filter(|l| !l.trim().is_empty()),
                unblock_template: template(
                    "unblock_template",
                    t.unblock_template,
                    DEFAULT_UNBLOCK_TEMPLATE,
                )?,
                cycle_template: template(
                    "cycle_template",
                    t.cycle_template,
                    DEFAULT_CYCLE_TEMPLATE,
                )?,
                // The bound (1000) fits any usize.
                digest_over: usize::try_from(digest_over).unwrap_or(usize::MAX),
                delivery_reserve_s,
                timeout: timeout("[telegram]", "timeout_s", t.timeout_s, 10)?,
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

/// `[telegram] delivery_reserve_s` below the deadline (after the env
/// overrides, which may change `deadline_s`).
pub(super) fn check_delivery_reserve(config: &Config) -> Checked<()> {
    let deadline = config.reconcile.deadline_s;
    match &config.telegram {
        Some(t) if t.delivery_reserve_s >= deadline => Err(format!(
            "[telegram] delivery_reserve_s: must be between 0 and {} (below [reconcile] deadline_s = {deadline}), found {}",
            deadline - 1,
            t.delivery_reserve_s
        )),
        _ => Ok(()),
    }
}
