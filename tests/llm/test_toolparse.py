"""Tool-call repair and the error messages a model gets back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apollo.llm import toolparse
from apollo.llm.base import Completion, ToolCall
from tests.llm.common import TOOLS

INDEX = toolparse.tool_index(TOOLS)

# (case, model text, expected [(name, arguments)])
REPAIRS: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = [
    (
        "tool_call tag",
        'I will list.\n<tool_call>\n{"name": "run", "arguments": {"command": "ls"}}\n</tool_call>',
        [("run", {"command": "ls"})],
    ),
    (
        "two tags",
        '<tool_call>{"name": "think", "arguments": {"thought": "a"}}</tool_call>'
        '<tool_call>{"name": "run", "arguments": {"command": "pwd"}}</tool_call>',
        [("think", {"thought": "a"}), ("run", {"command": "pwd"})],
    ),
    (
        "unclosed tag",
        '<tool_call>{"name": "run", "arguments": {"command": "ls"}}',
        [("run", {"command": "ls"})],
    ),
    (
        "fenced json in tag",
        '<tool_call>\n```json\n{"name": "run", "arguments": {"command": "ls"}}\n```\n</tool_call>',
        [("run", {"command": "ls"})],
    ),
    (
        "json fence",
        'Plan:\n```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```\nDone.',
        [("read_file", {"path": "a.py"})],
    ),
    (
        "bare fence",
        '```\n{"tool": "run", "parameters": {"command": "make"}}\n```',
        [("run", {"command": "make"})],
    ),
    (
        "bare object",
        'Sure! {"name": "finish", "arguments": {"summary": "all done"}} That is it.',
        [("finish", {"summary": "all done"})],
    ),
    (
        "arguments as a string",
        '{"name": "run", "arguments": "{\\"command\\": \\"ls -la\\"}"}',
        [("run", {"command": "ls -la"})],
    ),
    (
        "OpenAI function wrapper",
        '{"type": "function", "function": {"name": "run", '
        '"arguments": "{\\"command\\": \\"id\\"}"}}',
        [("run", {"command": "id"})],
    ),
    (
        "function key holds the name",
        '{"function": "think", "args": {"thought": "hmm"}}',
        [("think", {"thought": "hmm"})],
    ),
    (
        "constrained-style object",
        '{"thought": "look around", "tool": "run", "arguments": {"command": "ls"}}',
        [("run", {"command": "ls"})],
    ),
    (
        "single quotes, trailing commas, Python literals",
        "{'name': 'run', 'arguments': {'command': 'echo \"hi\"', 'timeout': None,},}",
        [("run", {"command": 'echo "hi"', "timeout": None})],
    ),
    (
        "True/False and unquoted keys",
        "<tool_call>{name: 'write_file', arguments: {path: 'x', content: 'True story', "
        "flag: True}}</tool_call>",
        [("write_file", {"path": "x", "content": "True story", "flag": True})],
    ),
    (
        "raw newline inside a string",
        '{"name": "write_file", "arguments": {"path": "a.txt", "content": "line1\nline2"}}',
        [("write_file", {"path": "a.txt", "content": "line1\nline2"})],
    ),
    (
        "array of calls",
        '[{"name": "think", "arguments": {"thought": "x"}}, {"name": "run", "arguments": '
        '{"command": "ls"}}]',
        [("think", {"thought": "x"}), ("run", {"command": "ls"})],
    ),
    (
        "name only for an offered tool",
        '{"name": "think"}',
        [("think", {})],
    ),
    (
        "function call with a JSON object",
        'run({"command": "ls -la"})',
        [("run", {"command": "ls -la"})],
    ),
    (
        "function call inside a tag",
        '<tool_call>run({"command": "ls"})</tool_call>',
        [("run", {"command": "ls"})],
    ),
    (
        "function call with keyword arguments",
        "I'll read it: read_file(path='src/main.py')",
        [("read_file", {"path": "src/main.py"})],
    ),
    (
        "function call with one positional argument",
        'finish("the model is trained")',
        [("finish", {"summary": "the model is trained"})],
    ),
    (
        "apostrophes in prose before the call",
        'I don\'t know yet, it\'s unclear. {"name": "run", "arguments": {"command": "ls"}}',
        [("run", {"command": "ls"})],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in REPAIRS], ids=[c[0] for c in REPAIRS]
)
def test_repair(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    parsed = toolparse.parse_text(text, INDEX)
    assert parsed.parse_error is None
    assert parsed.repaired
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == expected
    ids = [c.id for c in parsed.tool_calls]
    assert len(set(ids)) == len(ids)
    # Stable: the same text gets the same ids.
    assert [c.id for c in toolparse.parse_text(text, INDEX).tool_calls] == ids


# Plain text that must not be read as a call, nor reported as a broken one.
NOT_CALLS = [
    "I think the next step is to read the data.",
    'The config is {"name": "resnet", "depth": 50}.',
    "Use a dict like {a: 1} in Python.",
    "```python\nprint({'x': 1})\n```",
    "I should run (carefully) the tests.",
    "",
]


@pytest.mark.parametrize("text", NOT_CALLS)
def test_plain_text_is_not_a_call(text: str) -> None:
    parsed = toolparse.parse_text(text, INDEX)
    assert parsed.tool_calls == [] and parsed.parse_error is None and not parsed.repaired


# (case, model text, fragment the error must contain)
ERRORS = [
    ("unknown tool", '{"name": "delete_all", "arguments": {}}', "no tool named `delete_all`"),
    (
        "arguments are a list",
        '<tool_call>{"name": "run", "arguments": ["ls"]}</tool_call>',
        "arguments of `run` must be a JSON object, got list",
    ),
    (
        "arguments string is not JSON",
        '{"name": "run", "arguments": "ls -la"}',
        "arguments of `run` are not valid JSON",
    ),
    (
        "broken JSON in a tag",
        '<tool_call>{"name": "run", "arguments": {"command": "ls"</tool_call>',
        "not valid JSON",
    ),
    ("empty tag", "<tool_call></tool_call>", "holds no tool call"),
    ("unknown function in a tag", "<tool_call>rm(path='/')</tool_call>", "no tool named `rm`"),
    (
        "tag holds a non-call object",
        '<tool_call>{"command": "ls"}</tool_call>',
        "must be an object with `name` and `arguments`",
    ),
    (
        "cut off by max_tokens",
        'Sure. {"name": "write_file", "arguments": {"path": "a.py", "content": "import os',
        "not valid JSON",
    ),
    ("unclosed function call", 'run({"command": "ls"', "never closed"),
    (
        "ambiguous positional arguments",
        'write_file("a.txt", "hello")',
        "use a JSON object of named arguments",
    ),
    (
        "one good call and one bad",
        '<tool_call>{"name": "run", "arguments": {"command": "ls"}}</tool_call>'
        '<tool_call>{"name": "nope", "arguments": {}}</tool_call>',
        "no tool named `nope`",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_parse_error(text: str, fragment: str) -> None:
    parsed = toolparse.parse_text(text, INDEX)
    assert parsed.tool_calls == [] and not parsed.repaired
    assert parsed.parse_error is not None
    assert fragment in parsed.parse_error
    # The message names the offered tools and shows a correct call.
    assert "Offered tools: run, read_file, write_file, think, finish." in parsed.parse_error
    assert '<tool_call>{"name": "run", "arguments": {"command": "..."}}</tool_call>' in (
        parsed.parse_error
    )


def test_apply_validates_native_calls() -> None:
    good = Completion(None, [ToolCall("a", "run", '{"command": "ls"}')])
    assert toolparse.apply(good, TOOLS).parse_error is None
    bad = Completion(None, [ToolCall("a", "run", "{'command': 'ls'}"), ToolCall("b", "x", "{}")])
    toolparse.apply(bad, TOOLS)
    assert bad.parse_error is not None
    assert "arguments of `run` are not valid JSON" in bad.parse_error
    assert "no tool named `x`" in bad.parse_error
    # Native calls are never rewritten.
    assert bad.tool_calls[0].arguments == "{'command': 'ls'}" and not bad.repaired


def test_apply_repairs_text_in_place() -> None:
    done = Completion('<tool_call>{"name": "finish", "arguments": {"summary": "ok"}}</tool_call>')
    toolparse.apply(done, TOOLS)
    assert done.repaired and done.tool_calls[0].name == "finish"
    assert done.content is not None and done.content.startswith("<tool_call>")


def test_loads_lenient() -> None:
    assert toolparse.loads_lenient("{'a': [1, 2,], 'b': False, 'c': 'it\\'s'}") == {
        "a": [1, 2],
        "b": False,
        "c": "it's",
    }
    with pytest.raises(ValueError):
        toolparse.loads_lenient("{'a': ")


def test_example_call_fills_required_parameters() -> None:
    assert toolparse.example_call("write_file", INDEX["write_file"]) == {
        "name": "write_file",
        "arguments": {"path": "...", "content": "..."},
    }
