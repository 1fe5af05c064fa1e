"""Errors become HTTP answers in one place (apollo/server/app.py ERROR_STATUS): each error
class answers its status with its own message, through real routes, and no route module
looks the server's state up by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import apollo.server
from apollo.env.sandbox import SandboxUnavailable
from apollo.log.events import Kind
from apollo.log.store import (
    LastAdminError,
    LogCorrupt,
    NameTaken,
    RunEnded,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    UnknownAnnotator,
    UnknownRun,
)
from apollo.rollout.home import Home
from apollo.server import api
from apollo.server.app import ERROR_STATUS, create_app, error_status
from apollo.server.endpoints import FILENAME, EndpointError, EndpointsUnreadable, UnknownEndpoint
from apollo.server.scheduler import QueueFull
from apollo.server.state import current_run
from tests.server.conftest import Tokens
from tests.server.fakelog import FakeRun

# The statuses docs/api.md "Errors" promises.
EXPECTED: dict[type[Exception], int] = {
    UnknownRun: 404,
    UnknownAnnotator: 404,
    UnknownEndpoint: 404,
    RunEnded: 409,
    NameTaken: 409,
    LastAdminError: 409,
    QueueFull: 429,
    StoreBusy: 503,
    StoreCorrupt: 503,
    EndpointsUnreadable: 503,
    LogCorrupt: 500,
    StoreError: 500,
    SandboxUnavailable: 422,
    ValueError: 422,
}


def test_the_table_is_the_documented_one() -> None:
    assert ERROR_STATUS == EXPECTED
    # Subclasses not listed answer as their nearest listed base.
    assert error_status(EndpointError("bad url")) == 422
    assert error_status(LastAdminError("x")) == 409  # listed before its base StoreError


@pytest.mark.parametrize(("error", "status"), list(EXPECTED.items()), ids=lambda v: str(v))
def test_each_error_class_answers_its_status_and_message(
    home: Home, tokens: Tokens, error: type[Exception], status: int
) -> None:
    app = create_app(home, tasks=[])

    @app.get("/raise")
    async def raising() -> None:
        raise error("what went wrong, and the way out")

    with TestClient(app) as client:
        r = client.get("/raise")
    assert r.status_code == status
    assert r.json() == {"detail": "what went wrong, and the way out"}
    assert ("Retry-After" in r.headers) == (error is StoreBusy)


def _ended(client: TestClient, tokens: Tokens, run: FakeRun) -> httpx.Response:
    run.finish("finished")
    return client.post(
        f"/api/runs/{run.run_id}/control", json={"action": "pause"}, headers=tokens.bearer("admin")
    )


def _corrupt_log(client: TestClient, tokens: Tokens, run: FakeRun) -> httpx.Response:
    run.store.append_one(run.run_id, Kind.OBSERVATION, {"message": "0" * 64})
    return client.get(f"/api/runs/{run.run_id}/events", headers=tokens.bearer("viewer"))


def _unreadable_endpoints(client: TestClient, tokens: Tokens, run: FakeRun) -> httpx.Response:
    (run.store.path.parent / FILENAME).write_text("{not json")  # the store lies in the home
    return client.get("/api/endpoints", headers=tokens.bearer("annotator"))


Call = Callable[[TestClient, Tokens, FakeRun], httpx.Response]
REAL_ROUTES: list[tuple[str, Call, int, str]] = [
    (
        "unknown run",
        lambda c, t, r: c.get("/api/runs/r-nope/events", headers=t.bearer("viewer")),
        404,
        "no run 'r-nope'",
    ),
    (
        "unknown annotator",
        lambda c, t, r: c.delete("/api/annotators/nobody", headers=t.bearer("admin")),
        404,
        "no annotator named 'nobody'",
    ),
    (
        "unknown endpoint",
        lambda c, t, r: c.delete("/api/endpoints/nope", headers=t.bearer("admin")),
        404,
        "no endpoint named 'nope'",
    ),
    ("run ended", _ended, 409, "has ended (finished)"),
    (
        "name taken",
        lambda c, t, r: c.post(
            "/api/annotators", json={"name": "ann", "role": "viewer"}, headers=t.bearer("admin")
        ),
        409,
        "already exists",
    ),
    (
        "last admin",
        lambda c, t, r: c.delete("/api/annotators/ada", headers=t.bearer("admin")),
        409,
        "last admin",
    ),
    ("log corrupt", _corrupt_log, 500, "unknown blob"),
    ("endpoints unreadable", _unreadable_endpoints, 503, "is unreadable"),
    (
        "bad value",
        lambda c, t, r: c.post(
            f"/api/runs/{r.run_id}/labels",
            json={"step": 9, "verdict": "keep", "reason": ""},
            headers=t.bearer("annotator"),
        ),
        422,
        "no action at step 9",
    ),
    (
        "no runner",
        lambda c, t, r: c.post("/api/runs", json={"task": "x"}, headers=t.bearer("annotator")),
        503,
        "no runner",
    ),
]


@pytest.mark.parametrize(
    ("call", "status", "says"), [r[1:] for r in REAL_ROUTES], ids=[r[0] for r in REAL_ROUTES]
)
def test_real_routes_answer_errors_by_the_table(
    client: TestClient, tokens: Tokens, run: FakeRun, call: Call, status: int, says: str
) -> None:
    r = call(client, tokens, run)
    assert r.status_code == status, r.text
    assert says in r.json()["detail"]


def test_every_run_route_gets_its_run_from_the_dependency() -> None:
    run_routes = [r for r in api.router.routes if isinstance(r, APIRoute) and "{run_id}" in r.path]
    assert len(run_routes) == 7
    for route in run_routes:
        assert any(d.call is current_run for d in route.dependant.dependencies), route.path


def test_no_route_module_looks_up_the_state_by_hand() -> None:
    """Only apollo/server/state.py reads `request.app.state`; the old helper is gone."""
    package = Path(apollo.server.__file__).parent
    for source in sorted(package.glob("*.py")):
        text = source.read_text()
        assert not re.search(r"\b_state\(", text), source.name
        if source.name != "state.py":
            assert "request.app.state" not in text, source.name
