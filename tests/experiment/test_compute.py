"""Time per phase adds up over the processes that ran an experiment."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from apollo.experiment.compute import FILE, Compute


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_phases_add_up_across_restarts_and_count_a_failed_phase(tmp_path: Path) -> None:
    first = Compute(tmp_path)
    with first.phase("collect"):
        busy(0.05)
    with pytest.raises(RuntimeError), first.phase("train"):
        busy(0.05)
        raise RuntimeError("killed mid-phase")
    again = Compute(tmp_path)  # a later process
    with again.phase("collect"):
        busy(0.05)
    spent = json.loads((tmp_path / FILE).read_text())
    assert set(spent) == {"collect", "train"}
    assert spent["collect"]["cpu_s"] >= 0.1 and spent["train"]["cpu_s"] >= 0.05
    # One busy thread: it cannot spend more CPU than wall time (both are measured).
    assert all(t["wall_s"] >= t["cpu_s"] - 0.01 for t in spent.values())
    assert again.spent == spent
