"""Training throughput: LoRA on embedded Qwen2.5-Coder-0.5B (dequantized from its GGUF) on
4k-token samples, ours (`apollo train`'s trainer: logits only at trained positions) against
plain TRL `SFTTrainer` (its own loss) on the same data, in the same run.

The data are synthetic: random token ids (a step's speed does not depend on which ids),
`--trained` of each sample's labels trained in four assistant-like spans (an exported agent
trace of 3.7k tokens here had 18% trained). Each trainer runs `--warmup-length`-token
warm-up samples (untimed: first-step allocations, optimizer state), then `--steps` timed
samples of `--length` tokens. Both get the same settings (LoRA r=16 on every linear layer of
the blocks, bf16 autocast, gradient checkpointing, batch 1, no gradient accumulation) and the
same CPU threads (chosen once from the load).

The base is loaded once, in a child process: ours trains first, and its peak RSS is the
child's peak at its end (loading included, as `apollo train` pays it); then plain SFTTrainer
trains the same LoRA model, its peak sampled every 0.1 s above what was resident before it.
The parent kills the child above `--rss-guard-mb` or past the time budget, and says so.

    python benchmarks/train_throughput.py [--length 4096] [--steps 1] [--base qwen2.5-coder-0.5b]

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
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, report

from apollo.export.card import CardStats, card_path, render_card


def synthetic_export(path: Path, lengths: list[int], trained: float) -> Path:
    """Samples of the given lengths of random ids (below 49,000: in every embedded model's
    vocabulary), `trained` of their labels in 4 spans, with a card."""
    rng = random.Random(0)
    lines = []
    for length in lengths:
        ids = [rng.randrange(49_000) for _ in range(length)]
        labels = [-100] * length
        span = int(length * trained / 4)
        for k in range(4):
            start = (k + 1) * length // 5 - span // 2
            labels[start : start + span] = ids[start : start + span]
        lines.append(json.dumps({"input_ids": ids, "labels": labels}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = CardStats("tokenized", {"text": "synthetic"}, "benchmarks/train_throughput.py", {})
    stats.samples = len(lengths)
    card_path(path).write_text(render_card(path, stats), encoding="utf-8")
    return path


class RssSampler:
    """The largest RSS seen every 0.1 s while running."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.1)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return self.peak / 2**20


def child(args: argparse.Namespace) -> None:
    """Both measurements, each printed as a JSON line when it ends."""
    import resource

    import psutil
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
    print(json.dumps({"phase": "load", "load_s": round(time.monotonic() - t0, 1)}), flush=True)
    options = TrainOptions(
        data=Path(args.data),
        out=Path(args.out),
        base=f"embedded:{args.base}",
        max_steps=args.warmup + args.steps,
        grad_accum=1,
        max_length=args.length,
        save_steps=10_000,
        threads=args.threads,
        device="cpu",
    )
    data = read_export(options.data, options.max_length)
    model = prepare_model(base, options)

    class Clock(TrainerCallback):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            self.name = name
            self.steps: list[tuple[float, int]] = []
            self.began = 0.0
            self.tokens = 0

        def on_step_begin(self, a: Any, state: Any, c: Any, **kw: Any) -> None:
            self.began, self.tokens = time.monotonic(), state.num_input_tokens_seen

        def on_step_end(self, a: Any, state: Any, c: Any, **kw: Any) -> None:
            seconds = time.monotonic() - self.began
            tokens = state.num_input_tokens_seen - self.tokens
            self.steps.append((seconds, tokens))
            print(f"[{self.name}] step {state.global_step}: {tokens} tokens, {seconds:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for name in ("ours", "plain"):
        before = psutil.Process().memory_info().rss / 2**20
        sampler = RssSampler()
        clock = Clock(name)
        with tempfile.TemporaryDirectory() as tmp:
            dataset = load_dataset(data, Path(tmp))
            trainer = make_trainer(
                model, base.tokenizer, dataset, options, "cpu", [clock], name == "ours"
            )
            trainer.train()
        sampled = sampler.stop()
        timed = clock.steps[args.warmup :]
        seconds = sum(s for s, _ in timed)
        tokens = sum(n for _, n in timed)
        result = {
            "phase": name,
            "tokens_per_s": round(tokens / seconds, 2),
            "steps": [[n, round(s, 2)] for s, n in clock.steps],
            "timed_tokens": tokens,
            "rss_before_mb": round(before, 1),
            "rss_sampled_peak_mb": round(sampled, 1),
            "process_peak_rss_mb": round(peak_mb(), 1),
        }
        print(json.dumps(result), flush=True)
        del trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", default="qwen2.5-coder-0.5b")
    p.add_argument("--length", type=int, default=4096)
    p.add_argument("--warmup-length", type=int, default=512)
    p.add_argument("--trained", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=1, help="timed steps per trainer")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps per trainer")
    p.add_argument("--rss-guard-mb", type=float, default=15_000)
    p.add_argument("--budget-s", type=float, default=860, help="the whole benchmark, seconds")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--child", action="store_true")
    p.add_argument("--data")
    p.add_argument("--cache")
    p.add_argument("--out")
    args = p.parse_args()
    if args.child:
        child(args)
        return

    import psutil

    from apollo.llm import models
    from apollo.llm.embedded import choose_threads

    started = time.monotonic()
    load_before = os.getloadavg()
    args.threads = args.threads or choose_threads()
    phases: dict[str, dict[str, Any]] = {}
    why = None
    peak_seen = 0.0
    with tempfile.TemporaryDirectory(prefix="apollo-train-bench-") as tmp:
        cache = Path(tmp) / "models"
        models.ensure(models.find(args.base), cache)
        lengths = [args.warmup_length] * args.warmup + [args.length] * args.steps
        data = synthetic_export(Path(tmp) / "data.jsonl", lengths, args.trained)
        argv = [sys.executable, __file__, "--child", "--data", str(data), "--cache", str(cache)]
        argv += ["--out", str(Path(tmp) / "out"), "--threads", str(args.threads)]
        argv += ["--length", str(args.length), "--steps", str(args.steps), "--base", args.base]
        argv += ["--warmup", str(args.warmup)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak_seen = max(peak_seen, watched.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
            if peak_seen > args.rss_guard_mb:
                why = f"killed by the RSS guard at {args.rss_guard_mb:.0f} MB"
            elif time.monotonic() - started > args.budget_s:
                why = f"killed at the time budget ({args.budget_s:.0f} s)"
            if why:
                proc.kill()
                break
            time.sleep(0.2)
        proc.wait()
        reader.join(timeout=5)
        for line in lines:
            if line.startswith("{"):
                record = json.loads(line)
                phases[record.pop("phase")] = record
    ours, plain = phases.get("ours", {}), phases.get("plain", {})
    vs = (
        round(ours["tokens_per_s"] / plain["tokens_per_s"], 3)
        if "tokens_per_s" in ours and "tokens_per_s" in plain
        else None
    )
    report(
        "train_throughput",
        {
            "tokens_per_s": ours.get("tokens_per_s"),
            "peak_rss_mb": ours.get("process_peak_rss_mb"),
            "vs_trl": vs,
            "base": f"embedded:{args.base}",
            "sample_tokens": args.length,
            "plain_sample_tokens": args.length,
            "trained_fraction": args.trained,
            "data": "synthetic: random token ids below 49,000, labels trained in 4 spans",
            "settings": "LoRA r=16 on all linear layers, bf16 autocast, gradient checkpointing, "
            f"batch 1, no accumulation; {args.warmup} untimed warm-up step(s) of "
            f"{args.warmup_length} tokens, then {args.steps} timed step(s) per trainer",
            "threads": args.threads,
            "load_s": phases.get("load", {}).get("load_s"),
            "ours": ours,
            "plain_sft_trainer": plain,
            "stopped": why,
            "child_peak_rss_seen_mb": round(peak_seen, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "shared_machine": "2 cores shared with other agents' tests, evals and model servers",
            "wall_s": round(time.monotonic() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
