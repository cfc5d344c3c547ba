"""The Tiingo IEX quotes provider against Tiingo's recorded answers."""

import datetime as dt

import httpx
import pytest
import trio
import trio.testing

from dso import (
    BatchProvider,
    ErrorCode,
    ProviderContext,
    ProviderError,
    ProviderSettings,
)
from dso.testing import Fault, ReplayServer
from dso_market import Quote
from dso_market._tiingo import FACTORIES, TiingoQuotes


KEY = "SECRET-KEY-123"


def tiingo(
    replay: ReplayServer, http: httpx.AsyncClient
) -> tuple[TiingoQuotes, ProviderContext]:
    settings = ProviderSettings(
        name="tiingo", base_url=replay.base_url("tiingo"), api_key=KEY
    )
    ctx = ProviderContext(http=http, settings=settings, namespace="quotes")
    return TiingoQuotes(settings), ctx


async def fetch_error(
    replay: ReplayServer, http: httpx.AsyncClient, key: str
) -> ProviderError:
    provider, ctx = tiingo(replay, http)
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(key, ctx)

    return caught.value


def test_factories_name_the_tiingo_type() -> None:
    """The module offers its provider under the type name ``tiingo``."""
    provider = FACTORIES["tiingo"](ProviderSettings(name="quotes-a"))

    assert isinstance(provider, BatchProvider)
    expected = "quotes-a"
    assert expected == provider.name


async def test_quote_during_market_hours(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A one-item list becomes the quote, with the change derived."""
    provider, ctx = tiingo(replay, http)

    quote = await provider.fetch("AAPL", ctx)

    expected = Quote(
        symbol="AAPL",
        price=387.935,
        open=385.67,
        high=388.255,
        low=384.35,
        previous_close=385.31,
        change=2.625,
        change_percent=0.6813,
        volume=44198,
        as_of=dt.datetime(
            2020, 7, 20, 11, 5, 47, 516724, tzinfo=dt.timezone(dt.timedelta(hours=-4))
        ),
    )
    assert expected == quote


async def test_quote_keys_are_upper_cased_in_the_request(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A lower-case key asks for the upper-case ticker."""
    provider, ctx = tiingo(replay, http)

    quote = await provider.fetch("aapl", ctx)

    expected = ("/iex/AAPL", "AAPL")
    assert expected == (replay.requests[-1].path, quote.symbol)


async def test_token_travels_in_the_authorization_header(
    replay: ReplayServer,
    recording_http: httpx.AsyncClient,
    sent_requests: list[httpx.Request],
) -> None:
    """The token is sent as ``Authorization: Token <key>``, not in the URL."""
    provider, ctx = tiingo(replay, recording_http)

    await provider.fetch("AAPL", ctx)

    request = sent_requests[-1]
    assert (f"Token {KEY}", False) == (
        request.headers["authorization"],
        KEY in str(request.url),
    )


@pytest.mark.parametrize(
    ("ticker", "expected"),
    [
        # An unknown ticker is answered with ``[]`` and HTTP 200.
        pytest.param("BADTICKER", ErrorCode.NOT_FOUND, id="empty-list"),
        # The monthly quota notice is plain text with HTTP 200.
        pytest.param("QUOTA-SPENT", ErrorCode.RATE_LIMIT, id="quota-text"),
        # Both shapes of Tiingo's ``{"detail": ...}`` 404.
        pytest.param("DAILY-404", ErrorCode.NOT_FOUND, id="detail-404-daily"),
        pytest.param("META-404", ErrorCode.NOT_FOUND, id="detail-404-meta"),
    ],
)
async def test_error_answers_are_classified_by_meaning(
    replay: ReplayServer, http: httpx.AsyncClient, ticker: str, expected: ErrorCode
) -> None:
    """Each recorded error answer, HTTP 200 or not, gets the code it means."""
    error = await fetch_error(replay, http, ticker)

    assert expected == error.code


async def test_batch_after_close_uses_tiingo_last(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """After the close ``last`` is null, so the price is ``tngoLast``."""
    provider, ctx = tiingo(replay, http)

    quotes = await provider.fetch_batch(["MSFT", "AAPL"], ctx)

    expected = Quote(
        symbol="MSFT",
        price=499.7,
        open=510.0,
        high=511.0,
        low=499.36,
        previous_close=510.12,
        change=-10.42,
        change_percent=-2.0427,
        volume=18101758,
        as_of=dt.datetime(2026, 9, 4, 20, 0, tzinfo=dt.UTC),
    )
    assert expected == quotes["MSFT"]


async def test_batch_sends_one_request_for_all_tickers(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A batch is one ``GET /iex/?tickers=...`` call."""
    provider, ctx = tiingo(replay, http)

    await provider.fetch_batch(["MSFT", "AAPL"], ctx)

    request = replay.requests[-1]
    expected = ("/iex/", "MSFT,AAPL")
    assert expected == (request.path, request.query["tickers"])


async def test_batch_matches_by_ticker_and_keeps_callers_keys(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """Answers are matched by ticker, not position, under the caller's keys."""
    provider, ctx = tiingo(replay, http)

    quotes = await provider.fetch_batch(["aapl", "MSFT"], ctx)

    expected = {"aapl": ("AAPL", 319.97), "MSFT": ("MSFT", 499.7)}
    assert expected == {
        key: (quote.symbol, quote.price) for key, quote in quotes.items()
    }


async def test_batch_omits_unknown_tickers(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A ticker Tiingo left out of the batch is absent from the result."""
    provider, ctx = tiingo(replay, http)

    quotes = await provider.fetch_batch(["AAPL", "MSFT", "NONEXIST"], ctx)

    assert {"AAPL", "MSFT"} == set(quotes)


async def test_batch_of_unknown_tickers_only_is_empty(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A batch Tiingo answers with ``[]`` is an empty mapping, not an error."""
    provider, ctx = tiingo(replay, http)

    quotes = await provider.fetch_batch(["NONEXIST"], ctx)

    expected: dict[str, Quote] = {}
    assert expected == quotes


async def test_detail_is_quoted_in_the_message(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """What Tiingo said about the failure reaches the message."""
    error = await fetch_error(replay, http, "DAILY-404")

    assert "Error: Ticker 'BADTICKER' not found" in error.message


@pytest.mark.parametrize(
    "fault", [Fault.status_code(503), Fault.drop()], ids=["503", "dropped"]
)
async def test_server_that_cannot_answer_is_unavailable(
    replay: ReplayServer, http: httpx.AsyncClient, fault: Fault
) -> None:
    """An HTTP 503, or a connection closed without an answer, is UNAVAILABLE."""
    replay.inject("tiingo", fault)

    error = await fetch_error(replay, http, "AAPL")

    expected = ErrorCode.UNAVAILABLE
    assert expected == error.code


async def test_batch_failure_fails_the_whole_call(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """A refused batch raises rather than returning an empty mapping."""
    replay.inject("tiingo", Fault.rate_limit(retry_after="30"))
    provider, ctx = tiingo(replay, http)

    with pytest.raises(ProviderError) as caught:
        await provider.fetch_batch(["AAPL", "MSFT"], ctx)

    expected = (ErrorCode.RATE_LIMIT, 30.0)
    assert expected == (caught.value.code, caught.value.retry_after)


async def test_hanging_server_times_out(
    replay: ReplayServer, autojump_clock: trio.testing.MockClock
) -> None:
    """A server that never answers is a TIMEOUT once the client gives up."""
    replay.inject("tiingo", Fault.hang())

    with trio.fail_after(60):
        async with httpx.AsyncClient(timeout=5) as http:
            error = await fetch_error(replay, http, "AAPL")

    expected = ErrorCode.TIMEOUT
    assert expected == error.code


async def test_missing_token_is_auth_without_a_call(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """With no token configured the provider refuses before calling Tiingo."""
    settings = ProviderSettings(name="tiingo", base_url=replay.base_url("tiingo"))
    ctx = ProviderContext(http=http, settings=settings, namespace="quotes")

    with pytest.raises(ProviderError) as caught:
        await TiingoQuotes(settings).fetch("AAPL", ctx)

    expected = (ErrorCode.AUTH, 0)
    assert expected == (caught.value.code, len(replay.requests))


@pytest.mark.parametrize("ticker", ["QUOTA-SPENT", "DAILY-404", "BADTICKER"])
async def test_token_never_appears_in_errors(
    replay: ReplayServer, http: httpx.AsyncClient, ticker: str
) -> None:
    """Neither the message nor the repr of an error shows the token."""
    error = await fetch_error(replay, http, ticker)

    expected: list[str] = []
    assert expected == [text for text in (str(error), repr(error)) if KEY in text]


async def test_a_missing_token_names_the_variable_to_set(
    replay: ReplayServer, http: httpx.AsyncClient
) -> None:
    """When the key comes from an unset environment variable, AUTH names it."""
    settings = ProviderSettings(
        name="tiingo",
        base_url=replay.base_url("tiingo"),
        api_key_env="TIINGO_API_KEY",
    )
    ctx = ProviderContext(http=http, settings=settings, namespace="quotes")

    with pytest.raises(ProviderError) as caught:
        await TiingoQuotes(settings).fetch("AAPL", ctx)

    assert "set the environment variable TIINGO_API_KEY" in str(caught.value)
