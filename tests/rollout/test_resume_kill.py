"""Kill -9 the runner at random moments, resume it each time, and check the log: no lost and
no duplicated events, every model call saw exactly the context a replay of the log gives, and
the long-running session survived every crash, exited by itself and had every line of its
output read exactly once. The run's last steps wait on the job, so the test ends on that
condition, not on how fast this machine is."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apollo.agent.context import ContextView
from apollo.llm.scripted import Request, ScriptedServer, call, reply
from apollo.log.calls import apply_input
from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from tests.agent.harness import make_task

STEPS = 60
MAX_KILLS = 15  # then the runner is left to finish
JOB_LINES = 40
JOB = f"for i in $(seq 1 {JOB_LINES}); do echo line $i; sleep 0.25; done"
_STEP = re.compile(r"\[step (\d+)/")


def make_policy(home: Path) -> Callable[[Request], dict[str, Any]]:
    """The step comes from the last budget footer the model saw, so the plan survives
    model calls that a kill interrupted. The job is (re)started until its session exists,
    in case a kill landed between the call and the start."""

    def policy(request: Request) -> dict[str, Any]:
        if not request.body.get("tools"):
            return reply("<state_snapshot>progress so far</state_snapshot>", delay=0.06)
        found = _STEP.findall(json.dumps(request.body["messages"][-3:]))
        step = int(found[-1]) + 1 if found else 1
        name, args = plan(step, job_exists=any(home.glob("runs/*/sessions/job*")))
        # A little model latency, so kills land in calls, tools and logging alike.
        return reply(f"step {step}", tool_calls=[call(name, args)], delay=0.06)

    return policy


def plan(step: int, job_exists: bool) -> tuple[str, dict[str, Any]]:
    if not job_exists:
        return "session_start", {"command": JOB, "name": "job"}
    if step >= STEPS - 2:  # a wait cut by a kill is made again on resume, not lost
        return "session_output", {"id": "job", "wait": 30}
    return [
        ("write_file", {"path": f"notes/{step}.txt", "content": f"step {step}"}),
        ("run", {"command": "ls notes | wc -l"}),
        ("session_output", {"id": "job"}),
        ("think", {"thought": f"step {step} done"}),
    ][step % 4]


def apollo(*args: str) -> list[str]:
    return [sys.executable, "-m", "apollo.cli", *args]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_minus_nine_at_random_points_then_resume(tmp_path: Path, seed: int) -> None:
    task = make_task(tmp_path, steps=STEPS, working_time=3600)
    home = tmp_path / "home"
    rng = random.Random(seed)
    kills = 0
    with ScriptedServer(default=make_policy(home)) as server:
        common = ["--home", str(home), "--quiet"]
        cmd = apollo("run", str(task.path), "--model", server.base_url, *common)
        cmd += ["--summary-threshold", "900"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        run_id = proc.stdout.readline().split()[1]
        while True:
            try:
                proc.wait(timeout=rng.uniform(0.3, 1.8) if kills < MAX_KILLS else 300)
                break  # the run ended by itself
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
            proc = subprocess.Popen(apollo("resume", run_id, *common), stdout=subprocess.PIPE)
        assert proc.returncode == 0, f"the last runner exited with {proc.returncode}"
        bodies = [r.body for r in server.requests if r.body and r.body.get("tools")]
    assert kills >= 5, "the run ended before enough kills; lower the kill interval"

    store = SQLiteStore(home / "apollo.db")
    events = store.events(run_id)
    # Nothing lost: sequence numbers are dense.
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    finished = [e for e in events if e.kind == Kind.RUN_FINISHED]
    assert len(finished) == 1 and finished[0].payload["status"] == "timeout"
    assert finished[0].seq == events[-1].seq
    assert sum(1 for e in events if e.kind == Kind.SUBMISSION and e.payload["final"]) == 1
    # Nothing duplicated: one recorded act call per step, one result per tool call. Steps
    # whose call a kill cut (and that could not be made again) do not spend the budget.
    acts = [e for e in events if e.kind == Kind.MODEL_CALL and e.payload["purpose"] == "act"]
    cut = {e.step for e in events if e.kind == Kind.OBSERVATION and e.payload.get("interrupted")}
    assert [e.step for e in acts] == list(range(1, STEPS + len(cut) + 1))
    call_ids = Counter(c["id"] for e in acts for c in e.payload["calls"])
    results = Counter(e.payload["tool_call_id"] for e in events if e.kind == Kind.OBSERVATION)
    assert call_ids == results and max(results.values()) == 1
    assert any(e.kind == Kind.SUMMARY for e in events), "expected summaries on the way"

    # Same context: each call's recorded input is what a replay up to it gives, and what the
    # server really received.
    view = ContextView()
    ids: list[str] = []
    prev: int | None = None
    sent = [json.dumps(b["messages"], sort_keys=True) for b in bodies]
    for ev in events:
        if ev.kind == Kind.MODEL_CALL:
            ids = apply_input(prev, ids, ev.payload["input"])
            prev = ev.seq
            if ev.payload["purpose"] == "act":
                assert ids == [e.blob for e in view.entries], f"context differs at {ev.seq}"
                texts = store.get_blobs(ids)
                messages = [json.loads(texts[i]) for i in ids]
                assert json.dumps(messages, sort_keys=True) in sent
        view.apply(ev)

    # The session ran once, across the crashes, exited by itself, and its output was read
    # exactly once: by the agent, or into the log when the run ended.
    outputs = []
    for e in events:
        if e.kind == Kind.OBSERVATION and e.payload["tool"] == "session_output":
            outputs.append(json.loads(store.get_blob(e.payload["message"]))["content"])
        elif e.kind == Kind.SESSIONS_CLOSED:
            outputs += [store.get_blob(c["output"]) for c in e.payload["sessions"]]
    lines = re.findall(r"^line (\d+)$", "\n".join(outputs), flags=re.M)
    assert [int(n) for n in lines] == list(range(1, JOB_LINES + 1))
    (job,) = home.glob("runs/*/sessions/job")
    assert (job / "exit").read_text().strip() == "0", "the job did not exit by itself"
    resumed = [e for e in events if e.kind == Kind.RUN_RESUMED]
    # A kill can land before a new runner got as far as writing its resume event.
    assert 0 < len(resumed) <= kills
    assert any("job" in e.payload["sessions"] for e in resumed), "the job was never reattached"
