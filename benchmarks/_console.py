"""Shared pieces of the console benchmarks: a home full of runs and the app on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the repository on sys.path)

from apollo.log import schema
from apollo.log.store import Store
from apollo.rollout.home import Home
from apollo.server.app import create_app
from apollo.server.serve import server
from tests.server.fakelog import FakeRun


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fill(store: Store, runs: int, steps: int, live_every: int = 10) -> list[FakeRun]:
    """`runs` runs with realistic small logs: steps of tool calls (some failing), guidance
    delivered and queued, a submission, annotator presence; most finished, some live."""
    out = []
    for i in range(runs):
        fake = FakeRun(store, store.create_run(f"task-{i % 7}", {"options": {}}).id)
        fake.start()
        for s in range(steps):
            if s % 4 == 3:
                fake.act("run", {"command": f"python train.py --seed {s}"}, error=True)
            else:
                fake.act("write_file", {"path": f"notes/{s}.txt", "content": f"note {i} {s}"})
            if s == steps // 2:
                guidance: schema.Guidance = {
                    "id": f"g-{i}",
                    "author": "ann",
                    "kind": "hint",
                    "text": "check the data",
                    "drift_from_step": None,
                    "urgent": False,
                }
                fake.append(schema.GUIDANCE.new(guidance, actor="ann"))
                fake.deliver(guidance["id"])
                fake.append(schema.PRESENCE.new({"seconds": 30.0}, actor="ann"))
        fake.submit(float(i % 100))
        if i % live_every:
            fake.finish()
        out.append(fake)
    return out


class Served:
    """The console app served by uvicorn from a background thread."""

    def __init__(self, home: Path, poll_interval_s: float = 0.05) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(Home(home), tasks=[], poll_interval_s=poll_interval_s)
        self.server = server(app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
