"""`run`: a bounded shell command in the workspace sandbox."""

from __future__ import annotations

from typing import Any

from apollo.env.tools.base import Handler, ToolContext, ToolResult, ToolSpec, cap_output


async def run(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Run `command` with bash in /workspace; the output ends with the exit code."""
    limits = ctx.workspace.task.spec.limits
    timeout = float(args.get("timeout") or limits.command_timeout)
    note = ""
    if timeout > limits.command_timeout:
        note = (
            f"[timeout lowered to the task's limit of {limits.command_timeout:g}s; "
            "use session_start for longer commands]\n"
        )
        timeout = limits.command_timeout
    done = await ctx.workspace.sandbox.run(args["command"], timeout=timeout)
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


SPECS = [
    ToolSpec(
        name="run",
        description=(
            "Run a shell command (bash -c) in the workspace (/workspace) and return its combined "
            "stdout/stderr and exit code. The command is killed, with every process it started, "
            "when it ends or times out; use session_start for long or background jobs."
        ),
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "the bash command line"},
                "timeout": {
                    "type": "number",
                    "minimum": 1,
                    "description": "seconds before it is killed (default: the task's limit)",
                },
            },
            "required": ["command"],
        },
    )
]

HANDLERS: dict[str, Handler] = {"run": run}
