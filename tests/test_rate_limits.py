"""Rate limits: the token bucket, its configuration, and skips in a fetch."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given

import dso
from dso._rate import TokenBucket
from dso.testing import FakeBatchProvider, FakeProvider


@asynccontextmanager
async def orchestrator(
    *providers: FakeProvider, **settings: dict[str, Any]
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            "namespaces": {"quotes": {"ttl": {"fresh": 600}}},
            "providers": settings,
        }
    )
    with trio.fail_after(3600):
        async with dso.open_orchestrator(config, providers=providers) as orch:
            yield orch


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("5/minute", dso.RateLimit(5, 60)),
        ("1/second", dso.RateLimit(1, 1)),
        (" 100 / Hours ", dso.RateLimit(100, 3600)),
        ("500/day", dso.RateLimit(500, 86400)),
        (2.5, dso.RateLimit(2.5, 1)),
        (3, dso.RateLimit(3, 1)),
    ],
)
def test_rate_limits_are_read_from_their_written_forms(
    written: object, expected: dso.RateLimit
) -> None:
    """A "<calls>/<unit>" string or a number of calls per second is understood."""
    config = dso.Config.from_dict({"providers": {"p": {"rate_limit": written}}})

    assert expected == config.providers["p"].rate_limit


@pytest.mark.parametrize("written", ["5/minute", "0.5/second", "3/hour", "1/day"])
def test_a_rate_limit_reads_back_as_written(written: str) -> None:
    """A rate limit shows itself the way it was configured."""
    assert written == str(dso.RateLimit.parse(written))


@pytest.mark.parametrize(
    "written", ["5/fortnight", "five/minute", "0/minute", -1, 0, True, "5", [5]]
)
def test_a_bad_rate_limit_names_its_field(written: object) -> None:
    """A rate limit that means nothing is refused with the field's path."""
    with pytest.raises(dso.ConfigError) as caught:
        dso.Config.from_dict({"providers": {"slow": {"rate_limit": written}}})

    expected = "providers.slow.rate_limit: expected a number of calls per second"
    assert str(caught.value).startswith(expected)


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(
    calls=st.floats(0.5, 20),
    per=st.sampled_from([1.0, 60.0, 3600.0]),
    gaps=st.lists(st.floats(0, 100), max_size=80),
)
def test_no_window_lets_through_more_than_burst_plus_refill(
    calls: float, per: float, gaps: list[float]
) -> None:
    """In any window of t seconds at most burst + rate * t calls get a token."""
    limit = dso.RateLimit(calls, per)
    clock = ManualClock()
    bucket = TokenBucket(limit, clock=clock)
    taken: list[float] = []

    for gap in gaps:
        clock.now += gap * per / 10
        if bucket.try_take():
            taken.append(clock.now)

    for first, start in enumerate(taken):
        for last in range(first, len(taken)):
            window = taken[last] - start
            allowed = limit.burst + limit.per_second * window
            assert last - first + 1 <= allowed + 1e-6


@given(calls=st.floats(0.5, 20), per=st.sampled_from([1.0, 60.0]))
def test_a_token_comes_back_after_its_wait_time(calls: float, per: float) -> None:
    """An empty bucket refuses, and gives a token once wait_time has passed."""
    clock = ManualClock()
    bucket = TokenBucket(dso.RateLimit(calls, per), clock=clock)
    while bucket.try_take():
        pass

    clock.now += bucket.wait_time()

    assert (True, False) == (bucket.try_take(), bucket.try_take())


async def test_a_burst_beyond_the_limit_goes_to_the_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """20 calls at once to a 5/minute provider: 5 reach it, 15 go to the next."""
    keys = [f"K{index}" for index in range(20)]
    limited = FakeProvider("limited", dict.fromkeys(keys, 1))
    backup = FakeProvider("backup", dict.fromkeys(keys, 2))
    results: list[dso.FetchResult[Any]] = []

    settings = {"rate_limit": "5/minute"}

    async with orchestrator(limited, backup, limited=settings) as orch:

        async def fetch(key: str) -> None:
            result = await orch.fetch_with_fallback(
                key, ["limited", "backup"], namespace="quotes"
            )
            results.append(result)

        async with trio.open_nursery() as nursery:
            for key in keys:
                nursery.start_soon(fetch, key)

    skipped = [r for r in results if r.attempts[0].skipped]
    assert (5, 15, 20) == (len(limited.calls), len(backup.calls), len(results))
    assert {dso.ErrorCode.RATE_LIMITED_LOCALLY} == {r.attempts[0].code for r in skipped}
    assert {"backup"} == {r.source for r in skipped}
    assert 0 == trio.current_time()


async def test_the_bucket_refills_at_the_configured_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a 5/minute burst is spent, one call goes through every 12 s."""
    keys = [f"K{index}" for index in range(7)]
    limited = FakeProvider("limited", dict.fromkeys(keys, 1))

    async with orchestrator(limited, limited={"rate_limit": "5/minute"}) as orch:
        codes = []
        for key in keys:
            result = await orch.fetch_with_fallback(
                key, ["limited"], namespace="quotes"
            )
            codes.append(result.attempts[0].code)
        await trio.sleep(12)
        later = await orch.fetch_with_fallback("K5", ["limited"], namespace="quotes")

    expected = [None] * 5 + [dso.ErrorCode.RATE_LIMITED_LOCALLY] * 2
    assert expected == codes
    assert (1, 6) == (later.data, len(limited.calls))


async def test_a_waiting_provider_waits_for_its_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With rate_limit_wait, a call waits for the next token instead of skipping."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    settings = {"rate_limit": "1/second", "rate_limit_wait": True}

    async with orchestrator(provider, p=settings) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        result = await orch.fetch_with_fallback("B", ["p"], namespace="quotes")

    assert (2, [0, 1]) == (result.data, [call.started_at for call in provider.calls])


async def test_a_wait_that_would_pass_the_deadline_is_not_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """If the next token comes after the deadline, the provider is skipped at once."""
    provider = FakeProvider("p", {"A": 1, "B": 2})
    settings = {"rate_limit": "1/minute", "rate_limit_wait": True}

    async with orchestrator(provider, p=settings) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        result = await orch.fetch_with_fallback(
            "B", ["p"], namespace="quotes", timeout=30
        )

    expected = ([dso.ErrorCode.RATE_LIMITED_LOCALLY], 0.0, 1)
    actual = (
        [attempt.code for attempt in result.attempts],
        trio.current_time(),
        len(provider.calls),
    )
    assert expected == actual


async def test_a_batch_chunk_costs_one_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each chunk of a batch is one call and one token, whatever its size."""
    keys = [f"K{index}" for index in range(10)]
    batch = FakeBatchProvider("batch", dict.fromkeys(keys, 1), max_batch_size=5)

    async with orchestrator(batch, batch={"rate_limit": "1/minute"}) as orch:
        result = await orch.batch_fetch(keys, "batch", namespace="quotes")

    codes = sorted(
        (item.attempts[0].code for item in result.values()),
        key=lambda code: code is not None,
    )
    assert (1, 1) == (len(batch.calls), result.summary.provider_calls)
    assert [None] * 5 + [dso.ErrorCode.RATE_LIMITED_LOCALLY] * 5 == codes


async def test_limits_statistics_show_the_tokens_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The provider's limit statistics say how many calls the bucket allows now."""
    provider = FakeProvider("p", {"A": 1})

    async with orchestrator(provider, p={"rate_limit": "5/minute"}) as orch:
        await orch.fetch_with_fallback("A", ["p"], namespace="quotes")
        stats = orch.limits("p").statistics()

    assert (dso.RateLimit(5, 60), 4) == (stats.rate_limit, stats.tokens)
