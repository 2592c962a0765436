//! `reconcile`: the level-triggered sweeper for a webhook-driven pipeline.
//! See DESIGN.md (shared) for the contracts; README.md for operation.
pub mod config;
pub mod gate;
pub mod outcome;
pub mod peers;
pub mod sidecar;
pub mod sim;
pub mod states;
pub mod timestamp;
