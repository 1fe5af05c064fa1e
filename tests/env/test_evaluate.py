"""The evaluator contract: JSON score on the last stdout line; every failure is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apollo.env.evaluate import EVALUATOR_ERROR, REJECTED, SCORED, evaluate
from apollo.env.task import load_task
from apollo.env.workspace import Workspace
from tests.env.conftest import kill_leftover_sessions, make_task_dir

pytestmark = pytest.mark.anyio


async def _evaluate(tmp_path: Path, script: str | None = None, **evaluator: Any) -> Any:
    files = {"check.py": script} if script is not None else {}
    if script is not None:
        evaluator.setdefault("command", "python3 check.py {workspace}")
    task = load_task(make_task_dir(tmp_path, evaluator=evaluator, eval_files=files))
    ws = Workspace.create(task, tmp_path / "run")
    (ws.path / "answer.txt").write_text("42\n")
    result = await evaluate(task, ws)
    kill_leftover_sessions(ws)
    return result


async def test_good_score_with_details(tmp_path: Path) -> None:
    result = await _evaluate(tmp_path)
    assert result.error is None and result.status == SCORED
    assert result.score == 42.0
    assert result.details == {"found": True}
    assert result.duration_s > 0


async def test_score_is_clamped_to_the_range(tmp_path: Path) -> None:
    script = 'import json; print(json.dumps({"score": 250}))'
    result = await _evaluate(tmp_path, script, score_range=[0, 100])
    assert result.score == 100.0 and result.error is None


async def test_crash_reports_exit_code_and_stderr(tmp_path: Path) -> None:
    result = await _evaluate(tmp_path, "raise SystemExit('cannot parse the submission')")
    assert result.score is None and result.status == EVALUATOR_ERROR
    assert "exited with code 1" in result.error
    assert "cannot parse the submission" in result.error


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("print('score: 12')", "not JSON"),
        ("print('[1, 2]')", "not an object"),
        ("print('{\"accuracy\": 0.5}')", "no finite numeric 'score'"),
        ('print(\'{"score": "high"}\')', "no finite numeric 'score'"),
        ("pass", "printed nothing"),
    ],
)
async def test_bad_output_is_an_error(tmp_path: Path, script: str, message: str) -> None:
    result = await _evaluate(tmp_path, script)
    assert result.score is None and message in result.error
    assert result.status == EVALUATOR_ERROR


async def test_a_script_gone_after_load_is_an_evaluator_error(tmp_path: Path) -> None:
    """load_task checks the script; one removed later still fails clearly, never as a score."""
    task = load_task(make_task_dir(tmp_path))
    (task.eval_dir / "score.py").unlink()
    ws = Workspace.create(task, tmp_path / "run")
    result = await evaluate(task, ws)
    kill_leftover_sessions(ws)
    assert (result.score, result.status) == (None, EVALUATOR_ERROR)
    assert "exited with code 2" in result.error and "can't open file" in result.error


async def test_timeout_is_an_error(tmp_path: Path) -> None:
    script = "import sys, time; print('working', file=sys.stderr, flush=True); time.sleep(60)"
    result = await _evaluate(tmp_path, script, timeout=1)
    assert result.score is None and result.status == EVALUATOR_ERROR
    assert "timed out after 1s" in result.error and "working" in result.error
    assert result.duration_s < 5


async def test_workspace_is_read_only_and_network_cut_for_the_evaluator(tmp_path: Path) -> None:
    script = """
import json, sys, pathlib, socket
ws = pathlib.Path(sys.argv[1])
try:
    (ws / "answer.txt").write_text("100")
    wrote = True
except OSError:
    wrote = False
pathlib.Path("/tmp/scratch").write_text("ok")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    online = True
except OSError:
    online = False
print(json.dumps({"score": 1, "wrote": wrote, "online": online}))
"""
    result = await _evaluate(tmp_path, script)
    assert result.error is None
    assert result.details == {"wrote": False, "online": False}
    assert (tmp_path / "run" / "workspace" / "answer.txt").read_text() == "42\n"


async def test_links_out_of_the_workspace_are_refused(tmp_path: Path) -> None:
    """A link to the hidden eval folder would let a submission read the answers."""
    task = load_task(make_task_dir(tmp_path))
    ws = Workspace.create(task, tmp_path / "run")
    (ws.path / "answer.txt").symlink_to(task.eval_dir / "secret.txt")
    (ws.path / "inside.txt").symlink_to(ws.path / "notes.txt")  # links inside are fine
    result = await evaluate(task, ws)
    assert result.score is None and result.status == REJECTED  # the agent can fix this one
    assert "links pointing outside" in result.error and "answer.txt" in result.error
    assert "inside.txt" not in result.error
    (ws.path / "answer.txt").unlink()
    (ws.path / "answer.txt").write_text("7\n")
    assert (await evaluate(task, ws)).score == 7.0
    kill_leftover_sessions(ws)
