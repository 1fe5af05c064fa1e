"""The training data: a `tokenized` export (apollo/export/formats/tokenized.py) and its data
card, read and checked before any model is loaded."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.export.card import card_figures, card_path

IGNORE = -100
EXPORT_HINT = "apollo export --format tokenized --tokenizer TOKENIZER --out FILE.jsonl"


class TrainError(ValueError):
    """A user mistake in `apollo train`: the message names the problem and the fix."""


@dataclass(frozen=True, slots=True)
class ExportData:
    """A checked tokenized export: where it is, what its card says, what it holds."""

    path: Path
    card: Path
    card_text: str
    card_sha256: str
    data_sha256: str
    figures: dict[str, Any]
    rows: int
    tokens: int
    tokens_trained: int
    longest: int
    truncated: int  # samples longer than --max-length (cut to it)
    first_ids: tuple[int, ...]

    @property
    def tokenizer(self) -> str:
        """What the card says tokenized it ("tokenizer NAME, chat template T")."""
        return str(self.figures.get("tokens_counted_by") or "an unnamed tokenizer")

    def card_json(self) -> dict[str, Any]:
        """The data's identity for train.json."""
        return {
            "path": str(self.path),
            "sha256": self.data_sha256,
            "card": str(self.card),
            "card_sha256": self.card_sha256,
            "rows": self.rows,
            "tokens": self.tokens,
            "tokens_trained": self.tokens_trained,
            "longest": self.longest,
            "truncated": self.truncated,
            "tokenized_by": self.tokenizer,
        }


def rows(path: Path) -> Iterator[dict[str, list[int]]]:
    """The export's rows, `input_ids` and `labels` only (the file is read as it goes)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                yield {"input_ids": row["input_ids"], "labels": row["labels"]}


def _row_error(path: Path, n: int, why: str) -> TrainError:
    return TrainError(
        f"{path} line {n}: {why}; it is not a tokenized export, write one with `{EXPORT_HINT}`"
    )


def _check_row(path: Path, n: int, line: str, max_length: int) -> tuple[int, int, int]:
    """(tokens, trained tokens, those within `max_length`) of one line, or a TrainError
    naming it."""
    try:
        row = json.loads(line)
    except ValueError:
        raise _row_error(path, n, "not JSON") from None
    if not isinstance(row, dict) or "input_ids" not in row or "labels" not in row:
        raise _row_error(path, n, "no input_ids and labels")
    ids, labels = row["input_ids"], row["labels"]
    if not (
        isinstance(ids, list)
        and isinstance(labels, list)
        and all(type(t) is int and t >= 0 for t in ids)
        and all(type(t) is int for t in labels)
    ):
        raise _row_error(path, n, "input_ids and labels must be lists of token ids")
    if len(ids) != len(labels):
        raise _row_error(path, n, f"{len(ids)} input_ids but {len(labels)} labels")
    if any(lb != IGNORE and lb != t for lb, t in zip(labels, ids, strict=True)):
        raise _row_error(path, n, "a label is neither -100 nor its token")
    within = sum(1 for lb in labels[1:max_length] if lb != IGNORE)
    return len(ids), within + sum(1 for lb in labels[max_length:] if lb != IGNORE), within


def read_export(path: Path, max_length: int) -> ExportData:
    """Read and check the export at `path` and its card beside it; samples are cut to
    `max_length` tokens in training, so only labels within it count as trained."""
    if not path.exists():
        raise TrainError(f"no export at {path}; write one with `{EXPORT_HINT}`")
    if not path.is_file():
        raise TrainError(f"{path} is not a file; --data takes the JSONL file an export wrote")
    card = card_path(path)
    try:
        card_bytes = card.read_bytes()
    except OSError:
        raise TrainError(
            f"no data card beside {path} ({card.name}); train on what `{EXPORT_HINT}` wrote"
        ) from None
    card_text = card_bytes.decode("utf-8", errors="replace")
    figures = card_figures(card_text)
    if figures is None:
        raise TrainError(f"{card} has no figures block; export again with `{EXPORT_HINT}`")
    if figures.get("format") != "tokenized":
        raise TrainError(
            f"{path} is a {figures.get('format')!r} export; training needs token ids and labels: "
            f"export again with `{EXPORT_HINT}`"
        )
    digest = hashlib.sha256()
    n_rows = tokens = trained = labelled = longest = truncated = 0
    first: tuple[int, ...] = ()
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            digest.update(raw)
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            size, kept, within = _check_row(path, n, line, max_length)
            if not first:
                first = tuple(json.loads(line)["input_ids"])
            n_rows += 1
            tokens += size
            labelled += kept
            trained += within
            longest = max(longest, size)
            truncated += size > max_length
    if n_rows == 0:
        raise TrainError(
            f"{path} is empty (no samples): export runs that have assistant turns to train, "
            f"with `{EXPORT_HINT}`"
        )
    if trained == 0 and labelled > 0:
        raise TrainError(
            f"every trained label in {path} lies beyond --max-length {max_length}; raise it "
            f"(the longest sample has {longest} tokens)"
        )
    if trained == 0:
        raise TrainError(
            f"every label in {path} is masked (-100), so there is nothing to train: export runs "
            "with kept assistant turns (see `apollo export --inspect` and the supervision policy)"
        )
    return ExportData(
        path=path.resolve(),
        card=card.resolve(),
        card_text=card_text,
        card_sha256=hashlib.sha256(card_bytes).hexdigest(),
        data_sha256=digest.hexdigest(),
        figures=figures,
        rows=n_rows,
        tokens=tokens,
        tokens_trained=trained,
        longest=longest,
        truncated=truncated,
        first_ids=first,
    )
