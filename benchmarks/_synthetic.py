"""A synthetic long run made by the real agent loop, for the resume and log-size benchmarks.

A deterministic in-process model drives the real Agent (real store, real workspace, real file
tools) for thousands of steps with summaries and guidance; only the model is synthetic.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.task import load_task
from apollo.env.workspace import Workspace
from apollo.llm.base import ChatModel, Completion, MessageLike, RetryCallback, ToolCall
from apollo.log.sqlite import SQLiteStore
from apollo.log.writes import post_guidance

TASK_YAML = """\
id: synthetic-long
title: Synthetic long run
budget: {working_time: 100h, steps: 100000, submissions: 3}
evaluator: {command: "python3 evaluate.py {workspace}", timeout: 60}
"""
EVALUATOR = 'import json; print(json.dumps({"score": 50, "details": {}}))\n'


def make_task(root: Path) -> Path:
    """A task folder whose workspace holds a few files and whose evaluator always says 50."""
    (root / "workspace" / "notes").mkdir(parents=True)
    (root / "eval").mkdir()
    (root / "task.yaml").write_text(TASK_YAML)
    (root / "description.md").write_text("# Task\nKeep notes on the data.\n")
    (root / "eval" / "evaluate.py").write_text(EVALUATOR)
    return root


class RunnerKilled(Exception):
    """Stands for a runner killed mid-run: the log ends without `run_finished`."""


class SyntheticModel(ChatModel):
    """Writes notes, reads them back, thinks; answers summary requests with a snapshot.

    Every `guidance_every` act calls it posts guidance to the run, as an annotator would."""

    name = "synthetic"

    def __init__(
        self,
        store: SQLiteStore,
        run_id: str,
        steps: int,
        seed: int = 0,
        guidance_every: int = 400,
    ) -> None:
        self.steps = steps
        self.rng = random.Random(seed)
        self.vocab = [
            "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz", k=self.rng.randint(3, 9)))
            for _ in range(3000)
        ]
        self.store = store
        self.run_id = run_id
        self.guidance_every = guidance_every
        self.calls = 0
        self.summaries = 0

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(self.vocab, k=n))

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        *,
        on_retry: RetryCallback | None = None,
    ) -> Completion:
        self.calls += 1
        if tools is not None and self.calls - self.summaries > self.steps:
            raise RunnerKilled
        if tools is None:
            self.summaries += 1
            return Completion(content="<state_snapshot>" + self.words(400) + "</state_snapshot>")
        if self.calls % self.guidance_every == 0:
            post_guidance(self.store, self.run_id, "bench-annotator", self.words(25), "strategy")
        n = self.calls
        kind = n % 4
        if kind == 0:
            name, args = "write_file", {"path": f"notes/n{n % 40}.txt", "content": self.words(220)}
        elif kind == 1:
            name, args = "read_file", {"path": f"notes/n{(n - 1) % 40}.txt"}
        elif kind == 2:
            name, args = "think", {"thought": self.words(50)}
        else:
            name, args = "list_files", {"path": "notes"}
        return Completion(
            content=self.words(30),
            tool_calls=[ToolCall(f"call_{n}", name, json.dumps(args))],
            usage={"prompt_tokens": 0, "completion_tokens": 60},
        )


def build_run(
    steps: int, home: Path, threshold_tokens: int = 24_000
) -> tuple[SQLiteStore, str, Path]:
    """Run the synthetic agent for `steps` steps; returns the store, run id and task folder."""
    import asyncio

    task = load_task(make_task(home / "task"))
    store = SQLiteStore(home / "apollo.db")
    run_id = store.create_run(task.id, {"task_path": str(task.path)}).id
    workspace = Workspace.create(task, home / "runs" / run_id)
    config = AgentConfig(summary_threshold_tokens=threshold_tokens)
    agent = Agent(store, run_id, task, workspace, SyntheticModel(store, run_id, steps), config)
    started = time.perf_counter()
    with contextlib.suppress(RunnerKilled):  # left as a killed runner leaves it: resumable
        asyncio.run(agent.run())
    print(f"synthetic run: {steps} steps in {time.perf_counter() - started:.1f}s", flush=True)
    return store, run_id, task.path


def temp_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="apollo-bench-"))
