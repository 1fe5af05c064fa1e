"""PostgreSQL implementation of the Store: one log shared by many processes and machines.

A psycopg 3 connection pool serves every thread. Appends to one run are serialized by a row
lock on the run (`SELECT ... FOR UPDATE`), so two writers never pick the same seq while writes
to different runs go on side by side. A lock held by another client is waited for at most
`busy_s` ($APOLLO_STORE_BUSY_S, as for SQLite), then StoreBusy; a server that cannot be
reached is a StoreError that names the URL (without its password) and what to check.

Payloads are stored as the JSON text the SQLite store keeps (exact, and never re-parsed by the
server); blobs as bytea, compressed the same way.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from apollo.log import migrations
from apollo.log.events import Annotator, Event, NewEvent, Role, RunRecord, RunStatus, blob_id
from apollo.log.store import (
    BUSY_ENV,
    Store,
    StoreBusy,
    StoreError,
    annotator_from_row,
    annotator_taken,
    busy_seconds,
    check_blobs_found,
    check_steerable,
    hash_token,
    last_admin,
    new_run_id,
    new_token,
    numbered,
    pack_blob,
    run_from_row,
    run_taken,
    run_update_sql,
    run_updates,
    unknown_annotator,
    unknown_run,
    unpack_blob,
)

T = TypeVar("T")

# Taken while the schema is migrated, so two processes starting at once do not race on it.
_SCHEMA_LOCK = 0x41504F4C  # "APOL"
_CONNECT_TIMEOUT_S = 10
_LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = %s"


def _count(conn: psycopg.Connection[Any], sql: str, args: Sequence[Any]) -> int:
    """The integer an aggregate query gives."""
    row = conn.execute(sql, args).fetchone()
    if row is None:
        raise StoreError("the store returned no row where one must exist")
    return int(row[0])


def _written(record: T | None) -> T:
    """A row this transaction has just written, read back."""
    if record is None:
        raise StoreError("the store returned no row where one must exist")
    return record


def redacted(url: str) -> str:
    """The URL without its password (in the user part or as a `password=` parameter), to
    show in messages; hosts, ports and everything else as given."""
    url = re.sub(r"^([a-z]+://[^:/@?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def _lost_connection(exc: psycopg.OperationalError) -> bool:
    """Whether an error is about reaching the server (no SQLSTATE: the client could not
    connect or lost the connection; class 08: connection exception; 57P0x: the server is
    shutting down or cannot connect now) rather than about a statement."""
    state = exc.sqlstate
    return state is None or state.startswith("08") or state.startswith("57P0")


class _Schema:
    """The database's schema as migrations read and change it (migrations.SchemaDb)."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def tables(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
        return {str(r[0]) for r in rows}

    def recorded(self) -> list[int]:
        return [int(r[0]) for r in self.conn.execute("SELECT version FROM schema_migrations")]

    def run(self, sql: str) -> None:
        self.conn.execute(sql)  # several statements: allowed without parameters

    def record(self, version: int, what: str, applied: float) -> None:
        self.conn.execute(
            "INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, what, applied)
        )


class PostgresStore(Store):
    """A Store in a PostgreSQL database, given as a `postgresql://` URL (libpq's forms:
    `postgresql://user:pass@host:5432/db`, or `postgresql:///db?host=/socket/dir`).

    `busy_s`: how long an operation waits for a lock another client holds before StoreBusy;
    `pool_size`: connections kept for this process's threads; `migrate`: apply the schema
    migrations the database is behind (`apollo db migrate`), else such a database is refused."""

    def __init__(
        self, url: str, busy_s: float | None = None, pool_size: int = 8, migrate: bool = False
    ) -> None:
        super().__init__()
        self.url = url
        self._migrate = migrate
        self.busy_s = busy_seconds(busy_s)
        self.where = redacted(url)
        # Connect once first: a wrong URL or a server that is down fails here, with its reason,
        # instead of as a pool timeout later.
        try:
            psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise self._unreachable(exc) from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"connect_timeout": _CONNECT_TIMEOUT_S},
            configure=self._configure,
            timeout=max(self.busy_s, _CONNECT_TIMEOUT_S),
            name="apollo-store",
            open=True,
        )
        try:
            self._run(self._ensure_schema)
        except BaseException:  # refused (a schema behind or ahead): no pool left open
            self._pool.close()
            raise

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each new connection: READ COMMITTED whatever the server's default (an append reads
        the highest seq after taking its run's lock, so it must see what committed before),
        and lock waits bounded by busy_s (LockNotAvailable after it; 0 would mean forever)."""
        conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        wait_ms = max(1, round(self.busy_s * 1000))
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{wait_ms}ms",))
        conn.commit()

    def _unreachable(self, exc: BaseException) -> StoreError:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(
            f"cannot use the PostgreSQL store {self.where}: {why}. Check that the server is "
            "running and that the URL's host, port, user, password and database are right"
        )

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Bring the schema to this code's version (apollo.log.migrations), under an advisory
        lock when something is to be done. Only then: DDL on an existing table still locks it,
        and a process opening the store would deadlock with another's append."""
        schema = _Schema(conn)
        if migrations.must_migrate(schema, self.where, self._migrate):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self.migrated = migrations.upgrade(schema, self.where, self._migrate)

    def _run(self, body: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`body` in one transaction on a pooled connection (committed when it returns,
        rolled back when it raises); lock waits and lost servers become StoreErrors."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                return body(conn)
        except errors.LockNotAvailable as exc:
            raise StoreBusy(
                f"the store {self.where} is busy: another client held a lock this operation "
                f"needs for all the {self.busy_s:g} s it waited. Let it finish and try again; "
                f"set {BUSY_ENV} to wait longer"
            ) from exc
        except PoolTimeout as exc:
            raise StoreError(
                f"no connection to the PostgreSQL store {self.where} within "
                f"{self._pool.timeout:g} s: all of this process's connections are in use, or "
                "the server refuses new ones (max_connections)"
            ) from exc
        except psycopg.OperationalError as exc:
            if not _lost_connection(exc):
                raise  # a deadlock, a conflict: a bug of ours, with its traceback
            raise self._unreachable(exc) from exc

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, task: str, config: dict[str, Any], run_id: str | None = None) -> RunRecord:
        rid = run_id or new_run_id()
        now = time.time()

        def insert(conn: psycopg.Connection[Any]) -> RunRecord:
            try:
                with conn.transaction():  # a savepoint: the refusal leaves the rest usable
                    conn.execute(
                        "INSERT INTO runs (id, task, status, created, updated, config)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        (rid, task, RunStatus.CREATED.value, now, now, json.dumps(config)),
                    )
            except errors.UniqueViolation as exc:
                raise run_taken(rid) from exc
            return _written(self._get_run(conn, rid))

        return self._run(insert)

    @staticmethod
    def _get_run(conn: psycopg.Connection[Any], run_id: str) -> RunRecord | None:
        cur = conn.cursor(row_factory=dict_row)
        row = cur.execute("SELECT * FROM runs WHERE id = %s", (run_id,)).fetchone()
        return run_from_row(row) if row else None

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._run(lambda conn: self._get_run(conn, run_id))

    def list_runs(self, limit: int = 1000, status: str | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if status:
            sql += " WHERE status = %s"
            args.append(status)
        sql += " ORDER BY created DESC, id DESC LIMIT %s"
        args.append(limit)

        def read(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            return conn.cursor(row_factory=dict_row).execute(sql, args).fetchall()

        return [run_from_row(r) for r in self._run(read)]

    # -- events ---------------------------------------------------------------------------
    def append(self, run_id: str, events: Sequence[NewEvent]) -> list[Event]:
        if not events:
            return []
        payloads = [json.dumps(ev.payload) for ev in events]

        def write(conn: psycopg.Connection[Any]) -> list[Event]:
            now = time.time()
            found = conn.execute(
                "SELECT status FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if not found:
                raise unknown_run(run_id)
            check_steerable(run_id, found[0], (ev.kind for ev in events))
            out, rows = numbered(run_id, events, payloads, _count(conn, _LAST_SEQ, (run_id,)), now)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
            conn.execute(*run_update_sql(run_id, run_updates(events), now, "%s"))
            return out

        return self._run(write)

    def _events(
        self, run_id: str, after: int, kinds: Sequence[str] | None, limit: int | None
    ) -> list[Event]:
        sql = (
            "SELECT seq, ts, kind, actor, step, payload FROM events WHERE run_id = %s AND seq > %s"
        )
        args: list[Any] = [run_id, after]
        if kinds:
            sql += " AND kind = ANY(%s)"
            args.append(list(kinds))
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        rows = self._run(lambda conn: conn.execute(sql, args).fetchall())
        loads = json.loads
        return [
            Event(run_id, seq, ts, kind, actor, step, loads(payload))
            for seq, ts, kind, actor, step, payload in rows
        ]

    def last_seq(self, run_id: str) -> int:
        return self._run(lambda conn: _count(conn, _LAST_SEQ, (run_id,)))

    # -- blobs ----------------------------------------------------------------------------
    def put_blobs(self, texts: Sequence[str]) -> list[str]:
        ids = [blob_id(t) for t in texts]
        rows = [(bid, *pack_blob(text)) for bid, text in zip(ids, texts, strict=True)]

        def write(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO blobs VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING", rows
                )

        if rows:
            self._run(write)
        return ids

    def get_blobs(self, ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT id, z, data FROM blobs WHERE id = ANY(%s)", (wanted,)
            ).fetchall()
        )
        out = {bid: unpack_blob(z, data) for bid, z, data in rows}
        check_blobs_found(wanted, out)
        return out

    # -- annotators -----------------------------------------------------------------------
    def add_annotator(self, name: str, role: Role | str) -> tuple[Annotator, str]:
        role = Role(role).value
        token = new_token()
        aid = "a-" + uuid.uuid4().hex[:10]

        def insert(conn: psycopg.Connection[Any]) -> Annotator:
            try:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO annotators VALUES (%s, %s, %s, %s, %s, FALSE)",
                        (aid, name, role, hash_token(token), time.time()),
                    )
            except errors.UniqueViolation as exc:
                raise annotator_taken(name) from exc
            return _written(self._annotator(conn, "id", aid))

        return self._run(insert), token

    @staticmethod
    def _annotator(conn: psycopg.Connection[Any], column: str, value: str) -> Annotator | None:
        cur = conn.cursor(row_factory=dict_row)
        row = cur.execute(f"SELECT * FROM annotators WHERE {column} = %s", (value,)).fetchone()
        return annotator_from_row(row) if row else None

    def list_annotators(self) -> list[Annotator]:
        rows = self._run(
            lambda conn: (
                conn.cursor(row_factory=dict_row)
                .execute("SELECT * FROM annotators ORDER BY created")
                .fetchall()
            )
        )
        return [annotator_from_row(r) for r in rows]

    def revoke_annotator(self, name: str) -> Annotator:
        def revoke(conn: psycopg.Connection[Any]) -> Annotator:
            # Lock every active admin first: two admins revoking each other wait in turn, and
            # the second sees that it would leave none.
            conn.execute(
                "SELECT id FROM annotators WHERE role = %s AND NOT revoked FOR UPDATE",
                (Role.ADMIN.value,),
            )
            found = self._annotator(conn, "name", name)
            if found is None:
                raise unknown_annotator(name)
            if found.role == Role.ADMIN and not found.revoked:
                others = _count(
                    conn,
                    "SELECT COUNT(*) FROM annotators"
                    " WHERE role = %s AND NOT revoked AND name != %s",
                    (Role.ADMIN.value, name),
                )
                if others == 0:
                    raise last_admin(name)
            conn.execute("UPDATE annotators SET revoked = TRUE WHERE name = %s", (name,))
            return _written(self._annotator(conn, "name", name))

        return self._run(revoke)

    def authenticate(self, token: str) -> Annotator | None:
        def read(conn: psycopg.Connection[Any]) -> Annotator | None:
            cur = conn.cursor(row_factory=dict_row)
            row = cur.execute(
                "SELECT * FROM annotators WHERE token_hash = %s AND NOT revoked",
                (hash_token(token),),
            ).fetchone()
            return annotator_from_row(row) if row else None

        return self._run(read)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.close()
