"""Waits end within a second of guidance arriving: sleep and session_output(wait)."""

from __future__ import annotations

import asyncio
import time

import pytest

from apollo.env.tools.base import ToolContext
from apollo.env.tools.registry import ToolBox

pytestmark = pytest.mark.anyio


async def _set_later(event: asyncio.Event, delay: float) -> None:
    await asyncio.sleep(delay)
    event.set()


async def test_sleep_runs_its_course(ctx: ToolContext) -> None:
    started = time.monotonic()
    result = await ToolBox().call("sleep", {"seconds": 0.5}, ctx)
    assert 0.5 <= time.monotonic() - started < 1.0
    assert result.meta["woke_on_guidance"] is False


async def test_sleep_wakes_when_guidance_arrives(ctx: ToolContext) -> None:
    waker = asyncio.ensure_future(_set_later(ctx.wake, 0.3))
    started = time.monotonic()
    result = await ToolBox().call("sleep", {"seconds": 60}, ctx)
    assert time.monotonic() - started < 0.3 + 1.0
    assert result.meta["woke_on_guidance"] is True
    assert "guidance arrived" in result.output
    await waker


async def test_sleep_wakes_when_the_log_has_pending_guidance(ctx: ToolContext) -> None:
    """The runner may signal guidance only through the log poll, not the event."""
    deadline = time.monotonic() + 0.3

    async def pending() -> bool:
        return time.monotonic() > deadline

    ctx.guidance_pending = pending
    started = time.monotonic()
    result = await ToolBox().call("sleep", {"seconds": 60}, ctx)
    assert time.monotonic() - started < 0.3 + 1.5
    assert result.meta["woke_on_guidance"] is True


async def test_session_output_wait_wakes_when_guidance_arrives(ctx: ToolContext) -> None:
    box = ToolBox()
    await box.call("session_start", {"command": "echo started; sleep 60"}, ctx)
    waker = asyncio.ensure_future(_set_later(ctx.wake, 0.3))
    started = time.monotonic()
    result = await box.call("session_output", {"id": "s1", "wait": 600}, ctx)
    assert time.monotonic() - started < 0.3 + 1.0
    assert result.meta["woke_on_guidance"] is True and result.meta["running"] is True
    assert "started" in result.output and "guidance arrived" in result.output
    await waker
