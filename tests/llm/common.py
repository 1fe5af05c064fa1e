"""Tool specs shared by the model-layer tests."""

from __future__ import annotations

from typing import Any


def tool(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An OpenAI `tools` entry."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {"type": "object", "properties": props, "required": required},
        },
    }


STRING = {"type": "string"}
TOOLS = [
    tool("run", {"command": STRING, "timeout": {"type": "integer"}}, ["command"]),
    tool("read_file", {"path": STRING}, ["path"]),
    tool("write_file", {"path": STRING, "content": STRING}, ["path", "content"]),
    tool("think", {"thought": STRING}, ["thought"]),
    tool("finish", {"summary": STRING}, ["summary"]),
]
