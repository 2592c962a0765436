//! Timestamps (docs/decisions.md, "Ages and timestamps"): parse what peers send, format what we write.
//!
//! [`parse`] follows the grammar CPython 3.11's (C) `datetime.fromisoformat`
//! accepts, after the original reconciler's own pre-processing (`strip()`, a trailing `Z`
//! replaced by `+00:00`, naive = UTC). Choices where Python is looser or
//! odd:
//! * the date/time separator is `T`, `t` or a space (Python takes any
//!   single character, so the original read "2026-06-09Z" → "2026-06-09+00:00"
//!   as midnight; here that is not a timestamp);
//! * offset minutes and seconds must be below 60 (Python does not check
//!   them, only that the whole offset is under 24 h);
//! * fraction digits beyond six are truncated, as Python does; a fraction
//!   is only accepted after the seconds (the documented grammar);
//! * an offset with a sub-second part (Python allows `+01:00:00.5`) is
//!   applied exactly and the result is returned in UTC, since
//!   `time::UtcOffset` holds whole seconds only.
//!
//! Nothing here panics on any input.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// Parses a timestamp as the original's `_age_seconds_iso` would (see the module
/// documentation). `None` when it is not one.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    // The original: `if text.endswith("Z"): text = text[:-1] + "+00:00"`.
    let owned;
    let text = match text.strip_suffix('Z') {
        Some(head) => {
            owned = format!("{head}+00:00");
            owned.as_str()
        }
        None => text,
    };
    let b = text.as_bytes();
    if b.len() < 7 || !b.is_ascii() {
        return None;
    }
    let sep = find_separator(b)?;
    let date = parse_date(&b[..sep])?;
    if sep == b.len() {
        return Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    }
    if !matches!(b[sep], b'T' | b't' | b' ') {
        return None;
    }
    let rest = &b[sep + 1..];
    // The offset starts at the first `Z`, `+` or `-` of the time part.
    let tz_pos = rest
        .iter()
        .position(|c| matches!(c, b'Z' | b'+' | b'-'))
        .unwrap_or(rest.len());
    let (h, m, s, us) = parse_hms_frac(&rest[..tz_pos])?;
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let time = Time::from_hms_micro(h, m, s, us).ok()?;
    let local = PrimitiveDateTime::new(date, time);
    if tz_pos == rest.len() {
        // CPython takes an empty fraction as zero, but only before an
        // offset ("10:30:15.+03:00" yes, "10:30:15." no).
        if matches!(rest.last(), Some(b'.' | b',')) {
            return None;
        }
        return Some(local.assume_utc());
    }
    let tz = &rest[tz_pos + 1..];
    if rest[tz_pos] == b'Z' {
        // Only reachable for a `Z` that is not last (a last one became
        // `+00:00` above): garbage.
        return None;
    }
    let negative = rest[tz_pos] == b'-';
    let (oh, om, os, ous) = parse_hms_frac(tz)?;
    if oh > 23 || om > 59 || os > 59 {
        return None;
    }
    if ous == 0 {
        let (oh, om, os) = (oh as i8, om as i8, os as i8);
        let offset = if negative {
            UtcOffset::from_hms(-oh, -om, -os)
        } else {
            UtcOffset::from_hms(oh, om, os)
        }
        .ok()?;
        Some(local.assume_offset(offset))
    } else {
        // local = utc + offset  ⇒  utc = local − offset.
        let micros = ((i64::from(oh) * 60 + i64::from(om)) * 60 + i64::from(os)) * 1_000_000
            + i64::from(ous);
        let offset = time::Duration::microseconds(if negative { -micros } else { micros });
        local.assume_utc().checked_sub(offset)
    }
}

/// Where the date part ends: CPython's `_find_isoformat_datetime_separator`
/// (`b.len() >= 7`).
fn find_separator(b: &[u8]) -> Option<usize> {
    let len = b.len();
    if len == 7 {
        return Some(7);
    }
    if b[4] == b'-' {
        if b[5] == b'W' {
            if len > 8 && b[8] == b'-' {
                if len == 9 {
                    return None;
                }
                if len > 10 && b[10].is_ascii_digit() {
                    return Some(8);
                }
                return Some(10);
            }
            return Some(8);
        }
        return Some(10.min(len));
    }
    if b[4] == b'W' {
        let mut idx = 7;
        while idx < len && b[idx].is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

/// Exactly `n` ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// `YYYY-MM-DD`, `YYYYMMDD`, `YYYY-Www[-D]`, `YYYYWww[D]`.
fn parse_date(b: &[u8]) -> Option<Date> {
    if !matches!(b.len(), 7 | 8 | 10) {
        return None;
    }
    let year = digits(b.get(0..4)?)?;
    if year == 0 {
        return None; // Python's MINYEAR is 1
    }
    let year = i32::try_from(year).ok()?;
    let has_sep = b[4] == b'-';
    let mut pos = 4 + usize::from(has_sep);
    if b.get(pos) == Some(&b'W') {
        pos += 1;
        let week = digits(b.get(pos..pos + 2)?)?;
        pos += 2;
        let mut day = 1;
        if b.len() > pos {
            if (b[pos] == b'-') != has_sep {
                return None;
            }
            pos += usize::from(has_sep);
            day = digits(b.get(pos..pos + 1)?)?;
            pos += 1;
        }
        if pos != b.len() {
            return None;
        }
        let weekday = match day {
            1 => Weekday::Monday,
            2 => Weekday::Tuesday,
            3 => Weekday::Wednesday,
            4 => Weekday::Thursday,
            5 => Weekday::Friday,
            6 => Weekday::Saturday,
            7 => Weekday::Sunday,
            _ => return None,
        };
        let week = u8::try_from(week).ok()?;
        return Date::from_iso_week_date(year, week, weekday).ok();
    }
    let month = digits(b.get(pos..pos + 2)?)?;
    pos += 2;
    if (b.get(pos) == Some(&b'-')) != has_sep {
        return None;
    }
    pos += usize::from(has_sep);
    let day = digits(b.get(pos..pos + 2)?)?;
    pos += 2;
    if pos != b.len() {
        return None;
    }
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

/// `HH[:MM[:SS[{.,}f+]]]` or `HH[MM[SS[{.,}f+]]]` (one style throughout):
/// (hour, minute, second, microsecond), unchecked ranges (two digits each).
fn parse_hms_frac(b: &[u8]) -> Option<(u8, u8, u8, u32)> {
    let mut comps = [0u8; 3];
    let mut pos = 0;
    let mut has_sep = false;
    let mut i = 0;
    loop {
        let v = digits(b.get(pos..pos + 2)?)?;
        comps[i] = u8::try_from(v).ok()?;
        pos += 2;
        if pos == b.len() {
            return Some((comps[0], comps[1], comps[2], 0));
        }
        if i == 0 {
            has_sep = b[pos] == b':';
        }
        if i == 2 {
            break;
        }
        if has_sep {
            if b[pos] != b':' {
                return None;
            }
            pos += 1;
        }
        i += 1;
    }
    // After the seconds: a fraction or nothing.
    if !matches!(b[pos], b'.' | b',') {
        return None;
    }
    let frac = &b[pos + 1..];
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut us = 0u32;
    for k in 0..6 {
        us = us * 10 + frac.get(k).map_or(0, |d| u32::from(d - b'0'));
    }
    Some((comps[0], comps[1], comps[2], us))
}

/// RFC 3339 in UTC with `Z`, whole seconds: `2026-11-27T10:00:00Z`.
pub fn format(t: OffsetDateTime) -> String {
    // Out of range in UTC (year 9999 late with a negative offset): keep the
    // offset rather than panic.
    let (u, suffix) = match t.checked_to_offset(UtcOffset::UTC) {
        Some(u) => (u, "Z".to_string()),
        None => {
            let (h, m, _) = t.offset().as_hms();
            let sign = if t.offset().is_negative() { '-' } else { '+' };
            (
                t,
                format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs()),
            )
        }
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}",
        u.year(),
        u8::from(u.month()),
        u.day(),
        u.hour(),
        u.minute(),
        u.second(),
        suffix
    )
}

/// Seconds from the timestamp to `now` (negative when it is in the future);
/// `None` when `text` is not a timestamp (the original's `_age_seconds_iso`).
pub fn age_seconds(text: &str, now: OffsetDateTime) -> Option<f64> {
    let t = parse(text)?;
    Some((now - t).as_seconds_f64())
}

/// A duration for CLI flags such as `--since 2h`: plain seconds (`90`), or
/// one or more `<integer><unit>` groups with unit `s`, `m`, `h` or `d`
/// (`2h`, `1h30m`, `2 h`). Case-insensitive; `None` on anything else or on
/// overflow.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|c| c.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(std::time::Duration::from_secs);
    }
    let b = text.as_bytes();
    let mut total: u64 = 0;
    let mut pos = 0;
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        let n: u64 = text[start..pos].parse().ok()?;
        while pos < b.len() && b[pos] == b' ' {
            pos += 1;
        }
        let unit: u64 = match b.get(pos).map(u8::to_ascii_lowercase) {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            Some(b'd') => 86_400,
            _ => return None,
        };
        pos += 1;
        while pos < b.len() && b[pos] == b' ' {
            pos += 1;
        }
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn p(s: &str) -> OffsetDateTime {
        parse(s).unwrap_or_else(|| panic!("should parse: {s:?}"))
    }

    #[test]
    fn offsets() {
        assert_eq!(
            p("2026-06-09T10:00:00Z"),
            datetime!(2026-06-09 10:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00+03:00"),
            datetime!(2026-06-09 07:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00+0300"),
            datetime!(2026-06-09 07:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00+03"),
            datetime!(2026-06-09 07:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00-05:30"),
            datetime!(2026-06-09 15:30:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00+03:00:30"),
            datetime!(2026-06-09 06:59:30 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00+00:00:00.5"),
            datetime!(2026-06-09 09:59:59.5 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00-00:00"),
            datetime!(2026-06-09 10:00:00 UTC)
        );
        assert_eq!(p("2026-06-09T10:00:00"), datetime!(2026-06-09 10:00:00 UTC));
        assert_eq!(p("2026-06-09T02:26:49+03:00").offset().whole_hours(), 3);
    }

    #[test]
    fn separators_fractions_and_forms() {
        assert_eq!(p("2026-06-09 10:00:00"), datetime!(2026-06-09 10:00:00 UTC));
        assert_eq!(
            p("  2026-06-09t10:00:00Z \n"),
            datetime!(2026-06-09 10:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00.Z"),
            datetime!(2026-06-09 10:00:00 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00.5Z"),
            datetime!(2026-06-09 10:00:00.5 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00.123456+00:00"),
            datetime!(2026-06-09 10:00:00.123456 UTC)
        );
        assert_eq!(
            p("2026-06-09T10:00:00,123456789Z"),
            datetime!(2026-06-09 10:00:00.123456 UTC)
        );
        assert_eq!(p("2026-06-09"), datetime!(2026-06-09 00:00:00 UTC));
        assert_eq!(p("20260609"), datetime!(2026-06-09 00:00:00 UTC));
        assert_eq!(p("20260609T1030"), datetime!(2026-06-09 10:30:00 UTC));
        assert_eq!(p("20260609T103015"), datetime!(2026-06-09 10:30:15 UTC));
        assert_eq!(
            p("20260609T103015.25+0130"),
            datetime!(2026-06-09 09:00:15.25 UTC)
        );
        assert_eq!(p("2026-06-09T10"), datetime!(2026-06-09 10:00:00 UTC));
        assert_eq!(p("2026-06-09T10:30"), datetime!(2026-06-09 10:30:00 UTC));
        assert_eq!(p("2026-06-09T10Z"), datetime!(2026-06-09 10:00:00 UTC));
        // ISO week dates.
        assert_eq!(p("2026-W01-1"), datetime!(2025-12-29 00:00:00 UTC));
        assert_eq!(p("2026W011"), datetime!(2025-12-29 00:00:00 UTC));
        assert_eq!(p("2026-W24"), datetime!(2026-06-08 00:00:00 UTC));
        assert_eq!(p("2026-W24-2T10:00"), datetime!(2026-06-09 10:00:00 UTC));
    }

    #[test]
    fn garbage() {
        for s in [
            "",
            "   ",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "0000-01-01",
            "2026-06-09T25:00",
            "2026-06-09T24:00",
            "2026-06-09T10:60",
            "2026-06-09T10:00:61",
            "2026-06-09T",
            "2026-06-09X10:00",
            "2026-06-09T1",
            "2026-06-09T10:0",
            "2026-06-09T10:00:00.",
            "2026-06-09T10:00:00.5x",
            "2026-06-09T10:00:00+3",
            "2026-06-09T10:00:00+24:00",
            "2026-06-09T10:00:00+03:60",
            "2026-06-09T10:00:00+03:00junk",
            "2026-06-09T10:00Zjunk",
            "2026-06-09T10:0000",
            "2026-0609",
            "202606-09",
            "2026-W54-1",
            "2026-W01-8",
            "2026-06-09T10:00:00ZZ",
            // The original turns this into "2026-06-09+00:00", which Python reads
            // with `+` as the separator; we do not take `+` as one.
            "2026-06-09Z",
            "２０２６-06-09",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(
            format(datetime!(2026-11-27 13:00:00.75 +03:00)),
            "2026-11-27T10:00:00Z"
        );
        assert_eq!(
            format(datetime!(9999-12-31 23:00:00 -05:00)),
            "9999-12-31T23:00:00-05:00"
        );
    }

    #[test]
    fn ages() {
        let now = datetime!(2026-06-09 12:00:00 UTC);
        assert_eq!(age_seconds("2026-06-09T14:00:00+03:00", now), Some(3600.0));
        assert_eq!(age_seconds("2026-06-09T12:00:01.5", now), Some(-1.5));
        assert_eq!(age_seconds("nope", now), None);
        assert_eq!(age_seconds("", now), None);
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration(" 2h "), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("2 H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        for bad in [
            "",
            "h",
            "2x",
            "-2h",
            "1.5h",
            "2h-",
            "99999999999999999999d",
            "1h 2",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn parse_never_panics_near_grammar(s in "[0-9W:T .,+Z-]{0,40}") {
            let _ = parse(&s);
            let _ = age_seconds(&s, OffsetDateTime::UNIX_EPOCH);
        }

        #[test]
        fn round_trips(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000, off in -86_399i32..86_400) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            let t = match t.checked_to_offset(UtcOffset::from_whole_seconds(off).unwrap()) {
                Some(t) => t,
                None => t,
            };
            let once = format(t);
            let back = parse(&once).unwrap();
            prop_assert_eq!(format(back), once);
            prop_assert_eq!(back.unix_timestamp(), t.unix_timestamp());
        }
    }
}
