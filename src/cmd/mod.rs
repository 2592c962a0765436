//! Dispatch of the subcommands, and the mapping of errors to exit codes.

pub mod check;
pub mod conformance;
pub mod demo;
pub mod history;
pub mod man;
pub mod ops;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::cli::{Cli, Command, Format, OutboxAction};
use crate::config::{self, Config, ConfigError};
use crate::output::report::Report;
use crate::store::{self, LockBusy, SidecarError, SidecarReader};
use crate::tick;

pub const EX_UNAVAILABLE: u8 = 69;
pub const EX_IOERR: u8 = 74;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_CONFIG: u8 = 78;

/// The exit code of an error that stopped the tool before a report.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<ConfigError>() {
            return EX_CONFIG;
        }
        if cause.is::<SidecarError>() {
            return EX_IOERR;
        }
        if cause.is::<LockBusy>() {
            return EX_TEMPFAIL;
        }
    }
    1
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cli.check_bounds()?;
    match cli.command {
        Command::Gate => run_tick(&cli, tick::Command::Gate),
        Command::Plane => run_tick(&cli, tick::Command::Plane),
        Command::All => run_tick(&cli, tick::Command::All),
        Command::Status => status(&cli),
        Command::History { limit, since } => crate::cmd::history::run(&cli, limit, since),
        Command::Check { offline } => crate::cmd::check::run(&cli, offline),
        Command::Outbox {
            action: OutboxAction::List,
        } => crate::cmd::ops::outbox_list(&cli),
        Command::Outbox {
            action: OutboxAction::Drop { id },
        } => crate::cmd::ops::outbox_drop(&cli, id),
        Command::Forget { ref key } => crate::cmd::ops::forget(&cli, key),
        Command::Demo { ref metrics } => {
            crate::cmd::demo::run(cli.output, cli.verbose > 0, metrics.as_deref())
        }
        Command::Completions { shell } => write_stdout(&crate::cmd::man::completions(shell)),
        Command::Man => write_stdout(&crate::cmd::man::render()),
    }
}

/// Writes generated text to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

pub fn config_path(cli: &Cli) -> PathBuf {
    // `--config`, else `$RECONCILE_CONFIG` (clap's `env`), else the default.
    cli.config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// The configuration with the command-line overrides applied; its warnings
/// are logged.
pub fn load_config(cli: &Cli, read_secrets: bool) -> anyhow::Result<Config> {
    let cfg = load_config_unlogged(cli, read_secrets)?;
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    Ok(cfg)
}

/// As `load_config`, for `check`, which prints the warnings in its own
/// report (logging them too showed each twice).
pub fn load_config_unlogged(cli: &Cli, read_secrets: bool) -> anyhow::Result<Config> {
    let mut cfg = config::load(&config_path(cli), read_secrets)?;
    if let Some(state) = &cli.state {
        cfg.state.path = state.clone();
    }
    if let Some(d) = cli.deadline {
        cfg.reconcile.deadline_s = d;
    }
    Ok(cfg)
}

fn run_tick(cli: &Cli, command: tick::Command) -> anyhow::Result<ExitCode> {
    let cfg = load_config(cli, true)?;
    let opts = tick::Options {
        command,
        dry_run: cli.dry_run,
        wait_lock: Duration::from_secs(cli.wait_lock),
    };
    let started = std::time::Instant::now();
    let textfile = cfg.metrics.textfile.as_ref().filter(|_| !cli.dry_run);
    // Metrics are a side channel: a failure is logged, the exit code stands.
    let log_failure = |r: anyhow::Result<()>, path: &Path| {
        if let Err(e) = r {
            log::error!("metrics textfile {}: {e:#}", path.display());
        }
    };
    let report = match tick::run(&cfg, &opts) {
        Ok(outcome) => Report::new(outcome, &cfg.reconcile),
        Err(e) => {
            if let Some(path) = textfile
                && exit_code_for(&e) == EX_IOERR
            {
                let r = crate::output::metrics::write_after_sidecar_error(
                    path,
                    EX_IOERR,
                    started.elapsed(),
                );
                log_failure(r, path);
            }
            return Err(e);
        }
    };
    if let Some(path) = textfile {
        log_failure(
            crate::output::metrics::write(path, &report, started.elapsed()),
            path,
        );
    }
    print_report(&report, cli.output, cli.verbose > 0, cli.quiet > 0);
    Ok(ExitCode::from(report.exit_code))
}

pub fn print_report(report: &Report, format: Format, verbose: bool, quiet: bool) {
    match format {
        Format::Json => println!("{}", report.json()),
        Format::Text => print!("{}", report.text(verbose, quiet)),
    }
}

/// The original reconciler's status() snapshot, from the sidecar alone; the config (when
/// there is one) only adds enabled / plane_enabled / interval.
fn status(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cfg = optional_config(cli, "status");
    let env_bool = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| config::parse_env_bool(&v))
    };
    let (enabled, plane_enabled, interval) = match &cfg {
        Some(c) => (
            Some(c.reconcile.enabled),
            Some(c.reconcile.plane_enabled),
            c.reconcile.interval_s,
        ),
        None => (
            env_bool("ORCH_RECONCILE_ENABLED"),
            env_bool("ORCH_RECONCILE_PLANE_ENABLED"),
            std::env::var("ORCH_RECONCILE_INTERVAL_S")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        ),
    };
    let state_path = state_path(cli, cfg.as_ref());
    let snapshot = match SidecarReader::open(&state_path)? {
        Some(s) => s.snapshot()?.at(time::OffsetDateTime::now_utc()),
        None => store::Snapshot::default(),
    };
    let mut value = serde_json::to_value(&snapshot).context("serializing the status")?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("enabled".into(), serde_json::json!(enabled));
        obj.insert("plane_enabled".into(), serde_json::json!(plane_enabled));
        obj.insert("interval".into(), serde_json::json!(interval));
        obj.insert(
            "state_path".into(),
            serde_json::json!(state_path.display().to_string()),
        );
    }
    match cli.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ),
        Format::Text => print!("{}", status_text(&value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration, without secrets, when there is one; for the commands
/// that need only the sidecar (a broken config draws a warning, not 78).
pub fn optional_config(cli: &Cli, what: &str) -> Option<Config> {
    let path = config_path(cli);
    if !(path.exists() || cli.config_given()) {
        return None;
    }
    match load_config(cli, false) {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("{what} without configuration: {e:#}");
            None
        }
    }
}

/// The sidecar: --state, else the config's [state] path, else the default.
pub fn state_path(cli: &Cli, cfg: Option<&Config>) -> PathBuf {
    match (&cli.state, cfg) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => c.state.path.clone(),
        (None, None) => default_state_path(),
    }
}

fn status_text(value: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(obj) = value.as_object() {
        for (k, v) in obj {
            let shown = match v {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(m) if m.is_empty() => "-".to_string(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            out.push_str(&format!("{k}: {shown}\n"));
        }
    }
    out
}

fn default_state_path() -> PathBuf {
    match std::env::var("STATE_DIRECTORY") {
        Ok(dir) if !dir.is_empty() => {
            Path::new(dir.split(':').next().unwrap_or(&dir)).join("state.sqlite")
        }
        _ => PathBuf::from("/var/lib/reconcile/state.sqlite"),
    }
}
