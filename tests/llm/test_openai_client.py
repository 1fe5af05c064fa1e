"""OpenAIChatModel against the scripted server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Sequence
from typing import Any

import pytest

from apollo.llm.base import CallLimits, Completion, MessageLike, ModelError, RetryNotice
from apollo.llm.embedded import free_port
from apollo.llm.openai_client import OpenAIChatModel
from apollo.llm.scripted import ScriptedServer, call, drop, error, hang, reply
from tests.llm.common import TOOLS

USER = {"role": "user", "content": "hello"}


def complete(
    server: ScriptedServer | str,
    messages: Sequence[MessageLike] = (USER,),
    tools: Sequence[dict[str, Any]] | None = None,
    call_params: dict[str, Any] | None = None,
    **options: Any,
) -> Completion:
    """One call through a fresh client (fast backoff unless the test says otherwise)."""
    url = server if isinstance(server, str) else server.base_url
    options.setdefault("backoff_base", 0.01)

    async def go() -> Completion:
        async with OpenAIChatModel(url, "test-model", **options) as model:
            return await model.complete(messages, tools, call_params)

    return asyncio.run(go())


def test_plain_reply(server: ScriptedServer) -> None:
    server.add(reply("hi there", reasoning="the user greeted me"))
    got = complete(server)
    assert got.content == "hi there"
    assert got.reasoning == "the user greeted me"
    assert got.tool_calls == []
    assert got.finish_reason == "stop"
    assert got.model == "scripted"
    assert got.usage["total_tokens"] == got.usage["prompt_tokens"] + got.usage["completion_tokens"]
    assert got.latency_ms > 0
    assert got.parse_error is None and not got.repaired


def test_native_tool_calls(server: ScriptedServer) -> None:
    server.add(
        reply(
            "Listing first.",
            tool_calls=[call("run", {"command": "ls -la"}), call("read_file", '{"path": "a"}')],
        )
    )
    got = complete(server, tools=TOOLS)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in got.tool_calls] == [
        ("call_0_0", "run", {"command": "ls -la"}),
        ("call_0_1", "read_file", {"path": "a"}),
    ]
    assert got.finish_reason == "tool_calls"
    assert got.parse_error is None and not got.repaired
    assert got.assistant_message()["tool_calls"][0]["function"]["name"] == "run"


def test_native_arguments_as_object_and_missing_id(server: ScriptedServer) -> None:
    # Ollama-style: arguments as an object, and no call id.
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "think", "arguments": {}}}],
    }
    server.add({"message": message})
    got = complete(server, tools=TOOLS)
    assert got.tool_calls[0].arguments == "{}"
    assert got.tool_calls[0].id.startswith("call_")


def test_native_call_of_unknown_tool_is_reported(server: ScriptedServer) -> None:
    server.add(reply(tool_calls=[call("rm_rf", {"path": "/"}), call("run", "[1, 2]")]))
    got = complete(server, tools=TOOLS)
    # Native calls stay as written (each needs its tool response); the problem is reported.
    assert [c.name for c in got.tool_calls] == ["rm_rf", "run"]
    assert got.parse_error is not None
    assert "no tool named `rm_rf`" in got.parse_error
    assert "arguments of `run` must be a JSON object, got list" in got.parse_error


def test_text_tool_call_is_repaired(server: ScriptedServer) -> None:
    text = 'Let me look.\n<tool_call>{"name": "run", "arguments": {"command": "ls"}}</tool_call>'
    server.add(reply(text))
    got = complete(server, tools=TOOLS)
    assert got.repaired
    assert got.content == text
    assert [(c.name, c.arguments) for c in got.tool_calls] == [("run", '{"command": "ls"}')]


def test_text_without_tools_is_left_alone(server: ScriptedServer) -> None:
    # A summarize call offers no tools: JSON in its text is just text.
    text = '{"name": "run", "arguments": {"command": "ls"}}'
    server.add(reply(text))
    got = complete(server)
    assert got.tool_calls == [] and got.parse_error is None and got.content == text


def test_retries_429_500_and_dropped_connection_then_success(server: ScriptedServer) -> None:
    server.add(error(429, retry_after=0), error(500), drop(), error(502), reply("finally"))
    got = complete(server)
    assert got.content == "finally"
    assert len(server.requests) == 5
    # The same body is sent on every attempt.
    assert len({r.raw for r in server.requests}) == 1


def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.add(error(429, retry_after=0.4), reply("ok"))
    started = time.perf_counter()
    assert complete(server, backoff_base=0.0).content == "ok"
    waited = server.requests[1].received - server.requests[0].received
    assert waited >= 0.4
    assert time.perf_counter() - started < 3


def test_retries_spent_raise_model_error(server: ScriptedServer) -> None:
    server.add(error(503), error(503), error(503, message="overloaded"))
    with pytest.raises(ModelError) as info:
        complete(server, limits=CallLimits(max_attempts=3))
    exc = info.value
    assert exc.attempts == 3 and exc.status == 503
    assert server.base_url in str(exc)
    assert "after 3 attempts" in str(exc) and "overloaded" in str(exc)
    assert len(server.requests) == 3


def test_client_error_is_not_retried(server: ScriptedServer) -> None:
    server.add(error(400, message="bad tool schema"), reply("never"))
    with pytest.raises(ModelError) as info:
        complete(server)
    assert info.value.attempts == 1 and info.value.status == 400
    assert "bad tool schema" in str(info.value)
    assert len(server.requests) == 1


def test_first_byte_timeout_is_retried(server: ScriptedServer) -> None:
    server.add(reply("slow", delay=1.0), reply("fast"))
    assert complete(server, limits=CallLimits(first_byte_s=0.3)).content == "fast"


def test_first_byte_timeout_exhausted(server: ScriptedServer) -> None:
    server.add(reply("slow", delay=1.0), reply("slow", delay=1.0))
    with pytest.raises(ModelError) as info:
        complete(server, limits=CallLimits(first_byte_s=0.2, max_attempts=2))
    assert info.value.attempts == 2 and info.value.status is None
    assert "ReadTimeout" in str(info.value) and "no answer within 0.2s" in str(info.value)


def test_body_splices_encoded_messages_verbatim(server: ScriptedServer) -> None:
    # Odd spacing and escapes would not survive a decode/re-encode round trip.
    encoded = '{"role":  "user", "content": "caf\\u00e9 \\"quoted\\""}'
    as_dict = {"role": "assistant", "content": "naïve"}
    server.add(reply("ok"))
    defaults = {"top_p": 1, "temperature": 0.9}
    complete(server, [encoded, as_dict], TOOLS, {"temperature": 0.3, "seed": 7}, params=defaults)
    raw = server.requests[0].raw.decode()
    assert encoded in raw
    assert '{"role": "assistant", "content": "naïve"}' in raw
    body = server.requests[0].body
    assert body["model"] == "test-model"
    assert body["messages"] == [json.loads(encoded), as_dict]
    assert body["tools"] == TOOLS
    # Per-call params override the model's defaults; both pass through.
    assert (body["temperature"], body["seed"], body["top_p"]) == (0.3, 7, 1)


def test_api_key_is_sent(server: ScriptedServer) -> None:
    server.add(reply("ok"))
    model = OpenAIChatModel(server.base_url, "m", api_key="sk-test")
    body = model.encode_body([USER], [])
    assert json.loads(body) == {"model": "m", "messages": [USER]}
    assert model._headers["Authorization"] == "Bearer sk-test"


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APOLLO_TEST_KEY", "sk-env")
    model = OpenAIChatModel("http://127.0.0.1:1/v1", "m", api_key_env="APOLLO_TEST_KEY")
    assert model._headers["Authorization"] == "Bearer sk-env"
    monkeypatch.delenv("APOLLO_TEST_KEY")
    with pytest.raises(ValueError, match="APOLLO_TEST_KEY"):
        OpenAIChatModel("http://127.0.0.1:1/v1", "m", api_key_env="APOLLO_TEST_KEY")


def test_params_replace_our_fields_without_duplicate_keys() -> None:
    model = OpenAIChatModel("http://127.0.0.1:1/v1", "m", params={"tool_choice": "required"})
    body = model.encode_body([USER], TOOLS, {"tools": TOOLS[:1]}).decode()
    assert body.count('"tools"') == 1
    assert json.loads(body)["tools"] == TOOLS[:1]
    assert json.loads(body)["tool_choice"] == "required"
    with pytest.raises(ValueError, match="must not set"):
        model.encode_body([USER], TOOLS, {"model": "other"})


def test_many_calls_reuse_one_client(server: ScriptedServer) -> None:
    server.add(*[reply(f"r{i}") for i in range(50)])
    history: list[MessageLike] = [json.dumps(USER)]

    async def go() -> list[str | None]:
        out = []
        async with OpenAIChatModel(server.base_url, "m") as model:
            for _ in range(50):
                got = await model.complete(history)
                out.append(got.content)
                history.append(json.dumps(got.assistant_message()))
        return out

    assert asyncio.run(go()) == [f"r{i}" for i in range(50)]
    assert len(server.requests[-1].body["messages"]) == 50


def noting(
    url: str, messages: Sequence[MessageLike] = (USER,), **options: Any
) -> tuple[Completion | ModelError, list[RetryNotice]]:
    """One call through a fresh client; what it gave (or raised) and the retries it reported."""
    options.setdefault("backoff_base", 0.01)
    notices: list[RetryNotice] = []

    async def go() -> Completion:
        async with OpenAIChatModel(url, "test-model", **options) as model:
            return await model.complete(messages, on_retry=notices.append)

    try:
        return asyncio.run(go()), notices
    except ModelError as exc:
        return exc, notices


def test_default_limits_are_minutes_and_outlast_a_server_restart() -> None:
    limits = CallLimits()
    assert (limits.connect_s, limits.first_byte_s, limits.total_s) == (10, 120, 300)
    assert limits.max_attempts is None
    # A restarting server is waited for at least a minute; a stuck one fails within minutes:
    # attempts start until the window is spent, and each ends by the total timeout.
    assert limits.retry_window_s >= 60
    assert limits.retry_window_s + limits.total_s <= 15 * 60
    assert OpenAIChatModel("http://127.0.0.1:1/v1", "m").limits == limits


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"first_byte_s": float("nan")}, "first_byte_s must be a positive, finite number"),
        ({"total_s": float("inf")}, "total_s must be a positive, finite number"),
        ({"connect_s": 0}, "connect_s must be a positive"),
        ({"retry_window_s": -5}, "retry_window_s must be a positive"),
        ({"connect_s": "10"}, "connect_s must be a number of seconds"),
        ({"total_s": True}, "total_s must be a number of seconds"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"read_timeout": 5}, "unknown model limit read_timeout; the limits are connect_s"),
    ],
)
def test_bad_limits_are_refused_with_what_is_wrong(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallLimits().updated(overrides)


def test_a_server_that_never_answers_is_given_up_on_after_the_window(
    server: ScriptedServer,
) -> None:
    server.default = hang()
    limits = CallLimits(first_byte_s=0.2, retry_window_s=0.5)
    got, notices = noting(server.base_url, limits=limits)
    assert isinstance(got, ModelError)
    assert "no answer within 0.2s" in str(got) and "ReadTimeout" in str(got)
    # Every failed attempt but the last was reported before it was made again.
    assert got.attempts == len(notices) + 1 == len(server.requests) >= 2
    assert [n.attempt for n in notices] == list(range(1, got.attempts))
    for n in notices:
        assert n.max_attempts is None and n.window_s == 0.5 and n.status is None
        assert "ReadTimeout" in n.error
        assert n.waited_s >= 0.2
        assert n.since_s >= n.waited_s
        assert n.since_s + n.delay_s <= 0.5 + 1e-6  # no retry is planned past the window
    assert [n.since_s for n in notices] == sorted(n.since_s for n in notices)


def test_total_timeout_bounds_one_attempt(server: ScriptedServer) -> None:
    server.add(reply("slow", delay=30), reply("in time"))
    limits = CallLimits(first_byte_s=60, total_s=0.3)
    got, notices = noting(server.base_url, limits=limits)
    assert isinstance(got, Completion) and got.content == "in time"
    assert len(notices) == 1
    assert notices[0].error == "no complete answer within 0.3s (total timeout)"
    assert notices[0].waited_s >= 0.3


def test_connect_timeout_bounds_opening_a_connection() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so connecting
    # hangs until the client's connect timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            url = f"http://127.0.0.1:{port}/v1"
            limits = CallLimits(connect_s=0.2, max_attempts=2)
            got, notices = noting(url, limits=limits)
        finally:
            for filler in fillers:
                filler.close()
    assert isinstance(got, ModelError) and got.attempts == 2
    assert "ConnectTimeout" in str(got)
    assert len(notices) == 1 and notices[0].waited_s >= 0.2


def test_refused_connections_are_retried_until_the_server_is_back() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = ScriptedServer([reply("back again")], port=port)
    notices: list[RetryNotice] = []

    def note(notice: RetryNotice) -> None:
        notices.append(notice)
        if len(notices) == 3:  # the server comes back while the client waits to retry
            server.start()

    async def go() -> Completion:
        async with OpenAIChatModel(url, "m", backoff_base=0.01) as model:
            return await model.complete([USER], on_retry=note)

    try:
        got = asyncio.run(go())
    finally:
        server.stop()
    assert got.content == "back again"
    assert len(notices) == 3 and len(server.requests) == 1
    assert all("ConnectError" in n.error and n.status is None for n in notices)
    # A refused connection is no answer: the count does not bound it, only the window does.
    assert all(
        n.max_attempts is None and n.window_s == CallLimits().retry_window_s for n in notices
    )


def test_refused_connections_fail_once_the_window_is_spent() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    got, notices = noting(url, limits=CallLimits(retry_window_s=0.3), backoff_base=0.05)
    assert isinstance(got, ModelError)
    assert "ConnectError" in str(got) and url in str(got)
    assert got.attempts == len(notices) + 1 >= 2
    assert notices[-1].since_s + notices[-1].delay_s <= 0.3 + 1e-6


def test_max_attempts_bounds_the_count_within_the_window(server: ScriptedServer) -> None:
    server.default = error(503)
    got, notices = noting(server.base_url, limits=CallLimits(max_attempts=4))
    assert isinstance(got, ModelError) and got.attempts == 4 and got.status == 503
    assert [(n.attempt, n.max_attempts, n.status) for n in notices] == [
        (1, 4, 503),
        (2, 4, 503),
        (3, 4, 503),
    ]
    assert notices[0].error.startswith("HTTP 503: ")


def test_a_flaky_endpoint_reports_each_retry() -> None:
    with ScriptedServer(default=reply("ok"), fault="flaky") as server:
        results = [noting(server.base_url) for _ in range(3)]
    for got, notices in results:
        assert isinstance(got, Completion) and got.content == "ok"
        assert [(n.attempt, n.status) for n in notices] == [(1, 500)]
        assert "scripted flaky endpoint" in notices[0].error
    assert len(server.requests) == 6


def test_retry_notice_payload_is_plain_json() -> None:
    notice = RetryNotice(2, 6, "HTTP 502: bad gateway", 502, 0.0123456, 1.5, 3.25, 300.0)
    payload = notice.to_payload("act", 7.5)
    assert payload == {
        "purpose": "act",
        "attempt": 2,
        "max_attempts": 6,
        "error": "HTTP 502: bad gateway",
        "status": 502,
        "waited_s": 0.012,
        "delay_s": 1.5,
        "since_s": 3.25,
        "window_s": 300.0,
        "work_s": 7.5,
    }
    assert json.loads(json.dumps(payload)) == payload
