"""`run`: a bounded shell command in the workspace sandbox."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from apollo.env.tools.base import ToolContext, ToolResult, cap_output
from apollo.env.tools.declare import SECONDS, tool


@tool()
async def run(
    ctx: ToolContext,
    command: Annotated[str, Field(description="the bash command line")],
    timeout: Annotated[
        float | None,
        Field(ge=1, description="seconds before it is killed (default: the task's limit)"),
        SECONDS,
    ] = None,
) -> ToolResult:
    """Run a shell command (bash -c) in the workspace (/workspace) and return its combined
    stdout/stderr and exit code. The command is killed, with every process it started, when
    it ends or times out; use session_start for long or background jobs."""
    limits = ctx.workspace.limits
    timeout = timeout or limits.command_timeout
    note = ""
    if timeout > limits.command_timeout:
        note = (
            f"[timeout lowered to the task's limit of {limits.command_timeout:g}s; "
            "use session_start for longer commands]\n"
        )
        timeout = limits.command_timeout
    done = await ctx.workspace.sandbox.run(command, timeout=timeout)
    if done.timed_out:
        status = (
            f"[timed out after {timeout:g}s: the command and all its child processes were "
            "killed; use session_start for long-running commands]"
        )
    else:
        status = f"[exit code: {done.exit_code}]"
    body = done.output if done.output.endswith("\n") or not done.output else done.output + "\n"
    text, truncated = cap_output(note + body + status, limits.output_chars)
    return ToolResult(
        text,
        exit=done.exit_code,
        error=done.exit_code != 0,
        truncated=truncated,
        meta={"timed_out": done.timed_out, "duration_s": round(done.duration_s, 3)},
    )


TOOLS = (run,)
