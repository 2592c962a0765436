//! One HTTP layer for every peer: timeouts on every call, a cap on response
//! bodies, request counting, and errors that never carry a secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::core::bounds::{MAX_TEXT, cut};

/// A response body larger than this fails the unit instead of eating memory.
pub const MAX_BODY: u64 = 32 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Orchestrator,
    Plane,
    Telegram,
}

impl Peer {
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Orchestrator => "orchestrator",
            Peer::Plane => "plane",
            Peer::Telegram => "telegram",
        }
    }
}

/// What went wrong talking to a peer. `endpoint` is "METHOD url" with every
/// secret replaced by `***`.
#[derive(Debug, Clone)]
pub struct PeerError {
    pub peer: Peer,
    pub endpoint: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connect, reset, timeout: the request may or may not have arrived.
    Transport(String),
    /// An HTTP status the caller did not accept; `snippet` is the start of
    /// the body, redacted.
    Status {
        code: u16,
        snippet: String,
        retry_after: Option<u64>,
    },
    /// The body was larger than MAX_BODY.
    TooLarge,
    /// The body could not be read or decoded as expected.
    Body(String),
}

impl PeerError {
    /// The HTTP status the peer answered, when it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self.kind {
            ErrorKind::Status { retry_after, .. } => retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.peer.as_str(), self.endpoint)?;
        match &self.kind {
            ErrorKind::Transport(m) => write!(f, "{m}"),
            ErrorKind::Status { code, snippet, .. } if snippet.is_empty() => {
                write!(f, "HTTP {code}")
            }
            ErrorKind::Status { code, snippet, .. } => write!(f, "HTTP {code}: {snippet}"),
            ErrorKind::TooLarge => write!(f, "response body larger than {} MiB", MAX_BODY >> 20),
            ErrorKind::Body(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// A response whose status the caller will judge.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub rate_remaining: Option<i64>,
    pub retry_after: Option<u64>,
}

/// A client for one peer.
#[derive(Clone)]
pub struct Client {
    peer: Peer,
    agent: ureq::Agent,
    secrets: Arc<Vec<String>>,
    requests: Arc<AtomicU64>,
    /// A second counter for one piece of work (a project's reads).
    local: Option<Arc<AtomicU64>>,
    deadline: Option<Instant>,
    /// The key's timeout; each request gets the smaller of it and the
    /// time left before the deadline.
    timeout: Duration,
}

/// Tries of an idempotent GET.
const GET_ATTEMPTS: u32 = 3;

/// Exponential backoff with jitter: ~200 ms, ~400 ms, …
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let base = 200u64 << (attempt - 1).min(5);
    // RandomState is seeded per process: cheap jitter without a crate.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let jitter = h.finish() % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

impl Client {
    /// `timeout` bounds connecting and the whole exchange; `secrets` are
    /// scrubbed from every error this client produces.
    pub fn new(peer: Peer, timeout: Duration, secrets: Vec<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("reconcile/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client {
            peer,
            agent,
            secrets: Arc::new(secret_forms(secrets)),
            requests: Arc::new(AtomicU64::new(0)),
            local: None,
            deadline: None,
            timeout,
        }
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Requests sent so far (shared by clones).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Same peer, same counter, another timeout (a webhook replay runs the
    /// handler before it answers).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        let mut c = Client::new(self.peer, timeout, Vec::new());
        c.secrets = self.secrets.clone();
        c.requests = self.requests.clone();
        c.deadline = self.deadline;
        c
    }

    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }

    /// The start of a body for an error message, redacted before it is
    /// cut, so that a cut can never leave part of a secret behind.
    fn snippet(&self, body: &[u8]) -> String {
        let longest = self.secrets.iter().map(String::len).max().unwrap_or(0);
        let head = String::from_utf8_lossy(&body[..body.len().min(200 + longest)]);
        snippet(self.redact(&head).as_bytes())
    }

    fn error(&self, method: &str, url: &str, kind: ErrorKind) -> PeerError {
        let kind = match kind {
            // Cut after redacting, so no part of a secret survives the cut;
            // a decode error may quote megabytes of a peer's string.
            ErrorKind::Transport(m) => ErrorKind::Transport(cut(self.redact(&m), MAX_TEXT)),
            ErrorKind::Body(m) => ErrorKind::Body(cut(self.redact(&m), MAX_TEXT)),
            ErrorKind::Status {
                code,
                snippet,
                retry_after,
            } => ErrorKind::Status {
                code,
                snippet: self.redact(&snippet),
                retry_after,
            },
            k => k,
        };
        PeerError {
            peer: self.peer,
            endpoint: self.redact(&format!("{method} {url}")),
            kind,
        }
    }

    /// Sends a request; any status comes back as a Response. A GET is
    /// retried with backoff on a transport error or a 502/503/504, within
    /// the deadline; anything else is sent once, since a POST or PATCH may
    /// have reached the peer.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, PeerError> {
        let mut attempt = 1;
        loop {
            let result = self.send_once(method, url, headers, body);
            let retryable = match &result {
                Err(e) => matches!(e.kind, ErrorKind::Transport(_)),
                Ok(r) => matches!(r.status, 502..=504),
            };
            if method != "GET" || !retryable || attempt >= GET_ATTEMPTS {
                return result;
            }
            let delay = backoff(attempt);
            if self.deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return result;
            }
            let why = match &result {
                Err(e) => e.to_string(),
                Ok(r) => self.status_error(method, url, r).to_string(),
            };
            log::warn!("{why}; retrying in {} ms", delay.as_millis());
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// The same client, also counting its requests in a fresh counter.
    pub fn counting(&self) -> (Client, Arc<AtomicU64>) {
        let local = Arc::new(AtomicU64::new(0));
        let mut c = self.clone();
        c.local = Some(local.clone());
        (c, local)
    }

    /// The tick's deadline: retries and waits never run past it.
    pub fn with_deadline(mut self, deadline: Instant) -> Client {
        self.deadline = Some(deadline);
        self
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (None: no deadline).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, PeerError> {
        // The deadline is absolute: no request outlives it, whatever the
        // key's timeout (docs/reliability.md, hostile conditions).
        let (timeout, clipped) = match self.time_left() {
            Some(left) if left < self.timeout => (left, true),
            _ => (self.timeout, false),
        };
        if crate::signals::stop_requested() {
            return Err(self.error(
                method,
                url,
                ErrorKind::Transport("not sent: stopping on a signal".into()),
            ));
        }
        if timeout.is_zero() {
            return Err(self.error(
                method,
                url,
                ErrorKind::Transport("not sent: the tick's deadline passed".into()),
            ));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(l) = &self.local {
            l.fetch_add(1, Ordering::Relaxed);
        }
        let result = match body {
            None => {
                let mut req = match method {
                    "GET" => self.agent.get(url),
                    "DELETE" => self.agent.delete(url),
                    _ => self.agent.head(url),
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.config().timeout_global(Some(timeout)).build().call()
            }
            Some(bytes) => {
                let mut req = match method {
                    "PATCH" => self.agent.patch(url),
                    "PUT" => self.agent.put(url),
                    _ => self.agent.post(url),
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.header("Content-Type", "application/json")
                    .config()
                    .timeout_global(Some(timeout))
                    .build()
                    .send(bytes)
            }
        };
        let mut resp = result.map_err(|e| {
            let kind = match transport_kind(&e) {
                ErrorKind::Transport(m) if clipped && matches!(e, ureq::Error::Timeout(_)) => {
                    ErrorKind::Transport(format!("{m} at the tick's deadline"))
                }
                k => k,
            };
            self.error(method, url, kind)
        })?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        let rate_remaining = header("x-ratelimit-remaining").and_then(|v| v.parse().ok());
        let retry_after = header("retry-after").and_then(|v| v.parse().ok());
        let status = resp.status().as_u16();
        // A declared length over the cap fails at once, before any reading.
        let declared: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return Err(self.error(method, url, ErrorKind::TooLarge));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => self.error(method, url, ErrorKind::TooLarge),
                other => self.error(
                    method,
                    url,
                    ErrorKind::Transport(format!("reading body: {other}")),
                ),
            })?;
        Ok(Response {
            status,
            body,
            rate_remaining,
            retry_after,
        })
    }

    /// Sends and requires a 2xx carrying JSON of type `T`.
    pub fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(T, Response), PeerError> {
        let resp = self.send(method, url, headers, body)?;
        if !(200..300).contains(&resp.status) {
            return Err(self.status_error(method, url, &resp));
        }
        let value = self.decode(method, url, &resp.body)?;
        Ok((value, resp))
    }

    /// Decodes a JSON body, naming what was wrong in one line.
    pub fn decode<T: DeserializeOwned>(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Result<T, PeerError> {
        serde_json::from_slice(body).map_err(|e| {
            let what = if looks_like_html(body) {
                "an HTML page instead of JSON".to_string()
            } else if e.is_syntax() || e.is_eof() {
                format!("invalid JSON ({e})")
            } else {
                format!("unexpected JSON ({e})")
            };
            self.error(method, url, ErrorKind::Body(what))
        })
    }

    pub fn status_error(&self, method: &str, url: &str, resp: &Response) -> PeerError {
        self.error(
            method,
            url,
            ErrorKind::Status {
                code: resp.status,
                snippet: self.snippet(&resp.body),
                retry_after: resp.retry_after,
            },
        )
    }
}

fn transport_kind(e: &ureq::Error) -> ErrorKind {
    match e {
        ureq::Error::BodyExceedsLimit(_) => ErrorKind::TooLarge,
        ureq::Error::Timeout(_) => ErrorKind::Transport("timed out".into()),
        ureq::Error::ConnectionFailed => ErrorKind::Transport("connection failed".into()),
        ureq::Error::HostNotFound => ErrorKind::Transport("host not found".into()),
        other => ErrorKind::Transport(other.to_string()),
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(256)]).to_ascii_lowercase();
    let start = start.trim_start();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// The first line of a body, short, for an error message.
fn snippet(body: &[u8]) -> String {
    if looks_like_html(body) {
        return "an HTML error page".into();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(120).collect()
}

/// Replaces every secret occurring in `text` by `***`, and the
/// `user:password@` of any URL in it.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = redact_userinfo(text);
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Each secret and the forms a peer may echo it in: percent-encoded
/// (upper and lower case hex) and JSON-escaped. Longest first, so that a
/// form containing another is replaced whole.
pub fn secret_forms(secrets: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in secrets.into_iter().filter(|s| !s.is_empty()) {
        let upper = encode(&s);
        let forms = [
            upper.clone(),
            percent_lower(&upper),
            upper.replace("%20", "+"),
            json_escape(&s, false),
            json_escape(&s, true),
            json_escape(&s, true).to_ascii_uppercase(),
            s,
        ];
        for f in forms {
            if !f.is_empty() && !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out
}

/// RFC 3986's unreserved characters stay; every other byte is encoded.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value or a path segment (upper-case hex): ids
/// come from peers, and one holding `/`, `?` or `..` must not reach another
/// endpoint.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Lower-case hex digits after each `%` of an upper-case encoding.
fn percent_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex = 0;
    for c in s.chars() {
        if c == '%' {
            hex = 2;
            out.push(c);
        } else if hex > 0 {
            hex -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON string body of `s` (no quotes); `ascii`: every non-ASCII
/// character and `/` as `\uXXXX` / `\/`, as some servers write them.
fn json_escape(s: &str, ascii: bool) -> String {
    let plain = serde_json::to_string(s).unwrap_or_default();
    let plain = plain
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or("")
        .to_string();
    if !ascii {
        return plain;
    }
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        if c == '/' {
            out.push_str("\\/");
        } else if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `scheme://user:password@host…` → `scheme://***@host…`, for every URL
/// in `text`.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first of / ? # or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..=3 {
            let d = backoff(attempt).as_millis() as u64;
            let base = 200u64 << (attempt - 1);
            assert!((base..=base + base / 2).contains(&d), "{attempt}: {d}");
        }
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let s = vec!["tok123".to_string()];
        assert_eq!(
            redact("GET /bottok123/sendMessage tok123", &s),
            "GET /bot***/sendMessage ***"
        );
    }

    #[test]
    fn redact_matches_the_encoded_forms_and_url_userinfo() {
        let s = secret_forms(["123:a/b é".to_string()]);
        for echoed in [
            "123:a/b é",
            "123%3Aa%2Fb%20%C3%A9",
            "123%3aa%2fb%20%c3%a9",
            "123%3Aa%2Fb+%C3%A9",
            "123:a\\/b \\u00e9",
        ] {
            let out = redact(&format!("x {echoed} y"), &s);
            assert_eq!(out, "x *** y", "{echoed}");
        }
        assert_eq!(
            redact("GET http://bob:pw@127.0.0.1:9/x and https://h/y@z", &[]),
            "GET http://***@127.0.0.1:9/x and https://h/y@z"
        );
    }

    #[test]
    fn snippet_is_short_and_names_html() {
        assert_eq!(
            snippet(b"<!DOCTYPE html><html>502</html>"),
            "an HTML error page"
        );
        assert_eq!(snippet(b"line one\nline two"), "line one");
        assert_eq!(snippet(&[b'x'; 500]).len(), 120);
    }

    #[test]
    fn errors_name_peer_and_endpoint_without_secrets() {
        let c = Client::new(
            Peer::Telegram,
            Duration::from_secs(1),
            vec!["SECRET".into()],
        );
        let e = c.error(
            "POST",
            "http://127.0.0.1:1/botSECRET/sendMessage",
            ErrorKind::Transport("io: SECRET refused".into()),
        );
        let text = e.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(
            text.starts_with("telegram POST http://127.0.0.1:1/bot***/sendMessage"),
            "{text}"
        );
    }
}
