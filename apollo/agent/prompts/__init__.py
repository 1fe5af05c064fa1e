"""Prompt texts, kept as files next to this module."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_DIR = Path(__file__).parent


@cache
def prompt(name: str) -> str:
    """The text of prompts/<name>.txt, without its final newline."""
    return (_DIR / f"{name}.txt").read_text(encoding="utf-8").rstrip("\n")
