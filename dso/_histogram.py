"""A bounded latency histogram: constant memory, percentiles within 10 %."""

from __future__ import annotations

import math


_SMALLEST = 1e-4
"""Durations up to 0.1 ms share the first bucket."""

_GROWTH = 1.2
"""Each bucket's upper bound is this much above the one before: a
percentile read from the histogram is off by at most 20 % of the value,
half that on average."""

_BUCKETS = 98
"""Enough buckets to reach about an hour; longer durations share the last."""


class LatencyHistogram:
    """Counts durations in logarithmic buckets.

    It holds a fixed number of counters however many durations it sees, so
    a process that runs for months keeps it at the same size. Percentiles
    come from the buckets, not from the samples, and are reported as the
    upper bound of the bucket they fall in (or the largest duration seen,
    if that is lower): at or a little above the true value.
    """

    __slots__ = ("_counts", "count", "maximum", "total")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0.0
        self.maximum = 0.0

    def record(self, seconds: float) -> None:
        """Count one duration; negative ones count as zero."""
        seconds = max(0.0, seconds)
        self._counts[_bucket_of(seconds)] += 1
        self.count += 1
        self.total += seconds
        self.maximum = max(self.maximum, seconds)

    def percentile(self, fraction: float) -> float | None:
        """Return the duration below which *fraction* of them fall.

        Args:
            fraction: Between 0 and 1 (0.95 for p95).

        Returns:
            Seconds, or ``None`` when nothing has been recorded.

        Raises:
            ValueError: *fraction* is outside [0, 1].
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction}")

        if self.count == 0:
            return None

        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return min(_upper_bound(index), self.maximum)

        return self.maximum  # pragma: no cover - the loop always reaches rank

    def mean(self) -> float | None:
        """Return the mean duration, or ``None`` when nothing has been recorded."""
        return self.total / self.count if self.count else None


def _bucket_of(seconds: float) -> int:
    if seconds <= _SMALLEST:
        return 0

    index = math.ceil(math.log(seconds / _SMALLEST, _GROWTH))
    return min(index, _BUCKETS - 1)


def _upper_bound(index: int) -> float:
    if index == _BUCKETS - 1:
        return math.inf

    return float(_SMALLEST * _GROWTH**index)
