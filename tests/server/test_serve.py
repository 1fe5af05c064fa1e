"""`apollo serve`: the console and the runner in one process; runs started through the API
and queued runs are driven to their end against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from apollo.env.task import Task
from apollo.llm.scripted import ScriptedServer
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner, RunOptions
from apollo.server.app import create_app
from apollo.server.scheduler import RunLimits, queue_run
from tests.agent.harness import act, make_task
from tests.server.browser_support import thinking
from tests.server.conftest import LiveServer, Tokens, free_port, wait_serving

SCRIPT = [
    act("think", thought="plan"),
    act("write_file", path="answer.txt", content="7"),
    act("finish", summary="wrote the answer"),
]


def wait_status(url: str, headers: dict[str, str], want: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = httpx.get(url, headers=headers, timeout=10).json()
        if got["status"] in want:
            return dict(got)
        time.sleep(0.1)
    raise AssertionError(f"run still {got['status']} after {timeout}s")


def test_a_run_started_through_the_api_is_driven_to_its_end(
    home: Home, tokens: Tokens, store: SQLiteStore, tmp_path: Path
) -> None:
    task = make_task(tmp_path)
    runner = Runner(home)
    with (
        ScriptedServer(SCRIPT) as model,
        LiveServer(create_app(home, runner=runner, tasks=[task])) as live,
    ):
        add_endpoint(live, tokens, "scripted", model.base_url)
        r = httpx.post(
            f"{live.url}/api/runs",
            json={"task": task.id, "model": "scripted", "max_steps": 10},
            headers=tokens.bearer("annotator"),
        )
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "running"
        run_id = r.json()["id"]
        done = wait_status(f"{live.url}/api/runs/{run_id}", tokens.bearer("viewer"), {"finished"})
    assert done["step"] == 3 and done["last_score"] == 7
    assert done["config"]["started_by"] == "ann" and done["config"]["queued"] is True
    assert done["config"]["endpoint"] == "scripted"
    assert done["config"]["options"]["model"] == model.base_url
    assert done["config"]["options"]["model_name"] == "scripted-model"
    assert len(model.requests) == 3
    kinds = [e.kind for e in store.events(run_id)]
    assert kinds[0] == Kind.RUN_STARTED and kinds[-1] == Kind.RUN_FINISHED


def add_endpoint(live: LiveServer, tokens: Tokens, name: str, url: str) -> None:
    """Configure a model endpoint as an admin does."""
    r = httpx.put(
        f"{live.url}/api/endpoints/{name}",
        json={"url": url, "model_name": "scripted-model"},
        headers=tokens.bearer("admin"),
    )
    assert r.status_code == 200, r.text


def test_starting_a_run_checks_task_and_model(
    home: Home, tokens: Tokens, tmp_path: Path, store: SQLiteStore
) -> None:
    task = make_task(tmp_path)
    with LiveServer(create_app(home, runner=Runner(home), tasks=[task])) as live:
        add_endpoint(live, tokens, "local", "http://127.0.0.1:9/v1")
        h = tokens.bearer("annotator")
        for body in (
            {"task": "../../etc"},
            {"task": str(task.path)},
            {"task": task.id, "model": "file:///etc/passwd"},
            {"task": task.id, "annotator": "robot"},
            {"task": task.id, "max_steps": 0},
            {"task": task.id, "model": "local", "model_name": "other"},
        ):
            r = httpx.post(f"{live.url}/api/runs", json=body, headers=h)
            assert r.status_code == 422, (body, r.text)
        # The server never calls a URL a user typed, only endpoints an admin configured.
        for model in ("http://169.254.169.254/v1", "https://example.com/v1", "nope"):
            r = httpx.post(
                f"{live.url}/api/runs", json={"task": task.id, "model": model}, headers=h
            )
            assert r.status_code == 422, r.text
            assert "use one of embedded, local" in r.json()["detail"], r.text
            assert "apollo endpoints add" in r.json()["detail"]
    assert store.list_runs() == []


def test_runs_beyond_the_limits_wait_and_start_as_slots_free(
    home: Home, tokens: Tokens, tmp_path: Path, store: SQLiteStore
) -> None:
    """At most 2 runs at once, 1 per annotator, 1 waiting per annotator: a second run of
    `ann` waits, a third is refused with 429; `ada` still gets the second slot; when a run
    ends, the waiting one starts."""
    task = make_task(tmp_path, steps=10_000, working_time=36_000)
    limits = RunLimits(max_running=2, max_running_per_annotator=1, max_queued_per_annotator=1)
    app = create_app(home, runner=Runner(home), tasks=[task], limits=limits)
    with ScriptedServer(default=thinking(0.05)) as model, LiveServer(app) as live:
        add_endpoint(live, tokens, "scripted", model.base_url)

        def start(role: str) -> httpx.Response:
            body = {"task": task.id, "model": "scripted", "max_steps": 5000}
            return httpx.post(f"{live.url}/api/runs", json=body, headers=tokens.bearer(role))

        first, second, third = start("annotator"), start("annotator"), start("annotator")
        assert (first.status_code, first.json()["state"]) == (201, "running")
        assert (second.status_code, second.json()["state"]) == (201, "queued")
        assert third.status_code == 429, third.text
        detail = third.json()["detail"]
        assert "at most 1 may wait per annotator" in detail
        assert "--max-queued-per-annotator" in detail
        other = start("admin")
        assert (other.status_code, other.json()["state"]) == (201, "running")
        # The server is full now: one more of ada's runs waits too.
        assert start("admin").json()["state"] == "queued"
        viewer = tokens.bearer("viewer")
        url = f"{live.url}/api/runs"
        wait_status(f"{url}/{first.json()['id']}", viewer, {"running"})
        assert httpx.get(f"{url}/{second.json()['id']}", headers=viewer).json()["status"] == (
            "created"
        )
        stop = httpx.post(
            f"{url}/{first.json()['id']}/control",
            json={"action": "stop"},
            headers=tokens.bearer("annotator"),
        )
        assert stop.status_code == 201
        wait_status(f"{url}/{first.json()['id']}", viewer, {"stopped"})
        wait_status(f"{url}/{second.json()['id']}", viewer, {"running"})
        listed = httpx.get(url, headers=viewer).json()["runs"]
        running = {r["id"] for r in listed if r["status"] == "running"}
        # ada's second run still waits: ada has her one slot.
        assert running == {second.json()["id"], other.json()["id"]}
    # The refused run was never created.
    assert len(store.list_runs()) == 4


def test_run_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="--max-running is 0"):
        RunLimits(max_running=0)
    with pytest.raises(ValueError, match="--max-running-per-annotator is -2"):
        RunLimits(max_running_per_annotator=-2)
    with pytest.raises(ValueError, match="--max-queued-per-annotator"):
        RunLimits(max_queued_per_annotator=-1)


def _queue(home: Home, task: Task, model_url: str) -> str:
    store = home.open_store()
    try:
        options = RunOptions(model=model_url, max_steps=10)
        return queue_run(store, home, task, options, started_by="cli")
    finally:
        store.close()


def test_serve_drives_queued_runs_and_shuts_down_cleanly(
    home: Home, tokens: Tokens, tmp_path: Path, store: SQLiteStore
) -> None:
    """The real `serve` in its own process: a queued run is driven to its end, and SIGINT
    ends the process cleanly even with an event stream open."""
    task = make_task(tmp_path)
    port = free_port()
    with ScriptedServer(SCRIPT) as model:
        run_id = _queue(home, task, model.base_url)
        code = (
            "import asyncio, sys\n"
            "from apollo.rollout.home import Home\n"
            "from apollo.server.serve import serve\n"
            "asyncio.run(serve(Home(sys.argv[1]), port=int(sys.argv[2]), log_level='warning'))\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(home.path), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_serving(url, proc)
            done = wait_status(f"{url}/api/runs/{run_id}", tokens.bearer("viewer"), {"finished"})
            assert done["last_score"] == 7
            with httpx.stream(
                "GET", f"{url}/api/runs/{run_id}/stream", headers=tokens.bearer("viewer")
            ) as r:
                lines = r.iter_lines()
                assert next(lines) == "id: 1"
                proc.send_signal(signal.SIGINT)
                rest = list(lines)  # the server ends the stream as it shuts down
            assert any(line.startswith("event: run_finished") for line in rest)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, out
    assert "apollo console on" in out and "Traceback" not in out
    assert json.loads(json.dumps(done))["config"]["started_by"] == "cli"
