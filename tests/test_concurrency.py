"""Structured concurrency: de-duplication, deadlines, hedging, revalidation.

Every test runs on trio's autojump clock, has a deadline, and checks that
nothing is left in flight afterwards.
"""

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso._clock import trio_wall_clock
from dso.testing import Delay, FakeCacheBackend, FakeProvider, Hang


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, **settings: Any
) -> AsyncIterator[dso.Orchestrator]:
    namespace = {"ttl": {"fresh": 60, "stale": 3600}}
    namespace.update(settings.pop("namespace", {}))
    cache = settings.pop("cache", None)
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": namespace},
            # Retries have their own tests (test_retries.py).
            "providers": {
                provider.name: {
                    "timeout": 100,
                    "max_concurrency": 5,
                    "retries": {"enabled": False},
                }
                for provider in providers
            },
            **settings,
        }
    )
    with trio.fail_after(3600):
        async with dso.open_orchestrator(
            config, providers=providers, cache=cache
        ) as orch:
            yield orch
            await trio.testing.wait_all_tasks_blocked()
            assert 0 == orch.statistics().calls_in_flight


async def fetch(orch: dso.Orchestrator, key: str, *names: str, **options: Any) -> Any:
    return await orch.fetch_with_fallback(
        key, list(names), namespace="quotes", **options
    )


async def test_ten_thousand_requests_make_one_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """10,000 concurrent requests for one key make one provider call."""
    provider = FakeProvider("p", {"A": 1}, delay=1)
    results: list[Any] = []

    async with orchestrator(provider) as orch:

        async def request() -> None:
            results.append((await fetch(orch, "A", "p")).data)

        async with trio.open_nursery() as nursery:
            for _ in range(10_000):
                nursery.start_soon(request)

        joins = orch.statistics().dedup_joins

    assert (1, 9_999) == (len(provider.calls), joins)
    assert [1] * 10_000 == results


async def test_staggered_waiters_all_get_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Waiters joining and leaving at different times leave the rest served."""
    provider = FakeProvider("p", {"A": 1}, delay=10)
    served: list[int] = []
    left: list[int] = []

    async with orchestrator(provider) as orch:

        async def waiter(index: int) -> None:
            await trio.sleep(index)
            with trio.move_on_after(3.5) as scope:
                served.append((await fetch(orch, "A", "p")).data)
            if scope.cancelled_caught:
                left.append(index)

        async with trio.open_nursery() as nursery:
            for index in range(10):
                nursery.start_soon(waiter, index)

    assert 1 == len(provider.calls)
    assert [0, 1, 2, 3, 4, 5, 6] == sorted(left)
    assert [1, 1, 1] == served


async def test_every_waiter_gone_cancels_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the last waiter leaves, the provider call is cancelled."""
    provider = FakeProvider("p")
    provider.script("A", Hang())

    async with orchestrator(provider) as orch:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(_give_up_after, orch, 1)

        await trio.testing.wait_all_tasks_blocked()
        statistics = orch.breaker("p").statistics()

    assert 1 == len(provider.calls)
    assert (dso.BreakerState.CLOSED, 0) == (
        statistics.state,
        statistics.consecutive_failures,
    )


async def _give_up_after(orch: dso.Orchestrator, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await fetch(orch, "A", "p")


async def test_abandoned_calls_may_finish_and_fill_the_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With finish_abandoned_calls, a call nobody waits for still caches."""
    provider = FakeProvider("p", {"A": 1}, delay=5)

    async with orchestrator(provider, finish_abandoned_calls=True) as orch:
        await _give_up_after(orch, 1)
        await trio.sleep(10)
        later = await fetch(orch, "A", "p")

    assert (1, True, 1) == (later.data, later.cached, len(provider.calls))


async def test_an_error_reaches_every_waiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A provider failure is every waiter's result, from one call."""
    provider = FakeProvider("p")
    provider.script("A", Delay(1, dso.ProviderError(dso.ErrorCode.AUTH, "bad key")))
    results: list[Any] = []

    async with orchestrator(provider) as orch:

        async def request() -> None:
            results.append(await fetch(orch, "A", "p"))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(request)

    assert 1 == len(provider.calls)
    assert [[dso.ErrorCode.AUTH]] * 5 == [
        [attempt.code for attempt in result.attempts] for result in results
    ]


async def test_a_request_after_invalidation_does_not_join_the_old_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After invalidate, a new request starts a new call, whose answer is kept."""
    provider = FakeProvider("p")
    provider.script("A", Delay(10, "old"), Delay(1, "new"))
    answers: dict[str, Any] = {}

    async with orchestrator(provider) as orch:

        async def first() -> None:
            answers["first"] = (await fetch(orch, "A", "p")).data

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.sleep(1)
            await orch.invalidate("quotes", "A")
            answers["second"] = (await fetch(orch, "A", "p")).data

        cached = await fetch(orch, "A", "p")

    assert {"first": "old", "second": "new"} == answers
    assert ("new", True) == (cached.data, cached.cached)
    assert 2 == len(provider.calls)


async def test_a_later_joiner_extends_the_call_and_an_earlier_one_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The call works to the latest deadline; each waiter stops at its own."""
    provider = FakeProvider("p", {"A": 1}, delay=8)
    results: dict[str, Any] = {}

    async with orchestrator(provider) as orch:

        async def request(name: str, timeout: float) -> None:
            results[name] = await fetch(orch, "A", "p", timeout=timeout)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(request, "short", 5)
            await trio.sleep(1)
            nursery.start_soon(request, "long", 20)

    assert (None, [dso.ErrorCode.TIMEOUT]) == (
        results["short"].data,
        [attempt.code for attempt in results["short"].attempts],
    )
    assert 1 == results["long"].data
    assert 1 == len(provider.calls)


async def test_the_deadline_bounds_the_whole_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No attempt starts after the call's deadline, and the attempts are listed."""
    first = FakeProvider("first")
    first.script("A", Delay(4, dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "down")))
    second = FakeProvider("second")
    second.script("A", Hang())
    third = FakeProvider("third", {"A": 3})

    async with orchestrator(first, second, third) as orch:
        start = trio.current_time()
        result = await fetch(orch, "A", "first", "second", "third", timeout=6)
        elapsed = trio.current_time() - start

    assert [
        dso.ErrorCode.UNAVAILABLE,
        dso.ErrorCode.TIMEOUT,
        dso.ErrorCode.TIMEOUT,
    ] == [attempt.code for attempt in result.attempts]
    assert 6 == pytest.approx(elapsed)
    assert [] == third.calls


async def test_a_hedge_wins_over_a_slow_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow primary is overtaken by the hedge; the loser is cancelled."""
    slow = FakeProvider("slow")
    slow.script("A", Delay(10, "slow answer"))
    fast = FakeProvider("fast", {"A": "fast answer"}, delay=1)

    async with orchestrator(slow, fast) as orch:
        start = trio.current_time()
        result = await fetch(orch, "A", "slow", "fast", hedge_after=2)
        elapsed = trio.current_time() - start
        slow_breaker = orch.breaker("slow").statistics()

    assert ("fast answer", "fast") == (result.data, result.source)
    assert [("slow", dso.ErrorCode.CANCELLED), ("fast", None)] == [
        (attempt.provider, attempt.code) for attempt in result.attempts
    ]
    assert 3 == pytest.approx(elapsed)
    assert 0 == slow_breaker.consecutive_failures


async def test_a_hedge_that_loses_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When the primary answers after the hedge started, the hedge is cancelled."""
    primary = FakeProvider("primary")
    primary.script("A", Delay(3, "primary answer"))
    hedge = FakeProvider("hedge")
    hedge.script("A", Delay(10, "hedge answer"))

    async with orchestrator(primary, hedge) as orch:
        result = await fetch(orch, "A", "primary", "hedge", hedge_after=2)

    assert ("primary answer", "primary") == (result.data, result.source)
    assert [None, dso.ErrorCode.CANCELLED] == [a.code for a in result.attempts]


async def test_a_failure_starts_the_next_provider_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With hedging on, a provider that fails fast does not wait for the timer."""
    broken = FakeProvider("broken")
    broken.fail_all()
    good = FakeProvider("good", {"A": 1}, delay=1)

    async with orchestrator(broken, good) as orch:
        start = trio.current_time()
        result = await fetch(orch, "A", "broken", "good", hedge_after=30)
        elapsed = trio.current_time() - start

    assert (1, 1) == (result.data, pytest.approx(elapsed))


async def test_stale_while_revalidate_serves_at_once_and_refreshes_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A just-expired value is served at once; concurrent reads share one refresh."""
    provider = FakeProvider("p")
    provider.script("A", "v1", Delay(5, "v2"))

    async with orchestrator(provider, namespace={"revalidate_within": 30}) as orch:
        await fetch(orch, "A", "p")
        await trio.sleep(70)
        served = []
        for _ in range(3):
            served.append(await fetch(orch, "A", "p"))
        await trio.sleep(10)
        refreshed = await fetch(orch, "A", "p")

    assert [("v1", True)] * 3 == [(r.data, r.stale) for r in served]
    assert ("v2", False) == (refreshed.data, refreshed.stale)
    assert 2 == len(provider.calls)


async def test_too_old_for_revalidation_waits_for_the_provider(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Past revalidate_within, the caller waits for a fresh value as usual."""
    provider = FakeProvider("p")
    provider.script("A", "v1", "v2")

    async with orchestrator(provider, namespace={"revalidate_within": 30}) as orch:
        await fetch(orch, "A", "p")
        await trio.sleep(100)
        result = await fetch(orch, "A", "p")

    assert ("v2", False) == (result.data, result.stale)


async def test_a_timed_out_attempt_holds_its_bulkhead_place_until_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The bulkhead bounds calls really running, timed out or not."""
    provider = FakeProvider("p", {f"K{i}": i for i in range(10)}, delay=1)
    running = 0
    peak = 0
    original = provider.fetch

    async def counting(key: str, ctx: dso.ProviderContext) -> object:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await original(key, ctx)
        finally:
            running -= 1

    provider.fetch = counting  # type: ignore[method-assign]

    async with orchestrator(provider) as orch:
        result = await orch.batch_fetch(
            [f"K{i}" for i in range(10)], "p", namespace="quotes"
        )

    assert (10, 5) == (result.summary.successful, peak)


async def test_shutdown_ends_background_work_and_waiters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block cancels calls in flight; waiters get OrchestratorClosed."""
    provider = FakeProvider("p")
    provider.script("A", Hang())
    outcomes: list[type[BaseException]] = []

    async def waiter(orch: dso.Orchestrator) -> None:
        try:
            await fetch(orch, "A", "p")
        except dso.OrchestratorClosed as exc:
            outcomes.append(type(exc))

    with trio.fail_after(10):
        async with trio.open_nursery() as outside:
            config = dso.Config(plugins=dso.PluginSettings(autoload=False))
            quotes = dso.Namespace("quotes")
            async with dso.open_orchestrator(
                config, providers=[provider], namespaces=[quotes]
            ) as orch:
                for _ in range(3):
                    # The callers live outside the orchestrator on purpose.
                    outside.start_soon(waiter, orch)  # noqa: ASYNC111
                await trio.sleep(1)

    assert [dso.OrchestratorClosed] * 3 == outcomes
    with pytest.raises(dso.OrchestratorClosed):
        await fetch(orch, "A", "p")


async def test_overlapping_batches_fetch_each_key_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two concurrent batches sharing keys call the provider once per key."""
    provider = FakeProvider("p", {key: key.lower() for key in "ABCD"}, delay=2)

    async with orchestrator(provider) as orch:
        results = {}

        async def batch(name: str, keys: list[str]) -> None:
            results[name] = await orch.batch_fetch(keys, "p", namespace="quotes")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(batch, "first", ["A", "B", "C"])
            await trio.sleep(1)
            nursery.start_soon(batch, "second", ["B", "C", "D"])

    asked = sorted(key for call in provider.calls for key in call.keys)
    assert ["A", "B", "C", "D"] == asked
    assert {"B": "b", "C": "c", "D": "d"} == {
        key: result.data for key, result in results["second"].items()
    }
    assert 1 == results["second"].summary.provider_calls


async def test_a_single_fetch_waits_for_the_batch_fetching_its_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A fallback fetch for a key a batch is fetching shares the batch's call."""
    provider = FakeProvider("p", {"A": 1, "B": 2}, delay=2)

    async with orchestrator(provider) as orch:
        single = []

        async def one() -> None:
            await trio.sleep(1)
            single.append(await fetch(orch, "A", "p"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            batch = await orch.batch_fetch(["A", "B"], "p", namespace="quotes")

    assert (1, "p") == (single[0].data, single[0].source)
    assert 2 == len(provider.calls)
    assert 2 == batch.summary.successful


async def test_a_fetch_waiting_on_a_cut_short_batch_starts_its_own_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When a batch gives up on a key, requests waiting for it fetch it themselves."""
    provider = FakeProvider("p")
    provider.script("A", Delay(10, 1), Delay(1, 2))

    async with orchestrator(provider) as orch:
        single = []

        async def one() -> None:
            await trio.sleep(1)
            single.append(await fetch(orch, "A", "p", timeout=30))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            batch = await orch.batch_fetch(["A"], "p", namespace="quotes", timeout=3)

    assert batch["A"].data is None
    assert 2 == single[0].data


async def test_a_failing_refresh_is_dropped_and_the_stale_value_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A background refresh that raises does not take the orchestrator down."""
    provider = FakeProvider("p", {"A": 1})
    calls = 0

    def merge(values: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ValueError("merge failed")
        return values[0][1]

    async with orchestrator(provider, namespace={"revalidate_within": 30}) as orch:
        await orch.fetch_with_merge("A", ["p"], namespace="quotes", merge=merge)
        await trio.sleep(61)
        stale = await orch.fetch_with_merge("A", ["p"], namespace="quotes", merge=merge)
        await trio.sleep(1)
        again = await orch.fetch_with_merge("A", ["p"], namespace="quotes", merge=merge)

    assert (1, True) == (stale.data, stale.stale)
    assert 1 == again.data


async def test_invalidation_keeps_a_running_batch_from_caching_its_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A batch's value fetched before invalidate is not cached after it."""
    provider = FakeProvider("p")
    provider.script("A", Delay(2, "old"), "new")

    async with orchestrator(provider) as orch:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(orch.batch_fetch, ["A"], "p", namespace="quotes")
            )
            await trio.sleep(1)
            await orch.invalidate("quotes", "A")
        after = await fetch(orch, "A", "p")

    assert ("new", False) == (after.data, after.cached)


async def test_invalidation_during_a_batchs_fallbacks_keeps_its_value_uncached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A primary's value is not cached when invalidated while fallbacks run."""
    primary = FakeProvider("p", {"A": "old"})
    fallback = FakeProvider("f")
    fallback.script("B", Delay(2, "b"))

    async with orchestrator(primary, fallback) as orch:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        orch.batch_fetch,
                        ["A", "B"],
                        "p",
                        namespace="quotes",
                        fallback_providers=["f"],
                    )
                )
                await trio.sleep(1)
                await orch.invalidate("quotes", "A")
            primary.data["A"] = "new"
            after = await fetch(orch, "A", "p")

    assert ("new", False) == (after.data, after.cached)


@pytest.mark.parametrize(
    "answer",
    [dso.ProviderError(dso.ErrorCode.NOT_FOUND, "f does not know A"), "old"],
    ids=["not-found", "value"],
)
async def test_invalidation_during_a_batchs_fallbacks_keeps_their_answer_uncached(
    autojump_clock: trio.testing.MockClock, answer: object
) -> None:
    """A fallback's answer had before an invalidation is not cached after it."""
    primary = FakeProvider("p")
    fallback = FakeProvider("f")
    fallback.script("A", Delay(2, answer))

    async with orchestrator(primary, fallback, namespace={"negative_ttl": 600}) as orch:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        orch.batch_fetch,
                        ["A"],
                        "p",
                        namespace="quotes",
                        fallback_providers=["f"],
                    )
                )
                await trio.sleep(1)
                await orch.invalidate("quotes", "A")
            primary.data["A"] = "new"
            after = await fetch(orch, "A", "p")

    assert ("new", False) == (after.data, after.cached)


async def test_a_batch_cancelled_during_its_fallbacks_leaves_no_call_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The keys a batch still held are released when its caller gives up."""
    primary = FakeProvider("p", {"A": "a"})
    fallback = FakeProvider("f")
    fallback.script("B", Delay(10, "b"))

    async with orchestrator(primary, fallback) as orch:
        with trio.move_on_after(1):
            await orch.batch_fetch(
                ["A", "B"], "p", namespace="quotes", fallback_providers=["f"]
            )
        # Past the fallback's own call, which finishes for the cache.
        await trio.sleep(20)
        in_flight = orch.statistics().calls_in_flight

    assert 0 == in_flight


async def test_a_callers_short_timeout_does_not_trip_the_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Callers running out of time say nothing about the provider's health."""
    provider = FakeProvider("p", {f"K{i}": i for i in range(10)}, delay=1)

    async with orchestrator(provider) as orch:
        for index in range(8):
            result = await fetch(orch, f"K{index}", "p", timeout=0.5)
        statistics = orch.breaker("p").statistics()

    assert dso.ErrorCode.TIMEOUT == result.attempts[0].code
    assert (dso.BreakerState.CLOSED, 0) == (
        statistics.state,
        statistics.consecutive_failures,
    )


async def test_the_hedge_winner_does_not_wait_for_a_stubborn_loser(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first answer goes out even if a loser takes long to stop."""

    class Stubborn(FakeProvider):
        async def fetch(self, key: str, ctx: dso.ProviderContext) -> object:
            with trio.CancelScope(shield=True):
                await trio.sleep(50)
            return "late"

    fast = FakeProvider("fast", {"A": "fast answer"}, delay=1)

    async with orchestrator(Stubborn("slow"), fast) as orch:
        start = trio.current_time()
        result = await fetch(orch, "A", "slow", "fast", hedge_after=2, timeout=10)
        elapsed = trio.current_time() - start
        await trio.sleep(60)

    assert ("fast answer", 3) == (result.data, pytest.approx(elapsed))


async def test_a_batch_claim_outlives_the_requests_that_left_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request that joined a batch's key and left does not end the claim."""
    provider = FakeProvider("p", {"A": 1}, delay=5)

    async with orchestrator(provider) as orch, trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(orch.batch_fetch, ["A"], "p", namespace="quotes")
        )
        await trio.sleep(1)
        with trio.move_on_after(1):
            await fetch(orch, "A", "p")
        later = await fetch(orch, "A", "p")

    assert (1, 1) == (later.data, len(provider.calls))


async def test_a_late_request_joins_the_call_without_a_cache_round_trip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request arriving while its key's call runs joins it, reading no backend."""
    provider = FakeProvider("p", {"A": 1}, delay=5)
    backend = FakeCacheBackend(trio_wall_clock())

    async with (
        orchestrator(provider, cache=backend) as orch,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(fetch, orch, "A", "p")
        await trio.sleep(1)
        late = await fetch(orch, "A", "p")
        stats = orch.statistics()

    reads = [call for call in backend.calls if call[0].startswith("get")]
    assert (1, False) == (late.data, late.cached)
    assert (1, 1, 1) == (len(provider.calls), len(reads), stats.dedup_joins)


async def test_a_late_request_looks_in_a_memory_cache_and_joins_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With the cache in this process, a late request reads it at once, then joins."""
    provider = FakeProvider("p", {"A": 1}, delay=5)

    async with orchestrator(provider) as orch, trio.open_nursery() as nursery:
        nursery.start_soon(fetch, orch, "A", "p")
        await trio.sleep(1)
        late = await fetch(orch, "A", "p")
        stats = orch.statistics()

    assert (1, False) == (late.data, late.cached)
    assert (1, 2, 1) == (len(provider.calls), stats.cache_misses, stats.dedup_joins)


async def test_the_next_request_after_a_fetch_is_a_cache_hit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A fetched value is in a memory cache before its caller gets it back."""
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider) as orch:
        first = await fetch(orch, "A", "p")
        second = await fetch(orch, "A", "p")
        stats = orch.statistics()

    assert (False, True) == (first.cached, second.cached)
    assert (1, 1, 0) == (stats.cache_hits, stats.cache_misses, stats.dedup_joins)


async def test_a_caller_cancelled_on_a_hit_gets_cancelled_and_no_result_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The hit path is a checkpoint: a cancelled caller leaves, uncounted."""
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider) as orch:
        await fetch(orch, "A", "p")
        with trio.CancelScope() as scope:
            scope.cancel()
            await fetch(orch, "A", "p")
        quotes = orch.stats().namespaces["quotes"]

    assert (True, 1, 0) == (scope.cancelled_caught, quotes.fetches, quotes.hits)


async def test_a_joined_call_that_fails_falls_back_to_the_stale_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A late joiner asking for stale fallback still gets the stale value."""
    provider = FakeProvider("p")
    failure = dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "down")
    provider.script("A", "v1", Delay(5, failure))

    async with orchestrator(provider) as orch, trio.open_nursery() as nursery:
        await fetch(orch, "A", "p")
        await trio.sleep(120)
        nursery.start_soon(fetch, orch, "A", "p")
        await trio.sleep(1)
        late = await fetch(orch, "A", "p", allow_stale=True)

    assert ("v1", True) == (late.data, late.stale)
    assert 2 == len(provider.calls)


async def test_a_caller_of_another_tier_reads_the_cache_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A call started for a stricter tier does not hold up a tier the cache serves."""
    provider = FakeProvider("p")
    provider.script("A", "v1", Delay(5, "v2"))
    ttl = {"fresh": 60, "stale": 3600, "tiers": {"premium": 10}}

    async with (
        orchestrator(provider, namespace={"ttl": ttl}) as orch,
        trio.open_nursery() as nursery,
    ):
        await fetch(orch, "A", "p")
        await trio.sleep(30)
        nursery.start_soon(functools.partial(fetch, orch, "A", "p", tier="premium"))
        await trio.sleep(1)
        started = trio.current_time()
        free = await fetch(orch, "A", "p")
        waited = trio.current_time() - started

    assert ("v1", True, 0.0) == (free.data, free.cached, waited)
