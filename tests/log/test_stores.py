"""Store URLs name the store they open."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.log.postgres import PostgresStore
from apollo.log.sqlite import SQLiteStore
from apollo.log.stores import open_store
from apollo.rollout.home import Home


def test_an_sqlite_url_opens_that_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "log.db"
    store = open_store(f"sqlite://{path}")
    assert isinstance(store, SQLiteStore) and store.path == path
    run = store.create_run("t", {})
    store.close()
    assert SQLiteStore(path).get_run(run.id) is not None


@pytest.mark.postgres
def test_a_postgresql_url_opens_that_database(postgres_url: str) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    store.close()


def test_a_home_uses_its_file_unless_a_store_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APOLLO_STORE", raising=False)
    plain = Home(tmp_path / "h").open_store()
    assert isinstance(plain, SQLiteStore) and plain.path == tmp_path / "h" / "apollo.db"
    plain.close()
    other = tmp_path / "other.db"
    monkeypatch.setenv("APOLLO_STORE", f"sqlite://{other}")
    named = Home(tmp_path / "h").open_store()
    assert isinstance(named, SQLiteStore) and named.path == other
    named.close()
    given = tmp_path / "given.db"
    explicit = Home(tmp_path / "h", f"sqlite://{given}").open_store()  # over the variable
    assert isinstance(explicit, SQLiteStore) and explicit.path == given
    explicit.close()
