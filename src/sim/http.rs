//! A deliberately small HTTP/1.1 server on std::net: one thread per
//! connection, `Connection: close` always, so every fault (reset, truncation,
//! oversized streaming) is under our control byte by byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed request. Header names are lowercase; path and query are raw.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, percent-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(kv), String::new()),
            })
            .collect()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Decodes `%XX` and `+`; malformed escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// How to answer one request.
#[derive(Debug)]
pub enum Reply {
    /// A complete response.
    Full {
        status: u16,
        content_type: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close without a byte.
    Close,
    /// Declare `declared` bytes, send `body` (shorter), close.
    Truncated { declared: usize, body: Vec<u8> },
    /// 200 JSON of exactly `bytes` bytes, generated while writing.
    Oversized { bytes: u64 },
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::Full {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: String) -> Reply {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((name.into(), value));
        }
        self
    }

    /// The body gzipped, with `Content-Encoding: gzip`, when it is worth
    /// it (as Django's GZipMiddleware: 200 bytes or more).
    pub fn gzip(self) -> Reply {
        use std::io::Write as _;
        match self {
            Reply::Full {
                status,
                content_type,
                mut headers,
                body,
            } if body.len() >= 200 => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let body = match enc.write_all(&body).and_then(|()| enc.finish()) {
                    Ok(zipped) => {
                        headers.push(("Content-Encoding".into(), "gzip".into()));
                        zipped
                    }
                    Err(_) => body,
                };
                headers.push(("Vary".into(), "Accept-Encoding".into()));
                Reply::Full {
                    status,
                    content_type,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    /// The body bytes a complete reply sends.
    pub fn body_len(&self) -> Option<usize> {
        match self {
            Reply::Full { body, .. } => Some(body.len()),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Reply::Full { status, .. } => Some(*status),
            Reply::Truncated { .. } | Reply::Oversized { .. } => Some(200),
            Reply::Close => None,
        }
    }
}

/// What the per-connection code decides: wait `delay` (interruptibly), then reply.
pub struct Plan {
    pub delay: Duration,
    pub reply: Reply,
}

/// The per-request callback (unparsable requests are answered 400 before it).
pub type Handler = Arc<dyn Fn(Request) -> Plan + Send + Sync>;

/// Live connections: a handle to cut each one, and its thread.
type Conns = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A running listener; stop it with `Server::stop`.
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    conns: Conns,
}

impl Server {
    pub fn start(handler: Handler, stop: Arc<AtomicBool>) -> anyhow::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let conns: Conns = Arc::default();
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let acceptor = std::thread::Builder::new()
            .name(format!("sim-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, handler, stop2, conns2))?;
        Ok(Server {
            addr,
            stop,
            acceptor: Some(acceptor),
            conns,
        })
    }

    /// Stops accepting, cuts live connections and joins every thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            // Wake the blocking accept with a loopback connection to ourselves.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = h.join();
        }
        let conns = std::mem::take(&mut *lock(&self.conns));
        for (s, _) in &conns {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, h) in conns {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking handler thread must not wedge the simulator.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, handler: Handler, stop: Arc<AtomicBool>, conns: Conns) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let (h, st) = (handler.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("sim-conn".into())
            .spawn(move || serve(stream, h, st));
        if let Ok(jh) = spawned {
            let mut c = lock(&conns);
            c.retain(|(_, j)| !j.is_finished());
            c.push((clone, jh));
        }
    }
}

/// Sleeps up to `d`, returning early when the simulator stops.
pub fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

fn serve(stream: TcpStream, handler: Handler, stop: Arc<AtomicBool>) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    let plan = match read_request(&mut reader) {
        Ok(Some(req)) => handler(req),
        Ok(None) => return, // closed before a request (e.g. the stop wake-up)
        Err((status, msg)) => Plan {
            delay: Duration::ZERO,
            reply: Reply::json(status, &serde_json::json!({ "detail": msg })),
        },
    };
    if stop.load(Ordering::SeqCst) {
        return;
    }
    sleep_unless_stopped(plan.delay, &stop);
    if stop.load(Ordering::SeqCst) {
        return;
    }
    let _ = write_reply(&mut out, plan.reply, &stop);
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Write);
    // Drain briefly so the client sees our bytes rather than a reset.
    let _ = out.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 1024];
    while let Ok(n) = reader.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

type ReadError = (u16, &'static str);

fn read_line(
    r: &mut BufReader<TcpStream>,
    budget: &mut usize,
) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|_| (400, "unreadable request"))?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err((431, "request head too large"));
    }
    *budget -= n;
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| (400, "request head is not UTF-8"))
}

fn read_request(r: &mut BufReader<TcpStream>) -> Result<Option<Request>, ReadError> {
    let mut budget = MAX_HEAD;
    let Some(first) = read_line(r, &mut budget)? else {
        return Ok(None);
    };
    let mut parts = first.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((400, "unsupported HTTP version"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget)?.ok_or((400, "truncated request head"))?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or((400, "malformed header"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| (400, "bad content-length"))?;
        if n > MAX_BODY {
            return Err((413, "request body too large"));
        }
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)
            .map_err(|_| (400, "truncated request body"))?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let line = read_line(r, &mut budget)?.ok_or((400, "truncated chunk"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| (400, "bad chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                let mut b = 8192;
                match read_line(r, &mut b)? {
                    Some(l) if !l.is_empty() => continue,
                    _ => return Ok(body),
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err((413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|_| (400, "truncated chunk"))?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)
            .map_err(|_| (400, "truncated chunk"))?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn head(status: u16, content_type: &str, len: u64, extra: &[(String, String)]) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\nServer: reconcile-sim\r\n",
        reason(status)
    );
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn write_reply(out: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> std::io::Result<()> {
    match reply {
        Reply::Close => Ok(()),
        Reply::Full {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut bytes = head(status, content_type, body.len() as u64, &headers);
            bytes.extend_from_slice(&body);
            out.write_all(&bytes)
        }
        Reply::Truncated { declared, body } => {
            out.write_all(&head(200, "application/json", declared as u64, &[]))?;
            out.write_all(&body)
        }
        Reply::Oversized { bytes } => {
            out.write_all(&head(200, "application/json", bytes, &[]))?;
            // {"results":[],"tasks":[],"pad":"xxxx…"} — valid JSON of exactly `bytes`.
            let prefix = br#"{"results":[],"tasks":[],"ok":true,"pad":""#;
            let suffix = br#""}"#;
            let fixed = (prefix.len() + suffix.len()) as u64;
            if bytes < fixed {
                return out.write_all(&vec![b' '; bytes as usize]);
            }
            out.write_all(prefix)?;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = bytes - fixed;
            while left > 0 {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let n = left.min(chunk.len() as u64) as usize;
                out.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            out.write_all(suffix)
        }
    }
}
