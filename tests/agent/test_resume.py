"""Resume details that random kills rarely hit: output read but never recorded, a run killed
while finishing, a tool call left without its result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.workspace import Workspace
from apollo.llm.base import CallLimits
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Request, ScriptedServer, reply
from apollo.log.events import Kind, NewEvent
from apollo.log.sqlite import SQLiteStore
from tests.agent.harness import act, make_task, wait_for_requests

JOB = "echo one; sleep 0.5; echo two; sleep 100"


async def drive(store: SQLiteStore, run_id: str, workspace: Workspace, url: str) -> str:
    model = OpenAIChatModel(url, "scripted", limits=CallLimits(max_attempts=2))
    try:
        task = workspace.task
        return await Agent(store, run_id, task, workspace, model, AgentConfig()).run()
    finally:
        await model.aclose()


def test_output_read_but_not_recorded_is_shown_again_after_resume(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    first = [
        act("session_start", command=JOB, name="job"),
        {**act("session_output", id="job"), "delay": 0.3},
        act("sleep", seconds=60),
    ]
    with ScriptedServer(first) as server:

        async def crash_while_sleeping() -> None:
            runner = asyncio.create_task(
                drive(store, run_id, Workspace.create(task, run_dir), server.base_url)
            )
            await wait_for_requests(server, 3)
            await asyncio.sleep(0.8)  # "two" is printed meanwhile
            runner.cancel()  # the runner dies: no finish, sessions keep running

        asyncio.run(crash_while_sleeping())
    workspace = Workspace.open(task, run_dir)
    # A read that happened just before the crash, whose observation never reached the log.
    assert "two" in workspace.sessions.read("job").text

    second = [act("session_output", id="job"), act("finish", summary="done")]
    with ScriptedServer(second) as server:
        status = asyncio.run(drive(store, run_id, workspace, server.base_url))
    assert status == "finished"
    resumed = store.events(run_id, kinds=[Kind.RUN_RESUMED])[0].payload
    assert resumed["sessions"] == ["job"]
    # The interrupted sleep got a result saying so, and the chunk came back exactly once.
    outputs = []
    for ev in store.events(run_id, kinds=[Kind.OBSERVATION]):
        outputs.append((ev.payload["tool"], json.loads(store.get_blob(ev.payload["message"]))))
    assert outputs[2][0] == "sleep" and "restarted" in outputs[2][1]["content"]
    texts = [m["content"] for tool, m in outputs if tool == "session_output"]
    assert texts[0].startswith("one\n") and "two" not in texts[0]
    assert texts[1].startswith("two\n")


def test_a_run_killed_while_finishing_finishes_without_new_steps(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    with ScriptedServer([act("finish", summary="all done")]) as server:
        status = asyncio.run(drive(store, run_id, Workspace.create(task, run_dir), server.base_url))
    assert status == "finished"
    # Cut the log back to just after the finish result, as if killed before scoring.
    events = store.events(run_id)
    cut = next(e.seq for e in events if e.kind == Kind.OBSERVATION)
    kept = [NewEvent(e.kind, e.payload, e.actor, e.step) for e in events if e.seq <= cut]
    fresh = store.create_run(task.id, {}).id
    store.append(fresh, kept)
    with ScriptedServer([]) as server:  # any model call would fail: there is no script
        status = asyncio.run(drive(store, fresh, Workspace.open(task, run_dir), server.base_url))
        assert server.requests == []
    assert status == "finished"
    tail = [e.kind for e in store.events(fresh)][len(kept) :]
    assert tail == [Kind.RUN_RESUMED, Kind.SUBMISSION, Kind.RUN_FINISHED]
    assert store.events(fresh)[-1].payload["reason"] == "all done"


def test_a_reply_without_a_call_is_still_answered_after_a_crash(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    with ScriptedServer([reply("just text, no call"), act("finish", summary="x")]) as server:
        asyncio.run(drive(store, run_id, Workspace.create(task, run_dir), server.base_url))
    # Keep the log up to the reply without a call, as if killed before it was answered.
    events = store.events(run_id)
    cut = next(e.seq for e in events if e.kind == Kind.MODEL_CALL)
    fresh = store.create_run(task.id, {}).id
    store.append(fresh, [NewEvent(e.kind, e.payload, e.actor, e.step) for e in events[:cut]])
    with ScriptedServer([act("finish", summary="done")]) as server:
        asyncio.run(drive(store, fresh, Workspace.open(task, run_dir), server.base_url))
        messages = server.requests[0].body["messages"]
    assert messages[-2]["role"] == "assistant"
    assert messages[-1]["role"] == "user" and "did not call a tool" in messages[-1]["content"]


async def _crash_once_recorded(
    store: SQLiteStore, run_id: str, workspace: Workspace, url: str, step: int
) -> None:
    """Drive the run and kill the runner as soon as step `step`'s act call is in the log,
    while its tool is running (the crash leaves that call without a result)."""
    runner = asyncio.create_task(drive(store, run_id, workspace, url))
    deadline = asyncio.get_running_loop().time() + 20
    while not any(
        e.step == step and "output" in e.payload
        for e in store.events(run_id, kinds=[Kind.MODEL_CALL])
    ):
        assert asyncio.get_running_loop().time() < deadline, "the step never came"
        await asyncio.sleep(0.02)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


def test_a_read_cut_by_a_crash_is_made_again_and_spends_no_step(tmp_path: Path) -> None:
    task = make_task(tmp_path, steps=3)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    job = "echo one; while [ ! -e go ]; do sleep 0.05; done; echo two"
    first = [
        act("session_start", command=job, name="job"),
        act("session_output", id="job", wait=60),
    ]
    with ScriptedServer(first) as server:
        workspace = Workspace.create(task, run_dir)
        asyncio.run(_crash_once_recorded(store, run_id, workspace, server.base_url, step=2))
    (run_dir / "workspace" / "go").touch()  # the job ends while no runner is there
    with ScriptedServer([act("finish", summary="read it all")]) as server:
        status = asyncio.run(drive(store, run_id, Workspace.open(task, run_dir), server.base_url))
    assert status == "finished"
    resumed = store.events(run_id, kinds=[Kind.RUN_RESUMED])[0].payload
    assert resumed["interrupted"] == [] and len(resumed["rerun"]) == 1
    observations = store.events(run_id, kinds=[Kind.OBSERVATION])
    read = next(e for e in observations if e.payload["tool_call_id"] == resumed["rerun"][0])
    assert read.step == 2 and not read.payload.get("interrupted")
    content = json.loads(store.get_blob(read.payload["message"]))["content"]
    assert content.startswith("one\ntwo\n") and "exited with code 0" in content
    assert "[step 2/3 " in content  # the read kept its step; the budget is unchanged


def test_a_cut_call_that_may_have_run_is_answered_and_gives_its_step_back(tmp_path: Path) -> None:
    task = make_task(tmp_path, steps=2)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    with ScriptedServer([act("sleep", seconds=60)]) as server:
        workspace = Workspace.create(task, run_dir)
        asyncio.run(_crash_once_recorded(store, run_id, workspace, server.base_url, step=1))
    with ScriptedServer([], default=act("think", thought="go on")) as server:
        status = asyncio.run(drive(store, run_id, Workspace.open(task, run_dir), server.base_url))
    assert status == "timeout"
    acts = [e for e in store.events(run_id, kinds=[Kind.MODEL_CALL]) if "output" in e.payload]
    assert [e.step for e in acts] == [1, 2, 3]  # the budget of 2 steps, plus the cut one
    texts = [
        json.loads(store.get_blob(e.payload["message"]))["content"]
        for e in store.events(run_id, kinds=[Kind.OBSERVATION])
    ]
    assert "restarted" in texts[0] and "[step 1/3 " in texts[0]
    assert "[step 3/3 " in texts[-1]


def test_the_end_of_a_run_records_session_output_nobody_read(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    run_dir = tmp_path / "runs" / run_id
    log = run_dir / "sessions" / "job" / "output.log"

    def finish_once_written(request: Request) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while "written" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return act("finish", summary="never looked")

    script = [act("session_start", command="echo written; sleep 100", name="job")]
    with ScriptedServer(script, default=finish_once_written) as server:
        status = asyncio.run(drive(store, run_id, Workspace.create(task, run_dir), server.base_url))
    assert status == "finished"
    kinds = [e.kind for e in store.events(run_id)]
    assert kinds.index(Kind.SESSIONS_CLOSED) == len(kinds) - 2  # just before run_finished
    (closed,) = store.events(run_id, kinds=[Kind.SESSIONS_CLOSED])[0].payload["sessions"]
    assert closed["id"] == "job" and closed["killed"] and closed["exit_code"] is None
    assert store.get_blob(closed["output"]) == "written\n"
