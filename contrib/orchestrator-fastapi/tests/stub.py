"""An in-memory orchestrator with the functions the router takes.

Stages run analysis → development → testing → review → done; development
and testing have the quality gate ``ci_green``, the others none. The gate of
a task is green when its id is in ``green``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Optional

from fastapi import APIRouter

from reconcile_orchestrator import Dependency, reconcile_router

STAGES = ["analysis", "development", "testing", "review", "done"]
GATES = {"development": "ci_green", "testing": "ci_green"}
MAX_DEVELOPER_RETRIES = 3


@dataclass
class Advanced:
    """What the orchestrator's advance_if_gate_passed returns."""

    advanced: bool
    detail: str


@dataclass
class Stub:
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    jobs: set[int] = field(default_factory=set)
    retries: dict[int, int] = field(default_factory=dict)
    deps: dict[int, list[int]] = field(default_factory=dict)
    green: set[int] = field(default_factory=set)
    # Every call of advance_if_gate_passed, and of evaluate_gate.
    advances: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    # Seconds advance_if_gate_passed takes (to race two requests).
    advance_delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, task_id: int, stage: str, **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": task_id,
            "stage": stage,
            "repo": "acme/shop",
            "work_item_id": f"ET-{task_id}",
            "branch": f"feature/et-{task_id}",
            "plane_id": None,
            "updated_at": "2026-06-09T02:26:49+03:00",
        }
        row.update(extra)
        self.tasks[task_id] = row
        return row

    # -- the orchestrator's functions, as the original reconciler calls them

    def get_active_tasks_for_reconcile(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.tasks.values() if t["stage"] != "done"]

    def get_task_by_plane_id(self, issue_id: str) -> Optional[dict[str, Any]]:
        with self.lock:
            for t in self.tasks.values():
                if t.get("plane_id") == issue_id:
                    return dict(t)
        return None

    def has_active_job_for_task(self, task_id: int) -> bool:
        return task_id in self.jobs

    def developer_retry_count(self, task_id: int) -> int:
        return self.retries.get(task_id, 0)

    def get_qg_for_stage(self, stage: str) -> Optional[str]:
        return GATES.get(stage)

    def advance_if_gate_passed(
        self, task_id: int, stage: str, repo: str, work_item_id: str, branch: str
    ) -> Optional[Advanced]:
        self.advances.append((task_id, stage, repo, work_item_id, branch))
        time.sleep(self.advance_delay)
        if task_id not in self.green:
            return Advanced(False, "gate red: CI failing")
        with self.lock:
            t = self.tasks[task_id]
            t["stage"] = STAGES[STAGES.index(t["stage"]) + 1]
            t["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            t["age_s"] = 0
        self.green.discard(task_id)
        return Advanced(True, "gate green: CI success")

    def evaluate_gate(self, task: Any, gate: str) -> tuple[bool, str]:
        self.evaluations.append(int(task["id"]))
        green = int(task["id"]) in self.green
        return green, f"{gate} {'passed' if green else 'failing'}"

    def task_dependencies(self, task_id: int) -> list[Dependency]:
        out: list[Dependency] = []
        for d in self.deps.get(task_id, []):
            t = self.tasks.get(d)
            out.append(
                {
                    "id": d,
                    "work_item_id": t["work_item_id"] if t else None,
                    "stage": t["stage"] if t else None,
                }
            )
        return out

    def router(
        self, token: str, claim: Optional[Callable[[int], AbstractContextManager[Any]]] = None
    ) -> APIRouter:
        return reconcile_router(
            token=token,
            get_active_tasks_for_reconcile=self.get_active_tasks_for_reconcile,
            get_task_by_plane_id=self.get_task_by_plane_id,
            has_active_job_for_task=self.has_active_job_for_task,
            advance_if_gate_passed=self.advance_if_gate_passed,
            developer_retry_count=self.developer_retry_count,
            MAX_DEVELOPER_RETRIES=MAX_DEVELOPER_RETRIES,
            get_qg_for_stage=self.get_qg_for_stage,
            evaluate_gate=self.evaluate_gate,
            task_dependencies=self.task_dependencies,
            claim=claim,
        )
