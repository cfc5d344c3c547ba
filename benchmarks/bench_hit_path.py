"""How much the orchestrator adds to a cache hit, against the bare backend.

Both sides read the same value from a memory cache and decode it; the
orchestrator also builds the key, judges freshness and wraps a result.
Prints the per-call times and their ratio, measured in the same run.
"""

from __future__ import annotations

import time

import attrs
import trio

import dso
from dso._codec import Codec
from dso.testing import FakeProvider


CALLS = 20_000


@attrs.frozen
class Quote:
    """A small record, the shape of a typical cached value."""

    symbol: str
    price: float
    volume: int


async def orchestrator_hits() -> float:
    provider = FakeProvider("bench", {"AAPL": Quote("AAPL", 187.5, 1_000_000)})
    quotes = dso.Namespace("quotes", Quote)
    config = dso.Config(plugins=dso.PluginSettings(autoload=False))
    async with dso.open_orchestrator(
        config, providers=[provider], namespaces=[quotes]
    ) as orch:
        await orch.fetch_with_fallback("AAPL", ["bench"], namespace="quotes")
        start = time.perf_counter()
        for _ in range(CALLS):
            await orch.fetch_with_fallback("AAPL", ["bench"], namespace="quotes")
        return (time.perf_counter() - start) / CALLS


async def backend_hits() -> float:
    codec = Codec()
    payload = codec.encode(Quote("AAPL", 187.5, 1_000_000), Quote)
    async with dso.open_orchestrator(
        dso.Config(plugins=dso.PluginSettings(autoload=False))
    ) as orch:
        backend = orch._cache.backend
        entry = dso.CacheEntry(payload, 0.0, float("inf"))
        await backend.set("dso:quotes:1:AAPL", entry)
        start = time.perf_counter()
        for _ in range(CALLS):
            found = await backend.get_many(["dso:quotes:1:AAPL"])
            codec.decode(found["dso:quotes:1:AAPL"].payload, Quote)
        return (time.perf_counter() - start) / CALLS


def main() -> None:
    baseline = trio.run(backend_hits)
    measured = trio.run(orchestrator_hits)
    print(f"cache hit, bare backend + codec: {baseline * 1e6:8.1f} µs/call")
    print(f"cache hit, fetch_with_fallback:  {measured * 1e6:8.1f} µs/call")
    print(f"ratio: {measured / baseline:.2f}x the bare backend")


if __name__ == "__main__":
    main()
