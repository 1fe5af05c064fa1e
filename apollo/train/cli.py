"""`apollo train`: supervised fine-tuning of an embedded model on a tokenized export.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from apollo.llm import models
from apollo.rollout.home import Home
from apollo.terminal import safe
from apollo.train.data import TrainError
from apollo.train.gguf import DEFAULT_QUANT, SETUP_COMMAND, quant_ftype
from apollo.train.options import ALL_LINEAR, DEFAULT_LR, TrainOptions

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]


def options_from(args: argparse.Namespace) -> TrainOptions:
    """The TrainOptions the flags give (the base named in full: `embedded` -> its name)."""
    return TrainOptions(
        data=Path(args.data),
        out=Path(args.out),
        base=models.canonical(args.base),
        top_layers=args.full_top_layers,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        lora_targets=args.lora_targets,
        lr=args.lr,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        warmup_steps=args.warmup_steps,
        save_steps=args.save_steps,
        seed=args.seed,
        precision=args.precision,
        gradient_checkpointing=not args.no_gradient_checkpointing,
        device=args.device,
        threads=args.threads,
    )


# What `scripts/setup.sh --dev` installs for training (the `train` extra).
TRAINING_STACK = ("torch", "transformers", "peft", "trl", "datasets")


def require_training_stack() -> None:
    """A TrainError naming the setup command when torch, transformers, ... are missing."""
    missing = [m for m in TRAINING_STACK if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainError(
            f"training needs the training stack, and {', '.join(missing)} is not "
            f"installed; run `{SETUP_COMMAND}`"
        )


def cmd_train(args: argparse.Namespace, home: Home) -> int:
    """Train, then say where the result is."""
    require_training_stack()
    from apollo.train.sft import train  # torch and transformers only for this command

    options = options_from(args)
    if args.merge:
        quant_ftype(args.quant)  # an unknown quantization is refused before hours of training
    command = "apollo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        result = train(
            options,
            models.cache_dir(home.path),
            resume=args.resume,
            force=args.force,
            command=command,
        )
    except KeyboardInterrupt:
        print(
            f"apollo: interrupted; continue from the last checkpoint with the same command and "
            f"--resume (checkpoints in {options.out / 'checkpoints'})",
            file=sys.stderr,
        )
        return 130
    r = result.record
    print(
        safe(
            f"trained {r['base']} ({r['method']}) for {r['steps']} steps on {r['tokens']:,} "
            f"tokens: {r['tokens_per_s']:.1f} tokens/s, final loss {r['final_loss']:.4f}, "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB; model card: {result.out / 'README.md'}"
        )
    )
    if args.merge:
        from apollo.llm.cli import merge_command

        return merge_command(result.out, args.quant, models.cache_dir(home.path))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `train` (`add` is apollo.cli's helper)."""
    p = add(
        "train",
        cmd_train,
        "fine-tune an embedded model on a tokenized export (LoRA, or the top N blocks)",
    )
    p.add_argument("--data", required=True, metavar="EXPORT", help="a `tokenized` export (JSONL)")
    p.add_argument(
        "--base",
        default=models.EMBEDDED,
        metavar="MODEL",
        help=f"'embedded' (the default, {models.DEFAULT.name}) or 'embedded:NAME' "
        "(see `apollo models`); its export must use its --tokenizer",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the result")
    p.add_argument("--resume", action="store_true", help="continue from DIR's last checkpoint")
    p.add_argument("--force", action="store_true", help="replace a finished training in DIR")
    p.add_argument(
        "--full-top-layers",
        type=int,
        default=0,
        metavar="N",
        help="fully fine-tune the top N blocks (the rest frozen) instead of LoRA",
    )
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default 16)")
    p.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default 32)")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (0.05)")
    p.add_argument(
        "--lora-targets",
        default=ALL_LINEAR,
        help="modules LoRA adapts, comma-separated (default: every linear layer of the blocks, "
        "q/k/v/o/gate/up/down)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help=f"learning rate (default {DEFAULT_LR['lora']:g} for LoRA, "
        f"{DEFAULT_LR['top_layers']:g} for top layers)",
    )
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the data (default 3)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps")
    p.add_argument("--batch-size", type=int, default=1, help="samples per forward (default 1)")
    p.add_argument(
        "--grad-accum", type=int, default=4, help="forwards per optimizer step (default 4)"
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=4096,
        help="tokens per sample; longer ones are cut (default 4096)",
    )
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--precision",
        choices=["bf16", "fp32"],
        default="bf16",
        help="bf16 autocast (default) or plain fp32",
    )
    p.add_argument(
        "--no-gradient-checkpointing",
        action="store_true",
        help="keep activations (faster, much more memory)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: a CUDA GPU when present, else the CPU",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (default: the cores the load average leaves idle, at least 1; on "
        "busy cores 2 threads ran 10x slower than 1)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="also write a merged, re-quantized GGUF into DIR (what `apollo models merge DIR` "
        "does; needed to serve --full-top-layers)",
    )
    p.add_argument(
        "--quant",
        default=DEFAULT_QUANT,
        help=f"--merge: llama.cpp quantization of the merged GGUF (default: {DEFAULT_QUANT})",
    )
