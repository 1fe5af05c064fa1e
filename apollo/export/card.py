"""The dataset card written next to every export: what went in, what is trained, what was
masked and why, under which policy, and the command that made it."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CardStats:
    """Counts gathered while exporting."""

    format: str
    policy: dict[str, Any]
    command: str
    filters: dict[str, Any]
    token_source: str = ""
    runs: list[str] = field(default_factory=list)
    samples: int = 0
    summary_samples: int = 0
    turns_trained: int = 0
    turns_masked: int = 0
    tokens_trained: int = 0
    tokens_masked: int = 0
    mask_reasons: Counter[str] = field(default_factory=Counter)
    guidance_turns: int = 0
    guidance_dropped: int = 0
    unlabelled_runs: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": self.command,
            "filters": self.filters,
            "policy": self.policy,
            "runs": len(self.runs),
            "run_ids": self.runs,
            "samples": self.samples,
            "summary_samples": self.summary_samples,
            "assistant_turns_trained": self.turns_trained,
            "assistant_turns_masked": self.turns_masked,
            "tokens_trained": self.tokens_trained,
            "tokens_masked": self.tokens_masked,
            "tokens_counted_by": self.token_source,
            "mask_reasons": dict(self.mask_reasons.most_common()),
            "guidance_turns_kept": self.guidance_turns,
            "guidance_turns_dropped": self.guidance_dropped,
            "runs_without_labels": self.unlabelled_runs,
            "notes": self.notes,
        }


def card_path(out: Path) -> Path:
    """Where the card of an export at `out` goes: beside it, `<name>.card.md`."""
    return out.with_name(out.stem + ".card.md")


def render_card(out: Path, stats: CardStats) -> str:
    """The card of an export at `out`: Markdown, with the figures also as a JSON block."""
    data = stats.to_json()
    lines = [
        f"# Dataset card: {out.name}",
        "",
        f"Made by `{stats.command}` on {data['created']}.",
        "",
        f"- format: {stats.format}",
        f"- runs: {len(stats.runs)}; samples: {stats.samples}"
        f" ({stats.summary_samples} of them summary calls)",
        f"- assistant turns trained: {stats.turns_trained}; masked (context only):"
        f" {stats.turns_masked}",
        f"- tokens trained: {stats.tokens_trained}; tokens in masked turns: {stats.tokens_masked}"
        f" ({stats.token_source})",
        f"- guidance turns kept as <real_user>: {stats.guidance_turns}; dropped:"
        f" {stats.guidance_dropped}",
        f"- policy: {stats.policy.get('text', stats.policy)}",
        f"- runs without any label: {stats.unlabelled_runs}"
        + (" (run `apollo supervise` on them to apply the rules)" if stats.unlabelled_runs else ""),
        "",
        "## Mask reasons (actions)",
        "",
    ]
    if stats.mask_reasons:
        lines += [f"- {key}: {n}" for key, n in stats.mask_reasons.most_common()]
    else:
        lines.append("- none")
    if stats.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in stats.notes]
    lines += ["", "## Figures", "", "```json", json.dumps(data, indent=2), "```", ""]
    return "\n".join(lines)


def card_figures(text: str) -> dict[str, Any] | None:
    """The JSON block of a data card (`render_card`), or None."""
    _, sep, rest = text.partition("```json\n")
    if not sep:
        return None
    try:
        figures = json.loads(rest.partition("```")[0])
    except ValueError:
        return None
    return figures if isinstance(figures, dict) else None
