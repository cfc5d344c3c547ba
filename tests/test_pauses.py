"""Pauses: a provider's Retry-After holds it back for every caller."""

import datetime as dt
import email.utils
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import dso
from dso.testing import FakeProvider, Fault, ReplayServer, Route, open_replay_server


QUOTE = Route("tiingo", "/iex/AAPL", "tiingo/iex_quote_AAPL_market_hours.json")


class HttpQuotes:
    """The smallest real HTTP provider: GET <base_url>/iex/<key>."""

    name = "http"

    async def fetch(self, key: str, ctx: dso.ProviderContext) -> object:
        response = await ctx.http.get(f"{ctx.settings.base_url}/iex/{key}")
        dso.check_response(response, provider=self.name)
        return response.json()


@pytest.fixture
async def replay(fixtures_dir: Path) -> AsyncIterator[ReplayServer]:
    async with open_replay_server([QUOTE], fixtures_dir) as server:
        yield server


@asynccontextmanager
async def orchestrator(
    replay: ReplayServer, **settings: Any
) -> AsyncIterator[dso.Orchestrator]:
    config = dso.Config.from_dict(
        {
            "plugins": {"autoload": False},
            # Fresh for no time at all: every fetch asks the provider.
            "namespaces": {"quotes": {"ttl": {"fresh": 0}}},
            "providers": {"http": {"base_url": replay.base_url("tiingo"), **settings}},
        }
    )
    with trio.fail_after(100_000):
        async with dso.open_orchestrator(config, providers=[HttpQuotes()]) as orch:
            yield orch


async def fetch(orch: dso.Orchestrator) -> dso.FetchResult[Any]:
    return await orch.fetch_with_fallback("AAPL", ["http"], namespace="quotes")


async def test_retry_after_pauses_the_provider_for_every_caller(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A 429 with Retry-After: 30 keeps every caller off it for 30 s, then lets go."""
    replay.inject("tiingo", Fault.rate_limit("30"))

    async with orchestrator(replay) as orch:
        refused = await fetch(orch)
        replay.clear_faults()
        await trio.sleep(29)
        during: list[dso.FetchResult[Any]] = []
        async with trio.open_nursery() as nursery:
            for _ in range(3):

                async def one() -> None:
                    during.append(await fetch(orch))

                nursery.start_soon(one)
        requests_during = len(replay.requests)
        await trio.sleep(1)
        after = await fetch(orch)

    assert [dso.ErrorCode.RATE_LIMIT] == [a.code for a in refused.attempts]
    assert [[dso.ErrorCode.PAUSED]] * 3 == [
        [a.code for a in result.attempts] for result in during
    ]
    assert (1, 2) == (requests_during, len(replay.requests))
    assert after.ok


async def test_an_absurd_retry_after_is_capped(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Retry-After: 10**12 pauses for max_pause (an hour unless configured)."""
    replay.inject("tiingo", Fault.rate_limit(str(10**12)))

    async with orchestrator(replay) as orch:
        await fetch(orch)
        paused_for = orch.limits("http").statistics().paused_for
        replay.clear_faults()
        await trio.sleep(3600)
        after = await fetch(orch)

    assert (3600, True) == (paused_for, after.ok)


async def test_an_http_date_retry_after_pauses_until_that_time(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """Retry-After as an HTTP date pauses until then (wall time, to the second)."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    replay.inject("tiingo", Fault.rate_limit(email.utils.format_datetime(when, True)))

    async with orchestrator(replay) as orch:
        await fetch(orch)
        paused_for = orch.limits("http").statistics().paused_for

    # Whole seconds on the wire, and wall time passes while the test runs.
    assert 100 <= paused_for <= 120


async def test_max_pause_is_configurable(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A provider's max_pause caps its pauses."""
    replay.inject("tiingo", Fault.rate_limit("600"))

    async with orchestrator(replay, max_pause=120) as orch:
        await fetch(orch)
        paused_for = orch.limits("http").statistics().paused_for

    assert 120 == paused_for


@pytest.mark.parametrize("retry_after", [None, "-5", "soon", "nan"])
async def test_a_missing_or_meaningless_retry_after_gets_the_default_pause(
    replay: ReplayServer,
    autojump_clock: trio.testing.MockClock,
    retry_after: str | None,
) -> None:
    """Without a usable Retry-After, the provider pauses for default_pause."""
    replay.inject("tiingo", Fault.rate_limit(retry_after))

    async with orchestrator(replay, default_pause=45) as orch:
        result = await fetch(orch)
        paused_for = orch.limits("http").statistics().paused_for

    assert 45 == paused_for
    assert result.attempts[0].message.endswith("provider paused for 45 s")


async def test_a_rate_limit_is_not_retried(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A 429 reaches the server once: it is a pause, not a transient failure."""
    replay.inject("tiingo", Fault.rate_limit("1"))

    async with orchestrator(replay) as orch:
        await fetch(orch)

    assert 1 == len(replay.requests)


async def test_a_pause_the_provider_parsed_itself_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A RATE_LIMIT raised with the provider's own retry_after pauses it as long."""
    provider = FakeProvider("soft", {"A": 1})
    provider.script(
        "A", dso.ProviderError(dso.ErrorCode.RATE_LIMIT, "slow down", retry_after=20)
    )
    backup = FakeProvider("backup", {"B": 2})
    config = dso.Config.from_dict(
        {"plugins": {"autoload": False}, "namespaces": {"quotes": {}}}
    )

    with trio.fail_after(100):
        async with dso.open_orchestrator(config, providers=[provider, backup]) as orch:
            await orch.fetch_with_fallback("A", ["soft"], namespace="quotes")
            skipped = await orch.fetch_with_fallback(
                "B", ["soft", "backup"], namespace="quotes"
            )
            paused_for = orch.limits("soft").statistics().paused_for

    assert (dso.ErrorCode.PAUSED, 2, 20) == (
        skipped.attempts[0].code,
        skipped.data,
        paused_for,
    )
