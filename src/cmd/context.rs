//! What every command resolves once from its command line: where the
//! configuration and the sidecar are, and how to print. Commands receive a
//! `Context`; nothing they call reaches back up to the command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Format};
use crate::config::{self, Config};

#[derive(Debug, Clone)]
pub struct Context {
    /// `--config`, else `$RECONCILE_CONFIG`, else the default path.
    pub config_path: PathBuf,
    /// The path was named by `--config` (not `$RECONCILE_CONFIG`): a missing
    /// file is then an error
    /// even for the commands that can do without one.
    config_given: bool,
    /// `--state`: overrides the config's `[state] path`.
    state: Option<PathBuf>,
    pub format: Format,
    pub verbose: bool,
    pub quiet: bool,
    pub dry_run: bool,
    deadline: Option<u64>,
    pub wait_lock: Duration,
}

impl Context {
    pub fn new(cli: &Cli) -> Context {
        Context {
            config_path: cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH)),
            config_given: cli.config_given(),
            state: cli.state.clone(),
            format: cli.output,
            verbose: cli.verbose > 0,
            quiet: cli.quiet > 0,
            dry_run: cli.dry_run,
            deadline: cli.deadline,
            wait_lock: Duration::from_secs(cli.wait_lock),
        }
    }

    /// The configuration with the command-line overrides applied; its
    /// warnings are logged once, here.
    pub fn config(&self, read_secrets: bool) -> anyhow::Result<Config> {
        let cfg = self.config_unlogged(read_secrets)?;
        for w in &cfg.warnings {
            log::warn!("{w}");
        }
        Ok(cfg)
    }

    /// As `config`, for `check`, which prints the warnings in its own
    /// report (logging them too showed each twice).
    pub fn config_unlogged(&self, read_secrets: bool) -> anyhow::Result<Config> {
        let mut cfg = config::load(&self.config_path, read_secrets)?;
        if let Some(state) = &self.state {
            cfg.state.path = state.clone();
        }
        if let Some(d) = self.deadline {
            cfg.reconcile.deadline_s = d;
        }
        Ok(cfg)
    }

    /// Whether there is a configuration to read: one was named, or the
    /// default file exists.
    pub fn has_config(&self) -> bool {
        self.config_given || self.config_path.exists()
    }

    /// The configuration, without secrets, when there is one; for the
    /// commands that need only the sidecar (a broken config draws a warning,
    /// not 78).
    pub fn optional_config(&self, what: &str) -> Option<Config> {
        if !self.has_config() {
            return None;
        }
        match self.config(false) {
            Ok(c) => Some(c),
            Err(e) => {
                log::warn!("{what} without configuration: {e:#}");
                None
            }
        }
    }

    /// The sidecar: `--state`, else the config's `[state] path`, else the
    /// default (under systemd, `$STATE_DIRECTORY/state.sqlite`).
    pub fn state_path(&self, cfg: Option<&Config>) -> PathBuf {
        match (&self.state, cfg) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => c.state.path.clone(),
            (None, None) => config::default_state_path(),
        }
    }

    /// The sidecar path for a command that may write: a config that exists
    /// must be valid (78), as for a tick.
    pub fn writable_state_path(&self) -> anyhow::Result<PathBuf> {
        if self.state.is_some() || !self.has_config() {
            return Ok(self.state_path(None));
        }
        let cfg = self.config(false)?;
        Ok(self.state_path(Some(&cfg)))
    }
}
