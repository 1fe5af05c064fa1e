"""Make one instance of slow-training: python3 generate.py SEED WORKSPACE TRUTH

The seed draws the data (features on different scales) and three candidate learning rates a
factor of ten apart, among those triples where the candidate with the lowest one-epoch
holdout loss (what trial.py shows) also has the lowest test loss after the full training
and every other candidate scores below 70; data without such a triple is redrawn (same
seed, next attempt)."""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from pathlib import Path

ROWS, TEST_ROWS, FEATURES = 700, 400, 6
GRID = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]


def score(test_loss: float, best: float) -> float:
    """The evaluator's score of a complete run (kept equal to evaluate.py's): 40, plus up to
    60 for the share of the best candidate's gain over untrained weights (log loss ln 2)."""
    return 40 + 60 * min(1.0, max(0.0, (math.log(2) - test_loss) / (math.log(2) - best)))


def clear(lrs: list[float], trial: dict[float, float], final: dict[float, float]) -> bool:
    """Whether the candidate with the lowest trial loss also ends best, well trained, and
    every other candidate scores below 70."""
    best = min(lrs, key=trial.__getitem__)
    if final[best] > min(final[lr] for lr in lrs) or final[best] > 0.5:
        return False
    return all(score(final[lr], final[best]) < 70 for lr in lrs if lr != best)


def rows(rng: random.Random, n: int, scales: list[float], true_w: list[float]) -> list[list]:
    out = []
    for _ in range(n):
        z = [rng.gauss(0, 1) for _ in range(FEATURES)]
        logit = sum(w * v for w, v in zip(true_w, z)) + rng.gauss(0, 0.7)
        out.append([round(v * s + s * 0.5, 4) for v, s in zip(z, scales)] + [int(logit > 0)])
    return out


def write(path: Path, data: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([f"f{i}" for i in range(FEATURES)] + ["label"])
        writer.writerows(data)


def main() -> None:
    seed, workspace, truth = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    sys.path.insert(0, str(workspace))
    (workspace / "data").mkdir()
    import model  # the workspace's own training code: what the agent runs is what is checked
    import train

    for attempt in range(100):
        rng = random.Random(f"slow-training/{seed}/{attempt}")
        scales = [10 ** rng.uniform(-0.5, rng.uniform(0.3, 1.5)) for _ in range(FEATURES)]
        true_w = [rng.uniform(-2, 2) for _ in range(FEATURES)]
        write(workspace / "data" / "train.csv", rows(rng, ROWS, scales, true_w))
        test = rows(rng, TEST_ROWS, scales, true_w)
        tx, ty = [r[:-1] for r in test], [r[-1] for r in test]
        hx, hy = model.holdout()
        # Each learning rate's one-epoch holdout loss (what trial.py prints) and its test loss
        # after the full run, computed when a triple of candidates needs it.
        trial: dict[float, float] = {}
        final: dict[float, float] = {}

        def measure(lr: float) -> None:
            if lr not in trial:
                first: list[tuple[list[float], float]] = []
                w, b = model.train(lr, train.EPOCHS, lambda n, w, b: first.append((w, b)))
                trial[lr], final[lr] = model.loss(*first[0], hx, hy), model.loss(w, b, tx, ty)

        triples = [GRID[i : i + 5 : 2] for i in range(len(GRID) - 4)]  # a factor of 10 apart
        rng.shuffle(triples)
        lrs = next((t for t in triples if all(measure(lr) is None for lr in t) and clear(t, trial, final)), None)
        if lrs is not None:
            break
    else:
        raise SystemExit(f"seed {seed}: no instance where one learning rate is clearly best")
    (workspace / "config.json").write_text(json.dumps({"candidates": lrs}) + "\n")
    best = min(lrs, key=trial.__getitem__)
    final = {lr: final[lr] for lr in lrs}
    write(truth / "test.csv", test)
    answer = {"lr": str(best), "test_loss": {str(lr): round(v, 6) for lr, v in final.items()}}
    (truth / "answer.json").write_text(json.dumps(answer, indent=1) + "\n")


if __name__ == "__main__":
    main()
