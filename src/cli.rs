//! The command line (DESIGN §2). Also the source of the man page and the
//! shell completions.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "reconcile",
    version,
    about = "Unstick tasks of a webhook-driven delivery pipeline",
    long_about = "Re-reads the truth (the orchestrator's tasks and quality gates, Plane's \
issue states), replays each transition a lost webhook should have caused through the \
same entry points a webhook would use, announces each unblock once on Telegram, and \
exits. Run it every minute from cron or a systemd timer.",
    after_help = "Exit codes: 0 ok; 1 a unit failed; 2 usage; 69 a pass could not start; \
74 sidecar I/O; 75 lock busy or deadline; 78 configuration."
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
    #[arg(long, global = true, value_name = "SECS")]
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
    /// One F-1 pass: advance tasks whose quality gate is green
    Gate,
    /// One F-2 pass: replay lost Plane webhooks (start, resume, verdict)
    Plane,
    /// One tick: F-1 then F-2
    All,
    /// Persisted counters; needs only the sidecar
    Status,
    /// Run a real tick against a built-in simulated stack (no config needed)
    Demo,
}
