"""The ChatModel interface: one call to a chat model, with tools."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class ModelError(Exception):
    """A model call failed for good (retries spent, or a non-transient error)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(slots=True)
class ToolCall:
    """A tool call as the model wrote it. `arguments` is the raw JSON text."""

    id: str
    name: str
    arguments: str

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(slots=True)
class Completion:
    """What one model call produced."""

    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_ms: float = 0.0
    model: str = ""
    finish_reason: str | None = None
    # Set when a text-form tool call was repaired into `tool_calls` (for the filter rules).
    repaired: bool = False
    # Set when the model's output held a tool call that could not be parsed; says what was wrong.
    parse_error: str | None = None

    def assistant_message(self) -> dict[str, Any]:
        """The assistant turn to put back into the context, as the OpenAI API shapes it."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_message() for tc in self.tool_calls]
        return msg


# A message is either a dict in the OpenAI chat shape or its JSON text, already encoded.
# Passing encoded text lets long contexts skip re-serialisation on every call.
MessageLike = dict[str, Any] | str


class ChatModel(ABC):
    """Anything that completes a chat: an OpenAI-compatible server, in practice."""

    name: str = "model"

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Completion:
        """One chat completion. Raises ModelError when it fails for good."""

    async def aclose(self) -> None:
        """Release connections."""
        return None
