//! The command line. Also the source of the man page and the
//! shell completions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

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
        "EX_TEMPFAIL: another tick holds the lock (after --wait-lock), or the deadline cut \
         the tick short.",
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
start; 74 sidecar I/O; 75 lock busy or deadline; 78 configuration. See reconcile(1) and \
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
    /// Configuration file [default: $RECONCILE_CONFIG, else /etc/reconcile/reconcile.toml]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Sidecar path (overrides [state] path)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Decide everything, change nothing
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,

    /// Report format on stdout
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Text, value_name = "FMT")]
    pub output: Format,

    /// Whole-tick budget in seconds (overrides [reconcile] deadline_s)
    #[arg(long, global = true, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: Option<u64>,

    /// Wait this long for another tick's lock
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

fn parse_since(text: &str) -> Result<Duration, String> {
    crate::core::timestamp::parse_duration(text)
        .ok_or_else(|| format!("not a duration: {text:?} (e.g. 90, 15m, 2h, 1d, 1h30m)"))
}
