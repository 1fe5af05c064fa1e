"""SQLite implementation of the Store (WAL mode): the embedded default."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apollo.log.events import Annotator, Event, NewEvent, Role, RunRecord, RunStatus, blob_id
from apollo.log.store import (
    LastAdminError,
    Store,
    StoreError,
    check_steerable,
    hash_token,
    new_run_id,
    new_token,
    run_updates,
)

# Ordinary rowid tables: payloads and blobs are often kilobytes, which WITHOUT ROWID tables
# store poorly (rows past ~1/20 of a page spill into overflow chains).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    config TEXT NOT NULL,
    last_score REAL,
    guidance_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    step INTEGER,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- Readers that follow only some kinds (the agent polling for guidance) seek by kind.
CREATE INDEX IF NOT EXISTS events_kind ON events (run_id, kind, seq);
CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    z INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS annotators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""

# Blobs above this size are zlib-compressed; observations and file dumps compress well.
_COMPRESS_ABOVE = 512


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


def _run_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        task=row["task"],
        status=row["status"],
        step=row["step"],
        created=row["created"],
        updated=row["updated"],
        config=json.loads(row["config"]),
        last_score=row["last_score"],
        guidance_count=row["guidance_count"],
    )


def _annotator_row(row: sqlite3.Row) -> Annotator:
    return Annotator(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        created=row["created"],
        revoked=bool(row["revoked"]),
    )


class SQLiteStore(Store):
    """A Store in one SQLite file. Several processes may open the same file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: cheap, and safe across the runner's threads.
        self._db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut) and is much faster.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        # Long logs are read back whole (resume, export): a 64 MiB page cache instead of the
        # default 2 MiB keeps the events and blobs of a run in memory while it is read.
        self._db.execute("PRAGMA cache_size=-65536")
        self._db.executescript(_SCHEMA)

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, task: str, config: dict[str, Any], run_id: str | None = None) -> RunRecord:
        rid = run_id or new_run_id()
        now = time.time()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO runs (id, task, status, created, updated, config)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (rid, task, RunStatus.CREATED.value, now, now, json.dumps(config)),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"run {rid!r} already exists") from exc
        record = self.get_run(rid)
        assert record is not None
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = _first(self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)))
        return _run_row(row) if row else None

    def list_runs(self, limit: int = 1000, status: str | None = None) -> list[RunRecord]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        sql += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_run_row(r) for r in rows]

    # -- events ---------------------------------------------------------------------------
    def append(self, run_id: str, events: Sequence[NewEvent]) -> list[Event]:
        if not events:
            return []
        now = time.time()
        with self._lock:
            # IMMEDIATE takes the write lock first, so two processes never pick the same seq.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = _first(self._db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)))
                if not found:
                    raise StoreError(f"unknown run {run_id!r}")
                check_steerable(run_id, found[0], events)
                row = _one(
                    self._db.execute(
                        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
                    )
                )
                seq = int(row[0])
                out: list[Event] = []
                rows = []
                for ev in events:
                    seq += 1
                    out.append(Event(run_id, seq, now, ev.kind, ev.actor, ev.step, ev.payload))
                    rows.append(
                        (run_id, seq, now, ev.kind, ev.actor, ev.step, json.dumps(ev.payload))
                    )
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                self._apply_run_updates(run_id, run_updates(events), now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def _apply_run_updates(self, run_id: str, changes: dict[str, Any], now: float) -> None:
        sets = ["updated = ?"]
        args: list[Any] = [now]
        for col in ("status", "step", "last_score"):
            if col in changes:
                sets.append(f"{col} = ?")
                args.append(changes[col])
        if "guidance_delta" in changes:
            sets.append("guidance_count = guidance_count + ?")
            args.append(changes["guidance_delta"])
        args.append(run_id)
        self._db.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", args)

    def events(
        self,
        run_id: str,
        after: int = 0,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
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
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None  # plain tuples: whole logs are read here (resume, export)
            rows = cursor.execute(sql, args).fetchall()
        loads = json.loads
        return [
            Event(run_id, seq, ts, kind, actor, step, loads(payload))
            for seq, ts, kind, actor, step, payload in rows
        ]

    def last_seq(self, run_id: str) -> int:
        with self._lock:
            row = _one(
                self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?", (run_id,)
                )
            )
        return int(row[0])

    # -- blobs ----------------------------------------------------------------------------
    def put_blobs(self, texts: Sequence[str]) -> list[str]:
        ids = [blob_id(t) for t in texts]
        rows = []
        for bid, text in zip(ids, texts, strict=True):
            raw = text.encode("utf-8")
            if len(raw) > _COMPRESS_ABOVE:
                rows.append((bid, 1, zlib.compress(raw, 6)))
            else:
                rows.append((bid, 0, raw))
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", rows)
        return ids

    def get_blobs(self, ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                rows = self._db.execute(
                    f"SELECT id, z, data FROM blobs WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for r in rows:
                    data = zlib.decompress(r["data"]) if r["z"] else r["data"]
                    out[r["id"]] = bytes(data).decode("utf-8")
        missing = [b for b in wanted if b not in out]
        if missing:
            raise StoreError(f"unknown blob(s): {', '.join(missing[:3])}")
        return out

    # -- annotators -----------------------------------------------------------------------
    def add_annotator(self, name: str, role: Role | str) -> tuple[Annotator, str]:
        role = Role(role).value
        token = new_token()
        aid = "a-" + uuid.uuid4().hex[:10]
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO annotators VALUES (?, ?, ?, ?, ?, 0)",
                    (aid, name, role, hash_token(token), time.time()),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(
                    f"an annotator named {name!r} already exists; pick another name"
                ) from exc
            row = _one(self._db.execute("SELECT * FROM annotators WHERE id = ?", (aid,)))
        return _annotator_row(row), token

    def list_annotators(self) -> list[Annotator]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM annotators ORDER BY created").fetchall()
        return [_annotator_row(r) for r in rows]

    def revoke_annotator(self, name: str) -> Annotator:
        with self._lock:
            # IMMEDIATE: two admins revoking each other at once cannot both pass the check.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = _first(self._db.execute("SELECT * FROM annotators WHERE name = ?", (name,)))
                if found is None:
                    raise StoreError(f"no annotator named {name!r} (see `apollo annotators list`)")
                if found["role"] == Role.ADMIN and not found["revoked"]:
                    others = _one(
                        self._db.execute(
                            "SELECT COUNT(*) FROM annotators"
                            " WHERE role = ? AND revoked = 0 AND name != ?",
                            (Role.ADMIN.value, name),
                        )
                    )
                    if int(others[0]) == 0:
                        raise LastAdminError(
                            f"{name} is the last admin: revoking it would lock every admin out;"
                            " add another admin first (`apollo annotators add NAME --role admin`)"
                        )
                self._db.execute("UPDATE annotators SET revoked = 1 WHERE name = ?", (name,))
                row = _one(self._db.execute("SELECT * FROM annotators WHERE name = ?", (name,)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return _annotator_row(row)

    def authenticate(self, token: str) -> Annotator | None:
        with self._lock:
            row = _first(
                self._db.execute(
                    "SELECT * FROM annotators WHERE token_hash = ? AND revoked = 0",
                    (hash_token(token),),
                )
            )
        return _annotator_row(row) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
