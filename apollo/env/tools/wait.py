"""`sleep`, and the wait that every long-waiting tool shares: it ends early on guidance."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from enum import Enum
from typing import Annotated

from pydantic import Field

from apollo.env.tools.base import ToolContext, ToolResult
from apollo.env.tools.declare import SECONDS, tool

MAX_WAIT_S = 600.0
# How often a wait re-checks its condition and the log for pending guidance.
_TICK_S = 0.25
_GUIDANCE_POLL_S = 1.0

WOKE_NOTE = "Woke early because guidance arrived; read it before continuing."


class WaitOutcome(Enum):
    """Why a wait ended."""

    ELAPSED = "elapsed"
    DONE = "done"  # the condition became true
    GUIDANCE = "guidance"


async def wait_until(
    ctx: ToolContext, seconds: float, done: Callable[[], bool] | None = None
) -> WaitOutcome:
    """Wait up to `seconds` for `done()` to be true; return within a second of `ctx.wake`
    being set (or of `ctx.guidance_pending` reporting guidance) with GUIDANCE."""
    deadline = time.monotonic() + seconds
    next_poll = time.monotonic() + _GUIDANCE_POLL_S
    while True:
        if ctx.wake.is_set():
            return WaitOutcome.GUIDANCE
        if done is not None and done():
            return WaitOutcome.DONE
        now = time.monotonic()
        if now >= deadline:
            return WaitOutcome.ELAPSED
        if ctx.guidance_pending is not None and now >= next_poll:
            next_poll = now + _GUIDANCE_POLL_S
            if await ctx.guidance_pending():
                return WaitOutcome.GUIDANCE
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.wake.wait(), min(_TICK_S, deadline - now))


@tool()
async def sleep(
    ctx: ToolContext,
    seconds: Annotated[
        float, Field(ge=0, le=MAX_WAIT_S, description="how long to wait, 0 to 600"), SECONDS
    ],
) -> ToolResult:
    """Wait for a number of seconds (at most 600), e.g. while a session runs. Ends early if a
    human sends guidance."""
    started = time.monotonic()
    outcome = await wait_until(ctx, seconds)
    slept = time.monotonic() - started
    woke = outcome is WaitOutcome.GUIDANCE
    text = f"Slept {slept:.1f}s of {seconds:g}s."
    if woke:
        text += " " + WOKE_NOTE
    return ToolResult(text, meta={"woke_on_guidance": woke, "slept_s": round(slept, 3)})


TOOLS = (sleep,)
