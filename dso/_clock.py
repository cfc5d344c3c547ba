"""Wall-clock time that advances with trio's clock."""

from __future__ import annotations

import time

import trio


class TrioWallClock:
    """Seconds since the epoch, measured with trio's clock.

    The wall clock is read once, when the object is made; after that only
    trio's clock is. So a jump of the system clock changes nothing, and
    under trio's ``MockClock`` hours of cache lifetime pass in
    milliseconds. Stored times still mean roughly the same in every
    process, which is what a shared cache needs.

    Must be created inside a trio run.
    """

    def __init__(self) -> None:
        # The run's clock, held directly: this is read on every cache hit,
        # and trio.current_time() looks the run up each time.
        self._trio_now = trio.lowlevel.current_clock().current_time
        self._offset = time.time() - self._trio_now()

    def __call__(self) -> float:
        return self._offset + self._trio_now()
