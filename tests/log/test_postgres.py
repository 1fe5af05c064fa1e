"""The PostgreSQL store through the Store contract, against a real server (tests/pg.py), plus
what is specific to it: several processes on one run, clear errors for a wrong URL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apollo.log.events import Kind
from apollo.log.postgres import PostgresStore, redacted
from apollo.log.store import StoreError
from tests.log.contract import StoreContract
from tests.pg import PostgresServer

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[PostgresStore]:
        s = PostgresStore(postgres_url)
        yield s
        s.close()


def test_two_processes_append_to_one_run(postgres_url: str) -> None:
    """Writers in other processes and this one never share a seq, and the cache counts all."""
    store = PostgresStore(postgres_url)
    run = store.create_run("t", {})
    code = (
        "import sys\n"
        "from apollo.log.postgres import PostgresStore\n"
        "s = PostgresStore(sys.argv[1])\n"
        "for i in range(100):\n"
        "    s.append_one(sys.argv[2], 'guidance', {'i': i}, actor=sys.argv[3])\n"
        "s.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_url, run.id, f"p{n}"])
        for n in range(2)
    ]
    for i in range(100):
        store.append_one(run.id, Kind.OBSERVATION, {"i": i})
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert [e.seq for e in store.events(run.id)] == list(range(1, 301))
    got = store.get_run(run.id)
    assert got is not None and got.guidance_count == 200
    store.close()


def test_a_second_store_on_the_same_database_sees_the_first_ones_writes(
    postgres_url: str,
) -> None:
    with PostgresStore(postgres_url) as first, PostgresStore(postgres_url) as second:
        run = first.create_run("t", {"model": "m"})
        first.append_one(run.id, Kind.RUN_STARTED, {"task": "t"})
        blob = first.put_blob("shared text " * 100)
        got = second.get_run(run.id)
        assert got is not None and got.status == "running"
        assert second.get_blob(blob) == "shared text " * 100
        assert [e.kind for e in second.events(run.id)] == ["run_started"]


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://apollo:secret@/nodb?host={tmp_path}"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert "cannot use the PostgreSQL store" in message and "server is running" in message
    assert "secret" not in message and "***" in message


def test_a_missing_database_is_a_clear_error(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match='database "no_such_db" does not exist'):
        PostgresStore(postgres_server.url("no_such_db"))


def test_redacted_hides_only_the_password() -> None:
    assert redacted("postgresql://u:pw@db.example:5433/apollo") == (
        "postgresql://u:***@db.example:5433/apollo"
    )
    assert redacted("postgresql:///apollo?host=/run/pg") == "postgresql:///apollo?host=/run/pg"
