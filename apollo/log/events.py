"""Event kinds of the run log and the record types that travel through the Store.

Every run is an append-only sequence of events. The agent's context, resume, the console,
supervision and export are all functions of this sequence. docs/design.md "Events" lists
every kind's payload keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The kinds of event a run's log holds."""

    # The payload keys each kind carries, as the agent and apollo.log.writes write them
    # (docs/design.md "Events" gives the variants). (blob): a blob id.
    RUN_STARTED = "run_started"  # {task, task_path, model, budget, messages (blobs), tools (blob)}
    RUN_RESUMED = "run_resumed"  # {sessions, interrupted: [call ids], rerun: [call ids], paused}
    # {purpose, input: {prev, keep, add}, tools} + {output (blob), calls, usage, latency_ms,
    # model, repaired, parse_error, work_s}, or {error, attempts, ...}, or {cancelled, ...}
    MODEL_CALL = "model_call"
    # A failed attempt of a model call, written as it happens, before the call is made again:
    # {purpose, attempt, max_attempts, error, status, waited_s, delay_s, since_s, window_s, work_s}
    MODEL_RETRY = "model_retry"
    # {tool_call_id, tool, message (blob), exit, error, truncated, duration_ms, meta, work_s};
    # a call a crash cut: {tool_call_id, tool, message, error, interrupted, work_s}; a reply
    # without a valid tool call: {tool_call_id: None, tool: None, message, error, malformed, work_s}
    OBSERVATION = "observation"
    GUIDANCE = "guidance"  # {id, author, kind, text, drift_from_step, urgent, hint_id?}
    GUIDANCE_DELIVERED = "guidance_delivered"  # {guidance_id, step, message (blob)}
    GUIDANCE_CANCELLED = "guidance_cancelled"  # {guidance_id, reason}: queued when the run ended
    # {covers: [first, last], messages (blobs), cited_guidance: [ids], repaired_guidance, work_s}
    SUMMARY = "summary"
    CONTROL = "control"  # {action: pause|resume|stop, author}
    LABEL = "label"  # {step, verdict, reason, source, author, rule?, model?}
    PRESENCE = "presence"  # {seconds}: time an annotator spent watching the run
    SUBMISSION = "submission"  # {n, score, details, error, status, final, note, work_s}
    # {sessions: [{id, output (text blob), new_bytes, cursor, exit_code, killed}]}: at run end,
    # the output each session wrote that the agent had not read, recorded before it is lost.
    SESSIONS_CLOSED = "sessions_closed"
    # {status, reason, resumable, work_s, evaluator_error?}: the run's outcome is its last
    # run_finished with no run_resumed after it (apollo.log.outcome); only a failed run is
    # resumable.
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


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's log. `seq` is dense and starts at 1 within a run."""

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
