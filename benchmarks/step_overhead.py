"""Framework time per step: one run of 200 steps with a growing history against the scripted
OpenAI-compatible server (a separate process on loopback) answering at once with a trivial
tool call. Per step: the gap between the server finishing response i and receiving request
i+1, i.e. everything the agent does outside the model, logging included.

Keys: median_ms, p99_ms (median over 3 runs of each run's median; p99 over all gaps).
Target: median <= 5 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import httpx
from _common import percentile, report
from _synthetic import make_task, temp_home

from apollo.agent.loop import Agent, AgentConfig
from apollo.env.task import load_task
from apollo.env.workspace import Workspace
from apollo.llm.openai_client import OpenAIChatModel
from apollo.log.sqlite import SQLiteStore

STEPS = 200
RUNS = 3
rss_mb: list[float] = []


def start_server(script: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollo.llm.scripted", "--script", str(script), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def one_run(home: Path, port: int) -> list[float]:
    task = load_task(home / "task")
    store = SQLiteStore(home / "apollo.db")
    run_id = store.create_run(task.id, {}).id
    workspace = Workspace.create(task, home / "runs" / run_id)
    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "scripted")
    agent = Agent(store, run_id, task, workspace, model, AgentConfig(max_steps=STEPS))

    async def main() -> None:
        try:
            await agent.run()
        finally:
            await model.aclose()

    asyncio.run(main())
    store.close()
    # Peak RSS before the harness loads the server's records (those are large).
    rss_mb.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    records = httpx.get(f"http://127.0.0.1:{port}/_scripted/requests").json()
    records = [r for r in records if r["path"].endswith("/chat/completions")][-STEPS:]
    assert len(records) == STEPS, len(records)
    last = records[-1]["body"]["messages"]
    print(f"  context at the last step: {len(last)} messages, {len(json.dumps(last))} bytes")
    return [b["received"] - a["finished"] for a, b in itertools.pairwise(records)]


def main() -> None:
    home = temp_home()
    make_task(home / "task")
    script = home / "script.json"
    think = {"content": "ok", "tool_calls": [{"name": "think", "arguments": {"thought": "next"}}]}
    script.write_text(json.dumps({"script": [], "default": think}))
    proc, port = start_server(script)
    try:
        medians, gaps = [], []
        for i in range(RUNS):
            run_home = home / f"run{i}"
            run_home.mkdir()
            shutil.copytree(home / "task", run_home / "task")
            run_gaps = one_run(run_home, port)
            medians.append(statistics.median(run_gaps) * 1000)
            gaps += run_gaps
            print(f"run {i}: median {medians[-1]:.3f} ms")
        ms = [g * 1000 for g in gaps]
        report(
            "step_overhead",
            {
                "steps": STEPS,
                "runs": RUNS,
                "median_ms": round(statistics.median(medians), 3),
                "p99_ms": round(percentile(ms, 99), 3),
                "run_medians_ms": [round(m, 3) for m in medians],
                "agent_peak_rss_mb": round(rss_mb[0], 1),
                "target_median_ms": 5.0,
            },
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
