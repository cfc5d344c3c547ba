"""The three strategies end to end, with Redis as the orchestrator's cache."""

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import coredis
import pytest
import trio
import trio.testing

import dso
from dso.testing import FakeBatchProvider, FakeProvider
from dso_redis import _plugin
from dso_redis._envelope import unpack_entry
from dso_redis.testing import RedisServer


# A guard against a hang, never a timing assertion.
DEADLINE = 10


@attrs.frozen
class Quote:
    symbol: str
    price: float | None = None
    currency: str | None = None


QUOTES = dso.Namespace("quotes", Quote, merge=dso.FieldPriority())


def config_for(url: str, **cache: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "cache": {"backend": "redis", "options": {"url": url}, **cache},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 600}}},
        }
    )


@asynccontextmanager
async def orchestrator(
    url: str, *providers: FakeProvider, **cache: Any
) -> AsyncIterator[dso.Orchestrator]:
    async with dso.open_orchestrator(
        config_for(url, **cache),
        providers=providers,
        namespaces=[QUOTES],
        plugins=[_plugin],
    ) as orch:
        yield orch


def quotes(count: int) -> dict[str, Quote]:
    return {
        f"S{index}": Quote(f"S{index}", price=float(index)) for index in range(count)
    }


async def calls_by_command(admin: coredis.Redis[bytes]) -> dict[str, int]:
    stats = await admin.info("commandstats")
    counted = ("cmdstat_get", "cmdstat_mget", "cmdstat_set", "cmdstat_del")
    return {
        name.removeprefix("cmdstat_"): int(stats[name]["calls"])
        for name in counted
        if name in stats
    }


async def test_a_fallback_answer_is_shared_through_redis(
    redis_server: RedisServer,
) -> None:
    """What one orchestrator fetched, another (a second process) reads as cached."""
    down = FakeProvider("down")
    down.fail_all()
    first = FakeProvider("up", {"AAPL": Quote("AAPL", 187.5, "USD")})
    later = FakeProvider("up", {"AAPL": Quote("AAPL", 1.0, "USD")})

    with trio.fail_after(DEADLINE):
        async with orchestrator(redis_server.url, down, first) as orch:
            fetched = await orch.fetch_with_fallback(
                "AAPL", ["down", "up"], namespace="quotes"
            )

        async with orchestrator(redis_server.url, down, later) as orch:
            cached = await orch.fetch_with_fallback(
                "AAPL", ["down", "up"], namespace="quotes"
            )

    assert ("up", Quote("AAPL", 187.5, "USD")) == (fetched.source, fetched.data)
    assert (True, fetched.data, []) == (cached.cached, cached.data, later.calls)


async def test_a_partial_merge_is_cached_partial(
    redis_server: RedisServer, admin: coredis.Redis[bytes]
) -> None:
    """A merge missing a provider is stored marked partial, and served merged."""
    prices = FakeProvider("prices", {"AAPL": Quote("AAPL", price=187.5)})
    names = FakeProvider("names", {"AAPL": Quote("AAPL", currency="USD")})
    broken = FakeProvider("broken")
    broken.fail_all()

    with trio.fail_after(DEADLINE):
        async with orchestrator(redis_server.url, prices, names, broken) as orch:
            merged = await orch.fetch_with_merge(
                "AAPL", ["prices", "names", "broken"], namespace="quotes"
            )
            again = await orch.fetch_with_merge(
                "AAPL", ["prices", "names", "broken"], namespace="quotes"
            )

        (key,) = await admin.keys("*")
        stored = unpack_entry(await admin.get(key) or b"")

    assert (Quote("AAPL", 187.5, "USD"), True) == (merged.data, merged.partial)
    assert (merged.data, True, True) == (again.data, again.cached, stored.partial)


async def test_a_batch_reads_with_one_mget_and_writes_with_one_pipeline(
    redis_server: RedisServer, admin: coredis.Redis[bytes]
) -> None:
    """A cold batch is one MGET and one pipelined write; a warm one, one MGET."""
    data = quotes(30)
    provider = FakeBatchProvider("batch", data, max_batch_size=10)
    with trio.fail_after(DEADLINE):
        async with orchestrator(redis_server.url, provider) as orch:
            cold = await orch.batch_fetch(list(data), "batch", namespace="quotes")
            cold_calls = await calls_by_command(admin)
            await admin.config_resetstat()

            warm = await orch.batch_fetch(list(data), "batch", namespace="quotes")
            warm_calls = await calls_by_command(admin)

    assert ({"mget": 1, "set": 30}, {"mget": 1}) == (cold_calls, warm_calls)
    assert (0, 30, 3) == (
        cold.summary.cached,
        warm.summary.cached,
        len(provider.calls),
    )
    assert data == {key: result.data for key, result in warm.items()}


async def test_the_backend_is_found_through_its_entry_point(
    redis_server: RedisServer,
) -> None:
    """With the plugin installed, ``backend = "redis"`` needs no explicit plugin."""
    config = dso.Config.from_dict(
        {
            "plugins": {"only": ["redis"]},
            "cache": {"backend": "redis", "options": {"url": redis_server.url}},
            "namespaces": {"things": {}},
        }
    )
    provider = FakeProvider("p", {"k": "v"})

    with trio.fail_after(DEADLINE):
        async with dso.open_orchestrator(config, providers=[provider]) as orch:
            await orch.fetch_with_fallback("k", ["p"], namespace="things")
            again = await orch.fetch_with_fallback("k", ["p"], namespace="things")

    assert ("v", "cache", 1) == (again.data, again.source, len(provider.calls))


class KillingBatchProvider(FakeBatchProvider):
    """Kills the Redis server during its first batch call, then answers."""

    def __init__(self, server: RedisServer, data: Mapping[str, object]) -> None:
        super().__init__("batch", data, max_batch_size=10)
        self._server = server
        self._killed = False

    async def fetch_batch(
        self, keys: Sequence[str], ctx: dso.ProviderContext
    ) -> Mapping[str, object]:
        if not self._killed:
            self._killed = True
            await self._server.kill()

        return await super().fetch_batch(keys, ctx)


async def test_redis_killed_mid_batch_and_restarted(
    protected_server: RedisServer,
    protected_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every fetch answers from the providers while Redis is gone; then it recovers."""
    caplog.set_level(logging.DEBUG)
    data = quotes(20)
    keys = list(data)
    batch = KillingBatchProvider(protected_server, data)
    single = FakeProvider("single", data)

    with trio.fail_after(DEADLINE):
        # The breaker in front of Redis would keep it unasked for 30 s after
        # the outage; here it tries again at the first operation after it.
        breaker = {"reset_after": 0.001}
        async with orchestrator(
            protected_url, batch, single, timeout=0.5, breaker=breaker
        ) as orch:
            killed_during = await orch.batch_fetch(keys, "batch", namespace="quotes")
            batch_while_down = await orch.batch_fetch(keys, "batch", namespace="quotes")
            while_down = [
                await orch.fetch_with_fallback("S1", ["single"], namespace="quotes"),
                await orch.fetch_with_merge("S2", ["single"], namespace="quotes"),
            ]
            errors_while_down = orch.statistics().cache_errors

            await protected_server.start()
            refilled = await orch.batch_fetch(keys, "batch", namespace="quotes")
            errors_after_refill = orch.statistics().cache_errors
            served = await orch.batch_fetch(keys, "batch", namespace="quotes")
            errors_after_served = orch.statistics().cache_errors

    assert data == {key: result.data for key, result in killed_during.items()}
    assert data == {key: result.data for key, result in batch_while_down.items()}
    assert [data["S1"], data["S2"]] == [result.data for result in while_down]
    assert (0, 0, 20) == (
        killed_during.summary.cached,
        refilled.summary.cached,
        served.summary.cached,
    )
    assert 0 < errors_while_down
    assert errors_after_refill == errors_after_served
    assert "hunter2" not in caplog.text


async def test_a_frozen_redis_costs_a_fetch_at_most_the_cache_timeout(
    redis_server: RedisServer,
) -> None:
    """A Redis that does not answer turns into misses after cache.timeout."""
    provider = FakeProvider("p", {"AAPL": Quote("AAPL", 1.0)})
    with trio.fail_after(DEADLINE):
        async with orchestrator(redis_server.url, provider, timeout=0.3) as orch:
            await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
            redis_server.pause()
            try:
                result = await orch.fetch_with_fallback(
                    "AAPL", ["p"], namespace="quotes"
                )
            finally:
                redis_server.resume()

            recovered = await orch.fetch_with_fallback(
                "AAPL", ["p"], namespace="quotes"
            )

    assert ("p", "cache") == (result.source, recovered.source)


async def test_closing_ends_a_fetch_waiting_on_a_frozen_redis(
    redis_server: RedisServer,
) -> None:
    """Leaving the block ends a read Redis never answers: OrchestratorClosed."""
    provider = FakeProvider("p", {"AAPL": Quote("AAPL", 1.0)})
    outcomes: list[type[BaseException]] = []

    async def fetch(orch: dso.Orchestrator) -> None:
        try:
            await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
        except dso.OrchestratorClosed as exc:
            outcomes.append(type(exc))
        finally:
            # Closing the client waits for the frozen server, so it thaws
            # once the read has ended.
            redis_server.resume()

    # The cache's timeout is far beyond the deadline: only closing can end
    # the read in time.
    try:
        with trio.fail_after(DEADLINE):
            async with (
                trio.open_nursery() as outside,
                orchestrator(redis_server.url, provider, timeout=60) as orch,
            ):
                await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
                redis_server.pause()
                # The caller lives outside the orchestrator on purpose.
                outside.start_soon(fetch, orch)  # noqa: ASYNC111
                await trio.testing.wait_all_tasks_blocked()
    finally:
        redis_server.resume()

    assert ([dso.OrchestratorClosed], 0) == (outcomes, orch.statistics().cache_errors)
