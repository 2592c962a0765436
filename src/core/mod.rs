//! The decisions, pure: facts in, outcome and reason out. Nothing here
//! performs I/O or imports from `peers`, `tick`, `store`, `cmd` or `output`
//! (a test in tests/architecture.rs holds that).
pub mod deps;
pub mod gate;
pub mod outcome;
pub mod plane;
pub mod states;
pub mod task;
pub mod text;
pub mod timestamp;
