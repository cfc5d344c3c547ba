"""fetch_with_merge: every provider at once, merged, partial when some fail."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import dso
from dso.testing import FakeProvider, Hang


@attrs.frozen
class Profile:
    symbol: str
    name: str | None = None
    sector: str | None = None
    employees: int | None = None


PROFILES = dso.Namespace("profiles", Profile, merge=dso.FieldPriority())


@asynccontextmanager
async def orchestrator(*providers: FakeProvider) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"profiles": {"ttl": {"fresh": 100, "partial": 10}}},
            # Retries have their own tests (test_retries.py).
            "providers": {
                provider.name: {"timeout": 3, "retries": {"enabled": False}}
                for provider in providers
            },
        }
    )
    async with dso.open_orchestrator(
        config, providers=providers, namespaces=[PROFILES]
    ) as orch:
        yield orch


async def test_merge_fills_fields_in_priority_order() -> None:
    """Each field comes from the first provider that has it."""
    primary = FakeProvider("primary", {"AAPL": Profile("AAPL", name="Apple Inc.")})
    secondary = FakeProvider(
        "secondary", {"AAPL": Profile("AAPL", name="APPLE", sector="Tech")}
    )

    async with orchestrator(primary, secondary) as orch:
        result = await orch.fetch_with_merge(
            "AAPL", ["primary", "secondary"], namespace="profiles"
        )

    assert Profile("AAPL", name="Apple Inc.", sector="Tech") == result.data
    assert ("primary", "secondary") == result.sources
    assert not result.partial


async def test_failing_and_hanging_providers_do_not_stop_the_merge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The merge returns once the healthy ones finish and the hanging one times out."""
    good = FakeProvider("good", {"AAPL": Profile("AAPL", name="Apple")}, delay=1)
    broken = FakeProvider("broken")
    broken.fail_all()
    hangs = FakeProvider("hangs")
    hangs.script("AAPL", Hang())

    async with orchestrator(good, broken, hangs) as orch:
        start = trio.current_time()
        result = await orch.fetch_with_merge(
            "AAPL", ["good", "broken", "hangs"], namespace="profiles"
        )
        elapsed = trio.current_time() - start

    assert Profile("AAPL", name="Apple") == result.data
    assert result.partial
    assert [None, dso.ErrorCode.UNAVAILABLE, dso.ErrorCode.TIMEOUT] == [
        attempt.code for attempt in result.attempts
    ]
    assert 3 == pytest.approx(elapsed)
    assert 1 == len(good.calls)


async def test_too_few_successes_fail_the_merge() -> None:
    """With fewer successes than min_providers, there is no data."""
    good = FakeProvider("good", {"AAPL": Profile("AAPL")})
    empty = FakeProvider("empty")

    async with orchestrator(good, empty) as orch:
        result = await orch.fetch_with_merge(
            "AAPL", ["good", "empty"], namespace="profiles", min_providers=2
        )

    assert result.data is None
    assert [None, dso.ErrorCode.NOT_FOUND] == [a.code for a in result.attempts]


async def test_partial_merge_expires_sooner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A partial merge is fresh for the shorter partial TTL, a full one longer."""
    good = FakeProvider("good", {"A": Profile("A"), "B": Profile("B")})
    half = FakeProvider("half", {"B": Profile("B", name="Bee")})

    async with orchestrator(good, half) as orch:
        for key in ["A", "B"]:
            await orch.fetch_with_merge(key, ["good", "half"], namespace="profiles")
        await trio.sleep(20)
        partial = await orch.fetch_with_merge(
            "A", ["good", "half"], namespace="profiles"
        )
        full = await orch.fetch_with_merge("B", ["good", "half"], namespace="profiles")

    assert (False, True) == (partial.cached, full.cached)


async def test_merged_value_comes_back_from_cache_as_the_same_type() -> None:
    """A cached merge is decoded into the namespace's attrs class."""
    good = FakeProvider("good", {"A": Profile("A", employees=3)})

    async with orchestrator(good) as orch:
        await orch.fetch_with_merge("A", ["good"], namespace="profiles")
        cached = await orch.fetch_with_merge("A", ["good"], namespace="profiles")

    assert (Profile("A", employees=3), True) == (cached.data, cached.cached)


async def test_min_providers_out_of_range_is_refused() -> None:
    """min_providers beyond the number of providers is a ValueError."""
    async with orchestrator(FakeProvider("good")) as orch:
        with pytest.raises(ValueError, match="min_providers"):
            await orch.fetch_with_merge(
                "A", ["good"], namespace="profiles", min_providers=2
            )


def news_merge() -> Any:
    return dso.ConcatDedupe(
        identity=lambda item: item["url"],
        sort_key=lambda item: item["at"],
        reverse=True,
        limit=3,
    )


def test_concat_dedupe_keeps_first_and_newest() -> None:
    """Duplicates keep the earlier provider's copy; the newest come first."""
    first = [{"url": "a", "at": 1, "by": "first"}, {"url": "b", "at": 5, "by": "first"}]
    second = [{"url": "a", "at": 1, "by": "second"}, {"url": "c", "at": 3, "by": "x"}]

    merged = news_merge()([("first", first), ("second", second)])

    assert ["b", "c", "a"] == [item["url"] for item in merged]
    assert "first" == merged[2]["by"]


async def test_a_cached_partial_merge_is_served_still_marked_partial(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A merge from fewer than all providers stays partial fresh, stale or batched."""
    good = FakeProvider("good", {"A": Profile("A", name="Apple")})
    down = FakeProvider("down")
    down.fail_all()

    async with orchestrator(good, down) as orch:
        fetched = await orch.fetch_with_merge(
            "A", ["good", "down"], namespace="profiles"
        )
        fresh = await orch.fetch_with_merge("A", ["good", "down"], namespace="profiles")
        batched = await orch.batch_fetch(["A"], "good", namespace="profiles")
        await trio.sleep(20)
        good.fail_all()
        stale = await orch.fetch_with_merge(
            "A", ["good", "down"], namespace="profiles", allow_stale=True
        )
        stale_batch = await orch.batch_fetch(
            ["A"], "good", namespace="profiles", allow_stale=True
        )

    assert [
        (False, False, True),
        (True, False, True),
        (True, False, True),
        (True, True, True),
        (True, True, True),
    ] == [
        (result.cached, result.stale, result.partial)
        for result in [fetched, fresh, batched["A"], stale, stale_batch["A"]]
    ]
