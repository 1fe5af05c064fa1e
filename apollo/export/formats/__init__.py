"""Export formats: one module per trainer's dialect, each turning a Sample into one JSON line.

Every format keeps the masks exact: the trained messages (or tokens) are exactly the kept
assistant turns of act calls (plus the snapshot of a summary sample); everything else is
context. Each module's docstring names the fields its trainer reads (docs/design.md
"Supervision and export" lists them all).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from apollo.export.windows import Sample
from apollo.log.actions import CHARS_PER_TOKEN, parse_arguments

NAMES = ("openai", "trl", "tokenized", "sharegpt", "axolotl", "swift")


class Format(Protocol):
    """A sample encoder."""

    name: str
    # How the card's token counts were made ("estimated ..." or the tokenizer's name).
    token_source: str

    def encode(self, sample: Sample) -> dict[str, Any]:
        """One JSON-able record for the sample."""
        ...

    def encode_line(self, sample: Sample) -> tuple[str, dict[str, Any] | None]:
        """The sample's JSON line, and its record when one was built on the way."""
        ...

    def tokens(self, sample: Sample, record: dict[str, Any] | None) -> tuple[int, int]:
        """Tokens trained and tokens of masked assistant turns in the record."""
        ...


class Estimated(ABC):
    """Token counts estimated from characters, for formats that are not tokenized."""

    name = "estimated"
    token_source = f"estimated at {CHARS_PER_TOKEN} characters a token"

    @abstractmethod
    def encode(self, sample: Sample) -> dict[str, Any]:
        """The sample as this format's record."""

    def encode_line(self, sample: Sample) -> tuple[str, dict[str, Any] | None]:
        record = self.encode(sample)
        return json.dumps(record, ensure_ascii=False), record

    def tokens(self, sample: Sample, record: dict[str, Any] | None) -> tuple[int, int]:
        trained = masked = 0
        for text, w in zip(sample.texts, sample.weights, strict=True):
            if w is None:
                continue
            n = int(len(text) / CHARS_PER_TOKEN)
            if w:
                trained += n
            else:
                masked += n
        return trained, masked


def arguments_dict(text: str) -> Any:
    """Tool-call arguments as an object, for formats that want dicts. Arguments the model wrote
    that are not a JSON object stay the text it wrote (the tool got them so, and failed)."""
    args = parse_arguments(text)
    return args if args is not None else text


def with_dict_arguments(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of the message whose tool calls carry `arguments` as objects."""
    out = dict(message)
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                **tc,
                "function": {
                    **tc["function"],
                    "arguments": arguments_dict(tc["function"]["arguments"]),
                },
            }
            for tc in message["tool_calls"]
        ]
    return out


def marked_messages(
    sample: Sample, mark: Callable[[int | None], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The sample's messages with tool-call `arguments` as objects, each carrying the fields
    `mark` makes of its weight (0 or 1 on assistant messages, None on the others)."""
    return [
        {**with_dict_arguments(m), **mark(w)}
        for m, w in zip(sample.messages, sample.weights, strict=True)
    ]


def get_format(name: str, **options: Any) -> Format:
    """The encoder for a format name; `tokenized` takes `tokenizer` and `chat_template`."""
    from apollo.export.formats import axolotl, openai, sharegpt, swift, tokenized, trl

    if name == "tokenized":
        return tokenized.Tokenized(**options)
    simple: dict[str, type[Format]] = {
        "openai": openai.OpenAI,
        "trl": trl.TRL,
        "sharegpt": sharegpt.ShareGPT,
        "axolotl": axolotl.Axolotl,
        "swift": swift.Swift,
    }
    if name not in simple:
        raise ValueError(f"unknown export format {name!r}; use one of {', '.join(NAMES)}")
    return simple[name]()
