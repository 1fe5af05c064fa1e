"""Speed and memory of the embedded models' llama.cpp servers, with the settings Apollo uses.

For each installed model (`--models` to pick) and thread count (1 and 2): a server as
`EmbeddedModel` starts it, then RUNS streamed requests, each a fresh prompt of about 300
tokens (a nonce first, so no prompt cache helps) asking for 64 tokens at temperature 0.
Prompt tokens/s = prompt tokens / time to the first streamed token; generation tokens/s =
(streamed tokens - 1) / the time after it (llama-cpp-python streams one token per chunk).
The machine is shared: the 1-minute load average is recorded before each request.

Also, for the default model: the server's peak RSS (VmHWM) after one request at n_ctx 16384
with `logits_all` True and False, and the time to the first token of a conversation's next
turn when another conversation ran on the same server in between (its prompt cache evicted)
versus on a server of its own.

Keys: models.NAME.threads_T.{prompt_tok_s, gen_tok_s, load} (medians), logits_all.{true_mb,
false_mb}, shared_server.{own_ttft_s, shared_ttft_s}. Writes benchmarks/results/
embedded_models.json; a few minutes of CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _common import report

from apollo.llm import models
from apollo.llm.embedded import EmbeddedError, EmbeddedModel
from apollo.rollout.home import Home

RUNS = 3
SERVER = Path(__file__).with_name("_llama_server.py")
GEN_TOKENS = 64
TEXT = (
    "You are an agent in a Linux workspace. The task: a training job writes checkpoints to "
    "ckpt/ every few minutes and a metrics file metrics.jsonl with one JSON object per line "
    "(step, loss, accuracy). Wait for the job to finish, then report the step with the best "
    "accuracy. Tools: shell(command), read_file(path), write_file(path, content), "
    "sleep(seconds), finish(summary). "
)


class BenchServer(EmbeddedModel):
    """Apollo's server, launched through `_llama_server.py` (see there why)."""

    def command(self, model: Path, n_threads: int) -> list[str]:
        cmd = super().command(model, n_threads)
        assert cmd[1:3] == ["-m", "llama_cpp.server"]
        return [cmd[0], str(SERVER), *cmd[3:]]


def prompt(repeat: int) -> list[dict[str, str]]:
    nonce = uuid.uuid4().hex
    return [
        {"role": "system", "content": f"[{nonce}] " + TEXT * repeat},
        {"role": "user", "content": "Count from 1 to 200, comma separated, and nothing else."},
    ]


async def stream(
    client: httpx.AsyncClient, url: str, messages: list[dict[str, str]], max_tokens: int
) -> dict[str, float]:
    """One streamed completion: time to first token, tokens after it and their time."""
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "stream": True}
    began = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                tokens += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "no token streamed"
    return {"ttft_s": first - began, "tokens": tokens, "gen_s": end - first}


async def prompt_tokens(client: httpx.AsyncClient, url: str, messages: list[Any]) -> int:
    body = {"messages": messages, "max_tokens": 1, "temperature": 0.0}
    answer = (await client.post(f"{url}/chat/completions", json=body)).json()
    return int(answer["usage"]["prompt_tokens"])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def speeds(spec: models.EmbeddedSpec, cache: Path, threads: int) -> dict[str, float]:
    async with (
        BenchServer(spec, cache=cache, n_ctx=4096, n_threads=threads) as server,
        httpx.AsyncClient(timeout=600) as client,
    ):
        url = server.base_url
        await stream(client, url, prompt(1), 4)  # warm: pages the weights in
        rows = []
        for _ in range(RUNS):
            messages = prompt(4)
            n_prompt = await prompt_tokens(client, url, prompt(4))
            load = os.getloadavg()[0]
            got = await stream(client, url, messages, GEN_TOKENS)
            rows.append(
                {
                    "prompt_tok_s": n_prompt / got["ttft_s"],
                    "gen_tok_s": (got["tokens"] - 1) / got["gen_s"],
                    "load": load,
                    "prompt_tokens": n_prompt,
                }
            )
    return {k: round(statistics.median(r[k] for r in rows), 2) for k in rows[0]}


async def logits_memory(spec: models.EmbeddedSpec, cache: Path) -> dict[str, float]:
    out = {}
    for flag in ("True", "False"):
        # A later --logits_all on the command line wins over Apollo's False.
        server = BenchServer(
            spec, cache=cache, n_ctx=16384, n_threads=1, extra_args=["--logits_all", flag]
        )
        async with server, httpx.AsyncClient(timeout=600) as client:
            await stream(client, server.base_url, prompt(1), 8)
            assert server.process is not None
            out[f"{flag.lower()}_mb"] = round(peak_rss_mb(server.process.pid))
    return out


async def shared_server(spec: models.EmbeddedSpec, cache: Path) -> dict[str, float]:
    """A conversation's next turn: after another conversation on the same server (the
    server keeps one conversation's prefix) versus on its own server."""

    def turns() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        first = prompt(4)
        return first, [*first, {"role": "assistant", "content": "1, 2"}, first[1]]

    async with httpx.AsyncClient(timeout=600) as client:
        own, shared = [], []
        async with BenchServer(spec, cache=cache, n_ctx=4096, n_threads=1) as server:
            url = server.base_url
            for _ in range(RUNS):
                a, a_next = turns()
                await stream(client, url, a, 2)
                own.append((await stream(client, url, a_next, 2))["ttft_s"])
                b, _ = turns()
                a, a_next = turns()
                await stream(client, url, a, 2)
                await stream(client, url, b, 2)
                shared.append((await stream(client, url, a_next, 2))["ttft_s"])
    return {
        "own_ttft_s": round(statistics.median(own), 3),
        "shared_ttft_s": round(statistics.median(shared), 3),
    }


async def again(make: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """`make()`, again if its server was killed under it (on a shared machine another test
    suite's cleanup may end every llama.cpp server it did not see start)."""
    for attempt in range(3):
        try:
            return await make()
        except (httpx.HTTPError, EmbeddedError) as exc:
            print(f"retrying after {type(exc).__name__}: {exc}", file=sys.stderr)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def main(names: list[str], cache: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"models": {}}
    for name in names:
        spec = models.find(name)
        if models.status(spec, cache) == "not installed":
            continue
        rows = {}
        for threads in (1, 2):
            rows[f"threads_{threads}"] = await again(partial(speeds, spec, cache, threads))
        result["models"][name] = rows
    result["logits_all"] = await again(lambda: logits_memory(models.DEFAULT, cache))
    result["shared_server"] = await again(lambda: shared_server(models.DEFAULT, cache))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(models.MODELS))
    parser.add_argument("--home", help="Apollo home whose model cache to use")
    args = parser.parse_args()
    cache = models.cache_dir(Home(args.home).path)
    started = time.time()
    result = asyncio.run(main(args.models, cache))
    result["wall_s"] = round(time.time() - started, 1)
    result["load_after"] = os.getloadavg()[0]
    report("embedded_models", result)
