"""Versioned schema migrations on both stores: a new store is made whole, an old one is refused
until `apollo db migrate`, a newer one is refused, and racing openers apply nothing twice."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apollo.cli import main
from apollo.log import migrations
from apollo.log.migrations import ADOPTED, Migration, SchemaAhead, SchemaBehind
from apollo.log.postgres import PostgresStore
from apollo.log.sqlite import SQLiteStore
from apollo.log.store import Store

# A second migration, as a later version of Apollo would add one.
V2 = Migration(
    2,
    "events by actor",
    "CREATE INDEX events_actor ON events (actor)",
    "CREATE INDEX events_actor ON events (actor)",
)


class Database:
    """One empty database of either store, opened as a Store or queried raw."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "apollo.db"
        self.url = request.getfixturevalue("postgres_url") if kind == "postgres" else ""

    def open(self, migrate: bool = False) -> Store:
        if self.kind == "postgres":
            return PostgresStore(self.url, migrate=migrate)
        return SQLiteStore(self.path, migrate=migrate)

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Rows of one statement, or none for several (`;`-separated, no results)."""
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                cur = conn.execute(statement)
                return cur.fetchall() if cur.description else []
        with sqlite3.connect(self.path, isolation_level=None) as conn:
            if ";" in statement:
                conn.executescript(statement)
                return []
            return conn.execute(statement).fetchall()

    def has_index(self, name: str) -> bool:
        table, column = (
            ("pg_indexes", "indexname") if self.kind == "postgres" else ("sqlite_master", "name")
        )
        return bool(self.sql(f"SELECT 1 FROM {table} WHERE {column} = '{name}'"))

    def versions(self) -> list[tuple[int, str]]:
        return [
            (int(v), str(w))
            for v, w in self.sql("SELECT version, what FROM schema_migrations ORDER BY version")
        ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return Database(request.param, request, tmp_path)


def with_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, V2))


def test_a_new_store_gets_every_migration_and_records_them(database: Database) -> None:
    store = database.open()
    assert [m.version for m in store.migrated] == [1]
    store.close()
    assert database.versions() == [(1, migrations.MIGRATIONS[0].what)]
    again = database.open()
    assert again.migrated == []  # nothing to do the second time
    again.close()


def test_a_store_behind_is_refused_until_migrated(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = database.open()
    run = store.create_run("t", {})
    store.close()
    with_v2(monkeypatch)
    with pytest.raises(
        SchemaBehind, match=r"schema version 1; this Apollo needs 2.*apollo db migrate"
    ):
        database.open()
    migrated = database.open(migrate=True)
    assert [m.version for m in migrated.migrated] == [2]
    assert migrated.get_run(run.id) is not None  # nothing lost
    migrated.close()
    assert [v for v, _ in database.versions()] == [1, 2]
    database.open().close()  # now current


def test_a_store_behind_can_be_backed_up_before_migrating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["runs", "--home", str(home)]) == 0  # a store at version 1
    with_v2(monkeypatch)
    copy = tmp_path / "before-migrating.db"
    assert main(["backup", str(copy), "--home", str(home)]) == 0, capsys.readouterr().err
    assert copy.is_file()
    with sqlite3.connect(copy) as conn:  # the copy is the store as it was
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (1,)


def test_a_store_from_before_versioning_is_version_one(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tables as they were made before migrations were recorded, less an index that came
    # later (as in stores made before the events_kind index).
    database.sql(migrations.MIGRATIONS[0].sql(database.kind) + ";")
    database.sql("DROP INDEX events_kind")
    database.sql(
        "INSERT INTO runs (id, task, status, created, updated, config)"
        " VALUES ('r-old', 't', 'finished', 1, 1, '{}')"
    )
    store = database.open()
    assert store.migrated == [] and store.get_run("r-old") is not None
    store.close()
    versions = database.versions()  # recorded as version 1, what was missing made
    assert len(versions) == 1 and versions[0][0] == 1 and versions[0][1].endswith(ADOPTED)
    assert database.has_index("events_kind")
    with_v2(monkeypatch)
    migrated = database.open(migrate=True)
    assert [m.version for m in migrated.migrated] == [2]
    migrated.close()
    assert [v for v, _ in database.versions()] == [1, 2]


def test_a_store_ahead_of_the_code_is_refused(database: Database) -> None:
    database.open().close()
    database.sql("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    for migrate in (False, True):
        with pytest.raises(
            SchemaAhead, match=r"schema version 99, newer than this Apollo knows \(1\)"
        ):
            database.open(migrate=migrate)


def test_openers_racing_on_a_new_store_apply_it_once(database: Database) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def opener() -> None:
        try:
            stores.append(database.open())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(len(s.migrated) for s in stores) == 1  # exactly one of them made it
    for s in stores:
        s.close()
    assert database.versions() == [(1, migrations.MIGRATIONS[0].what)]


def test_apollo_db_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.delenv("APOLLO_STORE", raising=False)
    run: Callable[..., int] = lambda *a: main([*a, "--home", str(home)])  # noqa: E731
    assert run("db", "migrate") == 0
    assert "to schema version 1 (1: runs, events" in capsys.readouterr().out
    assert run("db", "migrate") == 0
    assert "is at schema version 1; nothing to migrate" in capsys.readouterr().out
    with_v2(monkeypatch)
    assert run("runs") == 2
    assert "run `apollo db migrate`" in capsys.readouterr().err
    assert run("db", "migrate") == 0
    assert "to schema version 2 (2: events by actor)" in capsys.readouterr().out
    assert run("runs") == 0
