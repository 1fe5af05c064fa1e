"""What every tool shares: its schema, its result, and the context it runs in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it (OpenAI function schema)."""

    name: str
    description: str
    parameters: dict[str, Any]
    # A read that changes nothing: a call a crash cut short is made again on resume (it must
    # not spend a step); any other cut call is answered "interrupted".
    rerun_on_resume: bool = False

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(slots=True)
class ToolResult:
    """What a tool returns to the agent. `output` is already capped for the model."""

    output: str
    exit: int | None = 0
    error: bool = False  # the tool failed (bad arguments, non-zero exit, crash)
    truncated: bool = False
    # Extra facts for the log (session id, bytes cut, woke_on_guidance, ...).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolContext:
    """Everything a tool may touch. `wake` is set when guidance arrives, so waits end early."""

    workspace: Any  # apollo.env.workspace.Workspace (typed loosely to keep imports one-way)
    wake: asyncio.Event
    # Called by long waits to learn whether guidance is pending (polls the log).
    guidance_pending: Callable[[], Awaitable[bool]] | None = None


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[ToolResult]]


def cap_output(text: str, limit: int) -> tuple[str, bool]:
    """Keep the head and the tail of a long output and say out loud what was cut."""
    if len(text) <= limit:
        return text, False
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    marker = (
        f"\n[... {cut} characters cut; output was {len(text)} characters, head and tail kept ...]\n"
    )
    return text[:head] + marker + text[-tail:], True
