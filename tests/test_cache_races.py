"""Cache reads, writes, deletes and closing that overtake one another."""

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio
import trio.testing

import dso
from dso._config import BreakerSettings
from dso._guarded_cache import GuardedBackend
from dso._memory import MemoryCache
from dso._tiered import TieredCache
from dso.testing import Delay, FakeCacheBackend, FakeProvider


@attrs.define
class FakeWallClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


class GatedBackend(FakeCacheBackend):
    """Reads or writes wait for their gate, once one is set."""

    read_gate: trio.Event | None = None
    write_gate: trio.Event | None = None

    async def get(self, key: str) -> dso.CacheEntry | None:
        found = await super().get(key)
        if self.read_gate is not None:
            await self.read_gate.wait()
        return found

    async def get_many(self, keys: Sequence[str]) -> dict[str, dso.CacheEntry]:
        found = await super().get_many(keys)
        if self.read_gate is not None:
            await self.read_gate.wait()
        return found

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        self.calls.append(("set_many", tuple(entries)))
        if self.write_gate is not None:
            await self.write_gate.wait()
        await self.entries.set_many(entries)


class WaitingWritesOnly(MemoryCache):
    """A memory backend that says it cannot write at once, for the guard."""

    def set_many_nowait(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        raise trio.WouldBlock

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        await trio.lowlevel.checkpoint()
        super().set_many_nowait(entries)


def guarded(backend: Any, label: str) -> GuardedBackend:
    return GuardedBackend(backend, label=label, timeout=5, breaker=BreakerSettings())


def tiered(
    clock: FakeWallClock, l1: Any, l2: Any, *, l1_ttl: float = 30
) -> TieredCache:
    return TieredCache(
        guarded(l1, "l1:l1"), guarded(l2, "l2:l2"), clock=clock, l1_ttl=l1_ttl
    )


def entry(clock: FakeWallClock, payload: bytes) -> dso.CacheEntry:
    return dso.CacheEntry(payload, clock.now, clock.now + 3600)


def config(**namespace: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {
                "quotes": {"ttl": {"fresh": 600, "stale": 600}, **namespace}
            },
        }
    )


async def test_an_l2_read_does_not_copy_over_a_write_made_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow L2 hit leaves L1 with the value written while it was out."""
    clock = FakeWallClock()
    l1 = MemoryCache(clock=clock, max_entries=10)
    l2 = GatedBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    await l2.entries.set("k", entry(clock, b"old"))
    l2.read_gate = trio.Event()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.get_after_nowait, "k")
            await trio.testing.wait_all_tasks_blocked()
            cache.set_many_nowait({"k": entry(clock, b"new")})
            l2.read_gate.set()

    held = l1.get_nowait("k")
    assert b"new" == (held.payload if held else None)


async def test_a_batch_read_from_l2_does_not_copy_over_a_delete_made_meanwhile(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow L2 batch read copies into L1 only the keys nobody deleted since."""
    clock = FakeWallClock()
    l1 = MemoryCache(clock=clock, max_entries=10)
    l2 = GatedBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    await l2.entries.set_many({"a": entry(clock, b"a"), "b": entry(clock, b"b")})
    l2.read_gate = trio.Event()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.get_many, ["a", "b"])
            await trio.testing.wait_all_tasks_blocked()
            await cache.delete("a")
            l2.read_gate.set()

    assert (None, b"b") == (
        l1.get_nowait("a"),
        getattr(l1.get_nowait("b"), "payload", None),
    )


async def test_a_delete_during_a_waiting_l1_copy_is_not_undone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With an L1 that writes by waiting, a copy overtaken by a delete goes."""
    clock = FakeWallClock()
    l1 = GatedBackend(clock, name="l1")
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    await l2.entries.set("k", entry(clock, b"old"))
    l1.write_gate = trio.Event()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.get, "k")
            await trio.testing.wait_all_tasks_blocked()
            assert ("set_many", ("k",)) == l1.calls[-1]
            await cache.delete("k")
            l1.write_gate.set()

    assert (None, None) == (await l1.entries.get("k"), await l2.entries.get("k"))


async def test_a_tier_refresh_is_not_reverted_by_a_slower_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A value fetched for a demanding tier stays in L1 past an older L2 read."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    l2 = GatedBackend(clock, name="l2")
    cache = tiered(clock, MemoryCache(clock=clock, max_entries=10), l2, l1_ttl=5)
    settings = config(ttl={"fresh": 600, "stale": 600, "tiers": {"fast": 10}})

    async with dso.open_orchestrator(
        settings, providers=[provider], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        with trio.fail_after(100):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.sleep(20)
            clock.now = orch._cache._clock()
            provider.data["A"] = 2
            gate = l2.read_gate = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        orch.fetch_with_fallback, "A", ["p"], namespace="quotes"
                    )
                )
                await trio.testing.wait_all_tasks_blocked()
                l2.read_gate = None
                await orch.fetch_with_fallback(
                    "A", ["p"], namespace="quotes", tier="fast"
                )
                gate.set()
            again = await orch.fetch_with_fallback(
                "A", ["p"], namespace="quotes", tier="fast"
            )

    assert (2, True, 2) == (again.data, again.cached, len(provider.calls))


async def test_an_invalidation_waits_for_the_write_under_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A write still on its way when invalidate runs cannot bring the value back."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    backend = GatedBackend(clock, name="slow")
    backend.write_gate = trio.Event()
    finished = []

    async def invalidate(orch: dso.Orchestrator) -> None:
        await orch.invalidate("quotes", "A")
        finished.append("invalidate")

    async with dso.open_orchestrator(
        config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(10):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(invalidate, orch)
                await trio.testing.wait_all_tasks_blocked()
                waited = not finished
                provider.data["A"] = 2
                backend.write_gate.set()
            after = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert (True, 2, False) == (waited, after.data, after.cached)


async def test_an_invalidation_waits_for_a_tiered_backends_l2_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The L2 half of a tiered write lands before the delete, not after."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    l2 = GatedBackend(clock, name="l2")
    l2.write_gate = trio.Event()
    cache = tiered(clock, MemoryCache(clock=clock, max_entries=10), l2)

    async with dso.open_orchestrator(
        config(), providers=[provider], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        key = orch._cache.key_for(orch._namespace("quotes"), "A")
        with trio.fail_after(10):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(orch.invalidate, "quotes", "A")
                await trio.testing.wait_all_tasks_blocked()
                l2.write_gate.set()

    assert None is await l2.entries.get(key)


async def test_a_backend_refusing_a_write_at_once_is_written_by_waiting() -> None:
    """trio.WouldBlock from set_many_nowait means 'wait', not a failure."""
    provider = FakeProvider("p", {"A": 1})
    backend = WaitingWritesOnly(clock=FakeWallClock(), max_entries=10)

    async with dso.open_orchestrator(
        config(), providers=[provider], cache=backend
    ) as orch:
        backend._clock = orch._cache._clock
        with trio.fail_after(10):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.testing.wait_all_tasks_blocked()
            again = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        errors = orch.statistics().cache_backends["memory"].errors

    assert (True, 1, 0) == (again.cached, len(provider.calls), errors)


async def test_closing_right_after_a_hedged_fetch_keeps_its_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The winner is in both tiers, though closing came as the loser unwound."""
    slow = FakeProvider("slow", {"A": 1})
    slow.script("A", Delay(100, 1))
    fast = FakeProvider("fast", {"A": 2})
    clock = FakeWallClock()
    l1 = MemoryCache(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)

    async with dso.open_orchestrator(
        config(hedge_after=1), providers=[slow, fast], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        key = orch._cache.key_for(orch._namespace("quotes"), "A")
        with trio.fail_after(10):
            first = await orch.fetch_with_fallback(
                "A", ["slow", "fast"], namespace="quotes"
            )

    stored = (l1.get_nowait(key), await l2.entries.get(key))
    assert (2, True, True) == (first.data, *(found is not None for found in stored))


class SlowToLeave:
    """A provider that never answers and takes 5 s to notice a cancellation."""

    name = "slow"

    async def fetch(self, key: str, ctx: dso.ProviderContext) -> object:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(5)


async def test_the_request_after_a_hedged_fetch_is_a_memory_hit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The winner is in memory before the callers wake, as for any fetch."""
    slow = SlowToLeave()
    fast = FakeProvider("fast", {"A": 2})

    async with dso.open_orchestrator(
        config(hedge_after=1), providers=[slow, fast]
    ) as orch:
        with trio.fail_after(10):
            await orch.fetch_with_fallback("A", ["slow", "fast"], namespace="quotes")
            again = await orch.fetch_with_fallback(
                "A", ["slow", "fast"], namespace="quotes"
            )

    assert (2, True) == (again.data, again.cached)


async def test_closing_during_a_batchs_store_keeps_every_tier_written(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch whose values arrived returns them, and both tiers hold them."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    clock = FakeWallClock()
    l1 = MemoryCache(clock=clock, max_entries=10)
    l2 = GatedBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    results: list[dso.BatchResult[Any]] = []

    async def batch(orch: dso.Orchestrator) -> None:
        results.append(await orch.batch_fetch(["A", "B"], "p", namespace="quotes"))

    async def open_gate_later(gate: trio.Event) -> None:
        await trio.sleep(1)
        gate.set()

    with trio.fail_after(10):
        async with (
            trio.open_nursery() as outside,
            dso.open_orchestrator(config(), providers=[provider], cache=cache) as orch,
        ):
            clock.now = orch._cache._clock()
            key = orch._cache.key_for(orch._namespace("quotes"), "A")
            l2.write_gate = gate = trio.Event()
            # The batch outlives the orchestrator on purpose: closing lands
            # while its store waits.
            outside.start_soon(batch, orch)  # noqa: ASYNC111
            await trio.testing.wait_all_tasks_blocked()
            outside.start_soon(open_gate_later, gate)

    stored = (l1.get_nowait(key), await l2.entries.get(key))
    assert (2, True, True) == (
        results[0].summary.successful,
        *(found is not None for found in stored),
    )
