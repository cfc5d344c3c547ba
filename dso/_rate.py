"""Rate limits: how many calls a provider takes per unit of time."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import attrs


_ROUNDING = 1e-9

_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+?)s?\s*")

RATE_FORMAT = 'a number of calls per second or "<calls>/<second|minute|hour|day>"'
"""How a rate limit is written, for error messages."""


@attrs.frozen
class RateLimit:
    """At most *calls* calls every *per* seconds, in bursts of up to *calls*.

    Written in configuration as ``"5/minute"`` (also ``/second``,
    ``/hour``, ``/day``, singular or plural) or as a plain number of calls
    per second (``0.5`` is one call every two seconds).

    Attributes:
        calls: Calls allowed in each period; also the largest burst.
        per: The period, in seconds.
    """

    calls: float = attrs.field()
    per: float = 1.0

    @calls.validator
    def _check(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"calls must be a positive number, got {value!r}")

    @property
    def per_second(self) -> float:
        """Tokens added back each second."""
        return self.calls / self.per

    @property
    def burst(self) -> float:
        """The most calls allowed at once, after a quiet spell."""
        return max(1.0, self.calls)

    @classmethod
    def parse(cls, value: object) -> RateLimit:
        """Return the rate limit *value* stands for.

        Raises:
            ValueError: *value* is neither a positive number nor a string
                of the form ``"<calls>/<unit>"``.
        """
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value) and value > 0:
                return cls(float(value))
        elif isinstance(value, str):
            match = _RATE.fullmatch(value.lower())
            if match and match[2] in _UNITS and float(match[1]) > 0:
                return cls(float(match[1]), _UNITS[match[2]])

        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"expected {RATE_FORMAT}, got {shown}")

    def __str__(self) -> str:
        unit = {seconds: name for name, seconds in _UNITS.items()}.get(self.per)
        calls = f"{self.calls:g}"
        return f"{calls}/{unit}" if unit else f"{calls}/{self.per:g}s"


class TokenBucket:
    """A token bucket on an injected clock: one token per call.

    The bucket holds at most `RateLimit.burst` tokens and gains
    `RateLimit.per_second` tokens a second. So over any window of *t*
    seconds it never lets through more than ``burst + per_second * t``
    calls.

    Args:
        limit: The rate to keep to.
        clock: Returns the current time in seconds (trio's clock in dso).
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = limit.burst
        self._updated = clock()

    @property
    def tokens(self) -> float:
        """The tokens in the bucket now (fractions included)."""
        self._refill()
        return self._tokens

    def try_take(self) -> bool:
        """Take a token if there is one; return whether there was."""
        self._refill()
        # Refilling for exactly `wait_time` seconds may fall short of a
        # whole token by a rounding error; that must not refuse it.
        if self._tokens < 1 - _ROUNDING:
            return False

        self._tokens = max(0.0, self._tokens - 1)
        return True

    def wait_time(self) -> float:
        """Return the seconds until a token is there (0 if one is now)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.limit.per_second)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:
            gained = elapsed * self.limit.per_second
            self._tokens = min(self.limit.burst, self._tokens + gained)
            self._updated = now
