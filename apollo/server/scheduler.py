"""Drives runs inside the server's event loop: runs started through the API, and runs queued
by `apollo run --queue` (status `created`, config `"queued": true`).

Many runs share the loop with the web server, as DESIGN.md's runner does. A queued run whose
runner died (status still running or paused, lock free) is picked up again, since its log
holds everything needed to resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from apollo.env.task import Task
from apollo.log.events import Kind, RunStatus
from apollo.log.outcome import resumable
from apollo.log.store import Store
from apollo.rollout.home import Home, RunLocked
from apollo.rollout.runner import Runner, RunOptions, register_run

log = logging.getLogger(__name__)

# Statuses of queued runs a scheduler takes on: not started yet, or left by a dead runner.
_TAKE = (RunStatus.CREATED, RunStatus.RUNNING, RunStatus.PAUSED)


def queue_run(store: Store, home: Home, task: Task, options: RunOptions, started_by: str) -> str:
    """Create a run for a scheduler to drive; returns its id. It is marked `queued` (so a
    restarted server picks it up again) and `started_by` (starting a run is a write, and
    every write is attributed)."""
    return register_run(store, home, task, options, queued=True, started_by=started_by)


class RunScheduler:
    """Runs each submitted run to its end as an asyncio task; scans for queued runs."""

    def __init__(self, runner: Runner, scan_interval_s: float = 1.0) -> None:
        self.runner = runner
        self.scan_interval_s = scan_interval_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # Runs not to try again in this process: driven elsewhere, or failed to start.
        self._skip: set[str] = set()
        self._scanner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._scanner = asyncio.create_task(self._scan_loop(), name="queued-run scanner")

    def submit(self, run_id: str) -> None:
        """Start driving a run (no-op when it is already driven or was given up on)."""
        if run_id in self.tasks or run_id in self._skip:
            return
        self.tasks[run_id] = asyncio.create_task(self._drive(run_id), name=f"run {run_id}")

    async def _drive(self, run_id: str) -> None:
        try:
            status = await self.runner.drive(run_id)
            log.info("run %s ended: %s", run_id, status)
        except RunLocked:
            self._skip.add(run_id)
            log.info("run %s is driven by another runner; leaving it alone", run_id)
        except Exception as exc:
            self._skip.add(run_id)
            log.exception("run %s could not be driven", run_id)
            self._record_failure(run_id, exc)
        finally:
            self.tasks.pop(run_id, None)

    def _record_failure(self, run_id: str, exc: Exception) -> None:
        """Say in the log why the run stopped, so the console shows it rather than a run that
        looks alive forever. A failed run can be resumed once the cause is fixed."""
        record = self.runner.store.get_run(run_id)
        if record is None or RunStatus(record.status).ended:
            return
        self.runner.store.append_one(
            run_id,
            Kind.RUN_FINISHED,
            {
                "status": RunStatus.FAILED.value,
                "reason": f"the server could not drive it: {exc}",
                "resumable": resumable(RunStatus.FAILED),
            },
            actor="server",
            step=record.step or None,
        )

    def scan(self) -> None:
        """Submit every queued run that nobody drives."""
        for status in _TAKE:
            for record in self.runner.store.list_runs(limit=100_000, status=status.value):
                if record.config.get("queued"):
                    self.submit(record.id)

    async def _scan_loop(self) -> None:
        while True:
            try:
                self.scan()
            except Exception:  # a failed scan is retried on the next tick
                log.exception("scanning for queued runs failed")
            await asyncio.sleep(self.scan_interval_s)

    async def stop(self) -> None:
        """Stop scanning and interrupt the runs being driven; their logs let them resume."""
        tasks = [t for t in (self._scanner, *self.tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
