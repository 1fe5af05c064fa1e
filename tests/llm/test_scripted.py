"""The scripted server: replay, recording, speed, and running as its own process."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from apollo.llm.base import ModelError
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import Request, ScriptedServer, call, hang, load_script, reply


def run_calls(url: str, n: int, **options: Any) -> list[str | None]:
    async def go() -> list[str | None]:
        async with OpenAIChatModel(url, "m", **options) as model:
            return [
                (await model.complete([{"role": "user", "content": "x"}])).content for _ in range(n)
            ]

    return asyncio.run(go())


def test_default_entry_answers_after_the_script() -> None:
    think = reply(tool_calls=[call("think", {"thought": "again"})])
    with ScriptedServer([reply("first")], default=think) as server:
        got = run_calls(server.base_url, 3)
    assert got == ["first", None, None]
    assert len(server.requests) == 3


def test_callable_entry_sees_the_request() -> None:
    def echo(request: Request) -> dict[str, Any]:
        return reply(f"{request.index}:{request.body['messages'][-1]['content']}")

    with ScriptedServer(default=echo) as server:
        assert run_calls(server.base_url, 2) == ["0:x", "1:x"]


def test_exhausted_script_is_a_clear_client_error() -> None:
    with ScriptedServer([reply("only")]) as server:
        assert run_calls(server.base_url, 1) == ["only"]
        with pytest.raises(ModelError, match="script ran out at request 1") as info:
            run_calls(server.base_url, 1)
    assert info.value.status == 400 and info.value.attempts == 1


def test_records_timestamps_in_order() -> None:
    with ScriptedServer(default=reply("ok")) as server:
        run_calls(server.base_url, 5)
    times = [(r.received, r.finished) for r in server.requests]
    for (received, finished), (next_received, _) in itertools.pairwise(times):
        assert finished is not None and received <= finished <= next_received


def test_models_route_and_unknown_route() -> None:
    with ScriptedServer(model="tiny") as server:
        models = httpx.get(f"{server.base_url}/models").json()
        missing = httpx.get(f"{server.base_url}/nothing")
    assert models["data"][0]["id"] == "tiny"
    assert missing.status_code == 404


def test_server_time_per_request_is_well_under_a_millisecond() -> None:
    # A growing context like a long run's: 200 requests, up to ~200 KB bodies.
    long_text = "observation line\n" * 60

    async def go(url: str) -> None:
        history: list[str] = []
        async with OpenAIChatModel(url, "m") as model:
            for i in range(200):
                history.append(json.dumps({"role": "user", "content": f"{i} {long_text}"}))
                await model.complete(history)

    with ScriptedServer(default=reply(tool_calls=[call("think", {"thought": "t"})])) as server:
        asyncio.run(go(server.base_url))
    own = [r.finished - r.received for r in server.requests if r.finished is not None]
    assert len(own) == 200
    assert statistics.median(own) < 0.001


def test_separate_process(tmp_path: Path) -> None:
    script = {
        "script": [
            {"status": 500},
            {"content": None, "tool_calls": [{"name": "run", "arguments": {"command": "ls"}}]},
        ],
        "default": {"content": "default"},
    }
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    assert load_script(path) == (script["script"], script["default"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollo.llm.scripted", "--script", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1"

        async def go() -> list[Any]:
            async with OpenAIChatModel(url, "m", backoff_base=0.01) as model:
                first = await model.complete([{"role": "user", "content": "go"}])
                second = await model.complete([{"role": "user", "content": "again"}])
            return [first.tool_calls[0].name, second.content]

        assert asyncio.run(go()) == ["run", "default"]
        records = httpx.get(f"http://127.0.0.1:{port}/_scripted/requests").json()
    finally:
        proc.terminate()
        code = proc.wait(10)
    assert code == 0
    # The 500, its retry, then the second call.
    assert [r["body"]["messages"][0]["content"] for r in records] == ["go", "go", "again"]
    assert all(r["finished"] >= r["received"] for r in records)


def test_hang_takes_the_request_and_never_answers() -> None:
    with ScriptedServer([hang()], default=reply("later")) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.base_url}/chat/completions", json={"messages": []}, timeout=0.3)
        # The hung request was recorded and the next one is answered.
        assert run_calls(server.base_url, 1) == ["later"]
    assert len(server.requests) == 2 and server.requests[0].finished is None


def test_flaky_fault_in_a_separate_process(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"script": [{"content": "first"}], "default": {"content": "d"}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "apollo.llm.scripted", "--script", str(path), "--fault", "flaky"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1"
        statuses = [
            httpx.post(f"{url}/chat/completions", json={"messages": []}).status_code
            for _ in range(4)
        ]
        assert run_calls(url, 2, backoff_base=0.01) == ["d", "d"]
    finally:
        proc.terminate()
        code = proc.wait(10)
    assert code == 0
    # Every other request fails; the 500s use up no script entries.
    assert statuses == [500, 200, 500, 200]


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault 'sometimes'; use one of flaky"):
        ScriptedServer(fault="sometimes")
