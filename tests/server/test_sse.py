"""Event streams over real HTTP (uvicorn on loopback): resumable with Last-Event-ID, with no
gap and no duplicate; the dashboard stream of run summaries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from apollo.log.sqlite import SQLiteStore
from apollo.log.writes import post_guidance
from tests.server.conftest import LiveServer, Tokens
from tests.server.fakelog import FakeRun


@dataclass
class Message:
    id: str | None
    event: str | None
    data: Any


def messages(response: httpx.Response) -> Iterator[Message]:
    """Parse a text/event-stream body; comments (keepalives) are skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                yield Message(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def read(client: httpx.Client, url: str, n: int, headers: dict[str, str]) -> list[Message]:
    """Connect, read `n` messages, disconnect."""
    out: list[Message] = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for message in messages(r):
            out.append(message)
            if len(out) == n:
                break
    return out


def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    live: LiveServer, tokens: Tokens, run: FakeRun
) -> None:
    url = f"{live.url}/api/runs/{run.run_id}/stream"
    h = tokens.bearer("viewer")
    seen: list[Message] = []
    with httpx.Client(timeout=10) as client:
        seen += read(client, url, 3, h)  # of the 5 events already in the log
        for i in range(4):
            run.act("think", {"thought": f"t{i}"})  # 8 more while nobody listens
        seen += read(client, url, 6, {**h, "Last-Event-ID": str(seen[-1].id)})

        # Live: events appended while connected arrive as they are written, from a thread.
        def writer() -> None:
            for i in range(10):
                run.act("think", {"thought": f"live {i}"})
                time.sleep(0.01)

        thread = threading.Thread(target=writer)
        with client.stream("GET", url, headers={**h, "Last-Event-ID": str(seen[-1].id)}) as r:
            thread.start()
            for message in messages(r):
                seen.append(message)
                if int(str(message.id)) == 33:
                    break
        thread.join()
    seqs = [int(str(m.id)) for m in seen]
    assert seqs == list(range(1, 34))
    assert [m.data["seq"] for m in seen] == seqs
    assert [m.event for m in seen[:3]] == ["run_started", "model_call", "observation"]
    assert seen[-1].data["payload"]["content"] == "done"


def test_after_seeds_the_stream_and_last_event_id_wins(
    live: LiveServer, tokens: Tokens, run: FakeRun
) -> None:
    url = f"{live.url}/api/runs/{run.run_id}/stream"
    h = tokens.bearer("viewer")
    with httpx.Client(timeout=10) as client:
        assert [m.id for m in read(client, f"{url}?after=3", 2, h)] == ["4", "5"]
        resumed = read(client, f"{url}?after=1", 1, {**h, "Last-Event-ID": "4"})
        assert [m.id for m in resumed] == ["5"]
        bad = client.get(url, headers={**h, "Last-Event-ID": "five"})
        assert bad.status_code == 422


def test_a_long_backlog_streams_in_order(
    live: LiveServer, tokens: Tokens, run: FakeRun, store: SQLiteStore
) -> None:
    """More events than a page or the shared buffer holds: read from the store in pages."""
    for i in range(1300):
        post_guidance(store, run.run_id, "ann", f"note {i}")
    h = tokens.bearer("viewer")
    with httpx.Client(timeout=30) as client:
        got = read(client, f"{live.url}/api/runs/{run.run_id}/stream", 1305, h)
    assert [int(str(m.id)) for m in got] == list(range(1, 1306))


def test_streams_need_auth_and_a_known_run(live: LiveServer, tokens: Tokens, run: FakeRun) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{live.url}/api/runs/{run.run_id}/stream").status_code == 401
        assert client.get(f"{live.url}/api/stream").status_code == 401
        missing = client.get(f"{live.url}/api/runs/nope/stream", headers=tokens.bearer("viewer"))
        assert missing.status_code == 404


def test_dashboard_stream_sends_every_run_then_changes(
    live: LiveServer, tokens: Tokens, run: FakeRun, store: SQLiteStore
) -> None:
    other = FakeRun(store, store.create_run("other-task", {}).id)
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{live.url}/api/stream", headers=tokens.bearer("viewer")) as r,
    ):
        stream = messages(r)
        first = [next(stream), next(stream)]
        assert {m.data["id"] for m in first} == {run.run_id, other.run_id}
        assert all(m.event == "run" and m.id is None for m in first)
        post_guidance(store, run.run_id, "ann", "look again")
        update = next(stream)
        assert update.data["id"] == run.run_id
        assert update.data["guidance_queued"] == 1 and update.data["cost"]["interventions"] == 1
