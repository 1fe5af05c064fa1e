"""What the console's routes share, and the FastAPI dependencies that hand it to them.

Routes never look at `request.app.state` themselves: they declare `state: AppState` (the
server's shared state) or `run: CurrentRun` (the run named by the `run_id` path parameter,
or UnknownRun, which apollo/server/app.py answers with 404)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from apollo.log.events import RunRecord
from apollo.log.store import UnknownRun

if TYPE_CHECKING:  # only annotations: apollo.server.auth itself asks for the state here
    from apollo.env.task import Task
    from apollo.log.store import Store
    from apollo.rollout.home import Home
    from apollo.server.auth import Authenticator
    from apollo.server.endpoints import Endpoints
    from apollo.server.scheduler import RunScheduler
    from apollo.server.sse import EventHub
    from apollo.server.views import RunCache


@dataclass
class ServerState:
    """Everything the routes share, on `app.state.apollo` (set by the app's lifespan)."""

    home: Home
    store: Store
    cache: RunCache
    hub: EventHub
    auth: Authenticator
    tasks: dict[str, Task]
    scheduler: RunScheduler | None
    endpoints: Endpoints


def app_state(request: Request) -> ServerState:
    """The state of the app serving `request`."""
    state: ServerState = request.app.state.apollo
    return state


AppState = Annotated[ServerState, Depends(app_state)]


def current_run(run_id: str, state: AppState) -> RunRecord:
    """The run the path names; UnknownRun (404) when there is none."""
    record = state.store.get_run(run_id)
    if record is None:
        raise UnknownRun(f"no run {run_id!r}")
    return record


CurrentRun = Annotated[RunRecord, Depends(current_run)]
