"""Quotas: a provider's budget of calls per UTC day or month."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Literal

import attrs


_QUOTA = re.compile(r"\s*(\d+)\s*/\s*(day|month)s?\s*")

QUOTA_FORMAT = '"<calls>/day", "<calls>/month" or a whole number of calls per day'
"""How a quota is written, for error messages."""

Period = Literal["day", "month"]


@attrs.frozen
class QuotaLimit:
    """A budget of *calls* calls per UTC calendar day or month.

    Written in configuration as ``"500/day"`` or ``"10000/month"``, or as
    a whole number of calls per day.

    Attributes:
        calls: Calls allowed in each period.
        period: ``"day"`` or ``"month"``.
    """

    calls: int
    period: Period = "day"

    @classmethod
    def parse(cls, value: object) -> QuotaLimit:
        """Return the quota *value* stands for.

        Raises:
            ValueError: *value* is not written as `QUOTA_FORMAT` says, or
                allows no call at all.
        """
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return cls(value)

        if isinstance(value, str):
            match = _QUOTA.fullmatch(value.lower())
            if match and int(match[1]) > 0:
                period: Period = "day" if match[2] == "day" else "month"
                return cls(int(match[1]), period)

        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"expected {QUOTA_FORMAT}, got {shown}")

    def __str__(self) -> str:
        return f"{self.calls}/{self.period}"


# TODO: each orchestrator counts only its own calls; a quota that belongs
# to an API account shared by many processes needs its count in shared
# state (Redis, issue 5's backend), as design.md's "Beyond one machine" asks.
class Quota:
    """Counts a provider's calls against its budget for the current period.

    A period is a UTC calendar day (or month): the count starts again at
    00:00 UTC, which is when most providers reset theirs and what an
    operator reads as "today". Time comes from a wall clock that dso
    advances with trio's clock, so tests cross midnight on a MockClock.

    Args:
        limit: The budget.
        wall: Returns seconds since the epoch.
    """

    def __init__(self, limit: QuotaLimit, *, wall: Callable[[], float]) -> None:
        self.limit = limit
        self._wall = wall
        self._ends = self._end_of_period()
        self._used = 0

    @property
    def used(self) -> int:
        """Calls counted in the current period."""
        self._roll()
        return self._used

    @property
    def fraction(self) -> float:
        """The share of the budget used in the current period (0 to 1)."""
        return min(1.0, self.used / self.limit.calls)

    @property
    def spent(self) -> bool:
        """Whether the budget for the current period is used up."""
        return self.used >= self.limit.calls

    def spend(self) -> None:
        """Count one call."""
        self._roll()
        self._used += 1

    def _roll(self) -> None:
        if self._wall() >= self._ends:
            self._ends = self._end_of_period()
            self._used = 0

    def _end_of_period(self) -> float:
        # Kept as a timestamp, so that each check is one comparison.
        today = dt.datetime.fromtimestamp(self._wall(), dt.UTC).date()
        if self.limit.period == "day":
            ends = today + dt.timedelta(days=1)
        elif today.month == 12:
            ends = dt.date(today.year + 1, 1, 1)
        else:
            ends = dt.date(today.year, today.month + 1, 1)

        return dt.datetime.combine(ends, dt.time(), dt.UTC).timestamp()
