"""Constrained decoding: force every reply to be one tool call, as JSON.

A tiny model (SmolLM2-135M) does not write usable tool calls in free text, and llama.cpp's
chatml template ignores `tools` altogether. In this mode the request carries no `tools`;
instead a JSON schema (sent as `response_format`) forces the reply into

    {"thought": "...", "tool": "<an offered tool>", "arguments": {...}}

with the tools and that format described in the system prompt. The history is sent as plain
system/user/assistant turns because llama-cpp-python's chatml formatter keeps only the first
system message and silently drops `tool` messages and assistant `tool_calls`.

Two wire shapes for the schema exist (`MODES`):
- ``json_object``: ``{"type": "json_object", "schema": S}``, the only shape
  llama-cpp-python's server understands (llama.cpp's own server takes it too).
- ``json_schema``: the OpenAI shape ``{"type": "json_schema", "json_schema": {"name", "schema"}}``
  used by vLLM, SGLang, llama.cpp's server and hosted APIs. llama-cpp-python answers it with
  HTTP 500 (a request validation error).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from apollo.llm import toolparse
from apollo.llm.base import Completion, MessageLike, ToolCall

MODES = ("json_object", "json_schema")
# Keeps the free-text part short so the call itself is not cut off by max_tokens.
THOUGHT_MAX_CHARS = 200


@cache
def _text(name: str) -> str:
    return resources.files("apollo.llm").joinpath(name).read_text(encoding="utf-8")


def reply_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One branch per tool, so the grammar ties each tool name to its own arguments."""
    branches = []
    for name, params in toolparse.tool_index(tools).items():
        branches.append(
            {
                "type": "object",
                "properties": {
                    "thought": {"type": "string", "maxLength": THOUGHT_MAX_CHARS},
                    "tool": {"const": name},
                    "arguments": _arguments_schema(params),
                },
                "required": ["thought", "tool", "arguments"],
                "additionalProperties": False,
            }
        )
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def response_format(mode: str, tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `response_format` request field for `mode` (one of MODES)."""
    schema = reply_schema(tools)
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": schema}}
    raise ValueError(f"unknown constrain mode {mode!r}; expected one of {', '.join(MODES)}")


def system_addendum(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tools and the reply format, in words, for the system prompt."""
    index = toolparse.tool_index(tools)
    lines = []
    for tool in tools:
        fn = tool.get("function", tool)
        name = fn.get("name")
        if name not in index:
            continue
        lines.append(f"- {name}: {fn.get('description') or ''}".rstrip())
        params = index[name]
        required = set(params.get("required") or ())
        for arg, spec in (params.get("properties") or {}).items():
            spec = spec if isinstance(spec, Mapping) else {}
            kind = spec.get("type", "any")
            need = "required" if arg in required else "optional"
            desc = f": {spec['description']}" if spec.get("description") else ""
            lines.append(f"    {arg} ({kind}, {need}){desc}")
    first = next(iter(index))
    call = toolparse.example_call(first, index[first])
    example = json.dumps(
        {"thought": "...", "tool": first, "arguments": call["arguments"]}, ensure_ascii=False
    )
    return (
        _text("constrained_system.txt")
        .replace("{example}", example)
        .replace("{tools}", "\n".join(lines))
    )


def wire_messages(messages: Sequence[MessageLike], addendum: str | None) -> list[str]:
    """The history as plain turns a bare chat template renders in full, encoded.

    The addendum joins the first system message (later system messages become user turns,
    the template would drop them); assistant tool calls become the JSON reply the model
    writes in this mode; tool results become user turns naming the tool.
    """
    decoded = [json.loads(m) if isinstance(m, str) else m for m in messages]
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    seen_system = False
    for msg in decoded:
        role = msg.get("role")
        if role == "system" and not seen_system:
            seen_system = True
            content = msg.get("content") or ""
            out.append({"role": "system", "content": _join(content, addendum)})
        elif role == "system":
            out.append({"role": "user", "content": msg.get("content") or ""})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_text(msg, names)})
        elif role == "tool":
            tool = names.get(msg.get("tool_call_id") or "", msg.get("name") or "the tool")
            output = _text("constrained_observation.txt").replace("{tool}", tool)
            out.append({"role": "user", "content": output.replace("{output}", _content_text(msg))})
        else:
            out.append(msg)
    if addendum and not seen_system:
        out.insert(0, {"role": "system", "content": addendum})
    return [json.dumps(m, ensure_ascii=False) for m in out]


def parse_reply(completion: Completion, tools: Sequence[Mapping[str, Any]]) -> Completion:
    """Turn the JSON reply into a native-shaped tool call (content = the thought), in place.

    A reply that is not the JSON form (the server ignored the schema, or max_tokens cut it)
    falls back to text repair, then to a `parse_error` that restates the format.
    """
    index = toolparse.tool_index(tools)
    raw = completion.content or ""
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and "tool" in obj:
        name, args, thought = obj.get("tool"), obj.get("arguments", {}), obj.get("thought")
        if name in index and isinstance(args, dict) and isinstance(name, str):
            completion.content = thought if isinstance(thought, str) else None
            args_text = json.dumps(args, ensure_ascii=False)
            completion.tool_calls = [ToolCall(toolparse.call_id(raw, 0), name, args_text)]
            return completion
    toolparse.apply(completion, tools)
    if completion.tool_calls:
        return completion
    completion.parse_error = _format_error(raw, obj, index, completion.finish_reason)
    return completion


# --- internals ---------------------------------------------------------------------------


def _arguments_schema(params: Mapping[str, Any]) -> dict[str, Any]:
    # A schema without properties would let the grammar accept any JSON value; a tool's
    # arguments are always an object.
    if params.get("properties"):
        return dict(params)
    return {"type": "object"}


def _join(content: Any, addendum: str | None) -> Any:
    if not addendum:
        return content
    if isinstance(content, str):
        return f"{content}\n\n{addendum}" if content else addendum
    return [*content, {"type": "text", "text": addendum}]


def _assistant_text(msg: Mapping[str, Any], names: dict[str, str]) -> str:
    content = msg.get("content")
    thought = content if isinstance(content, str) else ""
    replies = []
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        names[call.get("id") or ""] = fn.get("name") or ""
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = fn.get("arguments")
        reply = {"thought": thought, "tool": fn.get("name"), "arguments": args}
        replies.append(json.dumps(reply, ensure_ascii=False))
    return "\n".join(replies) if replies else thought


def _content_text(msg: Mapping[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(p.get("text", "") for p in parts if isinstance(p, Mapping))


def _format_error(
    raw: str, obj: Any, index: Mapping[str, Mapping[str, Any]], finish_reason: str | None
) -> str:
    if finish_reason == "length":
        problem = "your reply was cut off before the JSON object ended; keep the thought short"
    elif obj is None:
        problem = "your reply is not one JSON object"
    elif not isinstance(obj, dict) or "tool" not in obj:
        problem = 'your reply has no "tool" field'
    elif obj.get("tool") not in index:
        problem = f"there is no tool named `{obj.get('tool')}`"
    else:
        problem = '"arguments" must be a JSON object'
    first = next(iter(index))
    call = toolparse.example_call(first, index[first])
    example = {"thought": "...", "tool": first, "arguments": call["arguments"]}
    return (
        f"Your reply could not be used: {problem}.\n"
        f"Offered tools: {', '.join(index)}.\n"
        "Reply with exactly one JSON object, for example:\n"
        f"{json.dumps(example, ensure_ascii=False)}"
    )
