"""Small tokenized exports for the training tests, made with the export's own encoder
(apollo/export/formats/tokenized.py) and card (apollo/export/card.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apollo.export.card import CardStats, card_path, render_card
from apollo.export.formats.tokenized import Tokenized
from apollo.export.windows import Sample

# Short conversations: system, user, then assistant turns (trained) and tool results.
CONVERSATIONS = [
    [
        {"role": "system", "content": "You are a careful agent."},
        {"role": "user", "content": "Write the answer into answer.txt."},
        {"role": "assistant", "content": "I will write 42 into answer.txt and then finish."},
        {"role": "user", "content": "Done?"},
        {"role": "assistant", "content": "Yes: answer.txt holds 42."},
    ],
    [
        {"role": "system", "content": "You are a careful agent."},
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": "The folder holds notes.txt and answer.txt."},
    ],
]


def sample(messages: list[dict[str, Any]], index: int, weight: int = 1) -> Sample:
    """An export sample of `messages`: every assistant turn with `weight`."""
    weights: list[int | None] = [weight if m["role"] == "assistant" else None for m in messages]
    return Sample(
        run_id="run-test",
        task="test",
        kind="window",
        index=index,
        texts=[json.dumps(m) for m in messages],
        tools_text="[]",
        weights=weights,
        steps=[i if w is not None else None for i, w in enumerate(weights)],
    )


def write_rows(
    path: Path, rows: list[dict[str, Any]], fmt: str = "tokenized", source: str = "tokenizer test"
) -> Path:
    """`rows` as an export at `path`, with a card of format `fmt`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stats = CardStats(
        format=fmt,
        policy={"text": "test"},
        command="test",
        filters={},
        token_source=source,
        samples=len(rows),
    )
    card_path(path).write_text(render_card(path, stats), encoding="utf-8")
    return path


def write_export(path: Path, tokenizer: Any, samples: list[Sample] | None = None) -> Path:
    """A tokenized export of `samples` (default: CONVERSATIONS) at `path`, with its card."""
    encoder = Tokenized(tokenizer)
    chosen = samples or [sample(c, i) for i, c in enumerate(CONVERSATIONS)]
    return write_rows(path, [encoder.encode(s) for s in chosen], source=encoder.token_source)
