"""Checks for the whole suite: no test leaves a process of Apollo's running.

A session's launcher, a model server, a scripted server or an `apollo` command that a test
started and did not end would go on using the machine after the suite (and, before session
watchdogs existed, forever). Each test that made a tmp_path must have ended the sessions
under it; at the end of the suite nothing started during it may be left at all."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apollo.env.sandbox import LAUNCHER_NAME
from apollo.log.stores import STORE_ENV
from tests.pg import PostgresServer

# Command-line pieces that mark processes started by Apollo or its tests.
_MARKERS = (LAUNCHER_NAME.encode(), b"llama_cpp.server", b"apollo.llm.scripted", b"apollo.cli")
_at_start: set[int] = set()


def _apollo_processes() -> dict[int, list[bytes]]:
    """Running (not zombie) processes with an Apollo marker: pid -> argv."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in "ZX" and any(m in arg for arg in argv[:6] for m in _MARKERS):
            found[int(entry.name)] = argv
    return found


def _left_over(pids: set[int], timeout: float = 10.0) -> dict[int, list[bytes]]:
    """Those of `pids` still running after a grace for processes already being stopped."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p: a for p, a in _apollo_processes().items() if p in pids}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _kill(pids: dict[int, list[bytes]]) -> str:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, 9)
    return "; ".join(b" ".join(a[:6]).decode(errors="replace")[:200] for a in pids.values())


def pytest_sessionstart(session: pytest.Session) -> None:
    _at_start.update(_apollo_processes())


@pytest.fixture(autouse=True)
def _no_sessions_left_under_tmp_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test (and its fixtures' teardown), no session under its tmp_path runs."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is None:
        return
    mine = {
        pid
        for pid, argv in _apollo_processes().items()
        if argv[3:4] == [LAUNCHER_NAME.encode()] and str(tmp).encode() in b" ".join(argv[4:6])
    }
    if mine and (left := _left_over(mine)):
        pytest.fail(f"the test left session processes running: {_kill(left)}")


# Marks the processes this session starts, so that another test session on the same machine
# (another checkout's suite, say) is not mistaken for this one's leftovers: children inherit
# the variable; session launchers, which get a clean environment, name this session's
# temporary folder in their command line.
_SESSION = f"{os.getpid()}-{time.time_ns()}"
os.environ["APOLLO_TEST_SESSION"] = _SESSION


def _started_here(pid: int, argv: list[bytes], basetemp: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        environ = []
    mark = f"APOLLO_TEST_SESSION={_SESSION}".encode()
    return mark in environ or any(basetemp in arg for arg in argv)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = session.config._tmp_path_factory  # type: ignore[attr-defined]
    basetemp = f"{factory.getbasetemp()}/".encode()
    started = {
        pid
        for pid, argv in _apollo_processes().items()
        if pid not in _at_start and _started_here(pid, argv, basetemp)
    }
    left = _left_over(started)
    if left:
        print(f"\nprocesses left running by the suite (now killed): {_kill(left)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own APOLLO_STORE must never point the tests at a real store (and a
    command run in-process with --store sets it for the process)."""
    monkeypatch.delenv(STORE_ENV, raising=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session (tests/pg.py)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database of its own for one test."""
    return postgres_server.database()
