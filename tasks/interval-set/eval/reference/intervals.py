"""Reference solution: disjoint half-open intervals kept in two sorted lists (bisect)."""

import math
from bisect import bisect_left, bisect_right


def _check(start, end):
    """Validate a (start, end) pair: numbers, not NaN, start <= end."""
    for bound in (start, end):
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise TypeError(f"interval bounds must be int or float, not {type(bound).__name__}")
        if isinstance(bound, float) and math.isnan(bound):
            raise ValueError("interval bounds must not be NaN")
    if start > end:
        raise ValueError(f"start {start!r} is greater than end {end!r}")


def merge(intervals):
    """Merge an iterable of (start, end) pairs into a sorted list of disjoint tuples."""
    return IntervalSet(intervals).intervals()


class IntervalSet:
    """A mutable set of numbers made of disjoint half-open intervals."""

    def __init__(self, intervals=()):
        """Start with the union of the given (start, end) pairs."""
        self._starts = []
        self._ends = []
        for start, end in intervals:
            self.add(start, end)

    def add(self, start, end):
        """Add [start, end), merging with everything it overlaps or touches."""
        _check(start, end)
        if start == end:
            return
        lo = bisect_left(self._ends, start)  # first interval ending at or after start
        hi = bisect_right(self._starts, end)  # intervals starting at or before end
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, start, end):
        """Remove [start, end); this may split a stored interval in two."""
        _check(start, end)
        if start == end:
            return
        lo = bisect_right(self._ends, start)  # first interval ending after start
        hi = bisect_left(self._starts, end)  # intervals starting before end
        if lo >= hi:
            return
        keep_starts, keep_ends = [], []
        if self._starts[lo] < start:
            keep_starts.append(self._starts[lo])
            keep_ends.append(start)
        if self._ends[hi - 1] > end:
            keep_starts.append(end)
            keep_ends.append(self._ends[hi - 1])
        self._starts[lo:hi] = keep_starts
        self._ends[lo:hi] = keep_ends

    def _index(self, x):
        """Index of the interval containing x, or -1."""
        i = bisect_right(self._starts, x) - 1
        if i >= 0 and x < self._ends[i]:
            return i
        return -1

    def __contains__(self, x):
        """True if x lies in one of the intervals."""
        return self._index(x) >= 0

    def find(self, x):
        """The stored (start, end) tuple that contains x, or None."""
        i = self._index(x)
        return None if i < 0 else (self._starts[i], self._ends[i])

    def overlaps(self, start, end):
        """True if [start, end) shares at least one point with the set."""
        _check(start, end)
        if start == end:
            return False
        lo = bisect_right(self._ends, start)
        return lo < len(self._starts) and self._starts[lo] < end

    def covers(self, start, end):
        """True if every point of [start, end) is in the set."""
        _check(start, end)
        if start == end:
            return True
        i = self._index(start)
        return i >= 0 and self._ends[i] >= end

    def gaps(self, start, end):
        """The parts of [start, end) not in the set, as a sorted list of tuples."""
        _check(start, end)
        result = []
        cursor = start
        lo = bisect_right(self._ends, start)
        for i in range(lo, len(self._starts)):
            if self._starts[i] >= end:
                break
            if self._starts[i] > cursor:
                result.append((cursor, self._starts[i]))
            cursor = max(cursor, self._ends[i])
        if cursor < end:
            result.append((cursor, end))
        return result

    def intervals(self):
        """The stored intervals as a new sorted list of tuples."""
        return list(zip(self._starts, self._ends, strict=True))

    def total_length(self):
        """The sum of end - start over the stored intervals."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def __len__(self):
        """The number of stored intervals."""
        return len(self._starts)

    def __iter__(self):
        """Iterate over the stored intervals in order."""
        return iter(self.intervals())

    def __eq__(self, other):
        """Equal to another IntervalSet holding the same intervals."""
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    def copy(self):
        """An independent IntervalSet with the same intervals."""
        new = IntervalSet()
        new._starts = list(self._starts)
        new._ends = list(self._ends)
        return new

    def union(self, other):
        """A new IntervalSet: points in self or in other."""
        new = self.copy()
        for start, end in other:
            new.add(start, end)
        return new

    def intersection(self, other):
        """A new IntervalSet: points in both self and other."""
        return self.difference(self.difference(other))

    def difference(self, other):
        """A new IntervalSet: points in self but not in other."""
        new = self.copy()
        for start, end in other:
            new.remove(start, end)
        return new

    def __or__(self, other):
        """self | other."""
        return self.union(other)

    def __and__(self, other):
        """self & other."""
        return self.intersection(other)

    def __sub__(self, other):
        """self - other."""
        return self.difference(other)

    def __repr__(self):
        """The constructor call that rebuilds this set."""
        return f"IntervalSet({self.intervals()!r})"
