"""Time to resume a synthetic 5,000-step run with summaries: from opening the store to the
resumed agent's first model call (replay of the log, context rebuild, workspace and sessions).

Key: resume_s (median of several trials; target <= 2 s).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from collections.abc import Sequence
from typing import Any

from _common import report
from _synthetic import build_run, temp_home

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.task import load_task
from apollo.env.workspace import Workspace
from apollo.llm.base import ChatModel, Completion, MessageLike, RetryCallback, ToolCall
from apollo.log.sqlite import SQLiteStore

STEPS = 5000
TRIALS = 5


class FirstCall(ChatModel):
    """Notes when the resumed agent first calls the model, then finishes the run."""

    name = "first-call"

    def __init__(self) -> None:
        self.at: float | None = None
        self.context_len = 0

    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        *,
        on_retry: RetryCallback | None = None,
    ) -> Completion:
        if self.at is None:
            self.at = time.perf_counter()
            self.context_len = len(messages)
        return Completion(content="done", tool_calls=[ToolCall("c", "finish", '{"summary": "x"}')])


def main() -> None:
    home = temp_home()
    try:
        store, run_id, task_path = build_run(STEPS, home)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        times = []
        for trial in range(TRIALS):
            trial_home = home / f"trial{trial}"
            shutil.copytree(home / "runs", trial_home / "runs")
            shutil.copy(home / "apollo.db", trial_home / "apollo.db")
            model = FirstCall()
            started = time.perf_counter()
            trial_store = SQLiteStore(trial_home / "apollo.db")
            task = load_task(task_path)
            workspace = Workspace.open(task, trial_home / "runs" / run_id)
            agent = Agent(trial_store, run_id, task, workspace, model, AgentConfig())
            asyncio.run(agent.run())
            assert model.at is not None
            times.append(model.at - started)
            print(f"trial {trial}: {times[-1]:.3f}s, context {model.context_len} messages")
            trial_store.close()
        report(
            "resume",
            {
                "steps": STEPS,
                "resume_s": round(statistics.median(times), 4),
                "trials_s": [round(t, 4) for t in times],
                "target_s": 2.0,
            },
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
