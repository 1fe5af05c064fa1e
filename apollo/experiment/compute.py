"""CPU and wall time per phase of an experiment, summed over every process that ran it (a
resumed experiment adds to what the earlier ones spent), in HOME/experiments/NAME/compute.json.

CPU time is this process's and its reaped children's (model servers, sandboxed commands,
the evaluator), user plus system: on this machine's 2 cores it can reach twice the wall time.
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

FILE = "compute.json"


def _cpu_s() -> float:
    # process_time and getrusage count in nanoseconds and microseconds; os.times counts
    # clock ticks (10 ms), too coarse for a short phase.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Compute:
    """The time spent per phase, kept in `folder`/compute.json."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self.spent: dict[str, dict[str, float]] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        )

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the block's CPU and wall time to `name` (also when it fails or is
        interrupted: that work was spent)."""
        cpu, wall = _cpu_s(), time.monotonic()
        try:
            yield
        finally:
            done = self.spent.setdefault(name, {"cpu_s": 0.0, "wall_s": 0.0})
            done["cpu_s"] = round(done["cpu_s"] + _cpu_s() - cpu, 3)
            done["wall_s"] = round(done["wall_s"] + time.monotonic() - wall, 3)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.spent, indent=2) + "\n", encoding="utf-8")
            tmp.replace(self.path)
