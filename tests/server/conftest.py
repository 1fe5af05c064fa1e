"""Fixtures for the console tests: a home with one annotator per role, the app in-process
(TestClient) or on a loopback port (uvicorn in a thread, for real HTTP and SSE)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apollo.log.sqlite import SQLiteStore
from apollo.rollout.home import Home
from apollo.server.app import create_app
from apollo.server.serve import server
from tests.server.fakelog import FakeRun


@dataclass
class Tokens:
    admin: str
    annotator: str
    viewer: str

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def store(home: Home) -> Iterator[SQLiteStore]:
    """The test's own connection to the home's store (the app has another)."""
    s = home.open_store()
    yield s
    s.close()


@pytest.fixture
def tokens(store: SQLiteStore) -> Tokens:
    return Tokens(
        admin=store.add_annotator("ada", "admin")[1],
        annotator=store.add_annotator("ann", "annotator")[1],
        viewer=store.add_annotator("vic", "viewer")[1],
    )


@pytest.fixture
def run(store: SQLiteStore) -> FakeRun:
    """A started run with two steps."""
    fake = FakeRun(store, store.create_run("fake-task", {"options": {}}).id)
    fake.start()
    fake.act("think", {"thought": "look around"})
    fake.act("run", {"command": "ls"}, result="a.txt")
    return fake


@pytest.fixture
def client(home: Home, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(home, tasks=[])) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_serving(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Until the `apollo serve` process `proc` answers HTTP at `url` (fails if it exits)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{url}/api/me", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "no server"
            time.sleep(0.1)


class LiveServer:
    """The app served by uvicorn on a loopback port from a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = server(app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the server did not shut down"


@pytest.fixture
def live(home: Home, tokens: Tokens) -> Iterator[LiveServer]:
    with LiveServer(create_app(home, tasks=[], poll_interval_s=0.02)) as srv:
        yield srv
