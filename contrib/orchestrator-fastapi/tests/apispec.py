"""Checks one HTTP exchange against docs/orchestrator-api.yaml.

The schemas are JSON Schema 2020-12 (OpenAPI 3.1), validated with
jsonschema. Strict: the objects the orchestrator answers with may carry no
field the document does not name, so a renamed optional field fails too.
"""

from __future__ import annotations

import copy
import hmac
import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[3]
SPEC_PATH = Path(os.environ.get("RECONCILE_API_SPEC", REPO / "docs" / "orchestrator-api.yaml"))
CLOSED = ["TaskList", "Task", "Dependency", "GateResult", "AdvanceResult", "AdvanceConflict"]


class SpecError(AssertionError):
    pass


class Spec:
    def __init__(self, path: Path = SPEC_PATH, webhook_path: str = "/webhooks/plane") -> None:
        self.doc: dict[str, Any] = yaml.safe_load(path.read_text())
        self.components = copy.deepcopy(self.doc["components"])
        for name in CLOSED:
            self.components["schemas"][name]["additionalProperties"] = False
        self.webhook_path = webhook_path
        self.seen: set[str] = set()

    def _validate(self, schema: Mapping[str, Any], value: Any, what: str) -> None:
        root = dict(schema)
        root["components"] = self.components
        try:
            jsonschema.Draft202012Validator(root).validate(value)
        except jsonschema.ValidationError as e:
            raise SpecError(f"{what}: {e.message} at {list(e.absolute_path)}") from None

    def _ref(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in obj:
            node: Any = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def operation(self, method: str, path: str) -> tuple[str, Mapping[str, Any]]:
        """The documented operation serving `method path`, or SpecError."""
        for template, item in self.doc["paths"].items():
            real = self.webhook_path if template == "/webhooks/plane" else template
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", real) + "$"
            if re.match(pattern, path) and method.lower() in item:
                return template, item[method.lower()]
        raise SpecError(f"{method} {path}: not an endpoint of the document")

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        response: bytes,
        webhook_secret: Optional[str] = None,
    ) -> str:
        """Validates the request and the response; returns the operationId."""
        _, op = self.operation(method, path)
        op_id = str(op["operationId"])
        what = f"{method} {path} ({op_id})"
        h = {k.lower(): v for k, v in headers.items()}
        params = [self._ref(p) for p in op.get("parameters", [])]
        for p in params:
            value = {"query": query, "header": h}.get(p["in"], {}).get(p["name"].lower())
            if value is None:
                if p.get("required") and p["in"] != "path":
                    raise SpecError(f"{what}: {p['in']} {p['name']} missing")
                continue
            self._validate(p["schema"], value, f"{what} {p['name']}")
            if p["schema"].get("format") == "uuid":
                uuid.UUID(value)
        for name in query:
            if not any(p["in"] == "query" and p["name"] == name for p in params):
                raise SpecError(f"{what}: undocumented query parameter {name}")
        if op.get("security", self.doc["security"]):
            if not re.match(r"^Bearer \S+$", h.get("authorization", "")):
                raise SpecError(f"{what}: no Bearer token")
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            self._validate(schema, json.loads(body), f"{what} request")
            if "application/json" not in h.get("content-type", ""):
                raise SpecError(f"{what}: request Content-Type {h.get('content-type')}")
        if webhook_secret is not None and op_id == "replayPlaneWebhook":
            want = hmac.new(webhook_secret.encode(), body, "sha256").hexdigest()
            if h.get("x-plane-signature") != want:
                raise SpecError(f"{what}: X-Plane-Signature is not the body's HMAC")
        responses = op["responses"]
        key = next(
            (k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses),
            None,
        )
        if key is None:
            raise SpecError(f"{what}: status {status} is not documented")
        content = self._ref(responses[key]).get("content")
        if content:
            self._validate(
                content["application/json"]["schema"],
                json.loads(response),
                f"{what} response {status}",
            )
        self.seen.add(op_id if "plane_issue_id" not in query else "taskByPlaneIssue")
        return op_id
