//! The simulated Plane v1 subset, as responses recorded from Plane's own
//! API server show it: the per-key budget of a minute window, offset
//! pagination with Plane's limits and error bodies, `fields=`, `expand=state`.

use serde_json::{Value, json};

use super::http::{Reply, Request};
use super::world::{Target, World, plane_429};

/// Plane's page size when the query names none, and its maximum.
pub const MAX_PER_PAGE: usize = 1000;

/// Consumes one unit of Plane budget: Ok(remaining after this request, as
/// `X-RateLimit-Remaining` reports it) or Err(seconds until a slot frees).
/// The budget refills when a new minute of the simulator's clock starts.
fn take_budget(w: &mut World) -> Result<i64, u64> {
    if w.rate_limit.full_for_s > 0 {
        let now = w.elapsed_ms();
        let until = *w
            .full_until_ms
            .get_or_insert(now + w.rate_limit.full_for_s * 1000);
        if now < until {
            return Err((until - now).div_ceil(1000));
        }
    }
    let (minute, into_minute_ms) = w.clock_minute();
    let rl = &mut w.scenario.rate_limit;
    if w.rate_window.is_some_and(|m| m != minute) {
        rl.remaining = rl.limit;
    }
    w.rate_window = Some(minute);
    let retry = (60_000 - into_minute_ms).div_ceil(1000).max(1);
    if let Some(v) = rl.sequence.pop_front() {
        rl.remaining = v.max(0);
        return if v < 0 { Err(retry) } else { Ok(v) };
    }
    if rl.remaining <= 0 {
        return Err(retry);
    }
    rl.remaining -= 1;
    Ok(rl.remaining)
}

pub(super) fn plane(w: &mut World, t: &Target, req: &Request) -> Reply {
    // Plane answers 401 only when no key is sent; a wrong key is 403, and
    // neither carries rate headers nor costs budget (docs/plane.md).
    match req.header("x-api-key") {
        None => {
            return Reply::json(
                401,
                &json!({"detail": "Authentication credentials were not provided."}),
            );
        }
        Some(k) if k != w.plane_api_key => {
            return Reply::json(403, &json!({"detail": "Given API token is not valid"}));
        }
        Some(_) => {}
    }
    if let Some(forbidden) = forbidden(w, t) {
        return forbidden;
    }
    let remaining = match take_budget(w) {
        Ok(r) => r,
        // A 429 is not counted and carries no rate headers, only Retry-After.
        Err(retry) => {
            return Reply::json(429, &plane_429()).with_header("Retry-After", retry.to_string());
        }
    };
    let reset = (w.now().unix_timestamp() + w.rate_limit.reset_in_s as i64).to_string();
    let reply = route(w, t, req);
    if !w.rate_limit.headers {
        return reply;
    }
    reply
        .with_header("X-RateLimit-Remaining", remaining.to_string())
        .with_header("X-RateLimit-Reset", reset)
}

/// An unknown workspace, an unknown project or one the key's user is not a
/// member of: Plane's permission check answers 403 before the view, with no
/// rate headers. A project id that is not a UUID is a 404 of the router.
fn forbidden(w: &World, t: &Target) -> Option<Reply> {
    let (ws, project) = match t {
        Target::States { ws, project }
        | Target::Items { ws, project }
        | Target::Item { ws, project, .. }
        | Target::Patch { ws, project, .. } => (ws, project),
        _ => return None,
    };
    let uuid_like = project.len() == 36 && project.chars().filter(|c| *c == '-').count() == 4;
    if !uuid_like {
        return Some(Reply::json(404, &json!({"error": "Page not found."})));
    }
    if *ws != w.plane_workspace || !w.projects.iter().any(|p| p.id == *project) {
        return Some(Reply::json(
            403,
            &json!({"detail": "You do not have permission to perform this action."}),
        ));
    }
    None
}

fn route(w: &mut World, t: &Target, req: &Request) -> Reply {
    let (ws, project) = match t {
        Target::States { ws, project }
        | Target::Items { ws, project }
        | Target::Item { ws, project, .. }
        | Target::Patch { ws, project, .. } => (ws, project),
        _ => return Reply::json(404, &json!({"error": "Page not found."})),
    };
    let Some(pi) = w.projects.iter().position(|p| p.id == *project) else {
        return Reply::json(404, &json!({"error": "Page not found."}));
    };
    debug_assert_eq!(*ws, w.plane_workspace, "forbidden() answered first");
    let expand_state = req
        .query_param("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "state"));
    let fields = Fields::of(req);
    match t {
        Target::States { .. } => {
            let states: Vec<Value> = w.projects[pi]
                .states
                .iter()
                .map(|s| {
                    json!({"id": s.id, "name": s.name, "group": s.group, "sequence": s.sequence,
                           "color": "#60646C", "default": false, "project": w.projects[pi].id,
                           "workspace": w.plane_workspace_id})
                })
                .collect();
            paginate(req, states, false)
        }
        Target::Items { .. } => {
            let mut issues = w.projects[pi].issues.clone();
            match req.query_param("order_by").as_deref() {
                Some("-updated_at") => {
                    issues.sort_by_key(|i| (i.updated_ago_s, -i.sequence_id));
                }
                Some("updated_at") => {
                    issues.sort_by_key(|i| (-i.updated_ago_s, i.sequence_id));
                }
                Some("-sequence_id") => issues.sort_by_key(|i| -i.sequence_id),
                _ => issues.sort_by_key(|i| i.sequence_id),
            }
            let items = issues
                .iter()
                .map(|i| fields.trim(w.issue_json(pi, i, expand_state)))
                .collect();
            paginate(req, items, w.projects[pi].endless_pages)
        }
        Target::Item { id, .. } => match w.projects[pi].issues.iter().find(|i| i.id == *id) {
            Some(i) => Reply::json(200, &fields.trim(w.issue_json(pi, i, expand_state))),
            None => Reply::json(404, &json!({"error": "Issue not found"})),
        },
        Target::Patch { id, .. } => patch(w, pi, id, req),
        _ => Reply::json(404, &json!({"error": "Page not found."})),
    }
}

/// `fields=a,b,c`: each object keeps only those keys (Plane combines it
/// with `expand`).
struct Fields(Option<Vec<String>>);

impl Fields {
    fn of(req: &Request) -> Fields {
        Fields(req.query_param("fields").map(|f| {
            f.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        }))
    }

    fn trim(&self, mut v: Value) -> Value {
        if let (Some(keep), Value::Object(m)) = (&self.0, &mut v) {
            m.retain(|k, _| keep.iter().any(|f| f == k));
        }
        v
    }
}

fn patch(w: &mut World, pi: usize, id: &str, req: &Request) -> Reply {
    let Some(ii) = w.projects[pi].issues.iter().position(|i| i.id == id) else {
        return Reply::json(404, &json!({"error": "Issue not found"}));
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return Reply::json(400, &json!({"error": "body must be a JSON object"}));
    };
    let now = w.now_ago();
    if let Some(s) = body.get("state") {
        let Some(sid) = s
            .as_str()
            .filter(|sid| w.projects[pi].states.iter().any(|st| st.id == *sid))
        else {
            return Reply::json(
                400,
                &json!({"state": [format!("Invalid pk \"{s}\" - object does not exist.")]}),
            );
        };
        w.projects[pi].issues[ii].state = sid.to_string();
    }
    if let Some(n) = body.get("name").and_then(Value::as_str) {
        w.projects[pi].issues[ii].name = n.to_string();
    }
    w.projects[pi].issues[ii].updated_ago_s = now;
    let issue = w.projects[pi].issues[ii].clone();
    Reply::json(200, &w.issue_json(pi, &issue, false))
}

/// Plane's offset pagination: cursor `"{per_page}:{page}:{is_prev}"`, the
/// offset `page × per_page` with per_page from the query (default and
/// maximum 1000); the next cursor is present even on the last page
/// (`next_page_results` says). Errors as the real server words them.
fn paginate(req: &Request, items: Vec<Value>, endless: bool) -> Reply {
    let detail = |msg: &str| Reply::json(400, &json!({"detail": msg}));
    let per_page = match req.query_param("per_page") {
        None => MAX_PER_PAGE,
        Some(p) => match p.trim().parse::<usize>() {
            // A division by zero in Plane's paginator.
            Ok(0) => {
                return Reply::json(
                    500,
                    &json!({"error": "Something went wrong please try again later"}),
                );
            }
            Ok(n) if n <= MAX_PER_PAGE => n,
            Ok(_) => return detail("Invalid per_page value. Cannot exceed 1000."),
            Err(_) => return detail("Invalid per_page parameter."),
        },
    };
    let page = match req.query_param("cursor").filter(|c| !c.is_empty()) {
        None => 0usize,
        Some(c) => {
            let parts: Vec<&str> = c.split(':').collect();
            match parts[..] {
                [v, p, "0" | "1"] => match (v.parse::<usize>(), p.parse::<usize>()) {
                    (Ok(_), Ok(p)) => p,
                    _ => return detail("Invalid cursor parameter."),
                },
                _ => return detail("Invalid cursor parameter."),
            }
        }
    };
    let total = items.len();
    let offset = per_page.saturating_mul(page).min(total);
    let end = offset.saturating_add(per_page).min(total);
    let results: Vec<Value> = items[offset..end].to_vec();
    Reply::json(
        200,
        &json!({
            "grouped_by": null,
            "sub_grouped_by": null,
            "total_count": total,
            "next_cursor": format!("{per_page}:{}:0", page + 1),
            "prev_cursor": format!("{per_page}:{}:1", page as i64 - 1),
            "next_page_results": endless || end < total,
            "prev_page_results": page > 0,
            "count": results.len(),
            "total_pages": total.div_ceil(per_page),
            "total_results": total,
            "extra_stats": null,
            "results": results,
        }),
    )
}
