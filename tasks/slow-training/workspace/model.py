"""Logistic regression by plain SGD, shared by trial.py and train.py."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "train.csv"
HOLDOUT = 200  # the last rows of train.csv, held out to report progress


def load(path: Path) -> tuple[list[list[float]], list[int]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [k for k in rows[0] if k != "label"]
    return [[float(r[k]) for k in names] for r in rows], [int(r["label"]) for r in rows]


def candidates() -> list[float]:
    return [float(x) for x in json.loads((HERE / "config.json").read_text())["candidates"]]


def sigmoid(z: float) -> float:
    z = max(-30.0, min(30.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def epoch(w: list[float], b: float, xs: list[list[float]], ys: list[int], lr: float,
          rng: random.Random) -> tuple[list[float], float]:
    """One pass of SGD over the rows in a shuffled order."""
    order = list(range(len(xs)))
    rng.shuffle(order)
    for i in order:
        x = xs[i]
        g = sigmoid(sum(wj * xj for wj, xj in zip(w, x)) + b) - ys[i]
        w = [wj - lr * g * xj for wj, xj in zip(w, x)]
        b -= lr * g
    return w, b


def loss(w: list[float], b: float, xs: list[list[float]], ys: list[int]) -> float:
    total = 0.0
    for x, y in zip(xs, ys):
        p = min(1 - 1e-9, max(1e-9, sigmoid(sum(wj * xj for wj, xj in zip(w, x)) + b)))
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(xs)


def accuracy(w: list[float], b: float, xs: list[list[float]], ys: list[int]) -> float:
    right = sum((sum(wj * xj for wj, xj in zip(w, x)) + b > 0) == bool(y) for x, y in zip(xs, ys))
    return right / len(xs)


def holdout() -> tuple[list[list[float]], list[int]]:
    xs, ys = load(DATA)
    return xs[-HOLDOUT:], ys[-HOLDOUT:]


def train(lr: float, epochs: int, on_epoch=None) -> tuple[list[float], float]:
    """Train from zero weights with a fixed shuffling seed, so a learning rate always gives
    the same model; `on_epoch(n, w, b)` is called after each epoch."""
    xs, ys = load(DATA)
    tx, ty = xs[:-HOLDOUT], ys[:-HOLDOUT]
    rng, w, b = random.Random(0), [0.0] * len(xs[0]), 0.0
    for n in range(1, epochs + 1):
        w, b = epoch(w, b, tx, ty, lr, rng)
        if on_epoch:
            on_epoch(n, w, b)
    return w, b
