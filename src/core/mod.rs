//! The decisions, pure: facts in, outcome and reason out. Nothing here
//! performs I/O or imports from `peers`, `tick`, `store`, `cmd` or `output`
//! (a test in tests/architecture.rs holds that).
/// Serializes a closed set by its `as_str` name, so each value has one
/// spelling: the one the report, the sidecar and the logs all use.
macro_rules! serialize_as_str {
    ($($t:ty),+ $(,)?) => {
        $(impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        })+
    };
}
pub(crate) use serialize_as_str;

pub mod bounds;
pub mod deps;
pub mod gate;
pub mod outcome;
pub mod plane;
pub mod states;
pub mod task;
pub mod text;
pub mod timestamp;
