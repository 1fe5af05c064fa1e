"""The PostgreSQL store through the Store contract, against a real server (tests/pg.py), plus
what is specific to it: several processes on one run, clear errors for a wrong URL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apollo.log.events import Kind
from apollo.log.postgres import PostgresStore, redacted
from apollo.log.store import StoreBusy, StoreError
from tests.log.contract import StoreContract
from tests.pg import PostgresServer

pytestmark = pytest.mark.postgres


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[PostgresStore]:
        s = PostgresStore(postgres_url)
        yield s
        s.close()


def test_two_processes_append_to_one_run(postgres_url: str, tmp_path: Path) -> None:
    """Writers in other processes and this one, started together, never share a seq, and
    the cache counts all."""
    store = PostgresStore(postgres_url)
    run = store.create_run("t", {})
    go = tmp_path / "go"
    code = (
        "import sys, time, pathlib\n"
        "from apollo.log.postgres import PostgresStore\n"
        "s = PostgresStore(sys.argv[1])\n"
        "pathlib.Path(sys.argv[4] + '.ready').touch()\n"
        "deadline = time.monotonic() + 120\n"
        "while not pathlib.Path(sys.argv[4]).exists():\n"
        "    assert time.monotonic() < deadline, 'the test never said go'\n"
        "    time.sleep(0.01)\n"
        "for i in range(200):\n"
        "    s.append_one(sys.argv[2], 'guidance', {'i': i}, actor=sys.argv[3])\n"
        "s.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_url, run.id, f"p{n}", f"{go}{n}"])
        for n in range(2)
    ]
    # Everyone starts appending at once: the children once their stores are open.
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}{n}.ready").exists() for n in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    for n in range(2):
        Path(f"{go}{n}").touch()
    for i in range(200):
        store.append_one(run.id, Kind.OBSERVATION, {"i": i})
    assert all(p.wait(timeout=120) == 0 for p in procs)
    events = store.events(run.id)
    assert [e.seq for e in events] == list(range(1, 601))
    actors = [e.actor for e in events]
    assert actors.index("p0") < 200 and actors.index("p1") < 200  # they did interleave
    got = store.get_run(run.id)
    assert got is not None and got.guidance_count == 400
    store.close()


def test_a_lock_held_elsewhere_is_waited_for_then_store_busy(postgres_url: str) -> None:
    import psycopg

    store = PostgresStore(postgres_url, busy_s=0)  # 0: do not wait, as for SQLite
    run = store.create_run("t", {})
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT * FROM runs WHERE id = %s FOR UPDATE", (run.id,))
        with pytest.raises(StoreBusy, match="is busy: another client held a lock"):
            store.append_one(run.id, Kind.OBSERVATION, {})
        other.rollback()
    store.append_one(run.id, Kind.OBSERVATION, {})  # free again: written
    assert store.last_seq(run.id) == 1
    store.close()


def test_appends_stay_dense_when_the_server_defaults_to_repeatable_read(
    postgres_url: str,
) -> None:
    import psycopg

    database = postgres_url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'"
        )
    store = PostgresStore(postgres_url)
    StoreContract().test_concurrent_appends_never_share_a_sequence(store)
    store.close()


def test_options_in_the_url_are_kept(postgres_url: str) -> None:
    """A search_path given in the URL puts the tables in that schema (the store's own
    settings are added per connection, never over the URL's)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA apollo_here")
    url = postgres_url + "&options=-csearch_path%3Dapollo_here"
    with PostgresStore(url) as store:
        store.create_run("t", {}, run_id="r-here")
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT id FROM apollo_here.runs").fetchone()
    assert row == ("r-here",)


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
    assert (
        redacted("postgresql://u:pw@h1:5432,h2:5432/db") == "postgresql://u:***@h1:5432,h2:5432/db"
    )
    assert redacted("postgresql://u:pw@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert redacted("postgresql://u@h/db?password=pw&x=1") == "postgresql://u@h/db?password=***&x=1"
