"""A Redis hit through dso against a bare coredis GET; a fully cached batch.

Starts its own redis-server on loopback (persistence off) and stops it.

1. A hit through `fetch_with_fallback`, as a ratio to a bare coredis
   ``GET`` of the same bytes on the same server (target: within 1.2x).
2. A 1,000-key `batch_fetch` fully cached in Redis: the requests it sends
   (target: at most 2 round trips), the commands Redis runs, and the time
   per key, next to one bare ``MGET`` of the same keys.

Runs alternate between the two sides and each side keeps its best round,
so a neighbour's burst on a shared machine does not decide the ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import coredis
import trio

import dso
from dso.testing import FakeBatchProvider, FakeProvider
from dso_redis import _plugin
from dso_redis.testing import RedisServer, find_redis_server, open_redis_server


CALLS = 500
ROUNDS = 30
BATCH = 1_000
BATCH_ROUNDS = 30


@attrs.frozen
class Quote:
    """A small record, the shape of a typical cached value."""

    symbol: str
    price: float
    volume: int


QUOTES = dso.Namespace("quotes", Quote)


def config_for(server: RedisServer) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "cache": {"backend": "redis", "options": {"url": server.url}},
            "namespaces": {"quotes": {"ttl": {"fresh": 3600, "stale": 3600}}},
        }
    )


async def per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()

    return (time.perf_counter() - start) / calls


async def rounds_of(
    sides: dict[str, Callable[[], Awaitable[object]]], calls: int, rounds: int
) -> dict[str, list[float]]:
    # The sides take turns, round after round, so that a slow spell of the
    # machine (or of the server, on the same two cores) falls on them all.
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, call in sides.items():
            times[name].append(await per_call(call, calls))

    return times


async def best_of(
    sides: dict[str, Callable[[], Awaitable[object]]], calls: int, rounds: int
) -> dict[str, float]:
    times = await rounds_of(sides, calls, rounds)
    return {name: min(taken) for name, taken in times.items()}


def median_ratio(times: dict[str, list[float]], side: str, baseline: str) -> float:
    """The median over rounds of *side*'s time over *baseline*'s in the same round."""
    pairs = zip(times[side], times[baseline], strict=True)
    return statistics.median(taken / base for taken, base in pairs)


async def server_reads(admin: coredis.Redis[bytes]) -> int:
    stats = await admin.info("stats")
    return int(stats["total_reads_processed"])


async def commands_run(admin: coredis.Redis[bytes]) -> dict[str, int]:
    stats = await admin.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
        if name not in {"cmdstat_info", "cmdstat_config|resetstat"}
    }


async def single_hits(server: RedisServer, admin: coredis.Redis[bytes]) -> None:
    provider = FakeProvider("bench", {"AAPL": Quote("AAPL", 187.5, 1_000_000)})
    async with dso.open_orchestrator(
        config_for(server), providers=[provider], namespaces=[QUOTES], plugins=[_plugin]
    ) as orch:
        await orch.fetch_with_fallback("AAPL", ["bench"], namespace="quotes")
        (key,) = await admin.keys("*")

        async def through_dso() -> object:
            return await orch.fetch_with_fallback("AAPL", ["bench"], namespace="quotes")

        backend = orch._cache.backend

        async def backend_get() -> object:
            return await backend.get(key)

        async with coredis.Redis(port=server.port) as bare:

            async def bare_get() -> object:
                return await bare.get(key)

            sides = {"bare": bare_get, "backend": backend_get, "dso": through_dso}
            times = await rounds_of(sides, CALLS, ROUNDS)

    assert len(provider.calls) == 1, "every timed fetch must be a cache hit"
    best = {name: min(taken) for name, taken in times.items()}
    print(f"redis hit, bare coredis GET:      {best['bare'] * 1e6:8.1f} µs/call")
    print(f"redis hit, RedisCache.get:        {best['backend'] * 1e6:8.1f} µs/call")
    print(f"redis hit, fetch_with_fallback:   {best['dso'] * 1e6:8.1f} µs/call")
    backend_ratio = median_ratio(times, "backend", "bare")
    dso_ratio = median_ratio(times, "dso", "bare")
    print(f"ratio: {backend_ratio:.2f}x the bare GET for the backend")
    print(f"ratio: {dso_ratio:.2f}x the bare GET (target <= 1.2x; median of rounds)")
    backend_adds = (best["backend"] - best["bare"]) * 1e6
    core_adds = (best["dso"] - best["backend"]) * 1e6
    print(f"added: {backend_adds:.1f} µs by the backend, {core_adds:.1f} µs above it")


async def cached_batches(server: RedisServer, admin: coredis.Redis[bytes]) -> None:
    symbols = [f"S{index:04d}" for index in range(BATCH)]
    data = {symbol: Quote(symbol, 1.0, 1) for symbol in symbols}
    provider = FakeBatchProvider("batch", data, max_batch_size=100)
    async with dso.open_orchestrator(
        config_for(server), providers=[provider], namespaces=[QUOTES], plugins=[_plugin]
    ) as orch:
        await orch.batch_fetch(symbols, "batch", namespace="quotes")
        keys = [
            orch._cache.key_for(orch._namespace("quotes", None), s) for s in symbols
        ]

        await admin.config_resetstat()
        before = await server_reads(admin)
        result = await orch.batch_fetch(symbols, "batch", namespace="quotes")
        requests = await server_reads(admin) - before - 1
        commands = await commands_run(admin)

        async def through_dso() -> object:
            return await orch.batch_fetch(symbols, "batch", namespace="quotes")

        backend = orch._cache.backend

        async def backend_get_many() -> object:
            return await backend.get_many(keys)

        async with coredis.Redis(port=server.port) as bare:

            async def bare_mget() -> object:
                return await bare.mget(keys)

            sides = {"bare": bare_mget, "backend": backend_get_many, "dso": through_dso}
            best = await best_of(sides, 1, BATCH_ROUNDS)

    assert result.summary.cached == BATCH, "the timed batch must be fully cached"
    trips = sum(commands.values())
    print(
        f"cached batch of {BATCH}: {trips} round trip(s) (target <= 2); Redis ran "
        f"{commands}, reading the request in {requests} socket read(s)"
    )
    for side, label in [
        ("bare", "bare coredis MGET:"),
        ("backend", "RedisCache.get_many:"),
        ("dso", "batch_fetch:"),
    ]:
        print(f"cached batch, {label:22s}{best[side] / BATCH * 1e6:8.2f} µs/key")

    print(f"ratio: {best['dso'] / best['bare']:.2f}x the bare MGET")


async def main(directory: Path) -> None:
    async with (
        open_redis_server(directory) as server,
        coredis.Redis(port=server.port) as admin,
    ):
        await single_hits(server, admin)
        await admin.flushall()
        await cached_batches(server, admin)


if __name__ == "__main__":
    if find_redis_server() is None:
        print("bench_redis: skipped, redis-server is not installed")
    else:
        with tempfile.TemporaryDirectory() as directory:
            trio.run(main, Path(directory))
