"""`apollo models`: the embedded models, installing one, and merging a trained one.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from apollo.llm import models
from apollo.rollout.home import Home

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]


def cmd_models(args: argparse.Namespace, home: Home) -> int:
    """List the embedded models, install one (`install NAME`), or merge a trained model
    directory into one GGUF (`merge DIR`)."""
    cache = models.cache_dir(home.path)
    if args.action == "merge":
        if not args.name:
            raise ValueError("models merge needs the DIR `apollo train --out` wrote")
        return merge_command(Path(args.name), args.quant, cache)
    if args.action == "install":
        if not args.name:
            raise ValueError(f"models install needs a NAME: one of {', '.join(models.MODELS)}")
        spec = models.find(args.name)
        path = models.install(spec, cache)
        print(f"{spec.name} installed and checked (sha256 {spec.sha256[:12]}…): {path}")
        return 0
    print(f"{'name':<20} {'size':>8}  {'status':<13} {'tok/s gen':>9} {'prompt':>7}  model")
    hows = []
    for spec in models.MODELS.values():
        speed = spec.speed
        gen = f"{speed.gen_tok_s:g}" if speed else "-"
        prompt = f"{speed.prompt_tok_s:g}" if speed else "-"
        mark = " (default)" if spec is models.DEFAULT else ""
        print(
            f"{spec.name:<20} {spec.size / 1e6:>5.0f} MB  {models.status(spec, cache):<13} "
            f"{gen:>9} {prompt:>7}  {spec.title}{mark}"
        )
        if speed and speed.how not in hows:
            hows.append(speed.how)
    for how in hows:
        print(f"speeds: {how}")
    print(
        "`--model embedded:NAME` picks one (`embedded` alone: the default); "
        "`apollo models install NAME` installs one"
    )
    return 0


def merge_command(trained: Path, quant: str, cache: Path) -> int:
    """`apollo models merge DIR` (and `apollo train --merge`): write DIR's merged GGUF and say
    what it cost; 0."""
    from apollo.train import gguf

    path = gguf.merge(trained, quant, cache=cache)
    record = gguf.read(trained).path / gguf.MERGED_RECORD
    seconds = json.loads(record.read_text(encoding="utf-8")).get("seconds", {})
    stages = ", ".join(f"{k} {v:g} s" for k, v in seconds.items())
    print(f"merged {path} ({path.stat().st_size / 1e6:.1f} MB; {stages})")
    print(f"`--model {gguf.model_ref(trained)}` serves it from now on")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `models` (`add` is apollo.cli's helper)."""
    p = add(
        "models",
        cmd_models,
        "list the embedded models (size, installed or not, speed measured here), or install one",
    )
    p.add_argument("action", nargs="?", choices=["list", "install", "merge"], default="list")
    p.add_argument(
        "name", nargs="?", help="the model to install (install), the trained DIR (merge)"
    )
    p.add_argument(
        "--quant",
        default="Q4_K_M",
        help="merge: llama.cpp quantization of the merged GGUF (default: Q4_K_M)",
    )
