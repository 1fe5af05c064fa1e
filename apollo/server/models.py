"""Request and response shapes of the console API (docs/api.md), as pydantic models.

Requests forbid unknown fields, so a typo is a 422 that names the field rather than a value
silently ignored. Responses are what the OpenAPI schema advertises and what the tests check.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apollo.log.events import ANNOTATOR_NAME_PATTERN, MAX_ANNOTATOR_NAME_CHARS
from apollo.log.writes import MAX_GUIDANCE_CHARS, MAX_LABEL_REASON_CHARS, MAX_PRESENCE_S

GuidanceKindField = Literal["knowledge", "strategy", "correction", "hint", "other"]
RoleField = Literal["admin", "annotator", "viewer"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth ---------------------------------------------------------------------------------
class LoginRequest(_Request):
    name: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=500)


class Me(BaseModel):
    name: str
    role: RoleField
    csrf_token: str = Field(description="send as X-CSRF-Token on cookie-authenticated writes")


# -- runs -----------------------------------------------------------------------------------
class StartRunRequest(_Request):
    task: str = Field(min_length=1, max_length=200, description="a task id from /api/tasks")
    model: str = Field(
        "embedded",
        min_length=1,
        max_length=2000,
        description="'embedded' or an OpenAI-compatible base URL (http or https, ending /v1)",
    )
    model_name: str | None = Field(None, min_length=1, max_length=200)
    annotator: Literal["simulated", "none"] = "none"
    max_steps: int | None = Field(None, ge=1, le=1_000_000)
    min_steps: int | None = Field(None, ge=0, le=1_000_000)


class CreatedRun(BaseModel):
    id: str


class Attention(BaseModel):
    kind: Literal["error_streak", "repeated_action", "long_idle", "session_killed_early"]
    detail: str


class Cost(BaseModel):
    interventions: int = Field(description="guidance messages posted")
    interventions_per_hour: float = Field(description="per hour of agent working time")
    annotator_seconds: float = Field(description="time annotators spent in the run view")
    prompt_tokens: int
    completion_tokens: int
    wall_s: float = Field(description="from the first event to the last")
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
    drift_from_step: int | None = Field(None, ge=1)
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
    step: int = Field(ge=1)
    verdict: Literal["keep", "mask"]
    reason: str = Field("", max_length=MAX_LABEL_REASON_CHARS, description="required to mask")


class PresenceRequest(_Request):
    seconds: float = Field(gt=0, le=MAX_PRESENCE_S)


# -- tasks and annotators -------------------------------------------------------------------
class TaskView(BaseModel):
    id: str
    title: str
    steps: int
    working_time_s: float
    submissions: int


class TasksResponse(BaseModel):
    tasks: list[TaskView]


class AnnotatorView(BaseModel):
    name: str
    role: RoleField
    created: float
    revoked: bool


class AnnotatorsResponse(BaseModel):
    annotators: list[AnnotatorView]


class AnnotatorCreate(_Request):
    name: str = Field(
        min_length=1, max_length=MAX_ANNOTATOR_NAME_CHARS, pattern=ANNOTATOR_NAME_PATTERN
    )
    role: RoleField = "annotator"


class AnnotatorCreated(BaseModel):
    name: str
    role: RoleField
    token: str = Field(description="shown once; only its hash is stored")
