"""`apollo serve` and `apollo demo`: the console and the runner in one process and one asyncio
loop (DESIGN.md principle 5: one process works out of the box).

The runner drives runs started from the console (`POST /api/runs`) and runs queued with
`apollo run --queue`. On shutdown (Ctrl-C, SIGTERM) the streams end first so connections can
close, then the runs being driven are interrupted; their logs let `apollo serve` (for queued
runs) or `apollo resume` pick them up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn
from fastapi import FastAPI

from apollo.env.task import Task, resolve_task
from apollo.log.events import Event, Role
from apollo.rollout.home import Home
from apollo.rollout.runner import EMBEDDED, Runner, RunOptions
from apollo.server.app import create_app
from apollo.server.auth import LoginLimit, LoginLimiter
from apollo.server.defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEMO_STEPS,
    DEMO_SUMMARY_THRESHOLD,
    DEMO_TASKS,
)
from apollo.server.scheduler import RunLimits, queue_run


class _Server(uvicorn.Server):
    """Uvicorn waits for open connections before the app's shutdown; event streams never
    end by themselves, so end them as soon as shutdown begins.

    Signals are handled by `serve` instead of uvicorn, which would re-raise SIGINT once it
    has shut down and so cancel the runner's own cleanup."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self._app.state, "apollo", None)
        if state is not None:
            await state.hub.close()
        await super().shutdown(sockets)


def server(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for `app` that ends event streams when it shuts down."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # Streams are ended at shutdown; this only bounds a client that will not let go.
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    return _Server(config, app)


async def serve(
    home: Home,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tasks: Sequence[Task] | None = None,
    log_level: str = "info",
    say: Callable[[str], None] = print,
    on_event: Callable[[Event], None] | None = None,
    limits: RunLimits | None = None,
    login_limit: LoginLimit | None = None,
) -> None:
    """Serve the console on host:port and drive runs in the same loop until interrupted.
    `on_event` sees every event of the runs this server drives (terminal progress);
    `limits` caps the runs driven at once, `login_limit` failed logins."""
    runner = Runner(home, on_event=on_event)
    loop = asyncio.get_running_loop()
    # Signal handlers can only be set from the main thread (tests run servers in others).
    signals = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    try:
        app = create_app(
            home,
            runner=runner,
            tasks=tasks,
            limits=limits,
            login_limiter=LoginLimiter(login_limit),
        )
        srv = server(app, host, port, log_level)
        if in_main:
            for sig in signals:
                # A first signal shuts down gracefully, a second one forces it (uvicorn's rule).
                loop.add_signal_handler(sig, srv.handle_exit, sig, None)
        say(f"apollo console on http://{host}:{port}/  (home {home.path})")
        if not runner.store.list_annotators():
            say("no annotators yet: add one with `apollo annotators add NAME --role admin`")
        await srv.serve()
    finally:
        if in_main:
            for sig in signals:
                loop.remove_signal_handler(sig)
        await runner.aclose()


async def demo(
    home: Home,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    tasks: Sequence[str] = DEMO_TASKS,
    steps: int = DEMO_STEPS,
    model: str = EMBEDDED,
    log_level: str = "warning",
    say: Callable[[str], None] = print,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Serve the console with demo runs queued: the embedded model on built-in tasks, each
    followed by the simulated annotator. Prints a one-time admin token to sign in with."""
    demo_tasks = [resolve_task(t) for t in tasks]
    store = home.open_store()
    try:
        # Tokens are shown once and stored hashed: each demo gets a fresh admin to sign in as.
        name = f"demo-{secrets.token_hex(3)}"
        _, token = store.add_annotator(name, Role.ADMIN)
        options = RunOptions(
            model=model,
            annotator="simulated",
            summary_threshold_tokens=DEMO_SUMMARY_THRESHOLD,
            max_steps=steps,
            min_steps=steps,
        )
        for task in demo_tasks:
            run_id = queue_run(store, home, task, options, started_by=name)
            say(f"demo run {run_id}: task {task.id}, {steps} steps, simulated annotator")
    finally:
        store.close()
    say(f"sign in at http://{host}:{port}/login as {name} with token {token}")
    await serve(home, host, port, log_level=log_level, say=say, on_event=on_event)
