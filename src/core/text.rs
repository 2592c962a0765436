//! Peer text made safe to print on one line (docs/reliability.md, hostile
//! conditions): the report, the logs and every command's text output use it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A peer's string made safe for a text line: control characters (newline,
/// escape, carriage return, …) become visible escapes (`\n`, `\x1b`, `\u{85}`),
/// and a backslash is doubled so that an escape cannot be forged. A hostile
/// peer then cannot forge report or log lines, journald priorities, or drive
/// the terminal (docs/reliability.md, hostile conditions).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || c == '\\' || is_line_break(c))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && (c.is_control()) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_line_break(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Unicode line and paragraph separators: not control characters, but
/// some terminals and log viewers break lines on them.
fn is_line_break(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_control_characters_visible() {
        assert_eq!(escape("testing"), "testing");
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\x1b[2J<3>x"), "\\x1b[2J<3>x");
        assert_eq!(escape("a\\nb"), "a\\\\nb");
        assert_eq!(escape("\u{85}\u{2028}"), "\\u{85}\\u{2028}");
        assert_eq!(escape("ж\t"), "ж\\t");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_has_no_control_character(s in proptest::prelude::any::<String>()) {
            let e = escape(&s);
            proptest::prop_assert!(!e.chars().any(|c| c.is_control() || is_line_break(c)), "{:?}", e);
        }
    }
}
