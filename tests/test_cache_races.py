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


class SlowWrites(FakeCacheBackend):
    """Every write takes `write_seconds`; records writes begun after `closed`."""

    write_seconds: float = 1.0
    closed: bool = False
    after_close: list[tuple[str, ...]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after_close = []

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        self.calls.append(("set_many", tuple(entries)))
        await trio.sleep(self.write_seconds)
        if self.closed:
            # What a closed Redis connection or SQLite file does.
            self.after_close.append(tuple(entries))
            raise ConnectionError("backend closed")
        await self.entries.set_many(entries)


async def test_a_tiered_l1_refusing_a_write_at_once_is_written_by_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A tiered L1 that says WouldBlock is written by waiting, and so is L2."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    l1 = WaitingWritesOnly(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)

    async with dso.open_orchestrator(
        config(), providers=[provider], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        key = orch._cache.key_for(orch._namespace("quotes"), "A")
        with trio.fail_after(10):
            first = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.sleep(1)
            again = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert (1, True, True) == (
        first.data,
        again.cached,
        await l2.entries.get(key) is not None,
    )


async def test_a_batch_through_a_tiered_l1_refusing_writes_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch through such an L1 returns its values."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    clock = FakeWallClock()
    l1 = WaitingWritesOnly(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)

    async with dso.open_orchestrator(
        config(), providers=[provider], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        with trio.fail_after(10):
            batch = await orch.batch_fetch(["A", "B"], "p", namespace="quotes")

    assert 2 == batch.summary.successful


async def test_an_l2_hit_through_a_tiered_l1_refusing_writes_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An L2 hit is served though L1 will not take its copy at once."""
    clock = FakeWallClock()
    l1 = WaitingWritesOnly(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    await l2.entries.set("k", entry(clock, b"v"))

    with trio.fail_after(10):
        found = await cache.get("k")

    assert b"v" == (found.payload if found else None)


async def test_an_invalidation_is_not_starved_by_overlapping_writes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An invalidation waits for the writes under way, not for later ones."""
    p = FakeProvider("p", {"A": 1})
    q = FakeProvider("q", {"A": 1})
    clock = FakeWallClock()
    backend = SlowWrites(clock, name="slow")
    backend.write_seconds = 1.5
    settings = config(ttl={"fresh": 600, "stale": 600, "tiers": {"fast": 0.1}})
    took: list[float] = []

    async with dso.open_orchestrator(settings, providers=[p, q], cache=backend) as orch:
        backend.entries._clock = orch._cache._clock

        async def traffic(route: str, offset: float) -> None:
            await trio.sleep(offset)
            end = trio.current_time() + 60
            while trio.current_time() < end:
                await orch.fetch_with_fallback(
                    "A", [route], namespace="quotes", tier="fast"
                )
                await trio.sleep(0.5)

        async def invalidate() -> None:
            await trio.sleep(0.5)
            started = trio.current_time()
            await orch.invalidate("quotes", "A")
            took.append(trio.current_time() - started)

        with trio.fail_after(200):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic, "p", 0)
                nursery.start_soon(traffic, "q", 1)
                nursery.start_soon(invalidate)

    # Two cache timeouts at most: the write under way, then the delete.
    assert [True] == [seconds <= 2 * 2.0 for seconds in took]


async def test_closing_waits_for_a_batchs_not_found_write_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Closing waits for every write of a batch's store, not just the first."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    backend = SlowWrites(clock, name="slow")
    results: list[dso.BatchResult[Any]] = []

    async def batch(orch: dso.Orchestrator) -> None:
        results.append(await orch.batch_fetch(["A", "Z"], "p", namespace="quotes"))

    with trio.fail_after(30):
        async with trio.open_nursery() as outside:
            async with dso.open_orchestrator(
                config(negative_ttl=60), providers=[provider], cache=backend
            ) as orch:
                backend.entries._clock = orch._cache._clock
                outside.start_soon(batch, orch)  # noqa: ASYNC111
                await trio.testing.wait_all_tasks_blocked()
                assert [
                    ("set_many", (orch._cache.key_for(orch._namespace("quotes"), "A"),))
                ] == [call for call in backend.calls if call[0] == "set_many"]
            # What closing a backend the orchestrator opened does.
            backend.closed = True

    assert [] == backend.after_close


class UncancellableWrites(FakeCacheBackend):
    """Writes finish even when cancelled, like SQLite's trio.to_thread call."""

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        self.calls.append(("set_many", tuple(entries)))
        with trio.CancelScope(shield=True):
            await trio.sleep(1)
            await self.entries.set_many(entries)


async def test_a_cancelled_l2_reader_leaves_no_overtaken_copy_in_l1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reader cancelled while its L1 copy is undone still undoes it."""
    clock = FakeWallClock()
    l1 = UncancellableWrites(clock, name="l1")
    l2 = FakeCacheBackend(clock, name="l2")
    cache = tiered(clock, l1, l2)
    await l2.entries.set("k", entry(clock, b"old"))

    async def reader(scope_out: list[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            scope_out.append(scope)
            await cache.get("k")

    with trio.fail_after(10):
        scopes: list[trio.CancelScope] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader, scopes)
            await trio.sleep(0.5)
            assert ("set_many", ("k",)) == l1.calls[-1]
            await cache.delete("k")
            scopes[0].cancel()

        left = (await l1.entries.get("k"), await l2.entries.get("k"))

    assert (None, None) == left


async def test_closing_during_a_batchs_fetch_keeps_what_arrived(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Closing while a batch waits for some keys keeps those that arrived."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    provider.script("B", Delay(100, 2))
    clock = FakeWallClock()
    backend = MemoryCache(clock=clock, max_entries=10)
    outcome: list[object] = []

    async def batch(orch: dso.Orchestrator) -> None:
        try:
            outcome.append(await orch.batch_fetch(["A", "B"], "p", namespace="quotes"))
        except dso.OrchestratorClosed as exc:
            outcome.append(exc)

    with trio.fail_after(30):
        async with (
            trio.open_nursery() as outside,
            dso.open_orchestrator(
                config(), providers=[provider], cache=backend
            ) as orch,
        ):
            backend._clock = orch._cache._clock
            key = orch._cache.key_for(orch._namespace("quotes"), "A")
            outside.start_soon(batch, orch)  # noqa: ASYNC111
            await trio.sleep(1)

    assert backend.get_nowait(key) is not None, outcome


async def test_an_invalidation_during_a_batchs_fallback_for_a_joined_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch's fallback for a key it joined does not cache over an invalidation."""
    p = FakeProvider("p", {})
    p.script("K", Delay(1, dso.ProviderError(dso.ErrorCode.NOT_FOUND, "no K")))
    q = FakeProvider("q", {"K": 2})
    q.script("K", Delay(2, 1))
    backend = MemoryCache(clock=FakeWallClock(), max_entries=10)

    async with dso.open_orchestrator(config(), providers=[p, q], cache=backend) as orch:
        backend._clock = orch._cache._clock
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        orch.fetch_with_fallback, "K", ["p"], namespace="quotes"
                    )
                )
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(
                    functools.partial(
                        orch.batch_fetch,
                        ["K"],
                        "p",
                        namespace="quotes",
                        fallback_providers=["q"],
                    )
                )
                await trio.sleep(2)
                await orch.invalidate("quotes", "K")
            after = await orch.fetch_with_fallback("K", ["q"], namespace="quotes")

    assert (2, False) == (after.data, after.cached)


async def test_a_hedged_write_left_by_its_caller_is_still_waited_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A hedged winner's L2 write, its caller gone, is waited for by invalidate."""
    slow = FakeProvider("slow", {"A": 1})
    slow.script("A", Delay(100, 1))
    fast = FakeProvider("fast", {"A": 2})
    clock = FakeWallClock()
    l2 = GatedBackend(clock, name="l2")
    l2.write_gate = trio.Event()
    cache = tiered(clock, MemoryCache(clock=clock, max_entries=10), l2)

    async with dso.open_orchestrator(
        config(hedge_after=1), providers=[slow, fast], cache=cache
    ) as orch:
        clock.now = orch._cache._clock()
        key = orch._cache.key_for(orch._namespace("quotes"), "A")
        with trio.fail_after(30):
            with trio.move_on_after(1.5):
                await orch.fetch_with_fallback(
                    "A", ["slow", "fast"], namespace="quotes"
                )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(orch.invalidate, "quotes", "A")
                await trio.testing.wait_all_tasks_blocked()
                l2.write_gate.set()
        assert orch._cache._pending._groups == {}

    assert None is await l2.entries.get(key)


async def test_a_revalidation_racing_an_invalidation_caches_nothing_old(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A background refresh that an invalidation overtook caches nothing."""
    p = FakeProvider("p", {"A": 1})
    backend = MemoryCache(clock=FakeWallClock(), max_entries=10)
    settings = config(ttl={"fresh": 10, "stale": 600}, revalidate_within=100)

    async with dso.open_orchestrator(settings, providers=[p], cache=backend) as orch:
        backend._clock = orch._cache._clock
        with trio.fail_after(60):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.sleep(11)
            p.script("A", Delay(5, 1))  # the refresh answers the old state
            stale = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.sleep(1)
            p.data["A"] = 2
            await orch.invalidate("quotes", "A")
            await trio.sleep(10)
            after = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert (True, 2) == (stale.stale, after.data)


async def test_overlapping_cancelled_reads_and_writes_leave_no_marks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Many overlapping L2 reads and writes, some cancelled: nothing leaks."""
    clock = FakeWallClock()
    l2 = GatedBackend(clock, name="l2")
    cache = tiered(clock, MemoryCache(clock=clock, max_entries=50), l2, l1_ttl=1)
    peak = 0

    async def reads(n: int) -> None:
        for i in range(300):
            with trio.move_on_after(0.05 * (i % 3)):
                await cache.get_many([f"k{(i + j + n) % 40}" for j in range(5)])
                await trio.sleep(0.01)

    async def writes(n: int) -> None:
        for i in range(300):
            with trio.move_on_after(0.02 * (i % 2)):
                batch = {
                    f"k{(i * 7 + j + n) % 40}": entry(clock, b"x") for j in range(3)
                }
                await cache.set_many(batch)
            with trio.move_on_after(0.01):
                await cache.delete(f"k{(i + n) % 40}")

    async def slow_l2() -> None:
        nonlocal peak
        for _ in range(2000):
            l2.read_gate = trio.Event()
            await trio.sleep(0.013)
            peak = max(peak, len(cache._stamped))
            l2.read_gate.set()

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(reads, n)
                nursery.start_soon(writes, n)
            nursery.start_soon(slow_l2)

    assert (cache._busy, cache._stamped, cache._l2_reads) == ({}, {}, 0)
    assert 0 < peak <= 40, peak
