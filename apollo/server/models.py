"""Request and response shapes of the console API (docs/api.md), as pydantic models.

Requests forbid unknown fields, so a typo is a 422 that names the field rather than a value
silently ignored. Responses are what the OpenAPI schema advertises and what the tests check.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from apollo.log.events import ANNOTATOR_NAME_PATTERN, MAX_ANNOTATOR_NAME_CHARS
from apollo.log.writes import MAX_GUIDANCE_CHARS, MAX_LABEL_REASON_CHARS, MAX_PRESENCE_S

GuidanceKindField = Literal["knowledge", "strategy", "correction", "hint", "other"]
RoleField = Literal["admin", "annotator", "viewer"]

# The largest integer SQLite stores: anything above it cannot be a seq or a step.
INT64_MAX = 2**63 - 1
_ASCII_INT = re.compile(r"[+-]?[0-9]{1,20}")


def _ascii_int(value: object) -> object:
    """Integers written as text (query strings, headers) in ASCII digits only: Python's int()
    also reads other scripts' digits ("١٢"), and str.isdigit() accepts ones int() does not
    ("²"); pydantic then checks the bounds."""
    if isinstance(value, str):
        text = value.strip()
        if not _ASCII_INT.fullmatch(text):
            raise ValueError("expected an integer written in the digits 0-9")
        return int(text)
    return value


# Every integer the API reads goes through one parser; each use bounds it.
AsciiInt = Annotated[int, BeforeValidator(_ascii_int)]
Step = Annotated[AsciiInt, Field(ge=1, le=INT64_MAX)]


class _Request(BaseModel):
    # Non-finite numbers (JSON's NaN and Infinity, which Python's parser accepts) are refused.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- auth ---------------------------------------------------------------------------------
class LoginRequest(_Request):
    name: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=500)


class _Identity(BaseModel):
    # An annotator as the console knows them; the views of one add what each answer needs.
    name: str
    role: RoleField


class Me(_Identity):
    csrf_token: str = Field(description="send as X-CSRF-Token on cookie-authenticated writes")


# -- runs -----------------------------------------------------------------------------------
class StartRunRequest(_Request):
    task: str = Field(min_length=1, max_length=200, description="a task id from /api/tasks")
    model: str = Field(
        "embedded",
        min_length=1,
        max_length=2000,
        description="'embedded' or the name of a model endpoint an admin configured "
        "(GET /api/endpoints); URLs are not accepted",
    )
    annotator: Literal["simulated", "none"] = "none"
    max_steps: AsciiInt | None = Field(None, ge=1, le=1_000_000)
    min_steps: AsciiInt | None = Field(None, ge=0, le=1_000_000)


class CreatedRun(BaseModel):
    id: str
    state: Literal["running", "queued"] = Field(
        description="running: the server drives it now; queued: it starts when a slot frees"
    )


class Attention(BaseModel):
    kind: Literal["error_streak", "repeated_action", "long_idle", "session_killed_early"]
    detail: str


class Cost(BaseModel):
    interventions: int = Field(description="guidance messages posted")
    interventions_per_hour: float = Field(description="per hour of agent working time")
    annotator_seconds: float = Field(
        description="time annotators spent in the run view, measured from the arrival "
        "times of their presence reports"
    )
    prompt_tokens: int
    completion_tokens: int
    model_retries: int = Field(description="failed model attempts that were made again")
    wall_s: float = Field(
        description="the agent's: from its first event to its last (annotators' writes "
        "after the run do not stretch it)"
    )
    work_s: float = Field(description="agent working time (pauses and downtime excluded)")


class Totals(Cost):
    runs: int


class RunSummary(BaseModel):
    id: str
    task: str
    model: str | None
    started_by: str | None
    status: str
    step: int
    max_steps: int | None
    created: float
    updated: float
    working_time_left_s: float | None
    last_score: float | None
    guidance_count: int
    guidance_queued: int
    attention: list[Attention]
    cost: Cost


class RunsResponse(BaseModel):
    runs: list[RunSummary]
    totals: Totals


class SessionView(BaseModel):
    id: str
    command: str | None
    running: bool
    exit_code: int | None


class SubmissionView(BaseModel):
    n: int | None
    score: float | None
    # scored | rejected (the workspace broke a rule) | evaluator_error (the evaluator itself
    # failed: no score, and it says nothing about the agent's work)
    status: str | None = None
    error: str | None = None
    final: bool
    step: int | None


class GuidanceView(BaseModel):
    id: str
    author: str
    kind: str
    text: str
    urgent: bool
    drift_from_step: int | None
    state: Literal["queued", "delivered", "cancelled"]
    delivered_step: int | None


class LabelView(BaseModel):
    step: int
    verdict: str
    reason: str
    source: str
    author: str


class RunDetail(RunSummary):
    config: dict[str, Any]
    sessions: list[SessionView]
    submissions: list[SubmissionView]
    guidance: list[GuidanceView]
    labels: list[LabelView]


class EventView(BaseModel):
    seq: int
    ts: float
    kind: str
    actor: str
    step: int | None
    payload: dict[str, Any] = Field(
        description="the event's payload; blob references expanded for display "
        "(model_call: message, observation: content, summary: text)"
    )


class EventsResponse(BaseModel):
    events: list[EventView]
    last_seq: int = Field(
        description="seq of the last event returned (or `after` when none): pass it as "
        "`after` (or to the stream) to continue without a gap"
    )


# -- writes -------------------------------------------------------------------------------
class GuidanceRequest(_Request):
    text: str = Field(min_length=1, max_length=MAX_GUIDANCE_CHARS)
    kind: GuidanceKindField = "hint"
    drift_from_step: Step | None = None
    urgent: bool = False


class GuidanceCreated(BaseModel):
    id: str
    seq: int
    state: Literal["queued"] = "queued"


class ControlRequest(_Request):
    action: Literal["pause", "resume", "stop"]


class Written(BaseModel):
    seq: int


class LabelRequest(_Request):
    step: Step
    verdict: Literal["keep", "mask"]
    reason: str = Field("", max_length=MAX_LABEL_REASON_CHARS, description="required to mask")


class PresenceRequest(_Request):
    seconds: float = Field(
        ge=0,
        le=MAX_PRESENCE_S,
        description="seconds the run view was visible since the last report; 0 marks the "
        "start of watching",
    )


# -- tasks and annotators -------------------------------------------------------------------
class TaskView(BaseModel):
    id: str
    title: str
    steps: int
    working_time_s: float
    submissions: int


class TasksResponse(BaseModel):
    tasks: list[TaskView]


class AnnotatorView(_Identity):
    created: float
    revoked: bool


class AnnotatorsResponse(BaseModel):
    annotators: list[AnnotatorView]


class AnnotatorCreate(_Request):
    name: str = Field(
        min_length=1, max_length=MAX_ANNOTATOR_NAME_CHARS, pattern=ANNOTATOR_NAME_PATTERN
    )
    role: RoleField = "annotator"


class AnnotatorCreated(_Identity):
    token: str = Field(description="shown once; only its hash is stored")


# -- model endpoints ------------------------------------------------------------------------
class EndpointPut(_Request):
    url: str = Field(min_length=1, max_length=2000, description="OpenAI-compatible base URL")
    model_name: str = Field(min_length=1, max_length=200, description="model name it is sent")
    api_key_env: str | None = Field(
        None, max_length=200, description="environment variable of the server with the key"
    )


class EndpointView(BaseModel):
    name: str
    url: str
    model_name: str
    api_key_env: str | None


class EndpointsResponse(BaseModel):
    endpoints: list[EndpointView]
    default: str = Field(description="what a run uses when it names no model")
