"""`apollo models`: the embedded models, and installing one.

`add_commands(sub, add)` registers it; `add` is the helper of `apollo.cli.build_parser`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from apollo.llm import models
from apollo.rollout.home import Home

Command = Callable[[argparse.Namespace, Home], int]
AddFn = Callable[[str, Command, str], argparse.ArgumentParser]


def cmd_models(args: argparse.Namespace, home: Home) -> int:
    """List the embedded models, or install one (`install NAME`)."""
    cache = models.cache_dir(home.path)
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


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], add: AddFn) -> None:
    """Register `models` (`add` is apollo.cli's helper)."""
    p = add(
        "models",
        cmd_models,
        "list the embedded models (size, installed or not, speed measured here), or install one",
    )
    p.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    p.add_argument("name", nargs="?", help="the model to install (install)")
