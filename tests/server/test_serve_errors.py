"""The terminal of `apollo serve`: progress lines that tell runs apart, and a failing request
as one line that says where its traceback went (the log file in the home)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from apollo.llm.scripted import ScriptedServer
from apollo.rollout.home import Home
from apollo.server.serve import SERVER_LOG
from tests.agent.harness import act, make_task
from tests.server.conftest import Tokens, free_port, wait_serving
from tests.server.test_serve import _queue, wait_status

# `apollo serve` itself, with the totals of GET /api/runs broken, so that request is a 500.
CHILD = """\
import sys
from apollo import cli
from apollo.server import views

def broken(*args, **kwargs):
    raise ZeroDivisionError("the totals broke\\x1b[2J")

views.totals = broken
sys.exit(cli.main(["serve", "--home", sys.argv[1], "--port", sys.argv[2]]))
"""


def test_a_500_is_one_line_with_the_traceback_in_the_home(
    home: Home, tokens: Tokens, tmp_path: Path
) -> None:
    task = make_task(tmp_path)
    port = free_port()
    script = [act("think", thought="plan"), act("finish", summary="done")]
    with ScriptedServer(script * 2) as model:
        runs = [_queue(home, task, model.base_url) for _ in range(2)]  # two runs of one task
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home.path), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_serving(url, proc)
            for run_id in runs:
                wait_status(f"{url}/api/runs/{run_id}", tokens.bearer("viewer"), {"finished"})
            r = httpx.get(f"{url}/api/runs", headers=tokens.bearer("viewer"), timeout=10)
            assert r.status_code == 500
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, out
    log_file = home.path / SERVER_LOG
    [error] = [line for line in out.splitlines() if "ZeroDivisionError" in line]
    assert error.startswith("ERROR:") and "Exception in ASGI application" in error
    assert f"ZeroDivisionError: the totals broke\\x1b[2J (traceback in {log_file})" in error
    assert "Traceback" not in out and "\x1b" not in out
    logged = log_file.read_text()
    assert "Traceback (most recent call last)" in logged and "in broken" in logged
    assert "ZeroDivisionError: the totals broke\x1b[2J" in logged  # the file keeps it as it was
    # Progress: each run's lines start with its short id, then the task.
    for run_id in runs:
        short = run_id.rsplit("-", 1)[1]
        mine = [line for line in out.splitlines() if line.startswith(f"{short} fake-task  ")]
        # (The two runs share one script, so which takes which reply is up to the scheduler.)
        assert any("→ finish(summary=done)" in line for line in mine), out
        assert any("run finished: done" in line for line in mine), out
