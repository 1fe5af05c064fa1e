"""File tools against a background process that swaps symlinks in while they work.

A session can change the workspace between any two system calls of a file tool. Here a real
process keeps turning one name into a regular file, a link to the hidden evaluator's secret, a
folder, and a link to the evaluator's folder, while the tools read, write, edit, list and
search through that name thousands of times. None may ever show the secret or the evaluator's
files, nor create or change anything outside the workspace.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apollo.env.tools.base import ToolContext
from apollo.env.tools.registry import ToolBox

pytestmark = pytest.mark.anyio

ROUNDS = 500

# Every step replaces `race` by renaming a prepared name over it, so the name is missing only
# briefly and each kind of swap (file <-> link especially) happens atomically.
SWAPPER = """
import os, shutil, sys

workspace, secret, hidden_dir = sys.argv[1:]
os.chdir(workspace)


def clear(name):
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, ignore_errors=True)


def put(prepared, replace_directly):
    for _ in range(1000):
        if not replace_directly:
            clear("race")
        try:
            os.rename(prepared, "race")
            return
        except OSError:
            replace_directly = False  # `race` is a folder now (a tool made it): clear it
    clear(prepared)


def link(target):
    clear(".race-link")
    os.symlink(target, ".race-link")
    put(".race-link", replace_directly=True)


rounds = 0
while True:
    clear(".race-file")
    with open(".race-file", "w") as f:
        f.write("inside answer\\n")
    put(".race-file", replace_directly=True)
    link(secret)
    clear(".race-dir")
    os.mkdir(".race-dir")
    with open(".race-dir/secret.txt", "w") as f:
        f.write("inside answer\\n")
    put(".race-dir", replace_directly=False)
    link(hidden_dir)
    rounds += 1
    if rounds == 3:
        print("swapping", flush=True)
"""

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("read_file", {"path": "race"}),
    ("read_file", {"path": "race/secret.txt"}),
    ("write_file", {"path": "race", "content": "inside answer\n"}),
    ("write_file", {"path": "race/secret.txt", "content": "inside answer\n"}),
    ("write_file", {"path": "race/planted/new.txt", "content": "planted\n"}),
    ("edit_file", {"path": "race", "old": "answer", "new": "answer"}),
    ("edit_file", {"path": "race/secret.txt", "old": "answer", "new": "answer"}),
    ("list_files", {"path": "race"}),
    ("list_files", {"depth": 3}),
    ("search", {"pattern": "answer|score", "path": "race"}),
    ("search", {"pattern": "answer|score", "path": "race/secret.txt"}),
    ("search", {"pattern": "answer|score"}),
]


def snapshot(top: Path, skip: Path) -> dict[str, tuple[Any, ...]]:
    """Every name under `top` but `skip`, with what would show a change to it."""
    found: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            found[str(path)] = (info.st_mode, info.st_ino, info.st_mtime_ns, content)
    return found


async def test_symlink_swaps_never_let_a_file_tool_out(
    ctx: ToolContext, tmp_path: Path, mechanism: str
) -> None:
    workspace = ctx.workspace.path
    hidden = ctx.workspace.task.eval_dir
    secret = (hidden / "secret.txt").read_text().strip()
    before = snapshot(tmp_path, skip=workspace)
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(workspace), str(hidden / "secret.txt"), str(hidden)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert swapper.stdout is not None
    box = ToolBox()
    # Per call through `race`: whether it was refused for meeting a link, and whether not.
    outcomes: dict[int, set[bool]] = {i: set() for i in range(len(CALLS))}
    try:
        assert swapper.stdout.readline() == "swapping\n"
        started = time.monotonic()
        for _ in range(ROUNDS):
            for i, (name, args) in enumerate(CALLS):
                result = await box.call(name, args, ctx)
                assert secret not in result.output, (name, args, result.output)
                assert "score.py" not in result.output, (name, args, result.output)
                assert "failed:" not in result.output, (name, args, result.output)
                outcomes[i].add("'race' is a symbolic link" in result.output)
        elapsed = time.monotonic() - started
        assert swapper.poll() is None, "the swapper stopped before the tools did"
    finally:
        swapper.kill()
        swapper.wait()
        swapper.stdout.close()
    assert snapshot(tmp_path, skip=workspace) == before
    # The race really happened: each call through `race` met it both as a link and not.
    for i, (name, args) in enumerate(CALLS):
        if args.get("path", "").startswith("race"):
            assert outcomes[i] == {True, False}, (name, args)
    print(f"{ROUNDS * len(CALLS)} calls in {elapsed:.1f}s ({mechanism})")
