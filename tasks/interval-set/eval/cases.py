"""Hidden test cases for interval-set. Each case takes the agent's module and raises on failure.

CASES is a list of (name, weight, function). A case passes when its function returns
without raising within the per-case time limit.
"""

import random
import time


def eq(actual, expected):
    """Fail unless actual == expected."""
    if actual != expected:
        raise AssertionError(f"expected {expected!r}, got {actual!r}")


def raises(exc_type, fn, *args):
    """Fail unless fn(*args) raises exc_type."""
    try:
        fn(*args)
    except exc_type:
        return
    except Exception as exc:  # noqa: BLE001 - any other exception is a failure
        raise AssertionError(f"expected {exc_type.__name__}, got {type(exc).__name__}") from exc
    raise AssertionError(f"expected {exc_type.__name__}, nothing was raised")


# --- construction and merging -------------------------------------------------------------


def empty_set(m):
    s = m.IntervalSet()
    eq(s.intervals(), [])
    eq(len(s), 0)
    eq(s.total_length(), 0)
    eq(list(s), [])


def add_disjoint_sorted(m):
    s = m.IntervalSet()
    s.add(5, 7)
    s.add(1, 2)
    eq(s.intervals(), [(1, 2), (5, 7)])
    eq(len(s), 2)


def add_overlapping_merges(m):
    s = m.IntervalSet([(1, 4)])
    s.add(3, 6)
    eq(s.intervals(), [(1, 6)])


def add_touching_merges(m):
    s = m.IntervalSet([(1, 3)])
    s.add(3, 5)
    s.add(-2, 1)
    eq(s.intervals(), [(-2, 5)])


def add_bridges_many(m):
    s = m.IntervalSet([(0, 1), (2, 3), (4, 5), (6, 7), (10, 11)])
    s.add(0.5, 6.5)
    eq(s.intervals(), [(0, 7), (10, 11)])


def add_nested_is_noop(m):
    s = m.IntervalSet([(0, 10)])
    s.add(2, 3)
    s.add(0, 10)
    eq(s.intervals(), [(0, 10)])


def add_covering_swallows(m):
    s = m.IntervalSet([(2, 3), (5, 6)])
    s.add(0, 100)
    eq(s.intervals(), [(0, 100)])


def add_empty_ignored(m):
    s = m.IntervalSet([(1, 2)])
    s.add(5, 5)
    s.add(1.5, 1.5)
    eq(s.intervals(), [(1, 2)])


def constructor_unsorted(m):
    s = m.IntervalSet([(8, 9), (1, 3), (2, 5), (5, 6), (7, 7)])
    eq(s.intervals(), [(1, 6), (8, 9)])


def constructor_accepts_generator(m):
    s = m.IntervalSet((i, i + 1) for i in range(0, 10, 2))
    eq(len(s), 5)


def floats_and_negatives(m):
    s = m.IntervalSet([(-1.5, -0.5), (-0.5, 0.25)])
    eq(s.intervals(), [(-1.5, 0.25)])
    eq(s.total_length(), 1.75)


def bounds_keep_type(m):
    s = m.IntervalSet([(1, 3)])
    [(start, end)] = s.intervals()
    eq((type(start), type(end)), (int, int))


def merge_function(m):
    eq(m.merge([(5, 7), (1, 3), (2, 4), (7, 8), (9, 9)]), [(1, 4), (5, 8)])
    eq(m.merge([]), [])
    eq(m.merge([(3, 3)]), [])


def merge_returns_tuples(m):
    out = m.merge([[1, 2], [2, 3]])
    eq(out, [(1, 3)])
    eq(type(out[0]), tuple)


# --- removal ------------------------------------------------------------------------------


def remove_splits(m):
    s = m.IntervalSet([(0, 10)])
    s.remove(3, 5)
    eq(s.intervals(), [(0, 3), (5, 10)])


def remove_exact(m):
    s = m.IntervalSet([(0, 1), (2, 3)])
    s.remove(2, 3)
    eq(s.intervals(), [(0, 1)])


def remove_trims_edges(m):
    s = m.IntervalSet([(0, 5), (10, 15)])
    s.remove(3, 12)
    eq(s.intervals(), [(0, 3), (12, 15)])


def remove_across_many(m):
    s = m.IntervalSet([(0, 1), (2, 3), (4, 5), (6, 7)])
    s.remove(0.5, 6.5)
    eq(s.intervals(), [(0, 0.5), (6.5, 7)])


def remove_absent_is_noop(m):
    s = m.IntervalSet([(0, 1), (5, 6)])
    s.remove(2, 4)
    s.remove(1, 5)
    s.remove(-10, 0)
    s.remove(6, 9)
    eq(s.intervals(), [(0, 1), (5, 6)])


def remove_touching_keeps(m):
    s = m.IntervalSet([(0, 10)])
    s.remove(10, 12)
    s.remove(-3, 0)
    eq(s.intervals(), [(0, 10)])


def remove_everything(m):
    s = m.IntervalSet([(0, 1), (3, 4)])
    s.remove(-1, 5)
    eq(s.intervals(), [])
    eq(len(s), 0)


def remove_empty_is_noop(m):
    s = m.IntervalSet([(0, 10)])
    s.remove(4, 4)
    eq(s.intervals(), [(0, 10)])


# --- queries ------------------------------------------------------------------------------


def contains_half_open(m):
    s = m.IntervalSet([(1, 3)])
    eq((1 in s, 2.999 in s, 3 in s, 0.999 in s), (True, True, False, False))


def contains_between(m):
    s = m.IntervalSet([(0, 1), (2, 3)])
    eq([x in s for x in (-1, 0, 0.5, 1, 1.5, 2, 3, 4)],
       [False, True, True, False, False, True, False, False])


def find_interval(m):
    s = m.IntervalSet([(0, 1), (2, 5)])
    eq(s.find(3), (2, 5))
    eq(s.find(2), (2, 5))
    eq(s.find(5), None)
    eq(s.find(1.5), None)
    eq(m.IntervalSet().find(0), None)


def overlaps_cases(m):
    s = m.IntervalSet([(2, 4), (6, 8)])
    eq([s.overlaps(a, b) for a, b in [(0, 2), (0, 3), (4, 6), (3.5, 6.5), (8, 9), (1, 10)]],
       [False, True, False, True, False, True])


def overlaps_empty_query(m):
    s = m.IntervalSet([(0, 10)])
    eq(s.overlaps(5, 5), False)


def covers_cases(m):
    s = m.IntervalSet([(0, 4), (5, 8)])
    eq([s.covers(a, b) for a, b in [(0, 4), (1, 3), (3, 6), (4, 5), (5, 8), (7, 9), (2, 2)]],
       [True, True, False, False, True, False, True])


def covers_after_merge(m):
    s = m.IntervalSet([(0, 2), (2, 4)])
    eq(s.covers(1, 3), True)


def gaps_cases(m):
    s = m.IntervalSet([(2, 4), (6, 7)])
    eq(s.gaps(0, 10), [(0, 2), (4, 6), (7, 10)])
    eq(s.gaps(2, 4), [])
    eq(s.gaps(3, 6.5), [(4, 6)])
    eq(s.gaps(4, 6), [(4, 6)])
    eq(m.IntervalSet().gaps(1, 2), [(1, 2)])


def gaps_empty_range(m):
    eq(m.IntervalSet([(0, 1)]).gaps(5, 5), [])


def total_length_cases(m):
    s = m.IntervalSet([(0, 2), (1, 3), (10, 10.5)])
    eq(s.total_length(), 3.5)


def intervals_is_a_copy(m):
    s = m.IntervalSet([(0, 1)])
    out = s.intervals()
    out.append((5, 6))
    eq(s.intervals(), [(0, 1)])


def iteration_order(m):
    s = m.IntervalSet([(5, 6), (1, 2), (3, 4)])
    eq(list(s), [(1, 2), (3, 4), (5, 6)])
    eq([tuple(t) for t in s], [(1, 2), (3, 4), (5, 6)])


# --- equality, copies and set algebra -------------------------------------------------------


def equality(m):
    eq(m.IntervalSet([(0, 1), (1, 2)]) == m.IntervalSet([(0, 2)]), True)
    eq(m.IntervalSet([(0, 1)]) == m.IntervalSet([(0, 2)]), False)
    eq(m.IntervalSet([(0, 1)]) != m.IntervalSet([(0, 2)]), True)


def equality_other_types(m):
    eq(m.IntervalSet() == [], False)
    eq(m.IntervalSet([(0, 1)]) == [(0, 1)], False)
    eq(m.IntervalSet().__eq__(None), NotImplemented)


def copy_is_independent(m):
    a = m.IntervalSet([(0, 5)])
    b = a.copy()
    b.remove(1, 2)
    eq(a.intervals(), [(0, 5)])
    eq(b.intervals(), [(0, 1), (2, 5)])


def union_cases(m):
    a = m.IntervalSet([(0, 2), (5, 6)])
    b = m.IntervalSet([(1, 3), (6, 7), (9, 10)])
    eq(a.union(b).intervals(), [(0, 3), (5, 7), (9, 10)])
    eq((a | b).intervals(), [(0, 3), (5, 7), (9, 10)])


def intersection_cases(m):
    a = m.IntervalSet([(0, 5), (8, 12)])
    b = m.IntervalSet([(3, 9), (10, 11), (12, 13)])
    eq(a.intersection(b).intervals(), [(3, 5), (8, 9), (10, 11)])
    eq((a & b).intervals(), [(3, 5), (8, 9), (10, 11)])
    eq((a & m.IntervalSet()).intervals(), [])


def difference_cases(m):
    a = m.IntervalSet([(0, 10)])
    b = m.IntervalSet([(2, 3), (5, 7), (9, 20)])
    eq(a.difference(b).intervals(), [(0, 2), (3, 5), (7, 9)])
    eq((a - b).intervals(), [(0, 2), (3, 5), (7, 9)])
    eq((b - a).intervals(), [(10, 20)])


def algebra_does_not_mutate(m):
    a = m.IntervalSet([(0, 4)])
    b = m.IntervalSet([(2, 6)])
    _ = a | b, a & b, a - b, b - a
    eq((a.intervals(), b.intervals()), ([(0, 4)], [(2, 6)]))


def algebra_returns_intervalset(m):
    a = m.IntervalSet([(0, 4)])
    b = m.IntervalSet([(2, 6)])
    for result in (a | b, a & b, a - b):
        eq(isinstance(result, m.IntervalSet), True)
        eq(result is a or result is b, False)


def repr_round_trip(m):
    s = m.IntervalSet([(1, 4), (5, 8)])
    eq(repr(s), "IntervalSet([(1, 4), (5, 8)])")
    eq(repr(m.IntervalSet()), "IntervalSet([])")


# --- validation ---------------------------------------------------------------------------


def reversed_bounds_rejected(m):
    s = m.IntervalSet()
    raises(ValueError, s.add, 3, 1)
    raises(ValueError, s.remove, 3, 1)
    raises(ValueError, s.overlaps, 3, 1)
    raises(ValueError, s.covers, 3, 1)
    raises(ValueError, s.gaps, 3, 1)
    raises(ValueError, m.IntervalSet, [(2, 1)])
    raises(ValueError, m.merge, [(0, 1), (2, 1)])


def nan_rejected(m):
    s = m.IntervalSet()
    raises(ValueError, s.add, float("nan"), 1)
    raises(ValueError, s.add, 0, float("nan"))


def non_numbers_rejected(m):
    s = m.IntervalSet()
    raises(TypeError, s.add, "1", "2")
    raises(TypeError, s.add, None, 2)
    raises(TypeError, s.add, True, 2)
    raises(TypeError, s.add, 0, [1])


def failed_add_changes_nothing(m):
    s = m.IntervalSet([(0, 1)])
    raises(ValueError, s.add, 5, 2)
    eq(s.intervals(), [(0, 1)])


def infinite_bounds(m):
    inf = float("inf")
    s = m.IntervalSet([(0, inf)])
    s.add(-inf, -5)
    eq(s.intervals(), [(-inf, -5), (0, inf)])
    eq(10**9 in s, True)
    eq(s.gaps(-10, 10), [(-5, 0)])


# --- randomized comparison with a brute-force model ----------------------------------------


def random_ops(seed):
    """A case that applies random operations on a grid and checks every query."""

    def case(m):
        rng = random.Random(seed)
        s = m.IntervalSet()
        cells = set()  # unit cells [k/2, k/2 + 1/2) on a grid of halves
        for _ in range(250):
            a, b = sorted(rng.randrange(0, 80) for _ in range(2))
            start, end = a / 2, b / 2
            if rng.random() < 0.6:
                s.add(start, end)
                cells |= set(range(a, b))
            else:
                s.remove(start, end)
                cells -= set(range(a, b))
            expected = []
            for k in sorted(cells):
                if expected and expected[-1][1] == k:
                    expected[-1][1] = k + 1
                else:
                    expected.append([k, k + 1])
            eq(s.intervals(), [(x / 2, y / 2) for x, y in expected])
            eq(s.total_length(), len(cells) / 2)
            q = rng.randrange(0, 80)
            eq(q / 2 in s, q in cells)
            c, d = sorted(rng.randrange(0, 80) for _ in range(2))
            span = set(range(c, d))
            eq(s.overlaps(c / 2, d / 2), bool(span & cells))
            eq(s.covers(c / 2, d / 2), span <= cells)

    return case


def random_algebra(seed):
    """A case that checks union, intersection and difference against cell sets."""

    def case(m):
        rng = random.Random(seed)
        for _ in range(40):
            sets, cell_sets = [], []
            for _ in range(2):
                pairs = [sorted(rng.randrange(0, 60) for _ in range(2)) for _ in range(6)]
                sets.append(m.IntervalSet(pairs))
                cell_sets.append(set().union(*(range(a, b) for a, b in pairs)))
            a, b = sets
            ca, cb = cell_sets
            for result, cells in ((a | b, ca | cb), (a & b, ca & cb), (a - b, ca - cb)):
                covered = {k for k in range(60) if k in result}
                eq(covered, cells)

    return case


# --- speed --------------------------------------------------------------------------------


def many_adds_fast(m):
    rng = random.Random(7)
    s = m.IntervalSet()
    t0 = time.perf_counter()
    for _ in range(20_000):
        a = rng.randrange(0, 10**7)
        s.add(a, a + rng.randrange(1, 200))
    hits = sum(rng.randrange(0, 10**7) in s for _ in range(20_000))
    elapsed = time.perf_counter() - t0
    eq(len(s) > 15_000, True)
    eq(0 < hits < 20_000, True)
    if elapsed > 4.0:
        raise AssertionError(f"20,000 adds and queries took {elapsed:.1f} s (limit 4 s)")


def many_removes_fast(m):
    s = m.IntervalSet((i * 10, i * 10 + 5) for i in range(20_000))
    t0 = time.perf_counter()
    for i in range(0, 20_000, 2):
        s.remove(i * 10 + 1, i * 10 + 2)
    elapsed = time.perf_counter() - t0
    eq(len(s), 30_000)
    if elapsed > 4.0:
        raise AssertionError(f"10,000 removes took {elapsed:.1f} s (limit 4 s)")


CASES = [
    (fn.__name__, 1, fn)
    for fn in (
        empty_set, add_disjoint_sorted, add_overlapping_merges, add_touching_merges,
        add_bridges_many, add_nested_is_noop, add_covering_swallows, add_empty_ignored,
        constructor_unsorted, constructor_accepts_generator, floats_and_negatives,
        bounds_keep_type, merge_function, merge_returns_tuples,
        remove_splits, remove_exact, remove_trims_edges, remove_across_many,
        remove_absent_is_noop, remove_touching_keeps, remove_everything, remove_empty_is_noop,
        contains_half_open, contains_between, find_interval, overlaps_cases,
        overlaps_empty_query, covers_cases, covers_after_merge, gaps_cases, gaps_empty_range,
        total_length_cases, intervals_is_a_copy, iteration_order,
        equality, equality_other_types, copy_is_independent, union_cases, intersection_cases,
        difference_cases, algebra_does_not_mutate, algebra_returns_intervalset,
        repr_round_trip, reversed_bounds_rejected, nan_rejected, non_numbers_rejected,
        failed_add_changes_nothing, infinite_bounds,
    )
]
CASES += [(f"random_ops_{seed}", 3, random_ops(seed)) for seed in range(4)]
CASES += [(f"random_algebra_{seed}", 3, random_algebra(seed)) for seed in range(2)]
CASES += [("many_adds_fast", 4, many_adds_fast), ("many_removes_fast", 4, many_removes_fast)]
