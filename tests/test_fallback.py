"""fetch_with_fallback: cache first, then providers in order, then stale."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso.testing import Delay, FakeProvider, Hang


OpenOrchestrator = Callable[..., AbstractAsyncContextManager[dso.Orchestrator]]


def make_config(**provider_settings: Any) -> dso.Config:
    return dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {
                "quotes": {"ttl": {"fresh": 60, "stale": 3600, "tiers": {"pro": 5}}}
            },
            "providers": provider_settings,
        }
    )


@pytest.fixture
def orchestrator() -> OpenOrchestrator:
    @asynccontextmanager
    async def open_(
        *providers: FakeProvider, config: dso.Config | None = None
    ) -> AsyncIterator[dso.Orchestrator]:
        async with dso.open_orchestrator(
            config or make_config(), providers=providers
        ) as orch:
            yield orch

    return open_


async def test_first_success_is_returned_and_cached(
    orchestrator: OpenOrchestrator,
) -> None:
    """The first provider that answers wins, and the next call is a cache hit."""
    first = FakeProvider("first", {"AAPL": 1.5})
    second = FakeProvider("second", {"AAPL": 2.5})

    async with orchestrator(first, second) as orch:
        fetched = await orch.fetch_with_fallback(
            "AAPL", ["first", "second"], namespace="quotes"
        )
        cached = await orch.fetch_with_fallback(
            "AAPL", ["first", "second"], namespace="quotes"
        )

    assert (1.5, "first", False) == (fetched.data, fetched.source, fetched.cached)
    assert (1.5, "cache", True) == (cached.data, cached.source, cached.cached)
    assert 1 == len(first.calls)
    assert [] == second.calls


async def test_falls_back_in_order_and_lists_every_attempt(
    orchestrator: OpenOrchestrator,
) -> None:
    """A failing provider is skipped for the next one, and the result says why."""
    down = FakeProvider("down")
    down.fail_all()
    empty = FakeProvider("empty")
    good = FakeProvider("good", {"AAPL": 3.0})
    config = make_config(down={"retries": {"enabled": False}})

    async with orchestrator(down, empty, good, config=config) as orch:
        result = await orch.fetch_with_fallback(
            "AAPL", ["down", "empty", "good"], namespace="quotes"
        )

    assert 3.0 == result.data
    assert "good" == result.source
    assert [
        ("down", dso.ErrorCode.UNAVAILABLE),
        ("empty", dso.ErrorCode.NOT_FOUND),
        ("good", None),
    ] == [(attempt.provider, attempt.code) for attempt in result.attempts]


async def test_open_breaker_skips_the_provider_without_calling_it(
    orchestrator: OpenOrchestrator,
) -> None:
    """Once a provider's breaker opens, it is skipped as CIRCUIT_OPEN."""
    flaky = FakeProvider("flaky")
    flaky.fail_all()
    backup = FakeProvider("backup", {"A": 1, "B": 2, "C": 3})
    config = make_config(flaky={"breaker": {"threshold": 2, "reset_after": 30}})

    async with orchestrator(flaky, backup, config=config) as orch:
        for key in ["A", "B"]:
            await orch.fetch_with_fallback(key, ["flaky", "backup"], namespace="quotes")
        result = await orch.fetch_with_fallback(
            "C", ["flaky", "backup"], namespace="quotes"
        )

    assert 2 == len(flaky.calls)
    assert dso.ErrorCode.CIRCUIT_OPEN == result.attempts[0].code
    assert 3 == result.data


async def test_breaker_admits_a_trial_after_the_reset_timeout(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """After reset_after seconds a trial call goes through and closes the breaker."""
    flaky = FakeProvider("flaky", {"B": 2})
    flaky.script("A", dso.ProviderError(dso.ErrorCode.UNAVAILABLE, "down"))
    config = make_config(flaky={"breaker": {"threshold": 1, "reset_after": 30}})

    async with orchestrator(flaky, config=config) as orch:
        await orch.fetch_with_fallback("A", ["flaky"], namespace="quotes")
        skipped = await orch.fetch_with_fallback("B", ["flaky"], namespace="quotes")
        await trio.sleep(30)
        trial = await orch.fetch_with_fallback("B", ["flaky"], namespace="quotes")
        state = orch.statistics().breakers["flaky"]

    assert dso.ErrorCode.CIRCUIT_OPEN == skipped.attempts[0].code
    assert 2 == trial.data
    assert dso.BreakerState.CLOSED == state


@pytest.mark.parametrize("allow_stale", [True, False])
async def test_stale_value_only_when_allowed(
    orchestrator: OpenOrchestrator,
    autojump_clock: trio.testing.MockClock,
    allow_stale: bool,
) -> None:
    """When every provider fails, an expired value is served only if allowed."""
    provider = FakeProvider("only", {"AAPL": 10.0})

    async with orchestrator(provider) as orch:
        await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")
        await trio.sleep(120)
        provider.fail_all()
        result = await orch.fetch_with_fallback(
            "AAPL", ["only"], namespace="quotes", allow_stale=allow_stale
        )

    if allow_stale:
        assert (10.0, True, True, 120.0) == (
            result.data,
            result.stale,
            result.cached,
            pytest.approx(result.age),
        )
    else:
        assert (None, False) == (result.data, result.stale)
    assert dso.ErrorCode.UNAVAILABLE == result.attempts[0].code


async def test_nothing_at_all_is_none_with_attempts(
    orchestrator: OpenOrchestrator,
) -> None:
    """With no provider and no cache entry, data is None and attempts say why."""
    provider = FakeProvider("only")

    async with orchestrator(provider) as orch:
        result = await orch.fetch_with_fallback(
            "NOPE", ["only"], namespace="quotes", allow_stale=True
        )

    assert (None, False) == (result.data, result.ok)
    assert [dso.ErrorCode.NOT_FOUND] == [attempt.code for attempt in result.errors]


async def test_tier_with_shorter_ttl_refetches_sooner(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """The same entry is fresh for the default tier and stale for a faster one."""
    provider = FakeProvider("only", {"AAPL": 1})

    async with orchestrator(provider) as orch:
        await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")
        await trio.sleep(10)
        default = await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")
        pro = await orch.fetch_with_fallback(
            "AAPL", ["only"], namespace="quotes", tier="pro"
        )

    assert (True, False) == (default.cached, pro.cached)
    assert 2 == len(provider.calls)


async def test_attempt_timeout_moves_on_to_the_next_provider(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """A provider that hangs is cut off at its timeout, and the next one answers."""
    slow = FakeProvider("slow")
    slow.script("AAPL", Hang())
    fast = FakeProvider("fast", {"AAPL": 5})
    config = make_config(slow={"timeout": 2, "retries": {"enabled": False}})

    async with orchestrator(slow, fast, config=config) as orch:
        start = trio.current_time()
        result = await orch.fetch_with_fallback(
            "AAPL", ["slow", "fast"], namespace="quotes"
        )
        elapsed = trio.current_time() - start

    assert 5 == result.data
    assert dso.ErrorCode.TIMEOUT == result.attempts[0].code
    assert 2 == pytest.approx(elapsed)


async def test_whole_call_timeout_bounds_the_chain(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """The call's own timeout cuts the whole chain short."""
    slow = FakeProvider("slow")
    slow.script("AAPL", Delay(50, 1))
    config = make_config(slow={"timeout": 100})

    async with orchestrator(slow, config=config) as orch:
        start = trio.current_time()
        result = await orch.fetch_with_fallback(
            "AAPL", ["slow"], namespace="quotes", timeout=5
        )
        elapsed = trio.current_time() - start

    assert result.data is None
    assert dso.ErrorCode.TIMEOUT == result.attempts[-1].code
    assert 5 == pytest.approx(elapsed)


async def test_concurrent_requests_share_one_call(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """Many concurrent requests for one key make one provider call."""
    provider = FakeProvider("only", {"AAPL": 7}, delay=1)
    results: list[dso.FetchResult[Any]] = []

    async with orchestrator(provider) as orch:

        async def fetch() -> None:
            results.append(
                await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")
            )

        async with trio.open_nursery() as nursery:
            for _ in range(1000):
                nursery.start_soon(fetch)
        joins = orch.statistics().dedup_joins

    assert 1 == len(provider.calls)
    assert [7] * 1000 == [result.data for result in results]
    assert 999 == joins


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0])
async def test_falsy_values_are_cached_and_served_as_hits(
    orchestrator: OpenOrchestrator, value: object
) -> None:
    """Falsy values are values: cached and served back with the same type."""
    provider = FakeProvider("only", {"KEY": value})

    async with orchestrator(provider) as orch:
        await orch.fetch_with_fallback("KEY", ["only"], namespace="quotes")
        cached = await orch.fetch_with_fallback("KEY", ["only"], namespace="quotes")

    assert (value, type(value), True) == (cached.data, type(cached.data), cached.cached)
    assert 1 == len(provider.calls)


async def test_closed_orchestrator_refuses_work(orchestrator: OpenOrchestrator) -> None:
    """Using an orchestrator after its block raises OrchestratorClosed."""
    provider = FakeProvider("only", {"AAPL": 1})
    async with orchestrator(provider) as orch:
        pass

    with pytest.raises(dso.OrchestratorClosed):
        await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")


async def test_unknown_names_are_clear_errors(orchestrator: OpenOrchestrator) -> None:
    """Unknown providers and namespaces raise LookupError naming them."""
    async with orchestrator(FakeProvider("only")) as orch:
        with pytest.raises(LookupError, match="'nope'"):
            await orch.fetch_with_fallback("AAPL", ["nope"], namespace="quotes")
        with pytest.raises(LookupError, match="'nada'"):
            await orch.fetch_with_fallback("AAPL", ["only"], namespace="nada")


async def test_invalidate_forces_a_new_call(orchestrator: OpenOrchestrator) -> None:
    """After invalidate, the next request goes to the provider again."""
    provider = FakeProvider("only", {"AAPL": 1})

    async with orchestrator(provider) as orch:
        await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")
        await orch.invalidate("quotes", "AAPL")
        result = await orch.fetch_with_fallback("AAPL", ["only"], namespace="quotes")

    assert (False, 2) == (result.cached, len(provider.calls))


async def test_errors_in_the_block_come_out_as_themselves(
    orchestrator: OpenOrchestrator,
) -> None:
    """An exception raised inside the orchestrator's block is not wrapped."""
    with pytest.raises(KeyError, match="mine"):
        async with orchestrator(FakeProvider("only")):
            raise KeyError("mine")


async def test_unknown_tier_is_refused_even_without_a_cache_entry(
    orchestrator: OpenOrchestrator,
) -> None:
    """A tier no TTL row names is a ValueError naming it and the known ones."""
    async with orchestrator(FakeProvider("only", {"AAPL": 1})) as orch:
        with pytest.raises(ValueError, match="unknown tier 'gold'; known tiers: pro"):
            await orch.fetch_with_fallback(
                "AAPL", ["only"], namespace="quotes", tier="gold"
            )


async def test_a_provider_named_twice_is_refused(
    orchestrator: OpenOrchestrator,
) -> None:
    """A chain naming a provider twice is a ValueError naming it."""
    async with orchestrator(FakeProvider("only")) as orch:
        with pytest.raises(ValueError, match="provider named twice: only"):
            await orch.fetch_with_fallback("A", ["only", "only"], namespace="quotes")


@pytest.mark.parametrize(
    ("timeout", "error"),
    [("5", TypeError), (True, TypeError), (-1, ValueError), (float("nan"), ValueError)],
)
async def test_bad_timeouts_are_refused(
    orchestrator: OpenOrchestrator, timeout: object, error: type[Exception]
) -> None:
    """A timeout that is not a number of seconds is refused up front."""
    async with orchestrator(FakeProvider("only")) as orch:
        with pytest.raises(error, match="timeout"):
            await orch.fetch_with_fallback(
                "A",
                ["only"],
                namespace="quotes",
                timeout=timeout,  # type: ignore[arg-type]
            )


async def test_a_value_of_the_wrong_type_is_an_invalid_response() -> None:
    """A provider answering with the wrong type fails, and the next one answers."""

    class Price(float):
        pass

    liar = FakeProvider("liar", {"A": {"price": "lots"}})
    honest = FakeProvider("honest", {"A": Price(1.5)})
    prices = dso.Namespace("prices", Price)
    config = dso.Config(plugins=dso.PluginSettings(autoload=False))

    async with dso.open_orchestrator(
        config, providers=[liar, honest], namespaces=[prices]
    ) as orch:
        result = await orch.fetch_with_fallback(
            "A", ["liar", "honest"], namespace="prices"
        )

    assert ("honest", 1.5) == (result.source, result.data)
    assert dso.ErrorCode.INVALID_RESPONSE == result.attempts[0].code


async def test_waiters_get_their_own_copy_of_shared_data(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """Two callers sharing one call never share one mutable value."""
    provider = FakeProvider("only", {"A": [1, 2]}, delay=1)
    results: list[Any] = []

    async with orchestrator(provider) as orch:

        async def fetch() -> None:
            result = await orch.fetch_with_fallback("A", ["only"], namespace="quotes")
            results.append(result.data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch)
            nursery.start_soon(fetch)

    results[0].append(3)

    assert ([1, 2, 3], [1, 2], 1) == (results[0], results[1], len(provider.calls))


async def test_closing_stops_calls_in_flight_with_a_clear_error(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """Leaving the block ends calls still running; they raise OrchestratorClosed."""
    slow = FakeProvider("slow")
    slow.script("A", Hang())
    errors: list[BaseException] = []

    async def fetch(orch: dso.Orchestrator) -> None:
        try:
            await orch.fetch_with_fallback("A", ["slow"], namespace="quotes")
        except dso.OrchestratorClosed as exc:
            errors.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as outside, orchestrator(slow) as orch:
            # The caller lives outside the orchestrator on purpose.
            outside.start_soon(fetch, orch)  # noqa: ASYNC111
            await trio.sleep(1)

    assert 1 == len(errors)


async def test_the_deadline_keeps_the_attempts_made_before_it(
    orchestrator: OpenOrchestrator, autojump_clock: trio.testing.MockClock
) -> None:
    """When the call's timeout passes, the attempts made so far are listed."""
    down = FakeProvider("down")
    down.fail_all()
    hangs = FakeProvider("hangs")
    hangs.script("A", Hang())
    config = make_config(down={"retries": {"enabled": False}})

    async with orchestrator(down, hangs, config=config) as orch:
        result = await orch.fetch_with_fallback(
            "A", ["down", "hangs"], namespace="quotes", timeout=1
        )

    assert [dso.ErrorCode.UNAVAILABLE, dso.ErrorCode.TIMEOUT] == [
        attempt.code for attempt in result.attempts
    ]


class BrokenCache:
    """A cache backend that fails or hangs on every call."""

    name = "broken"

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def _fail(self) -> Any:
        if self.hang:
            await trio.sleep_forever()
        raise ConnectionError("cache down")

    async def get(self, key: str) -> None:
        return await self._fail()  # type: ignore[no-any-return]

    async def get_many(self, keys: Any) -> Any:
        return await self._fail()

    async def set(self, key: str, entry: Any) -> None:
        await self._fail()

    async def set_many(self, entries: Any) -> None:
        await self._fail()

    async def delete(self, key: str) -> None:
        await self._fail()


@pytest.mark.parametrize("hang", [False, True])
async def test_a_failing_cache_backend_does_not_stop_the_fetch(
    autojump_clock: trio.testing.MockClock, hang: bool
) -> None:
    """Reads and writes that fail or hang are skipped; the provider answers."""
    provider = FakeProvider("only", {"A": 1})
    config = make_config()

    async with dso.open_orchestrator(
        config, providers=[provider], cache=BrokenCache(hang)
    ) as orch:
        with trio.fail_after(30):
            result = await orch.fetch_with_fallback("A", ["only"], namespace="quotes")
        # The answer is handed over before the cache write, which goes on
        # in the background until the cache's own timeout.
        await trio.sleep(5)
        errors = orch.statistics().cache_errors

    assert ("only", 1) == (result.source, result.data)
    assert 2 == errors
