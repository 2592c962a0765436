//! `reconcile`: the level-triggered sweeper for a webhook-driven pipeline.
//! See DESIGN.md (shared) for the contracts; README.md for operation.
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod demo;
pub mod deps;
pub mod gate;
pub mod history;
pub mod logging;
pub mod manpage;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod outcome;
pub mod peers;
pub mod plane_pass;
pub mod report;
pub mod sidecar;
pub mod sim;
pub mod states;
pub mod tick;
pub mod timestamp;
