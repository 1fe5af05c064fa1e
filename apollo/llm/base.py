"""The ChatModel interface: one call to a chat model, with tools."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import TracebackType
from typing import Any, Self

from apollo.log.schema import ModelRetry


class ModelError(Exception):
    """A model call failed for good (retries spent, or a non-transient error)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class CallLimits:
    """How long one model call may take, and for how long its transient failures are retried
    (docs/design.md "Model calls"). Seconds throughout; set per model.

    Each attempt is bounded three ways: `connect_s` to open a connection, `first_byte_s` until
    the server's first byte (the response headers: a server that took the request and never
    answers), and `total_s` end to end. Transient failures (refused connections, timeouts,
    dropped responses, 408/409/425/429/5xx) are retried with backoff until `retry_window_s`
    has passed since the call's first attempt, long enough for a model server to restart;
    `max_attempts` also bounds the count when set (None: the window alone).
    """

    connect_s: float = 10.0
    first_byte_s: float = 120.0
    total_s: float = 300.0
    retry_window_s: float = 300.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("connect_s", "first_byte_s", "total_s", "retry_window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"{name} must be a positive, finite number of seconds, got {value}"
                )
        attempts = self.max_attempts
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)):
            raise ValueError(f"max_attempts must be a whole number, got {attempts!r}")
        if attempts is not None and attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (or unset), got {attempts}")

    def updated(self, overrides: Mapping[str, Any]) -> CallLimits:
        """These limits with some fields replaced (a run's settings); unknown names refused."""
        known = [f.name for f in fields(self)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(
                f"unknown model limit {', '.join(unknown)}; the limits are {', '.join(known)}"
            )
        return replace(self, **overrides)


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A failed attempt of a model call that is about to be made again."""

    attempt: int  # the attempt that failed; 1 is the first
    max_attempts: int | None  # the call's attempt budget (None: bounded by the window alone)
    error: str  # what went wrong, e.g. "HTTP 503: ..." or "ConnectError: ..."
    status: int | None  # the HTTP status, when the server answered
    waited_s: float  # how long the failed attempt took
    delay_s: float  # the wait before the next attempt
    since_s: float  # time since the call's first attempt began
    window_s: float  # retries stop once this much time has passed since the first attempt

    def to_payload(self, purpose: str, work_s: float) -> ModelRetry:
        """The model_retry payload of a call made for `purpose` (times rounded to ms)."""
        return {
            "purpose": purpose,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "error": self.error,
            "status": self.status,
            "waited_s": round(self.waited_s, 3),
            "delay_s": round(self.delay_s, 3),
            "since_s": round(self.since_s, 3),
            "window_s": round(self.window_s, 3),
            "work_s": work_s,
        }


# Told of every retry as it happens (the agent loop writes each one to the run's log).
RetryCallback = Callable[[RetryNotice], None]


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


class AsyncClosing(ABC):
    """`async with` for what holds resources: entering gives the object, leaving awaits
    `aclose()`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the object holds."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ChatModel(AsyncClosing):
    """Anything that completes a chat: an OpenAI-compatible server, in practice."""

    name: str = "model"

    @abstractmethod
    async def complete(
        self,
        messages: Sequence[MessageLike],
        tools: Sequence[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        *,
        on_retry: RetryCallback | None = None,
    ) -> Completion:
        """One chat completion. Raises ModelError when it fails for good; `on_retry` hears
        of every failed attempt that is made again, before the wait."""

    async def aclose(self) -> None:
        """Release connections."""
        return None
