"""Episodes per hour of `apollo eval` on the embedded Qwen2.5-Coder-0.5B for one family, and
how much of an episode's time is spent outside the model server.

The batch driver of `apollo eval` (apollo.rollout.batch) runs test instances of noise-filter
one at a time (concurrency 1: this machine has two shared cores, and a second llama.cpp server
would take them from the first) without guidance, in a fresh home, starting new episodes for
DRIVE_S seconds and letting the last one end (each is capped at MAX_STEPS steps and the
family's 5-minute working-time budget), so the whole benchmark ends within 15 minutes.

Per episode, from its log: wall time from its first event to its last; time inside model calls
(the client's time from request to parsed reply, `latency_ms` of each model_call event);
time inside tools (`duration_ms` of each observation; a `submit` call's evaluation is in it);
the final evaluation (from the event before the final submission to it).

Keys: episodes, episodes_per_hour (episodes over the batch's wall time, the model server's
start included), episodes_per_hour_steady (3600 / mean episode wall time), framework_share =
time outside model calls / episode time, summed over episodes (target <= 0.05); its parts
tool_share, final_eval_share and overhead_share (the rest: the agent, the log, the runner);
server_start_s; mean_steps; success_rate; load (1-minute load average before and after).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
from typing import Any

from _common import report
from _synthetic import temp_home

from apollo.llm import models
from apollo.log import schema
from apollo.log.events import Event
from apollo.rollout.batch import Batch, BatchPlan, Episode
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner, RunOptions

MODEL = "embedded:qwen2.5-coder-0.5b"
FAMILY = "noise-filter"
DRIVE_S = 420.0  # new episodes start until then
MAX_STEPS = 10
N = 20  # more instances than can run in DRIVE_S: the clock ends the batch


def final_eval_s(events: list[Event]) -> float:
    """Time of the final evaluation: from the event before the final submission to it."""
    for prev, ev in itertools.pairwise(events):
        sub = schema.SUBMISSION.of(ev)
        if sub is not None and sub["final"]:
            return ev.ts - prev.ts
    return 0.0


async def drive(home: Home) -> dict[str, Any]:
    plan = BatchPlan(
        kind="eval",
        tag="bench",
        families=(FAMILY,),
        split="test",
        n=N,
        repeats=1,
        options=RunOptions(model=models.canonical(MODEL), max_steps=MAX_STEPS),
    )
    batch = Batch(home, plan)
    runner = Runner(home)
    began = time.monotonic()
    try:
        result = await batch.drive(
            concurrency=1, runner=runner, stop=lambda: time.monotonic() - began > DRIVE_S
        )
    finally:
        await runner.aclose()
    episodes: list[Episode] = result.episodes
    store = home.open_store()
    finals = [final_eval_s(store.events(e.run_id)) for e in episodes]
    first = store.events(episodes[0].run_id)[0].ts if episodes else 0.0
    created = store.get_run(episodes[0].run_id).created if episodes else 0.0  # type: ignore[union-attr]
    return {"result": result, "episodes": episodes, "finals": finals, "start": first - created}


def main() -> None:
    home = Home(temp_home())
    try:
        load_before = os.getloadavg()[0]
        began = time.monotonic()
        out = asyncio.run(drive(home))
        wall = time.monotonic() - began
        episodes: list[Episode] = out["episodes"]
        for e in episodes:
            print(
                f"{e.family}@{e.seed}: {e.status}, score {e.score}, {e.steps} steps, "
                f"wall {e.wall_s:.1f}s, model {e.model_s:.1f}s, tools {e.tool_s:.1f}s"
            )
        total = sum(e.wall_s for e in episodes)
        model = sum(e.model_s for e in episodes)
        tools = sum(e.tool_s for e in episodes)
        finals = sum(out["finals"])
        report(
            "eval_throughput",
            {
                "model": MODEL,
                "family": FAMILY,
                "max_steps": MAX_STEPS,
                "concurrency": 1,
                "episodes": len(episodes),
                "wall_s": round(wall, 1),
                "episodes_per_hour": round(len(episodes) / wall * 3600, 2),
                "episodes_per_hour_steady": round(3600 / (total / len(episodes)), 2),
                "framework_share": round((total - model) / total, 4),
                "tool_share": round(tools / total, 4),
                "final_eval_share": round(finals / total, 4),
                "overhead_share": round((total - model - tools - finals) / total, 4),
                "target_framework_share": 0.05,
                "server_start_s": round(out["start"], 1),
                "mean_steps": round(sum(e.steps for e in episodes) / len(episodes), 2),
                "mean_episode_s": round(total / len(episodes), 1),
                "success_rate": round(sum(e.success for e in episodes) / len(episodes), 3),
                "load": {"before": load_before, "after": os.getloadavg()[0]},
                "note": "shared 2-core machine: other agents' tests ran at the same time",
            },
        )
    finally:
        shutil.rmtree(home.path, ignore_errors=True)


if __name__ == "__main__":
    main()
