"""The Yahoo Finance providers against Yahoo's recorded answers."""

import datetime as dt
from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from dso import (
    BatchProvider,
    ErrorCode,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderSettings,
)
from dso.testing import Fault, ReplayServer
from dso_market import Fundamentals, Quote
from dso_market._yahoo import (
    FACTORIES,
    YahooChartQuotes,
    YahooQuotes,
    YahooSummary,
)


OpenProvider = Callable[
    [ReplayServer, httpx.AsyncClient], tuple[Provider, ProviderContext]
]

AAPL_V7 = Quote(
    symbol="AAPL",
    price=160.07,
    open=164.98,
    high=166.15,
    low=159.75,
    previous_close=164.32,
    change=-4.25,
    change_percent=-2.5864167,
    volume=90009247,
    currency="USD",
    as_of=dt.datetime.fromtimestamp(1645650002, tz=dt.UTC),
)


def context(
    replay: ReplayServer, http: httpx.AsyncClient, name: str, namespace: str
) -> ProviderContext:
    # Yahoo takes no key: these providers never read one.
    settings = ProviderSettings(name=name, base_url=replay.base_url("yahoo"))
    return ProviderContext(http=http, settings=settings, namespace=namespace)


def quotes(
    replay: ReplayServer, http: httpx.AsyncClient
) -> tuple[YahooQuotes, ProviderContext]:
    ctx = context(replay, http, "yahoo", "quotes")
    return YahooQuotes(ctx.settings), ctx


def chart(
    replay: ReplayServer, http: httpx.AsyncClient
) -> tuple[YahooChartQuotes, ProviderContext]:
    ctx = context(replay, http, "yahoo_chart", "quotes")
    return YahooChartQuotes(ctx.settings), ctx


def summary(
    replay: ReplayServer, http: httpx.AsyncClient
) -> tuple[YahooSummary, ProviderContext]:
    ctx = context(replay, http, "yahoo_summary", "fundamentals")
    return YahooSummary(ctx.settings), ctx


async def quote_error(
    replay: ReplayServer, http: httpx.AsyncClient, key: str
) -> ProviderError:
    provider, ctx = quotes(replay, http)
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(key, ctx)

    return caught.value


def test_factories_name_the_three_yahoo_types() -> None:
    """Each Yahoo endpoint is its own provider type; only v7 batches."""
    built = {
        kind: factory(ProviderSettings(name=kind))
        for kind, factory in FACTORIES.items()
    }

    expected = {
        "yahoo": (True, True),
        "yahoo_chart": (True, False),
        "yahoo_summary": (True, False),
    }
    assert expected == {
        kind: (isinstance(p, Provider), isinstance(p, BatchProvider))
        for kind, p in built.items()
    }


async def test_v7_quote(replay: ReplayServer, http: httpx.AsyncClient) -> None:
    """A v7 result becomes a quote; its change percent is already percent."""
    provider, ctx = quotes(replay, http)

    quote = await provider.fetch("AAPL", ctx)

    expected = AAPL_V7
    assert expected == quote


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        # Yahoo silently drops NONEXIST from its result.
        pytest.param(["AAPL", "NONEXIST"], {"AAPL": AAPL_V7}, id="drops-unknown"),
        # Results are matched by symbol, not by position.
        pytest.param(["nonexist", "aapl"], {"aapl": AAPL_V7}, id="callers-keys"),
        # An empty ``result`` leaves every key out.
        pytest.param(["NONEXIST"], {}, id="empty-result"),
    ],
)
async def test_v7_batch_maps_the_known_keys_as_given(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    keys: list[str],
    expected: dict[str, Quote],
) -> None:
    """A batch holds the symbols Yahoo knows, under the caller's own keys."""
    provider, ctx = quotes(replay, http)

    found = await provider.fetch_batch(keys, ctx)

    assert expected == found


async def test_v7_batch_sends_one_request(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A batch is one ``symbols=A,B`` request."""
    provider, ctx = quotes(replay, http)

    await provider.fetch_batch(["AAPL", "NONEXIST"], ctx)

    expected = ("/v7/finance/quote", "AAPL,NONEXIST")
    request = replay.requests[-1]
    assert expected == (request.path, request.query["symbols"])


async def test_v7_empty_result_is_not_found(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """An empty ``result`` with HTTP 200 is NOT_FOUND for a single symbol."""
    error = await quote_error(replay, http, "NONEXIST")

    expected = ErrorCode.NOT_FOUND
    assert expected == error.code


@pytest.mark.parametrize(
    ("symbol", "description"),
    [("CRUMB-401", "Invalid Crumb"), ("COOKIE-401", "Invalid Cookie")],
)
async def test_v7_crumb_and_cookie_refusals_are_auth(
    replay: ReplayServer, http: httpx.AsyncClient, symbol: str, description: str
) -> None:
    """Yahoo's 401 envelopes are AUTH, and the message says which one."""
    error = await quote_error(replay, http, symbol)

    expected = (ErrorCode.AUTH, True)
    assert expected == (error.code, error.message.endswith(description))


async def test_v7_edge_429_text_is_rate_limit(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The plain-text "Edge: Too Many Requests" 429 is RATE_LIMIT."""
    error = await quote_error(replay, http, "EDGE-429")

    expected = (ErrorCode.RATE_LIMIT, True)
    assert expected == (error.code, "Edge: Too Many Requests" in error.message)


async def test_chart_quote_from_meta(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The chart's meta gives price, range, volume and time.

    The recording's only bar is from 2020 while its meta describes 2025, so
    the bar's open is not taken; meta has no previous close, so there is no
    change either.
    """
    provider, ctx = chart(replay, http)

    quote = await provider.fetch("AAPL", ctx)

    expected = Quote(
        symbol="AAPL",
        price=244.87,
        high=246.01,
        low=243.16,
        volume=32129951,
        currency="USD",
        as_of=dt.datetime.fromtimestamp(1739998801, tz=dt.UTC),
    )
    assert expected == quote


async def test_chart_asks_for_daily_bars(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The chart request asks for one day of daily bars."""
    provider, ctx = chart(replay, http)

    await provider.fetch("AAPL", ctx)

    expected = ("/v8/finance/chart/AAPL", "1d", "1d")
    request = replay.requests[-1]
    assert expected == (request.path, request.query["interval"], request.query["range"])


async def test_summary_price_module(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The v10 price module gives the name, listing, currency and value."""
    provider, ctx = summary(replay, http)

    fundamentals = await provider.fetch("AAPL", ctx)

    expected = Fundamentals(
        symbol="AAPL",
        name="Apple Inc.",
        exchange="NasdaqGS",
        currency="USD",
        market_cap=3688676720640,
    )
    assert expected == fundamentals


async def test_summary_asks_for_raw_numbers(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The summary request names the price module and ``formatted=false``."""
    provider, ctx = summary(replay, http)

    await provider.fetch("AAPL", ctx)

    expected = {"modules": "price", "formatted": "false"}
    assert expected == dict(replay.requests[-1].query)


@pytest.mark.parametrize(
    ("open_provider", "symbol", "words"),
    [
        (chart, "SI", "symbol may be delisted"),
        (summary, "QQQ,", "Quote not found for ticker symbol"),
    ],
    ids=["chart", "quoteSummary"],
)
async def test_404_envelope_is_not_found(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    open_provider: OpenProvider,
    symbol: str,
    words: str,
) -> None:
    """A 404 ``error`` envelope is NOT_FOUND, with Yahoo's words."""
    provider, ctx = open_provider(replay, http)

    with pytest.raises(ProviderError) as caught:
        await provider.fetch(symbol, ctx)

    expected = (ErrorCode.NOT_FOUND, True)
    actual = caught.value
    assert expected == (actual.code, words in actual.message)


@pytest.mark.parametrize(
    ("fault", "open_provider"),
    [(Fault.status_code(503), quotes), (Fault.drop(), summary)],
    ids=["503-v7", "dropped-v10"],
)
async def test_server_that_cannot_answer_is_unavailable(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    fault: Fault,
    open_provider: OpenProvider,
) -> None:
    """An HTTP 503, or a connection closed without an answer, is UNAVAILABLE."""
    replay.inject("yahoo", fault)
    provider, ctx = open_provider(replay, http)

    with pytest.raises(ProviderError) as caught:
        await provider.fetch("AAPL", ctx)

    expected = ErrorCode.UNAVAILABLE
    assert expected == caught.value.code


async def test_hanging_server_times_out(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A server that never answers is a TIMEOUT once the client gives up."""
    replay.inject("yahoo", Fault.hang())

    with trio.fail_after(60):
        async with httpx.AsyncClient(timeout=5) as http:
            provider, ctx = chart(replay, http)
            with pytest.raises(ProviderError) as caught:
                await provider.fetch("AAPL", ctx)

    expected = ErrorCode.TIMEOUT
    assert expected == caught.value.code
