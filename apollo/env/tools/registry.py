"""The agent's toolbox: looks tools up, checks their arguments, and turns every mistake or
crash into an error result that tells the model how to call the tool right."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apollo.env.tools import commands, files, sessions, wait
from apollo.env.tools.base import ToolContext, ToolResult, ToolSpec
from apollo.env.tools.declare import BadArguments, Tool

_FAMILIES = (commands, sessions, files, wait)


class ToolBox:
    """The environment's tools (run, sessions, files, sleep) plus any `extra` ones (the agent's
    think/submit/finish)."""

    def __init__(self, extra: Sequence[Tool] = ()) -> None:
        """All environment tools, then `extra`; a name given twice is an error."""
        self._tools: dict[str, Tool] = {}
        for declared in [*(t for f in _FAMILIES for t in f.TOOLS), *extra]:
            if declared.method:
                raise ValueError(
                    f"tool {declared.spec.name!r} is a method: give the toolbox the tool read "
                    "from an instance (e.g. agent.think)"
                )
            if declared.spec.name in self._tools:
                raise ValueError(f"tool {declared.spec.name!r} is defined twice")
            self._tools[declared.spec.name] = declared

    def spec(self, name: str) -> ToolSpec | None:
        """The tool called `name`, or None if there is none."""
        found = self._tools.get(name)
        return found.spec if found else None

    def specs(self) -> list[ToolSpec]:
        """Every tool's schema, in a stable order."""
        return [t.spec for t in self._tools.values()]

    async def call(self, name: str, args: Any, ctx: ToolContext) -> ToolResult:
        """Run a tool. Never raises: unknown tools, bad arguments and crashes come back as
        error results that say what was wrong and how to call the tool."""
        if name not in self._tools:
            known = ", ".join(self._tools)
            text = f"Unknown tool {name!r}. Available tools: {known}."
            hint = not_a_tool(name, ctx.workspace.path)
            return ToolResult(f"{text}\n{hint}" if hint else text, exit=None, error=True)
        declared = self._tools[name]
        try:
            checked = declared.check(args)
        except BadArguments as exc:
            return ToolResult(
                f"Bad call to {name}: {exc}.\nUsage: {declared.spec.usage()}",
                exit=None,
                error=True,
                meta={"bad_arguments": True},
            )
        try:
            return await declared(ctx, checked)
        except Exception as exc:
            return ToolResult(
                f"{name} failed: {type(exc).__name__}: {exc}\nUsage: {declared.spec.usage()}",
                exit=None,
                error=True,
                meta={"exception": type(exc).__name__},
            )


# How the `run` tool runs a script, by its suffix.
_RUNNERS = {".py": "python3", ".sh": "bash"}


def not_a_tool(name: str, workspace: Path) -> str | None:
    """When a model calls a tool named after a file of the workspace (a script, typically),
    how to run or read that file instead; None when no such file exists. Looks at the top
    folder and one level down, never through symbolic links."""
    found = _files_named(name, workspace)
    if not found:
        return None
    rel = found[0]
    runner = _RUNNERS.get(Path(rel).suffix)
    if runner:
        command = f"{runner} {shlex.quote(rel)}"
    elif os.access(workspace / rel, os.X_OK):
        command = f"./{shlex.quote(rel)}"
    else:
        return f"{rel} is a file in /workspace, not a tool: read it with read_file."
    call = json.dumps({"command": command})
    return f"{rel} is a file in /workspace, not a tool: run it with the run tool, e.g. run {call}."


def _files_named(name: str, workspace: Path) -> list[str]:
    """Regular files of the workspace called `name` (with any suffix), top folder first."""
    found: list[str] = []
    folders = [workspace]
    for depth in range(2):
        deeper = []
        for folder in folders:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_file(follow_symlinks=False) and (
                    entry.name == name or entry.name.split(".", 1)[0] == name
                ):
                    found.append(os.path.relpath(entry.path, workspace))
                elif depth == 0 and entry.is_dir(follow_symlinks=False):
                    deeper.append(Path(entry.path))
        folders = deeper
    return found
