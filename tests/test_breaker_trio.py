"""Breakers under trio concurrency, through the orchestrator, on the autojump clock."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

import dso
from dso.testing import FakeProvider, Hang


@asynccontextmanager
async def orchestrator(
    provider: FakeProvider, **breaker: Any
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 0}}},
            "providers": {
                provider.name: {
                    "timeout": 5,
                    "max_concurrency": 1000,
                    "breaker": {"threshold": 1, "reset_after": 30, **breaker},
                }
            },
        }
    )
    async with dso.open_orchestrator(config, providers=[provider]) as orch:
        yield orch


async def open_then_wait(orch: dso.Orchestrator, provider: FakeProvider) -> None:
    """Trip the breaker with one failure and wait out its reset timeout."""
    provider.fail_all()
    await orch.fetch_with_fallback("TRIP", [provider.name], namespace="quotes")
    provider.recover()
    await trio.sleep(30)
    provider.calls.clear()


async def race(orch: dso.Orchestrator, name: str, count: int) -> list[Any]:
    """Start *count* fetches of different keys at once; return their results."""
    results: list[Any] = [None] * count

    async def fetch(index: int) -> None:
        results[index] = await orch.fetch_with_fallback(
            f"K{index}", [name], namespace="quotes"
        )

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(fetch, index)

    return results


async def test_racing_tasks_get_exactly_the_trial_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """100 tasks racing a half-open breaker make half_open_max_calls calls."""
    provider = FakeProvider("p", {f"K{i}": i for i in range(100)}, delay=1)

    async with orchestrator(provider, half_open_max_calls=3) as orch:
        await open_then_wait(orch, provider)
        results = await race(orch, "p", 100)
        state = orch.breaker("p").state

    codes = [result.attempts[0].code for result in results]
    assert 3 == len(provider.calls)
    assert (3, 97) == (codes.count(None), codes.count(dso.ErrorCode.CIRCUIT_OPEN))
    assert dso.BreakerState.CLOSED == state


async def test_a_cancelled_trial_frees_its_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A trial whose caller gives up leaves the breaker ready for the next one."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    provider.script("A", Hang())

    async with orchestrator(provider) as orch:
        await open_then_wait(orch, provider)
        with trio.move_on_after(1):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        await trio.testing.wait_all_tasks_blocked()
        half_open = orch.breaker("p").statistics()
        result = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")
        closed = orch.breaker("p").state

    assert (dso.BreakerState.HALF_OPEN, 0) == (
        half_open.state,
        half_open.trials_in_flight,
    )
    assert (2, dso.BreakerState.CLOSED) == (result.data, closed)


async def test_an_ignored_trial_frees_its_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A trial answered NOT_FOUND neither closes nor reopens; the next one runs."""
    provider = FakeProvider("p", {"B": 2})

    async with orchestrator(provider) as orch:
        await open_then_wait(orch, provider)
        unknown = await orch.fetch_with_fallback("NOPE", ["p"], namespace="quotes")
        state = orch.breaker("p").state
        known = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")

    assert dso.ErrorCode.NOT_FOUND == unknown.attempts[0].code
    assert dso.BreakerState.HALF_OPEN == state
    assert 2 == known.data


async def test_our_own_timeout_is_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An attempt cut off by the provider's timeout counts against it."""
    provider = FakeProvider("p")
    provider.script("A", Hang())

    async with orchestrator(provider) as orch:
        result = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        state = orch.breaker("p").state

    assert dso.ErrorCode.TIMEOUT == result.attempts[0].code
    assert dso.BreakerState.OPEN == state


async def test_a_callers_cancellation_is_not_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller that gives up says nothing about the provider."""
    provider = FakeProvider("p")
    provider.script("A", Hang())

    async with orchestrator(provider) as orch:
        with trio.move_on_after(1):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        await trio.testing.wait_all_tasks_blocked()
        statistics = orch.breaker("p").statistics()

    assert (dso.BreakerState.CLOSED, 0) == (
        statistics.state,
        statistics.consecutive_failures,
    )


async def test_manual_control_through_the_orchestrator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A forced-open breaker short-circuits until it is reset."""
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider) as orch:
        orch.breaker("p").force_open()
        refused = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        orch.breaker("p").reset()
        served = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert dso.ErrorCode.CIRCUIT_OPEN == refused.attempts[0].code
    assert 1 == served.data
    assert 1 == len(provider.calls)


async def test_slow_calls_trip_the_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Calls slower than slow_after open the breaker at the slow-call rate."""
    provider = FakeProvider("p", {f"K{i}": i for i in range(5)}, delay=3)

    async with orchestrator(
        provider, threshold=5, slow_after=2, slow_rate=0.5, min_calls=2
    ) as orch:
        for index in range(3):
            await orch.fetch_with_fallback(f"K{index}", ["p"], namespace="quotes")
        statistics = orch.breaker("p").statistics()

    assert dso.BreakerState.OPEN == statistics.state
    assert 2 == len(provider.calls)
