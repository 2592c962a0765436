//! What a tick shows: the report (text, JSON) and the metrics textfile.
pub mod metrics;
pub mod report;
