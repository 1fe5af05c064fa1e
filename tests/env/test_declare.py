"""Tools declared once: the schema the model sees is derived from the signature and docstring,
and arguments are checked by pydantic, leniently where models are sloppy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

from apollo.env.sandbox import CommandResult
from apollo.env.task import Limits
from apollo.env.tools.base import ToolContext, ToolResult
from apollo.env.tools.commands import run
from apollo.env.tools.declare import BadArguments, tool
from apollo.env.tools.files import read_file
from apollo.env.tools.registry import ToolBox
from apollo.env.tools.sessions import session_output
from apollo.env.tools.wait import sleep

pytestmark = pytest.mark.anyio


def test_read_file_schema_is_derived_in_the_plain_function_shape() -> None:
    assert read_file.spec.schema() == {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file of the workspace, with line numbers (the numbers "
            "are not part of the file). Use start_line/end_line for long files.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "relative to the workspace, or under /workspace",
                    },
                    "start_line": {"type": "integer", "minimum": 1, "description": "first line"},
                    "end_line": {"type": "integer", "minimum": 1, "description": "last line"},
                },
                "required": ["path"],
            },
        },
    }
    assert read_file.spec.rerun_on_resume


def test_session_output_schema_keeps_both_bounds_of_a_number() -> None:
    assert session_output.spec.parameters == {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "the session id returned by session_start"},
            "wait": {
                "type": "number",
                "minimum": 0,
                "maximum": 600.0,
                "description": "seconds to wait for the session to end first, 0 to 600",
            },
        },
        "required": ["id"],
    }


def test_numbers_are_taken_leniently_but_a_bool_is_not_a_number() -> None:
    assert read_file.check({"path": "a", "start_line": "5"}) == {
        "path": "a",
        "start_line": 5,
        "end_line": None,
    }
    assert session_output.check({"id": "s1", "wait": "2.5"}) == {"id": "s1", "wait": 2.5}
    # A null for an optional argument means it was not given: the default applies.
    assert read_file.check({"path": "a", "start_line": None})["start_line"] == 1
    cases: list[tuple[Any, str]] = [
        (True, "argument 'start_line' must be a whole number, got True"),
        (1.5, "argument 'start_line' must be a whole number, got 1.5"),
        ("five", "argument 'start_line' must be a whole number, got 'five'"),
        (0, "argument 'start_line' must be at least 1, got 0"),
    ]
    for given, message in cases:
        with pytest.raises(BadArguments) as refused:
            read_file.check({"path": "a", "start_line": given})
        assert str(refused.value) == message
    with pytest.raises(BadArguments) as refused:
        session_output.check({"id": "s1", "wait": "inf"})
    assert str(refused.value) == "argument 'wait' must be a finite number, got 'inf'"
    with pytest.raises(BadArguments) as refused:
        session_output.check({"id": "s1", "wait": False})
    assert str(refused.value) == "argument 'wait' must be a number, got False"


async def test_unknown_and_missing_arguments_are_named_with_the_usage(ctx: ToolContext) -> None:
    result = await ToolBox().call("read_file", {"file": "a", "start_line": 0}, ctx)
    assert result.error and result.meta == {"bad_arguments": True}
    first, usage = result.output.split("\nUsage: ", 1)
    assert first == (
        "Bad call to read_file: unknown argument(s): 'file'; missing required argument(s): "
        "'path'; argument 'start_line' must be at least 1, got 0."
    )
    assert usage.startswith("read_file(path: string, start_line?: integer, end_line?: integer)")
    assert "\n  start_line: first line" in usage


class _Counter:
    """Tools declared on methods are bound to the instance they are read from."""

    def __init__(self) -> None:
        self.total = 0

    @tool(rerun_on_resume=True)
    async def add(
        self, ctx: ToolContext, amount: Annotated[int, Field(ge=1, description="how much")]
    ) -> ToolResult:
        """Add to the count."""
        self.total += amount
        return ToolResult(f"count {self.total}")


async def test_a_tool_declared_once_is_in_the_toolbox_with_its_rerun_flag(
    ctx: ToolContext,
) -> None:
    counter = _Counter()
    box = ToolBox(extra=[counter.add])
    [spec] = [s for s in box.specs() if s.name == "add"]
    assert spec is box.spec("add") and spec.rerun_on_resume
    assert spec.schema()["function"]["description"] == "Add to the count."
    assert spec.parameters["required"] == ["amount"]
    assert (await box.call("add", {"amount": "2"}, ctx)).output == "count 2"
    assert (await box.call("add", {"amount": 3}, ctx)).output == "count 5"
    assert counter.total == 5
    run = box.spec("run")
    assert run is not None and not run.rerun_on_resume
    with pytest.raises(ValueError, match="read from an instance"):
        ToolBox(extra=[_Counter.add])


def test_a_declaration_the_model_could_not_be_shown_is_refused_at_once() -> None:
    async def undocumented(ctx: ToolContext) -> ToolResult:
        return ToolResult("")

    with pytest.raises(TypeError, match="docstring"):
        tool()(undocumented)

    async def no_context(path: str) -> ToolResult:
        """Has no ctx."""
        return ToolResult(path)

    with pytest.raises(TypeError, match="ctx: ToolContext"):
        tool()(no_context)

    async def nested(ctx: ToolContext, options: dict[str, Any]) -> ToolResult:
        """Takes an object."""
        return ToolResult("")

    with pytest.raises(TypeError, match="argument 'options'"):
        tool()(nested)


@dataclass
class _EchoSandbox:
    """Another sandbox: answers every command with its own text, and keeps what it ran."""

    ran: list[tuple[str, float]] = field(default_factory=list)

    async def run(self, command: str, *, timeout: float) -> CommandResult:
        self.ran.append((command, timeout))
        return CommandResult(f"ran {command}\n", "", 0, False, 0.01)


@dataclass
class _OtherWorkspace:
    path: Path
    limits: Limits
    sandbox: _EchoSandbox
    sessions: Any = None  # `run` needs no sessions


async def test_another_sandbox_can_be_plugged_in(tmp_path: Path) -> None:
    sandbox = _EchoSandbox()
    ws = _OtherWorkspace(tmp_path, Limits(command_timeout=30), sandbox)
    ctx = ToolContext(workspace=ws, wake=asyncio.Event())
    result = await ToolBox().call("run", {"command": "make", "timeout": "900"}, ctx)
    assert result.output.endswith("ran make\n[exit code: 0]") and not result.error
    assert sandbox.ran == [("make", 30.0)]  # lowered to the task's limit


def test_seconds_may_be_written_with_units() -> None:
    assert sleep.check({"seconds": "1m30s"}) == {"seconds": 90.0}
    assert sleep.check({"seconds": "45s"}) == {"seconds": 45.0}
    assert sleep.check({"seconds": "12"}) == {"seconds": 12.0}
    assert run.check({"command": "make", "timeout": "2m"})["timeout"] == 120.0
    # A duration copied from the budget footer is converted, then checked like any number.
    with pytest.raises(BadArguments, match=r"'seconds' must be between 0 and 600.0, got 1194.0"):
        sleep.check({"seconds": "19m54s"})
    with pytest.raises(BadArguments, match="'seconds' must be a number, got 'soon'"):
        sleep.check({"seconds": "soon"})
    assert sleep.spec.parameters["properties"]["seconds"]["type"] == "number"
