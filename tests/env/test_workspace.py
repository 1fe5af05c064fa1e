"""Workspace lifecycle: create from the template, open to resume, shut down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apollo.env.task import Task
from apollo.env.workspace import Workspace

pytestmark = pytest.mark.anyio


def test_create_copies_the_template_and_hides_eval(task: Task, tmp_path: Path) -> None:
    ws = Workspace.create(task, tmp_path / "run")
    assert ws.path == (tmp_path / "run" / "workspace").resolve()
    assert (ws.path / "src" / "main.py").read_text() == "def main():\n    return 1\n"
    assert not (ws.path / "score.py").exists() and not (ws.path / "eval").exists()
    assert ws.sandbox.sandboxed
    with pytest.raises(FileExistsError, match="open it to resume"):
        Workspace.create(task, tmp_path / "run")


def test_open_needs_an_existing_workspace(task: Task, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="create the run first"):
        Workspace.open(task, tmp_path / "nothing")


async def test_resume_reattaches_and_shutdown_kills(task: Task, tmp_path: Path) -> None:
    first = Workspace.create(task, tmp_path / "run")
    first.sessions.start("sleep 60", name="trainer")
    first.sessions.start("true", name="quick")
    deadline = time.monotonic() + 10
    while first.sessions.status("quick").running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    resumed = Workspace.open(task, tmp_path / "run")
    assert resumed.reattach_sessions() == ["trainer"]
    await resumed.shutdown()
    assert resumed.reattach_sessions() == []
    status = resumed.sessions.status("trainer")
    assert status.killed and not status.running
