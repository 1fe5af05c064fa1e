"""Make one instance of noise-filter: python3 generate.py SEED WORKSPACE TRUTH

Three classes of 4-feature records; the training set gets one kind of noise, drawn from the
seed. The instance is redrawn (same seed, next attempt) until the filter that fixes its noise
scores at least 80 and has the clearly best dev accuracy, so measuring finds the answer."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

LABELS = ["alpha", "beta", "gamma"]
KINDS = {"label-swap": "knn-vote", "dup-conflict": "drop-repeats", "sensor-glitch": "clip-extremes"}
PER_CLASS, DEV_PER_CLASS, TEST_PER_CLASS = 80, 80, 100
MIN_GAP = 3.5  # distance between class centres, in standard deviations
MARGIN = 0.01  # the right filter's dev accuracy beats every other by at least this


def point(rng: random.Random, centre: list[float]) -> list[float]:
    return [round(rng.gauss(c, 1.0), 3) for c in centre]


def draw(rng: random.Random, kind: str) -> tuple[list[dict], set[int], list[dict], list[dict]]:
    """(train rows, indexes of the noisy ones, dev rows, test rows)."""
    while True:  # classes apart enough that their records rarely mingle
        centres = {label: [rng.uniform(-3.0, 3.0) for _ in range(4)] for label in LABELS}
        gaps = [math.dist(centres[a], centres[b]) for a in LABELS for b in LABELS if a < b]
        if min(gaps) >= MIN_GAP:
            break
    def rows(n: int) -> list[dict]:
        return [{"x": point(rng, centres[k]), "label": k} for k in LABELS for _ in range(n)]
    train, dev, test = rows(PER_CLASS), rows(DEV_PER_CLASS), rows(TEST_PER_CLASS)
    noisy: set[int] = set()
    source, target = rng.sample(LABELS, 2)
    if kind == "label-swap":
        own = [i for i, r in enumerate(train) if r["label"] == source]
        for i in rng.sample(own, int(len(own) * 0.3)):
            train[i]["label"] = target
            noisy.add(i)
    elif kind == "dup-conflict":
        own = [r for r in train if r["label"] == source]
        for original in rng.sample(own, 6):
            for _ in range(rng.randint(7, 10)):
                noisy.add(len(train))
                train.append({"x": list(original["x"]), "label": target})
    else:
        feature = rng.randrange(4)
        for _ in range(rng.randint(30, 40)):
            x = point(rng, centres[source])
            x[feature] = round(rng.gauss(60.0, 5.0) * rng.choice([-1, 1]), 3)
            noisy.add(len(train))
            train.append({"x": x, "label": source})
    return train, noisy, dev, test


def fixed_score(kept: list[dict], train: list[dict], noisy: set[int]) -> float:
    """The evaluator's score of a kept subset: noisy share removed x clean share kept."""
    kept_ids = {id(r) for r in kept}
    removed = sum(id(train[i]) not in kept_ids for i in noisy) / len(noisy)
    clean = [r for i, r in enumerate(train) if i not in noisy]
    return 100 * removed * sum(id(r) in kept_ids for r in clean) / len(clean)


def main() -> None:
    seed, workspace, truth = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    sys.path.insert(0, str(workspace))
    import filters  # the workspace's own filters: what the agent can run is what is checked

    kind = sorted(KINDS)[random.Random(f"noise-filter/kind/{seed}").randrange(len(KINDS))]
    for attempt in range(100):
        rng = random.Random(f"noise-filter/{seed}/{attempt}")
        train, noisy, dev, test = draw(rng, kind)
        dev_acc = {}
        for name, (fn, _) in filters.FILTERS.items():
            dev_acc[name] = filters.accuracy(fn(train), dev)
        best = KINDS[kind]
        clearly_best = all(dev_acc[best] >= a + MARGIN for n, a in dev_acc.items() if n != best)
        if clearly_best and fixed_score(filters.FILTERS[best][0](train), train, noisy) >= 80:
            break
    else:
        raise SystemExit(f"seed {seed}: no instance where measuring finds the filter")
    order = list(range(len(train)))
    rng.shuffle(order)
    ids = {i: f"r{n:04d}" for n, i in enumerate(order, 1)}
    (workspace / "data").mkdir()
    (workspace / "output").mkdir()  # so `... > output/clean.jsonl` does not fail on the folder
    lines = [json.dumps({"id": ids[i], **train[i]}) + "\n" for i in order]
    (workspace / "data" / "train.jsonl").write_text("".join(lines))
    rng.shuffle(dev)
    dev_lines = [json.dumps({"id": f"d{n:04d}", **r}) + "\n" for n, r in enumerate(dev, 1)]
    (workspace / "data" / "dev.jsonl").write_text("".join(dev_lines))
    answer = {"noise": kind, "filter": KINDS[kind], "noisy_ids": sorted(ids[i] for i in noisy)}
    (truth / "answer.json").write_text(json.dumps(answer, indent=1) + "\n")
    data = {"train_ids": sorted(ids.values()), "test": test}
    (truth / "data.json").write_text(json.dumps(data) + "\n")


if __name__ == "__main__":
    main()
