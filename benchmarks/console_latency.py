"""Log-to-browser latency: the time from an event appended to a run's log to its arrival at
an SSE client following that run, with 50 runs live and one client per run.

A writer process appends agent steps into the 50 runs (about 100 events/s in all, for
~20 s); the console serves the streams from its own thread; the clients read them over
loopback HTTP. Latency = arrival time - the event's `ts` (set by the store at append, in the
writer process; one host, one clock).

Keys: median_ms, p99_ms. Target: p99 <= 250 ms.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import shutil
import tempfile
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import httpx
from _common import report, summary_ms
from _console import Served

from apollo.rollout.home import Home
from tests.server.fakelog import FakeRun

RUNS = 50
ROUNDS = 20  # steps per run: each step is a model_call and an observation
STEP_INTERVAL_S = 1.0  # per run; runs are staggered across the interval


def writer(home: str, run_ids: list[str], ready: MpEvent) -> None:
    """Append steps into every run in turn, evenly spread, once the clients listen."""
    store = Home(home).open_store()
    fakes = [FakeRun(store, run_id) for run_id in run_ids]
    ready.wait()
    gap = STEP_INTERVAL_S / len(fakes)
    for _ in range(ROUNDS):
        for fake in fakes:
            fake.act("think", {"thought": "working"})
            time.sleep(gap)
    store.close()


async def follow(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], want: int, out: list[float]
) -> None:
    """Read a run's stream until `want` live events arrived, recording each one's latency."""
    got = 0
    async with client.stream("GET", url, headers=headers) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                out.append(time.time() - json.loads(line[6:])["ts"])
                got += 1
                if got == want:
                    return


async def clients(
    url: str, token: str, run_ids: list[str], starts: dict[str, int], ready: MpEvent
) -> list[float]:
    """One stream per run, from its current end; returns every live event's latency."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=RUNS + 5)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        tasks = [
            asyncio.create_task(
                follow(
                    client,
                    f"{url}/api/runs/{rid}/stream?after={starts[rid]}",
                    headers,
                    2 * ROUNDS,
                    latencies,
                )
            )
            for rid in run_ids
        ]
        await asyncio.sleep(1.0)  # every stream connected and caught up
        ready.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=ROUNDS * STEP_INTERVAL_S + 60)
    return latencies


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="apollo-sse-"))
    try:
        home = Home(root)
        store = home.open_store()
        run_ids = []
        for i in range(RUNS):
            fake = FakeRun(store, store.create_run(f"task-{i % 5}", {}).id)
            fake.start()
            run_ids.append(fake.run_id)
        starts = {rid: store.last_seq(rid) for rid in run_ids}
        _, token = store.add_annotator("bench", "viewer")
        store.close()
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(target=writer, args=(str(root), run_ids, ready))
        proc.start()
        with Served(root) as served:
            latencies = asyncio.run(clients(served.url, token, run_ids, starts, ready))
        proc.join(30)
        report(
            "console_latency",
            {
                "runs": RUNS,
                "clients": RUNS,
                "events": len(latencies),
                "events_per_s": round(2 * RUNS / STEP_INTERVAL_S, 1),
                **summary_ms(latencies),
                "poll_interval_ms": 50.0,
                "target_p99_ms": 250.0,
            },
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
