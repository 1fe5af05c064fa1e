"""Training throughput: LoRA on embedded Qwen2.5-Coder-0.5B (dequantized from its GGUF) on
4k-token samples, ours (`apollo train`'s trainer: logits only at trained positions) against
plain TRL `SFTTrainer` (its own loss) on the same data, each in a child process of its own
so each peak RSS is its own.

The data are synthetic: random token ids (the speed of a step does not depend on which ids),
`--length` tokens per sample, `--trained` of the labels trained in four assistant-like spans
(an exported agent trace of 3.7k tokens here had 18% trained). Both trainers get the same
settings (LoRA r=16 on every linear layer of the blocks, bf16 autocast, gradient checkpointing,
batch 1, no gradient accumulation) and the same CPU threads (chosen once from the load). The
first `--warmup` steps are not timed. The plain trainer runs under an RSS guard: it is killed
above `--rss-guard-mb`, and the result says so.

    python benchmarks/train_throughput.py [--length 4096] [--steps 3] [--base qwen2.5-coder-0.5b]

Keys: `tokens_per_s` and `peak_rss_mb` (ours), `vs_trl` = ours / plain tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, report

from apollo.export.card import CardStats, card_path, render_card


def synthetic_export(path: Path, rows: int, length: int, trained: float) -> Path:
    """`rows` samples of `length` random ids (below 49,000: in every embedded model's
    vocabulary), `trained` of their labels in 4 spans, with a card."""
    rng = random.Random(0)
    lines = []
    span = int(length * trained / 4)
    for _ in range(rows):
        ids = [rng.randrange(49_000) for _ in range(length)]
        labels = [-100] * length
        for k in range(4):
            start = (k + 1) * length // 5 - span // 2
            labels[start : start + span] = ids[start : start + span]
        lines.append(json.dumps({"input_ids": ids, "labels": labels}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = CardStats("tokenized", {"text": "synthetic"}, "benchmarks/train_throughput.py", {})
    stats.samples = rows
    card_path(path).write_text(render_card(path, stats), encoding="utf-8")
    return path


def child(args: argparse.Namespace) -> None:
    """One trainer's measurement, printed as a JSON line."""
    import resource

    import torch
    from transformers import TrainerCallback

    from apollo.llm import models
    from apollo.train import base as base_mod
    from apollo.train.data import read_export
    from apollo.train.options import TrainOptions
    from apollo.train.sft import load_dataset, make_trainer, prepare_model, quiet_libraries

    quiet_libraries()
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    base = base_mod.load(models.find(args.base), Path(args.cache))
    load_s = time.monotonic() - t0
    options = TrainOptions(
        data=Path(args.data),
        out=Path(args.out),
        base=f"embedded:{args.base}",
        max_steps=args.steps,
        grad_accum=1,
        max_length=args.length,
        save_steps=10_000,
        threads=args.threads,
        device="cpu",
    )
    data = read_export(options.data, options.max_length)
    model = prepare_model(base, options)

    class Clock(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.steps: list[tuple[float, int]] = []
            self.began = 0.0
            self.tokens = 0

        def on_step_begin(self, a: Any, state: Any, c: Any, **kw: Any) -> None:
            self.began, self.tokens = time.monotonic(), state.num_input_tokens_seen

        def on_step_end(self, a: Any, state: Any, c: Any, **kw: Any) -> None:
            seconds = time.monotonic() - self.began
            self.steps.append((seconds, state.num_input_tokens_seen - self.tokens))
            print(f"[{args.child}] step {state.global_step}: {seconds:.1f} s", file=sys.stderr)

    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_dataset(data, Path(tmp))
        trainer = make_trainer(
            model, base.tokenizer, dataset, options, "cpu", [clock], args.child == "ours"
        )
        trainer.train()
    timed = clock.steps[args.warmup :]
    seconds = sum(s for s, _ in timed)
    tokens = sum(n for _, n in timed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tokens_per_s": round(tokens / seconds, 2),
                "step_s": [round(s, 2) for s, _ in clock.steps],
                "timed_steps": len(timed),
                "peak_rss_mb": round(rss, 1),
                "load_s": round(load_s, 1),
                "final_loss": float(trainer.state.log_history[-2].get("loss", float("nan"))),
            }
        ),
        flush=True,
    )


def run_child(
    which: str, args: argparse.Namespace, data: Path, cache: Path, guard_mb: float, timeout: float
) -> dict[str, Any]:
    """Run one measurement in a child process, killed above `guard_mb` of RSS or after
    `timeout` seconds; its result or why there is none."""
    import psutil

    argv = [sys.executable, __file__, "--child", which, "--data", str(data), "--cache", str(cache)]
    argv += ["--out", str(cache.parent / f"out-{which}"), "--threads", str(args.threads)]
    argv += ["--length", str(args.length), "--steps", str(args.steps), "--base", args.base]
    argv += ["--warmup", str(args.warmup)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    watched = psutil.Process(proc.pid)
    peak = 0.0
    deadline = time.monotonic() + timeout
    why = None
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        if peak > guard_mb:
            why = f"killed by the RSS guard at {guard_mb:.0f} MB"
        elif time.monotonic() > deadline:
            why = f"killed after {timeout:.0f} s (the benchmark's time limit)"
        if why:
            proc.kill()
            break
        time.sleep(0.2)
    out, _ = proc.communicate()
    if why or proc.returncode != 0:
        return {"error": why or f"exit code {proc.returncode}", "rss_seen_mb": round(peak, 1)}
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", default="qwen2.5-coder-0.5b")
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--trained", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=2, help="steps per trainer (2 fit 15 minutes)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rss-guard-mb", type=float, default=14_000)
    p.add_argument("--budget-s", type=float, default=840, help="whole benchmark, seconds")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--child", choices=["ours", "plain"])
    p.add_argument("--data")
    p.add_argument("--cache")
    p.add_argument("--out")
    args = p.parse_args()
    if args.child:
        child(args)
        return

    from apollo.llm import models
    from apollo.llm.embedded import choose_threads

    started = time.monotonic()
    load_before = os.getloadavg()
    args.threads = args.threads or choose_threads()
    with tempfile.TemporaryDirectory(prefix="apollo-train-bench-") as tmp:
        cache = Path(tmp) / "models"
        spec = models.find(args.base)
        models.ensure(spec, cache)
        data = synthetic_export(Path(tmp) / "data.jsonl", args.steps, args.length, args.trained)
        left = args.budget_s - (time.monotonic() - started)
        ours = run_child("ours", args, data, cache, float("inf"), left * 0.45)
        left = args.budget_s - (time.monotonic() - started)
        plain = run_child("plain", args, data, cache, args.rss_guard_mb, left - 10)
    vs = (
        round(ours["tokens_per_s"] / plain["tokens_per_s"], 3)
        if "tokens_per_s" in ours and "tokens_per_s" in plain
        else None
    )
    report(
        "train_throughput",
        {
            "tokens_per_s": ours.get("tokens_per_s"),
            "peak_rss_mb": ours.get("peak_rss_mb"),
            "vs_trl": vs,
            "base": f"embedded:{args.base}",
            "sample_tokens": args.length,
            "trained_fraction": args.trained,
            "data": "synthetic: random token ids below 49,000, labels trained in 4 spans",
            "settings": "LoRA r=16 all linear layers, bf16 autocast, gradient checkpointing, "
            "batch 1, no accumulation; the first step untimed",
            "threads": args.threads,
            "ours": ours,
            "plain_sft_trainer": plain,
            "plain_length": args.length,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "shared_machine": "2 cores shared with other agents' tests and model servers",
            "wall_s": round(time.monotonic() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
