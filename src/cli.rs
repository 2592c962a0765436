//! The command line. Also the source of the man page and the
//! shell completions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::config::{ConfigError, bounds};

/// The exit codes (docs/report.md), for `--help` and the man page's EXIT STATUS.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "The tick ran and no unit failed (skips, red gates, deferrals by the rate reserve \
         or the action cap, and kill switches are not failures). check: every probe passed.",
    ),
    (
        1,
        "The tick ran, but at least one unit (task, issue, project, notification) failed, or \
         a peer could not be read and units were skipped conservatively because of it; the \
         others were processed. check: at least one probe failed.",
    ),
    (2, "Command-line usage error."),
    (
        69,
        "EX_UNAVAILABLE: a requested pass could not start at all (the orchestrator's task \
         list is unreachable for gate; every project's Plane states are unreachable for \
         plane). In all the other pass still runs.",
    ),
    (
        74,
        "EX_IOERR: the sidecar cannot be opened, migrated or written.",
    ),
    (
        75,
        "EX_TEMPFAIL: another tick holds the lock (after --wait-lock), the deadline cut \
         the tick short, or a stop signal (SIGTERM, SIGINT, SIGHUP) ended it or its wait \
         for the lock.",
    ),
    (
        78,
        "EX_CONFIG: the configuration is missing, unreadable or invalid (the message names \
         the key).",
    ),
];

/// When several exit codes apply.
pub const EXIT_PRECEDENCE: &str =
    "When several apply, the first in this order wins: 78, 74, 69, 75, 1, 0.";

const AFTER_HELP: &str = "Exit codes: 0 ok; 1 a unit failed; 2 usage; 69 a pass could not \
start; 74 sidecar I/O; 75 lock busy, deadline or signal; 78 configuration. See reconcile(1) and \
reconcile.toml(5).";

#[derive(Debug, Parser)]
#[command(
    name = "reconcile",
    version,
    about = "Unstick tasks of a webhook-driven delivery pipeline",
    long_about = "Re-reads the truth (the orchestrator's tasks and quality gates, Plane's \
issue states), replays each transition a lost webhook should have caused through the \
same entry points a webhook would use, announces each unblock once on Telegram, and \
exits. Run it every minute from cron or a systemd timer.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Configuration file [default: /etc/reconcile/reconcile.toml]
    // OsString, not PathBuf's parser: an empty `RECONCILE_CONFIG=` then
    // names no file (as before clap read it) instead of a usage error.
    #[arg(
        short,
        long,
        global = true,
        value_name = "PATH",
        env = "RECONCILE_CONFIG",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::OsStringValueParser::new(),
            PathBuf::from
        )
    )]
    pub config: Option<PathBuf>,

    /// `config` came from `$RECONCILE_CONFIG`, not `--config`: a missing
    /// file there means "no config" to the sidecar-only commands, as an
    /// explicit `--config` does not (set by `Cli::parse_args`).
    #[arg(skip)]
    pub config_from_env: bool,

    /// Sidecar path (overrides [state] path)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Decide everything, change nothing
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,

    /// Report format on stdout
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Text, value_name = "FMT")]
    pub output: Format,

    /// Whole-tick budget in seconds, 1–3600 (overrides [reconcile] deadline_s)
    #[arg(long, global = true, value_name = "SECS")]
    pub deadline: Option<u64>,

    /// Wait this long for another tick's lock, 0–86400 seconds
    #[arg(long, global = true, value_name = "SECS", default_value_t = 0)]
    pub wait_lock: u64,

    /// More logging (repeatable); RUST_LOG still wins
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less logging, and a text report without summary lines
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One gate pass: advance tasks whose quality gate is green
    Gate,
    /// One Plane pass: replay lost Plane webhooks (start, resume, verdict)
    Plane,
    /// One tick: the gate pass, then the Plane pass
    All,
    /// Persisted counters; needs only the sidecar
    Status,
    /// Recent unblocks and ticks from the sidecar (read-only)
    History {
        /// Show at most N unblocks and N ticks
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Only what happened in this last period: 90 (seconds), 15m, 2h, 1d, 1h30m
        #[arg(long, value_name = "AGE", value_parser = parse_since)]
        since: Option<Duration>,
    },
    /// Validate the config, probe the orchestrator, Plane and Telegram
    /// read-only, show each project's state mapping and the tasks that can
    /// never be resolved
    Check {
        /// Config and sidecar only: no secret read, no peer contacted
        #[arg(long)]
        offline: bool,
    },
    /// Queued notifications: list them, or drop one
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Drop one de-dup key: the next unblock of it is announced
    Forget {
        /// The de-dup key: a work item id (ET-7), a task id or a Plane issue id
        key: String,
    },
    /// Run a real tick against a built-in simulated stack (no config needed)
    Demo {
        /// Also write the tick's metrics textfile to FILE
        #[arg(long, value_name = "FILE")]
        metrics: Option<PathBuf>,
    },
    /// Print a shell completion script on stdout
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout
    Man,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Every queued message and the most recent dropped ones
    List,
    /// Drop one queued message (it will not be sent)
    Drop {
        /// The message id, as `outbox list` shows it
        id: i64,
    },
}

impl Cli {
    /// Parses the process arguments (clap exits on a usage error) and
    /// records where `--config` came from.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.config_from_env =
            matches.value_source("config") == Some(clap::parser::ValueSource::EnvVariable);
        cli
    }

    /// The config file was named on the command line.
    pub fn config_given(&self) -> bool {
        self.config.is_some() && !self.config_from_env
    }

    /// The bounds of the numeric options, the same as in the file
    /// (docs/configuration.md): checked after parsing rather than by clap so
    /// that a value out of range is EX_CONFIG naming the option, as a bad
    /// `deadline_s` in the file is, and never reaches `Instant + Duration`.
    pub fn check_bounds(&self) -> Result<(), ConfigError> {
        let check = |name: &str, v: u64, range: &std::ops::RangeInclusive<u64>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(ConfigError(format!(
                    "--{name}: must be between {} and {} seconds, found {v}",
                    range.start(),
                    range.end()
                )))
            }
        };
        check("wait-lock", self.wait_lock, &bounds::WAIT_LOCK_S)?;
        if let Some(d) = self.deadline {
            check("deadline", d, &bounds::DEADLINE_S)?;
        }
        Ok(())
    }
}

fn parse_since(text: &str) -> Result<Duration, String> {
    crate::core::timestamp::parse_duration(text)
        .ok_or_else(|| format!("not a duration: {text:?} (e.g. 90, 15m, 2h, 1d, 1h30m)"))
}
