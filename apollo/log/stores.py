"""Which store a URL names (`--store URL` or $APOLLO_STORE): `sqlite:///PATH` (the embedded
default, one file) or `postgresql://...` (one log for many processes and machines)."""

from __future__ import annotations

from pathlib import Path

from apollo.log.store import Store, StoreError

STORE_ENV = "APOLLO_STORE"
FORMS = "sqlite:///ABSOLUTE/PATH.db, or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def open_store(url: str, migrate: bool = False) -> Store:
    """The store at `url` (`migrate`: apply the schema migrations it is behind); anything
    else is a StoreError that gives the forms."""
    scheme, sep, _ = url.partition("://")
    if sep and scheme == "sqlite":
        from apollo.log.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), migrate=migrate)
    if sep and scheme in ("postgresql", "postgres"):
        try:
            from apollo.log.postgres import PostgresStore
        except ImportError as exc:  # the `postgres` extra is not installed
            raise StoreError(
                f"store URL {url!r} needs psycopg: pip install 'apollo-rollout[postgres]'"
            ) from exc
        return PostgresStore(url, migrate=migrate)
    raise StoreError(f"store URL {url!r}: not a store Apollo knows; give {FORMS}")


def sqlite_path(url: str) -> Path:
    """The file of an `sqlite:///ABSOLUTE/PATH` URL (as file:// URLs: the path after the
    scheme's two slashes is absolute)."""
    rest = url.partition("://")[2]
    if not rest.startswith("/") or rest == "/":
        raise StoreError(f"store URL {url!r} names no absolute file path; give {FORMS}")
    return Path(rest)
