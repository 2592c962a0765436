//! Environment overrides (the names of the original Python reconciler) and
//! the grace-overrides JSON.

use std::collections::BTreeMap;

use super::types::{ConfigError, GRACE_OVERRIDES_ENV, Reconcile};

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
        r.max_developer_retries = env_int("ORCH_MAX_DEVELOPER_RETRIES", &v)?;
    }
    if let Some(v) = env("ORCH_RECONCILE_MAX_ACTIONS") {
        r.max_actions = env_uint("ORCH_RECONCILE_MAX_ACTIONS", &v)?;
    }
    if let Some(v) = env("ORCH_RECONCILE_INTERVAL_S") {
        r.interval_s = Some(env_interval(&v)?);
    }
    if let Some(v) = env("ORCH_RECONCILE_DEADLINE_S") {
        let d = env_uint("ORCH_RECONCILE_DEADLINE_S", &v)?;
        if d == 0 {
            return Err(ConfigError(
                "env ORCH_RECONCILE_DEADLINE_S: must be greater than 0".into(),
            ));
        }
        r.deadline_s = d;
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

/// Parses the original's `reconcile_grace_overrides_json` with its never-raise
/// contract and Python `int()` semantics: {stage: seconds} and
/// the warnings (they name the variable and the key, never a value).
///
/// Blank → {} without a warning (as the original). Invalid JSON or a non-object →
/// one warning, {}. Per value: integers (outside i64 → ignored), finite
/// floats truncated toward zero (outside i64 → ignored), true/false → 1/0,
/// integer strings as Python `int()` reads them; anything else (null,
/// arrays, objects, other strings, NaN, ±Infinity) → warning, key ignored.
/// Duplicate keys: the last one wins, as in Python (even if it is invalid).
///
/// JSON is read by a small parser of Python's `json.loads` grammar rather
/// than serde_json: Python accepts the NaN / Infinity / -Infinity literals
/// (and lone surrogate escapes, and numbers beyond f64 as ±inf), serde_json
/// rejects them, which would turn one bad value into "invalid JSON" and lose
/// every other key. With this parser only that key is dropped.
pub fn parse_grace_overrides_json(raw: &str) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    if raw.trim().is_empty() {
        return (out, warnings);
    }
    let value = match json::parse(raw) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!(
                "{GRACE_OVERRIDES_ENV} is not valid JSON ({e}); ignoring it"
            ));
            return (out, warnings);
        }
    };
    let members = match value {
        json::Value::Object(m) => m,
        other => {
            warnings.push(format!(
                "{GRACE_OVERRIDES_ENV} must be a JSON object, found {}; ignoring it",
                other.kind()
            ));
            return (out, warnings);
        }
    };
    // Last duplicate wins, before conversion (Python builds the dict first).
    let mut last: BTreeMap<String, json::Value> = BTreeMap::new();
    for (k, v) in members {
        last.insert(k, v);
    }
    for (key, v) in last {
        match python_int_of(&v) {
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

/// Python `int(v)` of a decoded JSON value, limited to i64.
fn python_int_of(v: &json::Value) -> Result<i64, String> {
    use json::Value;
    match v {
        Value::Int(Some(n)) => Ok(*n),
        Value::Int(None) => Err("an integer out of the 64-bit range".into()),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Float(f) if f.is_nan() => Err("NaN".into()),
        Value::Float(f) if f.is_infinite() => Err("an infinite float".into()),
        Value::Float(f) => {
            let t = f.trunc();
            // i64::MIN is exactly representable; i64::MAX + 1 = 2^63 is not in range.
            if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
                Ok(t as i64)
            } else {
                Err("a float out of the 64-bit range".into())
            }
        }
        Value::Str(s) => parse_python_int(s).map_err(|why| format!("a string, {why}")),
        other => Err(other.kind().to_string()),
    }
}

/// A parser of the JSON Python's `json.loads` accepts (strict mode).
mod json {
    pub enum Value {
        Null,
        Bool(bool),
        /// None: an integer outside i64.
        Int(Option<i64>),
        Float(f64),
        Str(String),
        Array,
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn kind(&self) -> &'static str {
            match self {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Int(_) => "an integer",
                Value::Float(_) => "a float",
                Value::Str(_) => "a string",
                Value::Array => "an array",
                Value::Object(_) => "an object",
            }
        }
    }

    /// Deeper nesting is refused (Python raises RecursionError near 1000).
    const MAX_DEPTH: usize = 256;

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text,
            b: text.as_bytes(),
            pos: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.pos != p.b.len() {
            return Err(p.err("extra data"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a str,
        b: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            let before = self.s.get(..self.pos).unwrap_or("");
            format!("{what} at character {}", before.chars().count() + 1)
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.pos).copied()
        }

        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.b[self.pos..].starts_with(lit.as_bytes()) {
                self.pos += lit.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err(self.err("nesting too deep"));
            }
            match self.peek() {
                None => Err(self.err("expecting a value")),
                Some(b'{') => self.object(depth),
                Some(b'[') => self.array(depth),
                Some(b'"') => self.string().map(Value::Str),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => {
                    for (lit, v) in [
                        ("null", Value::Null),
                        ("true", Value::Bool(true)),
                        ("false", Value::Bool(false)),
                        ("NaN", Value::Float(f64::NAN)),
                        ("Infinity", Value::Float(f64::INFINITY)),
                    ] {
                        if self.eat(lit) {
                            return Ok(v);
                        }
                    }
                    Err(self.err("expecting a value"))
                }
            }
        }

        fn object(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1; // {
            let mut members = Vec::new();
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(members));
            }
            loop {
                self.ws();
                if self.peek() != Some(b'"') {
                    return Err(self.err("expecting a property name in double quotes"));
                }
                let key = self.string()?;
                self.ws();
                if self.peek() != Some(b':') {
                    return Err(self.err("expecting ':'"));
                }
                self.pos += 1;
                self.ws();
                let v = self.value(depth + 1)?;
                members.push((key, v));
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Value::Object(members));
                    }
                    _ => return Err(self.err("expecting ',' or '}'")),
                }
            }
        }

        fn array(&mut self, depth: usize) -> Result<Value, String> {
            self.pos += 1; // [
            self.ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array);
            }
            loop {
                self.ws();
                self.value(depth + 1)?;
                self.ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Value::Array);
                    }
                    _ => return Err(self.err("expecting ',' or ']'")),
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self
                .s
                .get(self.pos..self.pos + 4)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| self.err("invalid \\uXXXX escape"))?;
            let v = u32::from_str_radix(h, 16).map_err(|_| self.err("invalid \\uXXXX escape"))?;
            self.pos += 4;
            Ok(v)
        }

        /// A string; lone surrogates (Python keeps them) become U+FFFD.
        fn string(&mut self) -> Result<String, String> {
            self.pos += 1; // "
            let mut out = String::new();
            loop {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == b'"' || c == b'\\' || c < 0x20 {
                        break;
                    }
                    self.pos += 1;
                }
                // Split only at ASCII bytes: always a char boundary.
                out.push_str(self.s.get(start..self.pos).unwrap_or(""));
                match self.peek() {
                    None => return Err(self.err("unterminated string")),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.pos += 1;
                        let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                        self.pos += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut cp = self.hex4()?;
                                if (0xD800..0xDC00).contains(&cp)
                                    && self.b[self.pos..].starts_with(b"\\u")
                                {
                                    let save = self.pos;
                                    self.pos += 2;
                                    match self.hex4() {
                                        Ok(lo) if (0xDC00..0xE000).contains(&lo) => {
                                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        }
                                        _ => self.pos = save,
                                    }
                                }
                                out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            }
                            _ => {
                                self.pos -= 1;
                                return Err(self.err("invalid escape"));
                            }
                        }
                    }
                    Some(_) => return Err(self.err("invalid control character in string")),
                }
            }
        }

        /// Python's NUMBER_RE `(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?`,
        /// plus `-Infinity`.
        fn number(&mut self) -> Result<Value, String> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
                if self.eat("Infinity") {
                    return Ok(Value::Float(f64::NEG_INFINITY));
                }
            }
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => {
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.pos += 1;
                    }
                }
                _ => {
                    self.pos = start;
                    return Err(self.err("expecting a value"));
                }
            }
            let mut float = false;
            if self.peek() == Some(b'.') && matches!(self.b.get(self.pos + 1), Some(b'0'..=b'9')) {
                float = true;
                self.pos += 1;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                let mut p = self.pos + 1;
                if matches!(self.b.get(p), Some(b'+' | b'-')) {
                    p += 1;
                }
                if matches!(self.b.get(p), Some(b'0'..=b'9')) {
                    float = true;
                    while matches!(self.b.get(p), Some(b'0'..=b'9')) {
                        p += 1;
                    }
                    self.pos = p;
                }
            }
            let text = self.s.get(start..self.pos).unwrap_or("");
            if float {
                // Rust, like Python's float(), gives ±inf beyond f64.
                text.parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| self.err("invalid number"))
            } else {
                Ok(Value::Int(text.parse::<i64>().ok()))
            }
        }
    }
}
