//! Plane REST API v1, the subset used (docs/plane.md): states, issues
//! (paginated), one issue, and the state PATCH. Keeps the rate-limit
//! budget so the tool never spends the orchestrator's share.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use super::budget::{Budget, Hold, Ledger, rate_wait};
use super::http::{Client, PeerError};

mod refusal;
use crate::core::bounds::{self, MAX_TEXT};
use crate::core::states::PlaneState;
pub use refusal::Refusal;

/// An id as one URL path segment: ids come from peers, and one holding
/// `/`, `?` or `..` must not reach another endpoint.
fn seg(id: &str) -> String {
    super::orchestrator::encode(id)
}

/// What a listing asks Plane for (`fields=`): what the mirror keeps and a
/// replay re-sends; everything else is bytes nobody reads.
pub const ISSUE_FIELDS: [&str; 7] = [
    "id",
    "name",
    "sequence_id",
    "state",
    "updated_at",
    "project",
    "workspace",
];

/// Plane's largest page (and its default).
pub const MAX_PER_PAGE: u32 = 1000;

/// An incremental sync's page: a minute's changes fit in one, and a
/// larger page would only carry unchanged issues.
pub const INCREMENTAL_PER_PAGE: u32 = 100;

/// Why a Plane call did not give an answer.
#[derive(Debug, Clone)]
pub enum PlaneFailure {
    /// X-RateLimit-Remaining reached the reserve: stop calling for this tick.
    Reserve,
    /// Plane answered 429.
    RateLimited(PeerError),
    Failed(PeerError),
    /// Cut by the deadline or a stop signal: a deferral, not a failure.
    Deadline(String),
}

impl std::fmt::Display for PlaneFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaneFailure::Reserve => f.write_str(
                "plane: request budget at the reserve; not calling Plane again this tick",
            ),
            PlaneFailure::RateLimited(e) | PlaneFailure::Failed(e) => write!(f, "{e}"),
            PlaneFailure::Deadline(m) => write!(f, "plane: {m}"),
        }
    }
}

/// An issue as listed: the raw object (a replay re-sends it) and the
/// fields the passes read.
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: String,
    pub state: Option<String>,
    pub updated_at: Option<String>,
    pub raw: Value,
}

impl Issue {
    /// An issue as listed, bounded (docs/sidecar.md): an id or a state over
    /// [`MAX_ID`](bounds::MAX_ID) makes a bad entry (a cut id would name another issue),
    /// other identifiers over it are dropped, text is cut to [`MAX_TEXT`],
    /// and a list or an object where Plane sends a scalar is dropped.
    pub fn from_value(mut raw: Value) -> Result<Issue, String> {
        let id = match raw.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                return Err(format!(
                    "issue id is not a string: {}",
                    bounds::head(&other.to_string())
                ));
            }
            None => return Err("issue without an id".into()),
        };
        bounds::check_id("issue id", &id)?;
        let state = match raw.get("state") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(s) = &state {
            bounds::check_id(&format!("the state of issue {id}"), s)?;
        }
        if let Value::Object(m) = &mut raw {
            bounds::bound_issue(m, state.as_deref());
        }
        let updated_at = raw
            .get("updated_at")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Issue {
            id,
            state,
            updated_at,
            raw,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub results: Vec<Value>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub next_page_results: Option<bool>,
}

/// Why a listing stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The server handed back a cursor it had already given.
    RepeatedCursor(String),
    /// More pages than `[plane] max_pages`.
    TooManyPages(u32),
    /// The tick's deadline came first, after this many pages.
    Deadline(u32),
    /// A signal asked the tick to stop, after this many pages.
    Signal(u32),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::RepeatedCursor(c) => write!(
                f,
                "the listing repeats cursor {:?}; stopped instead of looping",
                crate::core::text::escape(&bounds::head(c))
            ),
            Stop::TooManyPages(n) => write!(
                f,
                "the listing goes on past {n} pages ([plane] max_pages); stopped"
            ),
            Stop::Deadline(n) => write!(f, "listing stopped at the deadline after {n} page(s)"),
            Stop::Signal(n) => write!(f, "listing stopped on a signal after {n} page(s)"),
        }
    }
}

/// Walks a paginated listing until Plane says there is no next page (or
/// gives no cursor). A broken or hostile server never holds the tick: a
/// repeated cursor, more than `max_pages` pages, or the deadline passing
/// between two pages ends the walk with `stop`'s error.
pub fn walk_pages<E>(
    max_pages: u32,
    deadline: Option<Instant>,
    mut fetch: impl FnMut(Option<&str>) -> Result<Page, E>,
    stop: impl Fn(Stop) -> E,
) -> Result<Vec<Value>, E> {
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let page = fetch(cursor.as_deref())?;
        pages += 1;
        out.extend(page.results);
        if page.next_page_results != Some(true) {
            break;
        }
        let next = match page.next_cursor {
            Some(next) if !next.is_empty() => next,
            _ => break,
        };
        if !seen.insert(next.clone()) {
            return Err(stop(Stop::RepeatedCursor(next)));
        }
        if pages >= max_pages {
            return Err(stop(Stop::TooManyPages(max_pages)));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(stop(Stop::Deadline(pages)));
        }
        if crate::signals::stop_requested() {
            return Err(stop(Stop::Signal(pages)));
        }
        cursor = Some(next);
    }
    Ok(out)
}

/// A Plane client. Clones share the request budget, so reads running on
/// several threads still stop at the reserve together.
#[derive(Clone)]
pub struct Plane {
    http: Client,
    base: String,
    items_path: String,
    per_page: u32,
    max_pages: u32,
    key: String,
    reserve: i64,
    budget: Arc<Budget>,
    /// Requests this clone sent, counted under the budget's lock.
    started: Arc<AtomicU64>,
}

impl Plane {
    pub fn new(cfg: &crate::config::Plane, http: Client) -> Plane {
        Plane {
            http,
            base: format!(
                "{}/api/v1/workspaces/{}/projects",
                cfg.url.trim_end_matches('/'),
                cfg.workspace
            ),
            items_path: cfg.items_path.clone(),
            per_page: cfg.per_page,
            max_pages: cfg.max_pages,
            key: cfg
                .api_key
                .as_ref()
                .map(|k| k.expose().to_string())
                .unwrap_or_default(),
            reserve: i64::from(cfg.rate_reserve),
            budget: Arc::new(Budget::default()),
            started: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same client, also counting its requests (one project's reads):
    /// as they went out (returned, retries included) and [`Plane::sent`].
    pub fn counting(&self) -> (Plane, Arc<AtomicU64>) {
        let (http, counter) = self.http.counting();
        (
            Plane {
                http,
                started: Arc::new(AtomicU64::new(0)),
                ..self.clone()
            },
            counter,
        )
    }

    /// The requests this clone counted against the budget.
    pub fn sent(&self) -> Arc<AtomicU64> {
        self.started.clone()
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.budget.ledger()
    }

    pub fn client(&self) -> &Client {
        &self.http
    }

    /// Whether Plane's budget may still become known this tick.
    pub fn awaits_first_answer(&self) -> bool {
        self.ledger().awaits_first_answer()
    }

    /// Plane's budget once every request sent this tick has arrived (None
    /// while unknown), and `pending` (what reads in flight may still send,
    /// from their [`Plane::sent`]), in one instant.
    pub fn budget_with<T>(&self, pending: impl FnOnce() -> T) -> (Option<i64>, T) {
        let ledger = self.ledger();
        (ledger.remaining(), pending())
    }

    /// Whether a 429 ended Plane for this tick.
    pub fn limited(&self) -> bool {
        self.budget.limited()
    }

    /// Whether a call is waiting out a 429: no new read should start
    /// until it has sent again (docs/plane.md).
    pub fn waiting_out_429(&self) -> bool {
        self.budget.waiting()
    }

    /// One Plane call under the budget. A 429 is waited out once when its
    /// Retry-After fits before the deadline; otherwise the unit is deferred,
    /// and so is every later call of the tick (Plane's window would only
    /// answer 429 again).
    fn call(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Value, PlaneFailure> {
        let mut hold = None;
        let result = self.call_waiting(method, url, body, &mut hold);
        if matches!(result, Err(PlaneFailure::RateLimited(_))) {
            self.budget.limit();
        }
        // Released once `limited` is set: no read starts in between.
        drop(hold);
        result
    }

    fn call_waiting<'a>(
        &'a self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        hold: &mut Option<Hold<'a>>,
    ) -> Result<Value, PlaneFailure> {
        if self.limited() {
            return Err(PlaneFailure::RateLimited(PeerError {
                peer: self.http.peer(),
                endpoint: self.http.redact(&format!("{method} {url}")),
                kind: super::http::ErrorKind::Body(
                    "not sent: Plane answered 429 earlier in this tick".into(),
                ),
            }));
        }
        match self.call_once(method, url, body) {
            Err(PlaneFailure::RateLimited(e)) => {
                *hold = Some(self.budget.hold());
                let Some(wait) = rate_wait(e.retry_after(), self.http.deadline()) else {
                    return Err(PlaneFailure::RateLimited(e));
                };
                log::warn!("{e}; waiting {} s as Plane asked", wait.as_secs());
                if !crate::signals::sleep_unless_stopped(wait) {
                    return Err(PlaneFailure::Deadline(format!("{e}; stopped by a signal")));
                }
                self.call_once(method, url, body)
            }
            other => other,
        }
    }

    fn call_once(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, PlaneFailure> {
        {
            // Counted before it goes out: calls on other threads see it.
            let mut ledger = self.ledger();
            if ledger.remaining().is_some_and(|r| r <= self.reserve) {
                return Err(PlaneFailure::Reserve);
            }
            ledger.sent += 1;
            self.started.fetch_add(1, Ordering::Relaxed);
        }
        self.call_unchecked(method, url, body)
    }

    fn call_unchecked(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, PlaneFailure> {
        let headers = [
            ("X-API-Key", self.key.as_str()),
            ("Accept", "application/json"),
        ];
        // Cut by the deadline (not sent, or timed out at it): a deferral,
        // not a failed read.
        let resp = self.http.send(method, url, &headers, body).map_err(|e| {
            if self.http.time_left().is_some_and(|t| t.is_zero()) {
                PlaneFailure::Deadline(e.to_string())
            } else {
                PlaneFailure::Failed(e)
            }
        })?;
        self.ledger().answer(resp.status, resp.rate_remaining);
        match resp.status {
            200..=299 => self
                .http
                .decode(method, url, &resp.body)
                .map_err(PlaneFailure::Failed),
            429 => Err(PlaneFailure::RateLimited(
                self.http.status_error(method, url, &resp),
            )),
            _ => Err(PlaneFailure::Failed(
                self.http.status_error(method, url, &resp),
            )),
        }
    }

    fn page(&self, url: &str) -> Result<Page, PlaneFailure> {
        let v = self.call("GET", url, None)?;
        serde_json::from_value(v).map_err(|e| {
            PlaneFailure::Failed(PeerError {
                peer: self.http.peer(),
                endpoint: self.http.redact(&format!("GET {url}")),
                kind: super::http::ErrorKind::Body(format!("unexpected page envelope ({e})")),
            })
        })
    }

    /// A listing stopped early: the deadline defers the project, anything
    /// else fails it.
    fn stopped(&self, url: &str, why: Stop) -> PlaneFailure {
        match why {
            Stop::Deadline(_) | Stop::Signal(_) => PlaneFailure::Deadline(why.to_string()),
            other => PlaneFailure::Failed(PeerError {
                peer: self.http.peer(),
                endpoint: self.http.redact(&format!("GET {url}")),
                kind: super::http::ErrorKind::Body(other.to_string()),
            }),
        }
    }

    fn list(&self, first: &str) -> Result<Vec<Value>, PlaneFailure> {
        walk_pages(
            self.max_pages,
            self.http.deadline(),
            |cursor| match cursor {
                None => self.page(first),
                Some(c) => self.page(&format!(
                    "{first}&cursor={}",
                    super::orchestrator::encode(c)
                )),
            },
            |why| self.stopped(first, why),
        )
    }

    pub fn states(&self, project: &str) -> Result<Vec<PlaneState>, PlaneFailure> {
        let url = format!(
            "{}/{}/states/?per_page={}",
            self.base,
            seg(project),
            self.per_page
        );
        let values = self.list(&url)?;
        values
            .into_iter()
            .map(|v| {
                serde_json::from_value::<PlaneState>(v)
                    .map_err(|e| format!("unexpected state ({e})"))
                    .and_then(bounds::bound_state)
                    .map_err(|e| {
                        PlaneFailure::Failed(PeerError {
                            peer: self.http.peer(),
                            endpoint: self.http.redact(&format!("GET {url}")),
                            kind: super::http::ErrorKind::Body(bounds::cut(e, MAX_TEXT)),
                        })
                    })
            })
            .collect()
    }

    /// Pages of a full listing: Plane's largest unless `[plane] per_page`
    /// is smaller.
    pub fn full_per_page(&self) -> u32 {
        self.per_page.clamp(1, MAX_PER_PAGE)
    }

    fn items_url(&self, project: &str, per_page: u32) -> String {
        format!(
            "{}/{}/{}/?per_page={per_page}&fields={}",
            self.base,
            seg(project),
            self.items_path,
            ISSUE_FIELDS.join(",")
        )
    }

    /// Every issue of a project, trimmed to `ISSUE_FIELDS` (the state as
    /// its uuid).
    pub fn issues(&self, project: &str) -> Result<Vec<Result<Issue, String>>, PlaneFailure> {
        let url = self.items_url(project, self.full_per_page());
        Ok(self
            .list(&url)?
            .into_iter()
            .map(Issue::from_value)
            .collect())
    }

    /// Issues changed since `boundary`, newest first: pages are read until
    /// one holds an issue last updated before it (docs/plane.md).
    pub fn issues_since(
        &self,
        project: &str,
        boundary: time::OffsetDateTime,
    ) -> Result<Vec<Result<Issue, String>>, PlaneFailure> {
        let per_page = self.per_page.min(INCREMENTAL_PER_PAGE);
        let first = format!("{}&order_by=-updated_at", self.items_url(project, per_page));
        let mut seen_cursors: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut url = first.clone();
        let mut pages = 0u32;
        loop {
            pages += 1;
            let page = self.page(&url)?;
            let mut reached = page.results.is_empty();
            for v in page.results {
                let issue = Issue::from_value(v);
                let old = issue
                    .as_ref()
                    .ok()
                    .and_then(|i| i.updated_at.as_deref())
                    .and_then(crate::core::timestamp::parse);
                if old.is_some_and(|t| t < boundary) {
                    reached = true;
                }
                out.push(issue);
            }
            if reached || page.next_page_results != Some(true) {
                break;
            }
            let next = match page.next_cursor {
                Some(next) if !next.is_empty() => next,
                _ => break,
            };
            if !seen_cursors.insert(next.clone()) {
                return Err(self.stopped(&first, Stop::RepeatedCursor(next)));
            }
            if pages >= self.max_pages {
                return Err(self.stopped(&first, Stop::TooManyPages(self.max_pages)));
            }
            if self.http.deadline().is_some_and(|d| Instant::now() >= d) {
                return Err(self.stopped(&first, Stop::Deadline(pages)));
            }
            if crate::signals::stop_requested() {
                return Err(self.stopped(&first, Stop::Signal(pages)));
            }
            url = format!("{first}&cursor={}", super::orchestrator::encode(&next));
        }
        Ok(out)
    }

    pub fn set_state(
        &self,
        project: &str,
        issue_id: &str,
        state: &str,
    ) -> Result<(), PlaneFailure> {
        let url = format!(
            "{}/{}/{}/{}/",
            self.base,
            seg(project),
            self.items_path,
            seg(issue_id)
        );
        let body = serde_json::to_vec(&serde_json::json!({ "state": state })).unwrap_or_default();
        self.call("PATCH", &url, Some(&body)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[i64], next: Option<&str>, more: bool) -> Page {
        Page {
            results: items.iter().map(|i| Value::from(*i)).collect(),
            next_cursor: next.map(str::to_string),
            next_page_results: Some(more),
        }
    }

    #[test]
    fn walk_follows_cursors_until_no_next_page() {
        let mut calls = Vec::new();
        let all = walk_pages::<Stop>(
            100,
            None,
            |c| {
                calls.push(c.map(str::to_string));
                Ok(match c {
                    None => page(&[1, 2], Some("2:1:0"), true),
                    Some("2:1:0") => page(&[3, 4], Some("2:2:0"), true),
                    _ => page(&[5], Some("2:3:0"), false),
                })
            },
            |s| s,
        )
        .unwrap();
        assert_eq!(
            all,
            vec![1, 2, 3, 4, 5]
                .into_iter()
                .map(Value::from)
                .collect::<Vec<_>>()
        );
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn walk_fails_on_a_repeated_cursor() {
        let mut n = 0;
        let r = walk_pages::<Stop>(
            100,
            None,
            |_| {
                n += 1;
                Ok(page(&[n], Some("same"), true))
            },
            |s| s,
        );
        assert_eq!(r, Err(Stop::RepeatedCursor("same".into())));
        assert_eq!(n, 2);
    }

    #[test]
    fn endless_pages_stop_at_max_pages_or_the_deadline() {
        let mut n = 0;
        let r = walk_pages::<Stop>(
            5,
            None,
            |_| {
                n += 1;
                Ok(page(&[n], Some(&n.to_string()), true))
            },
            |s| s,
        );
        assert_eq!(r, Err(Stop::TooManyPages(5)));
        assert_eq!(n, 5);
        let mut n = 0;
        let past = Instant::now();
        let r = walk_pages::<Stop>(
            1000,
            Some(past),
            |_| {
                n += 1;
                Ok(page(&[n], Some(&n.to_string()), true))
            },
            |s| s,
        );
        assert_eq!(r, Err(Stop::Deadline(1)));
    }

    proptest::proptest! {
        /// Any page sizes, the last page with a non-empty next_cursor: every
        /// item once, in order, one fetch per page.
        #[test]
        fn walk_visits_every_item_exactly_once(sizes in proptest::collection::vec(0usize..5, 1..30)) {
            let mut next_item = 0i64;
            let pages: Vec<Vec<i64>> = sizes
                .iter()
                .map(|n| (0..*n).map(|_| { next_item += 1; next_item }).collect())
                .collect();
            let mut fetches = 0;
            let all = walk_pages::<Stop>(100, None, |c| {
                fetches += 1;
                let i: usize = c.map_or(0, |c| c.parse().unwrap());
                let more = i + 1 < pages.len();
                Ok(page(&pages[i], Some(&(i + 1).to_string()), more))
            }, |s| s)
            .unwrap();
            proptest::prop_assert_eq!(fetches, pages.len());
            let want: Vec<Value> = (1..=next_item).map(Value::from).collect();
            proptest::prop_assert_eq!(all, want);
        }

        /// A server that hands back a cursor already seen is not followed
        /// again: the walk ends after at most one page per distinct cursor.
        #[test]
        fn walk_stops_when_a_cursor_repeats(cursors in proptest::collection::vec(0u8..6, 1..40)) {
            let mut fetches = 0usize;
            let result = walk_pages::<Stop>(100, None, |_| {
                let c = cursors.get(fetches).copied().unwrap_or(0);
                fetches += 1;
                Ok(page(&[fetches as i64], Some(&c.to_string()), true))
            }, |s| s);
            proptest::prop_assert!(matches!(result, Err(Stop::RepeatedCursor(_))));
            // Past the list the server keeps answering cursor 0.
            let distinct: std::collections::HashSet<u8> = cursors.iter().copied().chain([0]).collect();
            proptest::prop_assert!(fetches <= distinct.len() + 1, "{} fetches", fetches);
        }
    }

    #[test]
    fn issue_state_as_object_or_uuid() {
        let a = Issue::from_value(serde_json::json!({"id": "i1", "state": {"id": "s1"}})).unwrap();
        let b = Issue::from_value(serde_json::json!({"id": "i2", "state": "s2"})).unwrap();
        assert_eq!(a.state.as_deref(), Some("s1"));
        assert_eq!(b.state.as_deref(), Some("s2"));
        assert!(Issue::from_value(serde_json::json!({"id": 5})).is_err());
    }
}
