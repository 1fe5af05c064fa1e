"""The power calculation the experiment's report states."""

from __future__ import annotations

import math
import random

import pytest

from apollo.experiment import power


def test_unpaired_sample_size_matches_the_textbook_formula() -> None:
    # 25% against 40%, alpha 0.05 two-sided, power 0.8: (1.96 sqrt(2 pq) + 0.8416
    # sqrt(p1 q1 + p2 q2))^2 / 0.15^2 with p = 0.325.
    by_hand = (1.959964 * math.sqrt(2 * 0.325 * 0.675) + 0.841621 * math.sqrt(0.4275)) ** 2
    assert power.n_unpaired(0.25, 0.40) == math.ceil(by_hand / 0.0225) == 152
    # Symmetric, and more power or a stricter level needs more.
    assert power.n_unpaired(0.40, 0.25) == 152
    assert power.n_unpaired(0.25, 0.40, power=0.9) > 152
    assert power.n_unpaired(0.25, 0.40, alpha=0.01) > 152


def test_paired_needs_fewer_when_few_pairs_disagree() -> None:
    assert power.n_paired(0.30, 0.15) == 103
    assert power.n_paired(0.20, 0.15) < power.n_paired(0.50, 0.15)
    with pytest.raises(ValueError, match="at least the difference"):
        power.n_paired(0.10, 0.15)


def test_detectable_difference_inverts_the_sample_size() -> None:
    for n in (20, 152, 600):
        d = power.detectable_unpaired(n, 0.25)
        assert power.n_unpaired(0.25, 0.25 + d) <= n < power.n_unpaired(0.25, 0.25 + d * 0.98)
    assert power.detectable_unpaired(2, 0.25) == 0.75  # nothing below everything succeeding


def test_simulated_trials_reach_the_stated_power() -> None:
    """The formula's n gives about 80% power in simulation (a normal-approximation z test)."""
    rng = random.Random(3)
    n = power.n_unpaired(0.25, 0.40)
    hits = 0
    trials = 2000
    for _ in range(trials):
        a = sum(rng.random() < 0.25 for _ in range(n))
        b = sum(rng.random() < 0.40 for _ in range(n))
        pooled = (a + b) / (2 * n)
        se = math.sqrt(2 * pooled * (1 - pooled) / n)
        hits += abs(b - a) / n / se > 1.959964
    assert 0.76 < hits / trials < 0.85


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: power.n_unpaired(0.3, 0.3), "two different success rates"),
        (lambda: power.n_unpaired(0.2, 0.4, alpha=1.5), "must both lie in"),
        (lambda: power.detectable_unpaired(0, 0.25), "n >= 1"),
    ],
)
def test_impossible_questions_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
