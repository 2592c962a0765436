//! `reconcile`: the level-triggered sweeper for a webhook-driven pipeline.
//! See DESIGN.md (shared) for the contracts; README.md for operation.
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod deps;
pub mod gate;
pub mod logging;
pub mod notify;
pub mod outcome;
pub mod peers;
pub mod plane_pass;
pub mod report;
pub mod sidecar;
pub mod sim;
pub mod states;
pub mod tick;
pub mod timestamp;
