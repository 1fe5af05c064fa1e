"""Test helpers for a busy store: another process that holds the write lock for as long as a
test says, and a way to see that a store has started waiting for it."""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

# Reads commands from stdin and acknowledges each on stdout once it is done, so a test knows
# the lock is held (or free) without guessing how long that takes.
_HOLDER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
for line in sys.stdin:
    command = line.strip()
    if command == "lock":
        db.execute("BEGIN IMMEDIATE")
    elif command == "release":
        db.execute("ROLLBACK")
    print(command, flush=True)
"""


class LockHolder:
    """A second process with the database open; `lock()` takes its write lock (`BEGIN
    IMMEDIATE`) and holds it until `release()`. Each call returns once the holder says so."""

    def __init__(self, db: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.locked_at: float | None = None
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _say(self, command: str) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        answer = self._proc.stdout.readline().strip() if ready else "(no answer)"
        if answer != command:
            raise RuntimeError(f"the lock holder did not {command}: {answer!r}")

    def lock(self) -> None:
        """Take the write lock; returns once it is held."""
        self._say("lock")
        self.locked_at = time.monotonic()

    def release(self) -> float:
        """Give the write lock back; returns how long it was held, in seconds."""
        self._say("release")
        assert self.locked_at is not None
        return time.monotonic() - self.locked_at

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # the holder's loop ends, its connection closes
        try:
            self._proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Waiting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "is busy" in record.getMessage():
            self.event.set()


@contextmanager
def store_waiting() -> Iterator[threading.Event]:
    """An event set once a store says it is waiting for another process's write lock, which
    it says only after SQLite's own busy timeout has run out once."""
    handler = _Waiting()
    logger = logging.getLogger("apollo.log.sqlite")
    logger.addHandler(handler)
    try:
        yield handler.event
    finally:
        logger.removeHandler(handler)
