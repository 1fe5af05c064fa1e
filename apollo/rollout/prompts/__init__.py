"""Prompt text files of the LLM simulated annotator."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def prompt(name: str) -> str:
    """The text of prompts/NAME.txt."""
    return resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
