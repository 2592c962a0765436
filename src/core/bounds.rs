//! How long a peer's string may be when it is kept (docs/sidecar.md, "Peer
//! strings are bounded"): a hostile peer must not be able to store megabytes
//! in the sidecar on every tick. Identifiers are never cut (a cut id names
//! another thing): an entry whose id is too long is a bad entry. Free text
//! (an issue's name, a gate's detail) is cut at a character boundary.

use serde_json::{Map, Value};

use super::states::PlaneState;

/// The longest identifier kept, in bytes: ids, state uuids, stages,
/// work item ids, timestamps. Real ones are under 64 bytes.
pub const MAX_ID: usize = 256;

/// The longest free text kept, in bytes: an issue's name, a gate's or an
/// advance's detail. Telegram's own limit on a whole message is 4096 chars.
pub const MAX_TEXT: usize = 4096;

/// Marks text that was cut.
const ELLIPSIS: &str = "…";

/// `s` within `max` bytes: unchanged when it fits, else cut at a character
/// boundary and ended by "…" (the "…" included in `max`).
pub fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    if max >= ELLIPSIS.len() {
        s.push_str(ELLIPSIS);
    }
    s
}

/// The start of `s`, for a message about it: a few dozen characters.
pub fn head(s: &str) -> String {
    cut(s.chars().take(40).collect(), 40 * 4)
}

/// Ok when identifier `s` fits [`MAX_ID`]; else why `what` is refused.
pub fn check_id(what: &str, s: &str) -> Result<(), String> {
    if s.len() <= MAX_ID {
        return Ok(());
    }
    Err(format!(
        "{what} is {} bytes long, over the {MAX_ID}-byte limit ({:?}…)",
        s.len(),
        head(s)
    ))
}

/// A Plane state bounded (docs/sidecar.md): an id over [`MAX_ID`] fails
/// the states read, a longer group is dropped, the name is cut.
pub fn bound_state(mut s: PlaneState) -> Result<PlaneState, String> {
    check_id("a state id", &s.id)?;
    s.name = cut(s.name, MAX_TEXT);
    s.group = s.group.filter(|g| g.len() <= MAX_ID);
    Ok(s)
}

/// Fields of a listed issue holding free text; every other string is an
/// identifier, a timestamp or a number.
const TEXT_FIELDS: [&str; 2] = ["name", "description_stripped"];

/// Bounds every field of a listed issue in place, its id and state already
/// checked: text is cut to [`MAX_TEXT`], a longer identifier is dropped, and
/// so is a list or an object where Plane sends a scalar. The state is kept
/// as its uuid (a replay sends it expanded anyway).
pub fn bound_issue(m: &mut Map<String, Value>, state: Option<&str>) {
    if let Some(s) = state {
        m.insert("state".into(), Value::from(s));
    }
    m.retain(|k, v| match v {
        Value::String(s) if TEXT_FIELDS.contains(&k.as_str()) => {
            *s = cut(std::mem::take(s), MAX_TEXT);
            true
        }
        Value::String(s) => s.len() <= MAX_ID,
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::Array(_) | Value::Object(_) => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_cuts_long_text_at_a_char_boundary() {
        assert_eq!(cut("short".into(), 10), "short");
        assert_eq!(cut("x".repeat(10), 10), "x".repeat(10));
        let c = cut("x".repeat(11), 10);
        assert_eq!(c, format!("{}…", "x".repeat(7)));
        assert_eq!(c.len(), 10);
        // "ж" is 2 bytes: 10 - 3 = 7 falls inside the fourth one.
        let c = cut("ж".repeat(20), 10);
        assert_eq!(c, "жжж…");
        assert!(cut("abc".into(), 1).is_empty());
    }

    #[test]
    fn an_identifier_over_the_limit_is_refused_naming_its_length() {
        assert!(check_id("issue id", &"a".repeat(MAX_ID)).is_ok());
        let e = check_id("issue id", &"a".repeat(MAX_ID + 1)).unwrap_err();
        assert!(e.contains("257 bytes"), "{e}");
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn an_issue_keeps_bounded_scalars_only() {
        let Value::Object(mut m) = serde_json::json!({
            "id": "i-1", "name": "n".repeat(MAX_TEXT + 10), "sequence_id": 7,
            "state": {"id": "s-1", "name": "Todo"}, "updated_at": "u".repeat(MAX_ID + 1),
            "project": "p-1", "labels": ["x"], "workspace": null,
        }) else {
            unreachable!()
        };
        bound_issue(&mut m, Some("s-1"));
        let name = m["name"].as_str().unwrap();
        assert_eq!(name.len(), MAX_TEXT);
        assert!(name.ends_with('…'));
        assert_eq!(m["state"], "s-1");
        assert_eq!(m["sequence_id"], 7);
        assert_eq!(m["project"], "p-1");
        assert!(m["workspace"].is_null());
        assert!(!m.contains_key("updated_at") && !m.contains_key("labels"));
    }

    proptest::proptest! {
        #[test]
        fn cut_text_fits_and_is_a_prefix(s in proptest::prelude::any::<String>(), max in 0usize..64) {
            let c = cut(s.clone(), max);
            proptest::prop_assert!(c.len() <= max || c == s);
            let kept = c.strip_suffix(ELLIPSIS).unwrap_or(&c);
            proptest::prop_assert!(s.starts_with(kept));
        }
    }
}
