"""Unit tests of the router over stub functions; every answer is checked
against docs/orchestrator-api.yaml."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apispec import Spec, SpecError
from reconcile_orchestrator import reconcile_router
from stub import Stub

TOKEN = "s3cret-token"
SPEC = Spec()


class Client:
    def __init__(self, stub: Stub, router: Any = None) -> None:
        app = FastAPI()
        app.include_router(router or stub.router(TOKEN))
        self.http = TestClient(app)

    def call(
        self, method: str, url: str, body: Any = None, token: Optional[str] = TOKEN,
        spec: bool = True,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        raw = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            headers["Content-Type"] = "application/json"
        r = self.http.request(method, url, content=raw or None, headers=headers)
        parts = urlsplit(url)
        if spec:
            SPEC.check(
                method, parts.path, dict(parse_qsl(parts.query)), headers, raw,
                r.status_code, r.content,
            )
        return r.status_code, r.json()


@pytest.fixture
def stub() -> Stub:
    s = Stub()
    s.add(3, "done", plane_id="i-3")
    s.add(7, "testing", plane_id="i-7", age_s=5400)
    s.add(8, "review", plane_id=None, work_item_id=None, branch=None)
    s.deps[7] = [3, 8]
    s.retries[8] = 3
    return s


def test_a_missing_or_wrong_token_is_401_with_www_authenticate(stub: Stub) -> None:
    c = Client(stub)
    for token in (None, "wrong", TOKEN + "x"):
        for method, url in [("GET", "/reconcile/v1/tasks"), ("GET", "/reconcile/v1/tasks/7/gate")]:
            r = c.http.request(
                method, url, headers={} if token is None else {"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401, (token, url)
            assert r.headers["www-authenticate"] == "Bearer"
            SPEC.check(method, url, {}, {"Authorization": "Bearer x"}, b"", 401, r.content)
    r = c.http.post("/reconcile/v1/tasks/7/advance", json={"expected_stage": "testing"})
    assert r.status_code == 401 and stub.advances == []


def test_the_list_maps_every_field_and_leaves_done_out(stub: Stub) -> None:
    status, body = Client(stub).call("GET", "/reconcile/v1/tasks")
    assert status == 200
    by_id = {t["id"]: t for t in body["tasks"]}
    assert sorted(by_id) == [7, 8]
    assert by_id[7] == {
        "id": 7, "stage": "testing", "repo": "acme/shop", "work_item_id": "ET-7",
        "branch": "feature/et-7", "plane_issue_id": "i-7",
        "updated_at": "2026-06-09T02:26:49+03:00", "age_s": 5400.0, "gate": "ci_green",
        "active_job": False, "developer_retry_count": 0, "escalated": False,
        "depends_on": [
            {"id": 3, "work_item_id": "ET-3", "stage": "done"},
            {"id": 8, "work_item_id": None, "stage": "review"},
        ],
    }
    assert by_id[8]["escalated"] is True and by_id[8]["gate"] is None
    assert by_id[8]["plane_issue_id"] is None


def test_age_is_computed_from_a_datetime_when_the_row_has_none(stub: Stub) -> None:
    stub.add(9, "testing", updated_at=datetime.now(timezone.utc) - timedelta(hours=2))
    stub.jobs.add(9)
    _, body = Client(stub).call("GET", "/reconcile/v1/tasks")
    t = next(t for t in body["tasks"] if t["id"] == 9)
    assert 7190 < t["age_s"] < 7300
    assert t["active_job"] is True
    assert datetime.fromisoformat(t["updated_at"]).tzinfo is not None


def test_lookup_by_plane_issue_any_stage_or_empty(stub: Stub) -> None:
    c = Client(stub)
    status, body = c.call("GET", "/reconcile/v1/tasks?plane_issue_id=i-3")
    assert status == 200 and [t["id"] for t in body["tasks"]] == [3]
    assert body["tasks"][0]["stage"] == "done"
    assert c.call("GET", "/reconcile/v1/tasks?plane_issue_id=nope") == (200, {"tasks": []})


def test_gate_is_read_only(stub: Stub) -> None:
    c = Client(stub)
    stub.green.add(7)
    status, body = c.call("GET", "/reconcile/v1/tasks/7/gate")
    assert status == 200
    assert body == {"task_id": 7, "stage": "testing", "gate": "ci_green", "passed": True,
                    "detail": "ci_green passed"}
    assert stub.tasks[7]["stage"] == "testing" and stub.advances == []
    _, body = c.call("GET", "/reconcile/v1/tasks/8/gate")
    assert body["gate"] is None and body["passed"] is False
    assert stub.evaluations == [7]
    assert c.call("GET", "/reconcile/v1/tasks/99/gate")[0] == 404


def test_advance_green_moves_the_stage_once(stub: Stub) -> None:
    c = Client(stub)
    stub.green.add(7)
    status, body = c.call("POST", "/reconcile/v1/tasks/7/advance", {"expected_stage": "testing"})
    assert status == 200
    assert body == {"task_id": 7, "advanced": True, "stage_before": "testing",
                    "stage_after": "review", "detail": "gate green: CI success"}
    assert stub.advances == [(7, "testing", "acme/shop", "ET-7", "feature/et-7")]
    # The same request again: the stage changed, so the claim refuses it.
    status, body = c.call("POST", "/reconcile/v1/tasks/7/advance", {"expected_stage": "testing"})
    assert (status, body) == (409, {"advanced": False, "detail": "stage changed"})
    assert len(stub.advances) == 1


def test_advance_to_done_reports_the_stage_after(stub: Stub) -> None:
    stub.add(5, "review", plane_id="i-5")
    stub.green.add(5)
    # review → done: the task leaves the active list; the lookup finds it.
    from stub import GATES
    GATES["review"] = "human_ok"
    try:
        _, body = Client(stub).call(
            "POST", "/reconcile/v1/tasks/5/advance", {"expected_stage": "review"}
        )
    finally:
        del GATES["review"]
    assert body["advanced"] is True and body["stage_after"] == "done"


def test_advance_red_is_200_not_advanced(stub: Stub) -> None:
    status, body = Client(stub).call(
        "POST", "/reconcile/v1/tasks/7/advance", {"expected_stage": "testing"}
    )
    assert status == 200
    assert body["advanced"] is False and body["stage_after"] == "testing"
    assert body["detail"] == "gate red: CI failing"


def test_advance_with_an_active_job_is_409_and_never_calls_the_orchestrator(stub: Stub) -> None:
    stub.jobs.add(7)
    stub.green.add(7)
    status, body = Client(stub).call(
        "POST", "/reconcile/v1/tasks/7/advance", {"expected_stage": "testing"}
    )
    assert (status, body) == (409, {"advanced": False, "detail": "active job"})
    assert stub.advances == [] and stub.tasks[7]["stage"] == "testing"


def test_advance_refuses_bad_bodies_and_unknown_tasks(stub: Stub) -> None:
    c = Client(stub)
    assert c.call("POST", "/reconcile/v1/tasks/99/advance", {"expected_stage": "x"})[0] == 404
    for bad in ({}, {"expected_stage": 5}, {"stage": "testing"}):
        # Requests outside the document on purpose.
        status, body = c.call("POST", "/reconcile/v1/tasks/7/advance", bad, spec=False)
        assert status == 422 and "detail" in body, bad
    assert stub.advances == []


def test_two_racing_advances_advance_once(stub: Stub) -> None:
    stub.green.add(7)
    stub.advance_delay = 0.2
    c = Client(stub)
    results: list[int] = []

    def go() -> None:
        r = c.http.post(
            "/reconcile/v1/tasks/7/advance", json={"expected_stage": "testing"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        results.append(r.status_code if r.status_code != 200 else int(r.json()["advanced"]))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 409]
    assert len(stub.advances) == 1 and stub.tasks[7]["stage"] == "review"


def test_a_given_claim_wraps_the_check_and_the_advance(stub: Stub) -> None:
    events: list[str] = []

    @contextmanager
    def claim(task_id: int) -> Iterator[None]:
        events.append(f"claim {task_id}")
        yield
        events.append(f"release {task_id}")

    inner = stub.advance_if_gate_passed

    def advance(*a: Any) -> Any:
        events.append("advance")
        return inner(*a)

    router = reconcile_router(
        token=TOKEN,
        get_active_tasks_for_reconcile=stub.get_active_tasks_for_reconcile,
        get_task_by_plane_id=stub.get_task_by_plane_id,
        has_active_job_for_task=stub.has_active_job_for_task,
        advance_if_gate_passed=advance,
        developer_retry_count=stub.developer_retry_count,
        MAX_DEVELOPER_RETRIES=3,
        get_qg_for_stage=stub.get_qg_for_stage,
        evaluate_gate=stub.evaluate_gate,
        get_task=lambda i: stub.tasks.get(i),
        claim=claim,
    )
    status, body = Client(stub, router).call(
        "POST", "/reconcile/v1/tasks/7/advance", {"expected_stage": "testing"}
    )
    assert status == 200 and body["advanced"] is False
    assert events == ["claim 7", "advance", "release 7"]


def test_the_spec_check_catches_a_renamed_field() -> None:
    # The guard the tests above rely on: a renamed field is not silently accepted.
    task = {"id": 1, "stage": "testing", "repo": None, "work_item_id": None, "branch": None,
            "plane_issue_id": None, "updated_at": None, "gate": None, "active_job": False,
            "developer_retry_count": 0, "depends_on": [], "age_seconds": 5}
    with pytest.raises(SpecError, match="age_seconds"):
        SPEC.check("GET", "/reconcile/v1/tasks", {}, {"Authorization": "Bearer t"}, b"",
                   200, json.dumps({"tasks": [task]}).encode())
    with pytest.raises(SpecError, match="not an endpoint"):
        SPEC.check("GET", "/reconcile/v1/task", {}, {}, b"", 200, b"{}")
