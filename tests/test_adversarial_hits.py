"""Bad input and badly timed cancellations against the cache-hit paths."""

from typing import Any

import trio
import trio.testing

import dso
from dso._clock import trio_wall_clock
from dso._config import BreakerSettings
from dso._guarded_cache import GuardedBackend
from dso._memory import MemoryCache
from dso._tiered import TieredCache
from dso.testing import FakeCacheBackend, FakeProvider


def config(**provider: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 3600}}},
            "providers": {"p": {"retries": {"enabled": False}, **provider}},
        }
    )


def guarded(backend: dso.CacheBackend, label: str, timeout: float) -> GuardedBackend:
    return GuardedBackend(
        backend, label=label, timeout=timeout, breaker=BreakerSettings()
    )


class GatedMemory(MemoryCache):
    """A memory backend read only by waiting, at a gate, as an L1 may be."""

    get_nowait = None  # type: ignore[assignment]

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.entered = trio.Event()
        self.gate = trio.Event()

    async def get(self, key: str) -> dso.CacheEntry | None:
        self.entered.set()
        await self.gate.wait()
        return MemoryCache.get_nowait(self, key)


async def test_a_caller_cancelled_on_a_memory_hit_counts_no_cache_hit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A caller cancelled at the hit's checkpoint leaves statistics() unchanged."""
    provider = FakeProvider("p", {"A": 1})

    with trio.fail_after(60):
        async with dso.open_orchestrator(config(), providers=[provider]) as orch:
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            before = orch.statistics()
            with trio.CancelScope() as scope:
                scope.cancel()
                await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            after = orch.statistics()

    assert (True, before.cache_hits) == (scope.cancelled_caught, after.cache_hits)


async def test_a_caller_cancelled_before_a_memory_miss_calls_no_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An already cancelled caller spends no provider call, quota or miss."""
    outcomes = set()
    # trio runs a batch of tasks in either order: try both many times.
    for _ in range(20):
        provider = FakeProvider("p", {"A": 1})
        with trio.fail_after(60):
            async with dso.open_orchestrator(
                config(quota="10/day"), providers=[provider]
            ) as orch:
                with trio.CancelScope() as scope:
                    scope.cancel()
                    await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
                await trio.testing.wait_all_tasks_blocked()
                stats = orch.statistics()

        outcomes.add((len(provider.calls), stats.quota_used["p"], stats.cache_misses))

    assert {(0, 0.0, 0)} == outcomes


async def test_a_generator_of_providers_does_not_poison_later_fetches(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Providers given as a generator are asked, and a later list still works."""
    provider = FakeProvider("p", {"A": 1, "B": 2})

    with trio.fail_after(60):
        async with dso.open_orchestrator(config(), providers=[provider]) as orch:
            first = await orch.fetch_with_fallback(
                "A", (name for name in ["p"]), namespace="quotes"
            )
            second = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")

    assert (1, 2) == (first.data, second.data)


async def test_closing_during_a_tiered_read_in_l1_ends_it_before_l2(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Closing while a read waits in L1 ends it at once: no L2 read is begun."""
    clock = trio_wall_clock()
    l1 = GatedMemory(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    l2.hanging = True
    cache = TieredCache(
        guarded(l1, "l1:memory", 1),
        guarded(l2, "l2:l2", 3600),
        clock=clock,
        l1_ttl=30,
    )
    provider = FakeProvider("p", {"A": 1})
    outcomes: list[tuple[type[BaseException], float]] = []

    async def fetch(orch: dso.Orchestrator) -> None:
        try:
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        except dso.OrchestratorClosed as exc:
            outcomes.append((type(exc), trio.current_time()))

    # Far inside L2's timeout: only closing can end the read in time.
    with trio.fail_after(60):
        async with trio.open_nursery() as outside:
            async with dso.open_orchestrator(
                config(), providers=[provider], cache=cache
            ) as orch:
                # The caller lives outside the orchestrator on purpose.
                outside.start_soon(fetch, orch)  # noqa: ASYNC111
                await l1.entered.wait()

            closed_at = trio.current_time()
            l1.gate.set()

    l2_reads = [call for call in l2.calls if call[0] == "get"]
    assert ([(dso.OrchestratorClosed, closed_at)], []) == (outcomes, l2_reads)


async def test_a_tiered_miss_reads_l1_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key missing from every tier is one L1 miss, not one per read path."""
    clock = trio_wall_clock()
    l1 = MemoryCache(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = TieredCache(
        guarded(l1, "l1:memory", 1), guarded(l2, "l2:l2", 5), clock=clock, l1_ttl=30
    )
    provider = FakeProvider("p", {"A": 1})

    with trio.fail_after(60):
        async with dso.open_orchestrator(
            config(), providers=[provider], cache=cache
        ) as orch:
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert 1 == l1.statistics().misses
