"""Dashboard response time with 1,000 runs in the store: `GET /api/runs` over real HTTP, each
run with a realistic small log (12 steps, guidance, a submission, presence; one in ten live).
Between requests a few live runs get new events, as they would while annotators watch.

Keys: median_ms (warm requests), p99_ms, cold_ms (the first request: every fold built).
Target: median <= 500 ms.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _common import percentile, report
from _console import Served, fill

from apollo.rollout.home import Home

RUNS = 1000
STEPS = 12
REQUESTS = 40
CHANGED_PER_REQUEST = 10


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="apollo-dash-"))
    try:
        home = Home(root)
        store = home.open_store()
        started = time.perf_counter()
        runs = fill(store, RUNS, STEPS)
        events = sum(store.last_seq(r.run_id) for r in runs)
        print(f"filled {RUNS} runs ({events} events) in {time.perf_counter() - started:.1f}s")
        _, token = store.add_annotator("bench", "viewer")
        live = [r for r in runs if store.get_run(r.run_id).status == "running"]  # type: ignore[union-attr]
        rng = random.Random(0)
        with Served(root) as served, httpx.Client(timeout=60) as client:
            headers = {"Authorization": f"Bearer {token}"}
            t = time.perf_counter()
            first = client.get(f"{served.url}/api/runs", headers=headers)
            cold = time.perf_counter() - t
            assert first.status_code == 200 and len(first.json()["runs"]) == RUNS
            samples = []
            size = len(first.content)
            for _ in range(REQUESTS):
                for run in rng.sample(live, CHANGED_PER_REQUEST):
                    run.act("think", {"thought": "still working"})
                t = time.perf_counter()
                r = client.get(f"{served.url}/api/runs", headers=headers)
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
        store.close()
        ms = [s * 1000 for s in samples]
        report(
            "dashboard_scale",
            {
                "runs": RUNS,
                "events": events,
                "median_ms": round(statistics.median(ms), 3),
                "p99_ms": round(percentile(ms, 99), 3),
                "cold_ms": round(cold * 1000, 3),
                "response_bytes": size,
                "changed_runs_per_request": CHANGED_PER_REQUEST,
                "target_median_ms": 500.0,
            },
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
