"""The circuit breaker as a plain state machine, against a reference model."""

import math
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import dso
from dso import BreakerState, ErrorCode
from dso._window import TimeWindow


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_breaker(
    **settings: Any,
) -> tuple[dso.CircuitBreaker, Clock, list[dso.BreakerTransition]]:
    clock = Clock()
    transitions: list[dso.BreakerTransition] = []
    breaker = dso.CircuitBreaker(
        "p",
        clock=clock,
        settings=dso.BreakerSettings(**settings),
        on_transition=transitions.append,
    )
    return breaker, clock, transitions


def fail(breaker: dso.CircuitBreaker, duration: float = 0.0) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record_failure(permit, duration)


def succeed(breaker: dso.CircuitBreaker, duration: float = 0.0) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record_success(permit, duration)


def test_threshold_failure_opens_the_breaker() -> None:
    """The third consecutive failure (threshold 3) opens the breaker."""
    breaker, _, transitions = make_breaker(threshold=3)

    fail(breaker)
    fail(breaker)
    before = breaker.state
    fail(breaker)

    assert (BreakerState.CLOSED, BreakerState.OPEN) == (before, breaker.state)
    assert [("closed", "open")] == [(t.old.value, t.new.value) for t in transitions]
    assert breaker.try_acquire() is None


def test_success_resets_the_consecutive_count() -> None:
    """A success in between means the count starts again."""
    breaker, _, _ = make_breaker(threshold=2)

    fail(breaker)
    succeed(breaker)
    fail(breaker)

    assert BreakerState.CLOSED == breaker.state


def test_failure_rate_opens_once_the_minimum_is_seen() -> None:
    """The rate model waits for min_calls, then opens at the failure rate."""
    breaker, _, _ = make_breaker(trip="rate", failure_rate=0.5, window=10, min_calls=4)

    for _ in range(3):
        fail(breaker)
    too_few = breaker.state
    succeed(breaker)
    at_half = breaker.state

    assert (BreakerState.CLOSED, BreakerState.OPEN) == (too_few, at_half)


def test_count_window_forgets_old_outcomes() -> None:
    """Failures that slid out of the last-N window no longer count."""
    breaker, _, _ = make_breaker(trip="rate", failure_rate=0.5, window=4, min_calls=4)

    fail(breaker)
    for _ in range(4):
        succeed(breaker)
    fail(breaker)
    statistics = breaker.statistics()

    assert (4, 1, 0.25) == (
        statistics.calls_in_window,
        statistics.failures_in_window,
        statistics.failure_rate,
    )
    assert BreakerState.CLOSED == statistics.state


def test_time_window_forgets_outcomes_older_than_its_span() -> None:
    """A time-based window only counts the last window_seconds seconds."""
    breaker, clock, _ = make_breaker(
        trip="rate", failure_rate=0.5, window_seconds=10, min_calls=2
    )

    fail(breaker)
    clock.now = 10.5
    succeed(breaker)
    succeed(breaker)
    statistics = breaker.statistics()

    assert (2, 0) == (statistics.calls_in_window, statistics.failures_in_window)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 4, allow_nan=False),
            st.integers(1, 5),
            st.integers(0, 2),
        ),
        max_size=40,
    )
)
def test_recording_passes_is_recording_calls_that_neither_failed_nor_were_slow(
    steps: list[tuple[float, int, int]],
) -> None:
    """record_passes leaves a time window as record_many with no failures does."""
    quick, plain = TimeWindow(10), TimeWindow(10)
    now = 0.0
    seen = []
    for step, calls, failures in steps:
        now += step
        quick.record_passes(calls, now)
        plain.record_many(calls, 0, 0, now=now)
        quick.record_many(failures, failures, 0, now=now)
        plain.record_many(failures, failures, 0, now=now)
        seen.append((plain.totals(now), quick.totals(now)))

    assert [expected for expected, _ in seen] == [actual for _, actual in seen]


def test_slow_calls_open_the_breaker() -> None:
    """Successes slower than slow_after count toward the slow-call rate."""
    breaker, _, transitions = make_breaker(
        slow_after=2, slow_rate=0.5, window=4, min_calls=4
    )

    succeed(breaker, duration=0.1)
    succeed(breaker, duration=0.1)
    succeed(breaker, duration=3)
    succeed(breaker, duration=5)

    assert BreakerState.OPEN == breaker.state
    assert "were slow" in transitions[-1].reason


def test_half_open_admits_only_the_trial_cap() -> None:
    """After the reset timeout, only half_open_max_calls trials run at once."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10, half_open_max_calls=2)
    fail(breaker)
    clock.now = 10

    permits = [breaker.try_acquire() for _ in range(5)]

    assert 2 == sum(permit is not None for permit in permits)
    assert 3 == breaker.statistics().short_circuited


def test_enough_trial_successes_close_the_breaker() -> None:
    """As many trial successes as the cap close the breaker."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10, half_open_max_calls=2)
    fail(breaker)
    clock.now = 10
    first, second = breaker.try_acquire(), breaker.try_acquire()
    assert first is not None
    assert second is not None

    breaker.record_success(first)
    halfway = breaker.state
    breaker.record_success(second)

    assert (BreakerState.HALF_OPEN, BreakerState.CLOSED) == (halfway, breaker.state)


def test_trial_failure_reopens_for_a_full_period() -> None:
    """A failed trial opens the breaker again for reset_after seconds."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10)
    fail(breaker)
    clock.now = 10
    fail(breaker)
    clock.now = 19.9
    still_open = breaker.state
    clock.now = 20

    assert (BreakerState.OPEN, BreakerState.HALF_OPEN) == (still_open, breaker.state)


def test_outcome_of_a_call_from_an_older_state_is_ignored() -> None:
    """A slow success that started before the breaker opened does not close it."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10)
    slow = breaker.try_acquire()
    assert slow is not None
    fail(breaker)
    clock.now = 10
    breaker.try_acquire()

    breaker.record_success(slow)

    assert BreakerState.HALF_OPEN == breaker.state


def test_late_failure_does_not_restart_the_open_period() -> None:
    """A failure from before the breaker opened leaves its timer alone."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10)
    late = breaker.try_acquire()
    assert late is not None
    fail(breaker)
    clock.now = 5

    breaker.record_failure(late)

    assert 10 == breaker.statistics().next_trial_at


@pytest.mark.parametrize("code", [ErrorCode.NOT_FOUND, ErrorCode.INVALID_RESPONSE])
def test_ignored_codes_count_as_nothing(code: ErrorCode) -> None:
    """By default NOT_FOUND and INVALID_RESPONSE neither fail nor succeed."""
    breaker, _, _ = make_breaker(threshold=2)
    fail(breaker)

    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record_error(permit, code)
    fail(breaker)

    assert BreakerState.OPEN == breaker.state


def test_ignored_trial_frees_its_place() -> None:
    """A trial ending in an ignored error lets the next trial through."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10)
    fail(breaker)
    clock.now = 10
    trial = breaker.try_acquire()
    assert trial is not None

    breaker.record_error(trial, ErrorCode.NOT_FOUND)

    assert breaker.try_acquire() is not None


def test_released_trial_permit_frees_its_place() -> None:
    """A cancelled trial gives its half-open place back."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10)
    fail(breaker)
    clock.now = 10
    trial = breaker.try_acquire()
    assert trial is not None

    breaker.release(trial)

    assert breaker.try_acquire() is not None


def test_manual_states_hold_until_reset() -> None:
    """force_open refuses everything, disable admits everything, reset closes."""
    breaker, _, _ = make_breaker(threshold=1)

    breaker.force_open()
    forced = [breaker.try_acquire() for _ in range(3)]
    breaker.disable()
    for _ in range(5):
        fail(breaker)
    disabled = breaker.state
    breaker.reset()

    assert [None, None, None] == forced
    assert BreakerState.DISABLED == disabled
    assert BreakerState.CLOSED == breaker.state


def test_short_circuits_are_not_failures() -> None:
    """Refused calls have their own counter and never enter the rates."""
    breaker, _, _ = make_breaker(threshold=1, slow_after=1, min_calls=1)
    fail(breaker)

    for _ in range(4):
        breaker.try_acquire()
    statistics = breaker.statistics()

    assert (4, 0) == (statistics.short_circuited, statistics.calls_in_window)


class BreakerModel:
    """An obviously-correct, slow breaker: it recomputes everything."""

    def __init__(self, settings: dso.BreakerSettings) -> None:
        self.settings = settings
        self.state = BreakerState.CLOSED
        self.epoch = 0
        self.consecutive = 0
        self.outcomes: list[tuple[float, bool, bool]] = []
        self.opened_at = -math.inf
        self.trials = 0
        self.trial_successes = 0
        self.short_circuited = 0

    def move(self, state: BreakerState, now: float) -> None:
        if state is BreakerState.OPEN:
            self.opened_at = now
        else:
            self.consecutive = 0
        self.state = state
        self.epoch += 1
        self.outcomes = []
        self.trials = 0
        self.trial_successes = 0

    def advance(self, now: float) -> None:
        due = self.opened_at + self.settings.reset_after
        if self.state is BreakerState.OPEN and now >= due:
            self.move(BreakerState.HALF_OPEN, now)

    def acquire(self, now: float) -> int | None:
        self.advance(now)
        if self.state in (BreakerState.CLOSED, BreakerState.DISABLED):
            return self.epoch
        if (
            self.state is BreakerState.HALF_OPEN
            and self.trials < self.settings.half_open_max_calls
        ):
            self.trials += 1
            return self.epoch
        self.short_circuited += 1
        return None

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.settings.window_seconds is not None:
            span = math.ceil(self.settings.window_seconds)
            return [
                o for o in self.outcomes if math.floor(o[0]) > math.floor(now) - span
            ]
        return self.outcomes[-self.settings.window :]

    def should_trip(self, now: float) -> bool:
        s = self.settings
        if s.trip == "consecutive" and self.consecutive >= s.threshold:
            return True
        window = self.window(now)
        calls = len(window)
        failures = sum(1 for _, failed, _ in window if failed)
        slow = sum(1 for _, _, was_slow in window if was_slow)
        if calls < s.min_calls:
            return False
        if s.trip == "rate" and failures >= s.failure_rate * calls:
            return True
        return s.slow_after is not None and slow >= s.slow_rate * calls

    def outcome(self, epoch: int, kind: str, duration: float, now: float) -> None:
        if epoch != self.epoch:
            return
        if self.state is BreakerState.HALF_OPEN:
            self.trials -= 1
        if self.state is BreakerState.DISABLED or kind == "ignored":
            return
        slow = self.settings.slow_after is not None and (
            duration >= self.settings.slow_after
        )
        failed = kind == "failure"
        self.consecutive = self.consecutive + 1 if failed else 0
        if self.state is BreakerState.HALF_OPEN:
            if failed or slow:
                self.move(BreakerState.OPEN, now)
                return
            self.trial_successes += 1
            if self.trial_successes >= self.settings.half_open_max_calls:
                self.move(BreakerState.CLOSED, now)
            return
        self.outcomes.append((now, failed, slow))
        if self.should_trip(now):
            self.move(BreakerState.OPEN, now)


SETTINGS = st.one_of(
    st.builds(
        dso.BreakerSettings,
        trip=st.just("consecutive"),
        threshold=st.integers(1, 4),
        reset_after=st.sampled_from([1.0, 5.0, 10.0]),
        half_open_max_calls=st.integers(1, 3),
        slow_after=st.sampled_from([None, 1.0]),
        slow_rate=st.sampled_from([0.5, 1.0]),
        min_calls=st.integers(1, 4),
        window=st.integers(1, 6),
    ),
    st.builds(
        dso.BreakerSettings,
        trip=st.just("rate"),
        failure_rate=st.sampled_from([0.25, 0.5, 1.0]),
        window=st.integers(1, 6),
        window_seconds=st.sampled_from([None, 1.0, 3.0, 4.5]),
        min_calls=st.integers(1, 4),
        slow_after=st.sampled_from([None, 1.0]),
        slow_rate=st.sampled_from([0.5, 1.0]),
        reset_after=st.sampled_from([1.0, 5.0, 10.0]),
        half_open_max_calls=st.integers(1, 3),
    ),
)


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings, checked step by step against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.permits: list[tuple[dso.Permit, int]] = []
        self.left_open_too_soon = False

    @initialize(settings=SETTINGS)
    def start(self, settings: dso.BreakerSettings) -> None:
        self.breaker = dso.CircuitBreaker(
            "p", clock=self.clock, settings=settings, on_transition=self.transition
        )
        self.model = BreakerModel(settings)

    def transition(self, transition: dso.BreakerTransition) -> None:
        # Only time moves an open breaker on; manual commands may at once.
        if transition.old is BreakerState.OPEN and (
            transition.new is BreakerState.HALF_OPEN
        ):
            open_for = transition.at - self.model.opened_at
            if open_for < self.model.settings.reset_after:
                self.left_open_too_soon = True

    @rule()
    def start_call(self) -> None:
        expected = self.model.acquire(self.clock.now)
        permit = self.breaker.try_acquire()
        assert (expected is None) == (permit is None)
        if permit is not None and expected is not None:
            self.permits.append((permit, expected))

    @precondition(lambda self: self.permits)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["success", "failure", "ignored", "cancelled"]),
        duration=st.sampled_from([0.0, 0.5, 2.0]),
    )
    def end_call(self, data: st.DataObject, kind: str, duration: float) -> None:
        index = data.draw(st.integers(0, len(self.permits) - 1))
        permit, epoch = self.permits.pop(index)
        now = self.clock.now
        if kind == "success":
            self.breaker.record_success(permit, duration)
        elif kind == "failure":
            self.breaker.record_error(permit, ErrorCode.TIMEOUT, duration)
        elif kind == "ignored":
            self.breaker.record_error(permit, ErrorCode.NOT_FOUND, duration)
        else:
            self.breaker.release(permit)
        model_kind = "ignored" if kind in ("ignored", "cancelled") else kind
        self.model.outcome(epoch, model_kind, duration, now)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0, 10.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(command=st.sampled_from(["reset", "force_open", "disable"]))
    def command(self, command: str) -> None:
        getattr(self.breaker, command)()
        states = {
            "reset": BreakerState.CLOSED,
            "force_open": BreakerState.FORCED_OPEN,
            "disable": BreakerState.DISABLED,
        }
        self.model.move(states[command], self.clock.now)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.advance(self.clock.now)
        statistics = self.breaker.statistics()
        window = self.model.window(self.clock.now)
        assert self.model.state == statistics.state
        assert self.model.trials == statistics.trials_in_flight
        assert self.model.consecutive == statistics.consecutive_failures
        assert self.model.short_circuited == statistics.short_circuited
        if self.breaker._window is not None:
            assert len(window) == statistics.calls_in_window
            assert sum(f for _, f, _ in window) == statistics.failures_in_window
            assert sum(s for _, _, s in window) == statistics.slow_in_window

    @invariant()
    def bounded_and_never_negative(self) -> None:
        if not hasattr(self, "model"):
            return
        statistics = self.breaker.statistics()
        limit = self.model.settings.half_open_max_calls
        assert 0 <= statistics.trials_in_flight <= limit
        assert statistics.consecutive_failures >= 0
        assert statistics.calls_in_window >= statistics.failures_in_window >= 0
        assert statistics.slow_in_window >= 0
        assert not self.left_open_too_soon


TestBreakerMachine = BreakerMachine.TestCase
