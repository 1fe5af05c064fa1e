"""The LLM simulated annotator: a scripted model over loopback HTTP decides on a run written
step by step; every decision is logged, a hint holding the instance's answer is refused,
hints are rate-limited, and a restart reads all of it back from the log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apollo.env.family import resolve_family
from apollo.llm.base import CallLimits
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Request, ScriptedServer, call, error, reply
from apollo.log import schema
from apollo.log.events import Event, Kind
from apollo.log.sqlite import SQLiteStore
from apollo.rollout.llm_annotator import (
    LLM_NAME,
    LLMAnnotator,
    LLMAnnotatorConfig,
    hidden_values,
    parse_decision,
)
from tests.server.fakelog import FakeRun

CONFIG = LLMAnnotatorConfig(every_steps=2, max_hints=2, min_gap_steps=3)


def decision(drifted: bool, hint: str | None = None, reason: str = "seen") -> dict[str, Any]:
    return reply(json.dumps({"drifted": drifted, "reason": reason, "hint": hint}))


def test_parse_decision_takes_the_first_decision_object() -> None:
    assert parse_decision('{"drifted": false, "reason": "ok", "hint": null}') == (
        False,
        "ok",
        None,
    )
    chatty = 'Sure. {"note": 1} then {"drifted": true, "reason": "loops", "hint": " Try X. "}'
    assert parse_decision(chatty) == (True, "loops", "Try X.")
    assert parse_decision('{"drifted": "yes"}') is None
    assert parse_decision("no json here {") is None


def decisions(store: SQLiteStore, run_id: str) -> list[schema.AnnotatorDecision]:
    return [
        schema.ANNOTATOR_DECISION.payload(e)
        for e in store.events(run_id, kinds=[Kind.ANNOTATOR_DECISION])
    ]


def test_decisions_refusals_rate_limits_and_a_restart(tmp_path: Path) -> None:
    task = resolve_family("noise-filter").materialize(1000, tmp_path / "instances")
    answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["filter"]
    assert answer in hidden_values(task)
    store = SQLiteStore(tmp_path / "apollo.db")
    run = FakeRun(store, store.create_run(task.id, {"options": {}}).id)
    run.start()
    script = [
        decision(False, reason=f"it ran {answer} already"),  # a reason that gives it away
        decision(True, f"Run {answer} last."),  # the instance's answer: refused
        reply("I think the run is fine."),  # no decision in it
        decision(True, "Compare the dev accuracy of every filter before choosing."),
        decision(True, "Run the best filter again last, then submit."),
    ]

    async def steps(url: str, n: int) -> list[schema.AnnotatorDecision | None]:
        """`n` more steps of the run, the annotator checking after each (one event loop,
        as the runner's)."""
        model = OpenAIChatModel(url, "annotator", limits=CallLimits(max_attempts=1))
        annotator = LLMAnnotator(store, run.run_id, task, model, config=CONFIG)
        out = []
        for _ in range(n):
            run.act("run", {"command": "python3 filters.py knn-vote"}, result="dev 0.9")
            ev = await annotator.check()
            out.append(schema.ANNOTATOR_DECISION.payload(ev) if ev is not None else None)
        await model.aclose()
        return out

    with ScriptedServer(script) as server:
        # A restart after step 8 (a new annotator on the same run) reads its state back.
        outcomes = asyncio.run(steps(server.base_url, 8))
        outcomes += asyncio.run(steps(server.base_url, 6))
        # Decided at steps 2, 4, 6 (every 2), then a hint at 8; the next hint no sooner than
        # step 11; then the two hints allowed are spent and it never asks again.
        made = {i + 1: d["outcome"] for i, d in enumerate(outcomes) if d is not None}
        assert made == {
            2: "no_intervention",
            4: "refused",
            6: "unparseable",
            8: "posted",
            11: "posted",
        }
        assert len(server.requests) == 5
        # What the model read: the notes the agent never sees, and the latest steps.
        asked = server.requests[0].body["messages"]
        assert asked[0]["role"] == "system" and "one JSON object" in asked[0]["content"]
        assert "Reference notes (private" in asked[1]["content"]
        assert "exactly one of the three" in asked[1]["content"]
        assert "### Step 2" in asked[1]["content"]

    logged = decisions(store, run.run_id)
    assert [d["step"] for d in logged] == [2, 4, 6, 8, 11]
    assert answer not in json.dumps(logged)  # neither reasons nor refused hints keep it
    assert "withheld" in logged[0]["reason"]
    refused = logged[1]
    assert refused["guidance_id"] is None and "hidden value" in refused["reason"]
    assert refused["hint"] is None
    assert [d["hint"] for d in logged[3:]] == [
        "Compare the dev accuracy of every filter before choosing.",
        "Run the best filter again last, then submit.",
    ]
    guidance = [schema.GUIDANCE.payload(e) for e in store.events(run.run_id, kinds=[Kind.GUIDANCE])]
    assert [(g["author"], g["kind"]) for g in guidance] == [(LLM_NAME, "strategy")] * 2
    assert [g["id"] for g in guidance] == [logged[3]["guidance_id"], logged[4]["guidance_id"]]
    assert all(answer not in g["text"] for g in guidance)
    events = store.events(run.run_id, kinds=[Kind.ANNOTATOR_DECISION])
    assert {e.actor for e in events} == {LLM_NAME}

    # Once both hints are spent, another restart asks nothing more.
    with ScriptedServer([decision(True, "should never be asked")]) as again:
        assert asyncio.run(steps(again.base_url, 3)) == [None] * 3
        assert again.requests == []
    store.close()


def test_a_model_that_fails_is_a_logged_decision_not_a_crash(tmp_path: Path) -> None:
    task = resolve_family("noise-filter").materialize(1001, tmp_path / "instances")
    store = SQLiteStore(tmp_path / "apollo.db")
    run = FakeRun(store, store.create_run(task.id, {"options": {}}).id)
    run.start()

    async def two_steps(url: str) -> Event | None:
        model = OpenAIChatModel(url, "annotator", limits=CallLimits(max_attempts=1))
        annotator = LLMAnnotator(store, run.run_id, task, model, config=CONFIG)
        run.act("run", {"command": "ls"})
        run.act("run", {"command": "ls"})
        try:
            return await annotator.check()
        finally:
            await model.aclose()

    with ScriptedServer([error(500, message="down")]) as server:
        ev = asyncio.run(two_steps(server.base_url))
    assert ev is not None
    made = schema.ANNOTATOR_DECISION.payload(ev)
    assert made["outcome"] == "model_error" and "500" in made["reason"]
    assert store.events(run.run_id, kinds=[Kind.GUIDANCE]) == []
    store.close()


class WaitForAnnotator(ScriptedServer):
    """The agent's model: three `run` steps, then `finish`, which it answers only once the
    store holds the annotator's decision (due at step 3), so the decision is made while the
    run is live: a condition, not a time."""

    def __init__(self, db: Path) -> None:
        super().__init__(default=self._answer)
        self.db = db

    def _answer(self, request: Request) -> dict[str, Any]:
        if not request.body.get("tools"):  # a summary call (not expected in a run this short)
            return reply("<state_snapshot>short run</state_snapshot>")
        done = sum(m.get("role") == "tool" for m in request.body["messages"])
        if done < 3:
            return reply("looking", tool_calls=[call("run", {"command": f"echo {done}"})])
        deadline = time.monotonic() + 120
        while not self._decided():
            if time.monotonic() > deadline:
                raise AssertionError("the annotator never logged a decision")
            time.sleep(0.05)
        return reply("done", tool_calls=[call("finish", {"summary": "looked around"})])

    def _decided(self) -> bool:
        store = SQLiteStore(self.db)
        try:
            return any(
                store.events(r.id, kinds=[Kind.ANNOTATOR_DECISION]) for r in store.list_runs()
            )
        finally:
            store.close()


@pytest.mark.slow
def test_apollo_run_with_the_llm_annotator(tmp_path: Path) -> None:
    def annotator_model(request: Request) -> dict[str, Any]:
        return decision(False, reason="on track")

    home = tmp_path / "home"
    agent_model = WaitForAnnotator(home / "apollo.db")
    with agent_model as agent, ScriptedServer(default=annotator_model) as watcher:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "apollo.cli", "run", "noise-filter@1000"),
                *("--model", agent.base_url, "--annotator", "llm"),
                *("--annotator-model", watcher.base_url, "--home", str(home)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    store = SQLiteStore(home / "apollo.db")
    [record] = store.list_runs()
    shown = subprocess.run(
        [sys.executable, "-m", "apollo.cli", "show", record.id, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"{LLM_NAME} looked at step 3: no intervention (on track)" in shown
    assert record.config["options"]["annotator"] == "llm"
    assert record.config["options"]["annotator_model"] == watcher.base_url
    made = decisions(store, record.id)
    assert made and all(d["outcome"] == "no_intervention" for d in made)
    store.close()
