"""Wall-clock time that advances with trio's clock."""

from __future__ import annotations

import time
from collections.abc import Callable

import trio


def trio_wall_clock() -> Callable[[], float]:
    """Return a clock giving seconds since the epoch, measured with trio's clock.

    The wall clock is read once, when the clock is made; after that only
    trio's clock is. So a jump of the system clock changes nothing, and
    under trio's ``MockClock`` hours of cache lifetime pass in
    milliseconds. Stored times still mean roughly the same in every
    process, which is what a shared cache needs.

    Must be called inside a trio run.
    """
    # The run's clock, held directly, and a function rather than an object
    # with __call__: this is read on every cache hit, and both
    # trio.current_time()'s look-up of the run and __call__'s dispatch
    # would add a third to each read.
    trio_now = trio.lowlevel.current_clock().current_time
    offset = time.time() - trio_now()

    def now() -> float:
        return offset + trio_now()

    return now
