"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

It replays a script of entries, one per `/v1/chat/completions` request, and records every
request it received. An entry is a dict (build one with `reply`, `call`, `error`, `drop`) or,
in-process, a callable that gets the `Request` and returns one:

- a completion: ``{"content": ..., "tool_calls": [{"name", "arguments"}], "reasoning": ...,
  "finish_reason": ..., "usage": {...}}``, or ``{"message": {...}}`` sent verbatim;
- an HTTP error: ``{"status": 429, "retry_after": 1, "error": "slow down"}``;
- a dropped connection: ``{"drop": true}``;
- a request taken and never answered (until the server stops): ``{"hang": true}``;
- any of them with ``"delay": seconds`` waits that long first.

When the script runs out, `default` answers (if given); otherwise the server answers 400.
A `fault` applies to every request before the script: ``"flaky"`` answers HTTP 500 to every
other chat request (the first, third, ...) without using up an entry.

The server is a minimal HTTP/1.1 keep-alive loop on asyncio streams rather than a web
framework: the benchmark measures framework overhead per step in milliseconds, so the server's
own share must stay far below that. Request bodies are kept as bytes and parsed only when read.

In-process: ``with ScriptedServer([...]) as server: ... server.base_url``. As a process:
``python -m apollo.llm.scripted --script file.json --port 0 [--fault flaky]`` prints the port on
its first line;
``GET /_scripted/requests`` returns what it recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

Entry = Mapping[str, Any] | Callable[["Request"], Mapping[str, Any]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
FAULTS = ("flaky",)


class Request:
    """One request the server received. Times are `time.perf_counter()` seconds (the
    monotonic clock, comparable across processes on one Linux host)."""

    __slots__ = ("_body", "finished", "index", "method", "path", "raw", "received")

    def __init__(self, index: int, method: str, path: str, raw: bytes, received: float) -> None:
        self.index = index
        self.method = method
        self.path = path
        self.raw = raw
        self.received = received
        # When the response was fully written; None if the connection was dropped.
        self.finished: float | None = None
        self._body: Any = None

    @property
    def body(self) -> Any:
        """The request body, parsed as JSON (on first access)."""
        if self._body is None and self.raw:
            self._body = json.loads(self.raw)
        return self._body

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON (what `GET /_scripted/requests` returns)."""
        return {
            "index": self.index,
            "method": self.method,
            "path": self.path,
            "body": self.body,
            "received": self.received,
            "finished": self.finished,
        }


def call(name: str, arguments: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """A tool call for a `reply` entry; `arguments` may be an object or raw JSON text."""
    return {"name": name, "arguments": {} if arguments is None else arguments}


def reply(
    content: str | None = None,
    *,
    tool_calls: Iterable[Mapping[str, Any]] = (),
    reasoning: str | None = None,
    finish_reason: str | None = None,
    delay: float = 0.0,
) -> dict[str, Any]:
    """A completion entry."""
    entry: dict[str, Any] = {"content": content, "tool_calls": list(tool_calls)}
    if reasoning is not None:
        entry["reasoning"] = reasoning
    if finish_reason is not None:
        entry["finish_reason"] = finish_reason
    if delay:
        entry["delay"] = delay
    return entry


def error(
    status: int, *, retry_after: float | None = None, message: str = "", delay: float = 0.0
) -> dict[str, Any]:
    """An HTTP error entry (e.g. 429 with Retry-After, 500)."""
    entry: dict[str, Any] = {"status": status, "error": message or f"scripted error {status}"}
    if retry_after is not None:
        entry["retry_after"] = retry_after
    if delay:
        entry["delay"] = delay
    return entry


def drop(delay: float = 0.0) -> dict[str, Any]:
    """An entry that closes the connection without answering."""
    return {"drop": True, "delay": delay} if delay else {"drop": True}


def hang() -> dict[str, Any]:
    """An entry that takes the request and never answers (a stuck model server)."""
    return {"hang": True}


class ScriptedServer:
    """A scripted OpenAI-compatible server on loopback (see the module docstring)."""

    def __init__(
        self,
        script: Iterable[Entry] = (),
        *,
        default: Entry | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "scripted",
        fault: str | None = None,
    ) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; use one of {', '.join(FAULTS)}")
        self.fault = fault
        self.script: deque[Entry] = deque(script)
        self.default = default
        self.host = host
        self.port = port
        self.model = model
        # Chat-completion requests only, in arrival order.
        self.requests: list[Request] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The `/v1` URL to give a client."""
        return f"http://{self.host}:{self.port}/v1"

    def add(self, *entries: Entry) -> None:
        """Append entries to the script (safe while serving)."""
        self.script.extend(entries)

    def bodies(self) -> list[Any]:
        """The parsed bodies of all chat requests so far."""
        return [r.body for r in self.requests]

    # --- running ---------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Serve from a background thread; returns once the port is bound."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="scripted-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"scripted server did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        """Stop serving and close open connections."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the running loop until `stop()` (or cancellation)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self.serve(ready.set))
        except BaseException as exc:  # surfaced by start(); a thread has no other way out
            self._failure = exc
            ready.set()

    # --- HTTP ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].decode("latin-1").split(" ", 2)
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"connection":
                        close = value.strip().lower() == b"close"
                raw = await reader.readexactly(length) if length else b""
                keep = await self._route(method, path, raw, time.perf_counter(), writer)
                if close or not keep:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _route(
        self, method: str, path: str, raw: bytes, received: float, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must be dropped."""
        if method == "POST" and path.endswith("/chat/completions"):
            request = Request(len(self.requests), method, path, raw, received)
            self.requests.append(request)
            return await self._complete(request, writer)
        if method == "GET" and path.endswith("/models"):
            models = {"object": "list", "data": [{"id": self.model, "object": "model"}]}
            await _send(writer, 200, json.dumps(models).encode())
        elif method == "GET" and path == "/_scripted/requests":
            records = json.dumps([r.to_json() for r in self.requests]).encode()
            await _send(writer, 200, records)
        else:
            await _send(writer, 404, _error_body(f"no route for {method} {path}"))
        return True

    async def _complete(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        entry = self._next_entry(request)
        delay = float(entry.get("delay") or 0.0)
        if delay:
            await asyncio.sleep(delay)
        if entry.get("drop"):
            writer.transport.abort()
            return False
        if entry.get("hang"):
            assert self._stopping is not None
            await self._stopping.wait()
            return False
        if "status" in entry:
            status = int(entry["status"])
            headers = {}
            if entry.get("retry_after") is not None:
                headers["Retry-After"] = str(entry["retry_after"])
            await _send(writer, status, _error_body(str(entry.get("error", ""))), headers)
        else:
            await _send(writer, 200, self._completion_body(request, entry))
        request.finished = time.perf_counter()
        return True

    def _next_entry(self, request: Request) -> Mapping[str, Any]:
        if self.fault == "flaky" and request.index % 2 == 0:
            return error(500, message="scripted flaky endpoint")
        if self.script:
            entry = self.script.popleft()
        elif self.default is not None:
            entry = self.default
        else:
            message = f"scripted server: the script ran out at request {request.index}"
            return {"status": 400, "error": message}
        return entry(request) if callable(entry) else entry

    def _completion_body(self, request: Request, entry: Mapping[str, Any]) -> bytes:
        message = entry.get("message")
        if message is None:
            message = {"role": "assistant", "content": entry.get("content")}
            calls = [
                {
                    "id": f"call_{request.index}_{n}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": c["arguments"]
                        if isinstance(c.get("arguments"), str)
                        else json.dumps(c.get("arguments") or {}),
                    },
                }
                for n, c in enumerate(entry.get("tool_calls") or ())
            ]
            if calls:
                message["tool_calls"] = calls
            if entry.get("reasoning") is not None:
                message["reasoning_content"] = entry["reasoning"]
        natural = "tool_calls" if message.get("tool_calls") else "stop"
        finish = entry.get("finish_reason") or natural
        # Rough token counts (4 bytes a token) so usage accounting has numbers to add up.
        prompt_tokens = len(request.raw) // 4
        completion_tokens = len(json.dumps(message)) // 4
        usage = entry.get("usage") or {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        body = {
            "id": f"chatcmpl-scripted-{request.index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return json.dumps(body).encode()


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    reason = _REASONS.get(status, "Error" if status >= 400 else "OK")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    )
    writer.write(head.encode("latin-1") + payload)
    await writer.drain()


def _error_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "scripted"}}).encode()


def load_script(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A script file: a JSON list of entries, or ``{"script": [...], "default": {...}}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        return data, None
    return list(data.get("script") or []), data.get("default")


def main(argv: list[str] | None = None) -> None:
    """`python -m apollo.llm.scripted`: serve a script file until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, help="JSON file of script entries")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default="scripted")
    parser.add_argument("--fault", choices=FAULTS, help="fail requests this way before the script")
    args = parser.parse_args(argv)
    script, default = load_script(args.script)
    server = ScriptedServer(
        script, default=default, host=args.host, port=args.port, model=args.model, fault=args.fault
    )

    def ready() -> None:
        # The first line is the port, so a parent process can read it and connect.
        print(server.port, flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)

    asyncio.run(server.serve(ready))


if __name__ == "__main__":
    main()
