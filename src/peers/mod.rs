//! The three peers, over one HTTP layer.
pub mod http;
pub mod orchestrator;
pub mod plane;
pub mod telegram;
