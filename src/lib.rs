//! `reconcile`: the level-triggered sweeper for a webhook-driven pipeline.
//! `docs/architecture.md` is the map of this tree; README.md covers operation.
//!
//! Layers, arrows pointing down only: `cmd` (one file per subcommand) uses
//! `tick` (one tick), which uses `core` (pure decisions), `peers` (HTTP),
//! `store` (the SQLite sidecar) and `output` (report, metrics). `sim` is the
//! loopback simulator the tests and `demo` run against.
pub mod cli;
pub mod cmd;
pub mod config;
pub mod core;
pub mod logging;
pub mod output;
pub mod peers;
pub mod signals;
pub mod sim;
pub mod store;
pub mod tick;
