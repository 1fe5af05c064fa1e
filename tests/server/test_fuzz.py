"""Every numeric parameter of every API route (query, header, path and body fields, found by
walking the app's routes, so a new one is fuzzed without being listed here) is sent
non-finite, negative, huge and non-ASCII-digit values over real HTTP: each is refused with a
4xx, never a 500, and nothing is written."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
from fastapi.routing import APIRoute
from pydantic import BaseModel

from tests.server.conftest import LiveServer, Tokens
from tests.server.fakelog import FakeRun
from tests.server.test_auth import BODIES, flat_routes

# As text (query strings, headers, paths): what a client can put there.
TEXT_VALUES = ["NaN", "Infinity", "-Infinity", "-1", str(2**63), str(2**70), "1e309", "²", "١٢"]
# As JSON: Python's json writes NaN and Infinity, which the server's parser reads.
JSON_VALUES: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    -1,
    2**63,
    2**70,
    "²",
    "١٢",
    "NaN",
]
# Parameters the enumeration must find (a guard that it still sees the app's routes).
KNOWN = {"after", "limit", "last-event-id", "seconds", "step", "drift_from_step", "max_steps"}


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    where: str  # query, header, path or body
    name: str


def _numeric(annotation: Any) -> bool:
    """Whether a parameter's type is (optionally, or inside Annotated) an int or a float."""
    if annotation in (int, float):
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_numeric(a) for a in get_args(annotation) if a is not type(None))
    return False


def targets(app: Any) -> list[Target]:
    found: list[Target] = []
    for route in flat_routes(app.routes):
        if not (isinstance(route, APIRoute) and route.path.startswith("/api")):
            continue
        dep = route.dependant
        for method in sorted(route.methods):
            for where, params in (
                ("query", dep.query_params),
                ("header", dep.header_params),
                ("path", dep.path_params),
            ):
                for p in params:
                    if _numeric(p.field_info.annotation):
                        found.append(Target(method, route.path, where, p.alias))
            for p in dep.body_params:
                model = p.field_info.annotation
                assert isinstance(model, type) and issubclass(model, BaseModel), route.path
                for name, field in model.model_fields.items():
                    if _numeric(field.annotation):
                        found.append(Target(method, route.path, "body", name))
    return found


def _send(client: httpx.Client, target: Target, run: FakeRun, value: Any) -> int:
    path = target.path.replace("{run_id}", run.run_id).replace("{name}", "vic")
    params: dict[str, str] = {}
    headers: dict[str, Any] = {}
    body = BODIES.get(target.path)
    if target.where == "query":
        params[target.name] = value
    elif target.where == "header":
        # Headers travel as latin-1 bytes: "²" is b"\xb2"; other scripts go as UTF-8 bytes.
        try:
            headers[target.name] = value.encode("latin-1")
        except UnicodeEncodeError:
            headers[target.name] = value.encode()
    elif target.where == "path":
        path = path.replace("{" + target.name + "}", value)
    else:
        body = {**(body or {}), target.name: value}
    content = None if body is None else json.dumps(body).encode()
    if content is not None:
        headers["Content-Type"] = "application/json"
    with client.stream(
        target.method, path, params=params, headers=headers, content=content
    ) as response:
        return response.status_code


def test_every_numeric_parameter_refuses_hostile_values(
    live: LiveServer, tokens: Tokens, run: FakeRun
) -> None:
    found = targets(live.server.config.app)
    assert {t.name for t in found} >= KNOWN, found
    assert {t.path for t in found} >= {
        "/api/runs",
        "/api/runs/{run_id}/events",
        "/api/runs/{run_id}/stream",
        "/api/runs/{run_id}/presence",
        "/api/runs/{run_id}/labels",
        "/api/runs/{run_id}/guidance",
    }
    before = run.store.last_seq(run.run_id)
    failures = []
    with httpx.Client(base_url=live.url, headers=tokens.bearer("admin"), timeout=10) as client:
        for target in found:
            values = JSON_VALUES if target.where == "body" else TEXT_VALUES
            for value in values:
                status = _send(client, target, run, value)
                if not 400 <= status < 500:
                    failures.append((target, value, status))
    assert failures == []
    assert run.store.last_seq(run.run_id) == before
