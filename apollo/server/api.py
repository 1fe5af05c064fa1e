"""The console's JSON and SSE routes (docs/api.md). Every write goes through
`apollo.log.writes`, attributed to the authenticated annotator, and lands in the run's log."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from apollo.log import schema
from apollo.log.events import Role
from apollo.log.writes import post_control, post_guidance, post_label, post_presence
from apollo.rollout.runner import EMBEDDED, RunOptions
from apollo.server import views
from apollo.server.auth import (
    SESSION_COOKIE,
    CurrentPrincipal,
    GuardedRoute,
    access,
    set_session_cookie,
)
from apollo.server.endpoints import Endpoint
from apollo.server.models import (
    INT64_MAX,
    AnnotatorCreate,
    AnnotatorCreated,
    AnnotatorsResponse,
    AnnotatorView,
    AsciiInt,
    ControlRequest,
    CreatedRun,
    EndpointPut,
    EndpointsResponse,
    EndpointView,
    EventsResponse,
    GuidanceCreated,
    GuidanceRequest,
    LabelRequest,
    LoginRequest,
    Me,
    PresenceRequest,
    RunDetail,
    RunsResponse,
    StartRunRequest,
    TasksResponse,
    TaskView,
    Written,
)
from apollo.server.scheduler import queue_run
from apollo.server.state import AppState, CurrentRun, ServerState

router = APIRouter(prefix="/api", route_class=GuardedRoute)

SORT_KEYS = ("created", "updated", "id", "task", "status", "step", "score", "attention")
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


# -- auth ---------------------------------------------------------------------------------
@router.post("/login", response_model=Me)
@access(None)
async def login(body: LoginRequest, request: Request, response: Response, state: AppState) -> Me:
    """Start a browser session (cookie) from an annotator's name and token; failed logins
    are limited per client address and per name (429 with Retry-After)."""
    client = request.client.host if request.client else "unknown"
    annotator, session = state.auth.login(body.name, body.token, client)
    set_session_cookie(request, response, session)
    return Me(name=annotator.name, role=annotator.role, csrf_token=session.csrf_token)


@router.post("/logout", status_code=204)
@access(Role.VIEWER)
async def logout(who: CurrentPrincipal, state: AppState) -> Response:
    """End the browser session."""
    if who.session is not None:
        state.auth.sessions.drop(who.session.id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=Me)
@access(Role.VIEWER)
async def me(who: CurrentPrincipal) -> Me:
    """Who is logged in, with the CSRF token cookie-authenticated writes must send."""
    return Me(
        name=who.name,
        role=who.role.value,
        csrf_token=who.session.csrf_token if who.session else "",
    )


# -- runs -----------------------------------------------------------------------------------
def _live(summary: dict[str, Any]) -> bool:
    return not views.ended(summary["status"])


def _sorted(summaries: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Summaries in `sort` order; runs without a score come last either way, and by
    attention live runs rank above ended ones (which need nobody)."""
    key = sort.removeprefix("-")
    descending = sort.startswith("-")
    if key == "score":
        scored = [s for s in summaries if s["last_score"] is not None]
        scored.sort(key=lambda s: s["last_score"], reverse=descending)
        return scored + [s for s in summaries if s["last_score"] is None]
    if key == "attention":
        return sorted(summaries, key=lambda s: (_live(s), len(s["attention"])), reverse=descending)
    return sorted(summaries, key=lambda s: s[key], reverse=descending)


@router.get("/runs", response_model=RunsResponse)
@access(Role.VIEWER)
async def list_runs(
    state: AppState,
    status: str | None = None,
    task: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[
        str, Query(description=f"one of {', '.join(SORT_KEYS)}; '-' for descending")
    ] = "-created",
    limit: Annotated[AsciiInt, Query(ge=1, le=100_000)] = 1000,
    attention: Annotated[
        bool, Query(description="only live runs with attention signals (they need a person)")
    ] = False,
) -> Response:
    """Run summaries (filtered, sorted, limited) and cost totals over the filtered runs."""
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        raise HTTPException(422, f"sort: unknown key {key!r}; use one of {', '.join(SORT_KEYS)}")
    records = state.store.list_runs(limit=1_000_000)
    state.cache.sync(records)
    now = time.time()
    needle = (q or "").lower()
    summaries = [
        state.cache.summary(r, now)
        for r in records
        if (status is None or r.status == status)
        and (task is None or r.task == task)
        and (not needle or needle in f"{r.id} {r.task} {r.status}".lower())
    ]
    if attention:
        summaries = [s for s in summaries if s["attention"]]
    summaries = _sorted(summaries, sort)
    # Already shaped like RunsResponse; answering directly skips re-validating 1,000 runs.
    return JSONResponse({"runs": summaries[:limit], "totals": views.totals(summaries)})


def _endpoint(state: ServerState, model: str) -> Endpoint | None:
    """The configured endpoint a run names (None: the embedded model); 422 for anything
    else, a URL included: the server only calls models an admin configured."""
    if model == EMBEDDED:
        return None
    endpoints = state.endpoints.all()
    found = endpoints.get(model)
    if found is None:
        names = ", ".join([EMBEDDED, *sorted(endpoints)])
        raise HTTPException(
            422,
            f"model: {model!r} is not a configured model; use one of {names} "
            "(an admin adds endpoints with `apollo endpoints add` or PUT /api/endpoints/NAME)",
        )
    return found


@router.post("/runs", status_code=201, response_model=CreatedRun)
@access(Role.ANNOTATOR)
async def start_run(body: StartRunRequest, who: CurrentPrincipal, state: AppState) -> CreatedRun:
    """Create a run; the server's runner drives it at once, or when the run limits leave it
    a slot (docs/api.md "Run limits"): 429 when its annotator has too many runs waiting."""
    scheduler = state.scheduler
    if scheduler is None:
        raise HTTPException(503, "this server has no runner; start runs with `apollo run`")
    task = state.tasks.get(body.task)
    if task is None:
        known = ", ".join(sorted(state.tasks)) or "none"
        raise HTTPException(422, f"task: unknown task {body.task!r}; use one of {known}")
    endpoint = _endpoint(state, body.model)
    options = RunOptions(
        model=endpoint.url if endpoint else scheduler.runner.default_embedded,
        model_name=endpoint.model_name if endpoint else "default",
        api_key_env=endpoint.api_key_env if endpoint else None,
        annotator=body.annotator,
        max_steps=body.max_steps,
        min_steps=body.min_steps or 0,
    )
    scheduler.admit(who.name)
    run_id = queue_run(
        state.store, state.home, task, options, started_by=who.name, endpoint=body.model
    )
    scheduler.fill()
    return CreatedRun(id=run_id, state="running" if scheduler.is_driven(run_id) else "queued")


@router.get("/runs/{run_id}", response_model=RunDetail)
@access(Role.VIEWER)
async def run_detail(run: CurrentRun, state: AppState) -> dict[str, Any]:
    """A run's summary plus config, sessions, submissions, guidance (with state), labels."""
    return views.detail(run, state.cache.fold(run.id), time.time())


@router.get("/runs/{run_id}/events", response_model=EventsResponse)
@access(Role.VIEWER)
async def run_events(
    run: CurrentRun,
    state: AppState,
    after: Annotated[AsciiInt, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[AsciiInt, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Events with seq > after, blob references expanded."""
    events = state.store.events(run.id, after=after, limit=limit)
    return {
        "events": views.expand(state.store, events),
        "last_seq": events[-1].seq if events else after,
    }


@router.get("/runs/{run_id}/stream", response_class=StreamingResponse)
@access(Role.VIEWER)
async def run_stream(
    run: CurrentRun,
    state: AppState,
    after: Annotated[AsciiInt | None, Query(ge=0, le=INT64_MAX)] = None,
    last_event_id: Annotated[
        AsciiInt | None,
        Header(ge=0, le=INT64_MAX, description="set by a reconnecting EventSource"),
    ] = None,
) -> StreamingResponse:
    """Server-sent events: one per log event (`id: seq`, `event: kind`, EventView data).
    The stream resumes after Last-Event-ID, which wins over `?after=` (that only seeds the
    first connection: a reconnecting EventSource keeps the URL)."""
    start = last_event_id if last_event_id is not None else after or 0
    stream = state.hub.stream(run.id, start)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/stream", response_class=StreamingResponse)
@access(Role.VIEWER)
async def dashboard_stream(state: AppState) -> StreamingResponse:
    """Server-sent `run` events carrying RunSummary: all runs at connect, then changes."""
    stream = state.hub.dashboard_stream()
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/runs/{run_id}/guidance", status_code=201, response_model=GuidanceCreated)
@access(Role.ANNOTATOR)
async def guide(
    run: CurrentRun, body: GuidanceRequest, who: CurrentPrincipal, state: AppState
) -> GuidanceCreated:
    """Queue guidance; it is delivered at the agent's next step boundary."""
    ev = post_guidance(
        state.store,
        run.id,
        who.name,
        body.text,
        kind=body.kind,
        drift_from_step=body.drift_from_step,
        urgent=body.urgent,
    )
    return GuidanceCreated(id=schema.GUIDANCE.payload(ev)["id"], seq=ev.seq)


@router.post("/runs/{run_id}/control", status_code=201, response_model=Written)
@access(Role.ANNOTATOR)
async def control(
    run: CurrentRun, body: ControlRequest, who: CurrentPrincipal, state: AppState
) -> Written:
    """Pause, resume or stop the run at its next step boundary."""
    ev = post_control(state.store, run.id, who.name, body.action)
    return Written(seq=ev.seq)


@router.post("/runs/{run_id}/labels", status_code=201, response_model=Written)
@access(Role.ANNOTATOR)
async def label(
    run: CurrentRun, body: LabelRequest, who: CurrentPrincipal, state: AppState
) -> Written:
    """Label one action (step) keep or mask, with a reason."""
    ev = post_label(state.store, run.id, body.step, body.verdict, body.reason, who.name)
    return Written(seq=ev.seq)


@router.post("/runs/{run_id}/presence", status_code=204)
@access(Role.ANNOTATOR)
async def presence(
    run: CurrentRun, body: PresenceRequest, who: CurrentPrincipal, state: AppState
) -> Response:
    """Record annotator time spent in the run view (the page sends it every 30 s)."""
    post_presence(state.store, run.id, who.name, body.seconds)
    return Response(status_code=204)


# -- tasks and annotators -------------------------------------------------------------------
@router.get("/tasks", response_model=TasksResponse)
@access(Role.VIEWER)
async def tasks(state: AppState) -> TasksResponse:
    """The tasks runs can be started on."""
    catalog = state.tasks
    return TasksResponse(
        tasks=[
            TaskView(
                id=t.id,
                title=t.spec.title,
                steps=t.spec.budget.steps,
                working_time_s=t.spec.budget.working_time,
                submissions=t.spec.budget.submissions,
            )
            for t in sorted(catalog.values(), key=lambda t: t.id)
        ]
    )


@router.get("/annotators", response_model=AnnotatorsResponse)
@access(Role.ADMIN)
async def annotators(state: AppState) -> AnnotatorsResponse:
    """Every annotator, revoked ones included (tokens are never shown again)."""
    return AnnotatorsResponse(
        annotators=[
            AnnotatorView(name=a.name, role=a.role, created=a.created, revoked=a.revoked)
            for a in state.store.list_annotators()
        ]
    )


@router.post("/annotators", status_code=201, response_model=AnnotatorCreated)
@access(Role.ADMIN)
async def add_annotator(body: AnnotatorCreate, state: AppState) -> AnnotatorCreated:
    """Create an annotator; the answer holds its token, shown this once."""
    annotator, token = state.store.add_annotator(body.name, body.role)
    return AnnotatorCreated(name=annotator.name, role=annotator.role, token=token)


@router.delete("/annotators/{name}", response_model=AnnotatorView)
@access(Role.ADMIN)
async def revoke_annotator(name: str, state: AppState) -> AnnotatorView:
    """Revoke an annotator: its token and browser sessions stop working at once."""
    annotator = state.store.revoke_annotator(name)
    state.auth.sessions.drop_annotator(name)
    return AnnotatorView(
        name=annotator.name, role=annotator.role, created=annotator.created, revoked=True
    )


# -- model endpoints ------------------------------------------------------------------------
def _endpoint_view(e: Endpoint) -> EndpointView:
    return EndpointView(name=e.name, url=e.url, model_name=e.model_name, api_key_env=e.api_key_env)


@router.get("/endpoints", response_model=EndpointsResponse)
@access(Role.ANNOTATOR)
async def endpoints(state: AppState) -> EndpointsResponse:
    """The models a run may name (besides `embedded`), as an admin configured them."""
    found = state.endpoints.all()
    return EndpointsResponse(
        endpoints=[_endpoint_view(e) for _, e in sorted(found.items())], default=EMBEDDED
    )


@router.put("/endpoints/{name}", response_model=EndpointView)
@access(Role.ADMIN)
async def put_endpoint(name: str, body: EndpointPut, state: AppState) -> EndpointView:
    """Add or replace a model endpoint; runs started on it before keep their settings."""
    endpoint = Endpoint(name, body.url, body.model_name, body.api_key_env)
    return _endpoint_view(state.endpoints.put(endpoint))


@router.delete("/endpoints/{name}", response_model=EndpointView)
@access(Role.ADMIN)
async def delete_endpoint(name: str, state: AppState) -> EndpointView:
    """Remove a model endpoint: new runs can no longer name it."""
    return _endpoint_view(state.endpoints.remove(name))
