"""Score output/clean.jsonl of a noise-filter instance: python3 evaluate.py WORKSPACE

score = 100 x (share of the noisy records removed) x (share of the clean records kept)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_KEPT = 0.5  # a subset smaller than this share of the training set is refused


def result(score: float, **details: object) -> None:
    print(json.dumps({"score": round(score, 1), "details": details}))


def main() -> None:
    workspace = Path(sys.argv[1])
    answer = json.loads(Path("truth/answer.json").read_text())
    data = json.loads(Path("truth/data.json").read_text())
    known = set(data["train_ids"])
    noisy = set(answer["noisy_ids"])
    out = workspace / "output" / "clean.jsonl"
    if not out.is_file():
        return result(0, error="output/clean.jsonl not found; run python3 filters.py NAME")
    kept: set[str] = set()
    for n, line in enumerate(out.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rid = json.loads(line)["id"]
        except (ValueError, KeyError, TypeError):
            return result(0, error=f"line {n} of output/clean.jsonl is not a record with an id")
        if rid not in known:
            return result(0, error=f"line {n}: id {rid!r} is not in data/train.jsonl")
        kept.add(rid)
    if len(kept) < MIN_KEPT * len(known):
        return result(0, kept=len(kept), error="keeps less than half of the training records")
    removed = len(noisy - kept) / len(noisy)
    clean = known - noisy
    retained = len(clean & kept) / len(clean)
    result(
        100 * removed * retained,
        kept=len(kept),
        noisy_removed=round(removed, 3),
        clean_kept=round(retained, 3),
    )


if __name__ == "__main__":
    main()
