"""Negative caching: NOT_FOUND answers remembered for negative_ttl seconds."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso._clock import trio_wall_clock
from dso._codec import Codec
from dso._config import NamespaceSettings
from dso._memory import MemoryCache
from dso._namespace import BoundNamespace, Namespace
from dso._ttl import TtlTable
from dso._typed_cache import NOT_FOUND_PAYLOAD, TypedCache
from dso.testing import FakeBatchProvider, FakeProvider


def make_config(**quotes: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600, "stale": 600}, **quotes}},
        }
    )


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, **quotes: Any
) -> AsyncIterator[dso.Orchestrator]:
    async with dso.open_orchestrator(
        make_config(**quotes), providers=providers
    ) as orch:
        yield orch


async def fetch(orch: dso.Orchestrator, key: str, *chain: str) -> dso.FetchResult:
    return await orch.fetch_with_fallback(key, list(chain), namespace="quotes")


async def test_not_found_is_not_remembered_by_default() -> None:
    """Without negative_ttl every request for an unknown key asks the provider."""
    provider = FakeProvider("p")

    async with orchestrator(provider) as orch:
        await fetch(orch, "NOPE", "p")
        again = await fetch(orch, "NOPE", "p")

    assert (False, 2) == (again.cached, len(provider.calls))


async def test_a_remembered_not_found_is_a_not_found_result() -> None:
    """The cached answer has no data, no source, and one NOT_FOUND attempt."""
    provider = FakeProvider("p")

    async with orchestrator(provider, negative_ttl=30) as orch:
        await fetch(orch, "NOPE", "p")
        again = await fetch(orch, "NOPE", "p")
        stats = orch.statistics()

    assert (None, None, False, True) == (
        again.data,
        again.source,
        again.ok,
        again.cached,
    )
    assert [("cache", dso.ErrorCode.NOT_FOUND)] == [
        (attempt.provider, attempt.code) for attempt in again.attempts
    ]
    assert (1, 0) == (stats.cache_not_found_hits, stats.cache_hits)


async def test_a_not_found_is_forgotten_after_negative_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once negative_ttl has passed, the provider is asked again."""
    provider = FakeProvider("p")

    async with orchestrator(provider, negative_ttl=30) as orch:
        await fetch(orch, "NEW", "p")
        provider.data["NEW"] = 7
        await trio.sleep(29)
        during = await fetch(orch, "NEW", "p")
        await trio.sleep(1)
        after = await fetch(orch, "NEW", "p")

    assert (None, 7) == (during.data, after.data)


async def test_not_found_from_some_providers_only_is_not_remembered() -> None:
    """A provider that failed otherwise might know the key: nothing is cached."""
    down = FakeProvider("down")
    down.fail_all()
    unknown = FakeProvider("unknown")

    async with orchestrator(down, unknown, negative_ttl=30) as orch:
        first = await fetch(orch, "K", "down", "unknown")
        await fetch(orch, "K", "down", "unknown")

    assert (False, 2) == (first.not_found, len(unknown.calls))


async def test_hedged_chains_remember_not_found_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When every hedged attempt says NOT_FOUND, the answer is remembered."""
    first = FakeProvider("first", delay=5)
    second = FakeProvider("second")

    async with orchestrator(first, second, negative_ttl=30) as orch:
        for _ in range(2):
            await orch.fetch_with_fallback(
                "K", ["first", "second"], namespace="quotes", hedge_after=1
            )

    assert (1, 1) == (len(first.calls), len(second.calls))


async def test_a_batch_with_fallbacks_remembers_only_keys_nobody_knows() -> None:
    """A key the fallback found is cached as a value, the others as NOT_FOUND."""
    primary = FakeBatchProvider("primary", {"A": 1})
    fallback = FakeProvider("fallback", {"B": 2})

    async with orchestrator(primary, fallback, negative_ttl=30) as orch:
        keys = ["A", "B", "C"]
        await orch.batch_fetch(
            keys, "primary", namespace="quotes", fallback_providers=["fallback"]
        )
        again = await orch.batch_fetch(
            keys, "primary", namespace="quotes", fallback_providers=["fallback"]
        )

    assert {"A": 1, "B": 2, "C": None} == {key: r.data for key, r in again.items()}
    assert [False, False, True] == [again[key].not_found for key in keys]
    assert (3, 0) == (len(again), again.summary.provider_calls)
    assert (2, 1, 0) == (
        again.summary.successful,
        again.summary.failed,
        again.summary.fresh,
    )


async def test_a_cached_none_is_a_value_not_a_not_found() -> None:
    """A None stored as a value reads back as a value, never as NOT_FOUND."""
    clock = trio_wall_clock()
    cache = TypedCache(
        MemoryCache(clock=clock, max_entries=10),
        Codec(),
        TtlTable({}),
        clock,
        "dso",
    )
    space = BoundNamespace(Namespace("things"), NamespaceSettings())
    await cache.write(space, "none", None, partial=False)
    await cache.write_not_found(space, ["gone"], 30)

    none = await cache.read(space, "none", None)
    gone = await cache.read(space, "gone", None)

    assert none is not None
    assert gone is not None
    assert (None, False) == (none.value, none.not_found)
    assert (None, True) == (gone.value, gone.not_found)


@pytest.mark.parametrize("value", [None, b"", [], {}, "N", 78])
def test_no_value_encodes_to_the_not_found_marker(value: object) -> None:
    """The marker is an extension type, which the codec never writes or reads."""
    codec = Codec()

    assert NOT_FOUND_PAYLOAD != codec.encode(value, object)
    with pytest.raises(dso.DsoError):
        codec.decode(NOT_FOUND_PAYLOAD, object)


@pytest.mark.parametrize("seconds", [-1, -0.5])
def test_a_negative_negative_ttl_is_refused(seconds: float) -> None:
    """negative_ttl below 0 fails when the config is read, naming the field."""
    with pytest.raises(dso.ConfigError, match=r"namespaces\.quotes\.negative_ttl"):
        make_config(negative_ttl=seconds)
