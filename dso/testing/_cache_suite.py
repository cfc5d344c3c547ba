"""The three strategies against one cache backend: a suite to subclass.

Every backend must give the same answers as the memory one. A test
module subclasses `CacheBackendSuite` and says how to configure its
backend in a ``cache_settings`` fixture (the ``[cache]`` table)::

    class TestRedis(CacheBackendSuite):
        @pytest.fixture
        def cache_settings(self, redis_url: str) -> dict[str, Any]:
            return {"backend": "redis", "options": {"url": redis_url}}

Each test gets a key prefix of its own, so tests sharing a server or a
file never see each other's entries. No test depends on time passing,
so the suite runs on the real clock against real servers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from .._config import Config
from .._merge import FieldPriority
from .._namespace import Namespace
from .._orchestrator import Orchestrator, open_orchestrator
from ._fake import FakeBatchProvider, FakeProvider


DEADLINE = 30
"""Seconds any one test may take; the suite's operations take far less."""


@attrs.frozen
class SuiteQuote:
    """The value type of the suite's ``quotes`` namespace."""

    symbol: str
    price: float
    venues: tuple[str, ...] = ()


Open = Callable[..., AbstractAsyncContextManager[Orchestrator]]


def _namespaces() -> list[Namespace]:
    return [
        Namespace("quotes", SuiteQuote, merge=FieldPriority()),
        Namespace("lists", list[int]),
    ]


class CacheBackendSuite:
    """Fallback, merge and batch fetches, checked against one backend.

    Subclass it in a test module (its name must start with ``Test``) and
    define the ``cache_settings`` fixture.
    """

    # Run under pytest-trio whether or not the project sets trio_mode.
    pytestmark = pytest.mark.trio

    @pytest.fixture
    def cache_settings(self) -> dict[str, Any]:
        """Return the ``[cache]`` table of the backend under test."""
        raise NotImplementedError("define the cache_settings fixture")

    @pytest.fixture
    def open_orch(self, cache_settings: dict[str, Any]) -> Open:
        """Return a function that opens an orchestrator on the backend."""
        prefix = f"dso-suite-{uuid.uuid4().hex}"

        @asynccontextmanager
        async def open_(
            *providers: FakeProvider, **namespace_settings: Any
        ) -> AsyncIterator[Orchestrator]:
            quotes = {"ttl": {"fresh": 600, "stale": 3600}, **namespace_settings}
            config = Config.from_dict(
                {
                    "plugins": {"autoload": True},
                    "cache": {**cache_settings, "prefix": prefix},
                    "namespaces": {"quotes": quotes, "lists": quotes},
                }
            )
            async with open_orchestrator(
                config, providers=providers, namespaces=_namespaces()
            ) as orch:
                yield orch

        return open_

    async def test_a_fetched_value_is_served_from_the_cache(
        self, open_orch: Open
    ) -> None:
        """The second fetch is a hit, equal and of the same type as the first."""
        quote = SuiteQuote("AAPL", 187.25, ("XNAS", "BATS"))
        provider = FakeProvider("p", {"AAPL": quote})

        async with open_orch(provider) as orch:
            with trio.fail_after(DEADLINE):
                first = await orch.fetch_with_fallback(
                    "AAPL", ["p"], namespace="quotes"
                )
                second = await orch.fetch_with_fallback(
                    "AAPL", ["p"], namespace="quotes"
                )

        assert (quote, False) == (first.data, first.cached)
        assert (quote, True, "cache") == (second.data, second.cached, second.source)
        assert 1 == len(provider.calls)

    async def test_a_merged_value_is_served_from_the_cache(
        self, open_orch: Open
    ) -> None:
        """A merge is cached, and the next merge of the key is a hit."""
        first = FakeProvider("first", {"AAPL": SuiteQuote("AAPL", 1.0)})
        second = FakeProvider("second", {"AAPL": SuiteQuote("AAPL", 2.0, ("X",))})

        async with open_orch(first, second) as orch:
            with trio.fail_after(DEADLINE):
                merged = await orch.fetch_with_merge(
                    "AAPL", ["first", "second"], namespace="quotes"
                )
                again = await orch.fetch_with_merge(
                    "AAPL", ["first", "second"], namespace="quotes"
                )

        assert (merged.data, True) == (again.data, again.cached)
        assert (1, 1) == (len(first.calls), len(second.calls))

    async def test_a_cached_batch_takes_no_provider_call(self, open_orch: Open) -> None:
        """A batch of keys already cached is answered by the cache alone."""
        quotes = {key: SuiteQuote(key, float(index)) for index, key in enumerate("ABC")}
        provider = FakeBatchProvider("p", quotes, max_batch_size=2)

        async with open_orch(provider) as orch:
            with trio.fail_after(DEADLINE):
                first = await orch.batch_fetch(["A", "B", "C"], "p", namespace="quotes")
                second = await orch.batch_fetch(
                    ["C", "B", "A"], "p", namespace="quotes"
                )

        assert (3, 2) == (first.summary.fresh, first.summary.provider_calls)
        assert (3, 0) == (second.summary.cached, second.summary.provider_calls)
        assert quotes == {key: result.data for key, result in second.items()}

    async def test_a_batch_reads_what_a_single_fetch_cached(
        self, open_orch: Open
    ) -> None:
        """Single fetches and batches share entries: only the misses are fetched."""
        quotes = {key: SuiteQuote(key, 1.0) for key in "AB"}
        provider = FakeBatchProvider("p", quotes)

        async with open_orch(provider) as orch:
            with trio.fail_after(DEADLINE):
                await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
                batch = await orch.batch_fetch(["A", "B"], "p", namespace="quotes")

        assert (True, False) == (batch["A"].cached, batch["B"].cached)
        assert [("A",), ("B",)] == [call.keys for call in provider.calls]

    async def test_invalidate_removes_the_value(self, open_orch: Open) -> None:
        """After invalidate, the next fetch asks the provider again."""
        provider = FakeProvider("p", {"AAPL": SuiteQuote("AAPL", 1.0)})

        async with open_orch(provider) as orch:
            with trio.fail_after(DEADLINE):
                await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
                await orch.invalidate("quotes", "AAPL")
                again = await orch.fetch_with_fallback(
                    "AAPL", ["p"], namespace="quotes"
                )

        assert (False, 2) == (again.cached, len(provider.calls))

    async def test_mutating_a_served_value_changes_nothing_cached(
        self, open_orch: Open
    ) -> None:
        """A caller that changes its value never changes the next caller's."""
        provider = FakeProvider("p", {"L": [1, 2, 3]})

        async with open_orch(provider) as orch:
            with trio.fail_after(DEADLINE):
                fetched = await orch.fetch_with_fallback("L", ["p"], namespace="lists")
                assert fetched.data is not None
                fetched.data.append(4)
                first_hit = await orch.fetch_with_fallback(
                    "L", ["p"], namespace="lists"
                )
                assert first_hit.data is not None
                first_hit.data.clear()
                second_hit = await orch.fetch_with_fallback(
                    "L", ["p"], namespace="lists"
                )

        assert ([1, 2, 3], True) == (second_hit.data, second_hit.cached)

    async def test_a_ttl_of_zero_stores_nothing(self, open_orch: Open) -> None:
        """With no fresh and no stale window, every fetch asks the provider."""
        provider = FakeProvider("p", {"AAPL": SuiteQuote("AAPL", 1.0)})

        async with open_orch(provider, ttl={"fresh": 0, "stale": 0}) as orch:
            with trio.fail_after(DEADLINE):
                await orch.fetch_with_fallback("AAPL", ["p"], namespace="quotes")
                again = await orch.fetch_with_fallback(
                    "AAPL", ["p"], namespace="quotes", allow_stale=True
                )
                writes = orch._cache.counters.writes

        assert (False, 2, 0) == (again.cached, len(provider.calls), writes)

    async def test_not_found_is_remembered_for_negative_ttl(
        self, open_orch: Open
    ) -> None:
        """An unknown key costs one provider call while its NOT_FOUND is held."""
        provider = FakeProvider("p")

        async with open_orch(provider, negative_ttl=60) as orch:
            with trio.fail_after(DEADLINE):
                await orch.fetch_with_fallback("NOPE", ["p"], namespace="quotes")
                again = await orch.fetch_with_fallback(
                    "NOPE", ["p"], namespace="quotes"
                )

        assert (None, False, True, True) == (
            again.data,
            again.ok,
            again.cached,
            again.not_found,
        )
        assert 1 == len(provider.calls)

    async def test_a_batch_remembers_and_reads_not_found(self, open_orch: Open) -> None:
        """Batches remember unknown keys and answer them from the cache."""
        provider = FakeBatchProvider("p", {"A": SuiteQuote("A", 1.0)})

        async with open_orch(provider, negative_ttl=60) as orch:
            with trio.fail_after(DEADLINE):
                await orch.batch_fetch(["A", "NOPE"], "p", namespace="quotes")
                single = await orch.fetch_with_fallback(
                    "NOPE", ["p"], namespace="quotes"
                )
                batch = await orch.batch_fetch(["A", "NOPE"], "p", namespace="quotes")

        assert (True, True) == (single.not_found, batch["NOPE"].not_found)
        assert (1, 1, 0) == (
            batch.summary.cached,
            batch.summary.failed,
            batch.summary.provider_calls,
        )
        assert 1 == len(provider.calls)

    async def test_invalidate_forgets_a_remembered_not_found(
        self, open_orch: Open
    ) -> None:
        """After invalidate, a key once unknown is asked for again."""
        provider = FakeProvider("p")

        async with open_orch(provider, negative_ttl=60) as orch:
            with trio.fail_after(DEADLINE):
                await orch.fetch_with_fallback("NEW", ["p"], namespace="quotes")
                provider.data["NEW"] = SuiteQuote("NEW", 1.0)
                await orch.invalidate("quotes", "NEW")
                again = await orch.fetch_with_fallback("NEW", ["p"], namespace="quotes")

        assert (SuiteQuote("NEW", 1.0), "p") == (again.data, again.source)
