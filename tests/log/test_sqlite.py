"""The SQLite store through the Store contract, plus what is specific to SQLite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apollo.log.events import Kind
from apollo.log.sqlite import SQLiteStore
from tests.log.contract import StoreContract


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        s = SQLiteStore(tmp_path / "apollo.db")
        yield s
        s.close()


def test_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()


def test_two_processes_append_to_one_run(tmp_path: Path) -> None:
    """A CLI posting guidance and a runner appending steps must never collide."""
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    run = store.create_run("t", {})
    code = (
        "import sys\n"
        "from apollo.log.sqlite import SQLiteStore\n"
        "s = SQLiteStore(sys.argv[1])\n"
        "for i in range(100):\n"
        "    s.append_one(sys.argv[2], 'guidance', {'i': i}, actor=sys.argv[3])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(db), run.id, f"p{n}"]) for n in range(2)
    ]
    for i in range(100):
        store.append_one(run.id, Kind.OBSERVATION, {"i": i})
    assert all(p.wait(timeout=60) == 0 for p in procs)
    events = store.events(run.id)
    assert [e.seq for e in events] == list(range(1, 301))
    got = store.get_run(run.id)
    assert got is not None and got.guidance_count == 200
