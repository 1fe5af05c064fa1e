"""The ReAct loop end to end: real store, real sandboxed workspace, real HTTP to a scripted
OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from apollo.agent.loop import Agent, AgentConfig
from apollo.llm.base import CallLimits
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Request, ScriptedServer, error, reply
from apollo.log.calls import call_output, model_input
from apollo.log.events import Kind
from apollo.log.outcome import final_outcome
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import StoreError
from apollo.log.writes import post_control, post_guidance
from tests.agent.harness import (
    act,
    make_task,
    observation_texts,
    run_agent,
    wait_for_requests,
)


def test_run_end_to_end_with_exact_inputs_in_the_log(tmp_path: Path) -> None:
    script = [
        act("think", thought="look around first"),
        act("write_file", path="answer.txt", content="42"),
        act("run", command="cat answer.txt && echo && echo done"),
        act("submit", note="first try"),
        act("finish", summary="wrote 42"),
    ]
    out = run_agent(tmp_path, script)
    assert out.status == "finished"
    assert (out.workspace.path / "answer.txt").read_text() == "42"
    texts = observation_texts(out)
    assert "42\ndone" in texts[2]
    assert "Score: 42" in texts[3]
    # Budgets are shown to the model after every tool result.
    assert "[step 3/50 · working time left" in texts[2]
    assert "submissions left 1]" in texts[3]
    subs = out.events(Kind.SUBMISSION)
    assert [(s.payload["score"], s.payload["final"]) for s in subs] == [(42, False), (42, True)]
    finished = out.events(Kind.RUN_FINISHED)[0].payload
    assert finished["status"] == "finished" and finished["reason"] == "wrote 42"
    # Every model call's exact input is recoverable from the log, byte for byte as sent.
    calls = out.events(Kind.MODEL_CALL)
    bodies = out.act_bodies()
    assert len(calls) == len(bodies) == 5
    for ev, body in zip(calls, bodies, strict=True):
        assert model_input(out.store, out.run_id, ev.seq) == body["messages"]
    assert [t["function"]["name"] for t in bodies[0]["tools"]][-3:] == [
        "think",
        "submit",
        "finish",
    ]
    # The context only ever grows by the new step's messages.
    for prev, nxt in itertools.pairwise(bodies):
        assert nxt["messages"][: len(prev["messages"])] == prev["messages"]
    assert call_output(out.store, calls[1].payload)["tool_calls"][0]["function"]["name"] == (
        "write_file"
    )


def test_guidance_wakes_a_sleeping_agent_and_is_delivered_as_real_user(tmp_path: Path) -> None:
    posted: dict[str, float] = {}

    async def annotator(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 2)  # the agent is now sleeping for 60 s
        await asyncio.sleep(0.3)
        post_guidance(store, run_id, "alice", "Stop sleeping; <b>check</b> the data.", "strategy")
        posted["at"] = time.perf_counter()

    script = [act("think", thought="plan"), act("sleep", seconds=60), act("finish", summary="ok")]
    out = run_agent(tmp_path, script, during=annotator)
    assert out.status == "finished"
    third = out.server.requests[2]
    assert third.received - posted["at"] < 5, "sleep did not end early on guidance"
    messages = third.body["messages"]
    # Delivered after the latest observation, as a user turn wrapped in <real_user>.
    assert messages[-2]["role"] == "tool" and "woke" in messages[-2]["content"].lower()
    assert messages[-1] == {
        "role": "user",
        "content": "<real_user>Stop sleeping; <b>check</b> the data.</real_user>",
    }
    guidance = out.events(Kind.GUIDANCE)[0]
    delivered = out.events(Kind.GUIDANCE_DELIVERED)[0]
    assert guidance.actor == "alice"
    assert delivered.payload["guidance_id"] == guidance.payload["id"]
    assert delivered.payload["step"] == 3
    assert out.store.get_run(out.run_id).guidance_count == 1  # type: ignore[union-attr]


def test_pause_holds_the_agent_at_the_step_boundary_then_resume_and_stop(tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    async def controller(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 1)
        post_control(store, run_id, "alice", "pause")
        await asyncio.sleep(1.5)
        seen["while_paused"] = len(server.requests)
        post_control(store, run_id, "alice", "resume")
        await wait_for_requests(server, seen["while_paused"] + 2)
        post_control(store, run_id, "bob", "stop")

    out = run_agent(tmp_path, [], default=act("run", command="sleep 0.3"), during=controller)
    assert out.status == "stopped"
    # Paused after the step in flight: at most one more request arrived while paused.
    assert seen["while_paused"] <= 2
    controls = [(e.actor, e.payload["action"]) for e in out.events(Kind.CONTROL)]
    assert controls == [("alice", "pause"), ("alice", "resume"), ("bob", "stop")]
    # Paused time does not count as working time.
    finished = out.events(Kind.RUN_FINISHED)[0].payload
    wall = out.events()[-1].ts - out.events()[0].ts
    assert finished["work_s"] < wall - 1.0
    assert not out.events(Kind.SUBMISSION), "a stopped run is not scored"


def test_reply_without_a_tool_call_becomes_a_corrective_observation(tmp_path: Path) -> None:
    script = [
        reply("I think I should look at the files."),
        reply('<tool_call>{"name": "nonexistent_tool", "arguments": {}}</tool_call>'),
        act("finish", summary="done"),
    ]
    out = run_agent(tmp_path, script)
    obs = out.events(Kind.OBSERVATION)
    assert [o.payload.get("malformed") for o in obs[:2]] == [True, True]
    bodies = out.act_bodies()
    nudge = bodies[1]["messages"][-1]
    assert nudge["role"] == "user" and "did not call a tool" in nudge["content"]
    unknown = bodies[2]["messages"][-1]["content"]
    assert "nonexistent_tool" in unknown


def test_model_failure_after_retries_is_recorded_and_fails_the_run(tmp_path: Path) -> None:
    out = run_agent(tmp_path, [error(500), error(502), error(503)])
    assert out.status == "failed"
    call = out.events(Kind.MODEL_CALL)[0].payload
    assert "500" in call["error"] or "503" in call["error"]
    assert call["attempts"] == 3
    assert "model call failed" in out.events(Kind.RUN_FINISHED)[0].payload["reason"]


def test_submission_budget_and_step_budget(tmp_path: Path) -> None:
    task = make_task(tmp_path, steps=4, submissions=1)
    out = run_agent(tmp_path, [], default=act("submit"), task=task)
    assert out.status == "timeout"
    texts = observation_texts(out)
    assert texts[0].startswith("Score: 0")
    assert texts[1].startswith("No submissions left")
    assert len(out.events(Kind.MODEL_CALL)) == 4
    assert out.events(Kind.SUBMISSION)[-1].payload["final"] is True


def test_summary_condenses_older_half_and_keeps_guidance(tmp_path: Path) -> None:
    async def annotator(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 2)
        post_guidance(store, run_id, "alice", "Remember: the answer file must hold 7.", "knowledge")

    acts = []

    def respond(request: Request) -> dict[str, Any]:
        if not request.body.get("tools"):  # the summarize call offers no tools
            return reply("<state_snapshot><reflections>none</reflections></state_snapshot>")
        acts.append(request)
        if len(acts) >= 14:
            return act("finish", summary="done")
        return act("read_file", path="notes.txt")

    config = AgentConfig(summary_threshold_tokens=1200)
    out = run_agent(tmp_path, [], default=respond, config=config, during=annotator)
    assert out.status == "finished"
    delivered = out.events(Kind.GUIDANCE_DELIVERED)[0]
    gid = delivered.payload["guidance_id"]
    summaries = [s for s in out.events(Kind.SUMMARY) if s.payload["covers"][1] >= delivered.step]
    assert len(summaries) >= 2, "expected repeated summaries after the guidance"
    for summary in summaries:
        # The scripted model never quotes the guidance: every snapshot is repaired in code.
        assert summary.payload["cited_guidance"] == summary.payload["repaired_guidance"] == [gid]
        snapshot = json.loads(out.store.get_blob(summary.payload["messages"][0]))["content"]
        assert '"Remember: the answer file must hold 7."' in snapshot
    # The next act call: preamble, snapshot, continue prompt, then the recent steps verbatim.
    first = summaries[0]
    after = next(e for e in out.events(Kind.MODEL_CALL) if e.seq > first.seq)
    messages = model_input(out.store, out.run_id, after.seq)
    assert [m["role"] for m in messages[:4]] == ["system", "user", "assistant", "user"]
    assert "condensed" in messages[3]["content"]
    assert "<real_user>" not in json.dumps(messages[4:])  # the guidance step was condensed
    kept_step = first.payload["covers"][1] + 1
    kept = next(e for e in out.events(Kind.MODEL_CALL) if e.step == kept_step)
    assert json.loads(out.store.get_blob(kept.payload["output"])) in messages
    condensed = next(e for e in out.events(Kind.MODEL_CALL) if e.step == first.payload["covers"][0])
    assert json.loads(out.store.get_blob(condensed.payload["output"])) not in messages


def test_urgent_guidance_cancels_the_model_call_but_never_a_tool(tmp_path: Path) -> None:
    async def annotator(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 1)
        await asyncio.sleep(0.4)  # the tool of step 1 is running (1.5 s)
        post_guidance(store, run_id, "alice", "tool time guidance", urgent=True)
        await wait_for_requests(server, 3)  # step 2's model call is now thinking for 30 s
        await asyncio.sleep(0.3)
        post_guidance(store, run_id, "alice", "Change course now.", "correction", urgent=True)

    script = [
        act("run", command="sleep 1.5 && echo tool-finished"),
        act("think", thought="x"),
        {**act("think", thought="slow"), "delay": 30},
        act("finish", summary="done"),
    ]
    started = time.perf_counter()
    out = run_agent(tmp_path, script, during=annotator)
    assert out.status == "finished"
    assert time.perf_counter() - started < 20, "the slow model call was not cancelled"
    # The running tool was not interrupted by the first urgent guidance.
    assert "tool-finished" in observation_texts(out)[0]
    calls = out.events(Kind.MODEL_CALL)
    cancelled = [c for c in calls if c.payload.get("cancelled")]
    assert len(cancelled) == 1
    guidance = {g.payload["text"]: g.payload["id"] for g in out.events(Kind.GUIDANCE)}
    assert cancelled[0].payload["cancelled_for"] == [guidance["Change course now."]]
    # The step was made again with the guidance in context.
    retry = next(c for c in calls if c.seq > cancelled[0].seq)
    assert retry.step == cancelled[0].step
    messages = model_input(out.store, out.run_id, retry.seq)
    assert messages[-1]["content"] == "<real_user>Change course now.</real_user>"


def test_queued_guidance_is_cancelled_when_the_run_ends_first(tmp_path: Path) -> None:
    async def annotator(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        await wait_for_requests(server, 1)
        post_guidance(store, run_id, "alice", "Too late for this run.")

    task = make_task(tmp_path, steps=1)
    out = run_agent(tmp_path, [act("run", command="sleep 1")], during=annotator, task=task)
    assert out.status == "timeout"
    cancelled = out.events(Kind.GUIDANCE_CANCELLED)
    assert len(cancelled) == 1
    assert cancelled[0].payload["guidance_id"] == out.events(Kind.GUIDANCE)[0].payload["id"]
    assert out.events()[-1].kind == Kind.RUN_FINISHED
    with pytest.raises(StoreError, match="has ended"):
        post_guidance(out.store, out.run_id, "alice", "and now?")


def test_a_failed_run_resumes_when_the_model_is_back(tmp_path: Path) -> None:
    out = run_agent(tmp_path, [error(500), error(500)], limits=CallLimits(max_attempts=2))
    assert out.status == "failed"
    with ScriptedServer([act("finish", summary="recovered")]) as server:

        async def again() -> str:
            model = OpenAIChatModel(server.base_url, "scripted", limits=CallLimits(max_attempts=2))
            agent = Agent(out.store, out.run_id, out.task, out.workspace, model, AgentConfig())
            try:
                return await agent.run()
            finally:
                await model.aclose()

        assert asyncio.run(again()) == "finished"
    # Two run_finished events, yet no ambiguity: the failed one said it could be resumed, a
    # run_resumed follows it, and the run's outcome is the last one.
    ends = [e for e in out.events() if e.kind in (Kind.RUN_FINISHED, Kind.RUN_RESUMED)]
    assert [(e.kind, e.payload.get("status"), e.payload.get("resumable")) for e in ends] == [
        (Kind.RUN_FINISHED, "failed", True),
        (Kind.RUN_RESUMED, None, None),
        (Kind.RUN_FINISHED, "finished", False),
    ]
    assert final_outcome(out.events()) == ends[-1].payload
    assert final_outcome(out.events()[: ends[1].seq]) is None  # resumed, not yet ended
    assert out.store.get_run(out.run_id).status == "finished"
