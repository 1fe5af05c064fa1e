"""Constrained decoding: the request shape, the history rewrite and the reply conversion."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from apollo.llm import constrain
from apollo.llm.base import Completion, MessageLike
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import ScriptedServer, reply
from tests.llm.common import TOOLS

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "List the files."},
    {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "run", "arguments": '{"command": "ls"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a.py\nb.py"},
    {"role": "system", "content": "Working time left: 1 h."},
    {"role": "user", "content": "<real_user>Check b.py first.</real_user>"},
]


def call_constrained(server: ScriptedServer, mode: str, tools: Any = TOOLS) -> Completion:
    async def go() -> Completion:
        async with OpenAIChatModel(server.base_url, "m", constrain=mode) as model:
            # Encoded and dict messages mix freely, as the agent passes them.
            messages: list[MessageLike] = [json.dumps(HISTORY[0]), *HISTORY[1:]]
            return await model.complete(messages, tools)

    return asyncio.run(go())


def test_request_shape_llama_cpp_python(server: ScriptedServer) -> None:
    answer = {"thought": "read it", "tool": "read_file", "arguments": {"path": "b.py"}}
    server.add(reply(json.dumps(answer)))
    got = call_constrained(server, "json_object")
    body = server.requests[0].body
    assert "tools" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_object"
    branches = fmt["schema"]["anyOf"]
    assert [b["properties"]["tool"] for b in branches] == [
        {"const": name} for name in ("run", "read_file", "write_file", "think", "finish")
    ]
    assert branches[0]["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]
    assert branches[0]["required"] == ["thought", "tool", "arguments"]
    # The reply becomes a native-shaped call; the thought is the content.
    assert got.content == "read it"
    assert [(c.name, json.loads(c.arguments)) for c in got.tool_calls] == [
        ("read_file", {"path": "b.py"})
    ]
    assert got.parse_error is None and not got.repaired


def test_history_is_sent_as_plain_turns(server: ScriptedServer) -> None:
    server.add(reply('{"thought": "", "tool": "think", "arguments": {"thought": "x"}}'))
    call_constrained(server, "json_object")
    messages = server.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "user", "user"]
    system = messages[0]["content"]
    assert system.startswith("You are an agent.\n\n# Reply format")
    assert "- write_file: The write_file tool." in system
    assert "    path (string, required)" in system
    assert '{"thought": "...", "tool": "run", "arguments": {"command": "..."}}' in system
    assert json.loads(messages[2]["content"]) == {
        "thought": "Looking.",
        "tool": "run",
        "arguments": {"command": "ls"},
    }
    assert messages[3]["content"] == "Result of run:\na.py\nb.py\n"
    assert messages[4]["content"] == "Working time left: 1 h."
    assert messages[5] == HISTORY[5]


def test_openai_json_schema_shape(server: ScriptedServer) -> None:
    server.add(reply('{"thought": "t", "tool": "finish", "arguments": {"summary": "done"}}'))
    got = call_constrained(server, "json_schema", TOOLS[-1:])
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "tool_call"
    # One tool: no anyOf, the branch itself.
    assert fmt["json_schema"]["schema"]["properties"]["tool"] == {"const": "finish"}
    assert got.tool_calls[0].name == "finish"


def test_without_tools_no_format_but_history_rewritten(server: ScriptedServer) -> None:
    # A summarize call: free text, but it must still see the tool results.
    server.add(reply("Summary: listed files."))
    got = call_constrained(server, "json_object", None)
    body = server.requests[0].body
    assert "response_format" not in body and "tools" not in body
    assert body["messages"][0]["content"] == "You are an agent."
    assert body["messages"][3]["content"].startswith("Result of run:")
    assert got.content == "Summary: listed files." and got.tool_calls == []


@pytest.mark.parametrize(
    ("content", "finish_reason", "fragment"),
    [
        ('{"thought": "t", "tool": "rm", "arguments": {}}', "stop", "no tool named `rm`"),
        ('{"thought": "t", "tool": "run", "arguments": "ls"}', "stop", "must be a JSON object"),
        ('{"thought": "a long thought that never', "length", "cut off"),
        ("I will list the files.", "stop", "not one JSON object"),
        ('{"thought": "only a thought"}', "stop", 'no "tool" field'),
    ],
)
def test_bad_replies_say_what_was_wrong(content: str, finish_reason: str, fragment: str) -> None:
    got = constrain.parse_reply(Completion(content, finish_reason=finish_reason), TOOLS)
    assert got.tool_calls == []
    assert got.parse_error is not None and fragment in got.parse_error
    assert '{"thought": "...", "tool": "run", "arguments": {"command": "..."}}' in got.parse_error


def test_text_call_is_still_repaired() -> None:
    # A server that ignored the schema and wrote a tagged call instead.
    text = '<tool_call>{"name": "run", "arguments": {"command": "ls"}}</tool_call>'
    got = constrain.parse_reply(Completion(text), TOOLS)
    assert got.repaired and got.tool_calls[0].name == "run" and got.parse_error is None


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="json_object, json_schema"):
        OpenAIChatModel("http://127.0.0.1:1/v1", "m", constrain="grammar")
