//! What a tick shows: the report (text, JSON) and the metrics textfile.
pub mod metrics;
pub mod report;

pub use crate::core::text::escape;
