"""The simulated annotator follows a real run through its log and posts the task's hints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apollo.env.task import Task, load_task
from apollo.llm.scripted import ScriptedServer
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.annotator import SIMULATED_NAME, SimulatedAnnotator
from tests.agent.harness import act, make_task, run_agent, wait_for_requests

HINTS = [
    {
        "id": "same-failure",
        "trigger": {"kind": "repeated_failure", "count": 3},
        "kind": "correction",
        "text": "That command keeps failing the same way; read the error.",
    },
    {
        "id": "patience",
        "trigger": {"kind": "session_killed_early"},
        "kind": "strategy",
        "text": "Let the job finish before judging it.",
    },
    {
        "id": "polling",
        "trigger": {"kind": "polling", "count": 3},
        "kind": "strategy",
        "text": "Use session_output with wait instead of polling.",
    },
    {
        "id": "answer",
        "trigger": {"kind": "no_progress", "step": 2, "pattern": "answer.txt"},
        "kind": "knowledge",
        "text": "The answer goes in answer.txt.",
    },
    {"id": "late", "trigger": {"kind": "step_reached", "step": 500}, "text": "never fires"},
]


def task_with_hints(tmp_path: Path, hints: list[dict[str, Any]]) -> Task:
    task = make_task(tmp_path, steps=30)
    spec = task.path / "task.yaml"
    spec.write_text(spec.read_text() + "hints: " + json.dumps(hints) + "\n")
    return load_task(task.path)


def posted_hints(store: SQLiteStore, run_id: str) -> list[tuple[str, str | None]]:
    return [
        (e.payload["hint_id"], e.actor)
        for e in store.events(run_id, kinds=[Kind.GUIDANCE])
        if "hint_id" in e.payload
    ]


def test_hints_fire_once_when_their_triggers_match(tmp_path: Path) -> None:
    task = task_with_hints(tmp_path, HINTS)
    script = [
        act("run", command="python3 missing.py"),
        act("run", command="python3 missing.py"),
        act("run", command="python3 missing.py"),
        act("session_start", command="sleep 100", name="job"),
        act("session_kill", id="job"),
        act("session_list"),
        act("sleep", seconds=0.1),
        act("session_list"),
        act("write_file", path="answer.txt", content="1"),
        act("think", thought="waiting"),
        act("think", thought="waiting"),
        act("finish", summary="done"),
    ]

    async def follow(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 1)
        annotator = SimulatedAnnotator(
            store, run_id, task, tmp_path / "runs" / run_id / "workspace", poll_interval_s=0.02
        )
        await annotator.follow()

    def slow(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "delay": 0.15}  # give the annotator time to look between steps

    out = run_agent(tmp_path, [slow(e) for e in script], during=follow, task=task)
    assert out.status == "finished"
    hints = posted_hints(out.store, out.run_id)
    assert sorted(h for h, _ in hints) == ["answer", "patience", "polling", "same-failure"]
    assert {actor for _, actor in hints} == {SIMULATED_NAME}
    delivered = {e.payload["guidance_id"] for e in out.events(Kind.GUIDANCE_DELIVERED)}
    assert delivered == {e.payload["id"] for e in out.events(Kind.GUIDANCE)}
    assert SIMULATED_NAME in [a.name for a in out.store.list_annotators()]

    # A restarted annotator reads its past hints from the log and posts nothing again.
    again = SimulatedAnnotator(out.store, out.run_id, task, out.workspace.path)
    assert again.check() == []


def test_no_hint_without_its_trigger(tmp_path: Path) -> None:
    task = task_with_hints(tmp_path, HINTS)
    script = [
        act("write_file", path="answer.txt", content="1"),
        act("run", command="python3 missing.py"),
        act("run", command="echo fine"),
        act("run", command="python3 missing.py"),
        act("session_start", command="echo quick", name="job"),
        act("session_output", id="job", wait=5),
        act("session_kill", id="job"),
        act("finish", summary="done"),
    ]

    async def follow(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        annotator = SimulatedAnnotator(
            store, run_id, task, tmp_path / "runs" / run_id / "workspace", poll_interval_s=0.02
        )
        await annotator.follow()

    out = run_agent(tmp_path, script, during=follow, task=task)
    assert out.status == "finished"
    assert posted_hints(out.store, out.run_id) == []
