"""What each kind of event carries: one typed payload per kind, and the schema's version.

A payload is a `TypedDict`: on disk and in memory it stays the plain JSON object the store
reads (no parsing or copying on the read path), while mypy checks every key that code writes
or reads. Code builds events with `EventType.new` and reads payloads with `EventType.of` (or
`EventType.payload` once it has checked the kind); `Event.payload` itself is opaque.

To change what an event carries: change its TypedDict here. A key that old logs lack must be
`NotRequired`, or be filled in by `upgrade` for logs of an older `SCHEMA_VERSION`
(docs/design.md "Events").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NotRequired, TypedDict, TypeVar, cast

from apollo.log.events import Event, Kind, NewEvent

# Version 1: logs written before the version was recorded (no `schema` in run_started).
# Version 2: submissions always say their `status`; guidance always its `kind`, `urgent` and
# `drift_from_step`; labels always their `source` and `author`.
SCHEMA_VERSION = 2


class Budget(TypedDict):
    """What a run may spend: working time (seconds), steps (after any cap), submissions."""

    working_time: float
    steps: int
    submissions: int


class RunStarted(TypedDict):
    """The first event of a run: the task, the model, the budget, the preamble messages
    (system prompt and task, as blobs) and the tool schemas (a blob)."""

    schema: NotRequired[int]  # SCHEMA_VERSION of the code that started the run; absent: 1
    task: str
    task_path: str
    model: str
    budget: Budget
    messages: list[str]
    tools: str


class RunResumed(TypedDict):
    """A run picked up again after its runner stopped: the sessions reattached, the tool
    calls a crash cut (answered "interrupted", or made again for reads), whether it is paused."""

    sessions: list[str]
    interrupted: list[str]
    rerun: list[str]
    paused: bool


class CallInput(TypedDict):
    """A model call's input as a delta (apollo.log.calls): the first `keep` messages of the
    input of call `prev` (a seq), then the blobs `add`."""

    prev: int | None
    keep: int
    add: list[str]


class CallRef(TypedDict):
    """A tool call of a model reply, as the fold needs it to pair results with calls."""

    id: str
    name: str


class CallHead(TypedDict):
    """What every model call records, whatever came of it."""

    purpose: str  # act (a step of the agent) or summarize (condensing its context)
    input: CallInput
    tools: str | None  # the tool schemas offered (act calls), a blob


class ModelCall(CallHead):
    """One call of the model. A call that produced a reply has `output` (the assistant
    message, a blob) and `calls`; a failed one has `error` and `attempts`; one cancelled by
    urgent guidance has `cancelled` and the guidance ids in `cancelled_for`."""

    output: NotRequired[str]
    calls: NotRequired[list[CallRef]]
    usage: NotRequired[dict[str, int]]
    latency_ms: NotRequired[float]
    model: NotRequired[str]
    repaired: NotRequired[bool]
    parse_error: NotRequired[str | None]
    error: NotRequired[str]
    attempts: NotRequired[int]
    cancelled: NotRequired[bool]
    cancelled_for: NotRequired[list[str]]
    work_s: float


def call_tokens(call: ModelCall) -> tuple[int, int]:
    """(all tokens, completion tokens) a model call used, from its usage: the endpoint's
    total, or prompt + completion where it gives no total; (0, 0) without usage."""
    usage = call.get("usage") or {}
    completion = usage.get("completion_tokens", 0)
    return usage.get("total_tokens", usage.get("prompt_tokens", 0) + completion), completion


def is_action(call: ModelCall) -> bool:
    """Whether a model call made an action: an act call that produced a reply (failed and
    cancelled calls, and summaries, did not)."""
    return call.get("purpose") == "act" and "output" in call


class ModelRetry(TypedDict):
    """A failed attempt of a model call, written as it happens, before the call is made
    again (apollo.llm.base.RetryNotice)."""

    purpose: str
    attempt: int
    max_attempts: int | None
    error: str
    status: int | None
    waited_s: float
    delay_s: float
    since_s: float
    window_s: float
    work_s: float


class Observation(TypedDict):
    """What the agent was told after a reply: a tool's result (`message`, a tool message
    blob); for a call a crash cut, `interrupted`; for a reply without a valid tool call,
    `malformed` and no call id or tool."""

    tool_call_id: str | None
    tool: str | None
    message: str
    error: bool
    exit: NotRequired[int | None]
    truncated: NotRequired[bool]
    duration_ms: NotRequired[float]
    meta: NotRequired[dict[str, Any]]  # what the tool reports besides its text
    # call_digest of the call and the tool's own output (no note, no footer): equal ones
    # are a call repeated with the same result
    call_digest: NotRequired[str]
    interrupted: NotRequired[bool]
    malformed: NotRequired[bool]
    work_s: float


class Guidance(TypedDict):
    """Guidance an annotator (or the simulated one, with its `hint_id`) queued for a run;
    `drift_from_step` marks the first step that went wrong."""

    id: str
    author: str
    kind: str
    text: str
    drift_from_step: int | None
    urgent: bool
    hint_id: NotRequired[str]


class GuidanceDelivered(TypedDict):
    """Queued guidance became a user turn (`message`, a blob) before step `step`."""

    guidance_id: str
    step: int
    message: str


class GuidanceCancelled(TypedDict):
    """Guidance still queued when the run ended."""

    guidance_id: str
    reason: str


class Summary(TypedDict):
    """Steps `covers` (first, last) condensed into `messages` (an assistant summary and a
    user turn, blobs); the guidance the summary had to keep, and whether it was repaired."""

    covers: list[int]
    messages: list[str]
    cited_guidance: list[str]
    repaired_guidance: list[str]
    work_s: float


class Control(TypedDict):
    action: str  # pause, resume or stop
    author: str


class Label(TypedDict):
    """A verdict on the action of one step; a judge's label names its `model`, a rule's its
    `rule`."""

    step: int
    verdict: str  # apollo.log.writes.LABEL_VERDICTS
    reason: str
    source: str  # apollo.log.writes.LABEL_SOURCES
    author: str
    rule: NotRequired[str]
    model: NotRequired[str]


class Presence(TypedDict):
    """Seconds an annotator spent watching the run (the console caps them by the time since
    the previous report)."""

    seconds: float


class AnnotatorDecision(TypedDict):
    """An LLM annotator read the run up to `step` and decided (`outcome`): `posted` a hint
    (`hint`, queued as guidance `guidance_id` in the same append), `no_intervention`,
    `refused` (its hint held a hidden value of the instance or was too long; the hint is not
    kept), `unparseable` (no decision in its answer) or `model_error`. `reason` is the
    model's why, or the failure."""

    annotator: str
    step: int
    outcome: str
    drifted: bool | None
    reason: str
    hint: str | None
    guidance_id: str | None
    model: str
    latency_ms: float


class Submission(TypedDict):
    """The evaluator's verdict on the workspace: `status` is scored, rejected (no score,
    `error` says why) or evaluator_error (the evaluator itself failed)."""

    n: int
    score: float | None
    details: dict[str, Any]
    error: str | None
    status: str
    final: bool
    note: str
    work_s: float


class ClosedSession(TypedDict):
    """A session's output the agent had not read at run end (`output`, a text blob)."""

    id: str
    output: str
    new_bytes: int
    cursor: int
    exit_code: int | None
    killed: bool


class SessionsClosed(TypedDict):
    sessions: list[ClosedSession]


class RunFinished(TypedDict):
    """How the run ended (apollo.log.outcome: the last one with no run_resumed after it)."""

    status: str
    reason: str
    resumable: bool
    work_s: NotRequired[float]
    evaluator_error: NotRequired[str]


P = TypeVar("P", bound=Mapping[str, object])


@dataclass(frozen=True, slots=True)
class EventType(Generic[P]):
    """A kind of event together with the type of its payload."""

    kind: Kind

    def new(self, payload: P, actor: str = "agent", step: int | None = None) -> NewEvent:
        """A new event of this kind (mypy checks `payload` against the kind's type)."""
        return NewEvent(self.kind, payload, actor, step)

    def of(self, ev: Event | NewEvent) -> P | None:
        """The payload of `ev` if it is of this kind, else None."""
        return cast(P, ev.payload) if ev.kind == self.kind else None

    def payload(self, ev: Event | NewEvent) -> P:
        """The payload of `ev`, which must be of this kind."""
        if ev.kind != self.kind:
            raise TypeError(f"expected a {self.kind} event, got {ev.kind}")
        return cast(P, ev.payload)


RUN_STARTED: EventType[RunStarted] = EventType(Kind.RUN_STARTED)
RUN_RESUMED: EventType[RunResumed] = EventType(Kind.RUN_RESUMED)
MODEL_CALL: EventType[ModelCall] = EventType(Kind.MODEL_CALL)
MODEL_RETRY: EventType[ModelRetry] = EventType(Kind.MODEL_RETRY)
OBSERVATION: EventType[Observation] = EventType(Kind.OBSERVATION)
GUIDANCE: EventType[Guidance] = EventType(Kind.GUIDANCE)
GUIDANCE_DELIVERED: EventType[GuidanceDelivered] = EventType(Kind.GUIDANCE_DELIVERED)
GUIDANCE_CANCELLED: EventType[GuidanceCancelled] = EventType(Kind.GUIDANCE_CANCELLED)
SUMMARY: EventType[Summary] = EventType(Kind.SUMMARY)
CONTROL: EventType[Control] = EventType(Kind.CONTROL)
LABEL: EventType[Label] = EventType(Kind.LABEL)
PRESENCE: EventType[Presence] = EventType(Kind.PRESENCE)
SUBMISSION: EventType[Submission] = EventType(Kind.SUBMISSION)
ANNOTATOR_DECISION: EventType[AnnotatorDecision] = EventType(Kind.ANNOTATOR_DECISION)
SESSIONS_CLOSED: EventType[SessionsClosed] = EventType(Kind.SESSIONS_CLOSED)
RUN_FINISHED: EventType[RunFinished] = EventType(Kind.RUN_FINISHED)


# -- logs written by older versions ----------------------------------------------------------
def log_version(started: Mapping[str, object] | None) -> int:
    """The schema version of a run's log, from its run_started payload (None: not started,
    so everything in it is written by this version)."""
    if started is None:
        return SCHEMA_VERSION
    version = started.get("schema", 1)
    return version if isinstance(version, int) else 1


def _submission_v1(ev: Event, p: dict[str, Any]) -> None:
    if "status" not in p:
        p["status"] = "scored" if p.get("score") is not None else "rejected"


def _guidance_v1(ev: Event, p: dict[str, Any]) -> None:
    p.setdefault("kind", "hint")
    p.setdefault("urgent", False)
    p.setdefault("drift_from_step", None)


def _label_v1(ev: Event, p: dict[str, Any]) -> None:
    p.setdefault("source", "human")
    p.setdefault("author", ev.actor)


# What a version-1 payload lacks. Each upgrade is idempotent: a version-1 run resumed by this
# version holds events of both shapes.
_FROM_V1: dict[str, Callable[[Event, dict[str, Any]], None]] = {
    Kind.SUBMISSION: _submission_v1,
    Kind.GUIDANCE: _guidance_v1,
    Kind.LABEL: _label_v1,
}


def upgrade(events: list[Event], version: int) -> list[Event]:
    """Events of a log written at schema `version`, brought to SCHEMA_VERSION in place
    (payloads are fresh from the store, owned by the caller)."""
    if version >= SCHEMA_VERSION:
        return events
    for ev in events:
        fix = _FROM_V1.get(ev.kind)
        if fix is not None:
            fix(ev, cast(dict[str, Any], ev.payload))
    return events
