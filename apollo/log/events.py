"""Event kinds of the run log and the record types that travel through the Store.

Every run is an append-only sequence of events. The agent's context, resume, the console,
supervision and export are all functions of this sequence. What each kind's payload carries
is its type in apollo.log.schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Kind(StrEnum):
    """The kinds of event a run's log holds. What each carries is its TypedDict in
    apollo.log.schema (named after the kind: RUN_STARTED -> RunStarted)."""

    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    MODEL_CALL = "model_call"
    MODEL_RETRY = "model_retry"  # a failed attempt, written before the call is made again
    OBSERVATION = "observation"
    GUIDANCE = "guidance"
    GUIDANCE_DELIVERED = "guidance_delivered"
    GUIDANCE_CANCELLED = "guidance_cancelled"
    SUMMARY = "summary"
    CONTROL = "control"
    LABEL = "label"
    PRESENCE = "presence"
    ANNOTATOR_DECISION = "annotator_decision"  # an LLM annotator looked; what it decided
    SUBMISSION = "submission"
    SESSIONS_CLOSED = "sessions_closed"
    RUN_FINISHED = "run_finished"


class RunStatus(StrEnum):
    """Status of a run, as cached in the runs table."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    TIMEOUT = "timeout"

    @property
    def ended(self) -> bool:
        return self in _ENDED


_ENDED = {RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.TIMEOUT}


class Role(StrEnum):
    """Annotator roles, from most to least privileged."""

    ADMIN = "admin"
    ANNOTATOR = "annotator"
    VIEWER = "viewer"


class Event(NamedTuple):
    """One entry of a run's log. `seq` is dense and starts at 1 within a run. A named tuple:
    immutable, and built four times faster than a frozen dataclass, which counts when a
    whole log is read (a replay builds one per event)."""

    run_id: str
    seq: int
    ts: float
    kind: str
    actor: str
    step: int | None
    payload: Mapping[str, object]  # typed per kind: read it through apollo.log.schema


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event before the store has given it a sequence number and a timestamp."""

    kind: str
    payload: Mapping[str, object]  # build it with apollo.log.schema's EventType.new
    actor: str = "agent"
    step: int | None = None


@dataclass(slots=True)
class RunRecord:
    """A row of the runs table: a cache derived from the run's events."""

    id: str
    task: str
    status: str
    step: int
    created: float
    updated: float
    config: dict[str, Any] = field(default_factory=dict)
    last_score: float | None = None
    guidance_count: int = 0


@dataclass(frozen=True, slots=True)
class Annotator:
    """A person (or program) that may act on runs; the token is kept only as a hash."""

    id: str
    name: str
    role: str
    created: float
    revoked: bool = False


# The rule for annotator names, shared by the API and `apollo annotators add`: names are typed
# at login and shown in terminals, pages and logs, so they are short and plain.
ANNOTATOR_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
MAX_ANNOTATOR_NAME_CHARS = 100


def check_annotator_name(name: str) -> str:
    """`name` if it follows the annotator name rule, else a ValueError that states the rule."""
    if len(name) > MAX_ANNOTATOR_NAME_CHARS or not re.fullmatch(ANNOTATOR_NAME_PATTERN, name):
        raise ValueError(
            f"annotator name {name!r} is not allowed: use 1 to {MAX_ANNOTATOR_NAME_CHARS} "
            "letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return name


def blob_id(text: str) -> str:
    """The content address of a text blob (sha256, hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """Deterministic compact JSON, so equal messages share one blob."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
