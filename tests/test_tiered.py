"""The tiered backend: memory (L1) over another backend (L2)."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import dso
from dso._config import BreakerSettings
from dso._guarded_cache import GuardedBackend
from dso._memory import MemoryCache
from dso._tiered import TieredCache
from dso.testing import FakeCacheBackend, FakeProvider


@attrs.define
class FakeWallClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def guarded(backend: dso.CacheBackend, label: str) -> GuardedBackend:
    return GuardedBackend(backend, label=label, timeout=1, breaker=BreakerSettings())


def tiered(
    clock: FakeWallClock, *, l1_ttl: float = 30
) -> tuple[TieredCache, MemoryCache, FakeCacheBackend]:
    l1 = MemoryCache(clock=clock, max_entries=100)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = TieredCache(
        guarded(l1, "l1:memory"), guarded(l2, "l2:l2"), clock=clock, l1_ttl=l1_ttl
    )
    return cache, l1, l2


def entry(clock: FakeWallClock, lifetime: float = 3600) -> dso.CacheEntry:
    return dso.CacheEntry(b"\x01", clock.now, clock.now + lifetime)


async def test_an_l2_hit_fills_l1_for_at_most_l1_ttl() -> None:
    """L1's copy expires at l1_ttl from now, not at the entry's own expiry."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock, l1_ttl=30)
    await l2.set("k", entry(clock, lifetime=3600))

    found = await cache.get("k")
    copy = await l1.get("k")

    assert entry(clock) == found
    assert attrs.evolve(entry(clock), expires_at=clock.now + 30) == copy


async def test_an_l1_copy_never_outlives_the_entry() -> None:
    """An entry expiring before l1_ttl keeps its own expiry in L1."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock, l1_ttl=30)
    await l2.set("k", entry(clock, lifetime=10))

    await cache.get("k")

    assert entry(clock, lifetime=10) == await l1.get("k")


async def test_l1_hits_do_not_reach_l2() -> None:
    """What L1 holds is served without asking L2."""
    clock = FakeWallClock()
    cache, _, l2 = tiered(clock)
    await cache.set("k", entry(clock))
    l2.calls.clear()

    await cache.get("k")
    await cache.get_many(["k"])

    assert [] == l2.calls


async def test_get_many_asks_l2_for_l1_misses_in_one_round_trip() -> None:
    """Only the keys L1 lacks go to L2, in one get_many."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock)
    await l1.set("a", entry(clock))
    await l2.set_many({"b": entry(clock), "c": entry(clock)})
    l2.calls.clear()

    found = await cache.get_many(["a", "b", "c", "d"])

    assert ["a", "b", "c"] == sorted(found)
    assert [("get_many", ("b", "c", "d"))] == l2.calls
    assert ["b", "c"] == sorted(await l1.get_many(["b", "c"]))


async def test_writes_go_to_both_tiers() -> None:
    """set_many stores in L1 (for l1_ttl) and in L2 (for the whole lifetime)."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock, l1_ttl=30)

    await cache.set_many({"k": entry(clock)})

    assert entry(clock) == await l2.entries.get("k")
    assert clock.now + 30 == (await l1.get("k") or entry(clock)).expires_at


async def test_an_l1_ttl_of_zero_keeps_l1_empty() -> None:
    """With l1_ttl 0, L1 is neither written nor filled."""
    clock = FakeWallClock()
    cache, l1, _ = tiered(clock, l1_ttl=0)
    await cache.set("k", entry(clock))

    found = await cache.get("k")

    assert (entry(clock), 0) == (found, l1.statistics().entries)


async def test_delete_removes_from_both_tiers() -> None:
    """After delete neither tier holds the key."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock)
    await cache.set("k", entry(clock))

    await cache.delete("k")

    assert (None, None) == (await l1.get("k"), await l2.entries.get("k"))


async def test_a_tier_that_fails_to_delete_does_not_stop_the_other() -> None:
    """L1 is cleared even when L2's delete fails, which then raises."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock)
    await cache.set("k", entry(clock))
    l2.down = True

    with pytest.raises(dso.CacheError, match="l2:l2"):
        await cache.delete("k")

    assert None is await l1.get("k")


async def test_l1_goes_on_serving_while_l2_is_down() -> None:
    """An L2 outage opens L2's breaker only; L1's entries are still hits."""
    clock = FakeWallClock()
    cache, _, l2 = tiered(clock)
    await cache.set("k", entry(clock))
    l2.down = True

    for _ in range(10):
        await cache.get_many(["k", "missing"])
    found = await cache.get("k")

    states = {label: g.statistics().state for label, g in cache.guards().items()}
    assert entry(clock).payload == (found or entry(clock, 0)).payload
    assert {"l1:memory": dso.BreakerState.CLOSED, "l2:l2": dso.BreakerState.OPEN} == (
        states
    )


class FakeCachePlugin:
    """Offers a `FakeCacheBackend` named ``fake``, as a plugin would."""

    def __init__(self) -> None:
        self.opened: list[FakeCacheBackend] = []

    @dso.hookimpl
    def dso_cache_backends(self) -> Mapping[str, dso.CacheBackendFactory]:
        return {"fake": self.open}

    @asynccontextmanager
    async def open(
        self, settings: dso.CacheSettings, clock: dso.WallClock
    ) -> AsyncIterator[FakeCacheBackend]:
        backend = FakeCacheBackend(clock)
        self.opened.append(backend)
        yield backend


def tiered_config(l2: dict[str, Any], **namespace: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "cache": {
                "backend": "tiered",
                "l1": {"backend": "memory"},
                "l2": {"breaker": {"threshold": 2}, **l2},
                "l1_ttl": 30,
            },
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 0}, **namespace}},
        }
    )


async def test_a_plugins_backend_serves_as_l2_and_its_outage_is_survived(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """L2 is looked up among plugins; while it is down L1 serves and fetches go on."""
    plugin = FakeCachePlugin()
    provider = FakeProvider("p", {"A": 1, "B": 2})

    async with dso.open_orchestrator(
        tiered_config({"backend": "fake"}), providers=[provider], plugins=[plugin]
    ) as orch:
        with trio.fail_after(60):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            # The answer comes before the cache write; let the write end.
            await trio.testing.wait_all_tasks_blocked()
            (l2,) = plugin.opened
            l2.down = True
            hit = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            for _ in range(3):
                missed = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")
                await trio.testing.wait_all_tasks_blocked()
        stats = orch.statistics().cache_backends

    assert (True, 2) == (hit.cached, missed.data)
    assert dso.BreakerState.CLOSED == stats["l1:memory"].state
    assert dso.BreakerState.OPEN == stats["l2:fake"].state


async def test_invalidate_clears_memory_and_sqlite_tiers(tmp_path: Path) -> None:
    """orch.invalidate removes the key from L1 and from the SQLite file."""
    provider = FakeProvider("p", {"A": 1})
    config = tiered_config({"backend": "sqlite", "path": str(tmp_path / "c.db")})

    async with dso.open_orchestrator(config, providers=[provider]) as orch:
        with trio.fail_after(60):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            backend = orch._cache.backend
            assert isinstance(backend, TieredCache)
            key = orch._cache.key_for(orch._namespace("quotes"), "A")
            before = (await backend.l1.get(key), await backend.l2.get(key))
            await orch.invalidate("quotes", "A")
            after = (await backend.l1.get(key), await backend.l2.get(key))

    assert None not in before
    assert (None, None) == after


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"backend": "tiered", "l1": {}}, "cache.l2: the tiered backend needs"),
        ({"l2": {}}, "cache.l2: only the tiered backend has tiers"),
        ({"l1_ttl": 5}, "cache.l1_ttl: only the tiered backend has an L1"),
        (
            {"backend": "tiered", "l1": {"l1_ttl": 5}, "l2": {}},
            "cache.l1.l1_ttl: only the tiered backend has an L1",
        ),
        (
            {"backend": "tiered", "l1": {}, "l2": {"backend": "tiered"}},
            "cache.l2.backend: a tier cannot itself be tiered",
        ),
        (
            {"backend": "tiered", "l1": {"backend": "tiered"}, "l2": {}},
            "cache.l1.backend: a tier cannot itself be tiered",
        ),
        (
            {"backend": "tiered", "l1": {}, "l2": {"timeout": 0}},
            "cache.l2.timeout: must be greater than 0",
        ),
        (
            {"backend": "tiered", "l1": {}, "l2": {}, "l1_ttl": -1},
            "cache.l1_ttl: must not be negative",
        ),
        (
            {"backend": "tiered", "l1": {}, "l2": {"breaker": {"threshold": 0}}},
            "cache.l2.breaker.threshold: must be greater than 0",
        ),
        (
            {"backend": "tiered", "l1": {}, "l2": {"bakend": "x"}},
            "cache.l2: unknown field bakend",
        ),
    ],
)
def test_bad_tier_settings_name_their_path(cache: dict[str, Any], message: str) -> None:
    """Errors in a tier's settings name the field under cache.l1 or cache.l2."""
    with pytest.raises(dso.ConfigError) as info:
        dso.Config.from_dict({"cache": cache})

    assert message in str(info.value)


@pytest.mark.parametrize(
    ("l2", "message"),
    [
        ({"backend": "nope"}, "cache.l2.backend: unknown backend 'nope'"),
        ({"backend": "sqlite"}, "cache.l2.path: the sqlite backend needs"),
    ],
)
async def test_tiers_that_cannot_open_name_their_path(
    l2: dict[str, Any], message: str
) -> None:
    """A tier's unknown backend or missing option is named under cache.l2."""
    with pytest.raises(dso.ConfigError) as info:
        async with dso.open_orchestrator(tiered_config(l2)):
            pass

    assert message in str(info.value)


class GatedBackend(FakeCacheBackend):
    """Reads wait for `gate`, once set: a slow L2 read to race against."""

    gate: trio.Event | None = None

    async def get(self, key: str) -> dso.CacheEntry | None:
        found = await super().get(key)
        if self.gate is not None:
            await self.gate.wait()
        return found


async def test_a_delete_during_an_l2_read_is_not_undone_by_the_l1_fill(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An L2 read that overlapped a delete does not copy the old entry into L1."""
    clock = FakeWallClock()
    l1 = MemoryCache(clock=clock, max_entries=100)
    l2 = GatedBackend(clock, name="l2")
    cache = TieredCache(
        guarded(l1, "l1:memory"), guarded(l2, "l2:l2"), clock=clock, l1_ttl=30
    )
    await l2.set("k", entry(clock))
    l2.gate = trio.Event()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.get, "k")
            await trio.testing.wait_all_tasks_blocked()
            await cache.delete("k")
            l2.gate.set()

    assert None is await l1.get("k")


async def test_get_nowait_answers_from_l1_and_defers_the_rest_to_l2() -> None:
    """An L1 entry comes back at once; a key only L2 may hold would block."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock)
    await l1.set("in-l1", entry(clock))
    await l2.set("in-l2", entry(clock))

    found = cache.get_nowait("in-l1")
    with pytest.raises(trio.WouldBlock):
        cache.get_nowait("in-l2")

    assert entry(clock) == found
    assert [] == [call for call in l2.calls if call[0] == "get"]


async def test_an_orchestrator_serves_l1_hits_at_once_and_l2_hits_by_reading() -> None:
    """Through a tiered cache, an L1 hit and an L2-only hit are both cache hits."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    clock = FakeWallClock()
    cache, _, l2 = tiered(clock)
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 600}}},
        }
    )

    async with dso.open_orchestrator(config, providers=[provider], cache=cache) as orch:
        clock.now = orch._cache._clock()
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        await orch.fetch_with_fallback("B", ["p"], namespace="quotes")
        await cache.l1.delete(orch._cache.key_for(orch._namespace("quotes"), "B"))
        l2.calls.clear()
        with trio.fail_after(10):
            a = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            b = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")

    l2_reads = [call for call in l2.calls if call[0] == "get"]
    assert [(1, True), (2, True)] == [(a.data, a.cached), (b.data, b.cached)]
    assert (2, 1) == (len(provider.calls), len(l2_reads))


async def test_closing_ends_a_read_hung_on_l2_without_charging_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block ends an L2 read that hangs: OrchestratorClosed, no failure."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    l2 = FakeCacheBackend(clock, name="l2")
    l2.hanging = True
    l2_guard = GuardedBackend(
        l2, label="l2:l2", timeout=3600, breaker=BreakerSettings()
    )
    l1 = guarded(MemoryCache(clock=clock, max_entries=100), "l1:memory")
    cache = TieredCache(l1, l2_guard, clock=clock, l1_ttl=30)
    config = dso.Config.from_dict(
        {"plugins": {"autoload": False}, "namespaces": {"quotes": {}}}
    )
    outcomes: list[type[BaseException]] = []

    async def fetch(orch: dso.Orchestrator) -> None:
        try:
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        except dso.OrchestratorClosed as exc:
            outcomes.append(type(exc))

    # Far inside L2's timeout: only closing can end the read.
    with trio.fail_after(60):
        async with (
            trio.open_nursery() as outside,
            dso.open_orchestrator(config, providers=[provider], cache=cache) as orch,
        ):
            # The caller lives outside the orchestrator on purpose.
            outside.start_soon(fetch, orch)  # noqa: ASYNC111
            await trio.sleep(1)

    assert ([dso.OrchestratorClosed], 0, []) == (
        outcomes,
        l2_guard.statistics().errors,
        provider.calls,
    )


async def test_a_tiered_cache_serves_one_open_orchestrator_at_a_time() -> None:
    """A second orchestrator is refused the cache while the first is open."""
    provider = FakeProvider("p", {"A": 1})
    cache, _, _ = tiered(FakeWallClock())
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 600}}},
        }
    )
    bad = dso.Config.from_dict(
        {"plugins": {"autoload": False}, "providers": {"q": {"type": "nobody"}}}
    )

    async def open_and_close(config: dso.Config) -> None:
        async with dso.open_orchestrator(config, providers=[provider], cache=cache):
            pass

    # An opening that fails lets the cache go as well.
    with pytest.raises(dso.ConfigError):
        await open_and_close(bad)

    async with dso.open_orchestrator(config, providers=[provider], cache=cache):
        with pytest.raises(ValueError, match="'l1:memory' is in use"):
            await open_and_close(config)

    async with dso.open_orchestrator(config, providers=[provider], cache=cache) as orch:
        with trio.fail_after(10):
            result = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")

    assert (1, False) == (result.data, result.cached)


class AtOnceWritesOnlyMemory(MemoryCache):
    """A memory backend whose writes by waiting fail."""

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        raise RuntimeError("L1 written by waiting")


async def test_l1_is_written_before_the_callers_wake_and_l2_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The request right after a fetch is an L1 hit; L2 is still written."""
    provider = FakeProvider("p", {"A": 1})
    clock = FakeWallClock()
    l1 = AtOnceWritesOnlyMemory(clock=clock, max_entries=10)
    l2 = FakeCacheBackend(clock, name="l2")
    cache = TieredCache(
        guarded(l1, "l1:memory"), guarded(l2, "l2:l2"), clock=clock, l1_ttl=30
    )
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 600}}},
        }
    )

    async with dso.open_orchestrator(config, providers=[provider], cache=cache) as orch:
        clock.now = orch._cache._clock()
        with trio.fail_after(10):
            await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            again = await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
            await trio.testing.wait_all_tasks_blocked()

    l2_calls = [call[0] for call in l2.calls]
    assert (1, True, 1) == (again.data, again.cached, len(provider.calls))
    assert ["get", "set_many"] == l2_calls


async def test_a_write_at_once_fills_l1_only_and_leaves_l2_for_later() -> None:
    """set_many_nowait writes L1's copy; set_many_after_nowait writes L2."""
    clock = FakeWallClock()
    cache, l1, l2 = tiered(clock, l1_ttl=30)

    cache.set_many_nowait({"k": entry(clock)})
    in_l2_before = await l2.get("k")
    await cache.set_many_after_nowait({"k": entry(clock)})

    copy = attrs.evolve(entry(clock), expires_at=clock.now + 30)
    assert (copy, None, entry(clock)) == (
        l1.get_nowait("k"),
        in_l2_before,
        await l2.get("k"),
    )
