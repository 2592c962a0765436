//! `reconcile`: the level-triggered sweeper for a webhook-driven pipeline.
//! `docs/architecture.md` is the map of this tree; README.md covers operation.
//!
//! Layers, arrows pointing down only: `cmd` (one file per subcommand) uses
//! `tick` (one tick), which uses `core` (pure decisions), `peers` (HTTP) and
//! `store` (the SQLite sidecar); `output` renders a tick's outcome (report,
//! metrics). `sim` is the loopback simulator the tests and `demo` run
//! against.
//!
//! Only what the binary, the integration tests and the benchmarks use is
//! public; everything else is crate-private, so the compiler reports dead
//! code.

pub mod core;
pub mod sim;

mod cli;
mod cmd;
mod config;
mod logging;
mod output;
mod peers;
mod signals;
mod store;
mod tick;

pub use cli::Cli;
pub use cmd::{fail, run};
pub use logging::init as init_logging;

/// Below the command line, for the benchmarks (one tick in process) and the
/// integration tests (the sidecar's lock, the metric series, the
/// orchestrator API's field tables).
pub mod harness {
    pub use crate::cmd::conformance::{DEPENDENCY, GATE_RESULT, Kind as FieldKind, TASK};
    pub use crate::config::{Config, Reconcile, load_with_env as load_config};
    pub use crate::output::metrics::SERIES as METRIC_SERIES;
    pub use crate::store::{Sidecar, SidecarReader, TickLock};
    pub use crate::tick::{
        Command as TickCommand, Options as TickOptions, run as run_tick, run_at as run_tick_at,
    };
}
