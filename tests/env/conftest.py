"""Fixtures for the environment tests: a small fake task folder and a workspace over it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apollo.env import beneath
from apollo.env.sandbox import kill_group
from apollo.env.task import Task, load_task
from apollo.env.tools.base import ToolContext
from apollo.env.workspace import Workspace

SCORE_PY = """\
import json, pathlib, sys
answer = pathlib.Path(sys.argv[1]) / "answer.txt"
value = int(answer.read_text()) if answer.exists() else 0
print("checking", answer)
print(json.dumps({"score": value, "found": answer.exists()}))
"""


def make_task_dir(
    root: Path,
    *,
    network: bool = False,
    limits: dict[str, Any] | None = None,
    evaluator: dict[str, Any] | None = None,
    eval_files: dict[str, str] | None = None,
) -> Path:
    """Write a fake task folder (task.yaml, description.md, workspace/, eval/) under root."""
    folder = root / "fake-task"
    (folder / "workspace" / "src").mkdir(parents=True)
    (folder / "eval").mkdir()
    spec = {
        "id": "fake-task",
        "title": "A fake task for the environment tests",
        "network": network,
        "limits": {
            "memory_mb": 512,
            "processes": 64,
            "command_timeout": 20,
            "output_chars": 2000,
            **(limits or {}),
        },
        "evaluator": {
            "command": "python3 score.py {workspace}",
            "timeout": 20,
            **(evaluator or {}),
        },
    }
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    (folder / "description.md").write_text("# Fake\nWrite a number to answer.txt.\n")
    (folder / "workspace" / "src" / "main.py").write_text("def main():\n    return 1\n")
    (folder / "workspace" / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    for name, text in {"score.py": SCORE_PY, "secret.txt": "the hidden answer\n"}.items():
        (folder / "eval" / name).write_text(text)
    for name, text in (eval_files or {}).items():
        (folder / "eval" / name).write_text(text)
    return folder


def kill_leftover_sessions(ws: Workspace) -> None:
    """Kill sessions a test left running (synchronously: fixtures run outside the loop)."""
    for sid in ws.sessions.reattach():
        meta = json.loads((ws.run_dir / "sessions" / sid / "meta.json").read_text())
        kill_group(meta["pid"])
    deadline = time.monotonic() + 5
    # Re-reading the statuses also removes the sessions' cgroups once they are empty.
    while ws.sessions.reattach() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def task(tmp_path: Path) -> Task:
    return load_task(make_task_dir(tmp_path))


@pytest.fixture
def workspace(task: Task, tmp_path: Path) -> Iterator[Workspace]:
    ws = Workspace.create(task, tmp_path / "run")
    yield ws
    kill_leftover_sessions(ws)


@pytest.fixture
def ctx(workspace: Workspace) -> ToolContext:
    return ToolContext(workspace=workspace, wake=asyncio.Event())


@pytest.fixture(params=["openat2", "walk"] if beneath.openat2 else ["walk"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way `apollo.env.beneath` resolves paths on this kernel: openat2 where it has it,
    and always the O_NOFOLLOW walk that stands in where it does not (forced here)."""
    if request.param == "walk":
        monkeypatch.setattr(beneath, "openat2", None)
    return str(request.param)


GENERATE_PY = """\
import json, pathlib, random, sys
seed, workspace, truth = int(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
rng = random.Random(seed)
secret = rng.randrange(10**6, 10**7)
(workspace / "puzzle.txt").write_text(f"find the number behind {secret * 7}\\n")
(truth / "answer.json").write_text(json.dumps({"answer": secret}))
"""

FAMILY_SCORE_PY = """\
import json, pathlib, sys
answer = pathlib.Path(sys.argv[1]) / "answer.txt"
want = json.loads(pathlib.Path("truth/answer.json").read_text())["answer"]
got = answer.read_text().strip() if answer.exists() else ""
print(json.dumps({"score": 100 if got == str(want) else 0}))
"""


def make_family_dir(root: Path, *, family: dict[str, Any] | None = None) -> Path:
    """Write a small task family under root: its generator hides a number in puzzle.txt and
    its evaluator checks answer.txt against the instance's truth."""
    folder = root / "toy-family"
    (folder / "workspace").mkdir(parents=True)
    (folder / "eval").mkdir()
    spec = {
        "id": "toy-family",
        "title": "A toy family for the tests",
        "budget": {"working_time": 600, "steps": 20, "submissions": 2},
        "limits": {"memory_mb": 512, "processes": 64, "command_timeout": 20},
        "evaluator": {"command": "python3 score.py {workspace}", "timeout": 20},
        "success_score": 50,
        "family": {
            "generator": "python3 generate.py {seed} {workspace} {truth}",
            "splits": {"train": "100-119", "test": ["500-504", 900]},
            **(family or {}),
        },
    }
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    (folder / "description.md").write_text("# Toy\nDivide the number in puzzle.txt by 7.\n")
    (folder / "workspace" / "README.txt").write_text("write your answer to answer.txt\n")
    (folder / "eval" / "generate.py").write_text(GENERATE_PY)
    (folder / "eval" / "score.py").write_text(FAMILY_SCORE_PY)
    return folder
