"""Retries: transient failures are tried again, with jitter, within the deadline."""

import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hypothesis.strategies as st
import pytest
import stamina
import trio
import trio.testing
from hypothesis import given

import dso
from dso._retry import _FullJitter, _TryFailed
from dso.testing import FakeBatchProvider, FakeProvider, Hang


UNAVAILABLE = dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "connection dropped")
TIMEOUT = dso.ProviderError(dso.ErrorCode.TIMEOUT, "no answer in time")


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, **settings: dict[str, Any]
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600}}},
            "providers": settings,
        }
    )
    with trio.fail_after(3600):
        async with dso.open_orchestrator(config, providers=providers) as orch:
            yield orch


def codes_and_retries(
    result: dso.FetchResult[Any],
) -> list[tuple[dso.ErrorCode | None, int]]:
    return [(attempt.code, attempt.retry) for attempt in result.attempts]


async def test_a_flaky_provider_is_retried_with_jittered_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Failing twice then answering: three calls, waits distinct and within bounds."""
    flaky = FakeProvider("flaky", {"A": 1})
    flaky.script("A", UNAVAILABLE, TIMEOUT)
    retries = {"wait_initial": 1, "wait_max": 10}

    async with orchestrator(flaky, flaky={"retries": retries}) as orch:
        result = await orch.fetch_with_fallback("A", ["flaky"], namespace="quotes")

    starts = [call.started_at for call in flaky.calls]
    waits = [later - earlier for earlier, later in itertools.pairwise(starts)]
    expected = [
        (dso.ErrorCode.UNAVAILABLE, 0),
        (dso.ErrorCode.TIMEOUT, 1),
        (None, 2),
    ]
    assert expected == codes_and_retries(result)
    assert 1 == result.data
    assert 0 <= waits[0] <= 1
    assert 0 <= waits[1] <= 2
    assert waits[0] != waits[1]


async def test_retries_end_when_the_attempts_are_used(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A provider that keeps failing is tried `attempts` times, then given up."""
    down = FakeProvider("down")
    down.fail_all()
    backup = FakeProvider("backup", {"A": 2})

    async with orchestrator(down, backup, down={"retries": {"attempts": 4}}) as orch:
        result = await orch.fetch_with_fallback(
            "A", ["down", "backup"], namespace="quotes"
        )

    expected = [(dso.ErrorCode.UNAVAILABLE, n) for n in range(4)] + [(None, 0)]
    assert expected == codes_and_retries(result)
    assert 3 == orch.stats().providers["down"].retries


async def test_retries_stop_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No retry starts whose wait would not end before the call's deadline."""
    down = FakeProvider("down")
    down.fail_all()
    settings = {
        "retries": {"attempts": 50, "wait_initial": 1, "wait_max": 4},
        "breaker": {"threshold": 100},
    }

    async with orchestrator(down, down=settings) as orch:
        result = await orch.fetch_with_fallback(
            "A", ["down"], namespace="quotes", timeout=10
        )
        ended = trio.current_time()

    assert ended < 10
    assert all(call.started_at < 10 for call in down.calls)
    assert 1 < len(down.calls) < 50
    assert {dso.ErrorCode.UNAVAILABLE} == {a.code for a in result.attempts}


@given(
    failures=st.integers(1, 40),
    now=st.floats(0, 1000),
    left=st.floats(0, 100),
)
def test_a_retry_wait_is_within_its_bounds_and_the_deadline(
    failures: int, now: float, left: float
) -> None:
    """Each wait is between 0 and the backoff ceiling, and ends before the deadline."""
    settings = dso.RetrySettings(wait_initial=0.5, wait_max=30)
    backoff = _FullJitter(
        settings, lambda: now, lambda: now + left, failures=failures - 1
    )

    wait = backoff(_TryFailed(dso.Attempt("p", dso.ErrorCode.TIMEOUT)))

    ceiling = min(30, 0.5 * 2 ** (failures - 1))
    assert wait is False or (0 <= wait <= ceiling and now + wait < now + left)


def test_other_exceptions_are_never_retried() -> None:
    """Only a transient try's failure can be retried, nothing else raised."""
    backoff = _FullJitter(dso.RetrySettings(), lambda: 0.0, lambda: math.inf)

    assert backoff(ValueError("bug")) is False


@pytest.mark.parametrize(
    "code",
    [
        dso.ErrorCode.AUTH,
        dso.ErrorCode.NOT_FOUND,
        dso.ErrorCode.INVALID_RESPONSE,
        dso.ErrorCode.RATE_LIMIT,
    ],
)
async def test_lasting_failures_are_not_retried(
    autojump_clock: trio.testing.MockClock, code: dso.ErrorCode
) -> None:
    """AUTH, NOT_FOUND, INVALID_RESPONSE and RATE_LIMIT get one call only."""
    provider = FakeProvider("p")
    provider.fail_all(dso.ProviderError(code, "no"))

    async with orchestrator(provider) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert 1 == len(provider.calls)


async def test_a_skip_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    """A retry that the rate limit refuses ends the retries; it is listed."""
    flaky = FakeProvider("flaky", {"A": 1})
    flaky.script("A", UNAVAILABLE)
    settings = {"rate_limit": "1/minute"}

    async with orchestrator(flaky, flaky=settings) as orch:
        result = await orch.fetch_with_fallback("A", ["flaky"], namespace="quotes")

    expected = [
        (dso.ErrorCode.UNAVAILABLE, 0),
        (dso.ErrorCode.RATE_LIMITED_LOCALLY, 1),
    ]
    assert expected == codes_and_retries(result)
    assert 1 == len(flaky.calls)


async def test_a_cancelled_caller_is_never_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller that gives up cancels the try; no retry follows."""
    hangs = FakeProvider("hangs")
    hangs.script("A", Hang())

    async with orchestrator(hangs, hangs={"timeout": 1000}) as orch:
        with trio.move_on_after(5):
            await orch.fetch_with_fallback("A", ["hangs"], namespace="quotes")
        await trio.sleep(2000)

    assert 1 == len(hangs.calls)


async def test_the_breaker_sees_every_try(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three failing tries count three failures: the breaker opens on them."""
    down = FakeProvider("down")
    down.fail_all()

    async with orchestrator(down, down={"breaker": {"threshold": 3}}) as orch:
        await orch.fetch_with_fallback("A", ["down"], namespace="quotes")
        state = orch.breaker("down").state

    assert dso.BreakerState.OPEN == state


async def test_retries_can_be_switched_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With retries disabled, a transient failure gets one call."""
    down = FakeProvider("down")
    down.fail_all()

    async with orchestrator(down, down={"retries": {"enabled": False}}) as orch:
        await orch.fetch_with_fallback("A", ["down"], namespace="quotes")

    assert 1 == len(down.calls)


async def test_stamina_testing_mode_removes_the_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under stamina.set_testing, retries happen at once, as many as it says."""
    down = FakeProvider("down")
    down.fail_all()
    retries = {"attempts": 5, "wait_initial": 10}

    with stamina.set_testing(True, attempts=2):
        async with orchestrator(down, down={"retries": retries}) as orch:
            await orch.fetch_with_fallback("A", ["down"], namespace="quotes")

    assert [0, 0] == [call.started_at for call in down.calls]


async def test_a_failed_batch_chunk_is_retried_as_one_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A chunk that fails transiently is sent again whole; each key lists both tries."""
    batch = FakeBatchProvider("batch", {"A": 1, "B": 2}, max_batch_size=5)
    batch.script("A", UNAVAILABLE)

    async with orchestrator(batch) as orch:
        result = await orch.batch_fetch(["A", "B"], "batch", namespace="quotes")

    expected = [(dso.ErrorCode.UNAVAILABLE, 0), (None, 1)]
    assert expected == codes_and_retries(result["B"])
    assert ({"A": 1, "B": 2}, 2) == (
        {key: item.data for key, item in result.items()},
        result.summary.provider_calls,
    )


async def test_tries_made_before_a_cancelled_backoff_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller leaving during a retry's wait leaves the tries made in stats."""
    down = FakeProvider("down")
    down.fail_all()
    retries = {"attempts": 5, "wait_initial": 100, "wait_max": 100}

    async with orchestrator(down, down={"retries": retries}) as orch:
        with trio.move_on_after(1):
            await orch.fetch_with_fallback("A", ["down"], namespace="quotes")
        stats = orch.stats().providers["down"]

    assert (1, 1, {"unavailable": 1}) == (
        len(down.calls),
        stats.attempts,
        dict(stats.failures),
    )
