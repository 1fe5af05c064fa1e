"""Server-sent event streams that follow the log (docs/api.md "Runs").

The log is the only channel: streams poll the store by seq. One poller task serves every
client. Per run it keeps a `Feed` that reads the events appended since its last look once per
tick, renders each as an SSE frame once, and wakes that run's subscribers; each subscriber
keeps its own cursor, so a stream never skips or repeats a seq, and one that falls behind
the feed's buffer (or starts from an older seq) reads the missing range from the store.

The dashboard stream works the same way on run summaries: one task compares the runs table
with what it saw, refreshes the summaries that changed and wakes the dashboard clients, each
of which sends the summaries that differ from what it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from apollo.log.events import Event
from apollo.log.store import Store
from apollo.server.views import RunCache, expand

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
# Frames a feed keeps for subscribers a little behind; older ones come from the store.
BUFFER = 2000
# A feed nobody has followed for this long stops being polled.
FEED_IDLE_S = 30.0
# Events read per query; a stream catching up on a long log reads it in such pages.
PAGE = 500
KEEPALIVE = ": keepalive\n\n"


def frame(view: dict[str, Any]) -> str:
    """One SSE frame for an EventView. JSON escapes newlines, so `data` is a single line;
    the kind comes from the log and is stripped of line breaks all the same."""
    kind = str(view["kind"]).replace("\r", " ").replace("\n", " ")
    data = json.dumps(view, separators=(",", ":"))
    return f"id: {view['seq']}\nevent: {kind}\ndata: {data}\n\n"


def render(store: Store, events: Sequence[Event]) -> list[tuple[int, str]]:
    return [(v["seq"], frame(v)) for v in expand(store, events)]


class _Followed:
    """What streams follow: how many subscribe, and an event that is set at each change."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.subscribers = 0

    def wake(self) -> None:
        # A fresh Event per change: waiters hold the old one, which stays set for them.
        old, self.changed = self.changed, asyncio.Event()
        old.set()


class Feed(_Followed):
    """The shared follower of one run's log."""

    def __init__(self, run_id: str, seq: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.seq = seq  # the highest seq read by the poller
        self.frames: deque[tuple[int, str]] = deque(maxlen=BUFFER)
        self.last_used = time.monotonic()

    def since(self, cursor: int) -> list[tuple[int, str]] | None:
        """Buffered frames after `cursor`, or None when the buffer does not reach back to it."""
        if cursor >= self.seq:
            return []
        if not self.frames or self.frames[0][0] > cursor + 1:
            return None
        return [f for f in self.frames if f[0] > cursor]

    def push(self, frames: list[tuple[int, str]]) -> None:
        self.frames.extend(frames)
        self.seq = frames[-1][0]
        self.wake()


class EventHub:
    """Follows the logs of runs that have SSE clients; one poller for all of them."""

    def __init__(self, store: Store, cache: RunCache, interval_s: float = 0.05) -> None:
        self.store = store
        self.cache = cache
        self.interval_s = interval_s
        self.feeds: dict[str, Feed] = {}
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self.dashboard = DashboardFeed(store, cache)

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll_loop(), name="sse poller")

    async def close(self) -> None:
        """End every stream (so the server can finish its connections) and stop polling."""
        self.closed = True
        for feed in self.feeds.values():
            feed.wake()
        self.dashboard.wake()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll_loop(self) -> None:
        next_dashboard = 0.0
        while True:
            try:
                self.poll()
                if self.dashboard.subscribers and time.monotonic() >= next_dashboard:
                    self.dashboard.refresh()
                    next_dashboard = time.monotonic() + self.dashboard.interval_s
            except Exception:  # a bad tick must not end every stream; the next one retries
                log.exception("polling the log for streams failed")
            await asyncio.sleep(self.interval_s)

    def poll(self) -> None:
        """Read what was appended to every followed run since the last tick."""
        now = time.monotonic()
        for run_id, feed in list(self.feeds.items()):
            if feed.subscribers == 0:
                if now - feed.last_used > FEED_IDLE_S:
                    del self.feeds[run_id]
                continue
            events = self.store.events(run_id, after=feed.seq, limit=PAGE)
            if events:
                feed.push(render(self.store, events))

    def _feed(self, run_id: str) -> Feed:
        feed = self.feeds.get(run_id)
        if feed is None:
            feed = self.feeds[run_id] = Feed(run_id, self.store.last_seq(run_id))
        return feed

    async def stream(self, run_id: str, after: int) -> AsyncIterator[str]:
        """SSE frames of a run's events with seq > after, then live ones, until closed."""
        feed = self._feed(run_id)
        feed.subscribers += 1
        cursor = after
        try:
            while not self.closed:
                changed = feed.changed
                frames = feed.since(cursor)
                if frames is None:
                    frames = render(self.store, self.store.events(run_id, after=cursor, limit=PAGE))
                if frames:
                    for seq, text in frames:
                        yield text
                        cursor = seq
                    continue
                if not await _wait(changed):
                    yield KEEPALIVE
        finally:
            feed.subscribers -= 1
            feed.last_used = time.monotonic()

    async def dashboard_stream(self) -> AsyncIterator[str]:
        """`run` events with RunSummary data: every run at connect, then each change."""
        board = self.dashboard
        board.subscribers += 1
        sent: dict[str, str] = {}
        try:
            board.refresh()
            while not self.closed:
                changed = board.changed
                for run_id, data in list(board.current.items()):
                    if sent.get(run_id) != data:
                        sent[run_id] = data
                        yield f"event: run\ndata: {data}\n\n"
                if not await _wait(changed):
                    yield KEEPALIVE
        finally:
            board.subscribers -= 1


class DashboardFeed(_Followed):
    """Current RunSummary JSON of every run, refreshed while dashboard clients listen."""

    def __init__(self, store: Store, cache: RunCache, interval_s: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.cache = cache
        self.interval_s = interval_s
        self.current: dict[str, str] = {}

    def refresh(self) -> None:
        records = self.store.list_runs(limit=1_000_000)
        self.cache.sync(records)
        now = time.time()
        any_change = False
        for record in reversed(records):  # oldest first, so new runs arrive last
            data = json.dumps(self.cache.summary(record, now), separators=(",", ":"))
            if self.current.get(record.id) != data:
                self.current[record.id] = data
                any_change = True
        if any_change:
            self.wake()


async def _wait(changed: asyncio.Event) -> bool:
    """Wait for a change (closing the hub wakes everyone too); False after KEEPALIVE_S."""
    try:
        await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
    except TimeoutError:
        return False
    return True
