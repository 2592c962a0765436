"""The real `reconcile` binary against the router, served by uvicorn.

An in-memory orchestrator (tests/stub.py) behind the router, plus its Plane
webhook route (signature checked, the verdict handler run before the
answer); a fake Plane and a fake Telegram on loopback. Every exchange with
the orchestrator is checked against docs/orchestrator-api.yaml.

The binary: $RECONCILE_BIN, else target/debug/reconcile (`cargo build`).
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qsl, urlsplit

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from apispec import REPO, Spec
from reconcile_orchestrator import per_task_lock
from stub import STAGES, Stub

TOKEN = "orch-token-0123"
WEBHOOK_SECRET = "whsec-4567"
PLANE_KEY = "plane_api_0123456789abcdef0123456789abcdef"
BOT = "123456:ABCdef"
WORKSPACE = "acme"
PROJECT = "6f1c2d3e-0000-4000-8000-000000000001"
ISSUE_7 = "6f1c2d3e-0000-4000-8000-000000000007"
ISSUE_8 = "6f1c2d3e-0000-4000-8000-000000000008"
ISSUE_9 = "6f1c2d3e-0000-4000-8000-000000000009"
ISSUE_10 = "6f1c2d3e-0000-4000-8000-000000000010"
BIN = Path(os.environ.get("RECONCILE_BIN", REPO / "target" / "debug" / "reconcile"))


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int
    response: bytes


class Recorder:
    """ASGI middleware keeping every request and answer, bytes as sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log: list[Exchange] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body: list[bytes] = []
        out: list[bytes] = []
        status = [0]

        async def rcv() -> Any:
            msg = await receive()
            if msg["type"] == "http.request":
                body.append(msg.get("body", b""))
            return msg

        async def snd(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            elif msg["type"] == "http.response.body":
                out.append(msg.get("body", b""))
            await send(msg)

        await self.app(scope, rcv, snd)
        self.log.append(
            Exchange(
                scope["method"],
                scope["path"],
                dict(parse_qsl(scope["query_string"].decode())),
                {k.decode(): v.decode() for k, v in scope["headers"]},
                b"".join(body),
                status[0],
                b"".join(out),
            )
        )


def orchestrator_app(stub: Stub, job_at_claim: set[int]) -> Recorder:
    claim = per_task_lock()

    @contextmanager
    def racing_claim(task_id: int) -> Iterator[None]:
        # A webhook queued a job for these tasks after the list was read.
        if task_id in job_at_claim:
            stub.jobs.add(task_id)
        with claim(task_id):
            yield

    app = FastAPI()
    app.include_router(stub.router(TOKEN, claim=racing_claim))

    @app.post("/webhooks/plane")
    async def plane_webhook(request: Request) -> JSONResponse:
        # The orchestrator's own route: verify, then run the handler before answering.
        raw = await request.body()
        want = hmac.new(WEBHOOK_SECRET.encode(), raw, "sha256").hexdigest()
        if not hmac.compare_digest(request.headers.get("x-plane-signature", ""), want):
            return JSONResponse({"detail": "invalid signature"}, status_code=403)
        data = json.loads(raw)["data"]
        task = stub.get_task_by_plane_id(data["id"])
        if task is not None and data["state"]["name"] == "Approved" and task["stage"] == "review":
            stub.tasks[task["id"]]["stage"] = STAGES[STAGES.index("review") + 1]
        return JSONResponse({"ok": True})

    return Recorder(app)


def serve_asgi(app: Any) -> tuple[str, Callable[[], None]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


Route = Callable[[str, str, dict[str, str], dict[str, str], bytes], tuple[int, Any]]


def serve_http(route: Route) -> tuple[str, Callable[[], None]]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            parts = urlsplit(self.path)
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = route(
                self.command, parts.path, dict(parse_qsl(parts.query)), headers, body
            )
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("X-RateLimit-Remaining", "59")
            self.send_header("X-RateLimit-Reset", str(int(time.time()) + 60))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def plane_ts(ago: timedelta) -> str:
    return (datetime.now(timezone.utc) - ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


STATES = [
    ("a0000000-0000-4000-8000-00000000000%d" % i, name, group, float(i * 1000))
    for i, (name, group) in enumerate(
        [("Backlog", "backlog"), ("To Analyse", "unstarted"), ("In Progress", "started"),
         ("Approved", "started"), ("Rejected", "started"), ("Blocked", "started"),
         ("Done", "completed"), ("Cancelled", "cancelled")]
    )
]
STATE_ID = {name: sid for sid, name, _, _ in STATES}


class FakePlane:
    """States and work items of one project, as Plane's v1 API lists them."""

    def __init__(self) -> None:
        old = plane_ts(timedelta(hours=2))
        self.items = [
            {"id": ISSUE_7, "name": "Stuck in testing", "sequence_id": 7, "state": STATE_ID["In Progress"]},
            {"id": ISSUE_8, "name": "Busy", "sequence_id": 8, "state": STATE_ID["In Progress"]},
            {"id": ISSUE_9, "name": "Lost verdict", "sequence_id": 9, "state": STATE_ID["Approved"]},
            {"id": ISSUE_10, "name": "Raced", "sequence_id": 10, "state": STATE_ID["In Progress"]},
        ]
        for i in self.items:
            i.update(project=PROJECT, workspace="w-1", updated_at=old, created_at=old)
        self.requests: list[str] = []

    def route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
              body: bytes) -> tuple[int, Any]:
        self.requests.append(f"{method} {path}")
        if headers.get("x-api-key") != PLANE_KEY:
            return 401, {"detail": "Authentication credentials were not provided."}
        base = f"/api/v1/workspaces/{WORKSPACE}/projects/{PROJECT}/"
        if method != "GET" or not path.startswith(base):
            return 404, {"error": "Page not found."}
        rest = path[len(base):]
        if rest == "states/":
            return 200, self.page([
                {"id": sid, "name": n, "group": g, "sequence": s, "project": PROJECT}
                for sid, n, g, s in STATES
            ])
        expand = "state" in query.get("expand", "")
        items = [self.item(i, expand) for i in self.items]
        if rest in ("work-items/", "issues/"):
            return 200, self.page(items)
        for i in items:
            if rest in (f"work-items/{i['id']}/", f"issues/{i['id']}/"):
                return 200, i
        return 404, {"error": "The requested resource does not exist."}

    @staticmethod
    def item(i: dict[str, Any], expand: bool) -> dict[str, Any]:
        if not expand:
            return dict(i)
        sid, name, group, _ = next(s for s in STATES if s[0] == i["state"])
        return {**i, "state": {"id": sid, "name": name, "group": group, "color": "#000"}}

    @staticmethod
    def page(results: list[Any]) -> dict[str, Any]:
        n = len(results)
        return {"grouped_by": None, "sub_grouped_by": None, "total_count": n,
                "next_cursor": "1000:1:0", "prev_cursor": "1000:-1:1",
                "next_page_results": False, "prev_page_results": False, "count": n,
                "total_pages": 1, "total_results": n, "extra_stats": None, "results": results}


class FakeTelegram:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
              body: bytes) -> tuple[int, Any]:
        if path == f"/bot{BOT}/getMe":
            return 200, {"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "r"}}
        if path == f"/bot{BOT}/sendMessage" and method == "POST":
            self.sent.append(json.loads(body)["text"])
            return 200, {"ok": True, "result": {"message_id": len(self.sent)}}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not BIN.is_file():
        pytest.fail(f"{BIN} missing: run `cargo build --locked` or set RECONCILE_BIN")
    stub = Stub()
    stub.add(3, "done", plane_id=None)
    # Stuck: its gate went green two hours ago and the webhook was lost.
    stub.add(7, "testing", plane_id=ISSUE_7, age_s=7200)
    stub.green.add(7)
    stub.deps[7] = [3]
    # Green too, but a job is running: never touched.
    stub.add(8, "testing", plane_id=ISSUE_8, age_s=7200)
    stub.green.add(8)
    stub.jobs.add(8)
    # Its Plane issue is Approved; the verdict webhook was lost.
    stub.add(9, "review", plane_id=ISSUE_9, age_s=7200)
    # Green and idle in the list, but a job appears before the advance: 409.
    stub.add(10, "testing", plane_id=ISSUE_10, age_s=7200)
    stub.green.add(10)
    orch = orchestrator_app(stub, job_at_claim={10})
    plane, tg = FakePlane(), FakeTelegram()
    stops = []
    orch_url, stop = serve_asgi(orch)
    stops.append(stop)
    plane_url, stop = serve_http(plane.route)
    stops.append(stop)
    tg_url, stop = serve_http(tg.route)
    stops.append(stop)

    def secret(name: str, value: str) -> Path:
        p = tmp_path / name
        p.write_text(value)
        p.chmod(0o600)
        return p

    config = tmp_path / "reconcile.toml"
    config.write_text(
        f"""[state]
path = "{tmp_path / 'state.sqlite'}"

[orchestrator]
url = "{orch_url}"
token_file = "{secret('orchestrator.token', TOKEN)}"
webhook_secret_file = "{secret('webhook.secret', WEBHOOK_SECRET)}"

[plane]
url = "{plane_url}"
workspace = "{WORKSPACE}"
api_key_file = "{secret('plane.key', PLANE_KEY)}"

[telegram]
bot_token_file = "{secret('telegram.token', BOT)}"
chat_id = "-1001234567890"
api_url = "{tg_url}"

[[projects]]
repo = "acme/shop"
plane_project_id = "{PROJECT}"
"""
    )
    config.chmod(0o600)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def run(*args: str) -> tuple[int, Any]:
        p = subprocess.run(
            [str(BIN), "--config", str(config), "--output", "json", *args],
            env=env, capture_output=True, timeout=120,
        )
        stderr = p.stderr.decode()
        for s in (TOKEN, WEBHOOK_SECRET, PLANE_KEY, BOT):
            assert s not in stderr and s.encode() not in p.stdout, "a secret was printed"
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"reconcile {args}: exit {p.returncode}\n{stderr}") from None

    yield {"stub": stub, "orch": orch, "plane": plane, "tg": tg, "run": run}
    for stop in stops:
        stop()


def units(report: dict[str, Any], pass_: str) -> dict[Any, dict[str, Any]]:
    return {u.get("task_id") or u.get("issue_id"): u for u in report[pass_]["units"]}


def test_check_dry_run_and_live_ticks_against_the_adapter(world: dict[str, Any]) -> None:
    stub, orch, tg, run = world["stub"], world["orch"], world["tg"], world["run"]

    code, report = run("check")
    assert code == 0, report
    assert all(p["ok"] for p in report["probes"]), report["probes"]
    assert "orchestrator API" in [p["name"] for p in report["probes"]]
    assert report["unresolvable"] == []

    code, report = run("--dry-run", "all")
    assert code == 0, report
    gate = units(report, "gate")
    assert gate[7]["outcome"] == "would_advance", gate
    assert gate[8]["outcome"] == "skipped" and gate[8]["reason"] == "in_flight"
    assert gate[10]["outcome"] == "would_advance", gate
    assert [u["outcome"] for u in report["plane"]["units"]] == ["would_apply_verdict"]
    assert stub.advances == [] and stub.tasks[7]["stage"] == "testing"
    assert stub.tasks[9]["stage"] == "review" and tg.sent == []

    code, report = run("gate")
    assert code == 0, report
    gate = units(report, "gate")
    assert gate[7]["outcome"] == "advanced" and gate[7]["stage_after"] == "review"
    assert stub.advances == [(7, "testing", "acme/shop", "ET-7", "feature/et-7")]
    assert stub.tasks[7]["stage"] == "review" and stub.tasks[8]["stage"] == "testing"
    # The claim refused task 10 (409 "active job"): not advanced, not a failure.
    assert gate[10]["outcome"] == "not_advanced" and gate[10]["detail"] == "active job"
    assert stub.tasks[10]["stage"] == "testing"
    assert len(tg.sent) == 1 and "ET-7" in tg.sent[0], tg.sent
    conflicts = [x for x in orch.log if x.status == 409]
    assert [x.path for x in conflicts] == ["/reconcile/v1/tasks/10/advance"]

    # A full live tick: nothing more to advance; the lost verdict is replayed
    # through the orchestrator's webhook route and announced once.
    code, report = run("all")
    assert code == 0, report
    assert all(u["outcome"] != "advanced" for u in report["gate"]["units"])
    assert [u["outcome"] for u in report["plane"]["units"]] == ["verdict_applied"]
    assert len(stub.advances) == 1 and stub.tasks[9]["stage"] == "done"
    assert len(tg.sent) == 2 and "ET-9" in tg.sent[1], tg.sent
    assert sum("ET-7" in t for t in tg.sent) == 1

    # Every exchange with the orchestrator is one the document describes.
    spec = Spec()
    for x in orch.log:
        spec.check(x.method, x.path, x.query, x.headers, x.body, x.status, x.response,
                   webhook_secret=WEBHOOK_SECRET)
    assert spec.seen == {"listTasks", "taskByPlaneIssue", "evaluateGate", "advanceTask",
                         "replayPlaneWebhook"}, spec.seen
    replay = next(x for x in orch.log if x.path == "/webhooks/plane")
    assert replay.headers["x-reconcile-replay"] == "1"
    assert json.loads(replay.body)["data"]["id"] == ISSUE_9
