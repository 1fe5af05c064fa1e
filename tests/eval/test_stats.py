"""The statistics of evaluation reports, against values computed by hand."""

from __future__ import annotations

import pytest

from apollo.eval import stats
from apollo.eval.stats import best_so_far, mean_ci, paired_difference, pass_at_k, wilson


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the success rate
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer failures than draws: a success is certain
        (4, 0, 2, 0.0),
        (4, 4, 1, 1.0),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    ],
)
def test_pass_at_k_is_the_unbiased_estimator(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_bootstrap_interval_holds_the_mean_and_is_reproducible() -> None:
    values = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]
    ci = mean_ci(values)
    assert ci.value == pytest.approx(0.6) and ci.n == 10
    assert 0 <= ci.lo < 0.6 < ci.hi <= 1
    assert mean_ci(values) == ci  # fixed seed: the same report twice
    spread = [0.3, 1.7, 2.2, 5.1, 0.4, 3.3]
    assert mean_ci(spread, seed=1).lo != mean_ci(spread, seed=2).lo  # the seed is what fixes it


def test_bootstrap_interval_narrows_with_more_instances() -> None:
    few = mean_ci([0, 1] * 5)
    many = mean_ci([0, 1] * 250)
    assert few.value == many.value == 0.5
    assert (many.hi - many.lo) < (few.hi - few.lo) / 4  # about 1/sqrt(50) as wide


def test_bootstrap_of_constant_values_is_a_point() -> None:
    ci = mean_ci([7.5, 7.5, 7.5])
    assert (ci.value, ci.lo, ci.hi) == (7.5, 7.5, 7.5)
    single = mean_ci([3.0])
    assert (single.lo, single.hi) == (3.0, 3.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])


def test_paired_difference_keeps_pairs_together() -> None:
    a = [10.0, 50.0, 90.0, 30.0]
    # B is A plus 5 on every instance: the pairs differ by exactly 5, though A and B each
    # vary widely, so an unpaired interval would be wide and this one is a point.
    b = [x + 5 for x in a]
    d = paired_difference(a, b)
    assert (d.value, d.lo, d.hi, d.n) == (5.0, 5.0, 5.0, 4)
    mixed = paired_difference([0, 0, 1, 1], [1, 0, 1, 1])  # one instance gained
    assert mixed.value == pytest.approx(0.25) and mixed.lo == 0.0 and mixed.hi > 0.25
    same = paired_difference([1, 0, 1], [1, 0, 1])
    assert (same.value, same.lo, same.hi) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([1, 2], [1])


def test_best_so_far_is_a_running_maximum_from_the_floor() -> None:
    points = [(30.0, 40.0), (10.0, 20.0), (50.0, 35.0)]
    grid = [0.0, 10.0, 20.0, 30.0, 60.0]
    assert best_so_far(points, grid, floor=0.0) == [0.0, 20.0, 20.0, 40.0, 40.0]
    assert best_so_far([], grid, floor=-1.0) == [-1.0] * 5


@pytest.mark.parametrize(
    ("successes", "n", "lo", "hi"),
    # Hand-computed from the score interval's formula with z = 1.959964.
    [(0, 5, 0.0, 0.4345), (5, 5, 0.5655, 1.0), (50, 100, 0.4038, 0.5962), (1, 10, 0.0179, 0.4042)],
)
def test_wilson_interval_matches_hand_computed_bounds(
    successes: int, n: int, lo: float, hi: float
) -> None:
    interval = wilson(successes, n)
    assert interval.value == successes / n
    assert interval.lo == pytest.approx(lo, abs=1e-4)
    assert interval.hi == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_is_not_a_point_where_the_bootstrap_is() -> None:
    assert mean_ci([0.0] * 5).hi == 0.0
    assert wilson(0, 5).hi > 0.4
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson(6, 5)


def test_the_two_level_interval_counts_the_spread_between_training_seeds() -> None:
    # Two trainings that disagree on every instance: averaged per instance they look certain
    # (0.5 everywhere); resampling the trainings too shows the doubt.
    split = [[1.0] * 30, [0.0] * 30]
    flat = stats.mean_ci([0.5] * 30)
    assert flat.lo == flat.hi == 0.5
    nested = stats.nested_mean_ci(split)
    assert nested.value == 0.5 and nested.lo == 0.0 and nested.hi == 1.0
    # One training: the instance bootstrap alone, about as wide as the flat one.
    one = [[float(i % 3 == 0) for i in range(60)]]
    alone, plain = stats.nested_mean_ci(one), stats.mean_ci(one[0])
    assert alone.value == plain.value
    assert abs((alone.hi - alone.lo) - (plain.hi - plain.lo)) < 0.05


def test_the_two_level_paired_difference() -> None:
    a = [[float(i % 4 == 0) for i in range(40)]] * 3
    b = [[1.0 if i % 4 == 0 or i % 4 == 1 else 0.0 for i in range(40)]] * 3
    d = stats.nested_paired_difference(a, b)
    assert abs(d.value - 0.25) < 1e-12 and 0 < d.lo < 0.25 < d.hi
    same = stats.nested_paired_difference(a, a)
    assert same.value == same.lo == same.hi == 0.0
    with pytest.raises(ValueError, match="the same instances for every arm"):
        stats.nested_paired_difference(a, [[1.0] * 39])
