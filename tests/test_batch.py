"""batch_fetch: one cache round trip, chunked calls, results matched by key."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

import dso
from dso.testing import Delay, FakeBatchProvider, FakeProvider


MAX = 4


@asynccontextmanager
async def orchestrator(*providers: FakeProvider) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 60, "stale": 600}}},
            # Retries have their own tests (test_retries.py).
            "providers": {
                provider.name: {"max_concurrency": 2, "retries": {"enabled": False}}
                for provider in providers
            },
        }
    )
    async with dso.open_orchestrator(config, providers=providers) as orch:
        yield orch


def symbols(count: int) -> list[str]:
    return [f"S{index}" for index in range(count)]


@pytest.mark.parametrize("count", [0, 1, MAX - 1, MAX, MAX + 1, 2 * MAX])
async def test_misses_are_chunked_by_max_batch_size(count: int) -> None:
    """N misses take ceil(N / max) calls, none larger than max_batch_size."""
    keys = symbols(count)
    provider = FakeBatchProvider(
        "batch", {key: key.lower() for key in keys}, max_batch_size=MAX
    )

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(keys, "batch", namespace="quotes")

    assert -(-count // MAX) == len(provider.calls)
    assert all(len(call.keys) <= MAX for call in provider.calls)
    assert {key: key.lower() for key in keys} == {k: r.data for k, r in result.items()}
    assert count == result.summary.fresh == result.summary.successful


async def test_duplicate_keys_are_fetched_once_in_first_order() -> None:
    """Repeated keys become one key each, in the order first asked."""
    provider = FakeBatchProvider("batch", {"A": 1, "B": 2}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(
            ["B", "A", "B", "A"], "batch", namespace="quotes"
        )

    assert ["B", "A"] == list(result)
    assert [("B", "A")] == [call.keys for call in provider.calls]
    assert 2 == result.summary.total


async def test_omitted_and_reordered_keys_are_matched_by_key() -> None:
    """An answer in another order is matched by key; a missing key is NOT_FOUND."""
    provider = FakeBatchProvider("batch", {"A": 1, "C": 3}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(["A", "B", "C"], "batch", namespace="quotes")

    assert {"A": 1, "B": None, "C": 3} == {k: r.data for k, r in result.items()}
    assert dso.ErrorCode.NOT_FOUND == result["B"].attempts[0].code
    assert (2, 1) == (result.summary.successful, result.summary.failed)


async def test_a_failed_chunk_fails_only_its_keys() -> None:
    """One chunk's error marks its own keys failed; the other chunk succeeds."""
    keys = symbols(2 * MAX)
    provider = FakeBatchProvider("batch", dict.fromkeys(keys, 1), max_batch_size=MAX)
    provider.script(keys[0], dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "boom"))

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(keys, "batch", namespace="quotes")

    failed = [key for key, item in result.items() if not item.ok]
    assert keys[:MAX] == failed
    assert dso.ErrorCode.UNAVAILABLE == result[keys[1]].attempts[0].code
    assert 2 == result.summary.provider_calls


async def test_failed_keys_fall_back_per_key() -> None:
    """Keys the batch provider did not deliver go to the fallback providers."""
    batch = FakeBatchProvider("batch", {"A": 1}, max_batch_size=MAX)
    single = FakeProvider("single", {"B": 2})

    async with orchestrator(batch, single) as orch:
        result = await orch.batch_fetch(
            ["A", "B", "C"], "batch", namespace="quotes", fallback_providers=["single"]
        )

    assert {"A": 1, "B": 2, "C": None} == {k: r.data for k, r in result.items()}
    assert "single" == result["B"].source
    assert [("batch", dso.ErrorCode.NOT_FOUND), ("single", None)] == [
        (attempt.provider, attempt.code) for attempt in result["B"].attempts
    ]
    assert 3 == result.summary.provider_calls


async def test_cached_keys_are_not_fetched_again() -> None:
    """The second batch reads hits from the cache and fetches only the new key."""
    provider = FakeBatchProvider("batch", {"A": 1, "B": 2, "C": 3}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        await orch.batch_fetch(["A", "B"], "batch", namespace="quotes")
        result = await orch.batch_fetch(["A", "B", "C"], "batch", namespace="quotes")

    assert [("A", "B"), ("C",)] == [call.keys for call in provider.calls]
    assert (3, 2, 1, 1) == (
        result.summary.successful,
        result.summary.cached,
        result.summary.fresh,
        result.summary.provider_calls,
    )


async def test_single_key_provider_is_called_per_key_within_its_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A provider without batch support gets one call per key, two at a time."""
    provider = FakeProvider("limited", dict.fromkeys(symbols(6), 0), delay=1)

    async with orchestrator(provider) as orch:
        start = trio.current_time()
        result = await orch.batch_fetch(symbols(6), "limited", namespace="quotes")
        elapsed = trio.current_time() - start

    assert 6 == len(provider.calls) == result.summary.provider_calls
    assert 3 == pytest.approx(elapsed)


async def test_failed_keys_serve_stale_when_allowed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With allow_stale, keys whose provider failed get their expired value."""
    provider = FakeBatchProvider("batch", {"A": 1, "B": 2}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        await orch.batch_fetch(["A"], "batch", namespace="quotes")
        await trio.sleep(100)
        provider.fail_all()
        result = await orch.batch_fetch(
            ["A", "B"], "batch", namespace="quotes", allow_stale=True
        )

    assert (1, True) == (result["A"].data, result["A"].stale)
    assert (None, False) == (result["B"].data, result["B"].ok)
    assert (1, 1, 1) == (
        result.summary.stale,
        result.summary.failed,
        result.summary.successful,
    )


async def test_queueing_for_the_bulkhead_is_not_a_provider_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Keys waiting for a free place do not time out or trip the breaker."""
    provider = FakeProvider("limited", dict.fromkeys(symbols(40), 0), delay=1)

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(symbols(40), "limited", namespace="quotes")
        state = orch.statistics().breakers["limited"]

    assert (40, 0) == (result.summary.successful, result.summary.failed)
    assert dso.BreakerState.CLOSED == state


async def test_what_arrived_before_the_deadline_is_cached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch cut short keeps and caches the chunks that did answer."""
    provider = FakeBatchProvider("batch", {"A": 1, "B": 2, "C": 3}, max_batch_size=2)
    provider.script("C", Delay(10, 3))

    async with orchestrator(provider) as orch:
        first = await orch.batch_fetch(
            ["A", "B", "C"], "batch", namespace="quotes", timeout=5
        )
        second = await orch.batch_fetch(["A", "B"], "batch", namespace="quotes")

    assert {"A": 1, "B": 2, "C": None} == {k: r.data for k, r in first.items()}
    assert dso.ErrorCode.TIMEOUT == first["C"].attempts[-1].code
    assert 2 == second.summary.cached


async def test_a_cached_result_is_an_ordinary_frozen_fetch_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key served from the cache equals, hashes and freezes like a hand-built one."""
    provider = FakeBatchProvider("batch", {"A": 1, "B:%": 2}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        await orch.batch_fetch(["A", "B:%"], "batch", namespace="quotes")
        await trio.sleep(5)
        result = await orch.batch_fetch(["B:%", "A"], "batch", namespace="quotes")

    expected = {
        key: dso.FetchResult(key, "quotes", data, "cache", True, False, 5.0)
        for key, data in [("B:%", 2), ("A", 1)]
    }
    assert list(expected.items()) == list(result.items())
    assert [hash(r) for r in expected.values()] == [hash(r) for r in result.values()]
    assert {dso.FetchResult} == {type(r) for r in result.values()}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result["A"].data = 3  # type: ignore[misc]


async def test_a_partly_cached_batch_keeps_the_order_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Hits, fetched keys and stale keys come back in the order asked, counted."""
    provider = FakeBatchProvider(
        "batch", {"A": 1, "B": 2, "C": 3, "D": 4}, max_batch_size=MAX
    )

    async with orchestrator(provider) as orch:
        await orch.batch_fetch(["C"], "batch", namespace="quotes")
        await trio.sleep(100)
        await orch.batch_fetch(["A"], "batch", namespace="quotes")
        del provider.data["C"]
        result = await orch.batch_fetch(
            ["D", "C", "A", "B"], "batch", namespace="quotes", allow_stale=True
        )

    assert [("D", 4, False), ("C", 3, True), ("A", 1, True), ("B", 2, False)] == [
        (key, answer.data, answer.cached) for key, answer in result.items()
    ]
    assert (4, 1, 2, 1) == (
        result.summary.successful,
        result.summary.cached,
        result.summary.fresh,
        result.summary.stale,
    )


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        (["A", "\ud800", "B"], ValueError),
        (["A", "\ud83d", "\ude00"], ValueError),
        (["A", "é", 3], TypeError),
    ],
)
async def test_one_bad_key_refuses_the_whole_batch(
    keys: list[str], error: type[Exception]
) -> None:
    """A lone surrogate (even one half of a split pair) or a non-string fails it."""
    provider = FakeBatchProvider("batch", {"A": 1}, max_batch_size=MAX)

    async with orchestrator(provider) as orch:
        with trio.fail_after(5), pytest.raises(error, match="key must be"):
            await orch.batch_fetch(keys, "batch", namespace="quotes")

    assert [] == provider.calls
