"""The agent's toolbox: looks tools up, checks their arguments, and turns every mistake or
crash into an error result that tells the model how to call the tool right."""

from __future__ import annotations

from collections.abc import Sequence
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
            return ToolResult(
                f"Unknown tool {name!r}. Available tools: {known}.", exit=None, error=True
            )
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
