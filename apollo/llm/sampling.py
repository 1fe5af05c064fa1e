"""Sampling flags shared by every command that calls a model (`run`, `demo`, `supervise
--judge`): the same names and checks for an embedded model and an endpoint URL.

What is set goes into each request's body and replaces the model's own defaults (an embedded
model's are in its registry entry, apollo/llm/models.py); what is not set is not sent, so an
endpoint's server keeps its defaults for it.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

# request field -> (flag, type, help)
FLAGS: dict[str, tuple[str, type, str]] = {
    "temperature": ("--temperature", float, "sampling temperature, 0 or more (0: greedy)"),
    "top_p": ("--top-p", float, "nucleus sampling: keep tokens up to this probability mass"),
    "max_tokens": ("--max-tokens", int, "most tokens one reply may have"),
}


def add_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Add --temperature, --top-p and --max-tokens (each `--PREFIXname` when given a prefix,
    e.g. `judge-`)."""
    for field, (flag, kind, help_) in FLAGS.items():
        name = f"--{prefix}{flag[2:]}"
        parser.add_argument(
            name,
            dest=f"{prefix}{field}".replace("-", "_"),
            type=kind,
            metavar="N",
            help=f"{help_} (default: the model's)",
        )


def params(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The sampling fields set on the command line, checked; ValueError names the flag."""
    found: dict[str, Any] = {}
    for field, (flag, _, _) in FLAGS.items():
        value = getattr(args, f"{prefix}{field}".replace("-", "_"), None)
        if value is None:
            continue
        name = f"--{prefix}{flag[2:]}"
        found[field] = check(field, value, name)
    return found


def check(field: str, value: Any, name: str | None = None) -> Any:
    """`value` if it is a usable setting of `field`; ValueError naming it otherwise."""
    name = name or field
    if field == "max_tokens":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of 1 or more, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if field == "temperature" and value < 0:
        raise ValueError(f"{name} must be 0 or more, got {value}")
    if field == "top_p" and not 0 < value <= 1:
        raise ValueError(f"{name} must be above 0 and at most 1, got {value}")
    return value
