"""Regenerate this task's data deterministically (fixed seed; Python 3.11 stdlib only).

Writes workspace/data/train.csv (3,000 labelled rows) and eval/data/test.csv (2,000 hidden
rows). The ten features have very different scales on purpose: plain SGD is then sensitive
to the learning rate, which is the decision the task asks the agent to make.
"""

import math
import random
from pathlib import Path

SEED = 7311
HERE = Path(__file__).resolve().parent
SCALES = [1.0, 0.5, 4.0, 1.0, 12.0, 2.0, 0.2, 1.0, 6.0, 0.8]
TRUE_W = [1.2, -2.0, 0.3, 0.0, 0.12, -0.6, 4.0, 0.9, -0.2, 1.5]
TRUE_B = -0.3


def rows(rng, n):
    """n rows of (features..., label) drawn from a fixed logistic model."""
    out = []
    for _ in range(n):
        x = [rng.gauss(0.0, s) for s in SCALES]
        z = TRUE_B + sum(w * v for w, v in zip(TRUE_W, x))
        y = 1 if rng.random() < 1.0 / (1.0 + math.exp(-2.0 * z)) else 0
        out.append(x + [y])
    return out


def write(path, data):
    """Write rows as CSV with a header f0..f9,label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ",".join(f"f{i}" for i in range(len(SCALES))) + ",label\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for r in data:
            f.write(",".join(f"{v:.5f}" for v in r[:-1]) + f",{r[-1]}\n")


def main():
    rng = random.Random(SEED)
    write(HERE.parent / "workspace" / "data" / "train.csv", rows(rng, 3000))
    write(HERE / "data" / "test.csv", rows(rng, 2000))


if __name__ == "__main__":
    main()
