"""Real runs for the supervision and export tests: the agent loop against the scripted server,
with every situation the rules know, guidance (one marking a drift) and a summary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from apollo.agent.loop import AgentConfig
from apollo.llm.scripted import Request, ScriptedServer, reply
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from apollo.log.writes import post_guidance
from tests.agent.harness import Outcome, act, run_agent

SNAPSHOT = "<state_snapshot><reflections>none yet</reflections></state_snapshot>"
FIRST_GUIDANCE = "Write the answer into answer.txt."
DRIFT_GUIDANCE = "Stop polling session_list; nothing is running."

# Step by step, what each action is for the rules.
STEPS: list[dict[str, Any]] = [
    act("think", thought="plan the work"),  # 1
    act("run", command="false"),  # 2 tool_error
    reply("I am not sure what to do."),  # 3 malformed_call (no tool call)
    act("run", command="echo same"),  # 4
    act("run", command="echo same"),  # 5 exact_repeat
    act("session_start", command="sleep 30", name="job"),  # 6 undone (killed at 7)
    act("session_kill", id="job"),  # 7
    act("write_file", path="notes.txt", content="v1"),  # 8
    act("write_file", path="notes.txt", content="v2"),  # 9 undone (restored at 10)
    act("write_file", path="notes.txt", content="v1"),  # 10
    act("session_list"),  # 11 drift from here (guidance says so)
    act("session_list"),  # 12 exact_repeat
    act("session_list"),  # 13 exact_repeat
    act("session_list"),  # 14 exact_repeat, idle_polling (4th poll, limit 3)
    act("sleep", seconds=30),  # 15 guidance arrives while sleeping
    act("think", thought="follow the guidance"),  # 16 guidance delivered before this step
    act("write_file", path="answer.txt", content="42"),  # 17
    act("submit", note="try"),  # 18
    act("finish", summary="wrote 42"),  # 19
]
EXPECTED_RULES = {
    2: {"tool_error"},
    3: {"malformed_call"},
    5: {"exact_repeat"},
    6: {"undone"},
    9: {"undone"},
    11: {"drift"},
    12: {"exact_repeat", "drift"},
    13: {"exact_repeat", "drift"},
    14: {"exact_repeat", "drift", "idle_polling"},
    15: {"drift"},
}


def scripted(steps: list[dict[str, Any]]) -> Any:
    """A script entry that answers summary requests (no tools) with a snapshot and act
    requests with the next step."""
    queue = list(steps)

    def entry(request: Request) -> dict[str, Any]:
        if not request.body.get("tools"):
            return reply(SNAPSHOT)
        return queue.pop(0) if queue else act("finish", summary="done")

    return entry


async def _annotate(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
    post_guidance(store, run_id, "alice", FIRST_GUIDANCE, "hint")
    while not any(
        ev.step == 15 for ev in store.events(run_id, kinds=[Kind.MODEL_CALL])
    ):  # the agent is about to sleep at step 15
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    post_guidance(store, run_id, "bob", DRIFT_GUIDANCE, "correction", drift_from_step=11)


def rich_run(tmp_path: Path, summary_threshold: int = 100_000) -> Outcome:
    """Run the STEPS script to its end (summaries above `summary_threshold` tokens)."""
    entry = scripted(STEPS)
    config = AgentConfig(summary_threshold_tokens=summary_threshold, poll_interval_s=0.05)
    return run_agent(tmp_path, [], default=entry, config=config, during=_annotate)
