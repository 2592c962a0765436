//! Timestamps (DESIGN §5.4): parse what peers send, format what we write.
// TEMP stub until the real parser lands.
pub fn age_seconds(_text: &str, _now: time::OffsetDateTime) -> Option<f64> {
    None
}
