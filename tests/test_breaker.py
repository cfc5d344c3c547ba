"""The circuit breaker as a plain state machine, against a reference model."""

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import dso
from dso import BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_breaker(
    threshold: int = 3, reset_after: float = 10, trials: int = 1
) -> tuple[dso.CircuitBreaker, Clock, list[dso.BreakerTransition]]:
    clock = Clock()
    transitions: list[dso.BreakerTransition] = []
    breaker = dso.CircuitBreaker(
        "p",
        clock=clock,
        threshold=threshold,
        reset_after=reset_after,
        half_open_max_calls=trials,
        on_transition=transitions.append,
    )
    return breaker, clock, transitions


def fail(breaker: dso.CircuitBreaker) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record_failure(permit)


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
    permit = breaker.try_acquire()
    assert permit is not None
    breaker.record_success(permit)
    fail(breaker)

    assert BreakerState.CLOSED == breaker.state


def test_half_open_admits_only_the_trial_cap() -> None:
    """After the reset timeout, only half_open_max_calls trials run at once."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10, trials=2)
    fail(breaker)
    clock.now = 10

    permits = [breaker.try_acquire() for _ in range(5)]

    assert 2 == sum(permit is not None for permit in permits)
    assert BreakerState.HALF_OPEN == breaker.state


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
    breaker, _, _ = make_breaker(threshold=1)
    slow = breaker.try_acquire()
    assert slow is not None
    fail(breaker)

    breaker.record_success(slow)

    assert BreakerState.OPEN == breaker.state


def test_released_trial_permit_frees_its_place() -> None:
    """A cancelled trial gives its half-open place back."""
    breaker, clock, _ = make_breaker(threshold=1, reset_after=10, trials=1)
    fail(breaker)
    clock.now = 10
    trial = breaker.try_acquire()
    assert trial is not None

    breaker.release(trial)

    assert breaker.try_acquire() is not None


class BreakerMachine(RuleBasedStateMachine):
    """Random interleavings checked step by step against a small model."""

    THRESHOLD = 3
    RESET = 10.0
    TRIALS = 2

    def __init__(self) -> None:
        super().__init__()
        self.breaker, self.clock, _ = make_breaker(
            self.THRESHOLD, self.RESET, self.TRIALS
        )
        self.permits: list[tuple[dso.Permit, int]] = []
        # The model.
        self.state = BreakerState.CLOSED
        self.epoch = 0
        self.failures = 0
        self.opened_at = 0.0
        self.trials = 0
        self.trial_successes = 0

    def _model_advance(self) -> None:
        if (
            self.state is BreakerState.OPEN
            and self.clock.now >= self.opened_at + self.RESET
        ):
            self._model_move(BreakerState.HALF_OPEN)

    def _model_move(self, state: BreakerState) -> None:
        self.state = state
        self.epoch += 1
        self.trials = 0
        self.trial_successes = 0
        if state is BreakerState.CLOSED:
            self.failures = 0

    @rule()
    def acquire(self) -> None:
        self._model_advance()
        expected = self.state is BreakerState.CLOSED or (
            self.state is BreakerState.HALF_OPEN and self.trials < self.TRIALS
        )
        permit = self.breaker.try_acquire()
        assert expected == (permit is not None)
        if permit is not None:
            if self.state is BreakerState.HALF_OPEN:
                self.trials += 1
            self.permits.append((permit, self.epoch))

    def _settle(self, index: int) -> bool:
        _, epoch = self.permits[index]
        current = epoch == self.epoch
        if current and self.state is BreakerState.HALF_OPEN:
            self.trials -= 1
        return current

    @precondition(lambda self: self.permits)
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.permits) - 1))
        permit, _ = self.permits[index]
        if self._settle(index):
            self.failures = 0
            if self.state is BreakerState.HALF_OPEN:
                self.trial_successes += 1
                if self.trial_successes >= self.TRIALS:
                    self._model_move(BreakerState.CLOSED)
        self.breaker.record_success(permit)
        del self.permits[index]

    @precondition(lambda self: self.permits)
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.permits) - 1))
        permit, _ = self.permits[index]
        if self._settle(index):
            self.failures += 1
            if self.state is BreakerState.HALF_OPEN or self.failures >= self.THRESHOLD:
                self.opened_at = self.clock.now
                self._model_move(BreakerState.OPEN)
        self.breaker.record_failure(permit)
        del self.permits[index]

    @precondition(lambda self: self.permits)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.permits) - 1))
        permit, _ = self.permits[index]
        self._settle(index)
        self.breaker.release(permit)
        del self.permits[index]

    @rule(seconds=st.floats(0, 15))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @invariant()
    def same_state(self) -> None:
        self._model_advance()
        assert self.state == self.breaker.state
        assert self.trials == self.breaker.statistics().trials_in_flight


TestBreakerMachine = BreakerMachine.TestCase
