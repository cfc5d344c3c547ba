"""Bytes in the cache that are not a value of the namespace are misses."""

import pickle

import attrs
import msgpack  # type: ignore[import-untyped]
import pytest
import trio
import trio.testing

import dso
from dso._clock import trio_wall_clock
from dso._memory import MemoryCache
from dso.testing import FakeProvider


@attrs.frozen
class Quote:
    symbol: str
    price: float


class Boom:
    """Would run code if unpickled."""

    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("unpickled!",))


BAD_PAYLOADS = {
    "junk": b"\xc1\xff\x00junk",
    "empty": b"",
    "truncated": msgpack.packb({"symbol": "AAPL", "price": 1.5})[:-3],
    "unknown-extension": msgpack.packb(msgpack.ExtType(42, b"\x01\x02")),
    "pickle": pickle.dumps(Boom()),
    "another-shape": msgpack.packb(["AAPL", 1.5]),
    "extra-bytes": msgpack.packb({"symbol": "AAPL", "price": 1.5}) + b"\x00",
}


@pytest.mark.parametrize("payload", BAD_PAYLOADS.values(), ids=BAD_PAYLOADS)
async def test_a_bad_entry_is_a_counted_miss_and_is_replaced(payload: bytes) -> None:
    """The provider is asked, the miss is counted, and its answer replaces the bytes."""
    clock = trio_wall_clock()
    backend = MemoryCache(clock=clock, max_entries=10)
    now = clock()
    await backend.set("dso:quotes:1:AAPL", dso.CacheEntry(payload, now, now + 3600))
    provider = FakeProvider("p", {"AAPL": Quote("AAPL", 2.5)})
    config = dso.Config(plugins=dso.PluginSettings(autoload=False))

    async with dso.open_orchestrator(
        config,
        providers=[provider],
        namespaces=[dso.Namespace("quotes", Quote)],
        cache=backend,
    ) as orch:
        with trio.fail_after(10):
            first = await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
            await trio.testing.wait_all_tasks_blocked()
            second = await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
        undecodable = orch._cache.counters.undecodable

    assert (Quote("AAPL", 2.5), "p") == (first.data, first.source)
    assert (Quote("AAPL", 2.5), True) == (second.data, second.cached)
    assert (1, 1) == (undecodable, len(provider.calls))
