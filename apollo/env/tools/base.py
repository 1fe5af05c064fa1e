"""What every tool shares: its schema, its result, the context it runs in, and the workspace
it works on (a Protocol, so that another sandbox can stand in for bubblewrap)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from apollo.env.sandbox import CommandResult
from apollo.env.sessions import KillReport, SessionOutput, SessionStatus
from apollo.env.task import Limits


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
        """The entry of the `tools` list sent to the model."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def usage(self) -> str:
        """A one-line signature plus one line per parameter, e.g. `run(command: string, ...)`."""
        props: dict[str, Any] = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        sig = ", ".join(
            f"{name}{'' if name in required else '?'}: {schema.get('type', 'any')}"
            for name, schema in props.items()
        )
        lines = [f"{self.name}({sig}): {self.description}"]
        lines += [f"  {n}: {s['description']}" for n, s in props.items() if "description" in s]
        return "\n".join(lines)


@dataclass(slots=True)
class ToolResult:
    """What a tool returns to the agent. `output` is already capped for the model."""

    output: str
    exit: int | None = 0
    error: bool = False  # the tool failed (bad arguments, non-zero exit, crash)
    truncated: bool = False
    # Extra facts for the log (session id, bytes cut, woke_on_guidance, ...).
    meta: dict[str, Any] = field(default_factory=dict)


class CommandRunner(Protocol):
    """Runs bounded commands in the workspace (apollo.env.sandbox.Sandbox)."""

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        """`bash -c command` in /workspace, killed with all it started after `timeout` s."""
        ...


class Sessions(Protocol):
    """Long commands that outlive a step (apollo.env.sessions.SessionManager). Every method
    raises apollo.env.sessions.SessionError, with a message for the agent, when it cannot."""

    def start(self, command: str, name: str | None = None) -> SessionStatus:
        """Start `command` in a new session (id = `name`, or the next free s1, s2, ...)."""
        ...

    async def send(self, sid: str, text: str) -> None:
        """Write `text` to the session's stdin."""
        ...

    def status(self, sid: str) -> SessionStatus:
        """The session's current state."""
        ...

    def statuses(self) -> list[SessionStatus]:
        """All sessions of the run, oldest first."""
        ...

    def read(self, sid: str) -> SessionOutput:
        """Output since the last read."""
        ...

    async def kill(self, sid: str) -> KillReport:
        """Kill the session's processes."""
        ...


class ToolWorkspace(Protocol):
    """What the tools use of a run's workspace (apollo.env.workspace.Workspace)."""

    @property
    def path(self) -> Path:
        """The host folder seen as /workspace; the file tools work on it directly."""
        ...

    @property
    def limits(self) -> Limits:
        """The task's limits (command timeout, output size)."""
        ...

    @property
    def sandbox(self) -> CommandRunner:
        """Runs `run`'s commands."""
        ...

    @property
    def sessions(self) -> Sessions:
        """Runs the session tools' commands."""
        ...


@dataclass(slots=True)
class ToolContext:
    """Everything a tool may touch. `wake` is set when guidance arrives, so waits end early."""

    workspace: ToolWorkspace
    wake: asyncio.Event
    # Called by long waits to learn whether guidance is pending (polls the log).
    guidance_pending: Callable[[], Awaitable[bool]] | None = None


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
