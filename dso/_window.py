"""Sliding windows of call outcomes, for the circuit breaker's rates.

Both windows keep running totals, so recording an outcome and reading the
totals cost the same however large the window is, and both hold a bounded
amount of memory: the count window one slot per call it covers, the time
window one bucket per second.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import attrs


@attrs.frozen
class WindowTotals:
    """What a window holds now.

    Attributes:
        calls: Outcomes recorded.
        failures: Of which failures.
        slow: Of which slower than the slow-call duration.
    """

    calls: int = 0
    failures: int = 0
    slow: int = 0


class OutcomeWindow(Protocol):
    """A sliding window of call outcomes."""

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome, observed at *now*."""
        ...

    def totals(self, now: float) -> WindowTotals:
        """Return the totals of the outcomes still in the window at *now*."""
        ...

    def clear(self) -> None:
        """Forget every outcome."""
        ...


class CountWindow:
    """The last *size* outcomes.

    Args:
        size: How many outcomes the window covers.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a window covers at least one call, not {size}")

        self._size = size
        self._outcomes: deque[tuple[bool, bool]] = deque()
        self._failures = 0
        self._slow = 0

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome; the oldest falls out once the window is full."""
        if len(self._outcomes) == self._size:
            old_failed, old_slow = self._outcomes.popleft()
            self._failures -= old_failed
            self._slow -= old_slow

        self._outcomes.append((failed, slow))
        self._failures += failed
        self._slow += slow

    def totals(self, now: float) -> WindowTotals:
        """Return the totals over the last *size* outcomes."""
        return WindowTotals(len(self._outcomes), self._failures, self._slow)

    def clear(self) -> None:
        """Forget every outcome."""
        self._outcomes.clear()
        self._failures = 0
        self._slow = 0


class TimeWindow:
    """The outcomes of the last *seconds* seconds, in one-second buckets.

    An outcome leaves the window when its whole second has gone by, so the
    window covers between ``seconds - 1`` and ``seconds`` seconds.

    Args:
        seconds: How far back the window reaches.
    """

    def __init__(self, seconds: float) -> None:
        if not seconds >= 1:
            raise ValueError(f"a time window covers at least 1 second, not {seconds}")

        self._span = math.ceil(seconds)
        # Each bucket is [second, calls, failures, slow].
        self._buckets: deque[list[int]] = deque()
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome to the bucket of *now*'s second."""
        self.record_many(1, int(failed), int(slow), now=now)

    def record_many(self, calls: int, failures: int, slow: int, *, now: float) -> None:
        """Add *calls* outcomes at once, *failures* and *slow* of them so."""
        second = math.floor(now)
        bucket = self._buckets[-1] if self._buckets else None
        if bucket is None or bucket[0] != second:
            # Nothing expires within a second: only a new one needs a look.
            self._expire(second)
            bucket = [second, 0, 0, 0]
            self._buckets.append(bucket)

        bucket[1] += calls
        bucket[2] += failures
        bucket[3] += slow
        self._calls += calls
        self._failures += failures
        self._slow += slow

    def record_passes(self, calls: int, now: float) -> None:
        """Add *calls* outcomes that neither failed nor were slow.

        What ``record_many(calls, 0, 0, now=now)`` does, in fewer steps
        while *now* is in the newest bucket's second: a cache hit records
        one on every call.
        """
        buckets = self._buckets
        if buckets and buckets[-1][0] == now // 1:
            buckets[-1][1] += calls
            self._calls += calls
        else:
            self.record_many(calls, 0, 0, now=now)

    def totals(self, now: float) -> WindowTotals:
        """Return the totals of the buckets still inside the window."""
        self._expire(math.floor(now))
        return WindowTotals(self._calls, self._failures, self._slow)

    def clear(self) -> None:
        """Forget every outcome."""
        self._buckets.clear()
        self._calls = self._failures = self._slow = 0

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._span:
            _, calls, failures, slow = self._buckets.popleft()
            self._calls -= calls
            self._failures -= failures
            self._slow -= slow
