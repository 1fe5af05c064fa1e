"""Drive the real agent against the scripted OpenAI-compatible server over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.task import Task, load_task
from apollo.env.workspace import Workspace
from apollo.llm.base import CallLimits
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Entry, ScriptedServer, call, reply
from apollo.log.events import Event, Kind
from apollo.log.sqlite import SQLiteStore
from tests.env.conftest import make_task_dir

# Scripted failures end a call after three attempts, not after the default retry window.
FAST_FAIL = CallLimits(max_attempts=3)


def act(tool: str, **args: Any) -> dict[str, Any]:
    """A scripted reply that calls one tool."""
    return reply(f"calling {tool}", tool_calls=[call(tool, args)])


@dataclass
class Outcome:
    status: str
    store: SQLiteStore
    run_id: str
    server: ScriptedServer
    task: Task
    workspace: Workspace

    def events(self, *kinds: str) -> list[Event]:
        return self.store.events(self.run_id, kinds=list(kinds) or None)

    def act_bodies(self) -> list[dict[str, Any]]:
        """Request bodies of act calls (those offering tools)."""
        return [b for b in self.server.bodies() if b.get("tools")]


def make_task(tmp_path: Path, **budget: Any) -> Task:
    folder = make_task_dir(tmp_path)
    spec = (folder / "task.yaml").read_text()
    budget = {"working_time": 600, "steps": 50, "submissions": 2, **budget}
    (folder / "task.yaml").write_text(spec + "budget: " + json.dumps(budget) + "\n")
    return load_task(folder)


def run_agent(
    tmp_path: Path,
    script: Iterable[Entry],
    *,
    default: Entry | None = None,
    config: AgentConfig | None = None,
    during: Callable[[SQLiteStore, str, ScriptedServer], Awaitable[None]] | None = None,
    task: Task | None = None,
    limits: CallLimits = FAST_FAIL,
    fault: str | None = None,
) -> Outcome:
    """Run one agent to its end; `during` runs concurrently (to post guidance, controls...).
    `fault` is the scripted server's (see apollo.llm.scripted)."""
    task = task or make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {"task_path": str(task.path)}).id
    workspace = Workspace.create(task, tmp_path / "runs" / run_id)
    server = ScriptedServer(script, default=default, fault=fault).start()
    try:

        async def main() -> str:
            model = OpenAIChatModel(server.base_url, "scripted", limits=limits, backoff_base=0.01)
            agent = Agent(store, run_id, task, workspace, model, config or AgentConfig())
            try:
                if during is None:
                    return await agent.run()
                helper = asyncio.create_task(during(store, run_id, server))
                status = await agent.run()
                await helper
                return status
            finally:
                await model.aclose()

        status = asyncio.run(main())
    finally:
        server.stop()
    return Outcome(status, store, run_id, server, task, workspace)


async def wait_for_requests(server: ScriptedServer, n: int, timeout: float = 20.0) -> None:
    """Until the server has received `n` chat requests."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(server.requests) < n:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"server saw {len(server.requests)} requests, wanted {n}")
        await asyncio.sleep(0.01)


def observation_texts(outcome: Outcome) -> list[str]:
    out = []
    for ev in outcome.events(Kind.OBSERVATION):
        out.append(json.loads(outcome.store.get_blob(ev.payload["message"]))["content"])
    return out
