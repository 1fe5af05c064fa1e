"""The real console for browser tests: the FastAPI app under uvicorn on a loopback port (in a
background thread, with its own event loop that also drives the runs), a SQLite home, and one
scripted OpenAI-compatible server per run, so every run talks real HTTP to its model.

Also the Playwright side: launching Debian's chromium (never a downloaded browser), logging
in through the login form, and recording any dialog a page opens (a fired `alert` would mean
injected script ran)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from apollo.env.task import Task, load_task
from apollo.llm.scripted import Entry, Request, ScriptedServer, call, reply
from apollo.log.events import Event
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner
from apollo.server.app import create_app
from apollo.server.endpoints import Endpoint, Endpoints
from apollo.server.scheduler import RunLimits
from apollo.server.serve import server as make_server
from tests.agent.harness import make_task

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SETUP_HINT = "run scripts/setup.sh --dev (it installs chromium and Playwright)"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_STEP = re.compile(r"\[step (\d+)/")


def require_browser_tools() -> None:
    """Fail (never skip) with the fix when the browser tooling is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {SETUP_HINT}", pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail(f"the playwright package is missing: {SETUP_HINT}", pytrace=False)


def thinking(delay: float, prefix: str = "Step") -> Callable[[Request], dict[str, Any]]:
    """A model that thinks once per step, forever, taking `delay` seconds per answer. The
    thought names the step (from the budget footer the agent sees last), so no two
    consecutive actions repeat and the console shows which step it is."""

    def policy(request: Request) -> dict[str, Any]:
        found = _STEP.findall(str(request.body["messages"][-2:]))
        step = int(found[-1]) + 1 if found else 1
        return reply(
            f"{prefix} {step}: checking the interval bounds before the next change.",
            tool_calls=[call("think", {"thought": f"plan for step {step}"})],
            delay=delay,
        )

    return policy


@dataclass
class Console:
    """A running console: its URL, the people who may log in, and the runs it drives."""

    home: Home
    task: Task
    base_url: str
    tokens: dict[str, str]
    models: dict[str, ScriptedServer] = field(default_factory=dict)

    def client(self, name: str = "alice") -> httpx.Client:
        """An API client authenticated with a bearer token (no CSRF needed)."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.tokens[name]}"},
            timeout=10,
        )

    def endpoint(self, model: ScriptedServer) -> str:
        """Configure `model` as an endpoint runs may name (as `apollo endpoints add` does)."""
        name = f"scripted-{model.port}"
        Endpoints(self.home.path).put(Endpoint(name, model.base_url, "scripted"))
        return name

    def start_run(
        self,
        script: Iterable[Entry] = (),
        *,
        default: Entry | None = None,
        max_steps: int = 500,
        annotator: str = "none",
    ) -> str:
        """Start a run through the API, against its own scripted model server."""
        model = ScriptedServer(script, default=default or thinking(0.3)).start()
        with self.client() as api:
            response = api.post(
                "/api/runs",
                json={
                    "task": self.task.id,
                    "model": self.endpoint(model),
                    "max_steps": max_steps,
                    "annotator": annotator,
                },
            )
        assert response.status_code == 201, response.text
        run_id = str(response.json()["id"])
        self.models[run_id] = model
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        with self.client() as api:
            response = api.get(f"/api/runs/{run_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def control(self, run_id: str, action: str) -> None:
        with self.client() as api:
            response = api.post(f"/api/runs/{run_id}/control", json={"action": action})
        assert response.status_code == 201, response.text

    def wait_run(
        self, run_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """Polls the run's detail until `check` holds."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.run(run_id)
            if check(detail):
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} never got there; last: {detail}")
            time.sleep(0.1)

    def events(self, run_id: str, *kinds: str) -> list[Event]:
        """The run's log, read from the store as it is on disk."""
        with self.home.open_store() as store:
            return store.events(run_id, kinds=list(kinds) or None)

    def stop_runs(self) -> None:
        """Stops every run still going, so one test's runs do not load the next."""
        for run_id in self.models:
            if self.run(run_id)["status"] in ("running", "paused", "created"):
                self.control(run_id, "stop")


def serve_console(tmp: Path, task_title: str) -> Iterable[Console]:
    """Yields a console served from a background thread; shuts it all down after."""
    home = Home(tmp / "home")
    task = make_task(tmp, steps=10_000, working_time=36_000)
    spec = task.path / "task.yaml"
    title = f"title: {json.dumps(task_title)}"  # JSON strings are YAML strings
    spec.write_text(re.sub(r"(?m)^title: .*$", lambda _: title, spec.read_text()))
    task = load_task(task.path)
    with home.open_store() as store:
        tokens = {
            name: store.add_annotator(name, role)[1]
            for name, role in (("alice", "annotator"), ("vera", "viewer"))
        }
    runner = Runner(home)
    # Tests start runs faster than stopped ones end: room for all of them at once.
    limits = RunLimits(max_running=64, max_running_per_annotator=64)
    app = create_app(home, runner=runner, tasks=[task], poll_interval_s=0.02, limits=limits)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server(app, "127.0.0.1", port, log_level="warning")

    async def main() -> None:
        try:
            await server.serve()
        finally:
            await runner.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start (see the log above)")
        time.sleep(0.02)
    console = Console(home, task, f"http://127.0.0.1:{port}", tokens)
    try:
        yield console
    finally:
        server.should_exit = True
        thread.join(30)
        for model in console.models.values():
            model.stop()
