"""The Store interface: runs, append-only events, content-addressed blobs, annotators.

SQLite implements it for one machine (apollo/log/sqlite.py), PostgreSQL for many
(apollo/log/postgres.py). Both are run through the same contract tests (tests/log/contract.py);
what they share (the busy wait, rows to records, blob packing, refusals) is here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from apollo.log import schema
from apollo.log.events import Annotator, Event, Kind, NewEvent, Role, RunRecord, RunStatus

if TYPE_CHECKING:
    from apollo.log.migrations import Migration


class StoreError(Exception):
    """A store operation that cannot be carried out. The subclasses below say why; each
    maps to one HTTP status in the console (apollo/server/app.py, docs/api.md "Errors")."""


class UnknownRun(StoreError):
    """No run has this id."""


class RunEnded(StoreError):
    """The run has ended for good, so what was written (guidance, a control) cannot reach it."""


class UnknownAnnotator(StoreError):
    """No annotator has this name."""


class NameTaken(StoreError):
    """The name (of an annotator, or a run id) is already in use."""


class LogCorrupt(StoreError):
    """A run's log contradicts itself (an event refers to a blob or call that is not there)."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than this process waits.

    Nothing was written; the same operation can be tried again once the lock is free."""


class StoreCorrupt(StoreError):
    """The store's file is not a database, or is damaged (truncated, overwritten)."""


class LastAdminError(StoreError):
    """Revoking this annotator would leave no active admin, locking every admin out."""


BUSY_ENV = "APOLLO_STORE_BUSY_S"
# Generous: a runner that gives up leaves its run to be resumed by hand.
DEFAULT_BUSY_S = 120.0
# Blobs above this size are zlib-compressed; observations and file dumps compress well.
_COMPRESS_ABOVE = 512


def busy_seconds(value: float | None = None) -> float:
    """How long a store waits for another process's lock: `value`, else
    $APOLLO_STORE_BUSY_S, else DEFAULT_BUSY_S."""
    if value is None:
        raw = os.environ.get(BUSY_ENV, "").strip()
        if not raw:
            return DEFAULT_BUSY_S
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise StoreError(f"{BUSY_ENV} must be a number of seconds, 0 or more (got {raw!r})")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"busy_s must be a number of seconds, 0 or more (got {value!r})")
    return float(value)


def run_from_row(row: Any) -> RunRecord:
    """A runs-table row (anything indexed by column name) as a record."""
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


def annotator_from_row(row: Any) -> Annotator:
    """An annotators-table row (anything indexed by column name) as a record."""
    return Annotator(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        created=row["created"],
        revoked=bool(row["revoked"]),
    )


def pack_blob(text: str) -> tuple[bool, bytes]:
    """A blob's text as stored: (compressed?, bytes)."""
    raw = text.encode("utf-8")
    if len(raw) > _COMPRESS_ABOVE:
        return True, zlib.compress(raw, 6)
    return False, raw


def unpack_blob(compressed: Any, data: bytes | memoryview) -> str:
    """The text of a stored blob (`pack_blob` undone)."""
    return (zlib.decompress(data) if compressed else bytes(data)).decode("utf-8")


def check_blobs_found(wanted: Iterable[str], found: dict[str, str]) -> None:
    """Raise LogCorrupt when a blob asked for is not in the store."""
    missing = [b for b in wanted if b not in found]
    if missing:
        raise LogCorrupt(f"unknown blob(s): {', '.join(missing[:3])}")


# Refusals both stores give in the same words.
def run_taken(run_id: str) -> NameTaken:
    return NameTaken(f"run {run_id!r} already exists")


def unknown_run(run_id: str) -> UnknownRun:
    return UnknownRun(f"unknown run {run_id!r}")


def annotator_taken(name: str) -> NameTaken:
    return NameTaken(f"an annotator named {name!r} already exists; pick another name")


def unknown_annotator(name: str) -> UnknownAnnotator:
    return UnknownAnnotator(f"no annotator named {name!r} (see `apollo annotators list`)")


def last_admin(name: str) -> LastAdminError:
    return LastAdminError(
        f"{name} is the last admin: revoking it would lock every admin out;"
        " add another admin first (`apollo annotators add NAME --role admin`)"
    )


def new_run_id() -> str:
    """A sortable, collision-resistant run id: UTC date-time plus random suffix."""
    return time.strftime("r%Y%m%d-%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:6]


def hash_token(token: str) -> str:
    """Tokens are 32 random bytes, so a plain SHA-256 is enough to keep them unrecoverable."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "apo_" + secrets.token_urlsafe(32)


# Runs that ended for good; a failed run (its model went away, say) can still be resumed.
FINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.TIMEOUT})
# What others write to steer a run: meaningless once it has ended for good.
_STEERING = frozenset({Kind.GUIDANCE, Kind.CONTROL})


def check_steerable(run_id: str, status: str, kinds: Iterable[str]) -> None:
    """Refuse guidance and controls (events of `kinds`) for a run that has ended for good.
    Stores call this inside their append transaction, so nothing slips in after
    `run_finished`."""
    if status in FINAL_STATUSES and any(kind in _STEERING for kind in kinds):
        raise RunEnded(
            f"run {run_id} has ended ({status}); guidance and controls reach only live runs"
        )


def run_updates(events: Iterable[Event | NewEvent]) -> dict[str, Any]:
    """The runs-table columns that a batch of events changes (the cache is derived, not told).
    Read with `.get`: deriving the cache never refuses a write."""
    changes: dict[str, Any] = {}
    for ev in events:
        if (resumed := schema.RUN_RESUMED.of(ev)) is not None or ev.kind == Kind.RUN_STARTED:
            paused = bool(resumed and resumed.get("paused"))  # a run paused before a crash
            changes["status"] = (RunStatus.PAUSED if paused else RunStatus.RUNNING).value
        elif (call := schema.MODEL_CALL.of(ev)) is not None:
            if schema.is_action(call) and ev.step is not None:
                changes["step"] = ev.step
        elif (control := schema.CONTROL.of(ev)) is not None:
            if control.get("action") == "pause":
                changes["status"] = RunStatus.PAUSED.value
            elif control.get("action") == "resume":
                changes["status"] = RunStatus.RUNNING.value
        elif (submission := schema.SUBMISSION.of(ev)) is not None:
            # An evaluation that gave no score (the evaluator failed) keeps the last real one.
            if submission.get("score") is not None:
                changes["last_score"] = submission["score"]
        elif ev.kind == Kind.GUIDANCE:
            changes["guidance_delta"] = changes.get("guidance_delta", 0) + 1
        elif (finished := schema.RUN_FINISHED.of(ev)) is not None:
            changes["status"] = finished.get("status", RunStatus.FINISHED.value)
    return changes


def run_update_sql(
    run_id: str, changes: dict[str, Any], now: float, mark: str
) -> tuple[str, list[Any]]:
    """The UPDATE of a run's cached row that `changes` (`run_updates`) makes, with `mark` as
    the driver's parameter marker (`?` or `%s`), and its parameters."""
    sets = [f"updated = {mark}"]
    args: list[Any] = [now]
    for col in ("status", "step", "last_score"):
        if col in changes:
            sets.append(f"{col} = {mark}")
            args.append(changes[col])
    if "guidance_delta" in changes:
        sets.append(f"guidance_count = guidance_count + {mark}")
        args.append(changes["guidance_delta"])
    return f"UPDATE runs SET {', '.join(sets)} WHERE id = {mark}", [*args, run_id]


def numbered(
    run_id: str, events: Sequence[NewEvent], payloads: Sequence[str], last: int, now: float
) -> tuple[list[Event], list[tuple[Any, ...]]]:
    """The events given the seqs after `last`, and their rows for the events table (payloads
    as the JSON texts given)."""
    out: list[Event] = []
    rows: list[tuple[Any, ...]] = []
    for seq, (ev, payload) in enumerate(zip(events, payloads, strict=True), start=last + 1):
        out.append(Event(run_id, seq, now, ev.kind, ev.actor, ev.step, ev.payload))
        rows.append((run_id, seq, now, ev.kind, ev.actor, ev.step, payload))
    return out, rows


class Store(ABC):
    """Persistent home of every run. Implementations must be safe to use from several
    processes at once (a runner and a CLI posting guidance, say)."""

    def __init__(self) -> None:
        self._log_versions: dict[str, int] = {}  # run id -> schema version of its log
        self.migrated: list[Migration] = []  # the schema migrations opening it applied
        self.where = ""  # what the store is, for messages (a path, a URL without password)

    # -- runs -----------------------------------------------------------------------------
    @abstractmethod
    def create_run(self, task: str, config: dict[str, Any], run_id: str | None = None) -> RunRecord:
        """Create an empty run (status `created`); its first event is written by the agent."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """The run's cached row, or None."""

    @abstractmethod
    def list_runs(self, limit: int = 1000, status: str | None = None) -> list[RunRecord]:
        """Runs, newest first."""

    # -- events ---------------------------------------------------------------------------
    @abstractmethod
    def append(self, run_id: str, events: Sequence[NewEvent]) -> list[Event]:
        """Append events atomically, giving them the next sequence numbers of the run.

        Also updates the run's cached row (see `run_updates`)."""

    def events(
        self,
        run_id: str,
        after: int = 0,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events of a run with seq > after, in order, optionally only of some kinds; a log
        written by an older version is read as this version writes it (schema.upgrade)."""
        events = self._events(run_id, after, kinds, limit)
        return schema.upgrade(events, self._log_version(run_id, events))

    @abstractmethod
    def _events(
        self, run_id: str, after: int, kinds: Sequence[str] | None, limit: int | None
    ) -> list[Event]:
        """Events as stored: seq > after, in order, optionally only of some kinds."""

    def _log_version(self, run_id: str, read: list[Event]) -> int:
        """The schema version of a run's log, known once per run from its run_started: the
        first of the events just `read`, or else looked up."""
        version = self._log_versions.get(run_id)
        if version is None:
            if read and read[0].seq == 1 and read[0].kind == Kind.RUN_STARTED:
                first = read[:1]  # a read from the start (a replay): no second query
            else:
                first = self._events(run_id, 0, [Kind.RUN_STARTED], 1)
            if not first:  # not started: what it holds was written by this version
                return schema.SCHEMA_VERSION
            version = self._log_versions[run_id] = schema.log_version(first[0].payload)
        return version

    @abstractmethod
    def last_seq(self, run_id: str) -> int:
        """The highest sequence number of the run (0 when it has no events)."""

    def append_one(
        self,
        run_id: str,
        kind: str,
        payload: dict[str, Any],
        actor: str = "agent",
        step: int | None = None,
    ) -> Event:
        """Append a single event."""
        return self.append(run_id, [NewEvent(kind, payload, actor, step)])[0]

    # -- blobs ----------------------------------------------------------------------------
    @abstractmethod
    def put_blobs(self, texts: Sequence[str]) -> list[str]:
        """Store texts once each by content; return their ids (sha256 hex) in order."""

    @abstractmethod
    def get_blobs(self, ids: Sequence[str]) -> dict[str, str]:
        """The texts of the given blob ids. Unknown ids raise LogCorrupt."""

    def put_blob(self, text: str) -> str:
        return self.put_blobs([text])[0]

    def get_blob(self, blob: str) -> str:
        return self.get_blobs([blob])[blob]

    # -- annotators -----------------------------------------------------------------------
    @abstractmethod
    def add_annotator(self, name: str, role: Role | str) -> tuple[Annotator, str]:
        """Create an annotator; returns it and its token (shown once, stored hashed)."""

    @abstractmethod
    def list_annotators(self) -> list[Annotator]:
        """All annotators, revoked ones included."""

    @abstractmethod
    def revoke_annotator(self, name: str) -> Annotator:
        """Revoke an annotator by name; its token stops working. Raises LastAdminError when
        it is the last active admin (checked in the same transaction as the revocation)."""

    @abstractmethod
    def authenticate(self, token: str) -> Annotator | None:
        """The annotator a token belongs to, or None (unknown or revoked)."""

    # -- lifecycle ------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
