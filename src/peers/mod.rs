//! The three peers, over one HTTP layer.
mod budget;
pub mod http;
pub mod orchestrator;
pub mod plane;
pub mod telegram;
