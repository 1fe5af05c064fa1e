"""Versioned schema migrations, one list for both stores (`apollo db migrate`).

A migration is a version, what it changes, and its SQL for SQLite and for PostgreSQL. A store
records the versions applied in `schema_migrations`. Opening a store:
- an empty database gets every migration at once (a new store needs no command);
- a store made before migrations were versioned holds version 1's tables: it is taken as
  version 1, what it may lack of them is made, and that is recorded;
- a store behind this code is refused until `apollo db migrate` applies what is missing (a
  migration can take long on a big store, and a backup first is the user's call);
- a store ahead of this code (a newer Apollo migrated it) is refused: this code would
  misread it.
Migrations run inside one transaction that holds the store's lock, so two processes never
apply one twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from apollo.log.store import StoreError


class SchemaBehind(StoreError):
    """The store's schema is older than this code's: `apollo db migrate` brings it up."""


class SchemaAhead(StoreError):
    """The store's schema is newer than this code knows: a newer Apollo made it."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    what: str
    sqlite: str
    postgres: str

    def sql(self, dialect: str) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgres


# Ordinary rowid tables on SQLite: payloads and blobs are often kilobytes, which WITHOUT ROWID
# tables store poorly (rows past ~1/20 of a page spill into overflow chains). Readers that
# follow only some kinds of a run's events (the agent polling for guidance) seek by kind.
# One text for both dialects, with their types filled in.
_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    config TEXT NOT NULL,
    last_score {real},
    guidance_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts {real} NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    step INTEGER,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS events_kind ON events (run_id, kind, seq);
CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    z {flag} NOT NULL,
    data {bytes} NOT NULL
);
CREATE TABLE IF NOT EXISTS annotators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created {real} NOT NULL,
    revoked {flag} NOT NULL DEFAULT {no}
)
"""
_SQLITE_TYPES = {"real": "REAL", "flag": "INTEGER", "bytes": "BLOB", "no": "0"}
_POSTGRES_TYPES = {"real": "DOUBLE PRECISION", "flag": "BOOLEAN", "bytes": "BYTEA", "no": "FALSE"}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, events, blobs and annotators",
        _V1.format(**_SQLITE_TYPES),
        _V1.format(**_POSTGRES_TYPES),
    ),
)
MIGRATIONS_TABLE = (
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, what TEXT NOT NULL, "
    "applied DOUBLE PRECISION NOT NULL)"
)
ADOPTED = " (adopted: the store was made before migrations were versioned)"


def latest() -> int:
    """The schema version this code writes."""
    return MIGRATIONS[-1].version


class SchemaDb(Protocol):
    """A store's database inside one transaction, as migrations need it."""

    dialect: str  # "sqlite" or "postgres"

    def tables(self) -> set[str]:
        """The names of the tables there are."""
        ...

    def recorded(self) -> list[int]:
        """The versions in schema_migrations (which exists)."""
        ...

    def run(self, sql: str) -> None:
        """One or more statements, `;`-separated, in the caller's transaction."""
        ...

    def record(self, version: int, what: str, applied: float) -> None:
        """Write a row of schema_migrations."""
        ...


def current(db: SchemaDb) -> tuple[int, bool]:
    """The store's schema version (0 when empty, 1 for a store made before versioning) and
    whether it is recorded."""
    tables = db.tables()
    if "schema_migrations" in tables:
        return max(db.recorded(), default=0), True
    return (1 if "runs" in tables else 0), False


def _refuse(version: int, where: str, allowed: bool) -> None:
    if version > latest():
        raise SchemaAhead(
            f"the store {where} has schema version {version}, newer than this Apollo knows "
            f"({latest()}): a newer Apollo migrated it; upgrade (pip install -U apollo-rollout)"
        )
    if 0 < version < latest() and not allowed:
        raise SchemaBehind(
            f"the store {where} has schema version {version}; this Apollo needs {latest()}. "
            "Back it up (`apollo backup`, or pg_dump for PostgreSQL), then run "
            "`apollo db migrate`"
        )


def must_migrate(db: SchemaDb, where: str, allowed: bool) -> bool:
    """Whether opening the store must take its lock and `upgrade` it: not when its schema is
    current and recorded (the usual case, decided without the lock). A store ahead, or behind
    without `allowed`, is refused here, before any lock is taken."""
    version, recorded = current(db)
    _refuse(version, where, allowed)
    return not (recorded and version == latest())


def upgrade(db: SchemaDb, where: str, allowed: bool) -> list[Migration]:
    """Bring the schema to this code's version, in the caller's transaction that holds the
    store's lock (so decided again here: another process may have done it meanwhile). A store
    made before versioning gets version 1's statements again, which make only what is
    missing (an index added later, a schema cut short), and is recorded as version 1.
    Returns the migrations applied."""
    version, recorded = current(db)
    _refuse(version, where, allowed)
    now = time.time()
    if not recorded:
        db.run(MIGRATIONS_TABLE)
        if version:
            db.run(MIGRATIONS[0].sql(db.dialect))
            db.record(1, MIGRATIONS[0].what + ADOPTED, now)
    pending = [m for m in MIGRATIONS if m.version > version]
    for migration in pending:
        db.run(migration.sql(db.dialect))
        db.record(migration.version, migration.what, now)
    return pending
