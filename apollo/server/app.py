"""The console's FastAPI application: API, pages, static files and the middleware that every
response goes through (body size cap, security headers)."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apollo.env.sandbox import SandboxUnavailable
from apollo.env.task import Task, builtin_tasks
from apollo.log.store import (
    LastAdminError,
    LogCorrupt,
    NameTaken,
    RunEnded,
    Store,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    UnknownAnnotator,
    UnknownRun,
)
from apollo.rollout.home import Home
from apollo.rollout.runner import Runner
from apollo.server import api, pages
from apollo.server.auth import Authenticator, LoginLimiter, SessionStore
from apollo.server.endpoints import Endpoints, EndpointsUnreadable, UnknownEndpoint
from apollo.server.scheduler import QueueFull, RunLimits, RunScheduler
from apollo.server.sse import EventHub
from apollo.server.state import ServerState
from apollo.server.views import RunCache

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 64 * 1024

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class BodyLimit:
    """Reject request bodies over `limit` bytes with 413, counting what actually arrives
    (a client can leave out Content-Length or lie in it); the app then sees the buffered
    body as usual."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        detail = (
            f'{{"detail":"request body is over the {self.limit // 1024} KiB limit; '
            'send less (guidance is at most 4000 characters)"}'
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(detail)).encode()),
                    (b"connection", b"close"),
                    *_SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": detail})


class SecurityHeaders:
    """CSP (no inline script), nosniff and no-referrer on every response; API answers are
    not to be cached, since they hold run data behind a login."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api_path = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [h for h in _SECURITY_HEADERS if h[0] not in names]
                if api_path and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _finite(value: Any) -> Any:
    """`value` with non-finite floats spelled as strings: JSON has no NaN or Infinity, and
    an error that echoes such an input must still be sent."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the invalid fields (FastAPI's answer, safe for any input)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


# The one place errors become HTTP answers: every error a route lets through, and its status.
# An error answers with the status of the nearest class in its MRO that is listed here, and
# its own message as the detail, so routes raise and never translate.
ERROR_STATUS: dict[type[Exception], int] = {
    UnknownRun: 404,
    UnknownAnnotator: 404,
    UnknownEndpoint: 404,
    RunEnded: 409,
    NameTaken: 409,
    LastAdminError: 409,
    QueueFull: 429,
    StoreBusy: 503,  # nothing was written; try again (Retry-After)
    StoreCorrupt: 503,  # the store file is damaged: an operator must restore it
    EndpointsUnreadable: 503,
    LogCorrupt: 500,
    StoreError: 500,
    SandboxUnavailable: 422,
    ValueError: 422,  # a value the log layer refused (the message names the fix)
}
BUSY_RETRY_AFTER_S = 5


def error_status(exc: Exception) -> int:
    """The status `exc` is answered with (by ERROR_STATUS)."""
    return next(ERROR_STATUS[c] for c in type(exc).__mro__ if c in ERROR_STATUS)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """Answer an error of ERROR_STATUS with its status and message."""
    status = error_status(exc)
    if status >= 500 and not isinstance(exc, StoreBusy):  # an operator must act: say where
        log.error("%s %s answered %d", request.method, request.url.path, status, exc_info=exc)
    headers = {"Retry-After": str(BUSY_RETRY_AFTER_S)} if isinstance(exc, StoreBusy) else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def create_app(
    home: Home,
    *,
    runner: Runner | None = None,
    tasks: Sequence[Task] | None = None,
    store: Store | None = None,
    poll_interval_s: float = 0.05,
    max_body_bytes: int = MAX_BODY_BYTES,
    limits: RunLimits | None = None,
    login_limiter: LoginLimiter | None = None,
) -> FastAPI:
    """The console app for `home`.

    `runner`: drives runs started through the API and queued runs, in the app's event loop
    (without one, `POST /api/runs` answers 503), at most as many at once as `limits` allow.
    `tasks`: the tasks runs may be started on (default: the built-in ones); a run can only be
    started on a listed task, never on an arbitrary server path. `store`: defaults to a
    connection of the app's own. `login_limiter`: how failed logins are limited."""
    own_store = store is None
    app_store = store or home.open_store()
    catalog = {t.id: t for t in (builtin_tasks() if tasks is None else tasks)}
    cache = RunCache(app_store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = EventHub(app_store, cache, interval_s=poll_interval_s)
        scheduler = RunScheduler(runner, limits) if runner is not None else None
        app.state.apollo = ServerState(
            home=home,
            store=app_store,
            cache=cache,
            hub=hub,
            auth=Authenticator(app_store, SessionStore(), login_limiter),
            tasks=catalog,
            scheduler=scheduler,
            endpoints=Endpoints(home.path),
        )
        hub.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            await hub.close()
            if scheduler is not None:
                await scheduler.stop()
            if own_store:
                app_store.close()

    app = FastAPI(
        title="Apollo console",
        version="0.1.0",
        summary="Watch and guide long-running agent runs (docs/api.md).",
        # The interactive docs pages load scripts from a CDN and inline; the CSP forbids both.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        exception_handlers={
            RequestValidationError: _invalid_request,
            **dict.fromkeys(ERROR_STATUS, _refused),
        },
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app
