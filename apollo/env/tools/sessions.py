"""Session tools: long commands that keep running between steps (and across a runner crash)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import Field

from apollo.env.sessions import SessionError
from apollo.env.tools.base import ToolContext, ToolResult, cap_output
from apollo.env.tools.declare import SECONDS, tool
from apollo.env.tools.wait import MAX_WAIT_S, WOKE_NOTE, WaitOutcome, wait_until

SessionId = Annotated[str, Field(description="the session id returned by session_start")]


def _capped(ctx: ToolContext, text: str, **meta: Any) -> ToolResult:
    capped, truncated = cap_output(text, ctx.workspace.limits.output_chars)
    return ToolResult(capped, truncated=truncated, meta=meta)


def _refused(err: SessionError) -> ToolResult:
    return ToolResult(str(err), exit=None, error=True)


@tool()
async def session_start(
    ctx: ToolContext,
    command: Annotated[str, Field(description="the bash command line")],
    name: Annotated[
        str | None,
        Field(description="optional id of letters, digits, '.', '_', '-' (default s1, s2)"),
    ] = None,
) -> ToolResult:
    """Start a long-running shell command (training, a server, an interactive program) in a
    named background session in /workspace. It keeps running between steps; read its output
    with session_output."""
    try:
        status = ctx.workspace.sessions.start(command, name)
    except SessionError as err:
        return _refused(err)
    return ToolResult(
        f"Started session {status.id!r}. Read its output with session_output(id={status.id!r}).",
        meta={"session": status.id},
    )


@tool()
async def session_input(ctx: ToolContext, id: SessionId, text: str) -> ToolResult:
    """Send a line of text to a session's standard input (a newline is added if missing)."""
    line = text if text.endswith("\n") else text + "\n"
    try:
        await ctx.workspace.sessions.send(id, line)
    except SessionError as err:
        return _refused(err)
    return ToolResult(f"Sent {len(line)} characters to session {id!r}.")


# Safe to repeat: on resume the read cursor is set back to what the log recorded.
@tool(rerun_on_resume=True)
async def session_output(
    ctx: ToolContext,
    id: SessionId,
    wait: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_S,
            description="seconds to wait for the session to end first, 0 to 600",
        ),
        SECONDS,
    ] = 0,
) -> ToolResult:
    """Return the session's output since the last read, and whether it is still running.
    With wait > 0, first wait until it ends or `wait` seconds pass (ends early if a human
    sends guidance)."""
    manager = ctx.workspace.sessions
    waited = 0.0
    try:
        status = manager.status(id)
        outcome = WaitOutcome.DONE
        if wait > 0 and status.running:
            started = time.monotonic()
            outcome = await wait_until(ctx, wait, lambda: not manager.status(id).running)
            waited = time.monotonic() - started
        output = manager.read(id)
        status = manager.status(id)
    except SessionError as err:
        return _refused(err)
    notes = [f"[session {id!r} {status.describe()}]"]
    if outcome is WaitOutcome.GUIDANCE:
        notes.append(f"[{WOKE_NOTE} Waited {waited:.1f}s of {wait:g}s.]")
    elif outcome is WaitOutcome.ELAPSED:
        notes.append(f"[still running after waiting {wait:g}s]")
    body = output.text or "(no new output)\n"
    if not body.endswith("\n"):
        body += "\n"
    return _capped(
        ctx,
        body + "\n".join(notes),
        session=id,
        running=status.running,
        exit_code=status.exit_code,
        new_bytes=output.new_bytes,
        cursor=output.cursor,
        woke_on_guidance=outcome is WaitOutcome.GUIDANCE,
    )


@tool(rerun_on_resume=True)
async def session_list(ctx: ToolContext) -> ToolResult:
    """List all sessions with their state (running or exit code), runtime and command."""
    sessions = ctx.workspace.sessions.statuses()
    if not sessions:
        return ToolResult("No sessions yet; start one with session_start.")
    lines = [f"{s.id}: {s.describe()}: {s.command}" for s in sessions]
    return _capped(ctx, "\n".join(lines), running=[s.id for s in sessions if s.running])


@tool()
async def session_kill(ctx: ToolContext, id: SessionId) -> ToolResult:
    """Kill a session and every process it started."""
    try:
        report = await ctx.workspace.sessions.kill(id)
    except SessionError as err:
        return _refused(err)
    if report.was_running:
        text = f"Killed session {id!r} after {report.runtime_s:.1f}s."
    else:
        text = f"Session {id!r} had already ended ({report.runtime_s:.1f}s run)."
    return ToolResult(
        text,
        meta={
            "session": id,
            "was_running": report.was_running,
            "runtime_s": round(report.runtime_s, 3),
        },
    )


TOOLS = (session_start, session_input, session_output, session_list, session_kill)
