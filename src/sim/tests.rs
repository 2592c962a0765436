//! Tests of the simulator itself, through a real HTTP client (ureq).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const PID: &str = "0b7e0000-0000-4000-8000-000000000001";

fn agent(timeout_ms: u64) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(timeout_ms)))
        .build()
        .new_agent()
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, ureq::Error> {
    let mut r = r?;
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn get(url: &str, hdr: &[(&str, &str)]) -> Result<Resp, ureq::Error> {
    let mut rb = agent(5000).get(url);
    for (k, v) in hdr {
        rb = rb.header(*k, *v);
    }
    finish(rb.call())
}

fn send(method: &str, url: &str, hdr: &[(&str, &str)], body: &str) -> Result<Resp, ureq::Error> {
    let a = agent(5000);
    let mut rb = match method {
        "PATCH" => a.patch(url),
        _ => a.post(url),
    };
    for (k, v) in hdr {
        rb = rb.header(*k, *v);
    }
    finish(rb.header("Content-Type", "application/json").send(body))
}

const ORCH: (&str, &str) = ("Authorization", "Bearer orch-secret-token");
const PLANE: (&str, &str) = ("X-API-Key", "plane-secret-key");

fn plane_base(sim: &Simulator) -> String {
    format!("{}/api/v1/workspaces/acme/projects/{PID}", sim.plane_url())
}

fn project_with(n: i64) -> SimProject {
    let mut p = SimProject::new(PID, "ET", "acme/shop");
    for seq in 1..=n {
        p.add_issue(seq, "Todo", 1000 + seq);
    }
    p
}

fn sim_with(tasks: Vec<SimTask>, projects: Vec<SimProject>) -> Simulator {
    Simulator::start(Scenario {
        tasks,
        projects,
        ..Scenario::default()
    })
    .expect("sim starts")
}

#[test]
fn pagination_walks_three_pages_with_a_cursor_on_the_last() {
    let sim = sim_with(vec![], vec![project_with(250)]);
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut url = format!("{}/work-items/?per_page=100&expand=state", plane_base(&sim));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = get(&url, &[PLANE]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        pages += 1;
        assert_eq!(v["total_results"], 250);
        assert_eq!(v["total_pages"], 3);
        for i in v["results"].as_array().unwrap() {
            assert_eq!(i["state"]["name"], "Todo");
            seen.push(i["sequence_id"].as_i64().unwrap());
        }
        let next = v["next_cursor"].as_str().unwrap().to_string();
        assert!(!next.is_empty());
        if !v["next_page_results"].as_bool().unwrap() {
            assert_eq!(pages, 3);
            assert_eq!(v["count"], 50);
            assert_eq!(next, "100:3:0");
            break;
        }
        cursor = Some(next);
    }
    assert_eq!(seen, (1..=250).collect::<Vec<_>>());
    assert_eq!(sim.count(Route::PlaneItems), 3);
}

#[test]
fn items_accept_issues_path_order_and_unexpanded_state() {
    let mut p = project_with(3);
    p.issues[1].updated_ago_s = 5;
    let sim = sim_with(vec![], vec![p]);
    let r = get(
        &format!("{}/issues/?order_by=-updated_at", plane_base(&sim)),
        &[PLANE],
    )
    .unwrap();
    let v = r.json();
    let seqs: Vec<i64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sequence_id"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 1, 3]);
    let todo = sim.scenario().projects[0].state_id("Todo").unwrap();
    assert_eq!(v["results"][0]["state"], json!(todo));
    assert!(
        v["results"][0]["updated_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // Bad per_page and cursor answer as the real server does, not panics.
    for (q, status, body) in [
        (
            "per_page=0",
            500,
            json!({"error": "Something went wrong please try again later"}),
        ),
        (
            "per_page=1001",
            400,
            json!({"detail": "Invalid per_page value. Cannot exceed 1000."}),
        ),
        (
            "per_page=x",
            400,
            json!({"detail": "Invalid per_page parameter."}),
        ),
        (
            "cursor=zz",
            400,
            json!({"detail": "Invalid cursor parameter."}),
        ),
        (
            "cursor=1:2",
            400,
            json!({"detail": "Invalid cursor parameter."}),
        ),
    ] {
        let r = get(&format!("{}/issues/?{q}", plane_base(&sim)), &[PLANE]).unwrap();
        assert_eq!((r.status, r.json()), (status, body), "{q}");
    }
    let r = get(&format!("{}/states/", plane_base(&sim)), &[PLANE]).unwrap();
    let v = r.json();
    assert_eq!(v["results"].as_array().unwrap().len(), 11);
    assert_eq!(v["results"][9]["group"], "completed");
    assert_eq!(v["next_page_results"], false);
}

#[test]
fn plane_get_and_patch_one_issue() {
    let mut p = project_with(1);
    let id = p.issues[0].id.clone();
    let blocked = p.state_id("Blocked").unwrap();
    p.issues[0].updated_ago_s = 9000;
    let sim = sim_with(vec![], vec![p]);
    let url = format!("{}/work-items/{id}/", plane_base(&sim));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.json()["id"], json!(id));
    let r = send(
        "PATCH",
        &url,
        &[PLANE],
        &json!({"state": blocked}).to_string(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], json!(blocked));
    assert_eq!(sim.issue_state_name(PID, &id).unwrap(), "Blocked");
    assert!(sim.issue(PID, &id).unwrap().updated_ago_s <= 0);
    let r = send("PATCH", &url, &[PLANE], r#"{"state":"nope"}"#).unwrap();
    assert_eq!(r.status, 400);
    let r = send("PATCH", &url, &[PLANE], "not json").unwrap();
    assert_eq!(r.status, 400);
    let r = get(
        &format!("{}/work-items/missing/", plane_base(&sim)),
        &[PLANE],
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(sim.count(Route::PlanePatch), 3);
}

#[test]
fn plane_rate_limit_counts_down_then_429() {
    let sim = Simulator::start(Scenario {
        projects: vec![project_with(1)],
        rate_limit: RateLimit {
            remaining: 2,
            ..RateLimit::default()
        },
        ..Scenario::default()
    })
    .unwrap();
    let url = format!("{}/states/", plane_base(&sim));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.header("x-ratelimit-remaining"), Some("1"));
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset > 1_600_000_000);
    assert_eq!(
        get(&url, &[PLANE]).unwrap().header("x-ratelimit-remaining"),
        Some("0")
    );
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error_code"], 5900);
    // Until the next minute of the simulator's clock; no rate headers.
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.header("x-ratelimit-remaining").is_none());
    assert!(r.header("x-ratelimit-reset").is_none());
    // An explicit sequence, then the countdown resumes from its last value.
    sim.update(|w| {
        w.rate_limit.sequence = [11, 10].into();
    });
    let seen: Vec<String> = (0..3)
        .map(|_| {
            get(&url, &[PLANE])
                .unwrap()
                .header("x-ratelimit-remaining")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(seen, ["11", "10", "9"]);
}

#[test]
fn plane_without_rate_headers_still_counts_and_a_full_window_answers_429_until_it_frees() {
    let sim = Simulator::start(Scenario {
        projects: vec![project_with(1)],
        rate_limit: RateLimit {
            remaining: 1,
            headers: false,
            full_for_s: 2,
            ..RateLimit::default()
        },
        ..Scenario::default()
    })
    .unwrap();
    let url = format!("{}/states/", plane_base(&sim));
    // Full for 2 s from the first request: 429, Retry-After the seconds left.
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    sim.update(|w| w.advance_clock(1));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    sim.update(|w| w.advance_clock(1));
    // Freed: a success without rate headers, still counted.
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("x-ratelimit-remaining").is_none());
    assert!(r.header("x-ratelimit-reset").is_none());
    assert_eq!(sim.inspect(|w| w.rate_limit.remaining), 0);
    assert_eq!(get(&url, &[PLANE]).unwrap().status, 429);
}

#[test]
fn plane_budget_refills_when_a_new_minute_starts() {
    let sim = Simulator::start(Scenario {
        projects: vec![project_with(1)],
        rate_limit: RateLimit {
            remaining: 1,
            ..RateLimit::default()
        },
        ..Scenario::default()
    })
    .unwrap();
    let url = format!("{}/states/", plane_base(&sim));
    let remaining = |r: &Resp| r.header("x-ratelimit-remaining").map(str::to_string);
    assert_eq!(remaining(&get(&url, &[PLANE]).unwrap()), Some("0".into()));
    assert_eq!(get(&url, &[PLANE]).unwrap().status, 429);
    let t0 = sim.inspect(World::now);
    sim.update(|w| w.advance_clock(60));
    let r = get(&url, &[PLANE]).unwrap();
    // The first request of a fresh minute: 60 per minute, this one counted.
    assert_eq!(remaining(&r), Some("59".into()));
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    let now = sim.inspect(World::now).unix_timestamp();
    assert!((now + 59..=now + 61).contains(&reset), "{reset} vs {now}");
    assert!(now - t0.unix_timestamp() >= 60);
    let left: Vec<Option<String>> = (0..59)
        .map(|_| remaining(&get(&url, &[PLANE]).unwrap()))
        .collect();
    assert_eq!(left.last().unwrap().as_deref(), Some("0"));
    assert_eq!(get(&url, &[PLANE]).unwrap().status, 429, "the 61st request");
}

#[test]
fn plane_pages_default_to_1000_and_per_page_comes_from_the_query() {
    let sim = sim_with(vec![], vec![project_with(1200)]);
    let r = get(&format!("{}/work-items/", plane_base(&sim)), &[PLANE]).unwrap();
    let v = r.json();
    assert_eq!(
        (v["count"].clone(), v["total_pages"].clone()),
        (json!(1000), json!(2))
    );
    assert_eq!(v["next_cursor"], "1000:1:0");
    // The offset is page × the query's per_page, whatever the cursor says.
    let r = get(
        &format!(
            "{}/work-items/?per_page=10&cursor=1000:2:0",
            plane_base(&sim)
        ),
        &[PLANE],
    )
    .unwrap();
    let v = r.json();
    assert_eq!(v["results"][0]["sequence_id"], 21);
    assert_eq!(v["count"], 10);
    // Past the end: an empty page, not an error.
    let r = get(
        &format!(
            "{}/work-items/?per_page=1000&cursor=1000:9:0",
            plane_base(&sim)
        ),
        &[PLANE],
    )
    .unwrap();
    assert_eq!((r.status, r.json()["count"].clone()), (200, json!(0)));
    assert_eq!(r.json()["next_page_results"], false);
}

#[test]
fn plane_trims_to_fields_and_gzips_when_asked() {
    let sim = sim_with(vec![], vec![project_with(300)]);
    let url = format!(
        "{}/work-items/?fields=id,state,updated_at&expand=state",
        plane_base(&sim)
    );
    let r = get(&url, &[PLANE]).unwrap();
    let first = r.json()["results"][0].clone();
    let mut keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "state", "updated_at"]);
    assert_eq!(first["state"]["name"], "Todo");
    // ureq asks for gzip and decodes it; the simulator recorded both.
    let zipped = sim.requests_to(Route::PlaneItems).pop().unwrap();
    assert_eq!(zipped.header("accept-encoding"), Some("gzip"));
    let plain = {
        let mut rb = agent(5000).get(&url).header(PLANE.0, PLANE.1);
        rb = rb.header("Accept-Encoding", "identity");
        let mut resp = rb.call().unwrap();
        assert!(resp.headers().get("content-encoding").is_none());
        let body = resp.body_mut().read_to_string().unwrap();
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(plain, r.json());
    let sizes: Vec<usize> = sim
        .requests_to(Route::PlaneItems)
        .iter()
        .map(|r| r.response_bytes.unwrap())
        .collect();
    assert!(sizes[0] * 4 < sizes[1], "gzip is smaller: {sizes:?}");
    let raw = {
        let mut s =
            std::net::TcpStream::connect(sim.plane_url().trim_start_matches("http://")).unwrap();
        let path = url.splitn(4, '/').nth(3).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: x\r\nX-API-Key: plane-secret-key\r\nAccept-Encoding: gzip\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).to_ascii_lowercase()
    };
    assert!(raw.contains("content-encoding: gzip"), "{}", &raw[..300]);
    assert!(raw.contains("vary: accept-encoding"));
}

#[test]
fn wrong_credentials_are_401_per_peer() {
    let sim = sim_with(vec![SimTask::new(1, "testing")], vec![project_with(1)]);
    let o = format!("{}/reconcile/v1/tasks", sim.orchestrator_url());
    assert_eq!(get(&o, &[]).unwrap().status, 401);
    assert_eq!(
        get(&o, &[("Authorization", "Bearer nope")]).unwrap().status,
        401
    );
    // Plane: no key is 401, a wrong key 403 (as the real server answers).
    let r = get(&format!("{}/states/", plane_base(&sim)), &[]).unwrap();
    assert_eq!(r.status, 401);
    let r = get(
        &format!("{}/states/", plane_base(&sim)),
        &[("X-API-Key", "x")],
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"detail": "Given API token is not valid"}));
    assert!(r.header("x-ratelimit-remaining").is_none());
    // A project the key cannot see (unknown, or another workspace's) is 403
    // too, with its own body; a project id that is not a UUID is a 404.
    let other = sim_uuid(&["project", "not-a-member"]);
    let base = plane_base(&sim);
    let (prefix, _) = base.rsplit_once("/projects/").unwrap();
    let r = get(&format!("{prefix}/projects/{other}/states/"), &[PLANE]).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"detail": "You do not have permission to perform this action."})
    );
    assert!(r.header("x-ratelimit-remaining").is_none());
    let r = get(&format!("{prefix}/projects/nope/states/"), &[PLANE]).unwrap();
    assert_eq!(r.status, 404);
    let r = get(&format!("{}/botWRONG/getMe", sim.telegram_url()), &[]).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let r = get(
        &format!(
            "{}/bot123456:telegram-secret-token/getMe",
            sim.telegram_url()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(r.json()["ok"], true);
    // Wrong credentials can be introduced mid-test.
    sim.update(|w| w.orchestrator_token = "rotated".into());
    assert_eq!(get(&o, &[ORCH]).unwrap().status, 401);
}

#[test]
fn task_list_renders_the_contract_fields() {
    let mut hidden = SimTask::new(2, "done");
    hidden.escalated = None;
    let mut no_age = SimTask::new(3, "review").depends(&[1, 2, 99]).issue("u-3");
    no_age.send_age_s = false;
    no_age.escalated = None;
    let sim = sim_with(
        vec![SimTask::new(1, "testing").ago(5400), hidden, no_age],
        vec![],
    );
    let r = get(
        &format!("{}/reconcile/v1/tasks", sim.orchestrator_url()),
        &[ORCH],
    )
    .unwrap();
    let tasks = r.json()["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 2, "done is not listed");
    let t1 = &tasks[0];
    assert_eq!(t1["id"], 1);
    assert_eq!(t1["work_item_id"], "ET-1");
    assert_eq!(t1["gate"], "ci_green");
    assert_eq!(t1["escalated"], false);
    let age = t1["age_s"].as_i64().unwrap();
    assert!((5400..5460).contains(&age), "{age}");
    assert!(t1["updated_at"].as_str().unwrap().ends_with("+03:00"));
    let t3 = &tasks[1];
    assert!(t3.get("age_s").is_none());
    assert!(t3.get("escalated").is_none());
    assert_eq!(
        t3["depends_on"],
        json!([{"id": 1, "work_item_id": "ET-1", "stage": "testing"},
               {"id": 2, "work_item_id": "ET-2", "stage": "done"},
               {"id": 99, "work_item_id": null, "stage": null}])
    );
    let by = |u: &str| {
        get(
            &format!(
                "{}/reconcile/v1/tasks?plane_issue_id={u}",
                sim.orchestrator_url()
            ),
            &[ORCH],
        )
        .unwrap()
        .json()
    };
    assert_eq!(by("u-3")["tasks"][0]["id"], 3);
    assert_eq!(by("nope"), json!({"tasks": []}));
    assert_eq!(sim.count(Route::OrchTaskByIssue), 2);
    assert_eq!(sim.count(Route::OrchTasks), 1);
}

#[test]
fn gate_and_advance_follow_the_stage_engine() {
    let sim = sim_with(
        vec![
            SimTask::new(1, "testing").green(),
            SimTask::new(2, "testing"),
            SimTask::new(3, "testing").green().active(),
        ],
        vec![],
    );
    let base = format!("{}/reconcile/v1/tasks", sim.orchestrator_url());
    let adv = |id: i64, stage: &str| {
        send(
            "POST",
            &format!("{base}/{id}/advance"),
            &[ORCH],
            &json!({ "expected_stage": stage }).to_string(),
        )
        .unwrap()
    };
    let g = get(&format!("{base}/1/gate"), &[ORCH]).unwrap().json();
    assert_eq!(g["passed"], true);
    assert_eq!(g["gate"], "ci_green");
    assert_eq!(g["task_id"], 1);
    assert_eq!(
        get(&format!("{base}/42/gate"), &[ORCH]).unwrap().status,
        404
    );

    let r = adv(1, "development");
    assert_eq!(
        (r.status, r.json()["detail"].clone()),
        (409, json!("stage changed"))
    );
    let r = adv(3, "testing");
    assert_eq!(
        (r.status, r.json()["detail"].clone()),
        (409, json!("active job"))
    );
    let r = adv(2, "testing");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["advanced"], false);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("gate red: ")
    );
    let r = adv(1, "testing");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (&v["advanced"], &v["stage_before"], &v["stage_after"]),
        (&json!(true), &json!("testing"), &json!("review"))
    );
    let t = sim.task(1).unwrap();
    assert_eq!(t.stage, "review");
    assert!(t.updated_ago_s <= 0);
    assert!(!t.gate_passed, "a new stage starts with its gate red");
    assert_eq!(adv(99, "testing").status, 404);
    let r = send("POST", &format!("{base}/1/advance"), &[ORCH], "{}").unwrap();
    assert_eq!(r.status, 422);
    // A gate turned green between ticks.
    sim.update(|w| w.task_mut(2).unwrap().gate_passed = true);
    assert_eq!(adv(2, "testing").json()["advanced"], true);
    assert_eq!(sim.count(Route::OrchAdvance), 7);
}

fn replay_body(sim: &Simulator, issue_id: &str) -> String {
    let s = sim.scenario();
    let p = &s.projects[0];
    let i = p.issues.iter().find(|i| i.id == issue_id).unwrap();
    let st = p.states.iter().find(|x| x.id == i.state).unwrap();
    json!({"event": "issue", "action": "updated", "webhook_id": "reconcile",
           "data": {"id": i.id, "name": i.name, "sequence_id": i.sequence_id,
                    "state": {"id": st.id, "name": st.name, "group": st.group},
                    "project": p.id},
           "activity": {"field": "state", "new_value": st.name, "new_identifier": st.id}})
    .to_string()
}

#[test]
fn webhook_signature_is_checked_only_when_configured() {
    let mut p = project_with(0);
    let id = p.add_issue(5, "Backlog", 100);
    for secret in [None, Some("s3cret")] {
        let sim = Simulator::start(Scenario {
            projects: vec![p.clone()],
            webhook_secret: secret.map(String::from),
            ..Scenario::default()
        })
        .unwrap();
        let url = format!("{}/webhooks/plane", sim.orchestrator_url());
        let body = replay_body(&sim, &id);
        let status = |sig: Option<&str>| {
            let h: Vec<(&str, &str)> = sig.map(|s| ("X-Plane-Signature", s)).into_iter().collect();
            send("POST", &url, &h, &body).unwrap().status
        };
        let right = webhook_signature("s3cret", body.as_bytes());
        assert_eq!(right.len(), 64);
        match secret {
            None => assert_eq!(status(None), 200),
            Some(_) => {
                assert_eq!(status(Some(&right)), 200);
                assert_eq!(status(None), 403);
                assert_eq!(
                    status(Some(&webhook_signature("other", body.as_bytes()))),
                    403
                );
                assert_eq!(status(Some(&right.to_uppercase())), 403);
            }
        }
    }
}

#[test]
fn webhook_default_engine_starts_and_applies_verdicts() {
    let mut p = project_with(0);
    let start = p.add_issue(10, "To Analyse", 7200);
    let appr = p.add_issue(11, "Approved", 7200);
    let rej = p.add_issue(12, "Rejected", 7200);
    let special = p.add_issue(13, "To Analyse", 7200);
    p.issues[3].on_replay = Some(ReplayEffect::Nothing);
    let sim = sim_with(
        vec![
            SimTask::new(1, "analysis").issue(&appr),
            SimTask::new(2, "review").issue(&rej),
        ],
        vec![p],
    );
    let url = format!("{}/webhooks/plane", sim.orchestrator_url());
    for id in [&start, &appr, &rej, &special] {
        let r = send("POST", &url, &[], &replay_body(&sim, id)).unwrap();
        assert_eq!((r.status, r.json()["ok"].clone()), (200, json!(true)));
    }
    let tasks = sim.tasks();
    assert_eq!(
        tasks.len(),
        3,
        "only the plain To Analyse issue starts a task"
    );
    let created = &tasks[2];
    assert_eq!(created.id, 3);
    assert_eq!(created.stage, "analysis");
    assert_eq!(created.work_item_id.as_deref(), Some("ET-10"));
    assert_eq!(created.plane_issue_id.as_deref(), Some(start.as_str()));
    assert_eq!(created.repo, "acme/shop");
    assert_eq!(sim.task(1).unwrap().stage, "architecture");
    assert_eq!(sim.task(2).unwrap().stage, "testing");
    // A second replay of the start finds the task: nothing more.
    send("POST", &url, &[], &replay_body(&sim, &start)).unwrap();
    assert_eq!(sim.tasks().len(), 3);
    // Overrides per issue.
    sim.update(|w| w.issue_mut(&start).unwrap().on_replay = Some(ReplayEffect::StartJob));
    send("POST", &url, &[], &replay_body(&sim, &start)).unwrap();
    assert!(sim.task(3).unwrap().active_job);
    sim.update(|w| {
        w.issue_mut(&start).unwrap().on_replay = Some(ReplayEffect::SetStage("architecture".into()))
    });
    send("POST", &url, &[], &replay_body(&sim, &start)).unwrap();
    assert_eq!(sim.task(3).unwrap().stage, "architecture");
    // Garbage is a 400, an unknown issue a 200 without effect.
    assert_eq!(send("POST", &url, &[], "nope").unwrap().status, 400);
    assert_eq!(send("POST", &url, &[], "{}").unwrap().status, 400);
    let unknown = json!({"data": {"id": "zzz", "state": {"id": "x"}}}).to_string();
    assert_eq!(send("POST", &url, &[], &unknown).unwrap().status, 200);
    assert_eq!(sim.count(Route::OrchWebhook), 10);
}

#[test]
fn telegram_records_messages_and_validates() {
    let sim = Simulator::start(Scenario {
        telegram_chat_id: Some("-100123".into()),
        ..Scenario::default()
    })
    .unwrap();
    let url = format!(
        "{}/bot123456:telegram-secret-token/sendMessage",
        sim.telegram_url()
    );
    let body = json!({"chat_id": "-100123", "text": "hello", "message_thread_id": 42,
                      "link_preview_options": {"is_disabled": true}});
    let r = send("POST", &url, &[], &body.to_string()).unwrap();
    assert_eq!(r.json()["ok"], true);
    assert_eq!(r.json()["result"]["message_id"], 1);
    let bad = [
        json!({"chat_id": "-999", "text": "x"}),
        json!({"chat_id": "-100123", "text": ""}),
        json!({"chat_id": "-100123", "text": "x".repeat(4097)}),
        json!({"text": "x"}),
    ];
    for b in bad {
        let r = send("POST", &url, &[], &b.to_string()).unwrap();
        assert_eq!((r.status, r.json()["ok"].clone()), (400, json!(false)));
    }
    let r = send(
        "POST",
        &url,
        &[],
        &json!({"chat_id": -100123, "text": "two"}).to_string(),
    );
    assert_eq!(r.unwrap().status, 200);
    assert_eq!(sim.telegram_messages(), ["hello", "two"]);
    let m = &sim.sent_messages()[0];
    assert_eq!(m.message_thread_id, Some(json!(42)));
    assert_eq!(m.link_preview_options, Some(json!({"is_disabled": true})));
    assert_eq!(m.chat_id, json!("-100123"));
    assert_eq!(sim.count(Route::TelegramSend), 6);
}

#[test]
fn requests_are_recorded_with_lowercase_headers() {
    let sim = sim_with(vec![], vec![project_with(1)]);
    get(
        &format!("{}/work-items/?per_page=5&expand=state", plane_base(&sim)),
        &[PLANE, ("X-Custom", "Yes")],
    )
    .unwrap();
    get(&format!("{}/nowhere", sim.orchestrator_url()), &[]).unwrap();
    let all = sim.requests();
    assert_eq!(all.len(), 2);
    let r = &all[0];
    assert_eq!(r.peer, Peer::Plane);
    assert_eq!(r.route, Some(Route::PlaneItems));
    assert_eq!(r.method, "GET");
    assert_eq!(r.query, "per_page=5&expand=state");
    assert_eq!(r.header("x-custom"), Some("Yes"));
    assert_eq!(r.header("X-API-KEY"), Some("plane-secret-key"));
    assert_eq!(r.status, Some(200));
    assert_eq!(all[1].route, None);
    assert_eq!(all[1].status, Some(404));
    assert_eq!(sim.count_peer(Peer::Orchestrator), 1);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

fn faulted(route: Route, faults: &[Fault]) -> Simulator {
    let mut s = Scenario {
        tasks: vec![SimTask::new(1, "testing").green()],
        projects: vec![project_with(2)],
        ..Scenario::default()
    };
    for f in faults {
        s.push_fault(route, f.clone());
    }
    Simulator::start(s).unwrap()
}

#[test]
fn status_faults_use_each_peers_envelope_then_recover() {
    let sim = faulted(
        Route::PlaneStates,
        &[
            Fault::Status {
                code: 429,
                body: None,
                retry_after: Some(7),
            },
            Fault::Status {
                code: 500,
                body: Some("boom".into()),
                retry_after: None,
            },
        ],
    );
    let url = format!("{}/states/", plane_base(&sim));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("7")));
    assert_eq!(r.json()["error_message"], "RATE_LIMIT_EXCEEDED");
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!((r.status, r.body.as_str()), (500, "boom"));
    assert_eq!(get(&url, &[PLANE]).unwrap().status, 200);
    let recorded = sim.requests_to(Route::PlaneStates);
    assert!(recorded[0].fault.is_some() && recorded[2].fault.is_none());

    let sim = faulted(
        Route::TelegramSend,
        &[Fault::Status {
            code: 429,
            body: None,
            retry_after: Some(3),
        }],
    );
    let url = format!(
        "{}/bot123456:telegram-secret-token/sendMessage",
        sim.telegram_url()
    );
    let r = send("POST", &url, &[], r#"{"chat_id":1,"text":"x"}"#).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["parameters"]["retry_after"], 3);
    assert_eq!(r.json()["description"], "Too Many Requests: retry after 3");
    assert!(sim.telegram_messages().is_empty());
}

#[test]
fn always_fault_persists_until_cleared() {
    let sim = faulted(Route::OrchTasks, &[]);
    sim.update(|w| w.set_always_fault(Route::OrchTasks, Some(Fault::status(502))));
    let url = format!("{}/reconcile/v1/tasks", sim.orchestrator_url());
    for _ in 0..3 {
        assert_eq!(get(&url, &[ORCH]).unwrap().status, 502);
    }
    sim.update(|w| w.set_always_fault(Route::OrchTasks, None));
    assert_eq!(get(&url, &[ORCH]).unwrap().status, 200);
}

#[test]
fn latency_delays_then_answers() {
    let sim = faulted(Route::OrchGate, &[Fault::Latency { ms: 300 }]);
    let t0 = Instant::now();
    let r = get(
        &format!("{}/reconcile/v1/tasks/1/gate", sim.orchestrator_url()),
        &[ORCH],
    )
    .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.json()["passed"], true);
}

#[test]
fn hang_and_reset_are_transport_errors() {
    let sim = faulted(
        Route::OrchTasks,
        &[Fault::Hang { ms: 2000 }, Fault::Reset, Fault::Truncated],
    );
    let url = format!("{}/reconcile/v1/tasks", sim.orchestrator_url());
    let t0 = Instant::now();
    let r = finish(agent(300).get(&url).header(ORCH.0, ORCH.1).call());
    assert!(r.is_err(), "hang must time out");
    assert!(t0.elapsed() < Duration::from_millis(1900));
    assert!(get(&url, &[ORCH]).is_err(), "reset");
    assert!(get(&url, &[ORCH]).is_err(), "truncated");
    assert_eq!(get(&url, &[ORCH]).unwrap().status, 200);
    let statuses: Vec<Option<u16>> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [None, None, Some(200), Some(200)]);
}

#[test]
fn reset_after_effect_applies_the_effect() {
    let sim = faulted(Route::OrchAdvance, &[Fault::ResetAfterEffect]);
    let url = format!("{}/reconcile/v1/tasks/1/advance", sim.orchestrator_url());
    assert!(send("POST", &url, &[ORCH], r#"{"expected_stage":"testing"}"#).is_err());
    assert_eq!(sim.task(1).unwrap().stage, "review");
}

#[test]
fn garbage_html_and_wrong_type_bodies() {
    let sim = faulted(
        Route::PlaneItems,
        &[Fault::Garbage, Fault::Html { code: 502 }, Fault::WrongType],
    );
    let url = format!("{}/work-items/", plane_base(&sim));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.contains("<html>"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = get(&url, &[PLANE]).unwrap();
    assert_eq!(r.json()["results"], 5);
}

#[test]
fn oversized_body_is_streamed_in_full() {
    let bytes = 33 * 1024 * 1024;
    let sim = faulted(Route::TelegramGetMe, &[Fault::Oversized { bytes }]);
    let url = format!(
        "{}/bot123456:telegram-secret-token/getMe",
        sim.telegram_url()
    );
    let mut resp = agent(20_000).get(&url).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 16];
    let (mut total, mut first) = (0u64, Vec::new());
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if first.is_empty() {
            first = buf[..n.min(10)].to_vec();
        }
        total += n as u64;
    }
    assert_eq!(total, bytes);
    assert_eq!(&first[..1], b"{");
    // The default client limit (10 MB) refuses it.
    sim.update(|w| w.push_fault(Route::TelegramGetMe, Fault::Oversized { bytes }));
    assert!(get(&url, &[]).is_err());
}

#[test]
fn bad_raw_requests_get_4xx_not_panics() {
    let sim = sim_with(vec![], vec![]);
    let addr = sim
        .orchestrator_url()
        .trim_start_matches("http://")
        .to_string();
    let raw = |req: &[u8]| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(raw(b"NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(raw(b"GET / SPDY/9\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(
        raw(b"POST /webhooks/plane HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
            .starts_with("HTTP/1.1 413")
    );
    assert!(
        raw(b"POST /webhooks/plane HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    let chunked = raw(
        b"POST /webhooks/plane HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}x\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 400"), "{chunked}"); // `{}x` is not JSON
    assert!(raw(b"DELETE /reconcile/v1/tasks HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert_eq!(sim.requests().last().unwrap().body, "");
}

#[test]
fn shutdown_is_prompt_even_with_a_hang_in_flight() {
    let mut sim = faulted(Route::OrchTasks, &[Fault::Hang { ms: 60_000 }]);
    let url = format!("{}/reconcile/v1/tasks", sim.orchestrator_url());
    let client = std::thread::spawn(move || {
        let _ = finish(agent(30_000).get(&url).header(ORCH.0, ORCH.1).call());
    });
    while sim.count(Route::OrchTasks) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    sim.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(3));
    client.join().unwrap();
}

#[test]
fn scenario_files_parse_with_names_and_faults() {
    let text = r#"{
        "webhook_secret": "k",
        "tasks": [{"id": 7, "stage": "testing", "gate_passed": true, "updated_ago_s": 5400}],
        "projects": [{"id": "p1", "identifier": "ET", "repo": "acme/shop",
                      "issues": [{"id": "i1", "sequence_id": 1, "state": "Approved",
                                  "on_replay": {"set_stage": "review"}}]}],
        "faults": {"orch_tasks": {"queue": [{"kind": "status", "code": 502},
                                            {"kind": "latency", "ms": 5}],
                                  "always": {"kind": "reset"}}},
        "rate_limit": {"sequence": [11, 10]}
    }"#;
    let s = Scenario::from_json(text).unwrap();
    assert_eq!(s.tasks[0].gate.as_deref(), Some("ci_green"));
    assert_eq!(s.faults[&Route::OrchTasks].queue.len(), 2);
    let sim = Simulator::start(s).unwrap();
    let approved = sim.scenario().projects[0].state_id("Approved").unwrap();
    assert_eq!(sim.issue("p1", "i1").unwrap().state, approved);
    assert!(Scenario::from_json(r#"{"taks": []}"#).is_err());
    assert!(Scenario::from_json(r#"{"faults": {"nowhere": {}}}"#).is_err());
}

#[test]
fn demo_scenario_starts() {
    let sim = Simulator::start(Scenario::demo()).unwrap();
    let r = get(
        &format!("{}/reconcile/v1/tasks", sim.orchestrator_url()),
        &[ORCH],
    )
    .unwrap();
    assert_eq!(r.json()["tasks"].as_array().unwrap().len(), 8);
}
