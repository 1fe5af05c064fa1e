"""Export throughput: a synthetic store of 1,000 runs and 1,000,000 steps exported to the
`openai` and `tokenized` formats, with peak memory.

The store is written straight through the Store API with events and blobs shaped exactly as
the agent writes them (run_started, guidance, guidance_delivered, model_call act with a delta
input, observation, summarize call + summary every `--window` steps, labels), in a child
process, so the parent's peak RSS is the export's alone. `openai` exports the whole store;
`tokenized` (a chat-template render per segment and a tokenizer, slower) exports the first
`--tokenized-runs` runs in `--workers` processes (one per core by default, as `apollo export`
does) and reports its own rate (`tokenized_steps_per_s`), next to the rate of the tokenizer
alone on the same samples' texts with every core (`tokenizer_floor_steps_per_s`): a bound no
tokenized export with that tokenizer can pass on this machine.

    python benchmarks/export_throughput.py [--runs 1000] [--steps 1000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import report

from apollo.export.formats import get_format
from apollo.export.formats.tokenized import Tokenized
from apollo.export.parallel import cores
from apollo.export.pipeline import RunFilter, export
from apollo.export.windows import WindowOptions
from apollo.log.calls import encode_input
from apollo.log.events import Kind, NewEvent, blob_id, canonical_json
from apollo.log.sqlite import SQLiteStore
from apollo.supervise.policy import Policy

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run",
            "description": "Run a bash command in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    }
]
FOOTER = "\n\n[step {step}/{max} · working time left 40h00m00s · submissions left 3]"


class RunWriter:
    """Events and blobs of one synthetic run, as apollo.agent.loop writes them."""

    def __init__(self, store: SQLiteStore, rng: random.Random, vocab: list[str]) -> None:
        self.store, self.rng, self.vocab = store, rng, vocab
        self.events: list[NewEvent] = []
        self.blobs: dict[str, str] = {}
        self.entries: list[str] = []  # the context, as blob ids
        self.prev_seq: int | None = None
        self.prev_ids: list[str] = []

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(self.vocab, k=n))

    def put(self, message: dict[str, Any]) -> str:
        """Store a message as the agent does (canonical JSON blob), in batches."""
        text = canonical_json(message)
        blob = blob_id(text)
        self.blobs[blob] = text
        if len(self.blobs) >= 5000:
            self.flush_blobs()
        return blob

    def flush_blobs(self) -> None:
        self.store.put_blobs(list(self.blobs.values()))
        self.blobs.clear()

    def add(
        self, kind: str, payload: dict[str, Any], step: int | None, actor: str = "agent"
    ) -> int:
        self.events.append(NewEvent(kind, payload, actor, step))
        return len(self.events)  # the seq it gets in a fresh run

    def call(self, purpose: str, step: int, ids: list[str], output: str, calls: list[Any]) -> None:
        payload = {
            "purpose": purpose,
            "input": encode_input(self.prev_seq, self.prev_ids, ids),
            "tools": self.tools_blob if purpose == "act" else None,
            "output": output,
            "calls": calls,
            "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
            "latency_ms": 12.5,
            "model": "synthetic",
            "repaired": False,
            "parse_error": None,
            "work_s": float(step),
        }
        self.prev_seq = self.add(Kind.MODEL_CALL, payload, step)
        self.prev_ids = ids

    def write(self, run_id: str, steps: int, window: int, guidance_every: int) -> None:
        self.tools_blob = self.store.put_blob(canonical_json(TOOLS))
        self.entries = [
            self.put({"role": "system", "content": "You are a research agent. " + self.words(60)}),
            self.put({"role": "user", "content": "# Task\n" + self.words(200)}),
        ]
        self.add(
            Kind.RUN_STARTED,
            {
                "task": "synthetic",
                "task_path": "/tmp/synthetic",
                "model": "synthetic",
                "budget": {"steps": steps},
                "messages": list(self.entries),
                "tools": self.tools_blob,
            },
            None,
        )
        first = 1
        for step in range(1, steps + 1):
            if step % guidance_every == 0:
                gid = f"g-{step}"
                text = self.words(20)
                self.add(
                    Kind.GUIDANCE,
                    {
                        "id": gid,
                        "author": "alice",
                        "kind": "strategy",
                        "text": text,
                        "drift_from_step": step - 3,
                        "urgent": False,
                    },
                    None,
                    "alice",
                )
                msg = self.put({"role": "user", "content": f"<real_user>{text}</real_user>"})
                self.add(
                    Kind.GUIDANCE_DELIVERED,
                    {"guidance_id": gid, "step": step, "message": msg},
                    step,
                )
                self.entries.append(msg)
            if step - first >= window:
                ids = [*self.entries, self.put({"role": "user", "content": "Summarize."})]
                snap = self.put(
                    {
                        "role": "assistant",
                        "content": "<state_snapshot>" + self.words(150) + "</state_snapshot>",
                    }
                )
                self.call("summarize", step, ids, snap, [])
                cont = self.put({"role": "user", "content": "Continue the task."})
                self.add(
                    Kind.SUMMARY,
                    {
                        "covers": [first, step - 1],
                        "messages": [snap, cont],
                        "cited_guidance": [],
                        "repaired_guidance": [],
                        "work_s": float(step),
                    },
                    step,
                )
                self.entries = [*self.entries[:2], snap, cont]
                self.prev_seq, self.prev_ids = None, []
                first = step
            call_id = f"call_{step}_0"
            command = f"python train.py --lr {self.rng.random():.4f} --note '{self.words(6)}'"
            output = self.put(
                {
                    "role": "assistant",
                    "content": self.words(25),
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": "run",
                                "arguments": canonical_json({"command": command}),
                            },
                        }
                    ],
                }
            )
            self.call("act", step, list(self.entries), output, [{"id": call_id, "name": "run"}])
            obs = self.put(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": self.words(60) + FOOTER.format(step=step, max=steps),
                }
            )
            self.add(
                Kind.OBSERVATION,
                {
                    "tool_call_id": call_id,
                    "tool": "run",
                    "message": obs,
                    "exit": 0,
                    "error": False,
                    "truncated": False,
                    "duration_ms": 8.0,
                    "meta": {},
                    "work_s": float(step),
                },
                step,
            )
            self.entries += [output, obs]
            if step % 7 == 0:
                self.add(
                    Kind.LABEL,
                    {
                        "step": step,
                        "verdict": "mask",
                        "reason": "repeat",
                        "source": "rule",
                        "author": "rules",
                        "rule": "exact_repeat",
                    },
                    step,
                    "rules",
                )
        self.add(Kind.SUBMISSION, {"n": 1, "score": 50.0, "details": {}, "final": True}, steps)
        self.add(Kind.RUN_FINISHED, {"status": "finished", "reason": "done"}, steps)
        self.flush_blobs()
        self.store.append(run_id, self.events)


def build(path: str, runs: int, steps: int, window: int) -> None:
    """Write the synthetic store (in a child process)."""
    store = SQLiteStore(path)
    rng = random.Random(7)
    vocab = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(5000)
    ]
    for n in range(runs):
        run_id = f"run-{n:05d}"
        store.create_run("synthetic", {}, run_id=run_id)
        RunWriter(store, rng, vocab).write(run_id, steps, window, guidance_every=200)
    store.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tokenizer_floor(fmt: Tokenized, exported: Path) -> tuple[float, int]:
    """Seconds the tokenizer alone takes for the exported samples' texts (best of three; one
    batch call on the whole samples, the fastest way it has), and their token count: the
    rate no tokenized export with this tokenizer can beat, measured in the same run."""
    ids = [json.loads(line)["input_ids"] for line in exported.open(encoding="utf-8")]
    texts = [fmt.tokenizer.decode(row) for row in ids]
    backend = fmt.tokenizer.backend_tokenizer
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        backend.encode_batch_fast(texts, add_special_tokens=False)
        best = min(best, time.perf_counter() - started)
    return best, sum(map(len, ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000, help="steps per run")
    parser.add_argument("--window", type=int, default=50, help="steps between summaries")
    parser.add_argument("--tokenized-runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=cores(), help="tokenized export's")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="apollo-export-bench-"))
    try:
        db = root / "apollo.db"
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(
            target=build, args=(str(db), args.runs, args.steps, args.window)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"building the store failed ({child.exitcode})")
        build_s = time.perf_counter() - started
        store = SQLiteStore(db)
        total_steps = args.runs * args.steps
        policy, options = Policy(), WindowOptions()

        started = time.perf_counter()
        result = export(
            store,
            root / "openai.jsonl",
            get_format("openai"),
            policy,
            RunFilter(),
            options,
            "benchmark",
        )
        openai_s = time.perf_counter() - started
        openai_rss = peak_rss_mb()
        assert result.stats.turns_trained + result.stats.turns_masked == total_steps

        fmt = Tokenized()
        subset = tuple(f"run-{n:05d}" for n in range(min(args.tokenized_runs, args.runs)))
        started = time.perf_counter()
        tok = export(
            store,
            root / "tokenized.jsonl",
            fmt,
            policy,
            RunFilter(runs=subset),
            options,
            "benchmark",
            workers=args.workers,
        )
        tokenized_s = time.perf_counter() - started
        tokenized_steps = tok.stats.turns_trained + tok.stats.turns_masked
        floor_s, n_tokens = tokenizer_floor(fmt, root / "tokenized.jsonl")
        report(
            "export_throughput",
            {
                "runs": args.runs,
                "steps": total_steps,
                "window_steps": args.window,
                "store_mb": round(db.stat().st_size / 2**20, 1),
                "build_s": round(build_s, 1),
                "openai_s": round(openai_s, 1),
                "openai_samples": result.stats.samples,
                "openai_mb": round((root / "openai.jsonl").stat().st_size / 2**20, 1),
                "openai_steps_per_s": round(total_steps / openai_s),
                "openai_peak_rss_mb": round(openai_rss, 1),
                "tokenized_steps": tokenized_steps,
                "tokenized_s": round(tokenized_s, 1),
                "tokenized_steps_per_s": round(tokenized_steps / tokenized_s),
                "tokenized_workers": args.workers,
                "tokens_per_step": round(n_tokens / tokenized_steps),
                "tokenizer_floor_steps_per_s": round(tokenized_steps / floor_s),
                "peak_rss_mb": round(peak_rss_mb(), 1),
            },
        )
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
