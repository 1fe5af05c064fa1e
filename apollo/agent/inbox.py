"""The agent's inbox: what others write to steer a run (guidance, controls).

Guidance and controls reach the agent only through the log. The inbox follows the log for
those kinds, folds them into the agent's view, delivers queued guidance at a step boundary as
`<real_user>` turns, and says when waiting should end early: guidance arrived (`wake`), urgent
guidance arrived (`urgent`), or a stop was asked for. It never blocks the agent on a person.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from apollo.agent.context import ContextView
from apollo.log import schema
from apollo.log.events import Event, Kind, NewEvent, RunStatus
from apollo.log.store import Store, StoreError

# Kinds other writers (CLI, console, annotators) put in a run's log that the agent acts on.
EXTERNAL_KINDS = (Kind.GUIDANCE, Kind.CONTROL)

Record = Callable[[Sequence[NewEvent], dict[str, str] | None], None]
Put = Callable[[dict[str, Any], dict[str, str]], str]


class Inbox:
    """Guidance and controls of one run, as its agent sees them."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        record: Record,
        put: Put,
        poll_interval_s: float,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        """`record` appends events to the run's log (and the agent's view); `put` stores a
        message blob; `on_event` sees the events picked up."""
        self.store = store
        self.run_id = run_id
        self.poll_interval_s = poll_interval_s
        self.wake = asyncio.Event()  # set while guidance waits or a stop is asked for
        self._record = record
        self._put = put
        self._on_event = on_event
        self._view = ContextView()
        self._synced = 0

    def follow(self, view: ContextView) -> None:
        """Fold what arrives into `view`, starting after the last event it has seen."""
        self._view = view
        self._synced = view.last_seq

    def sync(self) -> bool:
        """Apply guidance and controls others wrote since the last look; True if any came.

        Any such event not yet seen has a higher seq than every one already seen, because
        seqs are assigned at commit; so the cursor is the highest external seq seen (events
        the agent appends itself do not move it)."""
        new = self.store.events(self.run_id, after=self._synced, kinds=EXTERNAL_KINDS)
        for ev in new:
            self._view.apply(ev)
            self._synced = max(self._synced, ev.seq)
            if self._on_event:
                self._on_event(ev)
        if self._view.actions.pending_guidance() or self._view.stop_requested:
            self.wake.set()
        return bool(new)

    def urgent(self) -> list[str]:
        """Ids of queued guidance marked urgent (it cancels a model call in progress)."""
        return [g.id for g in self._view.actions.pending_guidance() if g.urgent]

    def deliver(self, step: int) -> None:
        """Queued guidance becomes a <real_user> turn after the latest observation."""
        pending = self._view.actions.pending_guidance()
        if not pending:
            return
        texts: dict[str, str] = {}
        events = [
            schema.GUIDANCE_DELIVERED.new(
                {
                    "guidance_id": g.id,
                    "step": step,
                    "message": self._put(
                        {"role": "user", "content": f"<real_user>{g.text}</real_user>"}, texts
                    ),
                },
                step=step,
            )
            for g in pending
        ]
        self._record(events, texts)
        self.wake.clear()

    def cancellations(self, status: RunStatus) -> list[NewEvent]:
        """Guidance still queued when the run ends can no longer be delivered: say so."""
        return [
            schema.GUIDANCE_CANCELLED.new(
                {"guidance_id": g.id, "reason": f"the run ended ({status.value}) first"},
                step=self._view.actions.last_step,
            )
            for g in self._view.actions.pending_guidance()
        ]

    async def watch(self) -> None:
        """Keep looking while a tool runs, so that its waits end when guidance arrives."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                self.sync()
            except (StoreError, sqlite3.Error):
                continue  # a busy or briefly unreadable log: look again next tick

    async def wait_while_paused(self, tick: Callable[[], None]) -> None:
        """Until the run is resumed or stopped; `tick` runs at every look."""
        while self._view.paused and not self._view.stop_requested:
            await asyncio.sleep(self.poll_interval_s)
            self.sync()
            tick()
