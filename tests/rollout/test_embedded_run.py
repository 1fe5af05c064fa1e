"""The main job on the embedded default: SmolLM2 served by llama.cpp, started and stopped by
Apollo, constrained to valid tool calls, with the simulated annotator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore


@pytest.mark.slow
def test_demo_runs_a_builtin_task_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "apollo.cli",
            "demo",
            "--max-steps",
            "5",
            "--min-steps",
            "5",
            "--home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run r") and "patient-training" in lines[0]
    run_id = lines[0].split()[1]
    store = SQLiteStore(tmp_path / "apollo.db")
    events = store.events(run_id)
    acts = [e for e in events if e.kind == Kind.MODEL_CALL and e.payload["purpose"] == "act"]
    assert [e.step for e in acts] == [1, 2, 3, 4, 5]
    # Constrained decoding: every reply is a call of an offered tool, none malformed.
    assert all(e.payload["calls"] for e in acts)
    observations = [e for e in events if e.kind == Kind.OBSERVATION]
    assert not any(o.payload.get("malformed") for o in observations)
    assert events[-1].kind == Kind.RUN_FINISHED
    assert any(e.kind == Kind.SUBMISSION and e.payload["final"] for e in events)
    # The model server was stopped with the run: nothing listens on loopback for it anymore.
    leftover = subprocess.run(["pgrep", "-f", "llama_cpp.server"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
