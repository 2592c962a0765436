//! The TOML file's syntax and type errors, as one line naming the key:
//! the key path from `serde_path_to_error`, the line and column from the
//! toml crate's span, the value never echoed (it could be a secret pasted
//! into the wrong key).

use serde_path_to_error::Segment;

use super::file::RawFile;
use super::one_line;

/// Parses and deserializes the file; the error is one line naming the key.
pub(super) fn parse(text: &str) -> Result<RawFile, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(text, &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| data_error(text, &e))
}

/// " (line L, column C)" of a span's start, or "".
fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let start = s.start.min(text.len());
        let before = text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" (line {line}, column {col})")
    })
    .unwrap_or_default()
}

/// Not TOML at all (or a key defined twice): the parser's message and where.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let at = position(text, e.span());
    let message = e.message().trim();
    // The span of a duplicate key is the key itself: name it.
    if message == "duplicate key"
        && let Some(name) = e.span().and_then(|s| text.get(s))
    {
        return one_line(&format!("duplicate key `{}`{at}", name.trim()));
    }
    one_line(&format!("{message}{at}"))
}

/// Valid TOML, wrong shape: an unknown key, or a value of the wrong type.
fn data_error(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let at = position(text, e.inner().span());
    let message = e.inner().message().trim();
    let path: Vec<&Segment> = e.path().iter().collect();
    // serde's `unknown_field` message: the path ends with the unknown key.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, parent) = match path.split_last() {
            Some((Segment::Map { key }, parent)) => (key.as_str(), parent),
            _ => (rest.split('`').next().unwrap_or(rest), &path[..]),
        };
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| format!(" (expected {})", e.replace('`', "")))
            .unwrap_or_default();
        let place = match section(parent) {
            None => "at the top level".to_string(),
            Some(s) => format!("in {s}"),
        };
        return one_line(&format!("unknown key `{name}` {place}{expected}{at}"));
    }
    let detail = describe_serde_message(message);
    let location = match path.split_last() {
        None => String::new(),
        Some((last, parent)) => match section(parent) {
            None => format!("{}: ", segment(last)),
            Some(s) => format!("{s} {}: ", segment(last)),
        },
    };
    one_line(&format!("{location}{detail}{at}"))
}

fn segment(s: &Segment) -> String {
    match s {
        Segment::Map { key } => key.clone(),
        Segment::Seq { index } => format!("#{}", index + 1),
        Segment::Enum { variant } => variant.clone(),
        Segment::Unknown => "?".into(),
    }
}

/// The table a path names, as the file spells it: `[reconcile]`,
/// `[plane.state_names]`, `[[projects]] #2`, `[[projects]] #1 state_names`.
/// None at the top level.
fn section(path: &[&Segment]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut out = match rest.first() {
        Some(Segment::Seq { index }) => format!("[[{}]] #{}", segment(first), index + 1),
        _ => format!("[{}", segment(first)),
    };
    let array = matches!(rest.first(), Some(Segment::Seq { .. }));
    let rest = if array { &rest[1..] } else { rest };
    if array {
        if !rest.is_empty() {
            let keys: Vec<String> = rest.iter().map(|s| segment(s)).collect();
            out.push(' ');
            out.push_str(&keys.join("."));
        }
    } else {
        for s in rest {
            out.push('.');
            out.push_str(&segment(s));
        }
        out.push(']');
    }
    Some(out)
}

/// "invalid type: string \"x\", expected i64" → "expected an integer, found
/// string" (no value: it could be anything).
fn describe_serde_message(message: &str) -> String {
    let (found, expected) = match message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "))
    {
        Some(pair) => pair,
        None => return message.to_string(),
    };
    let found_kind = found.split([' ', '`', '"']).next().unwrap_or(found).trim();
    let found_kind = match found_kind {
        "floating" => "float",
        "sequence" => "array",
        "map" => "table",
        "integer" if message.starts_with("invalid value") => {
            // Show the number: it is the point (e.g. negative for u64).
            return format!(
                "expected {}, found {}",
                describe_expected(expected),
                found.trim_start_matches("integer ").replace('`', "")
            );
        }
        other => other,
    };
    format!(
        "expected {}, found {found_kind}",
        describe_expected(expected)
    )
}

fn describe_expected(expected: &str) -> String {
    match expected {
        "i64" | "i32" => "an integer".into(),
        "u64" | "u32" | "usize" => "a non-negative integer".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "path string" => "a path string".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e => e.to_string(),
    }
}
