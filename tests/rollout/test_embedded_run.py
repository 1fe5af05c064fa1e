"""The main job on the embedded default model served by llama.cpp, started and stopped by
Apollo, constrained to valid tool calls, with the simulated annotator."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore


def no_model_server_left(home: Path) -> bool:
    """Whether no model server of `home` runs (its model file lies in the home's cache, so
    servers of other homes, another test session's, do not count)."""
    # The default model is assembled into the home's cache, so this pattern sees its servers.
    assert any((home / "models").glob("*.gguf")), "the model was not served from the home"
    pattern = f"llama_cpp.server --model {home.resolve()}/"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return found.stdout.strip() == ""


@pytest.mark.slow
def test_a_builtin_task_runs_end_to_end_on_the_embedded_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "apollo.cli",
            "run",
            "patient-training",
            "--annotator",
            "simulated",
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
    assert no_model_server_left(tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_demo_serves_the_console_with_two_runs_and_an_admin_login(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apollo.cli",
            "demo",
            "--steps",
            "3",
            "--max-running",
            "1",
            "--port",
            str(port),
            "--home",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        login = None
        head = []
        while login is None:
            line = proc.stdout.readline()
            assert line, "demo exited early:\n" + "".join(head)
            head.append(line)
            login = re.search(r"sign in at (http://\S+/login) as (\S+) with token (\S+)", line)
        assert sum("demo run r" in h for h in head) == 2
        assert any(h.startswith("1 run at a time on ") for h in head), head
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    answer = client.post(
                        "/api/login", json={"name": login.group(2), "token": login.group(3)}
                    )
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the console never came up"
                    time.sleep(0.2)
            assert answer.status_code == 200 and answer.json()["role"] == "admin"
            deadline = time.monotonic() + 900  # the 1.5B, one run after the other
            while True:
                runs = client.get("/api/runs").json()["runs"]
                # Each run ends at its last step: the step budget, or `finish`, which the demo
                # allows only at that step (which of the two the small model picks varies).
                if len(runs) == 2 and all(r["status"] in ("timeout", "finished") for r in runs):
                    break
                assert time.monotonic() < deadline, f"demo runs did not finish: {runs}"
                time.sleep(1)
            assert client.get("/").status_code == 200
            # Neither run called its model before the model was up.
            assert [r["cost"]["model_retries"] for r in runs] == [0, 0]
        assert {r["task"] for r in runs} == {"noise-filter@1000", "bug-patch@1000"}
        assert all(r["step"] == 3 for r in runs)
        # One run at a time: the second started only after the first had ended.
        store = SQLiteStore(tmp_path / "apollo.db")
        spans = sorted(
            (
                min(e.ts for e in events if e.kind == Kind.RUN_STARTED),
                max(e.ts for e in events if e.kind == Kind.RUN_FINISHED),
            )
            for events in (store.events(r["id"]) for r in runs)
        )
        store.close()
        assert spans[0][1] <= spans[1][0], spans
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest[-2000:]
    # Live progress of both runs was printed in the terminal, each line starting with the
    # run's short id, then its task.
    out = "".join(head) + rest
    demo_runs = re.findall(r"demo run r\S+-(\w+): task (\S+),", "".join(head))
    assert {task for _, task in demo_runs} == {"noise-filter@1000", "bug-patch@1000"}
    for short, task in demo_runs:
        assert any(line.startswith(f"{short} {task}  ") for line in out.splitlines()), out
    assert no_model_server_left(tmp_path)
