"""Where Apollo keeps its store and run folders (`--home` or APOLLO_HOME); the store may live
elsewhere (`--store URL` or APOLLO_STORE, apollo/log/stores.py)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from apollo.env.sessions import SessionManager
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import Store, StoreError
from apollo.log.stores import STORE_ENV, open_store, sqlite_path

DEFAULT_HOME = Path.home() / ".apollo"


class RunLocked(RuntimeError):
    """Another live runner drives this run."""


def try_lock(path: Path) -> IO[str] | None:
    """An exclusive lock on `path` for this process, held while the handle is open (the OS
    drops it when the process dies, so a `kill -9` never leaves it held); None when another
    live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - the caller holds it for the lock's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Home:
    """A data directory: `apollo.db`, `runs/<run id>/` (workspace, sessions, lock) and
    `instances/` (materialized instances of task families). `store`: the URL of a store
    elsewhere (default $APOLLO_STORE, else `apollo.db` here)."""

    def __init__(self, path: str | Path | None = None, store: str | None = None) -> None:
        self.path = Path(path or os.environ.get("APOLLO_HOME") or DEFAULT_HOME).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.store_url = store or os.environ.get(STORE_ENV) or None

    @property
    def db_path(self) -> Path:
        return self.path / "apollo.db"

    def open_store(self, migrate: bool = False) -> Store:
        """The store: the one `store_url` names, else the home's SQLite file (`migrate`:
        apply the schema migrations it is behind)."""
        if self.store_url:
            return open_store(self.store_url, migrate)
        return SQLiteStore(self.db_path, migrate=migrate)

    def open_for_backup(self) -> SQLiteStore:
        """The SQLite store as it is (its schema untouched, whatever its version: a backup
        comes before a migration); a PostgreSQL store is refused with what to use instead."""
        url = self.store_url
        if url and not url.startswith("sqlite://"):
            raise StoreError("apollo backup works on an SQLite store; for PostgreSQL use pg_dump")
        return SQLiteStore(sqlite_path(url) if url else self.db_path, as_is=True)

    @property
    def instances_dir(self) -> Path:
        """Where instances of task families are materialized (apollo.env.family)."""
        return self.path / "instances"

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id

    def runner_alive(self, run_id: str) -> bool:
        """Whether a live process holds the run's lock (drives it) right now."""
        path = self.run_dir(run_id) / "runner.lock"
        try:
            handle = open(path)  # noqa: SIM115 - closed below; a probe, not a hold
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def sessions(self, run_id: str) -> SessionManager:
        """The run's sessions, to inspect or kill them from outside its runner."""
        return SessionManager(self.run_dir(run_id) / "sessions", sandbox=None)

    def lock_run(self, run_id: str) -> IO[str]:
        """Take the run's lock for this process. The OS drops it when the process dies, so a
        `kill -9` never leaves a run locked, and two runners never drive one run."""
        handle = try_lock(self.run_dir(run_id) / "runner.lock")
        if handle is None:
            raise RunLocked(
                f"run {run_id} is being driven by another live runner; stop that one first"
            )
        return handle
