"""A failing cache backend is put behind a breaker, and comes back by itself."""

import logging
from collections.abc import Mapping, Sequence

import pytest
import trio
import trio.testing

import dso
from dso._clock import trio_wall_clock
from dso._config import BreakerSettings
from dso._guarded_cache import GuardedBackend
from dso.testing import FakeCacheBackend, FakeProvider


def make_config(**breaker: object) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "cache": {"timeout": 1, "breaker": {"threshold": 3, **breaker}},
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 600}}},
        }
    )


async def fetch_times(orch: dso.Orchestrator, count: int) -> list[dso.FetchResult]:
    results = []
    for index in range(count):
        result = await orch.fetch_with_fallback(f"K{index}", ["p"], namespace="quotes")
        results.append(result)

    return results


async def test_a_failing_backend_is_not_asked_once_its_breaker_opens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After threshold failures, reads and writes skip the backend, counted."""
    provider = FakeProvider("p", {f"K{index}": index for index in range(10)})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.down = True

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60):
            results = await fetch_times(orch, 10)
        stats = orch.statistics().cache_backends["fake"]

    # Three failures (read, write, read) open it; nothing reaches it after.
    assert 3 == len(backend.calls)
    assert list(range(10)) == [result.data for result in results]
    assert (dso.BreakerState.OPEN, 3, 17) == (stats.state, stats.errors, stats.skipped)


async def test_a_hanging_backend_costs_its_timeout_only_until_the_breaker_opens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Timeouts count as failures; once open, a fetch waits for no timeout."""
    provider = FakeProvider("p", {f"K{index}": index for index in range(5)})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.hanging = True

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60):
            await fetch_times(orch, 2)
            started = trio.current_time()
            await fetch_times(orch, 3)
            elapsed = trio.current_time() - started
        state = orch.statistics().cache_backends["fake"].state

    assert (dso.BreakerState.OPEN, 0.0) == (state, elapsed)


async def test_the_backend_comes_back_by_itself_after_reset_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once the backend works again, a trial after reset_after closes the breaker."""
    provider = FakeProvider("p", {"K0": 0, "K1": 1})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.down = True

    async with dso.open_orchestrator(
        make_config(reset_after=10), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60):
            await fetch_times(orch, 2)
            backend.down = False
            await trio.sleep(10)
            await fetch_times(orch, 2)
            hit = await orch.fetch_with_fallback("K1", ["p"], namespace="quotes")
        state = orch.statistics().cache_backends["fake"].state

    assert (dso.BreakerState.CLOSED, True) == (state, hit.cached)


async def test_an_outage_logs_one_warning_when_it_starts_and_one_when_it_ends(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Many failures and failed trials make two warnings, not one per failure."""
    provider = FakeProvider("p", {f"K{index}": index for index in range(10)})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.down = True
    caplog.set_level(logging.DEBUG, logger="dso")

    async with dso.open_orchestrator(
        make_config(reset_after=10), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(600):
            for _ in range(3):
                await fetch_times(orch, 10)
                await trio.sleep(10)

            backend.down = False
            await fetch_times(orch, 2)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 2 == len(warnings)
    assert "fake is failing" in warnings[0]
    assert "fake is back" in warnings[1]


async def test_a_cancelled_caller_is_not_a_backend_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling reads in flight never trips the backend's breaker."""
    provider = FakeProvider("p", {"K0": 0})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.hanging = True

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        for _ in range(5):
            with trio.move_on_after(0.1):
                await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")
        stats = orch.statistics().cache_backends["fake"]

    assert (dso.BreakerState.CLOSED, 0) == (stats.state, stats.errors)


async def test_closing_ends_a_hung_read_without_charging_the_backend(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block ends a read hung on the backend at once: OrchestratorClosed."""
    provider = FakeProvider("p", {"K0": 0})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.hanging = True
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "cache": {"timeout": 3600},
            "namespaces": {"quotes": {}},
        }
    )
    outcomes: list[type[BaseException]] = []

    async def fetch(orch: dso.Orchestrator) -> None:
        try:
            await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")
        except dso.OrchestratorClosed as exc:
            outcomes.append(type(exc))

    # Far inside the cache's timeout: only closing can end the read.
    with trio.fail_after(60):
        async with (
            trio.open_nursery() as outside,
            dso.open_orchestrator(config, providers=[provider], cache=backend) as orch,
        ):
            # The caller lives outside the orchestrator on purpose.
            outside.start_soon(fetch, orch)  # noqa: ASYNC111
            await trio.sleep(1)

    stats = orch.statistics().cache_backends["fake"]
    assert ([dso.OrchestratorClosed], 0, 0, []) == (
        outcomes,
        stats.errors,
        stats.skipped,
        provider.calls,
    )


class SlowWrites(FakeCacheBackend):
    """A backend outside the process whose writes take half a second."""

    async def set_many(self, entries: Mapping[str, dso.CacheEntry]) -> None:
        await trio.sleep(0.5)
        await super().set_many(entries)


async def test_closing_right_after_a_fetch_keeps_the_write_under_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block ends reads, never the write of a value just fetched."""
    backend = SlowWrites(trio_wall_clock())
    first = FakeProvider("p", {"K0": 0})
    down = FakeProvider("p")
    down.fail_all()

    async with dso.open_orchestrator(
        make_config(), providers=[first], cache=backend
    ) as orch:
        await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")

    async with dso.open_orchestrator(
        make_config(), providers=[down], cache=backend
    ) as orch:
        with trio.fail_after(60):
            later = await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")

    assert (0, True) == (later.data, later.cached)


async def test_the_cache_breaker_can_be_taken_in_hand(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """cache_breaker gives the breaker by label, to force it open or reset it."""
    provider = FakeProvider("p", {"K0": 0})
    backend = FakeCacheBackend(trio_wall_clock())

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        orch.cache_breaker("fake").force_open()
        await fetch_times(orch, 1)

    assert [] == backend.calls


async def test_an_unknown_cache_breaker_label_is_a_lookup_error() -> None:
    """Asking for the breaker of a backend that is not there names the known."""
    async with dso.open_orchestrator(make_config()) as orch:
        with pytest.raises(LookupError, match="known: memory"):
            orch.cache_breaker("redis")


async def test_a_failed_invalidation_raises_cache_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An entry that could not be removed is an error, not a silent skip."""
    backend = FakeCacheBackend(trio_wall_clock())
    backend.down = True

    async with dso.open_orchestrator(make_config(), cache=backend) as orch:
        with pytest.raises(dso.CacheError, match="fake failed to delete"):
            await orch.invalidate("quotes", "K0")


async def test_backend_failures_reach_telemetry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each failed cache operation counts in the operator's stats()."""
    provider = FakeProvider("p", {"K0": 0})
    backend = FakeCacheBackend(trio_wall_clock())
    backend.down = True

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        await fetch_times(orch, 1)
        await trio.testing.wait_all_tasks_blocked()
        errors = (orch.stats().cache_errors, orch.statistics().cache_errors)

    assert (2, 2) == errors


class JunkBackend(FakeCacheBackend):
    """Answers reads with *junk* instead of entries, as a broken plugin might."""

    def __init__(self, junk: object) -> None:
        super().__init__(trio_wall_clock())
        self.junk = junk

    async def get(self, key: str) -> dso.CacheEntry | None:
        return self.junk  # type: ignore[return-value]

    async def get_many(self, keys: Sequence[str]) -> dict[str, dso.CacheEntry]:
        return self.junk  # type: ignore[return-value]


@pytest.mark.parametrize("junk", [b"\x01", {"K0": b"\x01"}, 7])
async def test_a_backend_that_answers_junk_has_failed_the_read(
    autojump_clock: trio.testing.MockClock, junk: object
) -> None:
    """A read answered with no entry is a counted failure, and the fetch goes on."""
    provider = FakeProvider("p", {"K0": 0})

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=JunkBackend(junk)
    ) as orch:
        with trio.fail_after(60):
            result = await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")
        stats = orch.statistics().cache_backends["fake"]

    assert (0, 1) == (result.data, stats.errors)


async def test_entries_for_keys_not_asked_fail_the_read() -> None:
    """A get_many answer naming a key not asked for is a failure, not served."""
    clock = trio_wall_clock()
    backend = FakeCacheBackend(clock)
    await backend.set("other", dso.CacheEntry(b"\x01", clock(), clock() + 60))
    guarded = GuardedBackend(
        JunkBackend(await backend.get_many(["other"])),
        label="fake",
        timeout=1,
        breaker=BreakerSettings(),
    )

    found = await guarded.get_many(["asked"])

    assert ({}, 1) == (found, guarded.statistics().errors)


def first_value(values: Sequence[tuple[str, object]]) -> object:
    return values[0][1]


async def call_with_key(orch: dso.Orchestrator, how: str, key: str) -> object:
    if how == "fallback":
        return await orch.fetch_with_fallback(key, ["p"], namespace="quotes")
    if how == "merge":
        return await orch.fetch_with_merge(
            key, ["p"], namespace="quotes", merge=first_value
        )
    if how == "batch":
        return await orch.batch_fetch([key], "p", namespace="quotes")
    return await orch.invalidate("quotes", key)


@pytest.mark.parametrize("how", ["fallback", "merge", "batch", "invalidate"])
async def test_a_key_that_is_not_text_is_refused_before_the_cache(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    """A lone surrogate cannot be stored: a ValueError, not a backend failure."""
    provider = FakeProvider("p", {"\ud800": 1})
    backend = SurrogateRefusingBackend(trio_wall_clock())

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60), pytest.raises(ValueError, match="key"):
            await call_with_key(orch, how, "\ud800")
        stats = orch.statistics().cache_backends["fake"]

    assert (0, []) == (stats.errors, backend.calls)


class SurrogateRefusingBackend(FakeCacheBackend):
    """Encodes its keys as UTF-8, as the SQLite and Redis backends do."""

    async def _enter(self, operation: str, keys: Sequence[str]) -> None:
        for key in keys:
            key.encode()
        await super()._enter(operation, keys)


class InProcessBackend(FakeCacheBackend):
    """A backend in this process, answering at once or failing as told."""

    in_process = True

    def __init__(self, clock: dso.WallClock) -> None:
        super().__init__(clock)
        self.junk: object = None
        self.reads_at_once = 0

    def get_nowait(self, key: str) -> dso.CacheEntry | None:
        self.reads_at_once += 1
        if self.down:
            raise ConnectionError("scripted outage")

        if self.junk is not None:
            return self.junk  # type: ignore[return-value]

        return self.entries.get_nowait(key)


def fixed_clock() -> float:
    return 1_000.0


def guard(backend: dso.CacheBackend) -> GuardedBackend:
    return GuardedBackend(
        backend, label="fake", timeout=1, breaker=BreakerSettings(threshold=2)
    )


def test_a_backend_across_the_network_is_never_read_at_once() -> None:
    """get_nowait says it would block unless the backend lives in this process."""
    guarded = guard(FakeCacheBackend(fixed_clock))

    with pytest.raises(trio.WouldBlock):
        guarded.get_nowait("k")

    assert (False, False) == (guarded.reads_at_once, guarded.writes_at_once)


# Async with nothing to await: the breaker reads trio's clock as it opens.
async def test_failed_reads_at_once_are_misses_behind_a_breaker() -> None:  # noqa: ASYNC124
    """Failures and junk read at once are counted misses; then the breaker opens."""
    backend = InProcessBackend(fixed_clock)
    guarded = guard(backend)
    backend.junk = b"\x01"
    junk = guarded.get_nowait("k")
    backend.junk = None
    backend.down = True

    found = [guarded.get_nowait("k") for _ in range(3)]
    stats = guarded.statistics()

    assert (None, [None, None, None]) == (junk, found)
    assert (dso.BreakerState.OPEN, 2, 2) == (stats.state, stats.errors, stats.skipped)
    assert 2 == backend.reads_at_once


async def test_an_in_process_backend_without_get_nowait_is_read_by_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A plugin's in-process backend that offers only get still serves hits."""

    class WaitingBackend(FakeCacheBackend):
        in_process = True

    provider = FakeProvider("p", {"K0": 0})
    backend = WaitingBackend(trio_wall_clock())

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60):
            await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")
            again = await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")

    assert (0, True, 1) == (again.data, again.cached, len(provider.calls))


@pytest.mark.parametrize("method", ["get_nowait", "set_many_nowait"])
async def test_an_async_method_that_should_answer_at_once_is_refused_by_name(
    method: str,
) -> None:
    """A plugin that writes get_nowait as async def is told so when it opens."""

    async def at_once(*args: object) -> None:
        await trio.lowlevel.checkpoint()

    class AsyncBackend(FakeCacheBackend):
        in_process = True

    setattr(AsyncBackend, method, at_once)
    backend = AsyncBackend(trio_wall_clock())

    with pytest.raises(TypeError, match=f"'fake'.*{method}.*async"):
        async with dso.open_orchestrator(make_config(), cache=backend):
            pass


async def test_a_fetched_value_is_written_at_once_where_the_backend_can(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An in-process backend is written through set_many_nowait, not set_many."""

    class AtOnceBackend(InProcessBackend):
        def set_many_nowait(self, entries: dict[str, dso.CacheEntry]) -> None:
            self.calls.append(("set_many_nowait", tuple(entries)))
            self.entries.set_many_nowait(entries)

    provider = FakeProvider("p", {"K0": 0})
    backend = AtOnceBackend(trio_wall_clock())

    async with dso.open_orchestrator(
        make_config(), providers=[provider], cache=backend
    ) as orch:
        with trio.fail_after(60):
            await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")
            again = await orch.fetch_with_fallback("K0", ["p"], namespace="quotes")

    writes = [call[0] for call in backend.calls if call[0].startswith("set")]
    assert (True, ["set_many_nowait"]) == (again.cached, writes)


def test_a_write_at_once_that_fails_is_skipped_and_counted() -> None:
    """set_many_nowait on a failing backend stores nothing and raises nothing."""

    class FailingWrites(InProcessBackend):
        def set_many_nowait(self, entries: dict[str, dso.CacheEntry]) -> None:
            raise ConnectionError("scripted outage")

    guarded = guard(FailingWrites(fixed_clock))

    guarded.set_many_nowait({"k": dso.CacheEntry(b"\x01", 1_000.0, 1_060.0)})

    assert (1, None) == (guarded.statistics().errors, guarded.get_nowait("k"))
