"""A circuit breaker: a plain state machine with an injected clock.

It knows nothing of trio tasks. A caller asks for a `Permit` before calling
the provider and reports the outcome with that permit afterwards, so the
breaker can judge each outcome against the state its call started in: a
slow call that began before the breaker opened cannot close it later, and
a late failure cannot restart an open period.

::

            threshold consecutive failures
    CLOSED ─────────────────────────────────▶ OPEN
      ▲                                        │ reset_after seconds
      │ enough trial successes                 ▼
      └──────────────────────────────── HALF_OPEN ──▶ OPEN on a trial failure
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import attrs


class BreakerState(enum.Enum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""

    OPEN = "open"
    """Calls are short-circuited until the reset timeout passes."""

    HALF_OPEN = "half_open"
    """A few trial calls go through to test whether the provider is back."""


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
        trials_in_flight: Trial calls running while half-open.
        short_circuited: Calls refused without reaching the provider.
        next_trial_at: When an open breaker admits a trial call (on the
            breaker's clock); ``None`` unless open.
    """

    state: BreakerState
    consecutive_failures: int
    trials_in_flight: int
    short_circuited: int
    next_trial_at: float | None


@attrs.frozen
class Permit:
    """Leave to make one call, tied to the breaker state it started in."""

    generation: int
    state: BreakerState


class CircuitBreaker:
    """Stops calling a provider that keeps failing, and tries again later.

    Args:
        name: What the breaker guards, for transitions and statistics.
        clock: Returns the current time in seconds (trio's clock in dso).
        threshold: Consecutive failures that open the breaker; the call
            that reaches it is the last one let through.
        reset_after: Seconds the breaker stays open before trials.
        half_open_max_calls: Trial calls admitted at the same time while
            half-open; as many trial successes close the breaker.
        on_transition: Called with every state change.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: Callable[[], float],
        threshold: int = 5,
        reset_after: float = 30.0,
        half_open_max_calls: int = 1,
        on_transition: Callable[[BreakerTransition], None] | None = None,
    ) -> None:
        if threshold < 1 or half_open_max_calls < 1:
            raise ValueError("threshold and half_open_max_calls must be at least 1")

        if not reset_after > 0:
            raise ValueError("reset_after must be greater than 0")

        self.name = name
        self._clock = clock
        self._threshold = threshold
        self._reset_after = reset_after
        self._half_open_max_calls = half_open_max_calls
        self._on_transition = on_transition

        self._state = BreakerState.CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._opened_at = -math.inf
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._short_circuited = 0

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker turns half-open on time)."""
        self._advance()
        return self._state

    def try_acquire(self) -> Permit | None:
        """Return a permit for one call, or ``None`` to short-circuit it."""
        self._advance()
        if self._state is BreakerState.OPEN:
            self._short_circuited += 1
            return None

        if self._state is BreakerState.HALF_OPEN:
            if self._trials_in_flight >= self._half_open_max_calls:
                self._short_circuited += 1
                return None

            self._trials_in_flight += 1

        return Permit(self._generation, self._state)

    def record_success(self, permit: Permit) -> None:
        """Report that the call made under *permit* succeeded."""
        if not self._settle(permit):
            return

        self._consecutive_failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._trial_successes += 1
            if self._trial_successes >= self._half_open_max_calls:
                self._move_to(BreakerState.CLOSED, "trial calls succeeded")

    def record_failure(self, permit: Permit) -> None:
        """Report that the call made under *permit* failed."""
        if not self._settle(permit):
            return

        self._consecutive_failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open("a trial call failed")
        elif self._consecutive_failures >= self._threshold:
            self._open(f"{self._consecutive_failures} consecutive failures")

    def release(self, permit: Permit) -> None:
        """Give *permit* back without an outcome (the call was cancelled)."""
        self._settle(permit)

    def statistics(self) -> BreakerStatistics:
        """Return a snapshot of the breaker's state and counters."""
        state = self.state
        next_trial_at = None
        if state is BreakerState.OPEN:
            next_trial_at = self._opened_at + self._reset_after

        return BreakerStatistics(
            state=state,
            consecutive_failures=self._consecutive_failures,
            trials_in_flight=self._trials_in_flight,
            short_circuited=self._short_circuited,
            next_trial_at=next_trial_at,
        )

    def _settle(self, permit: Permit) -> bool:
        # An outcome counts only if the breaker is still in the state (and
        # the same period of it) that the call started in.
        if permit.generation != self._generation:
            return False

        if self._state is BreakerState.HALF_OPEN:
            self._trials_in_flight -= 1

        return True

    def _advance(self) -> None:
        if self._state is not BreakerState.OPEN:
            return

        if self._clock() >= self._opened_at + self._reset_after:
            self._move_to(BreakerState.HALF_OPEN, "reset timeout passed")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move_to(BreakerState.OPEN, reason)

    def _move_to(self, new: BreakerState, reason: str) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new is BreakerState.CLOSED:
            self._consecutive_failures = 0

        if self._on_transition is not None:
            transition = BreakerTransition(self.name, old, new, reason, self._clock())
            self._on_transition(transition)
