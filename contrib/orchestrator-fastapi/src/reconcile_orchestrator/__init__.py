"""The reconcile API (`/reconcile/v1`) for a FastAPI orchestrator.

One factory, :func:`reconcile_router`, returns an ``APIRouter`` that serves
the four endpoints of docs/orchestrator-api.yaml in the reconcile
repository. It imports nothing from the orchestrator: the orchestrator's own
functions are passed in, with the names and call shapes the original Python
reconciler used, so the router fits any orchestrator that has them.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any, Optional, TypedDict

from fastapi import APIRouter, Body, Depends, Header, HTTPException
from fastapi.responses import JSONResponse

__all__ = ["reconcile_router", "Dependency", "TaskJSON", "per_task_lock"]

TaskRow = Mapping[str, Any]
"""A task as the orchestrator's own functions return it (a dict or a row)."""


class Dependency(TypedDict):
    id: int
    work_item_id: Optional[str]
    stage: Optional[str]


class _TaskRequired(TypedDict):
    id: int
    stage: str
    repo: Optional[str]
    work_item_id: Optional[str]
    branch: Optional[str]
    plane_issue_id: Optional[str]
    updated_at: Optional[str]
    gate: Optional[str]
    active_job: bool
    developer_retry_count: int
    depends_on: list[Dependency]


class TaskJSON(_TaskRequired, total=False):
    age_s: Optional[float]
    escalated: Optional[bool]


def per_task_lock() -> Callable[[int], AbstractContextManager[None]]:
    """A claim for a single-process orchestrator: one lock per task id.

    An orchestrator with several workers passes its own claim instead (for
    example a transaction holding the task's row lock).
    """
    guard = threading.Lock()
    locks: dict[int, threading.Lock] = {}

    @contextmanager
    def claim(task_id: int) -> Iterator[None]:
        with guard:
            lock = locks.setdefault(task_id, threading.Lock())
        with lock:
            yield

    return claim


def _iso(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _age_s(row: TaskRow) -> Optional[float]:
    """Seconds since updated_at by this host's clock (the client prefers it)."""
    if row.get("age_s") is not None:
        return float(row["age_s"])
    value = row.get("updated_at")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - value).total_seconds()


def reconcile_router(
    *,
    token: str,
    get_active_tasks_for_reconcile: Callable[[], Iterable[TaskRow]],
    get_task_by_plane_id: Callable[[str], Optional[TaskRow]],
    has_active_job_for_task: Callable[[int], bool],
    advance_if_gate_passed: Callable[[int, str, str, str, str], Any],
    developer_retry_count: Callable[[int], int],
    MAX_DEVELOPER_RETRIES: int,
    get_qg_for_stage: Callable[[str], Optional[str]],
    evaluate_gate: Callable[[TaskRow, str], tuple[bool, str]],
    task_dependencies: Optional[Callable[[int], Iterable[Dependency]]] = None,
    get_task: Optional[Callable[[int], Optional[TaskRow]]] = None,
    claim: Optional[Callable[[int], AbstractContextManager[Any]]] = None,
) -> APIRouter:
    """The `/reconcile/v1` router.

    - ``token``: the Bearer token the tool sends (compared in constant time).
    - ``get_active_tasks_for_reconcile()``: every task whose stage is not done.
    - ``get_task_by_plane_id(issue_id)``: the task of a Plane issue, any stage.
    - ``has_active_job_for_task``, ``developer_retry_count``,
      ``MAX_DEVELOPER_RETRIES``, ``get_qg_for_stage``: as the orchestrator has them.
    - ``advance_if_gate_passed(id, stage, repo, work_item_id, branch)``: the
      orchestrator's advance; its result has ``advanced`` (and optionally
      ``detail``, ``stage_after``), or is None for "not advanced".
    - ``evaluate_gate(task, gate)``: read-only, returns ``(passed, detail)``.
    - ``task_dependencies(id)``: the task's declared dependencies, each
      ``{"id", "work_item_id", "stage"}`` with the dependency's current stage.
    - ``get_task(id)``: one task by id; default: a scan of the active tasks.
    - ``claim(id)``: a context manager holding the orchestrator's atomic claim
      on the task; default: :func:`per_task_lock`.
    """
    expected_auth = f"Bearer {token}".encode()
    hold = claim if claim is not None else per_task_lock()

    def authorize(authorization: Optional[str] = Header(default=None)) -> None:
        given = (authorization or "").encode()
        if not hmac.compare_digest(given, expected_auth):
            raise HTTPException(
                status_code=401,
                detail="Not authenticated",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def find(task_id: int) -> Optional[TaskRow]:
        if get_task is not None:
            return get_task(task_id)
        return next(
            (t for t in get_active_tasks_for_reconcile() if int(t["id"]) == task_id),
            None,
        )

    def task_json(row: TaskRow) -> TaskJSON:
        task_id = int(row["id"])
        stage = str(row["stage"])
        retries = int(developer_retry_count(task_id))
        deps = list(task_dependencies(task_id)) if task_dependencies else []
        return {
            "id": task_id,
            "stage": stage,
            "repo": row.get("repo"),
            "work_item_id": row.get("work_item_id") or None,
            "branch": row.get("branch") or None,
            "plane_issue_id": row.get("plane_issue_id") or row.get("plane_id") or None,
            "updated_at": _iso(row.get("updated_at")),
            "age_s": _age_s(row),
            "gate": get_qg_for_stage(stage),
            "active_job": bool(has_active_job_for_task(task_id)),
            "developer_retry_count": retries,
            "escalated": retries >= MAX_DEVELOPER_RETRIES,
            "depends_on": [
                {
                    "id": int(d["id"]),
                    "work_item_id": d.get("work_item_id"),
                    "stage": d.get("stage"),
                }
                for d in deps
            ],
        }

    router = APIRouter(prefix="/reconcile/v1", dependencies=[Depends(authorize)])

    @router.get("/tasks", response_model=None)
    def list_tasks(plane_issue_id: Optional[str] = None) -> dict[str, list[TaskJSON]]:
        if plane_issue_id is not None:
            row = get_task_by_plane_id(plane_issue_id)
            return {"tasks": [task_json(row)] if row is not None else []}
        rows = get_active_tasks_for_reconcile()
        return {"tasks": [task_json(r) for r in rows if r["stage"] != "done"]}

    @router.get("/tasks/{task_id}/gate", response_model=None)
    def gate(task_id: int) -> dict[str, Any]:
        row = find(task_id)
        if row is None:
            raise HTTPException(status_code=404, detail="task not found")
        stage = str(row["stage"])
        qg = get_qg_for_stage(stage)
        passed, detail = evaluate_gate(row, qg) if qg else (False, "stage has no gate")
        return {
            "task_id": task_id,
            "stage": stage,
            "gate": qg,
            "passed": bool(passed),
            "detail": detail,
        }

    @router.post("/tasks/{task_id}/advance", response_model=None)
    def advance(
        task_id: int, expected_stage: str = Body(..., embed=True, strict=True)
    ) -> Any:
        with hold(task_id):
            row = find(task_id)
            if row is None:
                raise HTTPException(status_code=404, detail="task not found")
            before = str(row["stage"])
            if before != expected_stage:
                return JSONResponse(
                    {"advanced": False, "detail": "stage changed"}, status_code=409
                )
            if has_active_job_for_task(task_id):
                return JSONResponse(
                    {"advanced": False, "detail": "active job"}, status_code=409
                )
            result = advance_if_gate_passed(
                task_id,
                before,
                str(row.get("repo") or ""),
                str(row.get("work_item_id") or ""),
                str(row.get("branch") or ""),
            )
            advanced = bool(getattr(result, "advanced", False))
            after = getattr(result, "stage_after", None)
            if after is None and advanced:
                again = find(task_id)
                issue = row.get("plane_issue_id") or row.get("plane_id")
                if again is None and issue:
                    again = get_task_by_plane_id(str(issue))
                after = again["stage"] if again is not None else None
        detail = getattr(result, "detail", None) or (
            "gate green: advanced" if advanced else "gate red: not advanced"
        )
        return {
            "task_id": task_id,
            "advanced": advanced,
            "stage_before": before,
            "stage_after": str(after if advanced and after is not None else before),
            "detail": str(detail),
        }

    return router
