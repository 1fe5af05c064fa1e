"""Session tools: long commands that keep running between steps (and across a runner crash)."""

from __future__ import annotations

import time
from typing import Any

from apollo.env.sessions import SessionError, SessionManager
from apollo.env.tools.base import Handler, ToolContext, ToolResult, ToolSpec, cap_output
from apollo.env.tools.wait import MAX_WAIT_S, WOKE_NOTE, WaitOutcome, wait_seconds, wait_until


def _manager(ctx: ToolContext) -> SessionManager:
    manager: SessionManager = ctx.workspace.sessions
    return manager


def _capped(ctx: ToolContext, text: str, **meta: Any) -> ToolResult:
    capped, truncated = cap_output(text, ctx.workspace.task.spec.limits.output_chars)
    return ToolResult(capped, truncated=truncated, meta=meta)


def _refused(err: SessionError) -> ToolResult:
    return ToolResult(str(err), exit=None, error=True)


async def session_start(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Start a command in a new session and return its id."""
    try:
        status = _manager(ctx).start(args["command"], args.get("name"))
    except SessionError as err:
        return _refused(err)
    return ToolResult(
        f"Started session {status.id!r}. Read its output with session_output(id={status.id!r}).",
        meta={"session": status.id},
    )


async def session_input(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Send a line of text to a session's stdin."""
    text = args["text"] if args["text"].endswith("\n") else args["text"] + "\n"
    try:
        await _manager(ctx).send(args["id"], text)
    except SessionError as err:
        return _refused(err)
    return ToolResult(f"Sent {len(text)} characters to session {args['id']!r}.")


async def session_output(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """New output of a session; with `wait`, first wait for it to end (or for guidance)."""
    manager, sid = _manager(ctx), args["id"]
    seconds = wait_seconds(args, "wait", 0)
    waited = 0.0
    try:
        status = manager.status(sid)
        outcome = WaitOutcome.DONE
        if seconds > 0 and status.running:
            started = time.monotonic()
            outcome = await wait_until(ctx, seconds, lambda: not manager.status(sid).running)
            waited = time.monotonic() - started
        output = manager.read(sid)
        status = manager.status(sid)
    except SessionError as err:
        return _refused(err)
    notes = [f"[session {sid!r} {status.describe()}]"]
    if outcome is WaitOutcome.GUIDANCE:
        notes.append(f"[{WOKE_NOTE} Waited {waited:.1f}s of {seconds:g}s.]")
    elif outcome is WaitOutcome.ELAPSED:
        notes.append(f"[still running after waiting {seconds:g}s]")
    body = output.text or "(no new output)\n"
    if not body.endswith("\n"):
        body += "\n"
    return _capped(
        ctx,
        body + "\n".join(notes),
        session=sid,
        running=status.running,
        exit_code=status.exit_code,
        new_bytes=output.new_bytes,
        cursor=output.cursor,
        woke_on_guidance=outcome is WaitOutcome.GUIDANCE,
    )


async def session_list(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Every session of the run with its state and runtime."""
    sessions = _manager(ctx).statuses()
    if not sessions:
        return ToolResult("No sessions yet; start one with session_start.")
    lines = [f"{s.id}: {s.describe()}: {s.command}" for s in sessions]
    return _capped(ctx, "\n".join(lines), running=[s.id for s in sessions if s.running])


async def session_kill(ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
    """Kill a session's processes."""
    try:
        report = await _manager(ctx).kill(args["id"])
    except SessionError as err:
        return _refused(err)
    if report.was_running:
        text = f"Killed session {args['id']!r} after {report.runtime_s:.1f}s."
    else:
        text = f"Session {args['id']!r} had already ended ({report.runtime_s:.1f}s run)."
    return ToolResult(
        text,
        meta={
            "session": args["id"],
            "was_running": report.was_running,
            "runtime_s": round(report.runtime_s, 3),
        },
    )


def _params(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


_ID = {"type": "string", "description": "the session id returned by session_start"}

SPECS = [
    ToolSpec(
        "session_start",
        "Start a long-running shell command (training, a server, an interactive program) in a "
        "named background session in /workspace. It keeps running between steps; read its "
        "output with session_output.",
        _params(
            {
                "command": {"type": "string", "description": "the bash command line"},
                "name": {
                    "type": "string",
                    "description": "optional id of letters, digits, '.', '_', '-' (default s1, s2)",
                },
            },
            ["command"],
        ),
    ),
    ToolSpec(
        "session_input",
        "Send a line of text to a session's standard input (a newline is added if missing).",
        _params({"id": _ID, "text": {"type": "string"}}, ["id", "text"]),
    ),
    ToolSpec(
        "session_output",
        "Return the session's output since the last read, and whether it is still running. "
        "With wait > 0, first wait until it ends or `wait` seconds pass (ends early if a human "
        "sends guidance).",
        _params(
            {
                "id": _ID,
                "wait": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_WAIT_S,
                    "description": "seconds to wait for the session to end first, 0 to 600",
                },
            },
            ["id"],
        ),
        # Safe to repeat: on resume the read cursor is set back to what the log recorded.
        rerun_on_resume=True,
    ),
    ToolSpec(
        "session_list",
        "List all sessions with their state (running or exit code), runtime and command.",
        _params({}, []),
        rerun_on_resume=True,
    ),
    ToolSpec(
        "session_kill",
        "Kill a session and every process it started.",
        _params({"id": _ID}, ["id"]),
    ),
]

HANDLERS: dict[str, Handler] = {
    "session_start": session_start,
    "session_input": session_input,
    "session_output": session_output,
    "session_list": session_list,
    "session_kill": session_kill,
}
