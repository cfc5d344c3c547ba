"""The Financial Modeling Prep providers against FMP's recorded answers."""

import datetime as dt
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio
import trio.testing

from dso import ErrorCode, Provider, ProviderContext, ProviderError, ProviderSettings
from dso.testing import Fault, ReplayServer
from dso_market import Fundamentals, Quote
from dso_market._fmp import FACTORIES, FmpProfile, FmpQuotes


KEY = "SECRET-KEY-123"

# The key the invalid-key answer was recorded with (see fmp.toml).
REFUSED_KEY = "test_key"


def context(
    base_url: str, http: httpx.AsyncClient, namespace: str, api_key: str = KEY
) -> ProviderContext:
    settings = ProviderSettings(name="fmp", base_url=base_url, api_key=api_key)
    return ProviderContext(http=http, settings=settings, namespace=namespace)


async def quote(
    replay: ReplayServer, http: httpx.AsyncClient, symbol: str, api_key: str = KEY
) -> Quote:
    ctx = context(replay.base_url("fmp"), http, "quotes", api_key)
    return await FmpQuotes(ctx.settings).fetch(symbol, ctx)


async def profile(
    replay: ReplayServer, http: httpx.AsyncClient, symbol: str, api_key: str = KEY
) -> Fundamentals:
    ctx = context(replay.base_url("fmp"), http, "fundamentals", api_key)
    return await FmpProfile(ctx.settings).fetch(symbol, ctx)


async def quote_error(
    replay: ReplayServer, http: httpx.AsyncClient, symbol: str, api_key: str = KEY
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await quote(replay, http, symbol, api_key)

    return caught.value


def test_factories_name_both_types() -> None:
    """The module offers a quotes and a profile provider."""
    built = {
        kind: factory(ProviderSettings(name=kind))
        for kind, factory in FACTORIES.items()
    }

    expected = {"fmp": True, "fmp_profile": True}
    assert expected == {kind: isinstance(p, Provider) for kind, p in built.items()}


async def test_quote_aapl(replay: ReplayServer, http: httpx.AsyncClient) -> None:
    """The one-item list becomes the quote; the epoch timestamp is UTC."""
    actual = await quote(replay, http, "AAPL")

    expected = Quote(
        symbol="AAPL",
        price=191.31,
        open=191.49,
        high=192.93,
        low=190.825,
        previous_close=190.64,
        change=0.67,
        change_percent=0.3514,
        volume=38239545,
        as_of=dt.datetime(2023, 11, 22, 21, 0, 1, tzinfo=dt.UTC),
    )
    assert expected == actual


async def test_key_travels_as_apikey(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The key is the ``apikey`` query parameter, as FMP wants it."""
    await quote(replay, http, "aapl")

    expected = ("/api/v3/quote/AAPL", {"apikey": KEY})
    request = replay.requests[-1]
    assert expected == (request.path, dict(request.query))


async def test_profile_pm(replay: ReplayServer, http: httpx.AsyncClient) -> None:
    """The profile's numbers sent as strings are parsed; the CIK is kept."""
    actual = await profile(replay, http, "PM")

    expected = Fundamentals(
        symbol="PM",
        name="Philip Morris International Inc.",
        exchange="NYSE",
        currency="USD",
        country="US",
        sector="Consumer Defensive",
        industry="Tobacco",
        description=actual.description,
        market_cap=161716870676,
        beta=0.712591,
        employees=69600,
        cik="0001413329",
    )
    assert expected == actual


async def test_profile_description_is_kept_whole(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The description is FMP's paragraph, start to end."""
    actual = await profile(replay, http, "PM")

    expected = (True, True)
    description = actual.description or ""
    assert expected == (
        description.startswith("Philip Morris International Inc. operates"),
        description.endswith("headquartered in New York, New York."),
    )


@pytest.mark.parametrize("fetch", [quote, profile], ids=["quote", "profile"])
async def test_invalid_key_is_auth(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    fetch: Callable[..., Awaitable[object]],
) -> None:
    """The HTTP-200 ``{"Error Message" : ...}`` for a bad key is AUTH."""
    with pytest.raises(ProviderError) as caught:
        await fetch(replay, http, "AAPL", api_key=REFUSED_KEY)

    expected = ErrorCode.AUTH
    assert expected == caught.value.code


async def test_refused_key_never_appears_in_the_error(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """The refused key is not shown in the error it caused."""
    error = await quote_error(replay, http, "AAPL", api_key=REFUSED_KEY)

    expected: list[str] = []
    shown = [str(error), repr(error)]
    assert expected == [text for text in shown if REFUSED_KEY in text]


@pytest.mark.parametrize("body", [[], [{"symbol": "MSFT", "price": 1.0}]])
async def test_answer_without_the_symbol(body: list[object]) -> None:
    """An empty list is NOT_FOUND; a list of other symbols is INVALID_RESPONSE.

    FMP's empty list for an unknown symbol was never recorded (see
    SOURCES.md, Gaps), so this test serves the documented shapes itself.
    """
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))

    async with httpx.AsyncClient(transport=transport) as mock_http:
        ctx = context("https://fmp.test", mock_http, "quotes")
        with pytest.raises(ProviderError) as caught:
            await FmpQuotes(ctx.settings).fetch("AAPL", ctx)

    expected = ErrorCode.INVALID_RESPONSE if body else ErrorCode.NOT_FOUND
    assert expected == caught.value.code


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault.status_code(503), (ErrorCode.UNAVAILABLE, None), id="503"),
        pytest.param(
            Fault.rate_limit(retry_after="12"), (ErrorCode.RATE_LIMIT, 12.0), id="429"
        ),
        pytest.param(Fault.drop(), (ErrorCode.UNAVAILABLE, None), id="dropped"),
    ],
)
async def test_failure_status_or_transport_is_classified(
    replay: ReplayServer,
    http: httpx.AsyncClient,
    fault: Fault,
    expected: tuple[ErrorCode, float | None],
) -> None:
    """A 503 or a dropped connection is UNAVAILABLE; a 429 is RATE_LIMIT.

    A 429 keeps the server's ``Retry-After``; the others have none.
    """
    replay.inject("fmp", fault)

    error = await quote_error(replay, http, "AAPL")

    assert expected == (error.code, error.retry_after)


async def test_hanging_server_times_out(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A server that never answers is a TIMEOUT once the client gives up."""
    replay.inject("fmp", Fault.hang())

    with trio.fail_after(60):
        async with httpx.AsyncClient(timeout=5) as http:
            error = await quote_error(replay, http, "AAPL")

    expected = ErrorCode.TIMEOUT
    assert expected == error.code


@pytest.mark.parametrize("symbol", ["AAPL", "UNROUTED"])
async def test_key_never_appears_in_errors(
    replay: ReplayServer, http: httpx.AsyncClient, symbol: str
) -> None:
    """Neither the message nor the repr of an error shows the key."""
    replay.inject("fmp", Fault.status_code(503), path="/api/v3/quote/AAPL")

    error = await quote_error(replay, http, symbol)

    expected: list[str] = []
    assert expected == [text for text in (str(error), repr(error)) if KEY in text]
