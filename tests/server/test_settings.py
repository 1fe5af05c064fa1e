"""Impossible settings through the API: the same checks as the CLI (one place each), as 422."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner
from apollo.server.app import create_app
from tests.agent.harness import make_task
from tests.server.conftest import Tokens
from tests.server.fakelog import FakeRun


def test_a_drift_step_beyond_the_run_is_422(
    client: TestClient, tokens: Tokens, run: FakeRun, store: SQLiteStore
) -> None:
    url = f"/api/runs/{run.run_id}/guidance"
    h = tokens.bearer("annotator")
    for drift in (3, 2**70, 2**63, -1):  # the run has taken steps 1 and 2
        r = client.post(url, json={"text": "x", "drift_from_step": drift}, headers=h)
        assert r.status_code == 422, (drift, r.text)
        if 0 < drift < 2**63:  # the model refuses values past int64 before the writer sees them
            assert f"drift_from_step {drift} is not a step run" in r.json()["detail"]
        elif drift > 0:
            assert "less than or equal to 9223372036854775807" in r.text
    assert store.events(run.run_id, kinds=[Kind.GUIDANCE]) == []
    r = client.post(url, json={"text": "x", "drift_from_step": 2}, headers=h)
    assert r.status_code == 201, r.text


def test_min_steps_above_what_the_run_may_take_is_422(
    home: Home, tokens: Tokens, tmp_path: Path, store: SQLiteStore
) -> None:
    task = make_task(tmp_path)  # a budget of 50 steps
    with TestClient(create_app(home, runner=Runner(home), tasks=[task])) as api:
        h = tokens.bearer("annotator")
        for body, message in (
            ({"min_steps": 51}, "min_steps (51) is above the step budget of task fake-task"),
            ({"max_steps": 5, "min_steps": 6}, "min_steps (6) is above max_steps (5)"),
        ):
            r = api.post("/api/runs", json={"task": task.id, **body}, headers=h)
            assert r.status_code == 422, (body, r.text)
            assert message in r.json()["detail"]
    assert store.list_runs() == []
