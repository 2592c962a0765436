//! Environment overrides (the names of the original Python reconciler) and
//! the grace-overrides JSON.

use std::collections::BTreeMap;

use std::ops::RangeInclusive;

use super::types::{ConfigError, GRACE_OVERRIDES_ENV, Reconcile, bounds};

/// The original Python reconciler's boolean spellings, case-insensitive, trimmed.
pub fn parse_env_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Shown in an env error: the start of the value, on one line.
fn shown_value(v: &str) -> String {
    let cut: String = v.chars().take(40).collect();
    format!("{cut:?}")
}

fn env_int(name: &str, raw: &str) -> Result<i64, ConfigError> {
    parse_python_int(raw).map_err(|why| {
        ConfigError(format!(
            "env {name}: expected an integer, found {} ({why})",
            shown_value(raw)
        ))
    })
}

fn env_uint(name: &str, raw: &str) -> Result<u64, ConfigError> {
    let v = env_int(name, raw)?;
    u64::try_from(v).map_err(|_| {
        ConfigError(format!(
            "env {name}: expected a non-negative integer, found {v}"
        ))
    })
}

/// `v` within `range`, else an error naming the variable.
fn env_bounded<T>(name: &str, v: T, range: &RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError(format!(
            "env {name}: must be between {} and {}, found {v}",
            range.start(),
            range.end()
        )))
    }
}

/// Applies the original Python reconciler's env variables over the file. Blank or whitespace-only
/// values of the boolean and integer variables are errors ("anything else" is
/// EX_CONFIG). A blank `ORCH_RECONCILE_GRACE_OVERRIDES_JSON` is treated as
/// UNSET (the file table stays): the original read a blank value as "no
/// overrides", which was its default; here the default is the file table,
/// and an empty `VAR=` line in an environment file should not silently wipe
/// it. Any non-blank value replaces the file table, even when it parses to
/// {} with warnings.
pub(super) fn apply_env(
    r: &mut Reconcile,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let bools: [(&str, &mut bool); 5] = [
        ("ORCH_RECONCILE_ENABLED", &mut r.enabled),
        ("ORCH_RECONCILE_PLANE_ENABLED", &mut r.plane_enabled),
        (
            "ORCH_RECONCILE_SKIP_BLOCKED_ENABLED",
            &mut r.skip_blocked_enabled,
        ),
        ("ORCH_RECONCILE_NOTIFY_UNBLOCK", &mut r.notify_unblock),
        ("ORCH_TASK_DEPS_ENABLED", &mut r.task_deps_enabled),
    ];
    for (name, slot) in bools {
        if let Some(v) = env(name) {
            *slot = parse_env_bool(&v).ok_or_else(|| {
                ConfigError(format!(
                    "env {name}: expected a boolean (true/false/1/0/yes/no/on/off), found {}",
                    shown_value(&v)
                ))
            })?;
        }
    }
    if let Some(v) = env("ORCH_RECONCILE_GRACE_DEFAULT_S") {
        r.grace_default_s = env_int("ORCH_RECONCILE_GRACE_DEFAULT_S", &v)?;
    }
    if let Some(v) = env("ORCH_MAX_DEVELOPER_RETRIES") {
        let n = env_int("ORCH_MAX_DEVELOPER_RETRIES", &v)?;
        r.max_developer_retries = env_bounded(
            "ORCH_MAX_DEVELOPER_RETRIES",
            n,
            &bounds::MAX_DEVELOPER_RETRIES,
        )?;
    }
    if let Some(v) = env("ORCH_RECONCILE_MAX_ACTIONS") {
        let n = env_uint("ORCH_RECONCILE_MAX_ACTIONS", &v)?;
        r.max_actions = env_bounded("ORCH_RECONCILE_MAX_ACTIONS", n, &bounds::MAX_ACTIONS)?;
    }
    if let Some(v) = env("ORCH_RECONCILE_INTERVAL_S") {
        let n = env_interval(&v)?;
        r.interval_s = Some(env_bounded(
            "ORCH_RECONCILE_INTERVAL_S",
            n,
            &bounds::INTERVAL_S,
        )?);
    }
    if let Some(v) = env("ORCH_RECONCILE_DEADLINE_S") {
        let d = env_uint("ORCH_RECONCILE_DEADLINE_S", &v)?;
        r.deadline_s = env_bounded("ORCH_RECONCILE_DEADLINE_S", d, &bounds::DEADLINE_S)?;
    }
    if let Some(v) = env(GRACE_OVERRIDES_ENV)
        && !v.trim().is_empty()
    {
        let (table, w) = parse_grace_overrides_json(&v);
        r.grace_overrides = table;
        warnings.extend(w);
    }
    Ok(())
}

/// The original's `reconcile_interval_s` was a float setting: accept a
/// non-negative number and round it up to whole seconds (it is only shown).
fn env_interval(raw: &str) -> Result<u64, ConfigError> {
    const NAME: &str = "ORCH_RECONCILE_INTERVAL_S";
    if let Ok(v) = parse_python_int(raw) {
        return u64::try_from(v).map_err(|_| {
            ConfigError(format!(
                "env {NAME}: expected a non-negative number, found {v}"
            ))
        });
    }
    match raw.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..1e15).contains(&f) => Ok(f.ceil() as u64),
        _ => Err(ConfigError(format!(
            "env {NAME}: expected a non-negative number of seconds, found {}",
            shown_value(raw)
        ))),
    }
}

/// Python's `str.isspace`: Rust's Unicode White_Space plus U+001C..U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `int(s)` for base 10, limited to i64: surrounding whitespace, an
/// optional sign, ASCII digits with single `_` between digits; leading zeros
/// are fine ("007" → 7). (Python also takes non-ASCII decimal digits such as
/// "١٢"; those are refused here.) The error says why, without the value.
pub fn parse_python_int(s: &str) -> Result<i64, &'static str> {
    let t = s.trim_matches(py_space);
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let b = body.as_bytes();
    if b.is_empty() {
        return Err("no digits");
    }
    if !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return Err("not a decimal integer");
    }
    let mut acc: i64 = 0;
    let mut prev_underscore = false;
    for &c in b {
        if c == b'_' {
            if prev_underscore {
                return Err("not a decimal integer");
            }
            prev_underscore = true;
            continue;
        }
        prev_underscore = false;
        if !c.is_ascii_digit() {
            return Err("not a decimal integer");
        }
        let d = i64::from(c - b'0');
        // Accumulate negatively so that i64::MIN fits.
        acc = acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(d))
            .ok_or("out of the 64-bit range")?;
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or("out of the 64-bit range")
    }
}

/// Parses the original's `reconcile_grace_overrides_json` with its
/// never-raise contract (docs/configuration.md): {stage: seconds} and the
/// warnings (they name the variable and the key, never a value).
///
/// Blank → {} without a warning (as the original). Invalid JSON (NaN and
/// Infinity included) or a non-object → one warning, {}. Per value: a JSON
/// number with no fractional part (`1800`, `1.9e3`, `-0.0`) within i64 →
/// that grace; anything else (strings, booleans, fractions, null, arrays,
/// objects, out of range) → warning, that key ignored. Duplicate keys: the
/// last one wins, as in Python (even if it is invalid).
///
/// The values are taken as raw JSON text so that integrality and range are
/// decided on the decimal digits, exactly, not after a lossy f64 round trip
/// (`9007199254740993` stays itself, `1e-400` is a fraction, not 0).
pub fn parse_grace_overrides_json(raw: &str) -> (BTreeMap<String, i64>, Vec<String>) {
    use serde_json::value::RawValue;
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    if raw.trim().is_empty() {
        return (out, warnings);
    }
    let members: BTreeMap<String, Box<RawValue>> = match serde_json::from_str(raw) {
        Ok(m) => m,
        Err(e) => {
            let why = if e.is_data() {
                // Valid JSON, but not an object: say what it is instead.
                format!(
                    "must be a JSON object, found {}",
                    serde_json::from_str::<Box<RawValue>>(raw)
                        .map_or("something else", |v| json_kind(v.get()))
                )
            } else {
                format!(
                    "is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            };
            warnings.push(format!("{GRACE_OVERRIDES_ENV} {why}; ignoring it"));
            return (out, warnings);
        }
    };
    for (key, v) in members {
        match grace_of(v.get()) {
            Ok(n) => {
                out.insert(key, n);
            }
            Err(why) => warnings.push(format!(
                "{GRACE_OVERRIDES_ENV}[{key:?}] is not an integer ({why}); ignoring that key"
            )),
        }
    }
    (out, warnings)
}

/// What a raw JSON value is, from its first character (serde_json has
/// validated it).
fn json_kind(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// The grace of one raw JSON value: a number with no fractional part,
/// within i64.
fn grace_of(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    match json_kind(raw) {
        "a number" => integral_json_number(raw),
        other => Err(other.to_string()),
    }
}

/// A JSON number (grammar already checked by serde_json) as an exact i64:
/// `-?digits(.digits)?([eE][+-]?digits)?`, integral and within range.
fn integral_json_number(text: &str) -> Result<i64, String> {
    const OUT: &str = "out of the 64-bit range";
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, "0"),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = [int_part, frac_part].concat();
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0); // 0, -0.0, 0e999999
    }
    // A huge exponent saturates: either far out of range or far below 1.
    let exponent: i64 =
        exponent
            .trim_start_matches('+')
            .parse()
            .unwrap_or(if exponent.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            });
    // value = digits × 10^scale
    let scale = exponent.saturating_sub(frac_part.len() as i64);
    let digits = if scale < 0 {
        let cut = usize::try_from(scale.unsigned_abs()).unwrap_or(usize::MAX);
        if cut >= digits.len() || !digits[digits.len() - cut..].bytes().all(|b| b == b'0') {
            return Err("a fraction".into());
        }
        &digits[..digits.len() - cut]
    } else {
        digits
    };
    let zeros = usize::try_from(scale.max(0)).unwrap_or(usize::MAX);
    // i64 has 19 digits: anything longer is out of range before parsing.
    if digits.len().saturating_add(zeros) > 19 {
        return Err(OUT.into());
    }
    let magnitude: i128 = format!("{digits}{}", "0".repeat(zeros))
        .parse()
        .map_err(|_| OUT.to_string())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| OUT.into())
}
