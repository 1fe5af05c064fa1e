"""Drives runs inside the server's event loop: runs started through the API, and runs queued
by `apollo run --queue` (status `created`, config `"queued": true`).

Many runs share the loop with the web server (the runner drives many runs in one loop). A
queued run whose runner died (status still running or paused, lock free) is picked up again,
since its log holds everything needed to resume it.

How many runs are driven at once is capped (`RunLimits`, docs/api.md "Run limits"): server-wide
and per annotator. A run beyond a cap waits (status `created`) and starts, oldest first, as
soon as a driven run ends; `admit` refuses a run that would wait when its annotator already
has the most runs waiting that they may.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from apollo.env.task import Task
from apollo.log import schema
from apollo.log.events import RunRecord, RunStatus
from apollo.log.outcome import resumable
from apollo.log.store import Store, StoreBusy
from apollo.rollout.home import Home, RunLocked
from apollo.rollout.runner import Runner, RunOptions, register_run
from apollo.server.defaults import (
    MAX_QUEUED_PER_ANNOTATOR,
    MAX_RUNNING,
    MAX_RUNNING_PER_ANNOTATOR,
)

log = logging.getLogger(__name__)

# Statuses of queued runs a scheduler takes on, in the order it takes them: left by a dead
# runner (they were running already), then not started yet.
_TAKE = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CREATED)


def queue_run(
    store: Store, home: Home, task: Task, options: RunOptions, started_by: str, **extra: Any
) -> str:
    """Create a run for a scheduler to drive; returns its id. It is marked `queued` (so a
    restarted server picks it up again) and `started_by` (starting a run is a write, and
    every write is attributed); `extra` goes into its config too."""
    return register_run(store, home, task, options, queued=True, started_by=started_by, **extra)


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Caps on the runs a server drives (the flags of `apollo serve` set them)."""

    max_running: int = MAX_RUNNING  # runs driven at once, server-wide
    max_running_per_annotator: int = MAX_RUNNING_PER_ANNOTATOR  # of one annotator, at once
    max_queued_per_annotator: int = MAX_QUEUED_PER_ANNOTATOR  # of one annotator, waiting

    def __post_init__(self) -> None:
        for flag, value in (
            ("--max-running", self.max_running),
            ("--max-running-per-annotator", self.max_running_per_annotator),
        ):
            if value < 1:
                raise ValueError(f"{flag} is {value}; give 1 or more")
        if self.max_queued_per_annotator < 0:
            raise ValueError("--max-queued-per-annotator must be 0 or more")


class QueueFull(Exception):
    """A run that would have to wait, from an annotator whose waiting runs are at the cap."""


def _owner(record: RunRecord) -> str:
    return str(record.config.get("started_by") or "")


class RunScheduler:
    """Drives queued runs to their end as asyncio tasks, within `limits`; scans for runs
    queued from elsewhere (`apollo run --queue`) and for runs a dead runner left."""

    def __init__(
        self, runner: Runner, limits: RunLimits | None = None, scan_interval_s: float = 1.0
    ) -> None:
        self.runner = runner
        self.limits = limits or RunLimits()
        self.scan_interval_s = scan_interval_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._owners: dict[str, str] = {}  # driven run -> who started it
        # Runs not to try again in this process: driven elsewhere, or failed to start.
        self._skip: set[str] = set()
        self._scanner: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._scanner = asyncio.create_task(self._scan_loop(), name="queued-run scanner")

    def running(self, annotator: str) -> int:
        """Runs of `annotator` this scheduler drives now."""
        return sum(1 for owner in self._owners.values() if owner == annotator)

    def _has_slot(self, annotator: str) -> bool:
        limits = self.limits
        return (
            len(self.tasks) < limits.max_running
            and self.running(annotator) < limits.max_running_per_annotator
        )

    def waiting(self) -> list[RunRecord]:
        """Queued runs not driven yet, in the order they get slots: runs a dead runner left
        first (they were running already), then new ones, oldest first."""
        out: list[RunRecord] = []
        for status in _TAKE:
            records = self.runner.store.list_runs(limit=1_000_000, status=status.value)
            out += [
                r
                for r in reversed(records)
                if r.config.get("queued") and r.id not in self.tasks and r.id not in self._skip
            ]
        return out

    def admit(self, annotator: str) -> None:
        """Check that a new run of `annotator` may be queued: raises QueueFull when it could
        not start now and `annotator` already has `max_queued_per_annotator` runs waiting."""
        waiting = sum(1 for r in self.waiting() if _owner(r) == annotator)
        if waiting == 0 and self._has_slot(annotator):
            return  # it starts at once
        limits = self.limits
        if waiting >= limits.max_queued_per_annotator:
            raise QueueFull(
                f"{annotator} has {self.running(annotator)} runs running and {waiting} waiting; "
                f"at most {limits.max_queued_per_annotator} may wait per annotator (and "
                f"{limits.max_running_per_annotator} run per annotator, {limits.max_running} "
                "in all): wait for one to end, stop one, or ask the operator to raise "
                "`apollo serve --max-queued-per-annotator` / `--max-running-per-annotator`"
            )

    def fill(self) -> None:
        """Start driving waiting runs while the limits leave slots."""
        if self._stopping:
            return  # runs interrupted by a shutdown must not start the waiting ones
        counts = Counter(self._owners.values())
        for record in self.waiting():
            if len(self.tasks) >= self.limits.max_running:
                return
            owner = _owner(record)
            if counts[owner] >= self.limits.max_running_per_annotator:
                continue
            counts[owner] += 1
            self._owners[record.id] = owner
            self.tasks[record.id] = asyncio.create_task(
                self._drive(record.id), name=f"run {record.id}"
            )

    def is_driven(self, run_id: str) -> bool:
        return run_id in self.tasks

    async def _drive(self, run_id: str) -> None:
        try:
            status = await self.runner.drive(run_id)
            log.info("run %s ended: %s", run_id, status)
        except RunLocked:
            self._skip.add(run_id)
            log.info("run %s is driven by another runner; leaving it alone", run_id)
        except StoreBusy as exc:
            # Nothing can be written now; the run stays resumable and a later scan retries it.
            log.error("run %s stopped where it was: %s", run_id, exc)
        except Exception as exc:
            self._skip.add(run_id)
            log.exception("run %s could not be driven", run_id)
            self._record_failure(run_id, exc)
        finally:
            self.tasks.pop(run_id, None)
            self._owners.pop(run_id, None)
        # A slot is free: the next waiting run starts now, not at the next scan.
        self._fill_logged()

    def _record_failure(self, run_id: str, exc: Exception) -> None:
        """Say in the log why the run stopped, so the console shows it rather than a run that
        looks alive forever. A failed run can be resumed once the cause is fixed."""
        record = self.runner.store.get_run(run_id)
        if record is None or RunStatus(record.status).ended:
            return
        finished = schema.RUN_FINISHED.new(
            {
                "status": RunStatus.FAILED.value,
                "reason": f"the server could not drive it: {exc}",
                "resumable": resumable(RunStatus.FAILED),
            },
            actor="server",
            step=record.step or None,
        )
        self.runner.store.append(run_id, [finished])

    def _fill_logged(self) -> None:
        try:
            self.fill()
        except Exception:  # a failed scan is retried on the next tick
            log.exception("scanning for queued runs failed")

    async def _scan_loop(self) -> None:
        while True:
            self._fill_logged()
            await asyncio.sleep(self.scan_interval_s)

    async def stop(self) -> None:
        """Stop scanning and interrupt the runs being driven; their logs let them resume."""
        self._stopping = True
        tasks = [t for t in (self._scanner, *self.tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
