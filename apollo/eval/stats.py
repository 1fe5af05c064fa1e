"""The statistics of evaluation reports: pure functions of numbers, no I/O.

Confidence intervals are percentile bootstraps of a mean: `RESAMPLES` resamples with
replacement, drawn from a generator seeded with `SEED`, so a report made twice from the same
episodes gives the same intervals. Reports resample instances, not episodes (an instance's
repeats are not independent draws), and `paired_difference` resamples the instances two
evaluations share, keeping each instance's pair together.

A percentile bootstrap of a success rate collapses to a point when every instance agrees
(0 of 5 gives [0%, 0%]), so success rates also get `wilson`'s score interval, which says what
0 of n can still mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb, sqrt
from statistics import NormalDist

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0
_CHUNK = 1000  # resamples drawn at once (memory: chunk x n indices)


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap confidence interval, over `n` values."""

    value: float
    lo: float
    hi: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from n attempts of which c succeeded:
    1 - C(n-c, k) / C(n, k), the chance that k attempts drawn without replacement hold a
    success."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The success rate `successes / n` with its Wilson score interval."""
    if not 0 <= successes <= n or n < 1:
        raise ValueError(
            f"a Wilson interval needs 0 <= successes <= n and n >= 1; got {successes}/{n}"
        )
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    scale = 1 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return Interval(p, max(0.0, center - half), min(1.0, center + half), n)


def mean_ci(
    values: Sequence[float],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """The mean of `values` with its percentile-bootstrap confidence interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a confidence interval needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, data.size, size=(size, data.size))
        means[start : start + size] = data[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return Interval(float(data.mean()), float(lo), float(hi), int(data.size))


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """The mean of b - a over paired values (the same instances, in the same order), with
    its bootstrap interval: the pairs are resampled together."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in number ({len(a)} and {len(b)})")
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return mean_ci(diff.tolist(), resamples, confidence, seed)


def _seed_means(data: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Per seed (row of `data`), the mean over each resample's instances: (seeds, resamples)."""
    return data[:, picks].mean(axis=2)


def _nested(
    arms: Sequence[Sequence[Sequence[float]]], resamples: int, confidence: float, seed: int
) -> tuple[list[float], float, float]:
    """Two-level bootstrap of each arm's mean (arm: seeds x instances, the instances the same
    for every arm and seed): per resample, instances are drawn once for all arms (paired),
    each arm's seeds apart. The point estimates, and the interval of the last arm's mean
    minus the first's (or of the only arm's mean)."""
    data = [np.asarray(a, dtype=float) for a in arms]
    n = data[0].shape[1]
    if n == 0 or any(d.ndim != 2 or d.shape[1] != n or d.shape[0] == 0 for d in data):
        raise ValueError("give each arm as seeds x instances, the same instances for every arm")
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        means = []
        for d in data:
            per_seed = _seed_means(d, picks)  # (seeds, size)
            drawn = rng.integers(0, d.shape[0], size=(size, d.shape[0]))
            means.append(np.take_along_axis(per_seed.T, drawn, axis=1).mean(axis=1))
        out[start : start + size] = means[-1] - means[0] if len(means) > 1 else means[0]
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(out, [tail, 1 - tail])
    return [float(d.mean()) for d in data], float(lo), float(hi)


def nested_mean_ci(
    values: Sequence[Sequence[float]],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """The mean of `values[s][i]` (training seed s, instance i) with a two-level bootstrap
    interval: instances and seeds both resampled, so the spread between training seeds
    counts, not only the instances'."""
    (mean,), lo, hi = _nested([values], resamples, confidence, seed)
    return Interval(mean, lo, hi, len(values[0]))


def nested_paired_difference(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """mean(b) - mean(a), each seeds x the same instances, with its two-level bootstrap
    interval: instances resampled together (paired), each arm's seeds apart."""
    (ma, mb), lo, hi = _nested([a, b], resamples, confidence, seed)
    return Interval(mb - ma, lo, hi, len(a[0]))


def best_so_far(
    points: Sequence[tuple[float, float]], grid: Sequence[float], floor: float
) -> list[float]:
    """At each time of `grid`, the best score among `points` (time, score) reached by then;
    `floor` before the first."""
    ordered = sorted(points)
    out: list[float] = []
    best, i = floor, 0
    for t in sorted(grid):
        while i < len(ordered) and ordered[i][0] <= t:
            best = max(best, ordered[i][1])
            i += 1
        out.append(best)
    return out
