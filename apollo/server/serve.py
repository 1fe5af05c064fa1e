"""`apollo serve` and `apollo demo`: the console and the runner in one process and one asyncio
loop (docs/design.md "Principles": embedded by default, one process works out of the box).

The runner drives runs started from the console (`POST /api/runs`) and runs queued with
`apollo run --queue`. On shutdown (Ctrl-C, SIGTERM) the streams end first so connections can
close, then the runs being driven are interrupted; their logs let `apollo serve` (for queued
runs) or `apollo resume` pick them up again.

A request that fails (a 500) or a run the server cannot drive is one line in the terminal,
naming the log file in the home (`logs/server.log`) that holds its full traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

from apollo.env.family import resolve
from apollo.env.task import Task
from apollo.llm import models
from apollo.log.events import Event, Role
from apollo.rollout.home import Home
from apollo.rollout.runner import EMBEDDED, Runner, RunOptions
from apollo.server.app import create_app
from apollo.server.auth import LoginLimit, LoginLimiter
from apollo.server.defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEMO_MODEL,
    DEMO_STEPS,
    DEMO_SUMMARY_THRESHOLD,
    DEMO_TASKS,
    demo_max_running,
)
from apollo.server.scheduler import RunLimits, queue_run
from apollo.terminal import safe

SERVER_LOG = Path("logs") / "server.log"  # under the home: tracebacks of server errors


def _shown(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` with terminal-safe text (a request line is the client's); the
    copy, so the file handler still sees the record as it was."""
    shown = copy.copy(record)
    if isinstance(record.msg, str):
        shown.msg = safe(record.msg)
    if isinstance(record.args, tuple):
        shown.args = tuple(safe(a) if isinstance(a, str) else a for a in record.args)
    return shown


class OneLineFormatter(DefaultFormatter):
    """uvicorn's terminal format, but an error with a traceback is one line that says where
    the traceback was written (the file handler beside it writes it there)."""

    def __init__(self, log_file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log_file = log_file

    def format(self, record: logging.LogRecord) -> str:
        shown = _shown(record)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            what = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            shown.msg = safe(
                f"{record.getMessage().strip()}: {type(exc).__name__}"
                f"{': ' + what if what else ''} (traceback in {self.log_file})"
            )
            shown.args = ()
            shown.exc_info = shown.exc_text = shown.stack_info = None
        return super().format(shown)


class SafeAccessFormatter(AccessFormatter):
    """uvicorn's access lines, terminal-safe."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(_shown(record))


def log_config(log_file: Path) -> dict[str, Any]:
    """uvicorn's logging, with errors one line in the terminal and in full in `log_file`;
    Apollo's own warnings and errors (a run the server cannot drive) go the same way."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["default"] = {
        "()": OneLineFormatter,
        "fmt": "%(levelprefix)s %(message)s",
        "log_file": str(log_file),
    }
    config["formatters"]["access"]["()"] = SafeAccessFormatter
    config["formatters"]["full"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["file"] = {
        "class": "logging.FileHandler",
        "filename": str(log_file),
        "formatter": "full",
        "level": "WARNING",
        "delay": True,  # the file appears with the first error
        "encoding": "utf-8",
    }
    config["loggers"]["uvicorn"]["handlers"] = ["default", "file"]
    config["loggers"]["apollo"] = {"handlers": ["default", "file"], "level": "WARNING"}
    return config


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


def server(
    app: FastAPI, host: str, port: int, log_level: str = "info", log_file: Path | None = None
) -> uvicorn.Server:
    """A uvicorn server for `app` that ends event streams when it shuts down; with `log_file`,
    errors are one line in the terminal and their tracebacks go to that file."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_file) if log_file else LOGGING_CONFIG,
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
    embedded: str = EMBEDDED,
) -> None:
    """Serve the console on host:port and drive runs in the same loop until interrupted.
    `on_event` sees every event of the runs this server drives (terminal progress);
    `limits` caps the runs driven at once, `login_limit` failed logins; `embedded` is the
    embedded model console runs on `embedded` get (`embedded:NAME`)."""
    runner = Runner(home, on_event=on_event, default_embedded=embedded)
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
        log_file = home.path / SERVER_LOG
        log_file.parent.mkdir(exist_ok=True)
        srv = server(app, host, port, log_level, log_file)
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
    model: str = DEMO_MODEL,
    params: dict[str, Any] | None = None,
    max_running: int | None = None,
    log_level: str = "warning",
    say: Callable[[str], None] = print,
    on_event: Callable[[Event], None] | None = None,
) -> None:
    """Serve the console with demo runs queued: the embedded model on instances of built-in
    task families (or tasks), each followed by the simulated annotator. Prints a one-time
    admin token to sign in with. `model` is what the demo runs use (console runs get it too
    when it is embedded), `params` their sampling; `max_running` runs are driven at once
    (default: one per two cores for an embedded model, which runs here), the others wait in
    the queue."""
    local = models.parse(model) is not None
    cpus = os.cpu_count() or 1
    if max_running is None:
        max_running = demo_max_running(cpus) if local else max(1, len(tasks))
    limits = RunLimits(max_running=max_running)
    demo_tasks = [resolve(t, home.instances_dir) for t in tasks]
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
            params=dict(params or {}),
        )
        for task in demo_tasks:
            run_id = queue_run(store, home, task, options, started_by=name)
            say(f"demo run {run_id}: task {task.id}, {steps} steps, simulated annotator")
    finally:
        store.close()
    if len(demo_tasks) > max_running:
        at_once = f"{max_running} run" + ("s" if max_running > 1 else "")
        say(f"{at_once} at a time on {cpus} cores (--max-running to change); the rest wait")
    say(f"sign in at http://{host}:{port}/login as {name} with token {token}")
    embedded = model if local else EMBEDDED
    await serve(
        home,
        host,
        port,
        log_level=log_level,
        say=say,
        on_event=on_event,
        limits=limits,
        embedded=embedded,
    )
