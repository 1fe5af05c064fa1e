"""Model faults end to end: a model that stops answering, a flaky endpoint, and a model server
killed and restarted on its port while a run waits for it. Every retry is in the run's log as
it happens, and the log says without ambiguity how the run ended."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.workspace import Workspace
from apollo.llm.base import CallLimits
from apollo.llm.embedded import free_port
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import ScriptedServer, hang
from apollo.log.events import Event, Kind
from apollo.log.outcome import final_outcome
from apollo.log.sqlite import SQLiteStore
from apollo.server.views import RunCache
from tests.agent.harness import act, make_task, run_agent


async def wait_for_events(
    store: SQLiteStore, run_id: str, kind: str, n: int, timeout: float = 30.0, text: str = ""
) -> list[Event]:
    """Until the run's log holds `n` events of `kind` (whose payload mentions `text`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [ev for ev in store.events(run_id, kinds=[kind]) if text in json.dumps(ev.payload)]
        if len(found) >= n:
            return found
        if loop.time() > deadline:
            raise TimeoutError(f"the log holds {len(found)} {kind} events, wanted {n}")
        await asyncio.sleep(0.01)


def test_retries_of_a_model_that_stops_answering_are_logged_as_they_happen(
    tmp_path: Path,
) -> None:
    seen: dict[str, Any] = {}

    async def watch(store: SQLiteStore, run_id: str, server: ScriptedServer) -> None:
        first = await wait_for_events(store, run_id, Kind.MODEL_RETRY, 1)
        # Written while the call is still being retried: no model_call is in the log yet.
        seen["calls_then"] = len(store.events(run_id, kinds=[Kind.MODEL_CALL]))
        seen["first"] = first[0]

    script = [hang(), hang(), act("finish", summary="answered at last")]
    limits = CallLimits(first_byte_s=0.2, retry_window_s=60)
    out = run_agent(tmp_path, script, limits=limits, during=watch)
    assert out.status == "finished"
    assert seen["calls_then"] == 0 and seen["first"].payload["attempt"] == 1
    retries = out.events(Kind.MODEL_RETRY)
    assert [r.payload["attempt"] for r in retries] == [1, 2]
    for r in retries:
        p = r.payload
        assert r.step == 1 and p["purpose"] == "act"
        assert "ReadTimeout" in p["error"] and "no answer within 0.2s" in p["error"]
        assert p["max_attempts"] is None and p["window_s"] == 60
        assert p["waited_s"] >= 0.2 and p["since_s"] >= p["waited_s"]
        assert "work_s" in p
    assert retries[1].payload["since_s"] > retries[0].payload["since_s"]
    call = out.events(Kind.MODEL_CALL)[0]
    assert call.seq > retries[-1].seq and "output" in call.payload


def test_a_model_that_never_answers_fails_the_run_within_the_window(tmp_path: Path) -> None:
    limits = CallLimits(first_byte_s=0.2, retry_window_s=0.6)
    out = run_agent(tmp_path, [], default=hang(), limits=limits)
    assert out.status == "failed"
    retries = out.events(Kind.MODEL_RETRY)
    call = out.events(Kind.MODEL_CALL)[-1].payload
    # The failed call keeps its attempt count: every attempt but the last was a retry.
    assert call["attempts"] == len(retries) + 1 == len(out.server.requests) >= 2
    assert "ReadTimeout" in call["error"]
    finished = out.events(Kind.RUN_FINISHED)
    assert len(finished) == 1
    assert finished[0].payload["status"] == "failed" and finished[0].payload["resumable"] is True
    assert final_outcome(out.events()) == finished[0].payload


def test_a_flaky_endpoint_costs_one_visible_retry_per_call(tmp_path: Path) -> None:
    script = [act("think", thought="one"), act("think", thought="two"), act("finish", summary="ok")]
    out = run_agent(tmp_path, script, fault="flaky")
    assert out.status == "finished"
    calls = out.events(Kind.MODEL_CALL)
    retries = out.events(Kind.MODEL_RETRY)
    assert len(calls) == len(retries) == 3
    assert len(out.server.requests) == 6
    for retry, call in zip(retries, calls, strict=True):
        assert retry.step == call.step and retry.seq < call.seq
        assert retry.payload["status"] == 500 and retry.payload["attempt"] == 1
        assert "scripted flaky endpoint" in retry.payload["error"]
    # The console's cost view counts them per run.
    cost = RunCache(out.store).fold(out.run_id).cost()
    assert cost["model_retries"] == 3


def start_model_server(script: Path, port: int) -> subprocess.Popen[str]:
    """The scripted server as its own process on `port`; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollo.llm.scripted", "--script", str(script), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) == port  # printed once the port is bound
    return proc


def test_a_run_survives_its_model_server_being_killed_and_restarted(tmp_path: Path) -> None:
    # The default window outlasts a restart; the test uses a shorter one to fail fast if not.
    assert CallLimits().retry_window_s >= 60
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    thinking = act("think", thought="working")
    # The first server answers two steps, then takes requests without answering.
    before.write_text(json.dumps({"script": [thinking, thinking], "default": hang()}))
    after.write_text(json.dumps([act("finish", summary="done after the restart")]))
    task = make_task(tmp_path)
    store = SQLiteStore(tmp_path / "apollo.db")
    run_id = store.create_run(task.id, {"task_path": str(task.path)}).id
    workspace = Workspace.create(task, tmp_path / "runs" / run_id)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    procs = [start_model_server(before, port)]

    async def restart() -> None:
        await wait_for_events(store, run_id, Kind.MODEL_CALL, 2)
        procs[0].kill()  # the model server dies, maybe with the third request in flight
        await asyncio.to_thread(procs[0].wait)
        # Back on the same port once the run has been refused a few times.
        await wait_for_events(store, run_id, Kind.MODEL_RETRY, 2, text="ConnectError")
        procs.append(await asyncio.to_thread(start_model_server, after, port))

    async def main() -> str:
        limits = CallLimits(retry_window_s=30)
        model = OpenAIChatModel(url, "scripted", limits=limits, backoff_base=0.05, backoff_max=0.5)
        agent = Agent(store, run_id, task, workspace, model, AgentConfig())
        try:
            helper = asyncio.create_task(restart())
            status = await agent.run()
            await helper
            return status
        finally:
            await model.aclose()

    try:
        status = asyncio.run(main())
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
    assert status == "finished"
    events = store.events(run_id)
    finished = [ev for ev in events if ev.kind == Kind.RUN_FINISHED]
    assert len(finished) == 1 and finished[0].payload["resumable"] is False
    assert final_outcome(events) == finished[0].payload
    assert finished[0].payload["reason"] == "done after the restart"
    # No model call failed: the refusals were retried and each is in the log.
    calls = [ev for ev in events if ev.kind == Kind.MODEL_CALL]
    assert [c.step for c in calls] == [1, 2, 3] and not any("error" in c.payload for c in calls)
    retries = [ev for ev in events if ev.kind == Kind.MODEL_RETRY]
    refused = [r for r in retries if "ConnectError" in r.payload["error"]]
    assert len(refused) >= 2
    assert all(r.step == 3 and r.seq < calls[2].seq for r in retries)
    assert [r.payload["attempt"] for r in retries] == list(range(1, len(retries) + 1))
    store.close()
