"""Console runs on `embedded` get the embedded model the server was started with."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient

from apollo.rollout.home import Home
from apollo.rollout.runner import Runner
from apollo.server.app import create_app
from tests.agent.harness import make_task
from tests.server.conftest import Tokens


def test_a_console_run_on_embedded_records_the_servers_model(
    home: Home, tokens: Tokens, tmp_path: Path
) -> None:
    task = make_task(tmp_path)
    runner = Runner(home, default_embedded="embedded:smollm2-135m")
    try:
        with TestClient(create_app(home, runner=runner, tasks=[task])) as api:
            h = tokens.bearer("annotator")
            r = api.post("/api/runs", json={"task": task.id, "max_steps": 1}, headers=h)
            assert r.status_code == 201, r.text
            record = runner.store.get_run(r.json()["id"])
    finally:
        asyncio.run(runner.aclose())
    assert record is not None
    assert record.config["options"]["model"] == "embedded:smollm2-135m"
    assert record.config["endpoint"] == "embedded"
