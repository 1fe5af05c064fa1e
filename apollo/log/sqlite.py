"""SQLite implementation of the Store (WAL mode): the embedded default.

Every operation goes through one busy policy (`SQLiteStore._retry`): while another process
holds the write lock, the operation is tried again with backoff for a bounded time (`busy_s`:
`$APOLLO_STORE_BUSY_S`, default 120 s), then fails with StoreBusy. A file that is not a
database, or is damaged, fails with StoreCorrupt, which names the path and the way out.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from apollo.log import migrations
from apollo.log.events import Annotator, Event, NewEvent, Role, RunRecord, RunStatus, blob_id
from apollo.log.store import (
    BUSY_ENV,
    Store,
    StoreBusy,
    StoreCorrupt,
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

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's own busy handler waits at most this long per attempt. The retry loop around it
# bounds the whole wait and starts each attempt afresh, which also covers busy answers the
# handler never sees (a write from a read snapshot that another writer made stale).
_ATTEMPT_S = 0.25
_FIRST_PAUSE_S = 0.02
_MAX_PAUSE_S = 0.5
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# Errors of the file or its disk rather than of a statement: a user can act on these.
_UNUSABLE = frozenset(
    {
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PERM,
    }
)


def _code(exc: sqlite3.Error) -> int | None:
    """The primary SQLite result code of an error (extended codes carry it in the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _first(cursor: sqlite3.Cursor) -> sqlite3.Row | None:
    """The first row, reading the cursor to its end: a statement left unfinished keeps its
    read transaction open, and the connection would keep seeing that old snapshot."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _one(cursor: sqlite3.Cursor) -> sqlite3.Row:
    """The row a query always yields (an aggregate, a row just written)."""
    row = _first(cursor)
    if row is None:
        raise StoreError("the store returned no row where one must exist")
    return row


_LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?"


def _transaction(db: sqlite3.Connection, body: Callable[[], T]) -> T:
    """`body` in one write transaction. IMMEDIATE takes the write lock first, so two processes
    never pick the same seq, and a busy store is found before anything is done."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite has already rolled back after some errors
            db.execute("ROLLBACK")
        raise
    return result


class _Schema:
    """The file's schema as migrations read and change it (apollo.log.migrations.SchemaDb)."""

    dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def tables(self) -> set[str]:
        rows = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {str(r[0]) for r in rows}

    def recorded(self) -> list[int]:
        return [int(r[0]) for r in self.db.execute("SELECT version FROM schema_migrations")]

    def run(self, sql: str) -> None:
        # One statement at a time: executescript would commit the transaction first.
        for statement in sql.split(";"):
            if statement.strip():
                self.db.execute(statement)

    def record(self, version: int, what: str, applied: float) -> None:
        self.db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, what, applied))


class SQLiteStore(Store):
    """A Store in one SQLite file. Several processes may open the same file.

    `busy_s`: how long an operation waits while another process holds the write lock, before
    it raises StoreBusy (default: $APOLLO_STORE_BUSY_S, else DEFAULT_BUSY_S). `migrate`: apply
    the schema migrations the file is behind (`apollo db migrate`); without it such a file is
    refused (SchemaBehind). `as_is`: leave the schema as it is, whatever its version (for
    `apollo backup`, which comes before a migration)."""

    def __init__(
        self,
        path: str | Path,
        busy_s: float | None = None,
        migrate: bool = False,
        as_is: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = str(self.path)
        self.busy_s = busy_seconds(busy_s)
        self._migrate = migrate
        self._as_is = as_is
        # One connection guarded by a lock: cheap, and safe across the runner's threads.
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of the store {self.path}: {exc}") from exc
        self._db = self._retry(self._connect)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            timeout=min(_ATTEMPT_S, self.busy_s),
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (not a power cut) and is much faster.
            db.execute("PRAGMA synchronous=NORMAL")
            # Long logs are read back whole (resume, export): a 64 MiB page cache instead of the
            # default 2 MiB keeps the events and blobs of a run in memory while it is read.
            db.execute("PRAGMA cache_size=-65536")
            self._ensure_schema(db)
        except BaseException:
            db.close()
            raise
        return db

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        """Bring the schema to this code's version (apollo.log.migrations), under the write
        lock when something is to be done."""
        if self._as_is:
            return
        schema = _Schema(db)
        if migrations.must_migrate(schema, self.where, self._migrate):
            self.migrated = _transaction(
                db, lambda: migrations.upgrade(schema, self.where, self._migrate)
            )

    # -- the busy policy and errors -------------------------------------------------------
    def _retry(self, op: Callable[[], T]) -> T:
        """Run `op` (one statement or one whole transaction) under the connection lock.

        While another process holds the write lock, `op` is tried again with backoff until
        `busy_s` has passed, then StoreBusy. A damaged or unusable file raises StoreError."""
        started = time.monotonic()
        pause = _FIRST_PAUSE_S
        warned = False
        while True:
            try:
                with self._lock:
                    return op()
            except sqlite3.Error as exc:
                if _code(exc) not in _BUSY:
                    problem = self._problem(exc)
                    if problem is None:
                        raise  # a wrong statement, not a bad file: keep the traceback
                    raise problem from exc
            waited = time.monotonic() - started
            if waited >= self.busy_s:
                raise StoreBusy(
                    f"the store {self.path} is busy: another process held its write lock for "
                    f"all the {waited:.1f} s this one waited. Let that process finish, or stop "
                    f"it, and try again; set {BUSY_ENV} (now {self.busy_s:g} s) to wait longer"
                )
            if not warned:
                log.warning(
                    "%s is busy: another process holds its write lock; waiting up to %g s",
                    self.path,
                    self.busy_s,
                )
                warned = True
            time.sleep(min(pause, self.busy_s - waited))
            pause = min(pause * 2, _MAX_PAUSE_S)

    def _problem(self, exc: sqlite3.Error) -> StoreError | None:
        """What to tell a user about an SQLite error of the file, or None (a bug)."""
        code = _code(exc)
        if code in _DAMAGED:
            what = (
                "is not an SQLite database"
                if code == sqlite3.SQLITE_NOTADB
                else "is damaged (database disk image is malformed)"
            )
            name = self.path.name
            return StoreCorrupt(
                f"the store {self.path} {what}. Restore a copy made with `apollo backup`, or "
                f"move {name} (with {name}-wal and {name}-shm) aside to start with an empty "
                "store; the run folders are left as they are"
            )
        if code in _UNUSABLE:
            return StoreError(
                f"cannot use the store {self.path}: {exc} (check that it is a file this user "
                "can read and write, on a disk with space left)"
            )
        return None

    def _transaction(self, body: Callable[[], T]) -> T:
        return _transaction(self._db, body)

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, task: str, config: dict[str, Any], run_id: str | None = None) -> RunRecord:
        rid = run_id or new_run_id()
        now = time.time()

        def insert() -> None:
            try:
                self._db.execute(
                    "INSERT INTO runs (id, task, status, created, updated, config)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (rid, task, RunStatus.CREATED.value, now, now, json.dumps(config)),
                )
            except sqlite3.IntegrityError as exc:
                raise run_taken(rid) from exc

        self._retry(insert)
        record = self.get_run(rid)
        assert record is not None
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._retry(
            lambda: _first(self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)))
        )
        return run_from_row(row) if row else None

    def list_runs(self, limit: int = 1000, status: str | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(limit)
        rows = self._retry(lambda: self._db.execute(sql, args).fetchall())
        return [run_from_row(r) for r in rows]

    # -- events ---------------------------------------------------------------------------
    def append(self, run_id: str, events: Sequence[NewEvent]) -> list[Event]:
        if not events:
            return []
        payloads = [json.dumps(ev.payload) for ev in events]

        def write() -> list[Event]:
            now = time.time()
            found = _first(self._db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)))
            if not found:
                raise unknown_run(run_id)
            check_steerable(run_id, found[0], (ev.kind for ev in events))
            row = _one(self._db.execute(_LAST_SEQ, (run_id,)))
            out, rows = numbered(run_id, events, payloads, int(row[0]), now)
            self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute(*run_update_sql(run_id, run_updates(events), now, "?"))
            return out

        return self._retry(lambda: self._transaction(write))

    def _events(
        self, run_id: str, after: int, kinds: Sequence[str] | None, limit: int | None
    ) -> list[Event]:
        sql = "SELECT seq, ts, kind, actor, step, payload FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(kinds)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)

        def read() -> list[Any]:
            cursor = self._db.cursor()
            cursor.row_factory = None  # plain tuples: whole logs are read here (resume, export)
            return cursor.execute(sql, args).fetchall()

        loads = json.loads
        return [
            Event(run_id, seq, ts, kind, actor, step, loads(payload))
            for seq, ts, kind, actor, step, payload in self._retry(read)
        ]

    def last_seq(self, run_id: str) -> int:
        row = self._retry(lambda: _one(self._db.execute(_LAST_SEQ, (run_id,))))
        return int(row[0])

    # -- blobs ----------------------------------------------------------------------------
    def put_blobs(self, texts: Sequence[str]) -> list[str]:
        ids = [blob_id(t) for t in texts]
        rows = [(bid, *pack_blob(text)) for bid, text in zip(ids, texts, strict=True)]
        self._retry(
            lambda: self._transaction(
                lambda: self._db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", rows)
            )
        )
        return ids

    def get_blobs(self, ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, str] = {}

        def read(chunk: list[str]) -> list[sqlite3.Row]:
            sql = f"SELECT id, z, data FROM blobs WHERE id IN ({','.join('?' * len(chunk))})"
            return self._db.execute(sql, chunk).fetchall()

        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for r in self._retry(functools.partial(read, chunk)):
                out[r["id"]] = unpack_blob(r["z"], r["data"])
        check_blobs_found(wanted, out)
        return out

    # -- annotators -----------------------------------------------------------------------
    def add_annotator(self, name: str, role: Role | str) -> tuple[Annotator, str]:
        role = Role(role).value
        token = new_token()
        aid = "a-" + uuid.uuid4().hex[:10]

        def insert() -> sqlite3.Row:
            try:
                self._db.execute(
                    "INSERT INTO annotators VALUES (?, ?, ?, ?, ?, 0)",
                    (aid, name, role, hash_token(token), time.time()),
                )
            except sqlite3.IntegrityError as exc:
                raise annotator_taken(name) from exc
            return _one(self._db.execute("SELECT * FROM annotators WHERE id = ?", (aid,)))

        return annotator_from_row(self._retry(lambda: self._transaction(insert))), token

    def list_annotators(self) -> list[Annotator]:
        rows = self._retry(
            lambda: self._db.execute("SELECT * FROM annotators ORDER BY created").fetchall()
        )
        return [annotator_from_row(r) for r in rows]

    def revoke_annotator(self, name: str) -> Annotator:
        def revoke() -> sqlite3.Row:
            found = _first(self._db.execute("SELECT * FROM annotators WHERE name = ?", (name,)))
            if found is None:
                raise unknown_annotator(name)
            if found["role"] == Role.ADMIN and not found["revoked"]:
                others = _one(
                    self._db.execute(
                        "SELECT COUNT(*) FROM annotators"
                        " WHERE role = ? AND revoked = 0 AND name != ?",
                        (Role.ADMIN.value, name),
                    )
                )
                if int(others[0]) == 0:
                    raise last_admin(name)
            self._db.execute("UPDATE annotators SET revoked = 1 WHERE name = ?", (name,))
            return _one(self._db.execute("SELECT * FROM annotators WHERE name = ?", (name,)))

        # One IMMEDIATE transaction: two admins revoking each other cannot both pass the check.
        return annotator_from_row(self._retry(lambda: self._transaction(revoke)))

    def authenticate(self, token: str) -> Annotator | None:
        row = self._retry(
            lambda: _first(
                self._db.execute(
                    "SELECT * FROM annotators WHERE token_hash = ? AND revoked = 0",
                    (hash_token(token),),
                )
            )
        )
        return annotator_from_row(row) if row else None

    # -- backup ---------------------------------------------------------------------------
    def backup(self, dest: str | Path, overwrite: bool = False) -> Path:
        """Write a consistent copy of the whole store to `dest`, while others keep writing.

        SQLite's online backup API copies every page in one step, so from one read snapshot
        (in WAL mode writers go on meanwhile): the copy holds exactly the transactions
        committed before it began. The copy is written beside `dest`, checked, and only then
        renamed into place, so `dest` never holds half a copy. An existing `dest` is replaced
        only with `overwrite`, and only when it is a regular file other than the store."""
        dest = Path(dest)
        self._check_backup_dest(dest, overwrite)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            # The copy holds token hashes: readable by this user only.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise StoreError(
                f"cannot write the backup {dest}: {exc.strerror} (does its folder exist, and "
                "may this user write there?)"
            ) from exc
        try:
            target = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._retry(lambda: self._copy_to(target, dest))
                problems = [r[0] for r in target.execute("PRAGMA quick_check").fetchall()]
            finally:
                target.close()
            if problems != ["ok"]:
                raise StoreCorrupt(
                    f"the store {self.path} is damaged ({problems[0]}), so no backup was "
                    "written; restore an older backup or move the store aside"
                )
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def _copy_to(self, target: sqlite3.Connection, dest: Path) -> None:
        try:
            self._db.backup(target)
        except sqlite3.Error as exc:
            if _code(exc) in _BUSY | _DAMAGED:
                raise  # about the store: `_retry` waits or explains
            raise StoreError(f"cannot write the backup {dest}: {exc}") from exc

    def _check_backup_dest(self, dest: Path, overwrite: bool) -> None:
        store_files = {Path(f"{self.path.resolve()}{end}") for end in ("", "-wal", "-shm")}
        if dest.resolve() in store_files:
            raise StoreError(f"{dest} is the store itself; give the backup another path")
        try:
            mode = os.lstat(dest).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot write the backup {dest}: {exc.strerror}") from exc
        if not stat.S_ISREG(mode):
            raise StoreError(f"{dest} exists and is not a regular file; give a new path")
        if not overwrite:
            raise StoreError(f"{dest} already exists; give a new path, or --force to replace it")

    def close(self) -> None:
        with self._lock:
            self._db.close()
