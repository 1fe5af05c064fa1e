"""The toolbox: argument checking, error results, `run`, output capping and session tools."""

from __future__ import annotations

import time

import pytest

from apollo.env.tools.base import ToolContext, ToolResult
from apollo.env.tools.declare import tool
from apollo.env.tools.registry import ToolBox

pytestmark = pytest.mark.anyio

EXPECTED = {
    "run",
    "session_start",
    "session_input",
    "session_output",
    "session_list",
    "session_kill",
    "read_file",
    "write_file",
    "edit_file",
    "list_files",
    "search",
    "sleep",
}


@tool()
async def explode(ctx: ToolContext) -> ToolResult:
    """Always fails."""
    raise RuntimeError("the disk is on fire")


def test_specs_are_valid_function_schemas() -> None:
    specs = ToolBox().specs()
    assert {s.name for s in specs} == EXPECTED
    for spec in specs:
        schema = spec.schema()
        assert schema["type"] == "function"
        params = schema["function"]["parameters"]
        assert params["type"] == "object"
        assert set(params.get("required", [])) <= set(params["properties"])


def test_a_tool_name_cannot_be_registered_twice() -> None:
    @tool()
    async def run(ctx: ToolContext) -> ToolResult:
        """Again."""
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="defined twice"):
        ToolBox(extra=[run])


async def test_mistakes_become_error_results_that_teach(ctx: ToolContext) -> None:
    box = ToolBox(extra=[explode])
    unknown = await box.call("rnu", {"command": "ls"}, ctx)
    assert unknown.error and "Unknown tool 'rnu'" in unknown.output and "run" in unknown.output

    missing = await box.call("run", {}, ctx)
    assert missing.error and "missing required argument(s): 'command'" in missing.output
    assert "Usage: run(command: string, timeout?: number)" in missing.output

    wrong = await box.call("read_file", {"path": 3}, ctx)
    assert wrong.error and "'path' must be a string" in wrong.output

    extra = await box.call("sleep", {"seconds": 1, "minutes": 2}, ctx)
    assert extra.error and "unknown argument(s): 'minutes'" in extra.output

    too_long = await box.call("sleep", {"seconds": 10_000}, ctx)
    assert too_long.error and "between 0 and 600" in too_long.output

    not_object = await box.call("sleep", ["seconds", 1], ctx)
    assert not_object.error and "JSON object" in not_object.output

    crash = await box.call("explode", {}, ctx)
    assert crash.error and "RuntimeError: the disk is on fire" in crash.output


async def test_numbers_sent_as_text_and_nulls_are_accepted(ctx: ToolContext) -> None:
    box = ToolBox()
    result = await box.call("run", {"command": "echo ok", "timeout": "5"}, ctx)
    assert not result.error and result.output == "ok\n[exit code: 0]"
    result = await box.call("list_files", {"path": None, "depth": "1"}, ctx)
    assert not result.error and "src/" in result.output


async def test_run_reports_exit_codes_and_timeouts(ctx: ToolContext) -> None:
    box = ToolBox()
    failed = await box.call("run", {"command": "echo oops >&2; exit 4"}, ctx)
    assert failed.error and failed.exit == 4
    assert failed.output == "oops\n[exit code: 4]"

    started = time.monotonic()
    slow = await box.call("run", {"command": "sleep 30", "timeout": 1}, ctx)
    assert time.monotonic() - started < 4
    assert slow.error and slow.meta["timed_out"]
    assert "timed out after 1s" in slow.output and "session_start" in slow.output

    # The fake task's limit is 20 s; asking for more is lowered, and said so.
    capped = await box.call("run", {"command": "true", "timeout": 500}, ctx)
    assert "lowered to the task's limit of 20s" in capped.output


async def test_long_output_keeps_head_and_tail_and_says_so(ctx: ToolContext) -> None:
    result = await ToolBox().call("run", {"command": "seq 1 20000"}, ctx)
    assert result.truncated
    assert len(result.output) < 2000 + 200  # the fake task's output_chars, plus the marker
    assert result.output.startswith("1\n2\n3\n")
    assert result.output.endswith("19999\n20000\n[exit code: 0]")
    assert "characters cut" in result.output


async def test_session_tools_end_to_end(ctx: ToolContext) -> None:
    box = ToolBox()
    started = await box.call("session_start", {"command": "cat -n", "name": "talk"}, ctx)
    assert not started.error and started.meta["session"] == "talk"
    sent = await box.call("session_input", {"id": "talk", "text": "first"}, ctx)
    assert not sent.error and "6 characters" in sent.output  # the newline was added
    out = await box.call("session_output", {"id": "talk"}, ctx)
    deadline = time.monotonic() + 5
    while "(no new output)" in out.output and time.monotonic() < deadline:
        time.sleep(0.05)
        out = await box.call("session_output", {"id": "talk"}, ctx)
    assert "1\tfirst" in out.output and "running" in out.output
    time.sleep(0.3)
    again = await box.call("session_output", {"id": "talk"}, ctx)
    assert "(no new output)" in again.output
    listing = await box.call("session_list", {}, ctx)
    assert listing.output.startswith("talk: running for") and listing.meta["running"] == ["talk"]
    killed = await box.call("session_kill", {"id": "talk"}, ctx)
    assert killed.meta["was_running"] is True and killed.meta["runtime_s"] >= 0.3
    listing = await box.call("session_list", {}, ctx)
    assert "talk: killed after" in listing.output
    gone = await box.call("session_input", {"id": "talk", "text": "x"}, ctx)
    assert gone.error and "not running" in gone.output
    unknown = await box.call("session_output", {"id": "nope"}, ctx)
    assert unknown.error and "known sessions: talk" in unknown.output


async def test_session_output_waits_for_the_end(ctx: ToolContext) -> None:
    box = ToolBox()
    await box.call("session_start", {"command": "sleep 0.5; echo finished; exit 2"}, ctx)
    started = time.monotonic()
    out = await box.call("session_output", {"id": "s1", "wait": 30}, ctx)
    assert 0.4 < time.monotonic() - started < 3
    assert "finished" in out.output and "exited with code 2" in out.output
    assert out.meta["exit_code"] == 2 and not out.meta["woke_on_guidance"]


async def test_a_tool_named_after_a_workspace_script_says_how_to_run_it(
    ctx: ToolContext,
) -> None:
    root = ctx.workspace.path
    (root / "tools").mkdir()
    (root / "tools" / "probe.py").write_text("print('probing')\n")
    (root / "merge").write_text("#!/bin/sh\necho merged\n")
    (root / "merge").chmod(0o755)
    (root / "notes.txt").write_text("a note\n")
    (root / "elsewhere").symlink_to(root / "tools")  # never followed
    box = ToolBox()
    probe = await box.call("probe", {}, ctx)
    assert probe.error and "Available tools: run" in probe.output
    assert "tools/probe.py is a file in /workspace, not a tool" in probe.output
    assert 'run {"command": "python3 tools/probe.py"}' in probe.output
    merge = await box.call("merge", {"input": "a"}, ctx)
    assert 'run {"command": "./merge"}' in merge.output
    notes = await box.call("notes", {}, ctx)
    assert "notes.txt is a file in /workspace, not a tool: read it with read_file" in notes.output
    other = await box.call("frobnicate", {}, ctx)
    assert other.error and "not a tool" not in other.output
    assert "elsewhere" not in probe.output
