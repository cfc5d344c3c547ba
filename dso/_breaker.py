"""A circuit breaker: a plain state machine with an injected clock.

It knows nothing of trio tasks. A caller asks for a `Permit` before calling
the provider and reports the outcome with that permit afterwards, so the
breaker can judge each outcome against the state its call started in: a
slow call that began before the breaker opened cannot close it later, and
a late failure cannot restart an open period.

::

             trip model says so (failures in a row, or rates)
    CLOSED ───────────────────────────────────────────────▶ OPEN
      ▲                                                       │ reset_after
      │ half_open_max_calls trial successes                   ▼
      └─────────────────────────────────────────────── HALF_OPEN
                                  a failed or slow trial ──▶ OPEN

    reset() ─▶ CLOSED    force_open() ─▶ FORCED_OPEN    disable() ─▶ DISABLED

FORCED_OPEN refuses every call and DISABLED admits every call without
recording anything, both until `CircuitBreaker.reset`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import attrs

from ._config import BreakerSettings
from ._errors import ErrorCode
from ._window import CountWindow, OutcomeWindow, TimeWindow, WindowTotals


class BreakerState(enum.Enum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    """Calls go through; outcomes are counted."""

    OPEN = "open"
    """Calls are short-circuited until the reset timeout passes."""

    HALF_OPEN = "half_open"
    """A few trial calls go through to test whether the provider is back."""

    FORCED_OPEN = "forced_open"
    """Every call is short-circuited until the breaker is reset by hand."""

    DISABLED = "disabled"
    """Every call goes through and nothing is counted, until reset by hand."""


@attrs.frozen
class BreakerTransition:
    """A change of a breaker's state.

    Attributes:
        name: The breaker's name (its provider's).
        old: The state left.
        new: The state entered.
        reason: Why, in a few words.
        at: When, on the breaker's clock.
    """

    name: str
    old: BreakerState
    new: BreakerState
    reason: str
    at: float


@attrs.frozen
class BreakerStatistics:
    """A snapshot of a breaker.

    Attributes:
        state: The current state.
        consecutive_failures: Failures since the last success.
        calls_in_window: Outcomes in the sliding window (calls that ran).
        failures_in_window: Of which failures.
        slow_in_window: Of which slow.
        failure_rate: ``failures_in_window / calls_in_window``, or ``None``
            while the window is empty.
        slow_rate: ``slow_in_window / calls_in_window``, or ``None``.
        trials_in_flight: Trial calls running while half-open.
        short_circuited: Calls refused without reaching the provider.
        next_trial_at: When an open breaker admits trial calls (on the
            breaker's clock); ``None`` unless open.
    """

    state: BreakerState
    consecutive_failures: int
    calls_in_window: int
    failures_in_window: int
    slow_in_window: int
    failure_rate: float | None
    slow_rate: float | None
    trials_in_flight: int
    short_circuited: int
    next_trial_at: float | None


@attrs.frozen
class Permit:
    """Leave to make one call, tied to the breaker state it started in."""

    generation: int
    state: BreakerState


# Enum members are slow to look up on Python 3.11 (EnumType has a
# __getattr__); the hot paths compare with these module-level names.
_CLOSED, _OPEN, _HALF_OPEN, _FORCED_OPEN, _DISABLED = BreakerState


class CircuitBreaker:
    """Stops calling a provider that keeps failing, and tries again later.

    Args:
        name: What the breaker guards, for transitions and statistics.
        clock: Returns the current time in seconds (trio's clock in dso).
        settings: The trip model, thresholds and timeouts; see
            `BreakerSettings` for each and its default.
        on_transition: Called with every state change.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: Callable[[], float],
        settings: BreakerSettings | None = None,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        self.name = name
        self.settings = BreakerSettings() if settings is None else settings
        self._clock = clock
        self._on_transition = on_transition
        self._ignored = self.settings.ignored_codes
        self._window = _window_for(self.settings)

        self._state = _CLOSED
        self._generation = 0
        self._permit = Permit(0, _CLOSED)
        self._consecutive_failures = 0
        self._opened_at = -math.inf
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._short_circuited = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker turns half-open on time)."""
        if self._state is _OPEN:
            self._advance()

        return self._state

    def try_acquire(self) -> Permit | None:
        """Return a permit for one call, or ``None`` to short-circuit it."""
        state = self._state
        if state is _CLOSED or state is _DISABLED:
            return self._permit

        if state is _OPEN:
            self._advance()
            if self._state is _OPEN:
                self._short_circuited += 1
                return None

        half_open = self._state is _HALF_OPEN
        if half_open and self._trials_in_flight < self.settings.half_open_max_calls:
            self._trials_in_flight += 1
            return self._permit

        self._short_circuited += 1
        return None

    def record_success(self, permit: Permit, duration: float = 0.0) -> None:
        """Report that the call made under *permit* succeeded.

        Args:
            permit: What `try_acquire` returned for the call.
            duration: How long the call took, for the slow-call rules.
        """
        if permit is self._permit and self._state is _CLOSED and self._window is None:
            # Closed and counting failures in a row: a success only resets it.
            self._consecutive_failures = 0
            return

        if not self._settle(permit):
            return

        slow = self._is_slow(duration)
        self._consecutive_failures = 0
        if self._state is _HALF_OPEN:
            self._judge_trial(failed=slow)
        else:
            self._record(failed=False, slow=slow)

    def record_failure(self, permit: Permit, duration: float = 0.0) -> None:
        """Report that the call made under *permit* failed."""
        if not self._settle(permit):
            return

        self._consecutive_failures += 1
        if self._state is _HALF_OPEN:
            self._judge_trial(failed=True)
        else:
            self._record(failed=True, slow=self._is_slow(duration))

    def record_error(
        self, permit: Permit, code: ErrorCode, duration: float = 0.0
    ) -> None:
        """Report a failed call by its code; ignored codes count as nothing."""
        if code in self._ignored:
            self.release(permit)
        else:
            self.record_failure(permit, duration)

    def release(self, permit: Permit) -> None:
        """Give *permit* back without an outcome (cancelled, or ignored)."""
        self._settle(permit)

    def reset(self) -> None:
        """Close the breaker and forget every outcome, whatever its state."""
        self._move_to(_CLOSED, "reset by hand")

    def force_open(self) -> None:
        """Refuse every call until `reset`."""
        self._move_to(_FORCED_OPEN, "forced open by hand")

    def disable(self) -> None:
        """Admit every call and count nothing until `reset`."""
        self._move_to(_DISABLED, "disabled by hand")

    def statistics(self) -> BreakerStatistics:
        """Return a snapshot of the breaker's state and counters."""
        state = self.state
        totals = self._totals()
        next_trial_at = None
        if state is _OPEN:
            next_trial_at = self._opened_at + self.settings.reset_after

        return BreakerStatistics(
            state=state,
            consecutive_failures=self._consecutive_failures,
            calls_in_window=totals.calls,
            failures_in_window=totals.failures,
            slow_in_window=totals.slow,
            failure_rate=_share(totals.failures, totals.calls),
            slow_rate=_share(totals.slow, totals.calls),
            trials_in_flight=self._trials_in_flight,
            short_circuited=self._short_circuited,
            next_trial_at=next_trial_at,
        )

    def _settle(self, permit: Permit) -> bool:
        # An outcome counts only if the breaker is still in the state (and
        # the same period of it) that the call started in.
        if permit.generation != self._generation:
            return False

        if self._state is _HALF_OPEN:
            self._trials_in_flight -= 1

        return self._state is not _DISABLED

    def _is_slow(self, duration: float) -> bool:
        slow_after = self.settings.slow_after
        return slow_after is not None and duration >= slow_after

    def _record(self, *, failed: bool, slow: bool) -> None:
        if self._window is not None:
            self._window.record(failed=failed, slow=slow, now=self._clock())

        reason = self._trip_reason()
        if reason is not None:
            self._open(reason)

    def _trip_reason(self) -> str | None:
        settings = self.settings
        if (
            settings.trip == "consecutive"
            and self._consecutive_failures >= settings.threshold
        ):
            count = self._consecutive_failures
            return f"{count} failure{'s' if count > 1 else ''} in a row"

        totals = self._totals()
        if totals.calls < settings.min_calls:
            return None

        if settings.trip == "rate" and totals.failures >= (
            settings.failure_rate * totals.calls
        ):
            return f"{totals.failures} of the last {totals.calls} calls failed"

        if settings.slow_after is not None and totals.slow >= (
            settings.slow_rate * totals.calls
        ):
            return f"{totals.slow} of the last {totals.calls} calls were slow"

        return None

    def _judge_trial(self, *, failed: bool) -> None:
        if failed:
            self._open("a trial call failed or was slow")
            return

        self._trial_successes += 1
        if self._trial_successes >= self.settings.half_open_max_calls:
            self._move_to(_CLOSED, "trial calls succeeded")

    def _totals(self) -> WindowTotals:
        if self._window is None:
            return _NO_TOTALS

        return self._window.totals(self._clock())

    def _advance(self) -> None:
        if self._clock() >= self._opened_at + self.settings.reset_after:
            self._move_to(_HALF_OPEN, "reset timeout passed")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move_to(_OPEN, reason)

    def _move_to(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._permit = Permit(self._generation, new)
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new is not _OPEN:
            self._consecutive_failures = 0

        if self._window is not None:
            self._window.clear()

        if self._on_transition is not None:
            transition = BreakerTransition(self.name, old, new, reason, self._clock())
            self._on_transition(transition)


def _window_for(settings: BreakerSettings) -> OutcomeWindow | None:
    if settings.trip != "rate" and settings.slow_after is None:
        # Failures in a row need no window.
        return None

    if settings.window_seconds is not None:
        return TimeWindow(settings.window_seconds)

    return CountWindow(settings.window)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


_NO_TOTALS = WindowTotals()
